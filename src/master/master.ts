/**
 * The master: pulls jobs from the user's iterator (Feeder) into the Ledger, hands them to
 * workers over a ZeroMQ ROUTER socket in credit-sized batches, takes their acknowledgements,
 * and checkpoints to the state file.
 *
 *   getJobs() ─► Feeder ─► Ledger ─► dispatch ══ ROUTER ══► workers
 *                             ▲                       │
 *                             └──── DONE / FAIL ◄─────┘
 *                             │
 *                        Checkpoint ─► state file
 */
import { EventEmitter } from "node:events";
import { randomInt } from "node:crypto";
import { resolve } from "node:path";
import * as zmq from "zeromq";
import { decodeRich, previewJob, serialisationProblem } from "../codec.ts";
import { ExitCode, UserError, errorDetail, messageOf } from "../errors.ts";
import { Logger } from "../log.ts";
import type { Halt } from "../options.ts";
import { describeHalt, nonNegativeInteger, parseHalt, positiveInteger } from "../options.ts";
import type { JobFailure, WorkerMessage } from "../protocol.ts";
import { Limits, PROTOCOL_VERSION, encodeMaster, parseMasterMessage, parseWorkerMessage } from "../protocol.ts";
import { Checkpoint } from "../state/checkpoint.ts";
import type { FailureSink } from "../state/failed-log.ts";
import { FailedLog, failedLogPath, readFailedJobs, removeFailedLog } from "../state/failed-log.ts";
import { FailedRerun } from "../state/failed-rerun.ts";
import { Skips } from "../state/skips.ts";
import type { StateFile } from "../state/state-file.ts";
import { defaultStatePath, readState, removeState, writeState } from "../state/state-file.ts";
import type { JobFunction, JobModule } from "../target.ts";
import { GET_JOBS_NAMES, loadJobModule, parseTarget, pickFunction, readTotal } from "../target.ts";
import type { KeyPair } from "../security.ts";
import { checkExposure, readAllowList, readKeyPair, zap } from "../security.ts";
import type { Liveness } from "../transport.ts";
import {
  DEFAULT_ADDRESS,
  livenessFrom,
  Outbox,
  checkAddress,
  checkZeroMQ,
  heartbeatInterval,
  silenceLimit,
} from "../transport.ts";
import { Feeder, openJobs } from "./feeder.ts";
import type { Lease } from "./ledger.ts";
import { Ledger, MAX_ATTEMPTS } from "./ledger.ts";
import type { Peer } from "./peers.ts";
import { Peers, describePeer } from "./peers.ts";

export interface MasterOptions {
  /** `jobs.ts`, `jobs.ts:exportName` or `some-package/module:exportName`. */
  target: string;
  /** The name of the getJobs export; overrides the one in `target`. */
  getJobs?: string | undefined;
  /** The `key=value` options passed to getJobs. */
  options?: Record<string, string> | undefined;
  /** Where targets and relative paths are resolved; defaults to `process.cwd()`. */
  cwd?: string | undefined;
  address?: string | undefined;
  /** Jobs held ready to hand out. */
  size?: number | undefined;
  /** Most jobs open between the watermark and the newest job. */
  window?: number | undefined;
  /** The state file; defaults to one beside the target module. */
  state?: string | undefined;
  /** Forget the state file (and the failed log) and start from the beginning. */
  reset?: boolean | undefined;
  timeout?: number | undefined;
  retries?: number | undefined;
  /** Attempts a job gets before it goes to the failed log. */
  maxAttempts?: number | undefined;
  /** Base of the exponential backoff between attempts, in ms. */
  backoff?: number | undefined;
  /** How long a stop waits for running jobs, in ms. */
  grace?: number | undefined;
  /** Stop once more than N jobs (or P% of jobs, as "P%") failed for good. */
  halt?: Halt | string | undefined;
  /** Run the jobs of the failed log again instead of getJobs. */
  resumeFailed?: boolean | undefined;
  /** The master's CURVE secret key file (tm-keygen's .key): encrypts all traffic. */
  curveSecret?: string | undefined;
  /** The workers allowed to connect: one .pub file, or a directory of them. Needs `curveSecret`. */
  allow?: string | undefined;
  /** Listen on a non-loopback address without encryption all the same. */
  insecure?: boolean | undefined;
  logger?: Logger | undefined;
  /** How often the state file is written while jobs finish, in ms. */
  checkpointInterval?: number | undefined;
}

export const MASTER_DEFAULTS = {
  address: DEFAULT_ADDRESS,
  size: 10_000,
  window: 100_000,
  maxAttempts: 3,
  backoff: 1000,
  grace: 30_000,
  checkpointInterval: 250,
} as const;

/** The longest wait between two attempts of a job, however many attempts it is given. */
const MAX_BACKOFF_MS = 5 * 60_000;

/** A percentage given to --halt is judged once this many jobs have finished. */
const HALT_SAMPLE = 100;

