// The π0-style policy, written once against the tensor engine: embedPrefix (views → ViT →
// projector, text → prefix transformer → per-layer K/V) and the action expert's velocity, following
// the architecture table of config.ts. It runs on WebGPU or traced into ONNX (engine/trace.ts); every
// value it needs that depends on the call (token mask, flow time) arrives as a tensor. Every op is
// differentiable, so the same code serves sampling (under noGrad) and training.
import * as op from "../engine/ops.ts";
import { Tensor } from "../engine/tensor.ts";
import { dims, isPrefixParameter, MASK_BIAS, NOISE_STD_RANGE, parameterShapes, valueLayer, type ModelConfig } from "./config.ts";

/** What the expert attends to: per-layer prefix K and V [B, heads, T, hd], and the key bias [B, 1, 1, T]. */
export interface PrefixKV {
  k: Tensor[];
  v: Tensor[];
  keyBias: Tensor;
  /** value_after_vlm only: the masked mean of the prefix's final (normed) outputs [B, width]. */
  pooled?: Tensor;
}

export class Policy {
  readonly d: ReturnType<typeof dims>;

  private constructor(
    readonly c: ModelConfig,
    readonly params: Map<string, Tensor>,
  ) {
    this.d = dims(c);
  }

  /** Uploads the parameters; with `trainExpertOnly`, prefix parameters get no gradient (and no optimizer state). */
  static fromArrays(c: ModelConfig, arrays: Map<string, Float32Array>, trainExpertOnly: boolean): Policy {
    const params = new Map<string, Tensor>();
    for (const [name, shape] of parameterShapes(c)) {
      const a = arrays.get(name);
      if (!a) throw new Error(`policy: parameter ${name} is missing`);
      const t = Tensor.from(a, shape);
      t.requiresGrad = !(trainExpertOnly && isPrefixParameter(name));
      params.set(name, t);
    }
    return new Policy(c, params);
  }

  /** A policy over given tensors (graph inputs or constants in a trace); names missing are never read. */
  static fromTensors(c: ModelConfig, params: Map<string, Tensor>): Policy {
    return new Policy(c, params);
  }

  p(name: string): Tensor {
    const t = this.params.get(name);
    if (!t) throw new Error(`policy: no parameter ${name}`);
    return t;
  }

  private linear(x: Tensor, name: string): Tensor {
    return op.add(op.matmul(x, this.p(`${name}.weight`)), this.p(`${name}.bias`));
  }

  private mlp(x: Tensor, name: string): Tensor {
    return this.linear(op.gelu(this.linear(x, `${name}.fc1`)), `${name}.fc2`);
  }

  /** [N, S, h·hd] → [N, h, S, hd]. */
  private static heads(x: Tensor, h: number, hd: number): Tensor {
    const [N, S] = x.shape as [number, number, number];
    return op.permute(op.reshape(x, [N, S, h, hd]), [0, 2, 1, 3]);
  }

  /** [N, h, S, hd] → [N, S, h·hd]. */
  private static merge(x: Tensor): Tensor {
    const [N, h, S, hd] = x.shape as [number, number, number, number];
    return op.reshape(op.permute(x, [0, 2, 1, 3]), [N, S, h * hd]);
  }

  /** softmax(q·kᵀ/√hd + bias)·v, fused: the [B, heads, S, T] logits are never stored. */
  private static attend(q: Tensor, k: Tensor, v: Tensor, hd: number, bias?: Tensor): Tensor {
    return op.attention(q, k, v, bias, 1 / Math.sqrt(hd));
  }

