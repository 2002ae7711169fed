// Deterministic simulation of a Raft cluster: N nodes (RawNode + a MemoryStorage "disk" each) on a seeded
// virtual network that drops, delays, reorders and duplicates messages and can be partitioned (also in one
// direction only). Nodes crash (losing everything not yet persisted) and restart from their disk; members
// are added (as learners or voters), promoted and removed while clients propose and read; leadership is
// transferred. Every run is a pure function of its seed.
//
// The driver follows the Ready contract asynchronously: a Ready is taken, its persistence completes after
// a simulated disk delay (messages keep arriving meanwhile), then messages are sent, entries applied and
// advance() called. A crash before that point loses the Ready.
//
// After every event the invariants are checked (see Checker): election safety, log matching, leader
// completeness, state machine safety, durability of committed entries, ReadIndex linearizability. At the
// end the network heals and liveness is checked: a leader emerges and a new proposal is applied by every
// member within a bound.
import {
  ConfChange,
  ConfChangeType,
  ConfState,
  EMPTY_BYTES,
  Entry,
  EntryType,
  MemoryStorage,
  Message,
  MessageType,
  NodeId,
  ProposalDroppedError,
  RawNode,
  ReadState,
  Ready,
  SeededRandom,
  StateType,
  decodeConfChange,
} from '../../src/raft';
import { persistReady } from './harness';

// --- knobs -------------------------------------------------------------------------------------------

/** virtual time units per node tick */
const TICK = 10;
const ELECTION_TICK = 10;
const HEARTBEAT_TICK = 2;
/** how many entries a node applies past its last snapshot before taking a new one */
const SNAPSHOT_EVERY = 40;

export interface SimOptions {
  seed: number;
  /** initial voters: 3 or 5 */
  nodes: number;
  /** virtual time of the chaotic phase */
  duration: number;
  /** virtual time allowed after healing until every member applied a new proposal */
  livenessBound: number;
  /** virtual time allowed after healing until a member of the configuration is leader */
  electionBound: number;
  /** keep this many trace lines for failure reports */
  traceLines?: number;
}

export class SimViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimViolation';
  }
}

export interface SimResult {
  seed: number;
  events: number;
  committed: number;
  leaders: number;
  crashes: number;
  /** conf changes proposed / committed */
  confChanges: number;
  confChangesCommitted: number;
  snapshotsSent: number;
  reads: number;
  maxTerm: number;
  /** virtual time from healing until a member was leader, and until every member applied a new proposal */
  electionTime: number;
  recoveryTime: number;
  preVote: boolean;
  checkQuorum: boolean;
}

// --- the application state machine -------------------------------------------------------------------

/** A tiny replicated state machine: a hash chain over applied entries (equal hash = equal history). */
interface StateMachine {
  index: number;
  hash: number;
}

function mixHash(h: number, key: string): number {
  let x = h ^ 0x9e3779b9;
  for (let i = 0; i < key.length; i++) {
    x = Math.imul(x ^ key.charCodeAt(i), 0x01000193) >>> 0;
  }
  return (x ^ (x >>> 16)) >>> 0;
}

const HEX = '0123456789abcdef';
function hex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += HEX[x >> 4] + HEX[x & 15];
  return s;
}
const decoder = new TextDecoder();
const encoder = new TextEncoder();

function entryKey(e: Entry): string {
  if (e.type === EntryType.ConfChange) return `cc:${hex(e.data)}`;
  return `n:${decoder.decode(e.data)}`;
}

// --- simulated nodes ---------------------------------------------------------------------------------

interface SimNode {
  id: NodeId;
  /** the disk: survives crashes */
  disk: MemoryStorage;
  raft: RawNode | undefined;
  /** bumped at each crash so events of a previous life are ignored */
  incarnation: number;
  alive: boolean;
  /** permanently stopped (removed from the cluster) */
  retired: boolean;
  /** was in the committed configuration at some point */
  everMember: boolean;
  sm: StateMachine;
  confState: ConfState;
  /** a Ready whose persistence is in progress */
  pendingReady: Ready | undefined;
  /** read requests issued here: ctx -> global commit index when issued */
  reads: Map<string, number>;
}

type SimEvent =
  | { kind: 'tick'; node: NodeId; incarnation: number }
  | { kind: 'deliver'; msg: Message }
  | { kind: 'persist'; node: NodeId; incarnation: number }
  | { kind: 'snapStatus'; node: NodeId; incarnation: number; to: NodeId; ok: boolean }
  | { kind: 'chaos' }
  | { kind: 'client' }
  | { kind: 'restart'; node: NodeId }
  | { kind: 'heal-partition' };

interface Scheduled {
  time: number;
  seq: number;
  ev: SimEvent;
}

