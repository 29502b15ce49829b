// The Learner (src/engine/learner.ts): AdamW steps from accumulated micro-batch gradients on both
// backends, against PyTorch's AdamW (the golden fixture), against a plain float64 AdamW written here
// in PyTorch's update order, and against each other; and a state that restores bit for bit.
import { beforeAll, describe, expect, test } from "bun:test";
import golden from "../fixtures/gpu/golden.json";
import { type Backend, compile, host, type TensorFn } from "../../src/engine/compile.ts";
import { type AdamWSettings, Learner, type ParamGroupSpec } from "../../src/engine/learner.ts";
import * as op from "../../src/engine/ops.ts";
import { initEngine } from "../../src/engine/runtime.ts";
import { expectClose, rng } from "./helpers.ts";

beforeAll(async () => {
  await initEngine();
});

const O = golden.learner;
const groups: ParamGroupSpec[] = [
  { names: ["w1"], lr: O.lr[0]! },
  { names: ["value_head.w2"], lr: O.lr[1]! },
];
const shapes = new Map([
  ["w1", [4, 3]],
  ["value_head.w2", [5]],
]);
const settings: AdamWSettings = { betas: O.betas as [number, number], eps: O.eps, weightDecay: O.weightDecay[0]!, maxGradNorm: O.maxGradNorm };
const init = () =>
  new Map([
    ["w1", Float32Array.from(O.init.w1)],
    ["value_head.w2", Float32Array.from(O.init.w2)],
  ]);

/**
 * Loss Σ_n Σ (p_n ⊙ G_n) + Σ_n Σ tanh(p_n) ⊙ T_n: the gradient is G + (1 − tanh²p)·T, exactly G when
 * T = 0 (so the fixture's gradients reach AdamW unrounded), and depends on the weights otherwise.
 */
const gradProgram: TensorFn = (t) => {
  let loss: ReturnType<typeof op.sum> | undefined;
  for (const n of shapes.keys()) {
    const p = t[`p.${n}`]!;
    p.requiresGrad = true;
    const term = op.add(op.sum(op.mul(p, t[`G.${n}`]!)), op.sum(op.mul(op.tanh(p), t[`T.${n}`]!)));
    loss = loss ? op.add(loss, term) : term;
  }
  op.backward(loss!);
  return Object.fromEntries([["loss", loss!], ...[...shapes.keys()].map((n) => [`g.${n}`, t[`p.${n}`]!.grad!])]);
};

/** Plain float64 AdamW in PyTorch's order (clip_grad_norm_, then decay, moments, bias-corrected step). */
class AdamW64 {
  step = 0;
  m = new Map<string, Float64Array>();
  v = new Map<string, Float64Array>();
  norm = 0;
  constructor(readonly p: Map<string, Float64Array>) {
    for (const [n, a] of p) {
      this.m.set(n, new Float64Array(a.length));
      this.v.set(n, new Float64Array(a.length));
    }
  }
  update(g: Map<string, Float64Array>): void {
    const [b1, b2] = settings.betas;
    this.step++;
    this.norm = Math.sqrt([...g.values()].reduce((s, a) => s + a.reduce((q, x) => q + x * x, 0), 0));
    const coef = Math.min(1, settings.maxGradNorm / (this.norm + 1e-6));
    const bc1 = 1 - b1 ** this.step;
    const bc2 = 1 - b2 ** this.step;
    for (const grp of groups)
      for (const n of grp.names) {
        const [p, m, v, gr] = [this.p.get(n)!, this.m.get(n)!, this.v.get(n)!, g.get(n)!];
        for (let i = 0; i < p.length; i++) {
          const gi = gr[i]! * coef;
          p[i] *= 1 - grp.lr * settings.weightDecay;
          m[i] = b1 * m[i]! + (1 - b1) * gi;
          v[i] = b2 * v[i]! + (1 - b2) * gi * gi;
          p[i] -= (grp.lr / bc1) * (m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(bc2) + settings.eps));
        }
      }
  }
}

/** Feeds G and T of one micro-batch. */
const feeds = (G: Map<string, ArrayLike<number>>, T?: Map<string, ArrayLike<number>>) =>
  Object.fromEntries(
    [...shapes].flatMap(([n, s]) => [
      [`G.${n}`, host(Float32Array.from(G.get(n)!), s)],
      [`T.${n}`, host(T ? Float32Array.from(T.get(n)!) : new Float32Array(s.reduce((a, b) => a * b, 1)), s)],
    ]),
  );

// Float32 weights after 3 steps against float64 ones: 1e-6 + 1e-6·max|w| (a few float32 ulps of
// weights ≤ 1); between the two float32 backends the same.
const ATOL = 1e-6;
const RTOL = 1e-6;

