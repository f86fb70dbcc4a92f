/**
 * The wire protocol: every message encodes and parses back, and whatever else arrives is
 * rejected with a reason, never thrown.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { encodePlain, encodeRich } from "../../src/codec.ts";
import {
  Limits,
  MessageType,
  PROTOCOL_VERSION,
  encodeMaster,
  encodeWorker,
  parseMasterMessage,
  parseWorkerMessage,
  quitReasons,
} from "../../src/protocol.ts";
import type { Parsed } from "../../src/protocol.ts";

const EPOCH = 2 ** 47 - 1; // the largest epoch a master picks

function accepted<T>(parsed: Parsed<T>): T {
  if (!parsed.ok) assert.fail(`rejected: ${parsed.reason}`);
  return parsed.message;
}

function rejected<T>(parsed: Parsed<T>, reason?: string | RegExp): void {
  assert.equal(parsed.ok, false, `accepted: ${JSON.stringify(parsed)}`);
  if (parsed.ok) return;
  assert.equal(typeof parsed.reason, "string");
  assert.ok(parsed.reason.length > 0);
  if (typeof reason === "string") assert.equal(parsed.reason, reason);
  else if (reason) assert.match(parsed.reason, reason);
}

/** A worker frame built by hand. */
const worker = (...fields: unknown[]) => parseWorkerMessage(encodePlain(fields));
/** A master frame built by hand. */
const master = (...fields: unknown[]) => parseMasterMessage(encodeRich(fields));

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- round trips ---------------------------------------------------------------------------

test("every worker message parses back to what was encoded", () => {
  assert.deepEqual(accepted(parseWorkerMessage(encodeWorker.hello("host-1.example", 4242, 16))), {
    type: "hello",
    version: PROTOCOL_VERSION,
    host: "host-1.example",
    pid: 4242,
    concurrency: 16,
  });
  assert.deepEqual(accepted(parseWorkerMessage(encodeWorker.credit(EPOCH, 500))), {
    type: "credit",
    epoch: EPOCH,
    credit: 500,
  });
  assert.deepEqual(accepted(parseWorkerMessage(encodeWorker.done(EPOCH, [0, 3, 2 ** 40, 1]))), {
    type: "done",
    epoch: EPOCH,
    runs: [0, 3, 2 ** 40, 1],
  });
  const failures = [
    { id: 7, message: "boom", stack: "Error: boom\n    at handleJob" },
    { id: 2 ** 50, message: "ünïcødé ✗", stack: "" },
  ];
  assert.deepEqual(accepted(parseWorkerMessage(encodeWorker.fail(EPOCH, failures))), {
    type: "fail",
    epoch: EPOCH,
    failures,
  });
  assert.deepEqual(accepted(parseWorkerMessage(encodeWorker.return(1, [5, 10]))), {
    type: "return",
    epoch: 1,
    runs: [5, 10],
  });
  assert.deepEqual(accepted(parseWorkerMessage(encodeWorker.ping(EPOCH))), { type: "ping", epoch: EPOCH });
  assert.deepEqual(accepted(parseWorkerMessage(encodeWorker.bye(EPOCH))), { type: "bye", epoch: EPOCH });
});

test("empty acknowledgements and failure lists are valid messages", () => {
  assert.deepEqual(accepted(parseWorkerMessage(encodeWorker.done(1, []))).type, "done");
  assert.deepEqual(accepted(parseWorkerMessage(encodeWorker.fail(1, []))), { type: "fail", epoch: 1, failures: [] });
  assert.deepEqual(accepted(parseWorkerMessage(encodeWorker.credit(1, 0))), { type: "credit", epoch: 1, credit: 0 });
});

