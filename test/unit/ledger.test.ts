/**
 * The Ledger: ids, leases, acknowledgements, the watermark, ring growth and the snapshot a
 * checkpoint records.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { hashJob } from "../../src/codec.ts";
import { Ledger } from "../../src/master/ledger.ts";
import type { Lease } from "../../src/master/ledger.ts";

const W1 = 1;
const W2 = 2;

/** A ledger with `count` jobs admitted, payloads "p<id>". */
function ledgerWith(count: number, firstId = 0, window = 1000): Ledger {
  const ledger = new Ledger({ firstId, window });
  for (let i = 0; i < count; i++) ledger.admit(`p${firstId + i}`);
  return ledger;
}

/** `[start, count, attempt, …]` as `[id, attempt]` pairs. */
function leasedIds(lease: Lease | undefined): [number, number][] {
  assert.ok(lease, "expected a lease");
  const out: [number, number][] = [];
  for (let i = 0; i < lease.runs.length; i += 3) {
    for (let k = 0; k < lease.runs[i + 1]!; k++) out.push([lease.runs[i]! + k, lease.runs[i + 2]!]);
  }
  return out;
}

/** `[start, count, …]` as ids. */
function expand(runs: number[]): number[] {
  const ids: number[] = [];
  for (let i = 0; i < runs.length; i += 2) for (let k = 0; k < runs[i + 1]!; k++) ids.push(runs[i]! + k);
  return ids;
}

/** A small deterministic PRNG (mulberry32). */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

