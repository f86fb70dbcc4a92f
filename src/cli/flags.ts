/**
 * The flags of the master and the worker, defined once and shared by the commands that run
 * them (tm-master and tm-run; tm-worker, tm-spawn and tm-run), with their translation into
 * library options.
 */
import { MASTER_DEFAULTS } from "../master/master.ts";
import type { MasterOptions } from "../master/master.ts";
import { DEFAULT_ADDRESS, DEFAULT_LIVENESS } from "../transport.ts";
import type { WorkerOptions } from "../worker/worker.ts";
import type { FlagSpec, FlagValues } from "./command.ts";
import { integerFlag, stringFlag } from "./command.ts";

export const connectionFlags: Record<string, FlagSpec> = {
  address: { type: "string", value: "URL", help: `master address (default ${DEFAULT_ADDRESS})` },
  timeout: {
    type: "string",
    value: "MS",
    help: `ms of silence per retry before a peer counts as gone (default ${DEFAULT_LIVENESS.timeoutMs})`,
  },
  retries: {
    type: "string",
    value: "N",
    help: `retries before a silent peer counts as gone: timeout x retries (default ${DEFAULT_LIVENESS.retries})`,
  },
};

export const masterFlags: Record<string, FlagSpec> = {
  size: { type: "string", value: "N", help: `jobs held ready to hand out (default ${MASTER_DEFAULTS.size})` },
  window: {
    type: "string",
    value: "N",
    help: `most jobs open between the oldest unfinished job and the newest (default ${MASTER_DEFAULTS.window})`,
  },
  state: { type: "string", value: "PATH", help: "state file (default: beside the target, named after it and its options)" },
  reset: { type: "boolean", help: "forget the state file and the failed log; start from the first job" },
  "max-attempts": {
    type: "string",
    value: "N",
    help: `attempts per job before it goes to the failed log (default ${MASTER_DEFAULTS.maxAttempts})`,
  },
  backoff: { type: "string", value: "MS", help: `first retry delay, doubled per attempt (default ${MASTER_DEFAULTS.backoff})` },
  grace: { type: "string", value: "MS", help: `how long a stop waits for running jobs (default ${MASTER_DEFAULTS.grace})` },
  halt: {
    type: "string",
    value: "N|P%",
    help: "stop (exit 2) once more than N jobs, or more than P% of at least 100, failed for good",
  },
  "resume-failed": { type: "boolean", help: "run the jobs of the failed log again instead of getJobs" },
  "get-jobs-callback": { type: "string", value: "NAME", help: "name of the getJobs export (default getJobs or get_jobs)" },
  "no-progress": { type: "boolean", help: "no progress line" },
};

export const workerFlags: Record<string, FlagSpec> = {
  concurrency: { type: "string", value: "N", help: "jobs each worker runs at once (default 1)" },
  prefetch: { type: "string", value: "N", help: "jobs each worker holds ready (default: adapts to the job rate)" },
  "job-timeout": {
    type: "string",
    value: "MS",
    help: "abort a job's ctx.signal and fail the attempt after MS ms (default: no limit)",
  },
  "handle-job-callback": {
    type: "string",
    value: "NAME",
    help: "name of the handleJob export (default handleJob or handle_job)",
  },
};

/** Encryption and the allow-list (tm-master only: tm-run's workers are its own, on loopback). */
export const masterSecurityFlags: Record<string, FlagSpec> = {
  "curve-secret": { type: "string", value: "FILE", help: "the master's secret key (tm-keygen's .key): encrypt all traffic with CURVE" },
  allow: { type: "string", value: "FILE|DIR", help: "the workers' public keys (a .pub, or a directory of them) allowed to connect" },
};

/** Listening beyond this host in clear text (tm-master and tm-run). */
export const insecureFlag: Record<string, FlagSpec> = {
  insecure: { type: "boolean", help: "listen on a non-loopback address without encryption, accepting the risk" },
};

export const workerSecurityFlags: Record<string, FlagSpec> = {
  "curve-secret": { type: "string", value: "FILE", help: "this worker's secret key (tm-keygen's .key); needs --server-key" },
  "server-key": { type: "string", value: "FILE", help: "the master's public key (its .pub); needs --curve-secret" },
};

export function masterOptions(flags: FlagValues): Omit<MasterOptions, "target" | "logger"> {
  return {
    getJobs: stringFlag(flags, "get-jobs-callback"),
    address: stringFlag(flags, "address"),
    size: integerFlag(flags, "size"),
    window: integerFlag(flags, "window"),
    state: stringFlag(flags, "state"),
    reset: flags.reset === true,
    timeout: integerFlag(flags, "timeout"),
    retries: integerFlag(flags, "retries"),
    maxAttempts: integerFlag(flags, "max-attempts"),
    backoff: integerFlag(flags, "backoff", 0),
    grace: integerFlag(flags, "grace", 0),
    halt: stringFlag(flags, "halt"),
    resumeFailed: flags["resume-failed"] === true,
    curveSecret: stringFlag(flags, "curve-secret"),
    allow: stringFlag(flags, "allow"),
    insecure: flags.insecure === true,
  };
}

export function workerOptions(flags: FlagValues): Omit<WorkerOptions, "target" | "logger"> {
  return {
    handleJob: stringFlag(flags, "handle-job-callback"),
    address: stringFlag(flags, "address"),
    concurrency: integerFlag(flags, "concurrency"),
    prefetch: integerFlag(flags, "prefetch"),
    jobTimeout: integerFlag(flags, "job-timeout"),
    curveSecret: stringFlag(flags, "curve-secret"),
    serverKey: stringFlag(flags, "server-key"),
    timeout: integerFlag(flags, "timeout"),
    retries: integerFlag(flags, "retries"),
  };
}

/** Whether to draw the progress line: not with --no-progress (or TM_NO_PROGRESS). */
export function wantProgress(flags: FlagValues): boolean {
  return flags["no-progress"] !== true;
}
