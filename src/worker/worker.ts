/**
 * A worker: connects a DEALER socket to the master, asks for as many jobs as it can keep busy
 * (credit), runs up to `concurrency` of them at once, and acknowledges them in batches.
 *
 * Handlers that return synchronously are run in a tight loop, time-sliced so that the socket and
 * timers keep running; handlers that return a promise run concurrently up to `concurrency`.
 */
import { EventEmitter } from "node:events";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { resolve } from "node:path";
import * as zmq from "zeromq";
import { ExitCode, UserError, errorDetail, messageOf } from "../errors.ts";
import { IdRunsBuilder, countIds } from "../id-runs.ts";
import { Logger } from "../log.ts";
import { positiveInteger } from "../options.ts";
import type { JobFailure, MasterMessage } from "../protocol.ts";
import { Limits, encodeWorker, parseMasterMessage } from "../protocol.ts";
import { HANDLE_JOB_NAMES, loadJobModule, parseTarget, pickFunction } from "../target.ts";
import { isLocalAddress, readKeyPair, readPublicKey } from "../security.ts";
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
import { JobContext } from "./context.ts";
import { JobQueue } from "./job-queue.ts";

export interface WorkerOptions {
  /** `jobs.ts`, `jobs.ts:exportName` or `some-package/module:exportName`. */
  target: string;
  /** The name of the handleJob export; overrides the one in `target`. */
  handleJob?: string | undefined;
  cwd?: string | undefined;
  address?: string | undefined;
  /** Jobs run at once. */
  concurrency?: number | undefined;
  /** Jobs held ready beyond those running; adapts to the job rate when not given. */
  prefetch?: number | undefined;
  /**
   * Abort a job's `ctx.signal` and fail its attempt after this many ms. A handler that ignores
   * the signal keeps running, but its outcome no longer counts; one that blocks the event loop
   * is covered by the master's lease (the worker falls silent and its jobs go elsewhere).
   */
  jobTimeout?: number | undefined;
  timeout?: number | undefined;
  retries?: number | undefined;
  /** This worker's CURVE secret key file (tm-keygen's .key); needs `serverKey`. */
  curveSecret?: string | undefined;
  /** The master's public key file (its .pub); needs `curveSecret`. */
  serverKey?: string | undefined;
  logger?: Logger | undefined;
}

export interface WorkerStats {
  done: number;
  failed: number;
  running: number;
  queued: number;
  connected: boolean;
}

export interface WorkerResult {
  exitCode: ExitCode;
  /** `done`: the batch finished; `stopped`: the master or a signal stopped it. */
  outcome: "done" | "stopped" | "unreachable" | "refused";
  message?: string | undefined;
  done: number;
  failed: number;
}

export interface WorkerEvents {
  connected: [];
  welcomed: [];
  progress: [stats: WorkerStats];
}

type Handler = (job: unknown, ctx: JobContext) => unknown;

/** A synchronous run of jobs may hold the event loop this long before it yields. */
const SLICE_MS = 5;
/** Failures per FAIL message: with the lengths below, a message stays under a megabyte. */
const FAILURES_PER_MESSAGE = 64;
const MAX_FAILURE_MESSAGE = 1024;
const MAX_FAILURE_STACK = 4096;
/**
 * Prefetch covers this much work at the measured rate, between 2 x concurrency and the caps: a
 * number of jobs, and a number of bytes so that large jobs do not pile up in memory (here, in
 * flight, and in the master's window, which spans what all workers hold).
 */
const PREFETCH_HORIZON_MS = 100;
const MAX_PREFETCH = 8192;
const MAX_PREFETCH_BYTES = 2 * 1024 * 1024;

export class Worker extends EventEmitter<WorkerEvents> {
  readonly finished: Promise<WorkerResult>;

  private readonly log: Logger;
  private readonly address: string;
  private readonly concurrency: number;
  private readonly fixedPrefetch: number | undefined;
  private readonly jobTimeout: number | undefined;
  private readonly liveness: Liveness;
  private readonly heartbeatMs: number;

