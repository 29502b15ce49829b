// PPO fine-tuning of the flow policy on LIBERO-Spatial (RLinf's embodied actor-critic), top to
// bottom like CleanRL: config → policy, learner, envs → storage [E, T, N, …] → per global step:
// rollouts of chunk-level macro steps → GAE → the frozen prefix once per observation → update
// epochs × minibatches (× micro-batches) → metrics, evaluation, checkpoints. The backend (WebGPU
// or ONNX Runtime) is chosen before the algorithm starts and is invisible inside it.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import type { Config } from "../config/schema.ts";
import { DexrlError } from "../errors.ts";
import { type Backend, compile, type Feeds, host } from "../engine/compile.ts";
import { Learner } from "../engine/learner.ts";
import { initEngine } from "../engine/runtime.ts";
import { EventWriter, purgeNotice } from "../log/tfevents.ts";
import { evalMetrics } from "../eval/evaluate.ts";
import { dims, parameterShapes } from "../model/config.ts";
import { normalize } from "../model/normalize.ts";
import { envActions, policyImages } from "../model/observation.ts";
import { loadPolicyCheckpoint, savePolicyCheckpoint, withValueInput } from "../model/policy_checkpoint.ts";
import { constantPolicy, ppoFn, prefixFn, trainableNames } from "../model/programs.ts";
import { PolicyRunner, resolveBackend, tokenize } from "../model/runner.ts";
import { stepHost, type SamplerConfig } from "../model/sampler.ts";
import { createLiberoRenderer, EnvViews } from "../render/libero.ts";
import { captionedFrame, EpisodeGif } from "../render/video.ts";
import { Rng } from "../util/random.ts";
import type { EpisodeInfo } from "../sim/protocol.ts";
import { INIT_STATES_PER_TASK, NUM_TASKS } from "../sim/tasks.ts";
import { envSeed, VecEnv } from "../sim/vec_env.ts";
import { gae, lossMask, normalizeAdvantages } from "./gae.ts";
import { ratioStats } from "./loss.ts";
import { apportion, dealTasks, taskSuccessRates } from "./task_sampling.ts";
import { checkTrainedParameters, loadTrainerState, trainerStateFiles, writeRunConfig } from "./trainer_state.ts";

export interface TrainHooks {
  /** After each global step, with the metrics written to TensorBoard. */
  onStep?: (step: number, metrics: Record<string, number>) => void;
  /** Progress inside a global step ("rollout 3/48", "update 5/24"). */
  onProgress?: (what: string, done: number, total: number) => void;
  /** Set by a signal handler: the run stops after the current global step, with a checkpoint. */
  stopRequested?: () => boolean;
  /** A sentence for the user (what resuming changed in the run folder). */
  onNotice?: (line: string) => void;
}

/** The most memory the stored prefix outputs of a global step may take. */
const PREFIX_BYTES = 2 ** 32;

/** The training stream PPO's fresh resets come from (dexrl collect uses small seeds for demonstrations). */
const TRAINING_STREAM = 1_000_000;

/** Seeds a stream per (seed, global step), so a resumed run draws what the uninterrupted one would have. */
const stepRng = (seed: number, step: number) => new Rng((seed ^ Math.imul(step, 0x9e3779b1)) >>> 0);

