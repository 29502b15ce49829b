// The static part of a rendered scene, extracted once from an MjModel: the triangles of every
// visible geom in its own frame, its colour and material, the cameras' intrinsics and the lights.
// Not drawn: height fields and SDF geoms (an error names them), texture maps (a textured material
// shows its texture's mean colour), transparency (0 < alpha < 1 is drawn opaque; alpha 0 hides).
import type { MainModule, MjModel } from "mujoco-js";
import { usageError } from "../errors.ts";
import { boxMesh, capsuleMesh, cylinderMesh, ellipsoidMesh, GEOM, type GeomMesh, planeMesh, sphereMesh } from "./meshes.ts";

/** Interleaved vertex: position f32×3, normal f32×3, slot u32, rgba unorm8×4, material unorm8×4. */
export const VERTEX_BYTES = 36;

/** MuJoCo's default mjvOption.geomgroup: groups 0-2 are drawn, 3-5 hidden (collision-only by convention). */
export const VISIBLE_GROUPS = [0, 1, 2];

/** As many lights as OpenGL's fixed pipeline (which MuJoCo's renderer follows) would use. */
export const MAX_LIGHTS = 8;

export interface RenderCamera {
  name: string;
  id: number; // index into cam_xpos / cam_xmat
  fovy: number; // vertical field of view, degrees
}

export interface RenderLight {
  /** MuJoCo's light types; an image light (a spot projecting a texture) is drawn as a plain spot. */
  kind: "spot" | "directional" | "point";
  pos: number[]; // world position (3) at qpos0
  dir: number[]; // world direction the light points to (3), unit
  ambient: number[];
  diffuse: number[];
  specular: number[];
  attenuation: number[]; // OpenGL constant, linear, quadratic
  cutoff: number; // spot half-angle, degrees (spot lights)
  exponent: number; // spot exponent
}

export interface RenderModel {
  ngeom: number; // rows of the geom_xpos (ngeom×3) / geom_xmat (ngeom×9) arrays a frame carries
  ncam: number; // rows of cam_xpos / cam_xmat
  geomIds: Int32Array; // [S] model geom id drawn in each slot
  vertices: ArrayBuffer; // [V, VERTEX_BYTES] interleaved, see VERTEX_BYTES
  indices: Uint32Array; // [T, 3]; slot s owns indices firstIndex[s] .. firstIndex[s] + indexCount[s]
  firstIndex: Uint32Array; // [S]
  indexCount: Uint32Array; // [S]
  radius: Float32Array; // [S] bounding sphere about the geom's origin, metres (for culling)
  cameras: RenderCamera[];
  lights: RenderLight[];
  headlight: { active: boolean; ambient: number[]; diffuse: number[]; specular: number[] };
  znear: number; // metres: MuJoCo's vis.map.znear × stat.extent
  zfar: number; // metres: vis.map.zfar × stat.extent
}

export interface ExtractOptions {
  /** Cameras to render, by name; their order is the camera axis of the images. */
  cameras: string[];
  /** Geom groups drawn (MuJoCo's default: 0, 1, 2). */
  groups?: number[];
}

const DEFAULT_RGBA = [0.5, 0.5, 0.5, 1];
const TEXROLE_RGB = 1; // mjTEXROLE_RGB: mat_texid has mjNTEXROLE (10) entries per material
const NTEXROLE = 10;

/**
 * Reads the scene from a compiled model. Lights are placed as they are in the model's reference
 * configuration (qpos0) and stay there: the renderer's lights do not follow moving bodies.
 */
