// What a leader knows about each peer (Progress: match/next, replication state, flow control) and what
// the node knows about the configuration (voters, learners) — plus the quorum arithmetic over it:
// the committed index of a majority, vote tallies, and whether a quorum was recently active.
import { ConfState, NodeId } from './types';

export enum ProgressState {
  /** we do not know where the follower's log ends: send one append at a time and wait for the answer */
  Probe = 'Probe',
  /** the follower is known to match up to `match`: stream appends optimistically, bounded by Inflights */
  Replicate = 'Replicate',
  /** the follower needs a snapshot; appends are paused until it reports back */
  Snapshot = 'Snapshot',
}

/**
 * A bounded window of in-flight append messages, each remembered by its last entry index and payload
 * bytes; acknowledged messages are freed from the front.
 */
export class Inflights {
  private readonly indexes: number[] = [];
  private readonly sizes: number[] = [];
  private head = 0;
  private bytesInFlight = 0;

  constructor(
    readonly maxMessages: number,
    /** 0 = no byte limit */
    readonly maxBytes: number,
  ) {}

  get count(): number {
    return this.indexes.length - this.head;
  }

  get bytes(): number {
    return this.bytesInFlight;
  }

  add(lastIndex: number, bytes: number): void {
    if (this.full()) throw new Error('cannot add into a full inflights');
    this.indexes.push(lastIndex);
    this.sizes.push(bytes);
    this.bytesInFlight += bytes;
  }

  /** Free every message whose last index is <= `index` (they were acknowledged). */
  freeLE(index: number): void {
    while (this.head < this.indexes.length && this.indexes[this.head] <= index) {
      this.bytesInFlight -= this.sizes[this.head];
      this.head++;
    }
    // Compact occasionally so the arrays do not grow without bound.
    if (this.head > 64 && this.head * 2 > this.indexes.length) {
      this.indexes.splice(0, this.head);
      this.sizes.splice(0, this.head);
      this.head = 0;
    }
  }

  full(): boolean {
    return this.count >= this.maxMessages || (this.maxBytes > 0 && this.bytesInFlight >= this.maxBytes);
  }

  reset(): void {
    this.indexes.length = 0;
    this.sizes.length = 0;
    this.head = 0;
    this.bytesInFlight = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = ProgressState.Probe;
  /** in Snapshot state: the index of the snapshot sent */
  pendingSnapshot = 0;
  /** heard from since the last check-quorum round */
  recentActive = false;
  /** in Probe: an append is outstanding; in Replicate: the window is full */
  msgAppFlowPaused = false;
  /** the highest commit index sent to this peer (in an append or heartbeat) that it can act on */
  sentCommit = 0;
  readonly inflights: Inflights;
  isLearner: boolean;

  constructor(next: number, inflights: Inflights, isLearner: boolean) {
    this.next = next;
    this.inflights = inflights;
    this.isLearner = isLearner;
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      // Whatever the follower did with the snapshot, it has at least `match`; if it installed the
      // snapshot it has pendingSnapshot too, so probe right after it.
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
    this.sentCommit = Math.min(this.sentCommit, this.next - 1);
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
    this.next = snapshotIndex + 1;
    this.sentCommit = snapshotIndex;
  }

  /**
   * Whether the peer may not know that `index` is committed although it could act on it: then an (empty)
   * append is worth sending now rather than waiting for the next heartbeat.
   */
  canBumpCommit(index: number): boolean {
    return index > this.sentCommit && this.sentCommit < this.next - 1;
  }

  /** Bookkeeping after sending an append carrying `entries` entries (`bytes` of payload). */
  sentEntries(entries: number, bytes: number): void {
    if (this.state === ProgressState.Replicate) {
      if (entries > 0) {
        this.next += entries;
        this.inflights.add(this.next - 1, bytes);
      }
      this.msgAppFlowPaused = this.inflights.full();
    } else if (this.state === ProgressState.Probe) {
      if (entries > 0) this.msgAppFlowPaused = true;
    } else {
      throw new Error(`sending append in unhandled state ${this.state}`);
    }
  }

  /** An acknowledgement up to n; returns whether it was news. */
  maybeUpdate(n: number): boolean {
    if (n <= this.match) return false;
    this.match = n;
    this.next = Math.max(this.next, n + 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  /**
   * A rejection of the append whose previous index was `rejected`; `matchHint` is where the logs may
   * match. Returns false if the rejection is stale (then nothing changes).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      // Everything up to match is acknowledged: a rejection at or below it is a duplicate or reordered.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      this.sentCommit = Math.min(this.sentCommit, this.next - 1);
      return true;
    }
    // In Probe (or Snapshot) only the answer to the latest probe counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.sentCommit = Math.min(this.sentCommit, this.next - 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  isPaused(): boolean {
    if (this.state === ProgressState.Snapshot) return true;
    return this.msgAppFlowPaused;
  }
}

export type VoteResult = 'won' | 'lost' | 'pending';

/** The index acknowledged by a majority of `voters` given each one's match (absent = 0). */
export function majorityCommitted(voters: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  if (voters.length === 0) return 0;
  const matches = voters.map(matchOf).sort((a, b) => b - a);
  return matches[Math.floor(voters.length / 2)];
}

/** Majority vote result over `voters` given the recorded votes (missing = not yet answered). */
export function majorityVoteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.length === 0) return 'won';
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const quorum = Math.floor(voters.length / 2) + 1;
  if (granted >= quorum) return 'won';
  if (granted + missing >= quorum) return 'pending';
  return 'lost';
}

function sortIds(ids: Iterable<NodeId>): NodeId[] {
  return [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export class ProgressTracker {
  /** sorted ascending */
  voters: NodeId[] = [];
  /** sorted ascending */
  learners: NodeId[] = [];
  readonly progress = new Map<NodeId, Progress>();
  readonly votes = new Map<NodeId, boolean>();

  constructor(
    readonly maxInflight: number,
    readonly maxInflightBytes: number,
  ) {}

  newProgress(next: number, isLearner: boolean): Progress {
    return new Progress(next, new Inflights(this.maxInflight, this.maxInflightBytes), isLearner);
  }

  isVoter(id: NodeId): boolean {
    return this.voters.includes(id);
  }

  isLearner(id: NodeId): boolean {
    return this.learners.includes(id);
  }

  setVoters(ids: Iterable<NodeId>): void {
    this.voters = sortIds(ids);
  }

  setLearners(ids: Iterable<NodeId>): void {
    this.learners = sortIds(ids);
  }

  confState(): ConfState {
    return { voters: this.voters.slice(), learners: this.learners.slice() };
  }

  /** Peers in a deterministic order (ascending id): voters and learners. */
  ids(): NodeId[] {
    return sortIds(this.progress.keys());
  }

  isSingleton(): boolean {
    return this.voters.length === 1;
  }

  committed(): number {
    return majorityCommitted(this.voters, (id) => this.progress.get(id)?.match ?? 0);
  }

  resetVotes(): void {
    this.votes.clear();
  }

  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters) {
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    return { granted, rejected, result: majorityVoteResult(this.voters, this.votes) };
  }

  /** Whether a quorum of voters was recently active (`self` always counts as active). */
  quorumActive(self: NodeId): boolean {
    const active = new Map<NodeId, boolean>();
    for (const id of this.voters) {
      const pr = this.progress.get(id);
      active.set(id, id === self || (pr !== undefined && pr.recentActive));
    }
    return majorityVoteResult(this.voters, active) === 'won';
  }
}
