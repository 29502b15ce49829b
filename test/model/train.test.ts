// Flow-matching training end to end on SwiftShader: a tiny model overfits one (observation, chunk)
// pair and its ODE sample then reproduces the chunk; plus the loss's time distribution and stats.
import { beforeAll, describe, expect, test } from "bun:test";
import * as op from "../../src/gpu/ops.ts";
import { AdamW } from "../../src/gpu/optim.ts";
import { Rng } from "../../src/gpu/random.ts";
import { initEngine } from "../../src/gpu/runtime.ts";
import { scope, scopeAsync, Tensor } from "../../src/gpu/tensor.ts";
import { initParameters } from "../../src/model/config.ts";
import { computeLoss, sampleFlowTimes } from "../../src/model/loss.ts";
import { computeStats, normalize, unnormalize } from "../../src/model/normalize.ts";
import { Policy } from "../../src/model/policy.ts";
import { context, sampleActions } from "../../src/model/sampler.ts";
import { Rng as CpuRng } from "../../src/sim/math.ts";
import { gaussian, tinyModel } from "./helpers.ts";

const cfg = tinyModel({
  num_images: 1, vit_width: 16, vit_mlp: 32, head_dim: 8, mlp: 32,
  vocab_size: 16, max_text_len: 4, expert_width: 32, expert_mlp: 64, horizon: 4,
});

/** Uniform [0, 1) draws from a seeded stream. */
const uniform = (seed: number) => {
  const r = new CpuRng(seed);
  return () => r.next();
};

beforeAll(async () => {
  await initEngine();
});

describe("flow matching", () => {
  test("flow times follow Beta(1.5, 1)·0.999 + 0.001: range and mean 0.6·0.999 + 0.001", () => {
    const t = sampleFlowTimes(20000, uniform(1));
    expect(Math.min(...t)).toBeGreaterThanOrEqual(0.001);
    expect(Math.max(...t)).toBeLessThan(1);
    const mean = t.reduce((a, b) => a + b, 0) / t.length;
    expect(Math.abs(mean - (0.6 * 0.999 + 0.001))).toBeLessThan(0.01); // Beta(1.5, 1) has mean 0.6
  });

  test("a tiny model overfits one (observation, action chunk) pair; its ODE sample reproduces the chunk", async () => {
    const u = uniform(3);
    const normal = gaussian(3);
    // train_expert_only: the prefix of the one observation is computed once, as in RL rollouts.
    const policy = Policy.fromArrays(cfg, initParameters(cfg, normal), true);
    const trainable = [...policy.params].filter(([, t]) => t.requiresGrad);
    const opt = new AdamW([{ params: trainable, lr: 1e-2 }], { betas: [0.9, 0.99], weightDecay: 0 });
    const B = 16; // the same pair under many noise/time draws per step
    const pixels = Uint8Array.from({ length: 16 * 16 * 3 }, (_, i) => (i * 13) % 256);
    const images = Tensor.from(pixels, [1, 1, 16, 16, 3], "u8");
    const ids = Tensor.from([1, 5, 6, 2], [1, 4], "i32");
    const state = Tensor.from(Float32Array.from({ length: 8 }, (_, i) => 0.1 * i), [1, 8]);
    const imagesB = Tensor.from(Uint8Array.from({ length: B * pixels.length }, (_, i) => pixels[i % pixels.length]!), [B, 1, 16, 16, 3], "u8");
    const idsB = Tensor.from(Array.from({ length: B * 4 }, (_, i) => [1, 5, 6, 2][i % 4]!), [B, 4], "i32");
    const ctxB = op.noGrad(() => context(policy, policy.embedPrefix(imagesB, idsB, Array(B * 4).fill(1)), op.expand(state, [B, 8])));
    const chunk = Float32Array.from({ length: cfg.horizon * 7 }, (_, i) => Math.sin(i * 0.9) * 0.8);
    const actionsB = op.expand(Tensor.from(chunk, [1, cfg.horizon, 7]), [B, cfg.horizon, 7]);
    const rng = new Rng(17);
    const t0 = performance.now();
    const losses: number[] = [];
    const steps = 400;
    for (let step = 0; step < steps; step++) {
      opt.groups[0]!.lr = 1e-2 * 0.5 * (1 + Math.cos((Math.PI * step) / steps)); // cosine decay to 0
      const loss = scope(() => {
        const l = computeLoss(policy, ctxB, actionsB, rng.normal([B, cfg.horizon, 7]), sampleFlowTimes(B, u));
        op.backward(l);
        opt.update();
        opt.zeroGrad();
        return l;
      });
      if (step < 20 || step >= steps - 20) losses.push(await loss.item());
      loss.dispose();
    }
    const seconds = (performance.now() - t0) / 1000;
    const first = losses.slice(0, 20).reduce((a, b) => a + b) / 20;
    const last = losses.slice(-20).reduce((a, b) => a + b) / 20;
    expect(last).toBeLessThan(first / 10);
    const sample = await scopeAsync(async () =>
      op.noGrad(() => {
        const prefix = policy.embedPrefix(images, ids, [1, 1, 1, 1]);
        const cfgS = { numSteps: 10, method: "flow_ode" as const, noiseLevel: 0, chunk: cfg.horizon, envDim: 7, jointLogprob: false, detachCritic: true };
        return sampleActions(policy, context(policy, prefix, state), cfgS, (shape) => rng.normal(shape), false, () => 0).chain.read();
      }),
    );
    const x0 = sample.subarray(10 * cfg.horizon * 7);
    let err = 0;
    for (let i = 0; i < chunk.length; i++) err = Math.max(err, Math.abs(x0[i]! - chunk[i]!));
    expect(err).toBeLessThan(0.1);
    console.log(`overfit: loss ${first.toFixed(3)} → ${last.toFixed(4)}, max |sample − chunk| ${err.toFixed(3)}, ${seconds.toFixed(1)} s for ${steps} steps`);
  }, 120_000);
});

describe("normalisation", () => {
  test("stats, normalise and unnormalise round trip; constant dims get the std floor", () => {
    const rows = [[1, 5, 2], [3, 5, 2], [5, 5, 2]];
    const s = computeStats(rows, 3);
    expect(s.mean).toEqual([3, 5, 2]);
    expect(s.std[0]).toBeCloseTo(Math.sqrt(8 / 3), 12);
    expect(s.std[1]).toBe(1e-4);
    const flat = rows.flat();
    const n = normalize(flat, s);
    expect(n[0]).toBeCloseTo(-2 / Math.sqrt(8 / 3), 6);
    expect(Array.from(unnormalize(n, s)).map((v) => +v.toFixed(5))).toEqual(flat);
    expect(() => computeStats([[1, 2]], 3)).toThrow("2 values, expected 3");
  });
});
