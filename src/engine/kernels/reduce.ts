// Reductions and softmax. One invocation owns one output (a row or a column) and loops over the
// reduced axis: no workgroup barriers, which SwiftShader runs very slowly.
import { GRID_BUILTINS, dispatch, flatIndex, grid, kernel } from "../runtime.ts";
import { type Shape, Tensor, numel, shapeStr } from "../tensor.ts";

/** Views a shape as [outer, len(axis), inner]. */
export function splitAxis(shape: Shape, axis: number): [number, number, number] {
  return [numel(shape.slice(0, axis)), shape[axis]!, numel(shape.slice(axis + 1))];
}

/** y[o, i] = Σ_r x[o, r, i] over x viewed as [outer, red, inner]. */
function sumMiddle(x: Tensor, outer: number, red: number, inner: number, shape: Shape): Tensor {
  const y = Tensor.empty(shape);
  const k = kernel({
    name: "sum_middle",
    bindings: [{ name: "X", access: "r" }, { name: "Y", access: "w" }],
    params: ["outer:u32", "red:u32", "inner:u32"],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let j = ${flatIndex()};
  if (j >= P.outer * P.inner) { return; }
  let o = j / P.inner;
  let i = j % P.inner;
  var s = 0.0;
  var p = o * P.red * P.inner + i;
  for (var r = 0u; r < P.red; r++) { s += X[p]; p += P.inner; }
  Y[j] = s;
}`,
  });
  dispatch(k, [x.buf, y.buf], [outer, red, inner], grid(outer * inner));
  return y;
}

/**
 * Sums x down to `shape` (the reverse of broadcasting): leading extra dims and dims where `shape`
 * has 1 are summed. Adjacent summed dims are merged and reduced one group at a time.
 */
export function sumTo(x: Tensor, shape: Shape): Tensor {
  const r = x.rank;
  const target = [...new Array<number>(r - shape.length).fill(1), ...shape];
  if (target.some((d, i) => d !== 1 && d !== x.shape[i])) throw new Error(`cannot sum ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
  // Groups: runs of dims that are either all kept or all summed.
  const groups: { size: number; sum: boolean }[] = [];
  for (let i = 0; i < r; i++) {
    const d = x.shape[i]!;
    if (d === 1) continue;
    const sum = target[i] === 1;
    const last = groups.at(-1);
    if (last && last.sum === sum) last.size *= d;
    else groups.push({ size: d, sum });
  }
  let cur = x;
  let dims = groups.map((g) => g.size);
  for (let gi = groups.length - 1; gi >= 0; gi--) {
    if (!groups[gi]!.sum) continue;
    const outer = numel(dims.slice(0, gi));
    const inner = numel(dims.slice(gi + 1));
    const next = sumMiddle(cur, outer, dims[gi]!, inner, [outer * inner]);
    if (cur !== x) cur.dispose();
    cur = next;
    dims = [...dims.slice(0, gi), 1, ...dims.slice(gi + 1)];
  }
  if (cur === x) return copyOf(x, shape);
  const out = cur.view(shape);
  cur.dispose();
  return out;
}

function copyOf(x: Tensor, shape: Shape): Tensor {
  return sumMiddle(x, x.size, 1, 1, shape);
}

/** Max over `axis`, keeping the axis with size 1. */
export function maxAxis(x: Tensor, axis: number): Tensor {
  const [outer, red, inner] = splitAxis(x.shape, axis);
  const shape = x.shape.map((d, i) => (i === axis ? 1 : d));
  const y = Tensor.empty(shape);
  const k = kernel({
    name: "max_axis",
    bindings: [{ name: "X", access: "r" }, { name: "Y", access: "w" }],
    params: ["outer:u32", "red:u32", "inner:u32"],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let j = ${flatIndex()};
  if (j >= P.outer * P.inner) { return; }
  var p = (j / P.inner) * P.red * P.inner + j % P.inner;
  var m = X[p];
  for (var r = 1u; r < P.red; r++) { p += P.inner; m = max(m, X[p]); }
  Y[j] = m;
}`,
  });
  dispatch(k, [x.buf, y.buf], [outer, red, inner], grid(outer * inner));
  return y;
}

/** dx = dy where x equals the max of its slice (every tied element receives it), else 0. */
export function maxAxisGrad(x: Tensor, y: Tensor, dy: Tensor, axis: number): Tensor {
  const [, red, inner] = splitAxis(x.shape, axis);
  const dx = Tensor.empty(x.shape);
  const k = kernel({
    name: "max_axis_grad",
    bindings: [{ name: "X", access: "r" }, { name: "Yv", access: "r" }, { name: "DY", access: "r" }, { name: "DX", access: "w" }],
    params: ["n:u32", "red:u32", "inner:u32"],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let i = ${flatIndex()};
  if (i >= P.n) { return; }
  let j = (i / (P.red * P.inner)) * P.inner + i % P.inner;
  DX[i] = select(0.0, DY[j], X[i] == Yv[j]);
}`,
  });
  dispatch(k, [x.buf, y.buf, dy.buf, dx.buf], [x.size, red, inner], grid(x.size));
  return dx;
}

/** Softmax over the last axis, with the row max subtracted for range. */
export function softmax(x: Tensor): Tensor {
  const C = x.shape.at(-1)!;
  const R = x.size / C;
  const y = Tensor.empty(x.shape);
  const k = kernel({
    name: "softmax",
    bindings: [{ name: "X", access: "r" }, { name: "Y", access: "w" }],
    params: ["R:u32", "C:u32"],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let r = ${flatIndex()};
  if (r >= P.R) { return; }
  let b = r * P.C;
  var m = X[b];
  for (var c = 1u; c < P.C; c++) { m = max(m, X[b + c]); }
  var s = 0.0;
  for (var c = 0u; c < P.C; c++) { let e = exp(X[b + c] - m); Y[b + c] = e; s += e; }
  let inv = 1.0 / s;
  for (var c = 0u; c < P.C; c++) { Y[b + c] = Y[b + c] * inv; }
}`,
  });
  dispatch(k, [x.buf, y.buf], [R, C], grid(R));
  return y;
}

/** dx = y ⊙ (dy − Σ_c dy·y) per row. */
export function softmaxGrad(y: Tensor, dy: Tensor): Tensor {
  const C = y.shape.at(-1)!;
  const R = y.size / C;
  const dx = Tensor.empty(y.shape);
  const k = kernel({
    name: "softmax_grad",
    bindings: [{ name: "Yv", access: "r" }, { name: "DY", access: "r" }, { name: "DX", access: "w" }],
    params: ["R:u32", "C:u32"],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let r = ${flatIndex()};
  if (r >= P.R) { return; }
  let b = r * P.C;
  var s = 0.0;
  for (var c = 0u; c < P.C; c++) { s += DY[b + c] * Yv[b + c]; }
  for (var c = 0u; c < P.C; c++) { DX[b + c] = Yv[b + c] * (DY[b + c] - s); }
}`,
  });
  dispatch(k, [y.buf, dy.buf, dx.buf], [R, C], grid(R));
  return dx;
}