test("every master message parses back to what was encoded", () => {
  assert.deepEqual(accepted(parseMasterMessage(encodeMaster.welcome(EPOCH, 1000))), {
    type: "welcome",
    epoch: EPOCH,
    heartbeatMs: 1000,
  });
  const payloads = [1, "two", { three: [3n] }, new Map([[4, new Date(4)]])];
  assert.deepEqual(accepted(parseMasterMessage(encodeMaster.jobs(EPOCH, [10, 2, 1, 20, 2, 3], payloads))), {
    type: "jobs",
    epoch: EPOCH,
    runs: [10, 2, 1, 20, 2, 3],
    payloads,
  });
  assert.deepEqual(accepted(parseMasterMessage(encodeMaster.ping(EPOCH))), { type: "ping", epoch: EPOCH });
  for (const reason of quitReasons) {
    assert.deepEqual(accepted(parseMasterMessage(encodeMaster.quit(reason, `because ${reason}`))), {
      type: "quit",
      reason,
      message: `because ${reason}`,
    });
  }
  assert.deepEqual(accepted(parseMasterMessage(encodeMaster.reset())), { type: "reset" });
});

test("a HELLO of another protocol version parses as a hello with that version, whatever follows it", () => {
  const future = PROTOCOL_VERSION + 1;
  assert.equal(accepted(worker(MessageType.Hello, future, "h", 1, 1)).type, "hello");
  for (const frame of [
    [MessageType.Hello, future, "h", 1, 1],
    [MessageType.Hello, future, { layout: "new" }],
    [MessageType.Hello, future],
    [MessageType.Hello, 0, "h", 1, 1],
  ]) {
    const message = accepted(worker(...frame));
    assert.equal(message.type, "hello");
    assert.ok(message.type === "hello" && message.version === frame[1] && message.version !== PROTOCOL_VERSION);
  }
});

// ---- malformed frames ----------------------------------------------------------------------

test("a HELLO without a usable version, host, pid or concurrency is rejected", () => {
  rejected(worker(MessageType.Hello), "hello without a version");
  rejected(worker(MessageType.Hello, "1", "h", 1, 1), "hello without a version");
  rejected(worker(MessageType.Hello, -1, "h", 1, 1), "hello without a version");
  rejected(worker(MessageType.Hello, PROTOCOL_VERSION, 5, 1, 1), "malformed hello");
  rejected(worker(MessageType.Hello, PROTOCOL_VERSION, "h".repeat(Limits.maxHostText + 1), 1, 1), "malformed hello");
  rejected(worker(MessageType.Hello, PROTOCOL_VERSION, "h", -3, 1), "malformed hello");
  rejected(worker(MessageType.Hello, PROTOCOL_VERSION, "h", 1, 1, "extra"), "malformed hello");
  rejected(worker(MessageType.Hello, PROTOCOL_VERSION, "h", 1, 0), "hello with a bad concurrency");
  rejected(worker(MessageType.Hello, PROTOCOL_VERSION, "h", 1, Limits.maxConcurrency + 1), "hello with a bad concurrency");
  rejected(worker(MessageType.Hello, PROTOCOL_VERSION, "h", 1, 1.5), "hello with a bad concurrency");
  assert.equal(accepted(worker(MessageType.Hello, PROTOCOL_VERSION, "h", 1, Limits.maxConcurrency)).type, "hello");
});

test("worker fields of the wrong type are rejected", () => {
  rejected(worker(MessageType.Credit, 1, "5"), "malformed credit");
  rejected(worker(MessageType.Credit, "1", 5), "malformed credit");
  rejected(worker(MessageType.Credit, 1, Limits.maxCredit + 1), "malformed credit");
  rejected(worker(MessageType.Credit, 1), "malformed credit");
  rejected(worker(MessageType.Done, "1", [0, 1]), "malformed acknowledgement");
  rejected(worker(MessageType.Done, 1, { 0: 0, 1: 1 }), "malformed acknowledgement");
  rejected(worker(MessageType.Done, 1, "0-1"), "malformed acknowledgement");
  rejected(worker(MessageType.Return, 1, [0, "1"]), "malformed acknowledgement");
  rejected(worker(MessageType.Done, 1, [0, 1], "extra"), "malformed acknowledgement");
  rejected(worker(MessageType.Fail, 1, "boom"), "malformed failure");
  rejected(worker(MessageType.Fail, 1, [7]), "malformed failure");
  rejected(worker(MessageType.Fail, 1, [[7, "boom"]]), "malformed failure");
  rejected(worker(MessageType.Fail, 1, [[7, 42, ""]]), "malformed failure");
  rejected(worker(MessageType.Fail, 1, [["7", "boom", ""]]), "malformed failure");
  rejected(worker(MessageType.Fail, 1, [[7, "x".repeat(Limits.maxErrorText + 1), ""]]), "malformed failure");
  rejected(worker(MessageType.Fail, 1, [[7, "boom", "s".repeat(Limits.maxErrorText + 1)]]), "malformed failure");
  rejected(worker(MessageType.Ping), "malformed ping");
  rejected(worker(MessageType.Ping, null), "malformed ping");
  rejected(worker(MessageType.Ping, 1, 2), "malformed ping");
  rejected(worker(MessageType.Bye, true), "malformed bye");
});

