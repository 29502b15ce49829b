// robosuite's OSC_POSE controller (libero-spatial.md §5) for the 7 arm joints, and the Panda gripper's
// per-substep action ramp. Pure math on plain arrays so it can be checked without a simulator.
import { axisAngleToMat, matMul3 } from "./math.ts";
import { ARM_TORQUE_LIMIT } from "./panda.ts";

const N = 7; // arm joints
/** osc_pose.json: output_max 0.05 m (position) and 0.5 rad (rotation) for an input of 1. */
export const POS_SCALE = 0.05;
export const ROT_SCALE = 0.5;
const KP = 150;
const KD = 2 * Math.sqrt(KP); // damping_ratio 1
const KP_NULL = 10;
const KD_NULL = 2 * Math.sqrt(KP_NULL);

/** What the controller reads from the simulator each substep (world frame, row-major matrices). */
export interface ArmState {
  q: ArrayLike<number>; // (7)
  qd: ArrayLike<number>; // (7)
  /** Grip-site position (3) and orientation (9). */
  pos: ArrayLike<number>;
  mat: ArrayLike<number>;
  /** Joint axes (7×3) and anchors (7×3) in the world frame. */
  axis: ArrayLike<number>;
  anchor: ArrayLike<number>;
  /** Joint-space inertia of the arm (7×7, armature included). */
  mass: Float64Array;
  /** Gravity and Coriolis forces on the arm joints (7). */
  bias: ArrayLike<number>;
}

const clip = (x: number, lo: number, hi: number) => (x < lo ? lo : x > hi ? hi : x);

/**
 * Inverse of a symmetric positive-definite n×n matrix (Cholesky); `out` gets A⁻¹. `l` (n×n) and `y`
 * (n) are scratch, passed in so the per-substep path does not allocate.
 */
export function spdInverse(a: Float64Array, n: number, out: Float64Array, l = new Float64Array(n * n), y = new Float64Array(n)): Float64Array {
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j]!;
      for (let k = 0; k < j; k++) s -= l[i * n + k]! * l[j * n + k]!;
      // A tiny floor keeps a near-singular (arm-stretched) matrix invertible, like pinv would.
      l[i * n + j] = i === j ? Math.sqrt(Math.max(s, 1e-12)) : s / l[j * n + j]!;
    }
  }
  // Solve L Lᵀ X = I column by column.
  for (let c = 0; c < n; c++) {
    for (let i = 0; i < n; i++) {
      let s = i === c ? 1 : 0;
      for (let k = 0; k < i; k++) s -= l[i * n + k]! * y[k]!;
      y[i] = s / l[i * n + i]!;
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = y[i]!;
      for (let k = i + 1; k < n; k++) s -= l[k * n + i]! * out[k * n + c]!;
      out[i * n + c] = s / l[i * n + i]!;
    }
  }
  return out;
}

export class OscPose {
  /** Goal of the current action: grip-site position (3) and orientation (9). */
  readonly goalPos = new Float64Array(3);
  readonly goalMat = new Float64Array(9);
  /** Joint posture the nullspace term pulls toward: the configuration at reset. */
  readonly q0 = new Float64Array(N);
  readonly torque = new Float64Array(N);
  // Scratch (shapes in comments).
  private J = new Float64Array(6 * N); // (6, 7): rows 0-2 translational, 3-5 rotational
  private Minv = new Float64Array(N * N); // (7, 7)
  private JMinv = new Float64Array(6 * N); // (6, 7)
  private lamInv = new Float64Array(36); // (6, 6) J M⁻¹ Jᵀ
  private lam = new Float64Array(36); // (6, 6)
  private lamPos = new Float64Array(9);
  private lamOri = new Float64Array(9);
  private blk = new Float64Array(9);
  private chol = new Float64Array(N * N);
  private col = new Float64Array(N);
  private vel = new Float64Array(6); // task-space velocity
  private err = new Float64Array(6); // F (3) and M (3) before the inertias
  private wrench = new Float64Array(6);
  private jbar = new Float64Array(N * 6); // (7, 6)
  private pose = new Float64Array(N); // M · posture acceleration
  private jbarTPose = new Float64Array(6);

  reset(q: ArrayLike<number>): void {
    for (let i = 0; i < N; i++) this.q0[i] = q[i]!;
  }

  /** Sets the goal from a 6-D action in [−1, 1] relative to the current grip-site pose (control_delta). */
  setGoal(action: ArrayLike<number>, pos: ArrayLike<number>, mat: ArrayLike<number>): void {
    for (let i = 0; i < 3; i++) this.goalPos[i] = pos[i]! + POS_SCALE * clip(action[i]!, -1, 1);
    const dr = [0, 1, 2].map((i) => ROT_SCALE * clip(action[3 + i]!, -1, 1));
    matMul3(axisAngleToMat(dr), mat, this.goalMat);
  }

