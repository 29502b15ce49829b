// User-facing errors: one sentence on stderr and a non-zero exit; the stack only with --debug.

/** An error whose message is written for the user. `exitCode` distinguishes bad input from failures. */
export class DexrlError extends Error {
  constructor(message: string, readonly exitCode = 1, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DexrlError";
  }
}

/** Exit codes: 1 a failed run or check, 2 bad input (config, arguments, files). */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Bad input from the user: a config key, an argument, a file. */
export function usageError(message: string): DexrlError {
  return new DexrlError(message, EXIT_USAGE);
}
