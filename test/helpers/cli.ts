// Runs the real CLI from source in a child process, as a user would, without colours.
import { join } from "node:path";

export const repoRoot = join(import.meta.dir, "..", "..");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Non-empty lines of stderr. */
  errLines: string[];
}

export function dexrl(...args: string[]): CliResult {
  const p = Bun.spawnSync([process.execPath, join(repoRoot, "src/cli.ts"), ...args], { cwd: repoRoot, env: { ...process.env, NO_COLOR: "1" } });
  const stderr = p.stderr.toString();
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr, errLines: stderr.split("\n").filter((l) => l.trim()) };
}
