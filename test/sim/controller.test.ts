// OSC_POSE: reaching a held 5 cm / 0.3 rad goal, holding under gravity, and the math pieces
// (SPD inverse, robosuite's quat2axisangle, torque = bias at rest on the goal).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { OscPose, spdInverse } from "../../src/sim/controller.ts";
import { LiberoEnv, SUBSTEPS } from "../../src/sim/env.ts";
import { axisAngleQuat, quatToAxisAngle, rotationBetween } from "../../src/sim/math.ts";

let env: LiberoEnv;
beforeAll(async () => {
  env = await LiberoEnv.create(5);
}, 60_000);
afterAll(() => env.delete());

const dist = (a: number[], b: number[]) => Math.hypot(a[0]! - b[0]!, a[1]! - b[1]!, a[2]! - b[2]!);

describe("OSC_POSE in the scene", () => {
  test.each([
    ["+x", [1, 0, 0]],
    ["−z", [0, 0, -1]],
    ["+y", [0, 1, 0]],
  ])("reaches a commanded 5 cm step along %s within 3 mm when the goal is held 1 s", (_, dir) => {
    env.reset(2, 0);
    const p0 = env.gripSite().pos;
    env.physicsStep([...dir, 0, 0, 0, -1], 20 * SUBSTEPS);
    const goal = p0.map((p, i) => p + 0.05 * dir[i]!);
    expect(dist(env.gripSite().pos, goal)).toBeLessThan(0.003);
  }, 60_000);

  test("reaches a commanded 0.3 rad rotation about world z within 0.01 rad", () => {
    env.reset(2, 1);
    const start = env.gripSite();
    env.physicsStep([0, 0, 0, 0, 0, 0.6, -1], 20 * SUBSTEPS);
    const end = env.gripSite();
    const r = rotationBetween(start.mat, end.mat);
    expect(Math.abs(r[2] - 0.3)).toBeLessThan(0.01);
    expect(Math.hypot(r[0], r[1])).toBeLessThan(0.01);
    expect(dist(start.pos, end.pos)).toBeLessThan(0.003);
  }, 60_000);

  test("holds its position under gravity with zero actions for 5 s", () => {
    env.reset(0, 0);
    const p0 = env.gripSite().pos;
    for (let t = 0; t < 100; t++) env.step([0, 0, 0, 0, 0, 0, 1]);
    expect(dist(env.gripSite().pos, p0)).toBeLessThan(0.002);
  }, 60_000);

  test("one 20 Hz step of a full action moves the grip site part of the way, as robosuite's OSC does", () => {
    env.reset(2, 2);
    const p0 = env.gripSite().pos;
    env.step([1, 0, 0, 0, 0, 0, -1]);
    const dx = env.gripSite().pos[0]! - p0[0]!;
    // Critically damped at ω = √150: 1 − (1 + ωt)e^{−ωt} of 5 cm after 50 ms ≈ 6.6 mm.
    expect(dx).toBeGreaterThan(0.003);
    expect(dx).toBeLessThan(0.01);
  }, 60_000);
});

describe("controller math", () => {
  test("spdInverse gives A·A⁻¹ = I", () => {
    const n = 5;
    const b = Array.from({ length: n * n }, (_, i) => Math.sin(i * 1.7) + (i % (n + 1) === 0 ? 3 : 0));
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) a[i * n + j]! += b[i * n + k]! * b[j * n + k]!;
    const inv = spdInverse(a, n, new Float64Array(n * n));
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += a[i * n + k]! * inv[k * n + j]!;
        expect(Math.abs(s - (i === j ? 1 : 0))).toBeLessThan(1e-10);
      }
  });

  test("quatToAxisAngle follows robosuite's quat2axisangle", () => {
    const aa = quatToAxisAngle(axisAngleQuat([0, 0.6, 0.8], 1.2));
    expect(aa[0]).toBeCloseTo(0, 12);
    expect(aa[1]).toBeCloseTo(0.72, 12);
    expect(aa[2]).toBeCloseTo(0.96, 12);
    expect(quatToAxisAngle([1, 0, 0, 0])).toEqual([0, 0, 0]);
    // A half turn about x: w = 0, axis-angle (π, 0, 0).
    expect(quatToAxisAngle([0, 1, 0, 0])[0]).toBeCloseTo(Math.PI, 12);
  });

  test("at rest on its goal and posture, the torque is the bias force alone", () => {
    const osc = new OscPose();
    const q = [0.1, -0.2, 0.05, -2.3, 0.02, 2.1, 0.7];
    osc.reset(q);
    const mat = [0, 1, 0, 1, 0, 0, 0, 0, -1];
    osc.setGoal([0, 0, 0, 0, 0, 0], [0.1, 0.2, 1.0], mat);
    const mass = new Float64Array(49);
    for (let i = 0; i < 7; i++) mass[i * 8] = 2 + i;
    const axis = [0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1];
    const anchor = [0, 0, 0.3, 0, 0, 0.3, 0, 0, 0.6, 0.1, 0, 0.6, 0, 0.1, 0.9, 0.1, 0.1, 1.0, 0.1, 0.2, 1.1];
    const bias = [1, -2, 3, -4, 5, -6, 0.5];
    const tau = osc.compute({ q, qd: new Array(7).fill(0), pos: [0.1, 0.2, 1.0], mat, axis, anchor, mass, bias });
    for (let i = 0; i < 7; i++) expect(tau[i]).toBeCloseTo(bias[i]!, 9);
  });
});
