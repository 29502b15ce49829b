// Checkpoint directories: config.json, model.safetensors, norm_stats.json and tokenizer.json,
// written atomically (a temporary directory renamed into place) and refused with a sentence naming
// the file and the problem when anything is missing, corrupt or does not match config.json.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { DexrlError } from "../errors.ts";
import { decodeSafetensors, encodeSafetensors, type Tensors } from "./safetensors.ts";
import { Tokenizer } from "./tokenizer.ts";

/** Per-dimension mean and std, as openpi's norm_stats.json keeps them. */
export interface Stats {
  mean: number[];
  std: number[];
}
export interface NormStats {
  state: Stats;
  actions: Stats;
}

export interface CheckpointData {
  config: Record<string, unknown>;
  tensors: Tensors;
  normStats: NormStats;
  tokenizer: Tokenizer;
}

export const FILES = {
  config: "config.json",
  model: "model.safetensors",
  normStats: "norm_stats.json",
  tokenizer: "tokenizer.json",
} as const;

/**
 * Writes the checkpoint (and any `extra` files, e.g. a trainer's state) into `dir`, replacing any
 * previous one only once the new one is complete.
 */
export function saveCheckpoint(dir: string, data: CheckpointData, extra: Record<string, Uint8Array | string> = {}): void {
  mkdirSync(dirname(dir), { recursive: true });
  const partial = join(dirname(dir), `.${basename(dir)}.partial-${process.pid}`);
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial);
  writeFileSync(join(partial, FILES.config), JSON.stringify(data.config, null, 2) + "\n");
  writeFileSync(join(partial, FILES.model), encodeSafetensors(data.tensors, { format: "pt", producer: "dexrl" }));
  writeFileSync(join(partial, FILES.normStats), JSON.stringify({ norm_stats: data.normStats }, null, 2) + "\n");
  writeFileSync(join(partial, FILES.tokenizer), JSON.stringify(data.tokenizer.toJSON()) + "\n");
  for (const [name, bytes] of Object.entries(extra)) writeFileSync(join(partial, name), bytes);
  if (existsSync(dir)) {
    const old = join(dirname(dir), `.${basename(dir)}.old-${process.pid}`);
    renameSync(dir, old);
    renameSync(partial, dir);
    rmSync(old, { recursive: true, force: true });
  } else renameSync(partial, dir);
}

function readJson(dir: string, file: string): unknown {
  const path = join(dir, file);
  if (!existsSync(path)) throw new DexrlError(`Checkpoint ${dir} has no ${file}.`);
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    throw new DexrlError(`Checkpoint file ${path} is not valid JSON (corrupt or truncated).`);
  }
}

function checkStats(path: string, key: string, s: unknown, dims: number | undefined): Stats {
  const st = s as Partial<Stats> | undefined;
  const ok = (a: unknown): a is number[] => Array.isArray(a) && a.every((x) => typeof x === "number" && Number.isFinite(x));
  if (!st || !ok(st.mean) || !ok(st.std) || st.mean.length !== st.std.length)
    throw new DexrlError(`Checkpoint file ${path} has no valid ${key} mean/std arrays.`);
  if (st.std.some((x) => x <= 0)) throw new DexrlError(`Checkpoint file ${path} has a non-positive ${key} std.`);
  if (dims !== undefined && st.mean.length !== dims)
    throw new DexrlError(`Checkpoint file ${path} has ${st.mean.length} ${key} dims but config.json says ${dims}.`);
  return { mean: st.mean, std: st.std };
}

/**
 * Loads and validates a checkpoint. `expectedShapes` maps config.json to the tensors the model
 * needs; every one must be present with that shape, and no unknown tensor may be there.
 */
export function loadCheckpoint(
  dir: string,
  expectedShapes?: (config: Record<string, unknown>) => Map<string, number[]>,
  dims?: (config: Record<string, unknown>) => { state: number; actions: number },
): CheckpointData {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new DexrlError(`Checkpoint ${dir} does not exist or is not a directory.`);
  const config = readJson(dir, FILES.config);
  if (typeof config !== "object" || config === null || Array.isArray(config))
    throw new DexrlError(`Checkpoint file ${join(dir, FILES.config)} must hold a JSON object.`);
  const cfg = config as Record<string, unknown>;

  const modelPath = join(dir, FILES.model);
  if (!existsSync(modelPath)) throw new DexrlError(`Checkpoint ${dir} has no ${FILES.model}.`);
  const { tensors } = decodeSafetensors(new Uint8Array(readFileSync(modelPath)), `Checkpoint file ${modelPath}`);
  if (expectedShapes) {
    const want = expectedShapes(cfg);
    for (const [name, shape] of want) {
      const got = tensors.get(name);
      if (!got) throw new DexrlError(`Checkpoint file ${modelPath} is missing tensor ${name} (config.json implies shape [${shape}]).`);
      if (got.shape.length !== shape.length || got.shape.some((d, i) => d !== shape[i]))
        throw new DexrlError(`Checkpoint file ${modelPath} has tensor ${name} of shape [${got.shape}] but config.json implies [${shape}].`);
    }
    for (const name of tensors.keys())
      if (!want.has(name)) throw new DexrlError(`Checkpoint file ${modelPath} has tensor ${name}, which the model in config.json does not have.`);
  }

  const nsPath = join(dir, FILES.normStats);
  const ns = (readJson(dir, FILES.normStats) as { norm_stats?: Partial<NormStats> }).norm_stats;
  const d = dims?.(cfg);
  const normStats = { state: checkStats(nsPath, "state", ns?.state, d?.state), actions: checkStats(nsPath, "actions", ns?.actions, d?.actions) };

  const tokPath = join(dir, FILES.tokenizer);
  let tokenizer: Tokenizer;
  try {
    tokenizer = Tokenizer.fromJSON(readJson(dir, FILES.tokenizer), tokPath);
  } catch (e) {
    if (e instanceof DexrlError) throw e;
    throw new DexrlError(`Checkpoint file ${(e as Error).message}.`);
  }
  return { config: cfg, tensors, normStats, tokenizer };
}