  /** images: uint8 [B, V, S, S, 3] (upright, row 0 at the top); ids: i32 [B, L]; tokenMask: 1/0 per token [B, L]. */
  embedPrefix(images: Tensor, ids: Tensor, tokenMask: Tensor): PrefixKV {
    const { c, d } = this;
    const B = ids.shape[0]!;
    if (images.shape.join() !== [B, c.num_images, c.image_size, c.image_size, 3].join())
      throw new Error(`embedPrefix: images must be [${B}, ${c.num_images}, ${c.image_size}, ${c.image_size}, 3], got [${images.shape}]`);
    if (ids.shape[1] !== c.max_text_len) throw new Error(`embedPrefix: ids must be [B, ${c.max_text_len}], got [${ids.shape}]`);

    // Vision tower over every view: [B·V, P, patchDim] → [B·V, P, vit_width].
    const flat = images.view([B * c.num_images, c.image_size, c.image_size, 3]);
    let h = op.add(this.linear(op.patchify(flat, c.patch_size), "vit.patch_embed"), this.p("vit.pos_embed"));
    const vhd = c.vit_width / c.vit_heads;
    for (let l = 0; l < c.vit_depth; l++) {
      const pre = `vit.layers.${l}`;
      const qkv = this.linear(op.layerNorm(h, this.p(`${pre}.ln1.weight`), this.p(`${pre}.ln1.bias`)), `${pre}.qkv`);
      const part = (i: number) => Policy.heads(op.slice(qkv, -1, i * c.vit_width, (i + 1) * c.vit_width), c.vit_heads, vhd);
      h = op.add(h, this.linear(Policy.merge(Policy.attend(part(0), part(1), part(2), vhd)), `${pre}.proj`));
      h = op.add(h, this.mlp(op.layerNorm(h, this.p(`${pre}.ln2.weight`), this.p(`${pre}.ln2.bias`)), pre));
    }
    const img = this.linear(op.layerNorm(h, this.p("vit.ln_post.weight"), this.p("vit.ln_post.bias")), "projector");
    const viewed = op.add(op.reshape(img, [B, c.num_images, d.patches, c.width]), op.reshape(this.p("view_embed"), [1, c.num_images, 1, c.width]));
    const imgTokens = op.reshape(viewed, [B, c.num_images * d.patches, c.width]);

    // Language: embeddings scaled by √width (as Gemma) plus learned positions.
    const text = op.add(op.scale(op.gather(this.p("embed_tokens"), ids), Math.sqrt(c.width)), this.p("text_pos_embed"));
    let x = op.concat([imgTokens, text], 1); // [B, T, width]

    // Image tokens are always valid; a padded text token gets MASK_BIAS (mask 0 → −1e9, 1 → 0 exactly).
    const imageValid = op.expand(Tensor.from(new Float32Array(c.num_images * d.patches).fill(1), [1, c.num_images * d.patches]), [B, c.num_images * d.patches]);
    const valid = op.concat([imageValid, tokenMask], 1); // [B, T]
    const keyBias = op.reshape(op.affine(valid, -MASK_BIAS, MASK_BIAS), [B, 1, 1, d.prefixLen]);

    const k: Tensor[] = [];
    const v: Tensor[] = [];
    for (let l = 0; l < c.depth; l++) {
      const pre = `prefix.layers.${l}`;
      const a = op.rmsNorm(x, this.p(`${pre}.input_norm.weight`));
      k.push(Policy.heads(this.linear(a, `${pre}.k_proj`), c.heads, c.head_dim));
      v.push(Policy.heads(this.linear(a, `${pre}.v_proj`), c.heads, c.head_dim));
      const valueNeedsOutput = c.add_value_head && c.value_after_vlm;
      if (l === c.depth - 1 && !valueNeedsOutput) break; // the last layer's output feeds nothing but its K/V
      const q = Policy.heads(this.linear(a, `${pre}.q_proj`), c.heads, c.head_dim);
      x = op.add(x, this.linear(Policy.merge(Policy.attend(q, k[l]!, v[l]!, c.head_dim, keyBias)), `${pre}.o_proj`));
      x = op.add(x, this.mlp(op.rmsNorm(x, this.p(`${pre}.post_norm.weight`)), pre));
    }
    if (!(c.add_value_head && c.value_after_vlm)) return { k, v, keyBias };
    // Masked mean over the valid prefix tokens: weights 1/count on valid tokens, 0 on padding.
    const weights = op.div(valid, op.sum(valid, 1, true)); // [B, T]
    const out = op.rmsNorm(x, this.p("prefix.final_norm.weight"));
    const pooled = op.reshape(op.matmul(op.reshape(weights, [B, 1, d.prefixLen]), out), [B, c.width]);
    return { k, v, keyBias, pooled };
  }

  /** Attention bias of the suffix queries [B, 1, S, T+S]: the prefix key mask, then block-causal (prefix | state | actions). */
  suffixBias(prefix: PrefixKV): Tensor {
    const B = prefix.keyBias.shape[0]!;
    const S = this.d.suffixLen;
    const block = new Float32Array(S * S);
    for (let j = 1; j < S; j++) block[j] = MASK_BIAS; // the state token sees only itself
    const sBias = op.expand(Tensor.from(block, [1, 1, S, S]), [B, 1, S, S]);
    return op.concat([op.expand(prefix.keyBias, [B, 1, S, this.d.prefixLen]), sBias], 3);
  }

