// A training loop of 2,000 AdamW steps allocates nothing after warm-up: pooled buffers, uniforms,
// bind groups and pipelines all stay at their step-50 counts.
import { beforeAll, expect, test } from "bun:test";
import { backward } from "../../src/gpu/autograd.ts";
import * as op from "../../src/gpu/ops.ts";
import { AdamW } from "../../src/gpu/optim.ts";
import { Rng } from "../../src/gpu/random.ts";
import { cacheStats, initEngine, poolStats, sync } from "../../src/gpu/runtime.ts";
import { Tensor, keep, scope } from "../../src/gpu/tensor.ts";

beforeAll(async () => {
  await initEngine();
});

test("2,000 optimizer steps keep device memory flat", async () => {
  const init = new Rng(1);
  const trainable = (shape: number[], std: number) => {
    const z = init.normal(shape);
    const t = keep(op.noGrad(() => op.scale(z, std)));
    z.dispose();
    t.requiresGrad = true;
    return t;
  };
  // A GELU MLP and a value head, linears as the policy writes them (x·W + b).
  const fc1 = { weight: trainable([4, 8], 0.5), bias: trainable([8], 0.1) };
  const head = { weight: trainable([8, 1], 0.35), bias: trainable([1], 0.1) };
  const linear = (x: Tensor, l: typeof fc1) => op.add(op.matmul(x, l.weight), l.bias);
  const opt = new AdamW([{ params: [["fc1.weight", fc1.weight], ["fc1.bias", fc1.bias]], lr: 1e-3 }, { params: [["value_head.weight", head.weight], ["value_head.bias", head.bias]], lr: 1e-2 }], { maxGradNorm: 1 });
  const rng = new Rng(5);
  const step = () =>
    scope(() => {
      const x = rng.normal([6, 4]);
      const target = op.sum(x, 1, true);
      backward(op.mse(linear(op.gelu(linear(x, fc1)), head), target));
      opt.update();
      opt.zeroGrad();
    });
  for (let i = 0; i < 50; i++) step();
  await sync();
  const warm = { ...poolStats, ...cacheStats() };
  for (let i = 50; i < 2000; i++) step();
  await sync();
  const end = { ...poolStats, ...cacheStats() };
  const lossAfter = await scope(() => {
    const x = rng.normal([64, 4]);
    return op.mse(linear(op.gelu(linear(x, fc1)), head), op.sum(x, 1, true));
  }).item();
  expect(end.created, `buffers created: ${warm.created} at step 50, ${end.created} at step 2000`).toBe(warm.created);
  expect(end.createdBytes).toBe(warm.createdBytes);
  expect(end.live, "live buffers").toBe(warm.live);
  expect({ uniforms: end.uniforms, bindGroups: end.bindGroups, pipelines: end.pipelines }).toEqual({
    uniforms: warm.uniforms,
    bindGroups: warm.bindGroups,
    pipelines: warm.pipelines,
  });
  // The loop really trained: the sum of 4 inputs is easy to fit.
  expect(lossAfter, `mse after 2,000 steps: ${lossAfter}`).toBeLessThan(0.5);
  opt.dispose();
  for (const t of [fc1.weight, fc1.bias, head.weight, head.bias]) t.dispose();
}, 60_000);
