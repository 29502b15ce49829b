// The differentiable tensor operations the model is written with. Each is a primitive from prims.ts
// or a short composition of them; the CPU reference (reference.ts) defines what each one means.
import { apply, isGradEnabled, tracksGrad } from "./autograd.ts";
import type { UnaryOp } from "./kernels/elementwise.ts";
import { kernels } from "./backend.ts";
import { type Shape, Tensor, numel, shapeStr } from "./tensor.ts";

export { backward, detach, noGrad } from "./autograd.ts";

type Operand = Tensor | number;

const un = (op: UnaryOp, x: Tensor, p0 = 0, p1 = 0) => apply("unary", [x], { op, p0, p1 });

// ---- elementwise -------------------------------------------------------------------------------

/** x·s + t */
export const affine = (x: Tensor, s: number, t = 0) => un("affine", x, s, t);
export const scale = (x: Tensor, s: number) => un("affine", x, s, 0);
export const neg = (x: Tensor) => un("affine", x, -1, 0);
export const exp = (x: Tensor) => un("exp", x);
export const log = (x: Tensor) => un("log", x);
export const tanh = (x: Tensor) => un("tanh", x);
export const sigmoid = (x: Tensor) => un("sigmoid", x);
/** GELU, tanh approximation. */
export const gelu = (x: Tensor) => un("gelu", x);
export const silu = (x: Tensor) => un("silu", x);
export const relu = (x: Tensor) => un("relu", x);
export const square = (x: Tensor) => un("square", x);
export const sqrt = (x: Tensor) => un("sqrt", x);
export const sin = (x: Tensor) => un("sin", x);
export const cos = (x: Tensor) => un("cos", x);
export const clamp = (x: Tensor, lo: number, hi: number) => un("clamp", x, lo, hi);
/** Elementwise Huber: ½x² for |x| ≤ δ, δ(|x| − ½δ) beyond. */
export const huber = (x: Tensor, delta: number) => un("huber", x, delta);

function bin(op: "add" | "sub" | "mul" | "div" | "maximum" | "minimum", a: Operand, b: Operand): Tensor {
  if (typeof a === "number" && typeof b === "number") throw new Error(`${op} of two numbers`);
  if (typeof b === "number") {
    if (op === "add") return affine(a as Tensor, 1, b);
    if (op === "sub") return affine(a as Tensor, 1, -b);
    if (op === "mul") return scale(a as Tensor, b);
    if (op === "div") return scale(a as Tensor, 1 / b);
  }
  if (typeof a === "number") {
    if (op === "add") return affine(b as Tensor, 1, a);
    if (op === "sub") return affine(b as Tensor, -1, a);
    if (op === "mul") return scale(b as Tensor, a);
  }
  const ta = typeof a === "number" ? Tensor.from([a], [1]) : a;
  const tb = typeof b === "number" ? Tensor.from([b], [1]) : b;
  return apply("binary", [ta, tb], { op });
}

/** Broadcasting arithmetic (NumPy rules); a number operand becomes an affine map where it can. */
export const add = (a: Operand, b: Operand) => bin("add", a, b);
export const sub = (a: Operand, b: Operand) => bin("sub", a, b);
export const mul = (a: Operand, b: Operand) => bin("mul", a, b);
export const div = (a: Operand, b: Operand) => bin("div", a, b);
export const maximum = (a: Operand, b: Operand) => bin("maximum", a, b);
export const minimum = (a: Operand, b: Operand) => bin("minimum", a, b);

// ---- shapes ------------------------------------------------------------------------------------

const normAxis = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