function shuffle<T>(items: T[], rnd: (n: number) => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rnd(i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

// ---- admit and lease -----------------------------------------------------------------------

test("a window below 1 is refused", () => {
  assert.throws(() => new Ledger({ firstId: 0, window: 0 }), RangeError);
  assert.throws(() => new Ledger({ firstId: 0, window: 1.5 }), RangeError);
});

test("admitted jobs get consecutive ids from firstId and wait in the queue", () => {
  const ledger = new Ledger({ firstId: 100, window: 10 });
  assert.equal(ledger.settled, true);
  assert.deepEqual([ledger.admit("a"), ledger.admit("b"), ledger.admit("c")], [100, 101, 102]);
  assert.equal(ledger.base, 100);
  assert.equal(ledger.next, 103);
  assert.equal(ledger.open, 3);
  assert.equal(ledger.queued, 3);
  assert.equal(ledger.admitted, 3);
  assert.equal(ledger.settled, false);
  assert.equal(ledger.payloadOf(101), "b");
});

test("a lease hands out fresh jobs as one contiguous run at attempt 1 with their payloads in order", () => {
  const ledger = ledgerWith(5, 10);
  const lease = ledger.lease(W1, 3);
  assert.deepEqual(lease, { runs: [10, 3, 1], payloads: ["p10", "p11", "p12"], count: 3 });
  assert.equal(ledger.leased, 3);
  assert.equal(ledger.queued, 2);
  assert.equal(ledger.cursor, 13);
  assert.equal(ledger.isLeasedTo(W1, 11), true);
  assert.equal(ledger.isLeasedTo(W2, 11), false);
  assert.equal(ledger.attemptsOf(12), 1);
});

test("a lease is undefined when nothing is queued or no credit is given", () => {
  const ledger = ledgerWith(2);
  assert.equal(ledger.lease(W1, 0), undefined);
  assert.ok(ledger.lease(W1, 5));
  assert.equal(ledger.lease(W1, 5), undefined);
  assert.equal(ledger.leased, 2);
});

test("requeued jobs are handed out before fresh ones", () => {
  const ledger = ledgerWith(4);
  ledger.lease(W1, 4);
  ledger.admit("p4");
  ledger.admit("p5");
  assert.equal(ledger.requeue(W1, 1, true), true);
  assert.equal(ledger.requeue(W1, 2, true), true);
  assert.equal(ledger.queued, 4);
  const lease = ledger.lease(W2, 10);
  assert.deepEqual(lease, { runs: [1, 2, 2, 4, 2, 1], payloads: ["p1", "p2", "p4", "p5"], count: 4 });
});

test("requeued jobs keep the order they were given back in, and a short lease takes only the first of them", () => {
  const ledger = ledgerWith(6);
  ledger.lease(W1, 6);
  ledger.requeue(W1, 4, true);
  ledger.requeue(W1, 1, true);
  ledger.requeue(W1, 3, true);
  assert.deepEqual(leasedIds(ledger.lease(W2, 2)), [
    [4, 2],
    [1, 2],
  ]);
  assert.deepEqual(leasedIds(ledger.lease(W2, 2)), [[3, 2]]);
  assert.equal(ledger.queued, 0);
});

test("consecutive requeued ids with the same attempt merge into one run, other attempts start a new run", () => {
  const ledger = ledgerWith(4);
  ledger.lease(W1, 4);
  ledger.requeue(W1, 0, true); // attempt 2 next
  ledger.requeue(W1, 1, true); // attempt 2 next: merges with 0
  ledger.requeue(W1, 2, false); // attempt 1 next: a new run
  ledger.requeue(W1, 3, false); // attempt 1 next: merges with 2
  const lease = ledger.lease(W2, 10);
  assert.deepEqual(lease?.runs, [0, 2, 2, 2, 2, 1]);
  assert.deepEqual(lease?.payloads, ["p0", "p1", "p2", "p3"]);
});

test("requeueing without counting the attempt gives the attempt back", () => {
  const ledger = ledgerWith(1);
  ledger.lease(W1, 1);
  assert.equal(ledger.attemptsOf(0), 1);
  ledger.requeue(W1, 0, false);
  assert.equal(ledger.attemptsOf(0), 0);
  assert.deepEqual(ledger.lease(W2, 1)?.runs, [0, 1, 1]);
  assert.equal(ledger.attemptsOf(0), 1);
});

test("each requeue that counts the attempt makes the next lease one attempt later", () => {
  const ledger = ledgerWith(1);
  ledger.lease(W1, 1);
  for (let attempt = 2; attempt <= 5; attempt++) {
    ledger.requeue(W1, 0, true);
    assert.deepEqual(ledger.lease(W1, 1)?.runs, [0, 1, attempt]);
    assert.equal(ledger.attemptsOf(0), attempt);
  }
});

// ---- acknowledgements and the watermark ----------------------------------------------------

test("completing the job at the watermark advances it over every finished job above it", () => {
  const ledger = ledgerWith(6);
  ledger.lease(W1, 6);
  assert.equal(ledger.complete(W1, 1, 2), 2);
  assert.equal(ledger.base, 0);
  assert.equal(ledger.complete(W1, 4, 1), 1);
  assert.equal(ledger.complete(W1, 0, 1), 1);
  assert.equal(ledger.base, 3);
  assert.equal(ledger.complete(W1, 3, 1), 1);
  assert.equal(ledger.base, 5);
  assert.equal(ledger.doneCount, 5);
  assert.equal(ledger.open, 1);
});

test("out-of-order completion leaves the watermark at the lowest unfinished job", () => {
  const ledger = ledgerWith(5);
  ledger.lease(W1, 5);
  for (const id of [4, 2, 3, 1]) {
    assert.equal(ledger.complete(W1, id, 1), 1);
    assert.equal(ledger.base, 0);
  }
  assert.equal(ledger.doneCount, 4);
  assert.equal(ledger.settled, false);
  ledger.complete(W1, 0, 1);
  assert.equal(ledger.base, 5);
  assert.equal(ledger.settled, true);
});

test("the watermark advances over failed jobs as over done ones", () => {
  const ledger = ledgerWith(4);
  ledger.lease(W1, 4);
  assert.equal(ledger.fail(W1, 2), true);
  assert.equal(ledger.complete(W1, 1, 1), 1);
  assert.equal(ledger.base, 0);
  assert.equal(ledger.fail(W1, 0), true);
  assert.equal(ledger.base, 3);
  assert.equal(ledger.failedCount, 2);
  assert.equal(ledger.doneCount, 1);
  assert.equal(ledger.leased, 1);
});

test("a forged acknowledgement for a job leased to another worker is rejected and the job stays leased", () => {
  const ledger = ledgerWith(2);
  ledger.lease(W1, 2);
  assert.equal(ledger.complete(W2, 0, 2), 0);
  assert.equal(ledger.base, 0);
  assert.equal(ledger.doneCount, 0);
  assert.equal(ledger.leased, 2);
  assert.equal(ledger.isLeasedTo(W1, 0), true);
  assert.equal(ledger.isLeasedTo(W1, 1), true);
  // The real owner's acknowledgement still counts.
  assert.equal(ledger.complete(W1, 0, 2), 2);
  assert.equal(ledger.base, 2);
});

test("an acknowledgement covering ids of two workers accepts only those of the acknowledging worker", () => {
  const ledger = ledgerWith(4);
  ledger.lease(W1, 2);
  ledger.lease(W2, 2);
  assert.equal(ledger.complete(W1, 0, 4), 2);
  assert.equal(ledger.base, 2);
  assert.equal(ledger.isLeasedTo(W2, 2), true);
  assert.equal(ledger.isLeasedTo(W2, 3), true);
  assert.equal(ledger.leased, 2);
});

test("an acknowledgement for ids outside the window is rejected and changes nothing", () => {
  const ledger = ledgerWith(4);
  ledger.lease(W1, 4);
  ledger.complete(W1, 0, 2);
  assert.equal(ledger.base, 2);
  assert.equal(ledger.complete(W1, 0, 2), 0, "below the watermark (already done)");
  assert.equal(ledger.complete(W1, 4, 10), 0, "at or above the newest id");
  assert.equal(ledger.complete(W1, 1_000_000, 1), 0, "far above");
  assert.equal(ledger.complete(W1, -5, 3), 0, "negative");
  assert.equal(ledger.doneCount, 2);
  assert.equal(ledger.leased, 2);
  assert.equal(ledger.base, 2);
  assert.equal(ledger.next, 4);
  assert.deepEqual(ledger.leasedTo(W1), [2, 3]);
});

test("an acknowledgement for a queued job that was never leased is rejected", () => {
  const ledger = ledgerWith(3);
  ledger.lease(W1, 1);
  assert.equal(ledger.complete(W1, 1, 2), 0);
  assert.equal(ledger.queued, 2);
  assert.equal(ledger.doneCount, 0);
  assert.deepEqual(leasedIds(ledger.lease(W2, 5)), [
    [1, 1],
    [2, 1],
  ]);
});

test("a repeated acknowledgement is accepted only once", () => {
  const ledger = ledgerWith(3);
  ledger.lease(W1, 3);
  assert.equal(ledger.complete(W1, 1, 1), 1);
  assert.equal(ledger.complete(W1, 1, 1), 0);
  assert.equal(ledger.doneCount, 1);
  assert.equal(ledger.leased, 2);
});

test("a job requeued and leased again can only be acknowledged by its new worker", () => {
  const ledger = ledgerWith(1);
  ledger.lease(W1, 1);
  ledger.requeue(W1, 0, true);
  ledger.lease(W2, 1);
  assert.equal(ledger.complete(W1, 0, 1), 0);
  assert.equal(ledger.complete(W2, 0, 1), 1);
  assert.equal(ledger.settled, true);
});

test("fail, requeue and park refuse a job not leased to the worker and leave it as it was", () => {
  const ledger = ledgerWith(2);
  ledger.lease(W1, 1); // 0 leased to W1, 1 queued
  for (const id of [0, 1, 7]) {
    assert.equal(ledger.fail(W2, id), false);
    assert.equal(ledger.requeue(W2, id, true), false);
    assert.equal(ledger.park(W2, id), false);
  }
  assert.equal(ledger.fail(W1, 1), false, "queued, not leased");
  assert.equal(ledger.failedCount, 0);
  assert.equal(ledger.leased, 1);
  assert.equal(ledger.queued, 1);
  assert.equal(ledger.isLeasedTo(W1, 0), true);
  assert.equal(ledger.attemptsOf(0), 1);
});

test("the leased counter follows leases, completions, failures, requeues and parks", () => {
  const ledger = ledgerWith(10);
  ledger.lease(W1, 6);
  ledger.lease(W2, 2);
  assert.equal(ledger.leased, 8);
  ledger.complete(W1, 0, 2);
  assert.equal(ledger.leased, 6);
  ledger.fail(W1, 2);
  assert.equal(ledger.leased, 5);
  ledger.requeue(W1, 3, true);
  assert.equal(ledger.leased, 4);
  ledger.park(W1, 4);
  assert.equal(ledger.leased, 3);
  ledger.lease(W2, 10); // 3 (requeued), 8, 9
  assert.equal(ledger.leased, 6);
  ledger.unpark(4);
  assert.equal(ledger.leased, 6);
});

test("a parked job is out of circulation until unpark queues it again ahead of fresh jobs", () => {
  const ledger = ledgerWith(3);
  ledger.lease(W1, 1);
  assert.equal(ledger.park(W1, 0), true);
  assert.equal(ledger.isLeasedTo(W1, 0), false);
  assert.equal(ledger.queued, 2);
  assert.deepEqual(leasedIds(ledger.lease(W2, 1)), [[1, 1]]);
  ledger.unpark(0);
  assert.equal(ledger.queued, 2);
  assert.deepEqual(leasedIds(ledger.lease(W2, 5)), [
    [0, 2],
    [2, 1],
  ]);
});

test("unpark ignores a job that is not parked", () => {
  const ledger = ledgerWith(2);
  ledger.lease(W1, 1);
  ledger.unpark(0); // leased
  ledger.unpark(1); // queued
  ledger.unpark(99); // not admitted
  assert.equal(ledger.queued, 1);
  assert.equal(ledger.isLeasedTo(W1, 0), true);
  assert.deepEqual(leasedIds(ledger.lease(W2, 5)), [[1, 1]]);
});

test("leasedTo lists exactly the ids leased to that worker right now, in id order", () => {
  const ledger = ledgerWith(8);
  ledger.lease(W1, 3); // 0 1 2
  ledger.lease(W2, 3); // 3 4 5
  ledger.lease(W1, 2); // 6 7
  ledger.requeue(W2, 4, true);
  ledger.lease(W1, 1); // 4
  ledger.complete(W1, 1, 1);
  ledger.park(W1, 6);
  assert.deepEqual(ledger.leasedTo(W1), [0, 2, 4, 7]);
  assert.deepEqual(ledger.leasedTo(W2), [3, 5]);
  assert.deepEqual(ledger.leasedTo(3), []);
});

// ---- ring growth ---------------------------------------------------------------------------

test("the ring grows past 1024 slots with jobs open across the wrap, and every job keeps its state", () => {
  const rnd = prng(7);
  const ledger = new Ledger({ firstId: 0, window: 5000 });
  for (let i = 0; i < 1000; i++) ledger.admit({ n: i });
  ledger.lease(W1, 1000);
  ledger.complete(W1, 0, 900);
  assert.equal(ledger.base, 900);
  // 900..3999 open: they wrap the 1024-slot ring and make it grow twice.
  for (let i = 1000; i < 4000; i++) ledger.admit({ n: i });
  assert.equal(ledger.open, 3100);
  ledger.lease(W2, 1500); // 1000..2499 to W2; 900..999 still with W1
  for (let id = 900; id < 4000; id += 97) assert.deepEqual(ledger.payloadOf(id), { n: id });
  assert.equal(ledger.isLeasedTo(W1, 950), true);
  assert.equal(ledger.isLeasedTo(W2, 2000), true);
  assert.equal(ledger.attemptsOf(2499), 1);
  assert.equal(ledger.queued, 1500);
  ledger.lease(W1, 1500); // 2500..3999
  const owner = (id: number) => (id < 1000 || id >= 2500 ? W1 : W2);
  const order = shuffle(
    Array.from({ length: 3100 }, (_, i) => 900 + i),
    rnd,
  );
  const finished = new Set<number>();
  for (const id of order) {
    assert.equal(ledger.complete(owner(id) === W1 ? W2 : W1, id, 1), 0, `forged ack of ${id}`);
    assert.equal(ledger.complete(owner(id), id, 1), 1, `ack of ${id}`);
    finished.add(id);
    let expected = 900;
    while (finished.has(expected)) expected++;
    assert.equal(ledger.base, expected);
  }
  assert.equal(ledger.settled, true);
  assert.equal(ledger.doneCount, 4000);
  assert.equal(ledger.leased, 0);
  // The grown ring keeps working: another full lap of jobs.
  for (let i = 4000; i < 9000; i++) ledger.admit(i);
  assert.deepEqual(ledger.lease(W1, 5000)?.runs, [4000, 5000, 1]);
  assert.equal(ledger.complete(W1, 4000, 5000), 5000);
  assert.equal(ledger.base, 9000);
});

test("a ring of one slot (window 1) grows as needed and keeps ids apart", () => {
  const ledger = new Ledger({ firstId: 3, window: 1 });
  ledger.admit("a");
  ledger.admit("b");
  ledger.admit("c");
  assert.deepEqual(ledger.lease(W1, 3)?.payloads, ["a", "b", "c"]);
  assert.equal(ledger.complete(W1, 4, 1), 1);
  assert.equal(ledger.isLeasedTo(W1, 3), true);
  assert.equal(ledger.isLeasedTo(W1, 5), true);
});

test("a random mix of operations agrees with a simple model of the ledger", () => {
  const rnd = prng(2024);
  for (let round = 0; round < 12; round++) {
    const firstId = rnd(3000);
    const window = [1, 7, 300, 1500][round % 4]!;
    const ledger = new Ledger({ firstId, window });
    type Job = { state: "queued" | "leased" | "done" | "failed" | "parked"; owner: number; attempts: number };
    const jobs = new Map<number, Job>();
    const again: number[] = [];
    let base = firstId;
    let next = firstId;
    let cursor = firstId;
    const advance = () => {
      while (base < next && ["done", "failed"].includes(jobs.get(base)!.state)) base++;
    };
    for (let step = 0; step < 600; step++) {
      const op = rnd(10);
      const worker = rnd(3);
      if (op < 3) {
        for (let k = rnd(60); k > 0 && next - base < window; k--) {
          assert.equal(ledger.admit(`p${next}`), next);
          jobs.set(next++, { state: "queued", owner: -1, attempts: 0 });
        }
      } else if (op < 5) {
        const max = rnd(50);
        const expected: [number, number][] = [];
        while (expected.length < max && again.length > 0) {
          const id = again.shift()!;
          const job = jobs.get(id)!;
          Object.assign(job, { state: "leased", owner: worker, attempts: job.attempts + 1 });
          expected.push([id, job.attempts]);
        }
        while (expected.length < max && cursor < next) {
          Object.assign(jobs.get(cursor)!, { state: "leased", owner: worker, attempts: 1 });
          expected.push([cursor++, 1]);
        }
        const lease = ledger.lease(worker, max);
        if (expected.length === 0) assert.equal(lease, undefined);
        else {
          assert.deepEqual(leasedIds(lease), expected);
          assert.deepEqual(
            lease?.payloads,
            expected.map(([id]) => `p${id}`),
          );
        }
      } else if (op < 7) {
        const start = base - 3 + rnd(next - base + 6);
        const count = 1 + rnd(12);
        let accepted = 0;
        for (let id = Math.max(start, base); id < start + count; id++) {
          const job = jobs.get(id);
          if (job?.state === "leased" && job.owner === worker) {
            job.state = "done";
            accepted++;
          }
        }
        assert.equal(ledger.complete(worker, start, count), accepted);
        advance();
      } else {
        const id = base + rnd(Math.max(1, next - base));
        const job = jobs.get(id);
        const mine = id < next && job?.state === "leased" && job.owner === worker;
        if (op === 7) {
          assert.equal(ledger.fail(worker, id), mine);
          if (mine) job.state = "failed";
          advance();
        } else if (op === 8) {
          const countAttempt = rnd(2) === 0;
          assert.equal(ledger.requeue(worker, id, countAttempt), mine);
          if (mine) {
            job.state = "queued";
            if (!countAttempt) job.attempts--;
            again.push(id);
          }
        } else if (rnd(2) === 0) {
          assert.equal(ledger.park(worker, id), mine);
          if (mine) job.state = "parked";
        } else {
          if (id < next && job?.state === "parked") {
            job.state = "queued";
            again.push(id);
          }
          ledger.unpark(id);
        }
      }
      assert.equal(ledger.base, base);
      assert.equal(ledger.next, next);
      assert.equal(ledger.queued, next - cursor + again.length);
      if (step % 20 === 0) {
        const open = [...jobs].filter(([id]) => id >= base);
        assert.equal(ledger.leased, open.filter(([, j]) => j.state === "leased").length);
        for (const w of [0, 1, 2]) {
          const mineIds = open.filter(([, j]) => j.state === "leased" && j.owner === w).map(([id]) => id);
          assert.deepEqual(ledger.leasedTo(w), mineIds);
        }
        const snapshot = ledger.snapshot(hashJob);
        if (base < next) {
          assert.equal(snapshot.resume?.id, base);
          const finished = open.filter(([id, j]) => id > base && (j.state === "done" || j.state === "failed"));
          assert.deepEqual(
            expand(snapshot.completed),
            finished.map(([id]) => id),
          );
        }
      }
    }
  }
});

// ---- snapshot ------------------------------------------------------------------------------

test("a snapshot of a ledger that has admitted nothing has no resume point and nothing completed", () => {
  const ledger = new Ledger({ firstId: 42, window: 10 });
  assert.deepEqual(ledger.snapshot(hashJob), { resume: undefined, completed: [], hashes: Buffer.alloc(0) });
});

test("a snapshot resumes at the job at the watermark and lists the finished ids above it with one hash each, in order", () => {
  const ledger = ledgerWith(7, 20);
  ledger.lease(W1, 7);
  ledger.complete(W1, 22, 1);
  ledger.fail(W1, 23);
  ledger.complete(W1, 25, 2);
  const snapshot = ledger.snapshot(hashJob);
  assert.deepEqual(snapshot.resume, { id: 20, payload: "p20" });
  assert.deepEqual(snapshot.completed, [22, 2, 25, 2]);
  assert.deepEqual(snapshot.hashes, Buffer.concat(["p22", "p23", "p25", "p26"].map(hashJob)));
});

test("when nothing is open the snapshot resumes at the last finished job and counts it as completed", () => {
  const ledger = ledgerWith(3);
  ledger.lease(W1, 3);
  ledger.complete(W1, 0, 3);
  const snapshot = ledger.snapshot(hashJob);
  assert.deepEqual(snapshot.resume, { id: 2, payload: "p2" });
  assert.deepEqual(snapshot.completed, [2, 1]);
  assert.deepEqual(snapshot.hashes, hashJob("p2"));
});

test("after a snapshot the payloads of finished jobs above the watermark are dropped, except the newest job's", () => {
  const ledger = ledgerWith(5);
  ledger.lease(W1, 5);
  ledger.complete(W1, 1, 1);
  ledger.fail(W1, 2);
  ledger.complete(W1, 4, 1);
  assert.equal(ledger.payloadOf(1), "p1", "kept until a snapshot hashes it");
  ledger.snapshot(hashJob);
  assert.equal(ledger.payloadOf(1), undefined);
  assert.equal(ledger.payloadOf(2), undefined);
  assert.equal(ledger.payloadOf(4), "p4", "the newest job");
  assert.equal(ledger.payloadOf(0), "p0", "open at the watermark");
  assert.equal(ledger.payloadOf(3), "p3", "open");
});

test("a finished job is hashed once, by the first snapshot that sees it", () => {
  const ledger = ledgerWith(4);
  ledger.lease(W1, 4);
  ledger.complete(W1, 1, 2);
  const seen: unknown[] = [];
  const hash = (payload: unknown) => {
    seen.push(payload);
    return hashJob(payload);
  };
  const first = ledger.snapshot(hash);
  assert.deepEqual(seen, ["p1", "p2"]);
  const second = ledger.snapshot(hash);
  assert.deepEqual(seen, ["p1", "p2"]);
  assert.deepEqual(second, first);
});

test("when the watermark passes the newest job after a snapshot, the next snapshot resumes at it with its payload and hash", () => {
  const ledger = ledgerWith(4);
  ledger.lease(W1, 4);
  ledger.complete(W1, 3, 1);
  ledger.complete(W1, 1, 1);
  ledger.snapshot(hashJob); // hashes 1 and 3; 3 is the newest and keeps its payload
  ledger.complete(W1, 0, 1);
  ledger.complete(W1, 2, 1);
  assert.equal(ledger.settled, true);
  let calls = 0;
  const snapshot = ledger.snapshot((payload) => {
    calls++;
    return hashJob(payload);
  });
  assert.deepEqual(snapshot.resume, { id: 3, payload: "p3" });
  assert.deepEqual(snapshot.completed, [3, 1]);
  assert.deepEqual(snapshot.hashes, hashJob("p3"));
  assert.equal(calls, 0, "the hash taken while it was open is reused");
});

test("a snapshot after more jobs were admitted resumes at the new watermark job, not the last finished one", () => {
  const ledger = ledgerWith(2);
  ledger.lease(W1, 2);
  ledger.complete(W1, 0, 2);
  ledger.admit("p2");
  const snapshot = ledger.snapshot(hashJob);
  assert.deepEqual(snapshot.resume, { id: 2, payload: "p2" });
  assert.deepEqual(snapshot.completed, []);
});

test("a snapshot before the watermark resumes at the last finished job and lists it with those finished above the watermark", () => {
  const ledger = ledgerWith(5);
  ledger.lease(W1, 5);
  ledger.complete(W1, 0, 2);
  ledger.complete(W1, 3, 1);
  const snapshot = ledger.snapshot(hashJob, true);
  assert.deepEqual(snapshot.resume, { id: 1, payload: "p1" });
  assert.deepEqual(snapshot.completed, [1, 1, 3, 1]);
  assert.deepEqual(snapshot.hashes, Buffer.concat([hashJob("p1"), hashJob("p3")]));
});

test("a snapshot before the watermark has no resume point when the last finished job's payload was already dropped", () => {
  const ledger = ledgerWith(4);
  ledger.lease(W1, 4);
  ledger.complete(W1, 1, 1);
  ledger.snapshot(hashJob); // 1 is finished above the watermark, not the newest: payload dropped
  ledger.complete(W1, 0, 1); // the watermark moves to 2; 1 is the last finished job
  const snapshot = ledger.snapshot(hashJob, true);
  // No job to resume from, rather than a made-up one: the checkpoint keeps its last resume point.
  assert.equal(snapshot.resume, undefined);
  // Job 1 is still recorded as finished, with the hash of its payload, so a resume skips it.
  assert.deepEqual(snapshot.completed, [1, 1]);
  assert.deepEqual(snapshot.hashes, hashJob("p1"));
});

test("jobs admitted as finished (skipped on resume) are never leased, and the watermark passes them", () => {
  const ledger = new Ledger({ firstId: 0, window: 100 });
  ledger.admit("p0");
  ledger.admitFinished("p1", hashJob("p1"));
  ledger.admitFinished("p2", hashJob("p2"));
  ledger.admit("p3");
  assert.equal(ledger.queued, 2);
  const lease = ledger.lease(W1, 10);
  assert.deepEqual(lease?.runs, [0, 1, 1, 3, 1, 1]);
  assert.deepEqual(lease?.payloads, ["p0", "p3"]);
  assert.equal(ledger.queued, 0);
  assert.equal(ledger.complete(W1, 0, 1), 1);
  assert.equal(ledger.base, 3, "the watermark passes the finished ones");
  assert.equal(ledger.doneCount, 1, "jobs finished by an earlier run are not counted again");
  // They stay on record until the watermark passes them: the next state file still lists them.
  const snapshot = ledger.snapshot(hashJob);
  assert.equal(snapshot.resume?.id, 3);
});

test("a job admitted as finished at the front moves the cursor and the watermark at once", () => {
  const ledger = new Ledger({ firstId: 5, window: 100 });
  ledger.admitFinished("a", hashJob("a"));
  assert.equal(ledger.base, 6);
  assert.equal(ledger.queued, 0);
  ledger.admit("b");
  assert.deepEqual(ledger.lease(W1, 5)?.runs, [6, 1, 1]);
});

test("a sent job's payload is let go and decoded again from its batch when needed", () => {
  const decoded: Buffer[] = [];
  const decodeBatch = (bytes: Buffer) => {
    decoded.push(bytes);
    return (JSON.parse(bytes.toString()) as { payloads: unknown[] }).payloads;
  };
  const ledger = new Ledger({ firstId: 0, window: 100, decodeBatch });
  for (const p of ["p0", "p1", "p2", "p3"]) ledger.admit(p);
  const lease = ledger.lease(W1, 4)!;
  ledger.attach(lease, Buffer.from(JSON.stringify({ payloads: lease.payloads })));
  assert.equal(decoded.length, 0, "nothing is decoded until it is needed");
  assert.equal(ledger.payloadOf(2), "p2");
  assert.equal(ledger.payloadOf(3), "p3");
  assert.equal(decoded.length, 1, "one batch is decoded once for consecutive needs");
  // Retried jobs go out again with their payload; finished ones are hashed from it.
  assert.equal(ledger.requeue(W1, 1, false), true);
  assert.deepEqual(ledger.lease(W2, 4)?.payloads, ["p1"]);
  ledger.complete(W1, 2, 2);
  const snapshot = ledger.snapshot(hashJob);
  assert.deepEqual(snapshot.resume, { id: 0, payload: "p0" });
  assert.deepEqual(snapshot.hashes, Buffer.concat([hashJob("p2"), hashJob("p3")]));
});