/** A binary min-heap on (time, seq): events at equal times run in scheduling order. */
class EventQueue {
  private heap: Scheduled[] = [];
  get size(): number {
    return this.heap.length;
  }
  push(s: Scheduled): void {
    const h = this.heap;
    h.push(s);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }
  pop(): Scheduled | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop() as Scheduled;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      // Each round moves i at least one level down the heap, so this ends within log2(size) rounds.
      while (2 * i + 1 < h.length) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l], h[m])) m = l;
        if (r < h.length && less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
  peekTime(): number {
    return this.heap.length > 0 ? this.heap[0].time : Number.POSITIVE_INFINITY;
  }
}

function less(a: Scheduled, b: Scheduled): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

/** Configuration as the committed log defines it (computed independently of the code under test). */
class GroundConfig {
  voters = new Set<NodeId>();
  learners = new Set<NodeId>();
  apply(cc: ConfChange): void {
    const id = cc.nodeId;
    if (id === 0n) return;
    switch (cc.type) {
      case ConfChangeType.AddNode:
        this.learners.delete(id);
        this.voters.add(id);
        break;
      case ConfChangeType.AddLearnerNode:
        if (this.voters.has(id)) {
          if (this.voters.size > 1) {
            this.voters.delete(id);
            this.learners.add(id);
          }
        } else {
          this.learners.add(id);
        }
        break;
      case ConfChangeType.RemoveNode:
        if (this.voters.has(id)) {
          if (this.voters.size > 1) this.voters.delete(id);
        } else {
          this.learners.delete(id);
        }
        break;
      default:
        break;
    }
  }
  members(): NodeId[] {
    return [...this.voters, ...this.learners];
  }
}

export class Simulation {
  readonly rng: SeededRandom;
  readonly nodes = new Map<NodeId, SimNode>();
  private readonly queue = new EventQueue();
  private seq = 0;
  now = 0;
  events = 0;
  private nextNodeId: bigint;
  private proposalCounter = 0;
  private readCounter = 0;
  private readonly trace: string[] = [];
  private readonly traceLines: number;

  // network conditions (changed by chaos)
  dropRate = 0;
  dupRate = 0;
  longDelayRate = 0;
  /** blocked directed links "a->b" */
  readonly blocked = new Set<string>();
  chaosEnabled = true;
  /** per-seed Raft options (the same on every node): runs cover all four combinations */
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  clientsEnabled = true;

  // --- global knowledge for the checks ---
  /** term -> leader */
  private readonly leaderOf = new Map<number, NodeId>();
  /** (index, term) -> entry key and the term of the previous entry */
  private readonly registry = new Map<number, Map<number, { key: string; prevTerm: number }>>();
  /** highest index known committed anywhere */
  globalCommit = 0;
  /** committed index -> { term of the entry, key, term of the leader that committed it } */
  private readonly committed = new Map<number, { term: number; key: string; commitTerm: number }>();
  /** index -> key / hash chain of what was applied there (first application anywhere) */
  private readonly appliedKey = new Map<number, string>();
  private readonly hashAt = new Map<number, number>();
  readonly ground = new GroundConfig();
  /** virtual time from healing until a member was leader */
  electionTime: number | undefined;
  readonly stats = { crashes: 0, confChanges: 0, confChangesCommitted: 0, snapshotsSent: 0, reads: 0, leaders: 0 };

  constructor(readonly opts: SimOptions) {
    this.rng = new SeededRandom(opts.seed);
    this.preVote = this.rng.chance(0.75);
    this.checkQuorum = this.rng.chance(0.75);
    this.traceLines = opts.traceLines ?? 60;
    const ids = Array.from({ length: opts.nodes }, (_, i) => BigInt(i + 1));
    this.nextNodeId = BigInt(opts.nodes + 1);
    for (const id of ids) {
      const n = this.createNode(id);
      (n.raft as RawNode).bootstrap(ids.map((p) => ({ id: p })));
    }
    // The bootstrap entries are committed by construction.
    const first = this.nodes.get(1n) as SimNode;
    const boot = (first.raft as RawNode).raft.log.allEntries();
    for (const e of boot) {
      this.committed.set(e.index, { term: e.term, key: entryKey(e), commitTerm: 1 });
      this.ground.apply(decodeConfChange(e.data));
    }
    this.globalCommit = boot.length;
    // Bootstrapping writes the initial log before the member starts serving: persist it synchronously.
    for (const n of this.nodes.values()) {
      n.everMember = true;
      this.afterInput(n);
      this.completeReady(n);
    }
  }

  // --- node lifecycle ---

  private newRaft(id: NodeId, disk: MemoryStorage, applied: number): RawNode {
    return new RawNode({
      id,
      storage: disk,
      electionTick: ELECTION_TICK,
      heartbeatTick: HEARTBEAT_TICK,
      random: new SeededRandom(this.rng.nextInt(0x7fffffff)),
      applied,
      // Small and varied limits: catch-up then spans many messages, which is where ordering bugs hide.
      maxSizePerMsg: this.rng.pick([1, 64, 256, 4096]),
      maxInflightMsgs: this.rng.pick([1, 2, 4, 16]),
      maxInflightBytes: this.rng.pick([0, 0, 40]),
      checkQuorum: this.checkQuorum,
      preVote: this.preVote,
    });
  }

