// The scripted expert succeeds on a sample of fixed initial states of every task (the full 500 are
// run by `dexrl expert --trials-per-task 50`, recorded in BENCHMARKS.md).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { LiberoEnv } from "../../src/sim/env.ts";
import { runExpert, runExpertEpisode, ScriptedExpert } from "../../src/sim/expert.ts";
import { TASKS, trainingInitState } from "../../src/sim/tasks.ts";

let env: LiberoEnv;
beforeAll(async () => {
  env = await LiberoEnv.create(9);
}, 60_000);
afterAll(() => env.delete());

describe("scripted expert", () => {
  test.each(TASKS.map((t) => [t.id]))("task %i: succeeds from initial states 10 and 41", (id) => {
    for (const init of [10, 41]) {
      const r = runExpertEpisode(env, id, init);
      expect({ init, success: r.success }).toEqual({ init, success: true });
      expect(r.steps).toBeLessThan(220);
    }
  }, 60_000);

  test("its actions are normalized and change smoothly", () => {
    env.reset(0, 3);
    const expert = new ScriptedExpert();
    expert.reset(env);
    let prev: number[] | undefined;
    let maxJump = 0;
    for (let t = 0; t < 60; t++) {
      const a = expert.act(env);
      expect(a.length).toBe(7);
      for (const x of a) expect(Math.abs(x)).toBeLessThanOrEqual(1);
      if (prev) maxJump = Math.max(maxJump, ...a.slice(0, 3).map((x, i) => Math.abs(x - prev![i]!)));
      prev = a;
      env.step(a);
    }
    // Arm action components move by less than the full range between consecutive steps.
    expect(maxJump).toBeLessThan(1);
  }, 60_000);

  test("succeeds where bowl_1 starts resting on the plate's rim (task 0, states 35 and 39)", () => {
    for (const init of [35, 39]) {
      env.reset(0, init);
      expect(env.bodyPose("akita_black_bowl_1").mat[8]!).toBeLessThan(Math.cos((10 * Math.PI) / 180)); // tilted on the rim
      expect(runExpertEpisode(env, 0, init).success).toBe(true);
    }
  }, 60_000);

  test("from training initial states; recording what it observes does not change what it does", () => {
    for (const task of [2, 7]) {
      const init = trainingInitState(task, 4, 0);
      env.seed(11);
      env.resetTo(init);
      const plain = runExpert(env, 240);
      expect(plain.success).toBe(true);
      env.seed(11);
      const first = env.resetTo(init);
      const seen: { state: Float32Array; action: number[] }[] = [];
      const recorded = runExpert(env, 240, (o, action) => seen.push({ state: o.state, action }));
      expect(recorded).toEqual(plain);
      expect(seen.length).toBe(plain.steps);
      expect(Array.from(seen[0]!.state)).toEqual(Array.from(first.state));
      // The states seen move: the eef travels to the bowl and the plate.
      expect(Math.hypot(...[0, 1, 2].map((k) => seen.at(-1)!.state[k]! - first.state[k]!))).toBeGreaterThan(0.1);
    }
  }, 60_000);
});
