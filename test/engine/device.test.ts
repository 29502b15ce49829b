// WebGPU bring-up: a real adapter computes known answers; Dawn's null backend is refused with the fix.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { getGpu, knownAnswerCheck, openSeparateDevice } from "../../src/engine/device.ts";
import { renderToTextureCheck } from "../../src/engine/selftest.ts";

// GPU work on SwiftShader (and child processes) can exceed bun's 5 s default on a busy 2-core machine.
setDefaultTimeout(60_000);

const root = join(import.meta.dir, "..", "..");

describe("WebGPU bring-up", () => {
  test("the adapter is real and passes the known-answer kernel", async () => {
    const gpu = await getGpu();
    expect(gpu.summary.device).not.toBe("null-backend");
    const r = await knownAnswerCheck(gpu.device);
    expect(r.detail).toContain("exact");
    expect(r.ok).toBe(true);
  });

  test("render-to-texture gives the expected pixels", async () => {
    const r = await renderToTextureCheck(await getGpu());
    expect(r.detail).toContain("exact");
    expect(r.ok).toBe(true);
  });

  test("a device error surfaces through check()", async () => {
    const shared = await getGpu();
    // Its own device, so the provoked error does not poison the shared one other tests use.
    const gpu = await openSeparateDevice();
    expect(() => gpu.check()).not.toThrow();
    // A storage binding larger than the buffer is a validation error, reported asynchronously.
    const buf = gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
    const module = gpu.device.createShaderModule({ code: "@group(0) @binding(0) var<storage, read_write> x: array<f32>; @compute @workgroup_size(1) fn main() { x[0] = 1.0; }" });
    const pipeline = gpu.device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
    gpu.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf, offset: 0, size: 64 } }] });
    await gpu.device.queue.onSubmittedWorkDone();
    await Bun.sleep(50);
    expect(() => gpu.check()).toThrow(/WebGPU device error/);
    expect(() => shared.check()).not.toThrow();
    gpu.device.destroy();
  });

  test("a machine without a usable Vulkan driver is refused with the fix in the message", () => {
    // A child process, because the Vulkan loader reads the driver list once per process.
    const proc = Bun.spawnSync([process.execPath, join(root, "src/cli.ts"), "doctor"], {
      env: { ...process.env, VK_ICD_FILENAMES: "/nonexistent/icd.json" },
      cwd: root,
    });
    const err = proc.stderr.toString();
    const out = proc.stdout.toString();
    expect(proc.exitCode).toBe(1);
    expect(out).toMatch(/FAIL webgpu adapter .*null-backend.*computes nothing/);
    expect(out).toContain("apt-get install -y chromium libvulkan1");
    expect(err).toContain("dexrl: doctor found 1 failing check: webgpu adapter.");
  });
});
