// Flow samplers on the WebGPU policy: agreement with ONNX Runtime and with hand-computed densities,
// ratio 1 between rollout and recomputed log-probs, and where gradients may flow.
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import * as op from "../../src/gpu/ops.ts";
import { initEngine } from "../../src/gpu/runtime.ts";
import { scope, scopeAsync, Tensor } from "../../src/gpu/tensor.ts";
import { isPrefixParameter, type ModelConfig } from "../../src/model/config.ts";
import { gaussianLogProb, stepMean, stepWeights, timeGrid } from "../../src/model/flow.ts";
import { exportPolicyOnnx } from "../../src/model/onnx_export.ts";
import { Policy } from "../../src/model/policy.ts";
import { context, logProbValue, logProbValueAt, sampleActions, type SamplerConfig } from "../../src/model/sampler.ts";
import { loadOnnxRuntime } from "../../src/onnx/runtime.ts";
import { normalSource, perturbedParams, tinyModel } from "./helpers.ts";

// GPU work on SwiftShader (and child processes) can exceed bun's 5 s default on a busy 2-core machine.
setDefaultTimeout(60_000);

const cfg = tinyModel({ add_noise_head: true });
const B = 3;
const K = 4;

const arrays = perturbedParams(cfg, 3);
const images = Uint8Array.from({ length: B * 2 * 16 * 16 * 3 }, (_, i) => (i * 29 + (i >> 6) * 7) % 256);
const ids = [1, 4, 7, 2, 0, 1, 9, 2, 0, 0, 1, 3, 5, 8, 2];
const mask = ids.map((v, i) => (v !== 0 || i % 5 === 0 ? 1 : 0));
const stateN = Float32Array.from({ length: B * 8 }, (_, i) => Math.sin(0.7 * i));
const sde = (over: Partial<SamplerConfig> = {}): SamplerConfig => ({ numSteps: K, method: "flow_sde", noiseLevel: 0.5, chunk: 5, envDim: 7, jointLogprob: false, detachCritic: true, ...over });

function setup(policy: Policy) {
  const prefix = policy.embedPrefix(Tensor.from(images, [B, 2, 16, 16, 3], "u8"), Tensor.from(ids, [B, 5], "i32"), mask);
  return context(policy, prefix, Tensor.from(stateN, [B, 8]));
}

beforeAll(async () => {
  await initEngine();
});

