// Strict argument parsing and --help: every spelling help shows is accepted, nothing else is, help is
// wrapped and free of ANSI escapes when piped, and the exit codes are the ones README states.
import { describe, expect, test } from "bun:test";
import type { ArgsDef } from "citty";
import { configArgs, debugArgs, jsonArgs } from "../../src/cli/args.ts";
import { didYouMean, parseArgv } from "../../src/cli/parse.ts";
import { renderHelp, wrap } from "../../src/cli/usage.ts";
import { DexrlError } from "../../src/errors.ts";
import { dexrl } from "../helpers/cli.ts";

const evalLike = {
  ckpt: { type: "string", required: true, alias: ["ckpt_path"], valueHint: "DIR", description: "Checkpoint directory" },
  "num-trials-per-task": { type: "string", default: "50", alias: ["num_trials_per_task", "trials-per-task"], valueHint: "N" },
  mode: { type: "enum", options: ["fast", "slow"], default: "fast" },
  ...configArgs,
  ...jsonArgs,
  ...debugArgs,
} as const satisfies ArgsDef;
const plain = { out: { type: "string", valueHint: "DIR", default: "renders" }, video: { type: "boolean", default: false } } as const satisfies ArgsDef;

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DexrlError);
    expect((e as DexrlError).exitCode).toBe(2);
    return (e as Error).message;
  }
  throw new Error("expected a refusal");
}

describe("parseArgv", () => {
  test("every spelling of an option gives the same value, under its name and its aliases", () => {
    for (const spelling of [["--num-trials-per-task", "7"], ["--trials-per-task", "7"], ["--num_trials_per_task=7"]]) {
      const a = parseArgv(evalLike, ["--ckpt_path", "x", ...spelling], "dexrl eval");
      expect(a["num-trials-per-task"]).toBe("7");
      expect(a["trials-per-task"]).toBe("7");
      expect(a.ckpt).toBe("x");
    }
    const a = parseArgv(evalLike, ["--ckpt=x", "-c", "my.yaml", "actor.model.num_steps=4", "--json", "env.seed=1"], "dexrl eval");
    expect([a.config, a.json, a._]).toEqual(["my.yaml", true, ["actor.model.num_steps=4", "env.seed=1"]]);
    expect(a["num-trials-per-task"]).toBe("50"); // default
    expect(parseArgv(evalLike, ["--ckpt", "x", "--json=false"], "dexrl eval").json).toBe(false);
    expect(parseArgv(evalLike, ["--ckpt", "x", "--mode", "slow"], "dexrl eval").mode).toBe("slow");
  });

  test("values that look like options are values where a value is due; -- ends the options", () => {
    expect(parseArgv(plain, ["--out", "-5"], "dexrl render").out).toBe("-5");
    expect(parseArgv(evalLike, ["--ckpt", "x", "--", "--json"], "dexrl eval")._).toEqual(["--json"]);
  });

  test("mistakes are refused with one sentence and a suggestion", () => {
    expect(refusal(() => parseArgv(evalLike, ["--ckpt", "x", "--bogus"], "dexrl eval"))).toBe("Unknown option --bogus for dexrl eval (see `dexrl eval --help`).");
    expect(refusal(() => parseArgv(evalLike, ["--ckpt", "x", "--jsno"], "dexrl eval"))).toContain("(did you mean --json?)");
    expect(refusal(() => parseArgv(evalLike, ["--ckpt", "x", "-trials-per-task", "3"], "dexrl eval"))).toContain("(did you mean --trials-per-task?)");
    expect(refusal(() => parseArgv(evalLike, ["--ckpt", "x", "--num-trials", "3"], "dexrl eval"))).toContain("(did you mean --num-trials-per-task?)");
    expect(refusal(() => parseArgv(evalLike, ["--ckpt", "x", "--actor.model.num_steps=4"], "dexrl eval"))).toContain("as actor.model.num_steps=4");
    expect(refusal(() => parseArgv(evalLike, ["--ckpt", "x", "json"], "dexrl eval"))).toContain("(did you mean --json?)");
    expect(refusal(() => parseArgv(plain, ["video"], "dexrl render"))).toBe('Unexpected argument "video": dexrl render takes no positional arguments (did you mean --video?).');
    expect(refusal(() => parseArgv(plain, ["frames"], "dexrl render"))).toContain("takes no positional arguments (see `dexrl render --help`)");
    expect(refusal(() => parseArgv(evalLike, [], "dexrl eval"))).toContain("Missing required argument: --ckpt DIR");
    expect(refusal(() => parseArgv(evalLike, ["--ckpt"], "dexrl eval"))).toContain("--ckpt needs a value (DIR)");
    expect(refusal(() => parseArgv(evalLike, ["--ckpt", "--json"], "dexrl eval"))).toContain("followed by the option --json");
    expect(refusal(() => parseArgv(evalLike, ["--ckpt", "a", "--ckpt_path", "b"], "dexrl eval"))).toContain("--ckpt_path (the same as --ckpt) is given twice");
    expect(refusal(() => parseArgv(evalLike, ["--ckpt", "a", "--json=yes"], "dexrl eval"))).toContain("--json is a switch and takes no value");
    expect(refusal(() => parseArgv(evalLike, ["--ckpt", "a", "--mode", "slw"], "dexrl eval"))).toBe('--mode must be one of fast, slow, not "slw" (did you mean slow?).');
  });

  test("did you mean: near misses and unique abbreviations, never one-letter spellings", () => {
    expect(didYouMean("trian", ["train", "tasks"])).toBe(" (did you mean train?)");
    expect(didYouMean("--prefix", ["--prefix-only", "--out"])).toBe(" (did you mean --prefix-only?)");
    expect(didYouMean("--x", ["-c", "--out"])).toBe("");
    expect(didYouMean("--frobnicate", ["--json", "--out"])).toBe("");
  });
});

