// User-facing errors: one sentence on stderr and a non-zero exit; the stack only with --debug.

/** An error whose message is written for the user. `exitCode` distinguishes bad input from failures. */
export class DexrlError extends Error {
  constructor(message: string, readonly exitCode = 1, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DexrlError";
  }
}

/**
 * Exit codes: 1 a failed run or check (including a damaged file: a corrupt checkpoint, non-finite
 * weights), 2 bad input (an argument, a config key or value, a missing file, an output path that
 * cannot be written).
 */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Bad input from the user: a config key, an argument, a file. */
export function usageError(message: string, options?: { cause?: unknown }): DexrlError {
  return new DexrlError(message, EXIT_USAGE, options);
}

const FS_REASONS: Record<string, string> = {
  ENOENT: "it does not exist",
  ENOTDIR: "a part of the path is a file, not a folder",
  EISDIR: "it is a folder",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "the file system is read-only",
  ENOSPC: "the disk is full",
  EDQUOT: "the disk quota is exceeded",
  ENAMETOOLONG: "the name is too long",
  ELOOP: "it has too many symbolic links",
  EEXIST: "it already exists",
  ENOTEMPTY: "the folder is not empty",
  EBUSY: "it is busy",
  EMFILE: "too many files are open",
};

/** The reason a file-system call failed, in words (its errno code when dexrl has no words for it). */
export function fsReason(err: unknown): string {
  const code = (err as { code?: string })?.code;
  if (code && FS_REASONS[code]) return FS_REASONS[code]!;
  return code ?? (err instanceof Error ? err.message : String(err));
}
