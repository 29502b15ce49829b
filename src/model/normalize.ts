// Per-dimension normalisation of states and actions with the mean/std kept in norm_stats.json.
import type { Stats } from "./checkpoint.ts";

/** Mean and std of rows of `dim` values; a floor keeps constant dimensions (e.g. unused) finite. */
export function computeStats(rows: Iterable<ArrayLike<number>>, dim: number, stdFloor = 1e-4): Stats {
  const sum = new Float64Array(dim);
  const sq = new Float64Array(dim);
  let n = 0;
  for (const r of rows) {
    if (r.length !== dim) throw new Error(`computeStats: a row has ${r.length} values, expected ${dim}`);
    for (let i = 0; i < dim; i++) {
      sum[i] += r[i]!;
      sq[i] += r[i]! * r[i]!;
    }
    n++;
  }
  if (n === 0) throw new Error("computeStats: no rows");
  const mean = Array.from(sum, (s) => s / n);
  const std = Array.from(sq, (s, i) => Math.max(stdFloor, Math.sqrt(Math.max(0, s / n - mean[i]! ** 2))));
  return { mean, std };
}

/** (x − mean)/std over the last axis of a flat array of rows. */
export function normalize(x: ArrayLike<number>, s: Stats): Float32Array {
  const d = s.mean.length;
  return Float32Array.from(x, (v, i) => (v - s.mean[i % d]!) / s.std[i % d]!);
}

/** x·std + mean over the last axis. */
export function unnormalize(x: ArrayLike<number>, s: Stats): Float32Array {
  const d = s.mean.length;
  return Float32Array.from(x, (v, i) => v * s.std[i % d]! + s.mean[i % d]!);
}
