/**
 * User mistakes: each gets one clear line on stderr and exit 1, never a stack trace, and never
 * costs the state file.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import type { Command } from "./helpers.ts";
import { fixture, isOneLine, runToEnd, tempDir } from "./helpers.ts";

async function mistake(
  t: Parameters<typeof runToEnd>[0],
  command: Command,
  args: string[],
  expected: RegExp,
): Promise<string> {
  const { exit, stderr } = await runToEnd(t, command, args);
  assert.equal(exit.code, 1, stderr);
  assert.ok(isOneLine(stderr), `expected one line, got:\n${stderr}`);
  assert.match(stderr, expected);
  return stderr;
}

test("a missing job module is named in one line", async (t) => {
  for (const command of ["tm-run", "tm-master", "tm-worker"] as const) {
    const args = command === "tm-run" ? ["no/such/jobs.ts", "2"] : ["no/such/jobs.ts"];
    await mistake(t, command, args, new RegExp(`^${command}: cannot find the job module no/such/jobs.ts`));
  }
});

test("a missing export is named, with the exports that do exist", async (t) => {
  const target = fixture("helpers-only.mjs");
  await mistake(t, "tm-master", [target], /has no export 'getJobs' or 'get_jobs'; it exports limit, listThings/);
  await mistake(t, "tm-worker", [target], /has no export 'handleJob' or 'handle_job'; it exports limit, listThings/);
  await mistake(t, "tm-run", [`${fixture("named.ts")}:nothingHere`, "1"], /has no export 'nothingHere'; it exports listJobs, processJob, unrelated/);
  await mistake(t, "tm-run", [fixture("named.ts"), "1", "--get-jobs-callback", "listJobs"], /has no export 'handleJob' or 'handle_job'/);
});

test("an unknown flag is refused in one line", async (t) => {
  for (const command of ["tm-run", "tm-master", "tm-worker", "tm-slave", "tm-spawn"] as const) {
    await mistake(t, command, [fixture("recorder.ts"), "--frobnicate"], /Unknown option '--frobnicate'.*--help/);
  }
});

test("a process count that is not a positive number is refused", async (t) => {
  for (const command of ["tm-run", "tm-spawn"] as const) {
    for (const count of ["0", "-1", "two", "1.5"]) {
      await mistake(t, command, [fixture("recorder.ts"), count], /N, the number of workers, must be a positive whole number/);
    }
    await mistake(t, command, [fixture("recorder.ts")], /missing N, the number of workers/);
  }
});

test("bad flag values are refused in one line", async (t) => {
  await mistake(t, "tm-run", [fixture("recorder.ts"), "1", "--size", "lots"], /--size must be a positive whole number, not 'lots'/);
  await mistake(t, "tm-worker", [fixture("recorder.ts"), "--concurrency", "0"], /--concurrency must be a positive whole number, not '0'/);
  await mistake(t, "tm-master", [fixture("recorder.ts"), "--log-level", "loud"], /--log-level must be one of debug, info, warn, error, silent/);
  await mistake(t, "tm-master", [fixture("recorder.ts"), "--address", "localhost:3050"], /bad address 'localhost:3050'/);
  await mistake(t, "tm-master", [fixture("recorder.ts"), "oops"], /unexpected argument 'oops': options for getJobs are written key=value/);
  await mistake(t, "tm-master", [], /missing TARGET/);
});

test("a corrupt state file is refused with its path and reason, and left untouched", async (t) => {
  const dir = tempDir(t);
  const state = join(dir, "state.json");
  for (const [content, reason] of [
    ["{ not json", /is not valid JSON/],
    [JSON.stringify({ hello: "world" }), /is not a taskmaster state file/],
    [JSON.stringify({ format: "taskmaster-state", version: 99 }), /has format version 99/],
  ] as const) {
    writeFileSync(state, content);
    const stderr = await mistake(t, "tm-run", [fixture("recorder.ts"), "1", "--state", state], reason);
    assert.ok(stderr.includes(state), "the path is named");
    assert.match(stderr, /left untouched \(use --reset/);
    assert.equal(readFileSync(state, "utf8"), content, "the file is untouched");
  }
});

test("a state file written for other options or another target is refused", async (t) => {
  const dir = tempDir(t);
  const state = join(dir, "state.json");
  const out = join(dir, "out");
  const first = await runToEnd(t, "tm-run", [fixture("recorder.ts"), "1", "count=10", "--state", state], {
    env: { TM_TEST_OUT: out },
  });
  assert.equal(first.exit.code, 0, first.stderr);
  const before = readFileSync(state, "utf8");
  await mistake(t, "tm-run", [fixture("recorder.ts"), "1", "count=11", "--state", state], /was written for other options \(count=10, not count=11\)/);
  await mistake(t, "tm-run", [fixture("typed.ts"), "1", "count=10", "--state", state], /belongs to another target/);
  assert.equal(readFileSync(state, "utf8"), before);
});

test("a job that cannot be serialised stops the master with an error naming its position", async (t) => {
  const dir = tempDir(t);
  const { exit, stderr } = await runToEnd(t, "tm-run", [fixture("unserialisable.mjs"), "1", "--state", join(dir, "s.json"), "--no-progress"]);
  assert.equal(exit.code, 1, stderr);
  assert.match(stderr, /job #6 \{"i":6\} cannot be serialised: a function cannot be serialised/);
  assert.doesNotMatch(stderr, /^\s+at /m);
});

test("a worker that cannot reach its master gives up after --timeout x --retries with a clear message", async (t) => {
  const { exit, stderr } = await runToEnd(t, "tm-worker", [fixture("recorder.ts"), "--address", "tcp://127.0.0.1:9", "--timeout", "200", "--retries", "2"]);
  assert.equal(exit.code, 1, stderr);
  assert.ok(isOneLine(stderr), stderr);
  assert.match(stderr, /cannot reach the master at tcp:\/\/127\.0\.0\.1:9: no answer for [\d.]+ s \(--timeout 200 x --retries 2\)/);
  const spawned = await runToEnd(t, "tm-spawn", [fixture("recorder.ts"), "2", "--address", "tcp://127.0.0.1:9", "--timeout", "200", "--retries", "2", "--no-progress"]);
  assert.equal(spawned.exit.code, 1, "tm-spawn exits with its workers' worst code");
});

test("every command has --help and --version", async (t) => {
  const { version } = JSON.parse(readFileSync(fixture("../../package.json"), "utf8")) as { version: string };
  for (const command of ["tm-run", "tm-master", "tm-worker", "tm-slave", "tm-spawn"] as const) {
    const help = await runToEnd(t, command, ["--help"]);
    assert.equal(help.exit.code, 0);
    assert.match(help.stdout, /^usage: tm-/);
    assert.match(help.stdout, /--address URL/);
    const shown = await runToEnd(t, command, ["--version"]);
    assert.equal(shown.exit.code, 0);
    assert.equal(shown.stdout.trim(), `${command === "tm-slave" ? "tm-worker" : command} ${version}`);
  }
});
