/**
 * The workers the master knows, by ZeroMQ routing id, with what each may still take (credit),
 * what it holds (leased) and when it was last heard from.
 */
export interface Peer {
  /** A small number that owns this worker's leases in the ledger; never reused. */
  readonly index: number;
  readonly routingId: Buffer;
  readonly host: string;
  readonly pid: number;
  readonly concurrency: number;
  /** Jobs it asked for and has not been sent yet. */
  credit: number;
  /** Jobs leased to it and not yet acknowledged. */
  leased: number;
  lastHeard: number;
  lastSent: number;
  /** The suspect it holds (see Ledger): it gets nothing else until that one is settled. */
  suspect?: number | undefined;
  /** When a send to it failed: its connection is gone. */
  unreachableSince?: number | undefined;
}

export class Peers {
  private readonly byId = new Map<string, Peer>();
  /** Peers with credit, in the order they asked: the dispatcher serves them round-robin. */
  readonly hungry = new Set<Peer>();
  private nextIndex = 1;

  get size(): number {
    return this.byId.size;
  }

  get(routingId: Buffer): Peer | undefined {
    return this.byId.get(routingId.toString("latin1"));
  }

  add(routingId: Buffer, host: string, pid: number, concurrency: number, now: number): Peer {
    const peer: Peer = {
      index: this.nextIndex++,
      routingId,
      host,
      pid,
      concurrency,
      credit: 0,
      leased: 0,
      lastHeard: now,
      lastSent: now,
    };
    this.byId.set(routingId.toString("latin1"), peer);
    return peer;
  }

  remove(peer: Peer): void {
    this.byId.delete(peer.routingId.toString("latin1"));
    this.hungry.delete(peer);
  }

  /** It gets no more jobs until it asks again (it is leaving, gone, or starting over). */
  revokeCredit(peer: Peer): void {
    peer.credit = 0;
    this.hungry.delete(peer);
  }

  grant(peer: Peer, credit: number, max: number): void {
    peer.credit = Math.min(max, peer.credit + credit);
    if (peer.credit > 0) this.hungry.add(peer);
  }

  [Symbol.iterator](): IterableIterator<Peer> {
    return this.byId.values();
  }
}

export function describePeer(peer: Pick<Peer, "host" | "pid">): string {
  return `${peer.host}:${peer.pid}`;
}
