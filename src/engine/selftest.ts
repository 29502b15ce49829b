// Render-to-texture self-test: draws a known triangle over a cleared target with a depth buffer and
// reads the pixels back. Proves the render pipeline path the camera renderer relies on.
import type { Gpu } from "./device.ts";

export async function renderToTextureCheck(gpu: Gpu): Promise<{ ok: boolean; detail: string }> {
  const { device } = gpu;
  const W = 32;
  const H = 32;
  const module = device.createShaderModule({
    code: /* wgsl */ `
@vertex fn vs(@builtin(vertex_index) i: u32) -> @builtin(position) vec4f {
  // A triangle covering the lower-left half of clip space, at depth 0.5.
  var p = array<vec2f, 3>(vec2f(-1.0, -1.0), vec2f(1.0, -1.0), vec2f(-1.0, 1.0));
  return vec4f(p[i], 0.5, 1.0);
}
@fragment fn fs() -> @location(0) vec4f { return vec4f(1.0, 0.5, 0.0, 1.0); }`,
  });
  const pipeline = device.createRenderPipeline({
    layout: "auto",
    vertex: { module, entryPoint: "vs" },
    fragment: { module, entryPoint: "fs", targets: [{ format: "rgba8unorm" }] },
    primitive: { topology: "triangle-list" },
    depthStencil: { format: "depth24plus", depthWriteEnabled: true, depthCompare: "less" },
  });
  const color = device.createTexture({ size: [W, H], format: "rgba8unorm", usage: GPUTextureUsage.RENDER_ATTACHMENT | GPUTextureUsage.COPY_SRC });
  const depth = device.createTexture({ size: [W, H], format: "depth24plus", usage: GPUTextureUsage.RENDER_ATTACHMENT });
  const bytesPerRow = 256; // W * 4 = 128, padded to WebGPU's 256-byte row alignment
  const read = device.createBuffer({ size: bytesPerRow * H, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  const pass = enc.beginRenderPass({
    colorAttachments: [{ view: color.createView(), clearValue: { r: 0, g: 0, b: 1, a: 1 }, loadOp: "clear", storeOp: "store" }],
    depthStencilAttachment: { view: depth.createView(), depthClearValue: 1, depthLoadOp: "clear", depthStoreOp: "store" },
  });
  pass.setPipeline(pipeline);
  pass.draw(3);
  pass.end();
  enc.copyTextureToBuffer({ texture: color }, { buffer: read, bytesPerRow, rowsPerImage: H }, [W, H]);
  device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const px = new Uint8Array(read.getMappedRange().slice(0));
  read.unmap();
  read.destroy();
  color.destroy();
  depth.destroy();
  gpu.check();
  // Texture row 0 is the top of the image: clip-space y = +1. The triangle fills the lower left.
  const at = (x: number, y: number) => Array.from(px.subarray(y * bytesPerRow + x * 4, y * bytesPerRow + x * 4 + 4));
  const inside = at(4, H - 5); // lower left: triangle
  const outside = at(W - 5, 4); // upper right: clear colour
  const okIn = inside[0] === 255 && Math.abs(inside[1]! - 128) <= 1 && inside[2] === 0;
  const okOut = outside[0] === 0 && outside[1] === 0 && outside[2] === 255;
  return {
    ok: okIn && okOut,
    detail: okIn && okOut ? `${W}×${H} rgba8 target, triangle and clear colour exact` : `triangle pixel ${inside}, background pixel ${outside}`,
  };
}
