/**
 * The Ledger is the master's record of every job between the watermark and the newest job fed
 * in. Each job gets a sequence id when the feeder admits it; its slot in a ring then moves
 *
 *     queued ─► leased (to one worker) ─► done | failed
 *        ▲           │
 *        └───────────┘  returned, its worker died, or its attempt failed and may be retried
 *
 * The watermark (`base`) is the lowest id not yet finished. Everything below it is finished and
 * forgotten; finished ids above it stay in the ring until the watermark passes them, so the
 * memory held is bounded by the window (`next - base <= window`), not by the batch.
 *
 * Fresh jobs sit in the ring in id order from `cursor` to `next` and are handed out as
 * contiguous runs; jobs that come back are queued separately and go out first (the front of the
 * buffer). All per-job state lives in typed arrays indexed by `id & mask`, so the hot path
 * (admit, lease a run, complete a run) allocates nothing per job.
 *
 * A job's payload object is held only until it is sent: then the slot points at the encoded
 * batch it went out in (see `attach`), and the object is decoded from it again in the rare
 * cases it is needed (a retry, a failure, a checkpoint). Large jobs then die young in the heap,
 * instead of waiting in it, promoted to the old generation, for their acknowledgements.
 *
 * Jobs held by a worker that died are *suspects*: one of them may have killed it. They are
 * queued apart and handed out one at a time (see `leaseSuspect`), so that when a suspect kills
 * its next worker too, the death is its own, and a poison job uses up its attempts without
 * taking the innocent jobs around it along.
 */
import type { IdRuns } from "../id-runs.ts";
import { IdRunsBuilder } from "../id-runs.ts";
import { JOB_HASH_BYTES } from "../codec.ts";

const EMPTY = 0;
const QUEUED = 1;
const LEASED = 2;
const DONE = 3;
const FAILED = 4;
/** Failed an attempt and waits out its backoff before it is queued again. */
const PARKED = 5;

/** Stands in for the payload of a finished job once it has been hashed. */
const DROPPED: unique symbol = Symbol("dropped");

/** Most attempts a job can be given; attempts are stored in a byte. */
export const MAX_ATTEMPTS = 255;

export interface LedgerStart {
  /** The id of the first job the iterator will yield (the resume point, or 0). */
  firstId: number;
  window: number;
  /** The payloads of an encoded batch given to `attach`, in order. */
  decodeBatch?: ((bytes: Buffer) => unknown[]) | undefined;
}

/** The encoded batch that sent jobs' payloads live in; shared by the slots of its jobs. */
class SentBatch {
  constructor(readonly bytes: Buffer) {}
}

/** A batch leased to one worker: `runs` is `[start, count, attempt, …]`, payloads in order. */
export interface Lease {
  runs: number[];
  payloads: unknown[];
  count: number;
}

export class Ledger {
  /** The watermark: the lowest id not finished. */
  base: number;
  /** The id the next admitted job gets. */
  next: number;
  /** Fresh jobs not yet handed out are `[cursor, next)`, except `finishedAhead` of them. */
  cursor: number;
  /** Jobs admitted as finished (see `admitFinished`) beyond the cursor. */
  private finishedAhead = 0;
  readonly window: number;
  readonly firstId: number;

  /** Jobs finished in this run: succeeded / failed for good. */
  doneCount = 0;
  failedCount = 0;
  /** Jobs leased to some worker right now. */
  leased = 0;

  private capacity: number;
  private mask: number;
  /** The payload object, or the SentBatch it went out in (with its place in `position`). */
  private payload: unknown[];
  private position: Int32Array;
  private readonly decodeBatch: ((bytes: Buffer) => unknown[]) | undefined;
  /** The last batch decoded, as failures and retries often come from the same one. */
  private decoded: { batch: SentBatch; payloads: unknown[] } | undefined;
  private state: Uint8Array;
  private owner: Int32Array;
  private attempts: Uint8Array;
  /** Payload hashes of finished jobs above the watermark, 8 bytes a slot; see `snapshot`. */
  private hashes: Uint8Array;
  private hashed: Uint8Array;
  /** Returned or retried ids, handed out before fresh ones. */
  private again: number[] = [];
  private againHead = 0;
  /** Ids whose worker died holding them, handed out one at a time before all others. */
  private suspects: number[] = [];
  /** The payload of the newest job the watermark passed: the resume point when nothing is open. */
  private lastFinished: { id: number; payload: unknown; position: number; hash?: Buffer } | undefined;

