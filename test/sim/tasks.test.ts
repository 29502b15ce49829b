// The 10 tasks and their 500 fixed initial states: instructions, region rules, determinism, and
// where the objects come to rest after a reset.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { LiberoEnv } from "../../src/sim/env.ts";
import { Rng } from "../../src/util/random.ts";
import { CABINET_GEOM, STOVE_GEOM } from "../../src/sim/objects.ts";
import { PANDA_INIT_QPOS } from "../../src/sim/panda.ts";
import { OBJECTS } from "../../src/sim/objects.ts";
import { FIXTURE_REGIONS, INIT_STATE_SEED, initStates, isFixedInitState, sampleInitState, SPAWN_Z, TABLE_REGIONS, TASKS, trainingInitState, type FixturePose, type InitState, type Support } from "../../src/sim/tasks.ts";

const within = (v: number, [lo, hi]: readonly [number, number], tol = 1e-9) => v >= Math.min(lo, hi) - tol && v <= Math.max(lo, hi) + tol;

/** The `:ranges` (x_min, y_min, x_max, y_max) of the regions in LIBERO-Spatial's BDDL files, copied here on their own. */
const BDDL: Record<string, [number, number, number, number]> = {
  plate_region: [0.05, 0.19, 0.07, 0.21],
  next_to_plate_region: [0.0, 0.3, 0.02, 0.32],
  box_region: [0.06, 0.02, 0.08, 0.04],
  next_to_box_region: [0.12, -0.08, 0.14, -0.06],
  between_plate_ramekin_region: [-0.06, 0.19, -0.04, 0.21],
  ramekin_region: [-0.21, 0.19, -0.19, 0.21],
  next_to_ramekin_region: [-0.19, 0.31, -0.17, 0.33],
  table_center: [-0.1, -0.01, -0.05, 0.01],
};
/** TableRegionSampler draws U(min + 0.025, max − 0.025) per axis, an inverted interval when the region is narrower than 5 cm. */
const drawn = (lo: number, hi: number): [number, number] => [lo + 0.025, hi - 0.025];
const inRegion = (x: number, y: number, region: string) => {
  const [x0, y0, x1, y1] = BDDL[region]!;
  return within(x, drawn(x0, x1)) && within(y, drawn(y0, y1));
};

/** Object-frame coordinates of a world xy point in a fixture's frame. */
function local(f: FixturePose, x: number, y: number): [number, number] {
  const [c, s] = [Math.cos(f.yaw), Math.sin(f.yaw)];
  return [c * (x - f.x) + s * (y - f.y), -s * (x - f.x) + c * (y - f.y)];
}

/** World xy of a point in a fixture's frame. */
function world(f: FixturePose, lx: number, ly: number): [number, number] {
  const [c, s] = [Math.cos(f.yaw), Math.sin(f.yaw)];
  return [f.x + c * lx - s * ly, f.y + s * lx + c * ly];
}

function expectOnSupport(st: InitState, bowl: "akita_black_bowl_1" | "akita_black_bowl_2", support: Support) {
  const [x, y, z] = st.objects[bowl];
  const where = `${bowl} of task ${st.task} state ${st.index}`;
  switch (support.kind) {
    case "table":
      expect({ where, inside: inRegion(x, y, support.region) }).toEqual({ where, inside: true });
      expect(z).toBe(SPAWN_Z.table);
      break;
    case "on": {
      // ObjectBasedSampler: exactly above the other object.
      const o = st.objects[support.object];
      expect([x, y]).toEqual([o[0], o[1]]);
      expect(z).toBe(SPAWN_Z.onObject);
      break;
    }
    case "stove": {
      // SiteRegionRandomSampler on cook_region (size 0.075): site ± (0.075/2 − 0.025), world axes.
      const [sx, sy] = world(st.stove, 0.15, 0);
      expect({ where, dx: Math.abs(x - sx) <= 0.0125 + 1e-9, dy: Math.abs(y - sy) <= 0.0125 + 1e-9 }).toEqual({ where, dx: true, dy: true });
      expect(z).toBe(SPAWN_Z.stove);
      break;
    }
    case "cabinet_top": {
      // SiteRegionRandomSampler on top_side (size 0.12534 × 0.09438): site ± (size/2 − 0.025), world axes.
      const [sx, sy] = world(st.cabinet, 0.00354, 0.01567);
      expect({ where, dx: Math.abs(x - sx) <= 0.12534 / 2 - 0.025 + 1e-9, dy: Math.abs(y - sy) <= 0.09438 / 2 - 0.025 + 1e-9 }).toEqual({ where, dx: true, dy: true });
      expect(z).toBe(SPAWN_Z.cabinetTop);
      break;
    }
    case "top_drawer": {
      // InSiteRegionRandomSampler with a zero range: at the top_region site of the opened drawer.
      const [lx, ly] = local(st.cabinet, x, y);
      expect(lx).toBeCloseTo(0.00328, 4);
      expect(ly).toBeCloseTo(0.01128 + st.drawers[0], 4);
      expect(within(st.drawers[0], [-0.16, -0.14])).toBe(true);
      expect(z).toBe(SPAWN_Z.topDrawer);
      break;
    }
  }
}

