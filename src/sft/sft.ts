// Flow-matching SFT of the whole policy (vision tower, projector, prefix, expert) on scripted
// demonstrations, top to bottom: dataset → model, tokenizer, norm stats → per step: a batch of
// (episode, step) samples with their action chunks of horizon H → the compiled SFT program
// (forward + backward) and AdamW with warm-up and cosine decay → metrics, ODE evaluation on a few
// fixed initial states, checkpoints. Every random draw comes from a stream seeded per step, so a
// resumed run continues exactly where the interrupted one would have.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import type { Config } from "../config/schema.ts";
import { DexrlError } from "../errors.ts";
import { compile, type Feeds, host } from "../engine/compile.ts";
import { Learner } from "../engine/learner.ts";
import { initEngine } from "../engine/runtime.ts";
import { evalMetrics } from "../eval/evaluate.ts";
import { EventWriter, purgeNotice } from "../log/tfevents.ts";
import type { NormStats } from "../model/checkpoint.ts";
import { DEFAULT_MODEL, initParameters, parameterShapes, timeEmbeddings, type ModelConfig } from "../model/config.ts";
import { sampleFlowTimes } from "../model/flow.ts";
import { computeStats, normalize } from "../model/normalize.ts";
import { loadPolicyCheckpoint, savePolicyCheckpoint, type PolicyCheckpoint } from "../model/policy_checkpoint.ts";
import { sftFn } from "../model/programs.ts";
import { resolveBackend, tokenize } from "../model/runner.ts";
import { Tokenizer } from "../model/tokenizer.ts";
import { Rng } from "../util/random.ts";
import { loadTrainerState, trainerStateFiles, writeRunConfig } from "../rl/trainer_state.ts";
import { type DatasetEpisode, openDataset } from "./dataset.ts";

export interface SftHooks {
  onStep?: (step: number, metrics: Record<string, number>) => void;
  onProgress?: (done: number, total: number, note: string) => void;
  stopRequested?: () => boolean;
}

const STATE_DIM = 8;
const ACTION_DIM = 7;

/** The policy architecture of an SFT recipe (sft.model, the action horizon, the value/noise heads the PPO config asks for). */
export function sftModelConfig(config: Config, vocabSize: number, numImages: number): ModelConfig {
  const s = config.sft.model;
  if (s.width % s.heads) throw new DexrlError(`sft.model.width ${s.width} is not a multiple of sft.model.heads ${s.heads}.`, 2);
  if (s.image_size % s.patch_size) throw new DexrlError(`sft.model.image_size ${s.image_size} is not a multiple of sft.model.patch_size ${s.patch_size}.`, 2);
  return {
    ...DEFAULT_MODEL,
    image_size: s.image_size,
    patch_size: s.patch_size,
    num_images: numImages,
    vit_width: s.vit_width,
    vit_depth: s.vit_depth,
    vit_heads: s.heads,
    vit_mlp: 2 * s.vit_width,
    width: s.width,
    depth: s.depth,
    heads: s.heads,
    head_dim: s.width / s.heads,
    mlp: s.mlp,
    vocab_size: vocabSize,
    max_text_len: s.max_text_len,
    expert_width: s.width,
    expert_mlp: s.mlp,
    horizon: config.actor.model.action_horizon,
    add_value_head: config.actor.model.add_value_head,
    value_after_vlm: config.actor.model.value_after_vlm,
    value_hidden: config.actor.model.value_hidden_sizes ?? [],
    add_noise_head: config.actor.model.dexbotic.noise_method === "flow_noise",
  };
}

/** Linear warm-up to `lr`, then cosine decay to `minLr` at the last step. */
export function learningRate(step: number, s: Config["sft"]): number {
  if (step <= s.warmup_steps) return (s.lr * step) / Math.max(1, s.warmup_steps);
  const frac = (step - s.warmup_steps) / Math.max(1, s.max_steps - s.warmup_steps);
  return s.min_lr + 0.5 * (s.lr - s.min_lr) * (1 + Math.cos(Math.PI * Math.min(1, frac)));
}

/**
 * The H-action chunk starting at step t of an episode, [H, D]: past the end the last action repeats
 * (LeRobot's and openpi's padding: indices are clamped to the episode).
 */
