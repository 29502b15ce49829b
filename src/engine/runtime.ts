// Kernel runtime: compiles WGSL once, pools buffers, caches uniforms and bind groups, and batches
// every dispatch into one pending command encoder that is submitted only when the CPU must see a result.
import { type Gpu, getGpu } from "./device.ts";

/** A uniform field: `name:u32` or `name:f32` (or i32). Every field is 4 bytes, so the WGSL struct packs in order. */
export type ParamDecl = `${string}:${"u32" | "f32" | "i32"}`;

export interface KernelSpec {
  /** Unique name; also the pipeline cache key together with the source. */
  name: string;
  /** Storage bindings in order: `r` read-only, `w` read-write. Bound as @binding(0..n-1); the uniform comes last. */
  bindings: { name: string; access: "r" | "w"; type?: string }[];
  params: ParamDecl[];
  /** WGSL after the declarations; must define `fn main` with its own @compute @workgroup_size. */
  body: string;
}

export interface Kernel {
  spec: KernelSpec;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  id: number;
}

let gpuRef: Gpu | undefined;
let traceActive = false;
/** Set by the tracer: while a trace runs, no WebGPU kernel may be compiled or dispatched. */
export function setTracing(on: boolean): void {
  traceActive = on;
}
const tracing = () => traceActive;

/** Brings up the device once; every tensor function needs this to have resolved. */
export async function initEngine(): Promise<Gpu> {
  gpuRef ??= await getGpu();
  return gpuRef;
}

export function gpu(): Gpu {
  if (!gpuRef) throw new Error("the tensor engine is not initialised: await initEngine() first");
  return gpuRef;
}

// ---- pipelines ---------------------------------------------------------------------------------

const kernels = new Map<string, Kernel>();

function wgslSource(spec: KernelSpec): string {
  const decl = spec.bindings.map(
    (b, i) => `@group(0) @binding(${i}) var<storage, ${b.access === "w" ? "read_write" : "read"}> ${b.name}: ${b.type ?? "array<f32>"};`,
  );
  const fields = spec.params.map((p) => p.replace(":", ": "));
  if (fields.length === 0) fields.push("unused: u32");
  return [
    ...decl,
    `struct Params { ${fields.join(", ")} }`,
    `@group(0) @binding(${spec.bindings.length}) var<uniform> P: Params;`,
    spec.body,
  ].join("\n");
}

/** The compiled pipeline for a kernel spec (compiled on first use, then cached by name). */
export function kernel(spec: KernelSpec): Kernel {
  if (tracing()) throw new Error(`the WebGPU kernel ${spec.name} has no ONNX lowering: it ran inside an ONNX trace (only the primitives of prims.ts are traced)`);
  const hit = kernels.get(spec.name);
  if (hit) return hit;
  const device = gpu().device;
  const module = device.createShaderModule({ code: wgslSource(spec) });
  // An explicit layout (not "auto") keeps bindings that a generated variant does not read.
  const entries: GPUBindGroupLayoutEntry[] = spec.bindings.map((b, i) => ({
    binding: i,
    visibility: GPUShaderStage.COMPUTE,
    buffer: { type: b.access === "w" ? "storage" : "read-only-storage" },
  }));
  entries.push({ binding: spec.bindings.length, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } });
  const layout = device.createBindGroupLayout({ entries });
  const pipeline = device.createComputePipeline({
    layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
    compute: { module, entryPoint: "main" },
  });
  const k = { spec, pipeline, layout, id: kernels.size };
  kernels.set(spec.name, k);
  return k;
}

// ---- buffer pool -------------------------------------------------------------------------------

/** A pooled GPU buffer; `id` keys the bind-group cache. */
export interface PoolBuffer {
  buffer: GPUBuffer;
  bytes: number;
  id: number;
}

const STORAGE = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Rounds up to 1, 1.25, 1.5 or 1.75 × 2^k (at least 256 bytes): ≤ 25 % waste, few distinct sizes to reuse. */
export function bucketBytes(bytes: number): number {
  if (bytes <= 256) return 256;
  const pow = 2 ** Math.floor(Math.log2(bytes));
  const step = pow / 4;
  return Math.ceil(bytes / step) * step;
}

const free = new Map<number, PoolBuffer[]>();
let nextBufferId = 0;
export const poolStats = { created: 0, createdBytes: 0, live: 0, liveBytes: 0 };

export function acquire(bytes: number): PoolBuffer {
  const size = bucketBytes(bytes);
  const list = free.get(size);
  const b = list?.pop();
  poolStats.live++;
  poolStats.liveBytes += size;
  if (b) return b;
  poolStats.created++;
  poolStats.createdBytes += size;
  return { buffer: gpu().device.createBuffer({ size, usage: STORAGE() }), bytes: size, id: nextBufferId++ };
}

/**
 * Returns a buffer to the pool. Safe while commands that use it are still pending: the queue runs
 * them in order, and a CPU write into a reused buffer first flushes the pending encoder (`upload`).
 */
export function release(b: PoolBuffer): void {
  poolStats.live--;
  poolStats.liveBytes -= b.bytes;
  let list = free.get(b.bytes);
  if (!list) free.set(b.bytes, (list = []));
  list.push(b);
}

// ---- uniforms and bind groups ------------------------------------------------------------------

// Uniform buffers are immutable and keyed by content: a training loop reuses the same few hundred,
// and no queue.writeBuffer can race with pending dispatches.
const uniforms = new Map<string, { buffer: GPUBuffer; id: number }>();
const bindGroups = new Map<string, GPUBindGroup>();
/** Uniforms and bind groups kept at most (a cache: beyond it, it starts afresh). */
export const MAX_CACHED = 20000;

