// Layers built on the ops: named parameters in a store (readable and writable by name as
// Float32Array, for safetensors checkpoints), Linear, LayerNorm, RMSNorm, MLP, multi-head attention
// with masks and a reusable K/V prefix, and a pre-LN transformer block.
//
// Dimension letters: B batch, T tokens (Tq queries, Tk keys, Tp prefix), C width, H heads, D head width.
import * as op from "./ops.ts";
import { type Shape, Tensor, keep, numel, shapeStr } from "./tensor.ts";

export type Init = { kind: "zeros" } | { kind: "ones" } | { kind: "normal"; std: number } | { kind: "uniform"; bound: number };

/** Named parameters. Created outside any scope: they live until `dispose()`. */
export class ParamStore {
  readonly params = new Map<string, Tensor>();
  private rand: () => number;

  /** `seed` drives the CPU initialiser, so a model's initial weights reproduce. */
  constructor(seed = 0) {
    let a = seed >>> 0;
    this.rand = () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), a | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  create(name: string, shape: Shape, init: Init): Tensor {
    if (this.params.has(name)) throw new Error(`parameter ${name} exists already`);
    const n = numel(shape);
    const data = new Float32Array(n);
    if (init.kind === "ones") data.fill(1);
    else if (init.kind === "uniform") for (let i = 0; i < n; i++) data[i] = (2 * this.rand() - 1) * init.bound;
    else if (init.kind === "normal")
      for (let i = 0; i < n; i++) data[i] = init.std * Math.sqrt(-2 * Math.log(1 - this.rand())) * Math.cos(2 * Math.PI * this.rand());
    const t = keep(Tensor.from(data, shape));
    t.requiresGrad = true;
    this.params.set(name, t);
    return t;
  }

  get(name: string): Tensor {
    const t = this.params.get(name);
    if (!t) throw new Error(`no parameter named ${name}`);
    return t;
  }

  /** Parameters whose name starts with `prefix`, in creation order. */
  named(prefix = ""): [string, Tensor][] {
    return [...this.params].filter(([n]) => n.startsWith(prefix));
  }

  /** Parameters that receive gradients. */
  trainable(prefix = ""): [string, Tensor][] {
    return this.named(prefix).filter(([, t]) => t.requiresGrad);
  }

  /** Frozen parameters are never recorded on the tape: no gradient kernels, no gradient memory. */
  setTrainable(prefix: string, trainable: boolean): void {
    for (const [, t] of this.named(prefix)) {
      t.requiresGrad = trainable;
      if (!trainable) {
        t.grad?.dispose();
        t.grad = undefined;
      }
    }
  }

  read(name: string): Promise<Float32Array> {
    return this.get(name).read();
  }

  write(name: string, data: Float32Array): void {
    const t = this.get(name);
    if (data.length !== t.size) throw new Error(`parameter ${name} has shape ${shapeStr(t.shape)} (${t.size} values), got ${data.length}`);
    t.write(data);
  }

  dispose(): void {
    for (const t of this.params.values()) {
      t.grad?.dispose();
      t.dispose();
    }
    this.params.clear();
  }
}

/** y = x·Wᵀ + b with W [out, in] (PyTorch's layout, so checkpoints map one to one). */
export class Linear {
  readonly weight: Tensor;
  readonly bias: Tensor | undefined;
  constructor(store: ParamStore, name: string, inF: number, outF: number, bias = true) {
    const bound = 1 / Math.sqrt(inF); // PyTorch's default init range
    this.weight = store.create(`${name}.weight`, [outF, inF], { kind: "uniform", bound });
    this.bias = bias ? store.create(`${name}.bias`, [outF], { kind: "uniform", bound }) : undefined;
  }
  forward(x: Tensor): Tensor {
    const y = op.matmul(x, this.weight, { transB: true });
    return this.bias ? op.add(y, this.bias) : y;
  }
}

export class LayerNorm {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(store: ParamStore, name: string, dim: number, readonly eps = 1e-5) {
    this.weight = store.create(`${name}.weight`, [dim], { kind: "ones" });
    this.bias = store.create(`${name}.bias`, [dim], { kind: "zeros" });
  }
  forward(x: Tensor): Tensor {
    return op.layerNorm(x, this.weight, this.bias, this.eps);
  }
}

export class RMSNorm {
  readonly weight: Tensor;
  constructor(store: ParamStore, name: string, dim: number, readonly eps = 1e-6) {
    this.weight = store.create(`${name}.weight`, [dim], { kind: "ones" });
  }
  forward(x: Tensor): Tensor {
    return op.rmsNorm(x, this.weight, this.eps);
  }
}

/** fc2(gelu(fc1(x))). */
export class MLP {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(store: ParamStore, name: string, dim: number, hidden: number) {
    this.fc1 = new Linear(store, `${name}.fc1`, dim, hidden);
    this.fc2 = new Linear(store, `${name}.fc2`, hidden, dim);
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(op.gelu(this.fc1.forward(x)));
  }
}

