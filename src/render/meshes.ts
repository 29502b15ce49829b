// Triangle meshes of MuJoCo's geom primitives in the geom's own frame (sizes baked in), wound
// counter-clockwise seen from outside so that back faces can be culled.

/** A mesh in the geom frame: V vertices, T triangles. */
export interface GeomMesh {
  positions: Float32Array; // [V, 3]
  normals: Float32Array; // [V, 3] unit length
  indices: Uint32Array; // [T, 3]
}

/** MuJoCo's mjtGeom values for the types the renderer draws. */
export const GEOM = { plane: 0, hfield: 1, sphere: 2, capsule: 3, ellipsoid: 4, cylinder: 5, box: 6, mesh: 7 } as const;

/** Tessellation: enough that a 128-256 px camera sees round bowls, cheap enough for SwiftShader. */
const SLICES = 24; // around the z axis
const STACKS = 12; // pole to pole of a sphere

/** A point of a surface of revolution: radius r at height z, with outward normal (nr, nz). */
type ProfilePoint = [r: number, z: number, nr: number, nz: number];

/**
 * Revolves a profile (ordered from top to bottom) about z. Consecutive profile points at the same
 * place (a crease, such as a cylinder's rim) make zero-area quads, which are skipped.
 */
function revolve(profile: ProfilePoint[]): GeomMesh {
  const ring = SLICES + 1; // the seam vertex is repeated so each ring closes
  const positions = new Float32Array(profile.length * ring * 3);
  const normals = new Float32Array(profile.length * ring * 3);
  profile.forEach(([r, z, nr, nz], k) => {
    for (let j = 0; j < ring; j++) {
      const phi = (2 * Math.PI * j) / SLICES;
      const c = Math.cos(phi), s = Math.sin(phi);
      const v = (k * ring + j) * 3;
      positions.set([r * c, r * s, z], v);
      normals.set([nr * c, nr * s, nz], v);
    }
  });
  const indices: number[] = [];
  for (let k = 0; k + 1 < profile.length; k++) {
    const [r0, z0] = profile[k]!, [r1, z1] = profile[k + 1]!;
    if (r0 === r1 && z0 === z1) continue;
    for (let j = 0; j < SLICES; j++) {
      const a = k * ring + j, b = a + 1, c = a + ring, d = c + 1;
      // a→c runs down the profile, a→b around z: (a, c, b) faces outward.
      if (r0 > 0) indices.push(a, c, b);
      if (r1 > 0) indices.push(b, c, d);
    }
  }
  return { positions, normals, indices: new Uint32Array(indices) };
}

/** Quarter arc of a sphere of radius r centred at height zc, from angle theta0 to theta1 (from +z). */
function arc(r: number, zc: number, theta0: number, theta1: number, steps: number): ProfilePoint[] {
  const pts: ProfilePoint[] = [];
  for (let i = 0; i <= steps; i++) {
    const t = theta0 + ((theta1 - theta0) * i) / steps;
    pts.push([r * Math.sin(t), zc + r * Math.cos(t), Math.sin(t), Math.cos(t)]);
  }
  return pts;
}

export function sphereMesh(radius: number): GeomMesh {
  return revolve(arc(radius, 0, 0, Math.PI, STACKS));
}

/** An ellipsoid is a unit sphere scaled per axis; normals scale by the inverse. */
export function ellipsoidMesh(rx: number, ry: number, rz: number): GeomMesh {
  const m = sphereMesh(1);
  for (let v = 0; v < m.positions.length; v += 3) {
    const [x, y, z] = [m.positions[v]!, m.positions[v + 1]!, m.positions[v + 2]!];
    m.positions.set([x * rx, y * ry, z * rz], v);
    const n = [x / rx, y / ry, z / rz];
    const len = Math.hypot(n[0]!, n[1]!, n[2]!);
    m.normals.set([n[0]! / len, n[1]! / len, n[2]! / len], v);
  }
  return m;
}

