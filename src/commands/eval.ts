// `dexrl eval`: a checkpoint's deterministic policy on LIBERO-Spatial's fixed initial states,
// success per task and overall.
import { defineCommand } from "citty";
import { writeFileSync } from "node:fs";
import { configArgs, debugArgs, intArg, jsonArgs, taskListArg, type DexrlMeta } from "../cli/args.ts";
import { checkOutputFile, ensureOutputDir } from "../cli/outputs.ts";
import { loadConfigFromArgs } from "../config/cli.ts";
import { usageError } from "../errors.ts";
import { evaluate, type EvalReport } from "../eval/evaluate.ts";
import { getGpu } from "../engine/device.ts";
import { initEngine } from "../engine/runtime.ts";
import { Progress } from "../log/console.ts";
import { loadPolicyCheckpoint } from "../model/policy_checkpoint.ts";
import { PolicyRunner, resolveBackend } from "../model/runner.ts";
import { INIT_STATES_PER_TASK, NUM_TASKS } from "../sim/tasks.ts";

function table(r: EvalReport): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`.padStart(7);
  const lines = r.tasks.map((t) => `${String(t.task).padStart(4)}  ${pct(t.successOnce)}  ${pct(t.successAtEnd)}  ${t.meanEpisodeLen.toFixed(1).padStart(7)}  ${String(t.episodes).padStart(5)}  ${t.instruction}`);
  const o = r.overall;
  return [
    "task  success  at end  ep. len  trials  instruction",
    ...lines,
    ` all  ${pct(o.successOnce)}  ${pct(o.successAtEnd)}  ${o.meanEpisodeLen.toFixed(1).padStart(7)}  ${String(o.episodes).padStart(5)}  (${r.seconds.toFixed(0)} s)`,
  ].join("\n");
}

export default defineCommand({
  meta: {
    name: "eval",
    description:
      "Evaluate a checkpoint's flow-ODE policy on LIBERO-Spatial's fixed initial states (trial i uses initial state i); reports success_once, success_at_end and episode length per task. Episode settings come from env.eval, sampling from actor.model; images are rendered at the checkpoint's image size.",
    examples: [
      "dexrl eval --ckpt logs/run/checkpoints/global_step_50",
      "dexrl eval --ckpt models/sft --tasks 0,4 --num-trials-per-task 10 env.eval.total_num_envs=20",
      "dexrl eval --ckpt models/sft --json --out eval.json",
      "dexrl eval --ckpt models/sft --tasks 4 --videos 3 env.eval.video_cfg.video_base_dir=videos",
    ],
  } satisfies DexrlMeta,
  args: {
    ckpt: { type: "string", required: true, alias: ["ckpt_path"], valueHint: "DIR", description: "Checkpoint directory" },
    tasks: { type: "string", default: "all", valueHint: "LIST", description: 'Task ids, e.g. "0,4", or "all"' },
    "num-trials-per-task": { type: "string", default: "50", alias: ["num_trials_per_task", "trials-per-task"], valueHint: "N", description: "Episodes per task, from initial state 0 up (1 to 50)" },
    out: { type: "string", valueHint: "FILE", description: "Also write the report as JSON to this file" },
    videos: { type: "string", default: "0", valueHint: "N", description: "Write the first N episodes as GIFs (one frame per policy call) into env.eval.video_cfg.video_base_dir" },
    action_chunk_size: { type: "string", valueHint: "N", description: "Actions executed per policy call: the seed's eval-script spelling of actor.model.num_action_chunks=N" },
    num_diffusion_steps: { type: "string", valueHint: "K", description: "Flow-ODE denoising steps: the seed's eval-script spelling of actor.model.num_steps=K" },
    ...configArgs,
    ...jsonArgs,
    ...debugArgs,
  },
  async run({ args }) {
    const { config } = loadConfigFromArgs(args, { use: "eval", extra: seedFlagOverrides(args) });
    const trials = intArg("num-trials-per-task", args["num-trials-per-task"], 1, INIT_STATES_PER_TASK);
    const tasks = taskListArg(args.tasks, NUM_TASKS);
    const videos = intArg("videos", args.videos, 0, NUM_TASKS * INIT_STATES_PER_TASK);
    if (videos > tasks.length * trials)
      throw usageError(`--videos ${videos} asks for more GIFs than the ${tasks.length * trials} episodes this evaluation runs (${tasks.length} task(s) × ${trials} trials).`);
    // Outputs are checked before the evaluation, so that it never ends by failing to write its results.
    if (args.out !== undefined) checkOutputFile(args.out, "--out");
    if (videos) ensureOutputDir(config.env.eval.video_cfg.video_base_dir, "env.eval.video_cfg.video_base_dir (where --videos go)");
    const ck = loadPolicyCheckpoint(args.ckpt);
    const m = config.actor.model;
    if (ck.config.horizon !== m.action_horizon)
      throw usageError(`Checkpoint ${args.ckpt} has action horizon ${ck.config.horizon} but actor.model.action_horizon is ${m.action_horizon}; set actor.model.action_horizon=${ck.config.horizon}.`);
    if (ck.config.action_dim !== m.action_dim) throw usageError(`Checkpoint ${args.ckpt} has action_dim ${ck.config.action_dim} but actor.model.action_dim is ${m.action_dim}.`);
    if (ck.config.num_images !== m.dexbotic.num_images_in_input)
      throw usageError(`Checkpoint ${args.ckpt} takes ${ck.config.num_images} camera views but actor.model.dexbotic.num_images_in_input is ${m.dexbotic.num_images_in_input}.`);

    const gpu = await initEngine();
    const env = config.env.eval;
    const backend = resolveBackend(config.rollout.sampler_backend, gpu.summary.isSoftware);
    const runner = PolicyRunner.create({
      config: ck.config,
      normStats: ck.normStats,
      tokenizer: ck.tokenizer,
      sampler: { numSteps: m.num_steps, method: "flow_ode", noiseLevel: 0, chunk: m.num_action_chunks, envDim: m.dexbotic.action_env_dim, jointLogprob: false, detachCritic: true },
      seed: env.seed,
      backend,
      params: ck.params,
    });
    const total = tasks.length * trials;
    console.error(`dexrl: evaluating ${args.ckpt} on ${tasks.length} task(s) × ${trials} trials with ${Math.min(env.total_num_envs, total)} envs (policy on ${backend}, ${m.num_steps} ODE steps, ${m.num_action_chunks} actions per call)`);
    const progress = new Progress("eval", total);
    let successes = 0;
    const report = await evaluate(await getGpu(), runner, {
      tasks,
      trialsPerTask: trials,
      numEnvs: env.total_num_envs,
      maxEpisodeSteps: env.max_episode_steps,
      ignoreTerminations: env.ignore_terminations,
      seed: env.seed,
      videos: videos ? { count: videos, dir: env.video_cfg.video_base_dir } : undefined,
      onEpisode: (done, _, e) => {
        successes += +e.successOnce;
        progress.tick(1, `success ${((100 * successes) / done).toFixed(1)}%`);
      },
    });
    await runner.release();
    console.log(args.json ? JSON.stringify(report, null, 2) : table(report));
    if (args.out !== undefined) writeFileSync(args.out, JSON.stringify(report, null, 2) + "\n");
  },
});

/** The seed eval script's flags (--action_chunk_size, --num_diffusion_steps) as dotted overrides. */
function seedFlagOverrides(args: { _: string[]; action_chunk_size?: string; num_diffusion_steps?: string }): string[] {
  const flags = [
    ["action_chunk_size", "actor.model.num_action_chunks"],
    ["num_diffusion_steps", "actor.model.num_steps"],
  ] as const;
  const out: string[] = [];
  for (const [flag, key] of flags) {
    const value = args[flag];
    if (value === undefined) continue;
    if (args._.some((o) => o.split("=")[0]!.trim() === key)) throw usageError(`--${flag} and ${key}= both set ${key}; give only one of them.`);
    out.push(`${key}=${intArg(flag, value, 1, 1000)}`);
  }
  return out;
}
