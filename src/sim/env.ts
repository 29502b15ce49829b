// One LIBERO-Spatial environment on the MuJoCo wasm module of this thread: reset to a task's fixed
// initial state, 20 Hz OSC_POSE steps of 25 substeps, the On(bowl_1, plate) success predicate and
// the observation (8-D state, instruction, and the geom/camera poses a renderer draws).
import type { MjData, MjModel } from "mujoco-js";
import { GripperRamp, OscPose, type ArmState } from "./controller.ts";
import { Rng } from "../util/random.ts";
import { axisAngleQuat, quatMul, quatToAxisAngle } from "./math.ts";
import { loadModel, mujoco, type Mujoco } from "./mujoco.ts";
import { CABINET, DRAWERS, OBJECTS, STOVE, type ObjectName } from "./objects.ts";
import { ARM_JOINTS, FINGER_JOINTS } from "./panda.ts";
import { buildSceneXml } from "./scene.ts";
import { FIXTURE_Z, INIT_FINGERS, initStates, sampleFixtures, TASKS, type FixturePose, type InitState } from "./tasks.ts";

/** Task `taskId`'s fixed initial state `initStateId`, or a RangeError naming the valid range. */
function fixedInitState(taskId: number, initStateId: number): InitState {
  const init = initStates(taskId)[initStateId];
  if (!init) throw new RangeError(`initial state ${initStateId} is not in 0..${initStates(taskId).length - 1}`);
  return init;
}

/** 20 Hz control on a 500 Hz simulation. */
export const SUBSTEPS = 25;
/** Settle steps (gripper open, arm holding) after placing the objects, so dropped objects come to rest. */
export const SETTLE_STEPS = 15;
export const ACTION_DIM = 7;
export const STATE_DIM = 8;
/** The no-op action used while settling: hold the pose, open the gripper. */
export const NOOP_ACTION = [0, 0, 0, 0, 0, 0, -1] as const;
/** xy distance below which bowl_1 counts as on the plate (`check_ontop`). */
export const ON_TOP_XY = 0.03;

export interface Observation {
  /** grip-site position (3), axis-angle of the right_hand body (3), finger joints (2). */
  state: Float32Array; // (8)
  instruction: string;
  geomXpos: Float32Array; // (ngeom, 3)
  geomXmat: Float32Array; // (ngeom, 9)
  camXpos: Float32Array; // (ncam, 3)
  camXmat: Float32Array; // (ncam, 9)
}

export interface StepResult {
  /** +1 at the first step where the task succeeds, else 0. */
  reward: number;
  success: boolean;
  /** Control steps since reset (settling excluded). */
  elapsed: number;
}

export class LiberoEnv {
  readonly data: MjData;
  readonly ngeom: number;
  readonly ncam: number;
  taskId = 0;
  initStateId = 0;
  elapsed = 0;
  successOnce = false;
  readonly controller = new OscPose();
  readonly gripper = new GripperRamp();
  private fixtureRng: Rng;
  private ids: ReturnType<typeof lookupIds>;
  private armState: ArmState = {
    q: new Float64Array(7),
    qd: new Float64Array(7),
    pos: new Float64Array(3),
    mat: new Float64Array(9),
    axis: new Float64Array(21), // (7, 3)
    anchor: new Float64Array(21), // (7, 3)
    mass: new Float64Array(49), // (7, 7)
    bias: new Float64Array(7),
  };
  private hot: ReturnType<typeof hotViews>;

  /** Loads the scene into this thread's MuJoCo; `seed` drives the fixture re-sampling at each reset. */
  static async create(seed = 0): Promise<LiberoEnv> {
    const mj = await mujoco();
    return new LiberoEnv(mj, loadModel(mj, buildSceneXml()), seed);
  }

  constructor(readonly mj: Mujoco, readonly model: MjModel, seed = 0) {
    this.data = new mj.MjData(model);
    this.ngeom = model.ngeom;
    this.ncam = model.ncam;
    this.ids = lookupIds(mj, model);
    this.fixtureRng = new Rng(seed);
    this.hot = hotViews(this.data);
  }