describe("sampleActions", () => {
  test("flow_ode equals the exported ONNX policy given the same initial noise", async () => {
    const policy = Policy.fromArrays(cfg, arrays, true);
    const chain = await scopeAsync(async () => op.noGrad(() => sampleActions(policy, setup(policy), sde({ method: "flow_ode" }), normalSource(9), true, () => 0).chain.read()));
    const ort = await loadOnnxRuntime();
    const unit = { mean: Array(8).fill(0), std: Array(8).fill(1) };
    const session = await ort.InferenceSession.create(exportPolicyOnnx(cfg, arrays, { state: unit, actions: { mean: Array(7).fill(0), std: Array(7).fill(1) } }, K));
    const noise = new Float32Array(B * cfg.horizon * 7);
    for (let b = 0; b < B; b++) noise.set(chain.subarray(b * (K + 1) * cfg.horizon * 7, b * (K + 1) * cfg.horizon * 7 + cfg.horizon * 7), b * cfg.horizon * 7);
    const out = await session.run({
      images: new ort.Tensor("uint8", images, [B, 2, 16, 16, 3]),
      tokens: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [B, 5]),
      token_mask: new ort.Tensor("float32", Float32Array.from(mask), [B, 5]),
      state: new ort.Tensor("float32", stateN, [B, 8]),
      noise: new ort.Tensor("float32", noise, [B, cfg.horizon, 7]),
    });
    const want = out.actions!.data as Float32Array;
    let diff = 0;
    for (let b = 0; b < B; b++)
      for (let j = 0; j < cfg.horizon * 7; j++) diff = Math.max(diff, Math.abs(chain[(b * (K + 1) + K) * cfg.horizon * 7 + j]! - want[b * cfg.horizon * 7 + j]!));
    expect(diff).toBeLessThan(1e-4);
  });

  test("noise_level → 0 makes flow_sde approach flow_ode", async () => {
    const policy = Policy.fromArrays(cfg, arrays, true);
    const [ode, tiny] = await scopeAsync(async () =>
      op.noGrad(() => [
        sampleActions(policy, setup(policy), sde({ method: "flow_ode" }), normalSource(4), true, () => 2).chain.read(),
        sampleActions(policy, setup(policy), sde({ noiseLevel: 1e-5 }), normalSource(4), true, () => 2).chain.read(),
      ]),
    );
    const a = await ode!;
    const b = await tiny!;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    expect(diff).toBeGreaterThan(0); // noise was injected …
    expect(diff).toBeLessThan(1e-4); // … and vanishes with the noise level
  });

  test("the SDE step's log-prob equals the Gaussian density computed by hand from the chain", async () => {
    const policy = Policy.fromArrays(cfg, arrays, true);
    const s = 2;
    const r = await scopeAsync(async () =>
      op.noGrad(() => {
        const ctx = setup(policy);
        const smp = sampleActions(policy, ctx, sde(), normalSource(5), true, () => s);
        const xs = op.reshape(op.slice(smp.chain, 1, s, s + 1), [B, cfg.horizon, 7]);
        const { velocity } = policy.expert(ctx.prefix, ctx.bias, ctx.stateTok, xs, timeGrid(K)[s]!);
        return { chain: smp.chain.read(), v: velocity.read(), lp: smp.logProb.read(), step: smp.stepIndex };
      }),
    );
    expect(r.step).toBe(s);
    const [chain, v, lp] = await Promise.all([r.chain, r.v, r.lp]);
    const grid = timeGrid(K);
    const w = stepWeights("flow_sde", grid[s]!, 1 / K, 0.5, grid);
    expect(w.std).toBeCloseTo(0.25, 12); // K = 4, a = 0.5, t = 0.5
    const HD = cfg.horizon * 7;
    for (let b = 0; b < B; b++) {
      const xs = chain.subarray((b * (K + 1) + s) * HD, (b * (K + 1) + s + 1) * HD);
      const next = chain.subarray((b * (K + 1) + s + 1) * HD, (b * (K + 1) + s + 2) * HD);
      const mean = stepMean(xs, v.subarray(b * HD, (b + 1) * HD), grid[s]!, w);
      let want = 0;
      for (let row = 0; row < 5; row++) for (let col = 0; col < 7; col++) want += gaussianLogProb(next[row * 7 + col]!, mean[row * 7 + col]!, w.std);
      expect(Math.abs(lp[b]! - want)).toBeLessThan(1e-3 * Math.max(1, Math.abs(want)));
    }
  });

  test("logProbValue on the stored chain reproduces the rollout's log-prob (ratio 1), for SDE, joint and noise", async () => {
    const policy = Policy.fromArrays(cfg, arrays, true);
    for (const sc of [sde(), sde({ jointLogprob: true }), sde({ method: "flow_noise" }), sde({ method: "flow_noise", jointLogprob: true })]) {
      const r = await scopeAsync(async () =>
        op.noGrad(() => {
          const ctx = setup(policy);
          const smp = sampleActions(policy, ctx, sc, normalSource(6), true, () => 1);
          const again = logProbValue(policy, ctx, sc, smp.chain, smp.stepIndex);
          return { a: smp.logProb.read(), b: again.logProb.read(), e: again.entropy.read(), step: smp.stepIndex };
        }),
      );
      expect(r.step).toBe(sc.jointLogprob ? -1 : 1);
      const [a, b2, e] = await Promise.all([r.a, r.b, r.e]);
      for (let i = 0; i < B; i++) expect(Math.abs(a[i]! - b2[i]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(a[i]!)));
      if (sc.method === "flow_noise") {
        // Entropy of stds within [0.08, 0.16]: ½log(2πe) + log σ.
        for (const x of e) {
          expect(x).toBeGreaterThan(1.4189385 + Math.log(0.08) - 1e-5);
          expect(x).toBeLessThan(1.4189385 + Math.log(0.16) + 1e-5);
        }
      } else expect(Array.from(e)).toEqual(Array(B).fill(0));
    }
  });
});