  private handler: Handler | undefined;
  private socket: zmq.Dealer | undefined;
  private outbox: Outbox<Buffer> | undefined;
  private readonly queue = new JobQueue();
  private readonly acks = new IdRunsBuilder();
  private failures: JobFailure[] = [];
  private running = 0;
  /** Credit asked for and not yet received as jobs. */
  private requested = 0;
  private prefetch: number;
  /** Average encoded size of a job, measured on the batches received. */
  private bytesPerJob = 0;
  /** The epoch of the master that last welcomed us (0: none yet). */
  private epoch = 0;
  /** Whether our account with that master stands; false from a (re)HELLO until its WELCOME. */
  private welcomed = false;
  private connected = false;
  private everConnected = false;
  /** Why the master's end refused the handshake, if it did: said when giving up. */
  private refusal: string | undefined;
  private encrypted = false;
  private lastContact = Date.now();
  private lastSent = 0;
  private lastHello = 0;
  private pumping = false;
  private flushScheduled = false;
  private draining = false;
  private stopRequests = 0;
  private done = 0;
  private failed = 0;
  private rateMark = { at: performance.now(), done: 0 };
  /** How the worker ends; settled by a stop even before it has connected. */
  private readonly ended: Promise<Omit<WorkerResult, "done" | "failed">>;
  private settle!: (result: Omit<WorkerResult, "done" | "failed">) => void;
  private idle: (() => void) | undefined;

  constructor(private readonly config: WorkerOptions) {
    super();
    this.log = config.logger ?? new Logger("tm-worker", "warn");
    this.address = config.address ?? DEFAULT_ADDRESS;
    this.concurrency = positiveInteger(config.concurrency, 1, "concurrency");
    this.fixedPrefetch = config.prefetch === undefined ? undefined : positiveInteger(config.prefetch, 1, "prefetch");
    // `prefetch` here counts the jobs held in all, running ones included.
    this.prefetch = this.fixedPrefetch === undefined ? 2 * this.concurrency : this.concurrency + this.fixedPrefetch;
    this.jobTimeout = config.jobTimeout === undefined ? undefined : positiveInteger(config.jobTimeout, 1, "jobTimeout");
    this.liveness = livenessFrom(config);
    this.heartbeatMs = heartbeatInterval(this.liveness);
    this.ended = new Promise((resolve) => (this.settle = resolve));
    this.finished = this.run();
  }

  /**
   * Stops taking jobs: unstarted ones go back to the master, running ones finish, then the
   * worker leaves. A second call (or `{ now: true }`) leaves at once; the master's leases cover
   * the jobs that were running.
   */
  stop(options: { now?: boolean } = {}): void {
    // Counted apart from draining: a master that asked us to stop is not a first Ctrl-C.
    this.stopRequests++;
    if (options.now || this.stopRequests > 1) {
      this.settle({ exitCode: ExitCode.Interrupted, outcome: "stopped", message: "stopped at once" });
      return;
    }
    this.drain();
  }

  stats(): WorkerStats {
    return {
      done: this.done,
      failed: this.failed,
      running: this.running,
      queued: this.queue.size,
      connected: this.connected,
    };
  }

  // ---- lifecycle -------------------------------------------------------------------------

  private async run(): Promise<WorkerResult> {
    checkZeroMQ();
    checkAddress(this.address);
    const spec = parseTarget(this.config.target);
    const mod = await loadJobModule(spec.module, this.config.cwd ?? process.cwd());
    this.handler = pickFunction(mod, this.config.handleJob ?? spec.exportName, HANDLE_JOB_NAMES).fn as Handler;
    if (this.draining) return { exitCode: ExitCode.Ok, outcome: "stopped", done: 0, failed: 0 };

    const socket = new zmq.Dealer({
      ...this.security(),
      routingId: `w${randomBytes(12).toString("hex")}`,
      maxMessageSize: Limits.masterFrameBytes,
      heartbeatInterval: this.heartbeatMs,
      heartbeatTimeout: silenceLimit(this.liveness),
      reconnectInterval: 100,
      reconnectMaxInterval: 1000,
      linger: 1000,
      // Never wait to send (see Outbox): what cannot be queued while the master is away is
      // dropped, and the worker starts over with the master when it is back.
      sendTimeout: 0,
    });
    this.socket = socket;
    this.outbox = new Outbox<Buffer>(socket, (_message, error) =>
      this.log.debug(`cannot send to the master: ${messageOf(error)}`),
    );
    void this.watchConnection(socket);
    try {
      socket.connect(this.address);
    } catch (error) {
      socket.close();
      throw new UserError(`cannot connect to ${this.address}: ${messageOf(error)}`);
    }
    this.log.debug(`connecting to ${this.address}`);
    this.hello();
    const receiving = this.receive(socket);
    const ticker = setInterval(() => this.tick(), this.heartbeatMs);
    const reporter = setInterval(() => this.emit("progress", this.stats()), 1000);

    const end = await this.ended;
    // Whatever ended the worker, it starts no more jobs.
    this.draining = true;
    this.queue.clear();
    clearInterval(ticker);
    clearInterval(reporter);
    this.flush();
    await this.outbox.drained();
    this.outbox.close();
    // Even when leaving at once, the acknowledgements just flushed get a moment to go out.
    socket.linger = end.exitCode === ExitCode.Interrupted ? 100 : 1000;
    socket.close();
    await receiving;
    if (end.message && end.exitCode !== ExitCode.Ok) this.log.error(end.message);
    return { ...end, done: this.done, failed: this.failed };
  }

