// Elementwise kernels: unary maps with their derivatives, and broadcasting binary maps with the
// gradient of each operand, generated from one table each so forward and backward stay side by side.
import { GRID_BUILTINS, dispatch, flatIndex, grid, kernel } from "../runtime.ts";
import { broadcastShape } from "../shape.ts";
import { type Shape, Tensor, numel, shapeStr } from "../tensor.ts";

/**
 * Unary ops: `f` maps x (with parameters p0, p1) to y; `df` is dy/dx·dy written with x, y, dy.
 * GELU is the tanh approximation (PyTorch `approximate="tanh"`, as in π0's Gemma).
 */
export const UNARY = {
  affine: { f: "x * P.p0 + P.p1", df: "dy * P.p0" },
  exp: { f: "exp(x)", df: "dy * y" },
  log: { f: "log(x)", df: "dy / x" },
  tanh: { f: "tanh(x)", df: "dy * (1.0 - y * y)" },
  sigmoid: { f: "1.0 / (1.0 + exp(-x))", df: "dy * y * (1.0 - y)" },
  gelu: {
    f: "0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))",
    df: "dy * gelu_grad(x)",
  },
  silu: { f: "x / (1.0 + exp(-x))", df: "dy * silu_grad(x)" },
  relu: { f: "max(x, 0.0)", df: "select(0.0, dy, x > 0.0)" },
  square: { f: "x * x", df: "2.0 * x * dy" },
  sqrt: { f: "sqrt(x)", df: "dy * 0.5 / y" },
  sin: { f: "sin(x)", df: "dy * cos(x)" },
  cos: { f: "cos(x)", df: "-dy * sin(x)" },
  /** Huber with delta p0: ½x² for |x| ≤ δ, δ(|x| − ½δ) beyond. */
  huber: { f: "select(P.p0 * (abs(x) - 0.5 * P.p0), 0.5 * x * x, abs(x) <= P.p0)", df: "dy * clamp(x, -P.p0, P.p0)" },
  /** clamp to [p0, p1]; the gradient passes inside the interval only. */
  clamp: { f: "clamp(x, P.p0, P.p1)", df: "select(0.0, dy, x >= P.p0 && x <= P.p1)" },
} as const;
export type UnaryOp = keyof typeof UNARY;

const HELPERS = /* wgsl */ `
fn gelu_grad(x: f32) -> f32 {
  let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  let t = tanh(u);
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x);
}
fn silu_grad(x: f32) -> f32 {
  let s = 1.0 / (1.0 + exp(-x));
  return s * (1.0 + x * (1.0 - s));
}`;

export function unary(op: UnaryOp, x: Tensor, p0 = 0, p1 = 0): Tensor {
  const y = Tensor.empty(x.shape);
  const k = kernel({
    name: `unary_${op}`,
    bindings: [{ name: "X", access: "r" }, { name: "Y", access: "w" }],
    params: ["n:u32", "p0:f32", "p1:f32"],
    body: `${HELPERS}
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let i = ${flatIndex()};
  if (i >= P.n) { return; }
  let x = X[i];
  Y[i] = ${UNARY[op].f};
}`,
  });
  dispatch(k, [x.buf, y.buf], [x.size, p0, p1], grid(x.size));
  return y;
}

/** dx = f'(x)·dy, from the saved input x and output y. */
export function unaryGrad(op: UnaryOp, x: Tensor, y: Tensor, dy: Tensor, p0 = 0, p1 = 0): Tensor {
  const dx = Tensor.empty(x.shape);
  const k = kernel({
    name: `unary_grad_${op}`,
    bindings: [{ name: "X", access: "r" }, { name: "Yv", access: "r" }, { name: "DY", access: "r" }, { name: "DX", access: "w" }],
    params: ["n:u32", "p0:f32", "p1:f32"],
    body: `${HELPERS}
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let i = ${flatIndex()};
  if (i >= P.n) { return; }
  let x = X[i];
  let y = Yv[i];
  let dy = DY[i];
  DX[i] = ${UNARY[op].df};
}`,
  });
  dispatch(k, [x.buf, y.buf, dy.buf, dx.buf], [x.size, p0, p1], grid(x.size));
  return dx;
}

/** Binary ops with the gradient of each operand (before reducing a broadcast operand back to its shape). */
export const BINARY = {
  add: { f: "a + b", da: "dy", db: "dy" },
  sub: { f: "a - b", da: "dy", db: "-dy" },
  mul: { f: "a * b", da: "dy * b", db: "dy * a" },
  div: { f: "a / b", da: "dy / b", db: "-dy * a / (b * b)" },
  /** Ties send the gradient to a. */
  maximum: { f: "max(a, b)", da: "select(0.0, dy, a >= b)", db: "select(0.0, dy, a < b)" },
  minimum: { f: "min(a, b)", da: "select(0.0, dy, a <= b)", db: "select(0.0, dy, a > b)" },
} as const;
export type BinaryOp = keyof typeof BINARY;

export { broadcastShape };

const MAXR = 4;

/**
 * Output dims and per-operand strides (0 where broadcast), with adjacent dims merged when every
 * operand treats them alike, so broadcasting costs at most MAXR index divisions per element.
 */
