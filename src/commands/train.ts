// `dexrl train`: PPO fine-tuning of a checkpoint's policy on LIBERO-Spatial, with TensorBoard logs
// and checkpoints in the run folder.
import { defineCommand } from "citty";
import { join } from "node:path";
import { configArgs, debugArgs, type DexrlMeta } from "../cli/args.ts";
import { loadConfigFromArgs } from "../config/cli.ts";
import { formatMetrics, Progress } from "../log/console.ts";
import { train } from "../rl/ppo.ts";

export default defineCommand({
  meta: {
    name: "train",
    description:
      "PPO fine-tuning of the flow-matching policy at actor.model.model_path on LIBERO-Spatial (flow-SDE exploration, GAE over action chunks, clipped actor-critic loss). Writes TensorBoard events, the resolved config and checkpoints (every runner.save_interval global steps and at the end) to runner.logger.log_path/experiment_name.",
    examples: [
      "dexrl train actor.model.model_path=models/sft",
      "dexrl train --config my_run.yaml env.train.total_num_envs=16 runner.max_steps=50",
      "tensorboard --logdir logs",
    ],
  } satisfies DexrlMeta,
  args: {
    "run-dir": { type: "string", valueHint: "DIR", description: "Run folder (default: runner.logger.log_path/runner.logger.experiment_name)" },
    ...configArgs,
    ...debugArgs,
  },
  async run({ args }) {
    const { config } = loadConfigFromArgs(args);
    const runDir = args["run-dir"] ?? join(config.runner.logger.log_path, config.runner.logger.experiment_name);
    const steps = config.runner.max_steps;
    if (config.env.train.video_cfg.save_video)
      console.error("dexrl: env.train.video_cfg.save_video is set, but training writes no videos yet (`dexrl render --video` records the scripted expert).");
    console.error(`dexrl: training ${config.actor.model.model_path} for ${steps} global steps with ${config.env.train.total_num_envs} envs; run folder ${runDir}`);
    let bar: Progress | undefined;
    let phase = "";
    await train(config, runDir, {
      onProgress: (what, done, total) => {
        if (what !== phase || done === 1) {
          phase = what;
          bar = new Progress(`  ${what}`, total, 30);
        }
        bar!.tick(1);
      },
      onStep: (step, metrics) => {
        phase = "";
        console.log(`${formatMetrics(step, metrics)}`);
      },
    });
    console.error(`dexrl: done; checkpoints in ${join(runDir, "checkpoints")}`);
  },
});
