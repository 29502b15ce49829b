// Flow samplers on the WebGPU policy (src/model/sampler.ts): densities against hand-computed ones
// (flow.ts in float64), ratio 1 between the rollout's and the recomputed log-probs, per-example steps,
// and where gradients may flow. The traced sampler against this one is in programs.test.ts.
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import * as op from "../../src/engine/ops.ts";
import { initEngine } from "../../src/engine/runtime.ts";
import { scope, scopeAsync, Tensor } from "../../src/engine/tensor.ts";
import { isPrefixParameter, type ModelConfig, timeEmbeddings } from "../../src/model/config.ts";
import { gaussianLogProb, stepMean, stepWeights, timeGrid } from "../../src/model/flow.ts";
import { Policy } from "../../src/model/policy.ts";
import { chainLogProb, type Context, context, sampleChunk, type SamplerConfig, stepHost, stepTensors } from "../../src/model/sampler.ts";
import { expectClose, maxDiff } from "../engine/helpers.ts";
import { normalSource, perturbedParams, tinyModel } from "./helpers.ts";

// GPU work on SwiftShader can exceed bun's 5 s default on a busy 2-core machine.
setDefaultTimeout(60_000);

const cfg = tinyModel({ add_noise_head: true });
const B = 3;
const K = 4;
const H = cfg.horizon;
const A = cfg.action_dim;
const HA = H * A;

const arrays = perturbedParams(cfg, 3);
const images = Uint8Array.from({ length: B * 2 * 16 * 16 * 3 }, (_, i) => (i * 29 + (i >> 6) * 7) % 256);
const ids = [1, 4, 7, 2, 0, 1, 9, 2, 0, 0, 1, 3, 5, 8, 2];
const mask = ids.map((v, i) => (v !== 0 || i % 5 === 0 ? 1 : 0));
const stateN = Float32Array.from({ length: B * 8 }, (_, i) => Math.sin(0.7 * i));
const sde = (over: Partial<SamplerConfig> = {}): SamplerConfig => ({ numSteps: K, method: "flow_sde", noiseLevel: 0.5, chunk: 5, envDim: 6, jointLogprob: false, detachCritic: true, ...over });

function setup(policy: Policy, c: ModelConfig = cfg): Context {
  const prefix = policy.embedPrefix(Tensor.from(images, [B, 2, c.image_size, c.image_size, 3], "u8"), Tensor.from(ids, [B, 5], "i32"), Tensor.from(mask, [B, 5]));
  return context(policy, prefix, Tensor.from(stateN, [B, 8]));
}

/** A chunk from seeded noise, exploring at the steps `explore` says (the same for the batch). */
function sample(policy: Policy, ctx: Context, sc: SamplerConfig, seed: number, explore: (i: number) => boolean) {
  const normal = normalSource(seed);
  const noise = normal([B, H, A]);
  const eps = Array.from({ length: K }, () => normal([B, H, A]));
  const steps = Array.from({ length: K }, (_, i) => stepTensors(stepHost(sc, cfg.expert_width, [i], [explore(i)])));
  return sampleChunk(policy, ctx, sc, noise, eps, steps);
}

/** Point i of the chain [B, K+1, H, A] as [B, H, A]. */
const point = (chain: Tensor, i: number) => op.reshape(op.slice(chain, 1, i, i + 1), [B, H, A]);

/** Stored transitions as PPO recomputes them: one step (x_s → x_{s+1}) or the whole chain when joint. */
function recompute(policy: Policy, ctx: Context, sc: SamplerConfig, chain: Tensor, s: number) {
  const stepsIdx = sc.jointLogprob ? Array.from({ length: K }, (_, i) => i) : [s];
  const xs = [...stepsIdx.map((k) => point(chain, k)), point(chain, stepsIdx.at(-1)! + 1)];
  return chainLogProb(policy, ctx, sc, xs, stepsIdx.map((k) => stepTensors(stepHost(sc, cfg.expert_width, [k], [true]))));
}

beforeAll(async () => {
  await initEngine();
});

