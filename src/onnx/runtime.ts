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
 * A session for a graph dexrl built, on every core. `spin`: worker threads spin-wait for work, which
 * makes small graphs several times faster (a PPO micro-batch 25 ms against 98 ms here) but steals the
 * cores of anything running beside it (the simulator's workers during rollouts): training programs
 * spin, rollout programs do not.
 */
export async function createSession(bytes: Uint8Array, spin = false): Promise<Ort.InferenceSession> {
  const ort = await loadOnnxRuntime();
  return ort.InferenceSession.create(bytes, {
    graphOptimizationLevel: "all",
    logSeverityLevel: 3,
    intraOpNumThreads: Math.max(1, navigator.hardwareConcurrency ?? 1),
    extra: { session: { intra_op: { allow_spinning: spin ? "1" : "0" } } },
  });
}