  private security(): Partial<zmq.SocketOptions<zmq.Dealer>> {
    const { curveSecret, serverKey } = this.config;
    const cwd = this.config.cwd ?? process.cwd();
    if (!curveSecret !== !serverKey) {
      throw new UserError("--curve-secret and --server-key go together: this worker's secret key and the master's public key");
    }
    if (!curveSecret || !serverKey) {
      if (!isLocalAddress(this.address)) {
        this.log.warn(`connecting to ${this.address} without encryption: jobs travel in clear text (see --curve-secret)`);
      }
      return {};
    }
    const keys = readKeyPair(resolve(cwd, curveSecret), this.log);
    this.encrypted = true;
    return { curveServerKey: readPublicKey(resolve(cwd, serverKey)), curvePublicKey: keys.publicKey, curveSecretKey: keys.secretKey };
  }

  private async watchConnection(socket: zmq.Dealer): Promise<void> {
    try {
      for await (const event of socket.events) {
        if (event.type === "handshake") {
          this.connected = true;
          this.lastContact = Date.now();
          if (this.everConnected) {
            // What was in flight on the old connection may be lost: start over with the master.
            this.log.debug("reconnected to the master");
            this.restart();
          }
          this.everConnected = true;
          this.emit("connected");
        } else if (event.type === "disconnect") {
          this.connected = false;
          // Whatever master comes back will not take acknowledgements for these jobs: running
          // them now would only mean running them twice.
          const dropped = this.queue.clear();
          this.log.debug(`lost the connection to the master; dropped ${countIds(dropped)} unstarted jobs`);
        } else if (event.type === "handshake:error:auth") {
          this.refusal = "the master refused this worker's key: add its .pub to the master's --allow";
        } else if (event.type === "handshake:error:protocol" || event.type === "handshake:error:other") {
          this.refusal = this.encrypted
            ? "the secure handshake with the master failed: check --server-key (the master's .pub) and that the master uses --curve-secret"
            : "the handshake with the master failed: it may require encryption (--curve-secret and --server-key)";
        } else if (event.type === "end") {
          return;
        }
      }
    } catch {
      // The socket closed.
    }
  }

  private async receive(socket: zmq.Dealer): Promise<void> {
    try {
      for await (const frames of socket) {
        const body = frames[0];
        if (frames.length !== 1 || !body) {
          this.log.debug("dropped a multipart frame from the master");
          continue;
        }
        const parsed = parseMasterMessage(body);
        if (!parsed.ok) {
          this.log.debug(`dropped a frame from the master: ${parsed.reason}`);
          continue;
        }
        this.lastContact = Date.now();
        if (parsed.message.type === "jobs") this.measure(body.length, parsed.message.payloads.length);
        try {
          this.onMessage(parsed.message);
        } catch (error) {
          // A bug of ours must not make the worker deaf: report it and carry on.
          this.log.error(`internal error handling a ${parsed.message.type} message: ${errorDetail(error)}`);
        }
      }
    } catch (error) {
      if (!socket.closed) this.log.error(`socket failed: ${messageOf(error)}`);
    }
  }

