// The CPU reference: plain float64 loops that define what every engine op means, forward and
// backward (vector-Jacobian products, written by hand, not derived from the GPU rules). Tests
// compare every WGSL kernel against it; it is slow on purpose and never used for training.
import type { UnaryOp } from "./kernels/elementwise.ts";

export interface R {
  shape: number[];
  data: Float64Array;
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
export const r = (shape: number[], data?: ArrayLike<number>): R => ({ shape, data: data ? Float64Array.from(data) : new Float64Array(numel(shape)) });

function stridesOf(shape: readonly number[]): number[] {
  const st: number[] = [];
  for (let i = shape.length - 1, acc = 1; i >= 0; i--) {
    st[i] = acc;
    acc *= shape[i]!;
  }
  return st;
}

/** Multi-index of flat index i in shape. */
function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return idx;
}

/** Flat index in `shape` of the broadcast multi-index `idx` (of the larger output shape). */
function bIndex(idx: number[], shape: readonly number[]): number {
  const off = idx.length - shape.length;
  let f = 0;
  for (let d = 0; d < shape.length; d++) f = f * shape[d]! + (shape[d] === 1 ? 0 : idx[d + off]!);
  return f;
}

// ---- unary ---------------------------------------------------------------------------------------

const C_GELU = Math.sqrt(2 / Math.PI);
export const UNARY_REF: Record<UnaryOp, { f: (x: number, p0: number, p1: number) => number; df: (x: number, p0: number, p1: number) => number }> = {
  affine: { f: (x, a, b) => x * a + b, df: (_x, a) => a },
  exp: { f: Math.exp, df: Math.exp },
  log: { f: Math.log, df: (x) => 1 / x },
  tanh: { f: Math.tanh, df: (x) => 1 - Math.tanh(x) ** 2 },
  sigmoid: { f: (x) => 1 / (1 + Math.exp(-x)), df: (x) => Math.exp(-x) / (1 + Math.exp(-x)) ** 2 },
  gelu: {
    f: (x) => 0.5 * x * (1 + Math.tanh(C_GELU * (x + 0.044715 * x ** 3))),
    df: (x) => {
      const t = Math.tanh(C_GELU * (x + 0.044715 * x ** 3));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * C_GELU * (1 + 3 * 0.044715 * x * x);
    },
  },
  silu: { f: (x) => x / (1 + Math.exp(-x)), df: (x) => (1 + Math.exp(-x) + x * Math.exp(-x)) / (1 + Math.exp(-x)) ** 2 },
  relu: { f: (x) => Math.max(x, 0), df: (x) => (x > 0 ? 1 : 0) },
  square: { f: (x) => x * x, df: (x) => 2 * x },
  sqrt: { f: Math.sqrt, df: (x) => 0.5 / Math.sqrt(x) },
  sin: { f: Math.sin, df: Math.cos },
  cos: { f: Math.cos, df: (x) => -Math.sin(x) },
  huber: { f: (x, d) => (Math.abs(x) <= d ? 0.5 * x * x : d * (Math.abs(x) - 0.5 * d)), df: (x, d) => Math.max(-d, Math.min(d, x)) },
  clamp: { f: (x, lo, hi) => Math.min(hi, Math.max(lo, x)), df: (x, lo, hi) => (x >= lo && x <= hi ? 1 : 0) },
};

export function unary(op: UnaryOp, x: R, p0 = 0, p1 = 0): R {
  return r(x.shape, x.data.map((v) => UNARY_REF[op].f(v, p0, p1)));
}
export function unaryVjp(op: UnaryOp, x: R, dy: R, p0 = 0, p1 = 0): R {
  return r(x.shape, x.data.map((v, i) => UNARY_REF[op].df(v, p0, p1) * dy.data[i]!));
}

// ---- binary with broadcasting ----------------------------------------------------------------

