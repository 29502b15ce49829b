// The 10 LIBERO-Spatial tasks, their placement regions, the 50 fixed initial states per task
// (generated from a fixed seed by LIBERO's placement rules, libero-spatial.md §1.1–1.2), and the
// training streams of further states from the same distribution that demonstrations are collected on.
import { hashInts, Rng } from "../util/random.ts";
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

/**
 * The table regions' `:ranges` (x_min, y_min, x_max, y_max; world metres, table centre at 0,0), copied
 * from the `:regions` block that all 10 LIBERO-Spatial BDDL files share.
 */
export const BDDL_TABLE_REGIONS = {
  plate_region: [0.05, 0.19, 0.07, 0.21],
  next_to_plate_region: [0.0, 0.3, 0.02, 0.32],
  box_region: [0.06, 0.02, 0.08, 0.04],
  next_to_box_region: [0.12, -0.08, 0.14, -0.06],
  between_plate_ramekin_region: [-0.06, 0.19, -0.04, 0.21],
  ramekin_region: [-0.21, 0.19, -0.19, 0.21],
  next_to_ramekin_region: [-0.19, 0.31, -0.17, 0.33],
  table_center: [-0.1, -0.01, -0.05, 0.01],
} as const satisfies Record<string, readonly [number, number, number, number]>;
export type TableRegion = keyof typeof BDDL_TABLE_REGIONS;

/** `horizontal_radius` of the four small objects (the x of their `horizontal_radius_site`). */
export const HORIZONTAL_RADIUS = 0.025;
/** `top_offset` and `bottom_offset` z of the small objects (`top_site`, `bottom_site`), and of the cabinet and stove. */
const OBJECT_TOP = 0.04;
const OBJECT_BOTTOM = -0.06;
const FIXTURE_RADIUS = 0.045;
const FIXTURE_TOP = 0.045;

/**
 * TableRegionSampler's draw interval for one axis: `np.random.uniform(low=min + r, high=max − r)`
 * (ensure_object_boundary_in_range). A region narrower than 2r gives an inverted interval, which
 * numpy samples all the same (`low + (high − low)·u`): centre ± (r − width/2).
 */
const drawInterval = (min: number, max: number): [number, number] => [min + HORIZONTAL_RADIUS, max - HORIZONTAL_RADIUS];

/**
 * Effective sampled centre ranges of the table regions, [lo, hi] per axis (libero-spatial.md §1.1).
 * Every 2 cm range becomes centre ± 1.5 cm: plate y 0.185–0.215 and bowl-between-plate-and-ramekin
 * x −0.065…−0.035 (the table in libero-spatial.md §1.1 gives 0.165–0.235 and −0.075…−0.025 for
 * these two, which its own rule does not give; the decoded task-0 states, bowl x −0.064…−0.035,
 * agree with the rule).
 */
export const TABLE_REGIONS = Object.fromEntries(
  Object.entries(BDDL_TABLE_REGIONS).map(([name, [x0, y0, x1, y1]]) => {
    const sorted = ([a, b]: [number, number]) => [Math.min(a, b), Math.max(a, b)] as const;
    return [name, { x: sorted(drawInterval(x0, x1)), y: sorted(drawInterval(y0, y1)) }];
  }),
) as Record<TableRegion, { x: readonly [number, number]; y: readonly [number, number] }>;

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

/**
 * Offset ranges (world axes) of SiteRegionRandomSampler around a site: LIBERO halves the site's
 * `size[:2]` (already half extents) and shrinks that by the horizontal radius: ±0.0377 × ±0.0222 on
 * the cabinet's `top_side`, ±0.0125 on the stove's `cook_region`.
 */
const siteRange = (size: number): [number, number] => [-size / 2 + HORIZONTAL_RADIUS, size / 2 - HORIZONTAL_RADIUS];
export const SITE_OFFSETS = {
  cabinet_top: { x: siteRange(CABINET_GEOM.topSideSize[0]), y: siteRange(CABINET_GEOM.topSideSize[1]) },
  stove: { x: siteRange(STOVE_GEOM.cookRegionSize[0]), y: siteRange(STOVE_GEOM.cookRegionSize[1]) },
} as const;

