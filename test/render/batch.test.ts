// Batching: env i of a batch is byte-for-byte env i rendered alone. Resources: 1,000 batches
// create no GPU objects and do not grow memory (SwiftShader's GPU memory is this process's memory).
import { afterAll, expect, test } from "bun:test";
import { getGpu, readBuffer } from "../../src/engine/device.ts";
import { extractRenderModel } from "../../src/render/model.ts";
import { BatchRenderer, framePoses, type FramePoses } from "../../src/render/renderer.ts";
import { compile } from "./scenes.ts";

const gpu = await getGpu();
// Every primitive type, objects on free joints, and a camera riding a hinged arm.
const { mj, m, d } = await compile(`<mujoco><worldbody>
  <light pos="1 1 3" dir="-0.3 -0.3 -1" directional="true"/>
  <light pos="-1 0 2" dir="0.5 0 -1" cutoff="60"/>
  <geom type="plane" size="2 2 0.1" rgba="0.3 0.5 0.3 1"/>
  <camera name="fixed" pos="0 -2.5 1.5" xyaxes="1 0 0 0 0.5 0.87"/>
  <body name="arm" pos="0 0 1.2">
    <joint type="hinge" axis="0 0 1"/>
    <geom type="capsule" fromto="0 0 0 0.4 0 0" size="0.04" rgba="0.9 0.9 0.9 1"/>
    <camera name="wrist" pos="0.4 0 0" xyaxes="0 1 0 -1 0 0" fovy="75"/>
  </body>
  <body name="a"><freejoint/><geom type="box" size="0.1 0.15 0.1" rgba="0.8 0.2 0.2 1"/></body>
  <body name="b"><freejoint/><geom type="sphere" size="0.12" rgba="0.2 0.2 0.8 1"/></body>
  <body name="c"><freejoint/><geom type="cylinder" size="0.1 0.1" rgba="0.2 0.8 0.8 1"/>
    <geom type="ellipsoid" pos="0 0 0.15" size="0.1 0.05 0.05" rgba="0.8 0.2 0.8 1"/></body>
</worldbody></mujoco>`);
const model = extractRenderModel(mj, m, { cameras: ["fixed", "wrist"] });
afterAll(() => {
  d.delete();
  m.delete();
});

/** Deterministic pseudo-random poses: objects scattered and tilted, the arm turned. */
function randomFrames(n: number, seed: number): FramePoses[] {
  let s = seed;
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  return Array.from({ length: n }, () => {
    d.qpos[0] = Math.PI * rand();
    for (let b = 0; b < 3; b++) {
      const q = [rand(), rand(), rand(), rand()];
      const len = Math.hypot(...q);
      d.qpos.set([0.6 * rand(), 0.6 * rand(), 0.3 + 0.2 * rand(), ...q.map((v) => v / len)], 1 + 7 * b);
    }
    mj.mj_forward(m, d);
    return framePoses(d);
  });
}

for (const samples of [1, 4] as const) {
  test(`env i of a batch of 16 equals env i rendered alone, byte for byte (${samples} sample(s) per pixel)`, async () => {
    const [W, H] = [64, 64];
    const frames = randomFrames(16, 7);
    const batch = new BatchRenderer(gpu, model, { maxEnvs: 16, width: W, height: H, samples });
    const single = new BatchRenderer(gpu, model, { maxEnvs: 1, width: W, height: H, samples });
    try {
      const all = await batch.render(frames);
      const perEnv = 2 * batch.imageBytes;
      expect(all.length).toBe(16 * perEnv);
      for (let i = 0; i < 16; i++) {
        const alone = await single.render([frames[i]!]);
        const inBatch = all.subarray(i * perEnv, (i + 1) * perEnv);
        expect(Buffer.compare(alone, inBatch), `env ${i} differs`).toBe(0);
      }
      // The GPU-resident output (for a WebGPU prefix encoder) holds the same bytes.
      const onGpu = batch.renderToGpu(frames);
      expect(Buffer.compare(new Uint8Array(await readBuffer(gpu, onGpu, all.length)), all)).toBe(0);
      // The comparison means something only if the envs look different and are not empty.
      const env0 = all.subarray(0, perEnv), env1 = all.subarray(perEnv, 2 * perEnv);
      expect(Buffer.compare(env0, env1)).not.toBe(0);
      expect(env0.filter((v) => v > 0).length).toBeGreaterThan(perEnv / 4);
    } finally {
      batch.destroy();
      single.destroy();
    }
  }, 60_000);
}

