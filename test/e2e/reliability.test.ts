/**
 * Reliability: whatever stops a run — a killed worker or master, failing or hanging handlers, a
 * busy master — no job is lost, a failing job neither hangs nor loops the batch, and the run can
 * be resumed. Each test reports jobs, lost and re-run as a diagnostic.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { test } from "node:test";
import { allExit, fixture, freeAddress, handledJobs, runToEnd, start, tally, tempDir, until } from "./helpers.ts";

const recorder = fixture("recorder.ts");

interface FailedLine {
  id: number;
  job: string;
  error: string;
  attempts: number;
  worker: { host: string; pid: number } | null;
}

function failedLog(path: string): FailedLine[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as FailedLine)
    .sort((a, b) => a.id - b.id);
}

/** Polls `read` until it returns the same value over 200 ms, and returns that value. */
async function steady(read: () => number): Promise<number> {
  let last = read();
  let since = Date.now();
  await until(() => {
    const now = read();
    if (now !== last) {
      last = now;
      since = Date.now();
    }
    return Date.now() - since >= 200;
  }, "a steady count");
  return last;
}

function report(t: TestContext, jobs: number, out: string): { lost: number[]; duplicates: number } {
  const { lost, duplicates, unexpected } = tally(handledJobs(out), jobs);
  assert.deepEqual(unexpected, []);
  t.diagnostic(`jobs ${jobs}, lost ${lost.length}, re-run ${duplicates}`);
  return { lost, duplicates };
}

test("SIGKILL of one of three workers mid-batch: its jobs go to the others and the master exits 0", async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const address = await freeAddress();
  const env = { TM_TEST_OUT: out, TM_TEST_DELAY_MS: "1" };
  const master = start(t, "tm-master", [recorder, "count=6000", "--address", address, "--state", join(dir, "s.json"), "--no-progress"], { env });
  await master.waitFor(/listening on/);
  const workers = [0, 1, 2].map(() => start(t, "tm-worker", [recorder, "--address", address, "--concurrency", "4"], { env }));
  await until(() => handledJobs(out).size >= 1000, "1,000 jobs handled");
  workers[0]!.kill("SIGKILL");
  const [m, , w1, w2] = await allExit([master, workers[0]!, workers[1]!, workers[2]!]);
  assert.equal(m.code, 0, master.stderr);
  assert.equal(w1.code, 0);
  assert.equal(w2.code, 0);
  assert.match(master.stderr, /worker \S+ (disconnected|was silent)[^\n]*jobs go to others/);
  const { lost } = report(t, 6000, out);
  assert.deepEqual(lost, []);
});

test("SIGKILL of the master mid-batch and a restart: no job lost, re-runs limited to what the state file had not recorded", { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const state = join(dir, "s.json");
  const address = await freeAddress();
  const env = { TM_TEST_OUT: out, TM_TEST_DELAY_MS: "1" };
  const masterArgs = [recorder, "count=20000", "--address", address, "--state", state, "--no-progress"];
  const first = start(t, "tm-master", masterArgs, { env });
  await first.waitFor(/listening on/);
  const spawn = start(t, "tm-spawn", [recorder, "2", "--address", address, "--concurrency", "4", "--no-progress"], { env });
  await until(() => handledJobs(out).size >= 3000, "3,000 jobs handled");
  first.kill("SIGKILL");
  await first.exit();
  const saved = JSON.parse(readFileSync(state, "utf8")) as { counts: { done: number } };
  // The jobs that were running when the master died still finish; then the workers wait.
  const handledBefore = await steady(() => handledJobs(out).size);
  // The workers wait for a master on the same address, and carry on with the new one.
  const second = start(t, "tm-master", masterArgs, { env });
  const [m, s] = await allExit([second, spawn]);
  assert.equal(m.code, 0, second.stderr);
  assert.equal(s.code, 0, spawn.stderr);
  const { lost, duplicates } = report(t, 20_000, out);
  assert.deepEqual(lost, []);
  // Only jobs handled but not yet in the state file run again: at most one checkpoint interval
  // (250 ms) of work plus what was running, at this rate a few thousand, never the whole batch.
  const unrecorded = handledBefore - saved.counts.done;
  t.diagnostic(`handled before the restart ${handledBefore}, recorded in the state file ${saved.counts.done}`);
  assert.ok(duplicates <= unrecorded, `re-ran ${duplicates}, but only ${unrecorded} were unrecorded`);
  assert.ok(unrecorded < 5000, `${unrecorded} jobs were handled but not recorded`);
});

