// Output paths, checked before any work starts (so a long run never ends by failing to write its
// result), and files written whole or not at all.
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync, unlinkSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { DexrlError, fsReason, usageError } from "../errors.ts";

/**
 * Checks that `path` can be written as a file: not a folder, in a folder that exists, and writable
 * (tried by opening it for appending, or by creating and removing it). `what` names it ("--out").
 */
export function checkOutputFile(path: string, what: string): void {
  if (path.trim() === "") throw usageError(`${what} needs a file name, not an empty string.`);
  if (existsSync(path) && statSync(path).isDirectory()) throw usageError(`${what} ${path} is a folder; give a file name (e.g. ${join(path, "out.json")}).`);
  const parent = dirname(resolve(path));
  if (!existsSync(parent)) throw usageError(`${what} ${path} cannot be written: the folder ${parent} does not exist.`);
  if (!statSync(parent).isDirectory()) throw usageError(`${what} ${path} cannot be written: ${parent} is a file, not a folder.`);
  const existed = existsSync(path);
  try {
    closeSync(openSync(path, existed ? "a" : "wx"));
    if (!existed) unlinkSync(path);
  } catch (e) {
    throw usageError(`${what} ${path} cannot be written: ${fsReason(e)}.`, { cause: e });
  }
}

/** Creates the folder `dir` (with its parents) if needed and checks that files can be written in it. */
export function ensureOutputDir(dir: string, what: string): void {
  if (dir.trim() === "") throw usageError(`${what} needs a folder, not an empty string.`);
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw usageError(`${what} ${dir} is a file, not a folder.`);
  const probe = join(dir, `.dexrl-write-test-${process.pid}`);
  try {
    mkdirSync(dir, { recursive: true });
    closeSync(openSync(probe, "wx"));
    unlinkSync(probe);
  } catch (e) {
    throw usageError(`${what} ${dir} cannot be written: ${fsReason(e)}.`, { cause: e });
  }
}

const PARTIAL = (path: string) => `${basename(path)}.partial-`;

/** Removes `<name>.partial-<pid>` files beside `path` left by processes that no longer run (kill -9). */
export function removeStalePartials(path: string): void {
  const dir = dirname(resolve(path));
  const prefix = PARTIAL(path);
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
      continue; // still running: its file is not stale
    } catch (e) {
      if ((e as { code?: string }).code === "EPERM") continue;
    }
    rmSync(join(dir, name), { force: true });
  }
}

/**
 * A file written whole or not at all: it is filled and checked at `path` (`<out>.partial-<pid>`
 * beside `out`), and `commit()` renames it to `out`. Disposed without a commit (an error, an early
 * return), or on Ctrl-C or SIGTERM meanwhile, the partial file is removed and `out` is left as it was.
 * Use it with `using`, so that disposal cannot be forgotten.
 */
export class PartialFile implements Disposable {
  readonly path: string;
  private readonly onSignal: (signal: NodeJS.Signals) => void;

  constructor(readonly out: string) {
    removeStalePartials(out);
    this.path = join(dirname(resolve(out)), `${PARTIAL(out)}${process.pid}`);
    this.onSignal = (signal) => {
      rmSync(this.path, { force: true });
      process.stderr.write(`dexrl: stopped by ${signal}; ${out} was not written.\n`);
      process.exit(signal === "SIGINT" ? 130 : 143);
    };
    process.once("SIGINT", this.onSignal);
    process.once("SIGTERM", this.onSignal);
  }

  /** Moves the checked file into place. */
  commit(): void {
    try {
      renameSync(this.path, this.out);
    } catch (e) {
      throw new DexrlError(`${this.out} could not be written: ${fsReason(e)}.`, 1, { cause: e });
    }
  }

  [Symbol.dispose](): void {
    rmSync(this.path, { force: true });
    process.off("SIGINT", this.onSignal);
    process.off("SIGTERM", this.onSignal);
  }
}
