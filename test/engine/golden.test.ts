// The policy's real blocks against PyTorch goldens (scripts/golden/engine_golden.py): the prefix
// (patchify, the LayerNorm ViT, the RMSNorm prefix layers with a padding bias, the pooled output) and
// the action expert (time MLP, block-causal attention to cached prefix K/V), values and every
// gradient, run through src/model/policy.ts on WebGPU and traced into ONNX; the float64 reference
// of test/model/reference.ts against the same goldens; AdamW against PyTorch is in learner.test.ts.
import { beforeAll, describe, expect, test } from "bun:test";
import golden from "../fixtures/gpu/golden.json";
import { type Backend, compile, type Feeds, host, type TensorFn } from "../../src/engine/compile.ts";
import * as op from "../../src/engine/ops.ts";
import { initEngine } from "../../src/engine/runtime.ts";
import { Tensor } from "../../src/engine/tensor.ts";
import { dims, type ModelConfig, parameterShapes } from "../../src/model/config.ts";
import { Policy } from "../../src/model/policy.ts";
import { type M, refExpert, refPrefix, type RefPrefix } from "../model/reference.ts";
import { expectClose, maxDiff } from "./helpers.ts";

const c = golden.config as ModelConfig;
const d = dims(c);
const shapes = parameterShapes(c);
const params = new Map(Object.entries(golden.params).map(([n, v]) => [n, Float32Array.from(v)]));
const G = golden.prefix;
const E = golden.expert;
const { B } = G;
const H = c.horizon;
const A = c.action_dim;
const kvShape = [B, c.heads, d.prefixLen, c.head_dim];
/**
 * Float32 against float64: |diff| ≤ 1e-6 + 1e-5·max|want| + 4·(PyTorch float32's own max error on
 * the same quantity, from the fixture). The last term follows the conditioning: the ViT's gradients
 * sum many terms that cancel, and float32 PyTorch is itself off by up to 1.4e-4 on them.
 */
function close(got: ArrayLike<number>, want: number[], f32err: number | undefined, label: string): void {
  if (f32err === undefined) throw new Error(`the golden has no float32 error for ${label}`);
  expectClose(got, want, `${label} (PyTorch float32 is off by ${f32err.toExponential(2)})`, 1e-6 + 4 * f32err, 1e-5);
}

beforeAll(async () => {
  await initEngine();
});

/** The named parameters as program inputs `p.<name>`, made trainable inside the program. */
function paramFeeds(names: string[]): Feeds {
  return Object.fromEntries(names.map((n) => [`p.${n}`, host(params.get(n)!, shapes.get(n)!)]));
}
function policyOf(t: Record<string, Tensor>): Policy {
  const ps = new Map<string, Tensor>();
  for (const [k, v] of Object.entries(t))
    if (k.startsWith("p.")) {
      v.requiresGrad = true;
      ps.set(k.slice(2), v);
    }
  return Policy.fromTensors(c, ps);
}
const grads = (policy: Policy, out: Record<string, Tensor>) => {
  for (const [n, p] of policy.params) out[`g.${n}`] = p.grad ?? op.scale(p, 0);
  return out;
};

/** Σ_l (K_l·wK_l + V_l·wV_l) + pooled·wP through Policy.embedPrefix, and its gradients. */
const prefixLoss: TensorFn = (t) => {
  const policy = policyOf(t);
  const pre = policy.embedPrefix(t.images!, t.tokens!, t.token_mask!);
  let loss = op.sum(op.mul(pre.pooled!, t.w_pooled!));
  const out: Record<string, Tensor> = { pooled: op.detach(pre.pooled!) };
  for (let l = 0; l < c.depth; l++) {
    loss = op.add(loss, op.add(op.sum(op.mul(pre.k[l]!, t[`w_k${l}`]!)), op.sum(op.mul(pre.v[l]!, t[`w_v${l}`]!))));
    out[`k${l}`] = op.detach(pre.k[l]!);
    out[`v${l}`] = op.detach(pre.v[l]!);
  }
  op.backward(loss);
  return grads(policy, { ...out, loss });
};