export type BinaryRefOp = "add" | "sub" | "mul" | "div" | "maximum" | "minimum";
const BIN: Record<BinaryRefOp, { f: (a: number, b: number) => number; da: (a: number, b: number) => number; db: (a: number, b: number) => number }> = {
  add: { f: (a, b) => a + b, da: () => 1, db: () => 1 },
  sub: { f: (a, b) => a - b, da: () => 1, db: () => -1 },
  mul: { f: (a, b) => a * b, da: (_a, b) => b, db: (a) => a },
  div: { f: (a, b) => a / b, da: (_a, b) => 1 / b, db: (a, b) => -a / (b * b) },
  maximum: { f: Math.max, da: (a, b) => (a >= b ? 1 : 0), db: (a, b) => (a < b ? 1 : 0) },
  minimum: { f: Math.min, da: (a, b) => (a <= b ? 1 : 0), db: (a, b) => (a > b ? 1 : 0) },
};

export function broadcast(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, i) => Math.max(a[a.length - n + i] ?? 1, b[b.length - n + i] ?? 1));
}

export function binary(op: BinaryRefOp, a: R, b: R): R {
  const shape = broadcast(a.shape, b.shape);
  const y = r(shape);
  for (let i = 0; i < y.data.length; i++) {
    const idx = unravel(i, shape);
    y.data[i] = BIN[op].f(a.data[bIndex(idx, a.shape)]!, b.data[bIndex(idx, b.shape)]!);
  }
  return y;
}

export function binaryVjp(op: BinaryRefOp, a: R, b: R, dy: R): [R, R] {
  const da = r(a.shape);
  const db = r(b.shape);
  for (let i = 0; i < dy.data.length; i++) {
    const idx = unravel(i, dy.shape);
    const ia = bIndex(idx, a.shape);
    const ib = bIndex(idx, b.shape);
    da.data[ia]! += BIN[op].da(a.data[ia]!, b.data[ib]!) * dy.data[i]!;
    db.data[ib]! += BIN[op].db(a.data[ia]!, b.data[ib]!) * dy.data[i]!;
  }
  return [da, db];
}

/** Sum down to `shape` (broadcast-compatible); its vjp is expand and vice versa. */
export function sumTo(x: R, shape: number[]): R {
  const y = r(shape);
  for (let i = 0; i < x.data.length; i++) y.data[bIndex(unravel(i, x.shape), shape)]! += x.data[i]!;
  return y;
}
export function expand(x: R, shape: number[]): R {
  const y = r(shape);
  for (let i = 0; i < y.data.length; i++) y.data[i] = x.data[bIndex(unravel(i, shape), x.shape)]!;
  return y;
}

export function maxAxis(x: R, axis: number): R {
  const shape = x.shape.map((d, i) => (i === axis ? 1 : d));
  const y = r(shape, new Float64Array(numel(shape)).fill(-Infinity));
  for (let i = 0; i < x.data.length; i++) {
    const j = bIndex(unravel(i, x.shape), shape);
    y.data[j] = Math.max(y.data[j]!, x.data[i]!);
  }
  return y;
}
export function maxAxisVjp(x: R, axis: number, dy: R): R {
  const y = maxAxis(x, axis);
  const dx = r(x.shape);
  for (let i = 0; i < x.data.length; i++) {
    const j = bIndex(unravel(i, x.shape), y.shape);
    if (x.data[i] === y.data[j]) dx.data[i] = dy.data[j]!;
  }
  return dx;
}

// ---- matmul ------------------------------------------------------------------------------------

/** Element (m, k) of the (possibly transposed) matrix at batch b of x. */
function at(x: R, b: number, i: number, j: number, trans: boolean): number {
  const [rows, cols] = x.shape.slice(-2) as [number, number];
  const nb = numel(x.shape.slice(0, -2));
  const base = (nb === 1 ? 0 : b) * rows * cols;
  return trans ? x.data[base + j * cols + i]! : x.data[base + i * cols + j]!;
}