/** Jobs in one JOBS message at most, and bytes (estimated) at most. */
const MAX_BATCH = 1000;
const MAX_BATCH_BYTES = 256 * 1024;
/** Jobs of at least this many bytes (on average in a batch) are kept as their encoded batch. */
const ATTACH_BYTES_PER_JOB = 64;
/** Bytes (estimated) of jobs held ready to hand out at most; see the Feeder. */
const BUFFER_BYTES = 4 * 1024 * 1024;

export interface MasterStats {
  /** Jobs done, including those of earlier runs of this batch. */
  done: number;
  failed: number;
  /** Jobs finished (done or failed) by this run. */
  finishedThisRun: number;
  /** Jobs skipped because an earlier run finished them. */
  skipped: number;
  queued: number;
  size: number;
  leased: number;
  workers: number;
  elapsedMs: number;
  total: number | undefined;
  /** Frames dropped as malformed, forged or stale. */
  dropped: number;
}

export interface MasterResult {
  exitCode: ExitCode;
  /** How the run ended. `halted`: too many jobs failed (`halt`). */
  outcome: "done" | "already-finished" | "stopped" | "halted" | "error";
  /** For `error`: what went wrong, in one line. */
  message?: string | undefined;
  done: number;
  failed: number;
  statePath: string;
  failedLogPath: string;
}

export interface MasterEvents {
  listening: [endpoint: string];
  progress: [stats: MasterStats];
  "worker-joined": [worker: { host: string; pid: number; concurrency: number }];
  "worker-left": [worker: { host: string; pid: number }, reason: string];
  "job-failed": [job: { id: number; job: unknown; error: string; attempts: number }];
}

type Phase = "starting" | "running" | "stopping" | "closing";

/** Where a run's jobs come from. */
interface Source {
  ledger: Ledger;
  skips: Skips | undefined;
  iterator: Iterator<unknown> | AsyncIterator<unknown>;
  sync: boolean;
}

type Outcome =
  | { kind: "done" }
  | { kind: "stopped"; exitCode: ExitCode; message?: string | undefined }
  | { kind: "abandoned" };

export class Master extends EventEmitter<MasterEvents> {
  /** Resolves with the result; rejects with a UserError for setup mistakes. */
  readonly finished: Promise<MasterResult>;
  /** Resolves with the bound endpoint (the real port when the address asked for port 0). */
  readonly listening: Promise<string>;

  private readonly log: Logger;
  private readonly cwd: string;
  private readonly options: Record<string, string>;
  private readonly address: string;
  private readonly size: number;
  private readonly window: number;
  private readonly liveness: Liveness;
  private readonly maxAttempts: number;
  private readonly backoff: number;
  private readonly grace: number;
  private readonly halt: Halt | undefined;
  private readonly heartbeatMs: number;
  private readonly epoch = randomInt(1, 2 ** 47);

  private phase: Phase = "starting";
  private ledger: Ledger | undefined;
  private feeder: Feeder | undefined;
  private checkpoint: Checkpoint | undefined;
  private failures: FailureSink | undefined;
  /** Set when this run reruns the failed log (`resumeFailed`). */
  private rerun: FailedRerun | undefined;
  private socket: zmq.Router | undefined;
  private outbox: Outbox<[Buffer, Buffer]> | undefined;
  private previous: StateFile | undefined;
  private readonly peers = new Peers();
  private readonly timers = new Set<NodeJS.Timeout>();
  private total: number | undefined;
  private startedAt = Date.now();
  private lastTick = Date.now();
  private dropped = 0;
  private parked = 0;
  /** How the run ends; settled by a stop even before the master listens. */
  private readonly outcome: Promise<Outcome>;
  private settle!: (outcome: Outcome) => void;
  private stopRequests = 0;
  /** When each unknown peer was last told RESET. */
  private readonly resets = new Map<string, number>();
  private curve: { keys: KeyPair; allowed: Set<string> | undefined } | undefined;
  private leaveZap: (() => void) | undefined;
  /** Keys refused so far: each is logged once. */
  private readonly refused = new Set<string>();
  /** Stopped before it started listening: it never will. */
  private stoppedEarly = false;
  private resolveListening!: (endpoint: string) => void;

  constructor(private readonly config: MasterOptions) {
    super();
    this.log = config.logger ?? new Logger("tm-master", "warn");
    this.cwd = config.cwd ?? process.cwd();
    this.options = config.options ?? {};
    this.address = config.address ?? MASTER_DEFAULTS.address;
    this.size = positiveInteger(config.size, MASTER_DEFAULTS.size, "size");
    this.window = Math.max(positiveInteger(config.window, MASTER_DEFAULTS.window, "window"), this.size + 1);
    this.liveness = livenessFrom(config);
    this.maxAttempts = Math.min(MAX_ATTEMPTS, positiveInteger(config.maxAttempts, MASTER_DEFAULTS.maxAttempts, "maxAttempts"));
    this.backoff = nonNegativeInteger(config.backoff, MASTER_DEFAULTS.backoff, "backoff");
    this.grace = nonNegativeInteger(config.grace, MASTER_DEFAULTS.grace, "grace");
    this.halt = typeof config.halt === "string" ? parseHalt(config.halt) : config.halt;
    this.heartbeatMs = heartbeatInterval(this.liveness);
    let rejectListening!: (error: unknown) => void;
    this.listening = new Promise<string>((resolve, reject) => {
      this.resolveListening = resolve;
      rejectListening = reject;
    });
    this.listening.catch(() => undefined);
    this.outcome = new Promise((resolve) => (this.settle = resolve));
    this.finished = this.run().catch((error: unknown) => {
      rejectListening(error);
      throw error;
    });
  }

