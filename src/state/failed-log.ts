/**
 * The failed log, `<state>.failed.jsonl`: one JSON line per job that used up its attempts. It is
 * on disk before any state file that counts those jobs as finished, so a failure is never lost:
 * it is either in this log or the job runs again.
 */
import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { decodeRich, encodeRich, previewJob } from "../codec.ts";
import { UserError, messageOf } from "../errors.ts";

export interface FailedJob {
  id: number;
  /** A readable rendering of the job; `packed` is the exact value. */
  job: string;
  /** The job's msgpack encoding, base64: what `--resume-failed` runs again. */
  packed: string;
  error: string;
  stack: string;
  attempts: number;
  worker: { host: string; pid: number } | null;
  time: string;
}

export function failedLogPath(statePath: string): string {
  return statePath.replace(/\.json$/, "") + ".failed.jsonl";
}

/** What the master knows of a failure; the job itself is added by `failedLine`. */
export type FailureRecord = Omit<FailedJob, "job" | "packed">;

/** Where the master sends jobs that failed for good. */
export interface FailureSink {
  append(entry: FailureRecord, payload: unknown): void;
  /** Resolves once every appended failure is on disk. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export function failedLine(entry: FailureRecord, payload: unknown): FailedJob {
  return {
    id: entry.id,
    job: previewJob(payload, 1000),
    packed: encodeRich(payload).toString("base64"),
    error: entry.error,
    stack: entry.stack,
    attempts: entry.attempts,
    worker: entry.worker,
    time: entry.time,
  };
}

/**
 * Failures wait in memory and are written (and fsynced) when a checkpoint flushes, just before
 * the state that counts them as finished, and synchronously: there is no write in flight that a
 * process exiting at once could cut short. A crash before that loses neither: the state does not
 * count the job, so it runs again.
 */
export class FailedLog implements FailureSink {
  private pending: string[] = [];
  private fd: number | undefined;

  constructor(readonly path: string) {}

  append(entry: FailureRecord, payload: unknown): void {
    this.pending.push(`${JSON.stringify(failedLine(entry, payload))}\n`);
  }

  flush(): Promise<void> {
    if (this.pending.length > 0) {
      try {
        this.fd ??= openSync(this.path, "a", 0o644);
        writeSync(this.fd, this.pending.join(""));
        fsyncSync(this.fd);
        this.pending = [];
      } catch (error) {
        return Promise.reject(new Error(`cannot write the failed log ${this.path}: ${messageOf(error)}`));
      }
    }
    return Promise.resolve();
  }

  async close(): Promise<void> {
    await this.flush();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Reads a failed log for `--resume-failed`: the jobs, exactly as they were yielded. */
export async function readFailedJobs(path: string): Promise<{ entries: FailedJob[]; jobs: unknown[] }> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { entries: [], jobs: [] };
    throw new UserError(`cannot read the failed log ${path}: ${messageOf(error)}`);
  }
  // A job can be logged twice (it failed again after a crash that came before the state file
  // counted it): it runs again once, with its last entry.
  const byJob = new Map<string, FailedJob>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    try {
      const entry = JSON.parse(line) as FailedJob;
      if (typeof entry.packed !== "string") throw new Error("no 'packed' field");
      byJob.delete(entry.packed);
      byJob.set(entry.packed, entry);
    } catch (error) {
      throw new UserError(`failed log ${path} line ${i + 1} is damaged: ${messageOf(error)}`);
    }
  }
  const entries = [...byJob.values()];
  let jobs: unknown[];
  try {
    jobs = entries.map((entry) => decodeRich(Buffer.from(entry.packed, "base64")));
  } catch (error) {
    throw new UserError(`failed log ${path} is damaged: ${messageOf(error)}`);
  }
  return { entries, jobs };
}

export async function removeFailedLog(path: string): Promise<void> {
  await rm(path, { force: true });
}