/** Keys and values of one attention layer, heads split: [B, H, T, D]. */
export interface KV {
  k: Tensor;
  v: Tensor;
}

/**
 * softmax(q·kᵀ/√D + mask)·v for q [B, H, Tq, D], k and v [B, H, Tk, D]; mask is additive and
 * broadcasts to [B, H, Tq, Tk] (0 where attending, −1e9 where not; see `attentionMask`).
 */
export function attend(q: Tensor, k: Tensor, v: Tensor, mask?: Tensor): Tensor {
  return op.attention(q, k, v, mask, 1 / Math.sqrt(q.shape.at(-1)!)); // [B, H, Tq, D], fused
}

const splitHeads = (x: Tensor, H: number) => {
  const [B, T, C] = x.shape as [number, number, number];
  return op.permute(op.reshape(x, [B, T, H, C / H]), [0, 2, 1, 3]); // [B, H, T, D]
};
const mergeHeads = (x: Tensor) => {
  const [B, H, T, D] = x.shape as [number, number, number, number];
  return op.reshape(op.permute(x, [0, 2, 1, 3]), [B, T, H * D]); // [B, T, C]
};

export interface AttentionOptions {
  mask?: Tensor;
  /** K/V computed earlier (e.g. the prefix's, per layer) placed before this call's own keys. */
  prefix?: KV;
}

export class Attention {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  constructor(store: ParamStore, name: string, dim: number, readonly heads: number) {
    if (dim % heads) throw new Error(`attention width ${dim} is not divisible by ${heads} heads`);
    this.q = new Linear(store, `${name}.q`, dim, dim);
    this.k = new Linear(store, `${name}.k`, dim, dim);
    this.v = new Linear(store, `${name}.v`, dim, dim);
    this.o = new Linear(store, `${name}.o`, dim, dim);
  }

  /** x [B, T, C] → out [B, T, C], and this call's own K/V (for reuse by later calls). */
  forward(x: Tensor, o: AttentionOptions = {}): { out: Tensor; kv: KV } {
    const H = this.heads;
    const q = splitHeads(this.q.forward(x), H);
    const kv = { k: splitHeads(this.k.forward(x), H), v: splitHeads(this.v.forward(x), H) };
    const k = o.prefix ? op.concat([o.prefix.k, kv.k], 2) : kv.k; // [B, H, Tp + T, D]
    const v = o.prefix ? op.concat([o.prefix.v, kv.v], 2) : kv.v;
    return { out: this.o.forward(mergeHeads(attend(q, k, v, o.mask))), kv };
  }
}

/** Pre-LN block: x + attn(ln1(x)), then + mlp(ln2(·)). */
export class TransformerBlock {
  readonly ln1: LayerNorm;
  readonly attn: Attention;
  readonly ln2: LayerNorm;
  readonly mlp: MLP;
  constructor(store: ParamStore, name: string, dim: number, heads: number, hidden: number) {
    this.ln1 = new LayerNorm(store, `${name}.ln1`, dim);
    this.attn = new Attention(store, `${name}.attn`, dim, heads);
    this.ln2 = new LayerNorm(store, `${name}.ln2`, dim);
    this.mlp = new MLP(store, `${name}.mlp`, dim, hidden);
  }
  forward(x: Tensor, o: AttentionOptions = {}): { y: Tensor; kv: KV } {
    const { out, kv } = this.attn.forward(this.ln1.forward(x), o);
    const h = op.add(x, out);
    return { y: op.add(h, this.mlp.forward(this.ln2.forward(h))), kv };
  }
}

export const MASKED = -1e9;

/**
 * Additive mask [B, 1, Tq, Tk] for tokens in consecutive blocks (π0: prefix | state | actions):
 * a query in block i sees every key in blocks 0..i. Queries are the tokens from `queryStart` on
 * (set it to the prefix length when the prefix's K/V is cached); `keyValid[b][t]` false masks padding.
 */
export function attentionMask(blocks: number[], o: { batch?: number; queryStart?: number; keyValid?: boolean[][] } = {}): Tensor {
  const Tk = blocks.reduce((a, b) => a + b, 0);
  const q0 = o.queryStart ?? 0;
  const Tq = Tk - q0;
  const B = o.keyValid?.length ?? o.batch ?? 1;
  const blockOf: number[] = blocks.flatMap((n, i) => new Array<number>(n).fill(i));
  const data = new Float32Array(B * Tq * Tk);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < Tq; i++)
      for (let j = 0; j < Tk; j++) {
        const visible = blockOf[j]! <= blockOf[q0 + i]! && (o.keyValid?.[b]?.[j] ?? true);
        data[(b * Tq + i) * Tk + j] = visible ? 0 : MASKED;
      }
  return Tensor.from(data, [B, 1, Tq, Tk]);
}
