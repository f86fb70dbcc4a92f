/**
 * The progress line's text: counts, rate, queue, workers, elapsed time and, when the total is
 * known, percentage and ETA.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { duration, formatProgress } from "../../src/progress.ts";
import type { ProgressSample } from "../../src/progress.ts";

const sample = (fields: Partial<ProgressSample> = {}): ProgressSample => ({
  done: 0,
  failed: 0,
  workers: 0,
  elapsedMs: 0,
  ...fields,
});

test("the master's line shows done, rate, queue, workers and elapsed time in that order", () => {
  const line = formatProgress(sample({ done: 1_234_567, workers: 3, queued: 2500, size: 10_000, elapsedMs: 3_723_000 }), 812.6);
  assert.equal(line, "1,234,567 done · 813/s · in queue 2,500/10,000 · 3 workers · 1:02:03");
});

test("failed jobs are shown only when there are some", () => {
  assert.ok(!formatProgress(sample({ done: 5 }), 1).includes("failed"));
  assert.equal(formatProgress(sample({ done: 5, failed: 1_200, workers: 1 }), 1), "5 done · 1,200 failed · 1/s · 1 worker · 0:00:00");
});

test("one worker is singular, none and several are plural", () => {
  assert.match(formatProgress(sample({ workers: 1 }), 0), / 1 worker · /);
  assert.match(formatProgress(sample({ workers: 0 }), 0), / 0 workers · /);
  assert.match(formatProgress(sample({ workers: 12 }), 0), / 12 workers · /);
});

test("a worker's line shows the jobs running instead of the queue", () => {
  const line = formatProgress(sample({ done: 10, running: 4, workers: 2, elapsedMs: 61_000 }), 2);
  assert.equal(line, "10 done · 2/s · 4 running · 2 workers · 0:01:01");
});

test("the queue is shown only when both its length and its size are known", () => {
  assert.ok(!formatProgress(sample({ queued: 5 }), 0).includes("in queue"));
  assert.ok(!formatProgress(sample({ size: 5 }), 0).includes("in queue"));
  assert.match(formatProgress(sample({ queued: 0, size: 5 }), 0), /in queue 0\/5/);
});

test("with a known total the line ends with the percentage finished and the ETA", () => {
  const line = formatProgress(sample({ done: 240, failed: 10, workers: 2, total: 1000, elapsedMs: 5000 }), 50);
  assert.equal(line, "240 done · 10 failed · 50/s · 2 workers · 0:00:05 · 25.0% · ETA 0:00:15");
});

test("there is no ETA while the rate is zero, nor once every job has finished", () => {
  assert.ok(formatProgress(sample({ done: 10, total: 100 }), 0).endsWith(" · 10.0%"));
  assert.ok(formatProgress(sample({ done: 100, total: 100 }), 30).endsWith(" · 100.0%"));
});

test("the percentage never passes 100", () => {
  assert.ok(formatProgress(sample({ done: 150, total: 100 }), 5).endsWith(" · 100.0%"));
});

test("without a total, or with a total of 0, there is neither percentage nor ETA", () => {
  for (const total of [undefined, 0]) {
    const line = formatProgress(sample({ done: 10, total }), 5);
    assert.ok(!line.includes("%"), line);
    assert.ok(!line.includes("ETA"), line);
  }
});

test("a rate below one job a second rounds to 0/s", () => {
  assert.match(formatProgress(sample(), 0.4), / 0\/s /);
  assert.match(formatProgress(sample(), 0.6), / 1\/s /);
});

test(
  "the percentage reads 100.0% only when every job has finished",
  () => {
    const line = formatProgress(sample({ done: 9_996, total: 10_000 }), 1);
    assert.ok(!line.includes("100.0%"), line);
  },
);

test("duration formats milliseconds as h:mm:ss, rounded to the second", () => {
  assert.equal(duration(0), "0:00:00");
  assert.equal(duration(499), "0:00:00");
  assert.equal(duration(500), "0:00:01");
  assert.equal(duration(59_499), "0:00:59");
  assert.equal(duration(59_500), "0:01:00");
  assert.equal(duration(61_000), "0:01:01");
  assert.equal(duration(3_599_000), "0:59:59");
  assert.equal(duration(3_600_000), "1:00:00");
  assert.equal(duration(36_061_000), "10:01:01");
  assert.equal(duration(360_000_000), "100:00:00");
});

test("a negative duration shows as zero", () => {
  assert.equal(duration(-5000), "0:00:00");
});
