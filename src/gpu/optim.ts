// AdamW (Loshchilov & Hutter; PyTorch's update order) with parameter groups, global grad-norm
// clipping computed on the device, and a state that saves and restores bit for bit.
import { GRID_BUILTINS, dispatch, flatIndex, grid, kernel, upload } from "./runtime.ts";
import { Tensor, keep } from "./tensor.ts";
import { zeros } from "./kernels/layout.ts";

export interface ParamGroup {
  /** Named parameters, e.g. from ParamStore.trainable(prefix). */
  params: [string, Tensor][];
  lr: number;
  weightDecay?: number;
}

export interface AdamWOptions {
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** Clip the global L2 norm of all gradients to this (PyTorch clip_grad_norm_); 0 = no clipping. */
  maxGradNorm?: number;
}

export interface AdamWState {
  step: number;
  lrs: number[];
  /** First and second moments by parameter name. */
  m: Record<string, Float32Array>;
  v: Record<string, Float32Array>;
}

const PARTIALS = 64; // per-parameter partial sums of squares, one per invocation of a single workgroup

export class AdamW {
  readonly groups: { params: [string, Tensor][]; lr: number; weightDecay: number }[];
  readonly betas: [number, number];
  readonly eps: number;
  readonly maxGradNorm: number;
  step = 0;
  private m = new Map<Tensor, Tensor>();
  private v = new Map<Tensor, Tensor>();
  /** [t, ‖g‖, clip coefficient, lr of each group]: read by the kernels so no uniform changes per step. */
  private hyper: Tensor;
  private partials: Tensor;

  constructor(groups: ParamGroup[], o: AdamWOptions = {}) {
    this.betas = o.betas ?? [0.9, 0.999];
    this.eps = o.eps ?? 1e-8;
    this.maxGradNorm = o.maxGradNorm ?? 0;
    this.groups = groups.map((g) => ({ params: g.params, lr: g.lr, weightDecay: g.weightDecay ?? o.weightDecay ?? 0.01 }));
    const n = this.groups.reduce((s, g) => s + g.params.length, 0);
    this.hyper = keep(Tensor.empty([3 + this.groups.length]));
    this.partials = keep(Tensor.empty([Math.max(1, n) * PARTIALS]));
  }

  /** Parameters in group order. */
  private *all(): Generator<{ name: string; p: Tensor; g: number; slot: number }> {
    let slot = 0;
    for (let g = 0; g < this.groups.length; g++) for (const [name, p] of this.groups[g]!.params) yield { name, p, g, slot: slot++ };
  }

