// Data movement: copies along an axis (slice, concat, pad), permutes, embedding gather and its
// scatter-add, and patchify (uint8 NHWC images to normalised patch vectors).
import { GRID_BUILTINS, commandEncoder, dispatch, flatIndex, grid, kernel } from "../runtime.ts";
import { type Shape, Tensor, shapeStr } from "../tensor.ts";
import { splitAxis } from "./reduce.ts";

/**
 * Copies src[:, srcOff : srcOff+len, :] into dst[:, dstOff : dstOff+len, :] with both viewed as
 * [outer, axis, inner]. Concat, slice and the zero-padding of slice's gradient are this one kernel.
 */
export function axisCopy(src: Tensor, dst: Tensor, axis: number, srcOff: number, dstOff: number, len: number): void {
  const [outer, srcLen, inner] = splitAxis(src.shape, axis);
  const dstLen = dst.shape[axis]!;
  const n = outer * len * inner;
  if (n === 0) return;
  const k = kernel({
    name: "axis_copy",
    bindings: [{ name: "S", access: "r" }, { name: "D", access: "w" }],
    params: ["n:u32", "len:u32", "inner:u32", "srcLen:u32", "dstLen:u32", "srcOff:u32", "dstOff:u32"],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let i = ${flatIndex()};
  if (i >= P.n) { return; }
  let e = i % P.inner;
  let a = (i / P.inner) % P.len;
  let o = i / (P.inner * P.len);
  D[(o * P.dstLen + P.dstOff + a) * P.inner + e] = S[(o * P.srcLen + P.srcOff + a) * P.inner + e];
}`,
  });
  dispatch(k, [src.buf, dst.buf], [n, len, inner, srcLen, dstLen, srcOff, dstOff], grid(n));
}

/** A zero-filled tensor (cleared on the queue, in order with the dispatches before it). */
export function zeros(shape: Shape): Tensor {
  const t = Tensor.empty(shape);
  commandEncoder().clearBuffer(t.buf.buffer, 0, t.size * 4);
  return t;
}

const MAXP = 6;

/** y = x transposed by `perm` (y.shape[i] = x.shape[perm[i]]), rank ≤ 6. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const r = x.rank;
  if (perm.length !== r || [...perm].sort().some((p, i) => p !== i)) throw new Error(`bad permutation [${perm}] of ${shapeStr(x.shape)}`);
  if (r > MAXP) throw new Error(`permute supports rank ≤ ${MAXP}`);
  const shape = perm.map((p) => x.shape[p]!);
  const inStride: number[] = [];
  for (let i = r - 1, acc = 1; i >= 0; i--) {
    inStride[i] = acc;
    acc *= x.shape[i]!;
  }
  const dims = [...new Array<number>(MAXP - r).fill(1), ...shape];
  const strides = [...new Array<number>(MAXP - r).fill(0), ...perm.map((p) => inStride[p]!)];
  const y = Tensor.empty(shape);
  const names = Array.from({ length: MAXP }, (_, i) => i);
  const k = kernel({
    name: "permute",
    bindings: [{ name: "X", access: "r" }, { name: "Y", access: "w" }],
    params: ["n:u32", ...names.map((i) => `d${i}:u32` as const), ...names.map((i) => `s${i}:u32` as const)],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let i = ${flatIndex()};
  if (i >= P.n) { return; }
  var r = i;
  var o = 0u;
${names
  .slice()
  .reverse()
  .map((d) => `  o += (r % P.d${d}) * P.s${d}; r = r / P.d${d};`)
  .join("\n")}
  Y[i] = X[o];
}`,
  });
  dispatch(k, [x.buf, y.buf], [y.size, ...dims, ...strides], grid(y.size));
  return y;
}

