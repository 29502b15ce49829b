// Simulation benchmark: control steps per second (each 25 substeps of OSC_POSE) in one thread,
// against raw mj_step of the same model on the same states in the same run (controller and wrapper
// overhead as a ratio); vectorized throughput on 1 worker and on all cores; and the scripted expert's
// success over all 500 fixed initial states. Run: bun bench/sim.ts [--quick]
import { LiberoEnv, SUBSTEPS } from "../src/sim/env.ts";
import { ScriptedExpert } from "../src/sim/expert.ts";
import { machineSummary } from "../src/util/machine.ts";
import { Rng } from "../src/util/random.ts";
import { INIT_STATES_PER_TASK, NUM_TASKS } from "../src/sim/tasks.ts";
import { VecEnv } from "../src/sim/vec_env.ts";

const quick = process.argv.includes("--quick");
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
console.log(`# ${machineSummary()}; MuJoCo wasm (mujoco-js)`);

/**
 * Single thread: expert episodes stepped by the env (timed around env.step only), and after each
 * control step the same model in a second MjData restored to the state before that step and run
 * through 25 plain mj_step calls with the last torques held: raw physics on the same contact states.
 */
async function singleThread(episodes: number) {
  const env = await LiberoEnv.create(1);
  const { mj, model: m } = env;
  const raw = new mj.MjData(m);
  let envSec = 0;
  let rawSec = 0;
  let steps = 0;
  const fields = ["qpos", "qvel", "act", "ctrl", "qacc_warmstart"] as const;
  for (let e = 0; e < episodes; e++) {
    const task = e % NUM_TASKS;
    env.reset(task, Math.floor(e / NUM_TASKS) % INIT_STATES_PER_TASK);
    const expert = new ScriptedExpert();
    expert.reset(env);
    for (let t = 0; t < 240; t++) {
      const a = expert.act(env);
      const saved = fields.map((f) => Float64Array.from(env.data[f]));
      const savedTime = env.data.time;
      let t0 = performance.now();
      const r = env.step(a);
      envSec += (performance.now() - t0) / 1000;
      // Same state, same model: 25 raw steps.
      fields.forEach((f, i) => raw[f].set(saved[i]!));
      raw.ctrl.set(env.data.ctrl);
      raw.time = savedTime;
      t0 = performance.now();
      for (let s = 0; s < SUBSTEPS; s++) mj.mj_step(m, raw);
      rawSec += (performance.now() - t0) / 1000;
      steps++;
      if (r.success) break;
    }
  }
  raw.delete();
  env.delete();
  return { steps, envSec, rawSec };
}

/** Vectorized throughput: N envs stepping chunks of 5 smooth random actions (auto-reset on). */
async function vectorized(numWorkers: number, envsPerWorker: number, seconds: number) {
  const n = numWorkers * envsPerWorker;
  const v = await VecEnv.create({ numEnvs: n, numWorkers, seed: 3, autoReset: true });
  const rng = new Rng(5);
  const chunk = 5;
  await v.reset(Array.from({ length: n }, (_, i) => i % NUM_TASKS));
  let steps = 0;
  const t0 = performance.now();
  const c0 = cpuSeconds();
  while (performance.now() - t0 < seconds * 1000) {
    const a = Float32Array.from({ length: n * chunk * 7 }, () => rng.uniform(-0.3, 0.3));
    const r = await v.step(a, chunk);
    steps += r.executed.reduce((x, y) => x + y, 0);
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds() - c0;
  await v.close();
  return { n, steps, wall, cpu };
}

const st = await singleThread(quick ? 4 : 20);
console.log(`single thread, expert episodes: ${st.steps} control steps`);
console.log(`  env.step (25 substeps + OSC + bookkeeping): ${(st.steps / st.envSec).toFixed(1)} control steps/s (${((st.envSec / st.steps) * 1000).toFixed(2)} ms each)`);
console.log(`  raw mj_step x25 on the same states:        ${(st.steps / st.rawSec).toFixed(1)} control steps/s (${((st.rawSec / st.steps) * 1000).toFixed(2)} ms each)`);
console.log(`  controller + wrapper overhead over raw physics: ${((st.envSec / st.rawSec - 1) * 100).toFixed(1)} %`);

const secs = quick ? 5 : 20;
const cores = navigator.hardwareConcurrency || 1;
for (const w of [...new Set([1, cores])]) {
  const r = await vectorized(w, 4, secs);
  console.log(`vectorized, ${w} worker(s) x 4 envs, chunks of 5: ${(r.steps / r.wall).toFixed(1)} control steps/s (process CPU ${(r.cpu / r.wall).toFixed(2)} cores busy)`);
}

if (!quick) {
  const v = await VecEnv.create({ numEnvs: cores, seed: 0 });
  const jobs = Array.from({ length: NUM_TASKS * INIT_STATES_PER_TASK }, (_, k) => ({ task: Math.floor(k / INIT_STATES_PER_TASK), initState: k % INIT_STATES_PER_TASK }));
  const t0 = performance.now();
  const eps = await v.expertEpisodes(jobs, 240);
  await v.close();
  const ok = eps.filter((e) => e.success).length;
  const perTask = Array.from({ length: NUM_TASKS }, (_, t) => eps.filter((e) => e.task === t && e.success).length);
  console.log(`expert over all ${eps.length} initial states: ${ok}/${eps.length} = ${((100 * ok) / eps.length).toFixed(1)} % (per task ${perTask.join(" ")}) in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}
