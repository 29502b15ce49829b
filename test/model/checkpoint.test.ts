// safetensors and checkpoint directories: exact round trips, an independent reader, and a clear
// refusal for each kind of damage.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DexrlError } from "../../src/errors.ts";
import { loadCheckpoint, saveCheckpoint, type CheckpointData } from "../../src/model/checkpoint.ts";
import { decodeSafetensors, encodeSafetensors, type Tensors } from "../../src/model/safetensors.ts";
import { Tokenizer } from "../../src/model/tokenizer.ts";
import { loadPolicyCheckpoint, type PolicyCheckpoint, savePolicyCheckpoint, withValueInput } from "../../src/model/policy_checkpoint.ts";

const tmp = () => mkdtempSync(join(tmpdir(), "dexrl-ckpt-"));
const values = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 43758.5453 % 1);

function sample(): CheckpointData {
  const tensors: Tensors = new Map([
    ["expert.w", { shape: [3, 5], data: values(15, 1) }],
    ["value_head.bias", { shape: [1], data: values(1, 2) }],
    ["prefix.patch_embed", { shape: [2, 3, 4], data: values(24, 3) }],
  ]);
  return {
    config: { width: 5, state_dim: 2, action_dim: 3 },
    tensors,
    normStats: { state: { mean: [0.1, -0.2], std: [1, 2] }, actions: { mean: [0, 0, 0], std: [0.5, 0.5, 1] } },
    tokenizer: Tokenizer.fromTexts(["pick up the black bowl and place it on the plate"], 16),
  };
}
const shapesOf = (c: Record<string, unknown>) =>
  new Map([
    ["expert.w", [3, c.width as number]],
    ["value_head.bias", [1]],
    ["prefix.patch_embed", [2, 3, 4]],
  ]);
const dimsOf = (c: Record<string, unknown>) => ({ state: c.state_dim as number, actions: c.action_dim as number });

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DexrlError);
    return (e as Error).message;
  }
  throw new Error("expected a refusal");
}

describe("safetensors", () => {
  test("round trip is exact, with metadata and 8-byte aligned data", () => {
    const t = sample().tensors;
    const bytes = encodeSafetensors(t, { format: "pt" });
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLen) % 8).toBe(0);
    const back = decodeSafetensors(bytes, "x");
    expect(back.metadata).toEqual({ format: "pt" });
    for (const [name, v] of t) {
      expect(back.tensors.get(name)!.shape).toEqual(v.shape);
      expect(back.tensors.get(name)!.data).toEqual(v.data);
    }
  });

  test("an independent reader (Python's standard library) reads the same tensors", () => {
    const dir = tmp();
    const t = sample().tensors;
    writeFileSync(join(dir, "m.safetensors"), encodeSafetensors(t));
    const script = `
import json, struct, sys, array
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
out = {}
for name, e in header.items():
    if name == "__metadata__": continue
    a = array.array("f"); a.frombytes(raw[8 + n + e["data_offsets"][0]: 8 + n + e["data_offsets"][1]])
    out[name] = {"dtype": e["dtype"], "shape": e["shape"], "data": a.tolist()}
print(json.dumps(out))`;
    const p = Bun.spawnSync(["python3", "-c", script, join(dir, "m.safetensors")]);
    expect(p.stderr.toString()).toBe("");
    const read = JSON.parse(p.stdout.toString());
    for (const [name, v] of t) {
      expect(read[name].dtype).toBe("F32");
      expect(read[name].shape).toEqual(v.shape);
      expect(Array.from(Float32Array.from(read[name].data as number[]))).toEqual(Array.from(v.data));
    }
  });

  test("damaged files are refused", () => {
    const good = encodeSafetensors(sample().tensors);
    expect(refusal(() => decodeSafetensors(good.subarray(0, 5), "f"))).toContain("shorter than the 8-byte header length");
    expect(refusal(() => decodeSafetensors(good.subarray(0, 40), "f"))).toContain("truncated or not safetensors");
    expect(refusal(() => decodeSafetensors(good.subarray(0, good.length - 4), "f"))).toContain("truncated");
    const garbage = good.slice();
    garbage[10] = 0xff;
    expect(refusal(() => decodeSafetensors(garbage, "f"))).toContain("header is not valid JSON");
    expect(refusal(() => decodeSafetensors(new TextEncoder().encode("PK\x03\x04 a zip file, not safetensors"), "f"))).toContain("not a valid safetensors file");
  });
});

