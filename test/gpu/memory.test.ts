// A training loop of 2,000 AdamW steps allocates nothing after warm-up: pooled buffers, uniforms,
// bind groups and pipelines all stay at their step-50 counts.
import { beforeAll, expect, test } from "bun:test";
import { backward } from "../../src/gpu/autograd.ts";
import { Linear, ParamStore } from "../../src/gpu/nn.ts";
import * as op from "../../src/gpu/ops.ts";
import { AdamW } from "../../src/gpu/optim.ts";
import { Rng } from "../../src/gpu/random.ts";
import { cacheStats, initEngine, poolStats, sync } from "../../src/gpu/runtime.ts";
import { scope } from "../../src/gpu/tensor.ts";

beforeAll(async () => {
  await initEngine();
});

test("2,000 optimizer steps keep device memory flat", async () => {
  const store = new ParamStore(1);
  const fc1 = new Linear(store, "fc1", 4, 8);
  const head = new Linear(store, "value_head", 8, 1);
  const opt = new AdamW([{ params: store.trainable("fc1"), lr: 1e-3 }, { params: store.trainable("value_head"), lr: 1e-2 }], { maxGradNorm: 1 });
  const rng = new Rng(5);
  const step = () =>
    scope(() => {
      const x = rng.normal([6, 4]);
      const target = op.sum(x, 1, true);
      backward(op.mse(head.forward(op.gelu(fc1.forward(x))), target));
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
    return op.mse(head.forward(op.gelu(fc1.forward(x))), op.sum(x, 1, true));
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
  store.dispose();
}, 60_000);
