// Small 3-D rotation helpers (row-major 3x3 matrices as MuJoCo stores xmat, quaternions w,x,y,z)
// and the seeded random numbers that make initial states identical on every machine.

export type Vec3 = [number, number, number];
export type Quat = [number, number, number, number];

/** Quaternion (w,x,y,z) of a rotation of `angle` rad about a unit `axis`. */
export function axisAngleQuat(axis: Vec3, angle: number): Quat {
  const s = Math.sin(angle / 2);
  return [Math.cos(angle / 2), axis[0] * s, axis[1] * s, axis[2] * s];
}

export function quatMul(a: Quat, b: Quat): Quat {
  return [
    a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
    a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
    a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
    a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0],
  ];
}

/** Row-major 3x3 rotation matrix (9 numbers) of a unit quaternion (w,x,y,z). */
export function quatToMat(q: ArrayLike<number>, out: Float64Array | number[] = new Float64Array(9)) {
  const [w, x, y, z] = [q[0]!, q[1]!, q[2]!, q[3]!];
  out[0] = 1 - 2 * (y * y + z * z); out[1] = 2 * (x * y - w * z); out[2] = 2 * (x * z + w * y);
  out[3] = 2 * (x * y + w * z); out[4] = 1 - 2 * (x * x + z * z); out[5] = 2 * (y * z - w * x);
  out[6] = 2 * (x * z - w * y); out[7] = 2 * (y * z + w * x); out[8] = 1 - 2 * (x * x + y * y);
  return out;
}

/** Unit quaternion (w,x,y,z), w ≥ 0, of a row-major rotation matrix (Shepperd's method). */
export function matToQuat(m: ArrayLike<number>): Quat {
  const t = m[0]! + m[4]! + m[8]!;
  let q: Quat;
  if (t > 0) {
    const s = 2 * Math.sqrt(1 + t);
    q = [s / 4, (m[7]! - m[5]!) / s, (m[2]! - m[6]!) / s, (m[3]! - m[1]!) / s];
  } else if (m[0]! > m[4]! && m[0]! > m[8]!) {
    const s = 2 * Math.sqrt(1 + m[0]! - m[4]! - m[8]!);
    q = [(m[7]! - m[5]!) / s, s / 4, (m[1]! + m[3]!) / s, (m[2]! + m[6]!) / s];
  } else if (m[4]! > m[8]!) {
    const s = 2 * Math.sqrt(1 + m[4]! - m[0]! - m[8]!);
    q = [(m[2]! - m[6]!) / s, (m[1]! + m[3]!) / s, s / 4, (m[5]! + m[7]!) / s];
  } else {
    const s = 2 * Math.sqrt(1 + m[8]! - m[0]! - m[4]!);
    q = [(m[3]! - m[1]!) / s, (m[2]! + m[6]!) / s, (m[5]! + m[7]!) / s, s / 4];
  }
  return q[0] < 0 ? [-q[0], -q[1], -q[2], -q[3]] : q;
}

/** Row-major matrix of the rotation by axis-angle vector `r` (Rodrigues). */
export function axisAngleToMat(r: ArrayLike<number>, out: Float64Array = new Float64Array(9)) {
  const angle = Math.hypot(r[0]!, r[1]!, r[2]!);
  if (angle < 1e-12) {
    out.fill(0); out[0] = out[4] = out[8] = 1;
    return out;
  }
  return quatToMat(axisAngleQuat([r[0]! / angle, r[1]! / angle, r[2]! / angle], angle), out);
}

/** out = a · b for row-major 3x3 matrices. */
export function matMul3(a: ArrayLike<number>, b: ArrayLike<number>, out: Float64Array = new Float64Array(9)) {
  for (let i = 0; i < 3; i++)
    for (let j = 0; j < 3; j++)
      out[i * 3 + j] = a[i * 3]! * b[j]! + a[i * 3 + 1]! * b[3 + j]! + a[i * 3 + 2]! * b[6 + j]!;
  return out;
}

/**
 * robosuite's `quat2axisangle` (the 8-D state's rotation part): w clipped to [−1, 1], axis-angle =
 * xyz · 2·acos(w) / sqrt(1 − w²); zero when the rotation is the identity. The sign is not canonicalised.
 */
export function quatToAxisAngle(q: ArrayLike<number>): Vec3 {
  const w = Math.min(1, Math.max(-1, q[0]!));
  const den = Math.sqrt(1 - w * w);
  if (den < 1e-12) return [0, 0, 0];
  const k = (2 * Math.acos(w)) / den;
  return [q[1]! * k, q[2]! * k, q[3]! * k];
}

/** Axis-angle vector of the rotation from row-major `from` to `to` in the world frame (to · fromᵀ). */
export function rotationBetween(from: ArrayLike<number>, to: ArrayLike<number>): Vec3 {
  const r = new Float64Array(9);
  for (let i = 0; i < 3; i++)
    for (let j = 0; j < 3; j++)
      r[i * 3 + j] = to[i * 3]! * from[j * 3]! + to[i * 3 + 1]! * from[j * 3 + 1]! + to[i * 3 + 2]! * from[j * 3 + 2]!;
  const c = Math.min(1, Math.max(-1, (r[0]! + r[4]! + r[8]! - 1) / 2));
  const angle = Math.acos(c);
  const v: Vec3 = [r[7]! - r[5]!, r[2]! - r[6]!, r[3]! - r[1]!];
  const s = Math.hypot(v[0], v[1], v[2]);
  if (s < 1e-9) {
    if (angle < 1e-6) return [0, 0, 0];
    // 180°: the axis is the column of R + I with the largest norm.
    const cols = [0, 1, 2].map((j) => [r[j]! + (j === 0 ? 1 : 0), r[3 + j]! + (j === 1 ? 1 : 0), r[6 + j]! + (j === 2 ? 1 : 0)]);
    const best = cols.reduce((a, b) => (Math.hypot(...a) >= Math.hypot(...b) ? a : b));
    const n = Math.hypot(...best);
    return [(best[0]! / n) * angle, (best[1]! / n) * angle, (best[2]! / n) * angle];
  }
  return [(v[0] / s) * angle, (v[1] / s) * angle, (v[2] / s) * angle];
}

