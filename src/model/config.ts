// The policy's architecture, as config.json holds it, and the name and shape of every parameter.
// Names follow openpi's pi0.py where it has one (action_in_proj, action_time_mlp_in/out,
// action_out_proj, state_proj); the policy (policy.ts, run on WebGPU or traced into ONNX) and the
// checkpoint loader both read this table, so they cannot disagree about a weight.

export interface ModelConfig {
  model_type: "dexrl_pi0";
  /** Square camera images of image_size² pixels, uint8 RGB, num_images views (agentview, wrist). */
  image_size: number;
  patch_size: number;
  num_images: number;
  /** The vision tower (ViT, LayerNorm, GELU MLP), per view, with learned position embeddings. */
  vit_width: number;
  vit_depth: number;
  vit_heads: number;
  vit_mlp: number;
  /** The prefix transformer over image and language tokens (RMSNorm, GELU MLP). */
  width: number;
  depth: number;
  heads: number;
  head_dim: number;
  mlp: number;
  vocab_size: number;
  max_text_len: number;
  /** The action expert: its own weights, `depth` layers attending to the prefix's K/V layer by layer. */
  expert_width: number;
  expert_mlp: number;
  state_dim: number;
  action_dim: number;
  /** Action horizon H: action tokens per chunk. */
  horizon: number;
  /** Value head: a linear layer on the mean of the action tokens' outputs (Dexbotic π0) … */
  add_value_head: boolean;
  /** … or on the masked mean of the prefix's final outputs (π0.5), computed once per observation. */
  value_after_vlm: boolean;
  /**
   * Hidden widths of the value head's ReLU MLP (RLinf's ValueHead; π0.5 uses 1024, 512, 256). Absent
   * or empty: one linear layer (Dexbotic π0), the layout of checkpoints written before it existed.
   */
  value_hidden?: number[];
  /** Flow-Noise's learned std head on each action token's output (RLinf ExploreNoiseNet: 128, 64, tanh). */
  add_noise_head: boolean;
}

export const DEFAULT_MODEL: Omit<ModelConfig, "vocab_size"> = {
  model_type: "dexrl_pi0",
  image_size: 64,
  patch_size: 8,
  num_images: 2,
  vit_width: 64,
  vit_depth: 2,
  vit_heads: 4,
  vit_mlp: 128,
  width: 64,
  depth: 3,
  heads: 4,
  head_dim: 16,
  mlp: 128,
  max_text_len: 48,
  expert_width: 64,
  expert_mlp: 128,
  state_dim: 8,
  action_dim: 7,
  horizon: 50,
  add_value_head: true,
  value_after_vlm: false,
  add_noise_head: false,
};

/** Masked attention logits get this bias: exp underflows to exactly 0. */
export const MASK_BIAS = -1e9;

/** Hidden widths of the Flow-Noise std head, and the std bounds its output is squashed into. */
export const NOISE_HEAD_HIDDEN = [128, 64] as const;
export const NOISE_STD_RANGE = [0.08, 0.16] as const;

/** Derived sizes used by every implementation. */
export function dims(c: ModelConfig) {
  const patchesPerSide = c.image_size / c.patch_size;
  const patches = patchesPerSide * patchesPerSide;
  return {
    patchesPerSide,
    /** Tokens per view. */
    patches,
    /** Values per patch vector: patch_size² × 3 (row, column, channel order). */
    patchDim: c.patch_size * c.patch_size * 3,
    /** Prefix length T: image tokens of every view, then the text tokens. */
    prefixLen: c.num_images * patches + c.max_text_len,
    /** Suffix length: one state token, then H action tokens. */
    suffixLen: 1 + c.horizon,
    attnDim: c.heads * c.head_dim,
  };
}

