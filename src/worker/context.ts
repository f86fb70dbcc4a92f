/**
 * What a handler gets besides its job: `ctx = { id, attempt, signal, log }`. The signal and the
 * logger are made on first use, so a handler that never looks at them costs nothing extra.
 */
import type { Logger } from "../log.ts";

export interface JobLog {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export class JobContext {
  /** @internal Set once the job's outcome is reported: a late one is ignored. */
  settled = false;
  /** @internal The job's --job-timeout timer. */
  timer: NodeJS.Timeout | undefined;
  /** @internal The epoch of the master that handed out the job. */
  epoch = 0;
  private controller: AbortController | undefined;
  private abortReason: unknown;
  private logger: JobLog | undefined;

  constructor(
    /** The job's sequence number in the batch. */
    readonly id: number,
    /** 1 on the first attempt, 2 on the first retry, … */
    readonly attempt: number,
    private readonly baseLog: Logger,
  ) {}

  /** Aborted when the job times out or the worker must stop at once. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  get log(): JobLog {
    if (!this.logger) {
      const base = this.baseLog;
      const prefix = `job #${this.id}: `;
      this.logger = {
        debug: (m) => base.debug(prefix + m),
        info: (m) => base.info(prefix + m),
        warn: (m) => base.warn(prefix + m),
        error: (m) => base.error(prefix + m),
      };
    }
    return this.logger;
  }

  /** @internal */
  abort(reason: unknown): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.controller?.abort(reason);
  }
}
