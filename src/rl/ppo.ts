// PPO fine-tuning of the flow policy on LIBERO-Spatial (RLinf's embodied actor-critic), top to
// bottom: policy, optimizer, envs → per global step: rollouts of chunk-level macro steps → GAE →
// update epochs × minibatches (× micro-batches) → metrics, checkpoints.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import type { Config } from "../config/schema.ts";
import { DexrlError } from "../errors.ts";
import * as op from "../gpu/ops.ts";
import { AdamW } from "../gpu/optim.ts";
import { initEngine } from "../gpu/runtime.ts";
import { scopeAsync, Tensor } from "../gpu/tensor.ts";
import { EventWriter } from "../log/tfevents.ts";
import { normalize } from "../model/normalize.ts";
import { envActions, policyImages } from "../model/observation.ts";
import { OnnxPrefix } from "../model/onnx_prefix.ts";
import { Policy, type PrefixKV } from "../model/policy.ts";
import { loadPolicyCheckpoint, savePolicyCheckpoint, type PolicyCheckpoint } from "../model/policy_checkpoint.ts";
import { PolicyRunner, runnerBackend } from "../model/runner.ts";
import { context, logProbValueAt, type SamplerConfig } from "../model/sampler.ts";
import { createLiberoRenderer, posesOfBatch } from "../render/libero.ts";
import { Rng } from "../sim/math.ts";
import type { EpisodeInfo } from "../sim/protocol.ts";
import { INIT_STATES_PER_TASK, NUM_TASKS } from "../sim/tasks.ts";
import { VecEnv } from "../sim/vec_env.ts";
import { gae, lossMask, normalizeAdvantages } from "./gae.ts";
import { ppoLoss, ratioStats } from "./loss.ts";
import { loadTrainerState, trainerStateFiles } from "./trainer_state.ts";

export interface TrainHooks {
  /** After each global step, with the metrics written to TensorBoard. */
  onStep?: (step: number, metrics: Record<string, number>) => void;
  /** Progress inside a global step ("rollout 3/48", "update 5/24"). */
  onProgress?: (what: string, done: number, total: number) => void;
}

/** One policy call's worth of stored data for every env ([N, …] rows). */
interface Call {
  images: Uint8Array; // [N, V, S, S, 3]
  states: Float32Array; // [N, 8]
  instructions: string[];
  chain: Float32Array; // [N, K+1, H, D]
  stepIndex: number;
  logProb: Float32Array; // [N]
  value: Float32Array; // [N]
}