describe("tokenizer", () => {
  const tok = Tokenizer.fromTexts(["pick up the black bowl next to the ramekin and place it on the plate"], 12);

  test("known words are one token each, framed by <bos>/<eos> and padded with a mask", () => {
    const { ids, mask } = tok.encode("Pick up the plate");
    expect(Array.from(mask)).toEqual([1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    expect(tok.decode(ids)).toBe("pick up the plate");
  });

  test("unknown words encode through UTF-8 bytes and decode back", () => {
    const { ids } = Tokenizer.fromTexts(["the bowl"], 48).encode("the bowl under the café");
    expect(Tokenizer.fromTexts(["the bowl"], 48).decode(ids)).toBe("the bowl under the café");
  });

  test("long text is cut at max_length; JSON round trip keeps the vocabulary", () => {
    const { mask } = tok.encode("the ".repeat(40));
    expect(mask.reduce((a, b) => a + b, 0)).toBe(12);
    const back = Tokenizer.fromJSON(JSON.parse(JSON.stringify(tok.toJSON())), "t");
    expect(back.encode("black bowl").ids).toEqual(tok.encode("black bowl").ids);
    expect(back.vocabSize).toBe(tok.vocabSize);
  });
});

describe("checkpoint directories", () => {
  test("save then load is exact and leaves no temporary files", () => {
    const root = tmp();
    const dir = join(root, "global_step_5");
    const data = sample();
    saveCheckpoint(dir, data);
    saveCheckpoint(dir, data); // overwriting an existing checkpoint
    expect(readdirSync(root)).toEqual(["global_step_5"]);
    expect(readdirSync(dir).sort()).toEqual(["config.json", "model.safetensors", "norm_stats.json", "tokenizer.json"]);
    const back = loadCheckpoint(dir, shapesOf, dimsOf);
    expect(back.config).toEqual(data.config);
    expect(back.normStats).toEqual(data.normStats);
    for (const [name, v] of data.tensors) expect(back.tensors.get(name)!.data).toEqual(v.data);
    expect(back.tokenizer.toJSON()).toEqual(data.tokenizer.toJSON());
  });

  test("each kind of damage gets a sentence naming the file and the problem", () => {
    const fresh = () => {
      const dir = join(tmp(), "ckpt");
      saveCheckpoint(dir, sample());
      return dir;
    };
    let dir = fresh();
    truncateSync(join(dir, "model.safetensors"), 100);
    expect(refusal(() => loadCheckpoint(dir, shapesOf, dimsOf))).toMatch(/model\.safetensors is not a valid safetensors file: .*truncated/);

    dir = fresh();
    rmSync(join(dir, "norm_stats.json"));
    expect(refusal(() => loadCheckpoint(dir, shapesOf, dimsOf))).toBe(`Checkpoint ${dir} has no norm_stats.json.`);

    dir = fresh();
    writeFileSync(join(dir, "config.json"), "{ not json");
    expect(refusal(() => loadCheckpoint(dir, shapesOf, dimsOf))).toContain("config.json is not valid JSON");

    dir = fresh();
    writeFileSync(join(dir, "config.json"), JSON.stringify({ width: 6, state_dim: 2, action_dim: 3 }));
    expect(refusal(() => loadCheckpoint(dir, shapesOf, dimsOf))).toContain("has tensor expert.w of shape [3,5] but config.json implies [3,6]");

    dir = fresh();
    const extra = (c: Record<string, unknown>) => new Map([...shapesOf(c), ["expert.bias", [5]]]);
    expect(refusal(() => loadCheckpoint(dir, extra, dimsOf))).toContain("is missing tensor expert.bias");
    const fewer = (c: Record<string, unknown>) => new Map([...shapesOf(c)].filter(([n]) => n !== "value_head.bias"));
    expect(refusal(() => loadCheckpoint(dir, fewer, dimsOf))).toContain("has tensor value_head.bias, which the model in config.json does not have");

    dir = fresh();
    writeFileSync(join(dir, "config.json"), JSON.stringify({ width: 5, state_dim: 8, action_dim: 3 }));
    expect(refusal(() => loadCheckpoint(dir, shapesOf, dimsOf))).toContain("has 2 state dims but config.json says 8");

    dir = fresh();
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify({ type: "bpe" }));
    expect(refusal(() => loadCheckpoint(dir, shapesOf, dimsOf))).toContain("tokenizer.json is not a dexrl tokenizer");

    expect(refusal(() => loadCheckpoint(join(tmp(), "nope")))).toContain("does not exist");
    expect(existsSync(join(fresh(), "model.safetensors"))).toBe(true);
    expect(readFileSync(join(fresh(), "config.json"), "utf8")).toContain('"width": 5');
  });
});

describe("withValueInput", () => {
  const ck = loadPolicyCheckpoint("models/libero-spatial-fewshot");
  const zeros = () => 0;
  test("value_after_vlm on the bundled checkpoint: the same-width head keeps its weights, the prefix's final norm starts at 1, nothing else changes", () => {
    const v = withValueInput(ck, true, undefined, zeros);
    expect(v.config.value_after_vlm).toBe(true);
    expect(v.params.get("value_head.weight")).toBe(ck.params.get("value_head.weight")!);
    expect(v.params.get("prefix.final_norm.weight")).toEqual(new Float32Array(ck.config.width).fill(1));
    expect([...v.params.keys()].sort()).toEqual([...ck.params.keys(), "prefix.final_norm.weight"].sort());
    for (const [n, p] of ck.params) expect(v.params.get(n)).toBe(p);
    // and back: the final norm goes, the rest stays
    const back = withValueInput(v, false, undefined, zeros);
    expect([...back.params.keys()].sort()).toEqual([...ck.params.keys()].sort());
    expect(withValueInput(ck, false, undefined, zeros)).toBe(ck);
  });
  test("a head whose input width changes starts from a fresh draw", () => {
    const wide: PolicyCheckpoint = { ...ck, config: { ...ck.config, expert_width: 32 }, params: new Map([...ck.params].map(([n, p]) => [n, n === "value_head.weight" ? new Float32Array(32).fill(5) : p])) };
    const v = withValueInput(wide, true, undefined, () => 1);
    expect(v.params.get("value_head.weight")).toEqual(new Float32Array(ck.config.width).fill(0.02)); // N(0, 0.02²) draws of 1
  });
  test("value_hidden: an MLP head replaces the linear one (Kaiming hidden layers, N(0, 0.02²) last), everything else kept; saved and loaded back", () => {
    const v = withValueInput(ck, true, [6, 4], () => 1);
    expect(v.config.value_hidden).toEqual([6, 4]);
    const head = [...v.params.keys()].filter((n) => n.startsWith("value_head")).sort();
    expect(head).toEqual(["value_head.fc1.bias", "value_head.fc1.weight", "value_head.fc2.bias", "value_head.fc2.weight", "value_head.out.bias", "value_head.out.weight"]);
    expect(v.params.get("value_head.fc1.weight")).toEqual(new Float32Array(ck.config.width * 6).fill(Math.SQRT2 / Math.sqrt(ck.config.width)));
    expect(v.params.get("value_head.fc2.weight")).toEqual(new Float32Array(6 * 4).fill(Math.SQRT2 / Math.sqrt(6)));
    expect(v.params.get("value_head.out.weight")).toEqual(new Float32Array(4).fill(0.02));
    for (const [n, p] of ck.params) if (!n.startsWith("value_head")) expect(v.params.get(n)).toBe(p);
    expect(withValueInput(v, true, undefined, zeros)).toBe(v); // undefined keeps the checkpoint's head
    const dir = mkdtempSync(join(tmpdir(), "dexrl-vh-"));
    savePolicyCheckpoint(dir, v);
    const back = loadPolicyCheckpoint(dir);
    expect(back.config.value_hidden).toEqual([6, 4]);
    expect(back.params.get("value_head.fc2.weight")).toEqual(v.params.get("value_head.fc2.weight")!);
    rmSync(dir, { recursive: true });
  });
});