test("a handler that fails on its first attempt: every job succeeds on retry", async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const { exit, stderr } = await runToEnd(
    t,
    "tm-run",
    [recorder, "2", "count=1000", "--state", join(dir, "s.json"), "--backoff", "10", "--no-progress"],
    { env: { TM_TEST_OUT: out, TM_TEST_FAIL: "first" } },
  );
  assert.equal(exit.code, 0, stderr);
  assert.match(stderr, /finished: 1,000 done, 0 failed/);
  const { lost, duplicates } = report(t, 1000, out);
  assert.deepEqual(lost, []);
  assert.equal(duplicates, 0);
  assert.deepEqual(failedLog(join(dir, "s.failed.jsonl")), []);
});

test("permanent failures go to an exact failed log and exit 2; --resume-failed then completes them", async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const state = join(dir, "s.json");
  const log = join(dir, "s.failed.jsonl");
  const args = [recorder, "2", "count=1000", "--state", state, "--backoff", "5", "--no-progress"];
  const first = await runToEnd(t, "tm-run", args, { env: { TM_TEST_OUT: out, TM_TEST_FAIL: "always:3,500,999" } });
  assert.equal(first.exit.code, 2, first.stderr);
  const failed = failedLog(log);
  assert.deepEqual(
    failed.map((f) => [f.id, f.job, f.error, f.attempts]),
    [
      [3, "3", "job 3 always fails", 3],
      [500, "500", "job 500 always fails", 3],
      [999, "999", "job 999 always fails", 3],
    ],
  );
  assert.ok(failed.every((f) => f.worker && f.worker.pid > 0 && typeof f.worker.host === "string"));
  assert.deepEqual(report(t, 1000, out).lost, [3, 500, 999]);

  // Fixed: the same jobs run again, and only they.
  const again = await runToEnd(t, "tm-run", [...args, "--resume-failed"], { env: { TM_TEST_OUT: out } });
  assert.equal(again.exit.code, 0, again.stderr);
  assert.match(again.stderr, /3 of the failed jobs succeeded; 0 remain/);
  assert.deepEqual(failedLog(log), []);
  const { lost, duplicates } = report(t, 1000, out);
  assert.deepEqual(lost, []);
  assert.equal(duplicates, 0);
  const counts = (JSON.parse(readFileSync(state, "utf8")) as { counts: unknown }).counts;
  assert.deepEqual(counts, { done: 1000, failed: 0 });
});

test("--resume-failed keeps the jobs that fail again, with their new error", async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const state = join(dir, "s.json");
  const args = [recorder, "1", "count=100", "--state", state, "--backoff", "0", "--max-attempts", "1", "--no-progress"];
  assert.equal((await runToEnd(t, "tm-run", args, { env: { TM_TEST_OUT: out, TM_TEST_FAIL: "always:10,20" } })).exit.code, 2);
  const again = await runToEnd(t, "tm-run", [...args, "--resume-failed"], { env: { TM_TEST_OUT: out, TM_TEST_FAIL: "always:20" } });
  assert.equal(again.exit.code, 2, again.stderr);
  assert.deepEqual(
    failedLog(join(dir, "s.failed.jsonl")).map((f) => [f.id, f.error]),
    [[20, "job 20 always fails"]],
  );
  assert.deepEqual((JSON.parse(readFileSync(state, "utf8")) as { counts: unknown }).counts, { done: 99, failed: 1 });
});

test("--halt N stops the batch once more than N jobs failed, with the state written and exit 2", async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const state = join(dir, "s.json");
  const { exit, stderr } = await runToEnd(
    t,
    "tm-run",
    [recorder, "1", "count=100000", "--state", state, "--max-attempts", "1", "--halt", "5", "--no-progress"],
    { env: { TM_TEST_OUT: out, TM_TEST_FAIL: "every:10" } },
  );
  assert.equal(exit.code, 2, stderr);
  assert.match(stderr, /halted: 6 of \d+ jobs failed, past --halt 5/);
  const saved = JSON.parse(readFileSync(state, "utf8")) as { finished: boolean; counts: { done: number; failed: number } };
  assert.equal(saved.finished, false);
  assert.ok(saved.counts.failed >= 6 && saved.counts.done < 1000, JSON.stringify(saved.counts));
  assert.ok(handledJobs(out).size < 1000, "the batch did not burn through its jobs");
});

test("--halt P% stops a batch whose handler fails too often", async (t) => {
  const dir = tempDir(t);
  const { exit, stderr } = await runToEnd(
    t,
    "tm-run",
    [recorder, "1", "count=100000", "--state", join(dir, "s.json"), "--max-attempts", "1", "--halt", "20%", "--no-progress"],
    { env: { TM_TEST_OUT: join(dir, "out"), TM_TEST_FAIL: "every:2" } },
  );
  assert.equal(exit.code, 2, stderr);
  assert.match(stderr, /halted: \d+ of \d+ jobs failed, past --halt 20%/);
});

