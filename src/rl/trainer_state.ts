// What a PPO run needs beyond the policy checkpoint to resume: the global step and AdamW's state
// (step, learning rates, first and second moments), kept beside the checkpoint's files.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { DexrlError, usageError } from "../errors.ts";
import type { AdamWState } from "../gpu/optim.ts";
import { checkFinite } from "../model/checkpoint.ts";
import { decodeSafetensors, encodeSafetensors, type Tensors } from "../model/safetensors.ts";

const STATE = "trainer_state.json";
const MOMENTS = "optimizer.safetensors";

export interface TrainerState {
  globalStep: number;
  optimizer: AdamWState;
}

/** The files (trainer_state.json, optimizer.safetensors) to write beside a checkpoint's own. */
export function trainerStateFiles(s: TrainerState): Record<string, Uint8Array | string> {
  const tensors: Tensors = new Map();
  for (const [name, m] of Object.entries(s.optimizer.m)) tensors.set(`m.${name}`, { shape: [m.length], data: m });
  for (const [name, v] of Object.entries(s.optimizer.v)) tensors.set(`v.${name}`, { shape: [v.length], data: v });
  return {
    [MOMENTS]: encodeSafetensors(tensors),
    [STATE]: JSON.stringify({ global_step: s.globalStep, adamw_step: s.optimizer.step, lrs: s.optimizer.lrs }, null, 2) + "\n",
  };
}

export interface TrainerMeta {
  globalStep: number;
  adamwStep: number;
  lrs: number[];
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
  let meta: { global_step?: unknown; adamw_step?: unknown; lrs?: unknown };
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
  return { globalStep: meta.global_step as number, adamwStep: meta.adamw_step as number, lrs: meta.lrs as number[] };
}

/** Reads what trainerStateFiles wrote; the message names the file when it is missing or damaged. */
export function loadTrainerState(dir: string): TrainerState {
  const meta = readTrainerMeta(dir);
  const path = join(dir, MOMENTS);
  const { tensors } = decodeSafetensors(new Uint8Array(readFileSync(path)), `Checkpoint file ${path}`);
  checkFinite(tensors, `Checkpoint file ${path}`, "optimizer moments");
  const optimizer: AdamWState = { step: meta.adamwStep, lrs: meta.lrs, m: {}, v: {} };
  for (const [key, t] of tensors) {
    const kind = key.slice(0, 2);
    if (kind !== "m." && kind !== "v.") throw new DexrlError(`Checkpoint file ${path} has tensor ${key}; AdamW's moments are named m.<parameter> and v.<parameter>.`);
    if (kind === "v." && t.data.some((x) => x < 0)) throw new DexrlError(`Checkpoint file ${path} has negative second moments in ${key}; they are squares and cannot be negative.`);
    (kind === "m." ? optimizer.m : optimizer.v)[key.slice(2)] = t.data;
  }
  return { globalStep: meta.globalStep, optimizer };
}
