/**
 * Id runs: `[start, count, …]`, how they are built, counted, written ("7-9,12") and read back.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { IdRunsBuilder, countIds, formatRuns, parseRuns } from "../../src/id-runs.ts";

test("the builder merges each id that follows the previous run into it", () => {
  const builder = new IdRunsBuilder();
  for (const id of [3, 4, 5, 9, 10, 12]) builder.add(id);
  assert.equal(builder.count, 6);
  assert.deepEqual(builder.take(), [3, 3, 9, 2, 12, 1]);
});

test("the builder merges a run that starts where the previous one ends", () => {
  const builder = new IdRunsBuilder();
  builder.addRun(10, 5);
  builder.addRun(15, 3);
  builder.add(18);
  builder.addRun(30, 2);
  assert.equal(builder.count, 11);
  assert.deepEqual(builder.take(), [10, 9, 30, 2]);
});

test("the builder does not merge a run that leaves a gap, goes backwards or repeats", () => {
  const builder = new IdRunsBuilder();
  builder.addRun(10, 2);
  builder.add(13);
  builder.add(5);
  builder.add(5);
  assert.deepEqual(builder.take(), [10, 2, 13, 1, 5, 1, 5, 1]);
});

test("take empties the builder", () => {
  const builder = new IdRunsBuilder();
  builder.addRun(1, 4);
  builder.take();
  assert.equal(builder.count, 0);
  assert.deepEqual(builder.take(), []);
  builder.add(5);
  assert.deepEqual(builder.take(), [5, 1], "does not merge with runs taken earlier");
});

test("countIds adds up the counts of all runs", () => {
  assert.equal(countIds([]), 0);
  assert.equal(countIds([7, 3, 12, 1]), 4);
  assert.equal(countIds([0, 1_000_000, 2_000_000, 5]), 1_000_005);
});

test("formatRuns writes single ids alone and longer runs as first-last", () => {
  assert.equal(formatRuns([]), "");
  assert.equal(formatRuns([12, 1]), "12");
  assert.equal(formatRuns([7, 3, 12, 1]), "7-9,12");
  assert.equal(formatRuns([0, 2, 5, 1, 9_007_199_254_740_990, 2]), "0-1,5,9007199254740990-9007199254740991");
});

test("parseRuns reads what formatRuns writes", () => {
  assert.deepEqual(parseRuns(""), []);
  assert.deepEqual(parseRuns("12"), [12, 1]);
  assert.deepEqual(parseRuns("7-9,12"), [7, 3, 12, 1]);
  assert.deepEqual(parseRuns("5-5"), [5, 1]);
  assert.deepEqual(parseRuns("0-1,0-1"), [0, 2, 0, 2], "runs are read as written, not merged");
});

test("runs survive formatRuns then parseRuns unchanged", () => {
  let seed = 1;
  const rnd = (n: number) => {
    seed = (seed * 48271) % 2147483647;
    return seed % n;
  };
  for (let round = 0; round < 500; round++) {
    const runs: number[] = [];
    let at = rnd(1000);
    for (let k = rnd(8); k > 0; k--) {
      const count = 1 + rnd(rnd(2) === 0 ? 1 : 5000);
      runs.push(at, count);
      at += count + 1 + rnd(100);
    }
    assert.deepEqual(parseRuns(formatRuns(runs)), runs);
  }
});

test("parseRuns rejects text that is not a run list", () => {
  for (const text of ["5-3", "a", "1,,2", ",", "1,", "-1", "1-", "-", "1-2-3", " 1", "1 ", "1.5", "1e3", "0x10", "+1", "9007199254740993", "1-9007199254740993"]) {
    assert.equal(parseRuns(text), undefined, JSON.stringify(text));
  }
});
