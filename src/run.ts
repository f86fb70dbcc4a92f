/**
 * `run`: a master and a pool of worker processes on this host, for `tm-run TARGET N`. The
 * master runs in this process; the batch's result is the master's.
 */
import { EventEmitter } from "node:events";
import type { LogLevel } from "./log.ts";
import type { MasterEvents, MasterOptions, MasterResult, MasterStats } from "./master/master.ts";
import { Master } from "./master/master.ts";
import type { PoolStats } from "./spawn.ts";
import { WorkerPool } from "./spawn.ts";
import { GET_JOBS_NAMES, HANDLE_JOB_NAMES, loadJobModule, parseTarget, pickFunction } from "./target.ts";

export interface RunOptions extends MasterOptions {
  /** Worker processes to start. */
  workers: number;
  /** The name of the handleJob export (the name after `:` in the target names getJobs). */
  handleJob?: string | undefined;
  concurrency?: number | undefined;
  prefetch?: number | undefined;
  jobTimeout?: number | undefined;
  /** The workers' log level. */
  workerLogLevel?: LogLevel | undefined;
}

/** How long workers get to leave after the master is done before they are killed. */
const WORKER_EXIT_MS = 10_000;

export class Run extends EventEmitter<MasterEvents> {
  readonly finished: Promise<MasterResult>;
  private master: Master | undefined;
  private pool: WorkerPool | undefined;
  private stopRequested: { now?: boolean } | undefined;

  constructor(private readonly options: RunOptions) {
    super();
    this.finished = this.run();
  }

  stop(options: { now?: boolean } = {}): void {
    this.stopRequested = options;
    this.master?.stop(options);
    this.pool?.stop(options);
  }

  stats(): { master: MasterStats | undefined; workers: PoolStats | undefined } {
    return { master: this.master?.stats(), workers: this.pool?.stats() };
  }

  private async run(): Promise<MasterResult> {
    const options = this.options;
    const cwd = options.cwd ?? process.cwd();
    const spec = parseTarget(options.target);
    // Checked here, once, rather than by every worker process as it starts.
    const mod = await loadJobModule(spec.module, cwd);
    pickFunction(mod, options.getJobs ?? spec.exportName, GET_JOBS_NAMES);
    const handleJob = pickFunction(mod, options.handleJob, HANDLE_JOB_NAMES);

    const master = new Master({ ...options, address: options.address ?? "tcp://127.0.0.1:0" });
    this.master = master;
    for (const event of ["listening", "progress", "worker-joined", "worker-left", "job-failed"] as const) {
      master.on(event, (...args: unknown[]) => this.emit(event, ...(args as [never])));
    }
    if (this.stopRequested) master.stop(this.stopRequested);
    const endpoint = await Promise.race([master.listening, master.finished.then(() => undefined)]);
    if (endpoint === undefined) return master.finished;

    const pool = new WorkerPool({
      target: spec.module,
      handleJob: handleJob.name,
      workers: options.workers,
      address: endpoint,
      concurrency: options.concurrency,
      prefetch: options.prefetch,
      jobTimeout: options.jobTimeout,
      timeout: options.timeout,
      retries: options.retries,
      cwd,
      logLevel: options.workerLogLevel,
      logger: options.logger,
    });
    this.pool = pool;
    let finished = false;
    void pool.finished.then(({ codes }) => {
      if (!finished) master.stop({ error: `all ${codes.length} workers exited (exit codes ${codes.join(", ")})` });
    });
    const result = await master.finished;
    finished = true;
    // Workers told QUIT are leaving already; one that had not connected yet would wait for the
    // master it will never reach, so every worker is asked to stop (at once after a hard stop).
    pool.stop({ now: result.outcome === "stopped" && this.stopRequested?.now === true });
    const timer = setTimeout(() => pool.kill(), WORKER_EXIT_MS);
    await pool.finished;
    clearTimeout(timer);
    return result;
  }
}

/** Starts a master and `workers` worker processes. Await `run.finished` for the result. */
export function run(options: RunOptions): Run {
  return new Run(options);
}