  private createNode(id: NodeId): SimNode {
    const disk = new MemoryStorage();
    const n: SimNode = {
      id,
      disk,
      raft: this.newRaft(id, disk, 0),
      incarnation: 0,
      alive: true,
      retired: false,
      everMember: false,
      sm: { index: 0, hash: 0 },
      confState: { voters: [], learners: [] },
      pendingReady: undefined,
      reads: new Map(),
    };
    this.nodes.set(id, n);
    this.scheduleTick(n, this.rng.nextInt(TICK) + 1);
    return n;
  }

  private crash(n: SimNode): void {
    if (!n.alive) return;
    this.log(`crash ${n.id} (${n.raft?.raft.state})${n.pendingReady !== undefined ? ' (losing an unpersisted Ready)' : ''}`);
    n.alive = false;
    n.incarnation++;
    n.raft = undefined;
    n.pendingReady = undefined;
    n.reads.clear();
    this.stats.crashes++;
  }

  private restart(n: SimNode): void {
    if (n.alive || n.retired) return;
    const snap = n.disk.snapshot();
    // The state machine is in memory only: it comes back from the snapshot on disk, and the committed
    // entries after it are redelivered by Raft.
    n.sm = snap.metadata.index > 0 ? decodeSnapshotData(snap.data) : { index: 0, hash: 0 };
    if (n.sm.index !== snap.metadata.index) this.fail(`node ${n.id} snapshot data index ${n.sm.index} != metadata ${snap.metadata.index}`);
    n.confState = n.disk.initialState().confState;
    n.raft = this.newRaft(n.id, n.disk, snap.metadata.index);
    n.alive = true;
    this.log(`restart ${n.id} at term ${n.raft.raft.term} commit ${n.raft.raft.log.committed} applied ${snap.metadata.index}`);
    this.scheduleTick(n, this.rng.nextInt(TICK) + 1);
    this.afterInput(n);
  }

  // --- scheduling ---

  private schedule(delay: number, ev: SimEvent): void {
    this.queue.push({ time: this.now + delay, seq: this.seq++, ev });
  }

  private scheduleTick(n: SimNode, delay: number = TICK): void {
    this.schedule(delay, { kind: 'tick', node: n.id, incarnation: n.incarnation });
  }

  private log(line: string): void {
    this.trace.push(`[t=${this.now} #${this.events}] ${line}`);
    if (this.trace.length > this.traceLines) this.trace.shift();
  }

  fail(what: string): never {
    throw new SimViolation(
      `seed ${this.opts.seed} (nodes=${this.opts.nodes}) at t=${this.now} event #${this.events}: ${what}\n` +
        `replay: SIM_SEED=${this.opts.seed} npx jest test/sim\nlast events:\n${this.trace.join('\n')}`,
    );
  }

  // --- the driver ---

  /** After any input to a node: if it has work and no Ready in flight, start persisting the next one. */
  private afterInput(n: SimNode): void {
    if (!n.alive || n.raft === undefined || n.pendingReady !== undefined) return;
    if (!n.raft.hasReady()) return;
    n.pendingReady = n.raft.ready();
    // Disk latency: usually short, sometimes long enough for many messages to arrive meanwhile.
    const delay = this.rng.chance(0.1) ? 5 + this.rng.nextInt(30) : this.rng.nextInt(3);
    this.schedule(delay, { kind: 'persist', node: n.id, incarnation: n.incarnation });
  }

  /** Persistence finished: persist, send, apply, advance (the Ready contract), then look for more work. */
  private completeReady(n: SimNode): void {
    const rd = n.pendingReady;
    const raft = n.raft;
    if (rd === undefined || raft === undefined) return;
    n.pendingReady = undefined;
    persistReady(n.disk, rd);
    for (const m of rd.messages) this.sendMessage(m);
    if (rd.snapshot !== undefined) this.applySnapshot(n, rd.snapshot.metadata.index, rd.snapshot.data, rd.snapshot.metadata.confState);
    for (const e of rd.committedEntries) this.applyEntry(n, raft, e);
    for (const rs of rd.readStates) this.checkReadState(n, rs);
    raft.advance();
    this.maybeSnapshot(n);
    // A member that applied its own removal shuts down, like an etcd member does.
    if (!n.confState.voters.includes(n.id) && !n.confState.learners.includes(n.id) && n.sm.index > 0 && !this.ground.members().includes(n.id)) {
      this.log(`node ${n.id} applied its removal; retiring`);
      this.crash(n);
      n.retired = true;
      return;
    }
    this.afterInput(n);
  }

