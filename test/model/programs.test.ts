// The policy's programs (src/model/programs.ts) on both backends: the rollout sampler traced into
// ONNX against the WebGPU one on the same noise; the rollout's log-prob recomputed by the PPO program
// (ratio 1); the PPO training step (value head, flow_sde and flow_noise, the frozen prefix as inputs,
// detach_critic_input on and off) and the SFT step on the whole model: loss and every gradient on ONNX
// Runtime against WebGPU, and the loss (and a few gradients by finite differences) against the
// float64 reference; a PPO update through the Learner on both backends; and the exported ODE policy.
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { type Backend, compile, type Feeds, host, type HostTensor, traceFn } from "../../src/engine/compile.ts";
import { Learner } from "../../src/engine/learner.ts";
import { initEngine } from "../../src/engine/runtime.ts";
import { dims, type ModelConfig, parameterShapes, timeEmbeddings } from "../../src/model/config.ts";
import { timeGrid } from "../../src/model/flow.ts";
import { constantPolicy, odePolicyFn, ppoFn, prefixFn, samplerFn, sftFn, trainableNames } from "../../src/model/programs.ts";
import { type SamplerConfig, stepHost } from "../../src/model/sampler.ts";
import { loadOnnxRuntime } from "../../src/onnx/runtime.ts";
import type { PpoSettings } from "../../src/rl/loss.ts";
import { expectClose, maxDiff } from "../engine/helpers.ts";
import { gaussian, perturbedParams, tinyModel } from "./helpers.ts";
import { refExpert, refNoiseStd, refPrefix, type RefPrefix, refValue } from "./reference.ts";

// Tracing, session creation and WebGPU backward on SwiftShader can exceed bun's 5 s default.
setDefaultTimeout(120_000);

const cfg = tinyModel({ add_noise_head: true });
const d = dims(cfg);
const B = 3;
const K = 4;
const L = cfg.max_text_len;
const H = cfg.horizon;
const A = cfg.action_dim;
const W = cfg.expert_width;
const HA = H * A;
const IMG = cfg.num_images * cfg.image_size ** 2 * 3;
const shapes = parameterShapes(cfg);
const arrays = perturbedParams(cfg, 21);

const images = Uint8Array.from({ length: B * IMG }, (_, i) => (i * 29 + (i >> 6) * 7) % 256);
const ids = Int32Array.from([1, 4, 7, 2, 0, 1, 9, 2, 0, 0, 1, 3, 5, 8, 2]);
const mask = Float32Array.from(ids, (v, i) => (v !== 0 || i % 5 === 0 ? 1 : 0));
const stateN = Float32Array.from({ length: B * cfg.state_dim }, (_, i) => Math.sin(0.7 * i));
const obs = (): Feeds => ({
  images: host(images, [B, cfg.num_images, cfg.image_size, cfg.image_size, 3]),
  tokens: host(ids, [B, L]),
  token_mask: host(mask, [B, L]),
  state: host(stateN, [B, cfg.state_dim]),
});
const sampler = (over: Partial<SamplerConfig> = {}): SamplerConfig => ({ numSteps: K, method: "flow_sde", noiseLevel: 0.5, chunk: 5, envDim: 6, jointLogprob: false, detachCritic: true, ...over });
const settings: PpoSettings = { clipRatioLow: 0.2, clipRatioHigh: 0.28, valueClip: 0.2, huberDelta: 1, entropyBonus: 0.01 };
const backends: Backend[] = ["webgpu", "onnx"];
const refs = Array.from({ length: B }, (_, b) => refPrefix(cfg, arrays, images.subarray(b * IMG, (b + 1) * IMG), ids.subarray(b * L, (b + 1) * L), mask.subarray(b * L, (b + 1) * L)));

beforeAll(async () => {
  await initEngine();
});

/** The sampler's inputs: seeded x_1 and eps, the K steps' weights with `explore` marking stochastic ones. */
function samplerFeeds(sc: SamplerConfig, explore: boolean[], seed: number): Feeds {
  const g = gaussian(seed);
  const h = stepHost(sc, W, Array.from({ length: K }, (_, i) => i), explore);
  return {
    ...obs(),
    noise: host(Float32Array.from({ length: B * HA }, g), [B, H, A]),
    eps: host(Float32Array.from({ length: K * B * HA }, g), [K, B, H, A]),
    step_a: host(h.a, [K]),
    step_b: host(h.b, [K]),
    step_std: host(h.std, [K]),
    step_explore: host(h.explore, [K]),
  };
}

