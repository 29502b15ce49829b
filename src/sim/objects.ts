// The LIBERO-Spatial objects and fixtures built from primitives with the sizes of
// libero-spatial.md §3: two akita black bowls, plate, ramekin, cookie box (free bodies), the wooden
// cabinet with three drawers and the flat stove with its knob (fixtures posed at each reset).
import { collider, el, ringSlabs, solid, visual, type Rgba } from "./mjcf.ts";

/** Free objects in BDDL order: their free joints follow the arm and fingers in qpos. */
export const OBJECTS = ["akita_black_bowl_1", "akita_black_bowl_2", "cookies_1", "glazed_rim_porcelain_ramekin_1", "plate_1"] as const;
export type ObjectName = (typeof OBJECTS)[number];
export const CABINET = "wooden_cabinet_1";
export const STOVE = "flat_stove_1";
export const DRAWERS = ["top", "middle", "bottom"] as const;

/** Scanned-object contact parameters (robosuite `objects.py` defaults for LIBERO's objects). */
const OBJECT_CONTACT = { friction: [0.95, 0.3, 0.1], solimp: [0.998, 0.998, 0.001], solref: [0.001, 1], density: 100 };

const BLACK: Rgba = [0.05, 0.05, 0.055, 1];
const WHITE: Rgba = [0.95, 0.95, 0.93, 1];
const GLAZE: Rgba = [0.93, 0.9, 0.84, 1];
const WOOD: Rgba = [0.56, 0.37, 0.2, 1];
const WOOD_DARK: Rgba = [0.42, 0.26, 0.13, 1];
const METAL: Rgba = [0.2, 0.2, 0.2, 1];
const STOVE_BLACK: Rgba = [0.1, 0.1, 0.1, 1];

/** Bowl geometry (origin 1.6 mm below the bottom, so it rests at table + 0.0016 as in LIBERO). */
export const BOWL = { radius: 0.0535, rimZ: 0.0505, bottomZ: -0.0016, wall: 0.005 } as const;

function freeBody(name: string, pos: number[], ...geoms: string[]): string {
  // LIBERO's objects give their root free joint a little damping.
  return el("body", { name, pos }, el("joint", { name: `${name}_joint0`, type: "free", damping: 0.0005 }), ...geoms);
}

/** A flat-bottomed box collider: box-box contacts rest flat (4 points) where a cylinder would rock. */
function foot(halfWidth: number, z0: number, z1: number, rgba: Rgba, draw: boolean): string {
  const p = { type: "box" as const, size: [halfWidth, halfWidth, (z1 - z0) / 2], pos: [0, 0, (z0 + z1) / 2], rgba, contact: OBJECT_CONTACT };
  return draw ? solid(p) : collider(p);
}

const ring = (slabs: ReturnType<typeof ringSlabs>, rgba: Rgba) =>
  slabs.map((s) => solid({ type: "box", size: s.size, pos: s.pos, quat: s.quat, rgba, contact: OBJECT_CONTACT }));

/** Hollow bowl Ø0.107 × 0.052: a flat foot, a flared lower wall and a near-vertical rim a parallel gripper can pinch. */
function bowl(name: string, pos: number[]): string {
  const { bottomZ, wall, rimZ } = BOWL;
  const inner = BOWL.radius - wall;
  return freeBody(
    name,
    pos,
    // The flared wall's outer edge dips below its inner line by wall·sin(tilt); starting it 5 mm up
    // keeps it clear of the ground, so only the foot touches what the bowl stands on.
    foot(0.021, bottomZ, bottomZ + 0.006, BLACK, true),
    ...ring(ringSlabs(12, 0.029, bottomZ + 0.005, inner, 0.026, wall), BLACK),
    ...ring(ringSlabs(12, inner, 0.026, inner, rimZ, wall), BLACK),
  );
}