export function extractRenderModel(mj: MainModule, m: MjModel, opts: ExtractOptions): RenderModel {
  const groups = new Set(opts.groups ?? VISIBLE_GROUPS);
  const cameras = opts.cameras.map((name) => {
    const id = mj.mj_name2id(m, mj.mjtObj.mjOBJ_CAMERA.value, name);
    if (id < 0) throw usageError(`The model has no camera named "${name}".`);
    if (m.cam_orthographic[id]) throw usageError(`Camera "${name}" is orthographic; the renderer draws perspective cameras only.`);
    return { name, id, fovy: Number(m.cam_fovy[id]) };
  });

  const meshes: { mesh: GeomMesh; rgba: number[]; material: number[] }[] = [];
  const geomIds: number[] = [];
  for (let g = 0; g < m.ngeom; g++) {
    const rgba = geomRgba(m, g);
    if (!groups.has(m.geom_group[g]) || rgba[3] === 0) continue;
    meshes.push({ mesh: geomMesh(m, g), rgba, material: geomMaterial(m, g) });
    geomIds.push(g);
  }
  const { vertices, indices, firstIndex, indexCount } = interleave(meshes);
  const radius = Float32Array.from(meshes, ({ mesh }) => {
    let r2 = 0;
    for (let v = 0; v < mesh.positions.length; v += 3) r2 = Math.max(r2, mesh.positions[v]! ** 2 + mesh.positions[v + 1]! ** 2 + mesh.positions[v + 2]! ** 2);
    return Math.sqrt(r2);
  });

  const hl = m.vis.headlight;
  return {
    ngeom: m.ngeom,
    ncam: m.ncam,
    geomIds: new Int32Array(geomIds),
    vertices,
    indices,
    firstIndex,
    indexCount,
    radius,
    cameras,
    lights: sceneLights(mj, m),
    headlight: { active: hl.active !== 0, ambient: [...hl.ambient], diffuse: [...hl.diffuse], specular: [...hl.specular] },
    znear: m.vis.map.znear * m.stat.extent,
    zfar: m.vis.map.zfar * m.stat.extent,
  };
}

/** World poses of the lights come from a forward pass at qpos0 on data of our own. */
function sceneLights(mj: MainModule, m: MjModel): RenderLight[] {
  const data = new mj.MjData(m);
  try {
    mj.mj_forward(m, data);
    const lights: RenderLight[] = [];
    for (let i = 0; i < m.nlight && lights.length < MAX_LIGHTS; i++) {
      if (!m.light_active[i]) continue;
      const type = m.light_type[i];
      lights.push({
        kind: type === mj.mjtLightType.mjLIGHT_DIRECTIONAL.value ? "directional" : type === mj.mjtLightType.mjLIGHT_POINT.value ? "point" : "spot",
        pos: [...data.light_xpos.subarray(3 * i, 3 * i + 3)],
        dir: [...data.light_xdir.subarray(3 * i, 3 * i + 3)],
        ambient: [...m.light_ambient.subarray(3 * i, 3 * i + 3)],
        diffuse: [...m.light_diffuse.subarray(3 * i, 3 * i + 3)],
        specular: [...m.light_specular.subarray(3 * i, 3 * i + 3)],
        attenuation: [...m.light_attenuation.subarray(3 * i, 3 * i + 3)],
        cutoff: Number(m.light_cutoff[i]),
        exponent: Number(m.light_exponent[i]),
      });
    }
    return lights;
  } finally {
    data.delete();
  }
}

/** A material's colour replaces the geom's unless the geom sets its own rgba (MuJoCo's rule). */
function geomRgba(m: MjModel, g: number): number[] {
  const own = [...m.geom_rgba.subarray(4 * g, 4 * g + 4)] as number[];
  const mat = m.geom_matid[g];
  if (mat < 0 || own.some((v, i) => Math.abs(v - DEFAULT_RGBA[i]!) > 1e-6)) return own;
  const rgba = [...m.mat_rgba.subarray(4 * mat, 4 * mat + 4)] as number[];
  // Texture mapping is not drawn: a textured material is shown in its texture's mean colour.
  const tex = m.mat_texid[mat * NTEXROLE + TEXROLE_RGB];
  if (tex >= 0) {
    const mean = textureMean(m, tex);
    for (let c = 0; c < 3; c++) rgba[c] = rgba[c]! * mean[c]!;
  }
  return rgba;
}

function textureMean(m: MjModel, tex: number): number[] {
  const n = m.tex_width[tex] * m.tex_height[tex], ch = m.tex_nchannel[tex], adr = m.tex_adr[tex];
  const sum = [0, 0, 0];
  for (let p = 0; p < n; p++) for (let c = 0; c < 3; c++) sum[c]! += m.tex_data[adr + p * ch + Math.min(c, ch - 1)];
  return sum.map((s) => s / (255 * n));
}

/** [specular, shininess, emission] from the geom's material, or MuJoCo's defaults without one. */
function geomMaterial(m: MjModel, g: number): number[] {
  const mat = m.geom_matid[g];
  if (mat < 0) return [0.5, 0.5, 0];
  return [m.mat_specular[mat], m.mat_shininess[mat], m.mat_emission[mat]];
}

