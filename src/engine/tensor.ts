// Tensors: a shape over a pooled device buffer (WebGPU) or over a traced graph value (the ONNX
// backend, see trace.ts), with explicit lifetime through scopes.
//
// Lifetime. Every tensor made inside `scope(fn)` is disposed when fn returns, except the tensors
// fn returns (they move to the enclosing scope) and those passed to `keep`. Tensors made outside
// any scope (parameters, optimizer state) live until `dispose()`. Buffers go back to the pool, so a
// loop that does the same work every step allocates nothing new after its first step.
//
//   bad:  for (...) { const loss = model.loss(batch); await loss.item(); }
//         // every activation of every step stays allocated
//   good: for (...) { const l = await scopeAsync(async () => { const loss = model.loss(batch); backward(loss); return loss.item(); }); }
//         // activations and gradients of intermediates are released at the end of each step
import { type PoolBuffer, acquire, download, release, upload } from "./runtime.ts";

import { type Shape, numel, shapeStr } from "./shape.ts";

export { type Shape, numel, shapeStr };
/**
 * A recorded primitive application, as the tensor it made sees it; autograd.ts's Node fills it in.
 * Declared here so that tensor.ts imports nothing from autograd (the engine has no import circle).
 */
export interface TapeNode {
  readonly prim: string;
}

/** f32: float tensors; i32: token ids; u8: images (bytes packed 4 per word). */
export type DType = "f32" | "i32" | "u8";

/**
 * A traced tensor's value (the ONNX backend): the name of a graph value and the shape it was made
 * with. Views of other shapes share it and get a Reshape when the tracer reads them.
 */
export interface SymValue {
  name: string;
  shape: Shape;
}

/**
 * What a tensor and its reshaped views share: a pooled device buffer (WebGPU), released when the
 * last holder goes, or a traced graph value (ONNX), which in-place accumulation renames.
 */
class Storage {
  refs = 1;
  constructor(
    readonly buf: PoolBuffer | undefined,
    public sym?: SymValue,
  ) {}
}

/** While a trace runs, tensors made from CPU data become graph constants instead of uploads. */
export interface ConstantSink {
  constant(data: Float32Array | Int32Array | Uint8Array, shape: Shape, dtype: DType): Tensor;
}
let constantSink: ConstantSink | undefined;
/** Installed by the tracer for the duration of a trace. */
export function setConstantSink(s: ConstantSink | undefined): void {
  constantSink = s;
}

let nextId = 0;

export class Tensor {
  readonly id = nextId++;
  readonly size: number;
  /** Leaf parameters set this; the gradient then accumulates into `grad`. */
  requiresGrad = false;
  grad: Tensor | undefined;
  /** The tape node that made this tensor, while it is recorded for backward. */
  node: TapeNode | undefined;
  /** For i32 tensors made from CPU data (token ids): the values, so gathers can plan their backward. */
  host: Int32Array | undefined;
  private storage: Storage | undefined;

  constructor(
    readonly shape: Shape,
    storage: Storage | PoolBuffer,
    readonly dtype: DType = "f32",
  ) {
    this.size = numel(shape);
    this.storage = storage instanceof Storage ? storage : new Storage(storage);
    scopeStack.at(-1)?.add(this);
  }

  /** Allocates an uninitialised tensor from the pool. */
  static empty(shape: Shape, dtype: DType = "f32"): Tensor {
    if (constantSink) throw new Error(`a WebGPU-only kernel (output ${shapeStr(shape)}) ran inside an ONNX trace: it has no ONNX lowering`);
    const bytes = dtype === "u8" ? Math.ceil(numel(shape) / 4) * 4 : numel(shape) * 4;
    return new Tensor(shape, acquire(Math.max(4, bytes)), dtype);
  }

  /** A traced value (ONNX backend): no device memory, only a name in the graph being built. */
  static symbolic(shape: Shape, sym: SymValue, dtype: DType = "f32"): Tensor {
    return new Tensor(shape, new Storage(undefined, sym), dtype);
  }

  static from(data: ArrayLike<number> | Float32Array | Int32Array | Uint8Array, shape: Shape, dtype?: DType): Tensor {
    const kind: DType = dtype ?? (data instanceof Int32Array ? "i32" : data instanceof Uint8Array ? "u8" : "f32");
    if (data.length !== numel(shape)) throw new Error(`${data.length} values do not fill shape ${shapeStr(shape)}`);
    const typed = kind === "f32" ? Float32Array.from(data) : kind === "i32" ? Int32Array.from(data) : Uint8Array.from(data);
    if (constantSink) return constantSink.constant(typed, shape, kind);
    const t = Tensor.empty(shape, kind);
    upload(t.buf, typed);
    if (typed instanceof Int32Array) t.host = typed;
    return t;
  }

