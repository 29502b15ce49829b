// ONNX export of the policy: the prefix (images + text → per-layer K/V) for ONNX Runtime rollouts,
// and the whole deterministic policy (K flow-ODE steps unrolled) for deployment. The graph spells
// out the architecture of config.ts op by op; ops not in opset 17 (RMSNorm, GELU) are composed.
import { OnnxGraph } from "../onnx/graph.ts";
import type { Stats } from "./checkpoint.ts";
import { dims, parameterShapes, timeEmbedding, type ModelConfig } from "./config.ts";

/** Masked attention logits get this bias: exp underflows to exactly 0 in float32. */
const MASK_BIAS = -1e9;
const RMS_EPS = 1e-6;
const LN_EPS = 1e-5;

export class Builder {
  readonly g: OnnxGraph;
  private readonly added = new Set<string>();

  constructor(
    readonly c: ModelConfig,
    private readonly params: Map<string, Float32Array>,
    name: string,
  ) {
    this.g = new OnnxGraph(name);
    const shapes = parameterShapes(c);
    for (const [n, shape] of shapes) {
      const p = params.get(n);
      if (!p) throw new Error(`export: parameter ${n} is missing`);
      if (p.length !== shape.reduce((a, b) => a * b, 1)) throw new Error(`export: parameter ${n} has ${p.length} values, expected shape [${shape}]`);
    }
  }

  /** The initializer holding parameter `name` (added on first use). */
  p(name: string): string {
    if (!this.added.has(name)) {
      this.g.initializer(name, this.params.get(name)!, parameterShapes(this.c).get(name)!);
      this.added.add(name);
    }
    return name;
  }

  op(type: string, inputs: string[], attrs: Parameters<OnnxGraph["node"]>[2] = {}): string {
    return this.g.node(type, inputs, attrs)[0]!;
  }

  linear(x: string, name: string): string {
    return this.op("Add", [this.op("MatMul", [x, this.p(`${name}.weight`)]), this.p(`${name}.bias`)]);
  }

  layerNorm(x: string, name: string): string {
    return this.op("LayerNormalization", [x, this.p(`${name}.weight`), this.p(`${name}.bias`)], { axis: { i: -1 }, epsilon: { f: LN_EPS } });
  }

  /** x / √(mean(x²) + ε) · weight over the last axis. */
  rmsNorm(x: string, name: string): string {
    const ms = this.op("ReduceMean", [this.op("Mul", [x, x])], { axes: { ints: [-1] }, keepdims: { i: 1 } });
    const inv = this.op("Reciprocal", [this.op("Sqrt", [this.op("Add", [ms, this.g.constant([RMS_EPS])])])]);
    return this.op("Mul", [this.op("Mul", [x, inv]), this.p(`${name}.weight`)]);
  }

  /** GELU, tanh approximation: ½x(1 + tanh(√(2/π)(x + 0.044715x³))). */
  gelu(x: string): string {
    const x3 = this.op("Mul", [this.op("Mul", [x, x]), x]);
    const inner = this.op("Mul", [this.op("Add", [x, this.op("Mul", [x3, this.g.constant([0.044715])])]), this.g.constant([Math.sqrt(2 / Math.PI)])]);
    const t = this.op("Add", [this.op("Tanh", [inner]), this.g.constant([1])]);
    return this.op("Mul", [this.op("Mul", [x, t]), this.g.constant([0.5])]);
  }

  silu(x: string): string {
    return this.op("Mul", [x, this.op("Sigmoid", [x])]);
  }

  /** [N, S, heads·hd] → [N, heads, S, hd]. */
  splitHeads(x: string, heads: number, hd: number): string {
    return this.op("Transpose", [this.op("Reshape", [x, this.g.ints([0, 0, heads, hd])])], { perm: { ints: [0, 2, 1, 3] } });
  }

  /** [N, heads, S, hd] → [N, S, heads·hd]. */
  mergeHeads(x: string, heads: number, hd: number): string {
    return this.op("Reshape", [this.op("Transpose", [x], { perm: { ints: [0, 2, 1, 3] } }), this.g.ints([0, 0, heads * hd])]);
  }

