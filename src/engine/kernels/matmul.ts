// Batched matmul kernel, register-tiled without shared memory: barriers are very slow on SwiftShader
// (platform.md). Measured there (bench/matmul-tiles.ts): `fma()` is emulated (a multiply-add is ~2x
// faster), writing an accumulator variable costs several multiply-adds (so k is unrolled and each
// accumulator written once per KU), every load is a per-lane gather (so 16×16 blocks per invocation,
// 8 multiply-adds per load), and neither vec4 loads nor texture fetches were faster than scalar loads.
import { type Kernel, dispatch, kernel } from "../runtime.ts";
import { matmulDims } from "../shape.ts";
import { Tensor, numel, shapeStr } from "../tensor.ts";
import { permute } from "./layout.ts";

/** Rows (TM) and columns (TN) of C computed by one invocation; WX×WY invocations per workgroup. */
export interface MatmulTiling {
  TM: number;
  TN: number;
  WX: number;
  WY: number;
  /** k values per loop iteration: each accumulator is written once per KU multiply-adds. */
  KU?: number;
}

/**
 * 16×16 blocks where the output is large enough to fill them, 8-wide where it is not (less waste),
 * and 32 rows from 512 up: 32×16 blocks ran 1024³ at 5.2–5.4 GFLOP/s against 4.75 for 16×16 on
 * SwiftShader (bench/matmul-tiles.ts). 32×32 was faster still (5.6) but takes 15 s to compile there.
 */
export function pickTiling(M: number, N: number): MatmulTiling {
  return { TM: M >= 512 ? 32 : M >= 128 ? 16 : 8, TN: N >= 128 ? 16 : 8, WX: 8, WY: 8, KU: 4 };
}

/** Strides (in floats) of C = A·B with A[b, m, k] and B[b, k, n]; a batch stride of 0 broadcasts. */
export interface MatmulStrides {
  M: number;
  N: number;
  K: number;
  sAb: number;
  sAm: number;
  sAk: number;
  sBb: number;
  sBk: number;
  sBn: number;
}

const PARAMS = ["M:u32", "N:u32", "K:u32", "sAb:u32", "sAm:u32", "sAk:u32", "sBb:u32", "sBk:u32", "sBn:u32", "alpha:f32"] as const;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

function storeC(TM: number, TN: number): string {
  return range(TM)
    .map((i) =>
      range(TN)
        .map((j) => `  if (m0 + ${i}u < P.M && n0 + ${j}u < P.N) { C[cb + (m0 + ${i}u) * P.N + n0 + ${j}u] = P.alpha * c${i}_${j}; }`)
        .join("\n"),
    )
    .join("\n");
}

/**
 * C[b, m, n] = alpha · Σ_k A[b, m, k] · B[b, k, n] for any sizes. Operands are addressed by strides,
 * so transposed and batch-broadcast (stride 0) operands need no copies. C is contiguous [batch, M, N].
 */
export function matmulKernel(t: MatmulTiling): Kernel {
  const { TM, TN, WX, WY } = t;
  const rows = range(TM);
  const cols = range(TN);
  const KU = t.KU ?? 4;
  const chunk = (ku: number) => {
    const lines: string[] = [];
    for (let q = 0; q < ku; q++) {
      rows.forEach((i) => lines.push(`    let a${i}_${q} = A[ar${i} + (k + ${q}u) * P.sAk];`));
      cols.forEach((j) => lines.push(`    let b${j}_${q} = B[bc${j} + (k + ${q}u) * P.sBk];`));
    }
    for (const i of rows)
      for (const j of cols) {
        let e = `c${i}_${j}`;
        for (let q = 0; q < ku; q++) e = `${e} + a${i}_${q} * b${j}_${q}`;
        lines.push(`    c${i}_${j} = ${e};`);
      }
    return lines.join("\n");
  };
  return kernel({
    name: `matmul_scalar_${TM}x${TN}_${WX}x${WY}_${KU}`,
    bindings: [{ name: "A", access: "r" }, { name: "B", access: "r" }, { name: "C", access: "w" }],
    params: [...PARAMS],
    body: /* wgsl */ `
@compute @workgroup_size(${WX}, ${WY})
fn main(@builtin(global_invocation_id) g: vec3u) {
  let n0 = g.x * ${TN}u;
  let m0 = g.y * ${TM}u;
  let b = g.z;
  if (n0 >= P.N || m0 >= P.M) { return; }
  // Out-of-range rows/columns are clamped for loading and skipped when storing: no branch in the k loop.
${rows.map((i) => `  let ar${i} = b * P.sAb + min(m0 + ${i}u, P.M - 1u) * P.sAm;`).join("\n")}
${cols.map((j) => `  let bc${j} = b * P.sBb + min(n0 + ${j}u, P.N - 1u) * P.sBn;`).join("\n")}
${rows.map((i) => cols.map((j) => `  var c${i}_${j} = 0.0;`).join("\n")).join("\n")}
  // k unrolled by KU with the partial sums kept in registers: SwiftShader pays far more for a
  // write to a function variable than for a multiply-add, so each accumulator is written once per KU.
  let KB = P.K / ${KU}u * ${KU}u;
  var k = 0u;
  for (; k < KB; k += ${KU}u) {
${chunk(KU)}
  }
  for (; k < P.K; k++) {
${chunk(1)}
  }
  let cb = b * P.M * P.N;
${storeC(TM, TN)}
}`,
  });
}

