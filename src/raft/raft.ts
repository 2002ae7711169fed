// The Raft consensus algorithm as a pure, single-threaded state machine: messages and ticks in, state
// changes and outgoing messages out. No clock, no I/O, no randomness of its own (the election jitter comes
// from the injected RandomSource). RawNode (rawnode.ts) packages its output into Ready batches.
//
// Features: leader election with randomized timeouts, pre-vote, check-quorum with a leader lease on the
// follower side, log replication with size-limited batches, pipelining bounded by an in-flight window,
// probe / replicate / snapshot progress states, fast backoff on log mismatch (reject hints on both sides),
// the current-term commit rule, safe ReadIndex, leadership transfer, single-node membership changes with
// learners, and catching up lagging followers with snapshots.
//
// Persistence rule the driver must keep (see Ready): the node's term, vote and log entries are written
// before any message from the same Ready is sent. That is what makes a vote or an append acknowledgement
// a promise. The leader counts its own log towards a quorum only after `advance()` confirms it persisted.
import { applyChange, decodeConfChange, restoreTracker } from './confchange';
import { CompactedError, ProposalDroppedError, RaftError, SnapshotTemporarilyUnavailableError } from './errors';
import { RaftLog } from './log';
import { RandomSource } from './rand';
import { ReadOnly } from './readonly';
import { Storage } from './storage';
import { Progress, ProgressState, ProgressTracker } from './tracker';
import {
  ConfChange,
  ConfState,
  EMPTY_BYTES,
  Entry,
  EntryType,
  HardState,
  Message,
  MessageType,
  NONE,
  NodeId,
  ReadState,
  Ready,
  Snapshot,
  SoftState,
  StateType,
  entryPayloadSize,
  isEmptyHardState,
  makeMessage,
} from './types';

/** Pino-compatible structured logger (optional; the core never logs unless given one). */
export interface RaftLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

const silentLogger: RaftLogger = { debug() {}, info() {}, warn() {} };

export interface RaftConfig {
  /** this node's id (non-zero) */
  id: NodeId;
  storage: Storage;
  /** ticks without hearing from a leader before campaigning (randomized in [electionTick, 2*electionTick)) */
  electionTick: number;
  /** leader heartbeat interval in ticks; must be < electionTick */
  heartbeatTick: number;
  /** the source of election-timeout jitter (inject a seeded one for reproducible runs) */
  random: RandomSource;
  /** the last index the application has applied (on restart); committed entries after it are redelivered */
  applied?: number;
  /** byte limit of entries in one append message (default 1 MiB) */
  maxSizePerMsg?: number;
  /** byte limit of committed entries in one Ready (default 64 MiB) */
  maxCommittedSizePerReady?: number;
  /** append messages in flight per follower in Replicate state (default 256) */
  maxInflightMsgs?: number;
  /** payload bytes in flight per follower (default 0 = unlimited) */
  maxInflightBytes?: number;
  /** the leader refuses proposals while its uncommitted tail exceeds this many payload bytes (default: no limit) */
  maxUncommittedEntriesSize?: number;
  /** the leader steps down when a quorum is not heard from within an election timeout (default true, as etcd) */
  checkQuorum?: boolean;
  /** campaign with a pre-vote round first (default true, as etcd 3.6) */
  preVote?: boolean;
  /** followers drop proposals instead of forwarding them to the leader (default false) */
  disableProposalForwarding?: boolean;
  logger?: RaftLogger;
}

/** The Context of a vote request sent because of a leadership transfer (bypasses the leader lease). */
export const TRANSFER_CONTEXT: Uint8Array = new TextEncoder().encode('CampaignTransfer');

function isTransferContext(ctx: Uint8Array | undefined): boolean {
  if (ctx === undefined || ctx.length !== TRANSFER_CONTEXT.length) return false;
  for (let i = 0; i < ctx.length; i++) if (ctx[i] !== TRANSFER_CONTEXT[i]) return false;
  return true;
}