  /**
   * Views into MjData used every substep. Each `data.x` access builds a new view through embind, so
   * they are kept; a growth of the wasm memory detaches them (length 0), and then they are rebuilt.
   */
  private views(): ReturnType<typeof hotViews> {
    if (this.hot.qpos.length === 0) this.hot = hotViews(this.data);
    return this.hot;
  }

  /** Frees the MuJoCo model and data. */
  delete(): void {
    this.data.delete();
    this.model.delete();
  }

  /** Re-seeds the fixture re-sampling stream (same seed, same resets). */
  seed(seed: number): void {
    this.fixtureRng = new Rng(seed);
  }

  /**
   * Places task `taskId`'s fixed initial state `initStateId` (fixtures re-sampled in their regions,
   * objects resting on a fixture carried along), then runs the settle steps with the gripper open.
   */
  reset(taskId: number, initStateId: number): Observation {
    return this.resetTo(fixedInitState(taskId, initStateId));
  }

  /** `reset` from any initial state, e.g. one of a training stream (`trainingInitState`). */
  resetTo(init: InitState): Observation {
    this.place(init, sampleFixtures(this.fixtureRng));
    for (let i = 0; i < SETTLE_STEPS; i++) this.physicsStep(NOOP_ACTION);
    this.elapsed = 0;
    this.successOnce = false;
    return this.observation();
  }

  /**
   * The 8-D state of an initial state as stored (arm posture and fingers, before the settle steps),
   * with the fixtures where the state was generated.
   */
  initialState(taskId: number, initStateId: number): Float32Array {
    const init = fixedInitState(taskId, initStateId);
    this.place(init, { cabinet: init.cabinet, stove: init.stove });
    return this.state();
  }

  /** Writes an initial state into the model and data: fixtures at `fx`, objects on a fixture carried along. */
  private place(init: InitState, fx: { cabinet: FixturePose; stove: FixturePose }): void {
    const { mj, model: m, data: d, ids } = this;
    this.taskId = init.task;
    this.initStateId = init.index;
    mj.mj_resetData(m, d);
    this.placeFixture(ids.cabinet, fx.cabinet);
    this.placeFixture(ids.stove, fx.stove);
    const qpos = d.qpos;
    ids.armQpos.forEach((a, i) => (qpos[a] = init.arm[i]!));
    ids.fingerQpos.forEach((a, i) => (qpos[a] = INIT_FINGERS[i]!));
    OBJECTS.forEach((name, k) => {
      const fixture = init.attached[name];
      const pose = fixture ? carry(init.objects[name], init[fixture], fx[fixture]) : init.objects[name];
      for (let i = 0; i < 7; i++) qpos[ids.objectQpos[k]! + i] = pose[i]!;
    });
    ids.drawerQpos.forEach((a, i) => (qpos[a] = init.drawers[i]!));
    mj.mj_forward(m, d);
    this.liftOutOfOverlaps();
    this.controller.reset(init.arm);
    this.gripper.reset();
  }

  /**
   * Raises each bowl that starts inside another object, in 2 mm steps, until it is clear. LIBERO's
   * spawn heights put every table object's origin at 0.97, so a bowl placed (by LIBERO's own rules)
   * within ~11 cm of the plate starts with its lower wall inside the plate's rim: 52 of the 500
   * fixed states (tasks 0, 2 and 8). LIBERO leaves MuJoCo to push such pairs apart; with these light
   * objects (bowl 9 g, plate 6 g) and stiff contacts (solref 0.001) that push threw the plate up to
   * 37 cm here. Lifted, the bowl drops onto the rim and rests there, tilted up to ~23°, as a bowl
   * dropped there would; x, y and every other object stay where LIBERO's rules put them. This
   * spawn height is the one departure from LIBERO's placement; the initial state keeps LIBERO's 0.97.
   */
  private liftOutOfOverlaps(): void {
    const { mj, model: m, data: d, ids } = this;
    const bodyOf = m.geom_bodyid;
    const objects = new Set(ids.objectBody);
    const bowls = [ids.bowl1, ids.bowl2];
    for (let iter = 0; iter < 40; iter++) {
      const inside = new Set<number>();
      const contacts = d.contact;
      for (let i = 0; i < d.ncon; i++) {
        const c = contacts.get(i)!;
        const b1 = bodyOf[c.geom1]!, b2 = bodyOf[c.geom2]!;
        if (c.dist < -0.0005 && objects.has(b1) && objects.has(b2)) for (const b of [b1, b2]) if (bowls.includes(b)) inside.add(b);
        c.delete();
      }
      contacts.delete();
      if (!inside.size) return;
      const qpos = d.qpos;
      for (const b of inside) qpos[ids.objectQpos[ids.objectBody.indexOf(b)]! + 2]! += 0.002;
      mj.mj_forward(m, d);
    }
  }

