#!/usr/bin/env bun
// dexrl command-line entry: lazy subcommands, strict arguments, --help with examples, one-sentence errors.
import type { ArgsDef, CommandContext, CommandDef, SubCommandsDef } from "citty";
import pkg from "../package.json" with { type: "json" };
import { debugArgs, type DexrlMeta } from "./cli/args.ts";
import { didYouMean, parseArgv } from "./cli/parse.ts";
import { helpInputOf, renderHelp, stdoutStyle } from "./cli/usage.ts";
import { DexrlError, usageError } from "./errors.ts";
import { enableDebug } from "./log/console.ts";

/** Each command lives in src/commands/<name>.ts and is loaded only when used. */
const subCommands: SubCommandsDef = {
  collect: () => import("./commands/collect.ts").then((m) => m.default),
  config: () => import("./commands/config.ts").then((m) => m.default),
  doctor: () => import("./commands/doctor.ts").then((m) => m.default),
  eval: () => import("./commands/eval.ts").then((m) => m.default),
  expert: () => import("./commands/expert.ts").then((m) => m.default),
  export: () => import("./commands/export.ts").then((m) => m.default),
  render: () => import("./commands/render.ts").then((m) => m.default),
  sft: () => import("./commands/sft.ts").then((m) => m.default),
  tasks: () => import("./commands/tasks.ts").then((m) => m.default),
  train: () => import("./commands/train.ts").then((m) => m.default),
};

export const main: CommandDef = {
  meta: {
    name: "dexrl",
    version: pkg.version,
    description: "PPO fine-tuning of a flow-matching VLA policy on LIBERO-Spatial, in one executable",
    examples: ["dexrl doctor", "dexrl config actor.model.num_steps=4"],
  } satisfies DexrlMeta,
  subCommands,
};

/** Options every command takes; --debug also works before the command's name. */
const globalArgs = {
  help: { type: "boolean", alias: "h", description: "Show help (also after a command's name)" },
  version: { type: "boolean", alias: "v", description: "Print the version" },
  ...debugArgs,
} as const satisfies ArgsDef;

const resolve = async <T,>(v: T | (() => T | Promise<T>) | Promise<T>): Promise<T> =>
  typeof v === "function" ? await (v as () => T | Promise<T>)() : await v;

async function loadCommand(name: string): Promise<CommandDef> {
  const commands = await resolve(subCommands);
  if (!Object.hasOwn(commands, name))
    throw usageError(`Unknown command ${name}${didYouMean(name, Object.keys(commands)) || " (see `dexrl --help`)"}.`);
  return resolve(commands[name]!) as Promise<CommandDef>;
}

async function mainHelp(): Promise<string> {
  const commands = await resolve(subCommands);
  const rows: [string, string][] = [];
  for (const [name, sub] of Object.entries(commands)) {
    const meta = await resolve((await resolve(sub)).meta ?? {});
    rows.push([name, meta.description ?? ""]);
  }
  return renderHelp({ name: "dexrl", meta: (await resolve(main.meta!)) as DexrlMeta, args: {}, commands: rows, global: globalArgs }, stdoutStyle());
}

/** A command's arguments with --debug added (last) where the command does not declare it. */
async function argsOf(cmd: CommandDef): Promise<ArgsDef> {
  const args = (await resolve(cmd.args ?? {})) as ArgsDef;
  return { ...args, debug: args.debug ?? debugArgs.debug };
}

export async function run(argv: string[]): Promise<number> {
  const end = argv.indexOf("--");
  const words = end < 0 ? argv : argv.slice(0, end); // after "--" everything is a positional
  const debug = words.includes("--debug");
  if (debug) enableDebug();
  try {
    const at = words.findIndex((w) => !w.startsWith("-"));
    const before = at < 0 ? words : words.slice(0, at);
    for (const w of before)
      if (!["--help", "-h", "--version", "-v", "--debug"].includes(w))
        throw usageError(`Unknown option ${w}${didYouMean(w, ["--help", "--version", "--debug"]) || "; options go after the command's name (see `dexrl --help`)"}.`);
    const help = words.includes("--help") || words.includes("-h");
    if (at < 0) {
      if (before.includes("--version") || before.includes("-v")) {
        console.log(pkg.version);
        return 0;
      }
      if (help || argv.length === 0) {
        process.stdout.write(await mainHelp());
        return 0;
      }
      throw usageError("No command given; run `dexrl --help` for the list.");
    }
    const name = words[at]!;
    if (before.includes("--version") || before.includes("-v")) throw usageError(`--version takes no command; run \`dexrl --version\` alone.`);
    const cmd = await loadCommand(name);
    const args = await argsOf(cmd);
    if (help) {
      process.stdout.write(renderHelp({ ...(await helpInputOf(`dexrl ${name}`, cmd)), args }, stdoutStyle()));
      return 0;
    }
    const rest = argv.slice(at + 1).filter((w, i) => w !== "--debug" || (end >= 0 && at + 1 + i > end));
    const parsed = parseArgv(args, rest, `dexrl ${name}`);
    parsed.debug = debug;
    // citty types parsed args per command; a command reads exactly the names it declared, which parseArgv fills.
    const context = { rawArgs: rest, args: parsed, cmd } as unknown as CommandContext;
    await cmd.setup?.(context);
    try {
      await cmd.run?.(context);
    } finally {
      await cmd.cleanup?.(context);
    }
    return 0;
  } catch (err) {
    const e = err as Error & { code?: string };
    if (debug) console.error(e);
    if (err instanceof DexrlError) {
      console.error(`dexrl: ${e.message}`);
      return err.exitCode;
    }
    console.error(`dexrl: internal error: ${e?.message ?? String(err)}${debug ? "" : " (run with --debug for the stack trace)"}`);
    return 1;
  }
}

if (import.meta.main) process.exit(await run(process.argv.slice(2)));
