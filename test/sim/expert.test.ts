// The scripted expert succeeds on a sample of fixed initial states of every task (the full 500 are
// run by `dexrl expert --trials-per-task 50`, recorded in BENCHMARKS.md).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { LiberoEnv } from "../../src/sim/env.ts";
import { runExpertEpisode, ScriptedExpert } from "../../src/sim/expert.ts";
import { TASKS } from "../../src/sim/tasks.ts";

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
});
