// Shared pieces of the model tests: a seeded normal stream, a tiny model configuration, and
// initial weights moved off their init values so every path (norm scales, biases) matters.
import { Tensor } from "../../src/engine/tensor.ts";
import { DEFAULT_MODEL, initParameters, type ModelConfig } from "../../src/model/config.ts";
import { Rng } from "../../src/util/random.ts";

/** Standard normal draws from a seeded stream. */
export function gaussian(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.normal();
}

/** A source of device tensors of standard normal draws (initial noise and per-step eps for sampleChunk). */
export function normalSource(seed: number): (shape: number[]) => Tensor {
  const g = gaussian(seed);
  return (shape) => Tensor.from(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, g), shape);
}

/** A small model with every part of the real one; odd sizes where the architecture allows. */
export function tinyModel(over: Partial<ModelConfig> = {}): ModelConfig {
  return {
    ...DEFAULT_MODEL,
    image_size: 16, patch_size: 8, num_images: 2,
    vit_width: 12, vit_depth: 1, vit_heads: 2, vit_mlp: 16,
    width: 16, depth: 2, heads: 2, head_dim: 6, mlp: 16,
    vocab_size: 20, max_text_len: 5, expert_width: 12, expert_mlp: 16, horizon: 8,
    ...over,
  };
}

/** Initial parameters plus N(0, 0.1²) so norm weights are not all 1 and biases not all 0. */
export function perturbedParams(c: ModelConfig, seed: number): Map<string, Float32Array> {
  const g = gaussian(seed);
  return new Map([...initParameters(c, g)].map(([n, a]) => [n, a.map((v) => v + 0.1 * g())]));
}