  /**
   * One update from the accumulated gradients (parameters without a gradient are left alone).
   * Returns the device scalar [‖g‖] before clipping; read it once per step for logging.
   */
  update(): Tensor {
    this.step++;
    upload(this.hyper.buf, Float32Array.from([this.step, 0, 1, ...this.groups.map((g) => g.lr)]));
    const sumsq = kernel({
      name: "adamw_sumsq",
      bindings: [{ name: "G", access: "r" }, { name: "S", access: "w" }],
      params: ["n:u32", "slot:u32"],
      body: `
@compute @workgroup_size(${PARTIALS})
fn main(@builtin(local_invocation_id) lid: vec3u) {
  var s = 0.0;
  for (var i = lid.x; i < P.n; i += ${PARTIALS}u) { let g = G[i]; s += g * g; }
  S[P.slot * ${PARTIALS}u + lid.x] = s;
}`,
    });
    let count = 0;
    for (const { p, slot } of this.all()) {
      count = slot + 1;
      if (p.grad) dispatch(sumsq, [p.grad.buf, this.partials.buf], [p.size, slot], [1]);
      else zeroSlot(this.partials, slot);
    }
    const coef = kernel({
      name: "adamw_clip",
      bindings: [{ name: "S", access: "r" }, { name: "H", access: "w" }],
      params: ["n:u32", "maxNorm:f32"],
      body: `
@compute @workgroup_size(1)
fn main() {
  var s = 0.0;
  for (var i = 0u; i < P.n; i++) { s += S[i]; }
  let norm = sqrt(s);
  H[1] = norm;
  H[2] = select(1.0, min(1.0, P.maxNorm / (norm + 1e-6)), P.maxNorm > 0.0);
}`,
    });
    dispatch(coef, [this.partials.buf, this.hyper.buf], [count * PARTIALS, this.maxGradNorm], [1]);

    const adam = kernel({
      name: "adamw_update",
      bindings: [{ name: "Pw", access: "w" }, { name: "G", access: "r" }, { name: "M", access: "w" }, { name: "V", access: "w" }, { name: "H", access: "r" }],
      params: ["n:u32", "group:u32", "b1:f32", "b2:f32", "eps:f32", "wd:f32"],
      body: `
@compute @workgroup_size(64)
fn main(${GRID_BUILTINS}) {
  let i = ${flatIndex()};
  if (i >= P.n) { return; }
  let t = H[0];
  let lr = H[3u + P.group];
  let g = G[i] * H[2];
  let m = P.b1 * M[i] + (1.0 - P.b1) * g;
  let v = P.b2 * V[i] + (1.0 - P.b2) * g * g;
  M[i] = m;
  V[i] = v;
  let bc1 = 1.0 - pow(P.b1, t);
  let bc2 = 1.0 - pow(P.b2, t);
  let p = Pw[i] * (1.0 - lr * P.wd);
  Pw[i] = p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + P.eps);
}`,
    });
    for (const { p, g } of this.all()) {
      if (!p.grad) continue;
      const m = this.moment(this.m, p);
      const v = this.moment(this.v, p);
      const grp = this.groups[g]!;
      dispatch(adam, [p.buf, p.grad.buf, m.buf, v.buf, this.hyper.buf], [p.size, g, this.betas[0], this.betas[1], this.eps, grp.weightDecay], grid(p.size));
    }
    return this.hyper;
  }

  /** The global gradient norm of the last update (before clipping). */
  async gradNorm(): Promise<number> {
    return (await this.hyper.read())[1]!;
  }

  /** Drops every gradient (the buffers go back to the pool). */
  zeroGrad(): void {
    for (const { p } of this.all()) {
      p.grad?.dispose();
      p.grad = undefined;
    }
  }

  private moment(map: Map<Tensor, Tensor>, p: Tensor): Tensor {
    let t = map.get(p);
    if (!t) map.set(p, (t = keep(zeros(p.shape))));
    return t;
  }

  async state(): Promise<AdamWState> {
    const s: AdamWState = { step: this.step, lrs: this.groups.map((g) => g.lr), m: {}, v: {} };
    for (const { name, p } of this.all()) {
      const m = this.m.get(p);
      const v = this.v.get(p);
      if (m && v) {
        s.m[name] = await m.read();
        s.v[name] = await v.read();
      }
    }
    return s;
  }

  loadState(s: AdamWState): void {
    this.step = s.step;
    s.lrs.forEach((lr, g) => this.groups[g] && (this.groups[g]!.lr = lr));
    for (const { name, p } of this.all()) {
      const m = s.m[name];
      const v = s.v[name];
      if (!m || !v) continue;
      this.moment(this.m, p).write(m);
      this.moment(this.v, p).write(v);
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values(), this.hyper, this.partials]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}

function zeroSlot(partials: Tensor, slot: number): void {
  const k = kernel({
    name: "adamw_zero_slot",
    bindings: [{ name: "S", access: "w" }],
    params: ["slot:u32"],
    body: `
@compute @workgroup_size(${PARTIALS})
fn main(@builtin(local_invocation_id) lid: vec3u) { S[P.slot * ${PARTIALS}u + lid.x] = 0.0; }`,
  });
  dispatch(k, [partials.buf], [slot], [1]);
}
