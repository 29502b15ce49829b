// Tensor engine benchmark: matmul GFLOP/s at the model's sizes and at 512³/1024³ (with numpy/OpenBLAS
// timed in the same run as the CPU ceiling), and the policy's transformer layer forward+backward time.
// Run: bun bench/gpu-engine.ts [--quick]
import { spawnSync } from "node:child_process";
import { backward } from "../src/engine/autograd.ts";
import * as op from "../src/engine/ops.ts";
import { initEngine } from "../src/engine/runtime.ts";
import { scope } from "../src/engine/tensor.ts";
import { Rng } from "../src/util/random.ts";
import { normalTensor } from "./timing.ts";
import { blockBias, layer, layerParams } from "../test/engine/block.ts";
import { timeCall } from "./timing.ts";

const quick = process.argv.includes("--quick");
const gpu = await initEngine();
console.log(`# device: ${gpu.summary.device || gpu.summary.description} (${gpu.summary.backend}${gpu.summary.isSoftware ? ", software" : ""})`);

const time = (fn: () => void) => timeCall(fn, quick ? 0.3 : 1.5);

// Sizes: the action expert at batch 8 × (1 state + 50 action tokens) = 408 rows, width 256, MLP
// 1024 (the policy's [in, out] weights: x·W), 4 heads of 64 over 64 prefix + 51 suffix keys; then
// the square classics.
const sizes: { name: string; M: number; N: number; K: number; transB?: boolean; batch?: number }[] = [
  { name: "expert q/k/v/o (x·W)", M: 408, N: 256, K: 256 },
  { name: "expert MLP up (x·W)", M: 408, N: 1024, K: 256 },
  { name: "expert MLP down (x·W)", M: 408, N: 256, K: 1024 },
  { name: "attention scores q·kᵀ", M: 51, N: 115, K: 64, transB: true, batch: 32 },
  { name: "512³", M: 512, N: 512, K: 512 },
  { name: "1024³", M: 1024, N: 1024, K: 1024 },
];

const rng = new Rng(1);
const rows: string[] = [];
for (const s of sizes) {
  const batch = s.batch ?? 1;
  const a = normalTensor(rng, batch > 1 ? [batch, s.M, s.K] : [s.M, s.K]);
  const b = normalTensor(rng, s.transB ? (batch > 1 ? [batch, s.N, s.K] : [s.N, s.K]) : [s.K, s.N]);
  const t = await time(() => scope(() => void op.matmul(a, b, { transB: s.transB })));
  const flop = 2 * batch * s.M * s.N * s.K;
  rows.push(`| ${s.name} | ${batch > 1 ? `${batch}×` : ""}${s.M}×${s.N}×${s.K} | ${(t.wall * 1e3).toFixed(2)} ms | ${(flop / t.wall / 1e9).toFixed(2)} | ${(flop / t.cpu / 1e9).toFixed(2)} |`);
  console.error(rows.at(-1));
  a.dispose();
  b.dispose();
}

// numpy/OpenBLAS on the same machine, same sizes, same run.
const py = `
import numpy as np, time, json
try:
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
except Exception:
    blas = "unknown BLAS"
out = []
for (M, N, K, batch) in ${JSON.stringify(sizes.map((s) => [s.M, s.N, s.K, s.batch ?? 1]))}:
    a = np.random.rand(batch, M, K).astype(np.float32); b = np.random.rand(batch, K, N).astype(np.float32)
    a @ b
    reps, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        a @ b; reps += 1
        if time.perf_counter() - t0 > ${quick ? 0.3 : 1.0}: break
    flop = 2 * batch * M * N * K * reps
    out.append([flop / (time.perf_counter() - t0) / 1e9, flop / (time.process_time() - c0) / 1e9])
print(json.dumps({"blas": f"numpy {np.__version__}, {blas}", "gflops": out}))`;
// $PYTHON picks the interpreter; a numpy built on OpenBLAS is the meaningful CPU ceiling.
const np = spawnSync(process.env.PYTHON ?? "python3", ["-c", py], { encoding: "utf8" });
const npOut: { blas: string; gflops: [number, number][] } | undefined = np.status === 0 ? JSON.parse(np.stdout) : undefined;
const npGflops = npOut?.gflops;
console.log(`# CPU ceiling: ${npOut?.blas ?? `numpy unavailable (${np.stderr?.split("\n").at(-2) ?? np.error})`}`);

console.log("\n| matmul | M×N×K | WebGPU time | WebGPU GFLOP/s | WebGPU GFLOP per CPU-s | numpy GFLOP/s | numpy GFLOP per CPU-s |\n|---|---|---|---|---|---|---|");
rows.forEach((r, i) => console.log(`${r} ${npGflops ? `${npGflops[i]![0].toFixed(1)} | ${npGflops[i]![1].toFixed(1)}` : "n/a | n/a"} |`));

// The policy's layer, expert-sized (RMSNorm, GELU MLP), forward + backward with a cached prefix K/V.
const [B, Tp, T, C, H, HID] = [8, 64, 51, 256, 4, 1024];
const dims = { C, heads: H, hd: C / H, hidden: HID };
const cpu = new Rng(2);
const params = layerParams(dims, () => cpu.normal());
const prefix = { k: normalTensor(rng, [B, H, Tp, C / H]), v: normalTensor(rng, [B, H, Tp, C / H]) };
const x = normalTensor(rng, [B, T, C]);
const bias = blockBias([Tp, 1, T - 1], B, Tp);
const loadBefore = (await import("node:os")).loadavg()[0]!;
const fwd = await time(() => scope(() => void op.noGrad(() => layer(params, x, bias, dims, prefix))));
const fwdBwd = await time(() =>
  scope(() => {
    backward(op.mean(op.square(layer(params, x, bias, dims, prefix).y)));
    for (const p of params.values()) {
      p.grad?.dispose();
      p.grad = undefined;
    }
  }),
);
console.log(
  `\ntransformer layer B=${B} T=${T} (+${Tp} prefix keys) C=${C} heads=${H} MLP=${HID}: ` +
    `forward ${(fwd.wall * 1e3).toFixed(1)} ms (${(fwd.cpu * 1e3).toFixed(0)} CPU-ms), ` +
    `forward+backward ${(fwdBwd.wall * 1e3).toFixed(1)} ms (${(fwdBwd.cpu * 1e3).toFixed(0)} CPU-ms)`,
);
console.log(`load average: ${loadBefore.toFixed(1)} before the layer timing, ${(await import("node:os")).loadavg()[0]!.toFixed(1)} after`);
process.exit(0);
