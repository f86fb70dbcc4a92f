/**
 * What master and worker share about ZeroMQ: addresses, timings, and a send queue.
 */
import type { MessageLike, Writable } from "zeromq";
import * as zmq from "zeromq";
import { UserError } from "./errors.ts";

export const DEFAULT_ADDRESS = "tcp://127.0.0.1:3050";

/** Liveness settings, from the seed's `--timeout` (ms) and `--retries`. */
export interface Liveness {
  timeoutMs: number;
  retries: number;
}

export const DEFAULT_LIVENESS: Liveness = { timeoutMs: 2500, retries: 3 };

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
 * A send queue. A ZeroMQ socket allows one pending send at a time; messages sent while one is
 * pending wait here, in order. Sends that fail (a peer that is gone) are reported, not thrown.
 */
export class Outbox<M extends MessageLike | MessageLike[]> {
  private queue: M[] = [];
  private busy = false;
  private closed = false;

  constructor(
    private readonly socket: Writable<M>,
    private readonly onError: (message: M, error: unknown) => void,
  ) {}

  get pending(): number {
    return this.queue.length + (this.busy ? 1 : 0);
  }

  send(message: M): void {
    if (this.closed) return;
    if (this.busy) {
      this.queue.push(message);
      return;
    }
    this.busy = true;
    this.socket.send(message).then(this.next, (error: unknown) => {
      this.onError(message, error);
      this.next();
    });
  }

  /** Resolves once everything queued so far has been handed to ZeroMQ. */
  async drained(): Promise<void> {
    while (this.busy && !this.closed) await new Promise((resolve) => setImmediate(resolve));
  }

  close(): void {
    this.closed = true;
    this.queue = [];
  }

  private readonly next = (): void => {
    this.busy = false;
    const message = this.queue.shift();
    if (message !== undefined) this.send(message);
  };
}