async function run(name: string, fn: Parameters<typeof compile>[1], backend: Backend, feeds: Feeds) {
  const program = compile(name, fn, backend);
  try {
    return await program.run(feeds);
  } finally {
    await program.release();
  }
}

/** The stored prefix (prefixFn's outputs on ONNX Runtime) as PPO program inputs. */
async function storedPrefix(c: ModelConfig = cfg, a = arrays): Promise<Feeds> {
  const out = await run("prefix", prefixFn(constantPolicy(c, a)), "onnx", obs());
  const f: Feeds = { key_bias: host(out.key_bias!, [B, 1, 1, d.prefixLen]) };
  if (out.pooled) f.pooled = host(out.pooled, [B, c.width]);
  for (let l = 0; l < cfg.depth; l++)
    for (const kv of ["k", "v"]) f[`prefix_${kv}${l}`] = host(out[`prefix_${kv}${l}`]!, [B, cfg.heads, d.prefixLen, cfg.head_dim]);
  return f;
}

const trainable = trainableNames(cfg, true);
const paramFeeds = (names: string[], p: Map<string, Float32Array> = arrays, shp = shapes): Feeds => Object.fromEntries(names.map((n) => [`p.${n}`, host(p.get(n)!, shp.get(n)!)]));

/** A stored micro-batch: x at each example's step `own[b]` (steps of a chain) and the next, PPO's data. */
interface Stored {
  chain: Float32Array; // [B, K+1, H, A]
  own: number[][]; // per example, the grid steps of its transitions (consecutive)
  oldLogProb: Float32Array;
  oldValue: Float32Array;
  advantages: Float32Array;
  returns: Float32Array;
  weight: Float32Array;
}

function ppoFeeds(sc: SamplerConfig, s: Stored, prefix: Feeds): Feeds {
  const P = s.own[0]!.length + 1;
  const points = new Float32Array(B * P * HA);
  s.own.forEach((steps, b) => points.set(s.chain.subarray((b * (K + 1) + steps[0]!) * HA, (b * (K + 1) + steps[0]! + P) * HA), b * P * HA));
  const jSteps: number[] = [];
  for (let j = 0; j < P - 1; j++) s.own.forEach((steps) => jSteps.push(steps[j]!));
  const h = stepHost(sc, W, jSteps, jSteps.map(() => true));
  const col = (x: Float32Array) => host(x, [jSteps.length, 1, 1]);
  const vec = (x: Float32Array) => host(x, [B]);
  return {
    ...prefix,
    state: host(stateN, [B, cfg.state_dim]),
    points: host(points, [B, P, H, A]),
    step_temb: host(h.temb, [jSteps.length, W]),
    step_a: col(h.a),
    step_b: col(h.b),
    step_std: col(h.std),
    step_explore: col(h.explore),
    old_log_prob: vec(s.oldLogProb),
    old_value: vec(s.oldValue),
    advantages: vec(s.advantages),
    returns: vec(s.returns),
    weight: vec(s.weight),
  };
}

/** A chain where every step explored (so every transition is stochastic) and PPO data around it. */
async function storedBatch(sc: SamplerConfig): Promise<Stored> {
  const out = await run("sampler", samplerFn(constantPolicy(cfg, arrays), sc), "onnx", samplerFeeds(sc, Array(K).fill(true), 31));
  const own = [[2], [0], [3]];
  const chain = out.chain!;
  // The old log-probs and values a little off the current ones (the float64 reference's): ratios
  // e^{−Δ} around the clip range with both signs of advantage, and one value change beyond value_clip.
  const now = own.map(([k], b) => refTransition(sc, arrays, refs[b]!, b, k!, chain.subarray((b * (K + 1) + k!) * HA, (b * (K + 1) + k! + 1) * HA), chain.subarray((b * (K + 1) + k! + 1) * HA, (b * (K + 1) + k! + 2) * HA)));
  return {
    chain,
    own,
    oldLogProb: Float32Array.from(now, (r, b) => r.lp + [0.3, -0.05, -0.35][b]!),
    oldValue: Float32Array.from(now, (r, b) => r.value + [0.1, -0.3, 0.05][b]!),
    advantages: Float32Array.of(1.2, -0.7, 0.4),
    returns: Float32Array.of(0.8, -2.5, 0.3),
    weight: Float32Array.of(1.5, 0.75, 0), // the last slot is past its episode's end: masked
  };
}