test("odd sizes: padded readback rows and the GPU packing agree byte for byte", async () => {
  // 36 px rows are 144 bytes of RGBA, padded to 256 for the copy; 36 is not a multiple of the
  // packing kernel's 32-pixel workgroup either.
  const renderer = new BatchRenderer(gpu, model, { maxEnvs: 3, width: 36, height: 20 });
  try {
    const frames = randomFrames(3, 5);
    const cpu = await renderer.render(frames);
    expect(cpu.length).toBe(3 * 2 * 20 * 36 * 3);
    const onGpu = renderer.renderToGpu(frames);
    expect(Buffer.compare(new Uint8Array(await readBuffer(gpu, onGpu, cpu.length)), cpu)).toBe(0);
    expect(cpu.filter((v) => v > 0).length).toBeGreaterThan(cpu.length / 4);
  } finally {
    renderer.destroy();
  }
}, 60_000);

test("1,000 batches reuse their buffers and textures", async () => {
  // Few layers keep the test short (a render pass costs milliseconds on a busy SwiftShader) while a
  // batch still moves 2 × 2 × 64 × 64 × 3 = 48 KiB, so a per-batch leak would show in memory.
  const renderer = new BatchRenderer(gpu, model, { maxEnvs: 2, width: 64, height: 64, samples: 4 });
  const frames = randomFrames(2, 11);
  const device = gpu.device as unknown as Record<string, unknown>;
  const created: string[] = [];
  const methods = ["createBuffer", "createTexture", "createBindGroup", "createShaderModule", "createRenderPipeline", "createComputePipeline"];
  const originals = methods.map((k) => device[k]);
  try {
    const first = await renderer.render(frames);
    methods.forEach((k, i) => {
      const original = originals[i] as (...a: unknown[]) => unknown;
      device[k] = (...args: unknown[]) => {
        created.push(k);
        return original.apply(gpu.device, args);
      };
    });
    let last = first;
    // The first 100 batches let the JS heap and the driver's pools reach their steady size.
    for (let b = 1; b < 100; b++) last = await renderer.render(frames);
    // Resident memory after a collection every 100 batches. One reading moves by up to ~16 MiB either
    // way as the allocator keeps or returns pages (more so late in the full suite), so the check is
    // the least-squares slope of the 10 readings, not the last minus the first.
    const rssMiB: number[] = [];
    for (let b = 100; b <= 1000; b++) {
      if (b % 100 === 0) {
        Bun.gc(true);
        rssMiB.push(process.memoryUsage().rss / 2 ** 20);
      }
      if (b < 1000) last = await renderer.render(frames);
    }
    const n = rssMiB.length;
    const xMean = (n - 1) / 2;
    const yMean = rssMiB.reduce((a, y) => a + y, 0) / n;
    const slope = rssMiB.reduce((a, y, i) => a + (i - xMean) * (y - yMean), 0) / rssMiB.reduce((a, _, i) => a + (i - xMean) ** 2, 0);
    methods.forEach((k, i) => (device[k] = originals[i]));
    expect(created, "GPU objects created while rendering").toEqual([]);
    expect(Buffer.compare(first, last)).toBe(0);
    // One leaked readback buffer per batch alone would be 100 × 48 KiB ≈ 4.7 MiB per 100 batches.
    const readings = rssMiB.map((y) => y.toFixed(1)).join(", ");
    expect(slope, `resident memory grows ${slope.toFixed(2)} MiB per 100 batches (${readings} MiB)`).toBeLessThan(2.4);
  } finally {
    methods.forEach((k, i) => (device[k] = originals[i]));
    renderer.destroy();
  }
}, 120_000);
