// Every engine op, forward and backward, against the float64 CPU reference on odd shapes.
import { beforeAll, describe, test } from "bun:test";
import { UNARY, type UnaryOp, BINARY, type BinaryOp } from "../../src/engine/kernels/elementwise.ts";
import * as op from "../../src/engine/ops.ts";
import * as ref from "../../src/engine/reference.ts";
import { initEngine } from "../../src/engine/runtime.ts";
import { Tensor, scopeAsync } from "../../src/engine/tensor.ts";
import { expectClose, gradOf, param, randR, rng } from "./helpers.ts";

beforeAll(async () => {
  await initEngine();
});

/** Runs y = f(inputs) on the GPU, backpropagates a random dy, and checks y and every input gradient. */
async function check(label: string, inputs: ref.R[], f: (xs: Tensor[]) => Tensor, want: { y: ref.R; grads: (dy: ref.R) => ref.R[] }, seed = 1, tol = { atol: 2e-5, rtol: 2e-4 }) {
  const rand = rng(seed);
  await scopeAsync(async () => {
    const xs = inputs.map((x) => param(x));
    const y = f(xs);
    expectClose(await y.read(), want.y, `${label} forward`, tol.atol, tol.rtol);
    const dy = randR(rand, want.y.shape);
    op.backward(y, Tensor.from(Float32Array.from(dy.data), dy.shape));
    const grads = want.grads(dy);
    for (let i = 0; i < xs.length; i++) expectClose(await gradOf(xs[i]!), grads[i]!, `${label} d/dinput${i}`, tol.atol, tol.rtol);
    for (const x of xs) x.grad?.dispose();
  });
}

describe("elementwise", () => {
  const domain: Partial<Record<UnaryOp, [number, number]>> = { log: [0.2, 3], sqrt: [0.2, 3], huber: [-3, 3], clamp: [-2, 2] };
  const params: Partial<Record<UnaryOp, [number, number]>> = { affine: [1.7, -0.3], huber: [1.1, 0], clamp: [-0.6, 0.9] };
  for (const name of Object.keys(UNARY) as UnaryOp[]) {
    test(`unary ${name}`, async () => {
      const [lo, hi] = domain[name] ?? [-2, 2];
      const [p0, p1] = params[name] ?? [0, 0];
      const x = randR(rng(7), [3, 7], lo, hi);
      const fn = (op as unknown as Record<UnaryOp, (t: Tensor, a?: number, b?: number) => Tensor>)[name];
      await check(`${name} [3,7]`, [x], ([t]) => fn(t!, p0, p1), { y: ref.unary(name, x, p0, p1), grads: (dy) => [ref.unaryVjp(name, x, dy, p0, p1)] });
    });
  }

  const shapes: [number[], number[]][] = [
    [[2, 3, 5], [3, 1]],
    [[5], [4, 5]],
    [[7], [7]],
    [[3, 1, 5], [1, 4, 1]],
  ];
  for (const name of Object.keys(BINARY) as BinaryOp[]) {
    test(`binary ${name} with broadcasting`, async () => {
      const rand = rng(11);
      for (const [sa, sb] of shapes) {
        const a = randR(rand, sa);
        const b = randR(rand, sb, name === "div" ? 0.5 : -1, name === "div" ? 2 : 1);
        const f = op[name] as (a: Tensor, b: Tensor) => Tensor;
        await check(`${name} ${sa}·${sb}`, [a, b], ([x, y]) => f(x!, y!), { y: ref.binary(name, a, b), grads: (dy) => ref.binaryVjp(name, a, b, dy) });
      }
    });
  }
});