/** What LIBERO's overlap check knows of an object already placed: origin, horizontal radius, top offset. */
interface Placed {
  x: number;
  y: number;
  z: number;
  radius: number;
  top: number;
}

/**
 * LIBERO's `ensure_valid_placement`: a candidate (a small object, radius 0.025, bottom offset −0.06)
 * is refused when its xy is within the sum of horizontal radii of an object placed before it (`<=`)
 * and its origin is at most (that object's top offset − its own bottom offset) above that object's.
 */
const overlaps = (x: number, y: number, z: number, placed: Placed[]) =>
  placed.some((o) => Math.hypot(x - o.x, y - o.y) <= o.radius + HORIZONTAL_RADIUS && z - o.z <= o.top - OBJECT_BOTTOM);

/** A sampler's retry loop: up to 5000 draws of this one object; the objects placed before it stay. */
function drawValid(draw: () => [number, number], z: number, placed: Placed[], what: string): [number, number] {
  for (let i = 0; i < 5000; i++) {
    const [x, y] = draw();
    if (!overlaps(x, y, z, placed)) return [x, y];
  }
  throw new Error(`cannot place ${what} (LIBERO's RandomizationError)`);
}

const attachment = (s: Support) => (s.kind === "stove" ? "stove" : s.kind === "cabinet_top" || s.kind === "top_drawer" ? "cabinet" : undefined);

/**
 * One initial state of `task`, drawn from `rng` the way LIBERO's reset places objects
 * (`bddl_base_domain._add_placement_initializer`, libero-spatial.md §1.1):
 * 1. the `Open` drawer joint, U(−0.16, −0.14);
 * 2. in `:init` order (bowls on table regions, plate, cookies, ramekin), each object drawn in its
 *    region's centre range and re-drawn alone while it overlaps one placed before it; then the
 *    cabinet and stove in their regions, unchecked;
 * 3. bowls on a fixture site (cabinet `top_side`, stove `cook_region`): the site's world position
 *    plus an offset in world axes (SITE_OFFSETS), overlap-checked the same way;
 * 4. a bowl in the top drawer: exactly at its `top_region` site (the drawer pulled open);
 * 5. a bowl on another object: at that object's x, y, unchecked.
 * Heights are the spawn heights of LIBERO's states; every object gets the +90° yaw. With these
 * regions the overlap check never binds in LIBERO-Spatial (the closest pair, a bowl next to the
 * plate, is ≥ 8 cm from it), so objects are as close as LIBERO puts them: a dropped bowl can land on
 * the plate's rim, the ramekin's or the cookie box's edge, as in LIBERO.
 */