  /** One 20 Hz control step: OSC_POSE toward the action's goal for 25 substeps. */
  step(action: ArrayLike<number>): StepResult {
    this.physicsStep(action);
    this.elapsed++;
    const success = this.checkSuccess();
    const reward = success && !this.successOnce ? 1 : 0;
    if (success) this.successOnce = true;
    return { reward, success, elapsed: this.elapsed };
  }

  /**
   * Runs the controller and physics for one action without episode bookkeeping; the goal is set at
   * the first substep and held for `substeps` (25 at 20 Hz; more only to test convergence).
   */
  physicsStep(action: ArrayLike<number>, substeps = SUBSTEPS): void {
    const { mj, model: m, data: d, ids } = this;
    const ctrl = this.views().ctrl;
    for (let sub = 0; sub < substeps; sub++) {
      mj.mj_step1(m, d);
      const s = this.readArm();
      // The goal is set once per action from the pose at that moment (policy_step in robosuite).
      if (sub === 0) this.controller.setGoal(action, s.pos, s.mat);
      const tau = this.controller.compute(s);
      for (let i = 0; i < 7; i++) ctrl[ids.armCtrl[i]!] = tau[i]!;
      const [f1, f2] = this.gripper.substep(action[6]!);
      ctrl[ids.fingerCtrl[0]!] = f1;
      ctrl[ids.fingerCtrl[1]!] = f2;
      mj.mj_step2(m, d);
    }
    // Poses and contacts now are those of the last substep's mj_step1, one substep (2 ms) before
    // qpos, as in robosuite; observation() brings the poses up to date with qpos for rendering.
  }

  /** `On(bowl_1, plate)`: bowl origin not below the plate's, touching it, origins < 3 cm apart in xy. */
  checkSuccess(): boolean {
    const { model: m, data: d, ids } = this;
    const xpos = d.xpos;
    const b = ids.bowl1 * 3;
    const p = ids.plate * 3;
    if (xpos[b + 2]! < xpos[p + 2]!) return false;
    if (Math.hypot(xpos[b]! - xpos[p]!, xpos[b + 1]! - xpos[p + 1]!) >= ON_TOP_XY) return false;
    return this.touching(ids.bowl1, ids.plate, m);
  }

  /** Whether any contact joins a geom of body `a` and a geom of body `b`. */
  touching(a: number, b: number, m: MjModel = this.model): boolean {
    const d = this.data;
    const bodyOf = m.geom_bodyid;
    const contacts = d.contact;
    let found = false;
    for (let i = 0; i < d.ncon && !found; i++) {
      const c = contacts.get(i)!;
      const b1 = bodyOf[c.geom1]!, b2 = bodyOf[c.geom2]!;
      c.delete();
      found = (b1 === a && b2 === b) || (b1 === b && b2 === a);
    }
    contacts.delete();
    return found;
  }

  /** The observation, with poses recomputed from the current qpos so images match the state. */
  observation(): Observation {
    const { mj, model: m, data: d } = this;
    mj.mj_kinematics(m, d);
    mj.mj_camlight(m, d);
    return {
      state: this.state(),
      instruction: TASKS[this.taskId]!.language,
      geomXpos: Float32Array.from(d.geom_xpos),
      geomXmat: Float32Array.from(d.geom_xmat),
      camXpos: Float32Array.from(d.cam_xpos),
      camXmat: Float32Array.from(d.cam_xmat),
    };
  }

