// Functions of named tensors that run on either backend: eagerly on WebGPU, or traced into an ONNX
// graph once per shape signature and run by ONNX Runtime on the CPU. Training steps, samplers and
// exports are all written as such functions, so the model code exists once.
import type * as Ort from "onnxruntime-node";
import { createSession, loadOnnxRuntime } from "../onnx/runtime.ts";
import { type DType, Tensor, scopeAsync } from "./tensor.ts";
import { trace } from "./trace.ts";

/** A tensor's values on the CPU. */
export interface HostTensor {
  data: Float32Array | Int32Array | Uint8Array;
  shape: number[];
}
export type Feeds = Record<string, HostTensor>;
export type TensorFn = (inputs: Record<string, Tensor>) => Record<string, Tensor>;

/** Where compiled functions run. */
export type Backend = "webgpu" | "onnx";

export const host = (data: Float32Array | Int32Array | Uint8Array, shape: number[]): HostTensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new Error(`${data.length} values do not fill shape [${shape}]`);
  return { data, shape };
};

const dtypeOf = (a: HostTensor["data"]): DType => (a instanceof Int32Array ? "i32" : a instanceof Uint8Array ? "u8" : "f32");

export interface Compiled {
  readonly backend: Backend;
  run(feeds: Feeds): Promise<Record<string, Float32Array>>;
  release(): Promise<void>;
}

/** The ONNX model of fn for the shapes of `feeds` (what `dexrl export` and the ONNX backend run). */
export function traceFn(name: string, fn: TensorFn, feeds: Record<string, { shape: number[]; dtype: DType }>): Uint8Array {
  return trace(name, (tr) => {
    const inputs: Record<string, Tensor> = {};
    for (const [k, f] of Object.entries(feeds)) inputs[k] = tr.input(k, f.shape, f.dtype);
    for (const [k, t] of Object.entries(fn(inputs))) {
      if (k in feeds) throw new Error(`trace ${name}: output ${k} has the name of an input`);
      tr.output(k, t);
    }
  });
}

class WebGpuFn implements Compiled {
  readonly backend = "webgpu";
  constructor(private readonly fn: TensorFn) {}

  run(feeds: Feeds): Promise<Record<string, Float32Array>> {
    return scopeAsync(async () => {
      const inputs: Record<string, Tensor> = {};
      for (const [k, f] of Object.entries(feeds)) inputs[k] = Tensor.from(f.data, f.shape, dtypeOf(f.data));
      const outs = Object.entries(this.fn(inputs));
      const values = await Promise.all(outs.map(([, t]) => t.read()));
      // Gradients accumulate into kept buffers (autograd's leaves outlive scopes); these leaves end here.
      for (const t of Object.values(inputs)) t.grad?.dispose();
      return Object.fromEntries(outs.map(([k], i) => [k, values[i]!]));
    });
  }

  async release(): Promise<void> {}
}

class OnnxFn implements Compiled {
  readonly backend = "onnx";
  private readonly sessions = new Map<string, Promise<Ort.InferenceSession>>();

  constructor(
    private readonly name: string,
    private readonly fn: TensorFn,
    private readonly spin: boolean,
  ) {}

  private session(feeds: Feeds): Promise<Ort.InferenceSession> {
    const sig = Object.entries(feeds)
      .map(([k, f]) => `${k}:${dtypeOf(f.data)}[${f.shape}]`)
      .join(";");
    let s = this.sessions.get(sig);
    if (!s) {
      const shapes = Object.fromEntries(Object.entries(feeds).map(([k, f]) => [k, { shape: f.shape, dtype: dtypeOf(f.data) }]));
      s = createSession(traceFn(this.name, this.fn, shapes), this.spin);
      this.sessions.set(sig, s);
    }
    return s;
  }

  async run(feeds: Feeds): Promise<Record<string, Float32Array>> {
    const session = await this.session(feeds);
    const ort = await loadOnnxRuntime();
    const input: Record<string, Ort.Tensor> = {};
    for (const [k, f] of Object.entries(feeds)) {
      const type = f.data instanceof Int32Array ? "int32" : f.data instanceof Uint8Array ? "uint8" : "float32";
      input[k] = new ort.Tensor(type, f.data, f.shape);
    }
    const out = await session.run(input);
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.data as Float32Array]));
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await (await s).release();
    this.sessions.clear();
  }
}

/**
 * fn compiled for a backend: `onnx` traces per shape signature and caches the session; `spin` lets
 * its threads spin-wait (for training programs, which have the cores to themselves; see createSession).
 */
export function compile(name: string, fn: TensorFn, backend: Backend, o: { spin?: boolean } = {}): Compiled {
  return backend === "onnx" ? new OnnxFn(name, fn, o.spin ?? false) : new WebGpuFn(fn);
}
