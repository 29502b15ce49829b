// `dexrl config`: prints the resolved config (defaults ← file ← overrides) as YAML.
import { defineCommand } from "citty";
import { stringify } from "yaml";
import { configArgs, debugArgs, type DexrlMeta } from "../cli/args.ts";
import { loadConfigFromArgs } from "../config/cli.ts";

export default defineCommand({
  meta: {
    name: "config",
    description: "Print the resolved config as YAML (the same loader serves train, eval and sft)",
    examples: [
      "dexrl config",
      "dexrl config actor.model.num_steps=4 env.train.total_num_envs=16",
      "dexrl config --config my_run.yaml --override-file snippet.yaml",
    ],
  } satisfies DexrlMeta,
  args: { ...configArgs, ...debugArgs },
  run({ args }) {
    const { config } = loadConfigFromArgs(args);
    process.stdout.write(stringify(config, { lineWidth: 0 }));
  },
});
