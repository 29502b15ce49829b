// The policy's forward against the float64 reference (test/model/reference.ts): the prefix program
// (per-layer K/V, pooled output) on WebGPU and traced into ONNX, and the expert's velocity, value and
// Flow-Noise std on WebGPU.
import { beforeAll, describe, setDefaultTimeout, test } from "bun:test";
import { type Backend, compile, host } from "../../src/engine/compile.ts";
import * as op from "../../src/engine/ops.ts";
import { initEngine } from "../../src/engine/runtime.ts";
import { scopeAsync, Tensor } from "../../src/engine/tensor.ts";
import { dims, timeEmbeddings } from "../../src/model/config.ts";
import { Policy } from "../../src/model/policy.ts";
import { constantPolicy, prefixFn } from "../../src/model/programs.ts";
import { context } from "../../src/model/sampler.ts";
import { expectClose } from "../engine/helpers.ts";
import { gaussian, perturbedParams, tinyModel } from "./helpers.ts";
import { refExpert, refNoiseStd, refPrefix, refValue } from "./reference.ts";

// GPU work on SwiftShader can exceed bun's 5 s default on a busy 2-core machine.
setDefaultTimeout(60_000);

/** Odd sizes everywhere, small enough for a float64 loop; value head a ReLU MLP on the pooled prefix. */
const cfg = tinyModel({
  image_size: 12, patch_size: 4, vit_width: 12, vit_depth: 2, vit_heads: 3, vit_mlp: 20,
  head_dim: 5, mlp: 24, vocab_size: 30, max_text_len: 7, expert_width: 10, expert_mlp: 14, horizon: 6,
  value_after_vlm: true, value_hidden: [9, 5], add_noise_head: true,
});
const d = dims(cfg);
const B = 2;
const L = cfg.max_text_len;
const IMG = cfg.num_images * cfg.image_size ** 2 * 3;
const HA = cfg.horizon * cfg.action_dim;
const arrays = perturbedParams(cfg, 5);
const images = Uint8Array.from({ length: B * IMG }, (_, i) => (i * 37 + (i >> 5) * 11) % 256);
const ids = Int32Array.from([1, 5, 9, 12, 2, 0, 0, 1, 7, 2, 0, 0, 0, 0]);
const mask = Float32Array.from([1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0]);
const refs = [0, 1].map((b) => refPrefix(cfg, arrays, images.subarray(b * IMG, (b + 1) * IMG), ids.subarray(b * L, (b + 1) * L), mask.subarray(b * L, (b + 1) * L)));
// Float32 through a few layers against float64: |diff| ≤ 1e-5 + 1e-5·max|want|.
const ATOL = 1e-5;
const RTOL = 1e-5;

beforeAll(async () => {
  await initEngine();
});

describe.each(["webgpu", "onnx"] as Backend[])("prefix program on %s", (backend) => {
  test("per-layer K/V, the key bias and the pooled output equal the float64 reference", async () => {
    const fn = compile("prefix", prefixFn(constantPolicy(cfg, arrays)), backend);
    const out = await fn.run({ images: host(images, [B, cfg.num_images, cfg.image_size, cfg.image_size, 3]), tokens: host(ids, [B, L]), token_mask: host(mask, [B, L]) });
    await fn.release();
    for (let l = 0; l < cfg.depth; l++) {
      // [B, heads, T, hd] from the reference's per-example [T, heads·hd].
      const want = (m: "k" | "v") =>
        Array.from({ length: B * d.attnDim * d.prefixLen }, (_, i) => {
          const j = i % cfg.head_dim;
          const tok = Math.floor(i / cfg.head_dim) % d.prefixLen;
          const h = Math.floor(i / (cfg.head_dim * d.prefixLen)) % cfg.heads;
          const b = Math.floor(i / (cfg.head_dim * d.prefixLen * cfg.heads));
          return refs[b]![m][l]!.a[tok * d.attnDim + h * cfg.head_dim + j]!;
        });
      expectClose(out[`prefix_k${l}`]!, want("k"), `${backend} prefix K${l}`, ATOL, RTOL);
      expectClose(out[`prefix_v${l}`]!, want("v"), `${backend} prefix V${l}`, ATOL, RTOL);
    }
    expectClose(out.key_bias!, refs.flatMap((r) => r.keyMask.map((v) => (v ? 0 : -1e9))), `${backend} key bias`, 0, 0);
    expectClose(out.pooled!, refs.flatMap((r) => Array.from(r.pooled!)), `${backend} pooled`, ATOL, RTOL);
  });
});

test("the expert's velocity, value and Flow-Noise std on WebGPU equal the float64 reference", async () => {
  const normal = gaussian(5);
  const stateN = Float32Array.from({ length: B * 8 }, (_, i) => Math.cos(i));
  const xt = Float32Array.from({ length: B * HA }, () => normal());
  const ts = [0.75, 0.2];
  const policy = Policy.fromArrays(cfg, arrays, true);
  const got = await scopeAsync(async () =>
    op.noGrad(() => {
      const prefix = policy.embedPrefix(Tensor.from(images, [B, 2, 12, 12, 3], "u8"), Tensor.from(ids, [B, L], "i32"), Tensor.from(mask, [B, L]));
      const ctx = context(policy, prefix, Tensor.from(stateN, [B, 8]));
      const { velocity, actionOut } = policy.expert(ctx.prefix, ctx.bias, ctx.stateTok, Tensor.from(xt, [B, cfg.horizon, 7]), Tensor.from(timeEmbeddings(ts, cfg.expert_width), [B, cfg.expert_width]));
      return Promise.all([velocity.read(), policy.value(prefix, actionOut, true).read(), policy.noiseStd(actionOut).read()]);
    }),
  );
  for (const t of policy.params.values()) t.dispose();
  const want = { v: [] as number[], value: [] as number[], std: [] as number[] };
  for (let b = 0; b < B; b++) {
    const r = refExpert(cfg, arrays, refs[b]!, stateN.subarray(b * 8, b * 8 + 8), xt.subarray(b * HA, (b + 1) * HA), ts[b]!);
    want.v.push(...r.velocity.a);
    want.value.push(refValue(cfg, arrays, refs[b]!, r.actionOut));
    want.std.push(...refNoiseStd(arrays, r.actionOut).a);
  }
  expectClose(got[0], want.v, "velocity", ATOL, RTOL);
  expectClose(got[1], want.value, "value (pooled prefix)", ATOL, RTOL);
  expectClose(got[2], want.std, "Flow-Noise std", ATOL, RTOL);
});
