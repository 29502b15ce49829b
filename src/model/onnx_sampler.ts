// The whole rollout sampler as one ONNX model: prefix, K denoising steps (ODE, with flow_sde or
// flow_noise exploration at the steps `step_mask` marks), chunk-level log-prob, entropy and value.
// On a CPU-only machine ONNX Runtime runs it far faster than SwiftShader; PPO's updates stay on
// WebGPU and the rollout model is re-exported from the new weights after each update.
import { timeGrid, stepWeights } from "./flow.ts";
import type { Stats } from "./checkpoint.ts";
import { NOISE_STD_RANGE, type ModelConfig } from "./config.ts";
import { Builder, embedPrefix, expertVelocity, stateToken, suffixBias } from "./onnx_export.ts";
import type { SamplerConfig } from "./sampler.ts";

const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

/**
 * Inputs: images uint8 [B, V, S, S, 3], tokens int64 [B, L], token_mask [B, L], raw state
 * [B, state_dim], noise x_1 [B, H, D], eps [B, K, H, D] (standard normal draws for each step),
 * step_mask [K] (1 where the step explores; all 0 for evaluation). Outputs: chain [B, K+1, H, D]
 * (normalised), log_prob [B], entropy [B], value [B].
 */
export function exportSamplerOnnx(c: ModelConfig, params: Map<string, Float32Array>, state: Stats, cfg: SamplerConfig): Uint8Array {
  const K = cfg.numSteps;
  const b = new Builder(c, params, "dexrl_sampler");
  const { g } = b;
  const { ks, vs, keyBias, batchAnd, pooled } = embedPrefix(b);
  const bias = suffixBias(b, keyBias, batchAnd);
  const stateTok = stateToken(b, g.input("state", ["batch", c.state_dim]), state);
  let x = g.input("noise", ["batch", c.horizon, c.action_dim]);
  const eps = g.input("eps", ["batch", K, c.horizon, c.action_dim]);
  const stepMask = g.input("step_mask", [K]);
  const grid = timeGrid(K);
  const HD = [-1, c.horizon, c.action_dim];

  // Σ over the executed chunk [B, chunk, envDim] → [B].
  const chunkSum = (t: string) => b.op("ReduceSum", [b.op("Slice", [t, g.ints([0, 0]), g.ints([cfg.chunk, cfg.envDim]), g.ints([1, 2])]), g.ints([1, 2])], { keepdims: { i: 0 } });
  const chain = [x];
  const logProbs: string[] = [];
  const entropies: string[] = [];
  const values: string[] = [];
  if (cfg.jointLogprob && cfg.method !== "flow_ode") logProbs.push(chunkSum(b.op("Sub", [b.op("Mul", [b.op("Mul", [x, x]), g.constant([-0.5])]), g.constant([HALF_LOG_2PI])])));
  for (let i = 0; i < K; i++) {
    const t = grid[i]!;
    const delta = t - grid[i + 1]!;
    const { velocity, actionOut } = expertVelocity(b, ks, vs, bias, stateTok, x, t);
    if (c.add_value_head) {
      const input = c.value_after_vlm ? pooled! : b.op("ReduceMean", [actionOut], { axes: { ints: [1] }, keepdims: { i: 0 } });
      values.push(b.op("Reshape", [b.linear(input, "value_head"), g.ints([-1])]));
    }
    const m = b.op("Slice", [stepMask, g.ints([i]), g.ints([i + 1])]); // [1]: 1 when this step explores
    // mean = a·x_t + b·v with (a, b) from the ODE weights, or the SDE weights where m = 1.
    const coef = (w: { w0: number; w1: number }) => [w.w0 + w.w1, w.w1 * (1 - t) - w.w0 * t] as const;
    const [aO, bO] = coef(stepWeights("flow_ode", t, delta, 0, grid));
    let mean: string;
    let std: string | undefined;
    if (cfg.method === "flow_sde") {
      const w = stepWeights("flow_sde", t, delta, cfg.noiseLevel, grid);
      const [aS, bS] = coef(w);
      const mix = (o: number, s: number) => b.op("Add", [g.constant([o]), b.op("Mul", [m, g.constant([s - o])])]);
      mean = b.op("Add", [b.op("Mul", [x, mix(aO, aS)]), b.op("Mul", [velocity, mix(bO, bS)])]);
      std = b.op("Mul", [m, g.constant([w.std])]);
    } else {
      mean = b.op("Add", [b.op("Mul", [x, g.constant([aO])]), b.op("Mul", [velocity, g.constant([bO])])]);
      if (cfg.method === "flow_noise") std = b.op("Mul", [m, noiseStd(b, actionOut)]);
    }
    if (!std) {
      x = mean;
    } else {
      const e = b.op("Reshape", [b.op("Slice", [eps, g.ints([i]), g.ints([i + 1]), g.ints([1])]), g.ints(HD)]);
      x = b.op("Add", [mean, b.op("Mul", [std, e])]);
      // log N(x; mean, σ²) where m = 1; σ' = σ + (1 − m) keeps the masked steps finite, then × m.
      const safe = b.op("Add", [std, b.op("Sub", [g.constant([1]), m])]);
      const z = b.op("Div", [b.op("Sub", [x, mean]), safe]);
      const lp = b.op("Sub", [b.op("Sub", [b.op("Mul", [b.op("Mul", [z, z]), g.constant([-0.5])]), b.op("Log", [safe])]), g.constant([HALF_LOG_2PI])]);
      logProbs.push(b.op("Mul", [chunkSum(lp), m]));
      if (cfg.method === "flow_noise") {
        const ent = b.op("Add", [b.op("Log", [safe]), g.constant([0.5 * Math.log(2 * Math.PI * Math.E)])]);
        entropies.push(b.op("Mul", [b.op("Div", [chunkSum(ent), g.constant([cfg.chunk * cfg.envDim])]), m]));
      }
    }
    chain.push(x);
  }
  const total = (ts: string[]) => ts.reduce((acc, t) => b.op("Add", [acc, t]));
  const zerosB = () => b.op("Mul", [chunkSum(chain[0]!), g.constant([0])]);
  // Non-joint: one exploring step per call, so the sum is its log-prob; joint: the mean over K + 1 terms.
  const steps = cfg.jointLogprob ? K + 1 : 1;
  const out = (name: string, value: string, dims: (number | string)[]) => {
    g.node("Identity", [value], {}, [name]);
    g.output(name, dims);
  };
  out("chain", b.op("Concat", chain.map((t) => b.op("Unsqueeze", [t, g.ints([1])])), { axis: { i: 1 } }), ["batch", K + 1, c.horizon, c.action_dim]);
  out("log_prob", logProbs.length ? b.op("Div", [total(logProbs), g.constant([steps])]) : zerosB(), ["batch"]);
  out("entropy", entropies.length ? b.op("Div", [total(entropies), g.constant([cfg.jointLogprob ? K : 1])]) : zerosB(), ["batch"]);
  out("value", values.length ? b.op("Div", [total(values), g.constant([K])]) : zerosB(), ["batch"]);
  return g.toBytes();
}

/** Flow-Noise's std head, as Policy.noiseStd. */
function noiseStd(b: Builder, actionOut: string): string {
  const { g } = b;
  const h = b.linear(b.op("Tanh", [b.linear(b.op("Tanh", [b.linear(actionOut, "noise_head.fc1")]), "noise_head.fc2")]), "noise_head.out");
  const lo = 2 * Math.log(NOISE_STD_RANGE[0]);
  const hi = 2 * Math.log(NOISE_STD_RANGE[1]);
  const logvar = b.op("Add", [b.op("Mul", [b.op("Tanh", [h]), g.constant([(hi - lo) / 2])]), g.constant([lo + (hi - lo) / 2])]);
  return b.op("Exp", [b.op("Mul", [logvar, g.constant([0.5])])]);
}
