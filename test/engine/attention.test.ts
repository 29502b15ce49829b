// The fused attention primitive against the float64 reference (forward and the q/k/v gradients), with
// and without masks, against finite differences on a tiny case, and against the composite
// matmul/softmax/matmul path it replaces.
import { beforeAll, describe, expect, test } from "bun:test";
import * as op from "../../src/engine/ops.ts";
import * as ref from "../../src/engine/reference.ts";
import { initEngine } from "../../src/engine/runtime.ts";
import { Tensor, scopeAsync } from "../../src/engine/tensor.ts";
import { expectClose, gradOf, param, randR, rng } from "./helpers.ts";

beforeAll(async () => {
  await initEngine();
});

const MASK = -1e9;
// Each kernel variant takes SwiftShader a second or more to compile: the tests reuse head_dim 5
// (scalar lanes), 8 (vec4 lanes) and the policy's 16.
const TIMEOUT = 60_000;

interface Case {
  B: number;
  h: number;
  S: number;
  T: number;
  hd: number;
  bias?: ref.R;
  /** Which of q, k, v are parameters (the rest are data). */
  needs?: [boolean, boolean, boolean];
}

/** Runs the fused op, backpropagates a random dO, and checks out and every wanted gradient. */
async function check(label: string, c: Case, seed: number) {
  const rand = rng(seed);
  const q = randR(rand, [c.B, c.h, c.S, c.hd], -2, 2);
  const k = randR(rand, [c.B, c.h, c.T, c.hd], -2, 2);
  const v = randR(rand, [c.B, c.h, c.T, c.hd]);
  const dO = randR(rand, [c.B, c.h, c.S, c.hd]);
  const scale = 1 / Math.sqrt(c.hd);
  const needs = c.needs ?? [true, true, true];
  const want = ref.attentionVjp(q, k, v, c.bias, scale, dO);
  await scopeAsync(async () => {
    const xs = [q, k, v].map((x, i) => param(x, needs[i]));
    const bias = c.bias && param(c.bias, false);
    const y = op.attention(xs[0]!, xs[1]!, xs[2]!, bias, scale);
    expectClose(await y.read(), ref.attention(q, k, v, c.bias, scale), `${label} forward`, 2e-5, 2e-4);
    op.backward(y, Tensor.from(Float32Array.from(dO.data), dO.shape));
    for (let i = 0; i < 3; i++) {
      if (needs[i]) expectClose(await gradOf(xs[i]!), want[i]!, `${label} d${"qkv"[i]}`, 2e-5, 2e-4);
      else expect(xs[i]!.grad, `${label}: ${"qkv"[i]} is data and must get no gradient`).toBeUndefined();
      xs[i]!.grad?.dispose();
    }
  });
}

/**
 * The policy's suffix bias [B, 1, S, T0 + S]: prefix keys masked where padded, then block-causal
 * over the suffix (query 0, the state token, sees only itself; action tokens see all suffix keys).
 */
function blockCausalBias(B: number, S: number, T0: number, padded: (b: number, t: number) => boolean): ref.R {
  const T = T0 + S;
  const bias = ref.r([B, 1, S, T]);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < S; i++)
      for (let j = 0; j < T; j++) {
        const masked = j < T0 ? padded(b, j) : i === 0 && j > T0;
        if (masked) bias.data[(b * S + i) * T + j] = MASK;
      }
  return bias;
}

describe("fused attention against the float64 reference", () => {
  test("odd shapes, no bias (scalar lanes: head_dim 5)", () => check("B2 h3 S7 T11 hd5", { B: 2, h: 3, S: 7, T: 11, hd: 5 }, 1), TIMEOUT);

  test("vec4 lanes (head_dim 8), more keys than queries and more queries than keys", async () => {
    await check("B3 h2 S5 T37 hd8", { B: 3, h: 2, S: 5, T: 37, hd: 8 }, 2);
    await check("B1 h1 S70 T3 hd8", { B: 1, h: 1, S: 70, T: 3, hd: 8 }, 3);
  }, TIMEOUT);

  test("block-causal and padding mask [B, 1, S, T], with a row where all keys but one are masked", async () => {
    // Batch 1 has its whole prefix padded, so its state-token row sees exactly one key (itself).
    const [B, S, T0] = [3, 6, 9];
    const bias = blockCausalBias(B, S, T0, (b, t) => b === 1 || (b === 2 && t >= 5));
    await check("block-causal hd8", { B, h: 2, S, T: T0 + S, hd: 8, bias }, 4);
    await check("block-causal hd5", { B, h: 3, S, T: T0 + S, hd: 5, bias }, 5);
  }, TIMEOUT);

  test("key padding bias [B, 1, 1, T] broadcast over heads and queries, and a per-head bias [1, h, S, T]", async () => {
    const [B, h, S, T] = [2, 3, 4, 10];
    const keyBias = ref.r([B, 1, 1, T]);
    for (let t = 6; t < T; t++) keyBias.data[T + t] = MASK;
    await check("key bias", { B, h, S, T, hd: 8, bias: keyBias }, 6);
    await check("per-head bias", { B, h, S, T, hd: 8, bias: randR(rng(7), [1, h, S, T], -3, 3) }, 8);
  }, TIMEOUT);

  test("only the gradients that are needed", async () => {
    const c = { B: 2, h: 2, S: 5, T: 9, hd: 8, bias: blockCausalBias(2, 5, 4, (b, t) => b === 0 && t === 3) };
    await check("needs k, v", { ...c, needs: [false, true, true] }, 9);
    await check("needs v", { ...c, needs: [false, false, true] }, 10);
    await check("needs q, k", { ...c, needs: [true, true, false] }, 11);
  }, TIMEOUT);
});

