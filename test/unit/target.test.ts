/**
 * Targets: how `module:export` is split, how a job module is found and loaded, and how its
 * functions and `total` are picked out.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import type { TestContext } from "node:test";
import { UserError } from "../../src/errors.ts";
import type { JobModule } from "../../src/target.ts";
import { GET_JOBS_NAMES, HANDLE_JOB_NAMES, loadJobModule, parseTarget, pickFunction, readTotal } from "../../src/target.ts";

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "tm-target-unit-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function write(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  return path;
}

function moduleOf(exports: Record<string, unknown>): JobModule {
  return { specifier: "jobs.ts", file: "/w/jobs.ts", local: true, exports };
}

function userError(pattern: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof UserError, `not a UserError: ${String(error)}`);
    assert.match(error.message, pattern);
    return true;
  };
}

// ---- parseTarget ---------------------------------------------------------------------------

test("a target without a colon is only a module", () => {
  assert.deepEqual(parseTarget("jobs.ts"), { module: "jobs.ts", exportName: undefined });
  assert.deepEqual(parseTarget("./lib/jobs.mjs"), { module: "./lib/jobs.mjs", exportName: undefined });
});

test("an identifier after the last colon is the export name", () => {
  assert.deepEqual(parseTarget("jobs.ts:fn"), { module: "jobs.ts", exportName: "fn" });
  assert.deepEqual(parseTarget("pkg/mod:fn"), { module: "pkg/mod", exportName: "fn" });
  assert.deepEqual(parseTarget("@scope/pkg/mod:get_jobs"), { module: "@scope/pkg/mod", exportName: "get_jobs" });
  assert.deepEqual(parseTarget("jobs.ts:$fn_2"), { module: "jobs.ts", exportName: "$fn_2" });
  assert.deepEqual(parseTarget("a:b:c"), { module: "a:b", exportName: "c" });
});

test("a colon not followed by an identifier stays part of the module path", () => {
  assert.deepEqual(parseTarget("C:\\x\\jobs.ts"), { module: "C:\\x\\jobs.ts", exportName: undefined });
  assert.deepEqual(parseTarget("C:/x/jobs.ts"), { module: "C:/x/jobs.ts", exportName: undefined });
  assert.deepEqual(parseTarget("jobs.ts:"), { module: "jobs.ts:", exportName: undefined });
  assert.deepEqual(parseTarget("jobs.ts:1st"), { module: "jobs.ts:1st", exportName: undefined });
  assert.deepEqual(parseTarget("jobs.ts:get-jobs"), { module: "jobs.ts:get-jobs", exportName: undefined });
});

test("a Windows path followed by an export splits at the last colon", () => {
  assert.deepEqual(parseTarget("C:\\x\\jobs.ts:fn"), { module: "C:\\x\\jobs.ts", exportName: "fn" });
});

test("a drive letter directly followed by a name reads as module and export", () => {
  // The regex cannot tell a drive-relative Windows path from `module:export`.
  assert.deepEqual(parseTarget("C:jobs"), { module: "C", exportName: "jobs" });
});

test("a colon alone is a module, not an empty module with an export", () => {
  assert.deepEqual(parseTarget(":fn"), { module: ":fn", exportName: undefined });
});

// ---- pickFunction --------------------------------------------------------------------------

test("pickFunction finds an explicitly named export and marks it as not a default", () => {
  const fn = () => [];
  const picked = pickFunction(moduleOf({ userJobs: fn, getJobs: () => [] }), "userJobs", GET_JOBS_NAMES);
  assert.deepEqual(picked, { name: "userJobs", fn, isDefault: false });
});

test("pickFunction takes the first default name that exists, then the seed's name", () => {
  const camel = () => [];
  const snake = () => [];
  assert.equal(pickFunction(moduleOf({ getJobs: camel, get_jobs: snake }), undefined, GET_JOBS_NAMES).fn, camel);
  const picked = pickFunction(moduleOf({ get_jobs: snake }), undefined, GET_JOBS_NAMES);
  assert.deepEqual(picked, { name: "get_jobs", fn: snake, isDefault: true });
  assert.equal(pickFunction(moduleOf({ handle_job: snake }), undefined, HANDLE_JOB_NAMES).name, "handle_job");
});

test("pickFunction finds functions on a CommonJS module's exports object", () => {
  const fn = () => undefined;
  const picked = pickFunction(moduleOf({ default: { handleJob: fn } }), undefined, HANDLE_JOB_NAMES);
  assert.equal(picked.fn, fn);
});

test("a missing export is a UserError that lists the exports that exist", () => {
  const mod = moduleOf({ zeta: 1, alpha: () => 1, default: { fromCjs: 2 } });
  assert.throws(
    () => pickFunction(mod, "gone", GET_JOBS_NAMES),
    userError(/^jobs\.ts has no export 'gone'; it exports alpha, fromCjs, zeta$/),
  );
  assert.throws(
    () => pickFunction(mod, undefined, GET_JOBS_NAMES),
    userError(/has no export 'getJobs' or 'get_jobs'; it exports alpha, fromCjs, zeta$/),
  );
  assert.throws(() => pickFunction(moduleOf({}), undefined, GET_JOBS_NAMES), userError(/it exports nothing$/));
  assert.throws(
    () => pickFunction(moduleOf({ default: () => 1 }), undefined, GET_JOBS_NAMES),
    userError(/it exports default$/),
  );
});

test("an export that is not a function is a UserError naming its type", () => {
  assert.throws(
    () => pickFunction(moduleOf({ getJobs: [1, 2, 3] }), undefined, GET_JOBS_NAMES),
    userError(/^jobs\.ts: export 'getJobs' is an? object, not a function$/),
  );
  assert.throws(() => pickFunction(moduleOf({ fn: 5 }), "fn", GET_JOBS_NAMES), userError(/'fn' is a number, not a function/));
});

// ---- readTotal -----------------------------------------------------------------------------

test("readTotal reads a number export", async () => {
  assert.equal(await readTotal(moduleOf({ total: 1000 }), {}), 1000);
  assert.equal(await readTotal(moduleOf({ total: 0 }), {}), 0);
  assert.equal(await readTotal(moduleOf({ default: { total: 7 } }), {}), 7);
});

test("readTotal calls a function export with the options, and awaits it", async () => {
  const seen: unknown[] = [];
  const total = (options: Record<string, string>) => {
    seen.push(options);
    return Number(options.count) * 2;
  };
  assert.equal(await readTotal(moduleOf({ total }), { count: "21" }), 42);
  assert.deepEqual(seen, [{ count: "21" }]);
  assert.equal(await readTotal(moduleOf({ total: () => Promise.resolve(5) }), {}), 5);
});

test("readTotal is undefined without a usable total", async () => {
  for (const total of [undefined, -1, Number.NaN, Infinity, "100", null, () => "100"]) {
    assert.equal(await readTotal(moduleOf({ total }), {}), undefined, String(total));
  }
  assert.equal(await readTotal(moduleOf({}), {}), undefined);
});

// ---- loadJobModule -------------------------------------------------------------------------

test("loadJobModule loads an .mjs module by a relative path from the working directory", async (t) => {
  const dir = tempDir(t);
  const file = write(dir, "jobs.mjs", "export function* getJobs() { yield 1; }\nexport const total = 3;\n");
  const mod = await loadJobModule("./jobs.mjs", dir);
  assert.equal(mod.file, file);
  assert.equal(mod.local, true);
  assert.equal(mod.specifier, "./jobs.mjs");
  assert.equal(typeof mod.exports.getJobs, "function");
  assert.equal(mod.exports.total, 3);
});

test("loadJobModule loads a TypeScript module, and finds it without its extension", async (t) => {
  const dir = tempDir(t);
  const file = write(
    dir,
    "typed.ts",
    "export function handleJob(job: number): number { return job * 2; }\nexport const total: number = 9;\n",
  );
  const mod = await loadJobModule("./typed", dir);
  assert.equal(mod.file, file);
  const picked = pickFunction(mod, undefined, HANDLE_JOB_NAMES);
  assert.equal((picked.fn as unknown as (job: number) => number)(21), 42);
  assert.equal(await readTotal(mod, {}), 9);
});

test("loadJobModule loads a CommonJS module whose functions are found on module.exports", async (t) => {
  const dir = tempDir(t);
  write(dir, "jobs.cjs", "const api = {};\napi['get' + 'Jobs'] = function () { return [1]; };\nmodule.exports = api;\n");
  const mod = await loadJobModule(join(dir, "jobs.cjs"), "/");
  assert.equal(pickFunction(mod, undefined, GET_JOBS_NAMES).name, "getJobs");
});

test("loadJobModule resolves a package from the working directory, even one that only exports for import", async (t) => {
  const dir = tempDir(t);
  write(
    dir,
    "node_modules/tm-unit-jobs/package.json",
    JSON.stringify({ name: "tm-unit-jobs", type: "module", exports: { "./batch": { import: "./lib/batch.mjs" } } }),
  );
  const file = write(dir, "node_modules/tm-unit-jobs/lib/batch.mjs", "export const getJobs = () => [];\n");
  const mod = await loadJobModule("tm-unit-jobs/batch", dir);
  assert.equal(mod.file, file);
  assert.equal(mod.local, false);
  assert.equal(typeof mod.exports.getJobs, "function");
});

test("a missing job file is a UserError naming the path looked for", async (t) => {
  const dir = tempDir(t);
  await assert.rejects(loadJobModule("./missing.ts", dir), (error: unknown) => {
    assert.ok(error instanceof UserError);
    assert.ok(error.message.includes("./missing.ts"), error.message);
    assert.ok(error.message.includes(join(dir, "missing.ts")), error.message);
    return true;
  });
});

test("a name that is neither a file nor a package is a UserError naming both", async (t) => {
  const dir = tempDir(t);
  await assert.rejects(
    loadJobModule("tm-no-such-package-here", dir),
    userError(/cannot find the job module tm-no-such-package-here: no such file, and no package of that name from /),
  );
});

test("a job module that fails to load is a UserError saying so", async (t) => {
  const dir = tempDir(t);
  write(dir, "broken.mjs", "export const = ;\n");
  await assert.rejects(loadJobModule("./broken.mjs", dir), userError(/^could not load \.\/broken\.mjs: /));
});
