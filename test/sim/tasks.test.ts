// The 10 tasks and their 500 fixed initial states: instructions, region rules, determinism, and
// where the objects come to rest after a reset.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { LiberoEnv } from "../../src/sim/env.ts";
import { Rng } from "../../src/sim/math.ts";
import { CABINET_GEOM, STOVE_GEOM } from "../../src/sim/objects.ts";
import { PANDA_INIT_QPOS } from "../../src/sim/panda.ts";
import { FIXTURE_REGIONS, INIT_STATE_SEED, initStates, sampleInitState, SPAWN_Z, TABLE_REGIONS, TASKS, type FixturePose, type InitState, type Support } from "../../src/sim/tasks.ts";

const within = (v: number, [lo, hi]: readonly [number, number], tol = 1e-9) => v >= Math.min(lo, hi) - tol && v <= Math.max(lo, hi) + tol;

/** Object-frame coordinates of a world xy point in a fixture's frame. */
function local(f: FixturePose, x: number, y: number): [number, number] {
  const [c, s] = [Math.cos(f.yaw), Math.sin(f.yaw)];
  return [c * (x - f.x) + s * (y - f.y), -s * (x - f.x) + c * (y - f.y)];
}

function expectOnSupport(st: InitState, bowl: "akita_black_bowl_1" | "akita_black_bowl_2", support: Support) {
  const [x, y, z] = st.objects[bowl];
  switch (support.kind) {
    case "table": {
      const r = TABLE_REGIONS[support.region];
      expect(within(x, r.x) && within(y, r.y)).toBe(true);
      expect(z).toBe(SPAWN_Z.table);
      break;
    }
    case "on": {
      const o = st.objects[support.object];
      expect([x, y]).toEqual([o[0], o[1]]);
      expect(z).toBe(SPAWN_Z.onObject);
      break;
    }
    case "stove": {
      const [lx, ly] = local(st.stove, x, y);
      expect(Math.abs(lx - STOVE_GEOM.burner[0]) <= 0.01 + 1e-9 && Math.abs(ly) <= 0.01 + 1e-9).toBe(true);
      expect(z).toBe(SPAWN_Z.stove);
      break;
    }
    case "cabinet_top": {
      const [lx, ly] = local(st.cabinet, x, y);
      expect(Math.abs(lx - CABINET_GEOM.topSide[0]) <= 0.125 && Math.abs(ly - CABINET_GEOM.topSide[1]) <= 0.094).toBe(true);
      expect(z).toBe(SPAWN_Z.cabinetTop);
      break;
    }
    case "top_drawer": {
      const [lx, ly] = local(st.cabinet, x, y);
      expect(lx).toBeCloseTo(CABINET_GEOM.drawerXY[0], 9);
      expect(ly).toBeCloseTo(CABINET_GEOM.drawerXY[1] + st.drawers[0], 9);
      expect(within(st.drawers[0], [-0.16, -0.14])).toBe(true);
      expect(z).toBe(SPAWN_Z.topDrawer);
      break;
    }
  }
}

