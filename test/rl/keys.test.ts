// The seed's PPO keys that dexrl once read and ignored: each now changes what a run does (checked on
// short real runs and on the sampler) or is refused with a sentence naming it.
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { compile, host } from "../../src/engine/compile.ts";
import { initEngine } from "../../src/engine/runtime.ts";
import { loadPolicyCheckpoint } from "../../src/model/policy_checkpoint.ts";
import { samplerFn, constantPolicy } from "../../src/model/programs.ts";
import { stepHost, type SamplerConfig } from "../../src/model/sampler.ts";
import { writeTinyCheckpoint } from "../helpers/make_checkpoint.ts";
import { dexrl } from "../helpers/cli.ts";
import { eventFiles, readEvents } from "../log/events.ts";
import { perturbedParams, tinyModel } from "../model/helpers.ts";

/** tag → step → value over a run folder's event files. */
function readScalars(dir: string): Map<string, Map<number, number>> {
  const out = new Map<string, Map<number, number>>();
  for (const f of eventFiles(dir))
    for (const s of readEvents(f).scalars) {
      if (!out.has(s.tag)) out.set(s.tag, new Map());
      out.get(s.tag)!.set(s.step, s.value);
    }
  return out;
}

const refused: [string, string][] = [
  ["algorithm.filter_rewards=true", "algorithm.filter_rewards"],
  ["algorithm.kl_beta=0.1", "algorithm.kl_beta"],
  ["algorithm.reward_type=action_level", "algorithm.reward_type"],
  ["algorithm.logprob_type=token_level", "algorithm.logprob_type"],
  ["algorithm.adv_type=grpo", "algorithm.adv_type"],
  ["algorithm.group_size=4", "algorithm.group_size"],
  ["rollout.recompute_logprobs=true", "rollout.recompute_logprobs"],
  ["actor.model.use_proprio=false", "actor.model.use_proprio"],
];

describe("keys dexrl implements one way only", () => {
  for (const [override, key] of refused)
    test(`${override} is refused with a sentence naming ${key}`, () => {
      expect(() => loadConfig({ overrides: [override], use: "train" })).toThrow(key);
    });
  test("evaluation does not care about them", () => {
    expect(() => loadConfig({ overrides: ["algorithm.filter_rewards=true"], use: "eval" })).not.toThrow();
  });
});