test("--job-timeout fails a job whose handler ignores the signal, and the batch goes on", async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const { exit, stderr } = await runToEnd(
    t,
    "tm-run",
    [recorder, "2", "count=300", "--state", join(dir, "s.json"), "--job-timeout", "300", "--max-attempts", "2", "--backoff", "0", "--concurrency", "2", "--no-progress"],
    { env: { TM_TEST_OUT: out, TM_TEST_HANG: "4,150" } },
  );
  assert.equal(exit.code, 2, stderr);
  assert.deepEqual(
    failedLog(join(dir, "s.failed.jsonl")).map((f) => [f.id, f.error, f.attempts]),
    [
      [4, "timed out after 300 ms", 2],
      [150, "timed out after 300 ms", 2],
    ],
  );
  const { lost, duplicates } = report(t, 300, out);
  assert.deepEqual(lost, [4, 150]);
  assert.equal(duplicates, 0);
});

test("a job that kills its worker fails after --max-attempts deaths, and the jobs around it do not", { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const address = await freeAddress();
  const env = { TM_TEST_OUT: out, TM_TEST_DELAY_MS: "1", TM_TEST_KILL: "700" };
  const master = start(t, "tm-master", [recorder, "count=3000", "--address", address, "--state", join(dir, "s.json"), "--max-attempts", "2", "--no-progress"], { env });
  await master.waitFor(/listening on/);
  const spawn = start(t, "tm-spawn", [recorder, "4", "--address", address, "--concurrency", "4", "--no-progress"], { env });
  const [m, s] = await allExit([master, spawn]);
  assert.equal(m.code, 2, master.stderr);
  assert.equal(s.code, 0, spawn.stderr);
  assert.equal(spawn.stderr.match(/died \(exit code 9\); starting another/g)?.length, 2, "each worker the job killed was replaced");
  const failed = failedLog(join(dir, "s.failed.jsonl"));
  assert.deepEqual(
    failed.map((f) => [f.id, f.attempts]),
    [[700, 2]],
    failed.map((f) => `${f.id}: ${f.error}`).join("\n"),
  );
  assert.match(failed[0]!.error, /its worker died while running it/);
  const { lost } = report(t, 3000, out);
  assert.deepEqual(lost, [700]);
});

test("SIGINT to a master with separate workers: running jobs finish, state is written, exit 130; a restart completes", { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const address = await freeAddress();
  const env = { TM_TEST_OUT: out, TM_TEST_DELAY_MS: "1" };
  const masterArgs = [recorder, "count=10000", "--address", address, "--state", join(dir, "s.json"), "--no-progress"];
  const master = start(t, "tm-master", masterArgs, { env });
  await master.waitFor(/listening on/);
  const spawn = start(t, "tm-spawn", [recorder, "2", "--address", address, "--concurrency", "2", "--no-progress"], { env });
  await until(() => handledJobs(out).size >= 1000, "1,000 jobs handled");
  master.kill("SIGINT");
  const [m, s] = await allExit([master, spawn]);
  assert.equal(m.code, 130, master.stderr);
  assert.equal(s.code, 0, `workers told to stop leave cleanly\n${spawn.stderr}`);
  // Workers first, so that both are there before the rest of the batch is gone.
  const spawnAgain = start(t, "tm-spawn", [recorder, "2", "--address", address, "--concurrency", "2", "--no-progress"], { env });
  const again = start(t, "tm-master", masterArgs, { env });
  const [m2, s2] = await allExit([again, spawnAgain]);
  assert.equal(m2.code, 0, again.stderr);
  assert.equal(s2.code, 0);
  const { lost, duplicates } = report(t, 10_000, out);
  assert.deepEqual(lost, []);
  assert.equal(duplicates, 0);
});

test("an iterator that blocks the master for longer than the workers' timeout loses no job", { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const address = await freeAddress();
  const env = { TM_TEST_OUT: out };
  const liveness = ["--timeout", "250", "--retries", "2"];
  const master = start(t, "tm-master", [recorder, "count=30000", "block_at=15000", "block_ms=2500", "--address", address, "--state", join(dir, "s.json"), "--no-progress", ...liveness], { env });
  await master.waitFor(/listening on/);
  const spawn = start(t, "tm-spawn", [recorder, "2", "--address", address, "--no-progress", ...liveness], { env });
  const [m, s] = await allExit([master, spawn]);
  assert.equal(m.code, 0, master.stderr);
  assert.equal(s.code, 0, spawn.stderr);
  assert.doesNotMatch(master.stderr, /was silent|disconnected/);
  const { lost, duplicates } = report(t, 30_000, out);
  assert.deepEqual(lost, []);
  assert.equal(duplicates, 0);
});

