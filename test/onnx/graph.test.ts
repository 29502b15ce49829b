// The ONNX writer: models it builds load in ONNX Runtime and compute what a CPU loop computes.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { OnnxGraph, OPSET } from "../../src/onnx/graph.ts";
import { loadOnnxRuntime } from "../../src/onnx/runtime.ts";

// GPU work on SwiftShader (and child processes) can exceed bun's 5 s default on a busy 2-core machine.
setDefaultTimeout(60_000);

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}

describe("ONNX graph writer", () => {
  test("a two-layer MLP with Gemm, Tanh, attributes and a symbolic batch matches a CPU loop", async () => {
    const ort = await loadOnnxRuntime();
    const r = rng(7);
    const [I, Hd, O, B] = [5, 9, 3, 4];
    const W1 = Float32Array.from({ length: I * Hd }, r); // [I, Hd]
    const b1 = Float32Array.from({ length: Hd }, r);
    const W2 = Float32Array.from({ length: O * Hd }, r); // [O, Hd], used transposed
    const g = new OnnxGraph("mlp");
    const x = g.input("x", ["batch", I]);
    const [h] = g.node("Gemm", [x, g.initializer("W1", W1, [I, Hd]), g.initializer("b1", b1, [Hd])], { alpha: { f: 1 }, beta: { f: 1 } });
    const [t] = g.node("Tanh", [h!]);
    g.node("Gemm", [t!, g.initializer("W2", W2, [O, Hd])], { transB: { i: 1 }, alpha: { f: 0.5 } }, ["y"]);
    g.output("y", ["batch", O]);
    const session = await ort.InferenceSession.create(g.toBytes());
    const xs = Float32Array.from({ length: B * I }, r);
    const y = (await session.run({ x: new ort.Tensor("float32", xs, [B, I]) })).y!;
    expect(y.dims).toEqual([B, O]);
    let maxDiff = 0;
    for (let bi = 0; bi < B; bi++)
      for (let o = 0; o < O; o++) {
        let acc = 0;
        for (let j = 0; j < Hd; j++) {
          let hj = b1[j]!;
          for (let i = 0; i < I; i++) hj += xs[bi * I + i]! * W1[i * Hd + j]!;
          acc += Math.tanh(hj) * W2[o * Hd + j]!;
        }
        maxDiff = Math.max(maxDiff, Math.abs(0.5 * acc - (y.data as Float32Array)[bi * O + o]!));
      }
    expect(maxDiff).toBeLessThan(1e-5);
    await session.release();
  });

  test("int64 initializers and shape ops (Reshape) work; the opset is at least 17", async () => {
    expect(OPSET).toBeGreaterThanOrEqual(17);
    const ort = await loadOnnxRuntime();
    const g = new OnnxGraph("reshape");
    const x = g.input("x", [2, 6]);
    g.node("Reshape", [x, g.initializer("shape", BigInt64Array.from([3n, -1n]), [2])], {}, ["y"]);
    g.output("y", [3, 4]);
    const session = await ort.InferenceSession.create(g.toBytes());
    const xs = Float32Array.from({ length: 12 }, (_, i) => i);
    const y = (await session.run({ x: new ort.Tensor("float32", xs, [2, 6]) })).y!;
    expect(y.dims).toEqual([3, 4]);
    expect(Array.from(y.data as Float32Array)).toEqual(Array.from(xs));
    await session.release();
  });

  test("an initializer whose size does not match its shape is refused", () => {
    const g = new OnnxGraph("bad");
    expect(() => g.initializer("w", new Float32Array(5), [2, 3])).toThrow("5 values for shape [2,3]");
  });
});