export function reshape(x: Tensor, shape: Shape): Tensor {
  const known = shape.filter((d) => d !== -1);
  const full = shape.map((d) => (d === -1 ? x.size / numel(known) : d));
  if (numel(full) !== x.size) throw new Error(`cannot reshape ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
  return apply("reshape", [x], { shape: full });
}

export const permute = (x: Tensor, perm: readonly number[]) => apply("permute", [x], { perm });

/** Swaps two axes (a copy: tensors are contiguous). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const perm = x.shape.map((_, i) => i);
  const [i, j] = [normAxis(a, x.rank), normAxis(b, x.rank)];
  [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  return permute(x, perm);
}

export const slice = (x: Tensor, axis: number, start: number, end: number) =>
  apply("slice", [x], { axis: normAxis(axis, x.rank), start, end: Math.min(end, x.shape[normAxis(axis, x.rank)]!) });

export const concat = (xs: Tensor[], axis: number) => apply("concat", xs, { axis: normAxis(axis, xs[0]!.rank) });

/** Repeats size-1 dims (and adds leading dims) to reach `shape`. */
export const expand = (x: Tensor, shape: Shape) => apply("expand", [x], { shape });

/** Sums down to `shape` (the adjoint of expand). */
export const sumTo = (x: Tensor, shape: Shape) => apply("sumTo", [x], { shape });

// ---- reductions --------------------------------------------------------------------------------

/** Sum over `axis` (all axes when omitted). */
export function sum(x: Tensor, axis?: number, keepdim = false): Tensor {
  if (axis === undefined) return reshape(sumTo(x, [1]), keepdim ? x.shape.map(() => 1) : [1]);
  const ax = normAxis(axis, x.rank);
  const kept = x.shape.map((d, i) => (i === ax ? 1 : d));
  const s = sumTo(x, kept);
  return keepdim ? s : reshape(s, x.shape.filter((_, i) => i !== ax));
}

export function mean(x: Tensor, axis?: number, keepdim = false): Tensor {
  const n = axis === undefined ? x.size : x.shape[normAxis(axis, x.rank)]!;
  return scale(sum(x, axis, keepdim), 1 / n);
}

export function max(x: Tensor, axis: number, keepdim = false): Tensor {
  const ax = normAxis(axis, x.rank);
  const m = apply("maxAxis", [x], { axis: ax });
  return keepdim ? m : reshape(m, x.shape.filter((_, i) => i !== ax));
}

export const softmax = (x: Tensor) => apply("softmax", [x], {});

// ---- layers' primitives ------------------------------------------------------------------------

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  /** Scales the product (used for 1/√d in attention). */
  alpha?: number;
}

/** Batched matmul over the last two dims. */
export const matmul = (a: Tensor, b: Tensor, o: MatmulOptions = {}) =>
  apply("matmul", [a, b], { transA: o.transA ?? false, transB: o.transB ?? false, alpha: o.alpha ?? 1 });

/**
 * softmax(scale·q·kᵀ + bias)·v for q [B, h, S, hd], k and v [B, h, T, hd] → [B, h, S, hd], fused: the
 * [B, h, S, T] logits are never stored. bias is additive, broadcasts to [B, h, S, T] (e.g. [B, 1, S, T]
 * or [B, 1, 1, T]; −1e9 where a key is masked) and, being a mask, gets no gradient.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | undefined, scale: number): Tensor {
  if (bias && isGradEnabled() && tracksGrad(bias)) throw new Error("attention: the bias is a mask and takes no gradient, but this one depends on a parameter");
  return apply("attention", bias ? [q, k, v, bias] : [q, k, v], { scale });
}

export const layerNorm = (x: Tensor, w: Tensor, b: Tensor, eps = 1e-5) => apply("norm", [x, w, b], { kind: "layer", eps });
export const rmsNorm = (x: Tensor, w: Tensor, eps = 1e-6) => apply("norm", [x, w], { kind: "rms", eps });

/** Rows of table [V, C] picked by i32 ids: [...ids, C]. */
export const gather = (table: Tensor, ids: Tensor) => apply("gather", [table, ids], {});

/** uint8 NHWC images to patch vectors (data, so no gradient). See kernels/layout.ts. */
export const patchify = (images: Tensor, patch: number, scaleBy = 2 / 255, offset = -1) => kernels().patchify(images, patch, scaleBy, offset);

// ---- losses and densities ----------------------------------------------------------------------

/** ½·log 2π, the Gaussian log-density's constant. */
export const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

/** Elementwise log N(x; mean, std²) = −log σ − ½ log 2π − ½((x − μ)/σ)². */
export function gaussianLogProb(x: Tensor, mu: Tensor, std: Operand): Tensor {
  const z = div(sub(x, mu), std);
  const quad = affine(square(z), -0.5, -HALF_LOG_2PI);
  return typeof std === "number" ? affine(quad, 1, -Math.log(std)) : sub(quad, log(std));
}

/** mean((a − b)²) over every element. */
export const mse = (a: Tensor, b: Tensor) => mean(square(sub(a, b)));

/** mean(huber(a − b, δ)) over every element. */
export const huberLoss = (a: Tensor, b: Tensor, delta: number) => mean(huber(sub(a, b), delta));
