// Shapes: the helpers every part of the engine uses, in a module that imports nothing.
export type Shape = readonly number[];

export const numel = (shape: Shape) => shape.reduce((a, b) => a * b, 1);
export const shapeStr = (shape: Shape) => `[${shape.join(", ")}]`;
export const sameShape = (a: Shape, b: Shape) => a.length === b.length && a.every((d, i) => d === b[i]);

/** NumPy broadcasting of two shapes. */
export function broadcastShape(a: Shape, b: Shape): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`shapes ${shapeStr(a)} and ${shapeStr(b)} do not broadcast`);
    out.push(Math.max(da, db));
  }
  return out;
}

/** M, K, N of op(A)·op(B) over the last two dims (op = transpose when asked), checked. */
export function matmulDims(a: Shape, b: Shape, transA: boolean, transB: boolean): { M: number; K: number; N: number } {
  if (a.length < 2 || b.length < 2) throw new Error(`matmul needs rank ≥ 2, got ${shapeStr(a)} and ${shapeStr(b)}`);
  const [ar, ac] = a.slice(-2) as [number, number];
  const [br, bc] = b.slice(-2) as [number, number];
  const [M, K] = transA ? [ac, ar] : [ar, ac];
  const [K2, N] = transB ? [bc, br] : [br, bc];
  if (K !== K2) throw new Error(`matmul inner sizes differ: ${shapeStr(a)}${transA ? "ᵀ" : ""} · ${shapeStr(b)}${transB ? "ᵀ" : ""}`);
  return { M, K, N };
}