  constructor({ firstId, window, decodeBatch }: LedgerStart) {
    if (!Number.isSafeInteger(window) || window < 1) throw new RangeError("window must be >= 1");
    this.base = this.next = this.cursor = this.firstId = firstId;
    this.window = window;
    this.capacity = Math.min(1024, nextPowerOfTwo(window));
    this.mask = this.capacity - 1;
    this.payload = new Array<unknown>(this.capacity);
    this.position = new Int32Array(this.capacity);
    this.decodeBatch = decodeBatch;
    this.state = new Uint8Array(this.capacity);
    this.owner = new Int32Array(this.capacity);
    this.attempts = new Uint8Array(this.capacity);
    this.hashes = new Uint8Array(this.capacity * JOB_HASH_BYTES);
    this.hashed = new Uint8Array(this.capacity);
  }

  /** Jobs admitted by this run. */
  get admitted(): number {
    return this.next - this.firstId;
  }

  /** Jobs between the watermark and the newest: what the window bounds. */
  get open(): number {
    return this.next - this.base;
  }

  /** Jobs waiting to be handed out (fresh, returned and suspect). */
  get queued(): number {
    return this.next - this.cursor - this.finishedAhead + (this.again.length - this.againHead) + this.suspects.length;
  }

  /** Suspects waiting to be handed out. */
  get suspectsQueued(): number {
    return this.suspects.length;
  }

  /** Whether every admitted job is finished. */
  get settled(): boolean {
    return this.base === this.next;
  }

  /**
   * Admits a job that an earlier run finished (recognised by `hash`): it takes its id and
   * counts as finished, so the next state file still records it, but it is not run or counted.
   */
  admitFinished(payload: unknown, hash: Buffer): number {
    const id = this.admit(payload);
    const slot = id & this.mask;
    this.state[slot] = DONE;
    this.hashes.set(hash, slot * JOB_HASH_BYTES);
    this.hashed[slot] = 1;
    // Fresh jobs are leased from the cursor on; this one is stepped over.
    if (this.cursor === id) this.cursor++;
    else this.finishedAhead++;
    if (id === this.base) this.advance();
    return id;
  }

  /** Admits a job fed from the iterator; the caller keeps `open < window`. */
  admit(payload: unknown): number {
    if (this.next - this.base >= this.capacity) this.grow();
    const id = this.next++;
    const slot = id & this.mask;
    this.payload[slot] = payload;
    this.state[slot] = QUEUED;
    this.attempts[slot] = 0;
    return id;
  }

  /**
   * Leases up to `max` queued jobs to `worker`: returned and retried jobs first, then a
   * contiguous run of fresh ones; suspects are left for `leaseSuspect`. With `elsewhere`, a job
   * this worker last held (it failed there) is left for another worker. Returns undefined when
   * nothing could be leased.
   */
  lease(worker: number, max: number, elsewhere = false): Lease | undefined {
    const runs: number[] = [];
    const payloads: unknown[] = [];
    let count = 0;
    const again = this.again;
    let skipped: number[] | undefined;
    while (count < max && this.againHead < again.length) {
      const id = again[this.againHead++]!;
      const slot = id & this.mask;
      if (elsewhere && this.owner[slot] === worker) {
        (skipped ??= []).push(id);
        continue;
      }
      const attempt = this.leaseAgain(worker, slot);
      payloads.push(this.materialize(slot));
      const n = runs.length;
      if (n > 0 && runs[n - 3]! + runs[n - 2]! === id && runs[n - 1] === attempt) runs[n - 2]!++;
      else runs.push(id, 1, attempt);
      count++;
    }
    if (skipped) {
      // Back where they were: the slots just before the head are free, having been read.
      this.againHead -= skipped.length;
      for (let i = 0; i < skipped.length; i++) again[this.againHead + i] = skipped[i]!;
    }
    if (this.againHead === again.length && this.againHead > 0) {
      again.length = 0;
      this.againHead = 0;
    }
    const fresh = Math.min(max - count, this.next - this.cursor - this.finishedAhead);
    if (fresh > 0 && this.finishedAhead === 0) {
      // The usual case: one contiguous run.
      const start = this.cursor;
      this.cursor += fresh;
      runs.push(start, fresh, 1);
      for (let id = start; id < start + fresh; id++) payloads.push(this.payload[id & this.mask]);
      this.fill(start, fresh, LEASED, worker, 1);
      count += fresh;
    } else if (fresh > 0) {
      count += this.leaseAround(worker, fresh, runs, payloads);
    }
    this.leased += count;
    return count === 0 ? undefined : { runs, payloads, count };
  }

