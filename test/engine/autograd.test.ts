// Tape semantics: accumulation, frozen parameters, detach, noGrad, scopes, and attention over a
// cached K/V prefix giving the same result as attention over the whole sequence.
import { beforeAll, describe, expect, test } from "bun:test";
import { backward, detach, noGrad } from "../../src/engine/autograd.ts";
import * as op from "../../src/engine/ops.ts";
import { initEngine, poolStats } from "../../src/engine/runtime.ts";
import { Tensor, scopeAsync } from "../../src/engine/tensor.ts";
import { blockBias, layer, layerParams } from "./block.ts";
import { expectClose, param, randR, rng } from "./helpers.ts";

beforeAll(async () => {
  await initEngine();
});

describe("autograd", () => {
  test("gradients accumulate over backward calls and over repeated uses", async () => {
    const rand = rng(1);
    const a = randR(rand, [3, 4]);
    const w = param(a);
    await scopeAsync(async () => {
      backward(op.sum(op.mul(w, w))); // d/dw Σ w² = 2w
      backward(op.sum(op.add(w, w))); // + 2
    });
    expectClose(await w.grad!.read(), a.data.map((v) => 2 * v + 2), "accumulated grad");
    w.grad!.dispose();
    w.dispose();
  });

  test("frozen parameters get no gradient and record nothing", async () => {
    const rand = rng(2);
    const w = param(randR(rand, [4, 4]), false); // frozen (a prefix weight under train_expert_only)
    const u = param(randR(rand, [4, 4]));
    const x = param(randR(rand, [2, 4]), false);
    await scopeAsync(async () => {
      const h = op.matmul(x, w);
      expect(h.node, "a product of a frozen weight and data is not on the tape").toBeUndefined();
      backward(op.sum(op.matmul(h, u)));
    });
    expect(w.grad).toBeUndefined();
    expect(u.grad).toBeDefined();
    u.grad!.dispose();
    for (const t of [w, u, x]) t.dispose();
  });

  test("detach stops the gradient; noGrad records nothing", async () => {
    const rand = rng(4);
    const a = randR(rand, [5]);
    const w = param(a);
    await scopeAsync(async () => {
      // y = w·stop(w): dy/dw = stop(w) = w, not 2w
      backward(op.sum(op.mul(w, detach(w))));
      const y = noGrad(() => op.mul(w, w));
      expect(y.node).toBeUndefined();
    });
    expectClose(await w.grad!.read(), a.data, "grad through detach");
    w.grad!.dispose();
    w.dispose();
  });

  test("scopes return their buffers to the pool", async () => {
    const w = param(randR(rng(5), [16, 16]));
    const before = poolStats.live;
    await scopeAsync(async () => {
      backward(op.sum(op.gelu(op.matmul(w, w))));
    });
    expect(poolStats.live - before, "live buffers after the scope: only the new gradient").toBe(1);
    w.grad!.dispose();
    w.dispose();
  });
});

describe("attention with a cached K/V prefix", () => {
  test("suffix queries over cached prefix K/V equal the same rows of a full pass (the policy's layer)", async () => {
    const [B, Tp, Ts] = [2, 5, 3];
    const dims = { C: 8, heads: 2, hd: 3, hidden: 16 };
    const rand = rng(6);
    const g = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const p = layerParams(dims, g);
    const xp = randR(rand, [B, Tp, dims.C]);
    const xs = randR(rand, [B, Ts, dims.C]);
    await scopeAsync(async () => {
      const prefix = Tensor.from(Float32Array.from(xp.data), xp.shape);
      const suffix = Tensor.from(Float32Array.from(xs.data), xs.shape);
      const blocks = [Tp, 1, Ts - 1]; // prefix | state | actions
      const full = layer(p, op.concat([prefix, suffix], 1), blockBias(blocks, B), dims).y;
      const { kv } = noGrad(() => layer(p, prefix, blockBias([Tp], B), dims));
      const bias = blockBias(blocks, B, Tp);
      const cached = layer(p, suffix, bias, dims, kv).y;
      const again = layer(p, suffix, bias, dims, kv).y; // the cache is reused, not consumed
      const want = await op.slice(full, 1, Tp, Tp + Ts).read();
      expectClose(await cached.read(), want, "suffix rows with cached prefix K/V", 1e-5, 1e-5);
      expectClose(await again.read(), want, "second call on the same cache", 0, 0);
    });
    for (const t of p.values()) t.dispose();
  });
});