/** Checks the sizes fit together; the message names the config.json key. */
export function validateModelConfig(c: ModelConfig): void {
  const positive = ["image_size", "patch_size", "num_images", "vit_width", "vit_depth", "vit_heads", "vit_mlp", "width", "depth", "heads", "head_dim", "mlp", "vocab_size", "max_text_len", "expert_width", "expert_mlp", "state_dim", "action_dim", "horizon"] as const;
  for (const k of positive) if (!Number.isInteger(c[k]) || c[k] < 1) throw new Error(`config.json ${k} must be a positive integer, got ${JSON.stringify(c[k])}`);
  if (c.model_type !== "dexrl_pi0") throw new Error(`config.json model_type is ${JSON.stringify(c.model_type)}, expected "dexrl_pi0"`);
  if (c.image_size % c.patch_size) throw new Error(`config.json image_size ${c.image_size} is not a multiple of patch_size ${c.patch_size}`);
  if (c.vit_width % c.vit_heads) throw new Error(`config.json vit_width ${c.vit_width} is not a multiple of vit_heads ${c.vit_heads}`);
  for (const k of ["add_value_head", "value_after_vlm", "add_noise_head"] as const)
    if (typeof c[k] !== "boolean") throw new Error(`config.json ${k} must be true or false, got ${JSON.stringify(c[k])}`);
  const h = c.value_hidden;
  if (h !== undefined && !(Array.isArray(h) && h.every((w) => Number.isInteger(w) && w >= 1)))
    throw new Error(`config.json value_hidden must be a list of positive integers, got ${JSON.stringify(h)}`);
  if (c.num_images > 2) throw new Error(`config.json num_images is ${c.num_images}; dexrl models take 1 or 2 views`);
}

/** Every parameter's name and shape. Linear weights are [in, out] (y = x·W + b). */
export function parameterShapes(c: ModelConfig): Map<string, number[]> {
  const d = dims(c);
  const m = new Map<string, number[]>();
  const linear = (name: string, inp: number, out: number) => {
    m.set(`${name}.weight`, [inp, out]);
    m.set(`${name}.bias`, [out]);
  };
  const norm = (name: string, n: number, withBias: boolean) => {
    m.set(`${name}.weight`, [n]);
    if (withBias) m.set(`${name}.bias`, [n]);
  };
  // Vision tower, shared by the views.
  linear("vit.patch_embed", d.patchDim, c.vit_width);
  m.set("vit.pos_embed", [d.patches, c.vit_width]);
  for (let l = 0; l < c.vit_depth; l++) {
    const p = `vit.layers.${l}`;
    norm(`${p}.ln1`, c.vit_width, true);
    linear(`${p}.qkv`, c.vit_width, 3 * c.vit_width);
    linear(`${p}.proj`, c.vit_width, c.vit_width);
    norm(`${p}.ln2`, c.vit_width, true);
    linear(`${p}.fc1`, c.vit_width, c.vit_mlp);
    linear(`${p}.fc2`, c.vit_mlp, c.vit_width);
  }
  norm("vit.ln_post", c.vit_width, true);
  linear("projector", c.vit_width, c.width);
  m.set("view_embed", [c.num_images, c.width]);
  // Language.
  m.set("embed_tokens", [c.vocab_size, c.width]);
  m.set("text_pos_embed", [c.max_text_len, c.width]);
  // Prefix transformer and action expert, layer by layer.
  for (let l = 0; l < c.depth; l++) {
    for (const [tower, w, mlp] of [["prefix", c.width, c.mlp], ["expert", c.expert_width, c.expert_mlp]] as const) {
      const p = `${tower}.layers.${l}`;
      norm(`${p}.input_norm`, w, false);
      linear(`${p}.q_proj`, w, d.attnDim);
      linear(`${p}.k_proj`, w, d.attnDim);
      linear(`${p}.v_proj`, w, d.attnDim);
      linear(`${p}.o_proj`, d.attnDim, w);
      norm(`${p}.post_norm`, w, false);
      linear(`${p}.fc1`, w, mlp);
      linear(`${p}.fc2`, mlp, w);
    }
  }
  norm("expert.final_norm", c.expert_width, false);
  // Suffix embedding and heads (openpi names).
  linear("state_proj", c.state_dim, c.expert_width);
  linear("action_in_proj", c.action_dim, c.expert_width);
  linear("action_time_mlp_in", 2 * c.expert_width, c.expert_width);
  linear("action_time_mlp_out", c.expert_width, c.expert_width);
  m.set("action_pos_embed", [c.horizon, c.expert_width]);
  linear("action_out_proj", c.expert_width, c.action_dim);
  if (c.add_value_head && c.value_after_vlm) norm("prefix.final_norm", c.width, false);
  if (c.add_value_head) {
    const hidden = c.value_hidden ?? [];
    let inp = c.value_after_vlm ? c.width : c.expert_width;
    hidden.forEach((w, i) => {
      linear(valueLayer(i), inp, w);
      inp = w;
    });
    linear(valueLayer(hidden.length, hidden.length), inp, 1);
  }
  if (c.add_noise_head) {
    linear("noise_head.fc1", c.expert_width, NOISE_HEAD_HIDDEN[0]);
    linear("noise_head.fc2", NOISE_HEAD_HIDDEN[0], NOISE_HEAD_HIDDEN[1]);
    linear("noise_head.out", NOISE_HEAD_HIDDEN[1], c.action_dim);
  }
  return m;
}

