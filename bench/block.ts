// A pre-LN transformer block at the size issue 12 names (B=8, 51 queries + 64 cached prefix keys,
// C=256, 4 heads, MLP 1024), forward and forward+backward, on ONNX Runtime and WebGPU, against the
// same block in PyTorch on the CPU (bench/block_torch.py, run here with /usr/bin/python3 if present).
// bun bench/block.ts [--threads 2] [--seconds 3]
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { compile, type Feeds, host, type TensorFn } from "../src/engine/compile.ts";
import * as op from "../src/engine/ops.ts";
import { initEngine } from "../src/engine/runtime.ts";
import type { Tensor } from "../src/engine/tensor.ts";
import { Rng } from "../src/util/random.ts";

const { values: a } = parseArgs({ options: { threads: { type: "string", default: "2" }, seconds: { type: "string", default: "3" } } });
const [B, S, P, C, Hh, M] = [8, 51, 64, 256, 4, 1024];
const hd = C / Hh;
const rng = new Rng(3);
const f32 = (n: number, s: number) => Float32Array.from({ length: n }, () => s * rng.normal());
const PARAMS: [string, number[], number][] = [
  ["ln1_w", [C], 0], ["ln1_b", [C], 0], ["wq", [C, C], 1 / 16], ["wk", [C, C], 1 / 16], ["wv", [C, C], 1 / 16], ["wo", [C, C], 1 / 16],
  ["ln2_w", [C], 0], ["ln2_b", [C], 0], ["w1", [C, M], 1 / 16], ["b1", [M], 0], ["w2", [M, C], 1 / 32], ["b2", [C], 0],
];
const feeds: Feeds = { x: host(f32(B * S * C, 1), [B, S, C]), pk: host(f32(B * Hh * P * hd, 1), [B, Hh, P, hd]), pv: host(f32(B * Hh * P * hd, 1), [B, Hh, P, hd]) };
for (const [n, shape, s] of PARAMS) feeds[n] = host(n.endsWith("_w") ? new Float32Array(shape[0]!).fill(1) : f32(shape.reduce((x, y) => x * y, 1), s), shape);

function block(t: Record<string, Tensor>): Tensor {
  const heads = (x: Tensor) => op.permute(op.reshape(x, [B, S, Hh, hd]), [0, 2, 1, 3]);
  const h = op.layerNorm(t.x!, t.ln1_w!, t.ln1_b!);
  const q = heads(op.matmul(h, t.wq!));
  const k = op.concat([t.pk!, heads(op.matmul(h, t.wk!))], 2);
  const v = op.concat([t.pv!, heads(op.matmul(h, t.wv!))], 2);
  const att = op.reshape(op.permute(op.attention(q, k, v, undefined, 1 / Math.sqrt(hd)), [0, 2, 1, 3]), [B, S, C]);
  const x = op.add(t.x!, op.matmul(att, t.wo!));
  const mlp = op.add(op.matmul(op.gelu(op.add(op.matmul(op.layerNorm(x, t.ln2_w!, t.ln2_b!), t.w1!), t.b1!)), t.w2!), t.b2!);
  return op.add(x, mlp);
}
const forward: TensorFn = (t) => ({ y: op.noGrad(() => block(t)) });
const backward: TensorFn = (t) => {
  for (const [n] of PARAMS) t[n]!.requiresGrad = true;
  t.x!.requiresGrad = true;
  const y = block(t);
  op.backward(op.mean(op.square(y)));
  return Object.fromEntries([["dx", t.x!.grad!], ...PARAMS.map(([n]) => [`d${n}`, t[n]!.grad!])]);
};

async function ms(fn: () => Promise<unknown>): Promise<number> {
  await fn();
  let reps = 0;
  const t0 = performance.now();
  do {
    await fn();
    reps++;
  } while (performance.now() - t0 < Number(a.seconds) * 1000);
  return (performance.now() - t0) / reps;
}

// PyTorch first: ONNX Runtime's spinning threads would take its cores while the sessions live.
const py = "/usr/bin/python3";
const script = new URL("./block_torch.py", import.meta.url).pathname;
let torch: [string, number, number] | undefined;
if (existsSync(py)) {
  const r = spawnSync(py, [script, a.threads!, a.seconds!], { encoding: "utf8" });
  const m = /forward_ms=([\d.]+) backward_ms=([\d.]+) torch=(\S+)/.exec(r.stdout);
  if (m) torch = [`PyTorch ${m[3]} CPU, ${a.threads} threads`, Number(m[1]), Number(m[2])];
  else console.log(`PyTorch reference did not run: ${(r.stderr || r.stdout).trim().split("\n").at(-1)}`);
}
const gpu = await initEngine();
console.log(`pre-LN block B=${B}, ${S} queries + ${P} cached keys, C=${C}, ${Hh} heads, MLP ${M}; load average ${loadavg().map((x) => x.toFixed(2)).join(" ")}; WebGPU adapter ${gpu.summary.device}`);
const rows: [string, number, number][] = [];
const outputs: Record<string, Float32Array>[] = [];
for (const backend of ["onnx", "webgpu"] as const) {
  const f = compile("block_fwd", forward, backend, { spin: true });
  const b = compile("block_bwd", backward, backend, { spin: true });
  outputs.push(await b.run(feeds));
  rows.push([backend === "onnx" ? "ONNX Runtime (CPU)" : `WebGPU (${gpu.summary.device})`, await ms(() => f.run(feeds)), await ms(() => b.run(feeds))]);
  await f.release();
  await b.release();
}
if (torch) rows.push(torch);
// The two backends compute the same gradients (a benchmark of wrong numbers would be worthless).
let worst = 0;
for (const k of Object.keys(outputs[0]!)) {
  const [o, w] = [outputs[0]![k]!, outputs[1]![k]!];
  const scale = Math.max(...w.map(Math.abs));
  o.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - w[i]!) / scale)));
}
console.log(`gradients ONNX vs WebGPU: max difference ${worst.toExponential(2)} of each tensor's largest value`);
console.log("| backend | forward | forward + backward | fwd+bwd vs PyTorch |\n|---|---|---|---|");
for (const [n, f, b] of rows) console.log(`| ${n} | ${f.toFixed(1)} ms | ${b.toFixed(1)} ms | ${torch ? (torch[2] / b).toFixed(2) + "×" : "—"} |`);
process.exit(0);
