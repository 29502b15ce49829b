// ONNX Runtime (onnxruntime-node, CPU) loaded so that it also works inside the compiled binary.
import type * as Ort from "onnxruntime-node";
import { preloadOnnxRuntime } from "../native.ts";

let ort: Promise<typeof Ort> | undefined;

/** The onnxruntime-node module, imported after its shared library has been made loadable. */
export function loadOnnxRuntime(): Promise<typeof Ort> {
  ort ??= (async () => {
    preloadOnnxRuntime();
    return await import("onnxruntime-node");
  })();
  return ort;
}

/**
 * A session for a graph dexrl built, on every core. Spin-waiting is off: rollouts run ONNX Runtime
 * next to the simulator's workers, and spinning threads then steal their cores (measured: 2× slower
 * under contention, within a few % when the machine is quiet).
 */
export async function createSession(bytes: Uint8Array): Promise<Ort.InferenceSession> {
  const ort = await loadOnnxRuntime();
  return ort.InferenceSession.create(bytes, {
    graphOptimizationLevel: "all",
    logSeverityLevel: 3,
    intraOpNumThreads: Math.max(1, navigator.hardwareConcurrency ?? 1),
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  });
}
