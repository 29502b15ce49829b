// Scripted expert: from the simulator's true poses, pinches bowl_1's rim, lifts it, carries it over
// the plate and lowers it there, emitting the same normalized 7-D actions a policy emits.
import { POS_SCALE, ROT_SCALE } from "./controller.ts";
import type { LiberoEnv } from "./env.ts";
import { BOWL, CABINET, CABINET_GEOM, STOVE_GEOM } from "./objects.ts";
import { fixtureToWorld } from "./tasks.ts";
import { axisAngleToMat, matMul3, rotationBetween, type Vec3 } from "./math.ts";

type Phase = "approach" | "descend" | "close" | "lift" | "carry" | "lower" | "release" | "retreat" | "done";

/** Grip-site orientation pointing down with the fingers opening along world y (the start pose, unrotated). */
const DOWN = [0, 1, 0, 1, 0, 0, 0, 0, -1];
/** Grip site below the rim top when pinching (the pad centre sits 3.6 mm above the grip site). */
const PINCH_DEPTH = 0.014;
/** Grip-site radius from the bowl axis: the middle of the wall. */
const PINCH_RADIUS = BOWL.radius - BOWL.wall / 2;
/** Travel height of the grip site while carrying, above anything on the table. */
const CARRY_Z = 1.1;
const OPEN = -1;
const CLOSE = 1;

interface Obstacle {
  x: number;
  y: number;
  r: number;
  top: number;
}

const clip = (x: number) => Math.max(-1, Math.min(1, x));

export class ScriptedExpert {
  phase: Phase = "approach";
  private timer = 0;
  private yaw = 0;
  /** Grasp point relative to the bowl origin (world xy, at pinch height). */
  private offset: Vec3 = [0, 0, 0];
  /** Grip site minus bowl origin, measured once the bowl is held. */
  private held: Vec3 = [0, 0, 0];
  /** Height of the grip site above the grasp point while approaching and after lifting. */
  private above = CARRY_Z;

  /** Plans the grasp for the env's current episode (call right after `env.reset`). */
  reset(env: LiberoEnv): void {
    this.phase = "approach";
    this.timer = 0;
    const bowl = env.bodyPose("akita_black_bowl_1").pos;
    const obstacles = this.obstacles(env, bowl);
    const tipZ = bowl[2]! + BOWL.rimZ - PINCH_DEPTH - 0.01;
    // Pick the side of the rim whose outer finger has the most room, preferring little wrist yaw.
    let best = { score: -Infinity, theta: 0 };
    for (let k = 0; k < 24; k++) {
      const theta = (2 * Math.PI * k) / 24;
      const [c, s] = [Math.cos(theta), Math.sin(theta)];
      const outer = [bowl[0]! + c * (PINCH_RADIUS + 0.045), bowl[1]! + s * (PINCH_RADIUS + 0.045)];
      let room = 0.2;
      for (const o of obstacles) if (o.top > tipZ) room = Math.min(room, Math.hypot(outer[0]! - o.x, outer[1]! - o.y) - o.r - 0.012);
      const score = Math.min(room, 0.03) - 0.01 * Math.abs(wrapHalfTurn(theta - Math.PI / 2));
      if (score > best.score) best = { score, theta };
    }
    this.yaw = wrapHalfTurn(best.theta - Math.PI / 2);
    this.offset = [Math.cos(best.theta) * PINCH_RADIUS, Math.sin(best.theta) * PINCH_RADIUS, BOWL.rimZ - PINCH_DEPTH];
    this.above = Math.max(CARRY_Z, bowl[2]! + this.offset[2] + 0.08);
  }