  /** Leases `wanted` fresh jobs from the cursor on, stepping over jobs admitted as finished. */
  private leaseAround(worker: number, wanted: number, runs: number[], payloads: unknown[]): number {
    let id = this.cursor;
    let start = -1;
    for (let taken = 0; taken < wanted; id++) {
      const slot = id & this.mask;
      if (this.state[slot] === QUEUED) {
        if (start < 0) start = id;
        this.state[slot] = LEASED;
        this.owner[slot] = worker;
        this.attempts[slot] = 1;
        payloads.push(this.payload[slot]);
        taken++;
      } else {
        if (start >= 0) runs.push(start, id - start, 1);
        start = -1;
        this.finishedAhead--;
      }
    }
    if (start >= 0) runs.push(start, id - start, 1);
    this.cursor = id;
    return wanted;
  }

  /** Leases the oldest suspect, alone. Returns undefined when there is none. */
  leaseSuspect(worker: number): Lease | undefined {
    const id = this.suspects.shift();
    if (id === undefined) return undefined;
    const slot = id & this.mask;
    const attempt = this.leaseAgain(worker, slot);
    this.leased++;
    return { runs: [id, 1, attempt], payloads: [this.materialize(slot)], count: 1 };
  }

  /** Leases a job that was out before to `worker`; returns its attempt number. */
  private leaseAgain(worker: number, slot: number): number {
    this.state[slot] = LEASED;
    this.owner[slot] = worker;
    return ++this.attempts[slot]!;
  }

  /**
   * Marks `count` ids from `start` done, if each is leased to `worker`. Returns how many were
   * accepted; the others are left exactly as they were.
   */
  complete(worker: number, start: number, count: number): number {
    let accepted = 0;
    const end = start + count;
    for (let id = Math.max(start, this.base); id < end && id < this.next; id++) {
      const slot = id & this.mask;
      if (this.state[slot] !== LEASED || this.owner[slot] !== worker) continue;
      this.state[slot] = DONE;
      accepted++;
    }
    this.doneCount += accepted;
    this.leased -= accepted;
    if (start <= this.base) this.advance();
    return accepted;
  }

  /** Whether `id` has finished (done or failed for good). */
  isFinished(id: number): boolean {
    if (id < this.base) return id >= this.firstId;
    if (id >= this.next) return false;
    const state = this.state[id & this.mask];
    return state === DONE || state === FAILED;
  }

  /** Whether `id` is leased to `worker` right now. */
  isLeasedTo(worker: number, id: number): boolean {
    if (id < this.base || id >= this.next) return false;
    const slot = id & this.mask;
    return this.state[slot] === LEASED && this.owner[slot] === worker;
  }

  /** Attempts made so far on a leased or queued job. */
  attemptsOf(id: number): number {
    return this.attempts[id & this.mask]!;
  }

  /** The payload of an open job (undefined once a finished job's payload was dropped). */
  payloadOf(id: number): unknown {
    return this.materialize(id & this.mask);
  }

