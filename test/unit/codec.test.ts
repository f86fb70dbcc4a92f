/**
 * The job codec: what a job is after a trip over the wire, what cannot be sent, and the payload
 * hash that recognises finished jobs on resume.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { JOB_HASH_BYTES, decodeRich, encodeRich, hashJob, serialisationProblem } from "../../src/codec.ts";
import { encodeMaster, parseMasterMessage } from "../../src/protocol.ts";

const roundTrip = (value: unknown): unknown => decodeRich(encodeRich(value));

/** Jobs of every kind the design promises, each built fresh on every call. */
function sampleJobs(): Record<string, unknown> {
  return {
    integer: 42,
    negative: -7,
    float: 0.1,
    big: 2 ** 53 - 1,
    string: "plain",
    unicode: "héllo wörld ✓ 🎉 日本語 \u0000 \uffff",
    boolean: true,
    null: null,
    date: new Date(1_700_000_000_123),
    oldDate: new Date(-1e13),
    smallBigInt: 5n,
    negativeBigInt: -12n,
    bigInt64: 2n ** 63n - 1n,
    bigIntOver64: 2n ** 100n + 3n,
    negativeBigIntOver64: -(2n ** 90n),
    map: new Map<unknown, unknown>([
      [1, "one"],
      ["1", "string one"],
      [true, null],
      [3n, new Date(3)],
    ]),
    nestedMap: new Map<string, unknown>([["inner", new Map([[{ k: 1 }, [1, 2]]])]]),
    set: new Set([1, "1", 2n]),
    buffer: Buffer.from([0, 1, 2, 254, 255]),
    uint8: new Uint8Array([9, 8, 7]),
    emptyBuffer: Buffer.alloc(0),
    object: { a: 1, nested: { b: [1, { c: "d" }], e: new Set([new Map([["x", 1]])]) } },
    array: [1, "two", [3, [4, [5]]], { six: 6 }],
    withUndefined: { present: 1, missing: undefined },
    emptyObject: {},
    emptyArray: [],
  };
}

test("every kind of job survives encodeRich and decodeRich exactly", () => {
  for (const [name, job] of Object.entries(sampleJobs())) {
    assert.deepStrictEqual(roundTrip(job), job, name);
  }
});

test("a Map stays a Map, a Set a Set and a plain object a plain object", () => {
  const map = roundTrip(new Map([["a", 1]]));
  assert.ok(map instanceof Map);
  assert.deepEqual([...map], [["a", 1]]);
  const object = roundTrip({ a: 1 });
  assert.equal(Object.getPrototypeOf(object), Object.prototype);
  assert.ok(!(object instanceof Map));
  assert.ok(roundTrip(new Set(["a"])) instanceof Set);
  const nested = roundTrip({ m: new Map([[1, { o: 2 }]]) }) as { m: Map<number, { o: number }> };
  assert.ok(nested.m instanceof Map);
  assert.equal(Object.getPrototypeOf(nested.m.get(1)), Object.prototype);
});

test("a Map keeps non-string keys as they were", () => {
  const key = { id: 1 };
  const decoded = roundTrip(new Map<unknown, unknown>([[1, "a"], [key, "b"], [2n, "c"]])) as Map<unknown, unknown>;
  const keys = [...decoded.keys()];
  assert.equal(keys[0], 1);
  assert.deepEqual(keys[1], key);
  assert.equal(keys[2], 2n);
  assert.equal(decoded.get(1), "a");
  assert.equal(decoded.has("1"), false);
});

test("a Buffer stays a Buffer and a Uint8Array stays a Uint8Array", () => {
  const buffer = roundTrip(Buffer.from("abc"));
  assert.ok(Buffer.isBuffer(buffer));
  assert.deepEqual(buffer, Buffer.from("abc"));
  const bytes = roundTrip(new Uint8Array([1, 2]));
  assert.equal(Object.getPrototypeOf(bytes), Uint8Array.prototype);
  assert.deepEqual(bytes, new Uint8Array([1, 2]));
});

test("BigInts keep their type and value, small ones and ones wider than 64 bits", () => {
  for (const value of [0n, 1n, -1n, 2n ** 64n, -(2n ** 64n) - 1n, 2n ** 200n + 1n]) {
    const decoded = roundTrip(value);
    assert.equal(typeof decoded, "bigint");
    assert.equal(decoded, value);
  }
});

