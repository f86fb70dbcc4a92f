/**
 * Jobs a resumed run must not run again: those recorded as finished above the resume point.
 * They are recognised by payload hash, so a resumed iterator that yields them in another order
 * (a shifted query, say) still skips each exactly once.
 */
import { JOB_HASH_BYTES, hashJob } from "../codec.ts";

export class Skips {
  private readonly counts = new Map<string, number>();
  private left: number;
  private budget: number;

  /**
   * `hashes` is a run of 8-byte hashes. Only the first `budget` jobs yielded are checked: the
   * recorded jobs lie within one window of the resume point, so a job not met by then was
   * dropped from the iterator, and hashing every later job would be wasted work.
   */
  constructor(hashes: Buffer, budget: number) {
    for (let at = 0; at + JOB_HASH_BYTES <= hashes.length; at += JOB_HASH_BYTES) {
      const key = hashes.toString("hex", at, at + JOB_HASH_BYTES);
      this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    }
    this.left = hashes.length / JOB_HASH_BYTES;
    this.budget = budget;
  }

  /** Jobs still expected. */
  get pending(): number {
    return this.left;
  }

  get active(): boolean {
    return this.left > 0 && this.budget > 0;
  }

  /** The hash of `job` if an earlier run finished it, else undefined; each recorded job matches once. */
  take(job: unknown): Buffer | undefined {
    this.budget--;
    const hash = hashJob(job);
    const key = hash.toString("hex");
    const count = this.counts.get(key);
    if (count === undefined) return undefined;
    if (count === 1) this.counts.delete(key);
    else this.counts.set(key, count - 1);
    this.left--;
    return hash;
  }

  /** Hashes not met yet, to carry into the next checkpoint while they may still be met. */
  remaining(): Buffer {
    if (!this.active) return Buffer.alloc(0);
    const parts: Buffer[] = [];
    for (const [key, count] of this.counts) {
      const bytes = Buffer.from(key, "hex");
      for (let i = 0; i < count; i++) parts.push(bytes);
    }
    return Buffer.concat(parts);
  }
}
