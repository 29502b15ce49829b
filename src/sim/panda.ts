// The Franka Panda of robosuite 1.4 (LIBERO's MountedPanda) rebuilt from primitives: kinematic chain,
// joint ranges, damping/armature/frictionloss, inertials, torque motors, and the Panda gripper.
import { el, solid, visual, type Rgba } from "./mjcf.ts";

/** LIBERO `MountedPanda.init_qpos`: the start posture (joint noise N(0, 0.02²) is added per initial state). */
export const PANDA_INIT_QPOS = [0, -0.161037389, 0, -2.44459747, 0, 2.2267522, Math.PI / 4] as const;
/** Robot base (link0) on its mount, 1.2 cm above the table top, facing +x. */
export const PANDA_BASE_POS = [-0.66, 0, 0.912] as const;
export const ARM_JOINTS = [1, 2, 3, 4, 5, 6, 7].map((i) => `robot0_joint${i}`);
export const FINGER_JOINTS = ["gripper0_finger_joint1", "gripper0_finger_joint2"] as const;
/** Torque limits of the arm motors (N·m). */
export const ARM_TORQUE_LIMIT = [80, 80, 80, 80, 80, 12, 12] as const;
/** Finger travel: joint1 0…0.04, joint2 −0.04…0 (8 cm total opening). */
export const FINGER_TRAVEL = 0.04;

const WHITE: Rgba = [0.93, 0.93, 0.93, 1];
const DARK: Rgba = [0.18, 0.18, 0.19, 1];

interface Link {
  name: string;
  pos: readonly number[];
  quat: readonly number[];
  range: readonly [number, number];
  damping: number;
  mass: number;
  com: readonly number[];
  inertia: number;
  geoms: string[];
}

const s2 = Math.SQRT1_2;
const cyl = (from: number[], to: number[], r: number, rgba: Rgba = WHITE) => solid({ type: "cylinder", fromto: [...from, ...to], size: [r], rgba });
const box = (pos: number[], half: number[], rgba: Rgba = WHITE) => solid({ type: "box", pos, size: half, rgba });

// Chain, joint dynamics and inertials: libero-spatial.md §6 (robosuite columns). Armature 5/(i+1).
const LINKS: Link[] = [
  { name: "link1", pos: [0, 0, 0.333], quat: [1, 0, 0, 0], range: [-2.8973, 2.8973], damping: 0.1, mass: 3, com: [0, 0, -0.07], inertia: 0.3,
    geoms: [cyl([0, 0, -0.192], [0, 0, 0.055], 0.055), cyl([0, -0.129, 0], [0, 0.055, 0], 0.055), box([0, -0.045, -0.0525], [0.055, 0.045, 0.0525])] },
  { name: "link2", pos: [0, 0, 0], quat: [s2, -s2, 0, 0], range: [-1.7628, 1.7628], damping: 0.1, mass: 3, com: [0, -0.1, 0], inertia: 0.3,
    geoms: [cyl([0, 0, -0.055], [0, 0, 0.1295], 0.055), cyl([0, -0.194, 0], [0, 0.055, 0], 0.055)] },
  { name: "link3", pos: [0, -0.316, 0], quat: [s2, s2, 0, 0], range: [-2.8973, 2.8973], damping: 0.1, mass: 2, com: [0.04, 0, -0.05], inertia: 0.2,
    geoms: [cyl([0, 0, -0.121], [0, 0, 0.0455], 0.0556), cyl([0.0825, 0, 0], [0.0825, 0.111, 0], 0.0553)] },
  { name: "link4", pos: [0.0825, 0, 0], quat: [s2, s2, 0, 0], range: [-3.0718, -0.0698], damping: 0.1, mass: 2, com: [-0.04, 0.05, 0], inertia: 0.2,
    geoms: [cyl([0, 0, 0], [0, 0, 0.111], 0.0553), cyl([-0.0825, -0.045, 0], [-0.0825, 0.124, 0], 0.0555)] },
  { name: "link5", pos: [-0.0825, 0.384, 0], quat: [s2, -s2, 0, 0], range: [-2.8973, 2.8973], damping: 0.1, mass: 2, com: [0, 0, -0.15], inertia: 0.2,
    geoms: [cyl([0, 0, -0.265], [0, 0, 0.048], 0.0555), cyl([0, 0.08, -0.259], [0, 0.08, 0.052], 0.0555)] },
  { name: "link6", pos: [0, 0, 0], quat: [s2, s2, 0, 0], range: [-0.0175, 3.7525], damping: 0.01, mass: 1.5, com: [0.06, 0, 0], inertia: 0.1,
    geoms: [cyl([0, 0, -0.015], [0, 0, 0.056], 0.0485), cyl([0.088, -0.051, 0], [0.088, 0.082, 0], 0.047, DARK)] },
  { name: "link7", pos: [0.088, 0, 0], quat: [s2, s2, 0, 0], range: [-2.8973, 2.8973], damping: 0.01, mass: 0.5, com: [0, 0, 0.08], inertia: 0.05,
    geoms: [cyl([0, 0, 0.052], [0, 0, 0.107], 0.044, DARK), box([0.02, 0.02, 0.0795], [0.061, 0.061, 0.0275], DARK)] },
];

const PAD = { friction: [2, 0.05, 0.0001], solref: [0.01, 0.5] };

