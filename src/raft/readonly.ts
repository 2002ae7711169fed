// Pending ReadIndex requests on a leader (the "safe" read-only mode, etcd's ReadOnlySafe): each request
// remembers the commit index at the time it arrived and is released once a quorum has answered a
// heartbeat carrying its context — proof that this node was still the leader after the request arrived,
// so no other leader can have committed anything the reader would miss.
import { Message, NodeId } from './types';

export interface ReadIndexStatus {
  /** the leader's commit index when the request arrived: the index the reader must wait for */
  index: number;
  /** the request (its `from` says who asked; its `context` identifies it) */
  req: Message;
  acks: Set<NodeId>;
}

const HEX = '0123456789abcdef';

/** A map key for request contexts (byte strings). */
export function contextKey(ctx: Uint8Array | undefined): string {
  if (ctx === undefined) return '';
  let s = '';
  for (const b of ctx) s += HEX[b >> 4] + HEX[b & 15];
  return s;
}

export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexStatus>();
  /** context keys in arrival order */
  private queue: string[] = [];

  get size(): number {
    return this.queue.length;
  }

  /** Track a request; a repeat of a pending context is ignored. */
  addRequest(index: number, req: Message): void {
    const key = contextKey(req.context);
    if (this.pending.has(key)) return;
    this.pending.set(key, { index, req, acks: new Set() });
    this.queue.push(key);
  }

  /** Record a heartbeat answer for `ctx`; returns who has acknowledged it so far (undefined if unknown). */
  recvAck(from: NodeId, ctx: Uint8Array | undefined): ReadonlySet<NodeId> | undefined {
    const rs = this.pending.get(contextKey(ctx));
    if (rs === undefined) return undefined;
    rs.acks.add(from);
    return rs.acks;
  }

  /**
   * Release the request for `ctx` and every request queued before it (the heartbeat round that confirmed
   * `ctx` was sent after they arrived, so it confirms them too).
   */
  advance(ctx: Uint8Array | undefined): ReadIndexStatus[] {
    const key = contextKey(ctx);
    const at = this.queue.indexOf(key);
    if (at < 0) return [];
    const released = this.queue.slice(0, at + 1);
    this.queue = this.queue.slice(at + 1);
    const out: ReadIndexStatus[] = [];
    for (const k of released) {
      const rs = this.pending.get(k);
      if (rs !== undefined) out.push(rs);
      this.pending.delete(k);
    }
    return out;
  }

  /** The most recent pending context (heartbeats carry it so one round can confirm all pending reads). */
  lastPendingRequestContext(): Uint8Array | undefined {
    if (this.queue.length === 0) return undefined;
    return this.pending.get(this.queue[this.queue.length - 1])?.req.context;
  }
}
