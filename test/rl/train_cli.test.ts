// `dexrl train` end to end on a tiny checkpoint in real simulated envs: two global steps, metrics in
// TensorBoard, checkpoints that load, the expert updated and the frozen prefix untouched.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isPrefixParameter } from "../../src/model/config.ts";
import { loadPolicyCheckpoint, savePolicyCheckpoint } from "../../src/model/policy_checkpoint.ts";
import { Tokenizer } from "../../src/model/tokenizer.ts";
import { TASKS } from "../../src/sim/tasks.ts";
import { perturbedParams, tinyModel } from "../model/helpers.ts";

// Simulation, rendering, rollouts and PPO updates on SwiftShader, in a child process.
setDefaultTimeout(300_000);

const root = join(import.meta.dir, "..", "..");

/** An event file as text: scalar tags appear in it verbatim (the full reader is in test/log/tfevents.test.ts). */
function tags(path: string): string {
  return readFileSync(path).toString("latin1");
}

/** A two-step run of two envs, one rollout epoch of two policy calls, two update epochs. */
const args = (ckpt: string, logs: string, name: string) => [
  process.execPath, join(root, "src/cli.ts"), "train", `actor.model.model_path=${ckpt}`, `runner.logger.log_path=${logs}`, `runner.logger.experiment_name=${name}`,
  "env.train.total_num_envs=2", "env.train.rollout_epoch=1", "env.train.max_steps_per_rollout_epoch=10", "env.train.max_episode_steps=10",
  "runner.max_steps=2", "runner.save_interval=1", "actor.global_batch_size=4", "actor.micro_batch_size=2", "algorithm.update_epoch=2",
  "actor.model.action_horizon=10", "actor.optim.lr=1e-3",
];

describe("dexrl train", () => {
  test("two global steps: metrics, loadable checkpoints, expert updated, prefix frozen", () => {
    const tmp = mkdtempSync(join(tmpdir(), "dexrl-train-"));
    const ckpt = join(tmp, "sft");
    const tokenizer = Tokenizer.fromTexts(TASKS.map((t) => t.language), 24);
    const config = tinyModel({ max_text_len: 24, vocab_size: tokenizer.vocabSize, horizon: 10 });
    const unit = (n: number) => ({ mean: Array(n).fill(0), std: Array(n).fill(0.3) });
    savePolicyCheckpoint(ckpt, { config, params: perturbedParams(config, 8), normStats: { state: unit(8), actions: unit(7) }, tokenizer });
    const p = Bun.spawnSync(args(ckpt, tmp, "run"), { cwd: root });
    const out = p.stdout.toString();
    expect(p.stderr.toString()).not.toContain("internal error");
    expect(p.exitCode).toBe(0);
    expect(out).toMatch(/^step 1 \| train\/actor\/policy_loss /m);
    expect(out).toMatch(/^step 2 \| /m);
    const run = join(tmp, "run");
    expect(existsSync(join(run, "config.yaml"))).toBe(true);
    const events = readdirSync(run).filter((f) => f.startsWith("events.out.tfevents."));
    expect(events).toHaveLength(1);
    const tb = tags(join(run, events[0]!));
    for (const tag of ["train/actor/policy_loss", "train/critic/value_loss", "train/actor/approx_kl", "env/success_once", "env/episode_len"]) expect(tb).toContain(tag);
    const before = loadPolicyCheckpoint(ckpt);
    const after = loadPolicyCheckpoint(join(run, "checkpoints", "global_step_2"));
    expect(existsSync(join(run, "checkpoints", "global_step_1", "model.safetensors"))).toBe(true);
    const changed = (name: string) => before.params.get(name)!.some((v, i) => v !== after.params.get(name)![i]);
    for (const name of before.params.keys()) if (isPrefixParameter(name)) expect([name, changed(name)]).toEqual([name, false]);
    expect(changed("expert.layers.0.q_proj.weight")).toBe(true);
    expect(changed("value_head.weight")).toBe(true);
    const state = (dir: string) => JSON.parse(readFileSync(join(dir, "trainer_state.json"), "utf8"));
    expect(state(join(run, "checkpoints", "global_step_2"))).toEqual({ global_step: 2, adamw_step: 4, lrs: [1e-3, 1e-4], task_success: null });

    // Resuming from global step 1 runs step 2 only, with AdamW's step and moments carried over.
    const r = Bun.spawnSync([...args(ckpt, tmp, "resumed"), `runner.resume_dir=${join(run, "checkpoints", "global_step_1")}`], { cwd: root });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString()).not.toMatch(/^step 1 /m);
    expect(r.stdout.toString()).toMatch(/^step 2 /m);
    expect(state(join(tmp, "resumed", "checkpoints", "global_step_2"))).toEqual({ global_step: 2, adamw_step: 4, lrs: [1e-3, 1e-4], task_success: null });
    const bad = Bun.spawnSync([...args(ckpt, tmp, "bad"), `runner.resume_dir=${ckpt}`], { cwd: root });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.toString()).toContain(`Cannot resume from ${ckpt}: it has no trainer_state.json`);
  });

  test("a missing model is refused with one sentence", () => {
    const p = Bun.spawnSync([process.execPath, join(root, "src/cli.ts"), "train", "actor.model.model_path=/nonexistent/model"], { cwd: root });
    expect(p.exitCode).toBe(2); // bad input, refused before any work starts (README)
    expect(p.stderr.toString().trim().split("\n").at(-1)).toBe("dexrl: Checkpoint /nonexistent/model does not exist.");
  });
});
