// Fused attention: softmax(scale·q·kᵀ + bias)·v without materialising the [B, h, S, T] logits.
// One invocation owns a few query rows (forward, dQ) or key rows (dK, dV) and loops over the other
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

// Rows per invocation: an invocation handles QB query rows (forward, dQ) or KB key rows (dK, dV), so
// each K/V (or Q/dO) row it loads serves all of them. At the policy's sizes on SwiftShader
// (bench/attention.ts, BENCHMARKS.md) 8 and 16 rows with workgroups of 16 beat one row per invocation
// with workgroups of 64 by 2.5× forward+backward. Not tuned for a real GPU, which would want more,
// smaller invocations.
const QB = 8;
const KB = 16;
const WG = 16;

const PARAMS = ["blocks:u32", "S:u32", "T:u32", "h:u32", "bB:u32", "bH:u32", "bS:u32", "scale:f32"] as const;
const paramValues = (s: AttentionShapes, blocks: number, scale: number) => [blocks, s.S, s.T, s.h, ...(s.biasStrides ?? [0, 0, 0]), scale];
const biasBinding = (has: boolean) => (has ? [{ name: "Bias", access: "r" as const }] : []);
const rowBinding = (name: string, access: "r" | "w", L: Lanes) => ({ name, access, type: `array<${L.type}>` });

/**
 * WGSL that finds this invocation's block of `per` rows along an axis of length `len` (S or T):
 * `bh` = b·h + head, `i0` its first row, `r{a}` the flat row of member a and `x{a}` its index
 * along the axis. Members past the end repeat the last row; they are computed but never written.
 */
const blockHeader = (per: number, len: string) => `
  let blk = ${flatIndex(WG)};
  if (blk >= P.blocks) { return; }
  let nb = (${len} + ${per - 1}u) / ${per}u;
  let bh = blk / nb;
  let i0 = (blk % nb) * ${per}u;
  let bo = (bh / P.h) * P.bB + (bh % P.h) * P.bH; // the bias of (b, head)
  ${each(per, (a) => `let x${a} = min(i0 + ${a}u, ${len} - 1u);\n  let r${a} = bh * ${len} + x${a};`)}`;

/**
 * Forward: out [B, h, S, hd] and the logsumexp L [B, h, S] of every query row's logits (for the backward).
 * Online softmax: with m the running max, each key rescales the sum l and the accumulator by
 * exp(m_old − m_new) (1 unless the max moved), so one pass over the keys suffices. Always rescaling
 * costs an exp per key but no branch: a third less time on SwiftShader than rescaling under a branch.
 */
