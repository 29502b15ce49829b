// `dexrl export` end to end on a freshly initialised checkpoint, and its refusal of a broken one. (The
// exported graph's values against the WebGPU sampler and the float64 reference: programs.test.ts.)
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compile, host } from "../../src/engine/compile.ts";
import { initEngine } from "../../src/engine/runtime.ts";
import { loadPolicyCheckpoint, savePolicyCheckpoint } from "../../src/model/policy_checkpoint.ts";
import { constantPolicy, odePolicyFn } from "../../src/model/programs.ts";
import { Tokenizer } from "../../src/model/tokenizer.ts";
import { loadOnnxRuntime } from "../../src/onnx/runtime.ts";
import { expectClose } from "../engine/helpers.ts";
import { gaussian, perturbedParams, tinyModel } from "./helpers.ts";
import { dexrl } from "../helpers/cli.ts";

// GPU work on SwiftShader (and child processes) can exceed bun's 5 s default on a busy 2-core machine.
setDefaultTimeout(60_000);


function tinyCheckpoint(dir: string) {
  const tokenizer = Tokenizer.fromTexts(["pick up the black bowl and place it on the plate"], 10);
  const config = tinyModel({ max_text_len: 10, vocab_size: tokenizer.vocabSize });
  const ones = (n: number) => ({ mean: Array(n).fill(0), std: Array(n).fill(1) });
  savePolicyCheckpoint(dir, { config, params: perturbedParams(config, 1), normStats: { state: ones(8), actions: ones(7) }, tokenizer });
  return config;
}

describe("dexrl export", () => {
  test("writes a policy and a prefix that ONNX Runtime runs", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "dexrl-export-"));
    const c = tinyCheckpoint(join(tmp, "ckpt"));
    const policy = dexrl("export", "--ckpt", join(tmp, "ckpt"), "--out", join(tmp, "policy.onnx"), "--num-steps", "3", "--batch", "2");
    expect(policy.stderr.trim()).toBe("");
    expect(policy.code).toBe(0);
    expect(policy.stdout).toContain("ONNX Runtime ran it");
    const prefix = dexrl("export", "--ckpt", join(tmp, "ckpt"), "--out", join(tmp, "prefix.onnx"), "--prefix-only");
    expect(prefix.code).toBe(0);
    const ort = await loadOnnxRuntime();
    const s = await ort.InferenceSession.create(join(tmp, "policy.onnx"));
    expect(s.inputNames).toEqual(["images", "tokens", "token_mask", "state", "noise"]);
    expect(s.outputNames).toEqual(["actions"]);
    const g = gaussian(2);
    const feeds = {
      images: host(Uint8Array.from({ length: 2 * 2 * 16 * 16 * 3 }, (_, i) => (i * 31) % 256), [2, 2, 16, 16, 3]),
      tokens: host(Int32Array.from({ length: 20 }, (_, i) => 1 + (i % 7)), [2, 10]),
      token_mask: host(Float32Array.from({ length: 20 }, (_, i) => (i % 10 < 6 ? 1 : 0)), [2, 10]),
      state: host(Float32Array.from({ length: 16 }, g), [2, 8]),
      noise: host(Float32Array.from({ length: 2 * c.horizon * 7 }, g), [2, c.horizon, 7]),
    };
    const types = { images: "uint8", tokens: "int32" } as const;
    const out = await s.run(Object.fromEntries(Object.entries(feeds).map(([k, f]) => [k, new ort.Tensor(types[k as keyof typeof types] ?? "float32", f.data, f.shape)])));
    expect(out.actions!.dims).toEqual([2, c.horizon, 7]);
    await s.release();
    // The written file computes what the same program computes eagerly on WebGPU (float32 on both, 3 steps: 1e-5 + 1e-5·max).
    await initEngine();
    const ck = loadPolicyCheckpoint(join(tmp, "ckpt"));
    const gpu = compile("ode", odePolicyFn(constantPolicy(ck.config, ck.params), 3, ck.normStats), "webgpu");
    expectClose(out.actions!.data as Float32Array, (await gpu.run(feeds)).actions!, "policy.onnx from dexrl export vs WebGPU", 1e-5, 1e-5);
  });

  test("a truncated checkpoint and bad arguments get one sentence and a non-zero exit", () => {
    const tmp = mkdtempSync(join(tmpdir(), "dexrl-export-"));
    tinyCheckpoint(join(tmp, "ckpt"));
    truncateSync(join(tmp, "ckpt", "model.safetensors"), 64);
    const r = dexrl("export", "--ckpt", join(tmp, "ckpt"), "--out", join(tmp, "p.onnx"));
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^dexrl: Checkpoint file .*model\.safetensors is not a valid safetensors file: .*truncated.*\.$/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    const k = dexrl("export", "--ckpt", join(tmp, "ckpt"), "--out", join(tmp, "p.onnx"), "--num-steps", "0");
    expect(k.code).toBe(2);
    expect(k.stderr.trim()).toBe('dexrl: --num-steps must be an integer from 1 to 100, not "0".');
    const missing = dexrl("export", "--out", "x.onnx");
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("Missing required argument: --ckpt");
  });
});