function prefixFeeds(): Feeds {
  const f: Feeds = {
    ...paramFeeds(Object.keys(G.grads)),
    images: host(Uint8Array.from(G.images), [B, c.num_images, c.image_size, c.image_size, 3]),
    tokens: host(Int32Array.from(G.ids), [B, c.max_text_len]),
    token_mask: host(Float32Array.from(G.tokenMask), [B, c.max_text_len]),
    w_pooled: host(Float32Array.from(G.wPooled), [B, c.width]),
  };
  for (let l = 0; l < c.depth; l++) {
    f[`w_k${l}`] = host(Float32Array.from(G.wK[l]!), kvShape);
    f[`w_v${l}`] = host(Float32Array.from(G.wV[l]!), kvShape);
  }
  return f;
}

/** Σ velocity·wOut through Policy.expert on given prefix K/V, and the gradients of it all. */
const expertLoss: TensorFn = (t) => {
  const policy = policyOf(t);
  const k = Array.from({ length: c.depth }, (_, l) => t[`prefix_k${l}`]!);
  const v = Array.from({ length: c.depth }, (_, l) => t[`prefix_v${l}`]!);
  for (const x of [...k, ...v, t.state!, t.xt!]) x.requiresGrad = true;
  const prefix = { k, v, keyBias: op.reshape(op.affine(t.key_valid!, 1e9, -1e9), [B, 1, 1, d.prefixLen]) };
  const { velocity } = policy.expert(prefix, policy.suffixBias(prefix), policy.stateToken(t.state!), t.xt!, t.temb!);
  const loss = op.sum(op.mul(velocity, t.w_out!));
  op.backward(loss);
  const out: Record<string, Tensor> = { loss, velocity: op.detach(velocity), dxt: t.xt!.grad!, dstate: t.state!.grad! }; // the golden's output names
  for (let l = 0; l < c.depth; l++) {
    out[`dk${l}`] = k[l]!.grad!;
    out[`dv${l}`] = v[l]!.grad!;
  }
  return grads(policy, out);
};

function expertFeeds(): Feeds {
  const f: Feeds = {
    ...paramFeeds(Object.keys(E.grads)),
    key_valid: host(Float32Array.from(E.keyValid), [B, d.prefixLen]),
    state: host(Float32Array.from(E.state), [B, c.state_dim]),
    xt: host(Float32Array.from(E.xt), [B, H, A]),
    temb: host(Float32Array.from(E.temb), [B, c.expert_width]),
    w_out: host(Float32Array.from(E.wOut), [B, H, A]),
  };
  for (let l = 0; l < c.depth; l++) {
    f[`prefix_k${l}`] = host(Float32Array.from(E.prefixK[l]!), kvShape);
    f[`prefix_v${l}`] = host(Float32Array.from(E.prefixV[l]!), kvShape);
  }
  return f;
}

test("the goldens cover the policy's parameter table exactly", () => {
  expect([...params.keys()].sort()).toEqual([...shapes.keys()].sort());
  for (const [n, s] of shapes) expect([n, params.get(n)!.length]).toEqual([n, s.reduce((a, b) => a * b, 1)]);
  expect(Object.keys(G.grads).length + Object.keys(E.grads).length + 2).toBe(shapes.size); // + value_head weight and bias
});

