// Scripted expert: from the simulator's true poses, pinches bowl_1's rim, lifts it, carries it over
// the plate and lowers it there, emitting the same normalized 7-D actions a policy emits.
import { POS_SCALE, ROT_SCALE } from "./controller.ts";
import type { LiberoEnv, Observation } from "./env.ts";
import { BOWL, CABINET, CABINET_GEOM, STOVE_GEOM } from "./objects.ts";
import { PANDA_BASE_POS } from "./panda.ts";
import { fixtureToWorld } from "./tasks.ts";
import { axisAngleToMat, matMul3, rotationBetween, type Vec3 } from "./math.ts";

type Phase = "approach" | "descend" | "close" | "lift" | "regrasp" | "carry" | "lower" | "release" | "retreat" | "done";

/** Grip-site orientation pointing down with the fingers opening along world y (the start pose, unrotated). */
const DOWN = [0, 1, 0, 1, 0, 0, 0, 0, -1];
/** Grip site below the rim top when pinching (the pad centre sits 3.6 mm above the grip site). */
const PINCH_DEPTH = 0.014;
/** Grip-site radius from the bowl axis: the middle of the wall. */
const PINCH_RADIUS = BOWL.radius - BOWL.wall / 2;
/** Travel height of the grip site while carrying, above anything on the table. */
const CARRY_Z = 1.1;
/** Height of the approach to the bowl: fingertips (~1 cm below the grip site) clear the cabinet top (1.128). */
const APPROACH_Z = 1.16;
/**
 * Horizontal reach of the grip site from the arm's base axis with the hand pointing down: link2→link6
 * stretched is 0.719 m, plus link7's 0.088 m offset, less a margin for the wrist to keep its posture.
 */