  private onMessage(message: MasterMessage): void {
    switch (message.type) {
      case "welcome":
        if (message.epoch !== this.epoch) {
          // Another master (a restarted one): its ids name other jobs than the outcomes we
          // still hold, so those must never reach it.
          this.acks.take();
          this.failures = [];
          this.epoch = message.epoch;
        }
        // Each welcome starts a fresh account with the master: jobs of an earlier one are
        // not leased to us any more, and what we asked for is forgotten.
        this.welcomed = true;
        this.queue.clear();
        this.requested = 0;
        this.log.debug(`welcomed by the master (epoch ${message.epoch})`);
        this.emit("welcomed");
        if (this.draining) this.finishDrain();
        else this.flush();
        return;
      case "jobs":
        if (!this.welcomed || message.epoch !== this.epoch) return;
        if (this.draining) {
          // Sent before the master heard that we are leaving: straight back.
          const unstarted = new JobQueue();
          unstarted.push(message.runs, message.payloads);
          this.send(encodeWorker.return(this.epoch, unstarted.clear()));
          return;
        }
        this.requested = Math.max(0, this.requested - message.payloads.length);
        this.queue.push(message.runs, message.payloads);
        this.pump();
        return;
      case "ping":
        return;
      case "reset":
        // One HELLO at a time: stale messages each earn a RESET, and a HELLO is already out.
        if (this.welcomed) this.restart();
        return;
      case "quit":
        this.onQuit(message.reason, message.message);
        return;
    }
  }

  private onQuit(reason: string, text: string): void {
    switch (reason) {
      case "done":
        this.log.debug("the master says the batch is finished");
        this.settle({ exitCode: ExitCode.Ok, outcome: "done" });
        return;
      case "stopping":
        this.log.info(`the master is stopping: ${text}`);
        this.drain();
        return;
      default:
        this.settle({ exitCode: ExitCode.Usage, outcome: "refused", message: `the master refused this worker: ${text}` });
    }
  }

  /** Forget the current account and say HELLO again. */
  private restart(): void {
    this.welcomed = false;
    this.queue.clear();
    this.requested = 0;
    this.hello();
  }

  private hello(): void {
    this.lastHello = Date.now();
    this.send(encodeWorker.hello(hostname(), process.pid, this.concurrency));
  }

  private tick(): void {
    const now = Date.now();
    // A live connection means the master process is there, even if too busy to answer.
    if (this.connected) this.lastContact = Math.max(this.lastContact, now - this.heartbeatMs);
    const silent = now - this.lastContact;
    if (silent > silenceLimit(this.liveness)) {
      this.settle({
        exitCode: ExitCode.Usage,
        outcome: "unreachable",
        message: this.refusal
          ? `cannot work for the master at ${this.address}: ${this.refusal}`
          : `cannot reach the master at ${this.address}: no answer for ${(silent / 1000).toFixed(1)} s (--timeout ${this.liveness.timeoutMs} x --retries ${this.liveness.retries})`,
      });
      return;
    }
    if (!this.welcomed && now - this.lastHello >= this.liveness.timeoutMs) this.hello();
    else if (this.welcomed && now - this.lastSent >= this.heartbeatMs) this.send(encodeWorker.ping(this.epoch));
  }

