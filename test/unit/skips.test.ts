/**
 * Skips: on resume, jobs recorded as finished are recognised by payload hash and each is
 * skipped exactly once.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { JOB_HASH_BYTES, hashJob } from "../../src/codec.ts";
import { Skips } from "../../src/state/skips.ts";

const hashesOf = (...jobs: unknown[]): Buffer => Buffer.concat(jobs.map((job) => hashJob(job)));

/** The 8-byte hashes in `buffer`, as sorted hex strings (a multiset). */
function hashList(buffer: Buffer): string[] {
  assert.equal(buffer.length % JOB_HASH_BYTES, 0);
  const out: string[] = [];
  for (let at = 0; at < buffer.length; at += JOB_HASH_BYTES) out.push(buffer.toString("hex", at, at + JOB_HASH_BYTES));
  return out.sort();
}

test("a recorded job is skipped once, and met again it passes", () => {
  const skips = new Skips(hashesOf("a"), 100);
  assert.deepEqual(skips.take("a"), hashJob("a"));
  assert.equal(skips.take("a"), undefined);
});

test("a job recorded twice is skipped exactly twice", () => {
  const skips = new Skips(hashesOf({ n: 1 }, "b", { n: 1 }), 100);
  assert.equal(skips.pending, 3);
  assert.deepEqual(skips.take({ n: 1 }), hashJob({ n: 1 }));
  assert.deepEqual(skips.take({ n: 1 }), hashJob({ n: 1 }));
  assert.equal(skips.take({ n: 1 }), undefined);
  assert.equal(skips.pending, 1);
});

test("recorded jobs are recognised in whatever order the iterator yields them", () => {
  const skips = new Skips(hashesOf(1, 2, 3), 100);
  assert.deepEqual([3, 1, 2].map((job) => skips.take(job)), [3, 1, 2].map(hashJob));
  assert.equal(skips.pending, 0);
});

test("jobs that were not recorded pass and leave the pending count alone", () => {
  const skips = new Skips(hashesOf("a", "b"), 100);
  assert.equal(skips.take("c"), undefined);
  assert.equal(skips.take(new Map([["a", 1]])), undefined);
  assert.equal(skips.take(["a"]), undefined);
  assert.equal(skips.pending, 2);
  assert.equal(skips.active, true);
});

test("skips are inactive once every recorded job was met", () => {
  const skips = new Skips(hashesOf("a"), 100);
  assert.equal(skips.active, true);
  skips.take("a");
  assert.equal(skips.active, false);
  assert.deepEqual(skips.remaining(), Buffer.alloc(0));
});

test("skips with nothing recorded are inactive from the start", () => {
  const skips = new Skips(Buffer.alloc(0), 100);
  assert.equal(skips.active, false);
  assert.equal(skips.pending, 0);
});

test("once the budget of checked jobs is spent the skips stop checking and carry nothing forward", () => {
  const skips = new Skips(hashesOf("a", "b"), 3);
  skips.take("x");
  skips.take("y");
  assert.equal(skips.active, true);
  skips.take("z");
  assert.equal(skips.active, false, "three jobs checked: the budget is spent");
  assert.equal(skips.pending, 2);
  assert.deepEqual(skips.remaining(), Buffer.alloc(0));
});

test("remaining returns the recorded hashes not met yet, each as often as it is still expected", () => {
  const skips = new Skips(hashesOf("a", "b", "b", "c"), 100);
  skips.take("b");
  skips.take("c");
  skips.take("unrelated");
  assert.deepEqual(hashList(skips.remaining()), hashList(hashesOf("a", "b")));
  assert.equal(skips.pending, 2);
});
