/**
 * The state file: a stopped run resumes where it stopped, a finished one is not run again.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fixture, handledJobs, runToEnd, start, tally, tempDir, until } from "./helpers.ts";

test("a master stopped with SIGINT mid-batch and started again loses no job and runs none twice", { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const state = join(dir, "state.json");
  const args = [fixture("recorder.ts"), "2", "count=20000", "--state", state, "--no-progress", "--concurrency", "4"];

  const first = start(t, "tm-run", args, { env: { TM_TEST_OUT: out, TM_TEST_DELAY_MS: "1" } });
  await until(() => handledJobs(out).size >= 2000, "2,000 jobs handled");
  first.kill("SIGINT");
  const stopped = await first.exit();
  assert.equal(stopped.code, 130, first.stderr);
  assert.match(first.stderr, /stopped: [\d,]+ done, 0 failed; state saved in/);
  const saved = JSON.parse(readFileSync(state, "utf8")) as { finished: boolean; counts: { done: number } };
  assert.equal(saved.finished, false);
  const handledBefore = tally(handledJobs(out), 20_000);
  assert.ok(handledBefore.lost.length > 0, "the first run must have been stopped before the end");
  // A clean stop waits for running jobs, so the state counts exactly what was handled.
  assert.equal(saved.counts.done, 20_000 - handledBefore.lost.length);

  const second = await runToEnd(t, "tm-run", args, { env: { TM_TEST_OUT: out } });
  assert.equal(second.exit.code, 0, second.stderr);
  assert.match(second.stderr, /resuming from/);
  const { lost, duplicates } = tally(handledJobs(out), 20_000);
  assert.deepEqual(lost, [], "lost jobs");
  assert.equal(duplicates, 0, "jobs handled twice");
  t.diagnostic(`jobs 20000, first run ${20_000 - handledBefore.lost.length}, lost ${lost.length}, re-run ${duplicates}`);
});

test("a finished batch is not run again, and --reset runs it from the start", async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const args = [fixture("recorder.ts"), "1", "count=50", "--state", join(dir, "state.json"), "--no-progress"];
  const env = { TM_TEST_OUT: out };
  assert.equal((await runToEnd(t, "tm-run", args, { env })).exit.code, 0);
  const again = await runToEnd(t, "tm-run", args, { env });
  assert.equal(again.exit.code, 0, again.stderr);
  assert.match(again.stderr, /already finished \(50 done, 0 failed/);
  assert.equal(tally(handledJobs(out), 50).duplicates, 0);
  const reset = await runToEnd(t, "tm-run", [...args, "--reset"], { env });
  assert.equal(reset.exit.code, 0, reset.stderr);
  const counts = handledJobs(out);
  assert.ok([...Array(50).keys()].every((job) => counts.get(job) === 2), "every job ran once per run");
});

test("without --state, the state file sits beside the target and depends on the options", async (t) => {
  const dir = tempDir(t);
  const { copyFileSync, readdirSync } = await import("node:fs");
  copyFileSync(fixture("recorder.ts"), join(dir, "jobs.ts"));
  const run = (count: string) => runToEnd(t, "tm-run", [join(dir, "jobs.ts"), "1", `count=${count}`, "--no-progress"], { cwd: dir });
  assert.equal((await run("10")).exit.code, 0);
  assert.equal((await run("20")).exit.code, 0);
  const states = readdirSync(dir).filter((f) => f.endsWith(".state.json"));
  assert.equal(states.length, 2, states.join(", "));
  assert.ok(states.every((f) => /^jobs\.[0-9a-f]{8}\.state\.json$/.test(f)), states.join(", "));
});
