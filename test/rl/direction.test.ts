// The direction of a PPO update, on the real programs without a simulator: a one-step bandit where
// the reward is the first executed action's first dimension. Sampling with flow-SDE exploration, then
// PPO updates (ppoFn through the Learner, RLinf's loss) must raise that action on average; with the
// reward's sign flipped they must lower it. A sign or alignment error anywhere in the chain (log-prob,
// ratio, advantage, loss, optimizer) fails it.
import { beforeAll, describe, expect, test } from "bun:test";
import { compile, type Feeds, host } from "../../src/engine/compile.ts";
import { Learner } from "../../src/engine/learner.ts";
import { initEngine } from "../../src/engine/runtime.ts";
import { parameterShapes } from "../../src/model/config.ts";
import { constantPolicy, ppoFn, samplerFn } from "../../src/model/programs.ts";
import { stepHost, type SamplerConfig } from "../../src/model/sampler.ts";
import { Rng } from "../../src/util/random.ts";
import { perturbedParams, tinyModel } from "../model/helpers.ts";

beforeAll(async () => {
  await initEngine();
});

const c = tinyModel({ horizon: 4 });
const K = 2;
const B = 64;
const cfg: SamplerConfig = { numSteps: K, method: "flow_sde", noiseLevel: 0.5, chunk: 2, envDim: 7, jointLogprob: false, detachCritic: true };
const HD = c.horizon * c.action_dim;

async function banditRun(sign: 1 | -1): Promise<{ before: number; after: number }> {
  const rng = new Rng(11);
  const normal = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const obs: Feeds = {
    images: host(Uint8Array.from({ length: B * c.num_images * c.image_size ** 2 * 3 }, () => Math.floor(rng.next() * 256)), [B, c.num_images, c.image_size, c.image_size, 3]),
    tokens: host(Int32Array.from({ length: B * c.max_text_len }, () => Math.floor(rng.next() * c.vocab_size)), [B, c.max_text_len]),
    token_mask: host(new Float32Array(B * c.max_text_len).fill(1), [B, c.max_text_len]),
    state: host(normal(B * c.state_dim), [B, c.state_dim]),
  };
  const names = [...parameterShapes(c).keys()];
  const learner = new Learner("onnx", perturbedParams(c, 5), parameterShapes(c), [{ names, lr: 3e-3 }], { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0, maxGradNorm: 1 });
  const ppo = compile("ppo", ppoFn(c, cfg, { clipRatioLow: 0.2, clipRatioHigh: 0.2, valueClip: 0.2, huberDelta: 10, entropyBonus: 0 }, false), "onnx");
  // The mean first action (dimension 0) of B chunks sampled with exploration at step `s`.
  const sample = async (s: number) => {
    const h = stepHost(cfg, c.expert_width, [0, 1], [s === 0, s === 1]);
    const sampler = compile("sampler", samplerFn(constantPolicy(c, learner.params), cfg), "onnx");
    const out = await sampler.run({ ...obs, noise: host(normal(B * HD), [B, c.horizon, c.action_dim]), eps: host(normal(K * B * HD), [K, B, c.horizon, c.action_dim]), step_a: host(h.a, [K]), step_b: host(h.b, [K]), step_std: host(h.std, [K]), step_explore: host(h.explore, [K]) });
    await sampler.release();
    const chain = out.chain!;
    const a0 = Float32Array.from({ length: B }, (_, b) => chain[(b * (K + 1) + K) * HD]!);
    return { chain, a0, logProb: out.log_prob!, value: out.value!, mean: a0.reduce((x, y) => x + y, 0) / B };
  };
  const before = (await sample(1)).mean;
  for (let it = 0; it < 6; it++) {
    const s = it % K;
    const r = await sample(s);
    // Advantages: the normalised reward (a one-step episode; the critic is not needed for the direction).
    const rew = r.a0.map((x) => sign * x);
    const mu = rew.reduce((x, y) => x + y, 0) / B;
    const sd = Math.sqrt(rew.reduce((x, y) => x + (y - mu) ** 2, 0) / (B - 1)) + 1e-5;
    const points = new Float32Array(B * 2 * HD);
    for (let b = 0; b < B; b++) points.set(r.chain.subarray((b * (K + 1) + s) * HD, (b * (K + 1) + s + 2) * HD), b * 2 * HD);
    const h = stepHost(cfg, c.expert_width, new Array(B).fill(s), new Array(B).fill(true));
    const feeds: Feeds = {
      ...obs,
      points: host(points, [B, 2, c.horizon, c.action_dim]),
      step_temb: host(h.temb, [B, c.expert_width]),
      step_a: host(h.a, [B, 1, 1]), step_b: host(h.b, [B, 1, 1]), step_std: host(h.std, [B, 1, 1]), step_explore: host(h.explore, [B, 1, 1]),
      old_log_prob: host(r.logProb, [B]), old_value: host(r.value, [B]),
      advantages: host(rew.map((x) => (x - mu) / sd), [B]), returns: host(rew, [B]), weight: host(new Float32Array(B).fill(1), [B]),
    };
    for (let epoch = 0; epoch < 4; epoch++) {
      await learner.accumulate(ppo, feeds);
      await learner.update();
    }
  }
  const after = (await sample(1)).mean;
  await ppo.release();
  await learner.release();
  return { before, after };
}

describe("PPO's update direction", () => {
  test("rewarding a larger first action raises it; rewarding a smaller one lowers it", async () => {
    const up = await banditRun(1);
    const down = await banditRun(-1);
    expect(up.after - up.before, `mean first action ${up.before.toFixed(3)} → ${up.after.toFixed(3)} when larger is rewarded`).toBeGreaterThan(0.05);
    expect(down.after - down.before, `mean first action ${down.before.toFixed(3)} → ${down.after.toFixed(3)} when smaller is rewarded`).toBeLessThan(-0.05);
  }, 120_000);
});