describe.each(["webgpu", "onnx"] as Backend[])("Learner on %s", (backend) => {
  test("3 AdamW steps (two lr groups, clipping, weight decay) equal PyTorch's and a float64 AdamW", async () => {
    const learner = new Learner(backend, init(), shapes, groups, settings);
    const program = compile("grads", gradProgram, backend);
    const ref = new AdamW64(new Map([...init()].map(([n, a]) => [n, Float64Array.from(a)])));
    for (const [i, s] of O.steps.entries()) {
      const G = new Map<string, number[]>([
        ["w1", s.g1.flat()],
        ["value_head.w2", s.g2],
      ]);
      await learner.accumulate(program, feeds(G));
      const norm = await learner.update();
      ref.update(new Map([...G].map(([n, a]) => [n, Float64Array.from(Float32Array.from(a))])));
      expect(Math.abs(norm - s.norm), `${backend} step ${i + 1} grad norm ${norm} vs torch ${s.norm}`).toBeLessThan(1e-6 * s.norm);
      expectClose(learner.params.get("w1")!, s.w1, `${backend} step ${i + 1} w1 vs torch`, ATOL, RTOL);
      expectClose(learner.params.get("value_head.w2")!, s.w2, `${backend} step ${i + 1} value_head.w2 vs torch`, ATOL, RTOL);
      for (const [n, p] of ref.p) expectClose(learner.params.get(n)!, p, `${backend} step ${i + 1} ${n} vs float64 AdamW`, ATOL, RTOL);
    }
    expect(learner.step).toBe(3);
    await program.release();
    await learner.release();
  });

  test("state after step 2, restored into a new Learner, gives a bit-identical step 3", async () => {
    const G = (k: number) => new Map<string, number[]>([["w1", O.steps[k]!.g1.flat()], ["value_head.w2", O.steps[k]!.g2]]);
    const program = compile("grads", gradProgram, backend);
    const a = new Learner(backend, init(), shapes, groups, settings);
    for (const k of [0, 1]) {
      await a.accumulate(program, feeds(G(k)));
      await a.update();
    }
    const state = structuredClone(a.state());
    const b = new Learner(backend, a.params, shapes, groups, settings);
    b.loadState(state);
    for (const l of [a, b]) {
      await l.accumulate(program, feeds(G(2)));
      await l.update();
    }
    for (const n of shapes.keys()) expect(b.params.get(n), `${backend} ${n} after restore`).toEqual(a.params.get(n)!);
    expect(b.step).toBe(3);
    expect(() => b.loadState({ ...state, m: {} })).toThrow(/moments for (parameter )?w1\b/);
    for (const x of [a, b]) await x.release();
    await program.release();
  });
});

test("micro-batches accumulated with scales, gradients that follow the weights: the two backends agree, and with a float64 AdamW", async () => {
  const rand = rng(11);
  const vec = (n: number, s: number) => Array.from({ length: n }, () => s * (2 * rand() - 1));
  // Two micro-batches per step, each counting half (Learner.accumulate's scale).
  const micro = [0, 1, 2].map(() => [0, 1].map(() => ({ G: new Map([["w1", vec(12, 0.3)], ["value_head.w2", vec(5, 0.1)]]), T: new Map([["w1", vec(12, 1)], ["value_head.w2", vec(5, 1)]]) })));
  const result: Record<string, Map<string, Float32Array>> = {};
  const ref = new AdamW64(new Map([...init()].map(([n, a]) => [n, Float64Array.from(a)])));
  for (const backend of ["webgpu", "onnx"] as Backend[]) {
    const learner = new Learner(backend, init(), shapes, groups, settings);
    const program = compile("grads", gradProgram, backend);
    for (const step of micro) {
      for (const mb of step) await learner.accumulate(program, feeds(mb.G, mb.T), 0.5);
      await learner.update();
    }
    result[backend] = learner.params;
    await program.release();
    await learner.release();
  }
  for (const step of micro) {
    // d/dp of the loss, averaged over the micro-batches, at the float64 weights.
    const g = new Map([...ref.p].map(([n, p]) => [n, p.map((x, i) => step.reduce((s, mb) => s + 0.5 * (mb.G.get(n)![i]! + (1 - Math.tanh(x) ** 2) * mb.T.get(n)![i]!), 0))]));
    ref.update(g);
  }
  for (const n of shapes.keys()) {
    expectClose(result.onnx!.get(n)!, result.webgpu!.get(n)!, `${n}: onnx vs webgpu after 3 steps`, ATOL, RTOL);
    expectClose(result.onnx!.get(n)!, ref.p.get(n)!, `${n}: onnx vs float64 AdamW after 3 steps`, ATOL, RTOL);
  }
  expect(ref.norm, "clipping was active").toBeGreaterThan(settings.maxGradNorm);
});
