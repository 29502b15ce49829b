// Checkpoint directories: config.json, model.safetensors, norm_stats.json and tokenizer.json,
// written atomically (a hidden temporary directory, every file fsynced, renamed into place) and
// refused with a sentence naming the file and the problem when anything is missing, corrupt,
// non-finite or does not match config.json. A missing checkpoint or file is bad input (exit code 2);
// a damaged one is a failure (exit code 1).
import { resolveModelPath } from "./bundled.ts";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { DexrlError, usageError } from "../errors.ts";
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

/** Writes `bytes` to `path` and forces them to disk before returning. */
function writeDurable(path: string, bytes: Uint8Array | string): void {
  const fd = openSync(path, "w");
  try {
    const buf = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : bytes;
    for (let at = 0; at < buf.length; ) at += writeSync(fd, buf, at, buf.length - at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Forces a directory's entries (a rename, a new file) to disk. */
function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The hidden names saveCheckpoint uses beside a checkpoint `name` while writing it: `.name.partial-PID`, `.name.old-PID`. */
const TEMP_NAME = /^\.(.+)\.(partial|old)-(\d+)$/;

const isAlive = (pid: number) => {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === "EPERM"; // alive, owned by someone else
  }
};

/**
 * Cleans up after a process that died while writing a checkpoint into `parent` (kill -9, power loss):
 * its hidden partial directories are removed, and a previous checkpoint it had set aside (`.old`)
 * goes back into place when the new one never arrived, or is removed when it did. Directories of a
 * process still running are left alone. Returns what it did, one line per directory.
 */
export function recoverInterruptedSaves(parent: string): string[] {
  if (!existsSync(parent)) return [];
  const done: string[] = [];
  for (const entry of readdirSync(parent)) {
    const m = TEMP_NAME.exec(entry);
    if (!m || isAlive(Number(m[3]))) continue;
    const path = join(parent, entry);
    const target = join(parent, m[1]!);
    if (m[2] === "old" && !existsSync(target)) {
      renameSync(path, target);
      done.push(`restored ${target} from an interrupted save`);
    } else {
      rmSync(path, { recursive: true, force: true });
      done.push(`removed ${path} left by an interrupted save`);
    }
  }
  if (done.length) fsyncDir(parent);
  return done;
}

/**
 * Writes the checkpoint (and any `extra` files, e.g. a trainer's state) into `dir`, replacing any
 * previous one only once the new one is complete and on disk.
 */
export function saveCheckpoint(dir: string, data: CheckpointData, extra: Record<string, Uint8Array | string> = {}): void {
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true });
  recoverInterruptedSaves(parent);
  const partial = join(parent, `.${basename(dir)}.partial-${process.pid}`);
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial);
  writeDurable(join(partial, FILES.config), JSON.stringify(data.config, null, 2) + "\n");
  writeDurable(join(partial, FILES.model), encodeSafetensors(data.tensors, { format: "pt", producer: "dexrl" }));
  writeDurable(join(partial, FILES.normStats), JSON.stringify({ norm_stats: data.normStats }, null, 2) + "\n");
  writeDurable(join(partial, FILES.tokenizer), JSON.stringify(data.tokenizer.toJSON()) + "\n");
  for (const [name, bytes] of Object.entries(extra)) writeDurable(join(partial, name), bytes);
  fsyncDir(partial);
  if (existsSync(dir)) {
    const old = join(parent, `.${basename(dir)}.old-${process.pid}`);
    renameSync(dir, old);
    renameSync(partial, dir);
    fsyncDir(parent);
    rmSync(old, { recursive: true, force: true });
  } else renameSync(partial, dir);
  fsyncDir(parent);
}

/** A sentence's ending that says where the checkpoints are when `dir` is a run folder or a checkpoints folder. */
function checkpointHint(dir: string): string {
  const steps = (d: string) =>
    existsSync(d) && statSync(d).isDirectory()
      ? readdirSync(d)
          .filter((n) => /^global_step_\d+$/.test(n))
          .sort((a, b) => Number(a.slice(12)) - Number(b.slice(12)))
      : [];
  const inRun = steps(join(dir, "checkpoints"));
  if (inRun.length) return ` (it looks like a run folder; its latest checkpoint is ${join(dir, "checkpoints", inRun.at(-1)!)})`;
  const here = steps(dir);
  if (here.length) return ` (it holds checkpoints; the latest is ${join(dir, here.at(-1)!)})`;
  return "";
}

function readJson(dir: string, file: string): unknown {
  const path = join(dir, file);
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    throw new DexrlError(`Checkpoint file ${path} is not valid JSON (corrupt or truncated).`);
  }
}

/**
 * Refuses tensors holding NaN or ±Infinity (a run that diverged), naming the first such tensor, where
 * and how many. `label` starts the sentence ("Checkpoint file …/model.safetensors").
 */
export function checkFinite(tensors: Tensors, label: string, what = "weights"): void {
  for (const [name, { data }] of tensors) {
    let first = -1;
    let count = 0;
    for (let i = 0; i < data.length; i++)
      if (!Number.isFinite(data[i]!)) {
        if (first < 0) first = i;
        count++;
      }
    if (first >= 0)
      throw new DexrlError(
        `${label} has non-finite ${what}: tensor ${name} holds ${data[first]} at index ${first} (${count} of ${data.length} values are NaN or infinite), as a diverged run leaves them; use an earlier checkpoint.`,
      );
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
 * Checks, without reading them, that `dir` is a folder holding a checkpoint's files; the sentence
 * names what is missing (bad input, exit code 2). Cheap enough to run before any other work.
 */
export function checkCheckpointDir(path: string): void {
  const dir = resolveModelPath(path);
  if (!existsSync(dir)) throw usageError(`Checkpoint ${dir} does not exist.`);
  if (!statSync(dir).isDirectory()) throw usageError(`Checkpoint ${dir} is a file; a checkpoint is a folder holding ${Object.values(FILES).join(", ")}.`);
  for (const file of Object.values(FILES)) if (!existsSync(join(dir, file))) throw usageError(`Checkpoint ${dir} has no ${file}${checkpointHint(dir)}.`);
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
  checkCheckpointDir(dir);
  const config = readJson(dir, FILES.config);
  if (typeof config !== "object" || config === null || Array.isArray(config))
    throw new DexrlError(`Checkpoint file ${join(dir, FILES.config)} must hold a JSON object.`);
  const cfg = config as Record<string, unknown>;

  const modelPath = join(dir, FILES.model);
  const { tensors } = decodeSafetensors(new Uint8Array(readFileSync(modelPath)), `Checkpoint file ${modelPath}`);
  checkFinite(tensors, `Checkpoint file ${modelPath}`);
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