export function actionChunk(actions: Float32Array, length: number, t: number, H: number, D = ACTION_DIM): Float32Array {
  const out = new Float32Array(H * D);
  for (let k = 0; k < H; k++) {
    const i = Math.min(t + k, length - 1);
    out.set(actions.subarray(i * D, (i + 1) * D), k * D);
  }
  return out;
}

/** Shifts each view by up to ±`s` pixels (edge pixels repeat), as a random-crop augmentation. */
function shiftViews(img: Uint8Array, views: number, S: number, s: number, rng: Rng): Uint8Array {
  const out = new Uint8Array(img.length);
  for (let v = 0; v < views; v++) {
    const dx = Math.floor(rng.next() * (2 * s + 1)) - s;
    const dy = Math.floor(rng.next() * (2 * s + 1)) - s;
    const base = v * S * S * 3;
    for (let y = 0; y < S; y++) {
      const sy = Math.min(S - 1, Math.max(0, y + dy));
      for (let x = 0; x < S; x++) {
        const sx = Math.min(S - 1, Math.max(0, x + dx));
        const o = base + (y * S + x) * 3;
        const i = base + (sy * S + sx) * 3;
        out[o] = img[i]!;
        out[o + 1] = img[i + 1]!;
        out[o + 2] = img[i + 2]!;
      }
    }
  }
  return out;
}

