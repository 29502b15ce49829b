// A float64 forward of the policy written from the architecture table in src/model/config.ts with
// plain loops (its own attention, norms, time embedding and heads; nothing from the engine), the
// independent reference that the policy's programs on WebGPU and traced into ONNX are tested against.
import { dims, NOISE_STD_RANGE, type ModelConfig } from "../../src/model/config.ts";

type P = Map<string, Float32Array | Float64Array>;
export type M = { rows: number; cols: number; a: Float64Array }; // row-major matrix

const mat = (rows: number, cols: number): M => ({ rows, cols, a: new Float64Array(rows * cols) });

function linear(x: M, p: P, name: string): M {
  const W = p.get(`${name}.weight`)!;
  const b = p.get(`${name}.bias`)!;
  const out = mat(x.rows, b.length);
  for (let r = 0; r < x.rows; r++)
    for (let o = 0; o < out.cols; o++) {
      let acc = b[o]!;
      for (let i = 0; i < x.cols; i++) acc += x.a[r * x.cols + i]! * W[i * out.cols + o]!;
      out.a[r * out.cols + o] = acc;
    }
  return out;
}

function norm(x: M, p: P, name: string, kind: "layer" | "rms"): M {
  const w = p.get(`${name}.weight`)!;
  const bias = p.get(`${name}.bias`);
  const out = mat(x.rows, x.cols);
  for (let r = 0; r < x.rows; r++) {
    const row = x.a.subarray(r * x.cols, (r + 1) * x.cols);
    let mean = 0;
    if (kind === "layer") mean = row.reduce((s, v) => s + v, 0) / x.cols;
    const ms = row.reduce((s, v) => s + (v - mean) ** 2, 0) / x.cols;
    const inv = 1 / Math.sqrt(ms + (kind === "layer" ? 1e-5 : 1e-6));
    for (let i = 0; i < x.cols; i++) out.a[r * x.cols + i] = (row[i]! - mean) * inv * w[i]! + (bias ? bias[i]! : 0);
  }
  return out;
}

const map = (x: M, f: (v: number) => number): M => ({ rows: x.rows, cols: x.cols, a: x.a.map(f) });
const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
const silu = (v: number) => v / (1 + Math.exp(-v));
function add(x: M, y: M | Float32Array | Float64Array): M {
  const ya = "a" in y ? y.a : y;
  return { rows: x.rows, cols: x.cols, a: x.a.map((v, i) => v + ya[i]!) };
}
const cols = (x: M, from: number, n: number): M => {
  const out = mat(x.rows, n);
  for (let r = 0; r < x.rows; r++) for (let i = 0; i < n; i++) out.a[r * n + i] = x.a[r * x.cols + from + i]!;
  return out;
};
const vstack = (ms: M[]): M => ({ rows: ms.reduce((s, m) => s + m.rows, 0), cols: ms[0]!.cols, a: Float64Array.from(ms.flatMap((m) => Array.from(m.a))) });
const mlp = (x: M, p: P, pre: string) => linear(map(linear(x, p, `${pre}.fc1`), gelu), p, `${pre}.fc2`);

/** Multi-head attention: queries q [Sq, h·hd] over keys/values [Sk, h·hd]; allowed(i, j) masks. */
function attention(q: M, k: M, v: M, heads: number, hd: number, allowed: (i: number, j: number) => boolean): M {
  const out = mat(q.rows, heads * hd);
  const logits = new Float64Array(k.rows);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < q.rows; i++) {
      let max = -Infinity;
      for (let j = 0; j < k.rows; j++) {
        let s = 0;
        for (let e = 0; e < hd; e++) s += q.a[i * q.cols + h * hd + e]! * k.a[j * k.cols + h * hd + e]!;
        logits[j] = allowed(i, j) ? s / Math.sqrt(hd) : -Infinity;
        max = Math.max(max, logits[j]!);
      }
      let z = 0;
      for (let j = 0; j < k.rows; j++) z += logits[j] = Math.exp(logits[j]! - max);
      for (let e = 0; e < hd; e++) {
        let acc = 0;
        for (let j = 0; j < k.rows; j++) acc += (logits[j]! / z) * v.a[j * v.cols + h * hd + e]!;
        out.a[i * out.cols + h * hd + e] = acc;
      }
    }
  return out;
}

export interface RefPrefix {
  k: M[]; // per layer [T, h·hd]
  v: M[];
  keyMask: boolean[]; // [T]
  /** value_after_vlm: the mean of the final-normed prefix outputs over the valid tokens [width]. */
  pooled?: Float64Array;
}