function geomMesh(m: MjModel, g: number): GeomMesh {
  const s = m.geom_size.subarray(3 * g, 3 * g + 3);
  // Cells of an eighth of the scene's extent: a table top gets a few, an object's face one.
  const sub = { maxQuads: Math.max(1, m.vis.quality.numquads), cell: m.stat.extent / 8 };
  switch (m.geom_type[g]) {
    case GEOM.plane: {
      // Size 0 means infinite: draw it out to the far plane.
      const far = m.vis.map.zfar * m.stat.extent;
      return planeMesh(s[0] || far, s[1] || far, sub);
    }
    case GEOM.sphere:
      return sphereMesh(s[0]);
    case GEOM.capsule:
      return capsuleMesh(s[0], s[1]);
    case GEOM.ellipsoid:
      return ellipsoidMesh(s[0], s[1], s[2]);
    case GEOM.cylinder:
      return cylinderMesh(s[0], s[1]);
    case GEOM.box:
      return boxMesh(s[0], s[1], s[2], sub);
    case GEOM.mesh:
      return modelMesh(m, m.geom_dataid[g]);
    default:
      throw usageError(`Geom ${g} has type ${m.geom_type[g]} (height field or SDF), which the renderer cannot draw; put it in group 3 or higher to hide it.`);
  }
}

/** A mesh asset, one vertex per face corner with the face's normal (flat shading). */
function modelMesh(m: MjModel, id: number): GeomMesh {
  const vadr = m.mesh_vertadr[id], fadr = m.mesh_faceadr[id], nface = m.mesh_facenum[id];
  const positions = new Float32Array(nface * 9);
  const normals = new Float32Array(nface * 9);
  for (let f = 0; f < nface; f++) {
    const corner = [0, 1, 2].map((k) => {
      const v = vadr + m.mesh_face[3 * (fadr + f) + k];
      return [m.mesh_vert[3 * v], m.mesh_vert[3 * v + 1], m.mesh_vert[3 * v + 2]] as number[];
    });
    const [a, b, c] = corner as [number[], number[], number[]];
    const e1 = [b[0]! - a[0]!, b[1]! - a[1]!, b[2]! - a[2]!], e2 = [c[0]! - a[0]!, c[1]! - a[1]!, c[2]! - a[2]!];
    const n = [e1[1]! * e2[2]! - e1[2]! * e2[1]!, e1[2]! * e2[0]! - e1[0]! * e2[2]!, e1[0]! * e2[1]! - e1[1]! * e2[0]!];
    const len = Math.hypot(n[0]!, n[1]!, n[2]!) || 1;
    for (let k = 0; k < 3; k++) {
      positions.set(corner[k]!, 9 * f + 3 * k);
      normals.set([n[0]! / len, n[1]! / len, n[2]! / len], 9 * f + 3 * k);
    }
  }
  return { positions, normals, indices: Uint32Array.from({ length: nface * 3 }, (_, i) => i) };
}

const unorm8 = (v: number) => Math.max(0, Math.min(255, Math.round(v * 255)));

/** Packs all geom meshes into one vertex and one index buffer; the slot tells a vertex's pose. */
function interleave(meshes: { mesh: GeomMesh; rgba: number[]; material: number[] }[]) {
  const nv = meshes.reduce((n, { mesh }) => n + mesh.positions.length / 3, 0);
  const ni = meshes.reduce((n, { mesh }) => n + mesh.indices.length, 0);
  const vertices = new ArrayBuffer(nv * VERTEX_BYTES);
  const f32 = new Float32Array(vertices), u32 = new Uint32Array(vertices), u8 = new Uint8Array(vertices);
  const indices = new Uint32Array(ni);
  const firstIndex = new Uint32Array(meshes.length), indexCount = new Uint32Array(meshes.length);
  let v0 = 0, i0 = 0;
  meshes.forEach(({ mesh, rgba, material }, slot) => {
    const n = mesh.positions.length / 3;
    for (let v = 0; v < n; v++) {
      const w = ((v0 + v) * VERTEX_BYTES) / 4;
      f32.set(mesh.positions.subarray(3 * v, 3 * v + 3), w);
      f32.set(mesh.normals.subarray(3 * v, 3 * v + 3), w + 3);
      u32[w + 6] = slot;
      u8.set(rgba.map(unorm8), (w + 7) * 4);
      u8.set([...material, 0].map(unorm8), (w + 8) * 4);
    }
    for (let i = 0; i < mesh.indices.length; i++) indices[i0 + i] = mesh.indices[i]! + v0;
    firstIndex[slot] = i0;
    indexCount[slot] = mesh.indices.length;
    v0 += n;
    i0 += mesh.indices.length;
  });
  return { vertices, indices, firstIndex, indexCount };
}