  /**
   * Stops the batch: no more jobs are handed out, workers finish what they run and give back
   * the rest, the state is written, and `finished` resolves with exit code 130 (or 1 with
   * `error`, the reason to report). A second call (or `{ now: true }`) writes the state and
   * resolves at once.
   */
  stop(options: { now?: boolean; error?: string } = {}): void {
    if (options.error && !options.now) {
      // A reason to stop, not a second Ctrl-C: it never escalates a stop under way.
      this.beginStop(ExitCode.Usage, options.error);
      return;
    }
    this.stopRequests++;
    if (options.now || this.stopRequests > 1) this.abandon();
    else this.beginStop(ExitCode.Interrupted);
  }

  stats(): MasterStats {
    const ledger = this.ledger;
    const done = (this.previous?.counts.done ?? 0) + (ledger?.doneCount ?? 0);
    // A rerun's jobs were counted as failed already: those that succeed now leave that count.
    const failed = this.rerun
      ? Math.max(0, (this.previous?.counts.failed ?? 0) - (ledger?.doneCount ?? 0))
      : (this.previous?.counts.failed ?? 0) + (ledger?.failedCount ?? 0);
    return {
      done,
      failed,
      finishedThisRun: (ledger?.doneCount ?? 0) + (ledger?.failedCount ?? 0),
      skipped: this.feeder?.skipped ?? 0,
      queued: ledger?.queued ?? 0,
      size: this.feeder?.capacity ?? this.size,
      leased: ledger?.leased ?? 0,
      workers: this.peers.size,
      elapsedMs: Date.now() - this.startedAt,
      total: this.total,
      dropped: this.dropped,
    };
  }

  // ---- lifecycle -------------------------------------------------------------------------

  private async run(): Promise<MasterResult> {
    checkZeroMQ();
    checkAddress(this.address);
    this.loadSecurity();
    const spec = parseTarget(this.config.target);
    const mod = await loadJobModule(spec.module, this.cwd);
    const getJobs = pickFunction(mod, this.config.getJobs ?? spec.exportName, GET_JOBS_NAMES);
    const identity = { target: `${mod.local ? mod.file : mod.specifier}:${getJobs.name}`, options: this.options };
    const statePath = this.config.state
      ? resolve(this.cwd, this.config.state)
      : defaultStatePath(mod.local ? mod.file : undefined, getJobs.name, getJobs.isDefault, this.options, this.cwd);
    const failedPath = failedLogPath(statePath);
    const result = (exitCode: ExitCode, outcome: MasterResult["outcome"], message?: string): MasterResult => {
      const stats = this.stats();
      return { exitCode, outcome, message, done: stats.done, failed: stats.failed, statePath, failedLogPath: failedPath };
    };

    if (this.stoppedEarly) return result(ExitCode.Interrupted, "stopped");
    if (this.config.reset) {
      await removeState(statePath);
      await removeFailedLog(failedPath);
    }
    const previous = readState(statePath, identity);
    this.previous = previous;
    const source = this.config.resumeFailed
      ? await this.openRerun(previous, statePath, failedPath)
      : await this.openBatch(previous, statePath, failedPath, identity, mod, getJobs);
    if (!source) {
      const failed = !this.config.resumeFailed && previous !== undefined && previous.counts.failed > 0;
      return result(failed ? ExitCode.Failed : ExitCode.Ok, "already-finished");
    }
    this.ledger = source.ledger;
    this.feeder = new Feeder(source.ledger, source.iterator, source.sync, {
      size: this.size,
      maxBytes: BUFFER_BYTES,
      skips: source.skips,
      onAdmit: () => this.dispatch(),
    });
    if (this.checkpoint) {
      // Written before the first job goes out, so a state file that cannot be written stops
      // the run at once rather than after the first jobs ran.
      await this.checkpoint.flush(false);
    }

    if (this.stoppedEarly) return result(ExitCode.Interrupted, "stopped");
    const endpoint = await this.bind();
    if (this.stoppedEarly) {
      this.closeSocket(0);
      await this.save(false, statePath);
      return result(ExitCode.Interrupted, "stopped");
    }
    this.startedAt = Date.now();
    this.lastTick = this.startedAt;
    this.phase = "running";
    const receiving = this.receive();
    this.feeder.run().then(
      () => this.checkFinished(),
      (error: unknown) => {
        this.log.debug(errorDetail(error));
        this.beginStop(ExitCode.Usage, `${getJobs.name}() failed: ${messageOf(error)}`);
      },
    );
    this.every(this.heartbeatMs, () => this.heartbeat());
    this.every(1000, () => this.tell("progress", this.stats()));
    this.checkpoint?.start();
    this.log.info(`listening on ${endpoint}; state file ${statePath}`);
    this.resolveListening(endpoint);
    this.tell("listening", endpoint);

    const end = await this.outcome;
    this.phase = "closing";
    for (const timer of this.timers) clearInterval(timer);
    this.feeder.stop();
    this.checkpoint?.stop();
    if (end.kind === "abandoned") {
      // At once: no waiting for workers, only for the state write (a few ms). A rerun writes
      // nothing here: its failed log stands, and runs again next time.
      this.closeSocket(0);
      try {
        await this.checkpoint?.flush(false);
      } catch (error) {
        this.log.error(`cannot write the state file ${statePath}: ${messageOf(error)}`);
        return result(ExitCode.Usage, "error", `cannot write the state file ${statePath}`);
      }
      return result(ExitCode.Interrupted, "stopped");
    }
    const quit =
      end.kind === "done"
        ? encodeMaster.quit("done", "the batch is finished")
        : encodeMaster.quit("stopping", end.message ?? "the master is stopping");
    for (const peer of this.peers) this.send(peer, quit);
    let saved = true;
    try {
      await this.save(end.kind === "done", statePath);
    } catch (error) {
      saved = false;
      this.log.error(`cannot write the state file ${statePath}: ${messageOf(error)}`);
    }
    await this.outbox!.drained();
    this.closeSocket(1000);
    await receiving;
    if (!saved) return result(ExitCode.Usage, "error", `cannot write the state file ${statePath}`);
    if (end.kind === "done") {
      const failed = this.rerun ? this.ledger.failedCount : this.stats().failed;
      return result(failed > 0 ? ExitCode.Failed : ExitCode.Ok, "done");
    }
    const how = end.exitCode === ExitCode.Interrupted ? "stopped" : end.exitCode === ExitCode.Failed ? "halted" : "error";
    return result(end.exitCode, how, end.message);
  }

