// GAE against its closed forms; advantage normalisation over every rollout epoch; the PPO loss on the
// device against RLinf's losses and masked_mean_ratio written out as plain loops (values and
// gradients); ratio statistics, explained variance and the value clip ratio against plain loops.
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import * as op from "../../src/engine/ops.ts";
import { initEngine } from "../../src/engine/runtime.ts";
import { scopeAsync, Tensor } from "../../src/engine/tensor.ts";
import { gae, lossMask, normalizeAdvantages } from "../../src/rl/gae.ts";
import { maskedMeanRatio, ppoLoss, ratioStats } from "../../src/rl/loss.ts";
import { explainedVariance, packMinibatch, valueClipRatio } from "../../src/rl/ppo.ts";
import { Rng } from "../../src/util/random.ts";
import { expectClose } from "../engine/helpers.ts";

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

  test("the loss mask keeps steps up to and including the first done", () => {
    const mask = lossMask(dones, T, N);
    expect(Array.from({ length: T }, (_, t) => mask[t * N + 1])).toEqual([1, 1, 1, 1, 0, 0, 0]);
    expect(Array.from({ length: T }, (_, t) => mask[t * N + 2])).toEqual([1, 1, 1, 1, 1, 1, 0]);
    expect(Array.from({ length: T }, (_, t) => mask[t * N])).toEqual([1, 1, 1, 1, 1, 1, 1]);
    expect(() => gae(rewards, dones, values.subarray(N), T, N, 0.99, 0.95)).toThrow("values of 8×3");
  });
});

describe("advantage normalisation (RLinf normalize_advantages)", () => {
  test("(A − mean)/(unbiased std + 1e-5) over the masked entries of every rollout epoch together, masked ones 0", () => {
    // Two rollout epochs [E, T, N] = [2, 3, 2] flattened as the trainer stores them; the second
    // epoch's advantages are larger, so normalising each epoch alone would differ.
    const adv = Float32Array.of(1, -2, 0.5, 3, 2, 7, /* epoch 1 */ 6, 4, 9, -1, 5, 8);
    const mask = Float32Array.of(1, 1, 1, 1, 1, 0, /* epoch 1 */ 1, 1, 1, 0, 0, 0);
    const kept = Array.from(adv).filter((_, i) => mask[i]);
    const mean = kept.reduce((a, b) => a + b, 0) / kept.length;
    const std = Math.sqrt(kept.reduce((a, b) => a + (b - mean) ** 2, 0) / (kept.length - 1));
    const got = normalizeAdvantages(adv, mask);
    expectClose(got, Array.from(adv, (a, i) => (mask[i] ? (a - mean) / (std + 1e-5) : 0)), "normalised advantages vs plain loop", 1e-6, 1e-6);
    const epoch0 = normalizeAdvantages(adv.subarray(0, 6), mask.subarray(0, 6));
    expect(Math.abs(epoch0[0]! - got[0]!), "normalised over both epochs, not per epoch").toBeGreaterThan(0.1);
    // Two entries: mean 2, unbiased std √2.
    expect(normalizeAdvantages(Float32Array.of(1, 3, 100), Float32Array.of(1, 1, 0))[0]).toBeCloseTo(-1 / (Math.SQRT2 + 1e-5), 6);
    expect(Array.from(normalizeAdvantages(Float32Array.of(5), Float32Array.of(1)))).toEqual([0]); // one entry: std 0
    expect(Array.from(normalizeAdvantages(Float32Array.of(5, 6), Float32Array.of(0, 0)))).toEqual([0, 0]);
  });
});