/** The value head's layer i of hidden.length + 1: value_head.fc1 … fcN, then value_head.out ("value_head" alone when linear). */
export const valueLayer = (i: number, hidden = -1) => (i === hidden ? (hidden ? "value_head.out" : "value_head") : `value_head.fc${i + 1}`);

/** Parameters frozen by train_expert_only: the whole prefix (vision, projector, language, prefix layers). */
export const isPrefixParameter = (name: string) =>
  name.startsWith("vit.") || name.startsWith("projector.") || name === "view_embed" || name === "embed_tokens" || name === "text_pos_embed" || name.startsWith("prefix.");

/**
 * Initial values: Linear weights N(0, 1/fan_in) (the value head's last layer N(0, 0.02²) and its
 * hidden ReLU layers Kaiming N(0, 2/fan_in), as RLinf), biases 0, norm weights 1, embeddings
 * N(0, 0.02²). `normal` supplies standard normal draws.
 */
export function initParameters(c: ModelConfig, normal: () => number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of parameterShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    if (name.endsWith("norm.weight") || /\.ln\w*\.weight$/.test(name)) a.fill(1);
    else if (name.endsWith(".bias")) a.fill(0);
    else if (name === "value_head.weight" || name === "value_head.out.weight") for (let i = 0; i < n; i++) a[i] = 0.02 * normal();
    else if (name.endsWith(".weight")) {
      const std = (name.startsWith("value_head.fc") ? Math.SQRT2 : 1) / Math.sqrt(shape[0]!);
      for (let i = 0; i < n; i++) a[i] = std * normal();
    } else for (let i = 0; i < n; i++) a[i] = 0.02 * normal();
    out.set(name, a);
  }
  return out;
}

/** The sin-cos embeddings [n, width] of flow times ts, flat. */
export function timeEmbeddings(ts: readonly number[], width: number): Float32Array {
  const out = new Float32Array(ts.length * width);
  ts.forEach((t, i) => out.set(timeEmbedding(t, width), i * width));
  return out;
}

/** The sin-cos embedding of the flow time t (openpi: periods from 4e-3 to 4.0), `width` values. */
export function timeEmbedding(t: number, width: number, minPeriod = 4e-3, maxPeriod = 4.0): Float32Array {
  const half = width / 2;
  const out = new Float32Array(width);
  for (let i = 0; i < half; i++) {
    const frac = half > 1 ? i / (half - 1) : 0;
    const period = minPeriod * Math.pow(maxPeriod / minPeriod, frac);
    const x = (2 * Math.PI * t) / period;
    out[i] = Math.sin(x);
    out[half + i] = Math.cos(x);
  }
  return out;
}