export async function train(config: Config, runDir: string, hooks: TrainHooks = {}): Promise<void> {
  const m = config.actor.model;
  const envCfg = config.env.train;
  const alg = config.algorithm;
  const optim = config.actor.optim;
  const C = m.num_action_chunks;
  const T = envCfg.max_steps_per_rollout_epoch / C; // macro steps per rollout epoch
  const N = envCfg.total_num_envs;
  if (envCfg.auto_reset) throw new DexrlError("env.train.auto_reset is true; dexrl trains with one episode per env per rollout epoch (RLinf's setting), so set it to false.", 2);
  if (envCfg.use_step_penalty || !envCfg.use_rel_reward)
    throw new DexrlError("dexrl's env reward is +1 at the first success step (use_rel_reward true, use_step_penalty false, RLinf's LIBERO setting); other reward settings are not supported.", 2);

  // ---- policy, sampler, optimizer (from runner.resume_dir when resuming) ----
  const resumeDir = config.runner.resume_dir;
  const resumed = resumeDir ? loadTrainerState(resumeDir) : undefined;
  const ck = loadPolicyCheckpoint(resumeDir ?? m.model_path);
  const pc = ck.config;
  if (pc.horizon !== m.action_horizon) throw new DexrlError(`Checkpoint ${m.model_path} has action horizon ${pc.horizon} but actor.model.action_horizon is ${m.action_horizon}.`, 2);
  if (m.dexbotic.noise_method === "flow_noise" && !pc.add_noise_head)
    throw new DexrlError(`actor.model.dexbotic.noise_method is flow_noise but checkpoint ${m.model_path} has no noise head (add_noise_head).`, 2);
  const gpu = await initEngine();
  const trainExpertOnly = m.dexbotic.train_expert_only;
  const policy = Policy.fromArrays(pc, ck.params, trainExpertOnly);
  const sampler: SamplerConfig = {
    numSteps: m.num_steps,
    method: m.dexbotic.noise_method,
    noiseLevel: m.dexbotic.noise_level,
    chunk: C,
    envDim: m.dexbotic.action_env_dim,
    jointLogprob: m.joint_logprob,
    detachCritic: m.dexbotic.detach_critic_input,
  };
  if (sampler.jointLogprob) throw new DexrlError("actor.model.joint_logprob is true; dexrl's trainer updates with one stochastic step per call (RLinf's Flow-SDE default), so set it to false.", 2);
  const backend = runnerBackend(config.rollout.sampler_backend, config.rollout.prefix_backend, gpu.summary.isSoftware);
  const runner = await PolicyRunner.create({ policy, normStats: ck.normStats, tokenizer: ck.tokenizer, sampler, seed: config.actor.seed, backend, params: ck.params });
  // A frozen prefix is the same on ONNX Runtime; there it is much faster on a software adapter.
  const onnxPrefix = trainExpertOnly && backend !== "webgpu" ? await OnnxPrefix.create(pc, ck.params) : undefined;
  const trainable = [...policy.params].filter(([, t]) => t.requiresGrad);
  const opt = new AdamW(
    [
      { params: trainable.filter(([n]) => !n.startsWith("value_head")), lr: optim.lr },
      { params: trainable.filter(([n]) => n.startsWith("value_head")), lr: optim.value_lr },
    ],
    { betas: [optim.adam_beta1, optim.adam_beta2], eps: optim.adam_eps, weightDecay: optim.weight_decay, maxGradNorm: optim.clip_grad },
  );
  if (resumed) opt.loadState(resumed.optimizer);

  // ---- envs, renderer, logs ----
  const vec = await VecEnv.create({ numEnvs: N, maxEpisodeSteps: envCfg.max_episode_steps, autoReset: false, ignoreTerminations: envCfg.ignore_terminations, seed: envCfg.seed });
  const renderer = await createLiberoRenderer(gpu, pc.image_size, N);
  mkdirSync(join(runDir, "checkpoints"), { recursive: true });
  writeFileSync(join(runDir, "config.yaml"), stringify(config, { lineWidth: 0 }));
  const writer = new EventWriter(runDir);
  // Streams seeded per global step, so a resumed run draws what the uninterrupted one would have.
  const stepRng = (seed: number, step: number) => new Rng((seed ^ Math.imul(step, 0x9e3779b1)) >>> 0);
  const S = pc.image_size;
  const HD = pc.horizon * pc.action_dim;
  const K = m.num_steps;

  try {
    for (let step = (resumed?.globalStep ?? 0) + 1; step <= config.runner.max_steps; step++) {
      const resetRng = stepRng(envCfg.seed ^ 0x2545f491, step);
      const shuffleRng = stepRng(config.actor.seed, step);
      // ---- rollouts: rollout_epoch × T macro steps × N envs ----
      const t0 = performance.now();
      const calls: Call[] = [];
      const b_adv: number[] = [];
      const b_ret: number[] = [];
      const b_idx: [number, number][] = []; // (call, env) of every sample inside its episode
      const episodes: EpisodeInfo[] = [];
      for (let epoch = 0; epoch < envCfg.rollout_epoch; epoch++) {
        const starts = resetStates(envCfg, N, (step - 1) * envCfg.rollout_epoch + epoch, resetRng);
        let obs = await vec.reset(starts.map((s) => Math.floor(s / INIT_STATES_PER_TASK)), starts.map((s) => s % INIT_STATES_PER_TASK));
        const rewards = new Float32Array(T * N);
        const dones = new Uint8Array(T * N);
        const values = new Float32Array((T + 1) * N);
        const first = calls.length;
        for (let t = 0; t <= T; t++) {
          const images = policyImages(await renderer.render(posesOfBatch(obs, N)), N, pc.num_images, S);
          const act = await runner.act({ images, instructions: obs.instructions, states: obs.states }, true);
          values.set(act.value, t * N);
          if (t === T) break; // the last call only bootstraps the value
          calls.push({ images, states: obs.states, instructions: obs.instructions, chain: act.chain, stepIndex: act.stepIndex, logProb: act.logProb, value: act.value });
          const res = await vec.step(envActions(act.actions, N, C, sampler.envDim), C);
          for (let n = 0; n < N; n++) {
            for (let c = 0; c < C; c++) {
              rewards[t * N + n] += envCfg.reward_coef * res.rewards[n * C + c]!; // chunk-level reward: the sum over the chunk
              if (res.terminations[n * C + c] || res.truncations[n * C + c]) dones[t * N + n] = 1;
            }
          }
          episodes.push(...res.episodes);
          obs = res.obs;
          hooks.onProgress?.("rollout", epoch * T + t + 1, envCfg.rollout_epoch * T);
        }
        const { advantages, returns } = gae(rewards, dones, values, T, N, alg.gamma, alg.gae_lambda);
        const mask = lossMask(dones, T, N);
        const adv = alg.normalize_advantages ? normalizeAdvantages(advantages, mask) : advantages;
        for (let t = 0; t < T; t++)
          for (let n = 0; n < N; n++)
            if (mask[t * N + n]) {
              b_idx.push([first + t, n]);
              b_adv.push(adv[t * N + n]!);
              b_ret.push(returns[t * N + n]!);
            }
      }
      const rolloutSeconds = (performance.now() - t0) / 1000;

      // ---- update: update_epoch × minibatches of global_batch_size, accumulated over micro-batches ----
      const t1 = performance.now();
      const order = shuffle(b_idx.length, shuffleRng); // shuffled once, reused by every epoch (RLinf)
      const mbSize = Math.min(config.actor.global_batch_size, b_idx.length);
      const microSize = Math.min(config.actor.micro_batch_size, mbSize);
      const minibatches = Math.floor(b_idx.length / mbSize);
      const criticOnly = step <= optim.critic_warmup_steps;
      const sums = { policy: 0, value: 0, kl: 0, entropy: 0, clip: 0, ratio: 0, gradNorm: 0, micro: 0, updates: 0 };
      for (let epoch = 0; epoch < alg.update_epoch; epoch++) {
        for (let mb = 0; mb < minibatches; mb++) {
          for (let start = mb * mbSize; start < (mb + 1) * mbSize; start += microSize) {
            const ids = order.slice(start, Math.min(start + microSize, (mb + 1) * mbSize)).map((i) => b_idx[i]!);
            const B = ids.length;
            const gather = <A extends Float32Array | Uint8Array>(pick: (call: Call) => A, per: number, make: (n: number) => A) => {
              const out = make(B * per);
              ids.forEach(([ci, n], b) => out.set(pick(calls[ci]!).subarray(n * per, (n + 1) * per), b * per));
              return out;
            };
            const images = gather((c) => c.images, pc.num_images * S * S * 3, (k) => new Uint8Array(k));
            const states = normalize(gather((c) => c.states, pc.state_dim, (k) => new Float32Array(k)), ck.normStats.state);
            const chains = gather((c) => c.chain, (K + 1) * HD, (k) => new Float32Array(k));
            const stepsIdx = ids.map(([ci]) => calls[ci]!.stepIndex);
            const xs = new Float32Array(B * HD);
            const xNext = new Float32Array(B * HD);
            stepsIdx.forEach((k, b) => {
              xs.set(chains.subarray((b * (K + 1) + k) * HD, (b * (K + 1) + k + 1) * HD), b * HD);
              xNext.set(chains.subarray((b * (K + 1) + k + 1) * HD, (b * (K + 1) + k + 2) * HD), b * HD);
            });
            const { ids: tok, mask: tokMask } = runner.tokens(ids.map(([ci, n]) => calls[ci]!.instructions[n]!));
            const idsF = (f: (c: Call, n: number) => number) => Float32Array.from(ids, ([ci, n]) => f(calls[ci]!, n));
            const prefixOnnx: PrefixKV | undefined = onnxPrefix ? await onnxPrefix.embedPrefix(images, tok, tokMask, B) : undefined;
            const stats = await scopeAsync(async () => {
              const prefix =
                prefixOnnx ??
                (trainExpertOnly
                  ? op.noGrad(() => policy.embedPrefix(Tensor.from(images, [B, pc.num_images, S, S, 3], "u8"), Tensor.from(tok, [B, pc.max_text_len], "i32"), tokMask))
                  : policy.embedPrefix(Tensor.from(images, [B, pc.num_images, S, S, 3], "u8"), Tensor.from(tok, [B, pc.max_text_len], "i32"), tokMask));
              const ctx = context(policy, prefix, Tensor.from(states, [B, pc.state_dim]));
              const out = logProbValueAt(policy, ctx, sampler, Tensor.from(xs, [B, pc.horizon, pc.action_dim]), Tensor.from(xNext, [B, pc.horizon, pc.action_dim]), stepsIdx);
              const data = (a: Float32Array) => Tensor.from(a, [B]);
              const l = ppoLoss(
                {
                  ...out,
                  oldLogProb: data(idsF((c, n) => c.logProb[n]!)),
                  oldValue: data(idsF((c, n) => c.value[n]!)),
                  advantages: data(Float32Array.from(ids, (_, b) => b_adv[order[start + b]!]!)),
                  returns: data(Float32Array.from(ids, (_, b) => b_ret[order[start + b]!]!)),
                  mask: data(new Float32Array(B).fill(1)),
                },
                { clipRatioLow: alg.clip_ratio_low, clipRatioHigh: alg.clip_ratio_high, valueClip: alg.value_clip, huberDelta: alg.huber_delta, entropyBonus: alg.entropy_bonus },
              );
              // Micro-batches accumulate gradients of their share of the minibatch mean.
              op.backward(op.scale(criticOnly ? l.valueLoss : l.loss, B / mbSize));
              return { policy: await l.policyLoss.item(), value: await l.valueLoss.item(), kl: await l.approxKl.item(), entropy: await l.entropy.item(), ratio: await l.ratio.read() };
            });
            if (prefixOnnx) for (const t of [...prefixOnnx.k, ...prefixOnnx.v, prefixOnnx.keyBias]) t.dispose();
            const rs = ratioStats(stats.ratio, new Float32Array(B).fill(1), alg.clip_ratio_low, alg.clip_ratio_high);
            sums.policy += stats.policy;
            sums.value += stats.value;
            sums.kl += stats.kl;
            sums.entropy += stats.entropy;
            sums.clip += rs.clipFraction;
            sums.ratio += rs.meanRatio;
            sums.micro++;
          }
          opt.update();
          sums.gradNorm += await opt.gradNorm();
          sums.updates++;
          opt.zeroGrad();
          hooks.onProgress?.("update", epoch * minibatches + mb + 1, alg.update_epoch * minibatches);
        }
      }
      await runner.syncWeights();
      const updateSeconds = (performance.now() - t1) / 1000;

      // ---- metrics (RLinf's names) and checkpoints ----
      const mean = (f: (e: EpisodeInfo) => number) => (episodes.length ? episodes.reduce((s, e) => s + f(e), 0) / episodes.length : 0);
      const per = (x: number, n: number) => (n ? x / n : 0);
      const metrics: Record<string, number> = {
        "train/actor/policy_loss": per(sums.policy, sums.micro),
        "train/critic/value_loss": per(sums.value, sums.micro),
        "train/actor/approx_kl": per(sums.kl, sums.micro),
        "train/actor/clip_fraction": per(sums.clip, sums.micro),
        "train/actor/ratio": per(sums.ratio, sums.micro),
        "train/actor/entropy": per(sums.entropy, sums.micro),
        "train/actor/grad_norm": per(sums.gradNorm, sums.updates),
        "train/samples": b_idx.length,
        "env/success_once": mean((e) => +e.successOnce),
        "env/episode_len": mean((e) => e.episodeLen),
        "env/return": mean((e) => e.return),
        "env/episodes": episodes.length,
        "time/rollout_s": rolloutSeconds,
        "time/update_s": updateSeconds,
      };
      writer.addScalars(step, metrics);
      hooks.onStep?.(step, metrics);
      const save = config.runner.save_interval > 0 && step % config.runner.save_interval === 0;
      if (save || step === config.runner.max_steps) {
        const extra = trainerStateFiles({ globalStep: step, optimizer: await opt.state() });
        await saveCheckpoint(policy, ck, join(runDir, "checkpoints", `global_step_${step}`), extra);
      }
    }
  } finally {
    writer.close();
    await vec.close();
    await runner.release();
    await onnxPrefix?.release();
  }
}

