// Vectorized envs over Bun Workers: determinism across runs and worker counts, chunked steps that
// stop at success, ignore-terminations and auto-reset bookkeeping, clear errors, clean shutdown.
import { describe, expect, test } from "bun:test";
import { Rng } from "../../src/util/random.ts";
import { SimWorker, VecEnv } from "../../src/sim/vec_env.ts";

/** The error a promise rejects with (bun's `expect(p).rejects` can stall on promises settled by a worker reply). */
const failure = (p: Promise<unknown>) => p.then(() => new Error("expected a rejection"), (e: Error) => e);

/** Smooth random actions (N, C, 7), the same for a given seed. */
function randomActions(n: number, chunk: number, rng: Rng): Float32Array {
  return Float32Array.from({ length: n * chunk * 7 }, () => rng.uniform(-0.6, 0.6));
}

async function rollout(numWorkers: number) {
  const v = await VecEnv.create({ numEnvs: 3, numWorkers, seed: 42, maxEpisodeSteps: 240 });
  try {
    await v.reset([0, 4, 7], [1, 2, 3]);
    const rng = new Rng(7);
    let last;
    for (let t = 0; t < 3; t++) last = await v.step(randomActions(3, 4, rng), 4);
    return last!.obs;
  } finally {
    await v.close();
  }
}

