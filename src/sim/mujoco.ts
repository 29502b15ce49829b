// Loads the MuJoCo wasm module (once per thread) and compiles MJCF text into a model.
import loadMujoco, { type MainModule, type MjModel } from "mujoco-js";
import { DexrlError } from "../errors.ts";
import { nativeLog } from "../log/console.ts";

export type Mujoco = MainModule;

let module: Promise<Mujoco> | undefined;

/**
 * The MuJoCo module of this thread (each Bun Worker has its own wasm instance). What MuJoCo prints
 * (its warnings, such as "Nan, Inf or huge value in QACC", go to stdout by default and would corrupt
 * `--json` output) goes to nativeLog: on stderr with --debug, otherwise kept for error messages.
 */
export function mujoco(): Promise<Mujoco> {
  const log = (text: string) => nativeLog("mujoco", text);
  module ??= loadMujoco({ print: log, printErr: log });
  return module;
}

let fileCount = 0;

/** Compiles MJCF text; a compile error becomes a DexrlError. */
export function loadModel(mj: Mujoco, xml: string): MjModel {
  const dir = "/dexrl";
  if (!mj.FS.analyzePath(dir, false).exists) mj.FS.mkdir(dir);
  const path = `${dir}/scene${fileCount++}.xml`;
  mj.FS.writeFile(path, xml);
  try {
    return mj.MjModel.loadFromXML(path);
  } catch (err) {
    // The wasm build throws a C++ exception whose text it does not keep; its name (mjXError) is all there is.
    throw new DexrlError(`MuJoCo could not compile the scene (${(err as Error)?.name ?? String(err)})`, 1, { cause: err });
  } finally {
    mj.FS.unlink(path);
  }
}
