// Renderer throughput on the LIBERO-Spatial scene: images per second for 16 and 64 envs × 2 cameras
// at 128² and 224², with pose upload, GPU drawing and readback timed apart, next to the cost of one
// 20 Hz physics step of the same number of envs on the vectorized env.
import { getGpu } from "../src/engine/device.ts";
import { createLiberoRenderer, posesOfBatch } from "../src/render/libero.ts";
import { VecEnv } from "../src/sim/vec_env.ts";

const REPS = Number(process.env.BENCH_REPS ?? 5);
const ENVS = [16, 64];
const SIZES = [128, 224];

const gpu = await getGpu();
console.log(`device: ${gpu.summary.device || gpu.summary.description} (${gpu.summary.backend}${gpu.summary.isSoftware ? ", software" : ""})`);

// The median, and the best run, which is less disturbed by other processes on a shared machine.
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const best = (xs: number[]) => Math.min(...xs);

for (const n of ENVS) {
  console.error(`bench: ${n} envs, resetting and stepping the vectorized env…`);
  const vec = await VecEnv.create({ numEnvs: n });
  const obs = await vec.reset(Array.from({ length: n }, (_, i) => i % 10));
  const frames = posesOfBatch(obs, n);
  const actions = new Float32Array(n * 7);
  const stepMs: number[] = [];
  for (let r = 0; r < REPS; r++) {
    const t = performance.now();
    await vec.step(actions);
    stepMs.push(performance.now() - t);
  }
  await vec.close();
  console.log(`physics: ${n} envs, one 20 Hz step (25 substeps) on ${vec.numWorkers} workers: median ${median(stepMs).toFixed(1)} ms, best ${best(stepMs).toFixed(1)} ms`);

  for (const size of SIZES) {
    const renderer = await createLiberoRenderer(gpu, size, n);
    await renderer.render(frames); // pipelines compiled, memory touched
    const upload: number[] = [], draw: number[] = [], read: number[] = [], total: number[] = [];
    for (let r = 0; r < REPS; r++) {
      let t = performance.now();
      renderer.upload(frames);
      upload.push(performance.now() - t);
      t = performance.now();
      const encoder = gpu.device.createCommandEncoder();
      renderer.encode(encoder, n);
      gpu.device.queue.submit([encoder.finish()]);
      await gpu.device.queue.onSubmittedWorkDone();
      draw.push(performance.now() - t);
      t = performance.now();
      await renderer.read(n);
      read.push(performance.now() - t);
      t = performance.now();
      await renderer.render(frames);
      total.push(performance.now() - t);
    }
    renderer.destroy();
    const images = 2 * n;
    console.log(
      `render: ${n} envs × 2 cams at ${size}²: median ${((images * 1000) / median(total)).toFixed(0)} images/s, best ${((images * 1000) / best(total)).toFixed(0)} images/s; ` +
        `render() median ${median(total).toFixed(1)} ms = upload ${median(upload).toFixed(2)} ms + draw ${median(draw).toFixed(1)} ms + readback ${median(read).toFixed(2)} ms`,
    );
  }
}
