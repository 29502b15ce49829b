// `dexrl export`: writes a checkpoint's deterministic policy (or only its prefix) as an ONNX model
// and proves ONNX Runtime loads and runs it.
import { defineCommand } from "citty";
import { writeFileSync } from "node:fs";
import { debugArgs, intArg, type DexrlMeta } from "../cli/args.ts";
import { checkOutputFile, PartialFile } from "../cli/outputs.ts";
import { DexrlError } from "../errors.ts";
import { traceFn } from "../engine/compile.ts";
import { dims } from "../model/config.ts";
import { loadPolicyCheckpoint } from "../model/policy_checkpoint.ts";
import { constantPolicy, odePolicyFn, prefixFn } from "../model/programs.ts";
import { loadOnnxRuntime } from "../onnx/runtime.ts";

export default defineCommand({
  meta: {
    name: "export",
    description: "Export a checkpoint's policy (flow-ODE, K steps unrolled) or its prefix as an ONNX model",
    examples: [
      "dexrl export --ckpt logs/run/checkpoints/global_step_50 --out policy.onnx",
      "dexrl export --ckpt models/sft --out prefix.onnx --prefix-only",
    ],
  } satisfies DexrlMeta,
  args: {
    ckpt: { type: "string", required: true, valueHint: "DIR", description: "Checkpoint directory (config.json, model.safetensors, norm_stats.json, tokenizer.json)" },
    out: { type: "string", required: true, valueHint: "FILE", description: "Where to write the .onnx file" },
    "num-steps": { type: "string", default: "4", valueHint: "K", description: "Denoising steps unrolled into the graph" },
    "prefix-only": { type: "boolean", default: false, description: "Export only the prefix (images + text → per-layer K/V, key bias)" },
    batch: { type: "string", default: "1", valueHint: "B", description: "Batch size the graph is traced for" },
    ...debugArgs,
  },
  async run({ args }) {
    const K = intArg("num-steps", args["num-steps"], 1, 100);
    checkOutputFile(args.out, "--out");
    const B = intArg("batch", args.batch, 1, 4096);
    const ck = loadPolicyCheckpoint(args.ckpt);
    const c = ck.config;
    // The model is traced from the same code training and rollouts run (model/programs.ts).
    const inputs = {
      images: { shape: [B, c.num_images, c.image_size, c.image_size, 3], dtype: "u8" as const },
      tokens: { shape: [B, c.max_text_len], dtype: "i32" as const },
      token_mask: { shape: [B, c.max_text_len], dtype: "f32" as const },
    };
    const policy = constantPolicy(c, ck.params);
    const bytes = args["prefix-only"]
      ? traceFn("dexrl_prefix", prefixFn(policy), inputs)
      : traceFn("dexrl_policy", odePolicyFn(policy, K, ck.normStats), { ...inputs, state: { shape: [B, c.state_dim], dtype: "f32" }, noise: { shape: [B, c.horizon, c.action_dim], dtype: "f32" } });
    // Written beside --out, loaded back and run once on zeros, and only then moved into place: a broken
    // export fails here, not in deployment, and never leaves a bad or partial file behind.
    using partial = new PartialFile(args.out);
    writeFileSync(partial.path, bytes);
    const ort = await loadOnnxRuntime();
    const session = await ort.InferenceSession.create(partial.path);
    const text = ck.tokenizer.encode("pick up the black bowl and place it on the plate");
    const rows = <T extends Int32Array | Float32Array>(a: ArrayLike<number>, make: (n: number) => T) => {
      const out = make(B * a.length);
      for (let b = 0; b < B; b++) out.set(a, b * a.length);
      return out;
    };
    const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {
      images: new ort.Tensor("uint8", new Uint8Array(B * c.num_images * c.image_size * c.image_size * 3), inputs.images.shape),
      tokens: new ort.Tensor("int32", rows(text.ids, (n) => new Int32Array(n)), inputs.tokens.shape),
      token_mask: new ort.Tensor("float32", rows(text.mask, (n) => new Float32Array(n)), inputs.token_mask.shape),
    };
    if (!args["prefix-only"]) {
      feeds.state = new ort.Tensor("float32", new Float32Array(B * c.state_dim), [B, c.state_dim]);
      feeds.noise = new ort.Tensor("float32", new Float32Array(B * c.horizon * c.action_dim), [B, c.horizon, c.action_dim]);
    }
    const out = await session.run(feeds);
    await session.release();
    const finite = Object.values(out).every((t) => Array.from(t.data as Float32Array).every(Number.isFinite));
    if (!finite) throw new DexrlError(`The exported model produced non-finite outputs when run once in ONNX Runtime; ${args.out} was not written.`);
    partial.commit();
    const what = args["prefix-only"]
      ? `prefix: images [${B},${c.num_images},${c.image_size},${c.image_size},3] uint8, tokens [${B},${c.max_text_len}] int32, token_mask → prefix_k0…${c.depth - 1}/prefix_v0…${c.depth - 1} [${B},${c.heads},${dims(c).prefixLen},${c.head_dim}], key_bias`
      : `policy (${K} flow-ODE steps): images, tokens, token_mask, state [${B},${c.state_dim}], noise [${B},${c.horizon},${c.action_dim}] → actions [${B},${c.horizon},${c.action_dim}] (unnormalised)`;
    console.log(`wrote ${args.out} (${(bytes.length / 2 ** 20).toFixed(1)} MiB, opset 17): ${what}; ONNX Runtime ran it.`);
  },
});
