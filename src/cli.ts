#!/usr/bin/env bun
// dexrl command-line entry: lazy subcommands, --help with examples, one-sentence errors.
import { renderUsage, runCommand, type CommandDef, type SubCommandsDef } from "citty";
import pkg from "../package.json" with { type: "json" };
import type { DexrlMeta } from "./cli/args.ts";
import { DexrlError, EXIT_USAGE } from "./errors.ts";

/** Each command lives in src/commands/<name>.ts and is loaded only when used. */
const subCommands: SubCommandsDef = {
  config: () => import("./commands/config.ts").then((m) => m.default),
  doctor: () => import("./commands/doctor.ts").then((m) => m.default),
  eval: () => import("./commands/eval.ts").then((m) => m.default),
  expert: () => import("./commands/expert.ts").then((m) => m.default),
  export: () => import("./commands/export.ts").then((m) => m.default),
  render: () => import("./commands/render.ts").then((m) => m.default),
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

const resolve = async <T,>(v: T | (() => T | Promise<T>) | Promise<T>): Promise<T> =>
  typeof v === "function" ? await (v as () => T | Promise<T>)() : await v;

/** Finds the command that `argv` names (for --help of a subcommand) and its parent. */
async function commandFor(argv: string[]): Promise<[CommandDef, CommandDef | undefined]> {
  let cmd = main;
  let parent: CommandDef | undefined;
  for (const word of argv) {
    if (word.startsWith("-")) continue;
    const subs = cmd.subCommands ? await resolve(cmd.subCommands) : undefined;
    if (!subs || !(word in subs)) break;
    parent = cmd;
    cmd = await resolve(subs[word]!);
  }
  return [cmd, parent];
}

async function usage(argv: string[]): Promise<string> {
  const [cmd, parent] = await commandFor(argv);
  const meta = (await resolve(cmd.meta ?? {})) as DexrlMeta;
  let text = await renderUsage(cmd, parent);
  if (meta.examples?.length) text += `\n\nEXAMPLES\n\n${meta.examples.map((e) => `  ${e}`).join("\n")}`;
  return text;
}

export async function run(argv: string[]): Promise<number> {
  const debug = argv.includes("--debug");
  try {
    if (argv.includes("--help") || argv.includes("-h") || argv.length === 0) {
      console.log(await usage(argv));
      return 0;
    }
    if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-v")) {
      console.log(pkg.version);
      return 0;
    }
    await runCommand(main, { rawArgs: argv });
    return 0;
  } catch (err) {
    const e = err as Error & { code?: string };
    if (debug) console.error(e);
    if (err instanceof DexrlError) {
      console.error(`dexrl: ${e.message}`);
      return err.exitCode;
    }
    if (e?.name === "CLIError") {
      // citty's argument errors: unknown command, missing or invalid argument.
      const [cmd] = await commandFor(argv);
      const name = cmd === main ? "dexrl" : `dexrl ${((await resolve(cmd.meta ?? {})) as DexrlMeta).name}`;
      console.error(`dexrl: ${e.message.replace(/\x1b\[[0-9;]*m/g, "")} (see \`${name} --help\`)`);
      return EXIT_USAGE;
    }
    console.error(`dexrl: internal error: ${e?.message ?? String(err)}${debug ? "" : " (run with --debug for the stack trace)"}`);
    return 1;
  }
}

if (import.meta.main) process.exit(await run(process.argv.slice(2)));
