// A transformer block and AdamW against PyTorch goldens (scripts/golden/engine_golden.py), and
// the block's gradients against finite differences of the float64 CPU reference.
import { beforeAll, describe, expect, test } from "bun:test";
import golden from "../fixtures/gpu/golden.json";
import { backward } from "../../src/gpu/autograd.ts";
import { attentionMask, ParamStore, TransformerBlock } from "../../src/gpu/nn.ts";
import { AdamW } from "../../src/gpu/optim.ts";
import type { R } from "../../src/gpu/reference.ts";
import { initEngine } from "../../src/gpu/runtime.ts";
import { Tensor, keep, scopeAsync } from "../../src/gpu/tensor.ts";
import { expectClose, gradOf, maxDiff } from "./helpers.ts";
import { refBlock } from "./ref-block.ts";

const G = golden.block;
const dims = { B: G.B, T: G.T, C: G.C, heads: G.heads };

beforeAll(async () => {
  await initEngine();
});

/** The fixture's block on the GPU: y and the gradients of Σ y ⊙ wOut. */
async function gpuBlock() {
  const store = new ParamStore(1);
  const block = new TransformerBlock(store, "blk", G.C, G.heads, G.hidden);
  for (const [name, values] of Object.entries(G.params)) store.write(name, Float32Array.from(values));
  const result = await scopeAsync(async () => {
    const x = keep(Tensor.from(Float32Array.from(G.x), [G.B, G.T, G.C]));
    x.requiresGrad = true;
    const mask = attentionMask(G.blocks, { keyValid: G.keyValid });
    const { y } = block.forward(x, { mask });
    backward(y, Tensor.from(Float32Array.from(G.wOut), y.shape));
    const grads: Record<string, Float32Array> = {};
    for (const [name, t] of store.named()) grads[name] = await gradOf(t);
    const out = { y: await y.read(), dx: await gradOf(x), grads };
    x.grad?.dispose();
    x.dispose();
    return out;
  });
  store.dispose();
  return result;
}

function maskR(): R {
  const { B, T } = G;
  const blockOf = G.blocks.flatMap((n, i) => new Array<number>(n).fill(i));
  const data = new Float64Array(B * T * T);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) data[(b * T + i) * T + j] = blockOf[j]! <= blockOf[i]! && G.keyValid[b]![j] ? 0 : -1e9;
  return { shape: [B, 1, T, T], data };
}

describe("transformer block", () => {
  test("output and every gradient match PyTorch", async () => {
    const got = await gpuBlock();
    expectClose(got.y, G.y, "block y vs torch", 1e-5, 1e-5);
    expectClose(got.dx, G.dx, "block dx vs torch", 1e-5, 1e-5);
    for (const [name, want] of Object.entries(G.grads)) expectClose(got.grads[name]!, want, `block d/d${name} vs torch`, 1e-5, 1e-5);
  }, 60_000);

  test("gradients match finite differences of the float64 reference", async () => {
    const got = await gpuBlock();
    const params: Record<string, R> = {};
    for (const [name, v] of Object.entries(G.params)) params[name] = { shape: [v.length], data: Float64Array.from(v) };
    // Reference shapes: weights [out, in], vectors [n].
    for (const name of Object.keys(params)) {
      if (!name.endsWith(".weight") || name.includes(".ln")) continue;
      const rows = name.includes("fc1") ? G.hidden : G.C;
      params[name]!.shape = [rows, params[name]!.data.length / rows];
    }
    const x: R = { shape: [G.B, G.T, G.C], data: Float64Array.from(G.x) };
    const mask = maskR();
    const loss = () => refBlock(params, x, mask, dims).data.reduce((s, v, i) => s + v * G.wOut[i]!, 0);
    expect(Math.abs(loss() - G.loss), "float64 reference loss vs torch").toBeLessThan(1e-9);
    const h = 1e-6;
    const fd = (t: R) =>
      Array.from(t.data, (v, i) => {
        t.data[i] = v + h;
        const up = loss();
        t.data[i] = v - h;
        const down = loss();
        t.data[i] = v;
        return (up - down) / (2 * h);
      });
    expectClose(got.dx, fd(x), "block dx vs finite differences", 1e-4, 1e-4);
    for (const [name, t] of Object.entries(params)) expectClose(got.grads[name]!, fd(t), `block d/d${name} vs finite differences`, 1e-4, 1e-4);
  }, 60_000);
});

describe("AdamW", () => {
  const A = golden.adamw;
  function setup() {
    const store = new ParamStore(0);
    const w1 = store.create("w1", [4, 3], { kind: "zeros" });
    const w2 = store.create("value_head.w2", [5], { kind: "zeros" });
    store.write("w1", Float32Array.from(A.init.w1));
    store.write("value_head.w2", Float32Array.from(A.init.w2));
    const opt = new AdamW(
      [
        { params: [["w1", w1]], lr: A.lr[0]!, weightDecay: A.weightDecay[0] },
        { params: [["value_head.w2", w2]], lr: A.lr[1]!, weightDecay: A.weightDecay[1] },
      ],
      { betas: A.betas as [number, number], eps: A.eps, maxGradNorm: A.maxGradNorm },
    );
    const step = (s: (typeof A.steps)[number]) => {
      w1.grad = keep(Tensor.from(Float32Array.from(s.g1.flat()), [4, 3]));
      w2.grad = keep(Tensor.from(Float32Array.from(s.g2), [5]));
      opt.update();
      opt.zeroGrad();
    };
    return { store, w1, w2, opt, step };
  }

  test("three steps with two groups and clipping match PyTorch", async () => {
    const { store, w1, w2, opt, step } = setup();
    for (const [i, s] of A.steps.entries()) {
      step(s);
      expect(Math.abs((await opt.gradNorm()) - s.norm), `step ${i + 1} grad norm ${await opt.gradNorm()} vs ${s.norm}`).toBeLessThan(1e-5 * s.norm);
      expectClose(await w1.read(), s.w1, `step ${i + 1} w1`, 1e-6, 1e-5);
      expectClose(await w2.read(), s.w2, `step ${i + 1} w2`, 1e-6, 1e-5);
    }
    opt.dispose();
    store.dispose();
  });

  test("state saved after step 2 and restored gives a bit-identical step 3", async () => {
    const a = setup();
    a.step(A.steps[0]!);
    a.step(A.steps[1]!);
    const state = await a.opt.state();
    const saved = { w1: await a.w1.read(), w2: await a.w2.read() };
    a.step(A.steps[2]!);
    const b = setup();
    b.store.write("w1", saved.w1);
    b.store.write("value_head.w2", saved.w2);
    b.opt.loadState(structuredClone(state));
    b.step(A.steps[2]!);
    for (const name of ["w1", "value_head.w2"]) {
      const d = maxDiff(await b.store.read(name), await a.store.read(name));
      expect(d.diff, `${name} after restore differs by ${d.diff}`).toBe(0);
    }
    for (const s of [a, b]) {
      s.opt.dispose();
      s.store.dispose();
    }
  });
});