  /**
   * Records that a lease went out as `bytes`: its jobs' payload objects are let go, and decoded
   * from `bytes` again should they be needed.
   */
  attach(lease: Lease, bytes: Buffer): void {
    if (!this.decodeBatch) return;
    const batch = new SentBatch(bytes);
    const { runs } = lease;
    let k = 0;
    for (let r = 0; r < runs.length; r += 3) {
      for (let id = runs[r]!, end = id + runs[r + 1]!; id < end; id++, k++) {
        const slot = id & this.mask;
        this.payload[slot] = batch;
        this.position[slot] = k;
      }
    }
  }

  private materialize(slot: number): unknown {
    return this.resolvePayload(this.payload[slot], this.position[slot]!);
  }

  private resolvePayload(value: unknown, position: number): unknown {
    if (value === DROPPED) return undefined;
    if (!(value instanceof SentBatch)) return value;
    let decoded = this.decoded;
    if (decoded?.batch !== value) {
      decoded = { batch: value, payloads: this.decodeBatch!(value.bytes) };
      this.decoded = decoded;
    }
    return decoded.payloads[position];
  }

  /** Records a leased job as failed for good (the caller has written it to the failed log). */
  fail(worker: number, id: number): boolean {
    if (!this.isLeasedTo(worker, id)) return false;
    this.state[id & this.mask] = FAILED;
    this.failedCount++;
    this.leased--;
    if (id === this.base) this.advance();
    return true;
  }

  /**
   * Puts a leased job back in the queue, ahead of fresh jobs. `countAttempt` is false for a job
   * the worker never started (returned unstarted), so giving it back costs it nothing; `suspect`
   * is for a job whose worker died holding it.
   */
  requeue(worker: number, id: number, countAttempt: boolean, suspect = false): boolean {
    if (!this.isLeasedTo(worker, id)) return false;
    const slot = id & this.mask;
    this.state[slot] = QUEUED;
    if (!countAttempt) this.attempts[slot]!--;
    (suspect ? this.suspects : this.again).push(id);
    this.leased--;
    return true;
  }

  /** Takes a leased job out of circulation until `unpark` (a retry waiting out its backoff). */
  park(worker: number, id: number): boolean {
    if (!this.isLeasedTo(worker, id)) return false;
    this.state[id & this.mask] = PARKED;
    this.leased--;
    return true;
  }

  unpark(id: number): void {
    if (id < this.base || id >= this.next || this.state[id & this.mask] !== PARKED) return;
    this.state[id & this.mask] = QUEUED;
    this.again.push(id);
  }

  /** Every id leased to `worker`, in id order (to give back when the worker is gone). */
  leasedTo(worker: number): number[] {
    const ids: number[] = [];
    for (let id = this.base; id < this.cursor; id++) {
      const slot = id & this.mask;
      if (this.state[slot] === LEASED && this.owner[slot] === worker) ids.push(id);
    }
    return ids;
  }

  /**
   * What a checkpoint records: the resume point (the job at the watermark, or the last finished
   * job when nothing is open; undefined when this run has admitted nothing yet) and the ids
   * finished above it with their payload hashes. A finished job is hashed once, at the first
   * checkpoint that sees it, and its payload is dropped then: finished jobs waiting for a slow
   * one below them cost 8 bytes each, not their payload.
   *
   * `beforeWatermark` resumes from the last finished job even when a job is open: for when the
   * job at the watermark cannot be recorded (it cannot be serialised). If that job's payload was
   * already dropped, there is no resume point: the caller keeps the one it recorded before.
   */
  snapshot(hash: (payload: unknown) => Buffer, beforeWatermark = false): LedgerSnapshot {
    const completed = new IdRunsBuilder();
    const parts: Uint8Array[] = [];
    let resume: { id: number; payload: unknown } | undefined;
    if (this.base < this.next && !beforeWatermark) {
      resume = { id: this.base, payload: this.materialize(this.base & this.mask) };
    } else if (this.lastFinished) {
      const last = this.lastFinished;
      const payload = this.resolvePayload(last.payload, last.position);
      last.hash ??= hash(payload);
      if (last.payload !== DROPPED) resume = { id: last.id, payload };
      completed.add(last.id);
      parts.push(last.hash);
    }
    for (let id = this.base + 1; id < this.next; id++) {
      const slot = id & this.mask;
      const state = this.state[slot];
      if (state !== DONE && state !== FAILED) continue;
      const at = slot * JOB_HASH_BYTES;
      if (!this.hashed[slot]) {
        this.hashes.set(hash(this.materialize(slot)), at);
        this.hashed[slot] = 1;
        // The newest job keeps its payload: if the watermark reaches it, it is the resume point.
        if (id !== this.next - 1) this.payload[slot] = DROPPED;
      }
      completed.add(id);
      parts.push(this.hashes.subarray(at, at + JOB_HASH_BYTES));
    }
    // The decoded batches were for this snapshot: let them go.
    this.decoded = undefined;
    return { resume, completed: completed.take(), hashes: Buffer.concat(parts) };
  }