export function matmul(a: R, b: R, transA = false, transB = false, alpha = 1): R {
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const [M, K] = transA ? [ac, ar] : [ar, ac];
  const N = transB ? br : bc;
  const batchShape = numel(a.shape.slice(0, -2)) >= numel(b.shape.slice(0, -2)) ? a.shape.slice(0, -2) : b.shape.slice(0, -2);
  const nb = numel(batchShape);
  const y = r([...batchShape, M, N]);
  for (let bi = 0; bi < nb; bi++)
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += at(a, bi, m, k, transA) * at(b, bi, k, n, transB);
        y.data[(bi * M + m) * N + n] = alpha * s;
      }
  return y;
}

/** d/dA and d/dB of Σ dy ⊙ matmul(a, b); a broadcast batch operand gets the sum over the batch. */
export function matmulVjp(a: R, b: R, dy: R, transA = false, transB = false, alpha = 1): [R, R] {
  const da = r(a.shape);
  const db = r(b.shape);
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const [M, K] = transA ? [ac, ar] : [ar, ac];
  const N = transB ? br : bc;
  const nb = numel(dy.shape.slice(0, -2));
  const aB = numel(a.shape.slice(0, -2)) === 1 ? 0 : 1;
  const bB = numel(b.shape.slice(0, -2)) === 1 ? 0 : 1;
  for (let bi = 0; bi < nb; bi++)
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        const g = alpha * dy.data[(bi * M + m) * N + n]!;
        for (let k = 0; k < K; k++) {
          const ia = aB * bi * ar * ac + (transA ? k * ac + m : m * ac + k);
          const ib = bB * bi * br * bc + (transB ? n * bc + k : k * bc + n);
          da.data[ia]! += g * b.data[ib]!;
          db.data[ib]! += g * a.data[ia]!;
        }
      }
  return [da, db];
}

// ---- softmax and norms (last axis) -----------------------------------------------------------

export function softmax(x: R): R {
  const C = x.shape.at(-1)!;
  const y = r(x.shape);
  for (let o = 0; o < x.data.length; o += C) {
    let m = -Infinity;
    for (let c = 0; c < C; c++) m = Math.max(m, x.data[o + c]!);
    let s = 0;
    for (let c = 0; c < C; c++) s += Math.exp(x.data[o + c]! - m);
    for (let c = 0; c < C; c++) y.data[o + c] = Math.exp(x.data[o + c]! - m) / s;
  }
  return y;
}
export function softmaxVjp(x: R, dy: R): R {
  const y = softmax(x);
  const C = x.shape.at(-1)!;
  const dx = r(x.shape);
  for (let o = 0; o < x.data.length; o += C)
    for (let i = 0; i < C; i++) {
      let s = 0;
      for (let j = 0; j < C; j++) s += dy.data[o + j]! * y.data[o + j]! * ((i === j ? 1 : 0) - y.data[o + i]!);
      dx.data[o + i] = s;
    }
  return dx;
}

/** LayerNorm (b given) or RMSNorm (b undefined) over the last axis. */
export function norm(x: R, w: R, b: R | undefined, eps: number): R {
  const C = x.shape.at(-1)!;
  const y = r(x.shape);
  for (let o = 0; o < x.data.length; o += C) {
    const row = x.data.subarray(o, o + C);
    const mean = b ? row.reduce((s, v) => s + v, 0) / C : 0;
    const v = row.reduce((s, u) => s + (u - mean) ** 2, 0) / C;
    for (let c = 0; c < C; c++) y.data[o + c] = ((row[c]! - mean) / Math.sqrt(v + eps)) * w.data[c]! + (b ? b.data[c]! : 0);
  }
  return y;
}

