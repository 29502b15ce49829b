// `dexrl train`: PPO fine-tuning of a checkpoint's policy on LIBERO-Spatial, with TensorBoard logs
// and checkpoints in the run folder.
import { defineCommand } from "citty";
import { existsSync, readdirSync, realpathSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { configArgs, debugArgs, type DexrlMeta, runDirArgs, runFolder } from "../cli/args.ts";
import { ensureOutputDir } from "../cli/outputs.ts";
import { loadConfigFromArgs } from "../config/cli.ts";
import { DexrlError, usageError } from "../errors.ts";
import { formatMetrics, Progress } from "../log/console.ts";
import { checkCheckpointDir, recoverInterruptedSaves } from "../model/checkpoint.ts";
import { train } from "../rl/ppo.ts";
import { readTrainerMeta, testKillPoint } from "../rl/trainer_state.ts";
import { machineSummary } from "../util/machine.ts";

export default defineCommand({
  meta: {
    name: "train",
    description:
      "PPO fine-tuning of the flow-matching policy at actor.model.model_path on LIBERO-Spatial (flow-SDE exploration, GAE over action chunks, clipped actor-critic loss). Writes TensorBoard events, the resolved config and checkpoints (every runner.save_interval global steps and at the end) to runner.logger.log_path/experiment_name. A new run never goes into a folder that holds another run; runner.resume_dir=RUN/checkpoints/global_step_N continues RUN when RUN is the run folder (the same --run-dir, or logger path); another run folder gets a new run that starts from that checkpoint.",
    examples: [
      "dexrl train actor.model.model_path=models/sft",
      "dexrl train --config my_run.yaml env.train.total_num_envs=16 runner.max_steps=50",
      "dexrl train runner.resume_dir=../results/my_run/checkpoints/global_step_50",
      "tensorboard --logdir logs",
    ],
  } satisfies DexrlMeta,
  args: {
    ...runDirArgs,
    ...configArgs,
    ...debugArgs,
  },
  async run({ args }) {
    const { config } = loadConfigFromArgs(args, { use: "train" });
    const runDir = runFolder(args["run-dir"], config.runner.logger);
    const steps = config.runner.max_steps;
    // Everything that can be refused is refused here, before the run folder is touched.
    const resumeDir = config.runner.resume_dir;
    const resumeMeta = resumeDir === null ? undefined : readTrainerMeta(resumeDir);
    const resumeStep = resumeMeta?.globalStep ?? 0;
    if (resumeDir !== null && resumeStep >= steps)
      throw usageError(`runner.resume_dir ${resumeDir} is at global step ${resumeStep} and runner.max_steps is ${steps}: nothing is left to train; raise runner.max_steps.`);
    checkCheckpointDir(resumeDir ?? config.actor.model.model_path);
    const continuing = prepareRunDir(runDir, resumeDir, resumeStep);

    if (continuing) {
      const record = existsSync(join(runDir, "config.yaml")) ? `; config.yaml keeps the earlier config, config.resume_${resumeStep}.yaml records this one` : "";
      console.error(`dexrl: continuing the run in ${runDir} from global step ${resumeStep} (${resumeDir}) up to global step ${steps} with ${config.env.train.total_num_envs} envs${record}; ${machineSummary()}`);
    } else
      console.error(
        `dexrl: training ${resumeDir ? `from ${resumeDir} (global step ${resumeStep})` : config.actor.model.model_path} up to global step ${steps} with ${config.env.train.total_num_envs} envs; new run folder ${runDir}; ${machineSummary()}`,
      );
    // Learning rates given on resume apply (AdamW's moments carry over, its saved lrs do not).
    const lrs: [string, number][] = [["actor.optim.lr", config.actor.optim.lr], ["actor.optim.value_lr", config.actor.optim.value_lr]];
    lrs.forEach(([key, lr], i) => {
      const saved = resumeMeta?.lrs[i];
      if (saved !== undefined && saved !== lr) console.error(`dexrl: ${key} is ${lr}, the checkpoint's run used ${saved}: ${lr} applies from global step ${resumeStep + 1} on.`);
    });
    // Ctrl-C or SIGTERM: the current global step finishes and is checkpointed; a second one stops at once.
    let stopSignal: NodeJS.Signals | undefined;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopSignal) {
        process.stderr.write(`\ndexrl: ${signal} again: stopping now, without a checkpoint of the current global step.\n`);
        process.exit(signal === "SIGINT" ? 130 : 143);
      }
      stopSignal = signal;
      process.stderr.write(`\ndexrl: ${signal}: finishing the current global step, then writing a checkpoint (${signal === "SIGINT" ? "Ctrl-C" : signal} again stops at once).\n`);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    let bar: Progress | undefined;
    let phase = "";
    let current = resumeStep + 1; // the global step in progress
    let result: Awaited<ReturnType<typeof train>>;
    try {
      result = await train(config, runDir, {
        stopRequested: () => stopSignal !== undefined,
        onProgress: (what, done, total) => {
          if (what !== phase || done === 1) {
            phase = what;
            bar = new Progress(`  ${what}`, total, 30);
          }
          bar!.tick(1);
          testKillPoint(what, current);
        },
        onNotice: (line) => console.error(`dexrl: ${line}.`),
        onStep: (step, metrics) => {
          phase = "";
          current = step + 1;
          console.log(`${formatMetrics(step, metrics)}`);
        },
      });
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
    if (result.stopped) {
      const last = join(runDir, "checkpoints", `global_step_${result.lastStep}`);
      // The run folder is --run-dir or the logger path: a sentence that names the one it came from continues it.
      const again = args["run-dir"] === undefined ? "" : `--run-dir ${runDir} `;
      throw new DexrlError(`Stopped by ${stopSignal} after global step ${result.lastStep}; its checkpoint is ${last}; continue with ${again}runner.resume_dir=${last}.`, stopSignal === "SIGINT" ? 130 : 143);
    }
    console.error(`dexrl: done; checkpoints in ${join(runDir, "checkpoints")}`);
  },
});

/** What a run leaves in its folder (the layout train() writes): config.yaml, event files, checkpoints. */
function runContents(runDir: string): { config: boolean; events: number; steps: number[] } {
  const ckpts = join(runDir, "checkpoints");
  return {
    config: existsSync(join(runDir, "config.yaml")),
    events: readdirSync(runDir).filter((f) => f.startsWith("events.out.tfevents.")).length,
    steps: existsSync(ckpts)
      ? readdirSync(ckpts)
          .filter((n) => /^global_step_\d+$/.test(n))
          .map((n) => Number(n.slice("global_step_".length)))
          .sort((a, b) => a - b)
      : [],
  };
}

/**
 * Makes sure a run never mixes with an earlier one in `runDir`. A folder holding a run is refused,
 * except when `resumeDir` is one of its own checkpoints (the run continues there, after cleaning up
 * any checkpoint write a killed process left unfinished) and no later checkpoint would be
 * overwritten. Creates the folder and checks it is writable. Returns whether an earlier run continues.
 */
function prepareRunDir(runDir: string, resumeDir: string | null, resumeStep: number): boolean {
  if (existsSync(runDir) && !statSync(runDir).isDirectory()) throw usageError(`The run folder ${runDir} is a file, not a folder.`);
  let continuing = false;
  if (existsSync(runDir)) {
    const found = runContents(runDir);
    if (found.config || found.events || found.steps.length) {
      const ckpts = join(runDir, "checkpoints");
      continuing = resumeDir !== null && existsSync(ckpts) && realpathSync(dirname(realpathSync(resumeDir))) === realpathSync(ckpts);
      // A checkpoint write that a killed process left unfinished is settled first: a checkpoint it had
      // set aside comes back, and must count among the later checkpoints below.
      if (continuing) for (const done of recoverInterruptedSaves(ckpts)) console.error(`dexrl: ${done}.`);
      const latest = found.steps.length ? join(ckpts, `global_step_${found.steps.at(-1)}`) : undefined;
      if (!continuing) {
        const what = [
          found.config ? "config.yaml" : "",
          found.steps.length ? `${found.steps.length} checkpoint${found.steps.length > 1 ? "s" : ""} up to global step ${found.steps.at(-1)}` : "",
          found.events ? `${found.events} TensorBoard event file${found.events > 1 ? "s" : ""}` : "",
        ].filter(Boolean);
        throw usageError(
          `The run folder ${runDir} already holds a run (${what.join(", ")}), and a new run there would mix with it; nothing was written. ` +
            `Choose another folder (runner.logger.experiment_name=NAME or --run-dir DIR), move that one away${latest ? `, or continue it with runner.resume_dir=${latest}` : ""}.`,
        );
      }
      const later = found.steps.filter((s) => s > resumeStep);
      if (later.length)
        throw usageError(
          `Continuing ${runDir} from global step ${resumeStep} would overwrite its later checkpoint${later.length > 1 ? "s" : ""} (global_step_${later.join(", global_step_")}); resume from the latest (runner.resume_dir=${latest}) or move those away.`,
        );
    }
  }
  ensureOutputDir(runDir, "The run folder");
  return continuing;
}