  /** The 8-D proprio state: eef position, quat2axisangle of the hand body, two finger joints. */
  state(): Float32Array {
    const { data: d, ids } = this;
    const site = d.site_xpos;
    const q = d.xquat;
    const h = ids.hand * 4;
    const aa = quatToAxisAngle([q[h]!, q[h + 1]!, q[h + 2]!, q[h + 3]!]);
    const qpos = d.qpos;
    const g = ids.grip * 3;
    return Float32Array.of(site[g]!, site[g + 1]!, site[g + 2]!, aa[0], aa[1], aa[2], qpos[ids.fingerQpos[0]!]!, qpos[ids.fingerQpos[1]!]!);
  }

  /** World position (3) and row-major orientation (9) of a body, by name. */
  bodyPose(name: string): { pos: number[]; mat: number[] } {
    const id = this.mj.mj_name2id(this.model, this.mj.mjtObj.mjOBJ_BODY.value, name);
    if (id < 0) throw new RangeError(`no body named ${name}`);
    return { pos: Array.from(this.data.xpos.slice(id * 3, id * 3 + 3)), mat: Array.from(this.data.xmat.slice(id * 9, id * 9 + 9)) };
  }

  /** Grip-site position and orientation. */
  gripSite(): { pos: number[]; mat: number[] } {
    const g = this.ids.grip;
    return { pos: Array.from(this.data.site_xpos.slice(g * 3, g * 3 + 3)), mat: Array.from(this.data.site_xmat.slice(g * 9, g * 9 + 9)) };
  }

  /** Joint position by name (a drawer slide, the stove knob, a finger). */
  jointQpos(name: string): number {
    const id = this.mj.mj_name2id(this.model, this.mj.mjtObj.mjOBJ_JOINT.value, name);
    if (id < 0) throw new RangeError(`no joint named ${name}`);
    return this.data.qpos[this.model.jnt_qposadr[id]!]!;
  }

  /** The cabinet and stove poses of the current episode. */
  fixtures(): { cabinet: FixturePose; stove: FixturePose } {
    const pose = (id: number): FixturePose => {
      const q = this.model.body_quat;
      return { x: this.model.body_pos[id * 3]!, y: this.model.body_pos[id * 3 + 1]!, yaw: 2 * Math.atan2(q[id * 4 + 3]!, q[id * 4]!) };
    };
    return { cabinet: pose(this.ids.cabinet), stove: pose(this.ids.stove) };
  }

  /** The arm part of the simulator state the controller needs (after mj_step1 or mj_forward). */
  readArm(): ArmState {
    const { ids, armState: s } = this;
    const { qpos, qvel, qM, xaxis, xanchor, qfrc_bias, site_xpos, site_xmat } = this.views();
    const mass = s.mass as Float64Array;
    for (let i = 0; i < 7; i++) {
      (s.q as Float64Array)[i] = qpos[ids.armQpos[i]!]!;
      (s.qd as Float64Array)[i] = qvel[i]!;
      (s.bias as Float64Array)[i] = qfrc_bias[i]!;
      const j = ids.armJoint[i]! * 3;
      for (let k = 0; k < 3; k++) {
        (s.axis as Float64Array)[i * 3 + k] = xaxis[j + k]!;
        (s.anchor as Float64Array)[i * 3 + k] = xanchor[j + k]!;
      }
      // The arm dofs 0..6 form a chain (dof i's parent is dof i−1), so MuJoCo's sparse qM stores row
      // i as M(i,i), M(i,i−1), … from dof_Madr[i]; fill both triangles.
      for (let k = 0; k <= i; k++) mass[i * 7 + k] = mass[k * 7 + i] = qM[ids.armMadr[i]! + (i - k)]!;
    }
    const g = ids.grip;
    for (let k = 0; k < 3; k++) (s.pos as Float64Array)[k] = site_xpos[g * 3 + k]!;
    for (let k = 0; k < 9; k++) (s.mat as Float64Array)[k] = site_xmat[g * 9 + k]!;
    return s;
  }

