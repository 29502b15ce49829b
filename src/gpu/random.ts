// Seeded, counter-based random numbers on the device (Philox4x32-10, Salmon et al. 2011): element e
// of a draw is a pure function of (seed, counter + e), so a run reproduces exactly and noise for
// thousands of action chunks is made where it is used, without a CPU round trip.
import { kernels } from "./backend.ts";
import { GRID_BUILTINS, dispatch, flatIndex, grid, kernel } from "./runtime.ts";
import { type Shape, Tensor, keep, numel } from "./tensor.ts";

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

const PHILOX_WGSL = /* wgsl */ `
fn mulhilo(a: u32, b: u32) -> vec2u {
  // 32x32 → 64-bit product from 16-bit halves (WGSL has no widening multiply).
  let a0 = a & 0xffffu; let a1 = a >> 16u; let b0 = b & 0xffffu; let b1 = b >> 16u;
  let p00 = a0 * b0; let p01 = a0 * b1; let p10 = a1 * b0; let p11 = a1 * b1;
  let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  return vec2u(p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u), a * b);
}
fn philox(c_in: vec4u, k_in: vec2u) -> vec4u {
  var c = c_in;
  var k = k_in;
  for (var r = 0u; r < 10u; r++) {
    if (r > 0u) { k = k + vec2u(${W0}u, ${W1}u); }
    let p0 = mulhilo(${M0}u, c.x);
    let p1 = mulhilo(${M1}u, c.z);
    c = vec4u(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
  }
  return c;
}
// (0, 1): 23 random bits centred in their bucket (exact in float32), so log() never sees 0.
fn unit(x: u32) -> f32 { return (f32(x >> 9u) + 0.5) * ${2 ** -23}; }`;

export type Distribution = "uniform" | "normal";

/**
 * Fills a new tensor: uniform on (0, 1) or standard normal (Box–Muller on two uniforms, written as
 * −cos(2π(u − ½)) so the angle stays in [−π, π] where Vulkan bounds cos's error). The counter is
 * read from a device buffer `ctr` = [lo, hi] and advanced there, so a loop of draws creates no
 * new uniforms or bind groups.
 */
function draw(kind: Distribution, shape: Shape, seed: number, ctr: Tensor): Tensor {
  if (kernels().name === "onnx") throw new Error(`Rng.${kind} cannot be traced into ONNX: draw the values on the CPU (randomCpu) and pass them as a graph input`);
  const y = Tensor.empty(shape);
  const k = kernel({
    name: `random_${kind}`,
    bindings: [{ name: "Ctr", access: "r", type: "array<u32>" }, { name: "Y", access: "w" }],
    params: ["n:u32", "k0:u32", "k1:u32"],
    body: `${PHILOX_WGSL}
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let i = ${flatIndex()};
  if (i >= P.n) { return; }
  let lo = Ctr[0] + i;
  let carry = select(0u, 1u, lo < Ctr[0]);
  let r = philox(vec4u(lo, Ctr[1] + carry, 0u, 0u), vec2u(P.k0, P.k1));
  ${kind === "uniform" ? "Y[i] = unit(r.x);" : "Y[i] = -sqrt(-2.0 * log(unit(r.x))) * cos(6.283185307179586 * (unit(r.y) - 0.5));"}
}`,
  });
  const [k0, k1] = split(seed);
  dispatch(k, [ctr.buf, y.buf], [y.size, k0, k1], grid(y.size));
  const advance = kernel({
    name: "random_advance",
    bindings: [{ name: "Ctr", access: "w", type: "array<u32>" }],
    params: ["n:u32"],
    body: `
@compute @workgroup_size(1)
fn main() {
  let lo = Ctr[0] + P.n;
  Ctr[1] = Ctr[1] + select(0u, 1u, lo < Ctr[0]);
  Ctr[0] = lo;
}`,
  });
  dispatch(advance, [ctr.buf], [y.size], [1]);
  return y;
}

const split = (x: number): [number, number] => [x % 2 ** 32 >>> 0, Math.floor(x / 2 ** 32) >>> 0];

export interface RngState {
  seed: number;
  counter: number;
}

/** A stream of draws: each call consumes as many counters as it returns elements. */
export class Rng {
  private ctr: Tensor;
  private _counter: number;

  constructor(
    public seed: number,
    counter = 0,
  ) {
    this._counter = counter;
    this.ctr = keep(Tensor.from(Int32Array.from(split(counter)), [2], "i32"));
  }

  get counter(): number {
    return this._counter;
  }

  uniform(shape: Shape): Tensor {
    this._counter += numel(shape);
    return draw("uniform", shape, this.seed, this.ctr);
  }

  normal(shape: Shape): Tensor {
    this._counter += numel(shape);
    return draw("normal", shape, this.seed, this.ctr);
  }

  state(): RngState {
    return { seed: this.seed, counter: this._counter };
  }

  setState(s: RngState): void {
    this.seed = s.seed;
    this._counter = s.counter;
    this.ctr.write(Int32Array.from(split(s.counter)));
  }

  dispose(): void {
    this.ctr.dispose();
  }
}

// ---- CPU reference -----------------------------------------------------------------------------

function mulhiloCpu(a: number, b: number): [number, number] {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return [(p11 + (p01 >>> 16) + (p10 >>> 16) + Math.floor(mid / 65536)) >>> 0, Math.imul(a, b) >>> 0];
}

/** Philox4x32-10 on the CPU (defines the device kernel; checked against Random123's known answers). */
export function philoxCpu(ctr: [number, number, number, number], key: [number, number]): [number, number, number, number] {
  let [c0, c1, c2, c3] = ctr;
  let [k0, k1] = key;
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const [h0, l0] = mulhiloCpu(M0, c0);
    const [h1, l1] = mulhiloCpu(M1, c2);
    [c0, c1, c2, c3] = [(h1 ^ c1 ^ k0) >>> 0, l1, (h0 ^ c3 ^ k1) >>> 0, l0];
  }
  return [c0, c1, c2, c3];
}

/** The values `Rng(seed, counter)` draws, computed in float64 on the CPU. */
export function randomCpu(kind: Distribution, n: number, seed: number, counter: number): Float64Array {
  const unit = (x: number) => (Math.floor(x / 512) + 0.5) * 2 ** -23;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const c = counter + i;
    const r = philoxCpu([c % 2 ** 32, Math.floor(c / 2 ** 32), 0, 0], split(seed));
    out[i] = kind === "uniform" ? unit(r[0]) : Math.sqrt(-2 * Math.log(unit(r[0]))) * Math.cos(2 * Math.PI * unit(r[1]));
  }
  return out;
}
