/**
 * The state file: written atomically, read back exactly, and refused (left untouched, with its
 * path and the reason) whenever it does not belong to this run or cannot be trusted.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { TestContext } from "node:test";
import { hashJob } from "../../src/codec.ts";
import { UserError } from "../../src/errors.ts";
import type { StateFile, StateIdentity } from "../../src/state/state-file.ts";
import {
  STATE_FORMAT,
  STATE_VERSION,
  defaultStatePath,
  readState,
  removeState,
  writeState,
} from "../../src/state/state-file.ts";

const identity: StateIdentity = { target: "/work/jobs.ts:getJobs", options: { table: "users", shard: "3" } };

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "tm-state-unit-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function sampleState(overrides: Partial<StateFile> = {}): StateFile {
  return {
    format: STATE_FORMAT,
    version: STATE_VERSION,
    target: identity.target,
    options: { ...identity.options },
    finished: false,
    resume: { id: 41, job: "kw==", preview: "41" },
    completed: "43-44,47",
    hashes: Buffer.concat([hashJob(43), hashJob(44), hashJob(47)]).toString("base64"),
    counts: { done: 44, failed: 2 },
    started: "2026-01-01T00:00:00.000Z",
    updated: "2026-01-01T00:05:00.000Z",
    ...overrides,
  };
}

/** Writes `content` raw and checks that reading it is refused for `reason`, leaving the file as it was. */
function assertRefused(
  t: TestContext,
  content: string | object,
  reason: RegExp,
  expected: StateIdentity = identity,
): void {
  const path = join(tempDir(t), "jobs.state.json");
  const text = typeof content === "string" ? content : JSON.stringify(content, null, 1);
  writeFileSync(path, text);
  const before = readFileSync(path);
  assert.throws(
    () => readState(path, expected),
    (error: unknown) => {
      assert.ok(error instanceof UserError, `not a UserError: ${String(error)}`);
      assert.equal(error.exitCode, 1);
      assert.ok(error.message.includes(path), `no path in: ${error.message}`);
      assert.match(error.message, reason);
      return true;
    },
  );
  assert.deepEqual(readFileSync(path), before, "the refused file was changed");
}

// ---- writing and reading -------------------------------------------------------------------

test("a state written with writeState reads back equal", async (t) => {
  const path = join(tempDir(t), "jobs.state.json");
  const state = sampleState();
  await writeState(path, state);
  assert.deepEqual(readState(path, identity), state);
});

test("a finished state without a resume point reads back equal", async (t) => {
  const path = join(tempDir(t), "jobs.state.json");
  const state = sampleState({ finished: true, resume: null, completed: "", hashes: "" });
  await writeState(path, state);
  assert.deepEqual(readState(path, identity), state);
});

test("writing replaces the previous state and leaves no temporary file behind", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "jobs.state.json");
  await writeState(path, sampleState());
  const second = sampleState({ counts: { done: 100, failed: 0 }, completed: "", hashes: "" });
  await writeState(path, second);
  assert.deepEqual(readState(path, identity), second);
  assert.deepEqual(readdirSync(dir), ["jobs.state.json"]);
  assert.ok(readFileSync(path, "utf8").endsWith("}\n"));
});

test("readState returns undefined when there is no state file", (t) => {
  assert.equal(readState(join(tempDir(t), "none.state.json"), identity), undefined);
});

test("the same options given in another order are accepted", async (t) => {
  const path = join(tempDir(t), "jobs.state.json");
  await writeState(path, sampleState({ options: { shard: "3", table: "users" } }));
  assert.ok(readState(path, { target: identity.target, options: { table: "users", shard: "3" } }));
});

test("hashes beyond those of the completed ids (carried from an earlier run) are accepted", async (t) => {
  const path = join(tempDir(t), "jobs.state.json");
  const state = sampleState({ completed: "43", hashes: Buffer.concat([hashJob(43), hashJob(1), hashJob(2)]).toString("base64") });
  await writeState(path, state);
  assert.deepEqual(readState(path, identity), state);
});

test("removeState deletes the file and does not mind when there is none", async (t) => {
  const path = join(tempDir(t), "jobs.state.json");
  await writeState(path, sampleState());
  await removeState(path);
  assert.equal(existsSync(path), false);
  await removeState(path);
  assert.equal(existsSync(path), false);
});

// ---- refusals ------------------------------------------------------------------------------

test("a state file that is not valid JSON is refused with its path and the reason, and left untouched", (t) => {
  assertRefused(t, '{"format": "taskmaster-state",', /is not valid JSON/);
  assertRefused(t, "", /is not valid JSON/);
});

test("a JSON file of another format is refused", (t) => {
  assertRefused(t, "[]", /is not a taskmaster state file/);
  assertRefused(t, "null", /is not a taskmaster state file/);
  assertRefused(t, "42", /is not a taskmaster state file/);
  assertRefused(t, { ...sampleState(), format: "something-else" }, /is not a taskmaster state file/);
});

