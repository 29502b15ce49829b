// WebGPU bring-up: picks a Vulkan driver, refuses adapters that cannot compute, and turns device
// errors and device loss into clear errors. Every GPU user in dexrl gets its device from here.
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DexrlError } from "../errors.ts";
import { debugEnabled, nativeLog, recentNativeLog } from "../log/console.ts";
import { captureNativeStderr, setNativeEnv, webgpuLibraryPath } from "../native.ts";

/** Debian's chromium ships SwiftShader, a CPU Vulkan driver that Dawn accepts. */
export const SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json";

export const INSTALL_HINT =
  "install a Vulkan GPU driver, or SwiftShader with `apt-get install -y chromium libvulkan1` (or run `bash scripts/setup.sh`)";

export interface DriverChoice {
  source: "env" | "system" | "swiftshader";
  /** ICD manifest(s) in use, when known. */
  icd?: string;
  note: string;
}

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: string;
  isSoftware: boolean;
  limits: Record<string, number>;
}

export interface Gpu {
  device: GPUDevice;
  adapter: GPUAdapter;
  summary: AdapterSummary;
  driver: DriverChoice;
  /** Throws the first uncaptured device error or the loss of the device, if any happened. */
  check(): void;
}

const hasGpuDeviceNode = () =>
  existsSync("/dev/nvidiactl") || (existsSync("/dev/dri") && readdirSync("/dev/dri").some((f) => f.startsWith("renderD")));

/**
 * Decides which Vulkan driver Dawn will see. A user's VK_ICD_FILENAMES / VK_DRIVER_FILES wins; a
 * machine with a GPU device node uses its system drivers; otherwise SwiftShader if installed.
 * Must run before the first WebGPU instance is created (the Vulkan loader reads it once).
 */
export function chooseVulkanDriver(): DriverChoice {
  const fromEnv = process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES;
  if (fromEnv) return { source: "env", icd: fromEnv, note: `using the Vulkan driver named by the environment (${fromEnv})` };
  if (hasGpuDeviceNode()) return { source: "system", note: "using the system's Vulkan driver (a GPU device is present)" };
  if (existsSync(SWIFTSHADER_ICD)) {
    setNativeEnv("VK_ICD_FILENAMES", SWIFTSHADER_ICD);
    giveRuntimeDir();
    return { source: "swiftshader", icd: SWIFTSHADER_ICD, note: "no GPU found: using SwiftShader (CPU Vulkan) from Debian's chromium" };
  }
  return { source: "system", note: "no GPU device and no SwiftShader found: trying the system's Vulkan driver" };
}

