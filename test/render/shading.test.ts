// Depth order, MuJoCo's group convention, and the colour of lit faces against the lighting equation.
import { expect, test } from "bun:test";
import { getGpu } from "../../src/engine/device.ts";
import { extractRenderModel } from "../../src/render/model.ts";
import { BatchRenderer, framePoses } from "../../src/render/renderer.ts";
import { compile, pinhole, pixel } from "./scenes.ts";

const gpu = await getGpu();
const W = 96, H = 96;

test("a near box hides a far one whatever their order in the model; group-3 geoms are hidden", async () => {
  // Two boxes on free joints swap places between env 0 and env 1. A white group-3 (collision-only)
  // box sits right in front of the camera and must not be drawn.
  const { mj, m, d } = await compile(`<mujoco><worldbody>
    <light pos="0 -3 3" dir="0 0.5 -0.5" directional="true"/>
    <camera name="eye" pos="0 -3 0" xyaxes="1 0 0 0 0 1" fovy="40"/>
    <body name="red"><freejoint/><geom type="box" size="0.2 0.2 0.2" rgba="1 0 0 1"/></body>
    <body name="blue"><freejoint/><geom type="box" size="0.6 0.1 0.6" rgba="0 0 1 1"/></body>
    <geom type="box" pos="0 -2.5 0" size="0.3 0.05 0.3" group="3" rgba="1 1 1 1"/>
  </worldbody></mujoco>`);
  const model = extractRenderModel(mj, m, { cameras: ["eye"] });
  expect(model.geomIds.length).toBe(2);
  const renderer = new BatchRenderer(gpu, model, { maxEnvs: 2, width: W, height: H });
  const place = (redY: number, blueY: number) => {
    d.qpos.set([0, redY, 0, 1, 0, 0, 0, 0, blueY, 0, 1, 0, 0, 0]);
    mj.mj_forward(m, d);
    return framePoses(d);
  };
  try {
    const images = await renderer.render([place(-1, 1), place(1, -1)]);
    // Specular highlights add grey to every channel: the colour is told by the dominant channel.
    const red = ([r, g, b]: number[]) => r! - Math.max(g!, b!);
    const blue = ([r, g, b]: number[]) => b! - Math.max(r!, g!);
    expect(red(pixel(images, 0, W, H, W / 2, H / 2))).toBeGreaterThan(80); // env 0: red in front
    expect(blue(pixel(images, 1, W, H, W / 2, H / 2))).toBeGreaterThan(80); // env 1: blue in front
    // Off the small red box, the big blue one still shows in env 0.
    const edge = pinhole([0.55, 0.9, 0.55], [0, -3, 0], d.cam_xmat, 40, W, H);
    expect(blue(pixel(images, 0, W, H, Math.floor(edge.u), Math.floor(edge.v)))).toBeGreaterThan(80);
  } finally {
    renderer.destroy();
    d.delete();
    m.delete();
  }
}, 60_000);

test("lit faces of a box have the colour of the lighting equation (ambient + diffuse·n·l)", async () => {
  // One directional light, no headlight, no specular: colour = rgb·(ambient + diffuse·max(n·l, 0)).
  const rgb = [0.8, 0.5, 0.3];
  const ambient = 0.2, diffuse = 0.6;
  const dir = [0, 0.6, -0.8]; // the light shines along this (unit) direction
  const { mj, m, d } = await compile(`<mujoco>
    <visual><headlight active="0"/></visual>
    <asset><material name="matte" specular="0"/></asset>
    <worldbody>
      <light directional="true" pos="0 -2 3" dir="${dir.join(" ")}" ambient="${ambient} ${ambient} ${ambient}"
             diffuse="${diffuse} ${diffuse} ${diffuse}" specular="0 0 0"/>
      <camera name="eye" pos="0 -1.5 1.2" xyaxes="1 0 0 0 0.6 0.8"/>
      <geom type="box" size="0.3 0.3 0.3" rgba="${rgb.join(" ")} 1" material="matte"/>
    </worldbody>
  </mujoco>`);
  const model = extractRenderModel(mj, m, { cameras: ["eye"] });
  const renderer = new BatchRenderer(gpu, model, { maxEnvs: 1, width: W, height: H });
  try {
    const images = await renderer.render([framePoses(d)]);
    const toLight = dir.map((v) => -v);
    const faces = [
      { name: "top", centre: [0, 0, 0.3], normal: [0, 0, 1] },
      { name: "front", centre: [0, -0.3, 0], normal: [0, -1, 0] },
    ];
    for (const face of faces) {
      const ndl = Math.max(0, face.normal.reduce((s, n, i) => s + n * toLight[i]!, 0));
      const want = rgb.map((c) => c * (ambient + diffuse * ndl) * 255);
      const at = pinhole(face.centre, d.cam_xpos, d.cam_xmat, 45, W, H);
      const got = pixel(images, 0, W, H, Math.floor(at.u), Math.floor(at.v));
      got.forEach((g, c) => expect(Math.abs(g - want[c]!), `${face.name} face channel ${c}: ${g} vs ${want[c]!.toFixed(1)}`).toBeLessThanOrEqual(2));
    }
  } finally {
    renderer.destroy();
    d.delete();
    m.delete();
  }
}, 60_000);

