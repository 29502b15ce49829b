// The ONNX backend: while `trace()` runs, every kernel the engine calls appends standard opset-17
// nodes to a graph instead of computing, on symbolic tensors. The model, its gradient rules and the
// optimizer are the same code as on WebGPU; ONNX Runtime then runs the graph on the CPU's cores.
// Tensors made from CPU data during a trace become constants; graph inputs are made with `input()`.
import { type Attr, type ElemType, OnnxGraph, onnxElemType } from "../onnx/graph.ts";
import { type Kernels, concatShape, setTracingKernels } from "./backend.ts";
import { setTracing } from "./runtime.ts";
import type { BinaryOp, UnaryOp } from "./kernels/elementwise.ts";
import type { NormKind } from "./kernels/norm.ts";
import { broadcastShape, matmulDims, sameShape, shapeStr } from "./shape.ts";
import { type DType, type Shape, Tensor, scope, setConstantSink } from "./tensor.ts";

const ELEM: Record<DType, ElemType> = { f32: "float32", i32: "int32", u8: "uint8" };
const ONNX_UNARY: Partial<Record<UnaryOp, string>> = { exp: "Exp", log: "Log", tanh: "Tanh", sigmoid: "Sigmoid", relu: "Relu", sqrt: "Sqrt", sin: "Sin", cos: "Cos" };
const ONNX_BINARY: Record<BinaryOp, string> = { add: "Add", sub: "Sub", mul: "Mul", div: "Div", maximum: "Max", minimum: "Min" };
const GELU_C = 0.7978845608028654; // √(2/π)
const GELU_A = 0.044715;

/** The perm that swaps the last two axes of a rank-r tensor. */
const swapLast = (r: number) => Array.from({ length: r }, (_, i) => (i === r - 2 ? r - 1 : i === r - 1 ? r - 2 : i));

export class Trace implements Kernels {
  readonly name = "onnx";
  readonly g: OnnxGraph;
  private readonly scalars = new Map<string, string>();
  private readonly reshaped = new Map<string, string>();
  private readonly inputNames = new Set<string>();

  constructor(graphName: string) {
    this.g = new OnnxGraph(graphName);
  }

  // ---- graph plumbing ----

  /** A graph input of a fixed shape. */
  input(name: string, shape: Shape, dtype: DType = "f32"): Tensor {
    if (this.inputNames.has(name)) throw new Error(`trace: input ${name} declared twice`);
    this.inputNames.add(name);
    this.g.input(name, [...shape], ELEM[dtype]);
    return Tensor.symbolic(shape, { name, shape }, dtype);
  }

  /** Marks t as the graph output `name`. */
  output(name: string, t: Tensor): void {
    this.g.node("Identity", [this.v(t)], {}, [name]);
    this.g.output(name, [...t.shape], ELEM[t.dtype]);
  }

  /** The graph value of t at t's own shape (a Reshape when t is a view of another shape). */
  v(t: Tensor): string {
    const sym = t.sym;
    if (!sym) throw new Error(`trace: a WebGPU tensor ${shapeStr(t.shape)} was used inside an ONNX trace; make it a graph input or build it inside the trace`);
    if (sameShape(sym.shape, t.shape)) return sym.name;
    const key = `${sym.name}|${t.shape.join(",")}`;
    let name = this.reshaped.get(key);
    if (!name) this.reshaped.set(key, (name = this.node("Reshape", [sym.name, this.ints(t.shape)])));
    return name;
  }

  constant(data: Float32Array | Int32Array | Uint8Array, shape: Shape, dtype: DType): Tensor {
    const name = this.g.initializer(`c${this.g.nextId()}`, data, [...shape]);
    return Tensor.symbolic(shape, { name, shape }, dtype);
  }

  private node(op: string, inputs: string[], attrs: Record<string, Attr> = {}): string {
    return this.g.node(op, inputs, attrs)[0]!;
  }

  private t(name: string, shape: Shape, dtype: DType = "f32"): Tensor {
    return Tensor.symbolic(shape, { name, shape }, dtype);
  }

  /** A float32 scalar constant, shared by every use of the same value. */
  private c(x: number): string {
    const key = String(Math.fround(x));
    let name = this.scalars.get(key);
    if (!name) this.scalars.set(key, (name = this.g.initializer(`s${this.g.nextId()}`, Float32Array.of(x), [])));
    return name;
  }

