// Mesh geoms and textured materials: a cube given as a mesh draws like the box primitive, and a
// textured material shows its texture's mean colour (texture mapping itself is not drawn).
import { expect, test } from "bun:test";
import { getGpu } from "../../src/engine/device.ts";
import { extractRenderModel } from "../../src/render/model.ts";
import { BatchRenderer, framePoses } from "../../src/render/renderer.ts";
import { compile, pinhole, pixel } from "./scenes.ts";

const gpu = await getGpu();
const W = 64, H = 64;

async function renderOne(body: string, assets = "") {
  const { mj, m, d } = await compile(`<mujoco>
    <visual><headlight active="0"/></visual>
    <asset>${assets}</asset>
    <worldbody>
      <light directional="true" dir="-0.3 0.5 -0.8" diffuse="0.6 0.6 0.6" ambient="0.3 0.3 0.3" specular="0 0 0"/>
      <camera name="eye" pos="0.9 -1.2 1.1" xyaxes="0.8 0.6 0 -0.3 0.4 0.87"/>
      ${body}
    </worldbody>
  </mujoco>`);
  const renderer = new BatchRenderer(gpu, extractRenderModel(mj, m, { cameras: ["eye"] }), { maxEnvs: 1, width: W, height: H });
  try {
    return { image: await renderer.render([framePoses(d)]), camPos: [...d.cam_xpos], camMat: [...d.cam_xmat] };
  } finally {
    renderer.destroy();
    d.delete();
    m.delete();
  }
}

test("a cube given as a mesh draws like the box primitive", async () => {
  const matte = `<material name="matte" specular="0"/>`;
  const corners = [-1, 1].flatMap((x) => [-1, 1].flatMap((y) => [-1, 1].map((z) => `${0.2 * x} ${0.2 * y} ${0.2 * z}`))).join("  ");
  const box = await renderOne(`<geom type="box" size="0.2 0.2 0.2" rgba="0.2 0.6 0.9 1" material="matte"/>`, matte);
  const mesh = await renderOne(`<geom type="mesh" mesh="cube" rgba="0.2 0.6 0.9 1" material="matte"/>`, `${matte}<mesh name="cube" vertex="${corners}"/>`);
  let lit = 0, maxDiff = 0, differing = 0;
  for (let p = 0; p < W * H; p++) if (box.image[3 * p]! + box.image[3 * p + 1]! + box.image[3 * p + 2]! > 0) lit++;
  for (let i = 0; i < box.image.length; i++) {
    const diff = Math.abs(box.image[i]! - mesh.image[i]!);
    maxDiff = Math.max(maxDiff, diff);
    if (diff > 2) differing++;
  }
  expect(lit).toBeGreaterThan(W * H * 0.1); // the cube covers a good part of the view
  // Same faces, same flat normals: only pixels on edges may fall to the other side.
  expect(differing, `max difference ${maxDiff}`).toBeLessThan(W * H * 3 * 0.01);
}, 60_000);

test("a textured material shows the texture's mean colour times the material colour", async () => {
  // A checker of white and mid-grey squares averages to 0.75; the material colour is (0.8, 0.4, 0.8).
  const assets = `<texture name="checks" type="2d" builtin="checker" rgb1="1 1 1" rgb2="0.5 0.5 0.5" width="16" height="16"/>
    <material name="checked" texture="checks" rgba="0.8 0.4 0.8 1" specular="0"/>`;
  const { image, camPos, camMat } = await renderOne(`<geom type="box" size="0.2 0.2 0.2" material="checked"/>`, assets);
  const toLight = [0.3, -0.5, 0.8].map((v) => v / Math.hypot(0.3, 0.5, 0.8));
  const shade = 0.3 + 0.6 * toLight[2]!; // the top face (normal +z)
  const at = pinhole([0, 0, 0.2], camPos, camMat, 45, W, H);
  const got = pixel(image, 0, W, H, Math.floor(at.u), Math.floor(at.v));
  [0.8, 0.4, 0.8].forEach((c, k) => expect(Math.abs(got[k]! - 255 * c * 0.75 * shade), `channel ${k}: ${got[k]}`).toBeLessThanOrEqual(2));
}, 60_000);