test("tm-run replaces the workers a job kills, so the job fails and the batch finishes", { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const { exit, stderr } = await runToEnd(
    t,
    "tm-run",
    [recorder, "2", "count=2000", "--state", join(dir, "s.json"), "--no-progress"],
    { env: { TM_TEST_OUT: out, TM_TEST_KILL: "1234" } },
    120_000,
  );
  assert.equal(exit.code, 2, stderr);
  assert.deepEqual(
    failedLog(join(dir, "s.failed.jsonl")).map((f) => [f.id, f.attempts]),
    [[1234, 3]],
  );
  assert.deepEqual(report(t, 2000, out).lost, [1234]);
});

test("failures with long messages in large batches are reported, not looped on", { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const { exit, stderr } = await runToEnd(
    t,
    "tm-run",
    [recorder, "1", "count=3000", "--state", join(dir, "s.json"), "--prefetch", "2000", "--max-attempts", "2", "--backoff", "0", "--no-progress"],
    { env: { TM_TEST_OUT: out, TM_TEST_FAIL: "every:1", TM_TEST_ERROR_BYTES: "20000" } },
    120_000,
  );
  assert.equal(exit.code, 2, stderr.slice(-2000));
  const failed = failedLog(join(dir, "s.failed.jsonl"));
  assert.equal(failed.length, 3000);
  assert.ok(failed.every((f) => f.attempts === 2));
});

test("a handler that throws something other than an Error fails its job, and its worker lives on", async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const { exit, stderr } = await runToEnd(
    t,
    "tm-run",
    [recorder, "1", "count=200", "--state", join(dir, "s.json"), "--max-attempts", "1", "--no-progress"],
    { env: { TM_TEST_OUT: out, TM_TEST_ODD: "3,150" } },
  );
  assert.equal(exit.code, 2, stderr);
  assert.deepEqual(
    failedLog(join(dir, "s.failed.jsonl")).map((f) => [f.id, f.error]),
    [
      [3, "[object Object]"],
      [150, "[object Object]"],
    ],
  );
  assert.deepEqual(report(t, 200, out).lost, [3, 150]);
});

test("two Ctrl-Cs in a row while jobs fail: every job is done, in the failed log, or run again on resume", { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const state = join(dir, "s.json");
  const args = [recorder, "2", "count=5000", "--state", state, "--max-attempts", "1", "--concurrency", "4", "--no-progress"];
  const env = { TM_TEST_OUT: out, TM_TEST_FAIL: "every:7", TM_TEST_DELAY_MS: "1" };
  const first = start(t, "tm-run", args, { env });
  await until(() => handledJobs(out).size >= 1500, "1,500 jobs handled");
  first.kill("SIGINT");
  await first.waitFor(/stopping: waiting for running jobs/);
  first.kill("SIGINT");
  assert.equal((await first.exit()).code, 130, first.stderr);
  const second = await runToEnd(t, "tm-run", args, { env: { ...env, TM_TEST_DELAY_MS: "0" } });
  assert.equal(second.exit.code, 2, second.stderr);
  const failed = new Set(failedLog(join(dir, "s.failed.jsonl")).map((f) => Number(f.job)));
  const handled = handledJobs(out);
  const missing = [...Array(5000).keys()].filter((job) => !handled.has(job) && !failed.has(job));
  assert.deepEqual(missing, [], "jobs neither done nor in the failed log");
  assert.ok([...failed].every((job) => job % 7 === 0), "only failing jobs are in the failed log");
});

test("resuming a resumed run does not run again what the first run finished", { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const state = join(dir, "s.json");
  const args = [recorder, "2", "count=3000", "--state", state, "--grace", "200", "--concurrency", "4", "--no-progress"];
  // Job 5 hangs, so the watermark stays on it while the jobs after it finish.
  const env = { TM_TEST_OUT: out, TM_TEST_HANG: "5", TM_TEST_DELAY_MS: "1" };
  for (let run = 1; run <= 2; run++) {
    const proc = start(t, "tm-run", args, { env });
    if (run === 1) await until(() => handledJobs(out).size >= 1000, "1,000 jobs handled");
    else await proc.waitFor(/worker \S+ joined/);
    proc.kill("SIGINT");
    assert.equal((await proc.exit()).code, 130, proc.stderr);
  }
  const third = await runToEnd(t, "tm-run", args, { env: { TM_TEST_OUT: out } });
  assert.equal(third.exit.code, 0, third.stderr);
  const { lost, duplicates } = report(t, 3000, out);
  assert.deepEqual(lost, []);
  assert.ok(duplicates <= 16, `${duplicates} jobs ran twice: the jobs finished in the first run must not run again`);
});