test("a property set to undefined is still present after the trip", () => {
  const decoded = roundTrip({ a: undefined, b: 2 }) as Record<string, unknown>;
  assert.ok("a" in decoded);
  assert.equal(decoded.a, undefined);
  assert.deepEqual(Object.keys(decoded), ["a", "b"]);
});

test("jobs arrive exactly as sent inside a JOBS message", () => {
  const jobs = Object.values(sampleJobs());
  const parsed = parseMasterMessage(encodeMaster.jobs(7, [100, jobs.length, 1], jobs));
  assert.ok(parsed.ok);
  assert.equal(parsed.message.type, "jobs");
  assert.ok(parsed.message.type === "jobs");
  assert.deepStrictEqual(parsed.message.payloads, Object.values(sampleJobs()));
});

test("each encoded frame decodes on its own, in any order, whatever was encoded before it", () => {
  const frames = [
    encodeRich([{ shape: 1, a: "x" }]),
    encodeRich([{ other: 2 }, { shape: 1, a: "y" }]),
    encodeRich([{ shape: 3, a: "z" }]),
  ];
  assert.deepStrictEqual(decodeRich(frames[2]!), [{ shape: 3, a: "z" }]);
  assert.deepStrictEqual(decodeRich(frames[0]!), [{ shape: 1, a: "x" }]);
  assert.deepStrictEqual(decodeRich(frames[1]!), [{ other: 2 }, { shape: 1, a: "y" }]);
});

test("a batch of hundreds of differently shaped objects round-trips", () => {
  const jobs = Array.from({ length: 300 }, (_, i) => ({ [`key${i}`]: i, inner: { [`k${i % 70}`]: [i] } }));
  assert.deepStrictEqual(roundTrip(jobs), jobs);
});

test("serialisationProblem is undefined for jobs that can be sent", () => {
  for (const [name, job] of Object.entries(sampleJobs())) assert.equal(serialisationProblem(job), undefined, name);
});

test("serialisationProblem names a function, a symbol and a cycle", () => {
  assert.match(serialisationProblem({ handler: () => 1 }) ?? "", /function/);
  assert.match(serialisationProblem(new Map([["f", function named() {}]])) ?? "", /function/);
  assert.match(serialisationProblem({ tag: Symbol("x") }) ?? "", /symbol/);
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  assert.match(serialisationProblem(cyclic) ?? "", /cycle/);
  const loop: unknown[] = [];
  loop.push([loop]);
  assert.match(serialisationProblem(loop) ?? "", /cycle/);
});

test("a job that failed to serialise does not spoil the jobs encoded after it", () => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.ok(serialisationProblem(cyclic));
  assert.ok(serialisationProblem({ nested: { deeper: [1, () => 2] } }));
  for (const [name, job] of Object.entries(sampleJobs())) assert.deepStrictEqual(roundTrip(job), job, name);
});

test("hashJob gives 8 bytes", () => {
  assert.equal(JOB_HASH_BYTES, 8);
  for (const job of Object.values(sampleJobs())) assert.equal(hashJob(job).length, JOB_HASH_BYTES);
});

test("hashJob is the same for equal jobs built separately, whatever was hashed or encoded in between", () => {
  const first = Object.entries(sampleJobs()).map(([name, job]) => [name, hashJob(job)] as const);
  encodeRich({ shape: "a record the shared encoder now knows" });
  hashJob({ another: "shape" });
  const again = sampleJobs();
  for (const [name, hash] of first) assert.deepEqual(hashJob(again[name]), hash, name);
});

test("hashJob differs for different jobs", () => {
  const jobs: unknown[] = [
    1,
    2,
    "1",
    1n,
    [1, 2],
    [2, 1],
    { a: 1 },
    { a: 2 },
    { b: 1 },
    new Map([["a", 1]]),
    new Set([1, 2]),
    Buffer.from([1]),
    new Date(1),
    new Date(2),
    null,
    true,
    "",
    [],
    {},
  ];
  const hashes = new Set(jobs.map((job) => hashJob(job).toString("hex")));
  assert.equal(hashes.size, jobs.length);
  const many = new Set(Array.from({ length: 5000 }, (_, i) => hashJob({ id: i }).toString("hex")));
  assert.equal(many.size, 5000);
});
