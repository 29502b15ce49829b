// The policy as rollouts and evaluation use it: raw observations (uint8 camera images, instruction
// strings, 8-D states) in; the executed, unnormalised action chunk plus what PPO stores (chain,
// stochastic step, log-prob, value) out. Tokenises, normalises, runs the sampler on WebGPU (prefix
// there or on ONNX Runtime) or entirely on ONNX Runtime, and reads back once per call.
import type * as Ort from "onnxruntime-node";
import * as op from "../gpu/ops.ts";
import { Rng } from "../gpu/random.ts";
import { scopeAsync, Tensor } from "../gpu/tensor.ts";
import type { NormStats } from "./checkpoint.ts";
import { normalize, unnormalize } from "./normalize.ts";
import { OnnxPrefix } from "./onnx_prefix.ts";
import { exportSamplerOnnx } from "./onnx_sampler.ts";
import { loadOnnxRuntime } from "../onnx/runtime.ts";
import { Rng as CpuRng } from "../sim/math.ts";
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

/** Where a policy call runs: all on WebGPU, the prefix on ONNX Runtime, or all on ONNX Runtime. */
export type RunnerBackend = "webgpu" | "onnx-prefix" | "onnx";

/**
 * The backend that rollout.sampler_backend / rollout.prefix_backend ask for: `auto` takes ONNX
 * Runtime on a software adapter (SwiftShader), where it is far faster, and WebGPU on a real GPU.
 */
export function runnerBackend(sampler: "auto" | "webgpu" | "onnx", prefix: "webgpu" | "onnx", softwareAdapter: boolean): RunnerBackend {
  if (sampler === "onnx" || (sampler === "auto" && softwareAdapter)) return "onnx";
  return prefix === "onnx" ? "onnx-prefix" : "webgpu";
}

export class PolicyRunner {
  private onnxSampler: Ort.InferenceSession | undefined;

  private constructor(
    readonly policy: Policy,
    readonly normStats: NormStats,
    readonly tokenizer: Tokenizer,
    readonly sampler: SamplerConfig,
    readonly backend: RunnerBackend,
    private readonly rng: Rng,
    private readonly cpuRng: CpuRng,
    private readonly pickStep: () => number,
    private readonly onnxPrefix: OnnxPrefix | undefined,
  ) {}

  /**
   * `onnx-prefix` runs the (frozen) prefix in ONNX Runtime from `params`; the caller keeps those
   * equal to the policy's prefix weights (true under train_expert_only). `onnx` runs the whole
   * sampler there, from the policy's weights as of the last syncWeights().
   */
  static async create(o: {
    policy: Policy;
    normStats: NormStats;
    tokenizer: Tokenizer;
    sampler: SamplerConfig;
    seed: number;
    backend: RunnerBackend;
    params?: Map<string, Float32Array>;
  }): Promise<PolicyRunner> {
    const steps = new CpuRng(o.seed ^ 0x5bd1e995);
    // One stochastic step per call, shared by the batch (RLinf's hybrid ODE–SDE rollout).
    const pickStep = () => Math.floor(steps.next() * o.sampler.numSteps);
    const prefix = o.backend === "onnx-prefix" ? await OnnxPrefix.create(o.policy.c, o.params!) : undefined;
    const runner = new PolicyRunner(o.policy, o.normStats, o.tokenizer, o.sampler, o.backend, new Rng(o.seed), new CpuRng(o.seed), pickStep, prefix);
    if (o.backend === "onnx") await runner.syncWeights();
    return runner;
  }

  /** Re-exports the ONNX sampler from the policy's current weights (after a PPO update). */
  async syncWeights(): Promise<void> {
    if (this.backend !== "onnx") return;
    const params = new Map<string, Float32Array>();
    for (const [name, t] of this.policy.params) params.set(name, await t.read());
    const ort = await loadOnnxRuntime();
    await this.onnxSampler?.release();
    this.onnxSampler = await ort.InferenceSession.create(exportSamplerOnnx(this.policy.c, params, this.normStats.state, this.sampler), { graphOptimizationLevel: "all" });
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
    const B = obs.instructions.length;
    const { ids, mask } = this.tokens(obs.instructions);
    const out = this.onnxSampler ? await this.actOnnx(obs, ids, mask, train) : await this.actWebGpu(obs, ids, mask, train);
    return { ...out, actions: this.executed(out.chain, B) };
  }

  private async actWebGpu(obs: Observation, ids: Int32Array, mask: Uint8Array, train: boolean): Promise<Omit<Act, "actions">> {
    const c = this.policy.c;
    const B = obs.instructions.length;
    const onnxPrefix: PrefixKV | undefined = this.onnxPrefix ? await this.onnxPrefix.embedPrefix(obs.images, ids, mask, B) : undefined;
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
    return out;
  }

  private async actOnnx(obs: Observation, ids: Int32Array, mask: Uint8Array, train: boolean): Promise<Omit<Act, "actions">> {
    const c = this.policy.c;
    const { numSteps: K, method, jointLogprob } = this.sampler;
    const B = obs.instructions.length;
    const HD = c.horizon * c.action_dim;
    const explore = train && method !== "flow_ode";
    const stepIndex = explore && !jointLogprob ? this.pickStep() : -1;
    const normal = () => this.cpuRng.normal();
    const ort = await loadOnnxRuntime();
    const r = await this.onnxSampler!.run({
      images: new ort.Tensor("uint8", obs.images, [B, c.num_images, c.image_size, c.image_size, 3]),
      tokens: new ort.Tensor("int64", BigInt64Array.from(ids, (v) => BigInt(v)), [B, c.max_text_len]),
      token_mask: new ort.Tensor("float32", Float32Array.from(mask), [B, c.max_text_len]),
      state: new ort.Tensor("float32", obs.states, [B, c.state_dim]),
      noise: new ort.Tensor("float32", Float32Array.from({ length: B * HD }, normal), [B, c.horizon, c.action_dim]),
      eps: new ort.Tensor("float32", explore ? Float32Array.from({ length: B * K * HD }, normal) : new Float32Array(B * K * HD), [B, K, c.horizon, c.action_dim]),
      step_mask: new ort.Tensor("float32", Float32Array.from({ length: K }, (_, i) => (explore && (jointLogprob || i === stepIndex) ? 1 : 0)), [K]),
    });
    const f = (name: string) => r[name]!.data as Float32Array;
    return { chain: f("chain"), logProb: f("log_prob"), entropy: f("entropy"), value: f("value"), stepIndex };
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
    await this.onnxPrefix?.release();
    await this.onnxSampler?.release();
  }
}