  /** The state token [B, 1, expert_width] from the normalised state [B, state_dim]. */
  stateToken(stateN: Tensor): Tensor {
    return op.reshape(this.linear(stateN, "state_proj"), [stateN.shape[0]!, 1, this.c.expert_width]);
  }

  /**
   * One expert pass at flow time t (t = 1 noise, t = 0 action): x_t [B, H, action_dim] and the
   * time's sin-cos embedding temb [B or 1, W] (config.ts timeEmbedding, made on the CPU in float64:
   * its arguments reach 2π/4e-3, beyond float32 sin's accuracy) → the velocity [B, H, action_dim]
   * and the final expert outputs of the action tokens [B, H, W].
   */
  expert(prefix: PrefixKV, bias: Tensor, stateTok: Tensor, xt: Tensor, temb: Tensor): { velocity: Tensor; actionOut: Tensor } {
    const { c } = this;
    const B = xt.shape[0]!;
    const W = c.expert_width;
    const act = this.linear(xt, "action_in_proj"); // [B, H, W]
    if (temb.rank !== 2 || temb.shape[1] !== W || (temb.shape[0] !== 1 && temb.shape[0] !== B)) throw new Error(`expert: temb must be [${B} or 1, ${W}], got [${temb.shape}]`);
    const te = op.expand(op.reshape(temb, [temb.shape[0]!, 1, W]), [B, c.horizon, W]);
    const mixed = this.linear(op.silu(this.linear(op.concat([act, te], 2), "action_time_mlp_in")), "action_time_mlp_out");
    let y = op.concat([stateTok, op.add(mixed, this.p("action_pos_embed"))], 1); // [B, 1+H, W]
    for (let l = 0; l < c.depth; l++) {
      const pre = `expert.layers.${l}`;
      const a = op.rmsNorm(y, this.p(`${pre}.input_norm.weight`));
      const q = Policy.heads(this.linear(a, `${pre}.q_proj`), c.heads, c.head_dim);
      const k = op.concat([prefix.k[l]!, Policy.heads(this.linear(a, `${pre}.k_proj`), c.heads, c.head_dim)], 2);
      const v = op.concat([prefix.v[l]!, Policy.heads(this.linear(a, `${pre}.v_proj`), c.heads, c.head_dim)], 2);
      y = op.add(y, this.linear(Policy.merge(Policy.attend(q, k, v, c.head_dim, bias)), `${pre}.o_proj`));
      y = op.add(y, this.mlp(op.rmsNorm(y, this.p(`${pre}.post_norm.weight`)), pre));
    }
    const out = op.rmsNorm(y, this.p("expert.final_norm.weight"));
    const actionOut = op.slice(out, 1, 1, 1 + c.horizon);
    return { velocity: this.linear(actionOut, "action_out_proj"), actionOut };
  }

  /**
   * Flow-Noise's std per action element [B, H, action_dim] from the action tokens' outputs:
   * log σ² = lo + (hi − lo)·(tanh(h) + 1)/2 with σ bounded to NOISE_STD_RANGE.
   */
  noiseStd(actionOut: Tensor): Tensor {
    const h = this.linear(op.tanh(this.linear(op.tanh(this.linear(actionOut, "noise_head.fc1")), "noise_head.fc2")), "noise_head.out");
    const lo = 2 * Math.log(NOISE_STD_RANGE[0]);
    const hi = 2 * Math.log(NOISE_STD_RANGE[1]);
    const logvar = op.affine(op.tanh(h), (hi - lo) / 2, lo + (hi - lo) / 2);
    return op.exp(op.scale(logvar, 0.5));
  }

  /**
   * The value [B]: on the mean of the action tokens' outputs [B, H, W] (π0), or on the prefix's
   * pooled output when value_after_vlm, through value_hidden ReLU layers. `detach` stops its gradient
   * into what feeds it.
   */
  value(prefix: PrefixKV, actionOut: Tensor, detach: boolean): Tensor {
    const input = this.c.value_after_vlm ? prefix.pooled! : op.mean(actionOut, 1); // [B, width]
    const hidden = this.c.value_hidden ?? [];
    let h = detach ? op.detach(input) : input;
    for (let i = 0; i < hidden.length; i++) h = op.relu(this.linear(h, valueLayer(i)));
    const v = this.linear(h, valueLayer(hidden.length, hidden.length)); // [B, 1]
    return op.reshape(v, [v.shape[0]!]);
  }
}