// ---- the float64 reference of the PPO loss (RLinf's formulas written out per sample) ----

const huber = (x: number, delta: number) => (Math.abs(x) <= delta ? 0.5 * x * x : delta * (Math.abs(x) - 0.5 * delta));
const HALF_LOG_2PI_E = 0.5 * Math.log(2 * Math.PI * Math.E);

type Params = Map<string, Float32Array | Float64Array>;

/**
 * Log-prob, entropy and value of example b's transition x_s → x_{s+1}, from flow matching's formulas.
 * With detach_critic_input the value head reads the expert outputs of the fixed weights `arrays`
 * (a stop-gradient, for finite differences); its own weights are p's.
 */
function refTransition(sc: SamplerConfig, p: Params, prefix: RefPrefix, b: number, s: number, xs: ArrayLike<number>, next: ArrayLike<number>) {
  const t = 1 - s / K; // the grid linspace(1, 1/K, K), then 0
  const delta = 1 / K;
  const stateB = stateN.subarray(b * cfg.state_dim, (b + 1) * cfg.state_dim);
  const { velocity, actionOut } = refExpert(cfg, p, prefix, stateB, xs, t);
  const criticInput = sc.detachCritic ? refExpert(cfg, arrays, prefix, stateB, xs, t).actionOut : actionOut;
  // mean = w0·x̂0 + w1·x̂1 with x̂0 = x − t·v, x̂1 = x + (1 − t)·v; flow_sde: σ_t = a·√(t/(1 − t')) (t' = the next time at t = 1).
  const sigma = sc.noiseLevel * Math.sqrt(t / (1 - (t === 1 ? 1 - delta : t)));
  const w0 = 1 - (t - delta);
  const w1 = sc.method === "flow_sde" ? t - delta - (sigma * sigma * delta) / (2 * t) : t - delta;
  const std = sc.method === "flow_sde" ? Array(HA).fill(Math.sqrt(delta) * sigma) : Array.from(refNoiseStd(p, actionOut).a);
  let lp = 0;
  let ent = 0;
  for (let r = 0; r < sc.chunk; r++)
    for (let j = 0; j < sc.envDim; j++) {
      const i = r * A + j;
      const mean = w0 * (xs[i]! - t * velocity.a[i]!) + w1 * (xs[i]! + (1 - t) * velocity.a[i]!);
      lp += -Math.log(std[i]!) - 0.5 * Math.log(2 * Math.PI) - 0.5 * ((next[i]! - mean) / std[i]!) ** 2;
      ent += (HALF_LOG_2PI_E + Math.log(std[i]!)) / (sc.chunk * sc.envDim);
    }
  return { lp, ent: sc.method === "flow_noise" ? ent : 0, value: refValue(cfg, p, prefix, criticInput) };
}

function refPpo(sc: SamplerConfig, s: Stored, p: Params = arrays) {
  let policyLoss = 0;
  let valueLoss = 0;
  let entropy = 0;
  const ratio: number[] = [];
  s.own.forEach(([step], b) => {
    const x = (k: number) => s.chain.subarray((b * (K + 1) + k) * HA, (b * (K + 1) + k + 1) * HA);
    const r = refTransition(sc, p, refs[b]!, b, step!, x(step!), x(step! + 1));
    const w = s.weight[b]!;
    const a = s.advantages[b]!;
    const rt = Math.exp(r.lp - s.oldLogProb[b]!);
    ratio.push(rt);
    policyLoss += (w * Math.max(-a * rt, -a * Math.min(Math.max(rt, 1 - settings.clipRatioLow), 1 + settings.clipRatioHigh))) / B;
    const vClipped = s.oldValue[b]! + Math.min(Math.max(r.value - s.oldValue[b]!, -settings.valueClip), settings.valueClip);
    valueLoss += (w * Math.max(huber(s.returns[b]! - r.value, settings.huberDelta), huber(s.returns[b]! - vClipped, settings.huberDelta))) / B;
    entropy += (w * r.ent) / B;
  });
  return { loss: policyLoss + valueLoss - settings.entropyBonus * entropy, policyLoss, valueLoss, entropy, ratio };
}