  // ---- running jobs ------------------------------------------------------------------------

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    const handler = this.handler!;
    const deadline = performance.now() + SLICE_MS;
    let started = 0;
    while (this.running < this.concurrency && !this.draining) {
      const job = this.queue.shift();
      if (!job) break;
      const ctx = new JobContext(job.id, job.attempt, this.log);
      ctx.epoch = this.epoch;
      this.running++;
      if (this.jobTimeout !== undefined) ctx.timer = setTimeout(() => this.timeOut(ctx), this.jobTimeout);
      let result: unknown;
      try {
        result = handler(job.payload, ctx);
      } catch (error) {
        this.finishJob(ctx, error);
        continue;
      }
      if (isThenable(result)) {
        result.then(
          () => this.finishJob(ctx, undefined),
          (error: unknown) => this.finishJob(ctx, error ?? new Error("rejected")),
        );
      } else {
        this.finishJob(ctx, undefined);
      }
      if ((++started & 63) === 0 && performance.now() > deadline) {
        setImmediate(() => this.pump());
        break;
      }
    }
    this.pumping = false;
    this.scheduleFlush();
  }

  private timeOut(ctx: JobContext): void {
    const error = new Error(`timed out after ${this.jobTimeout} ms`);
    error.name = "TimeoutError";
    ctx.abort(error);
    this.finishJob(ctx, error);
  }

  private finishJob(ctx: JobContext, error: unknown): void {
    if (ctx.settled) return;
    ctx.settled = true;
    clearTimeout(ctx.timer);
    this.running--;
    // An outcome for another master's job (ours restarted meanwhile) is not reported to this one.
    const report = ctx.epoch === this.epoch;
    if (error === undefined) {
      this.done++;
      if (report) this.acks.add(ctx.id);
    } else {
      this.failed++;
      const failure = describeFailure(error);
      this.log.debug(`job #${ctx.id} failed (attempt ${ctx.attempt}): ${failure.message}`);
      if (report) this.failures.push({ id: ctx.id, ...failure });
    }
    if (!this.pumping) {
      this.pump();
      if (this.draining && this.running === 0) this.idle?.();
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Sends what finished, and asks for more jobs when fewer are held than the prefetch. */
  private flush(): void {
    if (!this.welcomed) return;
    if (this.acks.count > 0) this.send(encodeWorker.done(this.epoch, this.acks.take()));
    // In bounded messages: one over the master's frame limit would cost the connection.
    for (let i = 0; i < this.failures.length; i += FAILURES_PER_MESSAGE) {
      this.send(encodeWorker.fail(this.epoch, this.failures.slice(i, i + FAILURES_PER_MESSAGE)));
    }
    this.failures = [];
    if (this.draining) return;
    this.adaptPrefetch();
    const want = this.prefetch - (this.queue.size + this.running + this.requested);
    if (want > 0 && want >= Math.max(1, this.prefetch >> 1)) {
      this.requested += want;
      this.send(encodeWorker.credit(this.epoch, want));
    }
  }

  private adaptPrefetch(): void {
    if (this.fixedPrefetch !== undefined) return;
    const now = performance.now();
    const elapsed = now - this.rateMark.at;
    if (elapsed < PREFETCH_HORIZON_MS) return;
    const rate = (this.done + this.failed - this.rateMark.done) / elapsed;
    this.rateMark = { at: now, done: this.done + this.failed };
    const target = Math.ceil(rate * PREFETCH_HORIZON_MS);
    const cap = this.bytesPerJob > 0 ? Math.min(MAX_PREFETCH, Math.floor(MAX_PREFETCH_BYTES / this.bytesPerJob)) : MAX_PREFETCH;
    this.prefetch = Math.max(2 * this.concurrency, Math.min(cap, target));
  }

  private measure(bytes: number, jobs: number): void {
    if (jobs === 0) return;
    const size = bytes / jobs;
    this.bytesPerJob = this.bytesPerJob === 0 ? size : 0.8 * this.bytesPerJob + 0.2 * size;
  }

  // ---- stopping ----------------------------------------------------------------------------

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    this.log.info(`stopping: finishing ${this.running} running jobs, returning ${this.queue.size}`);
    this.finishDrain();
  }

  private finishDrain(): void {
    const unstarted = this.queue.clear();
    if (this.welcomed && unstarted.length > 0) this.send(encodeWorker.return(this.epoch, unstarted));
    const leave = () => {
      this.flush();
      if (this.welcomed) this.send(encodeWorker.bye(this.epoch));
      this.settle({ exitCode: ExitCode.Ok, outcome: "stopped" });
    };
    if (this.running === 0) leave();
    else this.idle = leave;
  }

  private send(bytes: Buffer): void {
    this.lastSent = Date.now();
    this.outbox?.send(bytes);
  }

}

/** Starts a worker. Await `worker.finished` for the result. */
export function runWorker(options: WorkerOptions): Worker {
  return new Worker(options);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

/** What a thrown value says, whatever was thrown: even `Object.create(null)`. */
function describeFailure(error: unknown): { message: string; stack: string } {
  const text = (read: () => unknown): string => {
    try {
      const value = read();
      return typeof value === "string" ? value : String(value);
    } catch {
      return Object.prototype.toString.call(error);
    }
  };
  const isError = error instanceof Error;
  const message = text(() => (isError ? error.message || error.name : error)).slice(0, MAX_FAILURE_MESSAGE);
  const stack = isError ? text(() => error.stack ?? "").slice(0, MAX_FAILURE_STACK) : "";
  return { message, stack };
}