describe.each(["webgpu", "onnx"] as Backend[])("policy blocks vs PyTorch on %s", (backend) => {
  test("prefix: K/V, pooled output and every prefix parameter's gradient", async () => {
    const fn = compile("golden_prefix", prefixLoss, backend);
    const got = await fn.run(prefixFeeds());
    await fn.release();
    close(got.loss!, [G.loss], G.f32err.loss, `${backend} prefix loss`);
    for (const [k, want] of Object.entries(G.outputs)) close(got[k]!, want, (G.f32err as Record<string, number>)[k], `${backend} ${k}`);
    for (const [n, want] of Object.entries(G.grads)) close(got[`g.${n}`]!, want, (G.f32err as Record<string, number>)[`g.${n}`], `${backend} d/d${n}`);
  }, 60_000);

  test("expert: velocity and the gradients of every expert parameter, x_t, the state and the prefix K/V", async () => {
    const fn = compile("golden_expert", expertLoss, backend);
    const got = await fn.run(expertFeeds());
    await fn.release();
    close(got.loss!, [E.loss], E.f32err.loss, `${backend} expert loss`);
    for (const [k, want] of Object.entries(E.outputs)) close(got[k]!, want, (E.f32err as Record<string, number>)[k], `${backend} ${k}`);
    for (const [n, want] of Object.entries(E.grads)) close(got[`g.${n}`]!, want, (E.f32err as Record<string, number>)[`g.${n}`], `${backend} d/d${n}`);
  }, 60_000);
});

describe("the float64 reference (test/model/reference.ts) vs PyTorch", () => {
  const S = c.image_size;
  const IMG = c.num_images * S * S * 3;
  const L = c.max_text_len;
  /** [h, T, hd] of example b → the reference's [T, h·hd]. */
  const toRef = (x: ArrayLike<number>, b: number): M => {
    const m: M = { rows: d.prefixLen, cols: d.attnDim, a: new Float64Array(d.prefixLen * d.attnDim) };
    for (let h = 0; h < c.heads; h++)
      for (let t = 0; t < d.prefixLen; t++)
        for (let j = 0; j < c.head_dim; j++) m.a[t * d.attnDim + h * c.head_dim + j] = x[((b * c.heads + h) * d.prefixLen + t) * c.head_dim + j]!;
    return m;
  };

  test("prefix K/V and pooled output agree to float64 precision", () => {
    const diff = { k: 0, pooled: 0 };
    for (let b = 0; b < B; b++) {
      const r = refPrefix(c, params, Uint8Array.from(G.images).subarray(b * IMG, (b + 1) * IMG), G.ids.slice(b * L, (b + 1) * L), G.tokenMask.slice(b * L, (b + 1) * L));
      for (let l = 0; l < c.depth; l++) {
        diff.k = Math.max(diff.k, maxDiff(r.k[l]!.a, toRef(G.outputs[`k${l}` as "k0"], b).a).diff, maxDiff(r.v[l]!.a, toRef(G.outputs[`v${l}` as "v0"], b).a).diff);
      }
      diff.pooled = Math.max(diff.pooled, maxDiff(r.pooled!, G.outputs.pooled.slice(b * c.width, (b + 1) * c.width)).diff);
    }
    // The goldens are written with 10 significant digits.
    expect(diff.k, `reference prefix K/V vs torch: max diff ${diff.k}`).toBeLessThan(1e-8);
    expect(diff.pooled, `reference pooled vs torch: max diff ${diff.pooled}`).toBeLessThan(1e-8);
  });

  test("expert velocity agrees to float64 precision", () => {
    let diff = 0;
    const HA = H * A;
    for (let b = 0; b < B; b++) {
      const prefix: RefPrefix = {
        k: E.prefixK.map((x) => toRef(Float32Array.from(x), b)),
        v: E.prefixV.map((x) => toRef(Float32Array.from(x), b)),
        keyMask: E.keyValid.slice(b * d.prefixLen, (b + 1) * d.prefixLen).map((v) => v === 1),
      };
      const temb = Float32Array.from(E.temb).subarray(b * c.expert_width, (b + 1) * c.expert_width);
      const v = refExpert(c, params, prefix, Float32Array.from(E.state).subarray(b * c.state_dim, (b + 1) * c.state_dim), Float32Array.from(E.xt).subarray(b * HA, (b + 1) * HA), temb).velocity;
      diff = Math.max(diff, maxDiff(v.a, E.outputs.velocity.slice(b * HA, (b + 1) * HA)).diff);
    }
    expect(diff, `reference velocity vs torch: max diff ${diff}`).toBeLessThan(1e-8);
  });
});
