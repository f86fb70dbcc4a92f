/**
 * Signals: Ctrl-C stops cleanly. Running jobs finish, unstarted ones go back, and nothing is lost.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { allExit, fixture, freeAddress, handledJobs, start, tally, tempDir, until } from "./helpers.ts";

test("SIGINT to tm-spawn stops its workers cleanly: their unstarted jobs go to the workers that remain", { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "out");
  const address = await freeAddress();
  const env = { TM_TEST_OUT: out, TM_TEST_DELAY_MS: "2" };
  const master = start(t, "tm-master", [fixture("recorder.ts"), "count=4000", "--address", address, "--state", join(dir, "s.json"), "--no-progress"], { env });
  await master.waitFor(/listening on/);
  const leaving = start(t, "tm-spawn", [fixture("recorder.ts"), "2", "--address", address, "--no-progress", "--concurrency", "4"], { env });
  await until(() => handledJobs(out).size >= 500, "500 jobs handled");
  leaving.kill("SIGINT");
  const left = await leaving.exit();
  assert.equal(left.code, 0, leaving.stderr);
  assert.equal(master.child.exitCode, null, "the master carries on without them");

  const staying = start(t, "tm-spawn", [fixture("recorder.ts"), "1", "--address", address, "--no-progress", "--concurrency", "4", "--log-level", "debug"], { env: { ...env, TM_TEST_DELAY_MS: "0" } });
  const [m, s] = await allExit([master, staying]);
  assert.equal(m.code, 0, master.stderr);
  assert.equal(s.code, 0, staying.stderr);
  const { lost, duplicates } = tally(handledJobs(out), 4000);
  assert.deepEqual(lost, []);
  assert.equal(duplicates, 0, "a clean stop hands back exactly the jobs it did not run");
});
