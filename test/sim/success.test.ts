// The success predicate On(bowl_1, plate): bowl origin not below the plate's, a contact between
// them, origins < 3 cm apart in xy. Each case is built physically and its conditions checked apart.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { LiberoEnv, NOOP_ACTION } from "../../src/sim/env.ts";
import type { ObjectPose } from "../../src/sim/tasks.ts";

let env: LiberoEnv;
beforeAll(async () => {
  env = await LiberoEnv.create(11);
}, 60_000);
afterAll(() => env.delete());

const YAW90 = [Math.SQRT1_2, 0, 0, Math.SQRT1_2];

function place(name: string, pose: number[]): void {
  const { mj, model: m, data: d } = env;
  const j = mj.mj_name2id(m, mj.mjtObj.mjOBJ_JOINT.value, `${name}_joint0`);
  d.qpos.set(pose, m.jnt_qposadr[j]!);
  d.qvel.fill(0);
  mj.mj_forward(m, d);
}

function settle(steps = 12): void {
  for (let i = 0; i < steps; i++) env.physicsStep(NOOP_ACTION);
  env.mj.mj_forward(env.model, env.data);
}

const body = (name: string) => env.mj.mj_name2id(env.model, env.mj.mjtObj.mjOBJ_BODY.value, name);
const pos = (name: string) => env.bodyPose(name).pos;
const xyDist = (a: number[], b: number[]) => Math.hypot(a[0]! - b[0]!, a[1]! - b[1]!);

describe("On(bowl_1, plate)", () => {
  test("true for bowl_1 resting on the plate, and the reward is paid once", () => {
    env.reset(2, 0);
    const plate = pos("plate_1");
    place("akita_black_bowl_1", [plate[0]! + 0.008, plate[1]!, plate[2]! + 0.012, ...YAW90] as ObjectPose);
    settle();
    expect(env.touching(body("akita_black_bowl_1"), body("plate_1"))).toBe(true);
    expect(env.checkSuccess()).toBe(true);
    expect(env.step(NOOP_ACTION).reward).toBe(1);
    const again = env.step(NOOP_ACTION);
    expect(again.success).toBe(true);
    expect(again.reward).toBe(0);
  }, 60_000);

  test("false for bowl_1 held 5 cm above the plate (aligned, above, but not touching)", () => {
    env.reset(2, 0);
    const plate = pos("plate_1");
    place("akita_black_bowl_1", [plate[0]!, plate[1]!, plate[2]! + 0.05, ...YAW90]);
    expect(xyDist(pos("akita_black_bowl_1"), plate)).toBeLessThan(0.03);
    expect(env.touching(body("akita_black_bowl_1"), body("plate_1"))).toBe(false);
    expect(env.checkSuccess()).toBe(false);
  }, 60_000);

  test("false for bowl_1 resting on the table beside the plate", () => {
    env.reset(2, 0);
    const plate = pos("plate_1");
    place("akita_black_bowl_1", [plate[0]! + 0.14, plate[1]!, 0.91, ...YAW90]);
    settle();
    expect(xyDist(pos("akita_black_bowl_1"), plate)).toBeGreaterThan(0.1);
    expect(env.checkSuccess()).toBe(false);
  }, 60_000);

  test("false for bowl_1 resting on bowl_2 that rests on the plate", () => {
    env.reset(2, 0);
    const plate = pos("plate_1");
    place("akita_black_bowl_2", [plate[0]!, plate[1]!, plate[2]! + 0.01, ...YAW90]);
    settle();
    place("akita_black_bowl_1", [plate[0]! + 0.004, plate[1]!, plate[2]! + 0.03, ...YAW90]);
    settle();
    const bowl1 = pos("akita_black_bowl_1");
    expect(bowl1[2]).toBeGreaterThan(plate[2]!);
    expect(xyDist(bowl1, pos("plate_1"))).toBeLessThan(0.03);
    expect(env.touching(body("akita_black_bowl_1"), body("akita_black_bowl_2"))).toBe(true);
    expect(env.touching(body("akita_black_bowl_1"), body("plate_1"))).toBe(false);
    expect(env.checkSuccess()).toBe(false);
  }, 60_000);
});
