// Batched WebGPU renderer: every env × every camera of a step in one command submission, into an
// rgba8unorm texture array, read back once as RGB bytes [N_env, N_cam, H, W, 3] or packed on the GPU
// (upright: row 0 is the top of the image, column 0 its left; LIBERO's 180° flip is NOT applied,
// anywhere in dexrl).
import { DexrlError, usageError } from "../errors.ts";
import type { Gpu } from "../engine/device.ts";
import { type RenderModel, VERTEX_BYTES } from "./model.ts";
import { DrawLists, type Projection } from "./cull.ts";
import { RgbPacker } from "./pack.ts";
import { MAX_CAMERAS, rasterWgsl } from "./shaders.ts";

/** The world poses of one env at one instant, as MjData holds them or the vectorized env copies them. */
export interface FramePoses {
  geom_xpos: ArrayLike<number>; // [ngeom, 3]
  geom_xmat: ArrayLike<number>; // [ngeom, 9] row-major, local → world
  cam_xpos: ArrayLike<number>; // [ncam, 3]
  cam_xmat: ArrayLike<number>; // [ncam, 9]
}

/** Copies the poses out of MjData (its arrays are views into wasm memory that may move). */
export function framePoses(d: FramePoses): FramePoses {
  return {
    geom_xpos: Float32Array.from(d.geom_xpos),
    geom_xmat: Float32Array.from(d.geom_xmat),
    cam_xpos: Float32Array.from(d.cam_xpos),
    cam_xmat: Float32Array.from(d.cam_xmat),
  };
}

export interface RendererOptions {
  maxEnvs: number; // batch capacity
  width: number; // multiple of 4
  height: number;
  /** Multisampling: 1 (none) or 4, MuJoCo's default (vis.quality.offsamples). */
  samples?: 1 | 4;
}

const UNIFORM_ALIGN = 256; // minUniformBufferOffsetAlignment on every adapter
const SCENE_FLOATS = 4 + MAX_CAMERAS * 4; // Scene in the WGSL: nslot padded to 16 bytes, cams

export class BatchRenderer {
  readonly nCam: number;
  readonly width: number;
  readonly height: number;
  readonly maxEnvs: number;
  /** Bytes of one image, H·W·3; env e's camera c starts at (e·N_cam + c)·imageBytes. */
  readonly imageBytes: number;
  private readonly device: GPUDevice;
  private readonly slots: number; // S: drawn geoms
  private readonly poseBytes: number; // one env's poses: (S + N_cam)·3 rows of vec4f
  private readonly poseStride: number; // poseBytes rounded up to the uniform offset alignment
  private readonly poseStaging: Float32Array; // [maxEnvs, poseStride / 4]: [S + N_cam, 3, 4] each
  private readonly poseBuffer: GPUBuffer;
  private readonly color: GPUTexture; // rgba8unorm [maxEnvs·N_cam layers, H, W]
  private readonly layerViews: GPUTextureView[];
  private readonly depthView: GPUTextureView; // depth24plus [H, W], shared: layers are drawn in turn
  private readonly msaaView?: GPUTextureView; // rgba8unorm [H, W] × samples
  // rgba8unorm [H, W]: the multisample resolve, copied into the layer afterwards (resolving straight
  // into a layer of the array gave sheared images on SwiftShader).
  private readonly resolved?: GPUTexture;
  private readonly resolvedView?: GPUTextureView;
  private readonly rowPitch: number; // bytes per texture row in `readback`: W·4 rounded up to 256
  private readonly readback: GPUBuffer; // MAP_READ u8 [maxEnvs·N_cam, H, rowPitch], RGBA
  private packer?: RgbPacker; // made on the first renderToGpu
  private readonly pipeline: GPURenderPipeline;
  private readonly bindGroup: GPUBindGroup;
  private readonly vertexBuffer: GPUBuffer;
  private readonly indexBuffer: GPUBuffer;
  private readonly owned: (GPUBuffer | GPUTexture)[] = [];
  private readonly projections: Projection[]; // [N_cam]
  private readonly drawLists: DrawLists; // what each layer draws, from the last upload

