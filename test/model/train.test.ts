// Flow-matching training end to end on ONNX Runtime (the SFT program and the Learner): a tiny model
// overfits one (observation, chunk) pair and its ODE sample then reproduces the chunk; plus the flow
// times' distribution and the normalisation statistics.
import { beforeAll, describe, expect, test } from "bun:test";
import { compile, host } from "../../src/engine/compile.ts";
import { Learner } from "../../src/engine/learner.ts";
import { initEngine } from "../../src/engine/runtime.ts";
import { initParameters, parameterShapes, timeEmbeddings } from "../../src/model/config.ts";
import { sampleFlowTimes } from "../../src/model/flow.ts";
import { computeStats, normalize, unnormalize } from "../../src/model/normalize.ts";
import { constantPolicy, samplerFn, sftFn } from "../../src/model/programs.ts";
import { stepHost } from "../../src/model/sampler.ts";
import { Rng } from "../../src/util/random.ts";
import { gaussian, tinyModel } from "./helpers.ts";

const cfg = tinyModel({
  num_images: 1, vit_width: 16, vit_mlp: 32, head_dim: 8, mlp: 32,
  vocab_size: 16, max_text_len: 4, expert_width: 32, expert_mlp: 64, horizon: 4,
});

/** Uniform [0, 1) draws from a seeded stream. */
const uniform = (seed: number) => {
  const r = new Rng(seed);
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
    const shapes = parameterShapes(cfg);
    const lr = 1e-2;
    const learner = new Learner("onnx", initParameters(cfg, normal), shapes, [{ names: [...shapes.keys()], lr }], { betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0, maxGradNorm: 0 });
    const sft = compile("sft", sftFn(cfg), "onnx");
    const B = 16; // the same pair under many noise/time draws per step
    const H = cfg.horizon;
    const pixels = Uint8Array.from({ length: 16 * 16 * 3 }, (_, i) => (i * 13) % 256);
    const tokens = [1, 5, 6, 2];
    const state = Float32Array.from({ length: 8 }, (_, i) => 0.1 * i);
    const chunk = Float32Array.from({ length: H * 7 }, (_, i) => Math.sin(i * 0.9) * 0.8);
    const repeat = <T extends Float32Array | Int32Array | Uint8Array>(a: ArrayLike<number>, n: number, make: (len: number) => T): T => {
      const out = make(a.length * n);
      for (let b = 0; b < n; b++) out.set(a, b * a.length);
      return out;
    };
    const obs = (n: number) => ({
      images: host(repeat(pixels, n, (l) => new Uint8Array(l)), [n, 1, 16, 16, 3]),
      tokens: host(repeat(tokens, n, (l) => new Int32Array(l)), [n, 4]),
      token_mask: host(new Float32Array(n * 4).fill(1), [n, 4]),
      state: host(repeat(state, n, (l) => new Float32Array(l)), [n, 8]),
    });
    const batch = { ...obs(B), actions: host(repeat(chunk, B, (l) => new Float32Array(l)), [B, H, 7]) };
    const t0 = performance.now();
    const losses: number[] = [];
    const steps = 400;
    for (let step = 0; step < steps; step++) {
      learner.groups[0]!.lr = lr * 0.5 * (1 + Math.cos((Math.PI * step) / steps)); // cosine decay to 0
      const ts = sampleFlowTimes(B, u);
      const out = await learner.accumulate(sft, {
        ...batch,
        noise: host(Float32Array.from({ length: B * H * 7 }, normal), [B, H, 7]),
        t: host(Float32Array.from(ts), [B, 1, 1]),
        temb: host(timeEmbeddings(ts, cfg.expert_width), [B, cfg.expert_width]),
      });
      await learner.update();
      if (step < 20 || step >= steps - 20) losses.push(out.loss![0]!);
    }
    const seconds = (performance.now() - t0) / 1000;
    await sft.release();
    const first = losses.slice(0, 20).reduce((a, b) => a + b) / 20;
    const last = losses.slice(-20).reduce((a, b) => a + b) / 20;
    expect(last).toBeLessThan(first / 10);
    // Ten flow-ODE steps from fresh noise.
    const K = 10;
    const sc = { numSteps: K, method: "flow_ode" as const, noiseLevel: 0, chunk: H, envDim: 7, jointLogprob: false, detachCritic: true };
    const h = stepHost(sc, cfg.expert_width, Array.from({ length: K }, (_, i) => i), Array(K).fill(false));
    const sampler = compile("sampler", samplerFn(constantPolicy(cfg, learner.params), sc), "onnx");
    const out = await sampler.run({
      ...obs(1),
      noise: host(Float32Array.from({ length: H * 7 }, normal), [1, H, 7]),
      eps: host(new Float32Array(K * H * 7), [K, 1, H, 7]),
      step_a: host(h.a, [K]),
      step_b: host(h.b, [K]),
      step_std: host(h.std, [K]),
      step_explore: host(h.explore, [K]),
    });
    await sampler.release();
    await learner.release();
    const x0 = out.chain!.subarray(K * H * 7);
    let err = 0;
    for (let i = 0; i < chunk.length; i++) err = Math.max(err, Math.abs(x0[i]! - chunk[i]!));
    expect(err, `max |sample − chunk| ${err}`).toBeLessThan(0.1);
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
