// Test drivers for the Raft core: building nodes on MemoryStorage, handling a Ready exactly as the
// contract says (persist, then send, then apply, then advance), and a synchronous in-memory network that
// delivers messages until the cluster is quiet (with per-link cuts and per-type drops). Used by the unit
// tests; the randomized simulation (sim.ts) has its own asynchronous network on top of the same pieces.
import {
  ConfChange,
  ConfState,
  Entry,
  EntryType,
  MemoryStorage,
  Message,
  MessageType,
  NodeId,
  RaftConfig,
  RawNode,
  ReadState,
  Ready,
  SeededRandom,
  decodeConfChange,
} from '../../src/raft';

export interface TestNodeOptions {
  id: NodeId;
  /** initial voters (via the storage's configuration; ignored if `storage` is given) */
  voters?: NodeId[];
  learners?: NodeId[];
  storage?: MemoryStorage;
  electionTick?: number;
  heartbeatTick?: number;
  seed?: number;
  config?: Partial<RaftConfig>;
}

export interface TestNode {
  id: NodeId;
  node: RawNode;
  storage: MemoryStorage;
  /** every committed entry this node applied (normal and conf change), in order */
  applied: Entry[];
  readStates: ReadState[];
  confState: ConfState;
}

export function newTestNode(opts: TestNodeOptions): TestNode {
  const storage = opts.storage ?? new MemoryStorage({ voters: opts.voters ?? [opts.id], learners: opts.learners ?? [] });
  const node = new RawNode({
    id: opts.id,
    storage,
    electionTick: opts.electionTick ?? 10,
    heartbeatTick: opts.heartbeatTick ?? 1,
    random: new SeededRandom(opts.seed ?? Number(opts.id)),
    ...opts.config,
  });
  return { id: opts.id, node, storage, applied: [], readStates: [], confState: storage.initialState().confState };
}

/** Step 1 of a Ready: make snapshot, entries and hard state durable (here: write them to storage). */
export function persistReady(storage: MemoryStorage, rd: Ready): void {
  if (rd.snapshot !== undefined) storage.applySnapshot(rd.snapshot);
  if (rd.entries.length > 0) storage.append(rd.entries);
  if (rd.hardState !== undefined) storage.setHardState(rd.hardState);
}

/**
 * Handle every pending Ready of `n` (persist, collect messages, apply, advance); returns the messages to
 * send. Bounded: each round consumes the node's pending work.
 */
export function drainReady(n: TestNode, maxRounds = 100): Message[] {
  const out: Message[] = [];
  for (let round = 0; round < maxRounds && n.node.hasReady(); round++) {
    const rd = n.node.ready();
    persistReady(n.storage, rd);
    out.push(...rd.messages);
    if (rd.snapshot !== undefined) n.confState = rd.snapshot.metadata.confState;
    for (const e of rd.committedEntries) {
      n.applied.push(e);
      if (e.type === EntryType.ConfChange) n.confState = n.node.applyConfChange(decodeConfChange(e.data));
    }
    n.readStates.push(...rd.readStates);
    n.node.advance();
  }
  return out;
}

export function linkKey(from: NodeId, to: NodeId): string {
  return `${from}->${to}`;
}

/** A synchronous network: messages are delivered one by one (FIFO) until none are left. */
export class TestNetwork {
  readonly nodes = new Map<NodeId, TestNode>();
  /** directed links that drop everything */
  readonly cut = new Set<string>();
  /** message types dropped everywhere */
  readonly ignored = new Set<MessageType>();
  /** every message that was delivered (for assertions) */
  readonly delivered: Message[] = [];

  constructor(nodes: TestNode[]) {
    for (const n of nodes) this.nodes.set(n.id, n);
  }

  static ofSize(count: number, opts: Partial<TestNodeOptions> = {}): TestNetwork {
    const ids = Array.from({ length: count }, (_, i) => BigInt(i + 1));
    return new TestNetwork(ids.map((id) => newTestNode({ ...opts, id, voters: opts.voters ?? ids })));
  }

  /**
   * A brand-new cluster started the production way: every initial member bootstraps (membership as the
   * first log entries); `spares` start empty, ready to be added.
   */
  static bootstrapped(voters: NodeId[], spares: NodeId[] = [], opts: Partial<TestNodeOptions> = {}): TestNetwork {
    const nodes = [...voters, ...spares].map((id) => newTestNode({ ...opts, id, storage: new MemoryStorage() }));
    for (const n of nodes.slice(0, voters.length)) {
      n.node.bootstrap(voters.map((id) => ({ id })));
      drainReady(n);
    }
    return new TestNetwork(nodes);
  }

  get(id: NodeId | number): TestNode {
    const n = this.nodes.get(BigInt(id));
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  isolate(id: NodeId | number): void {
    const x = BigInt(id);
    for (const other of this.nodes.keys()) {
      if (other === x) continue;
      this.cut.add(linkKey(x, other));
      this.cut.add(linkKey(other, x));
    }
  }

  /** Cut both directions between a and b. */
  cutBoth(a: NodeId | number, b: NodeId | number): void {
    this.cut.add(linkKey(BigInt(a), BigInt(b)));
    this.cut.add(linkKey(BigInt(b), BigInt(a)));
  }

  heal(): void {
    this.cut.clear();
    this.ignored.clear();
  }

  /** Deliver `msgs` and everything they cause, up to maxMessages deliveries. */
  send(msgs: Message[], maxMessages = 100_000): void {
    const queue = msgs.slice();
    // Work produced before any message (proposals, ticks) goes out first.
    for (const n of this.nodes.values()) queue.push(...drainReady(n));
    let delivered = 0;
    while (queue.length > 0) {
      if (++delivered > maxMessages) throw new Error('network did not quiesce');
      const m = queue.shift() as Message;
      if (this.cut.has(linkKey(m.from, m.to)) || this.ignored.has(m.type)) continue;
      const target = this.nodes.get(m.to);
      if (target === undefined) continue;
      this.delivered.push(m);
      target.node.step(m);
      queue.push(...drainReady(target));
      for (const n of this.nodes.values()) if (n !== target) queue.push(...drainReady(n));
    }
  }

  /** Flush pending work of every node through the network. */
  stabilize(): void {
    this.send([]);
  }

  campaign(id: NodeId | number): void {
    this.get(id).node.campaign();
    this.stabilize();
  }

  propose(id: NodeId | number, data: string): void {
    this.get(id).node.propose(new TextEncoder().encode(data));
    this.stabilize();
  }

  tick(id: NodeId | number, times = 1): void {
    for (let i = 0; i < times; i++) this.get(id).node.tick();
    this.stabilize();
  }

  applyConf(id: NodeId | number, cc: ConfChange): void {
    this.get(id).node.proposeConfChange(cc);
    this.stabilize();
  }

  /** Payloads of applied normal non-empty entries, as strings. */
  appliedData(id: NodeId | number): string[] {
    return this.get(id)
      .applied.filter((e) => e.type === EntryType.Normal && e.data.length > 0)
      .map((e) => new TextDecoder().decode(e.data));
  }
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
