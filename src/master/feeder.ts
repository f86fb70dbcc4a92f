/**
 * The Feeder pulls jobs from the user's iterator into the Ledger, and only while there is room:
 * fewer jobs waiting to be handed out than the buffer holds, and fewer than `window` jobs open.
 * That backpressure is what keeps the master's memory flat for a thousand jobs or a billion.
 *
 * The buffer holds `size` jobs, or fewer when jobs are large: it is also bounded in bytes,
 * estimated from a sample of the jobs. Large jobs that wait long are promoted to the old
 * generation of the heap, and a buffer of 10,000 5 KB jobs made the master's peak memory creep
 * up with the length of the batch; a few megabytes keep workers just as busy.
 *
 * A synchronous iterator is pulled in chunks without an `await` per job, yielding to the event
 * loop every few milliseconds so that sockets and timers keep running.
 */
import { encodeRich } from "../codec.ts";
import type { Ledger } from "./ledger.ts";
import type { Skips } from "../state/skips.ts";

type AnyIterator = Iterator<unknown> | AsyncIterator<unknown>;

/** How long a synchronous pull may hold the event loop. */
const SLICE_MS = 4;
/** One job in this many is encoded to estimate the size of jobs. */
const SAMPLE_EVERY = 1024;

export interface FeederOptions {
  /** Most jobs waiting to be handed out. */
  size: number;
  /** Most bytes (estimated) of jobs waiting to be handed out; `size` jobs at least 8. */
  maxBytes: number;
  skips: Skips | undefined;
  /** Called after jobs were admitted: time to hand them out. */
  onAdmit: () => void;
}

export class Feeder {
  exhausted = false;
  /** Jobs recognised as finished by an earlier run and not admitted. */
  skipped = 0;
  /** Jobs pulled from the iterator in this run (admitted or skipped). */
  pulled = 0;
  /** The estimated size of an encoded job, from a sample; 0 until the first is measured. */
  bytesPerJob = 0;
  private stopped = false;
  private waiting: (() => void) | undefined;

  constructor(
    private readonly ledger: Ledger,
    private readonly iterator: AnyIterator,
    private readonly sync: boolean,
    private readonly options: FeederOptions,
  ) {}

  /** How many jobs the buffer holds, given their size. */
  get capacity(): number {
    const { size, maxBytes } = this.options;
    if (this.bytesPerJob === 0) return size;
    return Math.min(size, Math.max(8, Math.floor(maxBytes / this.bytesPerJob)));
  }

  /** How many jobs may be admitted now. */
  room(): number {
    const { ledger } = this;
    return Math.min(this.capacity - ledger.queued, ledger.window - ledger.open);
  }

  /** Called when room may have appeared (jobs handed out, the watermark moved). */
  wake(): void {
    const waiting = this.waiting;
    if (waiting && (this.stopped || this.room() > 0)) {
      this.waiting = undefined;
      waiting();
    }
  }

  /** Stops pulling; the iterator is closed (its `finally` blocks run). */
  stop(): void {
    this.stopped = true;
    this.wake();
  }

  /** Pulls until the iterator is exhausted or the feeder is stopped. Rejects if the iterator throws. */
  async run(): Promise<void> {
    try {
      while (!this.stopped && !this.exhausted) {
        const room = this.room();
        if (room <= 0) {
          await new Promise<void>((resolve) => (this.waiting = resolve));
          continue;
        }
        if (this.sync) this.pullSync(room);
        else await this.pullAsync(room);
        this.options.onAdmit();
        if (!this.exhausted) await yieldToEventLoop();
      }
    } finally {
      if (!this.exhausted) await closeIterator(this.iterator);
    }
  }

  private pullSync(room: number): void {
    const iterator = this.iterator as Iterator<unknown>;
    const deadline = performance.now() + SLICE_MS;
    for (let i = 0; i < room; i++) {
      const result = iterator.next();
      if (result.done) {
        this.exhausted = true;
        return;
      }
      this.accept(result.value);
      if ((this.pulled & 1023) === 0 && performance.now() > deadline) return;
    }
  }

  private async pullAsync(room: number): Promise<void> {
    const iterator = this.iterator;
    const deadline = performance.now() + SLICE_MS;
    for (let i = 0; i < room && !this.stopped; i++) {
      const result = await iterator.next();
      if (result.done) {
        this.exhausted = true;
        return;
      }
      this.accept(result.value);
      if (performance.now() > deadline) return;
    }
  }

  /**
   * Admits a job; one that an earlier run finished is admitted as finished: it keeps its place
   * in the record (the next state file still lists it), but it does not run.
   */
  private accept(job: unknown): void {
    if (this.pulled++ % SAMPLE_EVERY === 0) this.sample(job);
    const finished = this.options.skips?.active ? this.options.skips.take(job) : undefined;
    if (finished) {
      this.skipped++;
      this.ledger.admitFinished(job, finished);
    } else {
      this.ledger.admit(job);
    }
  }

  private sample(job: unknown): void {
    let bytes: number;
    try {
      bytes = encodeRich(job).length;
    } catch {
      return; // It cannot be serialised; the dispatcher names it when it tries.
    }
    this.bytesPerJob = this.bytesPerJob === 0 ? bytes : 0.75 * this.bytesPerJob + 0.25 * bytes;
  }
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

async function closeIterator(iterator: AnyIterator): Promise<void> {
  try {
    await iterator.return?.();
  } catch {
    // The iterator's own clean-up failed; the batch is stopping anyway.
  }
}

/**
 * Calls `getJobs` and returns its iterator. It may be a sync or async generator, or return any
 * (async) iterable, or a promise of one.
 */
export async function openJobs(
  getJobs: (args: Record<string, unknown>) => unknown,
  args: Record<string, unknown>,
): Promise<{ iterator: AnyIterator; sync: boolean }> {
  const result = await getJobs(args);
  if (result !== null && typeof result === "object") {
    const iterable = result as Partial<AsyncIterable<unknown> & Iterable<unknown>>;
    const asyncIterator = iterable[Symbol.asyncIterator];
    if (typeof asyncIterator === "function") return { iterator: asyncIterator.call(iterable), sync: false };
    const iterator = iterable[Symbol.iterator];
    if (typeof iterator === "function") return { iterator: iterator.call(iterable), sync: true };
  }
  throw new TypeError(`getJobs must return an iterable or async iterable, not ${describe(result)}`);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : typeof value;
}
