/**
 * The wire protocol between master (ROUTER) and workers (DEALER): one msgpack frame per
 * message, an array `[type, ...fields]`. Every frame that arrives is validated here before any
 * other code sees it; what does not validate is reported as a reason and dropped by the caller.
 *
 * Worker → master                          Master → worker
 *   HELLO   version host pid concurrency     WELCOME epoch heartbeatMs
 *   CREDIT  epoch n                          JOBS    epoch [start count attempt …] [payload …]
 *   DONE    epoch [start count …]            PING    epoch
 *   FAIL    epoch [[id message stack] …]     QUIT    reason message
 *   RETURN  epoch [start count …]            RESET   (who are you? say HELLO again)
 *   PING    epoch
 *   BYE     epoch
 *
 * RETURN gives back jobs a worker will not start; it is sent by a worker that is leaving, so it
 * also cancels the worker's credit.
 *
 * `epoch` is random per master incarnation, so messages meant for an earlier master (one that
 * was restarted on the same address) are recognised and ignored.
 */
import { decodePlain, decodeRich, encodePlain, encodeRich } from "./codec.ts";
import type { IdRuns } from "./id-runs.ts";

export const PROTOCOL_VERSION = 1;

export const MessageType = {
  Hello: 1,
  Welcome: 2,
  Credit: 3,
  Jobs: 4,
  Done: 5,
  Fail: 6,
  Return: 7,
  Ping: 8,
  Quit: 9,
  Bye: 10,
  Reset: 11,
} as const;

/** Upper bounds that keep a hostile or broken peer from making us allocate without limit. */
export const Limits = {
  /** Bytes in one frame from a worker (the master's maxMessageSize): acks and errors are small. */
  workerFrameBytes: 16 * 1024 * 1024,
  /** Bytes in one frame from the master (the workers' maxMessageSize): a batch of large jobs. */
  masterFrameBytes: 1024 * 1024 * 1024,
  /** Ids in one DONE/RETURN/FAIL message. */
  maxIdsPerMessage: 1 << 20,
  /** Credit one worker may hold; also bounds a worker's prefetch. */
  maxCredit: 1 << 20,
  maxConcurrency: 1 << 16,
  maxErrorText: 64 * 1024,
  maxHostText: 255,
} as const;

export type QuitReason = "done" | "stopping" | "version" | "refused";

/** Why the master asked a worker to leave; the worker's exit code follows from it. */
export const quitReasons: readonly QuitReason[] = ["done", "stopping", "version", "refused"];

export interface JobFailure {
  id: number;
  message: string;
  stack: string;
}

export type WorkerMessage =
  | { type: "hello"; version: number; host: string; pid: number; concurrency: number }
  | { type: "credit"; epoch: number; credit: number }
  | { type: "done"; epoch: number; runs: IdRuns }
  | { type: "fail"; epoch: number; failures: JobFailure[] }
  | { type: "return"; epoch: number; runs: IdRuns }
  | { type: "ping"; epoch: number }
  | { type: "bye"; epoch: number };

export type MasterMessage =
  | { type: "welcome"; epoch: number; heartbeatMs: number }
  | { type: "jobs"; epoch: number; runs: number[]; payloads: unknown[] }
  | { type: "ping"; epoch: number }
  | { type: "quit"; reason: QuitReason; message: string }
  | { type: "reset" };

export type Parsed<T> = { ok: true; message: T } | { ok: false; reason: string };

// ---- encoding ------------------------------------------------------------------------------

export const encodeWorker = {
  hello: (host: string, pid: number, concurrency: number) =>
    encodePlain([MessageType.Hello, PROTOCOL_VERSION, host, pid, concurrency]),
  credit: (epoch: number, credit: number) => encodePlain([MessageType.Credit, epoch, credit]),
  done: (epoch: number, runs: IdRuns) => encodePlain([MessageType.Done, epoch, runs]),
  fail: (epoch: number, failures: JobFailure[]) =>
    encodePlain([MessageType.Fail, epoch, failures.map((f) => [f.id, f.message, f.stack])]),
  return: (epoch: number, runs: IdRuns) => encodePlain([MessageType.Return, epoch, runs]),
  ping: (epoch: number) => encodePlain([MessageType.Ping, epoch]),
  bye: (epoch: number) => encodePlain([MessageType.Bye, epoch]),
};

export const encodeMaster = {
  welcome: (epoch: number, heartbeatMs: number) =>
    encodeRich([MessageType.Welcome, epoch, heartbeatMs]),
  /** Throws when a payload cannot be serialised; the caller finds and names the job. */
  jobs: (epoch: number, runs: number[], payloads: unknown[]) =>
    encodeRich([MessageType.Jobs, epoch, runs, payloads]),
  ping: (epoch: number) => encodeRich([MessageType.Ping, epoch]),
  quit: (reason: QuitReason, message: string) => encodeRich([MessageType.Quit, reason, message]),
  reset: () => encodeRich([MessageType.Reset]),
};

// ---- validation ----------------------------------------------------------------------------

const isUint = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0;

const isText = (value: unknown, max: number): value is string =>
  typeof value === "string" && value.length <= max;