  /** The normal source: getJobs, resumed from the state file when there is one. */
  private async openBatch(
    previous: StateFile | undefined,
    statePath: string,
    failedPath: string,
    identity: { target: string; options: Record<string, string> },
    mod: JobModule,
    getJobs: JobFunction,
  ): Promise<Source | undefined> {
    if (previous?.finished) {
      this.log.info(
        `this batch already finished (${previous.counts.done} done, ${previous.counts.failed} failed; state file ${statePath}); use --reset to run it again`,
      );
      return undefined;
    }
    if (previous) {
      this.log.info(`resuming from ${statePath}: ${previous.counts.done} jobs done, at ${previous.resume?.preview ?? "the start"}`);
    }
    this.total = await readTotal(mod, this.options);
    const ledger = new Ledger({ firstId: previous?.resume?.id ?? 0, window: this.window, decodeBatch });
    const skips = previous ? new Skips(Buffer.from(previous.hashes, "base64"), 2 * this.window) : undefined;
    const args: Record<string, unknown> = { ...this.options };
    if (previous?.resume) args.last = decodeRich(Buffer.from(previous.resume.job, "base64"));
    let jobs: Awaited<ReturnType<typeof openJobs>>;
    try {
      jobs = await openJobs(getJobs.fn as (a: Record<string, unknown>) => unknown, args);
    } catch (error) {
      throw new UserError(`${getJobs.name}() failed: ${messageOf(error)}`, ExitCode.Usage, { cause: error });
    }
    const failedLog = new FailedLog(failedPath);
    this.failures = failedLog;
    this.checkpoint = new Checkpoint({
      path: statePath,
      identity,
      previous,
      ledger,
      skips,
      failedLog,
      intervalMs: positiveInteger(this.config.checkpointInterval, MASTER_DEFAULTS.checkpointInterval, "checkpointInterval"),
      onError: (error) => this.log.error(`cannot write the state file ${statePath}: ${messageOf(error)}`),
    });
    return { ledger, skips, ...jobs };
  }

  /** `resumeFailed`: the jobs of the failed log, exactly as they were yielded. */
  private async openRerun(previous: StateFile | undefined, statePath: string, failedPath: string): Promise<Source | undefined> {
    if (!previous) throw new UserError(`nothing to resume: there is no state file ${statePath}`);
    const { entries, jobs } = await readFailedJobs(failedPath);
    if (jobs.length === 0) {
      this.log.info(`no failed jobs to run again (${failedPath} is empty or absent)`);
      return undefined;
    }
    this.log.info(`running the ${jobs.length} jobs of ${failedPath} again`);
    this.total = (previous.counts.done ?? 0) + (previous.counts.failed ?? 0);
    this.rerun = new FailedRerun(failedPath, entries);
    this.failures = this.rerun;
    return {
      ledger: new Ledger({ firstId: 0, window: this.window, decodeBatch }),
      skips: undefined,
      iterator: jobs[Symbol.iterator](),
      sync: true,
    };
  }

