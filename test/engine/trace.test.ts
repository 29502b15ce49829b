// The ONNX tracer against the WebGPU kernels: one function using every primitive (values and
// gradients through autograd) run eagerly on WebGPU and traced on ONNX Runtime must agree.
import { beforeAll, describe, expect, test } from "bun:test";
import { type Feeds, type TensorFn, compile, host, traceFn } from "../../src/engine/compile.ts";
import * as op from "../../src/engine/ops.ts";
import { fill } from "../../src/engine/kernels/elementwise.ts";
import { initEngine } from "../../src/engine/runtime.ts";
import { expectClose, rng } from "./helpers.ts";

beforeAll(async () => {
  await initEngine();
});

const rand = rng(7);
const f32 = (n: number, lo = -1, hi = 1) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rand());
const PARAMS = ["w", "b", "lnw", "lnb", "table", "wq", "wp"];

const feeds: Feeds = {
  x: host(f32(2 * 3 * 4), [2, 3, 4]),
  w: host(f32(4 * 6), [4, 6]),
  b: host(f32(6), [6]),
  lnw: host(f32(6, 0.5, 1.5), [6]),
  lnb: host(f32(6), [6]),
  table: host(f32(7 * 6), [7, 6]),
  ids: host(Int32Array.from([0, 3, 3, 6, 1, 0]), [2, 3]),
  wq: host(f32(6 * 8), [6, 8]),
  images: host(Uint8Array.from({ length: 2 * 4 * 4 * 3 }, () => Math.floor(rand() * 256)), [2, 4, 4, 3]),
  wp: host(f32(12 * 6), [12, 6]),
  bias: host(Float32Array.from({ length: 2 * 3 }, (_, i) => (i % 3 === 2 ? -1e9 : 0)), [2, 1, 1, 3]),
};

/** Every primitive, then backward: outputs the loss, a few intermediate values and every gradient. */
const everyOp: TensorFn = (t) => {
  for (const p of PARAMS) t[p]!.requiresGrad = true;
  const h = op.gelu(op.add(op.matmul(t.x!, t.w!), t.b!)); // [2, 3, 6]
  const ln = op.layerNorm(h, t.lnw!, t.lnb!);
  const r = op.rmsNorm(op.add(ln, op.gather(t.table!, t.ids!)), t.lnw!);
  const cat = op.concat([r, op.slice(r, -1, 1, 4)], 2); // [2, 3, 9]
  const sm = op.softmax(op.permute(cat, [0, 2, 1])); // [2, 9, 3]
  const mx = op.max(sm, 1, true); // [2, 1, 3]
  const qkv = op.reshape(op.matmul(r, t.wq!), [2, 3, 2, 4]);
  const heads = op.permute(qkv, [0, 2, 1, 3]); // [2, 2, 3, 4]
  const att = op.attention(heads, op.silu(heads), op.tanh(heads), t.bias!, 0.5);
  const patches = op.matmul(op.patchify(t.images!, 2), t.wp!); // [2, 4, 6]
  const misc = op.add(
    op.mul(op.sigmoid(op.slice(h, 1, 0, 1)), op.exp(op.clamp(h, -0.5, 0.5))),
    op.div(op.sqrt(op.add(op.square(h), 1)), op.add(op.relu(ln), 2)),
  );
  const trig = op.maximum(op.tanh(ln), op.minimum(op.affine(ln, -1, 0.3), op.huber(op.scale(ln, 3), 1)));
  const logs = op.log(op.affine(op.sigmoid(ln), 1, 0.5));
  const loss = op.add(
    op.add(op.add(op.mean(misc), op.sum(trig)), op.add(op.sum(logs), op.mean(op.square(att)))),
    op.add(op.add(op.sum(mx), op.mean(patches)), op.mse(ln, op.expand(op.sumTo(ln, [1, 3, 6]), [2, 3, 6]))),
  );
  op.backward(loss);
  const out: Record<string, import("../../src/engine/tensor.ts").Tensor> = { loss, att: op.noGrad(() => op.detach(att)), patches: op.detach(patches) };
  for (const p of PARAMS) out[`grad_${p}`] = t[p]!.grad!;
  return out;
};

describe("ONNX tracer", () => {
  test("every primitive and its gradient: ONNX Runtime equals WebGPU", async () => {
    const gpu = await compile("every_op", everyOp, "webgpu").run(feeds);
    const onnx = compile("every_op", everyOp, "onnx");
    const ort = await onnx.run(feeds);
    for (const k of Object.keys(gpu)) expectClose(ort[k]!, gpu[k]!, k, 1e-5, 2e-5);
    await onnx.release();
  });

  // SwiftShader's sin/cos are accurate to ~1e-4 only (Vulkan's bound), so these are checked against
  // float64 math instead of the WebGPU kernels.
  test("sin and cos and their gradients equal float64 math", async () => {
    const x = f32(64, -3, 3);
    const fn = compile("trig", (t) => {
      t.x!.requiresGrad = true;
      const y = op.add(op.sin(t.x!), op.scale(op.cos(t.x!), 2));
      op.backward(op.sum(y));
      return { y, dx: t.x!.grad! };
    }, "onnx");
    const out = await fn.run({ x: host(x, [64]) });
    expectClose(out.y!, Array.from(x, (v) => Math.sin(v) + 2 * Math.cos(v)), "y", 1e-6, 1e-6);
    expectClose(out.dx!, Array.from(x, (v) => Math.cos(v) - 2 * Math.sin(v)), "dx", 1e-6, 1e-6);
    await fn.release();
  });

  test("the same shapes reuse the session; other shapes trace anew", async () => {
    const fn = compile("double", (t) => ({ y: op.scale(t.x!, 2) }), "onnx");
    expect((await fn.run({ x: host(Float32Array.of(1, 2), [2]) })).y).toEqual(Float32Array.of(2, 4));
    expect((await fn.run({ x: host(Float32Array.of(3, 4, 5), [3]) })).y).toEqual(Float32Array.of(6, 8, 10));
    await fn.release();
  });

  test("a kernel with no ONNX lowering is refused with a sentence naming it", () => {
    // fill is a WebGPU kernel that no primitive uses: called directly inside a trace it cannot be lowered.
    expect(() => traceFn("fill", (t) => ({ y: fill(op.add(t.x!, 1), 2) }), { x: { shape: [2], dtype: "f32" } })).toThrow("the WebGPU kernel fill has no ONNX lowering");
  });
});