/** Checks one initial state against LIBERO's placement rules (libero-spatial.md §1.1–1.2). */
function expectLiberoPlacement(st: InitState) {
  const task = TASKS[st.task]!;
  const o = st.objects;
  expect({ state: `${st.task}/${st.index}`, plate: inRegion(o.plate_1[0], o.plate_1[1], "plate_region") }).toEqual({ state: `${st.task}/${st.index}`, plate: true });
  expect(inRegion(o.cookies_1[0], o.cookies_1[1], "box_region")).toBe(true);
  expect(inRegion(o.glazed_rim_porcelain_ramekin_1[0], o.glazed_rim_porcelain_ramekin_1[1], "ramekin_region")).toBe(true);
  for (const n of ["plate_1", "cookies_1", "glazed_rim_porcelain_ramekin_1"] as const) expect(o[n][2]).toBe(SPAWN_Z.table);
  expectOnSupport(st, "akita_black_bowl_1", task.bowl1);
  expectOnSupport(st, "akita_black_bowl_2", task.bowl2);
  // ensure_valid_placement: objects on the table are more than 2 × 0.025 apart.
  const onTable = OBJECTS.filter((n) => o[n][2] === SPAWN_Z.table);
  for (let i = 0; i < onTable.length; i++)
    for (let j = i + 1; j < onTable.length; j++) expect(Math.hypot(o[onTable[i]!][0] - o[onTable[j]!][0], o[onTable[i]!][1] - o[onTable[j]!][1])).toBeGreaterThan(0.05);
  for (const pose of Object.values(o)) expect(pose.slice(3)).toEqual([Math.SQRT1_2, 0, 0, Math.SQRT1_2]);
  const c = FIXTURE_REGIONS.cabinet;
  expect(within(st.cabinet.x, [0.02, 0.04]) && within(st.cabinet.y, [-0.28, -0.26]) && within(st.cabinet.yaw, c.yaw)).toBe(true);
  expect(within(st.stove.x, [-0.42, -0.4]) && within(st.stove.y, [-0.15, -0.13]) && st.stove.yaw === 0).toBe(true);
  if (task.bowl1.kind !== "top_drawer") expect(st.drawers).toEqual([0, 0, 0]);
}

