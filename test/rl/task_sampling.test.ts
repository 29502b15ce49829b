// env.train.task_sampling by_failure's pieces against plain references: the per-task rates and their
// EMA, the largest-remainder apportionment, and the round-robin deal of envs to tasks.
import { describe, expect, test } from "bun:test";
import { apportion, dealTasks, SUCCESS_MEMORY, taskSuccessRates, WEIGHT_FLOOR } from "../../src/rl/task_sampling.ts";

describe("task sampling by failure", () => {
  const episodes = [
    { task: 0, successOnce: true },
    { task: 0, successOnce: false },
    { task: 0, successOnce: true },
    { task: 0, successOnce: true },
    { task: 2, successOnce: false },
  ];

  test("per-task rates, and the EMA keeps a task's estimate when it ran no episode", () => {
    expect(taskSuccessRates(episodes, 3, null)).toEqual([0.75, 0, 0]);
    const prev = [0.25, 0.6, 1];
    const got = taskSuccessRates(episodes, 3, prev);
    const want = [SUCCESS_MEMORY * 0.25 + (1 - SUCCESS_MEMORY) * 0.75, 0.6, SUCCESS_MEMORY * 1 + (1 - SUCCESS_MEMORY) * 0];
    got.forEach((x, k) => expect(x).toBeCloseTo(want[k]!, 12));
  });

  test("apportionment: sums to N, at least one env per task, each count within 1 of its exact share", () => {
    const success = [0.76, 0.52, 0.8, 0.4, 0.56, 0.08, 0.28, 0.88, 0.42, 0.56];
    for (const N of [10, 16, 64, 100, 257]) {
      const counts = apportion(success, N);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(N);
      const w = success.map((p) => 1 - p + WEIGHT_FLOOR);
      const total = w.reduce((a, b) => a + b, 0);
      counts.forEach((c, k) => {
        expect(c).toBeGreaterThanOrEqual(1);
        const exact = 1 + ((N - 10) * w[k]!) / total;
        expect(Math.abs(c - exact)).toBeLessThan(1);
      });
    }
    // The hardest task gets the most envs, the easiest the fewest.
    const c64 = apportion(success, 64);
    expect(c64.indexOf(Math.max(...c64))).toBe(5);
    expect(c64.indexOf(Math.min(...c64))).toBe(7);
    // Equal rates give equal shares, the remainder to the lower tasks; fewer envs than tasks still sum to N.
    expect(apportion(new Array(10).fill(0.5), 64)).toEqual([7, 7, 7, 7, 6, 6, 6, 6, 6, 6]);
    expect(apportion([0, 1, 1], 2)).toEqual([2, 0, 0]);
  });

  test("dealing: round-robin over the tasks with envs left", () => {
    expect(dealTasks([2, 0, 3, 1])).toEqual([0, 2, 3, 0, 2, 2]);
    const counts = apportion([0.9, 0.1, 0.5], 20);
    const dealt = dealTasks(counts);
    expect(dealt).toHaveLength(20);
    counts.forEach((c, k) => expect(dealt.filter((t) => t === k)).toHaveLength(c));
  });
});
