// Fused attention: softmax(scale·q·kᵀ + bias)·v without materialising the [B, h, S, T] logits.
// One invocation owns one query row (forward, dQ) or one key row (dK, dV) and loops over the other
// side with an online softmax (forward) or by recomputing p from the saved logsumexp (backward,
// as FlashAttention does, without tiling): no barriers, no shared memory, a lot of work per invocation.
import { GRID_BUILTINS, dispatch, flatIndex, grid, kernel } from "../runtime.ts";
import { type Shape, Tensor, shapeStr } from "../tensor.ts";

/**
 * A row of head_dim floats is held in registers as `n` lanes: vec4s when head_dim is a multiple of 4,
 * else scalars. The loops over a row are unrolled in the generated WGSL so every lane stays a register.
 */
interface Lanes {
  type: "vec4f" | "f32";
  n: number;
  zero: string;
  dot: (a: string, b: string) => string;
}

function lanesFor(hd: number): Lanes {
  return hd % 4 === 0
    ? { type: "vec4f", n: hd / 4, zero: "vec4f(0.0)", dot: (a, b) => `dot(${a}, ${b})` }
    : { type: "f32", n: hd, zero: "0.0", dot: (a, b) => `${a} * ${b}` };
}

/** The lines f(0) … f(n−1), one statement per lane. */
const each = (n: number, f: (c: number) => string, sep = "\n  ") => Array.from({ length: n }, (_, c) => f(c)).join(sep);
/** Σ over lanes of dot(a_c, b_c), as one expression. */
const dotSum = (L: Lanes, a: (c: number) => string, b: (c: number) => string) => each(L.n, (c) => L.dot(a(c), b(c)), " + ");

export interface AttentionShapes {
  B: number;
  h: number;
  S: number;
  T: number;
  hd: number;
  /** Element strides of the bias over (b, head, query) with 0 where it broadcasts; its keys are contiguous. */
  biasStrides: [number, number, number] | undefined;
}

/** Checks q [B, h, S, hd], k and v [B, h, T, hd] and a bias broadcastable to [B, h, S, T]. */
export function attentionShapes(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | undefined): AttentionShapes {
  const [B, h, S, hd] = q.shape as [number, number, number, number];
  const T = k.shape[2]!;
  const same = (a: Shape, b: Shape) => a.length === b.length && a.every((d, i) => d === b[i]);
  if (q.rank !== 4 || !same(k.shape, [B, h, T, hd]) || !same(v.shape, k.shape))
    throw new Error(`attention: q must be [B, h, S, hd] and k, v [B, h, T, hd]; got q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)}`);
  if (!bias) return { B, h, S, T, hd, biasStrides: undefined };
  const full = [B, h, S, T];
  const bs = [...new Array<number>(Math.max(0, 4 - bias.rank)).fill(1), ...bias.shape];
  if (bs.length !== 4 || bs[3] !== T || bs.some((d, i) => d !== 1 && d !== full[i]))
    throw new Error(`attention: the bias ${shapeStr(bias.shape)} does not broadcast to [B, h, S, T] = ${shapeStr(full)} with its keys on the last axis`);
  const stride = (axis: number) => (bs[axis] === 1 ? 0 : bs.slice(axis + 1).reduce((a, d) => a * d, 1));
  return { B, h, S, T, hd, biasStrides: [stride(0), stride(1), stride(2)] };
}

const PARAMS = ["rows:u32", "S:u32", "T:u32", "h:u32", "bB:u32", "bH:u32", "bS:u32", "scale:f32"] as const;
const paramValues = (s: AttentionShapes, rows: number, scale: number) => [rows, s.S, s.T, s.h, ...(s.biasStrides ?? [0, 0, 0]), scale];
const biasBinding = (has: boolean) => (has ? [{ name: "Bias", access: "r" as const }] : []);
const rowBinding = (name: string, access: "r" | "w", L: Lanes) => ({ name, access, type: `array<${L.type}>` });

/**
 * Forward: out [B, h, S, hd] and the logsumexp L [B, h, S] of every query row's logits (for the backward).
 * Online softmax: the running max m only moves up, and when it does the sum l and the accumulator are
 * rescaled by exp(m_old − m_new), so one pass over the keys suffices.
 */
