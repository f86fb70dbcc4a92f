/** The last words of a master run, in one line. */
import type { Logger } from "../log.ts";
import type { MasterResult } from "../master/master.ts";
import type { ProgressSample } from "../progress.ts";
import { duration } from "../progress.ts";
import type { MasterStats } from "../master/master.ts";

export function reportResult(logger: Logger, result: MasterResult, elapsedMs: number): void {
  const counts = `${result.done.toLocaleString("en-US")} done, ${result.failed.toLocaleString("en-US")} failed`;
  switch (result.outcome) {
    case "done":
      logger.info(`finished: ${counts} in ${duration(elapsedMs)}`);
      if (result.failed > 0) logger.warn(`failed jobs are listed in ${result.failedLogPath}`);
      return;
    case "already-finished":
      return;
    case "stopped":
      logger.info(`stopped: ${counts}; state saved in ${result.statePath}: run the same command again to resume`);
      return;
    case "halted":
    case "error":
      logger.info(`stopped: ${counts}; state saved in ${result.statePath}`);
      return;
  }
}

export function masterSample(stats: MasterStats): ProgressSample {
  return {
    done: stats.done,
    failed: stats.failed,
    workers: stats.workers,
    queued: stats.queued,
    size: stats.size,
    total: stats.total,
    elapsedMs: stats.elapsedMs,
  };
}