function uniformFor(spec: KernelSpec, values: number[]): { buffer: GPUBuffer; id: number } {
  if (values.length !== spec.params.length) throw new Error(`kernel ${spec.name}: ${values.length} params for ${spec.params.length} fields`);
  const raw = new ArrayBuffer(Math.max(16, Math.ceil((values.length * 4) / 16) * 16));
  const u32 = new Uint32Array(raw);
  const f32 = new Float32Array(raw);
  const i32 = new Int32Array(raw);
  spec.params.forEach((p, i) => {
    if (p.endsWith("f32")) f32[i] = values[i]!;
    else if (p.endsWith("i32")) i32[i] = values[i]!;
    else u32[i] = values[i]!;
  });
  const key = Array.from(u32).join(",");
  let u = uniforms.get(key);
  if (!u) {
    if (uniforms.size >= MAX_CACHED) {
      flush(); // the cleared buffers may still be referenced by the pending encoder
      for (const old of uniforms.values()) old.buffer.destroy();
      uniforms.clear();
      bindGroups.clear();
    }
    const buffer = gpu().device.createBuffer({ size: raw.byteLength, usage: GPUBufferUsage.UNIFORM, mappedAtCreation: true });
    new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(raw));
    buffer.unmap();
    u = { buffer, id: uniforms.size };
    uniforms.set(key, u);
  }
  return u;
}

/** Sizes of the caches that a steady loop must not grow. */
export const cacheStats = () => ({ pipelines: kernels.size, uniforms: uniforms.size, bindGroups: bindGroups.size, staging: staging.size });

// ---- dispatch ----------------------------------------------------------------------------------

let encoder: GPUCommandEncoder | undefined;
let pass: GPUComputePassEncoder | undefined;
export const dispatchStats = { dispatches: 0, submits: 0 };

/** Queues one dispatch of `k` over `buffers` (in binding order) with uniform `params`. */
export function dispatch(k: Kernel, buffers: PoolBuffer[], params: number[], groups: [number, number?, number?]): void {
  const u = uniformFor(k.spec, params);
  const key = `${k.id}|${u.id}|${buffers.map((b) => b.id).join(",")}`;
  let bg = bindGroups.get(key);
  if (!bg) {
    if (bindGroups.size >= MAX_CACHED) bindGroups.clear();
    const entries: GPUBindGroupEntry[] = buffers.map((b, i) => ({ binding: i, resource: { buffer: b.buffer } }));
    entries.push({ binding: buffers.length, resource: { buffer: u.buffer } });
    bg = gpu().device.createBindGroup({ layout: k.layout, entries });
    bindGroups.set(key, bg);
  }
  encoder ??= gpu().device.createCommandEncoder();
  pass ??= encoder.beginComputePass();
  pass.setPipeline(k.pipeline);
  pass.setBindGroup(0, bg);
  pass.dispatchWorkgroups(groups[0], groups[1] ?? 1, groups[2] ?? 1);
  dispatchStats.dispatches++;
}

/** The pending encoder with no open compute pass, for copies and clears between dispatches. */
export function commandEncoder(): GPUCommandEncoder {
  pass?.end();
  pass = undefined;
  encoder ??= gpu().device.createCommandEncoder();
  return encoder;
}

/** Submits everything queued so far. */
export function flush(): void {
  if (!encoder) return;
  pass?.end();
  gpu().device.queue.submit([encoder.finish()]);
  encoder = undefined;
  pass = undefined;
  dispatchStats.submits++;
}

/** Writes CPU data into a (possibly reused) buffer after the commands queued before it. */
export function upload(dst: PoolBuffer, data: ArrayBufferView, offset = 0): void {
  flush();
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.byteLength % 4 === 0) gpu().device.queue.writeBuffer(dst.buffer, offset, bytes);
  else {
    const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
    padded.set(bytes);
    gpu().device.queue.writeBuffer(dst.buffer, offset, padded);
  }
}

const staging = new Map<number, GPUBuffer[]>();

/** Reads `bytes` from a buffer: one submit and one round trip; the staging buffer is reused. */
export async function download(src: PoolBuffer, bytes: number): Promise<ArrayBuffer> {
  const size = bucketBytes(bytes);
  const read = staging.get(size)?.pop() ?? gpu().device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  commandEncoder().copyBufferToBuffer(src.buffer, 0, read, 0, Math.ceil(bytes / 4) * 4);
  flush();
  await read.mapAsync(GPUMapMode.READ);
  const out = read.getMappedRange(0, Math.ceil(bytes / 4) * 4).slice(0, bytes);
  read.unmap();
  let list = staging.get(size);
  if (!list) staging.set(size, (list = []));
  list.push(read);
  gpu().check();
  return out;
}

/** Waits until the device has finished all submitted work (for timing). */
export async function sync(): Promise<void> {
  flush();
  await gpu().device.queue.onSubmittedWorkDone();
  gpu().check();
}

/** Workgroup counts for `n` threads of `size`, split over x and y beyond the per-dimension limit. */
export function grid(n: number, size = 64): [number, number] {
  const groups = Math.max(1, Math.ceil(n / size));
  if (groups <= 65535) return [groups, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}

/** WGSL for the flat thread index of a `grid()` dispatch with workgroup size `size`. */
export const flatIndex = (size = 64) => `(wid.y * nwg.x + wid.x) * ${size}u + lid.x`;
export const GRID_BUILTINS = "@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u";
