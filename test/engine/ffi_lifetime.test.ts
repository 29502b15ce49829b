// bun-webgpu 0.1.7 packs a descriptor's nested arrays and structs into buffers that only their
// addresses point to; a garbage collection before Dawn reads them handed Dawn freed memory
// ("Unexpected chained struct … on RenderPassColorAttachment chain", which once ended a PPO run).
// patches/bun-webgpu@0.1.7.patch ties each to the descriptor that points at it. Here a full
// collection and fresh allocations run inside every beginRenderPass call, just before Dawn reads
// the descriptor; likewise inside createShaderModule, whose WGSL text was freed ("invalid UTF-8").
import { expect, test } from "bun:test";
import { openSeparateDevice } from "../../src/engine/device.ts";

type FfiHolder = { lib: Record<string, (...a: unknown[]) => unknown> };

/**
 * Makes `holder.lib[name]` run a full collection and fresh allocations (which reuse what the
 * collection freed) just before the real FFI call; returns how many allocations the last call made.
 */
function collectInside(holder: FfiHolder, name: string): () => number {
  const call = holder.lib[name]!;
  let junk: Uint8Array[] = [];
  holder.lib = {
    ...holder.lib,
    [name]: (...a: unknown[]) => {
      Bun.gc(true);
      junk = Array.from({ length: 200 }, () => new Uint8Array(64).fill(0xab));
      return call(...a);
    },
  };
  return () => junk.length;
}

test("render pass descriptors survive a garbage collection inside the call", async () => {
  const gpu = await openSeparateDevice();
  const { device } = gpu;
  const color = device.createTexture({ size: [8, 8, 1], format: "rgba8unorm", usage: GPUTextureUsage.RENDER_ATTACHMENT });
  const depth = device.createTexture({ size: [8, 8, 1], format: "depth32float", usage: GPUTextureUsage.RENDER_ATTACHMENT });
  const [cv, dv] = [color.createView(), depth.createView()];
  const encoder = device.createCommandEncoder() as GPUCommandEncoder & FfiHolder;
  const allocated = collectInside(encoder, "wgpuCommandEncoderBeginRenderPass");
  for (let i = 0; i < 50; i++) {
    const pass = encoder.beginRenderPass({
      colorAttachments: [{ view: cv, clearValue: [0, 0, 0, 1], loadOp: "clear", storeOp: "store" }],
      depthStencilAttachment: { view: dv, depthClearValue: 1, depthLoadOp: "clear", depthStoreOp: "discard" },
    });
    pass.end();
  }
  device.queue.submit([encoder.finish()]);
  await device.queue.onSubmittedWorkDone();
  expect(allocated()).toBe(200);
  expect(() => gpu.check()).not.toThrow();
  device.destroy();
});

test("shader code survives a garbage collection inside createShaderModule", async () => {
  // The WGSL text is packed as a string view whose bytes only its address points to.
  const gpu = await openSeparateDevice();
  const { device } = gpu;
  const allocated = collectInside(device as unknown as FfiHolder, "wgpuDeviceCreateShaderModule");
  for (let i = 0; i < 50; i++) device.createShaderModule({ code: `@compute @workgroup_size(1) fn main() { let x${i} = ${i}u; }` });
  await device.queue.onSubmittedWorkDone();
  expect(allocated()).toBe(200);
  expect(() => gpu.check()).not.toThrow();
  device.destroy();
});