const REACH = 0.76;
/** Grasp attempts before the expert gives up on an episode. */
const MAX_ATTEMPTS = 3;
const BASE_XY = [PANDA_BASE_POS[0], PANDA_BASE_POS[1]] as const;
const OPEN = -1;
const CLOSE = 1;
/** Largest change of an arm action component between steps: ramps instead of jumps, as a teleoperator moves. */
const MAX_ACTION_CHANGE = 0.25;

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
  /** Angle of the pinched rim point around the bowl (world frame). */
  private theta = 0;
  /** Grasp point relative to the bowl origin (world xy, at pinch height). */
  private offset: Vec3 = [0, 0, 0];
  /** Grip-site heights above the grasp point: approaching it, and after lifting the bowl. */
  private approachZ = APPROACH_Z;
  private liftZ = CARRY_Z;
  private last = [0, 0, 0, 0, 0, 0];
  private attempts = 0;
  /** Rim angles of grasps that missed in this episode: the next plan avoids them. */
  private missed: number[] = [];
  /** Grip-site and bowl heights when the fingers closed: a lift that leaves the bowl behind is a miss. */
  private closedAt = [0, 0];

  /** Plans the grasp for the env's current episode (call right after `env.reset`). */
  reset(env: LiberoEnv): void {
    this.last = [0, 0, 0, 0, 0, 0];
    this.attempts = 0;
    this.missed = [];
    this.plan(env);
  }

  /** Chooses where to pinch the rim from the current poses, and starts an approach. */
  private plan(env: LiberoEnv): void {
    this.phase = "approach";
    this.timer = 0;
    this.attempts++;
    const bowl = env.bodyPose("akita_black_bowl_1").pos;
    const obstacles = this.obstacles(env, bowl);
    const gripZ = bowl[2]! + BOWL.rimZ - PINCH_DEPTH;
    // Pick the side of the rim with the most room for the outer fingertip and the hand above it,
    // preferring little wrist yaw; rooms beyond 3 cm count the same.
    let best = { score: -Infinity, theta: 0 };
    for (let k = 0; k < 36; k++) {
      const theta = (2 * Math.PI * k) / 36;
      const room = Math.min(this.room(bowl, theta, gripZ, obstacles), 0.03);
      const reach = Math.hypot(bowl[0]! + Math.cos(theta) * PINCH_RADIUS - BASE_XY[0], bowl[1]! + Math.sin(theta) * PINCH_RADIUS - BASE_XY[1]);
      const retry = this.missed.some((m) => angleBetween(theta, m) < 0.6) ? 0.05 : 0;
      const score = room - 0.01 * Math.abs(wrapHalfTurn(theta - Math.PI / 2)) - Math.max(0, reach - REACH) - retry;
      if (score > best.score) best = { score, theta };
    }
    this.theta = best.theta;
    this.yaw = wrapHalfTurn(best.theta - Math.PI / 2);
    this.offset = [Math.cos(best.theta) * PINCH_RADIUS, Math.sin(best.theta) * PINCH_RADIUS, BOWL.rimZ - PINCH_DEPTH];
    const graspZ = bowl[2]! + this.offset[2];
    this.approachZ = Math.max(APPROACH_Z, graspZ + 0.08);
    this.liftZ = Math.max(CARRY_Z, graspZ + 0.08);
  }

  /**
   * Clearance (m) when pinching the rim at angle `theta`: the open outer fingertip (a 12 mm circle
   * 48 mm beyond the grip centre, fingertip height and up) and the hand (a 64 mm wide bar along
   * the finger axis, ±0.102 m, from 31 mm above the grip site) and link7 above it against the
   * obstacles tall enough to meet them.
   */
  private room(bowl: number[], theta: number, gripZ: number, obstacles: Obstacle[]): number {
    const [c, s] = [Math.cos(theta), Math.sin(theta)];
    const g = [bowl[0]! + c * PINCH_RADIUS, bowl[1]! + s * PINCH_RADIUS];
    let room = Infinity;
    const clear = (x: number, y: number, r: number, z: number) => {
      for (const o of obstacles) if (o.top > z) room = Math.min(room, Math.hypot(x - o.x, y - o.y) - o.r - r);
    };
    clear(g[0]! + c * 0.048, g[1]! + s * 0.048, 0.012, gripZ - 0.02);
    // link7 and its connector sit on the vertical axis through the grip site, 0.0965–0.15 m above it.
    clear(g[0]!, g[1]!, 0.085, gripZ + 0.0965 - 0.005);
    for (let t = -0.102; t <= 0.1021; t += 0.0204) clear(g[0]! + c * t, g[1]! + s * t, 0.032, gripZ + 0.031 - 0.003);
    return room;
  }

  /** The next action (7) for the env's current state. */
  act(env: LiberoEnv): number[] {
    const a = this.desired(env);
    for (let i = 0; i < 6; i++) a[i] = this.last[i]! + Math.max(-MAX_ACTION_CHANGE, Math.min(MAX_ACTION_CHANGE, a[i]! - this.last[i]!));
    this.last = a.slice(0, 6);
    return a;
  }

  /** The phase machine's action before smoothing. */
  private desired(env: LiberoEnv): number[] {
    const grip = env.gripSite();
    const bowl = env.bodyPose("akita_black_bowl_1").pos;
    const plate = env.bodyPose("plate_1").pos;
    const grasp: Vec3 = [bowl[0]! + this.offset[0], bowl[1]! + this.offset[1], bowl[2]! + this.offset[2]];
    this.timer++;
    const next = (p: Phase) => {
      this.phase = p;
      this.timer = 0;
    };
    switch (this.phase) {
      case "approach": {
        const target: Vec3 = [grasp[0], grasp[1], this.approachZ];
        if (near(grip.pos, target, 0.01) && this.yawError(grip.mat) < 0.05) next("descend");
        return this.toward(grip, target, OPEN);
      }
      case "descend":
        if (near(grip.pos, grasp, 0.004) || this.timer > 30) next("close");
        return this.toward(grip, grasp, OPEN);
      case "close":
        // Eight actions swing the gripper fully; two more let the grip force build.
        if (this.timer >= 10) {
          this.closedAt = [grip.pos[2]!, bowl[2]!];
          next("lift");
        }
        return this.toward(grip, grasp, CLOSE);
      case "lift": {
        const rose = grip.pos[2]! - this.closedAt[0]!;
        // The hand rose but the bowl stayed: the pinch missed; let go, back off and plan again.
        if (rose > 0.03 && bowl[2]! - this.closedAt[1]! < 0.01 && this.attempts < MAX_ATTEMPTS) next("regrasp");
        else if (grip.pos[2]! > this.liftZ - 0.02) next("carry");
        return this.toward(grip, [grip.pos[0]!, grip.pos[1]!, this.liftZ], CLOSE);
      }
      case "regrasp":
        if (this.timer === 1) this.missed.push(this.theta);
        if (this.timer >= 8) {
          this.plan(env);
          return this.desired(env);
        }
        return this.toward(grip, [grip.pos[0]!, grip.pos[1]!, grip.pos[2]! + 0.03], OPEN);
      case "carry": {
        if (this.dropped(grip.pos, bowl)) {
          next("regrasp");
          return this.desired(env);
        }
        // Closed loop on the bowl itself: a bowl pinched at its rim may swing or slip in the fingers.
        const target: Vec3 = [grip.pos[0]! + plate[0]! - bowl[0]!, grip.pos[1]! + plate[1]! - bowl[1]!, Math.max(CARRY_Z, grip.pos[2]!)];
        if (Math.hypot(plate[0]! - bowl[0]!, plate[1]! - bowl[1]!) < 0.01) next("lower");
        return this.toward(grip, target, CLOSE, 0.8);
      }
      case "lower": {
        if (this.dropped(grip.pos, bowl)) {
          next("regrasp");
          return this.desired(env);
        }
        // Bowl origin to ~4 mm above its rest height on the plate's flat centre, then let go.
        const dz = plate[2]! + 0.0055 - bowl[2]!;
        const target: Vec3 = [grip.pos[0]! + plate[0]! - bowl[0]!, grip.pos[1]! + plate[1]! - bowl[1]!, grip.pos[2]! + dz];
        if ((Math.abs(dz) < 0.004 && Math.hypot(plate[0]! - bowl[0]!, plate[1]! - bowl[1]!) < 0.008) || this.timer > 40) next("release");
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

  /** The bowl fell out of the fingers (held, its origin is ~6.5 cm from the grip site). */
  private dropped(grip: number[], bowl: number[]): boolean {
    return this.attempts < MAX_ATTEMPTS && Math.hypot(grip[0]! - bowl[0]!, grip[1]! - bowl[1]!, grip[2]! - bowl[2]!) > 0.1;
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
        out.push({ x, y, r: 0.005, top });
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
    const wallTop = 0.905 + CABINET_GEOM.drawerZ.top[1] - 0.001;
    ring(
      [
        ...line(dx - 0.107, dy - 0.0865, dx - 0.107, dy + 0.0865),
        ...line(dx + 0.107, dy - 0.0865, dx + 0.107, dy + 0.0865),
        ...line(dx - 0.111, dy + 0.0825, dx + 0.111, dy + 0.0825),
        ...line(dx - 0.123, dy - 0.0913, dx + 0.123, dy - 0.0913),
        ...line(dx - 0.04, dy - 0.1163, dx + 0.04, dy - 0.1163),
      ],
      wallTop,
    );
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

/** Unsigned angle between two directions, in [0, π]. */
const angleBetween = (a: number, b: number) => Math.abs(Math.atan2(Math.sin(a - b), Math.cos(a - b)));

/** Wraps an angle into (−π/2, π/2]: the gripper is symmetric under a half turn. */
function wrapHalfTurn(a: number): number {
  while (a > Math.PI / 2) a -= Math.PI;
  while (a <= -Math.PI / 2) a += Math.PI;
  return a;
}

/** Runs one expert episode from a fresh reset to a fixed initial state; returns whether it succeeded and its length. */
export function runExpertEpisode(env: LiberoEnv, taskId: number, initStateId: number, maxSteps = 240): { success: boolean; steps: number } {
  env.reset(taskId, initStateId);
  return runExpert(env, maxSteps);
}

/**
 * Runs the expert from the env's current (just reset) state until success or `maxSteps`.
 * `onStep` sees each step's observation (what a policy would see, its poses up to date) and the
 * action then executed.
 */
export function runExpert(env: LiberoEnv, maxSteps: number, onStep?: (obs: Observation, action: number[]) => void): { success: boolean; steps: number } {
  const expert = new ScriptedExpert();
  expert.reset(env);
  for (let t = 0; t < maxSteps; t++) {
    const action = expert.act(env);
    // Observed after act, so that recording does not change what the expert does: observation()
    // brings the poses up to date with qpos, and act sees those of the last substep either way.
    if (onStep) onStep(env.observation(), action);
    if (env.step(action).success) return { success: true, steps: t + 1 };
  }
  return { success: false, steps: maxSteps };
}