describe("gradients", () => {
  async function gradsAfter(trainExpertOnly: boolean, detachCritic: boolean, loss: "policy" | "value") {
    const policy = Policy.fromArrays(cfg, arrays, trainExpertOnly);
    const sc = sde({ detachCritic });
    const chain = await scopeAsync(async () => op.noGrad(() => sampleActions(policy, setup(policy), sc, normalSource(8), true, () => 0).chain));
    scope(() => {
      const out = logProbValue(policy, setup(policy), sc, chain, 0);
      op.backward(op.sum(loss === "policy" ? out.logProb : out.value));
    });
    const has = new Map<string, boolean>();
    for (const [name, t] of policy.params) has.set(name, t.grad !== undefined && (await t.grad.read()).some((x) => x !== 0));
    return has;
  }

  test("train_expert_only: the policy loss reaches the expert and none of the prefix", async () => {
    const has = await gradsAfter(true, true, "policy");
    for (const [name, g] of has) if (isPrefixParameter(name)) expect([name, g]).toEqual([name, false]);
    for (const name of ["expert.layers.0.q_proj.weight", "expert.layers.1.fc2.weight", "action_in_proj.weight", "action_out_proj.weight", "state_proj.weight", "action_time_mlp_in.weight"])
      expect([name, has.get(name)]).toEqual([name, true]);
    const all = await gradsAfter(false, true, "policy");
    expect(all.get("prefix.layers.0.k_proj.weight")).toBe(true); // unfrozen, the prefix learns too
  });

  test("detach_critic_input keeps the value loss out of the expert", async () => {
    const detached = await gradsAfter(true, true, "value");
    expect(detached.get("value_head.weight")).toBe(true);
    for (const [name, g] of detached) if (!name.startsWith("value_head")) expect([name, g]).toEqual([name, false]);
    const attached = await gradsAfter(true, false, "value");
    expect(attached.get("expert.layers.1.fc2.weight")).toBe(true);
    expect(attached.get("prefix.layers.0.q_proj.weight")).toBe(false);
  });
});

describe("prefix on ONNX Runtime", () => {
  test("its K/V equal the WebGPU prefix within 1e-4, and sampling from them gives the same chunk", async () => {
    const { OnnxPrefix } = await import("../../src/model/onnx_prefix.ts");
    const policy = Policy.fromArrays(cfg, arrays, true);
    const onnx = await OnnxPrefix.create(cfg, arrays);
    const fromOnnx = await onnx.embedPrefix(images, ids, mask, B);
    await onnx.release();
    const r = await scopeAsync(async () =>
      op.noGrad(() => {
        const ctx = setup(policy);
        const viaOnnx = { prefix: fromOnnx, bias: policy.suffixBias(fromOnnx), stateTok: ctx.stateTok };
        return {
          kGpu: ctx.prefix.k.map((t) => t.read()),
          kOnnx: fromOnnx.k.map((t) => t.read()),
          a: sampleActions(policy, ctx, sde({ method: "flow_ode" }), normalSource(2), false, () => 0).chain.read(),
          b: sampleActions(policy, viaOnnx, sde({ method: "flow_ode" }), normalSource(2), false, () => 0).chain.read(),
        };
      }),
    );
    let diff = 0;
    for (let l = 0; l < cfg.depth; l++) {
      const [x, y] = await Promise.all([r.kGpu[l]!, r.kOnnx[l]!]);
      for (let i = 0; i < x.length; i++) diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
    }
    expect(diff).toBeLessThan(1e-4);
    const [a, b] = await Promise.all([r.a, r.b]);
    let chunkDiff = 0;
    for (let i = 0; i < a.length; i++) chunkDiff = Math.max(chunkDiff, Math.abs(a[i]! - b[i]!));
    expect(chunkDiff).toBeLessThan(1e-4);
  });
});