describe("sampleChunk", () => {
  test("noise_level → 0 makes flow_sde approach flow_ode", async () => {
    const policy = Policy.fromArrays(cfg, arrays, true);
    const [ode, tiny] = await scopeAsync(async () =>
      op.noGrad(() => {
        const ctx = setup(policy);
        return Promise.all([sample(policy, ctx, sde({ method: "flow_ode" }), 4, (i) => i === 2).chain.read(), sample(policy, ctx, sde({ noiseLevel: 1e-5 }), 4, (i) => i === 2).chain.read()]);
      }),
    );
    expect(maxDiff(tiny, ode).diff, "noise was injected").toBeGreaterThan(0);
    expectClose(tiny, ode, "flow_sde at noise level 1e-5 vs flow_ode", 1e-4, 0); // the injected step std is 5e-6 (t = 0.5, K = 4)
  });

  test("the SDE step's log-prob equals the Gaussian density computed by hand (flow.ts, float64) from the chain", async () => {
    const policy = Policy.fromArrays(cfg, arrays, true);
    const s = 2;
    const grid = timeGrid(K);
    const [chain, v, lp] = await scopeAsync(async () =>
      op.noGrad(() => {
        const ctx = setup(policy);
        const smp = sample(policy, ctx, sde(), 5, (i) => i === s);
        const temb = Tensor.from(timeEmbeddings([grid[s]!], cfg.expert_width), [1, cfg.expert_width]);
        const { velocity } = policy.expert(ctx.prefix, ctx.bias, ctx.stateTok, point(smp.chain, s), temb);
        return Promise.all([smp.chain.read(), velocity.read(), smp.logProb.read()]);
      }),
    );
    const w = stepWeights("flow_sde", grid[s]!, 1 / K, 0.5, grid);
    expect(w.std).toBeCloseTo(0.25, 12); // K = 4, a = 0.5, t = 0.5
    const want: number[] = [];
    for (let b = 0; b < B; b++) {
      const xs = chain.subarray((b * (K + 1) + s) * HA, (b * (K + 1) + s + 1) * HA);
      const next = chain.subarray((b * (K + 1) + s + 1) * HA, (b * (K + 1) + s + 2) * HA);
      const mean = stepMean(xs, v.subarray(b * HA, (b + 1) * HA), grid[s]!, w);
      let sum = 0;
      for (let row = 0; row < 5; row++) for (let col = 0; col < 6; col++) sum += gaussianLogProb(next[row * A + col]!, mean[row * A + col]!, w.std);
      want.push(sum);
    }
    // 30 terms of size ~1 in float32: 1e-5 + 1e-5·max|want|.
    expectClose(lp, want, "SDE step log-prob vs hand-computed", 1e-5, 1e-5);
  });

  test("chainLogProb on the stored chain reproduces the rollout's log-prob (ratio 1), for SDE, joint and noise", async () => {
    const policy = Policy.fromArrays(cfg, arrays, true);
    for (const sc of [sde(), sde({ jointLogprob: true }), sde({ method: "flow_noise" }), sde({ method: "flow_noise", jointLogprob: true })]) {
      const name = `${sc.method}${sc.jointLogprob ? " joint" : ""}`;
      const [a, b2, e, e2] = await scopeAsync(async () =>
        op.noGrad(() => {
          const ctx = setup(policy);
          const smp = sample(policy, ctx, sc, 6, (i) => sc.jointLogprob || i === 1);
          const again = recompute(policy, ctx, sc, smp.chain, 1);
          return Promise.all([smp.logProb.read(), again.logProb.read(), again.entropy.read(), smp.entropy.read()]);
        }),
      );
      expect(a.every((x) => x !== 0 && Number.isFinite(x)), `${name}: log-probs are non-zero`).toBe(true);
      expectClose(b2, a, `${name}: recomputed vs rollout log-prob`, 1e-5, 1e-5);
      expectClose(e, e2, `${name}: recomputed vs rollout entropy`, 1e-6, 1e-6);
      if (sc.method === "flow_noise") {
        // Entropy of stds within [0.08, 0.16]: ½log(2πe) + log σ.
        for (const x of e) {
          expect(x).toBeGreaterThan(0.5 * Math.log(2 * Math.PI * Math.E) + Math.log(0.08) - 1e-5);
          expect(x).toBeLessThan(0.5 * Math.log(2 * Math.PI * Math.E) + Math.log(0.16) + 1e-5);
        }
      } else expect(Array.from(e)).toEqual(Array(B).fill(0));
    }
  });

  test("an evaluation call (no step explores) has log-prob 0 and the ODE chain", async () => {
    const policy = Policy.fromArrays(cfg, arrays, true);
    const [lp, sdeChain, odeChain] = await scopeAsync(async () =>
      op.noGrad(() => {
        const ctx = setup(policy);
        const off = sample(policy, ctx, sde(), 2, () => false);
        return Promise.all([off.logProb.read(), off.chain.read(), sample(policy, ctx, sde({ method: "flow_ode" }), 2, () => false).chain.read()]);
      }),
    );
    expect(Array.from(lp, (x) => x === 0), `log-probs ${lp}`).toEqual(Array(B).fill(true)); // −0 too
    expect(sdeChain).toEqual(odeChain);
  });
});