export async function train(config: Config, runDir: string, hooks: TrainHooks = {}): Promise<{ lastStep: number; stopped: boolean }> {
  // ---- configuration ----
  const m = config.actor.model;
  const envCfg = config.env.train;
  const alg = config.algorithm;
  const optim = config.actor.optim;
  const C = m.num_action_chunks; // actions executed per policy call
  const T = envCfg.max_steps_per_rollout_epoch / C; // macro steps per rollout epoch
  const N = envCfg.total_num_envs;
  const E = envCfg.rollout_epoch;
  const K = m.num_steps;
  const slots = E * T * N; // every (epoch, macro step, env) slot, masked ones included (RLinf)
  const mbSize = config.actor.global_batch_size;
  const microSize = Math.min(config.actor.micro_batch_size, mbSize);
  if (slots % mbSize) throw new DexrlError(`actor.global_batch_size ${mbSize} must divide the ${slots} samples of a global step (env.train.rollout_epoch × max_steps_per_rollout_epoch / num_action_chunks × total_num_envs = ${E} × ${T} × ${N}).`, 2);
  if (mbSize % microSize) throw new DexrlError(`actor.micro_batch_size ${microSize} must divide actor.global_batch_size ${mbSize}.`, 2);
  const minibatches = slots / mbSize;

  // ---- policy, learner, rollout sampler (from runner.resume_dir when resuming) ----
  const resumeDir = config.runner.resume_dir;
  const resumed = resumeDir ? loadTrainerState(resumeDir) : undefined;
  const loaded = loadPolicyCheckpoint(resumeDir ?? m.model_path);
  // actor.model.value_after_vlm decides what the critic reads (RLinf builds its value head from the yaml).
  if (loaded.config.value_after_vlm !== m.value_after_vlm)
    hooks.onNotice?.(`The value head of ${m.model_path} reads ${loaded.config.value_after_vlm ? "the prefix" : "the action tokens"}; actor.model.value_after_vlm=${m.value_after_vlm} makes it read ${m.value_after_vlm ? "the prefix's pooled output" : "the action tokens"} (the head's weights stay where the width matches, the prefix's final norm starts at 1)`);
  const hidden = m.value_hidden_sizes ?? undefined;
  if (hidden && String(hidden) !== String(loaded.config.value_hidden ?? []))
    hooks.onNotice?.(`The value head of ${m.model_path} has hidden layers [${loaded.config.value_hidden ?? []}]; actor.model.value_hidden_sizes=[${hidden}] gives it new ones (freshly initialised; the critic warm-up fits them)`);
  const initRng = new Rng(config.actor.seed);
  const ck = withValueInput(loaded, m.value_after_vlm, hidden, () => initRng.normal());
  const pc = ck.config;
  if (pc.horizon !== m.action_horizon) throw new DexrlError(`Checkpoint ${m.model_path} has action horizon ${pc.horizon} but actor.model.action_horizon is ${m.action_horizon}.`, 2);
  if (m.dexbotic.noise_method === "flow_noise" && !pc.add_noise_head)
    throw new DexrlError(`actor.model.dexbotic.noise_method is flow_noise but checkpoint ${m.model_path} has no noise head (add_noise_head).`, 2);
  if (!pc.add_value_head || !m.add_value_head) throw new DexrlError(`Checkpoint ${m.model_path} has no value head (add_value_head), or actor.model.add_value_head is false; the actor-critic loss needs one.`, 2);
  if (pc.num_images !== m.dexbotic.num_images_in_input)
    throw new DexrlError(`Checkpoint ${m.model_path} takes ${pc.num_images} camera views but actor.model.dexbotic.num_images_in_input is ${m.dexbotic.num_images_in_input}.`, 2);
  const gpu = await initEngine();
  const trainExpertOnly = m.dexbotic.train_expert_only;
  const sampler: SamplerConfig = {
    numSteps: K,
    method: m.dexbotic.noise_method,
    noiseLevel: m.dexbotic.noise_level,
    chunk: C,
    envDim: m.dexbotic.action_env_dim,
    jointLogprob: m.joint_logprob,
    detachCritic: m.dexbotic.detach_critic_input,
    chunkCriticInput: m.chunk_critic_input,
  };
  const trainBackend: Backend = resolveBackend(config.actor.training_backend === "fsdp" ? "auto" : config.actor.training_backend, gpu.summary.isSoftware);
  const rolloutBackend: Backend = resolveBackend(config.rollout.sampler_backend, gpu.summary.isSoftware);
  const names = trainableNames(pc, trainExpertOnly);
  const learner = new Learner(
    trainBackend,
    ck.params,
    parameterShapes(pc),
    [
      { names: names.filter((n) => !n.startsWith("value_head")), lr: optim.lr },
      { names: names.filter((n) => n.startsWith("value_head")), lr: optim.value_lr },
    ],
    { betas: [optim.adam_beta1, optim.adam_beta2], eps: optim.adam_eps, weightDecay: optim.weight_decay, maxGradNorm: optim.clip_grad },
  );
  if (resumed) checkTrainedParameters(resumed.optimizer, names, resumeDir!, `actor.model.dexbotic.train_expert_only=${trainExpertOnly}`);
  if (resumed) learner.loadState(resumed.optimizer);
  // A frozen prefix (train_expert_only) is stored per observation as the rollout computes it, when it
  // fits in PREFIX_BYTES (the seed's 24,576 samples would need ~6 GB at the default size); otherwise
  // each micro-batch computes its own, once per update epoch.
  const d = dims(pc);
  const prefixFloats = pc.depth * 2 * pc.heads * d.prefixLen * pc.head_dim + d.prefixLen + (pc.value_after_vlm ? pc.width : 0);
  const storePrefix = trainExpertOnly && slots * prefixFloats * 4 <= PREFIX_BYTES;
  const runner = PolicyRunner.create({ config: pc, params: learner.params, normStats: ck.normStats, tokenizer: ck.tokenizer, sampler, seed: config.actor.seed, backend: rolloutBackend, withPrefix: storePrefix });
  const prefixProgram = trainExpertOnly && !storePrefix ? compile("dexrl_prefix", prefixFn(constantPolicy(pc, ck.params)), trainBackend, { spin: true }) : undefined;
  const settings = { clipRatioLow: alg.clip_ratio_low, clipRatioHigh: alg.clip_ratio_high, valueClip: alg.value_clip, huberDelta: alg.huber_delta, entropyBonus: alg.entropy_bonus };
  const update = compile("dexrl_ppo", ppoFn(pc, sampler, settings, false), trainBackend, { spin: true });
  const warmup = compile("dexrl_ppo_critic", ppoFn(pc, sampler, settings, true), trainBackend, { spin: true });

  // RLinf draws rollout resets from the fixed initial states (use_fixed_reset_state_ids); false draws
  // fresh ones from a training stream: index i is task i mod 10, state ⌊i/10⌋ of that task's stream.
  const fixedStarts = envCfg.use_fixed_reset_state_ids || envCfg.specific_reset_id !== null;
  // env.train.task_sampling by_failure: the per-task success estimate that apportions the next step's envs.
  const byFailure = envCfg.task_sampling === "by_failure";
  let taskSuccess: number[] | null = resumed?.taskSuccess ?? null;

  // ---- envs, renderer, logs ----
  const vec = await VecEnv.create({ numEnvs: N, maxEpisodeSteps: envCfg.max_episode_steps, autoReset: false, ignoreTerminations: envCfg.ignore_terminations, seed: envCfg.seed });
  const views = new EnvViews(await createLiberoRenderer(gpu, pc.image_size, N), N);
  mkdirSync(join(runDir, "checkpoints"), { recursive: true });
  writeRunConfig(runDir, stringify(config, { lineWidth: 0 }), resumed?.globalStep);
  // Steps the interrupted run logged after the checkpoint it resumes from are dropped (TensorBoard's purge_step).
  const writer = new EventWriter(runDir, resumed ? { purgeStep: resumed.globalStep + 1 } : {});
  for (const p of writer.purged) hooks.onNotice?.(purgeNotice(p));
  const S = pc.image_size;
  const HD = pc.horizon * pc.action_dim;
  const IMG = pc.num_images * S * S * 3;
  const P = sampler.jointLogprob ? K + 1 : 2; // stored points per sample: x_s and x_{s+1}, or the whole chain

  // ---- storage: [E, T, N, …] flattened; b_ arrays index slot = (e·T + t)·N + n ----
  const b_images = new Uint8Array(slots * IMG);
  const b_states = new Float32Array(slots * pc.state_dim);
  const b_instr: string[] = new Array(slots);
  const b_chain = new Float32Array(slots * (K + 1) * HD);
  const b_step = new Int32Array(E * T); // stochastic step of each policy call
  const b_logprob = new Float32Array(slots);
  const b_values = new Float32Array(slots);
  const b_rewards = new Float32Array(slots);
  const b_dones = new Uint8Array(slots);
  const b_bootstrap = new Float32Array(E * N);
  const b_prefix: Record<string, Float32Array> = {}; // storePrefix: prefixFn's outputs per slot, allocated at the first call

  /** The ODE policy on the fixed initial states (env.eval.total_num_envs / 10 per task, up to all 500), as eval/* metrics. */
  const validate = (at: number) => {
    const ev = config.env.eval;
    const trials = Math.max(1, Math.min(INIT_STATES_PER_TASK, Math.floor(ev.total_num_envs / NUM_TASKS)));
    const videos = ev.video_cfg.save_video ? { count: 2, dir: join(ev.video_cfg.video_base_dir, `global_step_${at}`) } : undefined;
    return evalMetrics(gpu, config, ck, learner.params, trials, videos);
  };

  // One embodied epoch is one global step in RLinf, so max_epochs caps the steps as max_steps does.
  const maxSteps = Math.min(config.runner.max_steps, config.runner.max_epochs);
  let step = (resumed?.globalStep ?? 0) + 1;
  let stopped = false;
  if (config.runner.only_eval) {
    // RLinf's only_eval: evaluate the starting policy on the fixed initial states and stop.
    const metrics = await validate(step);
    writer.addScalars(step - 1, metrics);
    hooks.onStep?.(step - 1, metrics);
    step = maxSteps + 1;
  }
  try {
    for (; step <= maxSteps; step++) {
      const resetRng = stepRng(envCfg.seed ^ 0x2545f491, step);
      const shuffleRng = stepRng(config.actor.seed, step);
      runner.reseed((config.actor.seed ^ Math.imul(step, 0x85ebca6b)) >>> 0);
      // noise_anneal: flow-SDE's noise level goes linearly from noise_params[0] to [1] over [2] global steps.
      if (m.noise_anneal) {
        const [start, end, span] = m.noise_params as [number, number, number];
        sampler.noiseLevel = start + (end - start) * Math.min(1, (step - 1) / Math.max(1, span));
      }

      // ---- rollouts: E rollout epochs × T macro steps × N envs ----
      const t0 = performance.now();
      const episodes: EpisodeInfo[] = [];
      // by_failure (after a step has measured the tasks): env n runs tasks[n], state `starts[n]` of that task's stream (unique per slot).
      const tasks = byFailure && taskSuccess ? dealTasks(apportion(taskSuccess, N)) : undefined;
      for (let e = 0; e < E; e++) {
        const starts = fixedStarts ? resetStates(envCfg, N, (step - 1) * E + e, resetRng) : Array.from({ length: N }, (_, n) => ((step - 1) * E + e) * N + n);
        // Each env's streams (fixture placement) restart per rollout epoch: a resumed run places what the uninterrupted one did.
        const envSeeds = Array.from({ length: N }, (_, n) => envSeed((envCfg.seed ^ Math.imul((step - 1) * E + e + 1, 0x27d4eb2f)) >>> 0, n));
        let obs = fixedStarts
          ? await vec.reset(starts.map((s) => Math.floor(s / INIT_STATES_PER_TASK)), starts.map((s) => s % INIT_STATES_PER_TASK), envSeeds)
          : // Fresh initial states drawn like the fixed ones, never one of them: evaluation stays on states the policy never trained on.
            tasks
            ? await vec.reset(tasks, starts, envSeeds, TRAINING_STREAM + envCfg.seed)
            : await vec.reset(starts.map((s) => s % NUM_TASKS), starts.map((s) => Math.floor(s / NUM_TASKS)), envSeeds, TRAINING_STREAM + envCfg.seed);
        // env.train.video_cfg: env 0's episode of the first rollout epoch, one frame per policy call.
        const gif = e === 0 && envCfg.video_cfg.save_video ? new EpisodeGif(20 / C) : undefined;
        let executed: Int32Array | undefined; // undefined after the reset: every env is drawn
        for (let t = 0; t <= T; t++) {
          const frames = await views.update(obs, executed); // [N, 2, S, S, 3]
          if (gif && !gif.done) gif.add(captionedFrame(frames.subarray(0, 2 * S * S * 3), 2, S, S, obs.instructions[0]!, `global step ${step}, step ${obs.elapsed[0]}`));
          const images = policyImages(frames, N, pc.num_images, S);
          const act = await runner.act({ images, instructions: obs.instructions, states: obs.states }, true);
          if (t === T) {
            b_bootstrap.set(act.value, e * N); // the last call only bootstraps the value
            break;
          }
          const base = (e * T + t) * N;
          b_images.set(images, base * IMG);
          b_states.set(obs.states, base * pc.state_dim);
          obs.instructions.forEach((s, n) => (b_instr[base + n] = s));
          b_chain.set(act.chain, base * (K + 1) * HD);
          b_step[e * T + t] = act.stepIndex;
          b_logprob.set(act.logProb, base);
          b_values.set(act.value, base);
          for (const [k, v] of Object.entries(act.prefix ?? {})) (b_prefix[k] ??= new Float32Array(slots * (v.length / N))).set(v, base * (v.length / N));
          const res = await vec.step(envActions(act.actions, N, C, sampler.envDim), C);
          for (let n = 0; n < N; n++) {
            let r = 0;
            let done = 0;
            for (let c = 0; c < C; c++) {
              r += envCfg.reward_coef * res.rewards[n * C + c]!; // chunk-level reward: the sum over the chunk
              if (res.terminations[n * C + c] || res.truncations[n * C + c]) done = 1;
            }
            b_rewards[base + n] = r;
            b_dones[base + n] = done;
          }
          episodes.push(...res.episodes);
          const first = res.episodes.find((x) => x.env === 0);
          if (gif && first && !gif.done) gif.save(join(envCfg.video_cfg.video_base_dir, `global_step_${step}`, `task${first.task}_${first.successOnce ? "success" : "failure"}.gif`));
          obs = res.obs;
          executed = res.executed;
          hooks.onProgress?.("rollout", e * T + t + 1, E * T);
        }
      }
      const rolloutSeconds = (performance.now() - t0) / 1000;

      // ---- GAE per rollout epoch; advantages normalised over all epochs; masked_mean_ratio weights ----
      const b_adv = new Float32Array(slots);
      const b_ret = new Float32Array(slots);
      const b_mask = new Float32Array(slots);
      const b_weight = new Float32Array(slots);
      for (let e = 0; e < E; e++) {
        const span = [e * T * N, (e + 1) * T * N] as const;
        const values = new Float32Array((T + 1) * N);
        values.set(b_values.subarray(...span));
        values.set(b_bootstrap.subarray(e * N, (e + 1) * N), T * N);
        const dones = b_dones.subarray(...span);
        const { advantages, returns } = gae(b_rewards.subarray(...span), dones, values, T, N, alg.gamma, alg.gae_lambda);
        const mask = lossMask(dones, T, N);
        b_adv.set(advantages, span[0]);
        b_ret.set(returns, span[0]);
        b_mask.set(mask, span[0]);
        for (let n = 0; n < N; n++) {
          let valid = 0;
          for (let t = 0; t < T; t++) valid += mask[t * N + n]!;
          // RLinf: loss_mask_ratio = (valid chunks · C) / max_episode_steps; each slot is divided by it.
          const w = valid ? envCfg.max_episode_steps / (valid * C) : 0;
          for (let t = 0; t < T; t++) b_weight[span[0] + t * N + n] = mask[t * N + n]! * w;
        }
      }
      if (alg.normalize_advantages) b_adv.set(normalizeAdvantages(b_adv, b_mask));

      // ---- minibatches: shuffled once and reused by every epoch (RLinf), so each minibatch's micro-batches are fixed for the step ----
      const t1 = performance.now();
      const prefixShape = (k: string) => (k === "key_bias" ? [1, 1, d.prefixLen] : k === "pooled" ? [pc.width] : [pc.heads, d.prefixLen, pc.head_dim]);
      const order = shuffle(slots, shuffleRng);
      const microBatches = Array.from({ length: minibatches }, (_, mb) => packMinibatch(order.slice(mb * mbSize, (mb + 1) * mbSize), b_weight, microSize));

      /** Program inputs of the slots `idx`: stored prefix (or images), points, step inputs, PPO data. */
      const microBatchFeeds = async (idx: number[]): Promise<Feeds> => {
        const B = idx.length;
        const call = (i: number) => Math.floor(i / N); // (e·T + t)
        const f: Feeds = {};
        const images = () => {
          const out = new Uint8Array(B * IMG);
          idx.forEach((i, b) => out.set(b_images.subarray(i * IMG, (i + 1) * IMG), b * IMG));
          return out;
        };
        if (storePrefix) {
          for (const [k, v] of Object.entries(b_prefix)) {
            const per = v.length / slots;
            const out = new Float32Array(B * per);
            idx.forEach((i, b) => out.set(v.subarray(i * per, (i + 1) * per), b * per));
            f[k] = host(out, [B, ...prefixShape(k)]);
          }
        } else if (prefixProgram) {
          const { ids, mask } = tokenize(ck.tokenizer, idx.map((i) => b_instr[i]!));
          const r = await prefixProgram.run({ images: host(images(), [B, pc.num_images, S, S, 3]), tokens: host(ids, [B, pc.max_text_len]), token_mask: host(mask, [B, pc.max_text_len]) });
          for (const [k, v] of Object.entries(r)) f[k] = host(v, [B, ...prefixShape(k)]);
        } else {
          const { ids, mask } = tokenize(ck.tokenizer, idx.map((i) => b_instr[i]!));
          f.images = host(images(), [B, pc.num_images, S, S, 3]);
          f.tokens = host(ids, [B, pc.max_text_len]);
          f.token_mask = host(mask, [B, pc.max_text_len]);
        }
        const states = new Float32Array(B * pc.state_dim);
        idx.forEach((i, b) => states.set(b_states.subarray(i * pc.state_dim, (i + 1) * pc.state_dim), b * pc.state_dim));
        f.state = host(normalize(states, ck.normStats.state), [B, pc.state_dim]);
        // Points x_s, x_{s+1} at each sample's stochastic step (or the whole chain when joint).
        const points = new Float32Array(B * P * HD);
        const stepsOf = (i: number) => (sampler.jointLogprob ? Array.from({ length: K }, (_, j) => j) : [b_step[call(i)]!]);
        idx.forEach((i, b) => {
          const first = sampler.jointLogprob ? 0 : b_step[call(i)]!;
          points.set(b_chain.subarray((i * (K + 1) + first) * HD, (i * (K + 1) + first + P) * HD), b * P * HD);
        });
        f.points = host(points, [B, P, pc.horizon, pc.action_dim]);
        // Step inputs: step j of example b at j·B + b.
        const jSteps: number[] = [];
        for (let j = 0; j < P - 1; j++) idx.forEach((i) => jSteps.push(stepsOf(i)[j]!));
        const h = stepHost(sampler, pc.expert_width, jSteps, jSteps.map(() => true));
        const col = (x: Float32Array) => host(x, [jSteps.length, 1, 1]);
        Object.assign(f, { step_temb: host(h.temb, [jSteps.length, pc.expert_width]), step_a: col(h.a), step_b: col(h.b), step_std: col(h.std), step_explore: col(h.explore) });
        const pick = (a: Float32Array) => host(Float32Array.from(idx, (i) => a[i]!), [B]);
        Object.assign(f, { old_log_prob: pick(b_logprob), old_value: pick(b_values), advantages: pick(b_adv), returns: pick(b_ret), weight: pick(b_weight) });
        return f;
      };

      // ---- update: update_epoch × minibatches of global_batch_size slots, accumulated over micro-batches ----
      const sums = { policy: 0, value: 0, entropy: 0, loss: 0, gradNorm: 0, updates: 0 };
      const ratioAll = new Float32Array(slots);
      const valueAll = new Float32Array(slots);
      for (let epoch = 0; epoch < alg.update_epoch; epoch++) {
        for (let mb = 0; mb < minibatches; mb++) {
          const criticOnly = learner.step < optim.critic_warmup_steps; // counted in optimizer steps
          for (const mb_idx of microBatches[mb]!) {
            const feeds = await microBatchFeeds(mb_idx);
            // Each micro-batch's loss is its sum over microSize slots: its share of the minibatch's mean.
            const share = microSize / mbSize;
            const out = await learner.accumulate(criticOnly ? warmup : update, feeds, share);
            sums.policy += share * out.policy_loss![0]!;
            sums.value += share * out.value_loss![0]!;
            sums.entropy += share * out.entropy![0]!;
            sums.loss += share * out.loss![0]!;
            if (epoch === alg.update_epoch - 1) mb_idx.forEach((i, b) => ((ratioAll[i] = out.ratio![b]!), (valueAll[i] = out.value![b]!)));
          }
          const norm = await learner.update();
          if (!Number.isFinite(norm) || !Number.isFinite(sums.loss))
            throw new DexrlError(`Training diverged at global step ${step}, optimizer step ${learner.step}: the ${Number.isFinite(norm) ? "loss" : "gradient norm"} is not finite (lr ${optim.lr}); the last good checkpoint is kept.`, 1);
          sums.gradNorm += norm;
          sums.updates++;
          hooks.onProgress?.("update", epoch * minibatches + mb + 1, alg.update_epoch * minibatches);
        }
      }
      for (const [name, p] of learner.params)
        if (!p.every(Number.isFinite)) throw new DexrlError(`Training diverged at global step ${step}: parameter ${name} is not finite; the last good checkpoint is kept.`, 1);
      await runner.syncWeights(learner.params);
      const updateSeconds = (performance.now() - t1) / 1000;

      const stepTaskSuccess = taskSuccessRates(episodes, NUM_TASKS, null);
      if (byFailure) taskSuccess = taskSuccessRates(episodes, NUM_TASKS, taskSuccess);

      // ---- metrics (RLinf's names) ----
      const masked = (a: Float32Array) => Array.from(a).filter((_, i) => b_mask[i]);
      const rs = ratioStats(ratioAll, b_adv, b_mask, alg.clip_ratio_low, alg.clip_ratio_high);
      const adv = masked(b_adv);
      const ret = masked(b_ret);
      const mean = (xs: number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : 0);
      const epMean = (f: (e: EpisodeInfo) => number) => mean(episodes.map(f));
      const per = (x: number, n: number) => (n ? x / n : 0);
      const metrics: Record<string, number> = {
        "train/actor/policy_loss": per(sums.policy, sums.updates),
        "train/actor/policy_loss_abs": Math.abs(per(sums.policy, sums.updates)),
        "train/actor/total_loss": per(sums.loss, sums.updates),
        "train/actor/entropy_loss": per(sums.entropy, sums.updates),
        "train/actor/approx_kl": rs.approxKl,
        "train/actor/clip_fraction": rs.clipFraction,
        "train/actor/ratio": rs.meanRatio,
        "train/actor/ratio_abs": rs.ratioAbs,
        "train/actor/clipped_ratio": rs.clippedRatio,
        "train/actor/grad_norm": per(sums.gradNorm, sums.updates),
        "train/actor/lr": optim.lr,
        "train/actor/noise_level": sampler.noiseLevel,
        "train/critic/value_loss": per(sums.value, sums.updates),
        "train/critic/explained_variance": explainedVariance(ret, masked(b_values)),
        "train/critic/value_clip_ratio": valueClipRatio(valueAll, b_values, b_ret, b_mask, alg.value_clip, alg.huber_delta),
        "train/critic/lr": optim.value_lr,
        "rollout/rewards": mean(masked(b_rewards)),
        "rollout/advantages_mean": mean(adv),
        "rollout/advantages_max": extreme(adv, Math.max),
        "rollout/advantages_min": extreme(adv, Math.min),
        "rollout/returns_mean": mean(ret),
        "rollout/returns_max": extreme(ret, Math.max),
        "rollout/returns_min": extreme(ret, Math.min),
        "env/success_once": epMean((e) => +e.successOnce),
        // The mean of the tasks' rates: what evaluation's uniform task mix would read (by_failure skews env/success_once).
        "env/success_once_task_mean": stepTaskSuccess.reduce((a, b) => a + b, 0) / NUM_TASKS,
        "env/episode_len": epMean((e) => e.episodeLen),
        "env/reward": epMean((e) => e.return),
        "env/num_trajectories": episodes.length,
        "time/rollout_s": rolloutSeconds,
        "time/update_s": updateSeconds,
      };

      // ---- evaluation on the fixed initial states (runner.val_check_interval) ----
      const val = config.runner.val_check_interval;
      if (val > 0 && step % val === 0) Object.assign(metrics, await validate(step));
      writer.addScalars(step, metrics);
      hooks.onStep?.(step, metrics);

      // ---- checkpoints ----
      stopped = hooks.stopRequested?.() ?? false;
      const save = (config.runner.save_interval > 0 && step % config.runner.save_interval === 0) || step === maxSteps || stopped;
      if (save) savePolicyCheckpoint(join(runDir, "checkpoints", `global_step_${step}`), { ...ck, params: learner.params }, trainerStateFiles({ globalStep: step, optimizer: learner.state(), taskSuccess }));
      if (stopped) break;
    }
  } finally {
    writer.close();
    await vec.close();
    await runner.release();
    await learner.release();
    await prefixProgram?.release();
    await update.release();
    await warmup.release();
  }
  return { lastStep: Math.min(step, maxSteps), stopped };

}

