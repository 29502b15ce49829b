// Training-step timings at a model size, on both backends: the PPO micro-batch (frozen prefix
// stored, expert + value head forward, backward, AdamW) and the SFT step on the whole model.
// bun bench/train-step.ts [--backends onnx,webgpu] [--ppo-batch 32] [--sft-batch 64] [--width 64] [--depth 3] [--image 64] [--reps 5]
import { parseArgs } from "node:util";
import { compile, host, type Feeds } from "../src/engine/compile.ts";
import { Learner } from "../src/engine/learner.ts";
import { initEngine } from "../src/engine/runtime.ts";
import { DEFAULT_MODEL, dims, initParameters, parameterShapes, timeEmbeddings, type ModelConfig } from "../src/model/config.ts";
import { sampleFlowTimes } from "../src/model/flow.ts";
import { constantPolicy, ppoFn, prefixFn, sftFn, trainableNames } from "../src/model/programs.ts";
import { stepHost, type SamplerConfig } from "../src/model/sampler.ts";
import { Rng } from "../src/util/random.ts";
import { loadavg } from "node:os";

const { values: a } = parseArgs({
  options: {
    backends: { type: "string", default: "onnx,webgpu" },
    "ppo-batch": { type: "string", default: "32" },
    "sft-batch": { type: "string", default: "64" },
    width: { type: "string", default: String(DEFAULT_MODEL.width) },
    depth: { type: "string", default: String(DEFAULT_MODEL.depth) },
    image: { type: "string", default: String(DEFAULT_MODEL.image_size) },
    reps: { type: "string", default: "5" },
  },
});
const W = Number(a.width);
const c: ModelConfig = { ...DEFAULT_MODEL, vocab_size: 300, width: W, expert_width: W, vit_width: W, mlp: 2 * W, expert_mlp: 2 * W, vit_mlp: 2 * W, heads: 4, head_dim: W / 4, vit_heads: 4, depth: Number(a.depth), image_size: Number(a.image) };
const gpu = await initEngine();
const rng = new Rng(1);
const params = initParameters(c, () => rng.normal());
const count = [...params.values()].reduce((s, p) => s + p.length, 0);
const d = dims(c);
const K = 4;
const sampler: SamplerConfig = { numSteps: K, method: "flow_sde", noiseLevel: 0.5, chunk: 5, envDim: 7, jointLogprob: false, detachCritic: true };
const reps = Number(a.reps);
const f32 = (n: number, s = 1) => Float32Array.from({ length: n }, () => s * rng.normal());
const obs = (B: number): Feeds => ({
  images: host(Uint8Array.from({ length: B * c.num_images * c.image_size ** 2 * 3 }, () => Math.floor(rng.next() * 256)), [B, c.num_images, c.image_size, c.image_size, 3]),
  tokens: host(Int32Array.from({ length: B * c.max_text_len }, () => Math.floor(rng.next() * 300)), [B, c.max_text_len]),
  token_mask: host(Float32Array.from({ length: B * c.max_text_len }, (_, i) => (i % c.max_text_len < 12 ? 1 : 0)), [B, c.max_text_len]),
  state: host(f32(B * 8), [B, 8]),
});
console.log(`model: ${(count / 1e6).toFixed(3)} M parameters (width ${W}, depth ${c.depth}, image ${c.image_size}²), load average ${loadavg().map((x) => x.toFixed(2)).join(" ")}, ${gpu.summary.device}`);

async function time(label: string, fn: () => Promise<unknown>): Promise<number> {
  await fn(); // trace / compile / warm-up
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await fn();
  const ms = (performance.now() - t0) / reps;
  console.log(`${label}: ${ms.toFixed(1)} ms`);
  return ms;
}

for (const backend of a.backends!.split(",") as ("onnx" | "webgpu")[]) {
  const B = Number(a["ppo-batch"]);
  const prefix = await compile("prefix", prefixFn(constantPolicy(c, params)), backend).run(obs(B));
  const names = trainableNames(c, true);
  const learner = new Learner(backend, params, parameterShapes(c), [{ names: names.filter((n) => !n.startsWith("value_head")), lr: 1e-5 }, { names: names.filter((n) => n.startsWith("value_head")), lr: 1e-4 }], { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 });
  const steps = Array.from({ length: B }, () => Math.floor(rng.next() * K));
  const h = stepHost(sampler, c.expert_width, steps, steps.map(() => true));
  const feeds: Feeds = { state: obs(B).state! };
  for (const [k, v] of Object.entries(prefix)) feeds[k] = host(v, [B, ...(k === "key_bias" ? [1, 1, d.prefixLen] : k === "pooled" ? [c.width] : [c.heads, d.prefixLen, c.head_dim])]);
  Object.assign(feeds, {
    points: host(f32(B * 2 * c.horizon * 7), [B, 2, c.horizon, 7]),
    step_temb: host(h.temb, [B, c.expert_width]),
    step_a: host(h.a, [B, 1, 1]), step_b: host(h.b, [B, 1, 1]), step_std: host(h.std, [B, 1, 1]), step_explore: host(h.explore, [B, 1, 1]),
    old_log_prob: host(f32(B), [B]), old_value: host(f32(B), [B]), advantages: host(f32(B), [B]), returns: host(f32(B), [B]), weight: host(new Float32Array(B).fill(1), [B]),
  });
  const ppo = compile("ppo", ppoFn(c, sampler, { clipRatioLow: 0.2, clipRatioHigh: 0.2, valueClip: 0.2, huberDelta: 10, entropyBonus: 0 }, false), backend, { spin: true });
  await time(`${backend}: PPO micro-batch of ${B} (forward + backward)`, () => learner.accumulate(ppo, feeds));
  await time(`${backend}: AdamW over ${names.length} expert tensors`, () => learner.update());
  const all = [...parameterShapes(c).keys()];
  const sftLearner = new Learner(backend, params, parameterShapes(c), [{ names: all, lr: 1e-4 }], { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 });
  const Bs = Number(a["sft-batch"]);
  const ts = sampleFlowTimes(Bs, () => rng.next());
  const sft = compile("sft", sftFn(c), backend, { spin: true });
  const sfeeds: Feeds = { ...obs(Bs), actions: host(f32(Bs * c.horizon * 7), [Bs, c.horizon, 7]), noise: host(f32(Bs * c.horizon * 7), [Bs, c.horizon, 7]), t: host(Float32Array.from(ts), [Bs, 1, 1]), temb: host(timeEmbeddings(ts, c.expert_width), [Bs, c.expert_width]) };
  await time(`${backend}: SFT step at batch ${Bs} (whole model, forward + backward + AdamW)`, async () => {
    await sftLearner.accumulate(sft, sfeeds);
    await sftLearner.update();
  });
}
process.exit(0);