  /** The next action (7) for the env's current state. */
  act(env: LiberoEnv): number[] {
    const grip = env.gripSite();
    const bowl = env.bodyPose("akita_black_bowl_1").pos;
    const plate = env.bodyPose("plate_1").pos;
    const grasp: Vec3 = [bowl[0]! + this.offset[0], bowl[1]! + this.offset[1], bowl[2]! + this.offset[2]];
    const above = this.above;
    this.timer++;
    const next = (p: Phase) => {
      this.phase = p;
      this.timer = 0;
    };
    switch (this.phase) {
      case "approach": {
        const target: Vec3 = [grasp[0], grasp[1], above];
        if (near(grip.pos, target, 0.01) && this.yawError(grip.mat) < 0.05) next("descend");
        return this.toward(grip, target, OPEN);
      }
      case "descend":
        if (near(grip.pos, grasp, 0.004) || this.timer > 30) next("close");
        return this.toward(grip, grasp, OPEN);
      case "close":
        // Eight actions swing the gripper fully; two more let the grip force build.
        if (this.timer >= 10) {
          this.held = [grip.pos[0]! - bowl[0]!, grip.pos[1]! - bowl[1]!, grip.pos[2]! - bowl[2]!];
          next("lift");
        }
        return this.toward(grip, grasp, CLOSE);
      case "lift":
        if (grip.pos[2]! > above - 0.02) next("carry");
        return this.toward(grip, [grip.pos[0]!, grip.pos[1]!, above], CLOSE);
      case "carry": {
        const target: Vec3 = [plate[0]! + this.held[0], plate[1]! + this.held[1], Math.max(CARRY_Z, grip.pos[2]!)];
        if (near(grip.pos, target, 0.012)) next("lower");
        return this.toward(grip, target, CLOSE, 0.8);
      }
      case "lower": {
        // Bowl foot ~5 mm above the plate's flat centre, then let go.
        const target: Vec3 = [plate[0]! + this.held[0], plate[1]! + this.held[1], plate[2]! + 0.0045 + this.held[2]];
        if (near(grip.pos, target, 0.005) || this.timer > 40) next("release");
        return this.toward(grip, target, CLOSE);
      }
      case "release":
        if (this.timer >= 8) next("retreat");
        return this.toward(grip, grip.pos as Vec3, OPEN, 0);
      case "retreat":
        if (this.timer >= 15) next("done");
        return this.toward(grip, [grip.pos[0]!, grip.pos[1]!, grip.pos[2]! + 0.05], OPEN);
      case "done":
        return this.toward(grip, grip.pos as Vec3, OPEN, 0);
    }
  }

  /** Grip-site target orientation: pointing down, yawed so the fingers straddle the chosen rim point. */
  private targetMat(): Float64Array {
    return matMul3(axisAngleToMat([0, 0, this.yaw]), DOWN);
  }

  private yawError(mat: number[]): number {
    return Math.hypot(...rotationBetween(mat, this.targetMat()));
  }

  /** Proportional action toward a target position (gain relative to the 5 cm action scale) and the target orientation. */
  private toward(grip: { pos: number[]; mat: number[] }, target: readonly number[], gripper: number, gain = 1): number[] {
    const rot = rotationBetween(grip.mat, this.targetMat());
    return [
      ...[0, 1, 2].map((i) => clip((gain * (target[i]! - grip.pos[i]!)) / POS_SCALE)),
      ...rot.map((r) => clip(r / ROT_SCALE)),
      gripper,
    ];
  }

