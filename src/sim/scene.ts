// The LIBERO-Spatial scene as MJCF text: options as robosuite, floor and table, the mounted Panda,
// the objects and fixtures, lights and the two cameras. One model serves all 10 tasks.
import { el, solid, visual, type Rgba } from "./mjcf.ts";
import { objectsXml } from "./objects.ts";
import { mountXml, pandaActuatorsXml, pandaXml } from "./panda.ts";

/** Table top surface height (world z) and half sizes: `table_full_size` (1.0, 1.2, 0.05) at offset z 0.90. */
export const TABLE_TOP_Z = 0.9;
const TABLE_HALF = [0.5, 0.6, 0.025] as const;

/** LIBERO's agentview (`_setup_camera`): pose from libero-spatial.md §4, fovy MuJoCo's default 45°. */
export const AGENTVIEW = {
  pos: [0.6586131746834771, 0, 1.6103500240372423],
  quat: [0.6380177736282349, 0.3048497438430786, 0.30484986305236816, 0.6380177736282349],
  fovy: 45,
} as const;

function table(): string {
  const rgba: Rgba = [0.8, 0.74, 0.64, 1];
  const legs = [-1, 1].flatMap((sx) =>
    [-1, 1].map((sy) => visual({ type: "cylinder", pos: [0.4 * sx, 0.5 * sy, TABLE_TOP_Z - 0.025 - 0.4375], size: [0.025, 0.4375], rgba: [0.5, 0.5, 0.5, 1] })),
  );
  return el(
    "body",
    { name: "table", pos: [0, 0, TABLE_TOP_Z - TABLE_HALF[2]] },
    solid({ name: "table_collision", type: "box", size: TABLE_HALF, rgba, contact: { friction: [0.6, 0.005, 0.0001] } }),
    ...legs,
  );
}

/** The whole scene. Geoms in group 1 are drawn, group 3 only collide; cameras `agentview` and `robot0_eye_in_hand`. */
export function buildSceneXml(): string {
  return el(
    "mujoco",
    { model: "libero_spatial" },
    el("compiler", { angle: "radian", autolimits: "true" }),
    // robosuite base.xml: elliptic cones, impratio 20, timestep 0.002 (500 Hz). Its air density 1.2 and
    // viscosity 2e-5 are left out: their drag on these objects is negligible, and MuJoCo's fluid model
    // cost 40% of the step time in this scene.
    el("option", { timestep: 0.002, cone: "elliptic", impratio: 20, integrator: "Euler" }),
    // Per-MjData arena: ~0.6 MB is used in contact-rich steps; MuJoCo's default of 15 MB would cap how
    // many envs fit in one worker's wasm memory.
    el("size", { memory: "4M" }),
    el(
      "default",
      {},
      el("default", { class: "visual" }, el("geom", { contype: 0, conaffinity: 0, group: 1, density: 0 })),
      el("default", { class: "collision" }, el("geom", { group: 3 })),
    ),
    el(
      "worldbody",
      {},
      el("light", { name: "light1", pos: [1, 1, 4], dir: [0, -0.15, -1], diffuse: [0.8, 0.8, 0.8], specular: [0.3, 0.3, 0.3], castshadow: "false", directional: "false" }),
      el("light", { name: "light2", pos: [-3, -3, 4], dir: [0, -0.15, -1], diffuse: [0.8, 0.8, 0.8], specular: [0.3, 0.3, 0.3], castshadow: "false", directional: "false" }),
      solid({ name: "floor", type: "box", size: [3, 3, 0.01], pos: [0, 0, -0.01], rgba: [0.42, 0.42, 0.44, 1] }),
      visual({ type: "box", size: [0.01, 3, 1.5], pos: [-1.6, 0, 1.5], rgba: [0.75, 0.75, 0.72, 1] }),
      visual({ type: "box", size: [3, 0.01, 1.5], pos: [0, 1.8, 1.5], rgba: [0.75, 0.75, 0.72, 1] }),
      el("camera", { name: "agentview", mode: "fixed", pos: AGENTVIEW.pos, quat: AGENTVIEW.quat, fovy: AGENTVIEW.fovy }),
      table(),
      mountXml(),
      pandaXml(),
      objectsXml(),
    ),
    // Closed pads meet at the centre; their contact only costs solver time. The primitive wrist shapes
    // of link5 and link7 overlap at the start posture where the real meshes do not.
    el(
      "contact",
      {},
      el("exclude", { body1: "gripper0_leftfinger", body2: "gripper0_rightfinger" }),
      el("exclude", { body1: "robot0_link5", body2: "robot0_link7" }),
    ),
    el("actuator", {}, pandaActuatorsXml()),
  );
}