/**
 * A minibatch's slots as micro-batches of `micro`: its slots of weight > 0 first, then as many of its
 * weight-0 (masked) slots as fill the last micro-batch, at least one micro-batch. A masked slot adds 0 to
 * masked_mean_ratio's sum and the mean divides by the micro-batch size either way, so the gradient is
 * RLinf's over the whole minibatch without computing the slots that add nothing (a third of them once
 * most episodes succeed early). `micro` divides the minibatch's length, so the masked slots suffice.
 */
export function packMinibatch(idx: number[], weight: Float32Array, micro: number): number[][] {
  const live = idx.filter((i) => weight[i]! > 0);
  const masked = idx.filter((i) => !(weight[i]! > 0));
  const count = Math.max(1, Math.ceil(live.length / micro));
  const slotsUsed = [...live, ...masked].slice(0, count * micro);
  return Array.from({ length: count }, (_, k) => slotsUsed.slice(k * micro, (k + 1) * micro));
}

/** The max or min of up to the seed's 24,576 samples (a spread would pass them all as arguments); 0 when empty. */
const extreme = (xs: number[], pick: (a: number, b: number) => number) => (xs.length ? xs.reduce((a, b) => pick(a, b)) : 0);

/** 1 − Var(returns − values) / Var(returns) (1: the critic explains the returns; ≤ 0: no better than their mean). */
export function explainedVariance(returns: ArrayLike<number>, values: ArrayLike<number>): number {
  const n = returns.length;
  if (n < 2) return 0;
  const variance = (f: (i: number) => number) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += f(i);
    const mu = s / n;
    let q = 0;
    for (let i = 0; i < n; i++) q += (f(i) - mu) ** 2;
    return q / (n - 1);
  };
  const vr = variance((i) => returns[i]!);
  return vr === 0 ? 0 : 1 - variance((i) => returns[i]! - values[i]!) / vr;
}

/** Fraction of the masked samples whose clipped value term is the active (larger) one. */
export function valueClipRatio(value: Float32Array, oldValue: Float32Array, returns: Float32Array, mask: Float32Array, clip: number, delta: number): number {
  const huber = (x: number) => (Math.abs(x) <= delta ? 0.5 * x * x : delta * (Math.abs(x) - 0.5 * delta));
  let n = 0;
  let c = 0;
  for (let i = 0; i < value.length; i++) {
    if (!mask[i]) continue;
    n++;
    const vc = oldValue[i]! + Math.min(Math.max(value[i]! - oldValue[i]!, -clip), clip);
    if (huber(returns[i]! - vc) > huber(returns[i]! - value[i]!)) c++;
  }
  return n ? c / n : 0;
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
