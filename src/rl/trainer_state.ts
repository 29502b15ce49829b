// What a PPO run needs beyond the policy checkpoint to resume: the global step and AdamW's state
// (step, learning rates, first and second moments), kept beside the checkpoint's files.
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DexrlError, usageError } from "../errors.ts";
import type { LearnerState } from "../engine/learner.ts";
import { checkFinite } from "../model/checkpoint.ts";
import { decodeSafetensors, encodeSafetensors, type Tensors } from "../model/safetensors.ts";

const STATE = "trainer_state.json";
const MOMENTS = "optimizer.safetensors";

export interface TrainerState {
  globalStep: number;
  optimizer: LearnerState;
  /** env.train.task_sampling by_failure's per-task success estimate (null: none yet, or uniform sampling). */
  taskSuccess?: number[] | null;
}

/** The files (trainer_state.json, optimizer.safetensors) to write beside a checkpoint's own. */
export function trainerStateFiles(s: TrainerState): Record<string, Uint8Array | string> {
  const tensors: Tensors = new Map();
  for (const [name, m] of Object.entries(s.optimizer.m)) tensors.set(`m.${name}`, { shape: [m.length], data: m });
  for (const [name, v] of Object.entries(s.optimizer.v)) tensors.set(`v.${name}`, { shape: [v.length], data: v });
  const files: Record<string, Uint8Array | string> = {
    [MOMENTS]: encodeSafetensors(tensors),
    [STATE]: JSON.stringify({ global_step: s.globalStep, adamw_step: s.optimizer.step, lrs: s.optimizer.lrs, task_success: s.taskSuccess ?? null }, null, 2) + "\n",
  };
  // The resume tests' kill "during a checkpoint write": the writer reads these entries after it has
  // written the checkpoint's own files into its hidden partial folder, before these and the rename.
  if (process.env[KILL_AT] === `checkpoint:${s.globalStep}`) Object.defineProperty(files, STATE, { enumerable: true, get: () => process.kill(process.pid, "SIGKILL") });
  return files;
}

/**
 * For the resume tests only: DEXRL_TEST_KILL_AT=<point>:<global step> (point: rollout, update or
 * checkpoint) makes the process SIGKILL itself the first time it reaches that point of that step:
 * after the first policy call of the rollout, after the first optimizer step of the update, or in
 * the middle of writing the step's checkpoint. Unset, it does nothing.
 */
export const KILL_AT = "DEXRL_TEST_KILL_AT";
export function testKillPoint(point: string, globalStep: number): void {
  if (process.env[KILL_AT] === `${point}:${globalStep}`) process.kill(process.pid, "SIGKILL");
}

export interface TrainerMeta {
  globalStep: number;
  adamwStep: number;
  lrs: number[];
  taskSuccess: number[] | null;
}

/**
 * Checks that `dir` can be resumed from (a folder with trainer_state.json and optimizer.safetensors)
 * and reads trainer_state.json; cheap enough to run before any work. A missing folder or file is bad
 * input (exit code 2), a damaged file a failure (exit code 1).
 */
export function readTrainerMeta(dir: string): TrainerMeta {
  if (!existsSync(dir)) throw usageError(`Cannot resume from ${dir}: it does not exist.`);
  if (!statSync(dir).isDirectory()) throw usageError(`Cannot resume from ${dir}: it is a file, not a checkpoint folder.`);
  const path = join(dir, STATE);
  if (!existsSync(path)) throw usageError(`Cannot resume from ${dir}: it has no ${STATE} (is it a checkpoint written by dexrl train?).`);
  if (!existsSync(join(dir, MOMENTS)))
    throw usageError(`Cannot resume from ${dir}: it has ${STATE} but no ${MOMENTS} (AdamW's moments), so the optimizer cannot continue where it stopped.`);
  let meta: { global_step?: unknown; adamw_step?: unknown; lrs?: unknown; task_success?: unknown };
  try {
    meta = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    throw new DexrlError(`Checkpoint file ${path} is not valid JSON (corrupt or truncated).`);
  }
  if (typeof meta !== "object" || meta === null || Array.isArray(meta)) throw new DexrlError(`Checkpoint file ${path} must hold a JSON object.`);
  const count = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= 0;
  if (!count(meta.global_step)) throw new DexrlError(`Checkpoint file ${path} has global_step ${JSON.stringify(meta.global_step)}; it must be an integer ≥ 0.`);
  if (!count(meta.adamw_step)) throw new DexrlError(`Checkpoint file ${path} has adamw_step ${JSON.stringify(meta.adamw_step)}; it must be an integer ≥ 0.`);
  if (!Array.isArray(meta.lrs) || !meta.lrs.every((x) => typeof x === "number" && Number.isFinite(x) && x > 0))
    throw new DexrlError(`Checkpoint file ${path} has lrs ${JSON.stringify(meta.lrs)}; it must be a list of positive learning rates.`);
  // Absent in checkpoints written before env.train.task_sampling existed: no estimate yet.
  const ts = meta.task_success ?? null;
  if (ts !== null && !(Array.isArray(ts) && ts.every((x) => typeof x === "number" && x >= 0 && x <= 1)))
    throw new DexrlError(`Checkpoint file ${path} has task_success ${JSON.stringify(ts)}; it must be null or a list of success rates in [0, 1].`);
  return { globalStep: meta.global_step as number, adamwStep: meta.adamw_step as number, lrs: meta.lrs as number[], taskSuccess: ts as number[] | null };
}

