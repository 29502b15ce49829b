// A small bright sphere lands on the pixel that a pinhole model of the MuJoCo camera predicts.
import { afterAll, expect, test } from "bun:test";
import { getGpu } from "../../src/engine/device.ts";
import { extractRenderModel } from "../../src/render/model.ts";
import { BatchRenderer, framePoses, type FramePoses } from "../../src/render/renderer.ts";
import { compile, pinhole, pointInView } from "./scenes.ts";

// LIBERO's agentview (pose and default 45° fovy) and a wrist camera like robot0_eye_in_hand
// (75°, on a hinged hand so its pose is not axis-aligned).
const xml = `<mujoco>
  <visual><headlight active="0"/></visual>
  <asset><material name="glow" emission="1" specular="0" rgba="1 1 1 1"/></asset>
  <worldbody>
    <camera name="agentview" pos="0.6586 0 1.6104" quat="0.6380 0.3048 0.3048 0.6380"/>
    <body name="hand" pos="-0.2 0 1.27">
      <joint name="hinge" type="hinge" axis="0.3 1 0.2"/>
      <inertial pos="0 0 0" mass="1" diaginertia="0.01 0.01 0.01"/>
      <camera name="wrist" pos="0.05 0 0" quat="0 0.707108 0.707108 0" fovy="75"/>
    </body>
    <body name="marker" mocap="true"><geom type="sphere" size="0.01" material="glow"/></body>
  </worldbody>
</mujoco>`;

const { mj, m, d } = await compile(xml);
const gpu = await getGpu();
afterAll(() => {
  d.delete();
  m.delete();
});

/** Places the marker at each point (one env each) and returns the frames plus the camera pose used. */
function framesWithMarker(points: number[][]): FramePoses[] {
  return points.map((p) => {
    d.mocap_pos.set(p);
    mj.mj_forward(m, d);
    return framePoses(d);
  });
}

/** Brightness-weighted centroid of the lit pixels, in pixel coordinates (pixel centres at +0.5). */
function centroid(img: Uint8Array, width: number, height: number) {
  let sw = 0, su = 0, sv = 0;
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      const w = img[o]! + img[o + 1]! + img[o + 2]!;
      if (w < 3 * 128) continue;
      sw += w;
      su += w * (x + 0.5);
      sv += w * (y + 0.5);
    }
  return sw ? { u: su / sw, v: sv / sw } : undefined;
}

for (const [width, height, samples] of [[128, 128, 1], [224, 160, 1], [128, 128, 4]] as const) {
  test(`marker projects to the pinhole pixel in both cameras at ${width}×${height}, ${samples} sample(s) per pixel`, async () => {
    d.qpos[0] = 0.4; // turn the hand so the wrist camera is oblique
    mj.mj_forward(m, d);
    const model = extractRenderModel(mj, m, { cameras: ["agentview", "wrist"] });
    const renderer = new BatchRenderer(gpu, model, { maxEnvs: 5, width, height, samples });
    try {
      for (const [c, cam] of model.cameras.entries()) {
        const camPos = [...d.cam_xpos.subarray(3 * cam.id, 3 * cam.id + 3)];
        const camMat = [...d.cam_xmat.subarray(9 * cam.id, 9 * cam.id + 9)];
        const depth = cam.name === "agentview" ? 1.1 : 0.3;
        const offsets = [[0.013, 0.021], [0.52, 0.31], [-0.61, -0.43], [0.71, -0.68], [-0.33, 0.57]];
        const points = offsets.map(([a, b]) => pointInView(camPos, camMat, depth + 0.1 * a!, a!, b!, cam.fovy));
        const images = await renderer.render(framesWithMarker(points));
        points.forEach((p, e) => {
          const want = pinhole(p, camPos, camMat, cam.fovy, width, height);
          const got = centroid(images.subarray((e * 2 + c) * renderer.imageBytes, (e * 2 + c + 1) * renderer.imageBytes), width, height);
          expect(got, `${cam.name} env ${e}: marker not visible`).toBeDefined();
          const err = Math.hypot(got!.u - want.u, got!.v - want.v);
          expect(err, `${cam.name} env ${e}: at (${got!.u.toFixed(2)}, ${got!.v.toFixed(2)}), pinhole says (${want.u.toFixed(2)}, ${want.v.toFixed(2)})`).toBeLessThanOrEqual(1);
        });
      }
    } finally {
      renderer.destroy();
    }
  }, 60_000);
}
