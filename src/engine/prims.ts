// The primitives autograd knows: each with its forward and its gradient rule side by side, in one
// table whose type (`{ [K in PrimName]: Prim<K> }`) makes the compiler refuse a primitive without a rule.
// Rules run without recording (no higher-order gradients) and return one gradient per input,
// shaped like that input, or undefined where `needs[i]` is false. They compute through `kernels()`,
// so the same rules run on WebGPU and, traced, on ONNX Runtime (backend.ts).
import { kernels } from "./backend.ts";
import type { BinaryOp, UnaryOp } from "./kernels/elementwise.ts";
import type { NormKind } from "./kernels/norm.ts";
import { broadcastShape } from "./shape.ts";
import { type Shape, Tensor } from "./tensor.ts";

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

export const PRIMS: { [K in PrimName]: Prim<K> } = {
  unary: {
    forward: ([x], { op, p0, p1 }) => ({ out: kernels().unary(op, x!, p0, p1) }),
    backward: ({ inputs: [x], out, attrs: { op, p0, p1 } }, dy) => [kernels().unaryGrad(op, x!, out, dy, p0, p1)],
  },

  binary: {
    forward: ([a, b], { op }) => ({ out: kernels().binary(op, a!, b!) }),
    backward: ({ inputs: [a, b], attrs: { op }, needs }, dy) => {
      const [da, db] = kernels().binaryGrad(op, a!, b!, dy);
      const keepIf = (need: boolean | undefined, g: Tensor, shape: Shape) => (need ? unbroadcast(g, shape) : void g.dispose());
      return [keepIf(needs[0], da, a!.shape), keepIf(needs[1], db, b!.shape)];
    },
  },

  sumTo: {
    forward: ([x], { shape }) => ({ out: kernels().sumTo(x!, shape) }),
    backward: ({ inputs: [x] }, dy) => [kernels().expand(dy, x!.shape)],
  },

  expand: {
    forward: ([x], { shape }) => {
      broadcastShape(x!.shape, shape);
      return { out: kernels().expand(x!, shape) };
    },
    backward: ({ inputs: [x] }, dy) => [kernels().sumTo(dy, x!.shape)],
  },

  maxAxis: {
    forward: ([x], { axis }) => ({ out: kernels().maxAxis(x!, axis) }),
    backward: ({ inputs: [x], out, attrs: { axis } }, dy) => [kernels().maxAxisGrad(x!, out, dy, axis)],
  },

  // C = α·op(A)·op(B): dA = α·dC·op(B)ᵀ, dB = α·op(A)ᵀ·dC, each written so no transpose is copied.
  matmul: {
    forward: ([a, b], { transA, transB, alpha }) => ({ out: kernels().matmul(a!, b!, transA, transB, alpha) }),
    backward: ({ inputs: [a, b], attrs: { transA, transB, alpha }, needs }, dy) => {
      const K = kernels();
      const matmul = (x: Tensor, y: Tensor, tx: boolean, ty: boolean, s: number) => K.matmul(x, y, tx, ty, s);
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
    forward: ([x]) => ({ out: kernels().softmax(x!) }),
    backward: ({ out }, dy) => [kernels().softmaxGrad(out, dy)],
  },

  norm: {
    forward: ([x, w, b], { kind, eps }) => {
      const { y, stats } = kernels().normForward(kind, x!, w!, b, eps);
      return { out: y, saved: [stats] };
    },
    backward: ({ inputs: [x, w], saved: [stats], attrs: { kind } }, dy) => {
      const { dx, dw, db } = kernels().normBackward(kind, x!, w!, stats!, dy);
      return kind === "layer" ? [dx, dw, db] : [dx, dw];
    },
  },

  gather: {
    forward: ([table, ids]) => ({ out: kernels().gather(table!, ids!) }),
    backward: ({ inputs: [table, ids] }, dy) => [kernels().gatherGrad(ids!, dy, table!.shape[0]!), undefined],
  },

  slice: {
    forward: ([x], { axis, start, end }) => ({ out: kernels().slice(x!, axis, start, end) }),
    backward: ({ inputs: [x], attrs: { axis, start } }, dy) => [kernels().pad(dy, x!.shape, axis, start)],
  },

  concat: {
    forward: (xs, { axis }) => ({ out: kernels().concat(xs, axis) }),
    backward: ({ inputs, attrs: { axis }, needs }, dy) => {
      let off = 0;
      return inputs.map((x, i) => {
        const len = x.shape[axis]!;
        const dx = needs[i] ? kernels().slice(dy, axis, off, off + len) : undefined;
        off += len;
        return dx;
      });
    },
  },

  permute: {
    forward: ([x], { perm }) => ({ out: kernels().permute(x!, perm) }),
    backward: ({ attrs: { perm } }, dy) => {
      const inv: number[] = [];
      perm.forEach((p, i) => (inv[p] = i));
      return [kernels().permute(dy, inv)];
    },
  },

  reshape: {
    forward: ([x], { shape }) => ({ out: x!.view(shape) }),
    backward: ({ inputs: [x] }, dy) => [dy.view(x!.shape)],
  },

  // WebGPU saves the logsumexp of every query row so the backward recomputes the probabilities row
  // by row; the tracer saves the probabilities themselves (ONNX Runtime holds them anyway).
  attention: {
    forward: ([q, k, v, bias], { scale }) => {
      const { out, saved } = kernels().attentionForward(q!, k!, v!, bias, scale);
      return { out, saved: [saved] };
    },
    backward: ({ inputs: [q, k, v, bias], out, saved: [saved], attrs: { scale }, needs }, dy) => {
      const g = kernels().attentionBackward(q!, k!, v!, bias, scale, out, saved!, dy, { q: needs[0]!, k: needs[1]!, v: needs[2]! });
      return [g.dq, g.dk, g.dv];
    },
  },
};

/** Reduces a gradient taken at the broadcast shape back to the operand's shape. */
function unbroadcast(g: Tensor, shape: Shape): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const r = kernels().sumTo(g, shape);
  g.dispose();
  return r;
}

function reshaped(t: Tensor, shape: Shape): Tensor {
  if (t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i])) return t;
  const v = t.view(shape);
  t.dispose();
  return v;
}
