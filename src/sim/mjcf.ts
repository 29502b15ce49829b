// Tiny MJCF writer: elements as strings, and the visual/collision geom convention of robosuite
// (visual geoms in group 1 that never collide, collision geoms in group 3 that the renderer hides).
import { matToQuat, type Quat, type Vec3 } from "./math.ts";

type Attr = string | number | readonly number[] | undefined;

const num = (x: number) => (Math.abs(x) < 1e-12 ? "0" : String(+x.toFixed(6)));

/** One MJCF element; array attributes are written space-separated, undefined ones are left out. */
export function el(tag: string, attrs: Record<string, Attr>, ...children: string[]): string {
  const a = Object.entries(attrs)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}="${typeof v === "number" ? num(v) : Array.isArray(v) ? v.map(num).join(" ") : v}"`)
    .join(" ");
  const open = a ? `<${tag} ${a}` : `<${tag}`;
  return children.length ? `${open}>\n${children.join("\n")}\n</${tag}>` : `${open}/>`;
}

export type Rgba = readonly [number, number, number, number];

export interface Part {
  type: "box" | "cylinder" | "capsule" | "sphere";
  size: readonly number[];
  pos?: readonly number[];
  quat?: readonly number[];
  fromto?: readonly number[];
  rgba: Rgba;
  name?: string;
  /** Extra collision attributes (friction, solref, solimp, density, condim). */
  contact?: Record<string, Attr>;
}

/** A shape that both collides (group 3) and is drawn (group 1): two geoms with the same pose. */
export function solid(p: Part): string {
  const pose = { type: p.type, size: p.size, pos: p.pos, quat: p.quat, fromto: p.fromto };
  return [
    el("geom", { name: p.name, class: "collision", ...pose, rgba: p.rgba, ...p.contact }),
    el("geom", { name: p.name ? `${p.name}_vis` : undefined, class: "visual", ...pose, rgba: p.rgba }),
  ].join("\n");
}

/** A shape that is only drawn. */
export function visual(p: Part): string {
  return el("geom", { name: p.name, class: "visual", type: p.type, size: p.size, pos: p.pos, quat: p.quat, fromto: p.fromto, rgba: p.rgba });
}

/** A shape that only collides. */
export function collider(p: Part): string {
  return el("geom", { name: p.name, class: "collision", type: p.type, size: p.size, pos: p.pos, quat: p.quat, fromto: p.fromto, rgba: p.rgba, ...p.contact });
}

/**
 * Thin box slabs arranged in a ring around z: a wall from radius r0 at height z0 to radius r1 at z1,
 * `n` segments, `thickness` through the wall. Bowls, the plate rim and the ramekin are made of these,
 * like the convex-decomposition boxes of the LIBERO objects.
 */
export function ringSlabs(n: number, r0: number, z0: number, r1: number, z1: number, thickness: number): { size: Vec3; pos: Vec3; quat: Quat }[] {
  const dr = r1 - r0;
  const dz = z1 - z0;
  const len = Math.hypot(dr, dz);
  const rm = (r0 + r1) / 2;
  // Tangential half width: the segment's share of the mean circumference, plus overlap so no gap opens.
  const halfWidth = ((Math.PI * (rm + thickness / 2)) / n) * 1.08;
  const out: { size: Vec3; pos: Vec3; quat: Quat }[] = [];
  for (let k = 0; k < n; k++) {
    const phi = (2 * Math.PI * k) / n;
    const [c, s] = [Math.cos(phi), Math.sin(phi)];
    // Slab frame: x through the wall (outward normal), y tangent, z along the wall from bottom to top.
    const zAxis: Vec3 = [(dr / len) * c, (dr / len) * s, dz / len];
    const yAxis: Vec3 = [-s, c, 0];
    const xAxis: Vec3 = [yAxis[1] * zAxis[2] - yAxis[2] * zAxis[1], yAxis[2] * zAxis[0] - yAxis[0] * zAxis[2], yAxis[0] * zAxis[1] - yAxis[1] * zAxis[0]];
    const m = [xAxis[0], yAxis[0], zAxis[0], xAxis[1], yAxis[1], zAxis[1], xAxis[2], yAxis[2], zAxis[2]];
    // Centre pushed half a thickness outward so the inner face lies on the nominal wall line.
    out.push({
      size: [thickness / 2, halfWidth, len / 2],
      pos: [rm * c + (xAxis[0] * thickness) / 2, rm * s + (xAxis[1] * thickness) / 2, (z0 + z1) / 2 + (xAxis[2] * thickness) / 2],
      quat: matToQuat(m),
    });
  }
  return out;
}