/** SwiftShader complains on stderr at every start when XDG_RUNTIME_DIR is unset; give it a private one. */
function giveRuntimeDir(): void {
  if (process.env.XDG_RUNTIME_DIR) return;
  const dir = join(tmpdir(), `dexrl-runtime-${process.getuid?.() ?? 0}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  setNativeEnv("XDG_RUNTIME_DIR", dir);
}

const BACKENDS: Record<number, string> = { 1: "null", 2: "WebGPU", 3: "D3D11", 4: "D3D12", 5: "Metal", 6: "Vulkan", 7: "OpenGL", 8: "OpenGLES" };

/** The limits dexrl asks for: as much as the adapter offers of what the kernels use. */
const LIMIT_KEYS = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupsPerDimension",
  "maxTextureDimension2D",
  "maxTextureArrayLayers",
  "maxBindGroups",
  "maxUniformBufferBindingSize",
] as const;

function summarize(adapter: GPUAdapter): AdapterSummary {
  const info = adapter.info as GPUAdapterInfo & { backendType?: number; description?: string };
  const limits: Record<string, number> = {};
  for (const k of LIMIT_KEYS) limits[k] = Number((adapter.limits as unknown as Record<string, number>)[k]);
  const device = info.device ?? "";
  return {
    vendor: info.vendor ?? "",
    architecture: info.architecture ?? "",
    device,
    description: info.description ?? "",
    backend: BACKENDS[info.backendType ?? 0] ?? `backend ${info.backendType}`,
    isSoftware: /swiftshader|llvmpipe|lavapipe/i.test(`${device} ${info.architecture} ${info.description}`),
    limits,
  };
}

let cached: Promise<Gpu> | undefined;
let instance: GPU | undefined;

/** The process-wide GPU, brought up once and verified by a known-answer kernel. */
export function getGpu(): Promise<Gpu> {
  cached ??= bringUp().catch((e) => {
    cached = undefined;
    throw e;
  });
  return cached;
}

/**
 * Runs Dawn calls that may print native log lines (the Vulkan loader's warnings, Dawn's error traces
 * such as "at CheckVkSuccessImpl …"): shown as they come with --debug, otherwise set aside by
 * nativeLog for the sentence of a failure they explain.
 */
function quietly<T>(fn: () => Promise<T>): Promise<T> {
  return debugEnabled() ? fn() : captureNativeStderr(fn, (text) => nativeLog("dawn", text));
}

/** Dawn's first line that says what went wrong, as a clause for an error sentence ("" if none). */
function dawnReason(): string {
  const lines = recentNativeLog("dawn").map((l) => l.replace(/^\s*(Warning|Error):\s*/i, "").trim());
  const telling = lines.find((l) => /fail|error|cannot|no drivers|not found|unable/i.test(l) && !l.startsWith("at "));
  return telling ? `; the Vulkan loader said: "${telling}"` : "";
}

async function bringUp(): Promise<Gpu> {
  const driver = chooseVulkanDriver();
  const { createGPUInstance, globals } = await import("bun-webgpu");
  globals(); // GPUBufferUsage, GPUMapMode, ... as globals, as in a browser
  instance = await quietly(async () => createGPUInstance(webgpuLibraryPath()));
  const adapter = await requestAdapter();
  if (!adapter) throw new DexrlError(`No WebGPU adapter was found (${driver.note}${dawnReason()}); ${INSTALL_HINT}.`);
  const summary = summarize(adapter);
  if (summary.device === "null-backend" || summary.backend === "null") {
    throw new DexrlError(
      `The only WebGPU adapter is Dawn's "null-backend", which computes nothing (no usable Vulkan driver; ${driver.note}${dawnReason()}); ${INSTALL_HINT}.`,
    );
  }
  const gpu = await openDevice(adapter, summary, driver);
  const kat = await knownAnswerCheck(gpu.device);
  if (!kat.ok) {
    throw new DexrlError(
      `The WebGPU adapter "${summary.device || summary.description}" failed the known-answer compute check (${kat.detail}); ${INSTALL_HINT}.`,
    );
  }
  gpu.check();
  return gpu;
}

/** A second device on the same adapter as getGpu()'s, for work (or tests) that must not share its error state. */
export async function openSeparateDevice(): Promise<Gpu> {
  const shared = await getGpu();
  const adapter = await requestAdapter();
  if (!adapter) throw new DexrlError("The WebGPU adapter could not be requested a second time.");
  return openDevice(adapter, shared.summary, shared.driver);
}

/** An adapter from the process's instance; the options are packed like a device descriptor (see below). */
async function requestAdapter(): Promise<GPUAdapter | null> {
  Bun.gc(true);
  return quietly(() => instance!.requestAdapter({ powerPreference: "high-performance" }));
}

/**
 * Requests a device, working around bun-webgpu 0.1.7: it packs the descriptor into buffers it does
 * not keep alive while Dawn processes the request asynchronously, so a garbage collection in that
 * window hands Dawn freed memory ("Unexpected chained struct … on DeviceDescriptor chain", seen in
 * about 1 of 4 `dexrl eval` starts, or a crash). A full collection just before makes one in the
 * window unlikely, and a request that fails that way is retried on a fresh adapter.
 */
