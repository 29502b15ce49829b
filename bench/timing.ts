// Timing for the GPU benchmarks: wall and this process's CPU time per call, after a warm-up call,
// repeated for at least `minSeconds`. CPU time stays meaningful when other processes share the cores.
import { sync } from "../src/engine/runtime.ts";
import { Tensor } from "../src/engine/tensor.ts";
import type { Rng } from "../src/util/random.ts";

/** A device tensor of standard normal draws from a CPU stream. */
export const normalTensor = (rng: Rng, shape: number[]) => Tensor.from(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()), shape);

/** Seconds per call of fn: { wall, cpu }. */
export async function timeCall(fn: () => void, minSeconds: number): Promise<{ wall: number; cpu: number }> {
  fn();
  await sync();
  let reps = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  do {
    fn();
    reps++;
    await sync();
  } while (performance.now() - t0 < minSeconds * 1000);
  const c = process.cpuUsage(c0);
  return { wall: (performance.now() - t0) / 1000 / reps, cpu: (c.user + c.system) / 1e6 / reps };
}
