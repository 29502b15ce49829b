// The exported ONNX prefix and ODE policy, run in ONNX Runtime, against the float64 reference.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { dims } from "../../src/model/config.ts";
import { exportPolicyOnnx, exportPrefixOnnx } from "../../src/model/onnx_export.ts";
import { loadOnnxRuntime } from "../../src/onnx/runtime.ts";
import { gaussian, perturbedParams, tinyModel } from "./helpers.ts";
import { refPrefix, refVelocity } from "./reference.ts";

// GPU work on SwiftShader (and child processes) can exceed bun's 5 s default on a busy 2-core machine.
setDefaultTimeout(60_000);

/** Odd sizes everywhere, small enough for a float64 loop. */
const cfg = tinyModel({
  image_size: 12, patch_size: 4, vit_width: 12, vit_depth: 2, vit_heads: 3, vit_mlp: 20,
  width: 16, depth: 2, heads: 2, head_dim: 5, mlp: 24, vocab_size: 30, max_text_len: 7,
  expert_width: 10, expert_mlp: 14, horizon: 6,
});

const B = 2;
const normal = gaussian(11);
const params = perturbedParams(cfg, 11);
const d = dims(cfg);
const images = Uint8Array.from({ length: B * cfg.num_images * cfg.image_size ** 2 * 3 }, (_, i) => (i * 37 + (i >> 5) * 11) % 256);
const ids = [1, 5, 9, 12, 2, 0, 0, 1, 7, 2, 0, 0, 0, 0]; // [B, L]
const mask = [1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0];
const stats = {
  state: { mean: Array.from({ length: 8 }, (_, i) => 0.1 * i), std: Array.from({ length: 8 }, (_, i) => 0.5 + 0.1 * i) },
  actions: { mean: Array.from({ length: 7 }, (_, i) => -0.05 * i), std: Array.from({ length: 7 }, (_, i) => 0.3 + 0.05 * i) },
};
const exampleOf = (b: number) => ({
  images: images.subarray(b * cfg.num_images * cfg.image_size ** 2 * 3, (b + 1) * cfg.num_images * cfg.image_size ** 2 * 3),
  ids: ids.slice(b * cfg.max_text_len, (b + 1) * cfg.max_text_len),
  mask: mask.slice(b * cfg.max_text_len, (b + 1) * cfg.max_text_len),
});
const feeds = async () => {
  const ort = await loadOnnxRuntime();
  return {
    images: new ort.Tensor("uint8", images, [B, cfg.num_images, cfg.image_size, cfg.image_size, 3]),
    tokens: new ort.Tensor("int64", BigInt64Array.from(ids.map(BigInt)), [B, cfg.max_text_len]),
    token_mask: new ort.Tensor("float32", Float32Array.from(mask), [B, cfg.max_text_len]),
  };
};

describe("ONNX export", () => {
  test("the prefix's per-layer K/V in ONNX Runtime equal the float64 reference", async () => {
    const ort = await loadOnnxRuntime();
    const session = await ort.InferenceSession.create(exportPrefixOnnx(cfg, params));
    const out = await session.run(await feeds());
    const K = out.prefix_k!;
    expect(K.dims).toEqual([cfg.depth, B, cfg.heads, d.prefixLen, cfg.head_dim]);
    let maxDiff = 0;
    for (let b = 0; b < B; b++) {
      const e = exampleOf(b);
      const ref = refPrefix(cfg, params, e.images, e.ids, e.mask);
      for (let l = 0; l < cfg.depth; l++)
        for (let h = 0; h < cfg.heads; h++)
          for (let t = 0; t < d.prefixLen; t++)
            for (let j = 0; j < cfg.head_dim; j++) {
              const at = (((l * B + b) * cfg.heads + h) * d.prefixLen + t) * cfg.head_dim + j;
              maxDiff = Math.max(maxDiff, Math.abs((K.data as Float32Array)[at]! - ref.k[l]!.a[t * d.attnDim + h * cfg.head_dim + j]!));
              maxDiff = Math.max(maxDiff, Math.abs((out.prefix_v!.data as Float32Array)[at]! - ref.v[l]!.a[t * d.attnDim + h * cfg.head_dim + j]!));
            }
    }
    expect(maxDiff).toBeLessThan(1e-4);
    await session.release();
  });

  test("the ODE policy in ONNX Runtime equals K reference Euler steps from the same noise", async () => {
    const ort = await loadOnnxRuntime();
    const K = 3;
    const session = await ort.InferenceSession.create(exportPolicyOnnx(cfg, params, stats, K));
    const state = Float32Array.from({ length: B * 8 }, (_, i) => Math.sin(i));
    const noise = Float32Array.from({ length: B * cfg.horizon * cfg.action_dim }, () => normal());
    const out = await session.run({
      ...(await feeds()),
      state: new ort.Tensor("float32", state, [B, 8]),
      noise: new ort.Tensor("float32", noise, [B, cfg.horizon, cfg.action_dim]),
    });
    const got = out.actions!.data as Float32Array;
    let maxDiff = 0;
    let spread = 0;
    for (let b = 0; b < B; b++) {
      const e = exampleOf(b);
      const prefix = refPrefix(cfg, params, e.images, e.ids, e.mask);
      const stateN = Array.from({ length: 8 }, (_, i) => (state[b * 8 + i]! - stats.state.mean[i]!) / stats.state.std[i]!);
      let x = Float64Array.from(noise.subarray(b * cfg.horizon * 7, (b + 1) * cfg.horizon * 7));
      for (let i = 0; i < K; i++) {
        const v = refVelocity(cfg, params, prefix, stateN, x, 1 - i / K);
        x = x.map((xv, j) => xv - v.a[j]! / K);
      }
      x.forEach((xv, j) => {
        const want = xv * stats.actions.std[j % 7]! + stats.actions.mean[j % 7]!;
        maxDiff = Math.max(maxDiff, Math.abs(got[b * cfg.horizon * 7 + j]! - want));
        spread = Math.max(spread, Math.abs(want));
      });
    }
    expect(spread).toBeGreaterThan(0.1); // the comparison is not between near-zero numbers
    expect(maxDiff).toBeLessThan(1e-4);
    await session.release();
  });

  test("a parameter table that does not match the config is refused", () => {
    const short = new Map(params);
    short.delete("expert.final_norm.weight");
    expect(() => exportPrefixOnnx(cfg, short)).toThrow("parameter expert.final_norm.weight is missing");
  });
});