/** Central differences of f at parameter `name`'s element i, in float64. */
function finiteDiff(f: (p: Map<string, Float64Array>) => number, name: string, i: number, h = 1e-5): number {
  const p = new Map([...arrays].map(([n, a]) => [n, Float64Array.from(a)]));
  const x = p.get(name)!;
  const x0 = x[i]!;
  x[i] = x0 + h;
  const up = f(p);
  x[i] = x0 - h;
  const down = f(p);
  return (up - down) / (2 * h);
}

// Float32 programs compared across backends: |diff| ≤ 1e-5 + 1e-5·max|want| for values and gradients;
// against the float64 reference the same (the engine's stored prefix is float32, the reference's float64).
const ATOL = 1e-5;
const RTOL = 1e-5;
/** Float32 gradients against the float64 truth (central differences), and so against each other. */
const GRAD_RTOL = 1e-4;

describe("the rollout sampler traced into ONNX", () => {
  const cases: [string, Partial<SamplerConfig>, (i: number) => boolean][] = [
    ["flow_ode (evaluation)", { method: "flow_ode" }, () => false],
    ["flow_sde, one stochastic step", { method: "flow_sde" }, (i) => i === 2],
    ["flow_sde, joint", { method: "flow_sde", jointLogprob: true }, () => true],
    ["flow_noise, one stochastic step", { method: "flow_noise" }, (i) => i === 1],
    ["flow_noise, joint", { method: "flow_noise", jointLogprob: true }, () => true],
  ];
  test.each(cases)("%s: equals the WebGPU sampler on the same inputs, and the PPO program recomputes its log-prob (ratio 1)", async (name, over, explores) => {
    const sc = sampler(over);
    const explore = Array.from({ length: K }, (_, i) => explores(i));
    const feeds = samplerFeeds(sc, explore, 4);
    const [gpu, ort] = await Promise.all(backends.map((bk) => run("sampler", samplerFn(constantPolicy(cfg, arrays), sc), bk, feeds)));
    for (const k of ["chain", "log_prob", "entropy", "value"]) expectClose(ort![k]!, gpu![k]!, `${name}: ${k} onnx vs webgpu`, ATOL, RTOL);
    if (sc.method === "flow_ode") {
      expect(Array.from(ort!.log_prob!, (x) => x === 0)).toEqual(Array(B).fill(true));
      return;
    }
    expect(Array.from(ort!.log_prob!).every((x) => x !== 0 && Number.isFinite(x))).toBe(true);
    // The PPO program on the stored chain with the rollout's log-prob as the old one: ratio 1 on both backends.
    const first = explore.indexOf(true);
    const own = Array.from({ length: B }, () => (sc.jointLogprob ? Array.from({ length: K }, (_, i) => i) : [first]));
    const stored: Stored = { chain: ort!.chain!, own, oldLogProb: ort!.log_prob!, oldValue: ort!.value!, advantages: Float32Array.of(1, -1, 0.5), returns: Float32Array.of(0, 0, 0), weight: Float32Array.of(1, 1, 1) };
    const feedsPpo = { ...paramFeeds(trainable), ...(await storedPrefix()), ...ppoFeeds(sc, stored, {}) };
    for (const backend of backends) {
      const out = await run("ppo", ppoFn(cfg, sc, settings, false), backend, feedsPpo);
      // e^{Δ log-prob} with |Δ| ≤ 1e-5 + 1e-5·|log-prob| (a sum of 30 float32 terms): |ratio − 1| ≤ 1e-4.
      expectClose(out.ratio!, Array(B).fill(1), `${name}: ${backend} PPO ratio on the rollout's own chain`, 1e-4, 0);
      // RLinf: the rollout's value is the mean over the K steps; training recomputes it at the stored steps only.
      if (sc.jointLogprob) expectClose(out.value!, ort!.value!, `${name}: ${backend} PPO value vs the rollout's`, ATOL, RTOL);
    }
  });
});

