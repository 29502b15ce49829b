// The policy's programs as functions of named tensors (engine/compile.ts), each run eagerly on WebGPU
// or traced into ONNX: the prefix, the rollout sampler, the deployable ODE policy, and the PPO and
// SFT losses with their gradients. Every ONNX model dexrl runs or writes comes from these.
import type { TensorFn } from "../engine/compile.ts";
import { GRAD_PREFIX, PARAM_PREFIX } from "../engine/learner.ts";
import * as op from "../engine/ops.ts";
import { Tensor } from "../engine/tensor.ts";
import type { Stats } from "./checkpoint.ts";
import { isPrefixParameter, parameterShapes, timeEmbeddings, type ModelConfig } from "./config.ts";
import { timeGrid } from "./flow.ts";
import { Policy, type PrefixKV } from "./policy.ts";
import { chainLogProb, context, sampleChunk, stepHost, type SamplerConfig, type StepInputs } from "./sampler.ts";
import { ppoLoss, type PpoSettings } from "../rl/loss.ts";

/** The policy a program computes with: device tensors on WebGPU, or constants made inside a trace. */
export type PolicySource = () => Policy;

/** A policy whose weights are constants of the trace (or uploads on WebGPU). */
export const constantPolicy = (c: ModelConfig, arrays: Map<string, Float32Array>): PolicySource => () => Policy.fromArrays(c, arrays, false);


function inputPolicy(c: ModelConfig, t: Record<string, Tensor>): Policy {
  const params = new Map<string, Tensor>();
  for (const [k, v] of Object.entries(t))
    if (k.startsWith(PARAM_PREFIX)) {
      v.requiresGrad = true;
      params.set(k.slice(PARAM_PREFIX.length), v);
    }
  return Policy.fromTensors(c, params);
}

/** Every parameter's gradient as an output `g.<name>` (zeros where the loss does not reach it). */
function gradOutputs(policy: Policy, out: Record<string, Tensor>): Record<string, Tensor> {
  for (const [name, p] of policy.params) out[GRAD_PREFIX + name] = p.grad ?? op.scale(p, 0);
  return out;
}

/** The parameter names a training program takes: all, or the expert and heads under train_expert_only. */
export const trainableNames = (c: ModelConfig, trainExpertOnly: boolean) => [...parameterShapes(c).keys()].filter((n) => !(trainExpertOnly && isPrefixParameter(n)));

// ---- prefix ----

const prefixOut = (c: ModelConfig, p: PrefixKV): Record<string, Tensor> => {
  const out: Record<string, Tensor> = { key_bias: p.keyBias };
  for (let l = 0; l < c.depth; l++) {
    out[`prefix_k${l}`] = p.k[l]!;
    out[`prefix_v${l}`] = p.v[l]!;
  }
  if (p.pooled) out.pooled = p.pooled;
  return out;
};

/** A stored prefix (the outputs of prefixFn) as the expert's context. */
export function prefixIn(c: ModelConfig, t: Record<string, Tensor>): PrefixKV {
  const k: Tensor[] = [];
  const v: Tensor[] = [];
  for (let l = 0; l < c.depth; l++) {
    k.push(t[`prefix_k${l}`]!);
    v.push(t[`prefix_v${l}`]!);
  }
  return { k, v, keyBias: t.key_bias!, pooled: t.pooled };
}

/** Inputs images u8 [B, V, S, S, 3], tokens i32 [B, L], token_mask [B, L] → per-layer K/V, key bias, pooled output. */
export function prefixFn(policy: PolicySource): TensorFn {
  return (t) => {
    const p = policy();
    return op.noGrad(() => prefixOut(p.c, p.embedPrefix(t.images!, t.tokens!, t.token_mask!)));
  };
}

// ---- sampling ----

/** The K steps' inputs from per-call vectors [K] (shared by the batch); the times are the grid's. */
function callSteps(c: ModelConfig, K: number, t: Record<string, Tensor>): StepInputs[] {
  const grid = timeGrid(K);
  const at = (x: Tensor, i: number) => op.reshape(op.slice(x, 0, i, i + 1), [1, 1, 1]);
  return Array.from({ length: K }, (_, i) => ({
    temb: Tensor.from(timeEmbeddings([grid[i]!], c.expert_width), [1, c.expert_width]),
    a: at(t.step_a!, i),
    b: at(t.step_b!, i),
    std: at(t.step_std!, i),
    explore: at(t.step_explore!, i),
  }));
}

/**
 * The rollout sampler. Inputs: images, tokens, token_mask, state (normalised) [B, state_dim], noise
 * x_1 [B, H, D], eps [K, B, H, D], and per call step_a, step_b, step_std, step_explore [K]
 * (stepHost of the K steps). Outputs: chain [B, K+1, H, D], log_prob, entropy, value [B], and with
 * `withPrefix` prefixFn's outputs too (PPO stores them, so a frozen prefix is computed once per observation).
 */
export function samplerFn(policy: PolicySource, cfg: SamplerConfig, withPrefix = false): TensorFn {
  return (t) =>
    op.noGrad(() => {
      const p = policy();
      const prefix = p.embedPrefix(t.images!, t.tokens!, t.token_mask!);
      const ctx = context(p, prefix, t.state!);
      const K = cfg.numSteps;
      const [, B, H, D] = t.eps!.shape as [number, number, number, number];
      const eps = Array.from({ length: K }, (_, i) => op.reshape(op.slice(t.eps!, 0, i, i + 1), [B, H, D]));
      const s = sampleChunk(p, ctx, cfg, t.noise!, eps, callSteps(p.c, K, t));
      return { chain: s.chain, log_prob: s.logProb, entropy: s.entropy, value: s.value, ...(withPrefix ? prefixOut(p.c, prefix) : {}) };
    });
}

