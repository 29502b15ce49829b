// The policy's transformer layer (src/model/policy.ts: a prefix or expert layer) written with the
// same engine ops, for the engine tests and benchmarks that need one layer without the whole policy:
// RMSNorm, q/k/v/o and GELU-MLP linears as matmul + add with [in, out] weights, and fused attention
// with an additive bias over optional cached prefix K/V. The goldens check the policy itself.
//
// Dimension letters: B batch, T tokens, Tp cached prefix keys, C width, h heads, hd head width.
import * as op from "../../src/engine/ops.ts";
import { Tensor, keep } from "../../src/engine/tensor.ts";

export interface LayerDims {
  C: number;
  heads: number;
  hd: number;
  hidden: number;
}

/** Parameters of one layer (device tensors, trainable), N(0, 1/fan_in) weights and small biases. */
export function layerParams({ C, heads, hd, hidden }: LayerDims, normal: () => number): Map<string, Tensor> {
  const p = new Map<string, Tensor>();
  const make = (name: string, shape: number[], f: () => number) => {
    const t = keep(Tensor.from(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, f), shape));
    t.requiresGrad = true;
    p.set(name, t);
  };
  const linear = (name: string, i: number, o: number) => {
    make(`${name}.weight`, [i, o], () => normal() / Math.sqrt(i));
    make(`${name}.bias`, [o], () => 0.1 * normal());
  };
  make("input_norm.weight", [C], () => 1 + 0.1 * normal());
  for (const n of ["q_proj", "k_proj", "v_proj"]) linear(n, C, heads * hd);
  linear("o_proj", heads * hd, C);
  make("post_norm.weight", [C], () => 1 + 0.1 * normal());
  linear("fc1", C, hidden);
  linear("fc2", hidden, C);
  return p;
}

/**
 * x [B, T, C] → y [B, T, C] and this call's own K/V [B, h, T, hd]: x + o(attention(q, [prefix K; k],
 * [prefix V; v]) + bias), then + fc2(gelu(fc1(rms(·)))). bias broadcasts to [B, h, T, Tp + T].
 */
export function layer(p: Map<string, Tensor>, x: Tensor, bias: Tensor | undefined, { heads, hd }: LayerDims, prefix?: { k: Tensor; v: Tensor }) {
  const w = (n: string) => p.get(n)!;
  const linear = (t: Tensor, n: string) => op.add(op.matmul(t, w(`${n}.weight`)), w(`${n}.bias`));
  const [B, T] = x.shape as [number, number, number];
  const split = (t: Tensor) => op.permute(op.reshape(t, [B, T, heads, hd]), [0, 2, 1, 3]);
  const a = op.rmsNorm(x, w("input_norm.weight"));
  const q = split(linear(a, "q_proj"));
  const own = { k: split(linear(a, "k_proj")), v: split(linear(a, "v_proj")) };
  const k = prefix ? op.concat([prefix.k, own.k], 2) : own.k;
  const v = prefix ? op.concat([prefix.v, own.v], 2) : own.v;
  const att = op.reshape(op.permute(op.attention(q, k, v, bias, 1 / Math.sqrt(hd)), [0, 2, 1, 3]), [B, T, heads * hd]);
  const h = op.add(x, linear(att, "o_proj"));
  return { y: op.add(h, linear(op.gelu(linear(op.rmsNorm(h, w("post_norm.weight")), "fc1")), "fc2")), kv: own };
}

/** Additive bias [B, 1, Tq, Tk] for consecutive blocks (prefix | state | actions): block i sees blocks 0…i; queries from `queryStart`. */
export function blockBias(blocks: number[], B: number, queryStart = 0): Tensor {
  const Tk = blocks.reduce((a, b) => a + b, 0);
  const Tq = Tk - queryStart;
  const blockOf = blocks.flatMap((n, i) => new Array<number>(n).fill(i));
  const data = new Float32Array(B * Tq * Tk);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < Tq; i++) for (let j = 0; j < Tk; j++) data[(b * Tq + i) * Tk + j] = blockOf[j]! <= blockOf[queryStart + i]! ? 0 : -1e9;
  return Tensor.from(data, [B, 1, Tq, Tk]);
}
