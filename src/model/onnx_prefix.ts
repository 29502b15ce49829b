// The frozen prefix on ONNX Runtime (rollout.prefix_backend: onnx): with train_expert_only the
// prefix never changes during RL, and on a CPU-only machine ONNX Runtime runs it much faster than
// SwiftShader. Its K/V are uploaded once per observation for the expert's K denoising steps.
import type * as Ort from "onnxruntime-node";
import { Tensor } from "../gpu/tensor.ts";
import { loadOnnxRuntime } from "../onnx/runtime.ts";
import { dims, type ModelConfig } from "./config.ts";
import { exportPrefixOnnx } from "./onnx_export.ts";
import type { PrefixKV } from "./policy.ts";

export class OnnxPrefix {
  private constructor(
    private readonly c: ModelConfig,
    private readonly ort: typeof Ort,
    private readonly session: Ort.InferenceSession,
  ) {}

  static async create(c: ModelConfig, params: Map<string, Float32Array>): Promise<OnnxPrefix> {
    const ort = await loadOnnxRuntime();
    const session = await ort.InferenceSession.create(exportPrefixOnnx(c, params), { graphOptimizationLevel: "all" });
    return new OnnxPrefix(c, ort, session);
  }

  /** images uint8 [B, V, S, S, 3], ids [B·L], tokenMask [B·L] → K/V tensors on the device. */
  async embedPrefix(images: Uint8Array, ids: ArrayLike<number>, tokenMask: ArrayLike<number>, B: number): Promise<PrefixKV> {
    const { c, ort } = this;
    const d = dims(c);
    const out = await this.session.run({
      images: new ort.Tensor("uint8", images, [B, c.num_images, c.image_size, c.image_size, 3]),
      tokens: new ort.Tensor("int64", BigInt64Array.from(Array.from(ids), (v) => BigInt(v)), [B, c.max_text_len]),
      token_mask: new ort.Tensor("float32", Float32Array.from(tokenMask), [B, c.max_text_len]),
    });
    const per = B * c.heads * d.prefixLen * c.head_dim; // one layer of K or V: [B, heads, T, hd]
    const layers = (all: Float32Array) => Array.from({ length: c.depth }, (_, l) => Tensor.from(all.subarray(l * per, (l + 1) * per), [B, c.heads, d.prefixLen, c.head_dim]));
    return {
      k: layers(out.prefix_k!.data as Float32Array),
      v: layers(out.prefix_v!.data as Float32Array),
      keyBias: Tensor.from(out.prefix_bias!.data as Float32Array, [B, 1, 1, d.prefixLen]),
      pooled: out.prefix_pooled ? Tensor.from(out.prefix_pooled.data as Float32Array, [B, c.width]) : undefined,
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
