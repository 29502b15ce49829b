// Matmul tile search: runs candidate tilings round-robin and prints, for each, the best GFLOP/s per
// CPU-second of this process (robust when other processes share the cores) and per wall second. Run: bun bench/matmul-tiles.ts [n] ['[[TM,TN,WX,WY,KU],...]']
import { matmul } from "../src/engine/kernels/matmul.ts";
import { Rng } from "../src/util/random.ts";
import { normalTensor } from "./timing.ts";
import { initEngine, sync } from "../src/engine/runtime.ts";
import { scope } from "../src/engine/tensor.ts";

await initEngine();
const n = Number(process.argv[2] ?? 512);
const configs: number[][] = JSON.parse(process.argv[3] ?? "[[8,8,8,8,4],[16,16,8,8,4],[16,16,8,8,8],[32,16,4,4,4]]");
const rng = new Rng(1);
const a = normalTensor(rng, [n, n]);
const b = normalTensor(rng, [n, n]);
const best = configs.map(() => 0);
const bestCpu = configs.map(() => 0);
for (let round = 0; round < 3; round++)
  for (const [i, [TM, TN, WX, WY, KU]] of configs.entries()) {
    const run = () => scope(() => void matmul(a, b, false, false, 1, { TM: TM!, TN: TN!, WX: WX!, WY: WY!, KU }));
    run();
    await sync();
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    run();
    run();
    await sync();
    const cpu = process.cpuUsage(c0);
    best[i] = Math.max(best[i]!, (2 * 2 * n ** 3) / ((performance.now() - t0) / 1000) / 1e9);
    bestCpu[i] = Math.max(bestCpu[i]!, (2 * 2 * n ** 3) / ((cpu.user + cpu.system) / 1e6) / 1e9);
  }
configs.forEach((c, i) => console.log(`TM×TN ${c[0]}×${c[1]}, workgroup ${c[2]}×${c[3]}, KU ${c[4]}: ${bestCpu[i]!.toFixed(2)} GFLOP per CPU-second, ${best[i]!.toFixed(2)} GFLOP/s wall`));
process.exit(0);
