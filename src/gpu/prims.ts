// The primitives autograd knows: each with its forward and its gradient rule side by side, in one
// table whose type (`{ [K in PrimName]: Prim<K> }`) makes the compiler refuse a primitive without a rule.
// Rules run without recording (no higher-order gradients) and return one gradient per input,
// shaped like that input, or undefined where `needs[i]` is false.
import { attentionBackward, attentionForward } from "./kernels/attention.ts";
import { type BinaryOp, type UnaryOp, binary, binaryGrad, broadcastShape, expand, unary, unaryGrad } from "./kernels/elementwise.ts";
import { axisCopy, gather, gatherGrad, permute, zeros } from "./kernels/layout.ts";
import { matmul } from "./kernels/matmul.ts";
import { type NormKind, normBackward, normForward } from "./kernels/norm.ts";
import { maxAxis, maxAxisGrad, softmax, softmaxGrad, sumTo } from "./kernels/reduce.ts";
import { type Shape, Tensor, shapeStr } from "./tensor.ts";

export interface Attrs {
  unary: { op: UnaryOp; p0: number; p1: number };
  binary: { op: BinaryOp };
  /** Sum down to a broadcast-compatible shape (the adjoint of expand). */
  sumTo: { shape: Shape };
  expand: { shape: Shape };
  maxAxis: { axis: number };
  matmul: { transA: boolean; transB: boolean; alpha: number };
  /** Over the last axis. */
  softmax: Record<string, never>;
  /** inputs: x, w, b (layer only). */
  norm: { kind: NormKind; eps: number };
  /** inputs: table [V, C], ids (i32, no gradient). */
  gather: Record<string, never>;
  slice: { axis: number; start: number; end: number };
  concat: { axis: number };
  permute: { perm: readonly number[] };
  reshape: { shape: Shape };
  /** inputs: q [B, h, S, hd], k, v [B, h, T, hd], bias (optional, a mask: no gradient). */
  attention: { scale: number };
}
export type PrimName = keyof Attrs;

export interface Ctx<K extends PrimName> {
  inputs: Tensor[];
  out: Tensor;
  saved: Tensor[];
  attrs: Attrs[K];
  /** Which inputs want a gradient (frozen parameters and data do not). */
  needs: boolean[];
}

export interface Prim<K extends PrimName> {
  forward(inputs: Tensor[], attrs: Attrs[K]): { out: Tensor; saved?: Tensor[] };
  backward(ctx: Ctx<K>, dy: Tensor): (Tensor | undefined)[];
}

/** Reduces a gradient taken at the broadcast shape back to the operand's shape. */
function unbroadcast(g: Tensor, shape: Shape): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const r = sumTo(g, shape);
  g.dispose();
  return r;
}

