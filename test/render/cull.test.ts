// Culling is conservative: every geom slot with any point of its bounding sphere inside the view
// frustum is kept; a sphere far outside is dropped.
import { expect, test } from "bun:test";
import { DrawLists } from "../../src/render/cull.ts";
import type { RenderModel } from "../../src/render/model.ts";

test("every slot whose bounding sphere reaches into the frustum is drawn", () => {
  const S = 400;
  let seed = 3;
  const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  // Slot s: 10 indices starting at 10·s, a sphere of radius 0.05-0.3 m somewhere around the camera.
  const radius = Float32Array.from({ length: S }, () => 0.175 + 0.125 * rand());
  const model = { geomIds: new Int32Array(S), radius, firstIndex: Uint32Array.from({ length: S }, (_, s) => 10 * s), indexCount: new Uint32Array(S).fill(10) } as unknown as RenderModel;
  const rows = new Float32Array(12 * (S + 1));
  const centres = Array.from({ length: S }, () => [3 * rand(), 3 * rand(), 3 * rand()]);
  centres.forEach((c, s) => rows.set([1, 0, 0, c[0]!, 0, 1, 0, c[1]!, 0, 0, 1, c[2]!], 12 * s));
  // The camera at (0.2, -0.1, 0.3), turned 30° about world x: R's columns are its axes.
  const [co, si] = [Math.cos(Math.PI / 6), Math.sin(Math.PI / 6)];
  const R = [1, 0, 0, 0, co, -si, 0, si, co];
  const eye = [0.2, -0.1, 0.3];
  rows.set([R[0]!, R[1]!, R[2]!, eye[0]!, R[3]!, R[4]!, R[5]!, eye[1]!, R[6]!, R[7]!, R[8]!, eye[2]!], 12 * S);
  const p = { kx: 1.5, ky: 2, near: 0.05, far: 4 };
  const lists = new DrawLists(1, model);
  lists.fill(0, rows, 0, p);
  const kept = new Set<number>();
  for (let k = 0; k < lists.runs[0]!; k++) for (let i = lists.first[k]!; i < lists.first[k]! + lists.count[k]!; i += 10) kept.add(i / 10);

  // Reference: sample each sphere densely and project the samples with the pinhole.
  let inside = 0;
  centres.forEach((c, s) => {
    let seen = false;
    for (let i = 0; i < 2000 && !seen; i++) {
      const dir = [rand(), rand(), rand()];
      const len = Math.hypot(dir[0]!, dir[1]!, dir[2]!);
      const q = [0, 1, 2].map((k) => c[k]! + (radius[s]! * dir[k]!) / len - eye[k]!);
      const x = q[0]! * R[0]! + q[1]! * R[3]! + q[2]! * R[6]!;
      const y = q[0]! * R[1]! + q[1]! * R[4]! + q[2]! * R[7]!;
      const depth = -(q[0]! * R[2]! + q[1]! * R[5]! + q[2]! * R[8]!);
      seen = depth > p.near && depth < p.far && Math.abs((p.kx * x) / depth) <= 1 && Math.abs((p.ky * y) / depth) <= 1;
    }
    if (seen) {
      inside++;
      expect(kept.has(s), `slot ${s} is visible but was culled`).toBe(true);
    }
  });
  // The test has teeth only if some slots are visible and many are dropped.
  expect(inside).toBeGreaterThan(20);
  expect(kept.size).toBeLessThan(S / 2);
});
