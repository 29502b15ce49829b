// What a PPO run needs beyond the policy checkpoint to resume: the global step and AdamW's state
// (step, learning rates, first and second moments), kept beside the checkpoint's files.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DexrlError } from "../errors.ts";
import type { AdamWState } from "../gpu/optim.ts";
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

/** Reads what trainerStateFiles wrote; the message names the file when it is missing or damaged. */
export function loadTrainerState(dir: string): TrainerState {
  const path = join(dir, STATE);
  if (!existsSync(path)) throw new DexrlError(`Cannot resume from ${dir}: it has no ${STATE} (is it a checkpoint written by dexrl train?).`, 2);
  let meta: { global_step?: unknown; adamw_step?: unknown; lrs?: unknown };
  try {
    meta = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    throw new DexrlError(`Checkpoint file ${path} is not valid JSON (corrupt or truncated).`);
  }
  if (!Number.isInteger(meta.global_step) || !Number.isInteger(meta.adamw_step) || !Array.isArray(meta.lrs))
    throw new DexrlError(`Checkpoint file ${path} lacks global_step, adamw_step or lrs.`);
  const { tensors } = decodeSafetensors(new Uint8Array(readFileSync(join(dir, MOMENTS))), `Checkpoint file ${join(dir, MOMENTS)}`);
  const optimizer: AdamWState = { step: meta.adamw_step as number, lrs: meta.lrs as number[], m: {}, v: {} };
  for (const [key, t] of tensors) (key.startsWith("m.") ? optimizer.m : optimizer.v)[key.slice(2)] = t.data;
  return { globalStep: meta.global_step as number, optimizer };
}
