// Glue between the shared CLI config arguments and the loader, used by every config-taking command.
import { ignoredNotice, loadConfig, type LoadedConfig, type LoadOptions } from "./load.ts";

/**
 * Loads the config named by `--config`, `--override-file` and the `key=value` positionals (then
 * `extra` overrides, e.g. from a command's own flags), printing the loader's notices on stderr.
 */
export function loadConfigFromArgs(
  args: { config?: string; "override-file"?: string; _: string[] },
  opts: { use?: LoadOptions["use"]; extra?: string[] } = {},
): LoadedConfig {
  const loaded = loadConfig({ config: args.config, overrideFile: args["override-file"], overrides: [...args._, ...(opts.extra ?? [])], use: opts.use });
  for (const n of loaded.notices) console.error(n);
  const notice = ignoredNotice(loaded.ignored);
  if (notice) console.error(notice);
  return loaded;
}
