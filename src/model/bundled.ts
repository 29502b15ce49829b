// The SFT checkpoint dexrl ships (made by `dexrl collect` + `dexrl sft --config sft_libero_spatial`):
// `actor.model.model_path` and `rollout.model.model_path` default to its name. From a clone the
// name is the repository's folder; inside the compiled binary its files are embedded and unpacked
// once into a cache folder keyed by their content.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import configFile from "../../models/libero-spatial-fewshot/config.json" with { type: "file" };
import weightsFile from "../../models/libero-spatial-fewshot/model.safetensors" with { type: "file" };
import normFile from "../../models/libero-spatial-fewshot/norm_stats.json" with { type: "file" };
import tokenizerFile from "../../models/libero-spatial-fewshot/tokenizer.json" with { type: "file" };

/** The name the configs use for the bundled checkpoint. */
export const BUNDLED_MODEL = "models/libero-spatial-fewshot";

// `with { type: "file" }` makes each import a path (TypeScript still types the JSON ones as their content).
const FILES: [string, string][] = [
  ["config.json", configFile as unknown as string],
  ["model.safetensors", weightsFile],
  ["norm_stats.json", normFile as unknown as string],
  ["tokenizer.json", tokenizerFile as unknown as string],
];

/** A real folder holding the bundled checkpoint's files. */
function unpacked(): string {
  const bytes = FILES.map(([name, path]) => [name, readFileSync(path)] as const);
  const hash = createHash("sha256");
  for (const [, b] of bytes) hash.update(b);
  const base = process.env.XDG_CACHE_HOME || (homedir() ? join(homedir(), ".cache") : tmpdir());
  const dir = join(base, "dexrl", "models", `libero-spatial-fewshot-${hash.digest("hex").slice(0, 16)}`);
  if (existsSync(join(dir, "model.safetensors"))) return dir;
  const tmp = `${dir}.${process.pid}.partial`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  for (const [name, b] of bytes) writeFileSync(join(tmp, name), b);
  try {
    renameSync(tmp, dir); // atomic: a concurrent process sees the whole folder or none
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(join(dir, "model.safetensors"))) throw e;
  }
  return dir;
}

/**
 * Where a model path points: itself, except the bundled checkpoint's name when no such folder is
 * here (another working directory, or the compiled binary), which resolves to the embedded files.
 */
export function resolveModelPath(path: string): string {
  const normalized = path.replace(/^\.\//, "").replace(/\/$/, "");
  if (normalized !== BUNDLED_MODEL || existsSync(path)) return path;
  return unpacked();
}
