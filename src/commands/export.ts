// `dexrl export`: writes a checkpoint's deterministic policy (or only its prefix) as an ONNX model
// and proves ONNX Runtime loads and runs it.
import { defineCommand } from "citty";
import { writeFileSync, renameSync } from "node:fs";
import { debugArgs, intArg, type DexrlMeta } from "../cli/args.ts";
import { dims } from "../model/config.ts";
import { exportPolicyOnnx, exportPrefixOnnx } from "../model/onnx_export.ts";
import { loadPolicyCheckpoint } from "../model/policy_checkpoint.ts";
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
    "prefix-only": { type: "boolean", default: false, description: "Export only the prefix (images + text → per-layer K/V), as rollouts use" },
    ...debugArgs,
  },
  async run({ args }) {
    const K = intArg("num-steps", args["num-steps"], 1, 100);
    const ck = loadPolicyCheckpoint(args.ckpt);
    const bytes = args["prefix-only"] ? exportPrefixOnnx(ck.config, ck.params) : exportPolicyOnnx(ck.config, ck.params, ck.normStats, K);
    const tmp = `${args.out}.partial-${process.pid}`;
    writeFileSync(tmp, bytes);
    renameSync(tmp, args.out);
    // Load it back and run one example of zeros, so a broken export fails here, not in deployment.
    const ort = await loadOnnxRuntime();
    const session = await ort.InferenceSession.create(args.out);
    const c = ck.config;
    const text = ck.tokenizer.encode("pick up the black bowl and place it on the plate");
    const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {
      images: new ort.Tensor("uint8", new Uint8Array(c.num_images * c.image_size * c.image_size * 3), [1, c.num_images, c.image_size, c.image_size, 3]),
      tokens: new ort.Tensor("int64", BigInt64Array.from(text.ids, (v) => BigInt(v)), [1, c.max_text_len]),
      token_mask: new ort.Tensor("float32", Float32Array.from(text.mask), [1, c.max_text_len]),
    };
    if (!args["prefix-only"]) {
      feeds.state = new ort.Tensor("float32", new Float32Array(c.state_dim), [1, c.state_dim]);
      feeds.noise = new ort.Tensor("float32", new Float32Array(c.horizon * c.action_dim), [1, c.horizon, c.action_dim]);
    }
    const out = await session.run(feeds);
    await session.release();
    const finite = Object.values(out).every((t) => Array.from(t.data as Float32Array).every(Number.isFinite));
    if (!finite) throw new Error(`the exported model ${args.out} produced non-finite outputs`);
    const what = args["prefix-only"]
      ? `prefix: images [B,${c.num_images},${c.image_size},${c.image_size},3] uint8, tokens [B,${c.max_text_len}] int64, token_mask → prefix_k/prefix_v [${c.depth},B,${c.heads},${dims(c).prefixLen},${c.head_dim}], prefix_bias`
      : `policy (${K} flow-ODE steps): images, tokens, token_mask, state [B,${c.state_dim}], noise [B,${c.horizon},${c.action_dim}] → actions [B,${c.horizon},${c.action_dim}] (unnormalised)`;
    console.log(`wrote ${args.out} (${(bytes.length / 2 ** 20).toFixed(1)} MiB, opset 17): ${what}; ONNX Runtime ran it.`);
  },
});