/**
 * Fixed initial states (task · 50 + init) for the N envs of a rollout epoch: all the same with
 * specific_reset_id, consecutive with use_ordered_reset_state_ids, otherwise drawn at random.
 */
function resetStates(e: Config["env"]["train"], N: number, epochIndex: number, rng: Rng): number[] {
  const total = NUM_TASKS * INIT_STATES_PER_TASK;
  if (e.specific_reset_id !== null) return Array.from({ length: N }, (_, n) => (n % NUM_TASKS) * INIT_STATES_PER_TASK + e.specific_reset_id!);
  if (e.use_ordered_reset_state_ids) return Array.from({ length: N }, (_, n) => (epochIndex * N + n) % total);
  return Array.from({ length: N }, () => Math.floor(rng.next() * total));
}

/** A Fisher–Yates permutation of 0…n−1. */
function shuffle(n: number, rng: Rng): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** The policy's current weights as a checkpoint with the original's config, stats and tokenizer, written atomically with `extra`. */
async function saveCheckpoint(policy: Policy, ck: PolicyCheckpoint, dir: string, extra: Record<string, Uint8Array | string>): Promise<void> {
  const params = new Map<string, Float32Array>();
  for (const [name, t] of policy.params) params.set(name, await t.read());
  savePolicyCheckpoint(dir, { ...ck, params }, extra);
}

