// Flow-matching sampler math (openpi / RLinf conventions), in float64 on the CPU: the time grid, the
// flow-SDE weights every sampler step takes as inputs (sampler.ts stepHost), and the scalar densities
// the tests check the samplers against.
//
// Time convention, stated once: t = 1 is pure noise, t = 0 is the action.
//   x_t = t·ε + (1 − t)·a,   velocity target v = ε − a,   Euler step x_{t−δ} = x_t − δ·v.
// Grid: linspace(1, 1/K, K) then 0, so t_i = 1 − i/K and every step has δ = 1/K.

import { HALF_LOG_2PI } from "../engine/ops.ts";

export type NoiseMethod = "flow_ode" | "flow_sde" | "flow_noise";

/** SFT's flow times: Beta(1.5, 1) draws scaled into [0.001, 1) (openpi); Beta(a, 1) is U^(1/a). */
export function sampleFlowTimes(B: number, uniform: () => number): number[] {
  return Array.from({ length: B }, () => Math.pow(uniform(), 1 / 1.5) * 0.999 + 0.001);
}

/** The K+1 times 1, 1 − 1/K, …, 1/K, 0. */
export function timeGrid(K: number): number[] {
  if (!Number.isInteger(K) || K < 1) throw new Error(`num_steps must be a positive integer, got ${K}`);
  return Array.from({ length: K + 1 }, (_, i) => (i === K ? 0 : 1 - i / K));
}

/**
 * Flow-SDE diffusion scale σ_t = a·√(t / (1 − t')), where t' = t except at t = 1, where RLinf
 * substitutes the next grid time to avoid dividing by zero.
 */
export function sdeSigma(t: number, noiseLevel: number, grid: number[]): number {
  const denomT = t === 1 ? grid[1]! : t;
  return noiseLevel * Math.sqrt(t / (1 - denomT));
}

/** Weights of one Gaussian transition: mean = w0·x0_pred + w1·x1_pred, and its std. */
export interface StepWeights {
  w0: number;
  w1: number;
  std: number;
}

/**
 * Transition weights at time t with step δ. flow_noise uses the ODE mean; its std comes from the
 * learned noise head, so `std` here is 0 for it and the caller supplies the head's output.
 */
export function stepWeights(method: NoiseMethod, t: number, delta: number, noiseLevel: number, grid: number[]): StepWeights {
  const w0 = 1 - (t - delta);
  if (method === "flow_sde") {
    const sigma = sdeSigma(t, noiseLevel, grid);
    return { w0, w1: t - delta - (sigma * sigma * delta) / (2 * t), std: Math.sqrt(delta) * sigma };
  }
  return { w0, w1: t - delta, std: 0 };
}

/** Mean of x_{t−δ} given x_t and velocity v: w0·(x_t − v·t) + w1·(x_t + v·(1 − t)), elementwise. */
export function stepMean(xt: ArrayLike<number>, v: ArrayLike<number>, t: number, w: StepWeights): Float64Array {
  const out = new Float64Array(xt.length);
  for (let i = 0; i < xt.length; i++) {
    const x0 = xt[i]! - v[i]! * t;
    const x1 = xt[i]! + v[i]! * (1 - t);
    out[i] = w.w0 * x0 + w.w1 * x1;
  }
  return out;
}


/** log N(x; μ, σ²) per element; σ = 0 (a deterministic step) contributes 0, as RLinf masks it. */
export function gaussianLogProb(x: number, mean: number, std: number): number {
  if (std === 0) return 0;
  const z = (x - mean) / std;
  return -Math.log(std) - HALF_LOG_2PI - 0.5 * z * z;
}

/** Differential entropy ½·log(2πe·σ²) of one Gaussian element. */
export function gaussianEntropy(std: number): number {
  return 0.5 * Math.log(2 * Math.PI * Math.E * std * std);
}
