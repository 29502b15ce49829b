// LayerNorm and RMSNorm over the last axis: forward saves (mean, rstd) per row for the backward.
// RMSNorm is LayerNorm without centring and without bias, so both come from one generator.
import { GRID_BUILTINS, dispatch, flatIndex, grid, kernel } from "../runtime.ts";
import { Tensor } from "../tensor.ts";

export type NormKind = "layer" | "rms";

/**
 * y = (x − mean)·rstd·w + b (layer) or x·rstd·w (rms), rstd = 1/√(var + eps) or 1/√(mean(x²) + eps).
 * Returns y [..., C] and stats [R, 2] = (mean, rstd) per row (mean is 0 for rms).
 */
export function normForward(kind: NormKind, x: Tensor, w: Tensor, b: Tensor | undefined, eps: number): { y: Tensor; stats: Tensor } {
  const C = x.shape.at(-1)!;
  const R = x.size / C;
  const y = Tensor.empty(x.shape);
  const stats = Tensor.empty([R, 2]);
  const layer = kind === "layer";
  const k = kernel({
    name: `norm_${kind}`,
    bindings: [
      { name: "X", access: "r" },
      { name: "W", access: "r" },
      ...(layer ? [{ name: "Bv", access: "r" as const }] : []),
      { name: "Y", access: "w" },
      { name: "S", access: "w" },
    ],
    params: ["R:u32", "C:u32", "eps:f32"],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let r = ${flatIndex()};
  if (r >= P.R) { return; }
  let o = r * P.C;
  var mean = 0.0;
  ${layer ? "for (var c = 0u; c < P.C; c++) { mean += X[o + c]; }\n  mean = mean / f32(P.C);" : ""}
  var ss = 0.0;
  for (var c = 0u; c < P.C; c++) { let d = X[o + c] - mean; ss += d * d; }
  let rstd = inverseSqrt(ss / f32(P.C) + P.eps);
  for (var c = 0u; c < P.C; c++) { Y[o + c] = (X[o + c] - mean) * rstd * W[c]${layer ? " + Bv[c]" : ""}; }
  S[2u * r] = mean;
  S[2u * r + 1u] = rstd;
}`,
  });
  dispatch(k, layer ? [x.buf, w.buf, b!.buf, y.buf, stats.buf] : [x.buf, w.buf, y.buf, stats.buf], [R, C, eps], grid(R));
  return { y, stats };
}

/**
 * With x̂ = (x − mean)·rstd and g = dy·w:
 * dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) (layer) or rstd·(g − x̂·mean(g·x̂)) (rms);
 * dw = Σ_rows dy·x̂; db = Σ_rows dy.
 */
export function normBackward(kind: NormKind, x: Tensor, w: Tensor, stats: Tensor, dy: Tensor): { dx: Tensor; dw: Tensor; db: Tensor | undefined } {
  const C = x.shape.at(-1)!;
  const R = x.size / C;
  const layer = kind === "layer";
  const dx = Tensor.empty(x.shape);
  const kx = kernel({
    name: `norm_${kind}_dx`,
    bindings: [{ name: "X", access: "r" }, { name: "W", access: "r" }, { name: "S", access: "r" }, { name: "DY", access: "r" }, { name: "DX", access: "w" }],
    params: ["R:u32", "C:u32"],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let r = ${flatIndex()};
  if (r >= P.R) { return; }
  let o = r * P.C;
  let mean = S[2u * r];
  let rstd = S[2u * r + 1u];
  var mg = 0.0;
  var mgx = 0.0;
  for (var c = 0u; c < P.C; c++) {
    let g = DY[o + c] * W[c];
    mg += g;
    mgx += g * (X[o + c] - mean) * rstd;
  }
  mg = ${layer ? "mg / f32(P.C)" : "0.0"};
  mgx = mgx / f32(P.C);
  for (var c = 0u; c < P.C; c++) {
    let xh = (X[o + c] - mean) * rstd;
    DX[o + c] = rstd * (DY[o + c] * W[c] - mg - xh * mgx);
  }
}`,
  });
  dispatch(kx, [x.buf, w.buf, stats.buf, dy.buf, dx.buf], [R, C], grid(R));

  const dw = Tensor.empty([C]);
  const db = layer ? Tensor.empty([C]) : undefined;
  const kw = kernel({
    name: `norm_${kind}_dw`,
    bindings: [{ name: "X", access: "r" }, { name: "S", access: "r" }, { name: "DY", access: "r" }, { name: "DW", access: "w" }, ...(layer ? [{ name: "DB", access: "w" as const }] : [])],
    params: ["R:u32", "C:u32"],
    body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let c = ${flatIndex()};
  if (c >= P.C) { return; }
  var sw = 0.0;
  var sb = 0.0;
  for (var r = 0u; r < P.R; r++) {
    let dy = DY[r * P.C + c];
    sw += dy * (X[r * P.C + c] - S[2u * r]) * S[2u * r + 1u];
    sb += dy;
  }
  DW[c] = sw;
  ${layer ? "DB[c] = sb;" : ""}
}`,
  });
  dispatch(kw, layer ? [x.buf, stats.buf, dy.buf, dw.buf, db!.buf] : [x.buf, stats.buf, dy.buf, dw.buf], [R, C], grid(C));
  return { dx, dw, db };
}
