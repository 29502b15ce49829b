// Small MJCF scenes and helpers shared by the renderer tests.
import load, { type MainModule, type MjData, type MjModel } from "mujoco-js";

let module: Promise<MainModule> | undefined;
export const mujoco = () => (module ??= load());

let counter = 0;
/** Compiles MJCF text; the caller deletes model and data. */
export async function compile(xml: string): Promise<{ mj: MainModule; m: MjModel; d: MjData }> {
  const mj = await mujoco();
  const path = `/render_test_${counter++}.xml`;
  mj.FS.writeFile(path, xml);
  const m = mj.MjModel.loadFromXML(path);
  mj.FS.unlink(path);
  const d = new mj.MjData(m);
  mj.mj_forward(m, d);
  return { mj, m, d };
}

/** Reference pinhole model of a MuJoCo camera: pixel (u, v) of world point p, v from the top row. */
export function pinhole(p: number[], camPos: ArrayLike<number>, camMat: ArrayLike<number>, fovyDeg: number, width: number, height: number) {
  const d = [p[0]! - camPos[0]!, p[1]! - camPos[1]!, p[2]! - camPos[2]!];
  // Camera axes are the columns of the row-major xmat; the camera looks along -z.
  const axis = (k: number) => d[0]! * camMat[k]! + d[1]! * camMat[3 + k]! + d[2]! * camMat[6 + k]!;
  const [x, y, z] = [axis(0), axis(1), axis(2)];
  const f = height / 2 / Math.tan((fovyDeg * Math.PI) / 360);
  return { u: width / 2 + (f * x) / -z, v: height / 2 - (f * y) / -z, depth: -z };
}

/** The world point at `depth` along camera ray through normalized offsets (a, b) of the image (−1…1). */
export function pointInView(camPos: ArrayLike<number>, camMat: ArrayLike<number>, depth: number, a: number, b: number, fovyDeg: number) {
  const t = Math.tan((fovyDeg * Math.PI) / 360);
  return [0, 1, 2].map((i) => camPos[i]! + depth * (-camMat[3 * i + 2]! + a * t * camMat[3 * i]! + b * t * camMat[3 * i + 1]!));
}

/** RGB of pixel (x, y) of image `index` in a [N, H, W, 3] byte array. */
export function pixel(images: Uint8Array, index: number, width: number, height: number, x: number, y: number): number[] {
  const o = ((index * height + y) * width + x) * 3;
  return [images[o]!, images[o + 1]!, images[o + 2]!];
}