  /** softmax(q·kᵀ/√hd + bias)·v with q, k, v as [N, heads, S, hd]; bias broadcasts to the logits. */
  attend(q: string, k: string, v: string, hd: number, bias?: string): string {
    let logits = this.op("Mul", [this.op("MatMul", [q, this.op("Transpose", [k], { perm: { ints: [0, 1, 3, 2] } })]), this.g.constant([1 / Math.sqrt(hd)])]);
    if (bias) logits = this.op("Add", [logits, bias]);
    return this.op("MatMul", [this.op("Softmax", [logits], { axis: { i: -1 } }), v]);
  }

  mlp(x: string, name: string): string {
    return this.linear(this.gelu(this.linear(x, `${name}.fc1`)), `${name}.fc2`);
  }
}

/** Inputs: images uint8 [B, V, S, S, 3], tokens int64 [B, L], token_mask float [B, L] (1 = real). */
export function embedPrefix(b: Builder): { ks: string[]; vs: string[]; keyBias: string; batchAnd: (...rest: number[]) => string; pooled?: string } {
  const { c, g } = b;
  const valueAfterVlm = c.add_value_head && c.value_after_vlm;
  const d = dims(c);
  const images = g.input("images", ["batch", c.num_images, c.image_size, c.image_size, 3], "uint8");
  const tokens = g.input("tokens", ["batch", c.max_text_len], "int64");
  const tokenMask = g.input("token_mask", ["batch", c.max_text_len]);

  // Pixels to [−1, 1], then patches: [B·V, P, p·p·3] in (row, column, channel) order.
  const px = b.op("Sub", [b.op("Mul", [b.op("Cast", [images], { to: { i: 1 } }), g.constant([2 / 255])]), g.constant([1])]);
  const n = d.patchesPerSide;
  const p = c.patch_size;
  const grid = b.op("Reshape", [px, g.ints([-1, n, p, n, p, 3])]);
  const patches = b.op("Reshape", [b.op("Transpose", [grid], { perm: { ints: [0, 1, 3, 2, 4, 5] } }), g.ints([-1, d.patches, d.patchDim])]);

  // Vision tower.
  let h = b.op("Add", [b.linear(patches, "vit.patch_embed"), b.p("vit.pos_embed")]);
  const vhd = c.vit_width / c.vit_heads;
  for (let l = 0; l < c.vit_depth; l++) {
    const pre = `vit.layers.${l}`;
    const qkv = b.linear(b.layerNorm(h, `${pre}.ln1`), `${pre}.qkv`);
    const [q, k, v] = g.node("Split", [qkv, g.ints([c.vit_width, c.vit_width, c.vit_width])], { axis: { i: -1 } }, 3);
    const heads = (x: string) => b.splitHeads(x, c.vit_heads, vhd);
    const att = b.mergeHeads(b.attend(heads(q!), heads(k!), heads(v!), vhd), c.vit_heads, vhd);
    h = b.op("Add", [h, b.linear(att, `${pre}.proj`)]);
    h = b.op("Add", [h, b.mlp(b.layerNorm(h, `${pre}.ln2`), pre)]);
  }
  const img = b.linear(b.layerNorm(h, "vit.ln_post"), "projector"); // [B·V, P, width]
  const perView = b.op("Reshape", [img, g.ints([-1, c.num_images, d.patches, c.width])]);
  const viewed = b.op("Add", [perView, b.op("Unsqueeze", [b.p("view_embed"), g.ints([1])])]);
  const imgTokens = b.op("Reshape", [viewed, g.ints([-1, c.num_images * d.patches, c.width])]);

  // Language: embeddings scaled by √width (as Gemma), plus learned positions.
  const emb = b.op("Mul", [b.op("Gather", [b.p("embed_tokens"), tokens], { axis: { i: 0 } }), g.constant([Math.sqrt(c.width)])]);
  const text = b.op("Add", [emb, b.p("text_pos_embed")]);
  let x = b.op("Concat", [imgTokens, text], { axis: { i: 1 } }); // [B, T, width]

  // Key mask over the prefix: image tokens always, text tokens where token_mask is 1.
  const batchAnd = (...rest: number[]) => b.op("Concat", [b.op("Slice", [b.op("Shape", [tokenMask]), g.ints([0]), g.ints([1])]), g.ints(rest)], { axis: { i: 0 } });
  const imgMask = b.op("Expand", [g.constant([1]), batchAnd(c.num_images * d.patches)]);
  const keyMask = b.op("Concat", [imgMask, tokenMask], { axis: { i: 1 } }); // [B, T]
  const keyBias = b.op("Unsqueeze", [b.op("Mul", [b.op("Sub", [g.constant([1]), keyMask]), g.constant([MASK_BIAS])]), g.ints([1, 2])]); // [B, 1, 1, T]

  const ks: string[] = [];
  const vs: string[] = [];
  for (let l = 0; l < c.depth; l++) {
    const pre = `prefix.layers.${l}`;
    const a = b.rmsNorm(x, `${pre}.input_norm`);
    const q = b.splitHeads(b.linear(a, `${pre}.q_proj`), c.heads, c.head_dim);
    const k = b.splitHeads(b.linear(a, `${pre}.k_proj`), c.heads, c.head_dim);
    const v = b.splitHeads(b.linear(a, `${pre}.v_proj`), c.heads, c.head_dim);
    ks.push(k);
    vs.push(v);
    if (l === c.depth - 1 && !valueAfterVlm) break; // the last layer's output feeds nothing but its K/V
    const att = b.mergeHeads(b.attend(q, k, v, c.head_dim, keyBias), c.heads, c.head_dim);
    x = b.op("Add", [x, b.linear(att, `${pre}.o_proj`)]);
    x = b.op("Add", [x, b.mlp(b.rmsNorm(x, `${pre}.post_norm`), pre)]);
  }
  if (!valueAfterVlm) return { ks, vs, keyBias, batchAnd };
  // value_after_vlm: masked mean of the final normed outputs over valid tokens → [B, width].
  const weights = b.op("Div", [keyMask, b.op("ReduceSum", [keyMask, g.ints([1])], { keepdims: { i: 1 } })]);
  const pooled = b.op("MatMul", [b.op("Unsqueeze", [weights, g.ints([1])]), b.rmsNorm(x, "prefix.final_norm")]);
  return { ks, vs, keyBias, batchAnd, pooled: b.op("Reshape", [pooled, g.ints([-1, c.width])]) };
}