describe("value_after_vlm", () => {
  test("the value comes from the pooled prefix: same in ONNX Runtime and WebGPU, and only the value head learns from it", async () => {
    const vcfg: ModelConfig = { ...cfg, value_after_vlm: true };
    const varrays = perturbedParams(vcfg, 12);
    expect(varrays.get("value_head.weight")!.length).toBe(vcfg.width);
    const { OnnxPrefix } = await import("../../src/model/onnx_prefix.ts");
    const onnx = await OnnxPrefix.create(vcfg, varrays);
    const fromOnnx = await onnx.embedPrefix(images, ids, mask, B);
    await onnx.release();
    const policy = Policy.fromArrays(vcfg, varrays, true);
    const sc = sde();
    const r = await scopeAsync(async () =>
      op.noGrad(() => {
        const ctx = setup(policy);
        const smp = sampleActions(policy, ctx, sc, normalSource(3), true, () => 1);
        return { gpu: ctx.prefix.pooled!.read(), ort: fromOnnx.pooled!.read(), value: smp.value.read(), direct: policy.value(ctx.prefix, smp.chain, true).read() };
      }),
    );
    const [gpu, ortPooled, value, direct] = await Promise.all([r.gpu, r.ort, r.value, r.direct]);
    let diff = 0;
    for (let i = 0; i < gpu.length; i++) diff = Math.max(diff, Math.abs(gpu[i]! - ortPooled[i]!));
    expect(diff).toBeLessThan(1e-4);
    // The same value at every denoising step, so the rollout's average is that value.
    for (let b = 0; b < B; b++) expect(Math.abs(value[b]! - direct[b]!)).toBeLessThan(1e-5);
    const chain = await scopeAsync(async () => op.noGrad(() => sampleActions(policy, setup(policy), sc, normalSource(8), true, () => 0).chain));
    scope(() => op.backward(op.sum(logProbValue(policy, setup(policy), { ...sc, detachCritic: false }, chain, 0).value)));
    for (const [name, t] of policy.params) expect([name, t.grad !== undefined]).toEqual([name, name.startsWith("value_head")]);
  });
});

describe("add_value_head off", () => {
  test("removes the head's parameters, and calls report a zero value", async () => {
    const ncfg = tinyModel({ add_value_head: false });
    const narrays = perturbedParams(ncfg, 13);
    expect([...narrays.keys()].some((n) => n.startsWith("value_head"))).toBe(false);
    const policy = Policy.fromArrays(ncfg, narrays, true);
    const value = await scopeAsync(async () => op.noGrad(() => sampleActions(policy, setup(policy), sde(), normalSource(1), true, () => 0).value.read()));
    expect(Array.from(value)).toEqual(Array(B).fill(0));
  });
});

describe("logProbValueAt", () => {
  test("per-example stochastic steps give each example's log-prob, entropy and value at its own step", async () => {
    for (const method of ["flow_sde", "flow_noise"] as const) {
      const policy = Policy.fromArrays(cfg, arrays, true);
      const sc = sde({ method });
      const steps = [2, 0, 3];
      const r = await scopeAsync(async () =>
        op.noGrad(() => {
          const ctx = setup(policy);
          const chain = sampleActions(policy, ctx, sc, normalSource(7), true, () => 1).chain;
          const pick = (offset: number) => op.concat(steps.map((k, b) => op.slice(op.slice(chain, 0, b, b + 1), 1, k + offset, k + offset + 1)), 0);
          const HD = [B, cfg.horizon, cfg.action_dim];
          const mixed = logProbValueAt(policy, ctx, sc, op.reshape(pick(0), HD), op.reshape(pick(1), HD), steps);
          const single = steps.map((k) => logProbValue(policy, ctx, sc, chain, k));
          return {
            lp: mixed.logProb.read(), v: mixed.value.read(), e: mixed.entropy.read(),
            want: single.map((x, b) => [x.logProb.read(), x.value.read(), x.entropy.read(), b] as const),
          };
        }),
      );
      const [lp, v, e] = await Promise.all([r.lp, r.v, r.e]);
      for (const [wl, wv, we, b] of r.want) {
        const [l1, v1, e1] = await Promise.all([wl, wv, we]);
        expect(Math.abs(lp[b]! - l1[b]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(l1[b]!)));
        expect(Math.abs(v[b]! - v1[b]!)).toBeLessThan(1e-5);
        expect(Math.abs(e[b]! - e1[b]!)).toBeLessThan(1e-5);
      }
    }
  });
});
