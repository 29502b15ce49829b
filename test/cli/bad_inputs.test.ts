// The table of bad inputs (bad_inputs.yaml) run through the real CLI: each gets its exit code, one
// sentence containing its word, no stack trace and no internal error, nothing on stdout, and no
// output file appears.
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { loadPolicyCheckpoint, savePolicyCheckpoint } from "../../src/model/policy_checkpoint.ts";
import { trainerStateFiles } from "../../src/rl/trainer_state.ts";
import { repoRoot } from "../helpers/cli.ts";
import { writeTinyCheckpoint } from "../helpers/make_checkpoint.ts";

setDefaultTimeout(120_000);

interface Case {
  args: string[];
  code: number;
  word: string;
}
const cases = parse(readFileSync(join(import.meta.dir, "bad_inputs.yaml"), "utf8")) as Case[];

const root = mkdtempSync(join(tmpdir(), "dexrl-bad-inputs-"));
const places: Record<string, string> = {};

/** A resumable checkpoint: the tiny policy plus trainer_state.json and optimizer.safetensors at `step`. */
function resumable(dir: string, step: number): void {
  const ck = loadPolicyCheckpoint(places.ckpt!);
  const zeros = Object.fromEntries([...ck.params].map(([n, p]) => [n, new Float32Array(p.length)]));
  savePolicyCheckpoint(dir, ck, trainerStateFiles({ globalStep: step, optimizer: { step: 2 * step, lrs: [1e-3, 1e-4], m: zeros, v: zeros } }));
}

beforeAll(() => {
  const at = (name: string) => (places[name] = join(root, name));
  writeTinyCheckpoint(at("ckpt"));
  const ck = loadPolicyCheckpoint(places.ckpt!);
  const damaged = (name: string, value: number) => {
    const params = new Map(ck.params);
    const [first] = params.keys();
    const bad = params.get(first!)!.slice();
    bad[1] = value;
    params.set(first!, bad);
    savePolicyCheckpoint(at(name), { ...ck, params });
  };
  damaged("nan_ckpt", NaN);
  damaged("inf_ckpt", Infinity);
  writeTinyCheckpoint(at("trunc_ckpt"));
  truncateSync(join(places.trunc_ckpt!, "model.safetensors"), 100);
  writeTinyCheckpoint(at("nomodel_ckpt"));
  rmSync(join(places.nomodel_ckpt!, "model.safetensors"));
  writeTinyCheckpoint(at("badjson_ckpt"));
  writeFileSync(join(places.badjson_ckpt!, "config.json"), "{ not json");

  // A run folder as dexrl train leaves it.
  mkdirSync(join(at("run"), "checkpoints"), { recursive: true });
  writeFileSync(join(places.run!, "config.yaml"), "runner: {}\n");
  writeFileSync(join(places.run!, "events.out.tfevents.1700000000.host.1"), "");
  resumable(join(places.run!, "checkpoints", "global_step_1"), 1);
  resumable(join(places.run!, "checkpoints", "global_step_2"), 2);

  resumable(at("noopt"), 1);
  rmSync(join(places.noopt!, "optimizer.safetensors"));
  for (const [name, text] of [["negstep", '{"global_step": -1, "adamw_step": 2, "lrs": [0.001, 0.0001]}'], ["fracstep", '{"global_step": 1.5, "adamw_step": 2, "lrs": [0.001, 0.0001]}'], ["badstate", "{ truncated"], ["badtasks", '{"global_step": 1, "adamw_step": 2, "lrs": [0.001, 0.0001], "task_success": [0.5, 1.5]}']]) {
    resumable(at(name!), 1);
    writeFileSync(join(places[name!]!, "trainer_state.json"), text!);
  }

  writeFileSync(at("file"), "not a folder\n");
  mkdirSync(at("dir"));
  mkdirSync(at("tmp"));
  writeFileSync(at("badyaml"), "actor: [unclosed\n");
  writeFileSync(at("listyaml"), "- 1\n- 2\n");
  writeFileSync(at("typoyaml"), "actor:\n  optim:\n    weight_decy: 0.1\n");
  writeFileSync(at("dotsyaml"), "actor: 3\n");
});

const fill = (arg: string) => arg.replace(/\{(\w+)\}/g, (_, name: string) => places[name] ?? `{${name}}`);

/** Runs one case; a run that was not refused is stopped after 60 s rather than left training. */
async function run(args: string[]) {
  const p = Bun.spawn([process.execPath, join(repoRoot, "src/cli.ts"), ...args], {
    cwd: root, // a relative default (runner.logger.log_path: ../results) must not land in the repository
    env: { ...process.env, NO_COLOR: "1" },
    stdout: "pipe",
    stderr: "pipe",
    timeout: 60_000,
  });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

describe("bad inputs", () => {
  test(`the table has at least 100 cases covering every command (${cases.length})`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(100);
    const commands = new Set(cases.map((c) => c.args[0]));
    for (const name of ["config", "doctor", "eval", "expert", "export", "render", "tasks", "train"]) expect(commands.has(name)).toBe(true);
  });

  test("each is refused with its exit code and one sentence containing its word", async () => {
    const failures: string[] = [];
    const batch = 6; // parallel CLI runs at a time: small, the machine has 2 cores
    for (let i = 0; i < cases.length; i += batch) {
      const group = cases.slice(i, i + batch);
      const results = await Promise.all(group.map((c) => run(c.args.map(fill))));
      group.forEach((c, k) => {
        const r = results[k]!;
        const last = r.stderr.trim().split("\n").at(-1) ?? "";
        const why = [
          r.code !== c.code ? `exit code ${r.code}, expected ${c.code}` : "",
          !last.startsWith("dexrl: ") || !last.includes(fill(c.word)) ? `last line ${JSON.stringify(last)} lacks ${JSON.stringify(fill(c.word))}` : "",
          r.stderr.includes("internal error") ? "an internal error" : "",
          r.stderr.includes("    at ") ? "a stack trace" : "",
          r.stdout.trim() ? `stdout ${JSON.stringify(r.stdout.slice(0, 200))}` : "",
        ].filter(Boolean);
        if (why.length) failures.push(`dexrl ${c.args.join(" ")}: ${why.join("; ")}`);
      });
    }
    expect(failures).toEqual([]);
    // Nothing was written where outputs were refused.
    expect(readdirSync(places.tmp!).filter((n) => !/^t\d+$/.test(n))).toEqual([]);
    expect(readdirSync(places.dir!)).toEqual([]);
    expect(readdirSync(join(places.run!, "checkpoints")).sort()).toEqual(["global_step_1", "global_step_2"]);
  });
});