test("point lights fall off with OpenGL's attenuation; spot lights light only inside their cone", async () => {
  // A camera looks straight down on two small boxes; light 1 is a point light above box A with
  // inverse-square attenuation, light 2 (in a second model) a narrow spot aimed at box A only.
  const rgb = [0.8, 0.6, 0.4];
  const scene = (light: string) => `<mujoco>
    <visual><headlight active="0"/></visual>
    <asset><material name="matte" specular="0"/></asset>
    <worldbody>
      ${light}
      <camera name="eye" pos="0 0 4" fovy="30"/>
      <geom name="A" type="box" pos="-0.3 0 1.95" size="0.05 0.05 0.05" rgba="${rgb.join(" ")} 1" material="matte"/>
      <geom name="B" type="box" pos="0.4 0 0.95" size="0.05 0.05 0.05" rgba="${rgb.join(" ")} 1" material="matte"/>
    </worldbody>
  </mujoco>`;
  const lightPos = [-0.3, 0, 3];
  const topOf = { A: [-0.3, 0, 2], B: [0.4, 0, 1] };
  const renderTops = async (light: string) => {
    const { mj, m, d } = await compile(scene(light));
    const renderer = new BatchRenderer(gpu, extractRenderModel(mj, m, { cameras: ["eye"] }), { maxEnvs: 1, width: W, height: H });
    try {
      const images = await renderer.render([framePoses(d)]);
      return Object.fromEntries(
        Object.entries(topOf).map(([name, p]) => {
          const at = pinhole(p, d.cam_xpos, d.cam_xmat, 30, W, H);
          return [name, pixel(images, 0, W, H, Math.floor(at.u), Math.floor(at.v))];
        }),
      ) as Record<"A" | "B", number[]>;
    } finally {
      renderer.destroy();
      d.delete();
      m.delete();
    }
  };

  const point = await renderTops(`<light type="point" pos="${lightPos.join(" ")}" diffuse="1 1 1" ambient="0 0 0" specular="0 0 0" attenuation="0 0 1"/>`);
  for (const [name, p] of Object.entries(topOf) as ["A" | "B", number[]][]) {
    const toLight = lightPos.map((v, i) => v - p[i]!);
    const dist = Math.hypot(...toLight);
    const ndl = toLight[2]! / dist; // the top face's normal is +z
    const want = rgb.map((c) => (255 * c * ndl) / dist ** 2);
    point[name].forEach((g, c) => expect(Math.abs(g - want[c]!), `box ${name} channel ${c}: ${g} vs ${want[c]!.toFixed(1)}`).toBeLessThanOrEqual(3));
  }

  // The spot's 10° cone reaches box A (straight below) but not box B (37° off its axis).
  const spot = await renderTops(`<light type="spot" pos="${lightPos.join(" ")}" dir="0 0 -1" cutoff="10" exponent="1" diffuse="1 1 1" ambient="0.3 0.3 0.3" specular="0 0 0"/>`);
  expect(spot.A[0]).toBeGreaterThan(200);
  expect(spot.B).toEqual([0, 0, 0]);
}, 60_000);
