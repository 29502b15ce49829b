// PolicyRunner: raw observations in, executed unnormalised chunks out; the same calls on WebGPU and
// on ONNX Runtime (the noise is drawn on the CPU, so one seed gives the same chunks on both).
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { initEngine } from "../../src/engine/runtime.ts";
import { PolicyRunner, resolveBackend, tokenize } from "../../src/model/runner.ts";
import { Tokenizer } from "../../src/model/tokenizer.ts";
import { expectClose } from "../engine/helpers.ts";
import { perturbedParams, tinyModel } from "./helpers.ts";

// GPU work on SwiftShader and tracing can exceed bun's 5 s default on a busy 2-core machine.
setDefaultTimeout(60_000);

const tokenizer = Tokenizer.fromTexts(["pick up the black bowl on the stove and place it on the plate"], 12);
const cfg = tinyModel({ max_text_len: 12, vocab_size: tokenizer.vocabSize });
const arrays = perturbedParams(cfg, 5);
const normStats = {
  state: { mean: Array.from({ length: 8 }, (_, i) => i * 0.1), std: Array(8).fill(2) },
  actions: { mean: [0.1, -0.1, 0, 0, 0, 0, -0.5], std: [0.3, 0.3, 0.3, 0.1, 0.1, 0.1, 1] },
};
const sampler = { numSteps: 4, method: "flow_sde" as const, noiseLevel: 0.5, chunk: 5, envDim: 7, jointLogprob: false, detachCritic: true };
const B = 3;
const K = 4;
const obs = {
  images: Uint8Array.from({ length: B * 2 * 16 * 16 * 3 }, (_, i) => (i * 7) % 256),
  instructions: ["pick up the black bowl on the stove and place it on the plate", "pick up the black bowl", "an instruction with unknown words"],
  states: Float32Array.from({ length: B * 8 }, (_, i) => Math.cos(i)),
};
const runner = (backend: "webgpu" | "onnx", seed: number, params = arrays) => PolicyRunner.create({ config: cfg, params, normStats, tokenizer, sampler, seed, backend });

beforeAll(async () => {
  await initEngine();
});

describe("PolicyRunner", () => {
  test("backend choice: auto is ONNX Runtime on a software adapter and WebGPU on a GPU", () => {
    expect(resolveBackend("auto", true)).toBe("onnx");
    expect(resolveBackend("auto", false)).toBe("webgpu");
    expect(resolveBackend("webgpu", true)).toBe("webgpu");
    expect(resolveBackend("onnx", false)).toBe("onnx");
  });

  test("tokenize: ids and a 1/0 mask per instruction, padded to max_length; unknown words still encode", () => {
    const { ids, mask } = tokenize(tokenizer, obs.instructions);
    expect(ids.length).toBe(B * 12);
    expect(mask.length).toBe(B * 12);
    for (let b = 0; b < B; b++) {
      const e = tokenizer.encode(obs.instructions[b]!);
      expect(Array.from(ids.subarray(b * 12, (b + 1) * 12))).toEqual(Array.from(e.ids));
      expect(Array.from(mask.subarray(b * 12, (b + 1) * 12))).toEqual(Array.from(e.mask));
    }
    expect(Array.from(mask.subarray(12, 24))).toContain(0); // the short instruction is padded
    expect(Array.from(mask.subarray(24, 36)).filter((v) => v === 1).length).toBeGreaterThan(2);
  });

  test("eval calls: deterministic given the seed, unnormalised x_0, the same on WebGPU and ONNX Runtime", async () => {
    const [gpu, ort] = [runner("webgpu", 3), runner("onnx", 3)];
    const [a, b] = [await gpu.act(obs, false), await ort.act(obs, false)];
    const again = await runner("onnx", 3).act(obs, false);
    expect(a.actions.length).toBe(B * 5 * 7);
    expect([a.stepIndex, b.stepIndex]).toEqual([-1, -1]);
    expect(Array.from(a.logProb, (x) => x === 0)).toEqual(Array(B).fill(true));
    expect(again.actions).toEqual(b.actions);
    // Float32 through K expert passes on two backends: 1e-5 + 1e-5·max|want|.
    expectClose(b.chain, a.chain, "eval chain onnx vs webgpu", 1e-5, 1e-5);
    expectClose(b.actions, a.actions, "eval actions onnx vs webgpu", 1e-5, 1e-5);
    // actions = x_0 · std + mean on the executed part of the chain: example 1, action 2.
    const H = cfg.horizon;
    const x0 = a.chain.subarray(((1 * (K + 1) + K) * H + 2) * 7, ((1 * (K + 1) + K) * H + 2) * 7 + 7);
    expectClose(a.actions.subarray((1 * 5 + 2) * 7, (1 * 5 + 3) * 7), Array.from(x0, (x, j) => x * normStats.actions.std[j]! + normStats.actions.mean[j]!), "unnormalised actions", 1e-6, 1e-6);
    for (const r of [gpu, ort]) await r.release();
  });

  test("train calls explore: one stochastic step in 0…K−1, non-zero log-probs, new draws each call, the same on both backends", async () => {
    const [gpu, ort] = [runner("webgpu", 4), runner("onnx", 4)];
    const calls = [];
    for (let i = 0; i < 2; i++) calls.push([await gpu.act(obs, true), await ort.act(obs, true)] as const);
    for (const [a, b] of calls) {
      expect(a.stepIndex).toBe(b.stepIndex);
      expect(a.stepIndex).toBeGreaterThanOrEqual(0);
      expect(a.stepIndex).toBeLessThan(K);
      expect(Array.from(a.logProb).every((v) => v !== 0 && Number.isFinite(v))).toBe(true);
      expectClose(b.chain, a.chain, "train chain onnx vs webgpu", 1e-5, 1e-5);
      expectClose(b.logProb, a.logProb, "train log-prob onnx vs webgpu", 1e-5, 1e-5);
      expectClose(b.value, a.value, "train value onnx vs webgpu", 1e-5, 1e-5);
    }
    expect(Array.from(calls[0]![0].actions)).not.toEqual(Array.from(calls[1]![0].actions));
    // reseed restarts the stream: the first call again.
    gpu.reseed(4);
    expect((await gpu.act(obs, true)).chain).toEqual(calls[0]![0].chain);
    for (const r of [gpu, ort]) await r.release();
  });

  test("syncWeights: both backends follow new weights, and only after the call", async () => {
    for (const backend of ["webgpu", "onnx"] as const) {
      const r = runner(backend, 5);
      const before = await r.act(obs, false);
      const shifted = new Map(arrays);
      shifted.set("action_out_proj.bias", Float32Array.from({ length: 7 }, () => 3));
      r.reseed(5);
      const stale = await r.act(obs, false);
      expect(stale.chain, `${backend}: unchanged before syncWeights`).toEqual(before.chain);
      await r.syncWeights(shifted);
      r.reseed(5);
      const fresh = await r.act(obs, false);
      // x ← x − v/K per step with v up by 3 − bias: x_0 moves down by about that.
      const meanShift = fresh.chain.reduce((s, v, i) => s + v - stale.chain[i]!, 0) / fresh.chain.length;
      expect(meanShift, `${backend}: mean change of the chain ${meanShift}`).toBeLessThan(-0.5);
      await r.release();
    }
  });
});
