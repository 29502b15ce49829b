// Evaluation: the deterministic (flow-ODE) policy on LIBERO-Spatial's fixed initial states, in
// waves of parallel envs, with success_once / success_at_end / episode_len per task as RLinf
// reports them.
import { join } from "node:path";
import type { Gpu } from "../engine/device.ts";
import { envActions, policyImages } from "../model/observation.ts";
import type { Config } from "../config/schema.ts";
import type { PolicyCheckpoint } from "../model/policy_checkpoint.ts";
import { PolicyRunner, resolveBackend } from "../model/runner.ts";
import { createLiberoRenderer, EnvViews } from "../render/libero.ts";
import { captionedFrame, EpisodeGif } from "../render/video.ts";
import type { EpisodeInfo } from "../sim/protocol.ts";
import { NUM_TASKS, TASKS } from "../sim/tasks.ts";
import { VecEnv } from "../sim/vec_env.ts";

export interface EvalOptions {
  tasks: number[];
  trialsPerTask: number;
  /** Parallel envs (at most the number of episodes). */
  numEnvs: number;
  maxEpisodeSteps: number;
  /** Keep stepping after success, so success_at_end means something (RLinf's eval setting). */
  ignoreTerminations: boolean;
  seed: number;
  /** Called after each finished episode. */
  onEpisode?: (done: number, total: number, e: EpisodeInfo) => void;
  /** Write the first `count` episodes as GIFs (one captioned frame per policy call) into `dir`. */
  videos?: { count: number; dir: string };
}

export interface TaskResult {
  task: number;
  instruction: string;
  episodes: number;
  successOnce: number;
  successAtEnd: number;
  meanEpisodeLen: number;
}

export interface EvalReport {
  tasks: TaskResult[];
  overall: Omit<TaskResult, "task" | "instruction">;
  seconds: number;
}

/** Trial i of a task starts from the task's fixed initial state i, as the LIBERO protocol does. */
function jobs(o: EvalOptions): { task: number; initState: number }[] {
  return o.tasks.flatMap((task) => Array.from({ length: o.trialsPerTask }, (_, i) => ({ task, initState: i })));
}

export async function evaluate(gpu: Gpu, runner: PolicyRunner, o: EvalOptions): Promise<EvalReport> {
  const t0 = performance.now();
  const c = runner.c;
  const all = jobs(o);
  const N = Math.min(o.numEnvs, all.length);
  const chunk = runner.sampler.chunk;
  const vec = await VecEnv.create({ numEnvs: N, maxEpisodeSteps: o.maxEpisodeSteps, autoReset: false, ignoreTerminations: o.ignoreTerminations, seed: o.seed });
  const views = new EnvViews(await createLiberoRenderer(gpu, c.image_size, N), N);
  const finished: EpisodeInfo[] = [];
  try {
    for (let start = 0; start < all.length; start += N) {
      // The last wave may be short: its spare envs repeat a job and their episodes are dropped.
      const wave = all.slice(start, start + N);
      const padded = Array.from({ length: N }, (_, i) => wave[i % wave.length]!);
      let obs = await vec.reset(padded.map((j) => j.task), padded.map((j) => j.initState));
      const ended = new Set<number>();
      // Episode start + i < videos.count is recorded.
      const gifs = new Map(wave.flatMap((_, i) => (o.videos && start + i < o.videos.count ? [[i, new EpisodeGif(20 / chunk)] as const] : [])));
      let executed: Int32Array | undefined; // undefined after the reset: every env is drawn
      while (ended.size < wave.length) {
        const images = await views.update(obs, executed); // [N, 2, S, S, 3]
        const per = 2 * c.image_size * c.image_size * 3;
        for (const [i, gif] of gifs)
          if (!ended.has(i)) gif.add(captionedFrame(images.subarray(i * per, (i + 1) * per), 2, c.image_size, c.image_size, obs.instructions[i]!, `step ${obs.elapsed[i]}`));
        const act = await runner.act({ images: policyImages(images, N, c.num_images, c.image_size), instructions: obs.instructions, states: obs.states }, false);
        const step = await vec.step(envActions(act.actions, N, chunk, runner.sampler.envDim), chunk);
        for (const e of step.episodes) {
          if (e.env >= wave.length || ended.has(e.env)) continue;
          ended.add(e.env);
          finished.push(e);
          gifs.get(e.env)?.save(join(o.videos!.dir, `task${e.task}_init${e.initState}_${e.successOnce ? "success" : "failure"}.gif`));
          o.onEpisode?.(finished.length, all.length, e);
        }
        obs = step.obs;
        executed = step.executed;
      }
    }
  } finally {
    await vec.close();
  }
  return report(finished, o.tasks, (performance.now() - t0) / 1000);
}

function summarize(es: EpisodeInfo[]): Omit<TaskResult, "task" | "instruction"> {
  const n = es.length;
  const mean = (f: (e: EpisodeInfo) => number) => (n ? es.reduce((s, e) => s + f(e), 0) / n : 0);
  return { episodes: n, successOnce: mean((e) => +e.successOnce), successAtEnd: mean((e) => +e.successAtEnd), meanEpisodeLen: mean((e) => e.episodeLen) };
}

export function report(finished: EpisodeInfo[], tasks: number[], seconds: number): EvalReport {
  return {
    tasks: tasks.map((task) => ({ task, instruction: TASKS[task]!.language, ...summarize(finished.filter((e) => e.task === task)) })),
    overall: summarize(finished),
    seconds,
  };
}

/**
 * The ODE policy of `params` (a checkpoint's architecture, stats and tokenizer) on the first
 * `trialsPerTask` fixed initial states of every task, as eval/* metrics for training runs. Episodes
 * end at success: success_once does not depend on it, and it halves the time.
 */
export async function evalMetrics(
  gpu: Gpu,
  config: Config,
  ck: PolicyCheckpoint,
  params: Map<string, Float32Array>,
  trialsPerTask: number,
  videos?: { count: number; dir: string },
): Promise<Record<string, number>> {
  const m = config.actor.model;
  const env = config.env.eval;
  const runner = PolicyRunner.create({
    config: ck.config,
    params,
    normStats: ck.normStats,
    tokenizer: ck.tokenizer,
    sampler: { numSteps: m.num_steps, method: "flow_ode", noiseLevel: 0, chunk: m.num_action_chunks, envDim: m.dexbotic.action_env_dim, jointLogprob: false, detachCritic: true },
    seed: env.seed,
    backend: resolveBackend(config.rollout.sampler_backend, gpu.summary.isSoftware),
  });
  try {
    const tasks = Array.from({ length: NUM_TASKS }, (_, i) => i);
    const numEnvs = Math.min(env.total_num_envs, 64, tasks.length * trialsPerTask);
    const r = await evaluate(gpu, runner, { tasks, trialsPerTask, numEnvs, maxEpisodeSteps: env.max_episode_steps, ignoreTerminations: false, seed: env.seed, videos });
    return { "eval/success_once": r.overall.successOnce, "eval/episode_len": r.overall.meanEpisodeLen, "eval/episodes": r.overall.episodes };
  } finally {
    await runner.release();
  }
}
