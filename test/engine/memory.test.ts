// A WebGPU training loop of 500 Learner steps allocates nothing after warm-up: pooled buffers,
// uniforms and pipelines stay at their step-20 counts, the bind-group cache within its cap.
import { beforeAll, expect, test } from "bun:test";
import { compile, host } from "../../src/engine/compile.ts";
import { Learner } from "../../src/engine/learner.ts";
import * as op from "../../src/engine/ops.ts";
import { cacheStats, initEngine, MAX_CACHED, poolStats, sync } from "../../src/engine/runtime.ts";
import type { Tensor } from "../../src/engine/tensor.ts";
import { Rng } from "../../src/util/random.ts";

beforeAll(async () => {
  await initEngine();
});

test("500 optimizer steps keep device memory flat", async () => {
  const init = new Rng(1);
  const draw = (n: number, std: number) => Float32Array.from({ length: n }, () => std * init.normal());
  const shapes = new Map<string, number[]>([["fc1.weight", [4, 8]], ["fc1.bias", [8]], ["value_head.weight", [8, 1]], ["value_head.bias", [1]]]);
  const params = new Map([["fc1.weight", draw(32, 0.5)], ["fc1.bias", draw(8, 0.1)], ["value_head.weight", draw(8, 0.35)], ["value_head.bias", draw(1, 0.1)]]);
  const learner = new Learner("webgpu", params, shapes, [{ names: ["fc1.weight", "fc1.bias"], lr: 1e-3 }, { names: ["value_head.weight", "value_head.bias"], lr: 1e-2 }], { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 });
  // A GELU MLP and a value head, linears as the policy writes them (x·W + b), fitting the sum of the inputs.
  const mlp = (t: Record<string, Tensor>) => {
    const linear = (x: Tensor, n: string) => op.add(op.matmul(x, t[`p.${n}.weight`]!), t[`p.${n}.bias`]!);
    return op.mse(linear(op.gelu(linear(t.x!, "fc1")), "value_head"), op.sum(t.x!, 1, true));
  };
  const program = compile("mlp", (t) => {
    for (const [k, v] of Object.entries(t)) if (k.startsWith("p.")) v.requiresGrad = true;
    const loss = mlp(t);
    op.backward(loss);
    return Object.fromEntries([["loss", loss], ...[...shapes.keys()].map((n) => [`g.${n}`, t[`p.${n}`]!.grad!])]);
  }, "webgpu");
  const rng = new Rng(5);
  const step = async (B = 6) => {
    const out = await learner.accumulate(program, { x: host(Float32Array.from({ length: B * 4 }, () => rng.normal()), [B, 4]) });
    await learner.update();
    return out.loss![0]!;
  };
  // Warm-up takes both batch sizes, so every buffer size the loop needs is in the pool.
  for (let i = 0; i < 19; i++) await step();
  const first = await step(64);
  await sync();
  const warm = { ...poolStats, ...cacheStats() };
  for (let i = 20; i < 499; i++) await step();
  const last = await step(64);
  await sync();
  const end = { ...poolStats, ...cacheStats() };
  expect(end.created, `buffers created: ${warm.created} at step 20, ${end.created} at step 500`).toBe(warm.created);
  expect(end.live, "live buffers").toBe(warm.live);
  expect({ uniforms: end.uniforms, pipelines: end.pipelines }).toEqual({ uniforms: warm.uniforms, pipelines: warm.pipelines });
  // Inputs are uploaded into pooled buffers each step, in whichever order the pool hands them out, so
  // new buffer combinations add bind groups to the cache; the cache is capped, not a leak.
  expect(end.bindGroups).toBeLessThanOrEqual(MAX_CACHED);
  // The loop really trained: the sum of 4 inputs is easy to fit.
  expect(last, `mse ${first} at step 20, ${last} at step 500`).toBeLessThan(first / 2);
  await learner.release();
  await program.release();
}, 120_000);