  private placeFixture(body: number, f: FixturePose): void {
    const m = this.model;
    m.body_pos.set([f.x, f.y, FIXTURE_Z], body * 3);
    m.body_quat.set([Math.cos(f.yaw / 2), 0, 0, Math.sin(f.yaw / 2)], body * 4);
  }
}

/** Moves a pose resting on a fixture from the fixture's old planar pose to its new one. */
function carry(pose: InitState["objects"][ObjectName], from: FixturePose, to: FixturePose): InitState["objects"][ObjectName] {
  const dyaw = to.yaw - from.yaw;
  const [c, s] = [Math.cos(dyaw), Math.sin(dyaw)];
  const lx = pose[0] - from.x, ly = pose[1] - from.y;
  const q = quatMul(axisAngleQuat([0, 0, 1], dyaw), [pose[3], pose[4], pose[5], pose[6]]);
  return [to.x + c * lx - s * ly, to.y + s * lx + c * ly, pose[2], ...q];
}

function hotViews(d: MjData) {
  return {
    qpos: d.qpos as Float64Array,
    qvel: d.qvel as Float64Array,
    qM: d.qM as Float64Array,
    xaxis: d.xaxis as Float64Array,
    xanchor: d.xanchor as Float64Array,
    qfrc_bias: d.qfrc_bias as Float64Array,
    site_xpos: d.site_xpos as Float64Array,
    site_xmat: d.site_xmat as Float64Array,
    ctrl: d.ctrl as Float64Array,
  };
}

/** Ids and addresses the env uses every step, looked up once by name. */
function lookupIds(mj: Mujoco, m: MjModel) {
  const OBJ = { body: mj.mjtObj.mjOBJ_BODY.value, joint: mj.mjtObj.mjOBJ_JOINT.value, site: mj.mjtObj.mjOBJ_SITE.value, actuator: mj.mjtObj.mjOBJ_ACTUATOR.value };
  const id = (type: number, name: string) => {
    const i = mj.mj_name2id(m, type, name);
    if (i < 0) throw new Error(`scene has no ${name}`);
    return i;
  };
  const joint = (name: string) => id(OBJ.joint, name);
  const armJoint = ARM_JOINTS.map(joint);
  const armDof = armJoint.map((j) => m.jnt_dofadr[j]!);
  armDof.forEach((dof, i) => {
    if (dof !== i || (i > 0 && m.dof_parentid[dof] !== i - 1)) throw new Error("the arm joints must be the first dofs, as a chain");
  });
  return {
    armJoint,
    armDof,
    armMadr: armDof.map((dof) => m.dof_Madr[dof]!),
    armQpos: armJoint.map((j) => m.jnt_qposadr[j]!),
    armCtrl: ARM_JOINTS.map((_, i) => id(OBJ.actuator, `robot0_torq_j${i + 1}`)),
    fingerQpos: FINGER_JOINTS.map((n) => m.jnt_qposadr[joint(n)]!),
    fingerCtrl: FINGER_JOINTS.map((n) => id(OBJ.actuator, n)),
    objectQpos: OBJECTS.map((n) => m.jnt_qposadr[joint(`${n}_joint0`)]!),
    objectBody: OBJECTS.map((n) => id(OBJ.body, n)),
    bowl2: id(OBJ.body, "akita_black_bowl_2"),
    drawerQpos: DRAWERS.map((l) => m.jnt_qposadr[joint(`${CABINET}_${l}_level`)]!),
    grip: id(OBJ.site, "gripper0_grip_site"),
    hand: id(OBJ.body, "robot0_right_hand"),
    bowl1: id(OBJ.body, "akita_black_bowl_1"),
    plate: id(OBJ.body, "plate_1"),
    cabinet: id(OBJ.body, CABINET),
    stove: id(OBJ.body, STOVE),
  };
}