test.each([false, true])("withPrefix (PPO's stored prefix), value_after_vlm %p: the sampler's prefix outputs are prefixFn's bit for bit on ONNX Runtime, its other outputs unchanged", async (afterVlm) => {
  const c: ModelConfig = { ...cfg, value_after_vlm: afterVlm };
  const a = afterVlm ? perturbedParams(c, 22) : arrays;
  const sc = sampler();
  const feeds = samplerFeeds(sc, [false, false, true, false], 9);
  const [plain, withPrefix] = await Promise.all([false, true].map((w) => run("sampler", samplerFn(constantPolicy(c, a), sc, w), "onnx", feeds)));
  const alone = await run("prefix", prefixFn(constantPolicy(c, a)), "onnx", obs());
  expect(Object.keys(withPrefix!).sort()).toEqual([...Object.keys(plain!), ...Object.keys(alone)].sort());
  expect(Object.keys(alone)).toHaveLength(2 * c.depth + 1 + (afterVlm ? 1 : 0));
  for (const [k, v] of Object.entries(alone)) expect(maxDiff(withPrefix![k]!, v).diff, k).toBe(0);
  for (const [k, v] of Object.entries(plain!)) expect(maxDiff(withPrefix![k]!, v).diff, k).toBe(0);
});

describe("the PPO training step (ppoFn)", () => {
  const cases: [string, SamplerConfig][] = [
    ["flow_sde, detach_critic_input", sampler()],
    ["flow_sde, critic attached", sampler({ detachCritic: false })],
    ["flow_noise (noise head), detach_critic_input", sampler({ method: "flow_noise" })],
  ];
  test.each(cases)("%s, frozen prefix as inputs: loss and every gradient on ONNX equal WebGPU's, and the loss the float64 reference's", async (name, sc) => {
    const stored = await storedBatch(sc);
    const feeds = { ...paramFeeds(trainable), ...ppoFeeds(sc, stored, await storedPrefix()) };
    const [gpu, ort] = await Promise.all(backends.map((bk) => run("ppo", ppoFn(cfg, sc, settings, false), bk, feeds)));
    const grads = Object.keys(gpu!).filter((k) => k.startsWith("g."));
    expect(grads.sort()).toEqual(trainable.map((n) => `g.${n}`).sort()); // frozen prefix: no gradient outputs
    // Outputs agree to float32 rounding. Gradients are held to the bound each backend meets against the
    // float64 truth below (1e-5 + 1e-4·|fd|): the noise head's log-std term amplifies rounding, so the
    // two float32 sums (MLAS and SwiftShader, orders that depend on the CPU) can differ by ~1e-5 of
    // max|g|; where they differ most, central differences say both are right.
    for (const k of Object.keys(gpu!)) expectClose(ort![k]!, gpu![k]!, `${name}: ${k} onnx vs webgpu`, ATOL, k.startsWith("g.") ? GRAD_RTOL : RTOL);
    const ref = refPpo(sc, stored);
    expect(ref.ratio.some((r) => r > 1 + settings.clipRatioHigh || r < 1 - settings.clipRatioLow), `some ratios outside the clip range: ${ref.ratio}`).toBe(true);
    for (const bk of backends) {
      const out = bk === "onnx" ? ort! : gpu!;
      expectClose(out.loss!, [ref.loss], `${name}: ${bk} loss vs float64 reference`, ATOL, RTOL);
      expectClose(out.policy_loss!, [ref.policyLoss], `${name}: ${bk} policy loss vs float64 reference`, ATOL, RTOL);
      expectClose(out.value_loss!, [ref.valueLoss], `${name}: ${bk} value loss vs float64 reference`, ATOL, RTOL);
      expectClose(out.entropy!, [ref.entropy], `${name}: ${bk} entropy vs float64 reference`, ATOL, RTOL);
      expectClose(out.ratio!, ref.ratio, `${name}: ${bk} ratio vs float64 reference`, ATOL, RTOL);
    }
    // A few gradients against central differences of the float64 reference loss (h = 1e-5, whose own
    // error is ~1e-10 here): |diff| ≤ 1e-5 + 1e-4·|fd| for the float32 gradient.
    const probes: [string, number][] = [["value_head.weight", 3], ["expert.layers.1.fc2.weight", 17], ["action_out_proj.bias", 2], ["state_proj.weight", 9], ["action_time_mlp_in.weight", 40]];
    if (sc.method === "flow_noise") probes.push(["noise_head.out.weight", 5], ["noise_head.fc1.bias", 7]);
    // And in every gradient, the element where the two backends differ most.
    for (const k of grads) probes.push([k.slice(2), Math.max(0, maxDiff(ort![k]!, gpu![k]!).at)]); // at −1: equal everywhere
    for (const [n, i] of probes) {
      const fd = finiteDiff((p) => refPpo(sc, stored, p).loss, n, i);
      for (const bk of backends) expectClose([(bk === "onnx" ? ort! : gpu!)[`g.${n}`]![i]!], [fd], `${name}: ${bk} d loss/d ${n}[${i}] vs finite differences`, 1e-5, GRAD_RTOL);
    }
  });

  test("detach_critic_input: the value loss's gradient reaches the expert only when the critic is attached", async () => {
    const sc = sampler();
    const stored = await storedBatch(sc);
    const feeds = { ...paramFeeds(trainable), ...ppoFeeds(sc, stored, await storedPrefix()) };
    const warm = (detachCritic: boolean) => run("critic", ppoFn(cfg, { ...sc, detachCritic }, settings, true), "onnx", feeds);
    const [detached, attached] = await Promise.all([warm(true), warm(false)]);
    const nonzero = (a: Float32Array) => a.some((x) => x !== 0);
    expect(nonzero(detached["g.value_head.weight"]!)).toBe(true);
    for (const n of trainable) if (!n.startsWith("value_head")) expect([n, nonzero(detached[`g.${n}`]!)]).toEqual([n, false]);
    expect(nonzero(attached["g.expert.layers.0.q_proj.weight"]!)).toBe(true);
    expectClose(attached["g.value_head.weight"]!, detached["g.value_head.weight"]!, "value head gradient, attached vs detached", 0, 0);
  });
});

