// The ONNX rollout sampler against the WebGPU sampler on the same noise: chain, log-prob, entropy
// and value, for every noise method, joint log-probs and evaluation.
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import * as op from "../../src/gpu/ops.ts";
import { initEngine } from "../../src/gpu/runtime.ts";
import { scopeAsync, Tensor } from "../../src/gpu/tensor.ts";
import { exportSamplerOnnx } from "../../src/model/onnx_sampler.ts";
import { Policy } from "../../src/model/policy.ts";
import { context, sampleActions, type SamplerConfig } from "../../src/model/sampler.ts";
import { loadOnnxRuntime } from "../../src/onnx/runtime.ts";
import { gaussian, perturbedParams, tinyModel } from "./helpers.ts";

// GPU work on SwiftShader can exceed bun's 5 s default on a busy 2-core machine.
setDefaultTimeout(60_000);

const B = 2;
const K = 4;
const unit = (n: number) => ({ mean: Array(n).fill(0), std: Array(n).fill(1) });

beforeAll(async () => {
  await initEngine();
});

describe("ONNX rollout sampler", () => {
  const cases: [string, Partial<SamplerConfig>, boolean, number][] = [
    ["flow_sde, one step", { method: "flow_sde" }, true, 2],
    ["flow_sde, joint", { method: "flow_sde", jointLogprob: true }, true, -1],
    ["flow_noise, one step", { method: "flow_noise" }, true, 1],
    ["flow_noise, joint", { method: "flow_noise", jointLogprob: true }, true, -1],
    ["evaluation (all ODE)", { method: "flow_sde" }, false, -1],
  ];
  test.each(cases)("%s equals the WebGPU sampler on the same noise", async (_, over, train, step) => {
    const cfg = tinyModel({ add_noise_head: true, value_after_vlm: over.jointLogprob === true && over.method === "flow_sde" });
    const params = perturbedParams(cfg, 21);
    const sc: SamplerConfig = { numSteps: K, method: "flow_sde", noiseLevel: 0.5, chunk: 5, envDim: 6, jointLogprob: false, detachCritic: true, ...over };
    const g = gaussian(4);
    const HD = cfg.horizon * cfg.action_dim;
    const noise = Float32Array.from({ length: B * HD }, g);
    const eps = Float32Array.from({ length: B * K * HD }, g);
    const images = Uint8Array.from({ length: B * 2 * 16 * 16 * 3 }, (_, i) => (i * 11) % 256);
    const ids = [1, 3, 5, 2, 0, 1, 4, 2, 0, 0];
    const mask = ids.map((v, i) => (v !== 0 || i % 5 === 0 ? 1 : 0));
    const state = Float32Array.from({ length: B * 8 }, (_, i) => Math.sin(i));
    const explores = (i: number) => train && (sc.jointLogprob || i === step);

    // WebGPU: the normal source hands out x_1, then eps of each exploring step in order.
    const draws = [noise, ...Array.from({ length: K }, (_, i) => i).filter(explores).map((i) => Float32Array.from({ length: B * HD }, (_, j) => eps[(Math.floor(j / HD) * K + i) * HD + (j % HD)]!))];
    const policy = Policy.fromArrays(cfg, params, true);
    const gpu = await scopeAsync(async () =>
      op.noGrad(() => {
        const prefix = policy.embedPrefix(Tensor.from(images, [B, 2, 16, 16, 3], "u8"), Tensor.from(ids, [B, 5], "i32"), mask);
        const smp = sampleActions(policy, context(policy, prefix, Tensor.from(state, [B, 8])), sc, (shape) => Tensor.from(draws.shift()!, shape), train, () => step);
        return { chain: smp.chain.read(), lp: smp.logProb.read(), ent: smp.entropy.read(), v: smp.value.read(), step: smp.stepIndex };
      }),
    );
    expect(draws).toHaveLength(0);

    const ort = await loadOnnxRuntime();
    const session = await ort.InferenceSession.create(exportSamplerOnnx(cfg, params, unit(8), sc));
    const out = await session.run({
      images: new ort.Tensor("uint8", images, [B, 2, 16, 16, 3]),
      tokens: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [B, 5]),
      token_mask: new ort.Tensor("float32", Float32Array.from(mask), [B, 5]),
      state: new ort.Tensor("float32", state, [B, 8]),
      noise: new ort.Tensor("float32", noise, [B, cfg.horizon, cfg.action_dim]),
      eps: new ort.Tensor("float32", eps, [B, K, cfg.horizon, cfg.action_dim]),
      step_mask: new ort.Tensor("float32", Float32Array.from({ length: K }, (_, i) => (explores(i) ? 1 : 0)), [K]),
    });
    await session.release();
    const close = (got: Float32Array, want: Float32Array, what: string) => {
      let diff = 0;
      for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!)));
      expect([what, diff < 1e-4]).toEqual([what, true]);
    };
    close(out.chain!.data as Float32Array, await gpu.chain, "chain");
    close(out.log_prob!.data as Float32Array, await gpu.lp, "log_prob");
    close(out.entropy!.data as Float32Array, await gpu.ent, "entropy");
    close(out.value!.data as Float32Array, await gpu.v, "value");
    if (train) expect(Array.from(await gpu.lp).every((v) => v !== 0)).toBe(true);
  });
});
