/**
 * The state file: how far a batch has got, so a stopped or crashed run resumes without losing a
 * job. It is JSON, written atomically (see atomic-file.ts), and it
 * is never silently ignored: one that cannot be read, or that belongs to another target or other
 * options, is refused with its path and the reason, and left untouched.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { basename, dirname, extname, join } from "node:path";
import { writeFileAtomic } from "./atomic-file.ts";
import { UserError, messageOf } from "../errors.ts";
import { JOB_HASH_BYTES } from "../codec.ts";
import { parseRuns } from "../id-runs.ts";

export const STATE_FORMAT = "taskmaster-state";
export const STATE_VERSION = 1;

export interface StateFile {
  format: typeof STATE_FORMAT;
  version: typeof STATE_VERSION;
  /** The module and export that yields the jobs: `/abs/jobs.ts:getJobs`. */
  target: string;
  /** The `key=value` options given to getJobs. */
  options: Record<string, string>;
  /** True once every job has finished (done or failed). */
  finished: boolean;
  /**
   * Where a resumed run starts: `getJobs({ ...options, last: job })` yields this job first.
   * Null when no job has been handed out yet.
   */
  resume: { id: number; job: string; preview: string } | null;
  /** Ids at or above `resume.id` that are finished, as runs: "7-9,12". */
  completed: string;
  /** Base64 of one 8-byte payload hash per id in `completed`, in order, and then the hashes of
   * jobs finished in an earlier run that this run has not met again yet. */
  hashes: string;
  counts: { done: number; failed: number };
  started: string;
  updated: string;
}

/** What a run expects to find in its state file. */
export interface StateIdentity {
  target: string;
  options: Record<string, string>;
}

/**
 * The default state path: beside the target module (or in the working directory for a package
 * target), named after the module, its export when it is not a default one, and a short hash of
 * the options, so two batches over the same module with different options never share a file.
 */
export function defaultStatePath(
  moduleFile: string | undefined,
  exportName: string,
  defaultExport: boolean,
  options: Record<string, string>,
  cwd: string,
): string {
  const dir = moduleFile ? dirname(moduleFile) : cwd;
  const name = moduleFile ? basename(moduleFile, extname(moduleFile)) : "taskmaster";
  const label = defaultExport ? name : `${name}-${exportName}`;
  // The export name is hashed too: `jobs-x.ts` and `jobs.ts:x` must not share a file.
  const hash = createHash("sha256").update(`${exportName}\n${canonicalOptions(options)}`).digest("hex").slice(0, 8);
  return join(dir, `${label}.${hash}.state.json`);
}

export function canonicalOptions(options: Record<string, string>): string {
  const sorted = Object.keys(options)
    .sort()
    .map((key) => [key, options[key]]);
  return JSON.stringify(sorted);
}

/**
 * Reads and checks a state file. Returns undefined when there is none; throws a UserError when
 * it cannot be read or parsed, or belongs to another target or other options.
 */
export function readState(path: string, expected: StateIdentity): StateFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw refuse(path, `cannot be read: ${messageOf(error)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw refuse(path, `is not valid JSON (${messageOf(error)})`);
  }
  const problem = validate(value);
  if (problem) throw refuse(path, problem);
  const state = value as StateFile;
  if (state.target !== expected.target) {
    throw refuse(path, `belongs to another target (${state.target}, not ${expected.target})`);
  }
  if (canonicalOptions(state.options) !== canonicalOptions(expected.options)) {
    throw refuse(
      path,
      `was written for other options (${describeOptions(state.options)}, not ${describeOptions(expected.options)})`,
    );
  }
  return state;
}

function refuse(path: string, reason: string): UserError {
  return new UserError(
    `state file ${path} ${reason}; it was left untouched (use --reset to start over, or --state to use another file)`,
  );
}

function describeOptions(options: Record<string, string>): string {
  const keys = Object.keys(options).sort();
  return keys.length === 0 ? "no options" : keys.map((k) => `${k}=${options[k]}`).join(" ");
}

/** What is wrong with a parsed state file, or undefined when it is well-formed. */
function validate(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return "is not a taskmaster state file";
  const s = value as Record<string, unknown>;
  if (s.format !== STATE_FORMAT) return "is not a taskmaster state file";
  if (s.version !== STATE_VERSION) {
    return `has format version ${JSON.stringify(s.version)}, and this taskmaster reads version ${STATE_VERSION}`;
  }
  if (typeof s.target !== "string") return "is damaged: no target";
  if (typeof s.options !== "object" || s.options === null || Array.isArray(s.options)) {
    return "is damaged: bad options";
  }
  for (const v of Object.values(s.options)) if (typeof v !== "string") return "is damaged: bad options";
  if (typeof s.finished !== "boolean") return "is damaged: bad 'finished'";
  const resume = s.resume as Record<string, unknown> | null;
  if (resume !== null) {
    if (typeof resume !== "object" || !isUint(resume.id) || typeof resume.job !== "string") {
      return "is damaged: bad 'resume'";
    }
  }
  if (typeof s.completed !== "string") return "is damaged: bad 'completed'";
  const completed = parseRuns(s.completed);
  if (!completed) return "is damaged: bad 'completed'";
  if (typeof s.hashes !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(s.hashes)) {
    return "is damaged: bad 'hashes'";
  }
  const hashBytes = Buffer.from(s.hashes, "base64").length;
  let ids = 0;
  for (let i = 1; i < completed.length; i += 2) ids += completed[i]!;
  if (hashBytes % JOB_HASH_BYTES !== 0 || hashBytes < ids * JOB_HASH_BYTES) {
    return "is damaged: 'hashes' does not match 'completed'";
  }
  const counts = s.counts as Record<string, unknown> | undefined;
  if (typeof counts !== "object" || counts === null || !isUint(counts.done) || !isUint(counts.failed)) {
    return "is damaged: bad 'counts'";
  }
  if (typeof s.started !== "string" || typeof s.updated !== "string") return "is damaged: bad times";
  return undefined;
}

function isUint(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function serialise(state: StateFile): string {
  return `${JSON.stringify(state, null, 1)}\n`;
}

/** Writes the state atomically: a crash at any moment leaves either the old file or the new. */
export async function writeState(path: string, state: StateFile): Promise<void> {
  await writeFileAtomic(path, serialise(state));
}

/** `--reset`: forget the state (and the failed log that belongs to it). */
export async function removeState(path: string): Promise<void> {
  await rm(path, { force: true });
}
