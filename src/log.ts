/**
 * A small levelled logger writing to stderr. Logs and the progress line share the terminal,
 * so a logger can carry a `StatusLine` that it clears before writing and redraws after.
 */
export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** Parses a level name as the seed accepted it (any case; `warning`, `critical` too). */
export function parseLogLevel(name: string): LogLevel | undefined {
  const lower = name.toLowerCase();
  if (lower === "warning") return "warn";
  if (lower === "critical" || lower === "fatal") return "error";
  return (LOG_LEVELS as readonly string[]).includes(lower) ? (lower as LogLevel) : undefined;
}

/** Something drawn on the last line of the terminal that log lines must not overwrite. */
export interface StatusLine {
  clear(): void;
  redraw(): void;
}

export interface LogSink {
  write(line: string): void;
  status?: StatusLine | undefined;
}

export class Logger {
  constructor(
    readonly name: string,
    readonly level: LogLevel = "info",
    private readonly sink: LogSink = { write: (line) => process.stderr.write(line) },
  ) {}

  /** A logger for one part of the program, sharing level and sink. */
  child(name: string): Logger {
    return new Logger(name, this.level, this.sink);
  }

  /** Draw `status` below the log lines from now on (or stop, with `undefined`). */
  setStatusLine(status: StatusLine | undefined): void {
    this.sink.status = status;
  }

  enabled(level: LogLevel): boolean {
    return rank[level] >= rank[this.level];
  }

  debug(message: string): void {
    this.log("debug", message);
  }
  info(message: string): void {
    this.log("info", message);
  }
  warn(message: string): void {
    this.log("warn", message);
  }
  error(message: string): void {
    this.log("error", message);
  }

  log(level: Exclude<LogLevel, "silent">, message: string): void {
    if (!this.enabled(level)) return;
    const status = this.sink.status;
    status?.clear();
    const tag = level === "info" ? "" : ` ${level}`;
    this.sink.write(`${this.name}${tag}: ${message}\n`);
    status?.redraw();
  }
}