async function requestDevice(first: GPUAdapter): Promise<{ adapter: GPUAdapter; device: GPUDevice }> {
  let adapter = first;
  for (let attempt = 1; ; attempt++) {
    // Ask for everything the adapter offers. bun-webgpu fills limits left out with WebGPU's defaults
    // and then rejects those above the adapter's (SwiftShader reports 0 storage buffers per vertex stage).
    const requiredLimits: Record<string, number> = {};
    const offered = adapter.limits as unknown as Record<string, unknown>;
    for (const k in offered) if (k.startsWith("max") || k.startsWith("min")) requiredLimits[k] = Number(offered[k]);
    Bun.gc(true);
    try {
      return { adapter, device: await quietly(() => adapter.requestDevice({ requiredLimits })) };
    } catch (e) {
      if (attempt >= 3 || !/chained struct/.test((e as Error).message)) throw e;
      const next = await requestAdapter();
      if (!next) throw e;
      adapter = next;
    }
  }
}

/** Opens a device on `adapter` whose uncaptured errors and loss are recorded and thrown by check(). */
async function openDevice(first: GPUAdapter, summary: AdapterSummary, driver: DriverChoice): Promise<Gpu> {
  const { adapter, device } = await requestDevice(first);
  let failure: Error | undefined;
  device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
    failure ??= new DexrlError(`WebGPU device error: ${ev.error.message.split("\n")[0]}`);
  };
  device.lost.then((info) => {
    if (info.reason === "destroyed") return;
    failure ??= new DexrlError(`The WebGPU device was lost (${info.reason}): ${info.message || "no detail"}.`);
  });
  return {
    device,
    adapter,
    summary,
    driver,
    check() {
      if (failure) throw failure;
    },
  };
}

/**
 * A kernel with an answer known exactly in float32: per-element affine map plus a workgroup
 * reduction through shared memory. Catches adapters that run kernels without computing.
 */
export async function knownAnswerCheck(device: GPUDevice): Promise<{ ok: boolean; detail: string; ms: number }> {
  const t0 = performance.now();
  const N = 256;
  const module = device.createShaderModule({
    code: /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
var<workgroup> partial: array<f32, 64>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(workgroup_id) wid: vec3u) {
  let v = f32(gid.x) * 0.5 + 1.0;
  y[gid.x] = v;
  partial[lid.x] = v;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s >> 1u) {
    if (lid.x < s) { partial[lid.x] = partial[lid.x] + partial[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { y[${N}u + wid.x] = partial[0]; }
}`,
  });
  const pipeline = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
  const bytes = (N + N / 64) * 4;
  const buf = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const bind = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }] });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bind);
  pass.dispatchWorkgroups(N / 64);
  pass.end();
  enc.copyBufferToBuffer(buf, 0, read, 0, bytes);
  device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const got = new Float32Array(read.getMappedRange().slice(0));
  read.unmap();
  buf.destroy();
  read.destroy();
  let bad = -1;
  for (let i = 0; i < N && bad < 0; i++) if (got[i] !== i * 0.5 + 1) bad = i;
  if (bad >= 0) return { ok: false, detail: `element ${bad} is ${got[bad]}, expected ${bad * 0.5 + 1}`, ms: performance.now() - t0 };
  for (let w = 0; w < N / 64; w++) {
    let want = 0;
    for (let i = w * 64; i < (w + 1) * 64; i++) want += i * 0.5 + 1;
    if (got[N + w] !== want) return { ok: false, detail: `workgroup sum ${w} is ${got[N + w]}, expected ${want}`, ms: performance.now() - t0 };
  }
  return { ok: true, detail: `${N} elements and ${N / 64} workgroup sums exact`, ms: performance.now() - t0 };
}

/** Copies a GPU buffer range to the CPU (one round trip); checks for device errors first. */
export async function readBuffer(gpu: Gpu, src: GPUBuffer, byteLength: number, offset = 0): Promise<ArrayBuffer> {
  const read = gpu.device.createBuffer({ size: byteLength, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = gpu.device.createCommandEncoder();
  enc.copyBufferToBuffer(src, offset, read, 0, byteLength);
  gpu.device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const out = read.getMappedRange().slice(0);
  read.unmap();
  read.destroy();
  gpu.check();
  return out;
}
