/**
 * How jobs and protocol messages become bytes. Jobs are msgpack values; msgpackr's record
 * extension keeps plain objects and Maps apart, and `moreTypes` carries Sets, typed arrays and
 * Errors, so Date, BigInt, Map, Set and Buffer all round-trip exactly.
 */
import { createHash } from "node:crypto";
import { Packr } from "msgpackr";

function refuseFunction(): never {
  throw new TypeError("a function cannot be serialised");
}

const jobOptions = {
  moreTypes: true,
  useBigIntExtension: true,
  writeFunction: refuseFunction,
} as const;

/** Encodes and decodes everything the master sends: job payloads travel inside these frames. */
const jobPackr = new Packr(jobOptions);

/**
 * Decodes what workers send to the master. Workers never send job payloads, only ids, counts
 * and strings, so the master's decoder knows no extensions: hostile frames get less to play with.
 */
const plainPackr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });

/**
 * A separate, stateless encoder for job hashes: the bytes of a job must not depend on what was
 * encoded before it.
 */
const hashPackr = new Packr({ ...jobOptions, useRecords: false });

export function encodeRich(value: unknown): Buffer {
  return jobPackr.pack(value);
}

export function decodeRich(bytes: Uint8Array): unknown {
  return jobPackr.unpack(bytes);
}

export function encodePlain(value: unknown): Buffer {
  return plainPackr.pack(value);
}

export function decodePlain(bytes: Uint8Array): unknown {
  return plainPackr.unpack(bytes);
}

/** Why `job` cannot be serialised, or undefined when it can. */
export function serialisationProblem(job: unknown): string | undefined {
  try {
    jobPackr.pack(job);
    return undefined;
  } catch (error) {
    return describeSerialisationError(error);
  }
}

function describeSerialisationError(error: unknown): string {
  if (error instanceof RangeError && /call stack/i.test(error.message)) {
    return "it contains a cycle or is nested too deeply";
  }
  return error instanceof Error ? error.message : String(error);
}

/** Hash lengths are fixed: 8 bytes, which keeps false matches negligible across a whole window. */
export const JOB_HASH_BYTES = 8;

/**
 * The identity of a job's payload, used to recognise jobs already completed when a run resumes.
 * Returns the first 8 bytes of SHA-1 over the job's msgpack encoding.
 */
export function hashJob(job: unknown): Buffer {
  return createHash("sha1").update(hashPackr.pack(job)).digest().subarray(0, JOB_HASH_BYTES);
}

/** A short, single-line rendering of a job for messages and the state file. */
export function previewJob(job: unknown, max = 80): string {
  let text: string;
  try {
    text =
      typeof job === "string"
        ? JSON.stringify(job)
        : typeof job === "bigint"
          ? `${job}n`
          : (JSON.stringify(job, (_key, value: unknown) =>
              typeof value === "bigint" ? `${value}n` : value,
            ) ?? String(job));
  } catch {
    text = Object.prototype.toString.call(job);
  }
  if (job instanceof Map) text = `Map(${job.size})`;
  else if (job instanceof Set) text = `Set(${job.size})`;
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