/** Capsule along z: radius r, cylinder half-length h between two hemispheres. */
export function capsuleMesh(r: number, h: number): GeomMesh {
  return revolve([...arc(r, h, 0, Math.PI / 2, STACKS / 2), ...arc(r, -h, Math.PI / 2, Math.PI, STACKS / 2)]);
}

/** Cylinder along z with flat caps: radius r, half-length h. */
export function cylinderMesh(r: number, h: number): GeomMesh {
  return revolve([
    [0, h, 0, 1],
    [r, h, 0, 1],
    [r, h, 1, 0],
    [r, -h, 1, 0],
    [r, -h, 0, -1],
    [0, -h, 0, -1],
  ]);
}

/**
 * Lighting is computed per vertex (as in MuJoCo's fixed-function renderer, which splits box faces
 * into at most vis.quality.numquads² cells for the same reason), so a large face needs inner
 * vertices to catch a spotlight; small faces stay one cell, since vertices are what a software
 * rasterizer pays for.
 */
export interface Subdivision {
  maxQuads: number; // cells per edge at most
  cell: number; // metres: an edge gets one cell per this length
}

const cells = (length: number, sub: Subdivision) => Math.min(sub.maxQuads, Math.max(1, Math.ceil(length / sub.cell)));

/** A rectangle from corner p0 along edges u and v (u × v along the normal n), in cells. */
function grid(out: { positions: number[]; normals: number[]; indices: number[] }, p0: number[], u: number[], v: number[], n: number[], sub: Subdivision) {
  const qu = cells(Math.hypot(u[0]!, u[1]!, u[2]!), sub), qv = cells(Math.hypot(v[0]!, v[1]!, v[2]!), sub);
  const base = out.positions.length / 3;
  for (let j = 0; j <= qv; j++)
    for (let i = 0; i <= qu; i++) {
      for (let k = 0; k < 3; k++) out.positions.push(p0[k]! + (u[k]! * i) / qu + (v[k]! * j) / qv);
      out.normals.push(...n);
    }
  for (let j = 0; j < qv; j++)
    for (let i = 0; i < qu; i++) {
      const a = base + j * (qu + 1) + i, b = a + 1, c = a + qu + 1, d = c + 1;
      out.indices.push(a, b, d, a, d, c);
    }
}

const toMesh = (m: { positions: number[]; normals: number[]; indices: number[] }): GeomMesh => ({
  positions: new Float32Array(m.positions),
  normals: new Float32Array(m.normals),
  indices: new Uint32Array(m.indices),
});

/** Box of half-sizes (hx, hy, hz), each face its own grid with the face's normal. */
export function boxMesh(hx: number, hy: number, hz: number, sub: Subdivision): GeomMesh {
  const half = [hx, hy, hz];
  const out = { positions: [] as number[], normals: [] as number[], indices: [] as number[] };
  // For each axis and sign: the face normal and two in-face axes (u, v) with u × v = normal.
  for (let axis = 0; axis < 3; axis++) {
    for (const sign of [1, -1]) {
      const n = [0, 0, 0], u = [0, 0, 0], v = [0, 0, 0];
      n[axis] = sign;
      const ua = (axis + 1) % 3, va = (axis + 2) % 3;
      u[ua] = 2 * half[ua]!;
      v[va] = 2 * sign * half[va]!;
      const p0 = [0, 1, 2].map((k) => n[k]! * half[k]! - u[k]! / 2 - v[k]! / 2);
      grid(out, p0, u, v, n, sub);
    }
  }
  return toMesh(out);
}

/** The visible side of a MuJoCo plane is +z; (hx, hy) are its half-sizes. */
export function planeMesh(hx: number, hy: number, sub: Subdivision): GeomMesh {
  const out = { positions: [] as number[], normals: [] as number[], indices: [] as number[] };
  grid(out, [-hx, -hy, 0], [2 * hx, 0, 0], [0, 2 * hy, 0], [0, 0, 1], sub);
  return toMesh(out);
}