describe("tasks", () => {
  test("10 tasks with LIBERO's task.language prompts", () => {
    expect(TASKS.length).toBe(10);
    expect(TASKS[0]!.language).toBe("pick up the black bowl between the plate and the ramekin and place it on the plate");
    expect(TASKS[4]!.language).toBe("pick up the black bowl in the top drawer of the wooden cabinet and place it on the plate");
    expect(new Set(TASKS.map((t) => t.language)).size).toBe(10);
  });

  test("the table regions' centre ranges are LIBERO's (plate y 0.185–0.215, bowl between plate and ramekin x −0.065…−0.035)", () => {
    for (const [name, r] of Object.entries(TABLE_REGIONS)) {
      const [x0, y0, x1, y1] = BDDL[name]!;
      for (const [got, want] of [[r.x, drawn(x0, x1)], [r.y, drawn(y0, y1)]] as const) {
        expect(got[0]).toBeCloseTo(Math.min(...want), 12);
        expect(got[1]).toBeCloseTo(Math.max(...want), 12);
      }
    }
    expect(TABLE_REGIONS.plate_region.y[0]).toBeCloseTo(0.185, 12);
    expect(TABLE_REGIONS.plate_region.y[1]).toBeCloseTo(0.215, 12);
    expect(TABLE_REGIONS.between_plate_ramekin_region.x[0]).toBeCloseTo(-0.065, 12);
    expect(TABLE_REGIONS.table_center.x[1] - TABLE_REGIONS.table_center.x[0]).toBeCloseTo(0, 12);
  });

  test("all 500 fixed initial states follow LIBERO's placement rules, objects as close as LIBERO puts them", () => {
    const armDev: number[] = [];
    const plateY: number[] = [];
    let bowlNearPlate = 0;
    for (const task of TASKS) {
      const states = initStates(task.id);
      expect(states.length).toBe(50);
      for (const st of states) {
        expectLiberoPlacement(st);
        st.arm.forEach((q, i) => armDev.push(q - PANDA_INIT_QPOS[i]!));
        plateY.push(st.objects.plate_1[1]);
        const [b, p] = [st.objects.akita_black_bowl_1, st.objects.plate_1];
        if (task.id === 0 && Math.hypot(b[0] - p[0], b[1] - p[1]) < 0.1) bowlNearPlate++;
      }
    }
    // Uniform over the whole range, not thinned out near other objects (the plate region's y range is 3 cm).
    expect(Math.min(...plateY)).toBeLessThan(0.1875);
    expect(Math.max(...plateY)).toBeGreaterThan(0.2125);
    // Bowl–plate distance in task 0 is ~triangular on 8–14 cm: about a fifth of the states are under 10 cm.
    expect(bowlNearPlate).toBeGreaterThan(3);
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

describe("training initial states", () => {
  test("same rules, same distribution, a pure function of (task, seed, index)", () => {
    const plateX: number[] = [];
    for (const task of TASKS)
      for (let i = 0; i < 50; i++) {
        const st = trainingInitState(task.id, 1, i);
        expect([st.task, st.index]).toEqual([task.id, i]);
        expectLiberoPlacement(st);
        plateX.push(st.objects.plate_1[0]);
      }
    expect(trainingInitState(3, 1, 7)).toEqual(trainingInitState(3, 1, 7));
    expect(trainingInitState(3, 1, 7)).not.toEqual(trainingInitState(3, 2, 7));
    expect(trainingInitState(3, 1, 7)).not.toEqual(trainingInitState(3, 1, 8));
    // Plate x uniform on [0.045, 0.075]: mean 0.06, sd 0.0087, so the mean of 500 is within ±0.0012 at 3σ.
    expect(Math.abs(plateX.reduce((a, b) => a + b, 0) / plateX.length - 0.06)).toBeLessThan(0.0012);
  });

  test("none of them is one of the 500 fixed evaluation states", () => {
    for (const st of initStates(5)) expect(isFixedInitState(st)).toBe(true);
    for (const task of TASKS)
      for (const seed of [0, 1, 2])
        for (let i = 0; i < 100; i++) {
          const st = trainingInitState(task.id, seed, i);
          expect(isFixedInitState(st)).toBe(false);
          // Not even close: every fixed state differs by more than 1e-4 rad in some arm joint.
          for (const f of initStates(task.id)) expect(Math.max(...f.arm.map((q, k) => Math.abs(q - st.arm[k]!)))).toBeGreaterThan(1e-4);
        }
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

  test("a bowl placed over the plate's rim drops onto it: nothing is thrown, everything comes to rest", () => {
    let onRim = 0;
    for (let i = 0; i < 50; i++) {
      env.reset(0, i);
      const placed = initStates(0)[i]!.objects;
      for (const name of OBJECTS) {
        const p = env.bodyPose(name).pos;
        // LIBERO's stiff contacts pushing a bowl out of the plate threw the plate up to 37 cm.
        expect({ i, name, moved: Math.hypot(p[0]! - placed[name][0], p[1]! - placed[name][1]) < 0.02 }).toEqual({ i, name, moved: true });
      }
      const plate = env.bodyPose("plate_1").pos;
      expect(inRegion(plate[0]!, plate[1]!, "plate_region") || Math.hypot(plate[0]! - placed.plate_1[0], plate[1]! - placed.plate_1[1]) < 0.015).toBe(true);
      for (let k = 9; k < env.model.nv; k++) expect(Math.abs(env.data.qvel[k]!)).toBeLessThan(0.2);
      const bowl = env.bodyPose("akita_black_bowl_1");
      if (bowl.mat[8]! < Math.cos((5 * Math.PI) / 180) && env.touching(env.mj.mj_name2id(env.model, env.mj.mjtObj.mjOBJ_BODY.value, "akita_black_bowl_1"), env.mj.mj_name2id(env.model, env.mj.mjtObj.mjOBJ_BODY.value, "plate_1"))) onRim++;
    }
    // About a fifth of task 0's bowls start within reach of the plate's rim and rest on it, tilted.
    expect(onRim).toBeGreaterThan(3);
  }, 60_000);
});