export function broadcastStrides(out: Shape, ins: Shape[]): { dims: number[]; strides: number[][] } {
  const r = out.length;
  const full = ins.map((s) => {
    const st = new Array<number>(r).fill(0);
    let acc = 1;
    for (let i = r - 1; i >= 0; i--) {
      const d = s[s.length - r + i] ?? 1;
      st[i] = d === 1 ? 0 : acc;
      acc *= d;
    }
    return st;
  });
  const dims: number[] = [];
  const strides: number[][] = ins.map(() => []);
  for (let i = 0; i < r; i++) {
    if (out[i] === 1) continue;
    const prev = dims.length - 1;
    const mergeable = prev >= 0 && full.every((st, k) => (st[i] === 0) === (strides[k]![prev] === 0) && (st[i] === 0 || strides[k]![prev] === st[i]! * out[i]!));
    if (mergeable) {
      dims[prev]! *= out[i]!;
      full.forEach((st, k) => (strides[k]![prev] = st[i]!));
    } else {
      dims.push(out[i]!);
      full.forEach((st, k) => strides[k]!.push(st[i]!));
    }
  }
  if (dims.length > MAXR) throw new Error(`broadcast of ${ins.map(shapeStr).join(" and ")} needs more than ${MAXR} merged dims`);
  while (dims.length < MAXR) {
    dims.unshift(1);
    strides.forEach((st) => st.unshift(0));
  }
  return { dims, strides };
}

/** WGSL computing operand offsets oa, ob from flat output index i (dims d0..d3, strides in P). */
const BCAST_INDEX = /* wgsl */ `
  var r = i;
  let i3 = r % P.d3; r = r / P.d3;
  let i2 = r % P.d2; r = r / P.d2;
  let i1 = r % P.d1;
  let i0 = r / P.d1;
  let oa = i0 * P.a0 + i1 * P.a1 + i2 * P.a2 + i3 * P.a3;
  let ob = i0 * P.b0 + i1 * P.b1 + i2 * P.b2 + i3 * P.b3;`;
const BCAST_PARAMS = ["n:u32", "d0:u32", "d1:u32", "d2:u32", "d3:u32", "a0:u32", "a1:u32", "a2:u32", "a3:u32", "b0:u32", "b1:u32", "b2:u32", "b3:u32"] as const;

function bcastParams(out: Shape, a: Shape, b: Shape): number[] {
  const { dims, strides } = broadcastStrides(out, [a, b]);
  return [numel(out), ...dims, ...strides[0]!, ...strides[1]!];
}

export function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const shape = broadcastShape(a.shape, b.shape);
  const y = Tensor.empty(shape);
  const k = kernel({
    name: `binary_${op}`,
    bindings: [{ name: "A", access: "r" }, { name: "B", access: "r" }, { name: "Y", access: "w" }],
    params: [...BCAST_PARAMS],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let i = ${flatIndex()};
  if (i >= P.n) { return; }
${BCAST_INDEX}
  let a = A[oa];
  let b = B[ob];
  Y[i] = ${BINARY[op].f};
}`,
  });
  dispatch(k, [a.buf, b.buf, y.buf], bcastParams(shape, a.shape, b.shape), grid(y.size));
  return y;
}

/** Gradients of both operands at the broadcast output shape; the caller reduces them with sumTo. */
export function binaryGrad(op: BinaryOp, a: Tensor, b: Tensor, dy: Tensor): [Tensor, Tensor] {
  const da = Tensor.empty(dy.shape);
  const db = Tensor.empty(dy.shape);
  const k = kernel({
    name: `binary_grad_${op}`,
    bindings: [{ name: "A", access: "r" }, { name: "B", access: "r" }, { name: "DY", access: "r" }, { name: "DA", access: "w" }, { name: "DB", access: "w" }],
    params: [...BCAST_PARAMS],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let i = ${flatIndex()};
  if (i >= P.n) { return; }
${BCAST_INDEX}
  let a = A[oa];
  let b = B[ob];
  let dy = DY[i];
  DA[i] = ${BINARY[op].da};
  DB[i] = ${BINARY[op].db};
}`,
  });
  dispatch(k, [a.buf, b.buf, dy.buf, da.buf, db.buf], bcastParams(dy.shape, a.shape, b.shape), grid(dy.size));
  return [da, db];
}

/** Repeats x along its size-1 (or missing leading) dims to `shape`. */
export function expand(x: Tensor, shape: Shape): Tensor {
  const y = Tensor.empty(shape);
  const k = kernel({
    name: "expand",
    bindings: [{ name: "A", access: "r" }, { name: "Y", access: "w" }],
    params: [...BCAST_PARAMS],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let i = ${flatIndex()};
  if (i >= P.n) { return; }
${BCAST_INDEX}
  Y[i] = A[oa];
}`,
  });
  dispatch(k, [x.buf, y.buf], bcastParams(shape, x.shape, [1]), grid(y.size));
  return y;
}

/** dst += src (same size), in place: accumulates gradients. */
export function accumulate(dst: Tensor, src: Tensor): void {
  if (dst.size !== src.size) throw new Error(`accumulate ${shapeStr(src.shape)} into ${shapeStr(dst.shape)}`);
  const k = kernel({
    name: "accumulate",
    bindings: [{ name: "S", access: "r" }, { name: "D", access: "w" }],
    params: ["n:u32"],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let i = ${flatIndex()};
  if (i >= P.n) { return; }
  D[i] = D[i] + S[i];
}`,
  });
  dispatch(k, [src.buf, dst.buf], [dst.size], grid(dst.size));
}

/** Sets every element to `value`. */
export function fill(t: Tensor, value: number): Tensor {
  const k = kernel({
    name: "fill",
    bindings: [{ name: "D", access: "w" }],
    params: ["n:u32", "v:f32"],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let i = ${flatIndex()};
  if (i >= P.n) { return; }
  D[i] = P.v;
}`,
  });
  dispatch(k, [t.buf], [t.size, value], grid(t.size));
  return t;
}
