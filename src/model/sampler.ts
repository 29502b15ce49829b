// Flow samplers on the policy, written once for both backends: `sampleChunk` draws an action chunk
// with K denoising steps (each an ODE step, or a flow_sde / flow_noise step where `explore` is 1)
// and returns the whole chain, the chunk-level log-prob, entropy and value; `chainLogProb`
// recomputes those for stored transitions with gradients (PPO). Which step explores, the flow time
// and the step's weights are inputs made on the CPU from flow.ts (`stepHost`), so a traced sampler
// takes them per call instead of baking one choice into the graph.
import * as op from "../engine/ops.ts";
import { Tensor } from "../engine/tensor.ts";
import { timeEmbeddings } from "./config.ts";
import { gaussianEntropy, stepWeights, timeGrid, type NoiseMethod } from "./flow.ts";
import type { Policy, PrefixKV } from "./policy.ts";

export interface SamplerConfig {
  /** K denoising steps. */
  numSteps: number;
  method: NoiseMethod;
  /** a in σ_t = a·√(t/(1−t)) (flow_sde). */
  noiseLevel: number;
  /** Executed actions per chunk (num_action_chunks) and their dims (action_env_dim): log-probs cover only these. */
  chunk: number;
  envDim: number;
  /** Every step stochastic, log-probs averaged over the K transitions and the initial noise. */
  jointLogprob: boolean;
  /** Keep value-loss gradients out of the expert. */
  detachCritic: boolean;
  /** RLinf's chunk_critic_input: the value head reads the mean of the first `chunk` action tokens only (default: all H). */
  chunkCriticInput?: boolean;
}

/** One denoising step's inputs, per example ([B, …]) or shared by the batch ([1, …]). */
export interface StepInputs {
  /** Sin-cos embedding of the step's time t [n, W]. */
  temb: Tensor;
  /** mean(x_{t−δ}) = a·x_t + b·v [n, 1, 1]. */
  a: Tensor;
  b: Tensor;
  /** The flow-SDE std [n, 1, 1] (0 on ODE steps; flow_noise's std is learned instead). */
  std: Tensor;
  /** 1 where the step is stochastic (its transition has a log-prob), else 0 [n, 1, 1]. */
  explore: Tensor;
}

/** StepInputs as CPU arrays, for graph inputs or uploads. */
export interface StepHost {
  n: number;
  temb: Float32Array;
  a: Float32Array;
  b: Float32Array;
  std: Float32Array;
  explore: Float32Array;
}

/**
 * The inputs of grid steps `steps[j]` (flow.ts weights): exploring ones use the configured method,
 * the others the ODE. w0·(x_t − v·t) + w1·(x_t + v·(1 − t)) is written as a·x_t + b·v.
 */
export function stepHost(cfg: SamplerConfig, width: number, steps: readonly number[], explore: readonly boolean[]): StepHost {
  const grid = timeGrid(cfg.numSteps);
  const n = steps.length;
  const h: StepHost = { n, temb: timeEmbeddings(steps.map((k) => grid[k]!), width), a: new Float32Array(n), b: new Float32Array(n), std: new Float32Array(n), explore: new Float32Array(n) };
  steps.forEach((k, j) => {
    if (!(Number.isInteger(k) && k >= 0 && k < cfg.numSteps)) throw new Error(`denoising step ${k} is outside 0…${cfg.numSteps - 1}`);
    const t = grid[k]!;
    const method: NoiseMethod = explore[j] ? cfg.method : "flow_ode";
    const w = stepWeights(method, t, t - grid[k + 1]!, cfg.noiseLevel, grid);
    h.a[j] = w.w0 + w.w1;
    h.b[j] = w.w1 * (1 - t) - w.w0 * t;
    h.std[j] = w.std;
    h.explore[j] = explore[j] && method !== "flow_ode" ? 1 : 0;
  });
  return h;
}

/** The same values as tensors (uploads on WebGPU, constants in a trace). */
export function stepTensors(h: StepHost): StepInputs {
  const col = (x: Float32Array) => Tensor.from(x, [h.n, 1, 1]);
  return { temb: Tensor.from(h.temb, [h.n, h.temb.length / h.n]), a: col(h.a), b: col(h.b), std: col(h.std), explore: col(h.explore) };
}

/** The context every step needs: prefix K/V, the suffix attention bias and the state token. */
export interface Context {
  prefix: PrefixKV;
  bias: Tensor;
  stateTok: Tensor;
}

export function context(policy: Policy, prefix: PrefixKV, stateN: Tensor): Context {
  return { prefix, bias: policy.suffixBias(prefix), stateTok: policy.stateToken(stateN) };
}

/** Mean and std of x_{t−δ} given x_t, and the action tokens' outputs. */
function transition(policy: Policy, ctx: Context, cfg: SamplerConfig, xt: Tensor, s: StepInputs) {
  const { velocity, actionOut } = policy.expert(ctx.prefix, ctx.bias, ctx.stateTok, xt, s.temb);
  const mean = op.add(op.mul(xt, s.a), op.mul(velocity, s.b));
  const std = cfg.method === "flow_noise" ? op.mul(policy.noiseStd(actionOut), s.explore) : s.std;
  return { mean, std, actionOut };
}

/** The executed part [B, chunk, envDim] of a [B, H, D] tensor. */
const executed = (x: Tensor, cfg: SamplerConfig) => op.slice(op.slice(x, 1, 0, cfg.chunk), 2, 0, cfg.envDim);

/** [n, 1, 1] → [n]. */
const flat = (x: Tensor) => op.reshape(x, [x.shape[0]!]);

/**
 * e · Σ over the executed chunk of log N(x; mean, std²) → [B]. Where e = 0 the std may be 0: it is
 * replaced by 1 there, so the term is finite before it is zeroed.
 */
