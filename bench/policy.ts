// Benchmark: one rollout policy call — the compiled sampler (prefix, K = 4 denoising steps with one
// flow-SDE step, log-prob and value; model/programs.ts samplerFn) — on WebGPU and traced into ONNX
// Runtime, at the default model size for batch 1, 16 and 64; on ONNX Runtime also with the prefix
// outputs PPO stores (withPrefix). Run: .tools/bin/bun bench/policy.ts
import { loadavg } from "node:os";
import { type Backend, compile, type Feeds, host } from "../src/engine/compile.ts";
import { initEngine } from "../src/engine/runtime.ts";
import { DEFAULT_MODEL, initParameters, parameterShapes, type ModelConfig } from "../src/model/config.ts";
import { Policy } from "../src/model/policy.ts";
import { constantPolicy, samplerFn } from "../src/model/programs.ts";
import { type SamplerConfig, stepHost } from "../src/model/sampler.ts";
import { machineSummary } from "../src/util/machine.ts";
import { Rng } from "../src/util/random.ts";

const gpu = await initEngine();
const c: ModelConfig = { ...DEFAULT_MODEL, vocab_size: 400 };
const rng = new Rng(7);
const params = initParameters(c, () => rng.normal());
const K = 4;
const sc: SamplerConfig = { numSteps: K, method: "flow_sde", noiseLevel: 0.5, chunk: 5, envDim: 7, jointLogprob: false, detachCritic: true };
const device = Policy.fromArrays(c, params, false);
const count = [...parameterShapes(c).values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
console.log(`machine: ${machineSummary()}, load ${loadavg()[0]!.toFixed(1)}; adapter ${gpu.summary.vendor} ${gpu.summary.device} (${gpu.summary.backend}${gpu.summary.isSoftware ? ", software" : ""})`);
console.log(`model: ${(count / 1e6).toFixed(3)} M parameters; ${c.num_images} views of ${c.image_size}², ${c.max_text_len} text tokens, horizon ${c.horizon}, K = ${K}`);

function feeds(B: number): Feeds {
  const HA = c.horizon * c.action_dim;
  const h = stepHost(sc, c.expert_width, [0, 1, 2, 3], [false, false, true, false]);
  return {
    images: host(Uint8Array.from({ length: B * c.num_images * c.image_size ** 2 * 3 }, (_, i) => (i * 31) % 251), [B, c.num_images, c.image_size, c.image_size, 3]),
    tokens: host(Int32Array.from({ length: B * c.max_text_len }, (_, i) => (i % c.max_text_len < 12 ? 10 + (i % 7) : 0)), [B, c.max_text_len]),
    token_mask: host(Float32Array.from({ length: B * c.max_text_len }, (_, i) => (i % c.max_text_len < 12 ? 1 : 0)), [B, c.max_text_len]),
    state: host(Float32Array.from({ length: B * c.state_dim }, (_, i) => Math.sin(i)), [B, c.state_dim]),
    noise: host(Float32Array.from({ length: B * HA }, () => rng.normal()), [B, c.horizon, c.action_dim]),
    eps: host(Float32Array.from({ length: K * B * HA }, () => rng.normal()), [K, B, c.horizon, c.action_dim]),
    step_a: host(h.a, [K]),
    step_b: host(h.b, [K]),
    step_std: host(h.std, [K]),
    step_explore: host(h.explore, [K]),
  };
}

console.log("\n| batch | WebGPU first call | WebGPU per call | ONNX Runtime first call (trace + session) | ONNX Runtime per call | ONNX Runtime per call, withPrefix |\n|---|---|---|---|---|---|");
for (const B of [1, 16, 64]) {
  const f = feeds(B);
  const cells: string[] = [];
  const runs: [Backend, boolean][] = [["webgpu", false], ["onnx", false], ["onnx", true]];
  for (const [backend, withPrefix] of runs) {
    // As PolicyRunner builds it: weights uploaded once on WebGPU, constants of the trace on ONNX.
    const program = compile("dexrl_sampler", samplerFn(backend === "webgpu" ? () => device : constantPolicy(c, params), sc, withPrefix), backend);
    let t0 = performance.now();
    await program.run(f);
    if (!withPrefix) cells.push(`${(performance.now() - t0).toFixed(0)} ms`);
    const reps = B === 64 ? 3 : 10;
    t0 = performance.now();
    for (let i = 0; i < reps; i++) await program.run(f);
    cells.push(`${((performance.now() - t0) / reps).toFixed(1)} ms`);
    await program.release();
  }
  console.log(`| ${B} | ${cells.join(" | ")} |`);
}
process.exit(0);
