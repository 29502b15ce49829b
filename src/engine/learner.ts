// Training on either backend: the parameters and AdamW moments live on the CPU; a compiled loss
// program (forward + backward, gradients as outputs `g.<name>`) runs per micro-batch and its
// gradients add up on the CPU; a compiled AdamW program (global grad-norm clipping, decoupled
// weight decay, one lr per parameter group) applies them. On ONNX Runtime both are traced once per
// shape signature; per step only the 0.3–5 M weights, moments and gradients cross (a few MB).
import { type Backend, type Compiled, type Feeds, compile, host, type TensorFn } from "./compile.ts";
import { DexrlError } from "../errors.ts";
import * as op from "./ops.ts";
import type { Tensor } from "./tensor.ts";

/** Loss programs take each trained parameter as the input `p.<name>` and give its gradient as the output `g.<name>`. */
export const PARAM_PREFIX = "p.";
export const GRAD_PREFIX = "g.";

export interface ParamGroupSpec {
  names: string[];
  lr: number;
}

export interface AdamWSettings {
  betas: [number, number];
  eps: number;
  weightDecay: number;
  /** Clip the global L2 norm of all gradients to this (PyTorch clip_grad_norm_); 0 = no clipping. */
  maxGradNorm: number;
}

export interface LearnerState {
  step: number;
  lrs: number[];
  m: Record<string, Float32Array>;
  v: Record<string, Float32Array>;
}

/**
 * AdamW in PyTorch's order: g ← g·min(1, max/(‖g‖ + 1e-6)); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 * p ← p·(1 − lr·wd) − (lr/bc1)·m / (√v/√bc2 + eps). Inputs p., g., m., v. per parameter and
 * hyper = [bc1, bc2, lr of each group]; outputs p_next., m_next., v_next. and grad_norm (before clipping).
 */
export function adamwFn(groups: ParamGroupSpec[], s: AdamWSettings): TensorFn {
  return (t) =>
    op.noGrad(() => {
      const names = groups.flatMap((g) => g.names);
      const sumsq = names.map((n) => op.sum(op.square(t[`g.${n}`]!))).reduce((a, b) => op.add(a, b));
      const norm = op.sqrt(sumsq);
      const coef = s.maxGradNorm > 0 ? op.minimum(op.div(s.maxGradNorm, op.affine(norm, 1, 1e-6)), 1) : undefined;
      const hyper = t.hyper!;
      const at = (i: number) => op.slice(hyper, 0, i, i + 1);
      const bc1 = at(0);
      const sqrtBc2 = op.sqrt(at(1));
      const out: Record<string, Tensor> = { grad_norm: norm };
      groups.forEach((g, gi) => {
        const lr = at(2 + gi);
        const stepSize = op.div(lr, bc1);
        const decay = op.affine(op.scale(lr, s.weightDecay), -1, 1);
        for (const n of g.names) {
          const grad = coef ? op.mul(t[`g.${n}`]!, coef) : t[`g.${n}`]!;
          const m = op.add(op.scale(t[`m.${n}`]!, s.betas[0]), op.scale(grad, 1 - s.betas[0]));
          const v = op.add(op.scale(t[`v.${n}`]!, s.betas[1]), op.scale(op.square(grad), 1 - s.betas[1]));
          const denom = op.add(op.div(op.sqrt(v), sqrtBc2), s.eps);
          out[`p_next.${n}`] = op.sub(op.mul(t[`p.${n}`]!, decay), op.mul(op.div(m, denom), stepSize));
          out[`m_next.${n}`] = m;
          out[`v_next.${n}`] = v;
        }
      });
      return out;
    });
}

export class Learner {
  readonly params: Map<string, Float32Array>;
  private readonly shapes: Map<string, number[]>;
  private readonly grads = new Map<string, Float32Array>();
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  private readonly optimizer: Compiled;
  step = 0;

  constructor(
    readonly backend: Backend,
    params: Map<string, Float32Array>,
    shapes: Map<string, number[]>,
    readonly groups: ParamGroupSpec[],
    private readonly settings: AdamWSettings,
  ) {
    this.params = new Map([...params].map(([n, a]) => [n, Float32Array.from(a)]));
    this.shapes = shapes;
    for (const n of this.trainable()) {
      const size = this.params.get(n)!.length;
      this.grads.set(n, new Float32Array(size));
      this.m.set(n, new Float32Array(size));
      this.v.set(n, new Float32Array(size));
    }
    this.optimizer = compile("adamw", adamwFn(groups, settings), backend, { spin: true });
  }

  trainable(): string[] {
    return this.groups.flatMap((g) => g.names);
  }

  /** The trainable parameters as program inputs `p.<name>`. */
  paramFeeds(): Feeds {
    const f: Feeds = {};
    for (const n of this.trainable()) f[PARAM_PREFIX + n] = host(this.params.get(n)!, this.shapes.get(n)!);
    return f;
  }

  /**
   * Runs a loss program on `feeds` plus the parameters, adds scale × its gradients to the
   * accumulated ones, and returns its other outputs.
   */
  async accumulate(program: Compiled, feeds: Feeds, scale = 1): Promise<Record<string, Float32Array>> {
    const out = await program.run({ ...feeds, ...this.paramFeeds() });
    const rest: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(out)) {
      if (!k.startsWith(GRAD_PREFIX)) {
        rest[k] = v;
        continue;
      }
      const acc = this.grads.get(k.slice(GRAD_PREFIX.length));
      if (!acc) continue; // a parameter this learner does not train
      for (let i = 0; i < acc.length; i++) acc[i] += scale * v[i]!;
    }
    return rest;
  }

  /** One AdamW update from the accumulated gradients, which are then cleared. Returns the gradient norm. */
  async update(): Promise<number> {
    this.step++;
    const [b1, b2] = this.settings.betas;
    const feeds: Feeds = { hyper: host(Float32Array.from([1 - b1 ** this.step, 1 - b2 ** this.step, ...this.groups.map((g) => g.lr)]), [2 + this.groups.length]) };
    for (const n of this.trainable()) {
      const shape = this.shapes.get(n)!;
      feeds[`p.${n}`] = host(this.params.get(n)!, shape);
      feeds[`g.${n}`] = host(this.grads.get(n)!, shape);
      feeds[`m.${n}`] = host(this.m.get(n)!, shape);
      feeds[`v.${n}`] = host(this.v.get(n)!, shape);
    }
    const out = await this.optimizer.run(feeds);
    for (const n of this.trainable()) {
      this.params.set(n, Float32Array.from(out[`p_next.${n}`]!));
      this.m.set(n, Float32Array.from(out[`m_next.${n}`]!));
      this.v.set(n, Float32Array.from(out[`v_next.${n}`]!));
      this.grads.get(n)!.fill(0);
    }
    return out.grad_norm![0]!;
  }

  state(): LearnerState {
    return { step: this.step, lrs: this.groups.map((g) => g.lr), m: Object.fromEntries(this.m), v: Object.fromEntries(this.v) };
  }

  loadState(s: LearnerState): void {
    this.step = s.step;
    for (const n of this.trainable()) {
      const m = s.m[n];
      const v = s.v[n];
      if (!m || !v) throw new DexrlError(`The optimizer state has no AdamW moments for parameter ${n}, which this run trains; it was saved for another set of trained parameters.`, 2);
      this.m.set(n, Float32Array.from(m));
      this.v.set(n, Float32Array.from(v));
    }
  }

  async release(): Promise<void> {
    await this.optimizer.release();
  }
}