/** Full Jacobian-vector form: dx_i = Σ_j dy_j · w_j · ∂x̂_j/∂x_i, computed per row in float64. */
export function normVjp(x: R, w: R, b: R | undefined, eps: number, dy: R): { dx: R; dw: R; db: R } {
  const C = x.shape.at(-1)!;
  const dx = r(x.shape);
  const dw = r([C]);
  const db = r([C]);
  for (let o = 0; o < x.data.length; o += C) {
    const row = x.data.subarray(o, o + C);
    const mean = b ? row.reduce((s, v) => s + v, 0) / C : 0;
    const v = row.reduce((s, u) => s + (u - mean) ** 2, 0) / C;
    const sd = Math.sqrt(v + eps);
    for (let j = 0; j < C; j++) {
      const xh = (row[j]! - mean) / sd;
      dw.data[j]! += dy.data[o + j]! * xh;
      db.data[j]! += dy.data[o + j]!;
      for (let i = 0; i < C; i++) {
        // ∂x̂_j/∂x_i = (δ_ij − [layer]/C)/sd − (x_j − mean)(x_i − mean)/(C·sd³)
        const dxh = ((i === j ? 1 : 0) - (b ? 1 / C : 0)) / sd - ((row[j]! - mean) * (row[i]! - mean)) / (C * sd ** 3);
        dx.data[o + i]! += dy.data[o + j]! * w.data[j]! * dxh;
      }
    }
  }
  return { dx, dw, db };
}

// ---- attention ---------------------------------------------------------------------------------

/** The probabilities P [B, h, S, T] = softmax(scale·q·kᵀ + bias) of q [B, h, S, hd], k [B, h, T, hd]. */
function attentionProbs(q: R, k: R, bias: R | undefined, scale: number): R {
  const [B, h, S, hd] = q.shape as [number, number, number, number];
  const T = k.shape[2]!;
  const logits = r([B, h, S, T]);
  for (let bh = 0; bh < B * h; bh++)
    for (let i = 0; i < S; i++)
      for (let j = 0; j < T; j++) {
        let s = 0;
        for (let d = 0; d < hd; d++) s += q.data[(bh * S + i) * hd + d]! * k.data[(bh * T + j) * hd + d]!;
        const at = (bh * S + i) * T + j;
        logits.data[at] = scale * s + (bias ? bias.data[bIndex(unravel(at, logits.shape), bias.shape)]! : 0);
      }
  return softmax(logits);
}

/** softmax(scale·q·kᵀ + bias)·v; bias broadcasts to [B, h, S, T]. */
export function attention(q: R, k: R, v: R, bias: R | undefined, scale: number): R {
  const p = attentionProbs(q, k, bias, scale);
  return matmul(p, v);
}

/** Gradients of Σ dO ⊙ attention(q, k, v) with respect to q, k and v (the bias is a constant). */
export function attentionVjp(q: R, k: R, v: R, bias: R | undefined, scale: number, dO: R): [R, R, R] {
  const p = attentionProbs(q, k, bias, scale);
  const [dP, dv] = matmulVjp(p, v, dO);
  const dLogits = softmaxVjpFromProbs(p, dP);
  const [dq, dk] = matmulVjp(q, k, dLogits, false, true, scale);
  return [dq, dk, dv];
}

/** dx = P ⊙ (dP − Σ_c dP·P) per row, given the probabilities P of the softmax. */
function softmaxVjpFromProbs(p: R, dP: R): R {
  const C = p.shape.at(-1)!;
  const dx = r(p.shape);
  for (let o = 0; o < p.data.length; o += C) {
    let s = 0;
    for (let c = 0; c < C; c++) s += dP.data[o + c]! * p.data[o + c]!;
    for (let c = 0; c < C; c++) dx.data[o + c] = p.data[o + c]! * (dP.data[o + c]! - s);
  }
  return dx;
}

// ---- data movement -----------------------------------------------------------------------------

export function permute(x: R, perm: readonly number[]): R {
  const shape = perm.map((p) => x.shape[p]!);
  const st = stridesOf(x.shape);
  const y = r(shape);
  for (let i = 0; i < y.data.length; i++) {
    const idx = unravel(i, shape);
    y.data[i] = x.data[idx.reduce((s, v, d) => s + v * st[perm[d]!]!, 0)]!;
  }
  return y;
}

export function slice(x: R, axis: number, start: number, end: number): R {
  const shape = x.shape.map((d, i) => (i === axis ? end - start : d));
  const y = r(shape);
  for (let i = 0; i < y.data.length; i++) {
    const idx = unravel(i, shape);
    idx[axis]! += start;
    y.data[i] = x.data[bIndex(idx, x.shape)]!;
  }
  return y;
}
export function sliceVjp(x: R, axis: number, start: number, dy: R): R {
  const dx = r(x.shape);
  for (let i = 0; i < dy.data.length; i++) {
    const idx = unravel(i, dy.shape);
    idx[axis]! += start;
    dx.data[bIndex(idx, x.shape)] = dy.data[i]!;
  }
  return dx;
}