/** One finger in its own frame; `side` +1 for the left finger (geometry toward +y), −1 for the right. */
function finger(side: 1 | -1, index: 1 | 2): string {
  const y = (v: number) => side * v;
  const range = side > 0 ? [0, FINGER_TRAVEL] : [-FINGER_TRAVEL, 0];
  return el(
    "body",
    { name: `gripper0_${side > 0 ? "leftfinger" : "rightfinger"}`, pos: [0, 0, 0.0524], quat: [s2, 0, 0, s2] },
    el("inertial", { pos: [0, 0, 0.05], mass: 0.1, diaginertia: [0.01, 0.01, 0.005] }),
    el("joint", { name: `gripper0_finger_joint${index}`, type: "slide", axis: [0, 1, 0], range, damping: 100, armature: 1, frictionloss: 1 }),
    // Finger body: wide near the hand, thinner toward the tip (collision STL bounds: y 0…0.0264, z 0…0.054).
    box([0, y(0.0172), 0.015], [0.0105, 0.0092, 0.015], DARK),
    box([0, y(0.01175), 0.0395], [0.0105, 0.00425, 0.0145], DARK),
    // The friction-2 pad whose inner face meets the other pad at the centre when closed.
    solid({ name: `gripper0_finger${index}_pad`, type: "box", pos: [0, y(0.0035), 0.041], size: [0.008, 0.004, 0.008], rgba: [0.1, 0.1, 0.1, 1], contact: PAD }),
  );
}

/** The gripper, attached to `robot0_right_hand`; its `gripper0_grip_site` is the OSC frame and eef position. */
function gripper(): string {
  return el(
    "body",
    { name: "gripper0_right_gripper", quat: [s2, 0, 0, -s2] },
    el("inertial", { pos: [0, 0, 0.17], quat: [s2, s2, 0, 0], mass: 0.3, diaginertia: [0.09, 0.07, 0.05] }),
    // Hand: the collision STL's box, rotated into the right_gripper frame (long side along the finger travel).
    box([0.002, 0, 0.02], [0.102, 0.032, 0.046]),
    el("body", { name: "gripper0_eef", pos: [0, 0, 0.097] }, el("site", { name: "gripper0_grip_site", size: [0.005], rgba: [1, 0, 0, 0], group: 4 })),
    finger(1, 1),
    finger(-1, 2),
  );
}

/** The arm from link0 down to the gripper, as nested bodies. */
export function pandaXml(): string {
  let inner = el(
    "body",
    { name: "robot0_right_hand", pos: [0, 0, 0.1065], quat: [Math.cos(Math.PI / 8), 0, 0, -Math.sin(Math.PI / 8)] },
    el("inertial", { pos: [0, 0, 0], mass: 0.5, diaginertia: [0.05, 0.05, 0.05] }),
    el("camera", { name: "robot0_eye_in_hand", pos: [0.05, 0, 0], quat: [0, s2, s2, 0], fovy: 75 }),
    gripper(),
  );
  for (let i = LINKS.length - 1; i >= 0; i--) {
    const l = LINKS[i]!;
    inner = el(
      "body",
      { name: `robot0_${l.name}`, pos: l.pos, quat: l.quat },
      el("inertial", { pos: l.com, mass: l.mass, diaginertia: [l.inertia, l.inertia, l.inertia] }),
      el("joint", { name: `robot0_joint${i + 1}`, axis: [0, 0, 1], range: l.range, damping: l.damping, armature: 5 / (i + 1), frictionloss: 0.1 }),
      ...l.geoms,
      inner,
    );
  }
  return el(
    "body",
    { name: "robot0_link0", pos: PANDA_BASE_POS },
    el("inertial", { pos: [0, 0, 0.05], mass: 4, diaginertia: [0.4, 0.4, 0.4] }),
    box([-0.041, 0, 0.07], [0.113, 0.095, 0.07]),
    inner,
  );
}

/** RethinkMount: the pedestal under link0 (static). */
export function mountXml(): string {
  const [x, y, z] = PANDA_BASE_POS;
  return el(
    "body",
    { name: "mount0_base", pos: [x, y, 0] },
    solid({ type: "cylinder", fromto: [0, 0, 0, 0, 0, z - 0.01], size: [0.09], rgba: [0.12, 0.12, 0.12, 1] }),
    visual({ type: "cylinder", fromto: [0, 0, z - 0.03, 0, 0, z], size: [0.12], rgba: [0.12, 0.12, 0.12, 1] }),
  );
}

/** Torque motors on the arm joints and position servos on the fingers (robosuite's actuators). */
export function pandaActuatorsXml(): string {
  const motors = ARM_JOINTS.map((j, i) =>
    el("motor", { name: `robot0_torq_j${i + 1}`, joint: j, gear: 1, ctrllimited: "true", ctrlrange: [-ARM_TORQUE_LIMIT[i]!, ARM_TORQUE_LIMIT[i]!] }),
  );
  const fingers = [
    el("position", { name: "gripper0_finger_joint1", joint: FINGER_JOINTS[0], kp: 1000, ctrllimited: "true", ctrlrange: [0, FINGER_TRAVEL], forcelimited: "true", forcerange: [-20, 20] }),
    el("position", { name: "gripper0_finger_joint2", joint: FINGER_JOINTS[1], kp: 1000, ctrllimited: "true", ctrlrange: [-FINGER_TRAVEL, 0], forcelimited: "true", forcerange: [-20, 20] }),
  ];
  return [...motors, ...fingers].join("\n");
}
