/**
 * The worker's queue of received, unstarted jobs: batches of runs handed out one job at a time,
 * and given back as id runs when the worker stops.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { JobQueue } from "../../src/worker/job-queue.ts";
import type { QueuedJob } from "../../src/worker/job-queue.ts";

function drain(queue: JobQueue): QueuedJob[] {
  const jobs: QueuedJob[] = [];
  for (let job = queue.shift(); job; job = queue.shift()) jobs.push(job);
  return jobs;
}

test("an empty queue has nothing to shift and nothing to give back", () => {
  const queue = new JobQueue();
  assert.equal(queue.size, 0);
  assert.equal(queue.shift(), undefined);
  assert.deepEqual(queue.clear(), []);
});

test("jobs come out in order across runs and batches, each with its run's attempt and its payload", () => {
  const queue = new JobQueue();
  queue.push([10, 2, 1, 20, 1, 3], ["a", "b", "c"]);
  queue.push([5, 2, 2], ["d", "e"]);
  assert.equal(queue.size, 5);
  assert.deepEqual(drain(queue), [
    { id: 10, attempt: 1, payload: "a" },
    { id: 11, attempt: 1, payload: "b" },
    { id: 20, attempt: 3, payload: "c" },
    { id: 5, attempt: 2, payload: "d" },
    { id: 6, attempt: 2, payload: "e" },
  ]);
  assert.equal(queue.size, 0);
});

test("a batch pushed after the queue ran dry is handed out next", () => {
  const queue = new JobQueue();
  queue.push([0, 1, 1], ["a"]);
  assert.equal(queue.shift()?.id, 0);
  assert.equal(queue.shift(), undefined);
  queue.push([1, 1, 1], ["b"]);
  assert.deepEqual(queue.shift(), { id: 1, attempt: 1, payload: "b" });
});

test("a batch without payloads is ignored", () => {
  const queue = new JobQueue();
  queue.push([], []);
  queue.push([3, 1, 1], ["x"]);
  assert.equal(queue.size, 1);
  assert.deepEqual(queue.shift(), { id: 3, attempt: 1, payload: "x" });
});

test("the size counts down as jobs are shifted", () => {
  const queue = new JobQueue();
  queue.push([0, 3, 1], [1, 2, 3]);
  queue.push([9, 1, 1], [4]);
  for (let size = 4; size > 0; size--) {
    assert.equal(queue.size, size);
    queue.shift();
  }
  assert.equal(queue.size, 0);
});

test("a shifted job's payload is no longer held by the queue", () => {
  const queue = new JobQueue();
  const payloads = [{ big: 1 }, { big: 2 }];
  queue.push([0, 2, 1], payloads);
  queue.shift();
  assert.equal(payloads[0], undefined);
  assert.deepEqual(payloads[1], { big: 2 });
});

test("clear gives back the ids not started, including the rest of a partly consumed run, and empties the queue", () => {
  const queue = new JobQueue();
  queue.push([10, 3, 1, 20, 2, 2], ["a", "b", "c", "d", "e"]);
  queue.push([30, 1, 1, 40, 2, 1], ["f", "g", "h"]);
  queue.shift(); // 10
  queue.shift(); // 11
  assert.deepEqual(queue.clear(), [12, 1, 20, 2, 30, 1, 40, 2]);
  assert.equal(queue.size, 0);
  assert.equal(queue.shift(), undefined);
  assert.deepEqual(queue.clear(), []);
});

test("clear after a run was consumed exactly to its end starts at the next run", () => {
  const queue = new JobQueue();
  queue.push([10, 2, 1, 50, 3, 2], ["a", "b", "c", "d", "e"]);
  queue.shift();
  queue.shift();
  queue.shift(); // 50
  assert.deepEqual(queue.clear(), [51, 2]);
});

test("clear merges ids that continue each other across runs and batches", () => {
  const queue = new JobQueue();
  queue.push([0, 2, 1, 2, 2, 3], ["a", "b", "c", "d"]);
  queue.push([4, 1, 1], ["e"]);
  assert.deepEqual(queue.clear(), [0, 5]);
});
