// The 10 LIBERO-Spatial tasks, their placement regions, and the 50 fixed initial states per task,
// generated from a fixed seed by LIBERO's region rules (libero-spatial.md §1.1–1.2).
import { Rng } from "./math.ts";
import { CABINET_GEOM, OBJECTS, STOVE_GEOM, type ObjectName } from "./objects.ts";
import { PANDA_INIT_QPOS } from "./panda.ts";

export const SUITE = "libero_spatial";
export const NUM_TASKS = 10;
export const INIT_STATES_PER_TASK = 50;
/** Seed of the initial-state generator: the same 500 states on every machine. */
export const INIT_STATE_SEED = 20240607;

/** Where bowl_1 / bowl_2 start: a table region, or on/in another object or fixture. */
export type Support =
  | { kind: "table"; region: TableRegion }
  | { kind: "on"; object: "cookies_1" | "glazed_rim_porcelain_ramekin_1" }
  | { kind: "cabinet_top" }
  | { kind: "top_drawer" }
  | { kind: "stove" };

export interface Task {
  id: number;
  /** `task.language`, the prompt policies get (the BDDL file name with spaces). */
  language: string;
  bowl1: Support;
  bowl2: Support;
}

/** Effective sampled centre ranges of the table regions (§1.1: U(min + r, max − r) with r = 0.025). */
export const TABLE_REGIONS = {
  plate_region: { x: [0.045, 0.075], y: [0.165, 0.235] },
  next_to_plate_region: { x: [-0.005, 0.025], y: [0.295, 0.325] },
  box_region: { x: [0.055, 0.085], y: [0.015, 0.045] },
  next_to_box_region: { x: [0.115, 0.145], y: [-0.085, -0.055] },
  between_plate_ramekin_region: { x: [-0.075, -0.025], y: [0.185, 0.215] },
  ramekin_region: { x: [-0.215, -0.185], y: [0.185, 0.215] },
  next_to_ramekin_region: { x: [-0.195, -0.165], y: [0.305, 0.335] },
  table_center: { x: [-0.075, -0.075], y: [-0.015, 0.015] },
} as const satisfies Record<string, { x: readonly [number, number]; y: readonly [number, number] }>;
export type TableRegion = keyof typeof TABLE_REGIONS;

/** Fixture regions: exact ranges (fixtures don't shrink); cabinet yaw 152.5°–156.1°, stove yaw 0. */
export const FIXTURE_REGIONS = {
  cabinet: { x: [0.02, 0.04], y: [-0.28, -0.26], yaw: [2.6613777765410678, 2.7242096296128633] },
  stove: { x: [-0.42, -0.4], y: [-0.15, -0.13], yaw: [0, 0] },
} as const;
/** Fixture origin height: 0.90 + z_offset(−0.04) − bottom_site(−0.045). */
export const FIXTURE_Z = 0.905;

const table = (region: TableRegion): Support => ({ kind: "table", region });

export const TASKS: readonly Task[] = [
  { id: 0, language: "pick up the black bowl between the plate and the ramekin and place it on the plate", bowl1: table("between_plate_ramekin_region"), bowl2: table("next_to_ramekin_region") },
  { id: 1, language: "pick up the black bowl next to the ramekin and place it on the plate", bowl1: table("next_to_ramekin_region"), bowl2: table("next_to_box_region") },
  { id: 2, language: "pick up the black bowl from table center and place it on the plate", bowl1: table("table_center"), bowl2: table("next_to_plate_region") },
  { id: 3, language: "pick up the black bowl on the cookie box and place it on the plate", bowl1: { kind: "on", object: "cookies_1" }, bowl2: { kind: "cabinet_top" } },
  { id: 4, language: "pick up the black bowl in the top drawer of the wooden cabinet and place it on the plate", bowl1: { kind: "top_drawer" }, bowl2: { kind: "cabinet_top" } },
  { id: 5, language: "pick up the black bowl on the ramekin and place it on the plate", bowl1: { kind: "on", object: "glazed_rim_porcelain_ramekin_1" }, bowl2: { kind: "on", object: "cookies_1" } },
  { id: 6, language: "pick up the black bowl next to the cookie box and place it on the plate", bowl1: table("next_to_box_region"), bowl2: { kind: "stove" } },
  { id: 7, language: "pick up the black bowl on the stove and place it on the plate", bowl1: { kind: "stove" }, bowl2: { kind: "cabinet_top" } },
  { id: 8, language: "pick up the black bowl next to the plate and place it on the plate", bowl1: table("next_to_plate_region"), bowl2: table("next_to_ramekin_region") },
  { id: 9, language: "pick up the black bowl on the wooden cabinet and place it on the plate", bowl1: { kind: "cabinet_top" }, bowl2: { kind: "stove" } },
];

