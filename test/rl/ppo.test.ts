// GAE against its closed forms, and the PPO loss on the device against the formulas of RLinf's
// losses written out on the CPU (values and gradients).
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import * as op from "../../src/gpu/ops.ts";
import { initEngine } from "../../src/gpu/runtime.ts";
import { scopeAsync, Tensor } from "../../src/gpu/tensor.ts";
import { gae, lossMask, normalizeAdvantages } from "../../src/rl/gae.ts";
import { ppoLoss, ratioStats } from "../../src/rl/loss.ts";
import { Rng } from "../../src/sim/math.ts";

// Kernels on SwiftShader can exceed bun's 5 s default on a busy 2-core machine.
setDefaultTimeout(60_000);

beforeAll(async () => {
  await initEngine();
});

describe("GAE over macro steps", () => {
  const T = 7;
  const N = 3;
  const r = new Rng(1);
  const rewards = Float32Array.from({ length: T * N }, () => (r.next() < 0.3 ? 1 : 0));
  const dones = Uint8Array.from({ length: T * N }, (_, i) => (i === 3 * N + 1 || i === 5 * N + 2 ? 1 : 0)); // env 1 ends at t=3, env 2 at t=5
  const values = Float32Array.from({ length: (T + 1) * N }, () => r.uniform(-1, 1));

  test("advantages are the (γλ)-discounted sums of TD errors up to the episode's end", () => {
    const gamma = 0.99;
    const lambda = 0.95;
    const { advantages, returns } = gae(rewards, dones, values, T, N, gamma, lambda);
    for (let n = 0; n < N; n++)
      for (let t = 0; t < T; t++) {
        let want = 0;
        let w = 1;
        for (let k = t; k < T; k++) {
          const d = dones[k * N + n]!;
          const delta = rewards[k * N + n]! + gamma * (1 - d) * values[(k + 1) * N + n]! - values[k * N + n]!;
          want += w * delta;
          if (d) break;
          w *= gamma * lambda;
        }
        expect(advantages[t * N + n]).toBeCloseTo(want, 5);
        expect(returns[t * N + n]).toBeCloseTo(want + values[t * N + n]!, 5);
      }
  });

  test("with λ = 1 the returns are discounted rewards to the end, bootstrapped only if it did not end", () => {
    const gamma = 0.9;
    const { returns } = gae(rewards, dones, values, T, N, gamma, 1);
    for (let n = 0; n < N; n++) {
      let ret = 0;
      let w = 1;
      let ended = false;
      for (let k = 0; k < T; k++) {
        ret += w * rewards[k * N + n]!;
        if (dones[k * N + n]) {
          ended = true;
          break;
        }
        w *= gamma;
      }
      if (!ended) ret += w * values[T * N + n]!;
      expect(returns[n]).toBeCloseTo(ret, 5);
    }
  });

  test("the loss mask keeps steps up to and including the first done; normalisation uses only those", () => {
    const mask = lossMask(dones, T, N);
    expect(Array.from({ length: T }, (_, t) => mask[t * N + 1])).toEqual([1, 1, 1, 1, 0, 0, 0]);
    expect(Array.from({ length: T }, (_, t) => mask[t * N + 2])).toEqual([1, 1, 1, 1, 1, 1, 0]);
    expect(Array.from({ length: T }, (_, t) => mask[t * N])).toEqual([1, 1, 1, 1, 1, 1, 1]);
    const adv = Float32Array.from({ length: T * N }, (_, i) => i);
    const norm = normalizeAdvantages(adv, mask);
    const kept = Array.from(norm).filter((_, i) => mask[i]);
    expect(kept.reduce((a, b) => a + b, 0) / kept.length).toBeCloseTo(0, 5);
    expect(Math.sqrt(kept.reduce((a, b) => a + b * b, 0) / kept.length)).toBeCloseTo(1, 4);
    expect(Array.from(norm).filter((_, i) => !mask[i]).every((v) => v === 0)).toBe(true);
    expect(() => gae(rewards, dones, values.subarray(N), T, N, 0.99, 0.95)).toThrow("values of 8×3");
  });
});