describe("VecEnv", () => {
  test("the same seed and actions give exactly the same states, with 1 or 3 workers", async () => {
    const a = await rollout(1);
    const b = await rollout(1);
    const c = await rollout(3);
    expect(Array.from(a.geomXpos)).toEqual(Array.from(b.geomXpos));
    expect(Array.from(a.states)).toEqual(Array.from(b.states));
    expect(Array.from(a.geomXpos)).toEqual(Array.from(c.geomXpos));
    expect(Array.from(a.geomXmat)).toEqual(Array.from(c.geomXmat));
    expect(Array.from(a.elapsed)).toEqual([12, 12, 12]);
  }, 120_000);

  test("chunks stop at success; ignore-terminations keeps going; episode bookkeeping", async () => {
    // Record the expert's actions step by step, then replay them in chunks of 8 on an identical vector.
    const record = await VecEnv.create({ numEnvs: 2, numWorkers: 2, seed: 1 });
    const actions: number[][][] = [[], []];
    const lens: number[] = [];
    try {
      const obs = await record.reset(2, [0, 5]);
      expect(obs.instructions[0]).toBe("pick up the black bowl from table center and place it on the plate");
      expect(obs.states.length).toBe(16);
      expect(obs.geomXpos.length).toBe(2 * record.ngeom * 3);
      expect(obs.camXmat.length).toBe(2 * record.ncam * 9);
      for (let t = 0; t < 240 && !(lens[0] && lens[1]); t++) {
        const a = await record.expertActions();
        const r = await record.step(a, 1);
        for (let i = 0; i < 2; i++) if (r.executed[i]) actions[i]!.push(Array.from(a.subarray(i * 7, i * 7 + 7)));
        for (const ep of r.episodes) lens[ep.env] = ep.episodeLen;
      }
    } finally {
      await record.close();
    }
    expect(lens[0] && lens[1]).toBeGreaterThan(0);

    const C = 8;
    const replay = await VecEnv.create({ numEnvs: 2, numWorkers: 1, seed: 1 });
    try {
      await replay.reset(2, [0, 5]);
      const episodes = [];
      for (let k = 0; k * C < 240 && episodes.length < 2; k++) {
        const chunk = new Float32Array(2 * C * 7);
        for (let i = 0; i < 2; i++) for (let c = 0; c < C; c++) chunk.set(actions[i]![k * C + c] ?? [0, 0, 0, 0, 0, 0, -1], (i * C + c) * 7);
        const r = await replay.step(chunk, C);
        for (const ep of r.episodes) {
          const i = ep.env;
          // The episode stops inside the chunk at its success step: reward 1 and a termination there.
          expect(r.executed[i]).toBe(((lens[i]! - 1) % C) + 1);
          expect(r.rewards[i * C + r.executed[i]! - 1]).toBe(1);
          expect(r.terminations[i * C + r.executed[i]! - 1]).toBe(1);
        }
        episodes.push(...r.episodes);
      }
      expect(episodes.map((e) => [e.env, e.episodeLen, e.successOnce, e.successAtEnd, e.return, e.truncated]).sort()).toEqual([
        [0, lens[0], true, true, 1, false],
        [1, lens[1], true, true, 1, false],
      ]);
      // Without auto-reset, a finished env executes nothing more.
      const after = await replay.step(new Float32Array(2 * 7), 1);
      expect(Array.from(after.executed)).toEqual([0, 0]);
    } finally {
      await replay.close();
    }

    // Ignoring terminations: the episode runs to max steps, the reward is paid once.
    const ignore = await VecEnv.create({ numEnvs: 1, numWorkers: 1, seed: 1, ignoreTerminations: true, maxEpisodeSteps: lens[0]! + 10 });
    try {
      await ignore.reset(2, [0]);
      let total = 0;
      let ended;
      for (let t = 0; t < 240 && !ended; t++) {
        const r = await ignore.step(await ignore.expertActions(), 1);
        total += r.rewards[0]!;
        ended = r.episodes[0];
      }
      expect(ended).toMatchObject({ successOnce: true, successAtEnd: true, episodeLen: lens[0]! + 10, truncated: true, return: 1 });
      expect(total).toBe(1);
    } finally {
      await ignore.close();
    }
  }, 120_000);

  test("auto-reset starts the next episode on the same task inside the same call", async () => {
    const v = await VecEnv.create({ numEnvs: 1, numWorkers: 1, seed: 3, autoReset: true, maxEpisodeSteps: 4 });
    try {
      await v.reset(9, [0]);
      const r = await v.step(new Float32Array(6 * 7), 6);
      expect(r.executed[0]).toBe(4);
      expect(Array.from(r.truncations)).toEqual([0, 0, 0, 1, 0, 0]);
      expect(r.episodes).toMatchObject([{ task: 9, initState: 0, episodeLen: 4, truncated: true, successOnce: false }]);
      expect(r.obs.elapsed[0]).toBe(0);
      expect(r.obs.tasks[0]).toBe(9);
    } finally {
      await v.close();
    }
  }, 120_000);

  test("bad input and worker failures become clear errors", async () => {
    const v = await VecEnv.create({ numEnvs: 2, numWorkers: 1 });
    try {
      await expect(v.reset(10)).rejects.toThrow("task id for env 0 must be an integer in 0..9, got 10");
      await expect(v.reset(0, [0, 50])).rejects.toThrow("initial state for env 1 must be an integer in 0..49, got 50");
      await expect(v.step(new Float32Array(3), 1)).rejects.toThrow("expected 2×1×7 actions, got 3 numbers");
    } finally {
      await v.close();
    }
    await expect(v.step(new Float32Array(14), 1)).rejects.toThrow("the environments are closed");

    // An error inside a worker comes back as a one-sentence error naming the worker.
    const w = new SimWorker(0);
    try {
      await w.call({ op: "init", envs: [0], seeds: [1], options: { maxEpisodeSteps: 10, autoReset: false, ignoreTerminations: false } });
      expect((await failure(w.call({ op: "reset", specs: [{ task: 99, initState: 0 }] }))).message).toBe("sim worker 0 failed: task id 99 is not in 0..9");
    } finally {
      await w.close();
    }
  }, 60_000);

  test("a worker that crashes fails its pending and later requests instead of hanging", async () => {
    const w = new SimWorker(3, new URL("./crashing_worker.ts", import.meta.url));
    try {
      expect((await failure(w.call({ op: "expert" }))).message).toMatch(/^sim worker 3 (crashed|exited unexpectedly)/);
      expect((await failure(w.call({ op: "expert" }))).message).toMatch(/^sim worker 3 (crashed|exited unexpectedly)/);
    } finally {
      await w.close();
    }
  }, 30_000);

  test("a process that closes its envs exits promptly (workers do not keep it alive)", async () => {
    const script = `
      import { VecEnv } from ${JSON.stringify(new URL("../../src/sim/vec_env.ts", import.meta.url).pathname)};
      const v = await VecEnv.create({ numEnvs: 2, numWorkers: 2 });
      await v.reset(0, [0, 1]);
      await v.close();
      console.log("closed");
    `;
    const proc = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => proc.kill(), 60_000);
    const code = await proc.exited;
    clearTimeout(timer);
    expect((await new Response(proc.stdout).text()).trim()).toBe("closed");
    expect(code).toBe(0);
  }, 90_000);
});
