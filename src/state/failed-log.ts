/**
 * The failed log, `<state>.failed.jsonl`: one JSON line per job that used up its attempts. It is
 * flushed to disk before any checkpoint that counts those jobs as finished, so a failure is
 * never lost: it is either in this log or the job runs again.
 */
import type { FileHandle } from "node:fs/promises";
import { open, readFile, rm } from "node:fs/promises";
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

export class FailedLog implements FailureSink {
  private handle: Promise<FileHandle> | undefined;
  private writes: Promise<void> = Promise.resolve();
  private unsynced = false;
  private error: unknown;

  constructor(readonly path: string) {}

  append(entry: FailureRecord, payload: unknown): void {
    const text = `${JSON.stringify(failedLine(entry, payload))}\n`;
    this.handle ??= open(this.path, "a", 0o644);
    const handle = this.handle;
    this.unsynced = true;
    this.writes = this.writes
      .then(async () => {
        await (await handle).appendFile(text);
      })
      .catch((error: unknown) => {
        this.error ??= error;
      });
  }

  /** Waits until every appended line is on disk. Throws if a write failed. */
  async flush(): Promise<void> {
    await this.writes;
    if (this.error) throw new Error(`cannot write the failed log ${this.path}: ${messageOf(this.error)}`);
    if (this.unsynced && this.handle) {
      this.unsynced = false;
      await (await this.handle).sync();
    }
  }

  async close(): Promise<void> {
    await this.flush();
    if (this.handle) await (await this.handle).close();
    this.handle = undefined;
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
  const entries: FailedJob[] = [];
  const jobs: unknown[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    try {
      const entry = JSON.parse(line) as FailedJob;
      if (typeof entry.packed !== "string") throw new Error("no 'packed' field");
      jobs.push(decodeRich(Buffer.from(entry.packed, "base64")));
      entries.push(entry);
    } catch (error) {
      throw new UserError(`failed log ${path} line ${i + 1} is damaged: ${messageOf(error)}`);
    }
  }
  return { entries, jobs };
}

export async function removeFailedLog(path: string): Promise<void> {
  await rm(path, { force: true });
}