describe("reductions", () => {
  test("sumTo, sum, mean and expand", async () => {
    const rand = rng(3);
    const x = randR(rand, [2, 3, 5]);
    await check("sumTo [2,3,5]→[3,1]", [x], ([t]) => op.sumTo(t!, [3, 1]), { y: ref.sumTo(x, [3, 1]), grads: (dy) => [ref.expand(dy, x.shape)] });
    await check("sum axis 1", [x], ([t]) => op.sum(t!, 1, true), { y: ref.sumTo(x, [2, 1, 5]), grads: (dy) => [ref.expand(dy, x.shape)] });
    const m = ref.sumTo(x, [1]);
    m.data[0]! /= 30;
    await check("mean all", [x], ([t]) => op.mean(t!), { y: m, grads: (dy) => [ref.expand({ shape: [1], data: dy.data.map((v) => v / 30) }, x.shape)] });
    const e = randR(rand, [3, 1]);
    await check("expand [3,1]→[2,3,5]", [e], ([t]) => op.expand(t!, [2, 3, 5]), { y: ref.expand(e, [2, 3, 5]), grads: (dy) => [ref.sumTo(dy, [3, 1])] });
  });

  test("max over an axis", async () => {
    const x = randR(rng(5), [3, 5, 4]);
    await check("max axis 1", [x], ([t]) => op.max(t!, 1, true), { y: ref.maxAxis(x, 1), grads: (dy) => [ref.maxAxisVjp(x, 1, dy)] });
  });

  test("softmax over the last axis", async () => {
    const x = randR(rng(6), [3, 4, 9], -3, 3);
    await check("softmax [3,4,9]", [x], ([t]) => op.softmax(t!), { y: ref.softmax(x), grads: (dy) => [ref.softmaxVjp(x, dy)] });
  });
});

describe("matmul", () => {
  const cases: { a: number[]; b: number[]; tA?: boolean; tB?: boolean; alpha?: number }[] = [
    { a: [5, 7], b: [7, 3] },
    { a: [7, 5], b: [7, 3], tA: true },
    { a: [5, 7], b: [3, 7], tB: true, alpha: 0.5 },
    { a: [7, 5], b: [3, 7], tA: true, tB: true },
    { a: [2, 5, 7], b: [2, 7, 9] },
    { a: [2, 3, 13, 6], b: [2, 3, 11, 6], tB: true },
    { a: [3, 5, 7], b: [9, 7], tB: true },
    { a: [3, 5, 7], b: [7, 17] },
    { a: [5, 7], b: [3, 7, 4] },
    { a: [3, 7, 5], b: [7, 4], tA: true },
    { a: [37, 19], b: [19, 23] },
    { a: [131, 37], b: [130, 37], tB: true }, // 16×16 blocks, ragged edges
    { a: [523, 29], b: [29, 131] }, // 32×16 blocks (and 32×8 for d/dA), ragged edges
  ];
  for (const c of cases) {
    test(`${c.tA ? "ᵀ" : ""}[${c.a}] · ${c.tB ? "ᵀ" : ""}[${c.b}]${c.alpha ? ` ×${c.alpha}` : ""}`, async () => {
      const rand = rng(c.a.length * 100 + c.b[0]!);
      const a = randR(rand, c.a);
      const b = randR(rand, c.b);
      const o = { transA: c.tA, transB: c.tB, alpha: c.alpha };
      await check("matmul", [a, b], ([x, y]) => op.matmul(x!, y!, o), {
        y: ref.matmul(a, b, c.tA, c.tB, c.alpha),
        grads: (dy) => ref.matmulVjp(a, b, dy, c.tA, c.tB, c.alpha),
      });
    }, 60_000); // the 16×16 kernel takes SwiftShader seconds to compile
  }
});

