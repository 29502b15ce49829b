// Test helpers: seeded random reference tensors, upload as parameters, and the one closeness check
// every test uses (expectClose), which names the shape and the max difference when it fails.
import { expect } from "bun:test";
import type { R } from "../../src/engine/reference.ts";
import { Tensor, shapeStr } from "../../src/engine/tensor.ts";
import { Rng } from "../../src/util/random.ts";

/** A seeded uniform source (the project's one Rng), so every failure reproduces. */
export function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

/** A float32-representable random reference tensor in [lo, hi). */
export function randR(rand: () => number, shape: number[], lo = -1, hi = 1): R {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Float64Array.from(new Float32Array(Array.from({ length: n }, () => lo + (hi - lo) * rand()))) };
}

/** Uploads a reference tensor; as a parameter (requiresGrad) unless told otherwise. */
export function param(x: R, requiresGrad = true): Tensor {
  const t = Tensor.from(Float32Array.from(x.data), x.shape);
  t.requiresGrad = requiresGrad;
  return t;
}

export function maxDiff(got: ArrayLike<number>, want: ArrayLike<number>): { diff: number; at: number; scale: number } {
  let diff = 0;
  let at = -1;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    if (!(d <= diff)) {
      diff = d;
      at = i;
    }
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return { diff, at, scale };
}

/**
 * |got − want| ≤ atol + rtol·max|want| everywhere; the message names the shape, index and values.
 * DEXRL_SHOW_DIFFS=1 prints every comparison, passing ones too (for recording the max diffs seen).
 */
export function expectClose(got: ArrayLike<number>, want: R | ArrayLike<number>, label: string, atol = 1e-5, rtol = 1e-4): void {
  const w = "data" in want ? want.data : want;
  const shape = "shape" in want ? shapeStr(want.shape) : `[${w.length}]`;
  expect(got.length, `${label} ${shape}: length`).toBe(w.length);
  const { diff, at, scale } = maxDiff(got, w);
  const tol = atol + rtol * scale;
  const msg = `${label} ${shape}: max diff ${diff.toExponential(3)} at ${at} (got ${got[at]}, want ${w[at]}), tolerance ${tol.toExponential(3)}`;
  if (process.env.DEXRL_SHOW_DIFFS) console.log(`${diff <= tol ? "ok  " : "FAIL"} ${(tol > 0 ? diff / tol : diff > 0 ? Infinity : 0).toFixed(3)} of tolerance: ${msg}`);
  expect(diff <= tol, msg).toBe(true);
}

export async function gradOf(t: Tensor): Promise<Float32Array> {
  if (!t.grad) throw new Error(`no gradient reached the parameter of shape ${shapeStr(t.shape)}`);
  return t.grad.read();
}