export function matmulGroups(t: MatmulTiling, M: number, N: number, batch: number): [number, number, number] {
  return [Math.ceil(N / (t.TN * t.WX)), Math.ceil(M / (t.TM * t.WY)), batch];
}

/**
 * C = alpha · op(A) · op(B) over the last two dims, op = transpose when asked. Batch dims must be
 * equal, or absent/1 on one side (broadcast); a 2-D B under a batched A folds the batch into M.
 */
export function matmul(a: Tensor, b: Tensor, transA = false, transB = false, alpha = 1, tiling?: MatmulTiling): Tensor {
  const { M, K, N } = matmulDims(a.shape, b.shape, transA, transB);
  if (transB && !tiling && numel(a.shape) / K >= 4 * numel(b.shape.slice(0, -2)) * 16) {
    // Reading Bᵀ makes each invocation stream 16 rows of B; a row-major copy of B reads 16
    // adjacent floats instead (~1.5x on SwiftShader), and copying costs 1/M of the product.
    const perm = b.shape.map((_, i) => i);
    [perm[b.rank - 2], perm[b.rank - 1]] = [b.rank - 1, b.rank - 2];
    const bt = permute(b, perm);
    const c = matmul(a, bt, transA, false, alpha);
    bt.dispose();
    return c;
  }
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const nA = numel(batchA);
  const nB = numel(batchB);
  let batch: number[];
  let s: MatmulStrides;
  const aS = { m: transA ? 1 : K, k: transA ? M : 1 };
  const bS = { k: transB ? 1 : N, n: transB ? K : 1 };
  if (nB === 1 && !transA && nA > 1) {
    // Fold A's batch into its rows: one 2-D product, better tiles.
    batch = [...batchA];
    s = { M: nA * M, N, K, sAb: 0, sAm: aS.m, sAk: aS.k, sBb: 0, sBk: bS.k, sBn: bS.n };
    const c = run(a, b, s, 1, alpha, tiling);
    const out = c.view([...batch, M, N]);
    c.dispose();
    return out;
  }
  if (nA !== nB && nA !== 1 && nB !== 1) throw new Error(`matmul batch dims differ: ${shapeStr(a.shape)} · ${shapeStr(b.shape)}`);
  batch = [...(nA >= nB ? batchA : batchB)];
  s = { M, N, K, sAb: nA === 1 ? 0 : M * K, sAm: aS.m, sAk: aS.k, sBb: nB === 1 ? 0 : K * N, sBk: bS.k, sBn: bS.n };
  const c = run(a, b, s, Math.max(nA, nB), alpha, tiling);
  const out = c.view([...batch, M, N]);
  c.dispose();
  return out;
}

function run(a: Tensor, b: Tensor, s: MatmulStrides, batch: number, alpha: number, tiling?: MatmulTiling): Tensor {
  const c = Tensor.empty([batch * s.M * s.N]);
  if (c.size === 0) return c;
  const t = tiling ?? pickTiling(s.M, s.N);
  dispatch(matmulKernel(t), [a.buf, b.buf, c.buf], [s.M, s.N, s.K, s.sAb, s.sAm, s.sAk, s.sBb, s.sBk, s.sBn, alpha], matmulGroups(t, s.M, s.N, batch));
  return c;
}
