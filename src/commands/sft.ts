// `dexrl sft`: flow-matching SFT of a new policy on a dataset made by `dexrl collect`, with
// TensorBoard logs, periodic ODE evaluation and resumable checkpoints; the final model goes to sft.output_dir.
import { defineCommand } from "citty";
import { existsSync, readdirSync } from "node:fs";
import { join, resolve, sep } from "node:path";
import { configArgs, debugArgs, type DexrlMeta, runDirArgs, runFolder } from "../cli/args.ts";
import { ensureOutputDir } from "../cli/outputs.ts";
import { loadConfigFromArgs } from "../config/cli.ts";
import { usageError } from "../errors.ts";
import { formatMetrics, Progress } from "../log/console.ts";
import { checkCheckpointDir, FILES, recoverInterruptedSaves } from "../model/checkpoint.ts";
import { readTrainerMeta } from "../rl/trainer_state.ts";
import { sft } from "../sft/sft.ts";

export default defineCommand({
  meta: {
    name: "sft",
    description:
      "Flow-matching SFT of the whole policy (vision tower, projector, prefix, action expert) on scripted demonstrations from `dexrl collect`: action chunks of horizon actor.model.action_horizon from every step, norm stats from the data, AdamW with warm-up and cosine decay (sft.*). Logs train/sft/loss and eval/success_once to TensorBoard in runner.logger.log_path/experiment_name, checkpoints every sft.save_interval steps (resume with sft.resume_dir=…/checkpoints/step_N), and writes the final model to sft.output_dir.",
    examples: [
      "dexrl collect --tasks all --episodes-per-task 50 --seed 1 --out data/libero_spatial",
      "dexrl sft --config sft_libero_spatial",
      "dexrl sft --config sft_libero_spatial sft.episodes_per_task=5 sft.output_dir=models/five_shot runner.logger.experiment_name=sft_5",
      "dexrl sft --config sft_libero_spatial sft.resume_dir=logs/sft_libero_spatial/checkpoints/step_1000",
    ],
  } satisfies DexrlMeta,
  args: {
    ...runDirArgs,
    ...configArgs,
    ...debugArgs,
  },
  async run({ args }) {
    const { config } = loadConfigFromArgs(args);
    const s = config.sft;
    const runDir = runFolder(args["run-dir"], config.runner.logger);
    if (!existsSync(s.data_dir)) throw usageError(`sft.data_dir ${s.data_dir} does not exist; make a dataset with \`dexrl collect --out ${s.data_dir}\`.`);
    if (s.resume_dir !== null) {
      checkCheckpointDir(s.resume_dir);
      const at = readTrainerMeta(s.resume_dir).globalStep;
      if (at >= s.max_steps) throw usageError(`sft.resume_dir ${s.resume_dir} is at step ${at} and sft.max_steps is ${s.max_steps}: nothing is left to train.`);
    } else if (existsSync(join(runDir, "checkpoints")) && readdirSync(join(runDir, "checkpoints")).length)
      throw usageError(`The run folder ${runDir} already holds an SFT run; choose another (runner.logger.experiment_name=NAME or --run-dir DIR) or continue it with sft.resume_dir.`);
    // The final model replaces sft.output_dir as a whole: it must not be (or hold, or sit in) the run folder.
    const [out, run] = [resolve(s.output_dir), resolve(runDir)];
    if (out === run || out.startsWith(run + sep) || run.startsWith(out + sep))
      throw usageError(`sft.output_dir ${s.output_dir} and the run folder ${runDir} overlap; the final model would replace the run's logs and checkpoints. Choose another sft.output_dir (e.g. models/NAME).`);
    if (existsSync(s.output_dir)) {
      const foreign = readdirSync(s.output_dir).filter((f) => !(Object.values(FILES) as string[]).includes(f));
      if (foreign.length) throw usageError(`sft.output_dir ${s.output_dir} holds files that are not a checkpoint's (${foreign.slice(0, 3).join(", ")}); the final model would replace them. Choose an empty folder or a previous model's.`);
    }
    ensureOutputDir(runDir, "The run folder");
    for (const done of recoverInterruptedSaves(join(runDir, "checkpoints"))) console.error(`dexrl: ${done}.`);

    let stop = false;
    const onSignal = (sig: string) => {
      if (stop) process.exit(130);
      stop = true;
      console.error(`\ndexrl: ${sig}: finishing this step and writing a checkpoint (again to quit at once)`);
    };
    process.on("SIGINT", () => onSignal("SIGINT"));
    process.on("SIGTERM", () => onSignal("SIGTERM"));
    console.error(`dexrl: SFT on ${s.data_dir}${s.episodes_per_task === null ? "" : ` (${s.episodes_per_task} episodes per task)`} for ${s.max_steps} steps at batch ${s.batch_size}; run folder ${runDir}, final model ${s.output_dir}`);
    const bar = new Progress("sft", s.max_steps, 30);
    const r = await sft(config, runDir, {
      onStep: (step, m) => {
        if ("eval/success_once" in m) console.log(formatMetrics(step, m));
      },
      onProgress: (_done, _total, note) => bar.tick(1, note),
      stopRequested: () => stop,
    });
    if (r.stopped) {
      console.error(`dexrl: stopped at step ${r.lastStep}; continue with sft.resume_dir=${join(runDir, "checkpoints", `step_${r.lastStep}`)}`);
      process.exit(130);
    }
    console.error(`dexrl: done; the model is in ${r.outputDir}, checkpoints in ${join(runDir, "checkpoints")}`);
  },
});
