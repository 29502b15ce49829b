// Builds dist/dexrl: one executable holding Bun, the code, the configs, the MuJoCo wasm module and
// the native libraries (Dawn's WebGPU wrapper, ONNX Runtime), which src/native.ts unpacks at run time.
import { statSync } from "node:fs";

const outfile = process.argv[2] ?? "dist/dexrl";
const t0 = performance.now();
// The sim's Bun Worker script is a second entrypoint: it lives at ./sim/worker.ts in the binary.
const proc = Bun.spawnSync([process.execPath, "build", "--compile", "--minify-syntax", "src/cli.ts", "src/sim/worker.ts", "--outfile", outfile], {
  stdout: "inherit",
  stderr: "inherit",
});
if (proc.exitCode !== 0) {
  console.error(`build: bun build --compile failed with exit code ${proc.exitCode}`);
  process.exit(1);
}
const mb = statSync(outfile).size / 2 ** 20;
console.log(`build: wrote ${outfile} (${mb.toFixed(0)} MiB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
