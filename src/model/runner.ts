// The policy as rollouts and evaluation use it: raw observations (uint8 camera images, instruction
// strings, 8-D states) in; the executed, unnormalised action chunk plus what PPO stores (chain,
// stochastic step, log-prob, value) out. Tokenises, normalises, picks the prefix backend, and reads
// back once per call.
import * as op from "../gpu/ops.ts";
import { Rng } from "../gpu/random.ts";
import { scopeAsync, Tensor } from "../gpu/tensor.ts";
import type { NormStats } from "./checkpoint.ts";
import { normalize, unnormalize } from "./normalize.ts";
import { OnnxPrefix } from "./onnx_prefix.ts";
import type { Policy, PrefixKV } from "./policy.ts";
import { context, sampleActions, type SamplerConfig } from "./sampler.ts";
import type { Tokenizer } from "./tokenizer.ts";

export interface Observation {
  /** uint8 [B, V, S, S, 3], upright images (row 0 at the top), V = the model's num_images. */
  images: Uint8Array;
  instructions: string[];
  /** [B, state_dim] raw states (grip-site position, axis-angle, finger joints). */
  states: Float32Array;
}

export interface Act {
  /** [B, chunk, envDim] actions to execute, unnormalised. */
  actions: Float32Array;
  /** [B, K+1, H, action_dim] the normalised denoising chain, for PPO. */
  chain: Float32Array;
  stepIndex: number;
  logProb: Float32Array;
  entropy: Float32Array;
  value: Float32Array;
}

export class PolicyRunner {
  private constructor(
    readonly policy: Policy,
    readonly normStats: NormStats,
    readonly tokenizer: Tokenizer,
    readonly sampler: SamplerConfig,
    private readonly rng: Rng,
    private readonly pickStep: () => number,
    private readonly onnx: OnnxPrefix | undefined,
  ) {}

  /**
   * `prefixBackend` onnx runs the (frozen) prefix in ONNX Runtime from `prefixParams`; the
   * caller must keep those equal to the policy's prefix weights (true under train_expert_only).
   */
  static async create(o: {
    policy: Policy;
    normStats: NormStats;
    tokenizer: Tokenizer;
    sampler: SamplerConfig;
    seed: number;
    prefixBackend: "webgpu" | "onnx";
    prefixParams?: Map<string, Float32Array>;
  }): Promise<PolicyRunner> {
    let s = (o.seed ^ 0x9e3779b9) >>> 0;
    const pickStep = () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s % o.sampler.numSteps; // one stochastic step per call, shared by the batch (RLinf)
    };
    const onnx = o.prefixBackend === "onnx" ? await OnnxPrefix.create(o.policy.c, o.prefixParams!) : undefined;
    return new PolicyRunner(o.policy, o.normStats, o.tokenizer, o.sampler, new Rng(o.seed), pickStep, onnx);
  }

  /** Tokens and masks of a batch of instructions. */
  tokens(instructions: string[]): { ids: Int32Array; mask: Uint8Array } {
    const L = this.tokenizer.maxLength;
    const ids = new Int32Array(instructions.length * L);
    const mask = new Uint8Array(instructions.length * L);
    instructions.forEach((text, b) => {
      const e = this.tokenizer.encode(text);
      ids.set(e.ids, b * L);
      mask.set(e.mask, b * L);
    });
    return { ids, mask };
  }

  /** One policy call: `train` explores with the configured noise method; otherwise the ODE. */
  async act(obs: Observation, train: boolean): Promise<Act> {
    const c = this.policy.c;
    const B = obs.instructions.length;
    const { ids, mask } = this.tokens(obs.instructions);
    const onnxPrefix: PrefixKV | undefined = this.onnx ? await this.onnx.embedPrefix(obs.images, ids, mask, B) : undefined;
    const stateN = normalize(obs.states, this.normStats.state);
    const out = await scopeAsync(async () => {
      const r = op.noGrad(() => {
        const prefix =
          onnxPrefix ?? this.policy.embedPrefix(Tensor.from(obs.images, [B, c.num_images, c.image_size, c.image_size, 3], "u8"), Tensor.from(ids, [B, c.max_text_len], "i32"), mask);
        const smp = sampleActions(this.policy, context(this.policy, prefix, Tensor.from(stateN, [B, c.state_dim])), this.sampler, (shape) => this.rng.normal(shape), train, this.pickStep);
        return { chain: smp.chain.read(), logProb: smp.logProb.read(), entropy: smp.entropy.read(), value: smp.value.read(), stepIndex: smp.stepIndex };
      });
      const [chain, logProb, entropy, value] = await Promise.all([r.chain, r.logProb, r.entropy, r.value]);
      return { chain, logProb, entropy, value, stepIndex: r.stepIndex };
    });
    if (onnxPrefix) for (const t of [...onnxPrefix.k, ...onnxPrefix.v, onnxPrefix.keyBias, ...(onnxPrefix.pooled ? [onnxPrefix.pooled] : [])]) t.dispose();
    return { ...out, actions: this.executed(out.chain, B) };
  }

  /** The first `chunk` actions × `envDim` dims of x_0, unnormalised: [B, chunk, envDim]. */
  private executed(chain: Float32Array, B: number): Float32Array {
    const { horizon: H, action_dim: D } = this.policy.c;
    const { chunk, envDim, numSteps: K } = this.sampler;
    const out = new Float32Array(B * chunk * envDim);
    const act = { mean: this.normStats.actions.mean.slice(0, envDim), std: this.normStats.actions.std.slice(0, envDim) };
    for (let b = 0; b < B; b++)
      for (let i = 0; i < chunk; i++) {
        const x0 = chain.subarray(((b * (K + 1) + K) * H + i) * D, ((b * (K + 1) + K) * H + i) * D + envDim);
        out.set(unnormalize(x0, act), (b * chunk + i) * envDim);
      }
    return out;
  }

  async release(): Promise<void> {
    await this.onnx?.release();
  }
}