describe("help", () => {
  test("wraps descriptions and examples to the width, lists every accepted spelling, no colour when asked for none", () => {
    const text = renderHelp(
      { name: "dexrl eval", meta: { description: "word ".repeat(60), examples: [`dexrl eval ${"--ckpt models/sft ".repeat(8)}`] }, args: evalLike },
      { width: 60, color: false },
    );
    for (const line of text.split("\n")) expect(line.length).toBeLessThanOrEqual(60);
    expect(text).toContain("--num-trials-per-task N");
    expect(text.replace(/\s+/g, " ")).toContain("Also --num_trials_per_task, --trials-per-task.");
    expect(text).toContain("Also -c.");
    expect(text).toMatch(/ \\\n {6}--ckpt/); // a wrapped example continues after a backslash
    expect(text).not.toContain("\x1b[");
    expect(renderHelp({ name: "x", meta: {}, args: plain }, { width: 60, color: true })).toContain("\x1b[1mOPTIONS\x1b[0m");
    expect(wrap("aaa bbb ccc", 7, 2, 0)).toBe("aaa bbb\n  ccc");
  });

  test("every command's --help, piped, is at most 80 columns wide and has no ANSI escapes", async () => {
    const results = await Promise.all(
      ["", "config", "doctor", "eval", "expert", "export", "render", "tasks", "train"].map(async (cmd) => {
        const p = Bun.spawn([process.execPath, "src/cli.ts", ...(cmd ? [cmd] : []), "--help"], { cwd: `${import.meta.dir}/../..`, stdout: "pipe", env: { ...process.env, NO_COLOR: "", TERM: "xterm-256color" } });
        return { cmd, code: await p.exited, text: await new Response(p.stdout).text() };
      }),
    );
    for (const r of results) {
      expect([r.cmd, r.code]).toEqual([r.cmd, 0]);
      expect([r.cmd, r.text.includes("\x1b")]).toEqual([r.cmd, false]);
      for (const line of r.text.split("\n")) expect([r.cmd, line, line.length <= 80]).toEqual([r.cmd, line, true]);
    }
  });
});

describe("the CLI entry", () => {
  test("aliases shown in eval's help reach eval (they fail on the missing checkpoint, not on the flag)", () => {
    for (const flag of ["--trials-per-task", "--num_trials_per_task", "--num-trials-per-task"]) {
      const r = dexrl("eval", "--ckpt_path", "/nonexistent/ckpt", flag, "3", "--action_chunk_size", "5", "--num_diffusion_steps", "10");
      expect([flag, r.code, r.errLines.at(-1)]).toEqual([flag, 2, "dexrl: Checkpoint /nonexistent/ckpt does not exist."]);
    }
  });

  test("--debug anywhere, before or after the command; no command is an error; --version alone", () => {
    expect(dexrl("--debug", "config", "actor.model.num_steps=0").stderr).toContain("    at ");
    expect(dexrl("config", "actor.model.num_steps=0", "--debug").stderr).toContain("    at ");
    const none = dexrl("--debug");
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("dexrl: No command given; run `dexrl --help` for the list.");
    expect(dexrl("-v").stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    expect(dexrl("config", "--help", "actor.model.num_steps=0").code).toBe(0); // help wins over bad input
  });

  test("an empty config file is loaded with a notice; a folder as config file is one sentence", () => {
    const dir = `${import.meta.dir}/../fixtures`;
    const empty = `${Bun.env.TMPDIR ?? "/tmp"}/dexrl-empty-${process.pid}.yaml`;
    Bun.write(empty, "# nothing yet\n");
    const r = dexrl("config", "--config", empty);
    expect(r.code).toBe(0);
    expect(r.errLines[0]).toBe(`dexrl: notice: the config file ${empty} is empty (or only comments); it changes nothing.`);
    const d = dexrl("config", "--config", dir);
    expect(d.code).toBe(2);
    expect(d.errLines).toEqual([`dexrl: The config file ${dir} is a folder; give a YAML file (or the name of a bundled config).`]);
  });
});
