// Benchmark: one policy call (prefix + K = 4 flow-SDE denoising steps + value) for batch 1, 16
// and 64 with the prefix on WebGPU or on ONNX Runtime, and one PPO-style forward + backward over a
// minibatch of 32 chunks, at the default model size. Run: .tools/bin/bun bench/policy.ts
import { cpus } from "node:os";
import * as op from "../src/gpu/ops.ts";
import { Rng } from "../src/gpu/random.ts";
import { initEngine } from "../src/gpu/runtime.ts";
import { scope, scopeAsync, Tensor } from "../src/gpu/tensor.ts";
import { DEFAULT_MODEL, initParameters, parameterShapes, type ModelConfig } from "../src/model/config.ts";
import { OnnxPrefix } from "../src/model/onnx_prefix.ts";
import { Policy } from "../src/model/policy.ts";
import { context, logProbValue, sampleActions, type SamplerConfig } from "../src/model/sampler.ts";
import { Rng as CpuRng } from "../src/sim/math.ts";

const gpu = await initEngine();
const c: ModelConfig = { ...DEFAULT_MODEL, vocab_size: 400 };
const cpuRng = new CpuRng(7);
const normal = () => cpuRng.normal();
const arrays = initParameters(c, normal);
const policy = Policy.fromArrays(c, arrays, true);
const onnx = await OnnxPrefix.create(c, arrays);
const rng = new Rng(1);
const sc: SamplerConfig = { numSteps: 4, method: "flow_sde", noiseLevel: 0.5, chunk: 5, envDim: 7, jointLogprob: false, detachCritic: true };
const count = (pred: (n: string) => boolean) => [...parameterShapes(c)].filter(([n]) => pred(n)).reduce((a, [, sh]) => a + sh.reduce((x, y) => x * y, 1), 0);

console.log(`machine: ${cpus()[0]?.model} × ${cpus().length}; adapter ${gpu.summary.vendor} ${gpu.summary.device} (${gpu.summary.backend}${gpu.summary.isSoftware ? ", software" : ""})`);
console.log(`model: ${(count(() => true) / 1e6).toFixed(3)} M parameters, expert + heads ${(count((n) => !/^(vit|projector|view_embed|embed_tokens|text_pos|prefix)/.test(n)) / 1e6).toFixed(3)} M; ${c.num_images} views of ${c.image_size}², ${c.max_text_len} text tokens, horizon ${c.horizon}`);

const obs = (B: number) => ({
  images: Uint8Array.from({ length: B * c.num_images * c.image_size ** 2 * 3 }, (_, i) => (i * 31) % 251),
  ids: Array.from({ length: B * c.max_text_len }, (_, i) => (i % c.max_text_len < 12 ? 10 + (i % 7) : 0)),
  mask: Array.from({ length: B * c.max_text_len }, (_, i) => (i % c.max_text_len < 12 ? 1 : 0)),
  state: Float32Array.from({ length: B * 8 }, (_, i) => Math.sin(i)),
});

async function call(B: number, backend: "webgpu" | "onnx"): Promise<void> {
  const o = obs(B);
  const prefix = backend === "onnx" ? await onnx.embedPrefix(o.images, o.ids, o.mask, B) : undefined;
  await scopeAsync(async () => {
    const out = op.noGrad(() => {
      const p = prefix ?? policy.embedPrefix(Tensor.from(o.images, [B, c.num_images, c.image_size, c.image_size, 3], "u8"), Tensor.from(o.ids, [B, c.max_text_len], "i32"), o.mask);
      const smp = sampleActions(policy, context(policy, p, Tensor.from(o.state, [B, 8])), sc, (shape) => rng.normal(shape), true, () => 2);
      return { chain: smp.chain.read(), lp: smp.logProb.read(), v: smp.value.read() };
    });
    await Promise.all([out.chain, out.lp, out.v]); // one readback of what a rollout stores
  });
  if (prefix) for (const t of [...prefix.k, ...prefix.v, prefix.keyBias]) t.dispose();
}

async function time(fn: () => Promise<void>, reps: number): Promise<number> {
  await fn();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await fn();
  return (performance.now() - t0) / reps;
}

for (const B of [1, 16, 64]) {
  const reps = B === 64 ? 2 : 5;
  const tg = await time(() => call(B, "webgpu"), reps);
  const to = await time(() => call(B, "onnx"), reps);
  console.log(`policy call, batch ${String(B).padStart(2)}: prefix on WebGPU ${tg.toFixed(0)} ms, prefix on ONNX Runtime ${to.toFixed(0)} ms`);
}

// PPO-style update: log-prob and value of 32 stored chunks with gradients, backward.
const B = 32;
const o = obs(B);
const stored = await scopeAsync(async () =>
  op.noGrad(() => {
    const p = policy.embedPrefix(Tensor.from(o.images, [B, c.num_images, c.image_size, c.image_size, 3], "u8"), Tensor.from(o.ids, [B, c.max_text_len], "i32"), o.mask);
    const ctx = context(policy, p, Tensor.from(o.state, [B, 8]));
    return { ctx, chain: sampleActions(policy, ctx, sc, (shape) => rng.normal(shape), true, () => 1).chain };
  }),
);
const step = async () => {
  const loss = scope(() => {
    const r = logProbValue(policy, stored.ctx, sc, stored.chain, 1);
    const l = op.add(op.mean(op.neg(r.logProb)), op.mean(op.square(r.value)));
    op.backward(l);
    return l;
  });
  await loss.item();
  loss.dispose();
  for (const t of policy.params.values()) {
    t.grad?.dispose();
    t.grad = undefined;
  }
};
console.log(`PPO forward + backward, minibatch of ${B} chunks (expert + value head): ${(await time(step, 5)).toFixed(0)} ms`);
await onnx.release();