  /** The last write of a run: the state file (and failed log), or a rerun's outcome. */
  private async save(finished: boolean, statePath: string): Promise<void> {
    const ledger = this.ledger!;
    if (this.rerun && this.previous) {
      const { succeeded, remaining } = await this.rerun.finish((i) => ledger.isFinished(i));
      // The log is the truth about failures: the count follows it.
      const counts = { done: this.previous.counts.done + succeeded, failed: remaining };
      await writeState(statePath, { ...this.previous, counts, updated: new Date().toISOString() });
      this.log.info(`${succeeded} of the failed jobs succeeded; ${remaining} remain in ${this.rerun.path}`);
      return;
    }
    await this.checkpoint?.flush(finished);
    await this.failures?.close();
  }

  private loadSecurity(): void {
    const { curveSecret, allow } = this.config;
    if (allow && !curveSecret) throw new UserError("--allow needs --curve-secret: an allow-list only works with encryption");
    if (curveSecret) {
      this.curve = {
        keys: readKeyPair(resolve(this.cwd, curveSecret), this.log),
        allowed: allow ? readAllowList(resolve(this.cwd, allow)) : undefined,
      };
      if (!allow) this.log.warn("CURVE without --allow: any worker that knows this master's public key may connect");
    }
    checkExposure(this.address, this.curve !== undefined, this.config.insecure === true, this.log);
  }

  /** The ZAP policy: is this worker key on the allow-list? Refusals are logged once per key. */
  private allows(publicKey: string, address: string): boolean {
    const allowed = this.curve?.allowed;
    if (!allowed || allowed.has(publicKey)) return true;
    if (!this.refused.has(publicKey) && this.refused.size < 10_000) {
      this.refused.add(publicKey);
      this.log.warn(`refused a worker from ${address || "an unknown address"}: its key ${publicKey} is not in --allow`);
    }
    return false;
  }

  private async bind(): Promise<string> {
    const curve = this.curve;
    if (curve) this.leaveZap = await zap.register(`taskmaster-${this.epoch}`, (key, address) => this.allows(key, address));
    const security = curve
      ? {
          curveServer: true,
          curvePublicKey: curve.keys.publicKey,
          curveSecretKey: curve.keys.secretKey,
          zapDomain: `taskmaster-${this.epoch}`,
        }
      : {};
    const socket = new zmq.Router({
      ...security,
      mandatory: true,
      handover: true,
      // Never wait to send (see Outbox); credit, not a high-water mark, bounds what is queued.
      sendHighWaterMark: 0,
      sendTimeout: 0,
      maxMessageSize: Limits.workerFrameBytes,
      heartbeatInterval: this.heartbeatMs,
      heartbeatTimeout: silenceLimit(this.liveness),
    });
    try {
      await socket.bind(this.address);
    } catch (error) {
      socket.close();
      this.leaveZap?.();
      const inUse = (error as { code?: string }).code === "EADDRINUSE";
      throw new UserError(
        `cannot listen on ${this.address}: ${inUse ? "the address is in use (is another master running?)" : messageOf(error)}`,
      );
    }
    this.socket = socket;
    this.outbox = new Outbox<[Buffer, Buffer]>(socket, (message, error) => this.onSendError(message[0], error));
    return socket.lastEndpoint ?? this.address;
  }

  private closeSocket(lingerMs: number): void {
    const socket = this.socket;
    if (!socket || socket.closed) return;
    this.outbox?.close();
    socket.linger = lingerMs;
    socket.close();
    this.leaveZap?.();
  }

  private every(ms: number, fn: () => void): void {
    const timer = setInterval(fn, ms);
    this.timers.add(timer);
  }

  private checkFinished(): void {
    if (this.phase === "running" && this.feeder?.exhausted && this.ledger?.settled && this.parked === 0) {
      this.settle({ kind: "done" });
    }
  }

  /** Stops handing out jobs; workers finish what they run; resolves once they have (or grace). */
  private beginStop(exitCode: ExitCode, message?: string): void {
    if (this.phase !== "running") {
      if (this.phase === "starting") this.stoppedEarly = true;
      return;
    }
    this.phase = "stopping";
    if (message) this.log.error(message);
    else this.log.info("stopping: waiting for running jobs (again to stop at once)");
    this.feeder?.stop();
    const quit = encodeMaster.quit("stopping", message ?? "the master is stopping");
    for (const peer of this.peers) this.send(peer, quit);
    const outcome: Outcome = { kind: "stopped", exitCode, message };
    const timer = setTimeout(() => {
      this.log.warn(`stopping: grace period over, ${this.ledger?.leased ?? 0} jobs still running will run again`);
      this.settle(outcome);
    }, this.grace);
    this.timers.add(timer);
    this.stopWhenIdle = () => {
      if ((this.ledger?.leased ?? 0) === 0 || this.peers.size === 0) this.settle(outcome);
    };
    this.stopWhenIdle();
  }

  private stopWhenIdle: () => void = () => undefined;

  private abandon(): void {
    if (this.phase === "starting") {
      this.stoppedEarly = true;
      return;
    }
    this.log.warn("stopping now: the state file is written, running jobs will run again");
    this.settle({ kind: "abandoned" });
  }

  // ---- messages ----------------------------------------------------------------------------

