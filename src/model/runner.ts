// The policy as rollouts and evaluation use it: raw observations (uint8 camera images, instruction
// strings, 8-D states) in; the executed, unnormalised action chunk plus what PPO stores (chain,
// stochastic step, log-prob, value) out. Tokenises, normalises, draws the noise on the CPU and runs
// the sampler program (programs.ts) on the chosen backend; one round trip per call.
import { type Backend, type Compiled, compile, host } from "../engine/compile.ts";
import { Rng as CpuRng } from "../util/random.ts";
import type { NormStats } from "./checkpoint.ts";
import type { ModelConfig } from "./config.ts";
import { normalize, unnormalize } from "./normalize.ts";
import { Policy } from "./policy.ts";
import { constantPolicy, samplerFn } from "./programs.ts";
import { stepHost, type SamplerConfig } from "./sampler.ts";
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
  /** The stochastic step, or −1 when none (evaluation) or all (joint log-probs) explored. */
  stepIndex: number;
  logProb: Float32Array;
  entropy: Float32Array;
  value: Float32Array;
  /** With `withPrefix`: prefixFn's outputs for the batch (name → [B, …]). */
  prefix?: Record<string, Float32Array>;
}

/**
 * Where a backend setting (`auto`, `webgpu`, `onnx`) runs: `auto` takes ONNX Runtime on a software
 * adapter (SwiftShader is ~3 % of the CPU's arithmetic) and WebGPU on a real GPU.
 */
export function resolveBackend(setting: "auto" | "webgpu" | "onnx", softwareAdapter: boolean): Backend {
  if (setting === "auto") return softwareAdapter ? "onnx" : "webgpu";
  return setting;
}

/** Tokens [B, L] and the 1/0 token mask [B, L] of a batch of instructions. */
export function tokenize(tokenizer: Tokenizer, instructions: string[]): { ids: Int32Array; mask: Float32Array } {
  const L = tokenizer.maxLength;
  const ids = new Int32Array(instructions.length * L);
  const mask = new Float32Array(instructions.length * L);
  instructions.forEach((text, b) => {
    const e = tokenizer.encode(text);
    ids.set(e.ids, b * L);
    mask.set(e.mask, b * L);
  });
  return { ids, mask };
}

export class PolicyRunner {
  private program: Compiled;
  private device: Policy | undefined;
  private rng: CpuRng;

  private constructor(
    readonly c: ModelConfig,
    readonly normStats: NormStats,
    readonly tokenizer: Tokenizer,
    readonly sampler: SamplerConfig,
    readonly backend: Backend,
    params: Map<string, Float32Array>,
    seed: number,
    private readonly withPrefix: boolean,
  ) {
    this.rng = new CpuRng(seed);
    this.program = this.build(params);
  }

  /**
   * `params` are the weights the sampler starts from (syncWeights replaces them after an update);
   * `withPrefix`: each call also returns the prefix outputs (PPO's stored frozen prefix).
   */
  static create(o: { config: ModelConfig; params: Map<string, Float32Array>; normStats: NormStats; tokenizer: Tokenizer; sampler: SamplerConfig; seed: number; backend: Backend; withPrefix?: boolean }): PolicyRunner {
    return new PolicyRunner(o.config, o.normStats, o.tokenizer, o.sampler, o.backend, o.params, o.seed, o.withPrefix ?? false);
  }

  private build(params: Map<string, Float32Array>): Compiled {
    if (this.backend === "onnx") return compile("dexrl_sampler", samplerFn(constantPolicy(this.c, params), this.sampler, this.withPrefix), "onnx");
    this.device = Policy.fromArrays(this.c, params, false);
    const device = this.device;
    return compile("dexrl_sampler", samplerFn(() => device, this.sampler, this.withPrefix), "webgpu");
  }

  /** The new weights after an update: the ONNX sampler is traced again, WebGPU's tensors overwritten. */
  async syncWeights(params: Map<string, Float32Array>): Promise<void> {
    if (this.device) {
      for (const [name, t] of this.device.params) t.write(params.get(name)!);
      return;
    }
    await this.program.release();
    this.program = this.build(params);
  }

  /** Restarts the noise stream (per global step, so a resumed run draws what the uninterrupted one did). */
  reseed(seed: number): void {
    this.rng = new CpuRng(seed);
  }

  /** One policy call: `train` explores with the configured noise method (one stochastic step per call unless joint); otherwise the ODE. */
  async act(obs: Observation, train: boolean): Promise<Act> {
    const { c, sampler: cfg } = this;
    const B = obs.instructions.length;
    const K = cfg.numSteps;
    const HD = c.horizon * c.action_dim;
    const explore = train && cfg.method !== "flow_ode";
    // One stochastic step per call, shared by the batch (RLinf's hybrid ODE–SDE rollout).
    const stepIndex = explore && !cfg.jointLogprob ? Math.floor(this.rng.next() * K) : -1;
    const steps = stepHost(cfg, c.expert_width, Array.from({ length: K }, (_, i) => i), Array.from({ length: K }, (_, i) => explore && (cfg.jointLogprob || i === stepIndex)));
    const normal = (n: number) => Float32Array.from({ length: n }, () => this.rng.normal());
    const { ids, mask } = tokenize(this.tokenizer, obs.instructions);
    const out = await this.program.run({
      images: host(obs.images, [B, c.num_images, c.image_size, c.image_size, 3]),
      tokens: host(ids, [B, c.max_text_len]),
      token_mask: host(mask, [B, c.max_text_len]),
      state: host(normalize(obs.states, this.normStats.state), [B, c.state_dim]),
      noise: host(normal(B * HD), [B, c.horizon, c.action_dim]),
      eps: host(explore ? normal(K * B * HD) : new Float32Array(K * B * HD), [K, B, c.horizon, c.action_dim]),
      step_a: host(steps.a, [K]),
      step_b: host(steps.b, [K]),
      step_std: host(steps.std, [K]),
      step_explore: host(steps.explore, [K]),
    });
    const { chain, log_prob, entropy, value, ...prefix } = out;
    return { chain: chain!, stepIndex, logProb: log_prob!, entropy: entropy!, value: value!, actions: this.executed(chain!, B), ...(this.withPrefix ? { prefix } : {}) };
  }

  /** The first `chunk` actions × `envDim` dims of x_0, unnormalised: [B, chunk, envDim]. */
  private executed(chain: Float32Array, B: number): Float32Array {
    const { horizon: H, action_dim: D } = this.c;
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
    await this.program.release();
    if (this.device) for (const t of this.device.params.values()) t.dispose();
  }
}
