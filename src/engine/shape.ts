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