test("value_after_vlm: the stored pooled prefix feeds the value head; the critic step agrees across backends and with the float64 value", async () => {
  const vcfg: ModelConfig = { ...cfg, value_after_vlm: true };
  const varrays = perturbedParams(vcfg, 22);
  const sc = sampler({ detachCritic: false });
  const stored = await storedBatch(sc); // a chain of the other model: data like any other
  const prefix = await storedPrefix(vcfg, varrays);
  expect(prefix.pooled?.shape).toEqual([B, vcfg.width]);
  const names = trainableNames(vcfg, true);
  const feeds = { ...paramFeeds(names, varrays, parameterShapes(vcfg)), ...ppoFeeds(sc, stored, prefix) };
  const [gpu, ort] = await Promise.all(backends.map((bk) => run("critic", ppoFn(vcfg, sc, settings, true), bk, feeds)));
  for (const k of Object.keys(gpu!)) expectClose(ort![k]!, gpu![k]!, `value_after_vlm: ${k} onnx vs webgpu`, ATOL, RTOL);
  const vrefs = Array.from({ length: B }, (_, b) => refPrefix(vcfg, varrays, images.subarray(b * IMG, (b + 1) * IMG), ids.subarray(b * L, (b + 1) * L), mask.subarray(b * L, (b + 1) * L)));
  expectClose(ort!.value!, vrefs.map((r) => refValue(vcfg, varrays, r)), "value_after_vlm: value vs float64 reference", ATOL, RTOL);
  // The critic's loss reaches only the value head: the pooled prefix is a stored input.
  for (const n of names) expect([n, ort![`g.${n}`]!.some((x) => x !== 0)]).toEqual([n, n.startsWith("value_head")]);
});

