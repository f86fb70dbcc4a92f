/** Exit codes shared by every command and returned by the library's run results. */
export const ExitCode = {
  /** Every job finished successfully. */
  Ok: 0,
  /** A usage or setup error: bad flag, missing file or export, corrupt state file. */
  Usage: 1,
  /** The batch finished (or was halted) with failed jobs. */
  Failed: 2,
  /** Stopped by a signal; the state file was written first. */
  Interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * A mistake the user can fix (a missing file, a bad flag, a corrupt state file). The commands
 * print its message as one line and exit with `exitCode`; the stack trace is only shown under
 * `--log-level debug`, because it points into taskmaster, not at the user's mistake.
 */
export class UserError extends Error {
  override name = "UserError";
  constructor(
    message: string,
    readonly exitCode: ExitCode = ExitCode.Usage,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The message of anything thrown, for one-line reports. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

/** Everything known of a thrown value: its stack, and its causes', for `--log-level debug`. */
export function errorDetail(error: unknown): string {
  let text: string;
  try {
    text = error instanceof Error && error.stack ? error.stack : String(error);
  } catch {
    text = Object.prototype.toString.call(error);
  }
  const cause = error instanceof Error ? error.cause : undefined;
  if (cause !== undefined) text += `\ncaused by: ${errorDetail(cause)}`;
  return text;
}
