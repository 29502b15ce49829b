// Attention benchmark: the fused primitive against the composite matmul/mask-add/softmax/matmul path
// at the policy's expert sizes (16 envs, 4 heads, 51 suffix queries over 176 prefix + 51 suffix keys,
// head_dim 16, a block-causal + padding bias), forward and forward + backward.
// Run: bun bench/attention.ts [--quick]
import * as op from "../src/engine/ops.ts";
import { Rng } from "../src/util/random.ts";
import { normalTensor } from "./timing.ts";
import { initEngine } from "../src/engine/runtime.ts";
import { Tensor, scope } from "../src/engine/tensor.ts";
import { timeCall } from "./timing.ts";

const quick = process.argv.includes("--quick");
const gpu = await initEngine();
console.log(`# device: ${gpu.summary.device || gpu.summary.description} (${gpu.summary.backend}${gpu.summary.isSoftware ? ", software" : ""})`);

const time = (fn: () => void) => timeCall(fn, quick ? 0.5 : 3);

const [B, h, S, T0, hd] = [16, 4, 51, 176, 16];
const T = T0 + S;
const scale = 1 / Math.sqrt(hd);
const rng = new Rng(1);
const [q, k, v] = [normalTensor(rng, [B, h, S, hd]), normalTensor(rng, [B, h, T, hd]), normalTensor(rng, [B, h, T, hd])];
for (const t of [q, k, v]) t.requiresGrad = true;
// Prefix keys padded after 12 text tokens (as the policy bench's observations), block-causal suffix.
const bias = new Float32Array(B * S * T);
for (let b = 0; b < B; b++)
  for (let i = 0; i < S; i++)
    for (let j = 0; j < T; j++) if ((j >= 140 && j < T0) || (i === 0 && j > T0)) bias[(b * S + i) * T + j] = -1e9;
const biasT = Tensor.from(bias, [B, 1, S, T]);

const attend = (fused: boolean) =>
  fused ? op.attention(q, k, v, biasT, scale) : op.matmul(op.softmax(op.add(op.matmul(q, k, { transB: true, alpha: scale }), biasT)), v);
const clearGrads = () => {
  for (const t of [q, k, v]) {
    t.grad?.dispose();
    t.grad = undefined;
  }
};

console.log(`attention q [${B}, ${h}, ${S}, ${hd}], k/v [${B}, ${h}, ${T}, ${hd}], bias [${B}, 1, ${S}, ${T}]`);
console.log("| path | forward (wall / CPU) | forward + backward (wall / CPU) |");
console.log("|---|---|---|");
for (const fused of [false, true]) {
  const fwd = await time(() => scope(() => void op.noGrad(() => attend(fused))));
  const both = await time(() => {
    scope(() => op.backward(attend(fused)));
    clearGrads();
  });
  const ms = (t: { wall: number; cpu: number }) => `${(t.wall * 1e3).toFixed(1)} / ${(t.cpu * 1e3).toFixed(1)} ms`;
  console.log(`| ${fused ? "fused op.attention" : "composite matmul, add, softmax, matmul"} | ${ms(fwd)} | ${ms(both)} |`);
}