  private advance(): void {
    const mask = this.mask;
    let id = this.base;
    const next = this.next;
    while (id < next) {
      const slot = id & mask;
      const state = this.state[slot];
      if (state !== DONE && state !== FAILED) break;
      id++;
    }
    if (id === this.base) return;
    const lastSlot = (id - 1) & mask;
    this.lastFinished = { id: id - 1, payload: this.payload[lastSlot], position: this.position[lastSlot]! };
    if (this.hashed[lastSlot]) {
      const at = lastSlot * JOB_HASH_BYTES;
      this.lastFinished.hash = Buffer.from(this.hashes.subarray(at, at + JOB_HASH_BYTES));
    }
    for (let k = this.base; k < id; k++) {
      const slot = k & mask;
      this.payload[slot] = undefined;
      this.state[slot] = EMPTY;
      this.hashed[slot] = 0;
    }
    this.base = id;
    if (this.cursor < id) {
      // Only jobs admitted as finished lie between the cursor and the watermark it just passed.
      this.finishedAhead -= id - this.cursor;
      this.cursor = id;
    }
  }

  private fill(start: number, count: number, state: number, owner: number, attempt: number): void {
    const from = start & this.mask;
    const first = Math.min(count, this.capacity - from);
    this.state.fill(state, from, from + first);
    this.owner.fill(owner, from, from + first);
    this.attempts.fill(attempt, from, from + first);
    if (first < count) {
      this.state.fill(state, 0, count - first);
      this.owner.fill(owner, 0, count - first);
      this.attempts.fill(attempt, 0, count - first);
    }
  }

  private grow(): void {
    const capacity = this.capacity * 2;
    const mask = capacity - 1;
    const payload = new Array<unknown>(capacity);
    const position = new Int32Array(capacity);
    const state = new Uint8Array(capacity);
    const owner = new Int32Array(capacity);
    const attempts = new Uint8Array(capacity);
    const hashes = new Uint8Array(capacity * JOB_HASH_BYTES);
    const hashed = new Uint8Array(capacity);
    for (let id = this.base; id < this.next; id++) {
      const from = id & this.mask;
      const to = id & mask;
      payload[to] = this.payload[from];
      position[to] = this.position[from]!;
      state[to] = this.state[from]!;
      owner[to] = this.owner[from]!;
      attempts[to] = this.attempts[from]!;
      hashed[to] = this.hashed[from]!;
      const at = from * JOB_HASH_BYTES;
      hashes.set(this.hashes.subarray(at, at + JOB_HASH_BYTES), to * JOB_HASH_BYTES);
    }
    this.capacity = capacity;
    this.mask = mask;
    this.payload = payload;
    this.position = position;
    this.state = state;
    this.owner = owner;
    this.attempts = attempts;
    this.hashes = hashes;
    this.hashed = hashed;
  }
}

export interface LedgerSnapshot {
  resume: { id: number; payload: unknown } | undefined;
  completed: IdRuns;
  /** One 8-byte hash per id of `completed`, in the same order. */
  hashes: Buffer;
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
