// Policy checkpoints: a checkpoint directory whose config.json is a ModelConfig and whose tensors
// are exactly the parameters that config implies.
import { join } from "node:path";
import { DexrlError } from "../errors.ts";
import { resolveModelPath } from "./bundled.ts";
import { FILES, loadCheckpoint, saveCheckpoint, type NormStats } from "./checkpoint.ts";
import { parameterShapes, validateModelConfig, type ModelConfig } from "./config.ts";
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