function chunkLogProb(x: Tensor, mean: Tensor, std: Tensor, e: Tensor, cfg: SamplerConfig): Tensor {
  const safe = op.add(std, op.affine(e, -1, 1));
  const s = safe.shape[1] === 1 ? safe : executed(safe, cfg);
  const lp = op.gaussianLogProb(executed(x, cfg), executed(mean, cfg), s);
  return op.mul(op.sum(op.reshape(lp, [lp.shape[0]!, cfg.chunk * cfg.envDim]), 1), flat(e));
}

/** e · mean entropy per executed element → [B] (flow_noise only: RLinf reports 0 for a fixed std). */
function chunkEntropy(std: Tensor, e: Tensor, cfg: SamplerConfig): Tensor {
  const safe = op.add(std, op.affine(e, -1, 1));
  const ent = op.affine(op.log(executed(safe, cfg)), 1, gaussianEntropy(1)); // ½log(2πe) + log σ
  const B = ent.shape[0]!;
  return op.mul(op.mean(op.reshape(ent, [B, cfg.chunk * cfg.envDim]), 1), flat(e));
}

export interface ChainStats {
  /** Chunk-level log-prob [B]: the exploring step's, or the mean over the K transitions and the initial noise when joint; 0 when none explores. */
  logProb: Tensor;
  /** Mean Gaussian entropy per executed element [B] (flow_noise; 0 otherwise). */
  entropy: Tensor;
  /** Value [B], averaged over the steps evaluated. */
  value: Tensor;
}

/**
 * The log-probs, entropies and values of the transitions x_i → x_{i+1} (xs has one more element
 * than steps), reduced as RLinf does: log-probs and entropies averaged over the exploring steps.
 */
function reduceSteps(policy: Policy, ctx: Context, cfg: SamplerConfig, xs: Tensor[], steps: StepInputs[], draw?: (i: number, mean: Tensor, std: Tensor) => Tensor): ChainStats & { xs: Tensor[] } {
  const B = xs[0]!.shape[0]!;
  const points = [xs[0]!];
  let lp: Tensor | undefined;
  let ent: Tensor | undefined;
  let count: Tensor | undefined;
  let value: Tensor | undefined;
  const plus = (acc: Tensor | undefined, x: Tensor) => (acc ? op.add(acc, x) : x);
  if (cfg.jointLogprob) {
    // The initial noise x_1 ~ N(0, I) is part of the joint density (RLinf), counted with step 0's e.
    const e0 = steps[0]!.explore;
    lp = chunkLogProb(points[0]!, op.scale(points[0]!, 0), op.affine(e0, 0, 1), e0, cfg);
    count = flat(e0);
  }
  steps.forEach((s, i) => {
    const { mean, std, actionOut } = transition(policy, ctx, cfg, points[i]!, s);
    const next = draw ? draw(i, mean, std) : xs[i + 1]!;
    points.push(next);
    lp = plus(lp, chunkLogProb(next, mean, std, s.explore, cfg));
    count = plus(count, op.expand(flat(s.explore), [B]));
    if (cfg.method === "flow_noise") ent = plus(ent, chunkEntropy(std, s.explore, cfg));
    const criticTokens = cfg.chunkCriticInput ? op.slice(actionOut, 1, 0, cfg.chunk) : actionOut;
    if (policy.c.add_value_head) value = plus(value, policy.value(ctx.prefix, criticTokens, cfg.detachCritic));
  });
  const n = op.maximum(count!, 1);
  const zeros = () => op.scale(op.expand(flat(steps[0]!.a), [B]), 0);
  return {
    xs: points,
    logProb: op.div(lp!, n),
    entropy: ent ? op.div(ent, n) : zeros(),
    value: value ? op.scale(value, 1 / steps.length) : zeros(),
  };
}

export interface Sample extends ChainStats {
  /** x_1 (noise) … x_0 in normalised action space [B, K+1, H, action_dim]. */
  chain: Tensor;
}

/**
 * Samples one chunk per example from the initial noise [B, H, D]: step i uses steps[i] and, where
 * it explores, adds std·eps[i] (standard normal draws [B, H, D]) to the step's mean.
 */
export function sampleChunk(policy: Policy, ctx: Context, cfg: SamplerConfig, noise: Tensor, eps: Tensor[], steps: StepInputs[]): Sample {
  if (steps.length !== cfg.numSteps || eps.length !== cfg.numSteps) throw new Error(`sampleChunk needs ${cfg.numSteps} steps and noise draws, got ${steps.length} and ${eps.length}`);
  const r = reduceSteps(policy, ctx, cfg, [noise], steps, (i, mean, std) => op.add(mean, op.mul(eps[i]!, std)));
  const [B, H, D] = noise.shape as [number, number, number];
  return { chain: op.concat(r.xs.map((x) => op.reshape(x, [B, 1, H, D])), 1), logProb: r.logProb, entropy: r.entropy, value: r.value };
}

/**
 * Log-prob, entropy and value of stored transitions under the current weights, with gradients
 * (PPO's new policy): xs[i] → xs[i+1] at steps[i], e.g. one step per example [x_s, x_{s+1}], or the
 * whole chain with joint log-probs.
 */
export function chainLogProb(policy: Policy, ctx: Context, cfg: SamplerConfig, xs: Tensor[], steps: StepInputs[]): ChainStats {
  if (xs.length !== steps.length + 1) throw new Error(`chainLogProb: ${xs.length} points for ${steps.length} steps`);
  const { logProb, entropy, value } = reduceSteps(policy, ctx, cfg, xs, steps);
  return { logProb, entropy, value };
}