export async function sft(config: Config, runDir: string, hooks: SftHooks = {}): Promise<{ outputDir: string; lastStep: number; stopped: boolean }> {
  const s = config.sft;
  // ---- data: the first episodes_per_task episodes of each task ----
  const ds = openDataset(s.data_dir);
  if (ds.imageSize !== s.model.image_size)
    throw new DexrlError(`Dataset ${s.data_dir} has images of ${ds.imageSize}² but sft.model.image_size is ${s.model.image_size}; collect at that size (dexrl collect --image-size) or set sft.model.image_size=${ds.imageSize}.`, 2);
  const perTask = new Map<number, number>();
  const chosen = ds.episodes.flatMap((e, i) => {
    const n = perTask.get(e.task) ?? 0;
    if (s.episodes_per_task !== null && n >= s.episodes_per_task) return [];
    perTask.set(e.task, n + 1);
    return [i];
  });
  if (chosen.length === 0) throw new DexrlError(`Dataset ${s.data_dir} has no episodes.`, 2);
  const episodes: DatasetEpisode[] = chosen.map((i) => ds.load(i));
  const samples: [number, number][] = episodes.flatMap((e, i) => Array.from({ length: e.length }, (_, t) => [i, t] as [number, number]));

  // ---- model, tokenizer, norm stats (from the checkpoint when resuming) ----
  const resumed = s.resume_dir ? loadTrainerState(s.resume_dir) : undefined;
  let ck: PolicyCheckpoint;
  if (s.resume_dir) ck = loadPolicyCheckpoint(s.resume_dir);
  else {
    const tokenizer = Tokenizer.fromTexts([...new Set(episodes.map((e) => e.instruction))], s.model.max_text_len);
    const c = sftModelConfig(config, tokenizer.vocabSize, ds.numViews);
    const rows = (key: "states" | "actions", dim: number) => episodes.flatMap((e) => Array.from({ length: e.length }, (_, t) => e[key].subarray(t * dim, (t + 1) * dim)));
    const normStats: NormStats = { state: computeStats(rows("states", STATE_DIM), STATE_DIM), actions: computeStats(rows("actions", ACTION_DIM), ACTION_DIM) };
    const init = new Rng(s.seed ^ 0x1b873593);
    ck = { config: c, params: initParameters(c, () => init.normal()), normStats, tokenizer };
  }
  const c = ck.config;
  const gpu = await initEngine();
  const backend = resolveBackend(config.actor.training_backend === "fsdp" ? "auto" : config.actor.training_backend, gpu.summary.isSoftware);
  const shapes = parameterShapes(c);
  const learner = new Learner(backend, ck.params, shapes, [{ names: [...shapes.keys()], lr: s.lr }], { betas: [config.actor.optim.adam_beta1, config.actor.optim.adam_beta2], eps: config.actor.optim.adam_eps, weightDecay: s.weight_decay, maxGradNorm: s.clip_grad });
  if (resumed) learner.loadState(resumed.optimizer);
  const program = compile("dexrl_sft", sftFn(c), backend, { spin: true });

  mkdirSync(join(runDir, "checkpoints"), { recursive: true });
  writeRunConfig(runDir, stringify(config, { lineWidth: 0 }), resumed?.globalStep);
  const writer = new EventWriter(runDir, resumed ? { purgeStep: resumed.globalStep + 1 } : {}); // drops steps logged after the checkpoint
  for (const p of writer.purged) console.error(`dexrl: ${purgeNotice(p)}.`);
  const H = c.horizon;
  const S = c.image_size;
  const IMG = c.num_images * S * S * 3;
  const B = s.batch_size;
  const save = (step: number, dir: string) => savePolicyCheckpoint(dir, { ...ck, params: learner.params }, trainerStateFiles({ globalStep: step, optimizer: learner.state() }));

  let step = (resumed?.globalStep ?? 0) + 1;
  let stopped = false;
  try {
    for (; step <= s.max_steps; step++) {
      // ---- a batch: B (episode, step) samples with their chunks, noise and flow times ----
      const rng = new Rng((s.seed ^ Math.imul(step, 0x9e3779b1)) >>> 0);
      const pick = Array.from({ length: B }, () => samples[Math.floor(rng.next() * samples.length)]!);
      const images = new Uint8Array(B * IMG);
      const states = new Float32Array(B * STATE_DIM);
      const actions = new Float32Array(B * H * ACTION_DIM);
      pick.forEach(([ei, t], b) => {
        const e = episodes[ei]!;
        const img = e.images.subarray(t * IMG, (t + 1) * IMG);
        images.set(s.augment_shift > 0 ? shiftViews(img, c.num_images, S, s.augment_shift, rng) : img, b * IMG);
        states.set(e.states.subarray(t * STATE_DIM, (t + 1) * STATE_DIM), b * STATE_DIM);
        actions.set(actionChunk(e.actions, e.length, t, H), b * H * ACTION_DIM);
      });
      const { ids, mask } = tokenize(ck.tokenizer, pick.map(([ei]) => episodes[ei]!.instruction));
      const ts = sampleFlowTimes(B, () => rng.next());
      const feeds: Feeds = {
        images: host(images, [B, c.num_images, S, S, 3]),
        tokens: host(ids, [B, c.max_text_len]),
        token_mask: host(mask, [B, c.max_text_len]),
        state: host(normalize(states, ck.normStats.state), [B, STATE_DIM]),
        actions: host(normalize(actions, ck.normStats.actions), [B, H, ACTION_DIM]),
        noise: host(Float32Array.from({ length: B * H * ACTION_DIM }, () => rng.normal()), [B, H, ACTION_DIM]),
        t: host(Float32Array.from(ts), [B, 1, 1]),
        temb: host(timeEmbeddings(ts, c.expert_width), [B, c.expert_width]),
      };

      // ---- forward + backward, then AdamW at this step's learning rate ----
      const lr = learningRate(step, s);
      learner.groups[0]!.lr = lr;
      const out = await learner.accumulate(program, feeds);
      const loss = out.loss![0]!;
      const gradNorm = await learner.update();
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm))
        throw new DexrlError(`SFT diverged at step ${step}: the ${Number.isFinite(loss) ? "gradient norm" : "loss"} is not finite (lr ${lr}); the last good checkpoint is kept.`, 1);
      const metrics: Record<string, number> = { "train/sft/loss": loss, "train/sft/lr": lr, "train/sft/grad_norm": gradNorm };

      // ---- ODE evaluation on the first eval_trials_per_task fixed initial states of every task ----
      if (s.eval_interval > 0 && (step % s.eval_interval === 0 || step === s.max_steps)) Object.assign(metrics, await evalMetrics(gpu, config, ck, learner.params, s.eval_trials_per_task));
      writer.addScalars(step, metrics);
      hooks.onStep?.(step, metrics);
      hooks.onProgress?.(step, s.max_steps, `loss ${loss.toFixed(4)}`);

      stopped = hooks.stopRequested?.() ?? false;
      if ((s.save_interval > 0 && step % s.save_interval === 0) || step === s.max_steps || stopped) save(step, join(runDir, "checkpoints", `step_${step}`));
      if (stopped) break;
    }
  } finally {
    writer.close();
    await program.release();
    await learner.release();
  }
  if (!stopped) savePolicyCheckpoint(s.output_dir, { ...ck, params: learner.params });
  return { outputDir: s.output_dir, lastStep: Math.min(step, s.max_steps), stopped };
}