describe("PPO loss with RLinf's masked_mean_ratio", () => {
  const s = { clipRatioLow: 0.2, clipRatioHigh: 0.28, valueClip: 0.2, huberDelta: 1.5, entropyBonus: 0.01 };
  // A hand-made rollout epoch of T chunk steps × N envs, C actions per chunk, episodes of at most
  // maxSteps env steps: env n's episode ends (done) at chunk doneAt[n] or runs to the end.
  const [T, N, C, maxSteps] = [5, 8, 2, 10];
  const doneAt = [-1, 0, 2, 4, 1, -1, 3, 2];
  const dones = Uint8Array.from({ length: T * N }, (_, i) => (Math.floor(i / N) === doneAt[i % N] ? 1 : 0));
  const mask = lossMask(dones, T, N);
  const B = T * N;
  const r = new Rng(5);
  const data = {
    oldLogProb: Float32Array.from({ length: B }, () => r.uniform(-30, -10)),
    logDelta: Float32Array.from({ length: B }, () => r.uniform(-0.5, 0.5)), // ratios from 0.6 to 1.65: some clipped
    advantages: Float32Array.from({ length: B }, () => r.normal()),
    oldValue: Float32Array.from({ length: B }, () => r.normal()),
    valueDelta: Float32Array.from({ length: B }, () => r.uniform(-0.6, 0.6)),
    returns: Float32Array.from({ length: B }, () => 3 * r.normal()),
    entropy: Float32Array.from({ length: B }, () => r.uniform(-2, 0)),
  };
  const huber = (x: number) => (Math.abs(x) <= s.huberDelta ? 0.5 * x * x : s.huberDelta * (Math.abs(x) - 0.5 * s.huberDelta));
  /** The weight the trainer gives each slot: mask · max_episode_steps / (the env's valid chunks · C). */
  const weight = Float32Array.from({ length: B }, (_, i) => {
    const n = i % N;
    let valid = 0;
    for (let t = 0; t < T; t++) valid += mask[t * N + n]!;
    return (mask[i]! * maxSteps) / (valid * C);
  });

  /** RLinf's losses per slot in float64, aggregated as (values / loss_mask_ratio · mask).mean() over all slots. */
  function plainLoop() {
    const lossMaskRatio = Array.from({ length: N }, (_, n) => (Array.from({ length: T }, (_, t) => mask[t * N + n]!).reduce((a, b) => a + b) * C) / maxSteps);
    const agg = (f: (i: number) => number) => {
      let sum = 0;
      for (let i = 0; i < B; i++) sum += (f(i) / lossMaskRatio[i % N]!) * mask[i]!;
      return sum / B; // masked slots stay in the denominator
    };
    const ratio = (i: number) => Math.exp(data.logDelta[i]!);
    const clip = (x: number) => Math.min(1 + s.clipRatioHigh, Math.max(1 - s.clipRatioLow, x));
    const policy = agg((i) => Math.max(-data.advantages[i]! * ratio(i), -data.advantages[i]! * clip(ratio(i))));
    const value = agg((i) => {
      const v = data.oldValue[i]! + data.valueDelta[i]!;
      const vc = data.oldValue[i]! + Math.min(s.valueClip, Math.max(-s.valueClip, data.valueDelta[i]!));
      return Math.max(huber(data.returns[i]! - v), huber(data.returns[i]! - vc));
    });
    const entropy = agg((i) => data.entropy[i]!);
    // d loss / d logp: through the unclipped term where it is the larger one (or the clip is inactive).
    const dLogp = Array.from({ length: B }, (_, i) => {
      const a = data.advantages[i]!;
      const active = -a * ratio(i) >= -a * clip(ratio(i));
      return active ? ((-a * ratio(i)) / lossMaskRatio[i % N]!) * (mask[i]! / B) : 0;
    });
    return { policy, value, entropy, loss: policy + value - s.entropyBonus * entropy, dLogp };
  }

  test("loss, its parts and d loss / d logp on the device match the plain loop; masked slots count in the mean", async () => {
    expect(Array.from(mask).filter((m) => m === 0).length, "the batch has masked slots").toBeGreaterThan(5);
    const want = plainLoop();
    const logProb = Tensor.from(data.oldLogProb.map((v, i) => v + data.logDelta[i]!), [B]);
    logProb.requiresGrad = true;
    const t = (a: Float32Array) => Tensor.from(a, [B]);
    const got = await scopeAsync(async () => {
      const l = ppoLoss(
        { logProb, value: t(data.oldValue.map((v, i) => v + data.valueDelta[i]!)), entropy: t(data.entropy), oldLogProb: t(data.oldLogProb), oldValue: t(data.oldValue), advantages: t(data.advantages), returns: t(data.returns), weight: t(weight) },
        s,
      );
      op.backward(l.loss);
      const mmr = maskedMeanRatio(t(data.entropy), t(weight));
      return { loss: await l.loss.item(), policy: await l.policyLoss.item(), value: await l.valueLoss.item(), entropy: await l.entropy.item(), mmr: await mmr.item(), ratio: await l.ratio.read() };
    });
    // Float32 sums of 40 terms of size ≤ 10: 1e-5 + 1e-5·|want|.
    expectClose([got.loss, got.policy, got.value, got.entropy, got.mmr], [want.loss, want.policy, want.value, want.entropy, want.entropy], "loss, policy, value, entropy, masked_mean_ratio", 1e-5, 1e-5);
    expectClose(await logProb.grad!.read(), want.dLogp, "d loss / d logp", 1e-7, 1e-5);
    logProb.grad!.dispose();
    logProb.dispose();
    // exp(logp − old) with log-probs near −20 held in float32 (spacing 1.9e-6): 1e-6 + 1e-6·max.
    expectClose(got.ratio, Array.from(data.logDelta, Math.exp), "per-sample ratio", 1e-6, 1e-6);
  });

  test("packed micro-batches (live slots first, padded with masked ones) give the whole minibatch's loss and d loss / d logp", async () => {
    const micro = 8;
    const order = Array.from({ length: B }, (_, i) => (i * 17) % B); // a shuffle of the 40 slots
    const packed = packMinibatch(order, weight, micro);
    const live = order.filter((i) => weight[i]! > 0);
    expect(packed.length).toBe(Math.ceil(live.length / micro));
    expect(packed.length, "fewer micro-batches than the unpacked 5").toBeLessThan(B / micro);
    expect(packed.every((m) => m.length === micro)).toBe(true);
    const flat = packed.flat();
    expect(flat.slice(0, live.length)).toEqual(live);
    expect(flat.slice(live.length).every((i) => weight[i] === 0 && order.includes(i))).toBe(true);
    expect(new Set(flat).size).toBe(flat.length);
    // An all-masked minibatch still takes one micro-batch (AdamW steps on it as RLinf's does).
    expect(packMinibatch([1, 2, 3, 4], new Float32Array(8), 2)).toEqual([[1, 2]]);

    const want = plainLoop();
    const pick = (a: Float32Array, idx: number[]) => Tensor.from(Float32Array.from(idx, (i) => a[i]!), [idx.length]);
    const grad = new Float64Array(B);
    let loss = 0;
    for (const idx of packed) {
      const logProb = Tensor.from(Float32Array.from(idx, (i) => data.oldLogProb[i]! + data.logDelta[i]!), [micro]);
      logProb.requiresGrad = true;
      const share = micro / B;
      loss += await scopeAsync(async () => {
        const l = ppoLoss(
          {
            logProb,
            value: Tensor.from(Float32Array.from(idx, (i) => data.oldValue[i]! + data.valueDelta[i]!), [micro]),
            entropy: pick(data.entropy, idx),
            oldLogProb: pick(data.oldLogProb, idx),
            oldValue: pick(data.oldValue, idx),
            advantages: pick(data.advantages, idx),
            returns: pick(data.returns, idx),
            weight: pick(weight, idx),
          },
          s,
        );
        op.backward(op.mul(l.loss, Tensor.from(new Float32Array([share]), [])));
        return share * (await l.loss.item());
      });
      const g = await logProb.grad!.read();
      idx.forEach((i, b) => (grad[i] = g[b]!));
      logProb.grad!.dispose();
      logProb.dispose();
    }
    expectClose([loss], [want.loss], "loss summed over the packed micro-batches", 1e-5, 1e-5);
    expectClose(grad, want.dLogp, "d loss / d logp", 1e-7, 1e-5);
  });

  test("ratioStats: clip fraction (the clipped objective is the larger), mean ratio, clipped ratio, |ratio − 1| and approx KL over the masked samples", () => {
    const ratio = Float32Array.from(data.logDelta, Math.exp);
    const got = ratioStats(ratio, data.advantages, mask, s.clipRatioLow, s.clipRatioHigh);
    let [n, clipped, sum, clippedSum, abs, kl] = [0, 0, 0, 0, 0, 0];
    for (let i = 0; i < B; i++) {
      if (!mask[i]) continue;
      const [rt, a] = [ratio[i]!, data.advantages[i]!];
      n++;
      const c = Math.min(Math.max(rt, 1 - s.clipRatioLow), 1 + s.clipRatioHigh);
      if (-a * c > -a * rt) clipped++;
      clippedSum += c;
      sum += rt;
      abs += Math.abs(rt - 1);
      kl += -data.logDelta[i]!;
    }
    expect(clipped, "some samples are clipped").toBeGreaterThan(0);
    expectClose([got.clipFraction, got.meanRatio, got.clippedRatio, got.ratioAbs, got.approxKl], [clipped / n, sum / n, clippedSum / n, abs / n, kl / n], "clip fraction, mean ratio, clipped ratio, |ratio − 1|, approx KL", 1e-6, 1e-6);
    expect(ratioStats(ratio, data.advantages, new Float32Array(B), 0.2, 0.2)).toEqual({ clipFraction: 0, meanRatio: 1, clippedRatio: 1, ratioAbs: 0, approxKl: 0 });
  });
});