/** A fixture's planar pose: origin x, y (z is FIXTURE_Z) and yaw about z. */
export interface FixturePose {
  x: number;
  y: number;
  yaw: number;
}

/** Pose of a free object: position and quaternion (w,x,y,z), as in its free joint's qpos. */
export type ObjectPose = [number, number, number, number, number, number, number];

export interface InitState {
  task: number;
  index: number;
  /** 7 arm joints: LIBERO's start posture plus N(0, 0.02²). */
  arm: number[];
  objects: Record<ObjectName, ObjectPose>;
  /** Drawer slides (top, middle, bottom); negative = open. */
  drawers: [number, number, number];
  /** Fixture poses the objects were placed against (a reset re-samples them and carries the objects along). */
  cabinet: FixturePose;
  stove: FixturePose;
  /** Which fixture, if any, each object rests on; it moves with that fixture when the fixture is re-sampled. */
  attached: Partial<Record<ObjectName, "cabinet" | "stove">>;
}

/** Spawn heights of object origins (§1.2): table objects are dropped from 7 cm. */
export const SPAWN_Z = { table: 0.97, onObject: 1.08, stove: 1.01, cabinetTop: 1.2315, topDrawer: 1.1506 } as const;
/** Every object is yawed +90° (the xyzw-into-wxyz quirk of LIBERO's samplers). */
const YAW90: [number, number, number, number] = [Math.SQRT1_2, 0, 0, Math.SQRT1_2];
/** Initial finger joints in LIBERO's states. */
export const INIT_FINGERS = [0.020833, -0.020833] as const;
/** Top drawer opening for task 4 (`Open`: qpos in [−0.16, −0.14]). */
const OPEN_RANGE = [-0.16, -0.14] as const;

/**
 * Footprint radii (m) used to keep table objects from spawning inside each other. LIBERO checks
 * only its 0.025 `horizontal_radius`, which lets a dropped bowl land in the plate's rim; these are
 * the radii of our primitives at the height where they would meet (bowl: its wall at plate-rim height).
 */
const FOOTPRINT: Record<ObjectName, number> = {
  akita_black_bowl_1: 0.046,
  akita_black_bowl_2: 0.046,
  plate_1: 0.0685,
  glazed_rim_porcelain_ramekin_1: 0.0445,
  cookies_1: 0.045,
};

const pick = (rng: Rng, r: readonly [number, number]) => rng.uniform(r[0], r[1]);

export function sampleFixtures(rng: Rng): { cabinet: FixturePose; stove: FixturePose } {
  const c = FIXTURE_REGIONS.cabinet;
  const s = FIXTURE_REGIONS.stove;
  return {
    cabinet: { x: pick(rng, c.x), y: pick(rng, c.y), yaw: pick(rng, c.yaw) },
    stove: { x: pick(rng, s.x), y: pick(rng, s.y), yaw: pick(rng, s.yaw) },
  };
}

/** World xy of a point given in a fixture's local frame. */
export function fixtureToWorld(f: FixturePose, local: readonly number[]): [number, number] {
  const [c, s] = [Math.cos(f.yaw), Math.sin(f.yaw)];
  return [f.x + c * local[0]! - s * local[1]!, f.y + s * local[0]! + c * local[1]!];
}

