// RawNode: the driver-facing API of the Raft core. The driver feeds it (tick, step, propose, readIndex,
// conf changes, transport reports) and repeatedly takes a Ready (what to persist, send and apply), handles
// it, and calls advance(). Everything is synchronous and deterministic; the driver owns time, I/O and
// threading. See `Ready` in types.ts for the exact contract.
import { encodeConfChange } from './confchange';
import { ProposalDroppedError, RaftError, ReadyNotAdvancedError, StepLocalMessageError } from './errors';
import { Raft, RaftConfig } from './raft';
import { ProgressState } from './tracker';
import {
  ConfChange,
  ConfChangeType,
  ConfState,
  EMPTY_BYTES,
  Entry,
  EntryType,
  HardState,
  Message,
  MessageType,
  NONE,
  NodeId,
  Ready,
  SoftState,
  StateType,
  hardStateEqual,
  isEmptyHardState,
  isLocalMessage,
  isResponseMessage,
  makeMessage,
} from './types';

/** A member of a brand-new cluster (see `bootstrap`). */
export interface Peer {
  id: NodeId;
  learner?: boolean;
  /** stored in the bootstrap ConfChange entry's context (etcd puts the member record there) */
  context?: Uint8Array;
}

export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  recentActive: boolean;
  isLearner: boolean;
  paused: boolean;
  inflight: number;
}

export interface Status {
  id: NodeId;
  term: number;
  vote: NodeId;
  commit: number;
  applied: number;
  lead: NodeId;
  state: StateType;
  leadTransferee: NodeId;
  config: ConfState;
  /** leaders only: what the leader knows about each peer (itself included) */
  progress?: Map<NodeId, ProgressStatus>;
}

export class RawNode {
  /** The algorithm's state, exposed for tests, the simulation and status reporting — not for mutation. */
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private inFlight: Ready | undefined;

  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  /**
   * Start a brand-new cluster member (empty storage): the initial membership becomes the first log
   * entries (ConfChanges at term 1, already committed), exactly as on every other initial member, so all
   * logs agree from the start. A node joining an existing cluster does not bootstrap: it starts empty and
   * waits for the leader's appends or snapshot.
   */
  bootstrap(peers: readonly Peer[]): void {
    if (peers.length === 0) throw new RaftError('invalid_bootstrap', 'must provide at least one peer to bootstrap');
    if (this.raft.log.lastIndex() !== 0 || this.raft.term !== 0) throw new RaftError('invalid_bootstrap', "can't bootstrap a nonempty storage");
    this.raft.becomeFollower(1, NONE);
    const entries: Entry[] = peers.map((p, i) => ({
      term: 1,
      index: i + 1,
      type: EntryType.ConfChange,
      data: encodeConfChange({
        id: 0n,
        type: p.learner === true ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode,
        nodeId: p.id,
        context: p.context ?? EMPTY_BYTES,
      }),
    }));
    this.raft.log.append(entries);
    this.raft.log.committed = entries.length;
    for (const p of peers) {
      this.raft.applyConfChange({ id: 0n, type: p.learner === true ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode, nodeId: p.id, context: EMPTY_BYTES });
    }
  }

  /** Advance logical time by one tick (election and heartbeat timeouts are counted in ticks). */
  tick(): void {
    this.raft.tick();
  }

  /** Start an election now (if this node may). */
  campaign(): void {
    this.raft.step(makeMessage({ type: MessageType.Hup, from: this.raft.id }));
  }

  /** Propose application data. Throws ProposalDroppedError if it cannot be appended or forwarded now. */
  propose(data: Uint8Array): void {
    this.raft.step(makeMessage({ type: MessageType.Prop, from: this.raft.id, entries: [{ term: 0, index: 0, type: EntryType.Normal, data }] }));
  }

  /** Propose a membership change; the driver applies it with applyConfChange once committed. */
  proposeConfChange(cc: ConfChange): void {
    this.raft.step(
      makeMessage({ type: MessageType.Prop, from: this.raft.id, entries: [{ term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange(cc) }] }),
    );
  }

  /**
   * Ask for a linearizable read point. The answer arrives as a ReadState with the same `ctx` in a later
   * Ready (requests can be dropped, e.g. without a leader: the driver retries after a timeout). `ctx` must
   * be unique among pending requests.
   */
  readIndex(ctx: Uint8Array): void {
    this.raft.step(makeMessage({ type: MessageType.ReadIndex, context: ctx }));
  }

