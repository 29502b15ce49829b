// Settings given on resume, through the CLI: a run continued with actor.optim.lr=1e6 uses the new
// learning rate (a notice says so) and diverges; the non-finite guard stops it with a sentence naming
// the global step and the quantity, exit code 1, the last good checkpoint kept and none of the
// diverged step written. A different set of trained parameters is refused with a sentence naming
// the setting, before anything is written.
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPolicyCheckpoint } from "../../src/model/policy_checkpoint.ts";
import { dexrl } from "../helpers/cli.ts";
import { writeTinyCheckpoint } from "../helpers/make_checkpoint.ts";
import { eventFiles, readEvents } from "../log/events.ts";

// Simulation, rendering and updates on SwiftShader / ONNX Runtime, in child processes.
setDefaultTimeout(240_000);

const root = mkdtempSync(join(tmpdir(), "dexrl-nonfinite-"));
const ckpt = join(root, "ckpt");
const run = join(root, "run");
const first = join(run, "checkpoints", "global_step_1");

/** Two envs, one rollout epoch of two policy calls, four optimizer steps per global step. */
const tiny = (...more: string[]) => [
  "train", "--run-dir", run, `actor.model.model_path=${ckpt}`,
  "env.train.total_num_envs=2", "env.train.rollout_epoch=1", "env.train.max_steps_per_rollout_epoch=10", "env.train.max_episode_steps=10",
  "runner.save_interval=1", "actor.global_batch_size=2", "actor.micro_batch_size=2", "algorithm.update_epoch=2", "actor.model.action_horizon=10",
  ...more,
];

beforeAll(() => {
  writeTinyCheckpoint(ckpt);
  const r = dexrl(...tiny("runner.max_steps=1", "actor.optim.lr=1e-4"));
  expect(r.stderr).not.toContain("internal error");
  expect(r.code).toBe(0);
});

/** Name → bytes of every file under `dir`, to show nothing changed. */
function contents(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[p.slice(dir.length)] = readFileSync(p).toString("base64");
    }
  };
  walk(dir);
  return out;
}

describe("settings given on resume", () => {
  test("another set of trained parameters is refused with a sentence naming the setting; nothing is written", () => {
    const before = contents(run);
    const r = dexrl(...tiny("runner.max_steps=2", `runner.resume_dir=${first}`, "actor.model.dexbotic.train_expert_only=false"));
    expect(r.stderr).not.toContain("internal error");
    expect(r.code).toBe(2);
    const last = r.errLines.at(-1)!;
    expect(last).toStartWith(`dexrl: Cannot resume from ${first} with actor.model.dexbotic.train_expert_only=false: its optimizer state holds AdamW moments for `);
    expect(last).toContain("the trained parameters cannot change on resume");
    expect(last).toContain(`actor.model.model_path=${first}`);
    expect(contents(run)).toEqual(before);
  });

  test("actor.optim.lr=1e6 applies (with a notice), diverges, and the guard stops the run: the step and quantity named, exit 1, step 1's checkpoint kept, none of the diverged step", () => {
    const before = contents(join(run, "checkpoints"));
    const r = dexrl(...tiny("runner.max_steps=4", `runner.resume_dir=${first}`, "actor.optim.lr=1e6"));
    expect(r.stderr).not.toContain("internal error");
    expect(r.stderr).toContain("dexrl: actor.optim.lr is 1000000, the checkpoint's run used 0.0001: 1000000 applies from global step 2 on.");
    expect(r.stderr).not.toContain("actor.optim.value_lr is");
    expect(r.code).toBe(1);
    const last = r.errLines.at(-1)!;
    const m = /^dexrl: Training diverged at global step (\d+)(, optimizer step \d+)?: (the loss|the gradient norm|parameter \S+) is not finite.*the last good checkpoint is kept\.$/.exec(last);
    expect(m, last).not.toBeNull();
    const diverged = Number(m![1]);
    expect(diverged).toBeGreaterThanOrEqual(2);
    expect(r.stdout).not.toMatch(new RegExp(`^step ${diverged} `, "m"));
    expect(r.stdout).not.toContain("NaN");
    // Checkpoints of the steps before it only (save_interval 1), step 1's untouched and finite; nothing partial.
    const steps = Array.from({ length: diverged - 1 }, (_, i) => `global_step_${i + 1}`);
    expect(readdirSync(join(run, "checkpoints")).sort()).toEqual(steps.sort());
    expect(existsSync(join(run, "checkpoints", `global_step_${diverged}`))).toBe(false);
    const now = contents(join(run, "checkpoints"));
    for (const [name, bytes] of Object.entries(before)) expect([name, now[name] === bytes]).toEqual([name, true]);
    for (const s of steps) for (const p of loadPolicyCheckpoint(join(run, "checkpoints", s)).params.values()) expect(p.every(Number.isFinite)).toBe(true);
    // TensorBoard holds nothing of the diverged step.
    const logged = eventFiles(run).flatMap((f) => readEvents(f).scalars.map((s) => s.step));
    expect(Math.max(...logged)).toBe(diverged - 1);
  });
});
