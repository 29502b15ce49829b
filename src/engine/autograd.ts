// Reverse-mode autograd: a tape of primitive applications, recorded only when grad mode is on and
// some input tracks a gradient (a parameter with requiresGrad, or a value computed from one).
// Frozen parameters and data never enter the tape, so they cost neither kernels nor memory.
import { kernels } from "./backend.ts";
import { type Attrs, PRIMS, type PrimName } from "./prims.ts";
import { type TapeNode, type Tensor, keep, onScopeEnd } from "./tensor.ts";

export interface Node extends TapeNode {
  prim: PrimName;
  inputs: Tensor[];
  out: Tensor;
  saved: Tensor[];
  attrs: Attrs[PrimName];
}

let tape: Node[] = [];
let gradMode = true;

// Nodes whose outputs were disposed with their scope can never be reached by a backward.
onScopeEnd(() => {
  if (tape.length) tape = tape.filter((n) => !n.out.disposed);
});

/** Whether gradients flow through t. */
export const tracksGrad = (t: Tensor) => t.requiresGrad || t.node !== undefined;

/** Runs fn without recording: inference (e.g. sampling) pays no gradient bookkeeping. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradMode;
  gradMode = false;
  try {
    return fn();
  } finally {
    gradMode = prev;
  }
}

export const isGradEnabled = () => gradMode;

/** Applies a primitive and records it when a gradient may flow through it. */
export function apply<K extends PrimName>(prim: K, inputs: Tensor[], attrs: Attrs[K]): Tensor {
  const { out, saved = [] } = PRIMS[prim].forward(inputs, attrs);
  if (gradMode && inputs.some(tracksGrad)) {
    const node: Node = { prim, inputs, out, saved, attrs };
    out.node = node;
    tape.push(node);
  }
  return out;
}

/** A value equal to t through which no gradient flows (shares t's storage). */
export function detach(t: Tensor): Tensor {
  return t.view(t.shape);
}

/**
 * Accumulates d(loss)/d(param) into `param.grad` for every parameter with requiresGrad that the
 * loss depends on. `seed` is d(final)/d(loss) (default ones). The tape is consumed: call once per forward.
 */
export function backward(loss: Tensor, seed?: Tensor): void {
  if (!loss.node) throw new Error("backward: the loss does not depend on any parameter that requires a gradient");
  const grads = new Map<Tensor, Tensor>();
  grads.set(loss, seed ?? kernels().full(loss.shape, 1));
  const end = tape.indexOf(loss.node as Node); // every node on a tensor is one of this tape's
  for (let i = end; i >= 0; i--) {
    const node = tape[i]!;
    const g = grads.get(node.out);
    if (!g) continue;
    grads.delete(node.out);
    const needs = node.inputs.map(tracksGrad);
    const rule = PRIMS[node.prim] as (typeof PRIMS)[PrimName];
    const gs = rule.backward({ inputs: node.inputs, out: node.out, saved: node.saved, attrs: node.attrs as never, needs }, g);
    const seen = new Set<Tensor>([g]);
    node.inputs.forEach((x, k) => {
      let gk = gs[k];
      if (!gk) return;
      if (!needs[k]) return gk.dispose();
      if (seen.has(gk)) gk = gk.view(gk.shape); // a rule may pass dy through: give each input its own handle
      seen.add(gk);
      if (x.requiresGrad) addToLeaf(x, gk);
      else addTo(grads, x, gk);
    });
    if (g !== seed) g.dispose();
  }
  for (const g of grads.values()) g.dispose();
  for (const n of tape) n.out.node = undefined;
  tape = [];
}

function addTo(grads: Map<Tensor, Tensor>, x: Tensor, g: Tensor): void {
  const prev = grads.get(x);
  if (!prev) return void grads.set(x, g);
  if (prev.shared) {
    // In-place accumulation would change the other holder of this storage: add out of place.
    const sum = kernels().copy(prev);
    prev.dispose();
    kernels().accumulate(sum, g);
    grads.set(x, sum);
  } else kernels().accumulate(prev, g);
  g.dispose();
}

function addToLeaf(p: Tensor, g: Tensor): void {
  if (p.grad) kernels().accumulate(p.grad, g);
  else p.grad = keep(kernels().copy(g)); // an own buffer: later steps accumulate into it in place
  g.dispose();
}