type CampaignType = 'pre-election' | 'election' | 'transfer';

function voteRespType(t: MessageType): MessageType {
  return t === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
}

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  state: StateType = StateType.Follower;
  /** whether this node is a learner in its current configuration */
  isLearner = false;

  readonly log: RaftLog;
  tracker: ProgressTracker;
  readOnly = new ReadOnly();

  /** outgoing messages not yet handed out in a Ready */
  msgs: Message[] = [];
  /** answered ReadIndex requests not yet handed out in a Ready */
  readStates: ReadState[] = [];
  /** ReadIndex requests that arrived before this leader committed an entry of its term */
  pendingReadIndexMessages: Message[] = [];

  /** the target of a leadership transfer in progress, or NONE */
  leadTransferee: NodeId = NONE;
  /** index of the last conf change appended by this leader; no new one until it is applied */
  pendingConfIndex = 0;
  /** payload bytes appended by this leader and not yet applied */
  uncommittedSize = 0;

  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;

  readonly electionTimeout: number;
  readonly heartbeatTimeout: number;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  readonly maxMsgSize: number;
  readonly maxUncommittedSize: number;
  readonly disableProposalForwarding: boolean;
  private readonly random: RandomSource;
  private readonly logger: RaftLogger;

  constructor(config: RaftConfig) {
    if (config.id === NONE) throw new RaftError('invalid_config', 'cannot use none as id');
    if (config.heartbeatTick <= 0) throw new RaftError('invalid_config', 'heartbeat tick must be greater than 0');
    if (config.electionTick <= config.heartbeatTick) throw new RaftError('invalid_config', 'election tick must be greater than heartbeat tick');
    const maxInflight = config.maxInflightMsgs ?? 256;
    if (maxInflight <= 0) throw new RaftError('invalid_config', 'max inflight messages must be greater than 0');
    this.id = config.id;
    this.electionTimeout = config.electionTick;
    this.heartbeatTimeout = config.heartbeatTick;
    this.checkQuorum = config.checkQuorum ?? true;
    this.preVote = config.preVote ?? true;
    this.maxMsgSize = config.maxSizePerMsg ?? 1024 * 1024;
    this.maxUncommittedSize = config.maxUncommittedEntriesSize ?? Number.POSITIVE_INFINITY;
    this.disableProposalForwarding = config.disableProposalForwarding ?? false;
    this.random = config.random;
    this.logger = config.logger ?? silentLogger;

    this.log = new RaftLog(config.storage, config.maxCommittedSizePerReady ?? 64 * 1024 * 1024);
    const { hardState, confState } = config.storage.initialState();
    this.tracker = restoreTracker(confState, this.log.lastIndex(), maxInflight, config.maxInflightBytes ?? 0);
    this.isLearner = this.tracker.isLearner(this.id);
    if (!isEmptyHardState(hardState)) this.loadState(hardState);
    if (config.applied !== undefined && config.applied > 0) this.log.appliedTo(config.applied);
    this.becomeFollower(this.term, NONE);
  }

  private loadState(hs: HardState): void {
    if (hs.commit < this.log.committed || hs.commit > this.log.lastIndex()) {
      throw new RaftError('bad_hard_state', `${this.id} state.commit ${hs.commit} is out of range [${this.log.committed}, ${this.log.lastIndex()}]`);
    }
    this.log.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  softState(): SoftState {
    return { lead: this.lead, state: this.state };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  // --- sending -------------------------------------------------------------------------------------

  private send(m: Message): void {
    if (m.from === NONE) m.from = this.id;
    if (m.type === MessageType.Vote || m.type === MessageType.VoteResp || m.type === MessageType.PreVote || m.type === MessageType.PreVoteResp) {
      // Vote traffic carries its own term: a pre-vote is for the next term, and a response echoes the
      // request's term so that a pre-candidate does not drop it as stale.
      if (m.term === 0) throw new RaftError('bug', `term should be set when sending ${MessageType[m.type]}`);
    } else {
      if (m.term !== 0) throw new RaftError('bug', `term should not be set when sending ${MessageType[m.type]} (was ${m.term})`);
      // Proposals and read requests forwarded to the leader travel as local messages (term 0).
      if (m.type !== MessageType.Prop && m.type !== MessageType.ReadIndex) m.term = this.term;
    }
    if (m.to === this.id) throw new RaftError('bug', `message should not be self-addressed when sending ${MessageType[m.type]}`);
    this.msgs.push(m);
  }

  /** Send an append (or, when the needed entries are compacted, a snapshot) to `to` if not paused. */
  private sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.tracker.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    let prevTerm: number;
    try {
      prevTerm = this.log.term(prevIndex);
    } catch (err) {
      if (err instanceof CompactedError) return this.maybeSendSnapshot(to, pr);
      throw err;
    }
    let entries: Entry[] = [];
    if (pr.state !== ProgressState.Replicate || !pr.inflights.full()) {
      try {
        entries = this.log.entries(pr.next, this.maxMsgSize);
      } catch (err) {
        if (err instanceof CompactedError) return this.maybeSendSnapshot(to, pr);
        throw err;
      }
    }
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send(makeMessage({ type: MessageType.App, to, index: prevIndex, logTerm: prevTerm, entries, commit: this.log.committed }));
    let bytes = 0;
    for (const e of entries) bytes += entryPayloadSize(e);
    pr.sentEntries(entries.length, bytes);
    pr.sentCommit = this.log.committed;
    return true;
  }

  private maybeSendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false;
    let snap;
    try {
      snap = this.log.snapshot();
    } catch (err) {
      if (err instanceof SnapshotTemporarilyUnavailableError) return false;
      throw err;
    }
    if (snap.metadata.index === 0) throw new RaftError('bug', 'need non-empty snapshot');
    pr.becomeSnapshot(snap.metadata.index);
    this.logger.debug({ raftId: String(this.id), to: String(to), snapshotIndex: snap.metadata.index }, 'sending snapshot');
    this.send(makeMessage({ type: MessageType.Snap, to, snapshot: snap }));
    return true;
  }

  private sendHeartbeat(to: NodeId, ctx: Uint8Array | undefined): void {
    const pr = this.tracker.progress.get(to);
    if (pr === undefined) return;
    // Never tell a follower to commit beyond what it is known to hold: its log may still end earlier.
    const commit = Math.min(pr.match, this.log.committed);
    this.send(makeMessage({ type: MessageType.Heartbeat, to, commit, context: ctx }));
    pr.sentCommit = commit;
  }

  private forEachPeer(fn: (id: NodeId) => void): void {
    for (const id of this.tracker.ids()) if (id !== this.id) fn(id);
  }

  private bcastAppend(): void {
    this.forEachPeer((id) => this.sendAppend(id));
  }

  private bcastHeartbeat(ctx: Uint8Array | undefined = this.readOnly.lastPendingRequestContext()): void {
    this.forEachPeer((id) => this.sendHeartbeat(id, ctx));
  }

  // --- state transitions -----------------------------------------------------------------------------

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = NONE;
    this.tracker.resetVotes();
    const last = this.log.lastIndex();
    for (const [id, old] of this.tracker.progress) {
      const pr = this.tracker.newProgress(last + 1, old.isLearner);
      if (id === this.id) pr.match = this.log.stableLastIndex();
      this.tracker.progress.set(id, pr);
    }
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly = new ReadOnly();
    this.pendingReadIndexMessages = [];
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout + this.random.nextInt(this.electionTimeout);
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.state = StateType.Follower;
    this.logger.info({ raftId: String(this.id), term: this.term }, 'became follower');
  }

  private becomeCandidate(): void {
    if (this.state === StateType.Leader) throw new RaftError('bug', 'invalid transition [leader -> candidate]');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = StateType.Candidate;
    this.logger.info({ raftId: String(this.id), term: this.term }, 'became candidate');
  }

  private becomePreCandidate(): void {
    if (this.state === StateType.Leader) throw new RaftError('bug', 'invalid transition [leader -> pre-candidate]');
    // A pre-candidate neither bumps its term nor votes: a failed pre-election leaves no trace.
    this.tracker.resetVotes();
    this.lead = NONE;
    this.state = StateType.PreCandidate;
    this.logger.info({ raftId: String(this.id), term: this.term }, 'became pre-candidate');
  }

  private becomeLeader(): void {
    if (this.state === StateType.Follower) throw new RaftError('bug', 'invalid transition [follower -> leader]');
    this.reset(this.term);
    this.lead = this.id;
    this.state = StateType.Leader;
    const self = this.tracker.progress.get(this.id);
    if (self !== undefined) {
      self.becomeReplicate();
      self.recentActive = true;
    }
    // Conservatively treat any unapplied entry as a possible conf change: no new change until all applied.
    this.pendingConfIndex = this.log.lastIndex();
    // An entry of the new term: committing it commits everything before it (§5.4.2) and unblocks reads.
    if (!this.appendEntries([{ term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES }])) {
      throw new RaftError('bug', 'empty entry was dropped');
    }
    this.logger.info({ raftId: String(this.id), term: this.term }, 'became leader');
  }

  /** Whether this node may become leader: a voter in its config, not waiting to install a snapshot. */
  promotable(): boolean {
    const pr = this.tracker.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.log.hasPendingSnapshot();
  }

  private hup(t: CampaignType): void {
    if (this.state === StateType.Leader) return;
    if (!this.promotable()) {
      this.logger.debug({ raftId: String(this.id) }, 'not promotable; not campaigning');
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      // The configuration we would campaign under may be about to change.
      this.logger.debug({ raftId: String(this.id), term: this.term }, 'pending conf changes to apply; not campaigning');
      return;
    }
    this.campaign(t);
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.log.applied >= this.log.committed) return false;
    // The committed-but-unapplied range is bounded by what a node can buffer; scan it whole.
    const entries = this.log.slice(this.log.applied + 1, this.log.committed + 1);
    return entries.some((e) => e.type === EntryType.ConfChange);
  }

  private campaign(t: CampaignType): void {
    let voteMsg: MessageType;
    let term: number;
    if (t === 'pre-election') {
      this.becomePreCandidate();
      voteMsg = MessageType.PreVote;
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.Vote;
      term = this.term;
    }
    // Our own vote counts at once: for a real vote, term and vote reach disk in the same Ready before
    // any request leaves, so no one can see the request without the vote being durable.
    if (this.poll(this.id, voteRespType(voteMsg), true) === 'won') {
      // Single voter: nothing to wait for.
      if (t === 'pre-election') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of this.tracker.voters) {
      if (id === this.id) continue;
      this.send(
        makeMessage({
          type: voteMsg,
          to: id,
          term,
          index: lastIndex,
          logTerm: lastTerm,
          context: t === 'transfer' ? TRANSFER_CONTEXT : undefined,
        }),
      );
    }
  }

  private poll(id: NodeId, _type: MessageType, granted: boolean): 'won' | 'lost' | 'pending' {
    this.tracker.recordVote(id, granted);
    return this.tracker.tallyVotes().result;
  }

  // --- input -------------------------------------------------------------------------------------------

  tick(): void {
    if (this.state === StateType.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step(makeMessage({ type: MessageType.Hup, from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(makeMessage({ type: MessageType.CheckQuorum, from: this.id }));
      // A transfer that did not finish within an election timeout is abandoned; proposals resume.
      if (this.state === StateType.Leader && this.leadTransferee !== NONE) this.leadTransferee = NONE;
    }
    if (this.state !== StateType.Leader) return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(makeMessage({ type: MessageType.Beat, from: this.id }));
    }
  }

  /**
   * Process one message. Throws ProposalDroppedError for proposals that cannot be accepted; never mutates
   * `m` (the same message object may be delivered twice).
   */
  step(m: Message): void {
    // Term bookkeeping first: a higher term makes us a follower, a lower one is (mostly) ignored.
    if (m.term === 0) {
      // local message (or a proposal / read request forwarded by a follower)
    } else if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = isTransferContext(m.context);
        const inLease = this.checkQuorum && this.lead !== NONE && this.electionElapsed < this.electionTimeout;
        if (!force && inLease) {
          // We heard from a live leader less than an election timeout ago: this candidate is disruptive
          // (e.g. partitioned and rejoining, or removed). Neither bump our term nor grant the vote.
          this.logger.debug({ raftId: String(this.id), from: String(m.from), term: m.term }, 'ignoring vote request: leader lease not expired');
          return;
        }
      }
      if (m.type === MessageType.PreVote) {
        // Never change term because of a pre-vote request.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // A granted pre-vote carries the future term we asked about; our term moves only if we win.
      } else {
        const fromLeader = m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap;
        this.becomeFollower(m.term, fromLeader ? m.from : NONE);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.Heartbeat || m.type === MessageType.App)) {
        // A leader of an older term. With check-quorum / pre-vote we may have raised our term without
        // being able to win; tell the stale leader our term so it steps down and a fresh election can
        // include us (otherwise we could be locked out forever).
        this.send(makeMessage({ type: MessageType.AppResp, to: m.from }));
      } else if (m.type === MessageType.PreVote) {
        // Reject explicitly so a pre-candidate with a stale term learns ours and does not wait forever.
        this.send(makeMessage({ type: MessageType.PreVoteResp, to: m.from, term: this.term, reject: true }));
      }
      return;
    }

    switch (m.type) {
      case MessageType.Hup:
        this.hup(this.preVote ? 'pre-election' : 'election');
        return;
      case MessageType.Vote:
      case MessageType.PreVote: {
        const canVote =
          this.vote === m.from ||
          (this.vote === NONE && this.lead === NONE) ||
          (m.type === MessageType.PreVote && m.term > this.term);
        if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
          // Reply with the request's term (not ours): see send().
          this.send(makeMessage({ type: voteRespType(m.type), to: m.from, term: m.term }));
          if (m.type === MessageType.Vote) {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          this.send(makeMessage({ type: voteRespType(m.type), to: m.from, term: this.term, reject: true }));
        }
        return;
      }
      default:
        break;
    }
    switch (this.state) {
      case StateType.Leader:
        this.stepLeader(m);
        return;
      case StateType.Candidate:
      case StateType.PreCandidate:
        this.stepCandidate(m);
        return;
      case StateType.Follower:
        this.stepFollower(m);
        return;
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.Beat:
        this.bcastHeartbeat();
        return;
      case MessageType.CheckQuorum:
        if (!this.tracker.quorumActive(this.id)) {
          this.logger.warn({ raftId: String(this.id), term: this.term }, 'stepped down to follower since quorum is not active');
          this.becomeFollower(this.term, NONE);
        }
        for (const [id, pr] of this.tracker.progress) if (id !== this.id) pr.recentActive = false;
        return;
      case MessageType.Prop:
        this.leaderPropose(m);
        return;
      case MessageType.ReadIndex:
        if (this.tracker.isSingleton() && this.tracker.isVoter(this.id)) {
          this.respondToReadIndex(m, this.log.committed);
          return;
        }
        if (!this.committedEntryInCurrentTerm()) {
          // Our commit index may be behind entries an earlier leader committed: wait for our first commit.
          this.pendingReadIndexMessages.push(m);
          return;
        }
        this.startReadIndex(m);
        return;
      default:
        break;
    }

    const pr = this.tracker.progress.get(m.from);
    if (pr === undefined) return;
    switch (m.type) {
      case MessageType.AppResp:
        this.handleAppendResponse(m, pr);
        return;
      case MessageType.HeartbeatResp: {
        pr.recentActive = true;
        pr.msgAppFlowPaused = false;
        // Also the recovery path when every append in the window was lost: an (empty) append at `next`
        // either succeeds or is rejected, which resets the follower to probing from its match.
        if (pr.match < this.log.lastIndex() || pr.state === ProgressState.Probe) this.sendAppend(m.from);
        if (m.context === undefined || m.context.length === 0) return;
        const acks = this.readOnly.recvAck(m.from, m.context);
        if (acks === undefined) return;
        let voterAcks = 0;
        for (const id of this.tracker.voters) if (acks.has(id)) voterAcks++;
        if (voterAcks < Math.floor(this.tracker.voters.length / 2) + 1) return;
        for (const rs of this.readOnly.advance(m.context)) this.respondToReadIndex(rs.req, rs.index);
        return;
      }
      case MessageType.SnapStatus:
        if (pr.state !== ProgressState.Snapshot) return;
        if (m.reject) pr.pendingSnapshot = 0; // probe from match: the snapshot did not arrive
        pr.becomeProbe();
        // Wait for the follower's answer (or a heartbeat round after a failure) before the next append.
        pr.msgAppFlowPaused = true;
        return;
      case MessageType.Unreachable:
        // Optimistic appends were probably lost; go back to probing.
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        return;
      case MessageType.TransferLeader: {
        if (pr.isLearner) return;
        const transferee = m.from;
        if (this.leadTransferee !== NONE) {
          if (this.leadTransferee === transferee) return;
          this.leadTransferee = NONE;
        }
        if (transferee === this.id) return;
        this.electionElapsed = 0; // the transfer must finish within an election timeout
        this.leadTransferee = transferee;
        if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(transferee);
        else this.sendAppend(transferee);
        return;
      }
      default:
        return;
    }
  }

  private leaderPropose(m: Message): void {
    if (m.entries.length === 0) throw new RaftError('bug', 'stepped empty proposal');
    if (!this.tracker.progress.has(this.id)) throw new ProposalDroppedError('this node was removed from the configuration');
    if (this.leadTransferee !== NONE) throw new ProposalDroppedError('leadership transfer in progress');
    const local = m.from === this.id || m.from === NONE;
    const entries: Entry[] = [];
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i];
      if (e.type === EntryType.ConfChange) {
        if (this.pendingConfIndex > this.log.applied) {
          if (local) throw new ProposalDroppedError(`possible unapplied conf change at index ${this.pendingConfIndex} (applied to ${this.log.applied})`);
          // Forwarded: keep the slot but make it a no-op (the proposer's driver times out and retries).
          entries.push({ term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES });
          continue;
        }
        this.pendingConfIndex = this.log.lastIndex() + i + 1;
      }
      entries.push({ term: 0, index: 0, type: e.type, data: e.data });
    }
    if (!this.appendEntries(entries)) throw new ProposalDroppedError('too many uncommitted entries');
    this.bcastAppend();
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      // rejectHint is where the follower's log may match ours; logTerm is its term there. Skip every
      // index of ours with a larger term: they cannot match (terms only grow along a log).
      let nextProbe = m.rejectHint;
      if (m.logTerm > 0) nextProbe = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    if (!(pr.maybeUpdate(m.index) || (pr.match === m.index && pr.state === ProgressState.Probe))) return;
    if (pr.state === ProgressState.Probe) {
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Snapshot && pr.match + 1 >= this.log.firstIndex()) {
      // The follower caught up (from the snapshot or otherwise) to where our log can take over.
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Replicate) {
      pr.inflights.freeLE(m.index);
    }
    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    } else if (pr.canBumpCommit(this.log.committed)) {
      // This peer may not have heard of the current commit index yet (e.g. it was probing while the
      // others committed): tell it now rather than at the next heartbeat.
      this.sendAppend(m.from);
    }
    // Acks free the window: send as much as it now allows (each round either fills the window or
    // runs out of entries, so this ends within maxInflight rounds).
    for (let i = 0; i <= pr.inflights.maxMessages && this.maybeSendAppend(m.from, false); i++) {
      // keep sending
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send(makeMessage({ type: MessageType.TimeoutNow, to }));
  }

  private stepCandidate(m: Message): void {
    const myResp = this.state === StateType.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.Prop:
        throw new ProposalDroppedError(`no leader at term ${this.term}`);
      case MessageType.App:
        this.becomeFollower(m.term, m.from); // m.term === this.term: someone else won
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case myResp: {
        const result = this.poll(m.from, m.type, !m.reject);
        if (result === 'won') {
          if (this.state === StateType.PreCandidate) {
            this.campaign('election');
          } else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (result === 'lost') {
          // A rejected pre-vote may carry a future term; we keep ours.
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
      default:
        return; // TimeoutNow and stale responses are ignored while campaigning
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.Prop:
        if (this.lead === NONE) throw new ProposalDroppedError(`no leader at term ${this.term}`);
        if (this.disableProposalForwarding) throw new ProposalDroppedError('proposal forwarding is disabled');
        this.send({ ...m, to: this.lead });
        return;
      case MessageType.App:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TransferLeader:
        if (this.lead === NONE) return;
        this.send({ ...m, to: this.lead, term: 0 });
        return;
      case MessageType.TimeoutNow:
        // The leader asked us to take over: campaign now, without pre-vote (we know a leader is alive and
        // wants this) and flagged so that voters skip their leader lease.
        this.hup('transfer');
        return;
      case MessageType.ReadIndex:
        if (this.lead === NONE) return; // dropped: the driver retries
        this.send({ ...m, to: this.lead });
        return;
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, requestCtx: m.context ?? EMPTY_BYTES });
        return;
      default:
        return;
    }
  }

  private handleAppendEntries(m: Message): void {
    if (m.index < this.log.committed) {
      // Everything up to our commit index is settled; tell the leader where we are.
      this.send(makeMessage({ type: MessageType.AppResp, to: m.from, index: this.log.committed }));
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send(makeMessage({ type: MessageType.AppResp, to: m.from, index: lastNew }));
      return;
    }
    // Mismatch at m.index. Hint the highest (index, term) with index <= m.index and term <= m.logTerm:
    // nothing above it can match the leader's log.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send(
      makeMessage({ type: MessageType.AppResp, to: m.from, index: m.index, reject: true, rejectHint: hint.index, logTerm: hint.term }),
    );
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(m.commit);
    this.send(makeMessage({ type: MessageType.HeartbeatResp, to: m.from, context: m.context }));
  }

  private handleSnapshot(m: Message): void {
    const snap = m.snapshot;
    if (snap === undefined) return;
    if (this.restore(snap)) {
      this.send(makeMessage({ type: MessageType.AppResp, to: m.from, index: this.log.lastIndex() }));
    } else {
      this.send(makeMessage({ type: MessageType.AppResp, to: m.from, index: this.log.committed }));
    }
  }

  /** Install a snapshot from the leader; false if it brings nothing new. */
  private restore(snap: Snapshot): boolean {
    const { index, term, confState } = snap.metadata;
    if (index <= this.log.committed) return false;
    if (this.state !== StateType.Follower) {
      // Defensive: only followers install snapshots.
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    // The snapshot's configuration may predate this node (it was added after the snapshot was taken):
    // installing it is still safe — the state is committed — and the node learns its own membership
    // from the entries that follow. Until then it is not promotable.
    if (this.log.matchTerm(index, term)) {
      // We already have the snapshot's last entry: just learn that it is committed.
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(snap);
    this.tracker = restoreTracker(confState, this.log.lastIndex(), this.tracker.maxInflight, this.tracker.maxInflightBytes);
    this.switchToConfig();
    this.logger.info({ raftId: String(this.id), index, term }, 'restored snapshot');
    return true;
  }

  /** Apply a committed membership change (the driver calls this for every ConfChange entry it applies). */
  applyConfChange(cc: ConfChange): ConfState {
    const refused = applyChange(this.tracker, cc, this.log.lastIndex());
    if (refused !== undefined) this.logger.warn({ raftId: String(this.id), nodeId: String(cc.nodeId), type: cc.type }, `conf change ignored: ${refused}`);
    return this.switchToConfig();
  }

  private switchToConfig(): ConfState {
    const cs = this.tracker.confState();
    const self = this.tracker.progress.get(this.id);
    this.isLearner = self !== undefined && self.isLearner;
    if ((self === undefined || this.isLearner) && this.state === StateType.Leader) {
      // Removed (or demoted) leader: step down; the remaining voters elect a new one.
      this.becomeFollower(this.term, NONE);
      return cs;
    }
    if (this.state !== StateType.Leader || cs.voters.length === 0) return cs;
    if (this.maybeCommit()) {
      // The new quorum may already cover more entries.
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    } else {
      // Start probing new peers now rather than at the next heartbeat.
      this.forEachPeer((id) => this.maybeSendAppend(id, false));
    }
    if (this.leadTransferee !== NONE && !this.tracker.isVoter(this.leadTransferee)) this.leadTransferee = NONE;
    return cs;
  }

  private maybeCommit(): boolean {
    return this.log.maybeCommit(this.tracker.committed(), this.term);
  }

  /** Append locally as leader; false if the uncommitted tail is full. */
  private appendEntries(entries: readonly Entry[]): boolean {
    const last = this.log.lastIndex();
    const stamped = entries.map((e, i) => ({ term: this.term, index: last + 1 + i, type: e.type, data: e.data }));
    let size = 0;
    for (const e of stamped) size += entryPayloadSize(e);
    // Always accept when nothing is outstanding, and always accept empty entries (the leader's first one).
    if (this.uncommittedSize > 0 && size > 0 && this.uncommittedSize + size > this.maxUncommittedSize) return false;
    this.uncommittedSize += size;
    this.log.append(stamped);
    return true;
  }

  committedEntryInCurrentTerm(): boolean {
    return this.log.termOrZero(this.log.committed) === this.term;
  }

  private startReadIndex(m: Message): void {
    this.readOnly.addRequest(this.log.committed, m);
    this.readOnly.recvAck(this.id, m.context);
    this.bcastHeartbeat(m.context);
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.startReadIndex(m);
  }

  private respondToReadIndex(req: Message, index: number): void {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index, requestCtx: req.context ?? EMPTY_BYTES });
      return;
    }
    this.send(makeMessage({ type: MessageType.ReadIndexResp, to: req.from, index, context: req.context }));
  }

  // --- after the driver handled a Ready ---------------------------------------------------------------

  /** Called by RawNode.advance with the Ready the driver has finished handling. */
  advance(rd: Ready): void {
    if (rd.snapshot !== undefined) {
      this.log.stableSnapTo(rd.snapshot.metadata.index);
      this.log.appliedTo(rd.snapshot.metadata.index);
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1];
      this.log.stableTo(last.index, last.term);
    }
    if (rd.committedEntries.length > 0) {
      const last = rd.committedEntries[rd.committedEntries.length - 1];
      this.log.appliedTo(last.index);
      let size = 0;
      for (const e of rd.committedEntries) size += entryPayloadSize(e);
      this.uncommittedSize = Math.max(0, this.uncommittedSize - size);
    }
    if (this.state === StateType.Leader) {
      // The leader's own acknowledgement: its log is durable up to stableLastIndex().
      const self = this.tracker.progress.get(this.id);
      if (self !== undefined && self.maybeUpdate(this.log.stableLastIndex())) {
        if (this.maybeCommit()) {
          this.releasePendingReadIndexMessages();
          this.bcastAppend();
        }
      }
    }
  }

  /** Decode a ConfChange entry's payload (helper for drivers). */
  static confChangeOf(e: Entry): ConfChange {
    if (e.type !== EntryType.ConfChange) throw new RaftError('bug', `entry ${e.index} is not a conf change`);
    return decodeConfChange(e.data);
  }
}
