// Flow samplers on the WebGPU policy: sampleActions draws an action chunk with K denoising steps
// (flow_ode, or one flow_sde / flow_noise step per call, or all of them with joint_logprob) and
// returns the whole chain, the stochastic step, the chunk-level log-prob, entropy and value;
// logProbValue recomputes those with gradients for PPO. Scalar math comes from flow.ts.
import * as op from "../gpu/ops.ts";
import { Tensor } from "../gpu/tensor.ts";
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
}

/** Standard normal draws of a given shape, on the device. */
export type NormalSource = (shape: number[]) => Tensor;

export interface Sample {
  /** x_1 (noise) … x_0 in normalised action space [B, K+1, H, action_dim]. */
  chain: Tensor;
  /** The stochastic step, or −1 when every step was deterministic (flow_ode, eval) or all were (joint). */
  stepIndex: number;
  /** Chunk-level log-prob [B] (0 when deterministic). */
  logProb: Tensor;
  /** Mean Gaussian entropy per element [B] (flow_noise only; 0 otherwise, as RLinf). */
  entropy: Tensor;
  /** Value [B], averaged over the K steps. */
  value: Tensor;
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

/**
 * One transition at grid step i (one for the batch, or one per example): mean and std of x_{t−δ}
 * given x_t, and the action tokens' outputs.
 */
function transition(policy: Policy, ctx: Context, cfg: SamplerConfig, xt: Tensor, i: number | readonly number[], stochastic: boolean) {
  const grid = timeGrid(cfg.numSteps);
  const steps = typeof i === "number" ? [i] : i;
  const method: NoiseMethod = stochastic ? cfg.method : "flow_ode";
  const ts = steps.map((k) => grid[k]!);
  const ws = steps.map((k) => stepWeights(method, grid[k]!, grid[k]! - grid[k + 1]!, cfg.noiseLevel, grid));
  const { velocity, actionOut } = policy.expert(ctx.prefix, ctx.bias, ctx.stateTok, xt, ts);
  // w0·(x_t − v·t) + w1·(x_t + v·(1 − t)) as one affine combination a·x_t + b·v.
  const a = ws.map((w) => w.w0 + w.w1);
  const b = ws.map((w, k) => w.w1 * (1 - ts[k]!) - w.w0 * ts[k]!);
  const perExample = (v: number[]) => Tensor.from(v, [v.length, 1, 1]);
  const mean = steps.length === 1 ? op.add(op.scale(xt, a[0]!), op.scale(velocity, b[0]!)) : op.add(op.mul(xt, perExample(a)), op.mul(velocity, perExample(b)));
  const std: Tensor | number = method === "flow_noise" ? policy.noiseStd(actionOut) : steps.length === 1 ? ws[0]!.std : perExample(ws.map((w) => w.std));
  return { mean, std, actionOut };
}

/** The executed part [B, chunk, envDim] of a [B, H, D] tensor. */
const executed = (x: Tensor, cfg: SamplerConfig) => op.slice(op.slice(x, 1, 0, cfg.chunk), 2, 0, cfg.envDim);

/** Σ over the executed chunk of log N(x; mean, std²) → [B]; std is a number, [B, 1, 1] or [B, H, D]. */
function chunkLogProb(x: Tensor, mean: Tensor, std: Tensor | number, cfg: SamplerConfig): Tensor {
  const s = typeof std === "number" || std.shape[1] === 1 ? std : executed(std, cfg);
  const lp = op.gaussianLogProb(executed(x, cfg), executed(mean, cfg), s);
  return op.sum(op.reshape(lp, [lp.shape[0]!, cfg.chunk * cfg.envDim]), 1);
}

/** Mean entropy per executed element → [B] (zeros unless the std is learned, as RLinf). */
function chunkEntropy(std: Tensor | number, B: number, cfg: SamplerConfig): Tensor {
  if (typeof std === "number" || std.shape[1] === 1) return Tensor.from(new Float32Array(B), [B]);
  const e = op.affine(op.log(executed(std, cfg)), 1, gaussianEntropy(1)); // ½log(2πe) + log σ
  return op.mean(op.reshape(e, [B, cfg.chunk * cfg.envDim]), 1);
}

const zeros = (B: number) => Tensor.from(new Float32Array(B), [B]);
const mean = (ts: Tensor[]) => op.scale(ts.reduce((a, b) => op.add(a, b)), 1 / ts.length);

/**
 * Samples one chunk per example. `train`: flow-SDE/noise exploration as configured (one step
 * chosen by `pickStep` unless joint); otherwise every step is the deterministic ODE step.
 */
export function sampleActions(policy: Policy, ctx: Context, cfg: SamplerConfig, normal: NormalSource, train: boolean, pickStep: () => number): Sample {
  const { c } = policy;
  const K = cfg.numSteps;
  const B = ctx.stateTok.shape[0]!;
  const explore = train && cfg.method !== "flow_ode";
  const stepIndex = explore && !cfg.jointLogprob ? pickStep() : -1;
  if (stepIndex >= K) throw new Error(`stochastic step ${stepIndex} is outside 0…${K - 1}`);
  let x = normal([B, c.horizon, c.action_dim]);
  const chain = [x];
  const logProbs: Tensor[] = [];
  const entropies: Tensor[] = [];
  let valueSum: Tensor | undefined;
  if (explore && cfg.jointLogprob) logProbs.push(chunkLogProb(x, op.scale(x, 0), 1, cfg));
  for (let i = 0; i < K; i++) {
    const stochastic = explore && (cfg.jointLogprob || i === stepIndex);
    const { mean, std, actionOut } = transition(policy, ctx, cfg, x, i, stochastic);
    if (c.add_value_head) {
      const v = policy.value(ctx.prefix, actionOut, cfg.detachCritic);
      valueSum = valueSum ? op.add(valueSum, v) : v;
    }
    const noisy = stochastic && (typeof std !== "number" || std > 0);
    x = noisy ? op.add(mean, op.mul(normal([B, c.horizon, c.action_dim]), std)) : mean;
    if (noisy) {
      logProbs.push(chunkLogProb(x, mean, std, cfg));
      entropies.push(chunkEntropy(std, B, cfg));
    }
    chain.push(x);
  }
  const avg = (ts: Tensor[]) => (ts.length ? mean(ts) : zeros(B));
  return {
    chain: op.concat(chain.map((t) => op.reshape(t, [B, 1, c.horizon, c.action_dim])), 1),
    stepIndex,
    logProb: avg(logProbs),
    entropy: avg(entropies),
    value: valueSum ? op.scale(valueSum, 1 / K) : zeros(B),
  };
}

/**
 * Log-prob, entropy and value of a stored chain under the current weights, with gradients
 * (PPO's new policy): at `stepIndex` only, or over every step and the initial noise when joint.
 */
export function logProbValue(policy: Policy, ctx: Context, cfg: SamplerConfig, chain: Tensor, stepIndex: number): { logProb: Tensor; entropy: Tensor; value: Tensor } {
  const { c } = policy;
  const B = chain.shape[0]!;
  const at = (i: number) => op.reshape(op.slice(chain, 1, i, i + 1), [B, c.horizon, c.action_dim]);
  const steps = cfg.jointLogprob ? Array.from({ length: cfg.numSteps }, (_, i) => i) : [stepIndex];
  if (!cfg.jointLogprob && (stepIndex < 0 || stepIndex >= cfg.numSteps)) throw new Error(`logProbValue needs a stochastic step in 0…${cfg.numSteps - 1}, got ${stepIndex}`);
  const logProbs: Tensor[] = cfg.jointLogprob ? [chunkLogProb(at(0), op.scale(at(0), 0), 1, cfg)] : [];
  const entropies: Tensor[] = [];
  const values: Tensor[] = [];
  for (const i of steps) {
    const { mean, std, actionOut } = transition(policy, ctx, cfg, at(i), i, true);
    logProbs.push(chunkLogProb(at(i + 1), mean, std, cfg));
    entropies.push(chunkEntropy(std, B, cfg));
    if (c.add_value_head) values.push(policy.value(ctx.prefix, actionOut, cfg.detachCritic));
  }
  return { logProb: mean(logProbs), entropy: mean(entropies), value: values.length ? mean(values) : zeros(B) };
}

/**
 * Non-joint log-prob, entropy and value with gradients when every example has its own stochastic
 * step (a PPO minibatch mixes policy calls): x_s and x_{s+1} [B, H, D] taken from each stored chain.
 */
export function logProbValueAt(policy: Policy, ctx: Context, cfg: SamplerConfig, xs: Tensor, xNext: Tensor, steps: readonly number[]): { logProb: Tensor; entropy: Tensor; value: Tensor } {
  const B = xs.shape[0]!;
  if (cfg.jointLogprob) throw new Error("logProbValueAt is for one stochastic step per example; joint log-probs use logProbValue");
  if (steps.length !== B || steps.some((k) => !(k >= 0 && k < cfg.numSteps))) throw new Error(`logProbValueAt needs ${B} steps in 0…${cfg.numSteps - 1}`);
  const { mean, std, actionOut } = transition(policy, ctx, cfg, xs, steps, true);
  const value = policy.c.add_value_head ? policy.value(ctx.prefix, actionOut, cfg.detachCritic) : zeros(B);
  return { logProb: chunkLogProb(xNext, mean, std, cfg), entropy: chunkEntropy(std, B, cfg), value };
}