describe("tasks", () => {
  test("10 tasks with LIBERO's task.language prompts", () => {
    expect(TASKS.length).toBe(10);
    expect(TASKS[0]!.language).toBe("pick up the black bowl between the plate and the ramekin and place it on the plate");
    expect(TASKS[4]!.language).toBe("pick up the black bowl in the top drawer of the wooden cabinet and place it on the plate");
    expect(new Set(TASKS.map((t) => t.language)).size).toBe(10);
  });

  test("every initial state of every task follows the region rules", () => {
    const armDev: number[] = [];
    for (const task of TASKS) {
      const states = initStates(task.id);
      expect(states.length).toBe(50);
      for (const st of states) {
        expect(within(st.objects.plate_1[0], TABLE_REGIONS.plate_region.x) && within(st.objects.plate_1[1], TABLE_REGIONS.plate_region.y)).toBe(true);
        expect(within(st.objects.cookies_1[0], TABLE_REGIONS.box_region.x) && within(st.objects.cookies_1[1], TABLE_REGIONS.box_region.y)).toBe(true);
        const ram = st.objects.glazed_rim_porcelain_ramekin_1;
        expect(within(ram[0], TABLE_REGIONS.ramekin_region.x) && within(ram[1], TABLE_REGIONS.ramekin_region.y)).toBe(true);
        expectOnSupport(st, "akita_black_bowl_1", task.bowl1);
        expectOnSupport(st, "akita_black_bowl_2", task.bowl2);
        for (const pose of Object.values(st.objects)) expect(pose.slice(3)).toEqual([Math.SQRT1_2, 0, 0, Math.SQRT1_2]);
        const c = FIXTURE_REGIONS.cabinet;
        expect(within(st.cabinet.x, c.x) && within(st.cabinet.y, c.y) && within(st.cabinet.yaw, c.yaw)).toBe(true);
        expect(within(st.stove.x, FIXTURE_REGIONS.stove.x) && within(st.stove.y, FIXTURE_REGIONS.stove.y)).toBe(true);
        if (task.bowl1.kind !== "top_drawer") expect(st.drawers).toEqual([0, 0, 0]);
        st.arm.forEach((q, i) => armDev.push(q - PANDA_INIT_QPOS[i]!));
      }
    }
    // Arm noise N(0, 0.02²) over 3500 draws.
    const mean = armDev.reduce((a, b) => a + b, 0) / armDev.length;
    const std = Math.sqrt(armDev.reduce((a, b) => a + (b - mean) ** 2, 0) / armDev.length);
    expect(Math.abs(mean)).toBeLessThan(0.002);
    expect(std).toBeGreaterThan(0.018);
    expect(std).toBeLessThan(0.022);
  });

  test("initial states are a pure function of the fixed seed", () => {
    const rng = new Rng(INIT_STATE_SEED + 7919 * 6);
    const again = Array.from({ length: 50 }, (_, i) => sampleInitState(TASKS[6]!, i, rng));
    expect(again).toEqual(initStates(6));
    expect(initStates(6)).not.toEqual(initStates(8));
  });
});

describe("settled initial states", () => {
  let env: LiberoEnv;
  beforeAll(async () => {
    env = await LiberoEnv.create(2);
  }, 60_000);
  afterAll(() => env.delete());

  // Expected rest height of bowl_1's origin per support (bowl origin 1.6 mm above what it stands on).
  const restZ: Record<Support["kind"], (t: number) => number> = {
    table: () => 0.9016,
    on: (t) => (TASKS[t]!.bowl1.kind === "on" && (TASKS[t]!.bowl1 as { object: string }).object === "cookies_1" ? 0.9185 : 0.9427) + 0.0016,
    stove: () => 0.905 + STOVE_GEOM.burnerTop + 0.0016,
    cabinet_top: () => 0.905 + 0.223 + 0.0016,
    top_drawer: () => 0.905 + CABINET_GEOM.topDrawerFloor + 0.0016,
  };

  test.each(TASKS.map((t) => [t.id]))("task %i: bowl_1 comes to rest on its support, upright, near where it was placed", (id) => {
    env.reset(id, 7);
    const placed = initStates(id)[7]!;
    const bowl = env.bodyPose("akita_black_bowl_1");
    const kind = TASKS[id]!.bowl1.kind;
    expect(Math.abs(bowl.pos[2]! - restZ[kind](id))).toBeLessThan(0.004);
    expect(bowl.mat[8]!).toBeGreaterThan(0.995); // upright
    // Fixtures are re-sampled at reset (≤ 2 cm, a few degrees), carrying objects that rest on them.
    const tol = placed.attached.akita_black_bowl_1 ? 0.04 : 0.01;
    expect(Math.hypot(bowl.pos[0]! - placed.objects.akita_black_bowl_1[0], bowl.pos[1]! - placed.objects.akita_black_bowl_1[1])).toBeLessThan(tol);
    expect(env.checkSuccess()).toBe(false);
  }, 60_000);
});