export function attentionForward(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | undefined, scale: number): { out: Tensor; lse: Tensor } {
  const s = attentionShapes(q, k, v, bias);
  const L = lanesFor(s.hd);
  const hasBias = bias !== undefined;
  const out = Tensor.empty(q.shape);
  const lse = Tensor.empty([s.B, s.h, s.S]);
  const kern = kernel({
    name: `attention_fwd_${L.type}${L.n}${hasBias ? "_bias" : ""}`,
    bindings: [rowBinding("Q", "r", L), rowBinding("K", "r", L), rowBinding("V", "r", L), ...biasBinding(hasBias), rowBinding("O", "w", L), { name: "Lse", access: "w" }],
    params: [...PARAMS],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let r = ${flatIndex()}; // query row (b, head, i) of [B, h, S]
  if (r >= P.rows) { return; }
  let bh = r / P.S;
  let qo = r * ${L.n}u;
  ${each(L.n, (c) => `let q${c} = Q[qo + ${c}u] * P.scale;`)}
  ${each(L.n, (c) => `var acc${c} = ${L.zero};`)}
  var m = -3.4e38;
  var l = 0.0;
  let ko = bh * P.T * ${L.n}u;
  let bo = (bh / P.h) * P.bB + (bh % P.h) * P.bH + (r % P.S) * P.bS;
  for (var j = 0u; j < P.T; j++) {
    let kj = ko + j * ${L.n}u;
    let s = ${dotSum(L, (c) => `q${c}`, (c) => `K[kj + ${c}u]`)}${hasBias ? " + Bias[bo + j]" : ""};
    if (s > m) {
      let c = exp(m - s);
      l = l * c;
      ${each(L.n, (c) => `acc${c} = acc${c} * c;`, "\n      ")}
      m = s;
    }
    let p = exp(s - m);
    l += p;
    ${each(L.n, (c) => `acc${c} += p * V[kj + ${c}u];`, "\n    ")}
  }
  let inv = 1.0 / l;
  ${each(L.n, (c) => `O[qo + ${c}u] = acc${c} * inv;`)}
  Lse[r] = m + log(l);
}`,
  });
  const rows = s.B * s.h * s.S;
  dispatch(kern, [q.buf, k.buf, v.buf, ...(bias ? [bias.buf] : []), out.buf, lse.buf], paramValues(s, rows, scale), grid(rows));
  return { out, lse };
}

/**
 * Backward with p_ij = exp(s_ij − L_i) recomputed, D_i = dO_i·O_i and dS_ij = p_ij(dO_i·v_j − D_i):
 * dQ_i = scale·Σ_j dS_ij k_j (per query row), dK_j = scale·Σ_i dS_ij q_i and dV_j = Σ_i p_ij dO_i
 * (per key row). The bias is a mask and gets no gradient. Only the gradients in `want` are computed.
 */
export function attentionBackward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  bias: Tensor | undefined,
  scale: number,
  out: Tensor,
  lse: Tensor,
  dout: Tensor,
  want: { q: boolean; k: boolean; v: boolean },
): { dq?: Tensor; dk?: Tensor; dv?: Tensor } {
  const s = attentionShapes(q, k, v, bias);
  const L = lanesFor(s.hd);
  const hasBias = bias !== undefined;
  const biasBuf = bias ? [bias.buf] : [];
  const D = Tensor.empty([s.B, s.h, s.S]);
  const dq = want.q ? Tensor.empty(q.shape) : undefined;
  const score = (qLane: (c: number) => string, kLane: (c: number) => string, biasAt: string) =>
    `${dotSum(L, qLane, kLane)}${hasBias ? ` + Bias[${biasAt}]` : ""}`;

  // Per query row: D_i always (the key-row pass needs it), dQ_i when wanted.
  const kq = kernel({
    name: `attention_bwd_q_${L.type}${L.n}${hasBias ? "_bias" : ""}${want.q ? "_dq" : ""}`,
    bindings: [
      rowBinding("Q", "r", L), rowBinding("K", "r", L), rowBinding("V", "r", L), ...biasBinding(hasBias),
      rowBinding("O", "r", L), rowBinding("DO", "r", L), { name: "Lse", access: "r" }, { name: "Dv", access: "w" },
      ...(want.q ? [rowBinding("DQ", "w", L)] : []),
    ],
    params: [...PARAMS],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let r = ${flatIndex()}; // query row (b, head, i) of [B, h, S]
  if (r >= P.rows) { return; }
  let qo = r * ${L.n}u;
  ${each(L.n, (c) => `let g${c} = DO[qo + ${c}u];`)}
  let Di = ${dotSum(L, (c) => `g${c}`, (c) => `O[qo + ${c}u]`)};
  Dv[r] = Di;${want.q ? `
  let bh = r / P.S;
  ${each(L.n, (c) => `let q${c} = Q[qo + ${c}u] * P.scale;`)}
  ${each(L.n, (c) => `var dq${c} = ${L.zero};`)}
  let Li = Lse[r];
  let ko = bh * P.T * ${L.n}u;
  let bo = (bh / P.h) * P.bB + (bh % P.h) * P.bH + (r % P.S) * P.bS;
  for (var j = 0u; j < P.T; j++) {
    let kj = ko + j * ${L.n}u;
    let p = exp(${score((c) => `q${c}`, (c) => `K[kj + ${c}u]`, "bo + j")} - Li);
    let ds = p * (${dotSum(L, (c) => `g${c}`, (c) => `V[kj + ${c}u]`)} - Di);
    ${each(L.n, (c) => `dq${c} += ds * K[kj + ${c}u];`, "\n    ")}
  }
  ${each(L.n, (c) => `DQ[qo + ${c}u] = dq${c} * P.scale;`)}` : ""}
}`,
  });
  const qRows = s.B * s.h * s.S;
  dispatch(kq, [q.buf, k.buf, v.buf, ...biasBuf, out.buf, dout.buf, lse.buf, D.buf, ...(dq ? [dq.buf] : [])], paramValues(s, qRows, scale), grid(qRows));

  let dk: Tensor | undefined;
  let dv: Tensor | undefined;
  if (want.k || want.v) {
    dk = want.k ? Tensor.empty(k.shape) : undefined;
    dv = want.v ? Tensor.empty(v.shape) : undefined;
    const kkv = kernel({
      name: `attention_bwd_kv_${L.type}${L.n}${hasBias ? "_bias" : ""}${want.k ? "_dk" : ""}${want.v ? "_dv" : ""}`,
      bindings: [
        rowBinding("Q", "r", L), rowBinding("K", "r", L), rowBinding("V", "r", L), ...biasBinding(hasBias),
        rowBinding("DO", "r", L), { name: "Lse", access: "r" }, { name: "Dv", access: "r" },
        ...(want.k ? [rowBinding("DK", "w", L)] : []), ...(want.v ? [rowBinding("DV", "w", L)] : []),
      ],
      params: [...PARAMS],
      body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let r = ${flatIndex()}; // key row (b, head, j) of [B, h, T]
  if (r >= P.rows) { return; }
  let bh = r / P.T;
  let ko = r * ${L.n}u;
  ${each(L.n, (c) => `let k${c} = K[ko + ${c}u] * P.scale;`)}
  ${want.k ? each(L.n, (c) => `let v${c} = V[ko + ${c}u];`) : ""}
  ${want.k ? each(L.n, (c) => `var dk${c} = ${L.zero};`) : ""}
  ${want.v ? each(L.n, (c) => `var dv${c} = ${L.zero};`) : ""}
  let bo = (bh / P.h) * P.bB + (bh % P.h) * P.bH + r % P.T;
  for (var i = 0u; i < P.S; i++) {
    let row = bh * P.S + i;
    let qi = row * ${L.n}u;
    let p = exp(${score((c) => `Q[qi + ${c}u]`, (c) => `k${c}`, "bo + i * P.bS")} - Lse[row]);
    ${want.v ? each(L.n, (c) => `dv${c} += p * DO[qi + ${c}u];`, "\n    ") : ""}${want.k ? `
    let ds = p * (${dotSum(L, (c) => `DO[qi + ${c}u]`, (c) => `v${c}`)} - Dv[row]);
    ${each(L.n, (c) => `dk${c} += ds * Q[qi + ${c}u];`, "\n    ")}` : ""}
  }
  ${want.k ? each(L.n, (c) => `DK[ko + ${c}u] = dk${c} * P.scale;`) : ""}
  ${want.v ? each(L.n, (c) => `DV[ko + ${c}u] = dv${c};`) : ""}
}`,
    });
    const kRows = s.B * s.h * s.T;
    dispatch(kkv, [q.buf, k.buf, v.buf, ...biasBuf, dout.buf, lse.buf, D.buf, ...(dk ? [dk.buf] : []), ...(dv ? [dv.buf] : [])], paramValues(s, kRows, scale), grid(kRows));
  }
  D.dispose();
  return { dq, dk, dv };
}