/** `[start, count, …]` with safe, non-negative starts and positive counts. */
function isIdRuns(value: unknown): value is IdRuns {
  if (!Array.isArray(value) || value.length % 2 !== 0) return false;
  let total = 0;
  for (let i = 0; i < value.length; i += 2) {
    const start: unknown = value[i];
    const count: unknown = value[i + 1];
    if (!isUint(start) || !isUint(count) || count === 0) return false;
    if (!Number.isSafeInteger(start + count)) return false;
    total += count;
    if (total > Limits.maxIdsPerMessage) return false;
  }
  return true;
}

function decodeArray(bytes: Uint8Array, decode: (b: Uint8Array) => unknown): unknown[] | string {
  let value: unknown;
  try {
    value = decode(bytes);
  } catch {
    return "undecodable";
  }
  if (!Array.isArray(value) || value.length === 0) return "not a message array";
  return value as unknown[];
}

/** Validates one frame from a worker. */
export function parseWorkerMessage(bytes: Uint8Array): Parsed<WorkerMessage> {
  if (bytes.length > Limits.workerFrameBytes) return bad("oversized");
  const m = decodeArray(bytes, decodePlain);
  if (typeof m === "string") return bad(m);
  const [type, a, b, c, d] = m;
  switch (type) {
    case MessageType.Hello:
      // The version comes first and is checked by the caller, so any later layout is readable.
      if (!isUint(a)) return bad("hello without a version");
      if (a !== PROTOCOL_VERSION) return ok({ type: "hello", version: a, host: "", pid: 0, concurrency: 0 });
      if (m.length !== 5 || !isText(b, Limits.maxHostText) || !isUint(c)) return bad("malformed hello");
      if (!isUint(d) || d < 1 || d > Limits.maxConcurrency) return bad("hello with a bad concurrency");
      return ok({ type: "hello", version: a, host: b, pid: c, concurrency: d });
    case MessageType.Credit:
      if (m.length !== 3 || !isUint(a) || !isUint(b) || b > Limits.maxCredit) return bad("malformed credit");
      return ok({ type: "credit", epoch: a, credit: b });
    case MessageType.Done:
    case MessageType.Return:
      if (m.length !== 3 || !isUint(a) || !isIdRuns(b)) return bad("malformed acknowledgement");
      return ok({ type: type === MessageType.Done ? "done" : "return", epoch: a, runs: b });
    case MessageType.Fail: {
      if (m.length !== 3 || !isUint(a) || !Array.isArray(b) || b.length > Limits.maxIdsPerMessage) {
        return bad("malformed failure");
      }
      const failures: JobFailure[] = [];
      for (const entry of b as unknown[]) {
        if (!Array.isArray(entry) || entry.length !== 3) return bad("malformed failure");
        const [id, message, stack] = entry as unknown[];
        if (!isUint(id) || !isText(message, Limits.maxErrorText) || !isText(stack, Limits.maxErrorText)) {
          return bad("malformed failure");
        }
        failures.push({ id, message, stack });
      }
      return ok({ type: "fail", epoch: a, failures });
    }
    case MessageType.Ping:
      if (m.length !== 2 || !isUint(a)) return bad("malformed ping");
      return ok({ type: "ping", epoch: a });
    case MessageType.Bye:
      if (m.length !== 2 || !isUint(a)) return bad("malformed bye");
      return ok({ type: "bye", epoch: a });
    default:
      return bad("unknown message type");
  }
}

/** Validates one frame from the master. */
export function parseMasterMessage(bytes: Uint8Array): Parsed<MasterMessage> {
  if (bytes.length > Limits.masterFrameBytes) return bad("oversized");
  const m = decodeArray(bytes, decodeRich);
  if (typeof m === "string") return bad(m);
  const [type, a, b, c] = m;
  switch (type) {
    case MessageType.Welcome:
      if (m.length !== 3 || !isUint(a) || !isUint(b) || b === 0) return bad("malformed welcome");
      return ok({ type: "welcome", epoch: a, heartbeatMs: b });
    case MessageType.Jobs: {
      if (m.length !== 4 || !isUint(a) || !Array.isArray(b) || !Array.isArray(c)) {
        return bad("malformed jobs");
      }
      if (b.length % 3 !== 0) return bad("malformed jobs");
      let total = 0;
      for (let i = 0; i < b.length; i += 3) {
        const start: unknown = b[i];
        const count: unknown = b[i + 1];
        const attempt: unknown = b[i + 2];
        if (!isUint(start) || !isUint(count) || count === 0 || !isUint(attempt) || attempt === 0) {
          return bad("malformed jobs");
        }
        if (!Number.isSafeInteger(start + count)) return bad("malformed jobs");
        total += count;
      }
      if (total !== c.length) return bad("jobs whose ids and payloads disagree");
      return ok({ type: "jobs", epoch: a, runs: b as number[], payloads: c });
    }
    case MessageType.Ping:
      if (m.length !== 2 || !isUint(a)) return bad("malformed ping");
      return ok({ type: "ping", epoch: a });
    case MessageType.Quit:
      if (m.length !== 3 || !quitReasons.includes(a as QuitReason) || !isText(b, Limits.maxErrorText)) {
        return bad("malformed quit");
      }
      return ok({ type: "quit", reason: a as QuitReason, message: b });
    case MessageType.Reset:
      if (m.length !== 1) return bad("malformed reset");
      return ok({ type: "reset" });
    default:
      return bad("unknown message type");
  }
}

function ok<T>(message: T): Parsed<T> {
  return { ok: true, message };
}

function bad(reason: string): { ok: false; reason: string } {
  return { ok: false, reason };
}
