// Which task each rollout env runs (env.train.task_sampling): uniform (env n runs task n mod 10), or
// by_failure: envs apportioned to tasks in proportion to how often each still fails, so the samples
// go where the evaluation's points are (a task solved 90 % of the time has little left to teach).

/**
 * The floor under a task's weight 1 − success: a solved task keeps a share of the envs, so what it
 * learned is still rehearsed, and a task that read 100 % on a few episodes is drawn again.
 */
export const WEIGHT_FLOOR = 0.1;

/** How much of the previous estimate a global step's per-task success rates keep (an EMA over steps). */
export const SUCCESS_MEMORY = 0.5;

/** Per-task success_once rates of a step's episodes; a task with no episodes keeps its previous estimate. */
export function taskSuccessRates(episodes: readonly { task: number; successOnce: boolean }[], numTasks: number, previous: readonly number[] | null): number[] {
  const n = new Array<number>(numTasks).fill(0);
  const s = new Array<number>(numTasks).fill(0);
  for (const e of episodes) {
    n[e.task]!++;
    if (e.successOnce) s[e.task]!++;
  }
  return n.map((count, k) => {
    const now = count ? s[k]! / count : NaN;
    if (!previous) return Number.isNaN(now) ? 0 : now;
    return Number.isNaN(now) ? previous[k]! : SUCCESS_MEMORY * previous[k]! + (1 - SUCCESS_MEMORY) * now;
  });
}

/**
 * Envs per task in proportion to 1 − success + WEIGHT_FLOOR, by largest remainder (ties to the lower
 * task), every task getting at least one env when there are as many envs as tasks.
 */
export function apportion(success: readonly number[], numEnvs: number): number[] {
  const K = success.length;
  const w = success.map((p) => 1 - p + WEIGHT_FLOOR);
  const guaranteed = numEnvs >= K ? 1 : 0;
  const free = numEnvs - guaranteed * K;
  const total = w.reduce((a, b) => a + b, 0);
  const exact = w.map((x) => (free * x) / total);
  const counts = exact.map((x) => guaranteed + Math.floor(x));
  let left = numEnvs - counts.reduce((a, b) => a + b, 0);
  const order = exact.map((x, k) => ({ k, r: x - Math.floor(x) })).sort((a, b) => b.r - a.r || a.k - b.k);
  for (let i = 0; left > 0; i++, left--) counts[order[i % K]!.k]!++;
  return counts;
}

/**
 * Env → task from per-task counts, dealt round-robin (task 0, 1, …, 9, 0, …, skipping tasks whose
 * envs are used up), so each of VecEnv's contiguous worker ranges gets a mix of tasks and episode lengths.
 */
export function dealTasks(counts: readonly number[]): number[] {
  const left = [...counts];
  const out: number[] = [];
  const total = counts.reduce((a, b) => a + b, 0);
  while (out.length < total)
    for (let k = 0; k < left.length; k++)
      if (left[k]! > 0) {
        out.push(k);
        left[k]!--;
      }
  return out;
}