function placeBowl(rng: Rng, support: Support, objects: Partial<Record<ObjectName, ObjectPose>>, fx: { cabinet: FixturePose; stove: FixturePose }, drawers: number[]): ObjectPose {
  switch (support.kind) {
    case "table": {
      const r = TABLE_REGIONS[support.region];
      return [pick(rng, r.x), pick(rng, r.y), SPAWN_Z.table, ...YAW90];
    }
    case "on": {
      const o = objects[support.object]!;
      return [o[0], o[1], SPAWN_Z.onObject, ...YAW90];
    }
    case "stove": {
      const [x, y] = fixtureToWorld(fx.stove, [STOVE_GEOM.burner[0] + rng.uniform(-0.01, 0.01), STOVE_GEOM.burner[1] + rng.uniform(-0.01, 0.01)]);
      return [x, y, SPAWN_Z.stove, ...YAW90];
    }
    case "cabinet_top": {
      const t = CABINET_GEOM.topSide;
      const [x, y] = fixtureToWorld(fx.cabinet, [t[0] + rng.uniform(-0.03, 0.03), t[1] + rng.uniform(-0.02, 0.02)]);
      return [x, y, SPAWN_Z.cabinetTop, ...YAW90];
    }
    case "top_drawer": {
      const [dx, dy] = CABINET_GEOM.drawerXY;
      const [x, y] = fixtureToWorld(fx.cabinet, [dx, dy + drawers[0]!]);
      return [x, y, SPAWN_Z.topDrawer, ...YAW90];
    }
  }
}

const attachment = (s: Support) => (s.kind === "stove" ? "stove" : s.kind === "cabinet_top" || s.kind === "top_drawer" ? "cabinet" : undefined);

/** One initial state of `task`, drawn from `rng`; table objects are re-drawn until their footprints are apart. */
export function sampleInitState(task: Task, index: number, rng: Rng): InitState {
  const arm = PANDA_INIT_QPOS.map((q) => q + 0.02 * rng.normal());
  const fx = sampleFixtures(rng);
  const drawers: [number, number, number] = [task.bowl1.kind === "top_drawer" ? pick(rng, OPEN_RANGE) : 0, 0, 0];
  for (let attempt = 0; attempt < 1000; attempt++) {
    const objects: Partial<Record<ObjectName, ObjectPose>> = {};
    const onTable = (name: ObjectName, region: TableRegion) => {
      const r = TABLE_REGIONS[region];
      objects[name] = [pick(rng, r.x), pick(rng, r.y), SPAWN_Z.table, ...YAW90];
    };
    onTable("plate_1", "plate_region");
    onTable("cookies_1", "box_region");
    onTable("glazed_rim_porcelain_ramekin_1", "ramekin_region");
    objects.akita_black_bowl_1 = placeBowl(rng, task.bowl1, objects, fx, drawers);
    objects.akita_black_bowl_2 = placeBowl(rng, task.bowl2, objects, fx, drawers);
    const tableObjects = OBJECTS.filter((n) => !n.startsWith("akita") || (n.endsWith("1") ? task.bowl1 : task.bowl2).kind === "table");
    const clear = tableObjects.every((a, i) =>
      tableObjects.slice(i + 1).every((b) => Math.hypot(objects[a]![0] - objects[b]![0], objects[a]![1] - objects[b]![1]) >= FOOTPRINT[a] + FOOTPRINT[b]),
    );
    if (!clear) continue;
    const attached: InitState["attached"] = {};
    const a1 = attachment(task.bowl1);
    const a2 = attachment(task.bowl2);
    if (a1) attached.akita_black_bowl_1 = a1;
    if (a2) attached.akita_black_bowl_2 = a2;
    return { task: task.id, index, arm, objects: objects as Record<ObjectName, ObjectPose>, drawers, cabinet: fx.cabinet, stove: fx.stove, attached };
  }
  throw new Error(`could not place the objects of task ${task.id} apart from each other`);
}

const cache = new Map<number, InitState[]>();

/** The 50 fixed initial states of a task (same seed, same states, on every machine). */
export function initStates(taskId: number): InitState[] {
  const task = TASKS[taskId];
  if (!task) throw new RangeError(`task id ${taskId} is not in 0..${NUM_TASKS - 1}`);
  let states = cache.get(taskId);
  if (!states) {
    const rng = new Rng(INIT_STATE_SEED + 7919 * taskId);
    states = Array.from({ length: INIT_STATES_PER_TASK }, (_, i) => sampleInitState(task, i, rng));
    cache.set(taskId, states);
  }
  return states;
}
