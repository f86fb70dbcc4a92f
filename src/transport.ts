/**
 * What master and worker share about ZeroMQ: addresses, timings, and a send queue.
 */
import type { MessageLike, Writable } from "zeromq";
import * as zmq from "zeromq";
import { UserError } from "./errors.ts";
import { positiveInteger } from "./options.ts";

export const DEFAULT_ADDRESS = "tcp://127.0.0.1:3050";

/** Liveness settings, from the seed's `--timeout` (ms) and `--retries`. */
export interface Liveness {
  timeoutMs: number;
  retries: number;
}

export const DEFAULT_LIVENESS: Liveness = { timeoutMs: 2500, retries: 3 };

/** Liveness from `timeout` and `retries` options, checked, with the seed's defaults. */
export function livenessFrom(options: { timeout?: number | undefined; retries?: number | undefined }): Liveness {
  return {
    timeoutMs: positiveInteger(options.timeout, DEFAULT_LIVENESS.timeoutMs, "timeout"),
    retries: positiveInteger(options.retries, DEFAULT_LIVENESS.retries, "retries"),
  };
}

/** How long a peer may stay silent before it counts as gone. */
export function silenceLimit({ timeoutMs, retries }: Liveness): number {
  return timeoutMs * retries;
}

/** How often each side says something when it has nothing else to say. */
export function heartbeatInterval({ timeoutMs }: Liveness): number {
  return Math.max(50, Math.min(1000, Math.floor(timeoutMs / 2)));
}

/** Refuses to start on a ZeroMQ build without CURVE, which the security model depends on. */
export function checkZeroMQ(): void {
  if (!zmq.capability.curve) {
    throw new UserError(
      `this ZeroMQ build (libzmq ${zmq.version}) has no CURVE support; reinstall the zeromq package`,
    );
  }
}

/** Checks an address the way ZeroMQ will read it, for a one-line error instead of EINVAL. */
export function checkAddress(address: string): void {
  if (!/^(tcp|ipc|inproc):\/\/.+/.test(address)) {
    throw new UserError(`bad address '${address}': expected tcp://HOST:PORT (or ipc://PATH)`);
  }
}

/**
 * A send queue in front of a socket whose sendTimeout is 0, so that no send ever waits: a
 * message that cannot be queued by ZeroMQ at once (a peer that is gone, or, on a ROUTER with
 * `mandatory`, a socket with no peers at all, which would otherwise wait forever) is reported
 * to `onError` and dropped. ZeroMQ allows one pending send per socket; messages sent while one
 * is pending wait here, in order.
 */
export class Outbox<M extends MessageLike | MessageLike[]> {
  private queue: M[] = [];
  private busy = false;
  private closed = false;
  private idle: Promise<void> = Promise.resolve();
  private becomeIdle: () => void = () => undefined;

  constructor(
    private readonly socket: Writable<M>,
    private readonly onError: (message: M, error: unknown) => void,
  ) {}

  get pending(): number {
    return this.queue.length + (this.busy ? 1 : 0);
  }

  send(message: M): void {
    if (this.closed) return;
    if (this.busy) this.queue.push(message);
    else this.start(message);
  }

  /** Resolves once everything queued so far has been handed to ZeroMQ (or dropped). */
  drained(): Promise<void> {
    return this.idle;
  }

  close(): void {
    this.closed = true;
    this.queue = [];
  }

  private start(message: M): void {
    this.idle = new Promise((resolve) => (this.becomeIdle = resolve));
    this.busy = true;
    this.transmit(message);
  }

  private transmit(message: M): void {
    this.socket.send(message).then(this.next, (error: unknown) => {
      this.onError(message, error);
      this.next();
    });
  }

  private readonly next = (): void => {
    const message = this.closed ? undefined : this.queue.shift();
    if (message !== undefined) return this.transmit(message);
    this.busy = false;
    this.becomeIdle();
  };
}
