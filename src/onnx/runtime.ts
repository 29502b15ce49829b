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