describe("the SFT step (sftFn) on the whole model", () => {
  test("loss and every gradient on ONNX equal WebGPU's, and the loss the float64 reference's", async () => {
    const g = gaussian(41);
    const ts = [0.93, 0.41, 0.007];
    const actions = Float32Array.from({ length: B * HA }, () => 0.5 * g());
    const noise = Float32Array.from({ length: B * HA }, g);
    const feeds: Feeds = {
      ...paramFeeds([...shapes.keys()]),
      ...obs(),
      actions: host(actions, [B, H, A]),
      noise: host(noise, [B, H, A]),
      t: host(Float32Array.from(ts), [B, 1, 1]),
      temb: host(timeEmbeddings(ts, W), [B, W]),
    };
    const [gpu, ort] = await Promise.all(backends.map((bk) => run("sft", sftFn(cfg), bk, feeds)));
    expect(Object.keys(ort!).filter((k) => k.startsWith("g.")).length).toBe(shapes.size);
    for (const k of Object.keys(gpu!)) expectClose(ort![k]!, gpu![k]!, `sft ${k} onnx vs webgpu`, ATOL, RTOL);
    for (const n of ["embed_tokens", "vit.patch_embed.weight", "prefix.layers.0.q_proj.weight", "expert.layers.1.fc1.weight"])
      expect(ort![`g.${n}`]!.some((x) => x !== 0), `${n} learns in SFT`).toBe(true);
    // mean over B·H·A of (v(x_t, t) − (ε − a))², x_t = t·ε + (1 − t)·a (openpi).
    let loss = 0;
    for (let b = 0; b < B; b++) {
      const t = ts[b]!;
      const at = (x: Float32Array, i: number) => x[b * HA + i]!;
      const xt = Array.from({ length: HA }, (_, i) => t * at(noise, i) + (1 - t) * at(actions, i));
      const v = refExpert(cfg, arrays, refs[b]!, stateN.subarray(b * cfg.state_dim, (b + 1) * cfg.state_dim), xt, t).velocity;
      v.a.forEach((vi, i) => (loss += (vi - (at(noise, i) - at(actions, i))) ** 2 / (B * HA)));
    }
    for (const bk of backends) expectClose((bk === "onnx" ? ort : gpu)!.loss!, [loss], `sft ${bk} loss vs float64 reference`, ATOL, RTOL);
  });
});

describe("a PPO update through the Learner", () => {
  test("two micro-batches and one AdamW step from the same stored batch agree across backends", async () => {
    const sc = sampler();
    const stored = await storedBatch(sc);
    const feeds = ppoFeeds(sc, stored, await storedPrefix());
    const names = trainableNames(cfg, true);
    const lr = 1e-3;
    const result: Record<string, { params: Map<string, Float32Array>; norm: number; loss: number[]; grads: Record<string, Float32Array> }> = {};
    for (const backend of backends) {
      const learner = new Learner(backend, arrays, shapes, [
        { names: names.filter((n) => !n.startsWith("value_head")), lr },
        { names: names.filter((n) => n.startsWith("value_head")), lr: 10 * lr },
      ], { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 });
      const program = compile("ppo", ppoFn(cfg, sc, settings, false), backend);
      const loss: number[] = [];
      // The same micro-batch twice, each counting half, as the trainer accumulates a minibatch.
      for (let i = 0; i < 2; i++) loss.push((await learner.accumulate(program, feeds, 0.5)).loss![0]!);
      const grads = await program.run({ ...feeds, ...learner.paramFeeds() });
      const norm = await learner.update();
      result[backend] = { params: learner.params, norm, loss, grads };
      await program.release();
      await learner.release();
    }
    const [gpu, ort] = [result.webgpu!, result.onnx!];
    expectClose(ort.loss, gpu.loss, "micro-batch losses onnx vs webgpu", ATOL, RTOL);
    expectClose([ort.norm], [gpu.norm], "gradient norm onnx vs webgpu", ATOL, RTOL);
    expect(ort.norm, "clipping to 1 was active").toBeGreaterThan(1);
    // AdamW's first step is lr·g/(|g| + eps) per element: the two backends' float32 gradients agree
    // to 1e-5 relative (above), so their updates agree except where |g| is at rounding level, where
    // the step's sign is noise. The bound: 1e-6 + lr·min(1, 2·|Δg|/|g|) per element, with Δg the
    // gradients' measured difference; the weights themselves are compared to 1e-6 where |g| > 1e-4.
    const steady = { onnx: [] as number[], webgpu: [] as number[] };
    let tiny = 0;
    let zero = 0;
    for (const n of names) {
      const [a, b, ga, gb] = [ort.params.get(n)!, gpu.params.get(n)!, ort.grads[`g.${n}`]!, gpu.grads[`g.${n}`]!];
      const groupLr = n.startsWith("value_head") ? 10 * lr : lr;
      for (let i = 0; i < a.length; i++) {
        const g = Math.abs(gb[i]!);
        const bound = 1e-6 + groupLr * Math.min(1, (2 * Math.abs(ga[i]! - gb[i]!)) / Math.max(g, 1e-30));
        expect(Math.abs(a[i]! - b[i]!) <= bound, `${n}[${i}] after the update: onnx ${a[i]} vs webgpu ${b[i]} (gradients ${ga[i]} and ${gb[i]}), bound ${bound}`).toBe(true);
        if (g === 0) zero++;
        else if (g <= 1e-4) tiny++;
        else (steady.onnx.push(a[i]!), steady.webgpu.push(b[i]!));
      }
    }
    expectClose(steady.onnx, steady.webgpu, `weights after one update where |g| > 1e-4 (besides ${zero} with g = 0, e.g. the unused noise head, and ${tiny} with 0 < |g| ≤ 1e-4)`, 1e-6, 0);
  });
});