test("negative, fractional and unsafe ids, epochs and counts are rejected", () => {
  for (const bad of [-1, 1.5, Number.MAX_SAFE_INTEGER + 1, Number.NaN, Infinity, -Infinity]) {
    rejected(worker(MessageType.Done, 1, [bad, 1]), "malformed acknowledgement");
    rejected(worker(MessageType.Return, 1, [0, bad]), "malformed acknowledgement");
    rejected(worker(MessageType.Done, bad, [0, 1]), "malformed acknowledgement");
    rejected(worker(MessageType.Fail, 1, [[bad, "m", "s"]]), "malformed failure");
    rejected(worker(MessageType.Credit, 1, bad), "malformed credit");
    rejected(worker(MessageType.Ping, bad), "malformed ping");
  }
  // A run whose end is not a safe integer, though its start and count are.
  rejected(worker(MessageType.Done, 1, [Number.MAX_SAFE_INTEGER - 1, 5]), "malformed acknowledgement");
  assert.equal(accepted(worker(MessageType.Done, 1, [Number.MAX_SAFE_INTEGER - 5, 5])).type, "done");
});

test("runs of odd length or with a count of 0 are rejected", () => {
  rejected(worker(MessageType.Done, 1, [0]), "malformed acknowledgement");
  rejected(worker(MessageType.Done, 1, [0, 1, 5]), "malformed acknowledgement");
  rejected(worker(MessageType.Return, 1, [0, 0]), "malformed acknowledgement");
  rejected(worker(MessageType.Done, 1, [0, 1, 5, 0]), "malformed acknowledgement");
});

test("an acknowledgement of more ids than one message may carry is rejected", () => {
  const max = Limits.maxIdsPerMessage;
  assert.equal(accepted(worker(MessageType.Done, 1, [0, max])).type, "done");
  rejected(worker(MessageType.Done, 1, [0, max + 1]), "malformed acknowledgement");
  rejected(worker(MessageType.Return, 1, [0, max, max + 10, 1]), "malformed acknowledgement");
  const tooManyFailures = new Array<unknown>(max + 1).fill([0, "", ""]);
  rejected(worker(MessageType.Fail, 1, tooManyFailures), "malformed failure");
});

test("unknown types, empty arrays and non-arrays are rejected by both sides", () => {
  const parsers: ((bytes: Uint8Array) => Parsed<unknown>)[] = [parseWorkerMessage, parseMasterMessage];
  for (const parse of parsers) {
    rejected(parse(encodePlain([99, 1])), "unknown message type");
    rejected(parse(encodePlain(["done", 1, [0, 1]])), "unknown message type");
    rejected(parse(encodePlain([null])), "unknown message type");
    rejected(parse(encodePlain([])), "not a message array");
    for (const value of [5, "hello", null, { type: 5 }, true]) {
      rejected(parse(encodePlain(value)), "not a message array");
    }
    rejected(parse(new Uint8Array(0)), "undecodable");
    rejected(parse(new Uint8Array([0xc1]))); // the one byte msgpack never uses
    rejected(parse(new Uint8Array([0x93, 0x01])), "undecodable"); // an array of 3 cut short
  }
  // Master-only types from a worker, and worker-only types from the master.
  rejected(worker(MessageType.Jobs, 1, [0, 1, 1], ["x"]), "unknown message type");
  rejected(worker(MessageType.Welcome, 1, 100), "unknown message type");
  rejected(master(MessageType.Hello, PROTOCOL_VERSION, "h", 1, 1), "unknown message type");
  rejected(master(MessageType.Done, 1, [0, 1]), "unknown message type");
});

test("a frame from a worker larger than the limit is rejected before it is decoded", () => {
  rejected(parseWorkerMessage(new Uint8Array(Limits.workerFrameBytes + 1)), "oversized");
});