describe("PPO loss", () => {
  const s = { clipRatioLow: 0.2, clipRatioHigh: 0.2, valueClip: 0.2, huberDelta: 1.5, entropyBonus: 0.01 };
  const B = 40;
  const r = new Rng(5);
  const data = {
    oldLogProb: Float32Array.from({ length: B }, () => r.uniform(-30, -10)),
    logDelta: Float32Array.from({ length: B }, () => r.uniform(-0.5, 0.5)), // ratios from 0.6 to 1.65: some clipped
    advantages: Float32Array.from({ length: B }, () => r.normal()),
    oldValue: Float32Array.from({ length: B }, () => r.normal()),
    valueDelta: Float32Array.from({ length: B }, () => r.uniform(-0.6, 0.6)),
    returns: Float32Array.from({ length: B }, () => 3 * r.normal()),
    entropy: Float32Array.from({ length: B }, () => r.uniform(-2, 0)),
    mask: Float32Array.from({ length: B }, (_, i) => (i % 7 === 6 ? 0 : 1)),
  };
  const huber = (x: number) => (Math.abs(x) <= s.huberDelta ? 0.5 * x * x : s.huberDelta * (Math.abs(x) - 0.5 * s.huberDelta));

  /** The loss written out per sample in float64, and d loss / d logp by its definition. */
  function cpu() {
    let n = 0;
    let pl = 0;
    let vl = 0;
    let ent = 0;
    let kl = 0;
    const dLogp = new Float64Array(B);
    for (let i = 0; i < B; i++) {
      if (!data.mask[i]) continue;
      n++;
      const ratio = Math.exp(data.logDelta[i]!);
      const a = data.advantages[i]!;
      const clipped = Math.min(1 + s.clipRatioHigh, Math.max(1 - s.clipRatioLow, ratio));
      const unclippedTerm = -a * ratio;
      const clippedTerm = -a * clipped;
      pl += Math.max(unclippedTerm, clippedTerm);
      // The gradient flows through the unclipped term when it is the max (or the clip is inactive).
      dLogp[i] = unclippedTerm >= clippedTerm ? -a * ratio : 0;
      const v = data.oldValue[i]! + data.valueDelta[i]!;
      const vc = data.oldValue[i]! + Math.min(s.valueClip, Math.max(-s.valueClip, data.valueDelta[i]!));
      vl += Math.max(huber(data.returns[i]! - v), huber(data.returns[i]! - vc));
      ent += data.entropy[i]!;
      kl += -data.logDelta[i]!;
    }
    return { policy: pl / n, value: vl / n, entropy: ent / n, kl: kl / n, loss: pl / n + vl / n - (s.entropyBonus * ent) / n, dLogp: dLogp.map((g) => g / n) };
  }

  test("loss, its parts, approx_kl and d loss / d logp match the formulas", async () => {
    const want = cpu();
    const logProb = Tensor.from(data.oldLogProb.map((v, i) => v + data.logDelta[i]!), [B]);
    logProb.requiresGrad = true;
    const t = (a: Float32Array) => Tensor.from(a, [B]);
    const got = await scopeAsync(async () => {
      const l = ppoLoss(
        {
          logProb,
          value: t(data.oldValue.map((v, i) => v + data.valueDelta[i]!)),
          entropy: t(data.entropy),
          oldLogProb: t(data.oldLogProb),
          oldValue: t(data.oldValue),
          advantages: t(data.advantages),
          returns: t(data.returns),
          mask: t(data.mask),
        },
        s,
      );
      op.backward(l.loss);
      return { loss: await l.loss.item(), policy: await l.policyLoss.item(), value: await l.valueLoss.item(), entropy: await l.entropy.item(), kl: await l.approxKl.item(), ratio: await l.ratio.read() };
    });
    expect(got.loss).toBeCloseTo(want.loss, 4);
    expect(got.policy).toBeCloseTo(want.policy, 4);
    expect(got.value).toBeCloseTo(want.value, 4);
    expect(got.entropy).toBeCloseTo(want.entropy, 4);
    expect(got.kl).toBeCloseTo(want.kl, 4);
    const grad = await logProb.grad!.read();
    for (let i = 0; i < B; i++) expect([i, grad[i]!]).toEqual([i, expect.closeTo(want.dLogp[i]!, 5)]);
    const { clipFraction, meanRatio } = ratioStats(got.ratio, data.mask, 0.2, 0.2);
    const kept = Array.from(data.logDelta).filter((_, i) => data.mask[i]).map(Math.exp);
    expect(clipFraction).toBeCloseTo(kept.filter((x) => x < 0.8 || x > 1.2).length / kept.length, 6);
    expect(clipFraction).toBeGreaterThan(0);
    expect(meanRatio).toBeCloseTo(kept.reduce((a, b) => a + b) / kept.length, 5);
  });
});
