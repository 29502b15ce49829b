// Scene and kinematics: qpos layout, geom groups, cameras, forward kinematics at LIBERO's start
// posture, and the controller's Jacobian and mass matrix against independent MuJoCo computations.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { LiberoEnv } from "../../src/sim/env.ts";
import { PANDA_INIT_QPOS } from "../../src/sim/panda.ts";

let env: LiberoEnv;
beforeAll(async () => {
  env = await LiberoEnv.create();
}, 60_000);
afterAll(() => env.delete());

function atStartPosture() {
  const { mj, model: m, data: d } = env;
  mj.mj_resetData(m, d);
  PANDA_INIT_QPOS.forEach((q, i) => (d.qpos[i] = q));
  mj.mj_forward(m, d);
}

describe("scene", () => {
  test("qpos layout is LIBERO's: 7 arm, 2 fingers, 5 free objects, 3 drawers, 1 knob", () => {
    expect(env.model.nq).toBe(48);
    expect(env.model.nv).toBe(43);
    const adr = (name: string) => env.model.jnt_qposadr[env.mj.mj_name2id(env.model, env.mj.mjtObj.mjOBJ_JOINT.value, name)];
    expect(adr("gripper0_finger_joint1")).toBe(7);
    expect(adr("akita_black_bowl_1_joint0")).toBe(9);
    expect(adr("plate_1_joint0")).toBe(37);
    expect(adr("wooden_cabinet_1_top_level")).toBe(44);
    expect(adr("flat_stove_1_button")).toBe(47);
  });

  test("visual geoms never collide and collision geoms are in group 3", () => {
    const m = env.model;
    let visual = 0;
    let collision = 0;
    for (let g = 0; g < m.ngeom; g++) {
      const collides = m.geom_contype[g] !== 0 || m.geom_conaffinity[g] !== 0;
      if (collides) {
        expect(m.geom_group[g]).toBe(3);
        collision++;
      } else {
        expect([1, 2]).toContain(m.geom_group[g]);
        visual++;
      }
    }
    expect(visual).toBeGreaterThan(50);
    expect(collision).toBeGreaterThan(50);
  });

  test("cameras agentview (fovy 45) and robot0_eye_in_hand (fovy 75)", () => {
    const cam = (n: string) => env.mj.mj_name2id(env.model, env.mj.mjtObj.mjOBJ_CAMERA.value, n);
    expect(cam("agentview")).toBeGreaterThanOrEqual(0);
    expect(env.model.cam_fovy[cam("agentview")]).toBeCloseTo(45, 6);
    expect(env.model.cam_fovy[cam("robot0_eye_in_hand")]).toBeCloseTo(75, 6);
  });
});

describe("forward kinematics", () => {
  test("start posture puts the grip site at (−0.2085, 0, 1.1733) ± 2 mm, hand pointing down", () => {
    atStartPosture();
    const g = env.gripSite();
    const want = [-0.2085, 0, 1.1733];
    for (let i = 0; i < 3; i++) expect(Math.abs(g.pos[i]! - want[i]!)).toBeLessThan(0.002);
    // Hand frame z axis (third column) points down, tilted 0.057 toward −x, as in libero-spatial.md §6.
    const hand = env.bodyPose("robot0_right_hand").mat;
    expect(hand[2]!).toBeCloseTo(-0.057, 2);
    expect(hand[8]!).toBeCloseTo(-0.998, 2);
    expect(hand[4]!).toBeCloseTo(-1, 3);
  });

  test("controller Jacobian matches finite differences of the grip-site position", () => {
    atStartPosture();
    const { mj, model: m, data: d } = env;
    const s = env.readArm();
    const J = jacobian(s.axis, s.anchor, s.pos);
    const eps = 1e-6;
    for (let j = 0; j < 7; j++) {
      const q0 = d.qpos[j]!;
      d.qpos[j] = q0 + eps;
      mj.mj_kinematics(m, d);
      const plus = env.gripSite().pos;
      d.qpos[j] = q0 - eps;
      mj.mj_kinematics(m, d);
      const minus = env.gripSite().pos;
      d.qpos[j] = q0;
      for (let r = 0; r < 3; r++) expect(Math.abs((plus[r]! - minus[r]!) / (2 * eps) - J[r * 7 + j]!)).toBeLessThan(1e-6);
    }
  });

  test("arm mass matrix read from qM equals M·e_k from inverse dynamics", () => {
    atStartPosture();
    const { mj, model: m, data: d } = env;
    const s = env.readArm();
    const mass = Float64Array.from(s.mass);
    m.opt.gravity.set([0, 0, 0]);
    m.opt.disableflags = 1; // mjDSBL_CONSTRAINT: joint frictionloss would add its constraint force
    try {
      for (let k = 0; k < 7; k++) {
        d.qvel.fill(0);
        d.qacc.fill(0);
        d.qacc[k] = 1;
        mj.mj_inverse(m, d);
        // Zero velocity, gravity and constraints: qfrc_inverse = M qacc (armature included).
        for (let i = 0; i < 7; i++) expect(Math.abs(d.qfrc_inverse[i]! - mass[i * 7 + k]!)).toBeLessThan(1e-9);
      }
    } finally {
      m.opt.gravity.set([0, 0, -9.81]);
      m.opt.disableflags = 0;
    }
  });
});

/** Translational Jacobian (3×7) of a point for hinge joints: axis × (p − anchor). */
function jacobian(axis: ArrayLike<number>, anchor: ArrayLike<number>, p: ArrayLike<number>): number[] {
  const J = new Array(21).fill(0);
  for (let i = 0; i < 7; i++) {
    const a = [axis[3 * i]!, axis[3 * i + 1]!, axis[3 * i + 2]!];
    const r = [p[0]! - anchor[3 * i]!, p[1]! - anchor[3 * i + 1]!, p[2]! - anchor[3 * i + 2]!];
    J[i] = a[1]! * r[2]! - a[2]! * r[1]!;
    J[7 + i] = a[2]! * r[0]! - a[0]! * r[2]!;
    J[14 + i] = a[0]! * r[1]! - a[1]! * r[0]!;
  }
  return J;
}