/**
 * ONNX model of the prefix: outputs prefix_k / prefix_v [depth, B, heads, T, head_dim], the key
 * mask as an additive bias prefix_bias [B, 1, 1, T], and with value_after_vlm prefix_pooled [B, width].
 */
export function exportPrefixOnnx(c: ModelConfig, params: Map<string, Float32Array>): Uint8Array {
  const b = new Builder(c, params, "dexrl_prefix");
  const { ks, vs, keyBias, pooled } = embedPrefix(b);
  const d = dims(c);
  const stack = (xs: string[], name: string) => {
    b.g.node("Concat", xs.map((x) => b.op("Unsqueeze", [x, b.g.ints([0])])), { axis: { i: 0 } }, [name]);
    b.g.output(name, [c.depth, "batch", c.heads, d.prefixLen, c.head_dim]);
  };
  stack(ks, "prefix_k");
  stack(vs, "prefix_v");
  b.g.node("Identity", [keyBias], {}, ["prefix_bias"]);
  b.g.output("prefix_bias", ["batch", 1, 1, d.prefixLen]);
  if (pooled) {
    b.g.node("Identity", [pooled], {}, ["prefix_pooled"]);
    b.g.output("prefix_pooled", ["batch", c.width]);
  }
  return b.g.toBytes();
}