  private applySnapshot(n: SimNode, index: number, data: Uint8Array, cs: ConfState): void {
    const sm = decodeSnapshotData(data);
    if (sm.index !== index) this.fail(`node ${n.id}: snapshot data at ${sm.index} labelled ${index}`);
    const known = this.hashAt.get(index);
    if (known === undefined) this.fail(`node ${n.id}: snapshot at ${index} covers state nobody applied`);
    if (known !== sm.hash) this.fail(`node ${n.id}: snapshot at ${index} has a different state than what was applied there`);
    if (index <= n.sm.index) this.fail(`node ${n.id}: snapshot at ${index} would move state back from ${n.sm.index}`);
    n.sm = sm;
    n.confState = cs;
    this.log(`node ${n.id} installed snapshot at ${index}`);
  }

  private applyEntry(n: SimNode, raft: RawNode, e: Entry): void {
    if (e.index !== n.sm.index + 1) this.fail(`node ${n.id} applies index ${e.index} after ${n.sm.index} (gap or repeat)`);
    const key = entryKey(e);
    const seen = this.appliedKey.get(e.index);
    if (seen === undefined) {
      this.appliedKey.set(e.index, key);
    } else if (seen !== key) {
      this.fail(`state machine safety: node ${n.id} applies ${key} at ${e.index}, another node applied ${seen}`);
    }
    const c = this.committed.get(e.index);
    if (c === undefined || c.key !== key) this.fail(`node ${n.id} applies ${key} at ${e.index} which is not the committed entry there (${c?.key})`);
    n.sm = { index: e.index, hash: mixHash(n.sm.hash, key) };
    const h = this.hashAt.get(e.index);
    if (h === undefined) this.hashAt.set(e.index, n.sm.hash);
    else if (h !== n.sm.hash) this.fail(`node ${n.id} state hash at ${e.index} differs from other nodes'`);
    if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      n.confState = raft.applyConfChange(cc);
    }
  }

  private maybeSnapshot(n: SimNode): void {
    const snapIndex = n.disk.snapshot().metadata.index;
    if (n.sm.index - snapIndex < SNAPSHOT_EVERY) return;
    n.disk.createSnapshot(n.sm.index, n.confState, encodeSnapshotData(n.sm));
    // Keep a short tail (sometimes none) so slow followers sometimes need the snapshot.
    const keep = this.rng.chance(0.5) ? 0 : this.rng.nextInt(20);
    const compactTo = n.sm.index - keep;
    if (compactTo >= n.disk.firstIndex()) n.disk.compact(compactTo);
  }

  private checkReadState(n: SimNode, rs: ReadState): void {
    const ctx = decoder.decode(rs.requestCtx);
    const issuedAt = n.reads.get(ctx);
    if (issuedAt === undefined) return; // a duplicate answer, or the request predates a crash
    n.reads.delete(ctx);
    this.stats.reads++;
    if (rs.index < issuedAt) {
      this.fail(`ReadIndex ${ctx} on node ${n.id} returned index ${rs.index}, but ${issuedAt} was committed before the read was issued`);
    }
    if (rs.index > this.globalCommit) this.fail(`ReadIndex ${ctx} returned ${rs.index} beyond anything committed (${this.globalCommit})`);
  }

  // --- the network ---

  private sendMessage(m: Message): void {
    const link = `${m.from}->${m.to}`;
    const snap = m.type === MessageType.Snap;
    if (snap) this.stats.snapshotsSent++;
    const sender = this.nodes.get(m.from);
    const reportTo = sender !== undefined ? { node: sender.id, incarnation: sender.incarnation } : undefined;
    if (this.blocked.has(link) || this.rng.chance(this.dropRate)) {
      if (snap && reportTo !== undefined) {
        this.schedule(1 + this.rng.nextInt(20), { kind: 'snapStatus', ...reportTo, to: m.to, ok: false });
      } else if (reportTo !== undefined && this.blocked.has(link) && this.rng.chance(0.1)) {
        // The transport noticed the peer is unreachable.
        const s = this.nodes.get(reportTo.node);
        if (s?.alive === true && s.raft !== undefined) {
          s.raft.reportUnreachable(m.to);
          this.afterInput(s);
        }
      }
      return;
    }
    const copies = this.rng.chance(this.dupRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = this.rng.chance(this.longDelayRate) ? 20 + this.rng.nextInt(150) : 1 + this.rng.nextInt(12);
      this.schedule(delay, { kind: 'deliver', msg: m });
    }
  }

  private deliver(m: Message): void {
    const target = this.nodes.get(m.to);
    const snap = m.type === MessageType.Snap;
    const sender = this.nodes.get(m.from);
    if (target === undefined || !target.alive || target.raft === undefined) {
      if (snap && sender !== undefined) this.schedule(1, { kind: 'snapStatus', node: sender.id, incarnation: sender.incarnation, to: m.to, ok: false });
      return;
    }
    target.raft.step(m);
    if (snap && sender !== undefined) this.schedule(1, { kind: 'snapStatus', node: sender.id, incarnation: sender.incarnation, to: m.to, ok: true });
    this.afterInput(target);
  }

  // --- chaos and clients ---

  private liveNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.alive && n.raft !== undefined);
  }

  private leaders(): SimNode[] {
    return this.liveNodes().filter((n) => n.raft?.raft.state === StateType.Leader);
  }

  /** The live leader with the highest term (the one most likely to make progress). */
  currentLeader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.leaders()) if (best === undefined || (n.raft as RawNode).raft.term > (best.raft as RawNode).raft.term) best = n;
    return best;
  }

  private chaos(): void {
    const r = this.rng.nextInt(100);
    const live = this.liveNodes();
    if (r < 16) {
      // crash someone (often the leader, sometimes a candidate mid-election); restart soon or much later
      const leader = this.currentLeader();
      const candidates = live.filter((n) => n.raft?.raft.state === StateType.Candidate || n.raft?.raft.state === StateType.PreCandidate);
      let victim: SimNode | undefined;
      if (leader !== undefined && this.rng.chance(0.4)) victim = leader;
      else if (candidates.length > 0 && this.rng.chance(0.5)) victim = this.rng.pick(candidates);
      else if (live.length > 0) victim = this.rng.pick(live);
      if (victim !== undefined) {
        this.crash(victim);
        this.schedule(this.rng.chance(0.5) ? 5 + this.rng.nextInt(40) : 50 + this.rng.nextInt(400), { kind: 'restart', node: victim.id });
      }
    } else if (r < 26) {
      // symmetric partition into two random groups
      this.blocked.clear();
      const ids = [...this.nodes.keys()];
      const side = new Map(ids.map((id) => [id, this.rng.chance(0.5)]));
      for (const a of ids) for (const b of ids) if (a !== b && side.get(a) !== side.get(b)) this.blocked.add(`${a}->${b}`);
      this.log(`partition ${ids.filter((id) => side.get(id)).join(',')} | ${ids.filter((id) => !side.get(id)).join(',')}`);
      this.schedule(50 + this.rng.nextInt(500), { kind: 'heal-partition' });
    } else if (r < 33) {
      // asymmetric: one node cannot send (or cannot receive)
      const victim = this.rng.pick([...this.nodes.keys()]);
      const outbound = this.rng.chance(0.5);
      for (const other of this.nodes.keys()) {
        if (other !== victim) this.blocked.add(outbound ? `${victim}->${other}` : `${other}->${victim}`);
      }
      this.log(`node ${victim} cannot ${outbound ? 'send' : 'receive'}`);
      this.schedule(50 + this.rng.nextInt(400), { kind: 'heal-partition' });
    } else if (r < 40) {
      // isolate the leader
      const leader = this.currentLeader();
      if (leader !== undefined) {
        for (const other of this.nodes.keys()) {
          if (other === leader.id) continue;
          this.blocked.add(`${leader.id}->${other}`);
          this.blocked.add(`${other}->${leader.id}`);
        }
        this.log(`isolate leader ${leader.id}`);
        this.schedule(50 + this.rng.nextInt(400), { kind: 'heal-partition' });
      }
    } else if (r < 52) {
      // change network quality
      this.dropRate = this.rng.pick([0, 0, 0.02, 0.05, 0.15]);
      this.dupRate = this.rng.pick([0, 0.02, 0.1]);
      this.longDelayRate = this.rng.pick([0, 0.02, 0.1]);
      this.log(`network drop=${this.dropRate} dup=${this.dupRate} longDelay=${this.longDelayRate}`);
    } else if (r < 66) {
      this.membershipChange();
    } else if (r < 76) {
      // leadership transfer, asked of a random live node (followers forward it)
      const voters = [...this.ground.voters];
      const via = live.length > 0 ? this.rng.pick(live) : undefined;
      if (via !== undefined && voters.length > 0) {
        const to = this.rng.pick(voters);
        this.log(`transfer leadership to ${to} via ${via.id}`);
        (via.raft as RawNode).transferLeader(to);
        this.afterInput(via);
      }
    } else if (r < 80) {
      // restart every crashed member and heal the network
      this.blocked.clear();
      for (const n of this.nodes.values()) if (!n.alive && !n.retired) this.restart(n);
      this.log('heal all');
    }
    // else: a quiet period
  }

  private membershipChange(): void {
    const leader = this.currentLeader();
    if (leader === undefined) return;
    const voters = [...this.ground.voters];
    const learners = [...this.ground.learners];
    const total = voters.length + learners.length;
    const r = this.rng.nextInt(4);
    let cc: ConfChange | undefined;
    if (r === 0 && total < this.opts.nodes + 2) {
      const id = this.nextNodeId++;
      this.createNode(id);
      cc = { id: 0n, type: this.rng.chance(0.7) ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode, nodeId: id, context: EMPTY_BYTES };
    } else if (r === 1 && learners.length > 0) {
      cc = { id: 0n, type: ConfChangeType.AddNode, nodeId: this.rng.pick(learners), context: EMPTY_BYTES };
    } else if (r === 2 && voters.length > 3) {
      cc = { id: 0n, type: ConfChangeType.RemoveNode, nodeId: this.rng.pick(voters), context: EMPTY_BYTES };
    } else if (r === 3 && learners.length > 0) {
      cc = { id: 0n, type: ConfChangeType.RemoveNode, nodeId: this.rng.pick(learners), context: EMPTY_BYTES };
    }
    if (cc === undefined) return;
    try {
      (leader.raft as RawNode).proposeConfChange(cc);
      this.stats.confChanges++;
      this.log(`propose conf change ${ConfChangeType[cc.type]} ${cc.nodeId} on ${leader.id}`);
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
      this.log(`conf change ${ConfChangeType[cc.type]} ${cc.nodeId} dropped: ${err.reason}`);
    }
    this.afterInput(leader);
  }

  private client(): void {
    const live = this.liveNodes();
    if (live.length === 0) return;
    const n = this.rng.pick(live);
    const raft = n.raft as RawNode;
    if (this.rng.chance(0.15)) {
      const ctx = `read-${this.readCounter++}`;
      n.reads.set(ctx, this.globalCommit);
      raft.readIndex(encoder.encode(ctx));
    } else {
      const data = `p${this.proposalCounter++}`;
      try {
        raft.propose(encoder.encode(data));
      } catch (err) {
        if (!(err instanceof ProposalDroppedError)) throw err;
      }
    }
    this.afterInput(n);
  }

  // --- the event loop ---

  private handle(ev: SimEvent): NodeId | undefined {
    switch (ev.kind) {
      case 'tick': {
        const n = this.nodes.get(ev.node);
        if (n === undefined || n.incarnation !== ev.incarnation || !n.alive || n.raft === undefined) return undefined;
        n.raft.tick();
        this.scheduleTick(n);
        this.afterInput(n);
        return n.id;
      }
      case 'deliver':
        this.deliver(ev.msg);
        return ev.msg.to;
      case 'persist': {
        const n = this.nodes.get(ev.node);
        if (n === undefined || n.incarnation !== ev.incarnation) return undefined;
        this.completeReady(n);
        return n.id;
      }
      case 'snapStatus': {
        const n = this.nodes.get(ev.node);
        if (n === undefined || n.incarnation !== ev.incarnation || n.raft === undefined) return undefined;
        n.raft.reportSnapshot(ev.to, ev.ok);
        this.afterInput(n);
        return n.id;
      }
      case 'chaos':
        if (this.chaosEnabled) {
          this.chaos();
          this.schedule(20 + this.rng.nextInt(120), { kind: 'chaos' });
        }
        return undefined;
      case 'client':
        if (this.clientsEnabled) {
          this.client();
          this.schedule(1 + this.rng.nextInt(8), { kind: 'client' });
        }
        return undefined;
      case 'restart': {
        const n = this.nodes.get(ev.node);
        if (n !== undefined) this.restart(n);
        return ev.node;
      }
      case 'heal-partition':
        this.blocked.clear();
        return undefined;
    }
  }

  /** Run events until virtual time `until` (bounded by the number of events as a safety net). */
  runUntil(until: number, maxEvents = 5_000_000): void {
    while (this.queue.peekTime() <= until) {
      if (this.events >= maxEvents) this.fail('event budget exhausted');
      const s = this.queue.pop() as Scheduled;
      this.now = s.time;
      this.events++;
      const touched = this.handle(s.ev);
      this.check(touched);
    }
    this.now = until;
  }

  run(): SimResult {
    this.schedule(50, { kind: 'chaos' });
    this.schedule(1, { kind: 'client' });
    this.runUntil(this.opts.duration);
    const healedAt = this.now;
    this.checkLiveness();
    const recoveryTime = this.now - healedAt;
    let maxTerm = 0;
    for (const t of this.leaderOf.keys()) maxTerm = Math.max(maxTerm, t);
    return {
      seed: this.opts.seed,
      events: this.events,
      committed: this.globalCommit,
      leaders: this.leaderOf.size,
      crashes: this.stats.crashes,
      confChanges: this.stats.confChanges,
      confChangesCommitted: this.stats.confChangesCommitted,
      snapshotsSent: this.stats.snapshotsSent,
      reads: this.stats.reads,
      maxTerm,
      electionTime: this.electionTime ?? -1,
      recoveryTime,
      preVote: this.preVote,
      checkQuorum: this.checkQuorum,
    };
  }

  // --- invariants ---

  /** All checks after one event; `touched` is the node whose state the event may have changed. */
  check(touched: NodeId | undefined): void {
    // Commit progress first, so that the other checks see the newest committed set.
    for (const n of this.liveNodes()) this.observeCommit(n);
    // Election safety: at most one leader per term, ever.
    for (const n of this.leaders()) {
      const r = (n.raft as RawNode).raft;
      const prev = this.leaderOf.get(r.term);
      if (prev === undefined) {
        this.leaderOf.set(r.term, n.id);
        this.stats.leaders++;
        this.log(`node ${n.id} became leader at term ${r.term}`);
      } else if (prev !== n.id) {
        this.fail(`election safety: nodes ${prev} and ${n.id} are both leaders of term ${r.term}`);
      }
      this.checkLeaderCompleteness(n);
    }
    if (touched !== undefined) {
      const n = this.nodes.get(touched);
      if (n !== undefined) {
        if (n.alive && n.raft !== undefined) {
          const log = n.raft.raft.log;
          this.checkLogMatching(n, log.allEntries(), log.termOrZero(log.firstIndex() - 1), log.committed, 'memory');
        }
        this.checkLogMatching(n, diskEntries(n.disk), n.disk.term(n.disk.firstIndex() - 1), n.disk.hardStateValue().commit, 'disk');
      }
    }
    this.checkDurability();
  }

  /** Record newly committed entries (only leaders may be first to know an index is committed). */
  private observeCommit(n: SimNode): void {
    const r = (n.raft as RawNode).raft;
    const c = r.log.committed;
    if (c <= this.globalCommit) return;
    if (r.state !== StateType.Leader) this.fail(`node ${n.id} (${r.state}) committed ${c} before any leader did (${this.globalCommit})`);
    for (let i = this.globalCommit + 1; i <= c; i++) {
      const t = r.log.term(i);
      const e = r.log.slice(i, i + 1)[0];
      this.committed.set(i, { term: t, key: entryKey(e), commitTerm: r.term });
      if (e.type === EntryType.ConfChange) {
        this.stats.confChangesCommitted++;
        this.ground.apply(decodeConfChange(e.data));
        for (const id of this.ground.members()) {
          const m = this.nodes.get(id);
          if (m !== undefined) m.everMember = true;
        }
      }
    }
    this.globalCommit = c;
  }

  /** Every committed entry (of an earlier term's commit) is in the leader's log (§5.4). */
  private checkLeaderCompleteness(n: SimNode): void {
    const r = (n.raft as RawNode).raft;
    const first = r.log.firstIndex();
    const last = r.log.lastIndex();
    for (let i = Math.max(first, 1); i <= this.globalCommit; i++) {
      const c = this.committed.get(i);
      if (c === undefined || c.commitTerm >= r.term) continue;
      if (i > last) this.fail(`leader completeness: leader ${n.id} (term ${r.term}) lacks committed index ${i} (last ${last})`);
      if (r.log.term(i) !== c.term) {
        this.fail(`leader completeness: leader ${n.id} (term ${r.term}) has term ${r.log.term(i)} at committed index ${i} (committed term ${c.term})`);
      }
    }
  }

  /**
   * Log matching via a global registry: an (index, term) pair always names the same entry with the same
   * predecessor term; by induction two logs agreeing on an (index, term) agree on everything before it.
   * Committed indexes must hold the committed entry.
   */
  private checkLogMatching(n: SimNode, entries: readonly Entry[], prevTermInit: number, commitIndex: number, where: string): void {
    let prevTerm = prevTermInit;
    let expected = entries.length > 0 ? entries[0].index : 0;
    for (const e of entries) {
      if (e.index !== expected) this.fail(`${where} log of ${n.id} is not contiguous at ${e.index} (expected ${expected})`);
      expected++;
      const key = entryKey(e);
      let byTerm = this.registry.get(e.index);
      if (byTerm === undefined) {
        byTerm = new Map();
        this.registry.set(e.index, byTerm);
      }
      const known = byTerm.get(e.term);
      if (known === undefined) {
        byTerm.set(e.term, { key, prevTerm });
      } else {
        if (known.key !== key) this.fail(`log matching: ${where} log of ${n.id} has ${key} at (${e.index}, ${e.term}); elsewhere it is ${known.key}`);
        if (known.prevTerm !== prevTerm) {
          this.fail(`log matching: ${where} log of ${n.id} has term ${prevTerm} before (${e.index}, ${e.term}); elsewhere ${known.prevTerm}`);
        }
      }
      if (e.index <= commitIndex) {
        const c = this.committed.get(e.index);
        if (c === undefined || c.term !== e.term) {
          this.fail(`${where} log of ${n.id} holds term ${e.term} at index ${e.index} <= its commit ${commitIndex}; committed term is ${c?.term}`);
        }
      }
      prevTerm = e.term;
    }
  }

  /**
   * Committed entries are never lost: the newest committed entry is on the disk of enough members of
   * the latest committed configuration that every majority of it includes one (so any future leader,
   * which needs such a majority, has it). Older committed entries follow from log matching.
   */
  private checkDurability(): void {
    const g = this.globalCommit;
    const c = this.committed.get(g);
    if (c === undefined) return;
    const voters = [...this.ground.voters];
    let holders = 0;
    for (const id of voters) {
      const n = this.nodes.get(id);
      if (n === undefined) continue;
      if (diskHolds(n.disk, g, c.term)) holders++;
    }
    const majority = Math.floor(voters.length / 2) + 1;
    if (voters.length - holders >= majority) {
      this.fail(`durability: committed index ${g} is on the disks of only ${holders} of voters ${voters.join(',')}`);
    }
  }

  // --- liveness ---

  /**
   * Heal everything (network, crashed members), stop the chaos, and require that within the bound a
   * leader exists and a fresh proposal is applied by every live member of the configuration.
   */
  checkLiveness(): void {
    this.chaosEnabled = false;
    this.clientsEnabled = false;
    this.blocked.clear();
    this.dropRate = 0;
    this.dupRate = 0;
    this.longDelayRate = 0;
    // Members that were removed stop for good (etcd members exit once removed).
    const members = new Set(this.ground.members());
    for (const n of this.nodes.values()) {
      if (!members.has(n.id) && n.everMember && n.alive) {
        this.crash(n);
        n.retired = true;
      }
    }
    for (const n of this.nodes.values()) if (!n.alive && !n.retired) this.restart(n);
    this.log('liveness phase: healed');
    const deadline = this.now + this.opts.livenessBound;
    const marker = `live-${this.opts.seed}`;
    let proposedAt = -Infinity;
    const healedAt = this.now;
    // Bounded: each round advances virtual time by one tick until the deadline.
    while (this.now < deadline) {
      this.runUntil(this.now + TICK);
      const leader = this.currentLeader();
      if (leader !== undefined && this.ground.voters.has(leader.id) && this.electionTime === undefined) this.electionTime = this.now - healedAt;
      if (this.electionTime === undefined && this.now - healedAt > this.opts.electionBound) {
        this.fail(`liveness: no leader within ${this.opts.electionBound} after healing`);
      }
      const markerIndex = this.indexOfApplied(`n:${marker}`);
      if (markerIndex !== undefined) {
        const everyone = [...this.ground.members()].every((id) => {
          const n = this.nodes.get(id);
          return n !== undefined && n.alive && n.sm.index >= markerIndex;
        });
        if (everyone) return;
      } else if (leader !== undefined && this.now - proposedAt >= 20 * TICK) {
        proposedAt = this.now;
        try {
          (leader.raft as RawNode).propose(encoder.encode(marker));
          this.afterInput(leader);
        } catch (err) {
          if (!(err instanceof ProposalDroppedError)) throw err;
        }
      }
    }
    const states = [...this.nodes.values()]
      .map((n) => `${n.id}:${n.alive ? `${n.raft?.raft.state}@${n.raft?.raft.term} commit=${n.raft?.raft.log.committed} applied=${n.sm.index}` : 'down'}`)
      .join(' ');
    this.fail(`liveness: no progress within ${this.opts.livenessBound} after healing (members ${[...members].join(',')}; ${states})`);
  }

  private indexOfApplied(key: string): number | undefined {
    for (const [index, k] of this.appliedKey) if (k === key) return index;
    return undefined;
  }
}