test("gradients agree with central finite differences of the float64 reference", async () => {
  const rand = rng(12);
  const [B, h, S, T, hd] = [1, 2, 3, 4, 5];
  const inputs = [randR(rand, [B, h, S, hd], -2, 2), randR(rand, [B, h, T, hd], -2, 2), randR(rand, [B, h, T, hd])];
  const bias = blockCausalBias(B, S, 1, () => false);
  const w = randR(rand, [B, h, S, hd]);
  const scale = 0.7;
  const loss = (xs: ref.R[]) => ref.attention(xs[0]!, xs[1]!, xs[2]!, bias, scale).data.reduce((s, o, i) => s + o * w.data[i]!, 0);
  const eps = 1e-6;
  const numeric = inputs.map((x, n) =>
    ref.r(x.shape, Array.from(x.data, (_, i) => {
      const shifted = (d: number) => inputs.map((y, m) => (m === n ? ref.r(y.shape, y.data.map((u, j) => (j === i ? u + d : u))) : y));
      return (loss(shifted(eps)) - loss(shifted(-eps))) / (2 * eps);
    })),
  );
  const analytic = ref.attentionVjp(inputs[0]!, inputs[1]!, inputs[2]!, bias, scale, w);
  await scopeAsync(async () => {
    const xs = inputs.map((x) => param(x));
    op.backward(op.attention(xs[0]!, xs[1]!, xs[2]!, param(bias, false), scale), Tensor.from(Float32Array.from(w.data), w.shape));
    for (let n = 0; n < 3; n++) {
      expectClose(analytic[n]!.data, numeric[n]!, `reference d${"qkv"[n]} vs finite differences`, 1e-7, 1e-6);
      expectClose(await gradOf(xs[n]!), numeric[n]!, `GPU d${"qkv"[n]} vs finite differences`, 2e-5, 2e-4);
    }
  });
}, TIMEOUT);

test("equals the composite matmul/softmax/matmul path at the policy's head size", async () => {
  const rand = rng(13);
  const [B, h, S, T0, hd] = [2, 4, 51, 176, 16];
  const T = T0 + S;
  const bias = blockCausalBias(B, S, T0, (b, t) => t >= 140 + 10 * b);
  const inputs = [randR(rand, [B, h, S, hd], -2, 2), randR(rand, [B, h, T, hd], -2, 2), randR(rand, [B, h, T, hd])];
  const dO = randR(rand, [B, h, S, hd]);
  const scale = 1 / Math.sqrt(hd);
  const run = async (fused: boolean) =>
    scopeAsync(async () => {
      const xs = inputs.map((x) => param(x));
      const bt = param(bias, false);
      const y = fused ? op.attention(xs[0]!, xs[1]!, xs[2]!, bt, scale) : op.matmul(op.softmax(op.add(op.matmul(xs[0]!, xs[1]!, { transB: true, alpha: scale }), bt)), xs[2]!);
      const out = await y.read();
      op.backward(y, Tensor.from(Float32Array.from(dO.data), dO.shape));
      const grads = await Promise.all(xs.map(gradOf));
      for (const x of xs) x.grad?.dispose();
      return [out, ...grads];
    });
  const fused = await run(true);
  const composite = await run(false);
  ["out", "dq", "dk", "dv"].forEach((name, i) => expectClose(fused[i]!, composite[i]!, `fused vs composite ${name}`, 2e-5, 2e-4));
}, TIMEOUT);

test("refuses mismatched shapes and a bias that carries a gradient", async () => {
  await scopeAsync(async () => {
    const q = Tensor.from(new Float32Array(2 * 3 * 4), [1, 2, 3, 4]);
    const k = Tensor.from(new Float32Array(2 * 5 * 4), [1, 2, 5, 4]);
    expect(() => op.attention(q, k, Tensor.from(new Float32Array(2 * 5 * 3), [1, 2, 5, 3]), undefined, 1)).toThrow(/k, v \[B, h, T, hd\]/);
    expect(() => op.attention(q, k, k, Tensor.from(new Float32Array(3 * 4), [1, 1, 3, 4]), 1)).toThrow(/does not broadcast/);
    const learned = param(ref.r([1, 1, 3, 5]));
    expect(() => op.attention(q, k, k, learned, 1)).toThrow(/takes no gradient/);
  });
});
