/**
 * The Checkpoint turns the ledger into a state file: every `intervalMs` while jobs finish, and
 * once more at every stop. Writes never overlap, and the failed log is on disk before any state
 * that counts its jobs as finished.
 */
import { encodeRich, hashJob, previewJob } from "../codec.ts";
import { formatRuns } from "../id-runs.ts";
import type { Ledger } from "../master/ledger.ts";
import type { FailedLog } from "./failed-log.ts";
import type { Skips } from "./skips.ts";
import type { StateFile, StateIdentity } from "./state-file.ts";
import { STATE_FORMAT, STATE_VERSION, writeState } from "./state-file.ts";

export interface CheckpointOptions {
  path: string;
  identity: StateIdentity;
  /** The state this run resumed from, if any. */
  previous: StateFile | undefined;
  ledger: Ledger;
  skips: Skips | undefined;
  failedLog: FailedLog;
  intervalMs: number;
  onError: (error: unknown) => void;
}

export class Checkpoint {
  /** States written by this run. */
  writes = 0;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private lastKey = "";
  /** The resume point of the last state written, for when there is no better one. */
  private lastResume: StateFile["resume"];
  private readonly started: string;

  constructor(private readonly options: CheckpointOptions) {
    this.started = options.previous?.started ?? new Date().toISOString();
    this.lastResume = options.previous?.resume ?? null;
  }

  start(): void {
    this.timer = setInterval(() => {
      if (!this.writing) void this.write(false).catch(this.options.onError);
    }, this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Writes the state now (after any write under way), whether or not it changed. */
  async flush(finished: boolean): Promise<void> {
    while (this.writing) await this.writing.catch(() => undefined);
    this.lastKey = "";
    await this.write(finished);
  }


  private async write(finished: boolean): Promise<void> {
    const { ledger } = this.options;
    const key = `${ledger.base}:${ledger.doneCount}:${ledger.failedCount}:${finished}`;
    if (key === this.lastKey) return;
    const work = (async () => {
      await this.options.failedLog.flush();
      await writeState(this.options.path, this.build(finished));
      this.writes++;
      this.lastKey = key;
    })();
    this.writing = work;
    try {
      await work;
    } finally {
      this.writing = undefined;
    }
  }

  private build(finished: boolean): StateFile {
    const { ledger, previous, skips, identity } = this.options;
    let snapshot = ledger.snapshot(hashJob);
    let job = snapshot.resume && encodeOrUndefined(snapshot.resume.payload);
    if (snapshot.resume && job === undefined) {
      // The job at the watermark cannot be serialised (the run is stopping because of it):
      // resume from the last job that could, and let payload hashes skip what finished since.
      snapshot = ledger.snapshot(hashJob, true);
      job = snapshot.resume && encodeOrUndefined(snapshot.resume.payload);
    }
    const resume: StateFile["resume"] =
      snapshot.resume && job !== undefined
        ? { id: snapshot.resume.id, job, preview: previewJob(snapshot.resume.payload) }
        : this.lastResume;
    this.lastResume = resume;
    // Until this run has admitted a job, the earlier run's record stands unchanged.
    const untouched = ledger.admitted === 0 && previous !== undefined;
    return {
      format: STATE_FORMAT,
      version: STATE_VERSION,
      target: identity.target,
      options: identity.options,
      finished,
      resume,
      completed: untouched ? previous.completed : formatRuns(snapshot.completed),
      hashes: untouched
        ? previous.hashes
        : Buffer.concat([snapshot.hashes, skips?.remaining() ?? Buffer.alloc(0)]).toString("base64"),
      counts: {
        done: (previous?.counts.done ?? 0) + ledger.doneCount,
        failed: (previous?.counts.failed ?? 0) + ledger.failedCount,
      },
      started: this.started,
      updated: new Date().toISOString(),
    };
  }
}

function encodeOrUndefined(payload: unknown): string | undefined {
  try {
    return encodeRich(payload).toString("base64");
  } catch {
    return undefined;
  }
}