/** Plate Ø0.137 × 0.019: flat centre and a raised rim. */
function plate(pos: number[]): string {
  return freeBody(
    "plate_1",
    pos,
    foot(0.045, -0.0025, 0.0015, WHITE, false),
    visual({ type: "cylinder", size: [0.05, 0.002], pos: [0, 0, -0.0005], rgba: WHITE }),
    // Rim from 3.5 mm above the bottom: the tilted slabs dip by thickness·sin(45°) below their inner line.
    ...ring(ringSlabs(16, 0.048, 0.001, 0.0655, 0.0164, 0.003), WHITE),
  );
}

/** Ramekin Ø0.089 × 0.042; a bowl can be stacked on its rim. */
function ramekin(pos: number[]): string {
  return freeBody(
    "glazed_rim_porcelain_ramekin_1",
    pos,
    foot(0.0315, 0.0007, 0.0427, GLAZE, false),
    visual({ type: "cylinder", size: [0.0445, 0.021], pos: [0, 0, 0.0217], rgba: GLAZE }),
    visual({ type: "cylinder", size: [0.037, 0.0006], pos: [0, 0, 0.0428], rgba: [0.8, 0.78, 0.72, 1] }),
  );
}

/** Cookie box 0.062 × 0.083 × 0.019 lying flat, centred on its origin. */
function cookies(pos: number[]): string {
  return freeBody(
    "cookies_1",
    pos,
    solid({ type: "box", size: [0.031, 0.0415, 0.0095], rgba: [0.8, 0.33, 0.16, 1], contact: OBJECT_CONTACT }),
    visual({ type: "box", size: [0.0312, 0.03, 0.0004], pos: [0, 0, 0.0094], rgba: [0.95, 0.85, 0.55, 1] }),
  );
}

/** Cabinet geometry in its local frame (front with handles toward −y), mesh scale 0.05. */
export const CABINET_GEOM = {
  /** Drawer vertical spans (bottom, top) from the mesh. */
  drawerZ: { top: [0.148, 0.219], middle: [0.078, 0.149], bottom: [0.009, 0.079] },
  /** Drawer centres (the `*_region` sites) when closed. */
  drawerXY: [0.00328, 0.01128],
  /** Top drawer floor surface (local z) that a bowl in the drawer rests on. */
  topDrawerFloor: 0.148 + 0.007,
  /** `top_side` site: the cabinet's top surface, and its size (half extents, as wooden_cabinet.xml writes them). */
  topSide: [0.00354, 0.01567, 0.22152],
  topSideSize: [0.12534, 0.09438, 0.00147],
} as const;

function drawer(level: (typeof DRAWERS)[number]): string {
  const [z0, z1] = CABINET_GEOM.drawerZ[level];
  const [hx, hy] = [0.111, 0.0865];
  const wallH = (z1 - 0.004 - (z0 + 0.002)) / 2;
  const wallZ = z0 + 0.002 + wallH;
  const b = (pos: number[], size: number[], rgba: Rgba = WOOD) => solid({ type: "box", pos, size, rgba, contact: { density: 500 } });
  return el(
    "body",
    { name: `${CABINET}_${level}_level`, pos: [CABINET_GEOM.drawerXY[0], CABINET_GEOM.drawerXY[1], 0] },
    // Negative = open (pulled toward the front); damping as in LIBERO's wooden_cabinet.xml.
    el("joint", { name: `${CABINET}_${level}_level`, type: "slide", axis: [0, 1, 0], range: [-0.16, 0.01], damping: 50 }),
    el("site", { name: `${CABINET}_${level}_region`, pos: [0, 0, (z0 + z1) / 2], size: [0.03, 0.076, 0.03], rgba: [0, 1, 0, 0], group: 4 }),
    b([0, 0, z0 + 0.0045], [hx, hy, 0.0025]),
    b([-hx + 0.004, 0, wallZ], [0.004, hy, wallH]),
    b([hx - 0.004, 0, wallZ], [0.004, hy, wallH]),
    b([0, hy - 0.004, wallZ], [hx, 0.004, wallH]),
    b([0, -0.0913, (z0 + z1) / 2], [0.123, 0.005, (z1 - z0) / 2 - 0.001], WOOD_DARK),
    b([0, -0.1163, (z0 + z1) / 2], [0.04, 0.006, 0.005], METAL),
  );
}

