// The WebGPU policy forward against the float64 reference (the same one the ONNX export meets).
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import * as op from "../../src/gpu/ops.ts";
import { initEngine } from "../../src/gpu/runtime.ts";
import { scopeAsync, Tensor } from "../../src/gpu/tensor.ts";
import { dims } from "../../src/model/config.ts";
import { Policy } from "../../src/model/policy.ts";
import { gaussian, perturbedParams, tinyModel } from "./helpers.ts";
import { refPrefix, refVelocity } from "./reference.ts";

// GPU work on SwiftShader (and child processes) can exceed bun's 5 s default on a busy 2-core machine.
setDefaultTimeout(60_000);

const cfg = tinyModel({
  image_size: 12, patch_size: 4, vit_width: 12, vit_depth: 2, vit_heads: 3, vit_mlp: 20,
  head_dim: 5, mlp: 24, vocab_size: 30, max_text_len: 7, expert_width: 10, expert_mlp: 14, horizon: 6,
});

describe("WebGPU policy forward", () => {
  test("prefix K/V and expert velocity match the float64 reference", async () => {
    await initEngine();
    const normal = gaussian(5);
    const arrays = perturbedParams(cfg, 5);
    const d = dims(cfg);
    const B = 2;
    const images = Uint8Array.from({ length: B * 2 * 12 * 12 * 3 }, (_, i) => (i * 37 + (i >> 5) * 11) % 256);
    const ids = [1, 5, 9, 12, 2, 0, 0, 1, 7, 2, 0, 0, 0, 0];
    const mask = [1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0];
    const stateN = Float32Array.from({ length: B * 8 }, (_, i) => Math.cos(i));
    const xt = Float32Array.from({ length: B * cfg.horizon * 7 }, () => normal());
    const t = 0.75;
    const policy = Policy.fromArrays(cfg, arrays, true);
    const got = await scopeAsync(async () =>
      op.noGrad(() => {
        const prefix = policy.embedPrefix(Tensor.from(images, [B, 2, 12, 12, 3], "u8"), Tensor.from(ids, [B, 7], "i32"), mask);
        const { velocity } = policy.expert(prefix, policy.suffixBias(prefix), policy.stateToken(Tensor.from(stateN, [B, 8])), Tensor.from(xt, [B, cfg.horizon, 7]), t);
        return { k: prefix.k.map((x) => x.read()), v: velocity.read() };
      }),
    );
    const ks = await Promise.all(got.k);
    const vel = await got.v;
    let maxK = 0;
    let maxV = 0;
    for (let b = 0; b < B; b++) {
      const ref = refPrefix(cfg, arrays, images.subarray(b * 864, (b + 1) * 864), ids.slice(b * 7, b * 7 + 7), mask.slice(b * 7, b * 7 + 7));
      for (let l = 0; l < cfg.depth; l++)
        for (let h = 0; h < cfg.heads; h++)
          for (let tok = 0; tok < d.prefixLen; tok++)
            for (let j = 0; j < cfg.head_dim; j++)
              maxK = Math.max(maxK, Math.abs(ks[l]![((b * cfg.heads + h) * d.prefixLen + tok) * cfg.head_dim + j]! - ref.k[l]!.a[tok * d.attnDim + h * cfg.head_dim + j]!));
      const rv = refVelocity(cfg, arrays, ref, stateN.subarray(b * 8, b * 8 + 8), Float64Array.from(xt.subarray(b * cfg.horizon * 7, (b + 1) * cfg.horizon * 7)), t);
      rv.a.forEach((want, j) => (maxV = Math.max(maxV, Math.abs(vel[b * cfg.horizon * 7 + j]! - want))));
    }
    expect(maxK).toBeLessThan(1e-4);
    expect(maxV).toBeLessThan(1e-4);
  });
});