/** The prefix of one example: images uint8 [V, S, S, 3], token ids and mask [L]. */
export function refPrefix(c: ModelConfig, p: P, images: Uint8Array, ids: ArrayLike<number>, tokenMask: ArrayLike<number>): RefPrefix {
  const d = dims(c);
  const S = c.image_size;
  const ps = c.patch_size;
  const views: M[] = [];
  for (let view = 0; view < c.num_images; view++) {
    const patches = mat(d.patches, d.patchDim);
    for (let py = 0; py < d.patchesPerSide; py++)
      for (let pxi = 0; pxi < d.patchesPerSide; pxi++)
        for (let r = 0; r < ps; r++)
          for (let col = 0; col < ps; col++)
            for (let ch = 0; ch < 3; ch++) {
              const pix = images[(((view * S + py * ps + r) * S + pxi * ps + col) * 3) + ch]!;
              patches.a[(py * d.patchesPerSide + pxi) * d.patchDim + (r * ps + col) * 3 + ch] = (pix * 2) / 255 - 1;
            }
    let h = add(linear(patches, p, "vit.patch_embed"), p.get("vit.pos_embed")!);
    const vhd = c.vit_width / c.vit_heads;
    for (let l = 0; l < c.vit_depth; l++) {
      const pre = `vit.layers.${l}`;
      const qkv = linear(norm(h, p, `${pre}.ln1`, "layer"), p, `${pre}.qkv`);
      const att = attention(cols(qkv, 0, c.vit_width), cols(qkv, c.vit_width, c.vit_width), cols(qkv, 2 * c.vit_width, c.vit_width), c.vit_heads, vhd, () => true);
      h = add(h, linear(att, p, `${pre}.proj`));
      h = add(h, mlp(norm(h, p, `${pre}.ln2`, "layer"), p, pre));
    }
    const tok = linear(norm(h, p, "vit.ln_post", "layer"), p, "projector");
    const ve = p.get("view_embed")!.subarray(view * c.width, (view + 1) * c.width);
    views.push({ ...tok, a: tok.a.map((v, i) => v + ve[i % c.width]!) });
  }
  const text = mat(c.max_text_len, c.width);
  const E = p.get("embed_tokens")!;
  const pos = p.get("text_pos_embed")!;
  for (let t = 0; t < c.max_text_len; t++)
    for (let i = 0; i < c.width; i++) text.a[t * c.width + i] = E[ids[t]! * c.width + i]! * Math.sqrt(c.width) + pos[t * c.width + i]!;
  let x = vstack([...views, text]);
  const keyMask = [...Array<boolean>(c.num_images * d.patches).fill(true), ...Array.from(tokenMask, (m) => m === 1)];
  const ks: M[] = [];
  const vs: M[] = [];
  for (let l = 0; l < c.depth; l++) {
    const pre = `prefix.layers.${l}`;
    const a = norm(x, p, `${pre}.input_norm`, "rms");
    const q = linear(a, p, `${pre}.q_proj`);
    ks.push(linear(a, p, `${pre}.k_proj`));
    vs.push(linear(a, p, `${pre}.v_proj`));
    const att = attention(q, ks[l]!, vs[l]!, c.heads, c.head_dim, (_, j) => keyMask[j]!);
    x = add(x, linear(att, p, `${pre}.o_proj`));
    x = add(x, mlp(norm(x, p, `${pre}.post_norm`, "rms"), p, pre));
  }
  if (!(c.add_value_head && c.value_after_vlm)) return { k: ks, v: vs, keyMask };
  const out = norm(x, p, "prefix.final_norm", "rms");
  const pooled = new Float64Array(c.width);
  const n = keyMask.filter(Boolean).length;
  keyMask.forEach((valid, t) => {
    if (valid) for (let i = 0; i < c.width; i++) pooled[i] += out.a[t * c.width + i]! / n;
  });
  return { k: ks, v: vs, keyMask, pooled };
}

/** The sin-cos embedding of flow time t (openpi: periods 4e-3 … 4.0, the sines then the cosines). */
export function refTimeEmbedding(t: number, width: number): Float64Array {
  const half = width / 2;
  const out = new Float64Array(width);
  for (let i = 0; i < half; i++) {
    const period = 4e-3 * Math.pow(4.0 / 4e-3, i / (half - 1));
    out[i] = Math.sin((2 * Math.PI * t) / period);
    out[half + i] = Math.cos((2 * Math.PI * t) / period);
  }
  return out;
}

