/**
 * The jobs a worker has received and not started, kept as the batches they arrived in
 * (`[start, count, attempt, …]` runs and their payloads), so a batch of a thousand jobs is one
 * object here, not a thousand.
 */
import { IdRunsBuilder } from "../id-runs.ts";
import type { IdRuns } from "../id-runs.ts";

interface Batch {
  runs: number[];
  payloads: unknown[];
  /** Index into `runs` of the current run, the offset within it, and the next payload. */
  run: number;
  offset: number;
  next: number;
}

export interface QueuedJob {
  id: number;
  attempt: number;
  payload: unknown;
}

export class JobQueue {
  private batches: Batch[] = [];
  private length = 0;

  get size(): number {
    return this.length;
  }

  push(runs: number[], payloads: unknown[]): void {
    if (payloads.length === 0) return;
    this.batches.push({ runs, payloads, run: 0, offset: 0, next: 0 });
    this.length += payloads.length;
  }

  /** The next job, or undefined when none is queued. */
  shift(): QueuedJob | undefined {
    const batch = this.batches[0];
    if (!batch) return undefined;
    const { runs } = batch;
    const id = runs[batch.run]! + batch.offset;
    const attempt = runs[batch.run + 2]!;
    const payload = batch.payloads[batch.next];
    batch.payloads[batch.next++] = undefined;
    if (++batch.offset === runs[batch.run + 1]) {
      batch.run += 3;
      batch.offset = 0;
    }
    if (batch.next === batch.payloads.length) this.batches.shift();
    this.length--;
    return { id, attempt, payload };
  }

  /** Empties the queue and returns the ids it held. */
  clear(): IdRuns {
    const ids = new IdRunsBuilder();
    for (const batch of this.batches) {
      const { runs } = batch;
      let offset = batch.offset;
      for (let r = batch.run; r < runs.length; r += 3) {
        ids.addRun(runs[r]! + offset, runs[r + 1]! - offset);
        offset = 0;
      }
    }
    this.batches = [];
    this.length = 0;
    return ids.take();
  }
}
