// RGB bytes on the GPU: packs the renderer's rgba8 texture array into a tight u8 [L, H, W, 3]
// buffer that a WebGPU consumer (the prefix encoder) reads without a round trip through the CPU.

/**
 * Packs an rgba8unorm texture array [L, H, W] into bytes [L, H, W, 3] read as array<u32>: one
 * invocation writes 4 pixels = 12 bytes = 3 words (W must be a multiple of 4).
 */
export const packWgsl = /* wgsl */ `
@group(0) @binding(0) var src: texture_2d_array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;

fn byte(v: f32) -> u32 { return u32(round(clamp(v, 0.0, 1.0) * 255.0)); }

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) id: vec3u) {
  let size = textureDimensions(src);
  let quads = size.x / 4u;
  if (id.x >= quads || id.y >= size.y) { return; }
  var b: array<u32, 12>;
  for (var p = 0u; p < 4u; p++) {
    let c = textureLoad(src, vec2u(4u * id.x + p, id.y), id.z, 0);
    b[3u * p] = byte(c.r);
    b[3u * p + 1u] = byte(c.g);
    b[3u * p + 2u] = byte(c.b);
  }
  let w = ((id.z * size.y + id.y) * quads + id.x) * 3u;
  for (var k = 0u; k < 3u; k++) {
    dst[w + k] = b[4u * k] | (b[4u * k + 1u] << 8u) | (b[4u * k + 2u] << 16u) | (b[4u * k + 3u] << 24u);
  }
}
`;

export class RgbPacker {
  /** u8 [L, H, W, 3] as array<u32>: byte b is (word[b / 4] >> 8·(b % 4)) & 255. */
  readonly buffer: GPUBuffer;
  private readonly pipeline: GPUComputePipeline;
  private readonly bindGroup: GPUBindGroup;

  /** `color`: rgba8unorm [layers, H, W] with TEXTURE_BINDING usage. */
  constructor(device: GPUDevice, color: GPUTexture, private readonly width: number, private readonly height: number, layers: number) {
    this.buffer = device.createBuffer({ size: layers * height * width * 3, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    this.pipeline = device.createComputePipeline({ layout: "auto", compute: { module: device.createShaderModule({ code: packWgsl }), entryPoint: "main" } });
    this.bindGroup = device.createBindGroup({
      layout: this.pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: color.createView({ dimension: "2d-array" }) },
        { binding: 1, resource: { buffer: this.buffer } },
      ],
    });
  }

  /** Packs the first `layers` layers. */
  encode(encoder: GPUCommandEncoder, layers: number): void {
    const pass = encoder.beginComputePass();
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.bindGroup);
    pass.dispatchWorkgroups(Math.ceil(this.width / 32), Math.ceil(this.height / 8), layers);
    pass.end();
  }

  destroy(): void {
    this.buffer.destroy();
  }
}