  private ints(values: readonly number[]): string {
    const key = `i:${values.join(",")}`;
    let name = this.scalars.get(key);
    if (!name) this.scalars.set(key, (name = this.g.ints([...values])));
    return name;
  }

  private mul = (a: string, b: string) => this.node("Mul", [a, b]);
  private add = (a: string, b: string) => this.node("Add", [a, b]);
  private sub = (a: string, b: string) => this.node("Sub", [a, b]);
  private where = (cond: string, a: string, b: string) => this.node("Where", [cond, a, b]);
  private reduce(op: "ReduceSum" | "ReduceMean" | "ReduceMax", x: string, axes: number[], keep: boolean): string {
    // Opset 17: ReduceSum takes its axes as an input, the others as an attribute.
    if (op === "ReduceSum") return this.node(op, [x, this.ints(axes)], { keepdims: { i: keep ? 1 : 0 } });
    return this.node(op, [x], { axes: { ints: axes }, keepdims: { i: keep ? 1 : 0 } });
  }
  private transpose = (x: string, perm: readonly number[]) => this.node("Transpose", [x], { perm: { ints: [...perm] } });

  // ---- elementwise ----

  unary(op: UnaryOp, x: Tensor, p0: number, p1: number): Tensor {
    const X = this.v(x);
    let y: string;
    if (op === "affine") {
      y = p0 === 1 ? X : this.mul(X, this.c(p0));
      y = p1 === 0 ? (y === X ? this.node("Identity", [X]) : y) : this.add(y, this.c(p1));
    } else if (ONNX_UNARY[op]) y = this.node(ONNX_UNARY[op]!, [X]);
    else if (op === "square") y = this.mul(X, X);
    else if (op === "gelu") {
      const u = this.mul(this.c(GELU_C), this.add(X, this.mul(this.c(GELU_A), this.mul(X, this.mul(X, X)))));
      y = this.mul(this.mul(this.c(0.5), X), this.add(this.c(1), this.node("Tanh", [u])));
    } else if (op === "silu") y = this.mul(X, this.node("Sigmoid", [X]));
    else if (op === "huber") {
      const ax = this.node("Abs", [X]);
      y = this.where(this.node("LessOrEqual", [ax, this.c(p0)]), this.mul(this.c(0.5), this.mul(X, X)), this.mul(this.c(p0), this.sub(ax, this.c(0.5 * p0))));
    } else if (op === "clamp") y = this.node("Clip", [X, this.c(p0), this.c(p1)]);
    else throw new Error(`trace: the unary op ${op} has no ONNX lowering`);
    return this.t(y, x.shape);
  }

  unaryGrad(op: UnaryOp, x: Tensor, y: Tensor, dy: Tensor, p0: number, p1: number): Tensor {
    const [X, Y, D] = [this.v(x), this.v(y), this.v(dy)];
    const one = this.c(1);
    const zero = this.c(0);
    let dx: string;
    switch (op) {
      case "affine": dx = this.mul(D, this.c(p0)); break;
      case "exp": dx = this.mul(D, Y); break;
      case "log": dx = this.node("Div", [D, X]); break;
      case "tanh": dx = this.mul(D, this.sub(one, this.mul(Y, Y))); break;
      case "sigmoid": dx = this.mul(D, this.mul(Y, this.sub(one, Y))); break;
      case "gelu": {
        const x2 = this.mul(X, X);
        const t = this.node("Tanh", [this.mul(this.c(GELU_C), this.add(X, this.mul(this.c(GELU_A), this.mul(X, x2))))]);
        const outer = this.mul(this.c(0.5), this.add(one, t));
        const inner = this.mul(this.mul(this.mul(this.c(0.5), X), this.sub(one, this.mul(t, t))), this.mul(this.c(GELU_C), this.add(one, this.mul(this.c(3 * GELU_A), x2))));
        dx = this.mul(D, this.add(outer, inner));
        break;
      }
      case "silu": {
        const s = this.node("Sigmoid", [X]);
        dx = this.mul(D, this.mul(s, this.add(one, this.mul(X, this.sub(one, s)))));
        break;
      }
      case "relu": dx = this.where(this.node("Greater", [X, zero]), D, zero); break;
      case "square": dx = this.mul(this.c(2), this.mul(X, D)); break;
      case "sqrt": dx = this.node("Div", [this.mul(D, this.c(0.5)), Y]); break;
      case "sin": dx = this.mul(D, this.node("Cos", [X])); break;
      case "cos": dx = this.node("Neg", [this.mul(D, this.node("Sin", [X]))]); break;
      case "huber": dx = this.mul(D, this.node("Clip", [X, this.c(-p0), this.c(p0)])); break;
      case "clamp": dx = this.where(this.node("And", [this.node("GreaterOrEqual", [X, this.c(p0)]), this.node("LessOrEqual", [X, this.c(p1)])]), D, zero); break;
      default: throw new Error(`trace: the gradient of unary op ${op satisfies never} has no ONNX lowering`);
    }
    return this.t(dx, x.shape);
  }

  binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
    return this.t(this.node(ONNX_BINARY[op], [this.v(a), this.v(b)]), broadcastShape(a.shape, b.shape));
  }

  binaryGrad(op: BinaryOp, a: Tensor, b: Tensor, dy: Tensor): [Tensor, Tensor] {
    const [A, B, D] = [this.v(a), this.v(b), this.v(dy)];
    const zero = this.c(0);
    // dy has the broadcast shape of a and b, so every expression with it broadcasts to that shape.
    let da: string;
    let db: string;
    switch (op) {
      case "add": [da, db] = [this.node("Identity", [D]), this.node("Identity", [D])]; break;
      case "sub": [da, db] = [this.node("Identity", [D]), this.node("Neg", [D])]; break;
      case "mul": [da, db] = [this.mul(D, B), this.mul(D, A)]; break;
      case "div": [da, db] = [this.node("Div", [D, B]), this.node("Neg", [this.node("Div", [this.mul(D, A), this.mul(B, B)])])]; break;
      // Ties send the gradient to a, as the WebGPU kernel.
      case "maximum": [da, db] = [this.where(this.node("GreaterOrEqual", [A, B]), D, zero), this.where(this.node("Less", [A, B]), D, zero)]; break;
      case "minimum": [da, db] = [this.where(this.node("LessOrEqual", [A, B]), D, zero), this.where(this.node("Greater", [A, B]), D, zero)]; break;
    }
    return [this.t(da, dy.shape), this.t(db, dy.shape)];
  }

  // ---- reductions ----

  sumTo(x: Tensor, shape: Shape): Tensor {
    const r = x.rank;
    const target = [...new Array<number>(r - shape.length).fill(1), ...shape];
    if (target.some((d, i) => d !== 1 && d !== x.shape[i])) throw new Error(`cannot sum ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
    const axes = target.flatMap((d, i) => (d === 1 && x.shape[i] !== 1 ? [i] : []));
    if (!axes.length) return this.t(this.node("Reshape", [this.v(x), this.ints(shape)]), shape);
    const summed = this.reduce("ReduceSum", this.v(x), axes, true);
    return sameShape(target, shape) ? this.t(summed, shape) : this.t(this.node("Reshape", [summed, this.ints(shape)]), shape);
  }

  expand(x: Tensor, shape: Shape): Tensor {
    return this.t(this.node("Expand", [this.v(x), this.ints(shape)]), shape);
  }

  maxAxis(x: Tensor, axis: number): Tensor {
    return this.t(this.reduce("ReduceMax", this.v(x), [axis], true), x.shape.map((d, i) => (i === axis ? 1 : d)));
  }

  maxAxisGrad(x: Tensor, y: Tensor, dy: Tensor): Tensor {
    const X = this.v(x);
    // Where broadcasts x against the kept axis of y and dy: the result has x's shape.
    return this.t(this.where(this.node("Equal", [X, this.v(y)]), this.v(dy), this.c(0)), x.shape);
  }

  softmax(x: Tensor): Tensor {
    return this.t(this.node("Softmax", [this.v(x)], { axis: { i: -1 } }), x.shape);
  }

  softmaxGrad(y: Tensor, dy: Tensor): Tensor {
    return this.t(this.softmaxBack(this.v(y), this.v(dy)), y.shape);
  }

  /** y·(dy − Σ dy·y) over the last axis. */
  private softmaxBack(Y: string, D: string): string {
    return this.mul(Y, this.sub(D, this.reduce("ReduceSum", this.mul(D, Y), [-1], true)));
  }

  // ---- matmul, norms, attention ----

  matmul(a: Tensor, b: Tensor, transA: boolean, transB: boolean, alpha: number): Tensor {
    const { M, N } = matmulDims(a.shape, b.shape, transA, transB);
    const A = transA ? this.transpose(this.v(a), swapLast(a.rank)) : this.v(a);
    const B = transB ? this.transpose(this.v(b), swapLast(b.rank)) : this.v(b);
    let y = this.node("MatMul", [A, B]);
    if (alpha !== 1) y = this.mul(y, this.c(alpha));
    return this.t(y, [...broadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2)), M, N]);
  }

  normForward(kind: NormKind, x: Tensor, w: Tensor, b: Tensor | undefined, eps: number): { y: Tensor; stats: Tensor } {
    const X = this.v(x);
    const statShape = [...x.shape.slice(0, -1), 1];
    if (kind === "layer") {
      const [y, mean, rstd] = this.g.node("LayerNormalization", [X, this.v(w), this.v(b!)], { axis: { i: -1 }, epsilon: { f: eps } }, 3);
      return { y: this.t(y!, x.shape), stats: this.t(this.node("Concat", [mean!, rstd!], { axis: { i: -1 } }), [...statShape.slice(0, -1), 2]) };
    }
    const rstd = this.node("Reciprocal", [this.node("Sqrt", [this.add(this.reduce("ReduceMean", this.mul(X, X), [-1], true), this.c(eps))])]);
    return { y: this.t(this.mul(this.mul(X, rstd), this.v(w)), x.shape), stats: this.t(rstd, statShape) };
  }

  normBackward(kind: NormKind, x: Tensor, w: Tensor, stats: Tensor, dy: Tensor): { dx: Tensor; dw: Tensor; db: Tensor | undefined } {
    const [X, S, D] = [this.v(x), this.v(stats), this.v(dy)];
    const layer = kind === "layer";
    const part = (i: number) => this.node("Slice", [S, this.ints([i]), this.ints([i + 1]), this.ints([-1])]);
    const rstd = layer ? part(1) : S;
    const xhat = layer ? this.mul(this.sub(X, part(0)), rstd) : this.mul(X, rstd);
    const g = this.mul(D, this.v(w));
    const mgx = this.reduce("ReduceMean", this.mul(g, xhat), [-1], true);
    const centred = layer ? this.sub(g, this.reduce("ReduceMean", g, [-1], true)) : g;
    const dx = this.mul(rstd, this.sub(centred, this.mul(xhat, mgx)));
    const rows = x.shape.slice(0, -1).map((_, i) => i);
    const C = [x.shape.at(-1)!];
    const colSum = (t: string) => (rows.length ? this.reduce("ReduceSum", t, rows, false) : t);
    return { dx: this.t(dx, x.shape), dw: this.t(colSum(this.mul(D, xhat)), C), db: layer ? this.t(colSum(D), C) : undefined };
  }

  /** softmax(scale·q·kᵀ + bias)·v; saves the probabilities for the backward. */
  attentionForward(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | undefined, scale: number): { out: Tensor; saved: Tensor } {
    let s = this.mul(this.node("MatMul", [this.v(q), this.transpose(this.v(k), swapLast(k.rank))]), this.c(scale));
    if (bias) s = this.add(s, this.v(bias));
    const p = this.node("Softmax", [s], { axis: { i: -1 } });
    const pShape = [...q.shape.slice(0, -1), k.shape.at(-2)!];
    return { out: this.t(this.node("MatMul", [p, this.v(v)]), [...q.shape.slice(0, -1), v.shape.at(-1)!]), saved: this.t(p, pShape) };
  }

  attentionBackward(q: Tensor, k: Tensor, v: Tensor, _bias: Tensor | undefined, scale: number, _out: Tensor, saved: Tensor, dy: Tensor, needs: { q: boolean; k: boolean; v: boolean }) {
    const [P, D] = [this.v(saved), this.v(dy)];
    const r = q.rank;
    const dS = () => this.softmaxBack(P, this.node("MatMul", [D, this.transpose(this.v(v), swapLast(r))]));
    const ds = needs.q || needs.k ? dS() : "";
    const fit = (name: string, like: Tensor) => this.t(name, like.shape);
    return {
      dq: needs.q ? fit(this.mul(this.node("MatMul", [ds, this.v(k)]), this.c(scale)), q) : undefined,
      dk: needs.k ? fit(this.mul(this.node("MatMul", [this.transpose(ds, swapLast(r)), this.v(q)]), this.c(scale)), k) : undefined,
      dv: needs.v ? fit(this.node("MatMul", [this.transpose(P, swapLast(r)), D]), v) : undefined,
    };
  }

  // ---- layout ----

  gather(table: Tensor, ids: Tensor): Tensor {
    return this.t(this.node("Gather", [this.v(table), this.v(ids)], { axis: { i: 0 } }), [...ids.shape, table.shape.at(-1)!]);
  }

  /** dTable = onehot(ids)ᵀ·dy: a matmul instead of a scatter, so repeated ids add up. */
  gatherGrad(ids: Tensor, dy: Tensor, V: number): Tensor {
    const C = dy.shape.at(-1)!;
    const n = ids.size;
    const range = this.g.initializer(`range${this.g.nextId()}`, Int32Array.from({ length: V }, (_, i) => i), [V]);
    const hot = this.node("Cast", [this.node("Equal", [this.node("Reshape", [this.v(ids), this.ints([n, 1])]), range])], { to: { i: onnxElemType("float32") } });
    const dy2 = this.node("Reshape", [this.v(dy), this.ints([n, C])]);
    return this.t(this.node("MatMul", [this.transpose(hot, [1, 0]), dy2]), [V, C]);
  }

  slice(x: Tensor, axis: number, start: number, end: number): Tensor {
    const y = this.node("Slice", [this.v(x), this.ints([start]), this.ints([end]), this.ints([axis])]);
    return this.t(y, x.shape.map((d, i) => (i === axis ? end - start : d)));
  }

  pad(dy: Tensor, shape: Shape, axis: number, start: number): Tensor {
    const before = shape.map((_, i) => (i === axis ? start : 0));
    const after = shape.map((d, i) => (i === axis ? d - start - dy.shape[axis]! : 0));
    return this.t(this.node("Pad", [this.v(dy), this.ints([...before, ...after]), this.c(0)]), shape);
  }

  concat(xs: Tensor[], axis: number): Tensor {
    const shape = concatShape(xs, axis);
    return this.t(this.node("Concat", xs.map((x) => this.v(x)), { axis: { i: axis } }), shape);
  }

  permute(x: Tensor, perm: readonly number[]): Tensor {
    return this.t(this.transpose(this.v(x), perm), perm.map((p) => x.shape[p]!));
  }

  /** uint8 [B, H, W, C] → [B, (H/p)·(W/p), p·p·C] in (row, column, channel) order, byte·scale + offset. */
  patchify(images: Tensor, p: number, scale: number, offset: number): Tensor {
    if (images.dtype !== "u8" || images.rank !== 4) throw new Error(`patchify needs uint8 images [B, H, W, C], got ${images.dtype} ${shapeStr(images.shape)}`);
    const [B, H, W, C] = images.shape as [number, number, number, number];
    if (H % p || W % p) throw new Error(`image size ${H}x${W} is not a multiple of the patch size ${p}`);
    const f = this.node("Cast", [this.v(images)], { to: { i: onnxElemType("float32") } });
    const blocks = this.transpose(this.node("Reshape", [f, this.ints([B, H / p, p, W / p, p, C])]), [0, 1, 3, 2, 4, 5]);
    const flat = this.node("Reshape", [blocks, this.ints([B, (H / p) * (W / p), p * p * C])]);
    return this.t(this.add(this.mul(flat, this.c(scale)), this.c(offset)), [B, (H / p) * (W / p), p * p * C]);
  }

  full(shape: Shape, value: number): Tensor {
    return this.t(this.node("Expand", [this.c(value), this.ints(shape)]), shape);
  }

  copy(t: Tensor): Tensor {
    return this.t(this.node("Identity", [this.v(t)]), t.shape);
  }

  accumulate(dst: Tensor, src: Tensor): void {
    if (dst.size !== src.size) throw new Error(`accumulate ${shapeStr(src.shape)} into ${shapeStr(dst.shape)}`);
    const s = sameShape(src.shape, dst.shape) ? this.v(src) : this.node("Reshape", [this.v(src), this.ints(dst.shape)]);
    dst.rebind({ name: this.add(this.v(dst), s), shape: dst.shape });
  }
}

let recording = false;

/**
 * Records `fn` as an ONNX graph: inside, every engine op appends nodes. `fn` declares inputs with
 * `tr.input` and marks outputs with `tr.output`; the tensors it makes are released at the end.
 */
export function trace(graphName: string, fn: (tr: Trace) => void): Uint8Array {
  if (recording) throw new Error("trace: traces do not nest");
  const tr = new Trace(graphName);
  recording = true;
  setTracing(true);
  setTracingKernels(tr);
  setConstantSink(tr);
  try {
    scope(() => fn(tr));
  } finally {
    recording = false;
    setTracing(false);
    setTracingKernels(undefined);
    setConstantSink(undefined);
  }
  return tr.g.toBytes();
}