/**
 * The expert at flow time t (or given its embedding [W]) for one example (state already normalised):
 * the velocity [H, action_dim] and the final-normed outputs of the action tokens [H, W].
 */
export function refExpert(c: ModelConfig, p: P, prefix: RefPrefix, stateN: ArrayLike<number>, xt: ArrayLike<number>, t: number | ArrayLike<number>): { velocity: M; actionOut: M } {
  const W = c.expert_width;
  const stateTok = linear({ rows: 1, cols: c.state_dim, a: Float64Array.from(stateN) }, p, "state_proj");
  const act = linear({ rows: c.horizon, cols: c.action_dim, a: Float64Array.from(xt) }, p, "action_in_proj");
  const te = typeof t === "number" ? refTimeEmbedding(t, W) : t;
  const cat = mat(c.horizon, 2 * W);
  for (let r = 0; r < c.horizon; r++)
    for (let i = 0; i < W; i++) {
      cat.a[r * 2 * W + i] = act.a[r * W + i]!;
      cat.a[r * 2 * W + W + i] = te[i]!;
    }
  const mixed = add(linear(map(linear(cat, p, "action_time_mlp_in"), silu), p, "action_time_mlp_out"), p.get("action_pos_embed")!);
  let y = vstack([stateTok, mixed]);
  const T = prefix.keyMask.length;
  for (let l = 0; l < c.depth; l++) {
    const pre = `expert.layers.${l}`;
    const a = norm(y, p, `${pre}.input_norm`, "rms");
    const q = linear(a, p, `${pre}.q_proj`);
    const k = vstack([prefix.k[l]!, linear(a, p, `${pre}.k_proj`)]);
    const v = vstack([prefix.v[l]!, linear(a, p, `${pre}.v_proj`)]);
    // Block-causal: prefix keys by the key mask; the state token sees itself; actions see state and actions.
    const att = attention(q, k, v, c.heads, c.head_dim, (i, j) => (j < T ? prefix.keyMask[j]! : i === 0 ? j === T : true));
    y = add(y, linear(att, p, `${pre}.o_proj`));
    y = add(y, mlp(norm(y, p, `${pre}.post_norm`, "rms"), p, pre));
  }
  const out = norm(y, p, "expert.final_norm", "rms");
  const actionOut = { rows: c.horizon, cols: W, a: out.a.slice(W) };
  return { velocity: linear(actionOut, p, "action_out_proj"), actionOut };
}

/** The velocity alone. */
export const refVelocity = (c: ModelConfig, p: P, prefix: RefPrefix, stateN: ArrayLike<number>, xt: ArrayLike<number>, t: number | ArrayLike<number>): M =>
  refExpert(c, p, prefix, stateN, xt, t).velocity;

/** The value: the head (linear, or ReLU MLP of value_hidden) on the mean of the action tokens' outputs, or on the pooled prefix (value_after_vlm). */
export function refValue(c: ModelConfig, p: P, prefix: RefPrefix, actionOut?: M): number {
  let input: Float64Array;
  if (c.value_after_vlm) input = prefix.pooled!;
  else if (!actionOut) throw new Error("refValue: the π0 value head needs the action tokens' outputs");
  else {
    input = new Float64Array(actionOut.cols);
    for (let r = 0; r < actionOut.rows; r++) for (let i = 0; i < actionOut.cols; i++) input[i] += actionOut.a[r * actionOut.cols + i]! / actionOut.rows;
  }
  const hidden = c.value_hidden ?? [];
  let h: M = { rows: 1, cols: input.length, a: input };
  hidden.forEach((_, i) => {
    h = linear(h, p, `value_head.fc${i + 1}`);
    h = { ...h, a: h.a.map((x) => Math.max(x, 0)) };
  });
  return linear(h, p, hidden.length ? "value_head.out" : "value_head").a[0]!;
}

/** Flow-Noise's learned std [H, action_dim]: log σ² squashed by tanh into log of NOISE_STD_RANGE². */
export function refNoiseStd(p: P, actionOut: M): M {
  const h = linear(map(linear(map(linear(actionOut, p, "noise_head.fc1"), Math.tanh), p, "noise_head.fc2"), Math.tanh), p, "noise_head.out");
  const [lo, hi] = NOISE_STD_RANGE.map((s) => 2 * Math.log(s)) as [number, number];
  return map(h, (v) => Math.exp(0.5 * (lo + ((hi - lo) * (Math.tanh(v) + 1)) / 2)));
}