describe("critic metrics", () => {
  /** Population variance: explained variance is a ratio of two, so n or n − 1 cancels. */
  const variance = (x: number[]) => {
    const m = x.reduce((a, b) => a + b, 0) / x.length;
    return x.reduce((a, b) => a + (b - m) ** 2, 0) / x.length;
  };

  test("explained variance 1 − Var(R − V)/Var(R) against a plain loop, with its edge cases", () => {
    const returns = [1.5, -0.5, 2, 0.25, 3, -1];
    const values = [1, 0, 1.5, 0.5, 2, -0.5];
    const want = 1 - variance(returns.map((r, i) => r - values[i]!)) / variance(returns);
    expectClose([explainedVariance(returns, values)], [want], "explained variance", 1e-12, 0);
    expect(explainedVariance(returns, returns)).toBe(1); // a perfect critic
    const mean = returns.reduce((a, b) => a + b) / returns.length;
    expect(explainedVariance(returns, returns.map(() => mean))).toBeCloseTo(0, 12); // no better than the mean
    expect(explainedVariance(returns, returns.map((r) => -r))).toBeLessThan(0);
    expect(explainedVariance([2, 2, 2], [1, 2, 3])).toBe(0); // constant returns
    expect(explainedVariance([1], [0])).toBe(0);
  });

  test("value clip ratio: the fraction of masked samples whose clipped value term is the larger", () => {
    const value = Float32Array.of(0.5, 0.1, -0.4, 2, 1, 0);
    const oldValue = Float32Array.of(0, 0, 0, 1, 1, 0);
    const returns = Float32Array.of(1, -1, 0.5, 3, 5, 0);
    const mask = Float32Array.of(1, 1, 1, 1, 0, 1);
    const [clip, delta] = [0.2, 1];
    const huber = (x: number) => (Math.abs(x) <= delta ? 0.5 * x * x : delta * (Math.abs(x) - 0.5 * delta));
    let [n, c] = [0, 0];
    for (let i = 0; i < value.length; i++) {
      if (!mask[i]) continue;
      n++;
      const vc = oldValue[i]! + Math.min(clip, Math.max(-clip, value[i]! - oldValue[i]!));
      if (huber(returns[i]! - vc) > huber(returns[i]! - value[i]!)) c++;
    }
    expect(c).toBeGreaterThan(0);
    expect(valueClipRatio(value, oldValue, returns, mask, clip, delta)).toBe(c / n);
  });
});
