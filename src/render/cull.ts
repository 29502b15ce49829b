// Per-layer view-frustum culling on the CPU: the geom slots a camera may see, as runs of the index
// buffer. A software rasterizer pays for every vertex it transforms, and a wrist camera sees little.
import type { RenderModel } from "./model.ts";

/** Camera projection constants, as in the shader: clip x and y scales, near and far (metres). */
export interface Projection {
  kx: number;
  ky: number;
  near: number;
  far: number;
}

export class DrawLists {
  readonly first: Uint32Array; // [layers, S] first index of each run of visible slots
  readonly count: Uint32Array; // [layers, S] indices in each run
  readonly runs: Uint32Array; // [layers]
  private readonly slots: number;

  constructor(layers: number, private readonly model: RenderModel) {
    this.slots = model.geomIds.length;
    this.first = new Uint32Array(layers * this.slots);
    this.count = new Uint32Array(layers * this.slots);
    this.runs = new Uint32Array(layers);
  }

  /**
   * Fills layer `l` for camera `cam` from one env's pose rows `rows` ([S + N_cam, 3, 4], [R | t]
   * per slot, then per camera). A slot is kept unless its bounding sphere lies wholly outside one
   * plane of the frustum, so culling never changes a pixel.
   */
  fill(l: number, rows: Float32Array, cam: number, p: Projection): void {
    const { model, slots } = this;
    const c = 12 * (slots + cam);
    const eye = [rows[c + 3]!, rows[c + 7]!, rows[c + 11]!];
    // Camera axes are the columns of R.
    const ax = [rows[c]!, rows[c + 4]!, rows[c + 8]!], ay = [rows[c + 1]!, rows[c + 5]!, rows[c + 9]!], az = [rows[c + 2]!, rows[c + 6]!, rows[c + 10]!];
    const sx = Math.hypot(p.kx, 1), sy = Math.hypot(p.ky, 1);
    let runs = 0, open = false;
    const base = l * slots;
    for (let s = 0; s < slots; s++) {
      const o = 12 * s;
      const d0 = rows[o + 3]! - eye[0]!, d1 = rows[o + 7]! - eye[1]!, d2 = rows[o + 11]! - eye[2]!;
      const x = d0 * ax[0]! + d1 * ax[1]! + d2 * ax[2]!;
      const y = d0 * ay[0]! + d1 * ay[1]! + d2 * ay[2]!;
      const depth = -(d0 * az[0]! + d1 * az[1]! + d2 * az[2]!);
      const r = model.radius[s]!;
      const visible =
        depth + r > p.near && depth - r < p.far &&
        Math.abs(x) * p.kx - depth <= r * sx && Math.abs(y) * p.ky - depth <= r * sy;
      if (!visible) {
        open = false;
        continue;
      }
      if (open) this.count[base + runs - 1]! += model.indexCount[s]!;
      else {
        this.first[base + runs] = model.firstIndex[s]!;
        this.count[base + runs] = model.indexCount[s]!;
        runs++;
        open = true;
      }
    }
    this.runs[l] = runs;
  }
}