  constructor(
    private readonly gpu: Gpu,
    private readonly model: RenderModel,
    opts: RendererOptions,
  ) {
    const { maxEnvs, width, height } = opts;
    const samples = opts.samples ?? 1;
    if (samples !== 1 && samples !== 4) throw usageError(`Multisampling takes 1 or 4 samples, not ${samples}.`);
    const limits = gpu.device.limits;
    this.device = gpu.device;
    this.nCam = model.cameras.length;
    if (this.nCam < 1 || this.nCam > MAX_CAMERAS) throw usageError(`Render 1 to ${MAX_CAMERAS} cameras, not ${this.nCam}.`);
    if (width % 4 !== 0 || width < 4 || height < 1) throw usageError(`Image width must be a positive multiple of 4 (got ${width}×${height}).`);
    if (width > limits.maxTextureDimension2D || height > limits.maxTextureDimension2D)
      throw usageError(`Images of ${width}×${height} exceed the GPU's ${limits.maxTextureDimension2D}-pixel limit.`);
    const layers = maxEnvs * this.nCam;
    if (maxEnvs < 1 || layers > limits.maxTextureArrayLayers)
      throw usageError(`${maxEnvs} envs × ${this.nCam} cameras needs ${layers} texture layers; this GPU allows 1 to ${limits.maxTextureArrayLayers}.`);
    this.maxEnvs = maxEnvs;
    this.width = width;
    this.height = height;
    this.imageBytes = width * height * 3;
    this.slots = model.geomIds.length;
    this.poseBytes = (this.slots + this.nCam) * 48;
    this.poseStride = Math.ceil(this.poseBytes / UNIFORM_ALIGN) * UNIFORM_ALIGN;
    if (this.poseBytes > limits.maxUniformBufferBindingSize)
      throw new DexrlError(`The scene has ${this.slots} visible geoms; the renderer holds at most ${Math.floor(limits.maxUniformBufferBindingSize / 48) - this.nCam}.`);

    const aspect = width / height;
    this.projections = model.cameras.map((c) => {
      const ky = 1 / Math.tan((c.fovy * Math.PI) / 360);
      return { kx: ky / aspect, ky, near: model.znear, far: model.zfar };
    });
    this.drawLists = new DrawLists(layers, model);

    const buffer = (size: number, usage: number) => this.own(this.device.createBuffer({ size, usage }));
    const texture = (d: GPUTextureDescriptor) => this.own(this.device.createTexture(d));

    this.vertexBuffer = buffer(model.vertices.byteLength, GPUBufferUsage.VERTEX | GPUBufferUsage.COPY_DST);
    this.device.queue.writeBuffer(this.vertexBuffer, 0, model.vertices);
    this.indexBuffer = buffer(model.indices.byteLength, GPUBufferUsage.INDEX | GPUBufferUsage.COPY_DST);
    this.device.queue.writeBuffer(this.indexBuffer, 0, model.indices);

    this.poseStaging = new Float32Array((maxEnvs * this.poseStride) / 4);
    this.poseBuffer = buffer(maxEnvs * this.poseStride, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    this.color = texture({
      size: [width, height, layers],
      format: "rgba8unorm",
      usage: GPUTextureUsage.RENDER_ATTACHMENT | GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_SRC | GPUTextureUsage.COPY_DST,
    });
    this.layerViews = Array.from({ length: layers }, (_, l) =>
      this.color.createView({ dimension: "2d", baseArrayLayer: l, arrayLayerCount: 1 }),
    );
    this.depthView = texture({ size: [width, height], format: "depth24plus", sampleCount: samples, usage: GPUTextureUsage.RENDER_ATTACHMENT }).createView();
    if (samples > 1) {
      this.msaaView = texture({ size: [width, height], format: "rgba8unorm", sampleCount: samples, usage: GPUTextureUsage.RENDER_ATTACHMENT }).createView();
      this.resolved = texture({ size: [width, height], format: "rgba8unorm", usage: GPUTextureUsage.RENDER_ATTACHMENT | GPUTextureUsage.COPY_SRC });
      this.resolvedView = this.resolved.createView();
    }
    this.rowPitch = Math.ceil((width * 4) / 256) * 256; // copyTextureToBuffer's row alignment
    this.readback = buffer(layers * height * this.rowPitch, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);

    const sceneUniform = buffer(SCENE_FLOATS * 4, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    this.device.queue.writeBuffer(sceneUniform, 0, this.sceneData());
    // Layer l = env·N_cam + cam: which camera it draws (the env is chosen by the pose offset). Written once.
    const layerUniform = buffer(layers * UNIFORM_ALIGN, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    const layerData = new Uint32Array((layers * UNIFORM_ALIGN) / 4);
    for (let l = 0; l < layers; l++) layerData[(l * UNIFORM_ALIGN) / 4] = l % this.nCam;
    this.device.queue.writeBuffer(layerUniform, 0, layerData);

    const module = this.device.createShaderModule({ code: rasterWgsl(model) });
    const bindLayout = this.device.createBindGroupLayout({
      entries: [
        { binding: 0, visibility: GPUShaderStage.VERTEX, buffer: { type: "uniform", hasDynamicOffset: true } },
        { binding: 1, visibility: GPUShaderStage.VERTEX, buffer: { type: "uniform" } },
        { binding: 2, visibility: GPUShaderStage.VERTEX, buffer: { type: "uniform", hasDynamicOffset: true } },
      ],
    });
    this.pipeline = this.device.createRenderPipeline({
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [bindLayout] }),
      vertex: {
        module,
        entryPoint: "vs",
        buffers: [
          {
            arrayStride: VERTEX_BYTES,
            attributes: [
              { shaderLocation: 0, offset: 0, format: "float32x3" },
              { shaderLocation: 1, offset: 12, format: "float32x3" },
              { shaderLocation: 2, offset: 24, format: "uint32" },
              { shaderLocation: 3, offset: 28, format: "unorm8x4" },
              { shaderLocation: 4, offset: 32, format: "unorm8x4" },
            ],
          },
        ],
      },
      fragment: { module, entryPoint: "fs", targets: [{ format: "rgba8unorm" }] },
      primitive: { topology: "triangle-list", cullMode: "back", frontFace: "ccw" },
      depthStencil: { format: "depth24plus", depthWriteEnabled: true, depthCompare: "less" },
      multisample: { count: samples },
    });
    this.bindGroup = this.device.createBindGroup({
      layout: bindLayout,
      entries: [
        { binding: 0, resource: { buffer: this.poseBuffer, size: this.poseBytes } },
        { binding: 1, resource: { buffer: sceneUniform } },
        { binding: 2, resource: { buffer: layerUniform, size: 4 } },
      ],
    });
  }

  private own<T extends GPUBuffer | GPUTexture>(r: T): T {
    this.owned.push(r);
    return r;
  }

  /** Static uniforms: the slot count and per-camera projection constants (Scene in the WGSL). */
  private sceneData(): Float32Array {
    const f = new Float32Array(SCENE_FLOATS);
    new Uint32Array(f.buffer, 0, 1)[0] = this.slots;
    this.projections.forEach((p, i) => f.set([p.kx, p.ky, p.near, p.far], 4 + 4 * i));
    return f;
  }

  /** Writes the poses of `frames` (one per env) to the GPU, the one upload of a step, and culls. */
  upload(frames: FramePoses[]): void {
    const n = frames.length;
    if (n < 1 || n > this.maxEnvs) throw usageError(`This renderer draws 1 to ${this.maxEnvs} envs per batch, not ${n}.`);
    const { model, poseStaging: out } = this;
    frames.forEach((fr, e) => {
      if (fr.geom_xpos.length !== 3 * model.ngeom || fr.cam_xpos.length !== 3 * model.ncam)
        throw usageError(`Env ${e}'s poses do not match the render model (${fr.geom_xpos.length / 3} geoms, ${fr.cam_xpos.length / 3} cameras; expected ${model.ngeom} and ${model.ncam}).`);
      let o = (e * this.poseStride) / 4;
      const put = (pos: ArrayLike<number>, mat: ArrayLike<number>, id: number) => {
        for (let r = 0; r < 3; r++, o += 4) {
          out[o] = mat[9 * id + 3 * r]!;
          out[o + 1] = mat[9 * id + 3 * r + 1]!;
          out[o + 2] = mat[9 * id + 3 * r + 2]!;
          out[o + 3] = pos[3 * id + r]!;
        }
      };
      for (let s = 0; s < this.slots; s++) put(fr.geom_xpos, fr.geom_xmat, model.geomIds[s]!);
      for (const c of model.cameras) put(fr.cam_xpos, fr.cam_xmat, c.id);
      const rows = out.subarray((e * this.poseStride) / 4, (e * this.poseStride + this.poseBytes) / 4);
      for (let c = 0; c < this.nCam; c++) this.drawLists.fill(e * this.nCam + c, rows, c, this.projections[c]!);
    });
    this.device.queue.writeBuffer(this.poseBuffer, 0, out, 0, (n * this.poseStride) / 4);
  }

  /** Records the draws of the first `nEnv` envs into `encoder`. */
  encode(encoder: GPUCommandEncoder, nEnv: number): void {
    const layers = nEnv * this.nCam;
    for (let l = 0; l < layers; l++) {
      const pass = encoder.beginRenderPass({
        colorAttachments: [
          this.msaaView
            ? { view: this.msaaView, resolveTarget: this.resolvedView, clearValue: [0, 0, 0, 1], loadOp: "clear", storeOp: "discard" }
            : { view: this.layerViews[l]!, clearValue: [0, 0, 0, 1], loadOp: "clear", storeOp: "store" },
        ],
        depthStencilAttachment: { view: this.depthView, depthClearValue: 1, depthLoadOp: "clear", depthStoreOp: "discard" },
      });
      pass.setPipeline(this.pipeline);
      pass.setBindGroup(0, this.bindGroup, [Math.floor(l / this.nCam) * this.poseStride, l * UNIFORM_ALIGN]);
      pass.setVertexBuffer(0, this.vertexBuffer);
      pass.setIndexBuffer(this.indexBuffer, "uint32");
      const { first, count, runs } = this.drawLists;
      for (let k = l * this.slots; k < l * this.slots + runs[l]!; k++) pass.drawIndexed(count[k]!, 1, first[k]!);
      pass.end();
      if (this.resolved) encoder.copyTextureToTexture({ texture: this.resolved }, { texture: this.color, origin: [0, 0, l] }, [this.width, this.height, 1]);
    }
  }

  /**
   * Renders and leaves the images on the GPU: the returned buffer holds u8 [nEnv, N_cam, H, W, 3]
   * (read as array<u32>, byte b of the image data is (word[b / 4] >> 8·(b % 4)) & 255). It is
   * overwritten by the next call.
   */
  renderToGpu(frames: FramePoses[]): GPUBuffer {
    this.upload(frames);
    const encoder = this.device.createCommandEncoder();
    this.encode(encoder, frames.length);
    this.packer ??= new RgbPacker(this.device, this.color, this.width, this.height, this.maxEnvs * this.nCam);
    this.packer.encode(encoder, frames.length * this.nCam);
    this.device.queue.submit([encoder.finish()]);
    return this.packer.buffer;
  }

  /** Renders one batch and reads it back: u8 RGB [frames.length, N_cam, H, W, 3], upright. */
  async render(frames: FramePoses[]): Promise<Uint8Array> {
    this.upload(frames);
    const encoder = this.device.createCommandEncoder();
    this.encode(encoder, frames.length);
    this.encodeCopy(encoder, frames.length);
    this.device.queue.submit([encoder.finish()]);
    return this.mapReadback(frames.length);
  }

  /** Reads back the images of the last submitted batch (to time the readback alone). */
  async read(nEnv: number): Promise<Uint8Array> {
    const encoder = this.device.createCommandEncoder();
    this.encodeCopy(encoder, nEnv);
    this.device.queue.submit([encoder.finish()]);
    return this.mapReadback(nEnv);
  }

  private encodeCopy(encoder: GPUCommandEncoder, nEnv: number): void {
    encoder.copyTextureToBuffer(
      { texture: this.color },
      { buffer: this.readback, bytesPerRow: this.rowPitch, rowsPerImage: this.height },
      [this.width, this.height, nEnv * this.nCam],
    );
  }

  /**
   * Maps the RGBA rows and keeps R, G, B: on SwiftShader this loop on the CPU is many times faster
   * than the packing kernel, and on a GPU it costs little next to the copy.
   */
  private async mapReadback(nEnv: number): Promise<Uint8Array> {
    const rows = nEnv * this.nCam * this.height;
    const bytes = rows * this.rowPitch;
    await this.readback.mapAsync(GPUMapMode.READ, 0, bytes);
    const src = new Uint8Array(this.readback.getMappedRange(0, bytes));
    const out = new Uint8Array(rows * this.width * 3);
    for (let r = 0; r < rows; r++) {
      let s = r * this.rowPitch, d = r * this.width * 3;
      for (let x = 0; x < this.width; x++, s += 4, d += 3) {
        out[d] = src[s]!;
        out[d + 1] = src[s + 1]!;
        out[d + 2] = src[s + 2]!;
      }
    }
    this.readback.unmap();
    this.gpu.check();
    return out;
  }

  destroy(): void {
    this.packer?.destroy();
    for (const r of this.owned) r.destroy();
    this.owned.length = 0;
  }
}