  /** What the outer finger could hit around bowl_1: other objects, the cabinet outline and open drawer walls, the stove. */
  private obstacles(env: LiberoEnv, bowl: number[]): Obstacle[] {
    const out: Obstacle[] = [];
    const objects: [string, number, number][] = [
      ["akita_black_bowl_2", BOWL.radius, BOWL.rimZ],
      ["glazed_rim_porcelain_ramekin_1", 0.0445, 0.0427],
      ["cookies_1", 0.052, 0.0095],
      ["plate_1", 0.0685, 0.0164],
    ];
    for (const [name, r, h] of objects) {
      const p = env.bodyPose(name).pos;
      out.push({ x: p[0]!, y: p[1]!, r, top: p[2]! + h });
    }
    const { cabinet, stove } = env.fixtures();
    const cabTop = 0.905 + 0.223;
    const ring = (pts: [number, number][], top: number, f = cabinet) => {
      for (const [lx, ly] of pts) {
        const [x, y] = fixtureToWorld(f, [lx, ly]);
        out.push({ x, y, r: 0.006, top });
      }
    };
    const line = (x0: number, y0: number, x1: number, y1: number): [number, number][] => {
      const n = Math.max(2, Math.ceil(Math.hypot(x1 - x0, y1 - y0) / 0.01));
      return Array.from({ length: n + 1 }, (_, i) => [x0 + ((x1 - x0) * i) / n, y0 + ((y1 - y0) * i) / n]);
    };
    // Cabinet carcass outline (front at local −0.073, back at 0.112) and drawer handles.
    ring([...line(-0.123, -0.073, 0.131, -0.073), ...line(-0.123, 0.112, 0.131, 0.112), ...line(-0.123, -0.073, -0.123, 0.112), ...line(0.131, -0.073, 0.131, 0.112)], cabTop);
    // Walls of the top drawer where it sticks out (they move with its slide).
    const q = env.jointQpos(`${CABINET}_top_level`);
    const [dx, dy] = [CABINET_GEOM.drawerXY[0], CABINET_GEOM.drawerXY[1] + q];
    const wallTop = 0.905 + CABINET_GEOM.drawerZ.top[1];
    ring([...line(dx - 0.107, dy - 0.0865, dx - 0.107, dy + 0.0865), ...line(dx + 0.107, dy - 0.0865, dx + 0.107, dy + 0.0865), ...line(dx - 0.123, dy - 0.0913, dx + 0.123, dy - 0.0913), ...line(dx - 0.04, dy - 0.1163, dx + 0.04, dy - 0.1163)], wallTop);
    // Stove: knob and burner block.
    const [sx, sy] = fixtureToWorld(stove, [0, 0]);
    out.push({ x: sx, y: sy, r: 0.0465, top: 0.905 + 0.05 });
    const b = STOVE_GEOM.burner;
    ring([...line(b[0] - 0.095, -0.095, b[0] + 0.095, -0.095), ...line(b[0] - 0.095, 0.095, b[0] + 0.095, 0.095), ...line(b[0] - 0.095, -0.095, b[0] - 0.095, 0.095), ...line(b[0] + 0.095, -0.095, b[0] + 0.095, 0.095)], 0.905 + STOVE_GEOM.burnerTop, stove);
    // The bowl's own support is not an obstacle when the bowl sits on it (it is below the fingers).
    return out.filter((o) => Math.hypot(o.x - bowl[0]!, o.y - bowl[1]!) > 0.01 || o.top > bowl[2]! + 0.02);
  }
}

const near = (a: readonly number[], b: readonly number[], tol: number) => Math.hypot(a[0]! - b[0]!, a[1]! - b[1]!, a[2]! - b[2]!) < tol;

/** Wraps an angle into (−π/2, π/2]: the gripper is symmetric under a half turn. */
function wrapHalfTurn(a: number): number {
  while (a > Math.PI / 2) a -= Math.PI;
  while (a <= -Math.PI / 2) a += Math.PI;
  return a;
}

/** Runs one expert episode from a fresh reset; returns whether it succeeded and its length. */
export function runExpertEpisode(env: LiberoEnv, taskId: number, initStateId: number, maxSteps = 240): { success: boolean; steps: number } {
  env.reset(taskId, initStateId);
  const expert = new ScriptedExpert();
  expert.reset(env);
  for (let t = 0; t < maxSteps; t++) {
    const r = env.step(expert.act(env));
    if (r.success) return { success: true, steps: t + 1 };
  }
  return { success: false, steps: maxSteps };
}
