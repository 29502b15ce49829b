// Glue between the shared CLI config arguments and the loader, used by every config-taking command.
import { ignoredNotice, loadConfig, type LoadedConfig } from "./load.ts";

/** Loads the config named by `--config`, `--override-file` and the `key=value` positionals. */
export function loadConfigFromArgs(args: { config?: string; "override-file"?: string; _: string[] }): LoadedConfig {
  const loaded = loadConfig({ config: args.config, overrideFile: args["override-file"], overrides: args._ });
  const notice = ignoredNotice(loaded.ignored);
  if (notice) console.error(notice);
  return loaded;
}