  /** Λ of the translational (off 0) or rotational (off 3) rows alone: the uncoupled inertias. */
  private blockInverse(off: number, out: Float64Array): void {
    for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) this.blk[r * 3 + c] = this.lamInv[(off + r) * 6 + off + c]!;
    spdInverse(this.blk, 3, out, this.chol, this.col);
  }

  /** Joint torques (7) for one substep: task-space PD with decoupled inertias, nullspace posture, bias. */
  compute(s: ArmState): Float64Array {
    const { J, Minv, JMinv, lamInv, lam } = this;
    for (let i = 0; i < N; i++) {
      const ax = s.axis[3 * i]!, ay = s.axis[3 * i + 1]!, az = s.axis[3 * i + 2]!;
      const rx = s.pos[0]! - s.anchor[3 * i]!, ry = s.pos[1]! - s.anchor[3 * i + 1]!, rz = s.pos[2]! - s.anchor[3 * i + 2]!;
      J[i] = ay * rz - az * ry;
      J[N + i] = az * rx - ax * rz;
      J[2 * N + i] = ax * ry - ay * rx;
      J[3 * N + i] = ax;
      J[4 * N + i] = ay;
      J[5 * N + i] = az;
    }
    spdInverse(s.mass, N, Minv, this.chol, this.col);
    for (let r = 0; r < 6; r++)
      for (let c = 0; c < N; c++) {
        let acc = 0;
        for (let k = 0; k < N; k++) acc += J[r * N + k]! * Minv[k * N + c]!;
        JMinv[r * N + c] = acc;
      }
    for (let r = 0; r < 6; r++)
      for (let c = 0; c < 6; c++) {
        let acc = 0;
        for (let k = 0; k < N; k++) acc += JMinv[r * N + k]! * J[c * N + k]!;
        lamInv[r * 6 + c] = acc;
      }
    spdInverse(lamInv, 6, lam, this.chol, this.col);
    this.blockInverse(0, this.lamPos);
    this.blockInverse(3, this.lamOri);

    // Task-space velocity (6) and errors.
    const { vel, err, wrench, jbar, pose, jbarTPose } = this;
    for (let r = 0; r < 6; r++) {
      let acc = 0;
      for (let k = 0; k < N; k++) acc += J[r * N + k]! * s.qd[k]!;
      vel[r] = acc;
    }
    const R = s.mat, G = this.goalMat;
    // e_o = ½ Σ_i r_c,i × r_d,i over the columns of the current and desired rotations.
    let ex = 0, ey = 0, ez = 0;
    for (let i = 0; i < 3; i++) {
      const cx = R[i]!, cy = R[3 + i]!, cz = R[6 + i]!;
      const dx = G[i]!, dy = G[3 + i]!, dz = G[6 + i]!;
      ex += 0.5 * (cy * dz - cz * dy);
      ey += 0.5 * (cz * dx - cx * dz);
      ez += 0.5 * (cx * dy - cy * dx);
    }
    // F = kp·e_p − kd·v and M = kp·e_o − kd·ω.
    for (let i = 0; i < 3; i++) err[i] = KP * (this.goalPos[i]! - s.pos[i]!) - KD * vel[i]!;
    err[3] = KP * ex - KD * vel[3]!;
    err[4] = KP * ey - KD * vel[4]!;
    err[5] = KP * ez - KD * vel[5]!;
    // Decoupled wrench (6): Λ_pos F and Λ_ori M.
    for (let r = 0; r < 3; r++) {
      wrench[r] = this.lamPos[r * 3]! * err[0]! + this.lamPos[r * 3 + 1]! * err[1]! + this.lamPos[r * 3 + 2]! * err[2]!;
      wrench[3 + r] = this.lamOri[r * 3]! * err[3]! + this.lamOri[r * 3 + 1]! * err[4]! + this.lamOri[r * 3 + 2]! * err[5]!;
    }

    // Nullspace: N = I − J̄ J with J̄ = M⁻¹ Jᵀ Λ (7×6); τ_null = Nᵀ M (kp (q0 − q) − kd q̇).
    for (let r = 0; r < N; r++)
      for (let c = 0; c < 6; c++) {
        let acc = 0;
        for (let k = 0; k < 6; k++) acc += JMinv[k * N + r]! * lam[k * 6 + c]!;
        jbar[r * 6 + c] = acc;
      }
    for (let i = 0; i < N; i++) {
      let acc = 0;
      for (let k = 0; k < N; k++) acc += s.mass[i * N + k]! * (KP_NULL * (this.q0[k]! - s.q[k]!) - KD_NULL * s.qd[k]!);
      pose[i] = acc;
    }
    // Nᵀ pose = pose − Jᵀ (J̄ᵀ pose)
    for (let c = 0; c < 6; c++) {
      let acc = 0;
      for (let k = 0; k < N; k++) acc += jbar[k * 6 + c]! * pose[k]!;
      jbarTPose[c] = acc;
    }

    for (let i = 0; i < N; i++) {
      let t = s.bias[i]! + pose[i]!;
      for (let r = 0; r < 6; r++) t += J[r * N + i]! * (wrench[r]! - jbarTPose[r]!);
      this.torque[i] = clip(t, -ARM_TORQUE_LIMIT[i]!, ARM_TORQUE_LIMIT[i]!);
    }
    return this.torque;
  }
}

/**
 * The Panda gripper's action ramp: a state s in [−1, 1] moves 0.01 per substep toward sign(a)
 * (−1 open, +1 closed), and the finger servos target 0.02 ∓ 0.02·s (0 = closed, ±0.04 = open).
 */
export class GripperRamp {
  s = 0;
  reset(): void {
    this.s = 0;
  }
  substep(a: number): [number, number] {
    this.s = clip(this.s + 0.01 * Math.sign(a), -1, 1);
    return [0.02 - 0.02 * this.s, -0.02 + 0.02 * this.s];
  }
}
