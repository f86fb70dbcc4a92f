/**
 * A pool of worker processes on this host (`tm-spawn`, and the workers of `tm-run`). Each child
 * runs the tm-worker command; it reports its counters to the pool over the IPC channel, and
 * stops gracefully when the pool asks or when the pool's process dies (the channel closes).
 *
 * Children get their own process group, so a Ctrl-C in the terminal reaches the pool only, and
 * the pool passes it on once: each child sees one signal, not two.
 */
import type { ChildProcess } from "node:child_process";
import { fork } from "node:child_process";
import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { constants } from "node:os";
import { fileURLToPath } from "node:url";
import { ExitCode } from "./errors.ts";
import type { LogLevel } from "./log.ts";
import { Logger } from "./log.ts";
import { positiveInteger } from "./options.ts";

export interface SpawnOptions {
  target: string;
  /** The name of the handleJob export; overrides the one in `target`. */
  handleJob?: string | undefined;
  workers: number;
  address?: string | undefined;
  concurrency?: number | undefined;
  prefetch?: number | undefined;
  jobTimeout?: number | undefined;
  curveSecret?: string | undefined;
  serverKey?: string | undefined;
  timeout?: number | undefined;
  retries?: number | undefined;
  cwd?: string | undefined;
  logLevel?: LogLevel | undefined;
  logger?: Logger | undefined;
}

/** What a child worker reports to its pool, twice a second and when it ends. */
export interface WorkerReport {
  type: "taskmaster-worker-stats";
  done: number;
  failed: number;
  running: number;
  connected: boolean;
  /** Set in the last report: how the worker's run ended (a process that dies sends none). */
  outcome?: string | undefined;
}

export interface PoolStats {
  alive: number;
  connected: number;
  done: number;
  failed: number;
  running: number;
}

export interface PoolResult {
  /** The worst exit code of the workers. */
  exitCode: number;
  codes: number[];
}

export interface PoolEvents {
  exit: [worker: { pid: number; code: number }];
}

export class WorkerPool extends EventEmitter<PoolEvents> {
  readonly finished: Promise<PoolResult>;
  /** Every worker process started, replacements included. */
  private readonly children: ChildProcess[] = [];
  private readonly reports = new Map<ChildProcess, WorkerReport>();
  private readonly log: Logger;
  private readonly respawns: number[] = [];
  private stops = 0;

  constructor(private readonly options: SpawnOptions) {
    super();
    this.log = options.logger ?? new Logger("tm-spawn", "warn");
    const workers = positiveInteger(options.workers, 1, "the number of workers");
    const slots = Array.from({ length: workers }, () => new Promise<number>((resolve) => this.start(resolve)));
    this.finished = Promise.all(slots).then((codes) => ({ exitCode: Math.max(ExitCode.Ok, ...codes), codes }));
  }

  /**
   * Starts a worker process for a slot, and another in its place if it dies without having
   * ended its run (killed, or a job took the process down), so that a poison job cannot empty
   * the pool before the master has failed it. `resolve` gets the slot's last exit code.
   */
  private start(resolve: (code: number) => void): void {
    const { script, execArgv } = workerScript();
    const child = fork(script, workerArguments(this.options), {
      cwd: this.options.cwd,
      execArgv,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      detached: true,
    });
    this.children.push(child);
    child.on("message", (message: unknown) => {
      if (isReport(message)) this.reports.set(child, message);
    });
    child.on("error", (error) => this.log.error(`worker process failed: ${error.message}`));
    child.on("exit", (code, signal) => {
      const exitCode = code ?? 128 + signalNumber(signal);
      this.emit("exit", { pid: child.pid ?? 0, code: exitCode });
      const ended = exitCode === ExitCode.Ok || this.reports.get(child)?.outcome !== undefined;
      if (!ended && this.stops === 0 && this.mayRespawn()) {
        this.log.warn(`worker ${child.pid} died (${signal ?? `exit code ${code}`}); starting another`);
        this.start(resolve);
      } else {
        resolve(exitCode);
      }
    });
  }

  /** At most three replacements per slot a minute: a worker that cannot live is left dead. */
  private mayRespawn(): boolean {
    const now = Date.now();
    while (this.respawns.length > 0 && now - this.respawns[0]! > 60_000) this.respawns.shift();
    if (this.respawns.length >= 3 * this.options.workers) {
      this.log.error("workers keep dying; not starting more this minute");
      return false;
    }
    this.respawns.push(now);
    return true;
  }

  get pids(): number[] {
    return this.children.map((c) => c.pid ?? 0);
  }

  /** Passes a stop on: the first asks each worker to finish and leave, the second to leave now. */
  stop(options: { now?: boolean } = {}): void {
    this.stops++;
    const signal = options.now || this.stops > 1 ? "SIGTERM" : "SIGINT";
    for (const child of this.children) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      if (signal === "SIGTERM" && this.stops > 2) child.kill("SIGKILL");
      else child.kill(signal);
    }
  }

  /** Kills every worker still running (after a master that did not get them to quit). */
  kill(): void {
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  }

  stats(): PoolStats {
    const stats: PoolStats = { alive: 0, connected: 0, done: 0, failed: 0, running: 0 };
    for (const child of this.children) {
      const report = this.reports.get(child);
      const alive = child.exitCode === null && child.signalCode === null;
      if (alive) stats.alive++;
      if (!report) continue;
      stats.done += report.done;
      stats.failed += report.failed;
      if (alive) {
        stats.running += report.running;
        if (report.connected) stats.connected++;
      }
    }
    return stats;
  }
}

/** Starts `workers` worker processes. Await `pool.finished` for their exit codes. */
export function spawnWorkers(options: SpawnOptions): WorkerPool {
  return new WorkerPool(options);
}

/** The tm-worker command beside this module: compiled JavaScript, or TypeScript under tsx. */
function workerScript(): { script: string; execArgv: string[] } {
  const js = fileURLToPath(new URL("./cli/tm-worker.js", import.meta.url));
  if (existsSync(js)) return { script: js, execArgv: [] };
  return { script: fileURLToPath(new URL("./cli/tm-worker.ts", import.meta.url)), execArgv: ["--import", "tsx"] };
}

function workerArguments(options: SpawnOptions): string[] {
  const args = [options.target];
  const flag = (name: string, value: string | number | undefined) => {
    if (value !== undefined) args.push(`--${name}`, String(value));
  };
  flag("handle-job-callback", options.handleJob);
  flag("address", options.address);
  flag("concurrency", options.concurrency);
  flag("prefetch", options.prefetch);
  flag("job-timeout", options.jobTimeout);
  flag("curve-secret", options.curveSecret);
  flag("server-key", options.serverKey);
  flag("timeout", options.timeout);
  flag("retries", options.retries);
  flag("log-level", options.logLevel);
  args.push("--no-progress");
  return args;
}

function isReport(message: unknown): message is WorkerReport {
  return (
    typeof message === "object" &&
    message !== null &&
    (message as { type?: unknown }).type === "taskmaster-worker-stats"
  );
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return (signal && constants.signals[signal]) ?? 1;
}