  private async receive(): Promise<void> {
    const socket = this.socket!;
    try {
      for await (const frames of socket) {
        try {
          this.onFrames(frames);
        } catch (error) {
          // A bug of ours must not make the master deaf: report it and carry on.
          this.log.error(`internal error handling a message: ${errorDetail(error)}`);
        }
      }
    } catch (error) {
      if (!socket.closed) this.log.error(`socket failed: ${messageOf(error)}`);
    }
  }

  private onFrames(frames: Buffer[]): void {
    const [routingId, body] = frames;
    if (!routingId || !body || frames.length !== 2) return this.drop("a multipart frame", routingId);
    const parsed = parseWorkerMessage(body);
    if (!parsed.ok) return this.drop(parsed.reason, routingId);
    const message = parsed.message;
    if (message.type === "hello") return this.onHello(routingId, message);
    const peer = this.peers.get(routingId);
    if (!peer) {
      // A worker of an earlier master incarnation, or one we gave up on: it must start over.
      if (message.type !== "bye" && this.phase !== "closing") this.reset(routingId);
      return this.drop(`${message.type} from an unknown worker`, routingId);
    }
    if (message.epoch !== this.epoch) return this.drop(`${message.type} for an earlier master`, routingId);
    peer.lastHeard = Date.now();
    switch (message.type) {
      case "credit":
        if (this.phase === "running" && peer.unreachableSince === undefined) {
          this.peers.grant(peer, message.credit, Limits.maxCredit);
          this.dispatch();
        }
        return;
      case "done":
        return this.onDone(peer, message.runs);
      case "fail":
        return this.onFail(peer, message.failures);
      case "return":
        return this.onReturn(peer, message.runs);
      case "ping":
        return;
      case "bye":
        this.releasePeer(peer, false);
        this.forget(peer, "left");
        return;
    }
  }

  /** Tells an unknown peer to say HELLO, at most once a heartbeat: it may send many messages. */
  private reset(routingId: Buffer): void {
    const key = routingId.toString("latin1");
    const now = Date.now();
    if (now - (this.resets.get(key) ?? 0) < this.heartbeatMs) return;
    if (this.resets.size >= 10_000) this.resets.clear();
    this.resets.set(key, now);
    this.sendTo(routingId, encodeMaster.reset());
  }

  private onHello(routingId: Buffer, hello: Extract<WorkerMessage, { type: "hello" }>): void {
    if (hello.version !== PROTOCOL_VERSION) {
      this.sendTo(
        routingId,
        encodeMaster.quit(
          "version",
          `the master speaks taskmaster protocol ${PROTOCOL_VERSION} and this worker speaks ${hello.version}: run the same taskmaster version on both`,
        ),
      );
      return this.drop(`hello of protocol ${hello.version}`, routingId);
    }
    const known = this.peers.get(routingId);
    if (known) {
      // It reconnected or restarted: whatever was in flight may be lost, so it starts over. Its
      // jobs count the attempt (come back as suspects), as for a worker that died: a job that
      // breaks its worker's connection must not get free attempts for ever.
      this.log.debug(`worker ${describePeer(known)} said HELLO again; its ${known.leased} jobs come back`);
      this.releasePeer(known, true);
      this.peers.remove(known);
      this.afterSettling();
    }
    if (this.phase === "closing" || this.phase === "stopping") {
      const reason = this.phase === "closing" && this.feeder?.exhausted ? "done" : "stopping";
      this.sendTo(routingId, encodeMaster.quit(reason, reason === "done" ? "the batch is finished" : "the master is stopping"));
      return;
    }
    if (this.phase !== "running") return;
    const now = Date.now();
    const peer = this.peers.add(routingId, hello.host, hello.pid, hello.concurrency, now);
    this.send(peer, encodeMaster.welcome(this.epoch, this.heartbeatMs));
    if (!known) {
      this.log.info(`worker ${describePeer(peer)} joined (concurrency ${peer.concurrency})`);
      this.tell("worker-joined", { host: peer.host, pid: peer.pid, concurrency: peer.concurrency });
    }
  }

  private onDone(peer: Peer, runs: number[]): void {
    const ledger = this.ledger!;
    let accepted = 0;
    let total = 0;
    for (let i = 0; i < runs.length; i += 2) {
      accepted += ledger.complete(peer.index, runs[i]!, runs[i + 1]!);
      total += runs[i + 1]!;
    }
    peer.leased -= accepted;
    if (accepted < total) this.drop(`${total - accepted} acknowledgements for jobs not leased to it`, peer.routingId);
    this.afterSettling(peer);
  }

  private onFail(peer: Peer, failures: JobFailure[]): void {
    const ledger = this.ledger!;
    for (const failure of failures) {
      if (!ledger.isLeasedTo(peer.index, failure.id)) {
        this.drop("a failure for a job not leased to it", peer.routingId);
        continue;
      }
      peer.leased--;
      const attempts = ledger.attemptsOf(failure.id);
      if (attempts >= this.maxAttempts) {
        this.failForGood(peer, failure.id, failure.message, failure.stack, attempts);
        continue;
      }
      this.log.debug(`job #${failure.id} failed (attempt ${attempts}): ${failure.message}`);
      this.retryLater(peer, failure.id, Math.min(MAX_BACKOFF_MS, this.backoff * 2 ** (attempts - 1)));
    }
    this.afterSettling(peer);
  }