describe("the exported ODE policy (dexrl export: odePolicyFn traced)", () => {
  test("ONNX Runtime on the exported graph equals the WebGPU ODE sample and K float64 reference Euler steps", async () => {
    const norm = {
      state: { mean: Array.from({ length: 8 }, (_, i) => 0.1 * i), std: Array.from({ length: 8 }, (_, i) => 0.5 + 0.1 * i) },
      actions: { mean: Array.from({ length: 7 }, (_, i) => -0.05 * i), std: Array.from({ length: 7 }, (_, i) => 0.3 + 0.05 * i) },
    };
    const state = Float32Array.from({ length: B * 8 }, (_, i) => Math.sin(i));
    const noise = Float32Array.from({ length: B * HA }, gaussian(11));
    const fn = odePolicyFn(constantPolicy(cfg, arrays), K, norm);
    const feeds = { ...obs(), state: host(state, [B, 8]), noise: host(noise, [B, H, A]) };
    const shapesOf = Object.fromEntries(Object.entries(feeds).map(([k, f]: [string, HostTensor]) => [k, { shape: f.shape, dtype: f.data instanceof Uint8Array ? ("u8" as const) : f.data instanceof Int32Array ? ("i32" as const) : ("f32" as const) }]));
    const ort = await loadOnnxRuntime();
    const session = await ort.InferenceSession.create(traceFn("dexrl_policy", fn, shapesOf));
    expect(session.inputNames).toEqual(["images", "tokens", "token_mask", "state", "noise"]);
    expect(session.outputNames).toEqual(["actions"]);
    const types = { u8: "uint8", i32: "int32", f32: "float32" } as const;
    const exported = (await session.run(Object.fromEntries(Object.entries(feeds).map(([k, f]) => [k, new ort.Tensor(types[shapesOf[k]!.dtype], f.data, f.shape)])))).actions!.data as Float32Array;
    await session.release();
    const gpu = (await run("ode", fn, "webgpu", feeds)).actions!;
    expectClose(exported, gpu, "exported ODE policy vs WebGPU", ATOL, RTOL);
    const want: number[] = [];
    const grid = timeGrid(K);
    for (let b = 0; b < B; b++) {
      const sN = Array.from({ length: 8 }, (_, i) => (state[b * 8 + i]! - norm.state.mean[i]!) / norm.state.std[i]!);
      let x = Float64Array.from(noise.subarray(b * HA, (b + 1) * HA));
      for (let i = 0; i < K; i++) {
        const v = refExpert(cfg, arrays, refs[b]!, sN, x, grid[i]!).velocity;
        x = x.map((xv, j) => xv - v.a[j]! / K); // Euler: x_{t−1/K} = x_t − v/K
      }
      want.push(...Array.from(x, (xv, j) => xv * norm.actions.std[j % 7]! + norm.actions.mean[j % 7]!));
    }
    expect(Math.max(...want.map(Math.abs)), "the comparison is not between near-zero numbers").toBeGreaterThan(0.1);
    expectClose(exported, want, "exported ODE policy vs float64 reference", ATOL, RTOL);
  });
});
