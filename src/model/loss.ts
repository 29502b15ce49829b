// Flow-matching training loss (openpi convention): x_t = t·ε + (1 − t)·a, target u = ε − a,
// loss = mean((v_θ(x_t, t) − u)²) with t ~ Beta(1.5, 1)·0.999 + 0.001 per example.
import * as op from "../gpu/ops.ts";
import { Tensor } from "../gpu/tensor.ts";
import type { Policy } from "./policy.ts";
import type { Context } from "./sampler.ts";

/** Beta(1.5, 1) draws scaled into [0.001, 1): Beta(a, 1) is U^(1/a). */
export function sampleFlowTimes(B: number, uniform: () => number): number[] {
  return Array.from({ length: B }, () => Math.pow(uniform(), 1 / 1.5) * 0.999 + 0.001);
}

/**
 * actions: normalised chunks [B, H, action_dim]; noise ε of the same shape; t one time per example.
 * Returns the scalar loss (with gradients into whatever the context and policy track).
 */
export function computeLoss(policy: Policy, ctx: Context, actions: Tensor, noise: Tensor, t: readonly number[]): Tensor {
  const B = actions.shape[0]!;
  if (t.length !== B) throw new Error(`computeLoss: ${t.length} times for a batch of ${B}`);
  const tt = Tensor.from(t, [B, 1, 1]);
  const xt = op.add(op.mul(noise, tt), op.mul(actions, op.affine(tt, -1, 1)));
  const target = op.sub(noise, actions);
  const { velocity } = policy.expert(ctx.prefix, ctx.bias, ctx.stateTok, xt, t);
  return op.mse(velocity, target);
}