  /** Jobs given back unstarted; a worker returns jobs when it is leaving, so it wants no more. */
  private onReturn(peer: Peer, runs: number[]): void {
    const ledger = this.ledger!;
    this.peers.revokeCredit(peer);
    for (let i = 0; i < runs.length; i += 2) {
      for (let id = runs[i]!, end = id + runs[i + 1]!; id < end; id++) {
        if (ledger.requeue(peer.index, id, false)) peer.leased--;
        else this.drop("a returned job not leased to it", peer.routingId);
      }
    }
    this.afterSettling(peer);
    this.dispatch();
  }

  /**
   * After jobs finished or came back: the batch may be complete, a failure threshold passed, a
   * stop able to end, and `peer` may no longer hold its suspect.
   */
  private afterSettling(peer?: Peer): void {
    if (peer?.suspect !== undefined && !this.ledger!.isLeasedTo(peer.index, peer.suspect)) peer.suspect = undefined;
    if (this.phase === "running") {
      this.checkHalt();
      this.checkFinished();
      this.feeder?.wake();
      // Workers with credit may be waiting for jobs that were held back (a suspect, a retry).
      this.dispatch();
    } else if (this.phase === "stopping") this.stopWhenIdle();
  }

  /** `--halt`: a bad handler must not burn through a billion jobs. */
  private checkHalt(): void {
    const halt = this.halt;
    const ledger = this.ledger;
    if (!halt || !ledger || ledger.failedCount === 0) return;
    const failed = ledger.failedCount;
    const finished = failed + ledger.doneCount;
    const over =
      "percent" in halt ? finished >= HALT_SAMPLE && failed * 100 > halt.percent * finished : failed > halt.failures;
    if (over) {
      this.beginStop(
        ExitCode.Failed,
        `halted: ${failed} of ${finished} jobs failed, past --halt ${describeHalt(halt)}; failed jobs are in the failed log`,
      );
    }
  }

