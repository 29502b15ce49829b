// WGSL of the renderer's raster pipeline: MuJoCo's camera model and OpenGL-style lighting, as
// MuJoCo's own renderer does it, specialised to one render model.
import type { RenderModel } from "./model.ts";

/** Cameras one renderer can draw per env. */
export const MAX_CAMERAS = 8;

const vec3 = (v: number[]) => `vec3f(${v.map((x) => x.toFixed(7)).join(", ")})`;

/**
 * The fixed-function lighting sum for this model's lights, written out as WGSL with the light
 * parameters as constants: on SwiftShader a loop over a uniform array of lights costs more than
 * all the rest of the shader.
 */
function lightingWgsl(model: RenderModel): string {
  const terms: string[] = [];
  const h = model.headlight;
  if (h.active) terms.push(`color += shade(n, v, headlight, ${vec3(h.ambient)}, ${vec3(h.diffuse)}, ${vec3(h.specular)}, rgb, material);`);
  for (const l of model.lights) {
    const colours = `${vec3(l.ambient)}, ${vec3(l.diffuse)}, ${vec3(l.specular)}`;
    if (l.kind === "directional") {
      terms.push(`color += shade(n, v, ${vec3(l.dir.map((x) => -x))}, ${colours}, rgb, material);`);
      continue;
    }
    const [a0, a1, a2] = l.attenuation;
    // OpenGL's spot cone: no light beyond the cutoff angle, cos^exponent falloff inside it.
    const spot = l.kind === "spot"
      ? `let cos_spot = dot(-l, ${vec3(l.dir)}); gain *= select(0.0, pow(max(cos_spot, 0.0), ${l.exponent.toFixed(7)}), cos_spot >= ${Math.cos((l.cutoff * Math.PI) / 180).toFixed(7)});`
      : "";
    terms.push(`{
    let to_light = ${vec3(l.pos)} - world;
    let dist = length(to_light);
    let l = to_light / dist;
    var gain = 1.0 / (${a0!.toFixed(7)} + ${a1!.toFixed(7)} * dist + ${a2!.toFixed(7)} * dist * dist);
    ${spot}
    color += gain * shade(n, v, l, ${colours}, rgb, material);
  }`);
  }
  return terms.join("\n  ");
}

/**
 * The poses of one env are a uniform block (bound at the env's offset): vec4s 3s..3s+2 are the rows
 * of geom slot s's [R | t] (world = R·local + t), then the same for each camera after the S slots.
 * A uniform block because SwiftShader offers no storage buffers to vertex shaders; one
 * writeBuffer uploads every env's block.
 */
export function rasterWgsl(model: RenderModel): string {
  const rows = 3 * (model.geomIds.length + model.cameras.length);
  return /* wgsl */ `
struct Scene {
  nslot: u32,
  cams: array<vec4f, ${MAX_CAMERAS}>, // 1/tan(fovy/2) / aspect, 1/tan(fovy/2), near, far
}
struct Layer { cam: u32 }

@group(0) @binding(0) var<uniform> poses: array<vec4f, ${rows}>;
@group(0) @binding(1) var<uniform> scene: Scene;
@group(0) @binding(2) var<uniform> layer: Layer;

struct VsOut {
  @builtin(position) clip: vec4f,
  @location(0) color: vec3f,
}

fn pose_row(i: u32) -> vec4f { return poses[i]; }

// One light's term of OpenGL's fixed-function lighting (which MuJoCo's renderer follows), with the
// material's ambient and diffuse colour both equal to rgb; l points from the surface to the light.
fn shade(n: vec3f, v: vec3f, l: vec3f, ambient: vec3f, diffuse: vec3f, specular: vec3f,
         rgb: vec3f, material: vec4f) -> vec3f {
  let ndl = dot(n, l);
  var c = ambient * rgb + diffuse * rgb * max(ndl, 0.0);
  if (ndl > 0.0) {
    let h = normalize(l + v);
    c += specular * material.x * pow(max(dot(n, h), 0.0), material.y * 128.0);
  }
  return c;
}

// Lighting is per vertex and interpolated (Gouraud), as in MuJoCo's fixed-function renderer: it is
// also what keeps SwiftShader's per-pixel cost low.
@vertex
fn vs(@location(0) pos: vec3f, @location(1) nrm: vec3f, @location(2) slot: u32,
      @location(3) rgba: vec4f, @location(4) material: vec4f) -> VsOut {
  let g0 = pose_row(3u * slot);
  let g1 = pose_row(3u * slot + 1u);
  let g2 = pose_row(3u * slot + 2u);
  let world = vec3f(dot(g0.xyz, pos) + g0.w, dot(g1.xyz, pos) + g1.w, dot(g2.xyz, pos) + g2.w);
  let c = 3u * (scene.nslot + layer.cam);
  let c0 = pose_row(c);
  let c1 = pose_row(c + 1u);
  let c2 = pose_row(c + 2u);
  // MuJoCo cameras look along their -z axis with +x right and +y up; camera = Rᵀ (world - t).
  let eye = vec3f(c0.w, c1.w, c2.w);
  let d = world - eye;
  let cam = c0.xyz * d.x + c1.xyz * d.y + c2.xyz * d.z;
  let k = scene.cams[layer.cam];
  let depth = -cam.z;
  var out: VsOut;
  // Depth maps near..far to 0..1 (WebGPU clip space); x, y are a pinhole with vertical fovy.
  out.clip = vec4f(k.x * cam.x, k.y * cam.y, k.w * (depth - k.z) / (k.w - k.z), depth);

  let n = normalize(vec3f(dot(g0.xyz, nrm), dot(g1.xyz, nrm), dot(g2.xyz, nrm)));
  let v = normalize(-d);
  let headlight = vec3f(c0.z, c1.z, c2.z); // toward the camera, which the headlight shines from
  let rgb = rgba.rgb;
  var color = material.z * rgb;
  ${lightingWgsl(model)}
  out.color = min(color, vec3f(1.0));
  return out;
}

@fragment
fn fs(in: VsOut) -> @location(0) vec4f {
  return vec4f(in.color, 1.0);
}
`;
}