/** y[n, :] = table[ids[n], :] for table [V, C] and i32 ids of any shape; y has shape [...ids, C]. */
export function gather(table: Tensor, ids: Tensor): Tensor {
  if (ids.dtype !== "i32") throw new Error("gather needs i32 ids");
  const [V, C] = table.shape as [number, number];
  const y = Tensor.empty([...ids.shape, C]);
  const k = kernel({
    name: "gather",
    bindings: [{ name: "T", access: "r" }, { name: "I", access: "r", type: "array<i32>" }, { name: "Y", access: "w" }],
    params: ["n:u32", "C:u32", "V:u32"],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let i = ${flatIndex()};
  if (i >= P.n) { return; }
  let id = min(u32(max(I[i / P.C], 0)), P.V - 1u);
  Y[i] = T[id * P.C + i % P.C];
}`,
  });
  dispatch(k, [table.buf, ids.buf, y.buf], [y.size, C, V], grid(y.size));
  return y;
}

/**
 * dtable[v, c] = Σ_{n: ids[n] = v} dy[n, c], without atomics. With the ids known on the CPU (token
 * ids usually are), positions are grouped by id first and each (id, c) sums only its own rows:
 * O(N·C). Otherwise each table entry scans all ids: O(V·C·N), fine for small tables only.
 */
export function gatherGrad(ids: Tensor, dy: Tensor, V: number): Tensor {
  const C = dy.shape.at(-1)!;
  const N = ids.size;
  if (ids.host) return gatherGradGrouped(ids.host, dy, V, C);
  const dt = Tensor.empty([V, C]);
  const k = kernel({
    name: "gather_grad",
    bindings: [{ name: "I", access: "r", type: "array<i32>" }, { name: "DY", access: "r" }, { name: "DT", access: "w" }],
    params: ["V:u32", "C:u32", "N:u32"],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let j = ${flatIndex()};
  if (j >= P.V * P.C) { return; }
  let v = j / P.C;
  let c = j % P.C;
  var s = 0.0;
  for (var n = 0u; n < P.N; n++) {
    if (min(u32(max(I[n], 0)), P.V - 1u) == v) { s += DY[n * P.C + c]; }
  }
  DT[j] = s;
}`,
  });
  dispatch(k, [ids.buf, dy.buf, dt.buf], [V, C, N], grid(V * C));
  return dt;
}

/**
 * Images [B, H, W, C] uint8 to patches [B, (H/p)·(W/p), p·p·C], each value byte·scale + offset
 * (e.g. scale 2/255, offset −1 for [−1, 1]). Within a patch the order is (row, column, channel).
 */
export function patchify(images: Tensor, p: number, scale: number, offset: number): Tensor {
  if (images.dtype !== "u8" || images.rank !== 4) throw new Error(`patchify needs uint8 images [B, H, W, C], got ${images.dtype} ${shapeStr(images.shape)}`);
  const [B, H, W, C] = images.shape as [number, number, number, number];
  if (H % p || W % p) throw new Error(`image size ${H}x${W} is not a multiple of the patch size ${p}`);
  const y = Tensor.empty([B, (H / p) * (W / p), p * p * C]);
  const k = kernel({
    name: "patchify",
    bindings: [{ name: "X", access: "r", type: "array<u32>" }, { name: "Y", access: "w" }],
    params: ["n:u32", "H:u32", "W:u32", "C:u32", "p:u32", "scale:f32", "offset:f32"],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let i = ${flatIndex()};
  if (i >= P.n) { return; }
  let d = P.p * P.p * P.C;
  let np = (P.H / P.p) * (P.W / P.p);
  let e = i % d;
  let q = (i / d) % np;
  let b = i / (d * np);
  let c = e % P.C;
  let px = (e / P.C) % P.p;
  let py = e / (P.C * P.p);
  let row = (q / (P.W / P.p)) * P.p + py;
  let col = (q % (P.W / P.p)) * P.p + px;
  let byteIndex = ((b * P.H + row) * P.W + col) * P.C + c;
  let v = (X[byteIndex / 4u] >> (8u * (byteIndex % 4u))) & 255u;
  Y[i] = f32(v) * P.scale + P.offset;
}`,
  });
  dispatch(k, [images.buf, y.buf], [y.size, H, W, C, p, scale, offset], grid(y.size));
  return y;
}

function gatherGradGrouped(host: Int32Array, dy: Tensor, V: number, C: number): Tensor {
  const clampId = (v: number) => Math.min(Math.max(v, 0), V - 1);
  const order = Int32Array.from(host.keys()).sort((a, b) => clampId(host[a]!) - clampId(host[b]!));
  const uniq: number[] = [];
  const starts: number[] = [];
  order.forEach((n, p) => {
    const v = clampId(host[n]!);
    if (uniq.at(-1) !== v) {
      uniq.push(v);
      starts.push(p);
    }
  });
  starts.push(order.length);
  const dt = zeros([V, C]);
  const plan = Tensor.from(Int32Array.from([...order, ...starts, ...uniq]), [order.length + starts.length + uniq.length], "i32");
  const k = kernel({
    name: "gather_grad_grouped",
    bindings: [{ name: "Plan", access: "r", type: "array<i32>" }, { name: "DY", access: "r" }, { name: "DT", access: "w" }],
    params: ["U:u32", "C:u32", "N:u32"],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let j = ${flatIndex()};
  if (j >= P.U * P.C) { return; }
  let u = j / P.C;
  let c = j % P.C;
  // Plan = [order (N) | starts (U + 1) | ids (U)]
  var s = 0.0;
  for (var p = Plan[P.N + u]; p < Plan[P.N + u + 1u]; p++) { s += DY[u32(Plan[p]) * P.C + c]; }
  DT[u32(Plan[P.N + P.U + 1u + u]) * P.C + c] = s;
}`,
  });
  dispatch(k, [plan.buf, dy.buf, dt.buf], [uniq.length, C, order.length], grid(uniq.length * C));
  plan.dispose();
  return dt;
}