  private retryLater(peer: Peer, id: number, delayMs: number): void {
    const ledger = this.ledger!;
    ledger.park(peer.index, id);
    this.parked++;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.parked--;
      ledger.unpark(id);
      this.dispatch();
    }, delayMs);
    this.timers.add(timer);
  }

  private failForGood(peer: Peer, id: number, error: string, stack: string, attempts: number): void {
    const ledger = this.ledger!;
    const payload = ledger.payloadOf(id);
    this.failures!.append(
      { id, error, stack, attempts, worker: { host: peer.host, pid: peer.pid }, time: new Date().toISOString() },
      payload,
    );
    ledger.fail(peer.index, id);
    this.log.warn(`job #${id} ${previewJob(payload, 60)} failed after ${attempts} attempts: ${error}`);
    this.tell("job-failed", { id, job: payload, error, attempts });
  }

  /**
   * Takes back every job leased to `peer`. `died`: the worker vanished, and any of its jobs may
   * have killed it, so each counts the attempt and comes back as a suspect.
   */
  private releasePeer(peer: Peer, died: boolean): void {
    const ledger = this.ledger!;
    for (const id of ledger.leasedTo(peer.index)) {
      if (died && ledger.attemptsOf(id) >= this.maxAttempts) {
        this.failForGood(peer, id, `its worker died while running it (attempt ${ledger.attemptsOf(id)})`, "", ledger.attemptsOf(id));
      } else {
        ledger.requeue(peer.index, id, died, died);
      }
    }
    peer.leased = 0;
    peer.suspect = undefined;
    this.peers.revokeCredit(peer);
  }

  private forget(peer: Peer, reason: string): void {
    this.peers.remove(peer);
    this.log.info(`worker ${describePeer(peer)} ${reason}`);
    this.tell("worker-left", { host: peer.host, pid: peer.pid }, reason);
    this.afterSettling();
    this.dispatch();
  }

  // ---- dispatch ----------------------------------------------------------------------------

  /** Hands queued jobs to workers with credit, round-robin, in batches. */
  private dispatch(): void {
    if (this.phase !== "running") return;
    const ledger = this.ledger!;
    const hungry = this.peers.hungry;
    const bytesPerJob = this.feeder?.bytesPerJob ?? 0;
    const maxBatch = bytesPerJob > 0 ? Math.max(1, Math.min(MAX_BATCH, Math.floor(MAX_BATCH_BYTES / bytesPerJob))) : MAX_BATCH;
    let progressed = true;
    while (progressed && ledger.queued > 0 && hungry.size > 0) {
      progressed = false;
      for (const peer of hungry) {
        // A worker holding a suspect gets nothing else: if it dies, the suspect was the cause.
        if (peer.suspect !== undefined) continue;
        let lease: Lease | undefined;
        if (ledger.suspectsQueued > 0) {
          lease = ledger.leaseSuspect(peer.index);
          peer.suspect = lease?.runs[0];
        } else {
          const share = Math.ceil(ledger.queued / hungry.size);
          // A retried job goes to another worker when another is asking.
          lease = ledger.lease(peer.index, Math.min(peer.credit, maxBatch, share), hungry.size > 1);
        }
        if (!lease) continue;
        if (!this.sendJobs(peer, lease)) return;
        progressed = true;
        peer.credit -= lease.count;
        if (peer.credit === 0) hungry.delete(peer);
      }
    }
    this.feeder?.wake();
  }

  private sendJobs(peer: Peer, lease: Lease): boolean {
    let bytes: Buffer;
    try {
      bytes = encodeMaster.jobs(this.epoch, lease.runs, lease.payloads);
    } catch {
      this.unserialisable(peer, lease);
      return false;
    }
    peer.leased += lease.count;
    // Large jobs are let go once encoded (see Ledger.attach); small ones cost less kept as they are.
    if (bytes.length >= lease.count * ATTACH_BYTES_PER_JOB) this.ledger!.attach(lease, bytes);
    this.send(peer, bytes);
    return true;
  }

  /** Names the first job of the lease that cannot be serialised, and stops the run. */
  private unserialisable(peer: Peer, lease: Lease): void {
    const ledger = this.ledger!;
    let culprit = "";
    let k = 0;
    for (let r = 0; r < lease.runs.length; r += 3) {
      for (let id = lease.runs[r]!, end = id + lease.runs[r + 1]!; id < end; id++, k++) {
        ledger.requeue(peer.index, id, false);
        const problem = culprit ? undefined : serialisationProblem(lease.payloads[k]);
        if (problem) culprit = `job #${id} ${previewJob(lease.payloads[k], 60)} cannot be serialised: ${problem}`;
      }
    }
    this.beginStop(ExitCode.Usage, culprit || "a job cannot be serialised");
  }

  // ---- liveness ----------------------------------------------------------------------------

  private heartbeat(): void {
    const now = Date.now();
    const late = now - this.lastTick - this.heartbeatMs;
    this.lastTick = now;
    // If this process was too busy to run its timers, it could not read pings either: that
    // silence is ours, not the workers'.
    if (late > this.heartbeatMs) for (const peer of this.peers) peer.lastHeard += late;
    const limit = silenceLimit(this.liveness);
    const ping = encodeMaster.ping(this.epoch);
    for (const peer of [...this.peers]) {
      if (peer.unreachableSince !== undefined && now - Math.max(peer.unreachableSince, peer.lastHeard) > this.heartbeatMs) {
        const held = peer.leased;
        this.releasePeer(peer, true);
        this.forget(peer, `disconnected; its ${held} jobs go to others`);
      } else if (now - peer.lastHeard > limit) {
        const held = peer.leased;
        this.releasePeer(peer, true);
        this.forget(peer, `was silent for ${Math.round((now - peer.lastHeard) / 1000)} s; its ${held} jobs go to others`);
      } else if (now - peer.lastSent >= this.heartbeatMs) {
        this.send(peer, ping);
      }
    }
  }

  private send(peer: Peer, bytes: Buffer): void {
    if (peer.unreachableSince !== undefined) return;
    peer.lastSent = Date.now();
    this.outbox?.send([peer.routingId, bytes]);
  }

  private sendTo(routingId: Buffer, bytes: Buffer): void {
    this.outbox?.send([routingId, bytes]);
  }

  /**
   * The connection to a worker is gone. What it sent before may still wait in our inbound queue
   * (its last acknowledgements, its BYE), so it is not forgotten yet: it gets no more jobs, and
   * the next heartbeat after a quiet interval takes back what it still holds.
   */
  private onSendError(routingId: Buffer, error: unknown): void {
    const peer = this.peers.get(routingId);
    if (!peer || this.phase === "closing" || peer.unreachableSince !== undefined) return;
    this.log.debug(`cannot reach worker ${describePeer(peer)}: ${messageOf(error)}`);
    peer.unreachableSince = Date.now();
    this.peers.revokeCredit(peer);
  }

  /** Emits an event; a listener that throws is reported, and never breaks the master. */
  private tell<E extends keyof MasterEvents>(event: E, ...args: MasterEvents[E]): void {
    try {
      (this.emit as (e: E, ...a: MasterEvents[E]) => boolean)(event, ...args);
    } catch (error) {
      this.log.error(`a '${event}' listener threw: ${errorDetail(error)}`);
    }
  }

  private drop(reason: string, routingId: Buffer | undefined): void {
    this.dropped++;
    if (this.log.enabled("debug")) {
      const peer = routingId && this.peers.get(routingId);
      this.log.debug(`dropped ${reason} from ${peer ? describePeer(peer) : "an unknown peer"} (${this.dropped} dropped so far)`);
    }
  }
}

/** Starts a master. Await `master.finished` for the result. */
export function runMaster(options: MasterOptions): Master {
  return new Master(options);
}

/** The payloads of a JOBS message this master encoded (see Ledger.attach). */
function decodeBatch(bytes: Buffer): unknown[] {
  const parsed = parseMasterMessage(bytes);
  if (!parsed.ok || parsed.message.type !== "jobs") throw new Error(`cannot decode a batch of this master: ${parsed.ok ? parsed.message.type : parsed.reason}`);
  return parsed.message.payloads;
}
