// Tape semantics: accumulation, frozen parameters, detach, noGrad, scopes, and attention over a
// cached K/V prefix giving the same result as attention over the whole sequence.
import { beforeAll, describe, expect, test } from "bun:test";
import { backward, detach, noGrad } from "../../src/gpu/autograd.ts";
import { attentionMask, ParamStore, TransformerBlock } from "../../src/gpu/nn.ts";
import * as op from "../../src/gpu/ops.ts";
import { initEngine, poolStats } from "../../src/gpu/runtime.ts";
import { Tensor, scopeAsync } from "../../src/gpu/tensor.ts";
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
    const store = new ParamStore(3);
    const w = store.create("prefix.w", [4, 4], { kind: "normal", std: 1 });
    const u = store.create("expert.u", [4, 4], { kind: "normal", std: 1 });
    store.setTrainable("prefix.", false);
    expect(store.trainable().map(([n]) => n)).toEqual(["expert.u"]);
    const x = param(randR(rand, [2, 4]), false);
    await scopeAsync(async () => {
      const h = op.matmul(x, w);
      expect(h.node, "a product of a frozen weight and data is not on the tape").toBeUndefined();
      backward(op.sum(op.matmul(h, u)));
    });
    expect(w.grad).toBeUndefined();
    expect(u.grad).toBeDefined();
    store.dispose();
    x.dispose();
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
  test("suffix queries over cached prefix K/V equal the same rows of a full pass", async () => {
    const [B, Tp, Ts, C, H] = [2, 5, 3, 8, 2];
    const rand = rng(6);
    const store = new ParamStore(7);
    const block = new TransformerBlock(store, "blk", C, H, 16);
    const xp = randR(rand, [B, Tp, C]);
    const xs = randR(rand, [B, Ts, C]);
    await scopeAsync(async () => {
      const prefix = Tensor.from(Float32Array.from(xp.data), xp.shape);
      const suffix = Tensor.from(Float32Array.from(xs.data), xs.shape);
      const blocks = [Tp, 1, Ts - 1];
      const full = block.forward(op.concat([prefix, suffix], 1), { mask: attentionMask(blocks, { batch: B }) }).y;
      const { kv } = noGrad(() => block.forward(prefix, { mask: attentionMask([Tp], { batch: B }) }));
      const mask = attentionMask(blocks, { batch: B, queryStart: Tp });
      const cached = block.forward(suffix, { mask, prefix: kv }).y;
      const again = block.forward(suffix, { mask, prefix: kv }).y; // the cache is reused, not consumed
      const want = await op.slice(full, 1, Tp, Tp + Ts).read();
      expectClose(await cached.read(), want, "suffix rows with cached prefix K/V", 1e-5, 1e-5);
      expectClose(await again.read(), want, "second call on the same cache", 0, 0);
    });
    store.dispose();
  });
});