export function concat(xs: R[], axis: number): R {
  const shape = xs[0]!.shape.map((d, i) => (i === axis ? xs.reduce((s, x) => s + x.shape[axis]!, 0) : d));
  const y = r(shape);
  let off = 0;
  for (const x of xs) {
    for (let i = 0; i < x.data.length; i++) {
      const idx = unravel(i, x.shape);
      idx[axis]! += off;
      y.data[bIndex(idx, shape)] = x.data[i]!;
    }
    off += x.shape[axis]!;
  }
  return y;
}

export function gather(table: R, ids: ArrayLike<number>): R {
  const C = table.shape[1]!;
  const y = r([ids.length, C]);
  for (let n = 0; n < ids.length; n++) for (let c = 0; c < C; c++) y.data[n * C + c] = table.data[ids[n]! * C + c]!;
  return y;
}
export function gatherVjp(table: R, ids: ArrayLike<number>, dy: R): R {
  const C = table.shape[1]!;
  const dt = r(table.shape);
  for (let n = 0; n < ids.length; n++) for (let c = 0; c < C; c++) dt.data[ids[n]! * C + c]! += dy.data[n * C + c]!;
  return dt;
}

/** uint8 [B, H, W, C] → [B, (H/p)(W/p), p·p·C], byte·scale + offset, patch-major then (row, col, channel). */
export function patchify(img: Uint8Array, [B, H, W, C]: number[], p: number, scale: number, offset: number): R {
  const np = (H / p) * (W / p);
  const y = r([B!, np, p * p * C!]);
  let i = 0;
  for (let b = 0; b < B!; b++)
    for (let py = 0; py < H! / p; py++)
      for (let px = 0; px < W! / p; px++)
        for (let dy = 0; dy < p; dy++)
          for (let dx = 0; dx < p; dx++)
            for (let c = 0; c < C!; c++) y.data[i++] = img[((b * H! + py * p + dy) * W! + px * p + dx) * C! + c]! * scale + offset;
  return y;
}

// ---- losses and densities ----------------------------------------------------------------------

export function gaussianLogProb(x: R, mu: R, std: R): R {
  return r(x.shape, x.data.map((v, i) => -Math.log(std.data[i]!) - 0.5 * Math.log(2 * Math.PI) - 0.5 * ((v - mu.data[i]!) / std.data[i]!) ** 2));
}
/** Gradients of Σ dy ⊙ log N(x; μ, σ²) with respect to x, μ and σ. */
export function gaussianLogProbVjp(x: R, mu: R, std: R, dy: R): [R, R, R] {
  const z = x.data.map((v, i) => (v - mu.data[i]!) / std.data[i]!);
  return [
    r(x.shape, z.map((zi, i) => (-zi / std.data[i]!) * dy.data[i]!)),
    r(x.shape, z.map((zi, i) => (zi / std.data[i]!) * dy.data[i]!)),
    r(x.shape, z.map((zi, i) => ((zi * zi - 1) / std.data[i]!) * dy.data[i]!)),
  ];
}

export const mse = (a: R, b: R) => a.data.reduce((s, v, i) => s + (v - b.data[i]!) ** 2, 0) / a.data.length;
export const mseGrad = (a: R, b: R): R => r(a.shape, a.data.map((v, i) => (2 * (v - b.data[i]!)) / a.data.length));

export const huberLoss = (a: R, b: R, d: number) => a.data.reduce((s, v, i) => s + UNARY_REF.huber.f(v - b.data[i]!, d, 0), 0) / a.data.length;
export const huberLossGrad = (a: R, b: R, d: number): R => r(a.shape, a.data.map((v, i) => UNARY_REF.huber.df(v - b.data[i]!, d, 0) / a.data.length));
