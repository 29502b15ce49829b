// `dexrl doctor`: checks every native piece dexrl needs (WebGPU compute and rendering, MuJoCo wasm,
// ONNX Runtime) with known answers, prints what it found, and fails loudly naming what is broken.
import { defineCommand } from "citty";
import pkg from "../../package.json" with { type: "json" };
import { debugArgs, jsonArgs, type DexrlMeta } from "../cli/args.ts";
import { resolveBackend } from "../model/runner.ts";
import { DexrlError } from "../errors.ts";
import { getGpu, knownAnswerCheck } from "../engine/device.ts";
import { renderToTextureCheck } from "../engine/selftest.ts";
import { OnnxGraph } from "../onnx/graph.ts";
import { loadOnnxRuntime } from "../onnx/runtime.ts";
import { loadModel, mujoco } from "../sim/mujoco.ts";
import { machineSummary } from "../util/machine.ts";

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** Runs `fn`, turning any throw into a failed check with the error's first line. */
async function attempt(name: string, fn: () => Promise<Omit<Check, "name">>): Promise<Check> {
  try {
    return { name, ...(await fn()) };
  } catch (e) {
    return { name, ok: false, detail: (e instanceof Error ? e.message : String(e)).split("\n")[0]! };
  }
}

async function gpuChecks(): Promise<Check[]> {
  let gpu: Awaited<ReturnType<typeof getGpu>>;
  try {
    gpu = await getGpu();
  } catch (e) {
    return [{ name: "webgpu adapter", ok: false, detail: (e as Error).message }];
  }
  const s = gpu.summary;
  const l = s.limits;
  const adapter: Check = {
    name: "webgpu adapter",
    ok: true,
    detail:
      `${s.vendor || "?"} ${s.device || s.description} (${s.description}), backend ${s.backend}${s.isSoftware ? ", software" : ""}; ${gpu.driver.note}; ` +
      `limits: storage buffer ${(l.maxStorageBufferBindingSize! / 2 ** 20).toFixed(0)} MiB, workgroup storage ${l.maxComputeWorkgroupStorageSize} B, ` +
      `${l.maxComputeInvocationsPerWorkgroup} invocations/workgroup, ${l.maxStorageBuffersPerShaderStage} storage buffers/stage, texture ${l.maxTextureDimension2D}² × ${l.maxTextureArrayLayers} layers`,
  };
  const compute = await attempt("webgpu compute", async () => {
    const r = await knownAnswerCheck(gpu.device);
    return { ok: r.ok, detail: `${r.detail} (${r.ms.toFixed(0)} ms)` };
  });
  const render = await attempt("webgpu render-to-texture", () => renderToTextureCheck(gpu));
  // Where `auto` (the default of actor.training_backend and rollout.sampler_backend) puts the work.
  const where = resolveBackend("auto", s.isSoftware);
  const backends: Check = {
    name: "training backend",
    ok: true,
    detail:
      where === "onnx"
        ? "updates and rollouts on ONNX Runtime (CPU, all cores): the adapter is a software one, ~3 % of the CPU's arithmetic; rendering stays on WebGPU"
        : "updates and rollouts on WebGPU: the adapter is a hardware GPU; actor.training_backend=onnx puts updates on the CPU",
  };
  return [adapter, compute, render, backends];
}

