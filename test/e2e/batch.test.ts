/**
 * Whole batches through the real commands: every job handled, job by job.
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { allExit, fixture, freeAddress, handledJobs, runToEnd, start, tally, tempDir } from "./helpers.ts";

test("tm-run hands 100,000 jobs to 2 workers and each is handled exactly once", { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const { exit, stderr } = await runToEnd(
    t,
    "tm-run",
    [fixture("recorder.ts"), "2", "count=100000", "--state", join(dir, "state.json"), "--no-progress"],
    { env: { TM_TEST_OUT: out } },
    120_000,
  );
  assert.equal(exit.code, 0, stderr);
  const { lost, duplicates, unexpected } = tally(handledJobs(out), 100_000);
  assert.deepEqual(lost, [], "lost jobs");
  assert.equal(duplicates, 0, "jobs handled twice");
  assert.deepEqual(unexpected, []);
  assert.match(stderr, /finished: 100,000 done, 0 failed/);
  const state = JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as { finished: boolean; counts: unknown };
  assert.equal(state.finished, true);
  assert.deepEqual(state.counts, { done: 100_000, failed: 0 });
});

test("Date, BigInt, Map, Set and Buffer jobs reach the handler exactly as getJobs yielded them", async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const { exit, stderr } = await runToEnd(
    t,
    "tm-run",
    [fixture("typed.ts"), "2", "count=300", "--state", join(dir, "state.json"), "--no-progress"],
    { env: { TM_TEST_OUT: out } },
  );
  assert.equal(exit.code, 0, stderr);
  const lines = readdirSync(out)
    .flatMap((f) => readFileSync(join(out, f), "utf8").split("\n"))
    .filter(Boolean);
  assert.deepEqual(
    lines.filter((l) => !l.endsWith(" ok")),
    [],
    "jobs that arrived changed",
  );
  assert.deepEqual(
    lines.map((l) => Number(l.split(" ")[0])).sort((a, b) => a - b),
    Array.from({ length: 300 }, (_, i) => i),
  );
});

test("tm-master, tm-slave and tm-spawn run one batch together from a .ts target with module:function names", async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const address = await freeAddress();
  // Jobs take a millisecond, so the batch lasts long enough for every worker to take part.
  const env = { TM_TEST_OUT: out, TM_TEST_DELAY_MS: "1" };
  // Workers first: they keep trying to connect until the master is there.
  const slave = start(t, "tm-slave", [`${fixture("named.ts")}:processJob`, "--address", address], { env });
  const spawn = start(t, "tm-spawn", [`${fixture("named.ts")}:processJob`, "2", "--address", address, "--no-progress"], {
    env,
  });
  const master = start(
    t,
    "tm-master",
    [`${fixture("named.ts")}:listJobs`, "count=3000", "--address", address, "--state", join(dir, "state.json"), "--no-progress"],
    { env },
  );
  const [m, s, p] = await allExit([master, slave, spawn]);
  assert.equal(m.code, 0, master.stderr);
  assert.equal(s.code, 0, slave.stderr);
  assert.equal(p.code, 0, spawn.stderr);
  const { lost, duplicates } = tally(handledJobs(out), 3000);
  assert.deepEqual(lost, []);
  assert.equal(duplicates, 0);
  // All three worker processes took part: the batch was shared, not run by the first to connect.
  const workers = readdirSync(out).filter((f) => f.endsWith(".log"));
  assert.equal(workers.length, 3, `${workers.length} worker processes handled jobs`);
  assert.match(master.stderr, /finished: 3,000 done/);
});

test("a handler that throws does not kill its worker, and its job is never counted done", async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const state = join(dir, "state.json");
  const { exit, stderr } = await runToEnd(
    t,
    "tm-run",
    [fixture("recorder.ts"), "2", "count=500", "--state", state, "--max-attempts", "2", "--backoff", "0", "--no-progress"],
    { env: { TM_TEST_OUT: out, TM_TEST_FAIL: "always:7,300" } },
  );
  assert.equal(exit.code, 2, stderr);
  const counts = handledJobs(out);
  const { lost, duplicates } = tally(counts, 500);
  assert.deepEqual(lost, [7, 300], "only the failing jobs are missing");
  assert.equal(duplicates, 0);
  assert.match(stderr, /finished: 498 done, 2 failed/);
  const failed = readFileSync(join(dir, "state.failed.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { id: number; job: string; error: string; attempts: number });
  assert.deepEqual(
    failed.map((f) => [f.job, f.error, f.attempts]).sort(),
    [
      ["300", "job 300 always fails", 2],
      ["7", "job 7 always fails", 2],
    ],
  );
});
