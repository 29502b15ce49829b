// Loads the MuJoCo wasm module (once per thread) and compiles MJCF text into a model.
import loadMujoco, { type MainModule, type MjModel } from "mujoco-js";
import { DexrlError } from "../errors.ts";

export type Mujoco = MainModule;

let module: Promise<Mujoco> | undefined;

/** The MuJoCo module of this thread (each Bun Worker has its own wasm instance). */
export function mujoco(): Promise<Mujoco> {
  module ??= loadMujoco() as Promise<Mujoco>;
  return module;
}

let fileCount = 0;

/** Compiles MJCF text; a compile error becomes a DexrlError that quotes MuJoCo's message. */
export function loadModel(mj: Mujoco, xml: string): MjModel {
  const dir = "/dexrl";
  if (!mj.FS.analyzePath(dir).exists) mj.FS.mkdir(dir);
  const path = `${dir}/scene${fileCount++}.xml`;
  mj.FS.writeFile(path, xml);
  try {
    return mj.MjModel.loadFromXML(path);
  } catch (err) {
    const msg = typeof err === "number" ? mj.getExceptionMessage?.(err)?.join(" ") : (err as Error)?.message;
    throw new DexrlError(`MuJoCo could not compile the scene: ${msg ?? String(err)}`, 1, { cause: err });
  } finally {
    mj.FS.unlink(path);
  }
}