test("JOBS whose run counts disagree with the number of payloads are rejected", () => {
  rejected(parseMasterMessage(encodeMaster.jobs(1, [0, 3, 1], ["a", "b"])), "jobs whose ids and payloads disagree");
  rejected(parseMasterMessage(encodeMaster.jobs(1, [0, 1, 1], ["a", "b"])), "jobs whose ids and payloads disagree");
  rejected(parseMasterMessage(encodeMaster.jobs(1, [], ["a"])), "jobs whose ids and payloads disagree");
  assert.equal(accepted(parseMasterMessage(encodeMaster.jobs(1, [0, 1, 1, 5, 1, 2], ["a", "b"]))).type, "jobs");
});

test("malformed master messages are rejected", () => {
  rejected(master(MessageType.Jobs, 1, [0, 1], ["a"]), "malformed jobs");
  rejected(master(MessageType.Jobs, 1, [0, 0, 1], []), "malformed jobs");
  rejected(master(MessageType.Jobs, 1, [0, 1, 0], ["a"]), "malformed jobs");
  rejected(master(MessageType.Jobs, 1, [-1, 1, 1], ["a"]), "malformed jobs");
  rejected(master(MessageType.Jobs, 1, [0.5, 1, 1], ["a"]), "malformed jobs");
  rejected(master(MessageType.Jobs, 1, "runs", ["a"]), "malformed jobs");
  rejected(master(MessageType.Jobs, 1, [0, 1, 1], "a"), "malformed jobs");
  rejected(master(MessageType.Jobs, "1", [0, 1, 1], ["a"]), "malformed jobs");
  rejected(master(MessageType.Welcome, 1, 0), "malformed welcome");
  rejected(master(MessageType.Welcome, 1), "malformed welcome");
  rejected(master(MessageType.Welcome, -1, 100), "malformed welcome");
  rejected(master(MessageType.Ping, 1.5), "malformed ping");
  rejected(master(MessageType.Quit, "bored", "m"), "malformed quit");
  rejected(master(MessageType.Quit, "done", 5), "malformed quit");
  rejected(master(MessageType.Quit, "done"), "malformed quit");
  rejected(master(MessageType.Quit, "done", "m".repeat(Limits.maxErrorText + 1)), "malformed quit");
  rejected(master(MessageType.Reset, 1), "malformed reset");
});

test("thousands of random byte frames are rejected or parsed, never thrown", () => {
  const random = prng(0x7a5c);
  let rejections = 0;
  for (let i = 0; i < 6000; i++) {
    const bytes = new Uint8Array(Math.floor(random() * 48));
    for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(random() * 256);
    // Half of them look like a short msgpack array, so they get past the first byte.
    if (bytes.length > 0 && random() < 0.5) bytes[0] = 0x91 + Math.floor(random() * 5);
    for (const parse of [parseWorkerMessage, parseMasterMessage]) {
      let result: Parsed<unknown> | undefined;
      assert.doesNotThrow(() => (result = parse(bytes)), Buffer.from(bytes).toString("hex"));
      assert.ok(result);
      if (!result.ok) {
        rejections++;
        assert.equal(typeof result.reason, "string");
      }
    }
  }
  assert.ok(rejections > 11_000, `${rejections} of 12000 random frames rejected`);
});

test("random well-formed msgpack arrays of the right message types are parsed or rejected, never thrown", () => {
  const random = prng(99);
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;
  const scalars: unknown[] = [0, 1, -1, 1.5, 2 ** 53, 2 ** 40, "", "x", null, true, [], {}, [0, 1], [0, 0], [[1, "a", "b"]], [0, 1, 1], ["a"]];
  for (let i = 0; i < 4000; i++) {
    const fields: unknown[] = [1 + Math.floor(random() * 11)];
    for (let k = Math.floor(random() * 5); k > 0; k--) fields.push(pick(scalars));
    const fromWorker = worker(...fields);
    const fromMaster = master(...fields);
    for (const result of [fromWorker, fromMaster] as Parsed<{ type: string }>[]) {
      if (result.ok) assert.equal(typeof result.message.type, "string");
      else assert.equal(typeof result.reason, "string");
    }
  }
});