/** Wooden cabinet (fixture): carcass open at the front, three sliding drawers. */
function cabinet(): string {
  const b = (pos: number[], size: number[]) => solid({ type: "box", pos, size, rgba: WOOD });
  const [yFront, yBack] = [-0.073, 0.112];
  const [yc, hy] = [(yFront + yBack) / 2, (yBack - yFront) / 2];
  return el(
    "body",
    { name: CABINET, pos: [0.03, -0.27, 0.905] },
    el("site", { name: `${CABINET}_top_side`, pos: CABINET_GEOM.topSide, size: CABINET_GEOM.topSideSize, type: "box", rgba: [0, 1, 0, 0], group: 4 }),
    b([-0.118, yc, 0.114], [0.005, hy, 0.109]),
    b([0.126, yc, 0.114], [0.005, hy, 0.109]),
    b([0.004, yBack - 0.005, 0.114], [0.127, 0.005, 0.109]),
    b([0.004, (-0.078 + yBack) / 2, 0.221], [0.127, (yBack + 0.078) / 2, 0.002]),
    b([0.004, yc, 0.007], [0.127, hy, 0.002]),
    ...DRAWERS.map(drawer),
  );
}

/** Stove geometry in its local frame: knob at the origin, burner (and its `cook_region` site, size as flat_stove.xml writes it) at +x. */
export const STOVE_GEOM = { burner: [0.15, 0, 0], burnerTop: 0.028, cookRegionSize: [0.075, 0.075, 0.0025] } as const;

/** Flat stove (fixture): burner block with its cooking plate, and a knob on a hinge. */
function stove(): string {
  return el(
    "body",
    { name: STOVE, pos: [-0.41, -0.14, 0.905] },
    el(
      "body",
      { name: `${STOVE}_burner`, pos: STOVE_GEOM.burner },
      el("site", { name: `${STOVE}_cook_region`, size: STOVE_GEOM.cookRegionSize, type: "box", rgba: [0, 1, 0, 0], group: 4 }),
      solid({ type: "box", pos: [0, 0, 0.005], size: [0.095, 0.095, 0.02], rgba: STOVE_BLACK }),
      solid({ type: "box", pos: [0, 0, 0.025], size: [0.065, 0.065, 0.003], rgba: [0.22, 0.22, 0.22, 1] }),
      visual({ type: "cylinder", pos: [0, 0, 0.0285], size: [0.05, 0.0006], rgba: [0.45, 0.12, 0.08, 1] }),
    ),
    el(
      "body",
      { name: `${STOVE}_button` },
      el("joint", { name: `${STOVE}_button`, type: "hinge", axis: [0, 0, 1], range: [-0.005, 2.1], damping: 1 }),
      solid({ type: "cylinder", pos: [0, 0, 0.023], size: [0.0465, 0.027], rgba: STOVE_BLACK, contact: { density: 500 } }),
      visual({ type: "box", pos: [0.025, 0, 0.0505], size: [0.02, 0.006, 0.001], rgba: [0.8, 0.8, 0.8, 1] }),
    ),
  );
}

/** All objects and fixtures, in the body order that gives LIBERO's qpos layout. */
export function objectsXml(): string {
  // Default poses, apart from each other; every reset writes the task's poses into qpos.
  const park = (i: number) => [0.3, -0.45 + 0.15 * i, 1.0];
  return [
    bowl("akita_black_bowl_1", park(0)),
    bowl("akita_black_bowl_2", park(1)),
    cookies(park(2)),
    ramekin(park(3)),
    plate(park(4)),
    cabinet(),
    stove(),
  ].join("\n");
}
