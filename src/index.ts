/**
 * taskmaster's library API. The tm-* commands are thin wrappers over these functions.
 */
export { runMaster, Master, MASTER_DEFAULTS } from "./master/master.ts";
export type { MasterOptions, MasterResult, MasterStats, MasterEvents } from "./master/master.ts";
export { runWorker, Worker } from "./worker/worker.ts";
export type { WorkerOptions, WorkerResult, WorkerStats, WorkerEvents } from "./worker/worker.ts";
export type { JobContext, JobLog } from "./worker/context.ts";
export { run, Run } from "./run.ts";
export type { RunOptions } from "./run.ts";
export { spawnWorkers, WorkerPool } from "./spawn.ts";
export type { SpawnOptions, PoolStats, PoolResult } from "./spawn.ts";
export { ExitCode, UserError } from "./errors.ts";
export { Logger } from "./log.ts";
export type { LogLevel } from "./log.ts";
export { DEFAULT_ADDRESS } from "./transport.ts";