function diskEntries(disk: MemoryStorage): Entry[] {
  const first = disk.firstIndex();
  const last = disk.lastIndex();
  return last >= first ? disk.entries(first, last + 1) : [];
}

function diskHolds(disk: MemoryStorage, index: number, term: number): boolean {
  if (disk.snapshot().metadata.index >= index) return true;
  if (index < disk.firstIndex() || index > disk.lastIndex()) return false;
  return disk.term(index) === term;
}

function encodeSnapshotData(sm: StateMachine): Uint8Array {
  return encoder.encode(JSON.stringify(sm));
}

function decodeSnapshotData(data: Uint8Array): StateMachine {
  return JSON.parse(decoder.decode(data)) as StateMachine;
}

/** Seeds alternate between 3- and 5-node clusters. */
export function nodesForSeed(seed: number): number {
  return seed % 2 === 1 ? 3 : 5;
}

/**
 * Defaults: 2000 ticks of chaos; after healing a leader within 150 ticks and every member applying a new
 * proposal within 2000 ticks (generous because some seeds pick one-entry appends with a window of one,
 * so catching up a long uncommitted backlog takes one round trip per entry).
 */
export function runSimulation(seed: number, overrides: Partial<SimOptions> = {}): SimResult {
  const sim = new Simulation({ seed, nodes: nodesForSeed(seed), duration: 20_000, livenessBound: 20_000, electionBound: 1_500, ...overrides });
  return sim.run();
}
