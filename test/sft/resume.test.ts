// Exact resume of `dexrl sft`: killed with SIGKILL in the middle of writing step 2's checkpoint
// (DEXRL_TEST_KILL_AT, src/rl/trainer_state.ts) and resumed from step 1, the run ends with the same
// bytes in every checkpoint and in the final model as an uninterrupted run, and the same TensorBoard
// scalars with no step logged twice.
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatasetWriter } from "../../src/sft/dataset.ts";
import { TASKS } from "../../src/sim/tasks.ts";
import { repoRoot } from "../helpers/cli.ts";
import { eventFiles, readEvents } from "../log/events.ts";

setDefaultTimeout(120_000);

const root = mkdtempSync(join(tmpdir(), "dexrl-sft-resume-"));
const data = join(root, "data");
const S = 16;

/** Three short synthetic episodes of three tasks (the scripted expert is not needed to test resuming). */
beforeAll(() => {
  const w = DatasetWriter.create(data, { suite: "libero_spatial", image_size: S, num_views: 2, views: ["agentview", "robot0_eye_in_hand"], state_dim: 8, action_dim: 7, control_hz: 20, seed: 3, max_steps: 220 });
  for (let k = 0; k < 3; k++) {
    const T = 6 + k;
    const images = Uint8Array.from({ length: T * 2 * S * S * 3 }, (_, i) => (i * 31 + k * 7) & 255);
    const states = Float32Array.from({ length: T * 8 }, (_, i) => Math.sin(i + k));
    const actions = Float32Array.from({ length: T * 7 }, (_, i) => Math.cos(i * 0.3 + k));
    w.addEpisode({ task: k, instruction: TASKS[k]!.language, length: T, images, states, actions }, { seed: 3, index: k, fixtureSeed: 100 + k });
  }
});

/** Three steps of a tiny model, a checkpoint after each, no evaluation. */
function sft(killAt: string | undefined, run: string, ...more: string[]) {
  const p = Bun.spawnSync(
    [
      process.execPath, join(repoRoot, "src/cli.ts"), "sft", "--config", "sft_libero_spatial", "--run-dir", run, `sft.data_dir=${data}`, `sft.output_dir=${run}-model`,
      "sft.max_steps=3", "sft.save_interval=1", "sft.eval_interval=0", "sft.batch_size=4", "sft.warmup_steps=1", "sft.episodes_per_task=null", "actor.model.action_horizon=10",
      "sft.model.image_size=16", "sft.model.patch_size=8", "sft.model.vit_width=16", "sft.model.vit_depth=1", "sft.model.width=16", "sft.model.depth=1", "sft.model.heads=2", "sft.model.mlp=32", "sft.model.max_text_len=16",
      ...more,
    ],
    { cwd: repoRoot, env: { ...process.env, NO_COLOR: "1", DEXRL_TEST_KILL_AT: killAt } },
  );
  return { code: p.exitCode, signal: p.signalCode, stderr: p.stderr.toString() };
}

/** "step tag" → value over a run folder's event files, each (step, tag) once. */
function scalars(run: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of eventFiles(run))
    for (const s of readEvents(f).scalars) {
      const key = `${s.step} ${s.tag}`;
      expect(out.has(key), `${key} logged twice`).toBe(false);
      out.set(key, s.value);
    }
  return out;
}

describe("dexrl sft resume", () => {
  test("killed while writing step 2's checkpoint and resumed from step 1: checkpoints, final model and scalars equal the uninterrupted run's", () => {
    const straight = join(root, "straight");
    const run = join(root, "killed");
    const s = sft(undefined, straight);
    expect(s.stderr).not.toContain("internal error");
    expect(s.code).toBe(0);

    const a = sft("checkpoint:2", run);
    expect(a.signal).toBe("SIGKILL");
    expect(readdirSync(join(run, "checkpoints")).filter((n) => !n.startsWith(".step_2.partial-"))).toEqual(["step_1"]);
    const b = sft(undefined, run, `sft.resume_dir=${join(run, "checkpoints", "step_1")}`);
    expect(b.stderr).not.toContain("internal error");
    expect(b.code).toBe(0);
    expect(b.stderr).toMatch(/dexrl: removed \S+\.step_2\.partial-\d+ left by an interrupted save\./);
    expect(b.stderr).toContain("dexrl: removed the records of step 2 (logged after the checkpoint this run resumes from; they are logged again)");

    expect(readdirSync(join(run, "checkpoints")).sort()).toEqual(["step_1", "step_2", "step_3"]);
    const files = [1, 2, 3].flatMap((n) => ["model.safetensors", "optimizer.safetensors", "trainer_state.json"].map((f) => join("checkpoints", `step_${n}`, f)));
    for (const f of files) expect([f, readFileSync(join(run, f)).equals(readFileSync(join(straight, f)))]).toEqual([f, true]);
    expect(readFileSync(`${run}-model/model.safetensors`).equals(readFileSync(`${straight}-model/model.safetensors`))).toBe(true);
    const want = scalars(straight);
    expect(want.size).toBe(3 * 3);
    expect(scalars(run)).toEqual(want);
    expect(readdirSync(run).filter((f) => f.endsWith(".yaml")).sort()).toEqual(["config.resume_1.yaml", "config.yaml"]);
  });
});
