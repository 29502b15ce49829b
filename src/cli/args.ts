// Argument groups shared by several commands, defined once so their names and help stay the same.
import type { ArgsDef, CommandMeta } from "citty";
import { join } from "node:path";
import { usageError } from "../errors.ts";

declare module "citty" {
  interface CommandMeta {
    /** Command lines that `--help` prints under the options. */
    examples?: string[];
  }
}

/** Command metadata with examples (citty's CommandMeta, extended above). */
export type DexrlMeta = CommandMeta;

/** `--debug`: stack traces on errors, native libraries' log lines. Read by the CLI entry, accepted by every command. */
export const debugArgs = {
  debug: { type: "boolean", description: "Print stack traces on errors, and the log lines of Dawn, the Vulkan loader and MuJoCo", default: false },
} as const satisfies ArgsDef;

/** `--config NAME|PATH` and `key=value` overrides (taken from the remaining positionals). */
export const configArgs = {
  config: {
    type: "string",
    alias: "c",
    valueHint: "NAME|PATH",
    description: "Config file: a path, or a name under configs/ (e.g. libero_spatial_ppo_dexbotic_pi0)",
    default: "libero_spatial_ppo_dexbotic_pi0",
  },
  overrides: {
    type: "positional",
    required: false,
    valueHint: "key=value ...",
    description: "Dotted overrides typed by the schema, e.g. actor.model.num_steps=4 env.train.total_num_envs=16",
  },
  "override-file": {
    type: "string",
    valueHint: "PATH",
    description: "A YAML file whose keys are laid over the config before the dotted overrides",
  },
} as const satisfies ArgsDef;

/** `--run-dir DIR`: where a training run writes (train, sft). */
export const runDirArgs = {
  "run-dir": { type: "string", valueHint: "DIR", description: "Run folder (default: runner.logger.log_path/runner.logger.experiment_name)" },
} as const satisfies ArgsDef;

/** The run folder: --run-dir, or runner.logger.log_path/experiment_name. */
export function runFolder(arg: string | undefined, logger: { log_path: string; experiment_name: string }): string {
  if (arg?.trim() === "") throw usageError("--run-dir needs a folder, not an empty string.");
  return arg ?? join(logger.log_path, logger.experiment_name);
}

/** `--json`: machine-readable output on stdout instead of the table. */
export const jsonArgs = {
  json: { type: "boolean", description: "Print JSON instead of a table", default: false },
} as const satisfies ArgsDef;

/** An integer option's value, or a one-sentence usage error naming the option and its range. */
export function intArg(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isInteger(n) || n < min || n > max) throw usageError(`--${name} must be an integer from ${min} to ${max}, not "${value}".`);
  return n;
}

/** `--tasks`: "all" or task ids separated by commas, each below `numTasks`; duplicates dropped. */
export function taskListArg(value: string, numTasks: number): number[] {
  if (value === "all") return Array.from({ length: numTasks }, (_, i) => i);
  const ids = value.split(",").map((s) => s.trim());
  for (const s of ids)
    if (!/^\d+$/.test(s) || +s >= numTasks) throw usageError(`--tasks takes task ids from 0 to ${numTasks - 1} separated by commas (or "all"), not "${value}".`);
  return [...new Set(ids.map(Number))];
}
