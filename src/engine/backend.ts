// The seam between the engine and what computes: every kernel function the primitive table's
// forward and backward rules and autograd call, as one interface with two implementations — the
// WebGPU kernels (kernels/*.ts) and the ONNX tracer (trace.ts), which appends the same ops to a
// graph that ONNX Runtime runs on the CPU. The model, samplers and losses never see which is active.
import { attentionBackward, attentionForward } from "./kernels/attention.ts";
import { type BinaryOp, type UnaryOp, accumulate, binary, binaryGrad, expand, fill, unary, unaryGrad } from "./kernels/elementwise.ts";
import { axisCopy, gather, gatherGrad, patchify, permute, zeros } from "./kernels/layout.ts";
import { matmul } from "./kernels/matmul.ts";
import { type NormKind, normBackward, normForward } from "./kernels/norm.ts";
import { maxAxis, maxAxisGrad, softmax, softmaxGrad, sumTo } from "./kernels/reduce.ts";
import { commandEncoder } from "./runtime.ts";
import { type Shape, Tensor, shapeStr } from "./tensor.ts";

export interface Kernels {
  readonly name: "webgpu" | "onnx";
  unary(op: UnaryOp, x: Tensor, p0: number, p1: number): Tensor;
  /** dx = f'(x)·dy from the saved input x and output y. */
  unaryGrad(op: UnaryOp, x: Tensor, y: Tensor, dy: Tensor, p0: number, p1: number): Tensor;
  binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor;
  /** Both operands' gradients at the broadcast shape (the caller sums them back with sumTo). */
  binaryGrad(op: BinaryOp, a: Tensor, b: Tensor, dy: Tensor): [Tensor, Tensor];
  sumTo(x: Tensor, shape: Shape): Tensor;
  expand(x: Tensor, shape: Shape): Tensor;
  /** Max over `axis`, keeping it with size 1. */
  maxAxis(x: Tensor, axis: number): Tensor;
  maxAxisGrad(x: Tensor, y: Tensor, dy: Tensor, axis: number): Tensor;
  matmul(a: Tensor, b: Tensor, transA: boolean, transB: boolean, alpha: number): Tensor;
  softmax(x: Tensor): Tensor;
  softmaxGrad(y: Tensor, dy: Tensor): Tensor;
  /** `stats` is whatever this backend's normBackward needs; no one else reads it. */
  normForward(kind: NormKind, x: Tensor, w: Tensor, b: Tensor | undefined, eps: number): { y: Tensor; stats: Tensor };
  normBackward(kind: NormKind, x: Tensor, w: Tensor, stats: Tensor, dy: Tensor): { dx: Tensor; dw: Tensor; db: Tensor | undefined };
  gather(table: Tensor, ids: Tensor): Tensor;
  gatherGrad(ids: Tensor, dy: Tensor, V: number): Tensor;
  slice(x: Tensor, axis: number, start: number, end: number): Tensor;
  /** The adjoint of slice: dy placed at [start, start + len) of a zero tensor of `shape`. */
  pad(dy: Tensor, shape: Shape, axis: number, start: number): Tensor;
  concat(xs: Tensor[], axis: number): Tensor;
  permute(x: Tensor, perm: readonly number[]): Tensor;
  /** `saved` is whatever this backend's attentionBackward needs (the logsumexp rows on WebGPU). */
  attentionForward(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | undefined, scale: number): { out: Tensor; saved: Tensor };
  attentionBackward(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | undefined, scale: number, out: Tensor, saved: Tensor, dy: Tensor, needs: { q: boolean; k: boolean; v: boolean }): { dq?: Tensor; dk?: Tensor; dv?: Tensor };
  patchify(images: Tensor, p: number, scale: number, offset: number): Tensor;
  /** A new tensor of `shape` filled with `value`. */
  full(shape: Shape, value: number): Tensor;
  /** A copy with its own storage. */
  copy(t: Tensor): Tensor;
  /** dst += src in place (same size). */
  accumulate(dst: Tensor, src: Tensor): void;
}

function concatShape(xs: Tensor[], axis: number): number[] {
  const shape = xs[0]!.shape.map((d, i) => (i === axis ? xs.reduce((s, x) => s + x.shape[axis]!, 0) : d));
  for (const x of xs)
    if (x.rank !== shape.length || x.shape.some((d, i) => i !== axis && d !== shape[i]))
      throw new Error(`concat along axis ${axis} of ${xs.map((t) => shapeStr(t.shape)).join(", ")}`);
  return shape;
}

export const webgpu: Kernels = {
  name: "webgpu",
  unary,
  unaryGrad,
  binary,
  binaryGrad,
  sumTo,
  expand,
  maxAxis,
  maxAxisGrad,
  matmul,
  softmax,
  softmaxGrad,
  normForward,
  normBackward,
  gather,
  gatherGrad,
  slice(x, axis, start, end) {
    const out = Tensor.empty(x.shape.map((d, i) => (i === axis ? end - start : d)));
    axisCopy(x, out, axis, start, 0, end - start);
    return out;
  },
  pad(dy, shape, axis, start) {
    const dx = zeros(shape);
    axisCopy(dy, dx, axis, 0, start, dy.shape[axis]!);
    return dx;
  },
  concat(xs, axis) {
    const out = Tensor.empty(concatShape(xs, axis));
    let off = 0;
    for (const x of xs) {
      axisCopy(x, out, axis, 0, off, x.shape[axis]!);
      off += x.shape[axis]!;
    }
    return out;
  },
  permute,
  attentionForward(q, k, v, bias, scale) {
    const { out, lse } = attentionForward(q, k, v, bias, scale);
    return { out, saved: lse };
  },
  attentionBackward,
  patchify,
  full: (shape, value) => fill(Tensor.empty(shape), value),
  copy(t) {
    const c = Tensor.empty(t.shape);
    commandEncoder().copyBufferToBuffer(t.buf.buffer, 0, c.buf.buffer, 0, t.size * 4);
    return c;
  },
  accumulate,
};

export { concatShape };

let tracing: Kernels | undefined;

/** The kernels of the active backend: the tracer's while a trace runs, WebGPU otherwise. */
export const kernels = (): Kernels => tracing ?? webgpu;

/** Installed by the tracer for the duration of a trace. */
export function setTracingKernels(k: Kernels | undefined): void {
  tracing = k;
}
