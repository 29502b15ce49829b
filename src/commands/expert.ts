// `dexrl expert`: runs the scripted expert over the fixed initial states on all cores and reports
// its success per task and overall (the bar its demonstrations must clear to serve as SFT data).
import { defineCommand } from "citty";
import { debugArgs, intArg, jsonArgs, taskListArg, type DexrlMeta } from "../cli/args.ts";
import { Progress } from "../log/console.ts";
import type { ResetSpec } from "../sim/protocol.ts";
import { INIT_STATES_PER_TASK, NUM_TASKS, SUITE, TASKS } from "../sim/tasks.ts";
import { VecEnv } from "../sim/vec_env.ts";

export default defineCommand({
  meta: {
    name: "expert",
    description: "Run the scripted expert on the fixed initial states of each task (all cores) and report its success rate",
    examples: ["dexrl expert --trials-per-task 50", "dexrl expert --tasks 0,3 --trials-per-task 5 --json"],
  } satisfies DexrlMeta,
  args: {
    "trials-per-task": { type: "string", valueHint: "N", description: `Initial states 0..N−1 of each task (at most ${INIT_STATES_PER_TASK})`, default: "10" },
    tasks: { type: "string", valueHint: "IDS", description: `Task ids separated by commas, or "all"`, default: "all" },
    "max-steps": { type: "string", valueHint: "T", description: "Control steps (20 Hz) before an episode counts as failed", default: "240" },
    workers: { type: "string", valueHint: "W", description: "Worker threads (default: one per core)" },
    seed: { type: "string", valueHint: "S", description: "Seed of the cabinet and stove placement within their regions", default: "0" },
    ...jsonArgs,
    ...debugArgs,
  },
  async run({ args }) {
    const trials = intArg("trials-per-task", args["trials-per-task"], 1, INIT_STATES_PER_TASK);
    const tasks = taskListArg(args.tasks, NUM_TASKS);
    const maxSteps = intArg("max-steps", args["max-steps"], 1, 10_000);
    const seed = intArg("seed", args.seed, 0, 2 ** 31 - 1);
    const cores = navigator.hardwareConcurrency || 1;
    const workers = args.workers === undefined ? cores : intArg("workers", args.workers, 1, 256);
    const jobs: ResetSpec[] = tasks.flatMap((task) => Array.from({ length: trials }, (_, initState) => ({ task, initState })));

    const t0 = performance.now();
    const vec = await VecEnv.create({ numEnvs: Math.min(workers, jobs.length), seed });
    let episodes;
    try {
      const progress = new Progress(`expert on ${jobs.length} episodes, ${vec.numWorkers} workers`, jobs.length);
      let ok = 0;
      let done = 0;
      episodes = await vec.expertEpisodes(jobs, maxSteps, (e) => {
        ok += e.success ? 1 : 0;
        done++;
        progress.tick(1, `success ${((100 * ok) / done).toFixed(1)}%`);
      });
    } finally {
      await vec.close();
    }
    const seconds = (performance.now() - t0) / 1000;

    const perTask = tasks.map((id) => {
      const mine = episodes.filter((e) => e.task === id);
      const wins = mine.filter((e) => e.success);
      return {
        task: id,
        instruction: TASKS[id]!.language,
        successes: wins.length,
        trials: mine.length,
        success_rate: wins.length / mine.length,
        mean_steps_on_success: wins.length ? wins.reduce((a, e) => a + e.steps, 0) / wins.length : null,
        failed_init_states: mine.filter((e) => !e.success).map((e) => e.initState),
      };
    });
    const successes = perTask.reduce((a, t) => a + t.successes, 0);
    const steps = episodes.reduce((a, e) => a + e.steps, 0);
    const overall = { successes, trials: episodes.length, success_rate: successes / episodes.length };
    if (args.json) {
      console.log(JSON.stringify({ suite: SUITE, trials_per_task: trials, max_steps: maxSteps, seed, tasks: perTask, overall, seconds: +seconds.toFixed(1), control_steps: steps }, null, 1));
      return;
    }
    console.log(`scripted expert on ${SUITE}, initial states 0..${trials - 1}, max ${maxSteps} steps\n`);
    console.log("task  success        mean steps  instruction");
    for (const t of perTask) {
      const rate = `${t.successes}/${t.trials} ${(100 * t.success_rate).toFixed(0).padStart(3)}%`;
      console.log(`${String(t.task).padStart(4)}  ${rate.padEnd(13)}  ${(t.mean_steps_on_success?.toFixed(0) ?? "-").padStart(10)}  ${t.instruction}`);
      if (t.failed_init_states.length) console.log(`      failed initial states: ${t.failed_init_states.join(", ")}`);
    }
    console.log(`\noverall: ${successes}/${episodes.length} = ${(100 * overall.success_rate).toFixed(1)}% in ${seconds.toFixed(0)} s (${(steps / seconds).toFixed(0)} control steps/s)`);
  },
});