export function attentionForward(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | undefined, scale: number): { out: Tensor; lse: Tensor } {
  const s = attentionShapes(q, k, v, bias);
  const L = lanesFor(s.hd);
  const N = L.n;
  const hasBias = bias !== undefined;
  const out = Tensor.empty(q.shape);
  const lse = Tensor.empty([s.B, s.h, s.S]);
  const rows = (f: (a: number) => string, sep = "\n  ") => each(QB, f, sep);
  const lanes = (f: (c: number) => string, sep = "\n  ") => each(N, f, sep);
  const kern = kernel({
    name: `attention_fwd_${L.type}${N}_q${QB}_w${WG}${hasBias ? "_bias" : ""}`,
    bindings: [rowBinding("Q", "r", L), rowBinding("K", "r", L), rowBinding("V", "r", L), ...biasBinding(hasBias), rowBinding("O", "w", L), { name: "Lse", access: "w" }],
    params: [...PARAMS],
    body: `
@compute @workgroup_size(${WG})
fn main(${GRID_BUILTINS}) {${blockHeader(QB, "P.S")}
  ${rows((a) => lanes((c) => `let q${a}_${c} = Q[r${a} * ${N}u + ${c}u] * P.scale;`))}
  ${rows((a) => lanes((c) => `var acc${a}_${c} = ${L.zero};`))}
  ${rows((a) => `var m${a} = -3.4e38;\n  var l${a} = 0.0;`)}
  let ko = bh * P.T * ${N}u;
  for (var j = 0u; j < P.T; j++) {
    let kj = ko + j * ${N}u;
    ${lanes((c) => `let k${c} = K[kj + ${c}u];`, "\n    ")}
    ${lanes((c) => `let v${c} = V[kj + ${c}u];`, "\n    ")}
    ${rows(
      (a) => `let s${a} = ${dotSum(L, (c) => `q${a}_${c}`, (c) => `k${c}`)}${hasBias ? ` + Bias[bo + x${a} * P.bS + j]` : ""};
    let mn${a} = max(m${a}, s${a});
    let f${a} = exp(m${a} - mn${a});
    let p${a} = exp(s${a} - mn${a});
    m${a} = mn${a};
    l${a} = l${a} * f${a} + p${a};
    ${lanes((c) => `acc${a}_${c} = acc${a}_${c} * f${a} + p${a} * v${c};`, "\n    ")}`,
      "\n    ",
    )}
  }
  ${rows(
    (a) => `if (i0 + ${a}u < P.S) {
    ${lanes((c) => `O[r${a} * ${N}u + ${c}u] = acc${a}_${c} / l${a};`, "\n    ")}
    Lse[r${a}] = m${a} + log(l${a});
  }`,
  )}
}`,
  });
  const blocks = s.B * s.h * Math.ceil(s.S / QB);
  dispatch(kern, [q.buf, k.buf, v.buf, ...(bias ? [bias.buf] : []), out.buf, lse.buf], paramValues(s, blocks, scale), grid(blocks, WG));
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
  const N = L.n;
  const hasBias = bias !== undefined;
  const biasBuf = bias ? [bias.buf] : [];
  const lanes = (f: (c: number) => string, sep = "\n  ") => each(N, f, sep);
  const D = Tensor.empty([s.B, s.h, s.S]);
  const dq = want.q ? Tensor.empty(q.shape) : undefined;

  // Per query row: D_i always (the key-row pass needs it), dQ_i when wanted.
  const rows = (f: (a: number) => string, sep = "\n  ") => each(QB, f, sep);
  const kq = kernel({
    name: `attention_bwd_q_${L.type}${N}_q${QB}_w${WG}${hasBias ? "_bias" : ""}${want.q ? "_dq" : ""}`,
    bindings: [
      rowBinding("Q", "r", L), rowBinding("K", "r", L), rowBinding("V", "r", L), ...biasBinding(hasBias),
      rowBinding("O", "r", L), rowBinding("DO", "r", L), { name: "Lse", access: "r" }, { name: "Dv", access: "w" },
      ...(want.q ? [rowBinding("DQ", "w", L)] : []),
    ],
    params: [...PARAMS],
    body: `
@compute @workgroup_size(${WG})
fn main(${GRID_BUILTINS}) {${blockHeader(QB, "P.S")}
  ${rows((a) => lanes((c) => `let g${a}_${c} = DO[r${a} * ${N}u + ${c}u];`))}
  ${rows((a) => `let D${a} = ${dotSum(L, (c) => `g${a}_${c}`, (c) => `O[r${a} * ${N}u + ${c}u]`)};`)}${want.q ? `
  ${rows((a) => lanes((c) => `let q${a}_${c} = Q[r${a} * ${N}u + ${c}u] * P.scale;`))}
  ${rows((a) => lanes((c) => `var dq${a}_${c} = ${L.zero};`))}
  ${rows((a) => `let L${a} = Lse[r${a}];`)}
  let ko = bh * P.T * ${N}u;
  for (var j = 0u; j < P.T; j++) {
    let kj = ko + j * ${N}u;
    ${lanes((c) => `let k${c} = K[kj + ${c}u];`, "\n    ")}
    ${lanes((c) => `let v${c} = V[kj + ${c}u];`, "\n    ")}
    ${rows(
      (a) => `let p${a} = exp(${dotSum(L, (c) => `q${a}_${c}`, (c) => `k${c}`)}${hasBias ? ` + Bias[bo + x${a} * P.bS + j]` : ""} - L${a});
    let ds${a} = p${a} * (${dotSum(L, (c) => `g${a}_${c}`, (c) => `v${c}`)} - D${a});
    ${lanes((c) => `dq${a}_${c} += ds${a} * k${c};`, "\n    ")}`,
      "\n    ",
    )}
  }` : ""}
  ${rows(
    (a) => `if (i0 + ${a}u < P.S) {
    Dv[r${a}] = D${a};${want.q ? `\n    ${lanes((c) => `DQ[r${a} * ${N}u + ${c}u] = dq${a}_${c} * P.scale;`, "\n    ")}` : ""}
  }`,
  )}
}`,
  });
  const qBlocks = s.B * s.h * Math.ceil(s.S / QB);
  dispatch(kq, [q.buf, k.buf, v.buf, ...biasBuf, out.buf, dout.buf, lse.buf, D.buf, ...(dq ? [dq.buf] : [])], paramValues(s, qBlocks, scale), grid(qBlocks, WG));

  let dk: Tensor | undefined;
  let dv: Tensor | undefined;
  if (want.k || want.v) {
    dk = want.k ? Tensor.empty(k.shape) : undefined;
    dv = want.v ? Tensor.empty(v.shape) : undefined;
    const keys = (f: (a: number) => string, sep = "\n  ") => each(KB, f, sep);
    const kkv = kernel({
      name: `attention_bwd_kv_${L.type}${N}_k${KB}_w${WG}${hasBias ? "_bias" : ""}${want.k ? "_dk" : ""}${want.v ? "_dv" : ""}`,
      bindings: [
        rowBinding("Q", "r", L), rowBinding("K", "r", L), rowBinding("V", "r", L), ...biasBinding(hasBias),
        rowBinding("DO", "r", L), { name: "Lse", access: "r" }, { name: "Dv", access: "r" },
        ...(want.k ? [rowBinding("DK", "w", L)] : []), ...(want.v ? [rowBinding("DV", "w", L)] : []),
      ],
      params: [...PARAMS],
      body: `
@compute @workgroup_size(${WG})
fn main(${GRID_BUILTINS}) {${blockHeader(KB, "P.T")}
  ${keys((a) => lanes((c) => `let k${a}_${c} = K[r${a} * ${N}u + ${c}u] * P.scale;`))}
  ${want.k ? keys((a) => lanes((c) => `let v${a}_${c} = V[r${a} * ${N}u + ${c}u];\n  var dk${a}_${c} = ${L.zero};`)) : ""}
  ${want.v ? keys((a) => lanes((c) => `var dv${a}_${c} = ${L.zero};`)) : ""}
  for (var i = 0u; i < P.S; i++) {
    let row = bh * P.S + i;
    ${lanes((c) => `let q${c} = Q[row * ${N}u + ${c}u];`, "\n    ")}
    ${lanes((c) => `let g${c} = DO[row * ${N}u + ${c}u];`, "\n    ")}
    let Li = Lse[row];
    ${want.k ? "let Di = Dv[row];" : ""}
    let bi = bo + i * P.bS;
    ${keys(
      (a) => `let p${a} = exp(${dotSum(L, (c) => `q${c}`, (c) => `k${a}_${c}`)}${hasBias ? ` + Bias[bi + x${a}]` : ""} - Li);${want.v ? `
    ${lanes((c) => `dv${a}_${c} += p${a} * g${c};`, "\n    ")}` : ""}${want.k ? `
    let ds${a} = p${a} * (${dotSum(L, (c) => `g${c}`, (c) => `v${a}_${c}`)} - Di);
    ${lanes((c) => `dk${a}_${c} += ds${a} * q${c};`, "\n    ")}` : ""}`,
      "\n    ",
    )}
  }
  ${keys(
    (a) => `if (i0 + ${a}u < P.T) {${want.k ? `\n    ${lanes((c) => `DK[r${a} * ${N}u + ${c}u] = dk${a}_${c} * P.scale;`, "\n    ")}` : ""}${want.v ? `\n    ${lanes((c) => `DV[r${a} * ${N}u + ${c}u] = dv${a}_${c};`, "\n    ")}` : ""}
  }`,
  )}
}`,
    });
    const kBlocks = s.B * s.h * Math.ceil(s.T / KB);
    dispatch(kkv, [q.buf, k.buf, v.buf, ...biasBuf, dout.buf, lse.buf, D.buf, ...(dk ? [dk.buf] : []), ...(dv ? [dv.buf] : [])], paramValues(s, kBlocks, scale), grid(kBlocks, WG));
  }
  D.dispose();
  return { dq, dk, dv };
}
