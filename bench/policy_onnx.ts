// Benchmark: ONNX Runtime (CPU) time of the prefix, of a whole K = 4 ODE policy call, and of the
// rollout sampler (K = 4, one flow-SDE step, log-prob and value) at the default model size, for
// batch 1, 16 and 64. Run: .tools/bin/bun bench/policy_onnx.ts
import { cpus } from "node:os";
import { DEFAULT_MODEL, initParameters, parameterShapes, type ModelConfig } from "../src/model/config.ts";
import { exportPolicyOnnx, exportPrefixOnnx } from "../src/model/onnx_export.ts";
import { exportSamplerOnnx } from "../src/model/onnx_sampler.ts";
import { loadOnnxRuntime } from "../src/onnx/runtime.ts";
import { Rng as CpuRng } from "../src/sim/math.ts";

const c: ModelConfig = { ...DEFAULT_MODEL, vocab_size: 400 };
const cpuRng = new CpuRng(7);
const normal = () => cpuRng.normal();
const params = initParameters(c, normal);
const count = (pred: (n: string) => boolean) => [...parameterShapes(c)].filter(([n]) => pred(n)).reduce((a, [, sh]) => a + sh.reduce((x, y) => x * y, 1), 0);
const stats = { state: { mean: Array(8).fill(0), std: Array(8).fill(1) }, actions: { mean: Array(7).fill(0), std: Array(7).fill(1) } };
const ort = await loadOnnxRuntime();
const prefixSession = await ort.InferenceSession.create(exportPrefixOnnx(c, params));
const policySession = await ort.InferenceSession.create(exportPolicyOnnx(c, params, stats, 4));
const sc = { numSteps: 4, method: "flow_sde" as const, noiseLevel: 0.5, chunk: 5, envDim: 7, jointLogprob: false, detachCritic: true };
const samplerSession = await ort.InferenceSession.create(exportSamplerOnnx(c, params, stats.state, sc), { graphOptimizationLevel: "all" });

console.log(`machine: ${cpus()[0]?.model} × ${cpus().length}, ONNX Runtime ${ort.env.versions.node} (CPU)`);
console.log(`model: ${(count(() => true) / 1e6).toFixed(3)} M parameters (prefix ${(count((n) => /^(vit|projector|view_embed|embed_tokens|text_pos|prefix)/.test(n)) / 1e6).toFixed(3)} M), ${c.num_images} views of ${c.image_size}², horizon ${c.horizon}`);
for (const B of [1, 16, 64]) {
  const feeds = {
    images: new ort.Tensor("uint8", new Uint8Array(B * c.num_images * c.image_size ** 2 * 3).map((_, i) => i % 251), [B, c.num_images, c.image_size, c.image_size, 3]),
    tokens: new ort.Tensor("int64", new BigInt64Array(B * c.max_text_len).fill(5n), [B, c.max_text_len]),
    token_mask: new ort.Tensor("float32", new Float32Array(B * c.max_text_len).fill(1), [B, c.max_text_len]),
  };
  const policyFeeds = { ...feeds, state: new ort.Tensor("float32", new Float32Array(B * 8), [B, 8]), noise: new ort.Tensor("float32", new Float32Array(B * c.horizon * 7).fill(0.3), [B, c.horizon, 7]) };
  const time = async (fn: () => Promise<unknown>) => {
    await fn(); // warm-up
    const reps = B === 64 ? 3 : 10;
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) await fn();
    return (performance.now() - t0) / reps;
  };
  const samplerFeeds = {
    ...policyFeeds,
    eps: new ort.Tensor("float32", new Float32Array(B * 4 * c.horizon * 7).fill(0.1), [B, 4, c.horizon, 7]),
    step_mask: new ort.Tensor("float32", Float32Array.from([0, 0, 1, 0]), [4]),
  };
  const tp = await time(() => prefixSession.run(feeds));
  const tpol = await time(() => policySession.run(policyFeeds));
  const ts = await time(() => samplerSession.run(samplerFeeds));
  console.log(`batch ${String(B).padStart(2)}: prefix ${tp.toFixed(1)} ms, ODE policy (prefix + 4 steps) ${tpol.toFixed(1)} ms, rollout sampler (+ SDE step, log-prob, value) ${ts.toFixed(1)} ms`);
}