/**
 * The deployable policy (`dexrl export`): images, tokens, token_mask, raw state [B, state_dim] and
 * initial noise [B, H, D] → the unnormalised action chunk [B, H, D] after K flow-ODE steps.
 */
export function odePolicyFn(policy: PolicySource, K: number, norm: { state: Stats; actions: Stats }): TensorFn {
  return (t) =>
    op.noGrad(() => {
      const p = policy();
      const { c } = p;
      const row = (x: readonly number[]) => Tensor.from(Float32Array.from(x), [1, x.length]);
      const stateN = op.div(op.sub(t.state!, row(norm.state.mean)), row(norm.state.std));
      const ctx = context(p, p.embedPrefix(t.images!, t.tokens!, t.token_mask!), stateN);
      const cfg: SamplerConfig = { numSteps: K, method: "flow_ode", noiseLevel: 0, chunk: c.horizon, envDim: c.action_dim, jointLogprob: false, detachCritic: true };
      const h = stepHost(cfg, c.expert_width, Array.from({ length: K }, (_, i) => i), new Array<boolean>(K).fill(false));
      const steps = callSteps(c, K, { step_a: Tensor.from(h.a, [K]), step_b: Tensor.from(h.b, [K]), step_std: Tensor.from(h.std, [K]), step_explore: Tensor.from(h.explore, [K]) });
      const eps = Array.from({ length: K }, () => op.scale(t.noise!, 0));
      const x0 = op.slice(sampleChunk(p, ctx, cfg, t.noise!, eps, steps).chain, 1, K, K + 1);
      const act = op.reshape(x0, [x0.shape[0]!, c.horizon, c.action_dim]);
      const r3 = (x: readonly number[]) => Tensor.from(Float32Array.from(x), [1, 1, x.length]);
      return { actions: op.add(op.mul(act, r3(norm.actions.std)), r3(norm.actions.mean)) };
    });
}

// ---- training ----

/**
 * PPO's micro-batch: inputs p.<trainable>, the stored prefix outputs (frozen prefix) or images,
 * tokens and token_mask (the prefix is trained too), state
 * (normalised) [B, state_dim], points [B, n+1, H, D] (x at the stored steps), per-example step
 * inputs step_temb [n·B, W] and step_a/b/std/explore [n·B, 1, 1] (step j of example b at j·B + b),
 * old_log_prob, old_value, advantages, returns, weight [B]. Outputs the loss terms, the per-sample
 * ratio and every parameter's gradient.
 */
export function ppoFn(c: ModelConfig, cfg: SamplerConfig, s: PpoSettings, criticOnly: boolean): TensorFn {
  return (t) => {
    const policy = inputPolicy(c, t);
    // The prefix stored once per observation when frozen, else computed here with its gradient.
    const prefix = t.images ? policy.embedPrefix(t.images, t.tokens!, t.token_mask!) : prefixIn(c, t);
    const ctx = context(policy, prefix, t.state!);
    const [B, P, H, D] = t.points!.shape as [number, number, number, number];
    const xs = Array.from({ length: P }, (_, i) => op.reshape(op.slice(t.points!, 1, i, i + 1), [B, H, D]));
    const part = (x: Tensor, j: number) => op.slice(x, 0, j * B, (j + 1) * B);
    const steps = Array.from({ length: P - 1 }, (_, j) => ({ temb: part(t.step_temb!, j), a: part(t.step_a!, j), b: part(t.step_b!, j), std: part(t.step_std!, j), explore: part(t.step_explore!, j) }));
    const out = chainLogProb(policy, ctx, cfg, xs, steps);
    const l = ppoLoss({ ...out, oldLogProb: t.old_log_prob!, oldValue: t.old_value!, advantages: t.advantages!, returns: t.returns!, weight: t.weight! }, s);
    op.backward(criticOnly ? l.valueLoss : l.loss);
    return gradOutputs(policy, { loss: l.loss, policy_loss: l.policyLoss, value_loss: l.valueLoss, entropy: l.entropy, ratio: l.ratio, value: op.detach(out.value) });
  };
}

/**
 * Flow-matching SFT (openpi convention: x_t = t·ε + (1 − t)·a, target ε − a): inputs p.<every
 * parameter>, images, tokens, token_mask, state (normalised), actions (normalised) [B, H, D], noise
 * ε [B, H, D], t [B, 1, 1] and its embedding temb [B, W]. Outputs the loss and every gradient.
 */
export function sftFn(c: ModelConfig): TensorFn {
  return (t) => {
    const policy = inputPolicy(c, t);
    const ctx = context(policy, policy.embedPrefix(t.images!, t.tokens!, t.token_mask!), t.state!);
    const xt = op.add(op.mul(t.noise!, t.t!), op.mul(t.actions!, op.affine(t.t!, -1, 1)));
    const { velocity } = policy.expert(ctx.prefix, ctx.bias, ctx.stateTok, xt, t.temb!);
    const loss = op.mse(velocity, op.sub(t.noise!, t.actions!));
    op.backward(loss);
    return gradOutputs(policy, { loss });
  };
}
