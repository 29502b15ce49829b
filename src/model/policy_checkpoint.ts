// Policy checkpoints: a checkpoint directory whose config.json is a ModelConfig and whose tensors
// are exactly the parameters that config implies.
import { join } from "node:path";
import { DexrlError } from "../errors.ts";
import { resolveModelPath } from "./bundled.ts";
import { FILES, loadCheckpoint, saveCheckpoint, type NormStats } from "./checkpoint.ts";
import { numel } from "../engine/shape.ts";
import { initParameters, parameterShapes, validateModelConfig, type ModelConfig } from "./config.ts";
import type { Tokenizer } from "./tokenizer.ts";

export interface PolicyCheckpoint {
  config: ModelConfig;
  params: Map<string, Float32Array>;
  normStats: NormStats;
  tokenizer: Tokenizer;
}

/** Loads a policy checkpoint folder (the bundled checkpoint's name resolves to its embedded files). */
export function loadPolicyCheckpoint(path: string): PolicyCheckpoint {
  const dir = resolveModelPath(path);
  const asModel = (raw: Record<string, unknown>) => {
    const c = raw as unknown as ModelConfig;
    try {
      validateModelConfig(c);
    } catch (e) {
      throw new DexrlError(`Checkpoint file ${join(dir, FILES.config)}: ${(e as Error).message.replace(/^config\.json /, "")}.`);
    }
    return c;
  };
  const ck = loadCheckpoint(
    dir,
    (raw) => parameterShapes(asModel(raw)),
    (raw) => ({ state: asModel(raw).state_dim, actions: asModel(raw).action_dim }),
  );
  const config = ck.config as unknown as ModelConfig;
  if (ck.tokenizer.vocabSize !== config.vocab_size)
    throw new DexrlError(`Checkpoint ${dir}: tokenizer.json has ${ck.tokenizer.vocabSize} tokens but config.json says vocab_size ${config.vocab_size}.`);
  if (ck.tokenizer.maxLength !== config.max_text_len)
    throw new DexrlError(`Checkpoint ${dir}: tokenizer.json has max_length ${ck.tokenizer.maxLength} but config.json says max_text_len ${config.max_text_len}.`);
  return { config, params: new Map([...ck.tensors].map(([n, t]) => [n, t.data])), normStats: ck.normStats, tokenizer: ck.tokenizer };
}

export function savePolicyCheckpoint(dir: string, p: PolicyCheckpoint, extra: Record<string, Uint8Array | string> = {}): void {
  const shapes = parameterShapes(p.config);
  saveCheckpoint(
    dir,
    {
      config: p.config as unknown as Record<string, unknown>,
      tensors: new Map([...shapes].map(([n, shape]) => [n, { shape, data: p.params.get(n)! }])),
      normStats: p.normStats,
      tokenizer: p.tokenizer,
    },
    extra,
  );
}

/**
 * The checkpoint with its value head reading the prefix's pooled output (value_after_vlm) or the
 * action tokens, through `hidden` ReLU layers (undefined: the checkpoint's). A layer whose name and
 * size stay keeps its weights (an SFT checkpoint's head never trained, and PPO's critic warm-up fits
 * it either way); any other starts from initParameters' draw. The prefix's final norm that the
 * pooled output needs starts at gain 1, or is dropped.
 */
export function withValueInput(ck: PolicyCheckpoint, valueAfterVlm: boolean, hidden: number[] | undefined, normal: () => number): PolicyCheckpoint {
  const valueHidden = hidden ?? ck.config.value_hidden ?? [];
  if (ck.config.value_after_vlm === valueAfterVlm && String(ck.config.value_hidden ?? []) === String(valueHidden)) return ck;
  const config: ModelConfig = { ...ck.config, value_after_vlm: valueAfterVlm, value_hidden: valueHidden };
  const fresh = initParameters(config, normal);
  const params = new Map<string, Float32Array>();
  for (const [name, shape] of parameterShapes(config)) {
    const old = ck.params.get(name);
    params.set(name, old && old.length === numel(shape) ? old : fresh.get(name)!);
  }
  return { ...ck, config, params };
}