describe("chainLogProb with per-example steps", () => {
  test("each example's log-prob, entropy and value at its own step equal those of a batch-wide step", async () => {
    for (const method of ["flow_sde", "flow_noise"] as const) {
      const policy = Policy.fromArrays(cfg, arrays, true);
      const sc = sde({ method });
      const own = [2, 0, 3];
      const r = await scopeAsync(async () =>
        op.noGrad(() => {
          const ctx = setup(policy);
          const chain = sample(policy, ctx, sc, 7, () => true).chain;
          // x at example b's own step and the next, stacked over the batch.
          const pick = (offset: number) => op.reshape(op.concat(own.map((k, b) => op.slice(op.slice(chain, 0, b, b + 1), 1, k + offset, k + offset + 1)), 0), [B, H, A]);
          const mixed = chainLogProb(policy, ctx, sc, [pick(0), pick(1)], [stepTensors(stepHost(sc, cfg.expert_width, own, own.map(() => true)))]);
          const single = own.map((k) => recompute(policy, ctx, sc, chain, k));
          return Promise.all([mixed.logProb, mixed.value, mixed.entropy, ...single.flatMap((x) => [x.logProb, x.value, x.entropy])].map((t) => t.read()));
        }),
      );
      const [lp, v, e] = r;
      const want = (j: number) => own.map((_, b) => r[3 + 3 * b + j]![b]!);
      expectClose(lp!, want(0), `${method}: per-example log-prob`, 1e-5, 1e-5);
      expectClose(v!, want(1), `${method}: per-example value`, 1e-6, 1e-5);
      expectClose(e!, want(2), `${method}: per-example entropy`, 1e-6, 1e-5);
    }
  });
});

describe("gradients", () => {
  /** Which parameters get a non-zero gradient from Σ log-prob or Σ value of a stored transition. */
  async function gradsAfter(trainExpertOnly: boolean, detachCritic: boolean, loss: "policy" | "value", c: ModelConfig = cfg, a = arrays) {
    const policy = Policy.fromArrays(c, a, trainExpertOnly);
    const sc = sde({ detachCritic });
    const chain = await scopeAsync(async () => op.noGrad(() => sample(policy, setup(policy, c), sc, 8, (i) => i === 0).chain));
    scope(() => {
      const out = recompute(policy, setup(policy, c), sc, chain, 0);
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

  test("value_after_vlm: the value is the pooled prefix's at every step, and with a frozen prefix only the value head learns from it", async () => {
    const vcfg: ModelConfig = { ...cfg, value_after_vlm: true };
    const varrays = perturbedParams(vcfg, 12);
    expect(varrays.get("value_head.weight")!.length).toBe(vcfg.width);
    const policy = Policy.fromArrays(vcfg, varrays, true);
    const [value, direct] = await scopeAsync(async () =>
      op.noGrad(() => {
        const ctx = setup(policy, vcfg);
        const smp = sample(policy, ctx, sde(), 3, (i) => i === 1);
        return Promise.all([smp.value.read(), policy.value(ctx.prefix, point(smp.chain, 0), true).read()]);
      }),
    );
    expectClose(value, direct, "rollout value (mean over steps) vs the pooled prefix's value", 1e-6, 1e-6);
    const has = await gradsAfter(true, false, "value", vcfg, varrays);
    for (const [name, g] of has) expect([name, g]).toEqual([name, name.startsWith("value_head")]);
  });
});

test("add_value_head off: no head parameters, and calls report a zero value", async () => {
  const ncfg = tinyModel({ add_value_head: false });
  const narrays = perturbedParams(ncfg, 13);
  expect([...narrays.keys()].some((n) => n.startsWith("value_head"))).toBe(false);
  const policy = Policy.fromArrays(ncfg, narrays, true);
  const value = await scopeAsync(async () => op.noGrad(() => sample(policy, setup(policy, ncfg), sde(), 1, (i) => i === 0).value.read()));
  expect(Array.from(value)).toEqual(Array(B).fill(0));
});