/** Loads MuJoCo wasm, builds a falling box, and compares its height after 1 s with free fall. */
async function mujocoCheck(): Promise<Omit<Check, "name">> {
  const t0 = performance.now();
  const mj = await mujoco();
  const xml = `<mujoco><option timestep="0.002" gravity="0 0 -9.81"/><worldbody>
    <body name="box" pos="0 0 1"><freejoint/><geom type="box" size="0.1 0.1 0.1" mass="1"/></body>
  </worldbody></mujoco>`;
  const model = loadModel(mj, xml);
  const data = new mj.MjData(model);
  try {
    const steps = 500;
    for (let i = 0; i < steps; i++) mj.mj_step(model, data);
    const t = data.time;
    const z = data.qpos[2]!;
    const want = 1 - 0.5 * 9.81 * t * t;
    // Semi-implicit Euler overshoots free fall by g·t·dt/2 ≈ 0.01 m after 1 s at dt = 2 ms.
    const ok = Math.abs(z - want) < 0.02 && Math.abs(t - steps * 0.002) < 1e-9;
    return {
      ok,
      detail: `MuJoCo ${mj.mj_versionString()} (wasm): a free box fell to z = ${z.toFixed(4)} m after ${t.toFixed(3)} s (free fall ${want.toFixed(4)}); ${(performance.now() - t0).toFixed(0)} ms`,
    };
  } finally {
    data.delete();
    model.delete();
  }
}

/** Writes y = relu(x·W + b) with dexrl's ONNX writer, runs it in ONNX Runtime, compares on the CPU. */
async function onnxCheck(): Promise<Omit<Check, "name">> {
  const ort = await loadOnnxRuntime();
  const W = new Float32Array([0.5, -1, 2, 0.25, -0.75, 1.5]); // [3, 2]
  const b = new Float32Array([0.1, -0.2]);
  const g = new OnnxGraph("doctor");
  const x = g.input("x", ["batch", 3]);
  const [xw] = g.node("MatMul", [x, g.initializer("W", W, [3, 2])]);
  const [lin] = g.node("Add", [xw!, g.initializer("b", b, [2])]);
  g.node("Relu", [lin!], {}, ["y"]);
  g.output("y", ["batch", 2]);
  const session = await ort.InferenceSession.create(g.toBytes());
  const xs = new Float32Array([1, 2, 3, -1, 0.5, -2]);
  const out = (await session.run({ x: new ort.Tensor("float32", xs, [2, 3]) })).y!.data as Float32Array;
  let maxDiff = 0;
  for (let r = 0; r < 2; r++)
    for (let c = 0; c < 2; c++) {
      let acc = b[c]!;
      for (let k = 0; k < 3; k++) acc += xs[r * 3 + k]! * W[k * 2 + c]!;
      maxDiff = Math.max(maxDiff, Math.abs(Math.max(0, acc) - out[r * 2 + c]!));
    }
  await session.release();
  return { ok: maxDiff < 1e-6, detail: `ONNX Runtime ${ort.env.versions.node} ran a MatMul+Add+Relu graph written by dexrl (opset 17); max diff vs CPU ${maxDiff.toExponential(1)}` };
}

export default defineCommand({
  meta: {
    name: "doctor",
    description: "Check the GPU adapter, WebGPU compute and rendering, MuJoCo and ONNX Runtime",
    examples: ["dexrl doctor", "dexrl doctor --json", "VK_ICD_FILENAMES=/path/to/icd.json dexrl doctor   # force a Vulkan driver"],
  } satisfies DexrlMeta,
  args: { ...jsonArgs, ...debugArgs },
  async run({ args }) {
    const checks: Check[] = [{ name: "bun", ok: true, detail: `Bun ${Bun.version}, dexrl ${pkg.version}, ${process.platform}-${process.arch}` }];
    checks.push({ name: "cpu", ok: true, detail: machineSummary() });
    checks.push(...(await gpuChecks()));
    checks.push(await attempt("mujoco", mujocoCheck));
    checks.push(await attempt("onnxruntime", onnxCheck));
    if (args.json) console.log(JSON.stringify(checks, null, 2));
    else for (const c of checks) console.log(`${c.ok ? "ok  " : "FAIL"} ${c.name.padEnd(26)} ${c.detail}`);
    const failed = checks.filter((c) => !c.ok).map((c) => c.name);
    if (failed.length) throw new DexrlError(`doctor found ${failed.length} failing check${failed.length > 1 ? "s" : ""}: ${failed.join(", ")}.`);
  },
});
