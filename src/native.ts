// Native libraries: makes the shared objects loadable both from node_modules and from inside the
// single compiled binary, where they live in Bun's embedded filesystem and must be copied to disk.
import { dlopen, FFIType, ptr } from "bun:ffi";
import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { basename, join } from "node:path";

// Embedded as files by `bun build --compile`; plain paths into node_modules when run from source.
import webgpuLib from "../node_modules/bun-webgpu-linux-x64/libwebgpu_wrapper.so" with { type: "file" };
import ortLib from "../node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1" with { type: "file" };

const RTLD_NOW = 2;
const RTLD_GLOBAL = 0x100;

const libc = dlopen("libc.so.6", {
  setenv: { args: [FFIType.ptr, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  dlopen: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.ptr },
  dlerror: { args: [], returns: FFIType.cstring },
  dup: { args: [FFIType.i32], returns: FFIType.i32 },
  dup2: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
});

const cstr = (s: string) => Buffer.from(s + "\0", "utf8");

/**
 * Sets a variable in the C environment. Bun's `process.env` does not reach native libraries
 * (Dawn's Vulkan loader reads `VK_ICD_FILENAMES` with getenv), so this goes through libc.
 */
export function setNativeEnv(name: string, value: string): void {
  if (libc.symbols.setenv(ptr(cstr(name)), ptr(cstr(value)), 1) !== 0) {
    throw new Error(`setenv(${name}) failed`);
  }
  process.env[name] = value;
}

/** Files embedded by `bun build --compile` live under /$bunfs (B:/~BUN on Windows). */
const isEmbedded = (p: string) => p.includes("$bunfs") || p.startsWith("B:/~BUN");

/** Copies an embedded file to a cache folder keyed by its content hash; returns a real path. */
function materialize(embeddedPath: string, name: string): string {
  if (!isEmbedded(embeddedPath)) return embeddedPath;
  const bytes = readFileSync(embeddedPath);
  const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
  const base = process.env.XDG_CACHE_HOME || (homedir() ? join(homedir(), ".cache") : tmpdir());
  const dir = join(base, "dexrl", "native", hash);
  const out = join(dir, name);
  if (!existsSync(out)) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    writeFileSync(tmp, bytes, { mode: 0o755 });
    renameSync(tmp, out); // atomic: a concurrent process sees either nothing or the whole file
  }
  return out;
}

/** Path of Dawn's WebGPU wrapper library, on disk. */
export function webgpuLibraryPath(): string {
  return materialize(webgpuLib, basename(webgpuLib) || "libwebgpu_wrapper.so");
}

let ortPreloaded = false;
/**
 * Loads libonnxruntime.so.1 globally before the onnxruntime-node addon is required. The addon
 * finds it by soname; inside the compiled binary the addon is extracted without its neighbour.
 */
export function preloadOnnxRuntime(): void {
  if (ortPreloaded) return;
  const path = materialize(ortLib, "libonnxruntime.so.1");
  const handle = libc.symbols.dlopen(ptr(cstr(path)), RTLD_NOW | RTLD_GLOBAL);
  if (!handle) throw new Error(`cannot load ONNX Runtime from ${path}: ${libc.symbols.dlerror()}`);
  ortPreloaded = true;
}

/**
 * Runs `fn` with file descriptor 2 pointed at a temporary file, so that what native libraries print
 * there (Dawn's and the Vulkan loader's log lines) does not reach the user, and hands that text to
 * `onText` whether `fn` returns or throws. JavaScript's own stderr writes in the meantime land in
 * the file too, so `fn` must not print. fd 2 is always restored.
 */
export async function captureNativeStderr<T>(fn: () => Promise<T>, onText: (text: string) => void): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "dexrl-native-log-"));
  const path = join(dir, "stderr.txt");
  const fd = openSync(path, "w+");
  const saved = libc.symbols.dup(2);
  try {
    if (saved < 0 || libc.symbols.dup2(fd, 2) < 0) throw new Error("dup/dup2 failed: cannot set stderr aside to capture native log lines");
    try {
      return await fn();
    } finally {
      libc.symbols.dup2(saved, 2);
      onText(readFileSync(path, "utf8"));
    }
  } finally {
    if (saved >= 0) libc.symbols.close(saved);
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}