  /** Ask the leader (directly, or through this follower) to hand leadership to `transferee`. */
  transferLeader(transferee: NodeId): void {
    this.raft.step(makeMessage({ type: MessageType.TransferLeader, from: transferee }));
  }

  /**
   * Feed a message from a peer. Local-only types are refused; responses from peers no longer in the
   * configuration and proposals the leader cannot take (forwarded by a follower) are dropped silently.
   */
  step(m: Message): void {
    if (isLocalMessage(m.type)) throw new StepLocalMessageError();
    if (isResponseMessage(m.type) && !this.raft.tracker.progress.has(m.from) && this.raft.state === StateType.Leader) return;
    try {
      this.raft.step(m);
    } catch (err) {
      if (err instanceof ProposalDroppedError) return;
      throw err;
    }
  }

  /** Apply a committed ConfChange to the configuration; returns the configuration to record with snapshots. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /** The transport could not deliver to `id` (the leader stops optimistic appends to it). */
  reportUnreachable(id: NodeId): void {
    this.raft.step(makeMessage({ type: MessageType.Unreachable, from: id }));
  }

  /** The transport finished sending a snapshot to `id` (ok) or gave up (not ok). */
  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.step(makeMessage({ type: MessageType.SnapStatus, from: id, reject: !ok }));
  }

  hasReady(): boolean {
    if (this.inFlight !== undefined) return false;
    const r = this.raft;
    const soft = r.softState();
    if (soft.lead !== this.prevSoftState.lead || soft.state !== this.prevSoftState.state) return true;
    const hs = r.hardState();
    if (!isEmptyHardState(hs) && !hardStateEqual(hs, this.prevHardState)) return true;
    return (
      r.log.hasPendingSnapshot() ||
      r.log.unstableEntries().length > 0 ||
      r.msgs.length > 0 ||
      r.readStates.length > 0 ||
      r.log.hasNextCommittedEntries()
    );
  }

  /** The next batch of work. Call advance() once it is handled; until then no new Ready is produced. */
  ready(): Ready {
    if (this.inFlight !== undefined) throw new ReadyNotAdvancedError();
    const r = this.raft;
    const rd: Ready = {
      readStates: r.readStates,
      entries: r.log.unstableEntries().slice(),
      committedEntries: r.log.nextCommittedEntries(),
      messages: r.msgs,
      mustSync: false,
    };
    const snap = r.log.unstable.snapshot;
    if (snap !== undefined) rd.snapshot = snap;
    const soft = r.softState();
    if (soft.lead !== this.prevSoftState.lead || soft.state !== this.prevSoftState.state) {
      rd.softState = soft;
      this.prevSoftState = soft;
    }
    const hs = r.hardState();
    if (!isEmptyHardState(hs) && !hardStateEqual(hs, this.prevHardState)) {
      rd.hardState = hs;
      rd.mustSync = hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote;
      this.prevHardState = hs;
    }
    rd.mustSync = rd.mustSync || rd.entries.length > 0 || rd.snapshot !== undefined;
    r.msgs = [];
    r.readStates = [];
    this.inFlight = rd;
    return rd;
  }

  /** The driver has persisted, sent and applied the last Ready. */
  advance(): void {
    const rd = this.inFlight;
    if (rd === undefined) throw new RaftError('no_ready', 'raft: advance() without a pending Ready');
    this.inFlight = undefined;
    this.raft.advance(rd);
  }

  /** Whether a Ready was handed out and not yet advanced. */
  get awaitingAdvance(): boolean {
    return this.inFlight !== undefined;
  }

  status(): Status {
    const r = this.raft;
    const st: Status = {
      id: r.id,
      term: r.term,
      vote: r.vote,
      commit: r.log.committed,
      applied: r.log.applied,
      lead: r.lead,
      state: r.state,
      leadTransferee: r.leadTransferee,
      config: r.tracker.confState(),
    };
    if (r.state === StateType.Leader) {
      st.progress = new Map();
      for (const [id, pr] of r.tracker.progress) {
        st.progress.set(id, {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          recentActive: pr.recentActive,
          isLearner: pr.isLearner,
          paused: pr.isPaused(),
          inflight: pr.inflights.count,
        });
      }
    }
    return st;
  }
}