/** One expert pass at time t: velocity [B, H, action_dim] for x_t given the prefix K/V, and the action tokens' outputs [B, H, W]. */
export function expertVelocity(b: Builder, ks: string[], vs: string[], bias: string, stateTok: string, xt: string, t: number): { velocity: string; actionOut: string } {
  const { c, g } = b;
  const W = c.expert_width;
  const act = b.linear(xt, "action_in_proj"); // [B, H, W]
  const te = g.constant(Array.from(timeEmbedding(t, W)), [1, 1, W]);
  const teB = b.op("Expand", [te, b.op("Shape", [act])]);
  const mixed = b.linear(b.silu(b.linear(b.op("Concat", [act, teB], { axis: { i: 2 } }), "action_time_mlp_in")), "action_time_mlp_out");
  let y = b.op("Concat", [stateTok, b.op("Add", [mixed, b.p("action_pos_embed")])], { axis: { i: 1 } }); // [B, 1+H, W]

  const S = 1 + c.horizon;
  for (let l = 0; l < c.depth; l++) {
    const pre = `expert.layers.${l}`;
    const a = b.rmsNorm(y, `${pre}.input_norm`);
    const q = b.splitHeads(b.linear(a, `${pre}.q_proj`), c.heads, c.head_dim);
    const k = b.op("Concat", [ks[l]!, b.splitHeads(b.linear(a, `${pre}.k_proj`), c.heads, c.head_dim)], { axis: { i: 2 } });
    const v = b.op("Concat", [vs[l]!, b.splitHeads(b.linear(a, `${pre}.v_proj`), c.heads, c.head_dim)], { axis: { i: 2 } });
    const att = b.mergeHeads(b.attend(q, k, v, c.head_dim, bias), c.heads, c.head_dim);
    y = b.op("Add", [y, b.linear(att, `${pre}.o_proj`)]);
    y = b.op("Add", [y, b.mlp(b.rmsNorm(y, `${pre}.post_norm`), pre)]);
  }
  const out = b.rmsNorm(y, "expert.final_norm");
  const actionOut = b.op("Slice", [out, g.ints([1]), g.ints([S]), g.ints([1])]);
  return { velocity: b.linear(actionOut, "action_out_proj"), actionOut };
}

/**
 * Attention bias of the suffix queries [B, 1, S, T + S]: the prefix's key mask, then block-causal
 * over the suffix (the state token sees itself; action tokens see the state and all actions).
 */
export function suffixBias(b: Builder, keyBias: string, batchAnd: (...rest: number[]) => string): string {
  const { c, g } = b;
  const S = 1 + c.horizon;
  const block = new Float32Array(S * S);
  for (let j = 1; j < S; j++) block[j] = MASK_BIAS;
  const sBias = b.op("Expand", [g.initializer("suffix_bias", block, [1, 1, S, S]), batchAnd(1, S, S)]);
  return b.op("Concat", [b.op("Expand", [keyBias, g.ints([1, 1, S, 1])]), sBias], { axis: { i: 3 } });
}

/** The state token [B, 1, W] from the raw state input, normalised with the checkpoint's stats. */
export function stateToken(b: Builder, state: string, stats: Stats): string {
  const { g } = b;
  const stateN = b.op("Div", [b.op("Sub", [state, g.constant(stats.mean)]), g.constant(stats.std)]);
  return b.op("Unsqueeze", [b.linear(stateN, "state_proj"), g.ints([1])]);
}

/**
 * ONNX model of the deterministic policy: images, tokens, token_mask, raw state [B, state_dim] and
 * initial noise [B, H, action_dim] in; `actions` [B, H, action_dim] out, unnormalised, after
 * `numSteps` Euler steps x ← x − v/K from t = 1 to 0.
 */
export function exportPolicyOnnx(c: ModelConfig, params: Map<string, Float32Array>, normStats: { state: Stats; actions: Stats }, numSteps: number): Uint8Array {
  const b = new Builder(c, params, "dexrl_policy");
  const { g } = b;
  const { ks, vs, keyBias, batchAnd } = embedPrefix(b);
  const bias = suffixBias(b, keyBias, batchAnd);
  const stateTok = stateToken(b, g.input("state", ["batch", c.state_dim]), normStats.state);
  let x = g.input("noise", ["batch", c.horizon, c.action_dim]);
  for (let i = 0; i < numSteps; i++) {
    const t = 1 - i / numSteps;
    const { velocity } = expertVelocity(b, ks, vs, bias, stateTok, x, t);
    x = b.op("Sub", [x, b.op("Mul", [velocity, g.constant([1 / numSteps])])]);
  }
  const actions = b.op("Add", [b.op("Mul", [x, g.constant(normStats.actions.std)]), g.constant(normStats.actions.mean)]);
  g.node("Identity", [actions], {}, ["actions"]);
  g.output("actions", ["batch", c.horizon, c.action_dim]);
  return g.toBytes();
}