describe("norms, gather, layout", () => {
  test("layerNorm and rmsNorm", async () => {
    const rand = rng(9);
    const x = randR(rand, [2, 3, 13], -2, 2);
    const w = randR(rand, [13], 0.5, 1.5);
    const b = randR(rand, [13]);
    await check("layerNorm", [x, w, b], ([t, ww, bb]) => op.layerNorm(t!, ww!, bb!, 1e-5), {
      y: ref.norm(x, w, b, 1e-5),
      grads: (dy) => {
        const g = ref.normVjp(x, w, b, 1e-5, dy);
        return [g.dx, g.dw, g.db];
      },
    });
    await check("rmsNorm", [x, w], ([t, ww]) => op.rmsNorm(t!, ww!, 1e-6), {
      y: ref.norm(x, w, undefined, 1e-6),
      grads: (dy) => {
        const g = ref.normVjp(x, w, undefined, 1e-6, dy);
        return [g.dx, g.dw];
      },
    });
  });

  test("embedding gather (repeated ids accumulate)", async () => {
    const rand = rng(12);
    const table = randR(rand, [7, 5]);
    const ids = [3, 0, 6, 3, 3, 1];
    // Ids known on the CPU (grouped backward) and ids that only live on the device (scanning backward).
    for (const onCpu of [true, false]) {
      const idsOf = () => {
        const t = Tensor.from(Int32Array.from(ids), [2, 3]);
        if (!onCpu) t.host = undefined;
        return t;
      };
      await check(`gather (ids on ${onCpu ? "CPU" : "device"})`, [table], ([t]) => op.reshape(op.gather(t!, idsOf()), [6, 5]), {
        y: ref.gather(table, ids),
        grads: (dy) => [ref.gatherVjp(table, ids, dy)],
      });
    }
  });

  test("slice, concat, permute, transpose, reshape", async () => {
    const rand = rng(13);
    const x = randR(rand, [2, 3, 4, 5]);
    await check("slice axis 2 [1,4)", [x], ([t]) => op.slice(t!, 2, 1, 4), { y: ref.slice(x, 2, 1, 4), grads: (dy) => [ref.sliceVjp(x, 2, 1, dy)] });
    const y = randR(rand, [2, 1, 4, 5]);
    await check("concat axis 1", [x, y], ([t, u]) => op.concat([t!, u!], 1), {
      y: ref.concat([x, y], 1),
      grads: (dy) => [ref.slice(dy, 1, 0, 3), ref.slice(dy, 1, 3, 4)],
    });
    const perm = [0, 2, 3, 1];
    const inv = [0, 3, 1, 2];
    await check("permute 0231", [x], ([t]) => op.permute(t!, perm), { y: ref.permute(x, perm), grads: (dy) => [ref.permute(dy, inv)] });
    await check("transpose -1 -2 after reshape", [x], ([t]) => op.transpose(op.reshape(t!, [6, 20]), 0, 1), {
      y: ref.permute({ shape: [6, 20], data: x.data }, [1, 0]),
      grads: (dy) => [{ shape: x.shape, data: ref.permute(dy, [1, 0]).data }],
    });
  });

  test("patchify: uint8 NHWC to normalised patches", async () => {
    const [B, H, W, C, p] = [2, 6, 9, 3, 3];
    const rand = rng(14);
    const img = Uint8Array.from({ length: B * H * W * C }, () => Math.floor(rand() * 256));
    await scopeAsync(async () => {
      const got = await op.patchify(Tensor.from(img, [B, H, W, C]), p).read();
      expectClose(got, ref.patchify(img, [B, H, W, C], p, 2 / 255, -1), "patchify", 1e-6, 0);
    });
  });
});

describe("losses and densities", () => {
  test("gaussianLogProb with a tensor std", async () => {
    const rand = rng(15);
    const x = randR(rand, [4, 7]);
    const mu = randR(rand, [4, 7]);
    const std = randR(rand, [4, 7], 0.1, 1);
    await check("gaussianLogProb", [x, mu, std], ([a, m, s]) => op.gaussianLogProb(a!, m!, s!), {
      y: ref.gaussianLogProb(x, mu, std),
      grads: (dy) => ref.gaussianLogProbVjp(x, mu, std, dy),
    });
  });

  test("mse and huber loss", async () => {
    const rand = rng(16);
    const a = randR(rand, [5, 3], -4, 4);
    const b = randR(rand, [5, 3], -4, 4);
    const scalar = (v: number) => ({ shape: [1], data: Float64Array.of(v) });
    const scaled = (g: ref.R, dy: ref.R) => ({ shape: g.shape, data: g.data.map((v) => v * dy.data[0]!) });
    await check("mse", [a, b], ([x, y]) => op.mse(x!, y!), {
      y: scalar(ref.mse(a, b)),
      grads: (dy) => [scaled(ref.mseGrad(a, b), dy), scaled(ref.mseGrad(b, a), dy)],
    });
    await check("huberLoss δ=1.5", [a, b], ([x, y]) => op.huberLoss(x!, y!, 1.5), {
      y: scalar(ref.huberLoss(a, b, 1.5)),
      grads: (dy) => [scaled(ref.huberLossGrad(a, b, 1.5), dy), scaled(ref.huberLossGrad(b, a, 1.5), dy)],
    });
  });
});
