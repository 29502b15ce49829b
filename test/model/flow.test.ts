// Flow sampler math against hand-computed values and closed forms.
import { describe, expect, test } from "bun:test";
import { gaussianEntropy, gaussianLogProb, sdeSigma, stepMean, stepWeights, timeGrid } from "../../src/model/flow.ts";

describe("flow-SDE schedule", () => {
  test("grid is linspace(1, 1/K, K) then 0", () => {
    expect(timeGrid(4)).toEqual([1, 0.75, 0.5, 0.25, 0]);
    expect(timeGrid(1)).toEqual([1, 0]);
    expect(() => timeGrid(0)).toThrow("positive integer");
  });

  test("K = 4, noise_level 0.5: σ = 1, 0.866, 0.5, 0.289 and stds 0.5, 0.433, 0.25, 0.144", () => {
    const grid = timeGrid(4);
    const sig = grid.slice(0, 4).map((t) => sdeSigma(t, 0.5, grid));
    const std = grid.slice(0, 4).map((t) => stepWeights("flow_sde", t, 0.25, 0.5, grid).std);
    expect(sig.map((s) => +s.toFixed(3))).toEqual([1, 0.866, 0.5, 0.289]);
    expect(std.map((s) => +s.toFixed(3))).toEqual([0.5, 0.433, 0.25, 0.144]);
    // Exact forms: √δ·a·√(t/(1−t')).
    expect(std[1]).toBeCloseTo(0.5 * 0.5 * Math.sqrt(3), 12);
  });

  test("the SDE mean equals x_t − δ[v + σ²/(2t)(x_t + (1−t)v)]", () => {
    const grid = timeGrid(4);
    const xt = [0.3, -1.2, 2.0];
    const v = [0.7, 0.1, -0.4];
    for (const t of [1, 0.75, 0.5, 0.25]) {
      const delta = 0.25;
      const s = sdeSigma(t, 0.5, grid);
      const mean = stepMean(xt, v, t, stepWeights("flow_sde", t, delta, 0.5, grid));
      xt.forEach((x, i) => expect(mean[i]).toBeCloseTo(x - delta * (v[i]! + ((s * s) / (2 * t)) * (x + (1 - t) * v[i]!)), 12));
    }
  });

  test("the ODE mean is the Euler step x_t − δ·v with zero std", () => {
    const grid = timeGrid(5);
    const w = stepWeights("flow_ode", 0.6, 0.2, 0.5, grid);
    expect(w.std).toBe(0);
    const m = stepMean([1, 2], [3, -4], 0.6, w);
    expect(m[0]).toBeCloseTo(1 - 0.2 * 3, 12);
    expect(m[1]).toBeCloseTo(2 + 0.2 * 4, 12);
  });

  test("noise_level → 0 makes flow_sde equal flow_ode", () => {
    const grid = timeGrid(4);
    const ode = stepWeights("flow_ode", 0.5, 0.25, 0, grid);
    const sde = stepWeights("flow_sde", 0.5, 0.25, 1e-9, grid);
    expect(sde.w1).toBeCloseTo(ode.w1, 15);
    expect(sde.std).toBeLessThan(1e-9);
  });
});

describe("Gaussian densities", () => {
  test("log-prob equals the hand-computed density", () => {
    // N(1.3; 1.0, 0.5²): −log 0.5 − ½ log 2π − ½ (0.6)² = 0.693147 − 0.918939 − 0.18
    expect(gaussianLogProb(1.3, 1.0, 0.5)).toBeCloseTo(0.6931471805599453 - 0.9189385332046727 - 0.18, 12);
    expect(Math.exp(gaussianLogProb(0.2, 0.2, 1))).toBeCloseTo(1 / Math.sqrt(2 * Math.PI), 12);
    expect(gaussianLogProb(5, 1, 0)).toBe(0); // deterministic steps are masked
  });

  test("entropy is ½ log(2πe σ²)", () => {
    expect(gaussianEntropy(1)).toBeCloseTo(1.4189385332046727, 12);
    expect(gaussianEntropy(0.08)).toBeCloseTo(1.4189385332046727 + Math.log(0.08), 12);
  });
});