describe("keys that change behaviour", () => {
  beforeAll(async () => {
    await initEngine();
  });

  test("chunk_critic_input: the value head reads the first num_action_chunks action tokens, not all H", async () => {
    const c = tinyModel({ horizon: 6 });
    const params = perturbedParams(c, 3);
    const B = 2;
    const base: SamplerConfig = { numSteps: 2, method: "flow_sde", noiseLevel: 0.5, chunk: 2, envDim: 7, jointLogprob: false, detachCritic: true };
    const h = stepHost(base, c.expert_width, [0, 1], [true, false]);
    const n = (k: number) => Float32Array.from({ length: k }, (_, i) => Math.sin(i * 1.7));
    const feeds = {
      images: host(Uint8Array.from({ length: B * c.num_images * c.image_size ** 2 * 3 }, (_, i) => (i * 37) % 256), [B, c.num_images, c.image_size, c.image_size, 3]),
      tokens: host(Int32Array.from({ length: B * c.max_text_len }, (_, i) => i % 5), [B, c.max_text_len]),
      token_mask: host(new Float32Array(B * c.max_text_len).fill(1), [B, c.max_text_len]),
      state: host(n(B * 8), [B, 8]),
      noise: host(n(B * 6 * 7), [B, 6, 7]),
      eps: host(n(2 * B * 6 * 7), [2, B, 6, 7]),
      step_a: host(h.a, [2]), step_b: host(h.b, [2]), step_std: host(h.std, [2]), step_explore: host(h.explore, [2]),
    };
    const run = async (chunkCriticInput: boolean) => (await compile("s", samplerFn(constantPolicy(c, params), { ...base, chunkCriticInput }), "onnx").run(feeds)).value!;
    const [all, chunk] = [await run(false), await run(true)];
    expect(Math.abs(all[0]! - chunk[0]!), `values ${all} (all tokens) vs ${chunk} (first 2)`).toBeGreaterThan(1e-4);
  });

  test("noise_anneal, only_eval, max_epochs, use_fixed_reset_state_ids, task_sampling, val_check_interval and video_cfg on short runs", () => {
    const dir = mkdtempSync(join(tmpdir(), "dexrl-keys-"));
    writeTinyCheckpoint(join(dir, "ckpt"));
    const tiny = [`actor.model.model_path=${join(dir, "ckpt")}`, "actor.model.action_horizon=10", "env.train.total_num_envs=2", "env.train.rollout_epoch=1",
      "env.train.max_steps_per_rollout_epoch=10", "env.train.max_episode_steps=10", "actor.global_batch_size=4", "actor.micro_batch_size=2", "algorithm.update_epoch=1",
      "env.eval.total_num_envs=10", "env.eval.max_episode_steps=10", `env.train.video_cfg.video_base_dir=${join(dir, "video", "train")}`, `env.eval.video_cfg.video_base_dir=${join(dir, "video", "eval")}`];
    // noise_anneal from 0.9 to 0.1 over 2 steps; max_epochs 3 stops before max_steps 5; fresh resets; a val check at step 2.
    const r = dexrl("train", ...tiny, `runner.logger.log_path=${dir}`, "runner.logger.experiment_name=a", "actor.model.noise_anneal=true", "actor.model.noise_params=[0.9,0.1,2]",
      "runner.max_steps=5", "runner.max_epochs=3", "env.train.use_fixed_reset_state_ids=false", "runner.val_check_interval=2", "runner.save_interval=100",
      "env.train.task_sampling=by_failure");
    expect(r.code, r.stderr).toBe(0);
    const s = readScalars(join(dir, "a"));
    const noise = s.get("train/actor/noise_level")!;
    expect([...noise.keys()]).toEqual([1, 2, 3]);
    [0.9, 0.5, 0.1].forEach((want, i) => expect(noise.get(i + 1)!).toBeCloseTo(want, 6));
    expect([...s.get("eval/success_once")!.keys()]).toEqual([2]);
    expect(readdirSync(join(dir, "a", "checkpoints"))).toEqual(["global_step_3"]);
    // task_sampling by_failure keeps its per-task estimate in the trainer state (a resume apportions as the run would have).
    const taskSuccess = JSON.parse(readFileSync(join(dir, "a", "checkpoints", "global_step_3", "trainer_state.json"), "utf8")).task_success;
    expect(taskSuccess).toHaveLength(10);
    for (const p of taskSuccess) expect(p >= 0 && p <= 1).toBe(true);
    expect([...s.get("env/success_once_task_mean")!.keys()]).toEqual([1, 2, 3]);
    // video_cfg.save_video (the seed's default): env 0's rollout episode every global step, the first eval episodes at the val check.
    expect(readdirSync(join(dir, "video", "train")).sort()).toEqual(["global_step_1", "global_step_2", "global_step_3"]);
    for (const step of [1, 2, 3]) expect(readdirSync(join(dir, "video", "train", `global_step_${step}`))).toHaveLength(1);
    expect(readdirSync(join(dir, "video", "eval"))).toEqual(["global_step_2"]);
    expect(readdirSync(join(dir, "video", "eval", "global_step_2")).length).toBeGreaterThan(0);
    // only_eval: evaluates the starting policy and trains nothing.
    const e = dexrl("train", ...tiny, `runner.logger.log_path=${dir}`, "runner.logger.experiment_name=b", "runner.only_eval=true");
    expect(e.code, e.stderr).toBe(0);
    const se = readScalars(join(dir, "b"));
    expect(se.has("eval/success_once")).toBe(true);
    expect(se.has("train/actor/policy_loss")).toBe(false);
    // value_after_vlm from the yaml: the checkpoint's head (on the action tokens) now reads the pooled prefix.
    const v = dexrl("train", ...tiny, `runner.logger.log_path=${dir}`, "runner.logger.experiment_name=c", "actor.model.value_after_vlm=true", "runner.max_steps=1");
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout + v.stderr).toContain("actor.model.value_after_vlm=true makes it read the prefix's pooled output");
    const saved = loadPolicyCheckpoint(join(dir, "c", "checkpoints", "global_step_1"));
    expect(saved.config.value_after_vlm).toBe(true);
    expect(saved.params.get("prefix.final_norm.weight")).toEqual(new Float32Array(saved.config.width).fill(1)); // frozen (train_expert_only)
    expect(readScalars(join(dir, "c")).has("train/critic/explained_variance")).toBe(true);
  }, 240_000);
});