/** Reads what trainerStateFiles wrote; the message names the file when it is missing or damaged. */
export function loadTrainerState(dir: string): TrainerState {
  const meta = readTrainerMeta(dir);
  const path = join(dir, MOMENTS);
  const { tensors } = decodeSafetensors(new Uint8Array(readFileSync(path)), `Checkpoint file ${path}`);
  checkFinite(tensors, `Checkpoint file ${path}`, "optimizer moments");
  const optimizer: LearnerState = { step: meta.adamwStep, lrs: meta.lrs, m: {}, v: {} };
  for (const [key, t] of tensors) {
    const kind = key.slice(0, 2);
    if (kind !== "m." && kind !== "v.") throw new DexrlError(`Checkpoint file ${path} has tensor ${key}; AdamW's moments are named m.<parameter> and v.<parameter>.`);
    if (kind === "v." && t.data.some((x) => x < 0)) throw new DexrlError(`Checkpoint file ${path} has negative second moments in ${key}; they are squares and cannot be negative.`);
    (kind === "m." ? optimizer.m : optimizer.v)[key.slice(2)] = t.data;
  }
  return { globalStep: meta.globalStep, optimizer, taskSuccess: meta.taskSuccess };
}

/**
 * Refuses to continue AdamW's state for a different set of trained parameters than the one it was
 * saved for (a resume with another `setting`, e.g. actor.model.dexbotic.train_expert_only=false),
 * with a sentence naming the setting; the moments of one set mean nothing for another.
 */
export function checkTrainedParameters(state: LearnerState, names: string[], dir: string, setting: string): void {
  const want = new Set(names);
  const missing = names.filter((n) => !state.m[n] || !state.v[n]);
  const extra = Object.keys(state.m).filter((n) => !want.has(n));
  if (!missing.length && !extra.length) return;
  const saved = Object.keys(state.m).length;
  const example = missing.length ? `it has none for ${missing[0]}` : `it has them for ${extra[0]}, which this run would not train`;
  throw usageError(
    `Cannot resume from ${dir} with ${setting}: its optimizer state holds AdamW moments for ${saved} parameters and this run would train ${names.length} (${example}); the trained parameters cannot change on resume. ` +
      `Resume with the setting the run was trained with, or start a new run from these weights with actor.model.model_path=${dir}.`,
  );
}

const RESUME_CONFIG = /^config\.resume_(\d+)\.yaml$/;

/**
 * Records in the run folder what ran: a new run writes config.yaml; a run resumed at global step
 * `resumedAt` in a folder that already has config.yaml keeps it (what ran up to the first resume)
 * and writes config.resume_<resumedAt>.yaml (what runs from step resumedAt + 1 on), removing the
 * records of resumes after that step (their steps are discarded and run again). Written to a
 * temporary name and renamed, so a kill leaves no half file. Returns the file written.
 */
export function writeRunConfig(runDir: string, yaml: string, resumedAt?: number): string {
  const continuing = resumedAt !== undefined && existsSync(join(runDir, "config.yaml"));
  const name = continuing ? `config.resume_${resumedAt}.yaml` : "config.yaml";
  if (continuing)
    for (const f of readdirSync(runDir)) {
      const m = RESUME_CONFIG.exec(f);
      if (m && Number(m[1]) > resumedAt) rmSync(join(runDir, f), { force: true });
    }
  const path = join(runDir, name);
  const tmp = join(runDir, `.${name}.partial-${process.pid}`);
  writeFileSync(tmp, yaml);
  renameSync(tmp, path);
  return path;
}
