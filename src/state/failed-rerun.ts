/**
 * `--resume-failed`: the jobs of the failed log run again, as a batch of their own. Jobs that
 * succeed now leave the log; jobs that fail again stay with their new error; jobs the run did
 * not get to (it was stopped) stay as they were. The log is rewritten once, atomically, at the
 * end, and the state file's counts follow: a crash in between only means running them again.
 */
import { writeFileAtomic } from "./atomic-file.ts";
import type { FailedJob, FailureRecord, FailureSink } from "./failed-log.ts";
import { failedLine } from "./failed-log.ts";

export class FailedRerun implements FailureSink {
  /** Jobs that failed again, by their position in the log (their id in this run). */
  private readonly again = new Map<number, FailedJob>();

  constructor(
    readonly path: string,
    readonly entries: readonly FailedJob[],
  ) {}

  append(entry: FailureRecord, payload: unknown): void {
    // The log keeps the job's id from the batch it failed in, not its position in this rerun.
    const original = this.entries[entry.id];
    this.again.set(entry.id, failedLine({ ...entry, id: original?.id ?? entry.id }, payload));
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {}

  /** Rewrites the failed log; `finished(i)` tells whether entry i ran to the end in this run. */
  async finish(finished: (position: number) => boolean): Promise<{ succeeded: number; remaining: number }> {
    const lines: FailedJob[] = [];
    let succeeded = 0;
    this.entries.forEach((entry, i) => {
      const again = this.again.get(i);
      if (again) lines.push(again);
      else if (finished(i)) succeeded++;
      else lines.push(entry);
    });
    await writeFileAtomic(this.path, lines.map((line) => `${JSON.stringify(line)}\n`).join(""));
    return { succeeded, remaining: lines.length };
  }
}