export function sampleInitState(task: Task, index: number, rng: Rng): InitState {
  const arm = PANDA_INIT_QPOS.map((q) => q + 0.02 * rng.normal());
  const drawers: [number, number, number] = [task.bowl1.kind === "top_drawer" ? pick(rng, OPEN_RANGE) : 0, 0, 0];
  const objects: Partial<Record<ObjectName, ObjectPose>> = {};
  const placed: Placed[] = [];
  const put = (name: ObjectName, x: number, y: number, z: number) => {
    objects[name] = [x, y, z, ...YAW90];
    placed.push({ x, y, z, radius: HORIZONTAL_RADIUS, top: OBJECT_TOP });
  };
  const bowls = [
    ["akita_black_bowl_1", task.bowl1],
    ["akita_black_bowl_2", task.bowl2],
  ] as const;
  const onRegion: [ObjectName, TableRegion][] = [
    ...bowls.flatMap(([name, s]) => (s.kind === "table" ? [[name, s.region] as [ObjectName, TableRegion]] : [])),
    ["plate_1", "plate_region"],
    ["cookies_1", "box_region"],
    ["glazed_rim_porcelain_ramekin_1", "ramekin_region"],
  ];
  for (const [name, region] of onRegion) {
    const r = TABLE_REGIONS[region];
    put(name, ...drawValid(() => [pick(rng, r.x), pick(rng, r.y)], SPAWN_Z.table, placed, `${name} in ${region}`), SPAWN_Z.table);
  }
  const fx = sampleFixtures(rng);
  for (const f of [fx.cabinet, fx.stove]) placed.push({ x: f.x, y: f.y, z: FIXTURE_Z, radius: FIXTURE_RADIUS, top: FIXTURE_TOP });
  for (const [name, s] of bowls) {
    if (s.kind !== "cabinet_top" && s.kind !== "stove") continue;
    const [sx, sy] = s.kind === "stove" ? fixtureToWorld(fx.stove, STOVE_GEOM.burner) : fixtureToWorld(fx.cabinet, CABINET_GEOM.topSide);
    const o = SITE_OFFSETS[s.kind];
    const z = s.kind === "stove" ? SPAWN_Z.stove : SPAWN_Z.cabinetTop;
    put(name, ...drawValid(() => [sx + pick(rng, o.x), sy + pick(rng, o.y)], z, placed, `${name} on ${s.kind}`), z);
  }
  for (const [name, s] of bowls) {
    if (s.kind !== "top_drawer") continue;
    const [dx, dy] = CABINET_GEOM.drawerXY;
    put(name, ...drawValid(() => fixtureToWorld(fx.cabinet, [dx, dy + drawers[0]]), SPAWN_Z.topDrawer, placed, `${name} in the top drawer`), SPAWN_Z.topDrawer);
  }
  for (const [name, s] of bowls) {
    if (s.kind !== "on") continue;
    const o = objects[s.object]!;
    put(name, o[0], o[1], SPAWN_Z.onObject);
  }
  const attached: InitState["attached"] = {};
  for (const [name, s] of bowls) {
    const a = attachment(s);
    if (a) attached[name] = a;
  }
  const ordered = Object.fromEntries(OBJECTS.map((n) => [n, objects[n]!])) as Record<ObjectName, ObjectPose>;
  return { task: task.id, index, arm, objects: ordered, drawers, cabinet: fx.cabinet, stove: fx.stove, attached };
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

/** Salt of the training streams, so that no training seed shares the fixed states' seeds. */
const TRAINING_STREAM = 0x7a3c91e5;

/**
 * Initial state `index` of a task's training stream `seed`: drawn by the same rules as the fixed
 * states, each from an Rng of its own (any index is drawn directly, so collection runs in parallel
 * and resumes where it stopped), and never one of the 50 fixed evaluation states. mulberry32 streams
 * of different seeds are shifts of one cycle, so a draw could in principle replay a fixed state;
 * such a draw is redrawn with the next attempt number.
 */
export function trainingInitState(taskId: number, seed: number, index: number): InitState {
  const task = TASKS[taskId];
  if (!task) throw new RangeError(`task id ${taskId} is not in 0..${NUM_TASKS - 1}`);
  for (let attempt = 0; ; attempt++) {
    const st = sampleInitState(task, index, new Rng(hashInts(TRAINING_STREAM, seed, taskId, index, attempt)));
    if (!isFixedInitState(st)) return st;
  }
}

/** Whether `st` is one of its task's fixed initial states: the same arm posture, object and fixture placement (to 1e-9). */
export function isFixedInitState(st: InitState): boolean {
  const numbers = (s: InitState) => [...s.arm, ...OBJECTS.flatMap((n) => s.objects[n].slice(0, 3)), ...s.drawers, s.cabinet.x, s.cabinet.y, s.cabinet.yaw, s.stove.x, s.stove.y];
  const mine = numbers(st);
  return initStates(st.task).some((f) => numbers(f).every((v, i) => Math.abs(v - mine[i]!) <= 1e-9));
}