  get buf(): PoolBuffer {
    if (!this.storage) throw new Error(`tensor ${shapeStr(this.shape)} was used after it was disposed (see the lifetime rules in tensor.ts)`);
    if (!this.storage.buf) throw new Error(`tensor ${shapeStr(this.shape)} is a traced ONNX value: it has no device buffer (run the traced graph to get values)`);
    return this.storage.buf;
  }

  /** The traced value behind this tensor (ONNX backend), or undefined for a device tensor. */
  get sym(): SymValue | undefined {
    if (!this.storage) throw new Error(`tensor ${shapeStr(this.shape)} was used after it was disposed (see the lifetime rules in tensor.ts)`);
    return this.storage.sym;
  }

  /** Rebinds a traced tensor (and its views) to a new value: the tracer's in-place update. */
  rebind(sym: SymValue): void {
    if (!this.storage?.sym) throw new Error("rebind is for traced tensors");
    this.storage.sym = sym;
  }

  get disposed(): boolean {
    return this.storage === undefined;
  }

  /** Whether another tensor (a view) uses the same storage. */
  get shared(): boolean {
    return (this.storage?.refs ?? 0) > 1;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** A tensor of another shape over the same storage (no copy). */
  view(shape: Shape): Tensor {
    if (numel(shape) !== this.size) throw new Error(`cannot view ${shapeStr(this.shape)} as ${shapeStr(shape)}`);
    const s = this.storage;
    if (!s) throw new Error("view of a disposed tensor");
    s.refs++;
    return new Tensor(shape, s, this.dtype);
  }

  dispose(): void {
    const s = this.storage;
    if (!s) return;
    this.storage = undefined;
    this.node = undefined;
    if (--s.refs === 0 && s.buf) release(s.buf);
    for (const sc of scopeStack) sc.delete(this);
  }

  /** Copies the values to the CPU (one GPU round trip). */
  async read(): Promise<Float32Array> {
    if (this.dtype !== "f32") throw new Error("read() is for f32 tensors");
    return new Float32Array(await download(this.buf, this.size * 4));
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item() of a tensor of shape ${shapeStr(this.shape)}`);
    return (await this.read())[0]!;
  }

  /** Overwrites the values from the CPU. */
  write(data: Float32Array | Int32Array): void {
    if (data.length !== this.size) throw new Error(`write of ${data.length} values into ${shapeStr(this.shape)}`);
    upload(this.buf, data);
  }
}

// ---- scopes ------------------------------------------------------------------------------------

const scopeStack: Set<Tensor>[] = [];
const scopeEndHooks: ((depth: number) => void)[] = [];

/** Lets autograd drop tape nodes of a finished scope. */
export function onScopeEnd(hook: (depth: number) => void): void {
  scopeEndHooks.push(hook);
}

export const scopeDepth = () => scopeStack.length;

function collect(value: unknown, out: Set<Tensor>): void {
  if (value instanceof Tensor) out.add(value);
  else if (Array.isArray(value)) for (const v of value) collect(v, out);
  else if (value && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype)
    for (const v of Object.values(value)) collect(v, out);
}

function endScope(result: unknown): void {
  const mine = scopeStack.pop()!;
  const kept = new Set<Tensor>();
  collect(result, kept);
  const parent = scopeStack.at(-1);
  for (const t of mine) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  for (const hook of scopeEndHooks) hook(scopeStack.length);
}

/** Runs fn; disposes every tensor it made except those it returns (in a value, array or plain object). */
export function scope<T>(fn: () => T): T {
  scopeStack.push(new Set());
  let result: T | undefined;
  try {
    result = fn();
    return result;
  } finally {
    endScope(result);
  }
}

/** `scope` for async work (reads): the scope stays open until the promise settles. */
export async function scopeAsync<T>(fn: () => Promise<T>): Promise<T> {
  scopeStack.push(new Set());
  let result: T | undefined;
  try {
    result = await fn();
    return result;
  } finally {
    endScope(result);
  }
}

/** Takes a tensor out of every scope: it lives until its own `dispose()`. */
export function keep<T extends Tensor>(t: T): T {
  for (const sc of scopeStack) sc.delete(t);
  return t;
}