export const PRIMS: { [K in PrimName]: Prim<K> } = {
  unary: {
    forward: ([x], { op, p0, p1 }) => ({ out: unary(op, x!, p0, p1) }),
    backward: ({ inputs: [x], out, attrs: { op, p0, p1 } }, dy) => [unaryGrad(op, x!, out, dy, p0, p1)],
  },

  binary: {
    forward: ([a, b], { op }) => ({ out: binary(op, a!, b!) }),
    backward: ({ inputs: [a, b], attrs: { op }, needs }, dy) => {
      const [da, db] = binaryGrad(op, a!, b!, dy);
      const keepIf = (need: boolean | undefined, g: Tensor, shape: Shape) => (need ? unbroadcast(g, shape) : void g.dispose());
      return [keepIf(needs[0], da, a!.shape), keepIf(needs[1], db, b!.shape)];
    },
  },

  sumTo: {
    forward: ([x], { shape }) => ({ out: sumTo(x!, shape) }),
    backward: ({ inputs: [x] }, dy) => [expand(dy, x!.shape)],
  },

  expand: {
    forward: ([x], { shape }) => {
      broadcastShape(x!.shape, shape);
      return { out: expand(x!, shape) };
    },
    backward: ({ inputs: [x] }, dy) => [sumTo(dy, x!.shape)],
  },

  maxAxis: {
    forward: ([x], { axis }) => ({ out: maxAxis(x!, axis) }),
    backward: ({ inputs: [x], out, attrs: { axis } }, dy) => [maxAxisGrad(x!, out, dy, axis)],
  },

  // C = α·op(A)·op(B): dA = α·dC·op(B)ᵀ, dB = α·op(A)ᵀ·dC, each written so no transpose is copied.
  matmul: {
    forward: ([a, b], { transA, transB, alpha }) => ({ out: matmul(a!, b!, transA, transB, alpha) }),
    backward: ({ inputs: [a, b], attrs: { transA, transB, alpha }, needs }, dy) => {
      const batchedA = a!.rank > 2;
      const folded = b!.rank === 2 && batchedA && !transA; // forward folded A's batch into rows
      let da: Tensor | undefined;
      let db: Tensor | undefined;
      if (needs[0]) {
        da = transA ? matmul(b!, dy, transB, true, alpha) : matmul(dy, b!, false, !transB, alpha);
      }
      if (needs[1]) {
        if (folded) {
          // B was shared by every row of A: sum over the batch by multiplying the flattened rows.
          const a2 = a!.view([a!.size / a!.shape.at(-1)!, a!.shape.at(-1)!]);
          const dy2 = dy.view([dy.size / dy.shape.at(-1)!, dy.shape.at(-1)!]);
          db = transB ? matmul(dy2, a2, true, false, alpha) : matmul(a2, dy2, true, false, alpha);
          a2.dispose();
          dy2.dispose();
        } else {
          db = transB ? matmul(dy, a!, true, transA, alpha) : matmul(a!, dy, !transA, false, alpha);
        }
      }
      // A broadcast batch operand gets the sum over the batch.
      if (da && da.size !== a!.size) da = unbroadcast(da, a!.shape);
      if (db && db.size !== b!.size) db = unbroadcast(db, b!.shape);
      return [da && reshaped(da, a!.shape), db && reshaped(db, b!.shape)];
    },
  },

  softmax: {
    forward: ([x]) => ({ out: softmax(x!) }),
    backward: ({ out }, dy) => [softmaxGrad(out, dy)],
  },

  norm: {
    forward: ([x, w, b], { kind, eps }) => {
      const { y, stats } = normForward(kind, x!, w!, b, eps);
      return { out: y, saved: [stats] };
    },
    backward: ({ inputs: [x, w], saved: [stats], attrs: { kind } }, dy) => {
      const { dx, dw, db } = normBackward(kind, x!, w!, stats!, dy);
      return kind === "layer" ? [dx, dw, db] : [dx, dw];
    },
  },

  gather: {
    forward: ([table, ids]) => ({ out: gather(table!, ids!) }),
    backward: ({ inputs: [table, ids] }, dy) => [gatherGrad(ids!, dy, table!.shape[0]!), undefined],
  },

  slice: {
    forward: ([x], { axis, start, end }) => {
      const shape = x!.shape.map((d, i) => (i === axis ? end - start : d));
      const out = Tensor.empty(shape);
      axisCopy(x!, out, axis, start, 0, end - start);
      return { out };
    },
    backward: ({ inputs: [x], attrs: { axis, start, end } }, dy) => {
      const dx = zeros(x!.shape);
      axisCopy(dy, dx, axis, 0, start, end - start);
      return [dx];
    },
  },

  concat: {
    forward: (xs, { axis }) => {
      const shape = xs[0]!.shape.map((d, i) => (i === axis ? xs.reduce((s, x) => s + x.shape[axis]!, 0) : d));
      for (const x of xs)
        if (x.rank !== shape.length || x.shape.some((d, i) => i !== axis && d !== shape[i]))
          throw new Error(`concat along axis ${axis} of ${xs.map((t) => shapeStr(t.shape)).join(", ")}`);
      const out = Tensor.empty(shape);
      let off = 0;
      for (const x of xs) {
        axisCopy(x, out, axis, 0, off, x.shape[axis]!);
        off += x.shape[axis]!;
      }
      return { out };
    },
    backward: ({ inputs, attrs: { axis }, needs }, dy) => {
      let off = 0;
      return inputs.map((x, i) => {
        const len = x.shape[axis]!;
        let dx: Tensor | undefined;
        if (needs[i]) {
          dx = Tensor.empty(x.shape);
          axisCopy(dy, dx, axis, off, 0, len);
        }
        off += len;
        return dx;
      });
    },
  },

  permute: {
    forward: ([x], { perm }) => ({ out: permute(x!, perm) }),
    backward: ({ attrs: { perm } }, dy) => {
      const inv: number[] = [];
      perm.forEach((p, i) => (inv[p] = i));
      return [permute(dy, inv)];
    },
  },

  reshape: {
    forward: ([x], { shape }) => ({ out: x!.view(shape) }),
    backward: ({ inputs: [x] }, dy) => [dy.view(x!.shape)],
  },

  // Saves the logsumexp of every query row so the backward recomputes the probabilities row by row.
  attention: {
    forward: ([q, k, v, bias], { scale }) => {
      const { out, lse } = attentionForward(q!, k!, v!, bias, scale);
      return { out, saved: [lse] };
    },
    backward: ({ inputs: [q, k, v, bias], out, saved: [lse], attrs: { scale }, needs }, dy) => {
      const g = attentionBackward(q!, k!, v!, bias, scale, out, lse!, dy, { q: needs[0]!, k: needs[1]!, v: needs[2]! });
      return [g.dq, g.dk, g.dv];
    },
  },
};

function reshaped(t: Tensor, shape: Shape): Tensor {
  if (t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i])) return t;
  const v = t.view(shape);
  t.dispose();
  return v;
}