test("a state file of another format version is refused", (t) => {
  assertRefused(t, { ...sampleState(), version: 2 }, /has format version 2, and this taskmaster reads version 1/);
  assertRefused(t, { ...sampleState(), version: undefined }, /has format version undefined/);
});

test("a state file written for another target is refused", (t) => {
  assertRefused(t, sampleState({ target: "/work/other.ts:getJobs" }), /belongs to another target \(\/work\/other\.ts:getJobs, not \/work\/jobs\.ts:getJobs\)/);
});

test("a state file written for other options is refused", (t) => {
  assertRefused(t, sampleState({ options: { table: "orders", shard: "3" } }), /was written for other options \(shard=3 table=orders, not shard=3 table=users\)/);
  assertRefused(t, sampleState({ options: {} }), /was written for other options \(no options, not shard=3 table=users\)/);
  assertRefused(t, sampleState({ options: { ...identity.options, extra: "1" } }), /was written for other options/);
});

test("a state file with damaged fields is refused, naming the field", (t) => {
  const damaged: [Record<string, unknown>, RegExp][] = [
    [{ target: 5 }, /is damaged: no target/],
    [{ options: [] }, /is damaged: bad options/],
    [{ options: { shard: 3 } }, /is damaged: bad options/],
    [{ finished: "no" }, /is damaged: bad 'finished'/],
    [{ resume: { id: -1, job: "kw==" } }, /is damaged: bad 'resume'/],
    [{ resume: { id: 1 } }, /is damaged: bad 'resume'/],
    [{ resume: "41" }, /is damaged: bad 'resume'/],
    [{ completed: "5-3" }, /is damaged: bad 'completed'/],
    [{ completed: "1,,2" }, /is damaged: bad 'completed'/],
    [{ completed: 43 }, /is damaged: bad 'completed'/],
    [{ hashes: "not base64!" }, /is damaged: bad 'hashes'/],
    [{ hashes: 12 }, /is damaged: bad 'hashes'/],
    [{ completed: "43-47" }, /is damaged: 'hashes' does not match 'completed'/],
    [{ hashes: Buffer.alloc(12).toString("base64"), completed: "1" }, /is damaged: 'hashes' does not match 'completed'/],
    [{ counts: { done: -1, failed: 0 } }, /is damaged: bad 'counts'/],
    [{ counts: undefined }, /is damaged: bad 'counts'/],
    [{ started: undefined }, /is damaged: bad times/],
  ];
  for (const [fields, reason] of damaged) assertRefused(t, { ...sampleState(), ...fields }, reason);
});

test("a state file that cannot be read is refused with its path", (t) => {
  const path = join(tempDir(t), "a-directory.state.json");
  mkdirSync(path);
  assert.throws(
    () => readState(path, identity),
    (error: unknown) =>
      error instanceof UserError && error.message.includes(path) && /cannot be read/.test(error.message),
  );
});

// ---- default path --------------------------------------------------------------------------

test("the default state path lies beside the job module and is named after it", () => {
  const path = defaultStatePath("/work/batches/jobs.ts", "getJobs", true, {}, "/elsewhere");
  assert.match(path, /^\/work\/batches\/jobs\.[0-9a-f]{8}\.state\.json$/);
});

test("without a module file (a package target) the default state path is in the working directory", () => {
  const path = defaultStatePath(undefined, "getJobs", true, {}, "/run/here");
  assert.match(path, /^\/run\/here\/taskmaster\.[0-9a-f]{8}\.state\.json$/);
});

test("the default state path differs when the options differ", () => {
  const paths = new Set(
    ([{}, { table: "users" }, { table: "orders" }, { table: "users", shard: "1" }, { tableusers: "" }] as Record<string, string>[]).map((options) =>
      defaultStatePath("/w/jobs.ts", "getJobs", true, options, "/"),
    ),
  );
  assert.equal(paths.size, 5);
});

test("the default state path does not depend on the order the options were given in", () => {
  assert.equal(
    defaultStatePath("/w/jobs.ts", "getJobs", true, { a: "1", b: "2", c: "3" }, "/"),
    defaultStatePath("/w/jobs.ts", "getJobs", true, { c: "3", a: "1", b: "2" }, "/"),
  );
});

test("the default state path names the export only when it is not a default one", () => {
  const byDefault = defaultStatePath("/w/jobs.mjs", "get_jobs", true, {}, "/");
  const named = defaultStatePath("/w/jobs.mjs", "userJobs", false, {}, "/");
  assert.match(byDefault, /^\/w\/jobs\.[0-9a-f]{8}\.state\.json$/);
  assert.ok(!byDefault.includes("get_jobs"));
  assert.match(named, /^\/w\/jobs-userJobs\.[0-9a-f]{8}\.state\.json$/);
});
