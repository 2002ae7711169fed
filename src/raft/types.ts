// The Raft data model as plain TypeScript values: log entries, messages, persistent state, snapshots,
// configuration changes and the Ready batch the driver consumes. Nothing here knows about the wire; the
// numeric enum values equal etcd's raftpb ones so a transport can map them one to one if it wants to.
//
// Numbers vs bigints: node ids are `bigint` because etcd member ids are random 64-bit values (the server's
// `Member.id` is already a bigint). Terms and indexes are plain `number`s: they count up from zero and stay
// far below 2^53 for any real cluster, and they are on every hot path.

/** A member id. `NONE` (0n) means "no node" (no leader, no vote). */
export type NodeId = bigint;
export const NONE: NodeId = 0n;

export enum EntryType {
  Normal = 0,
  ConfChange = 1,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Application payload; for ConfChange entries the `encodeConfChange` bytes. */
  data: Uint8Array;
}

export enum MessageType {
  /** local: start an election now */
  Hup = 0,
  /** local (leader): send heartbeats now */
  Beat = 1,
  /** a proposal (local, or forwarded by a follower to the leader) */
  Prop = 2,
  App = 3,
  AppResp = 4,
  Vote = 5,
  VoteResp = 6,
  Snap = 7,
  Heartbeat = 8,
  HeartbeatResp = 9,
  /** local (leader): the transport could not reach `from` */
  Unreachable = 10,
  /** local (leader): the transport finished (or failed) sending a snapshot to `from` */
  SnapStatus = 11,
  /** local (leader): time to verify that a quorum was recently active */
  CheckQuorum = 12,
  /** ask the leader to hand leadership to `from` (etcd's convention: the transferee travels in `from`) */
  TransferLeader = 13,
  /** the leader tells the transferee to campaign at once */
  TimeoutNow = 14,
  ReadIndex = 15,
  ReadIndexResp = 16,
  PreVote = 17,
  PreVoteResp = 18,
}

export interface ConfState {
  /** sorted ascending */
  voters: NodeId[];
  /** sorted ascending; disjoint from voters */
  learners: NodeId[];
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  /** the configuration as of `index` */
  confState: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  /** the application's state machine image as of metadata.index (opaque to Raft) */
  data: Uint8Array;
}

export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  /** sender's term; 0 for local messages */
  term: number;
  /** App: term of the entry at `index`; vote requests: candidate's last term; rejection: hint term */
  logTerm: number;
  /** App: index preceding `entries`; AppResp: highest matching index (or rejected index); votes: last index */
  index: number;
  entries: Entry[];
  commit: number;
  snapshot?: Snapshot;
  reject: boolean;
  /** AppResp rejection: the follower's guess of the highest index where the logs may match */
  rejectHint: number;
  /** ReadIndex request id (ReadIndex, ReadIndexResp, Heartbeat, HeartbeatResp); transfer flag on votes */
  context?: Uint8Array;
}

/** The state that must be on stable storage before messages that depend on it are sent. */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

export enum StateType {
  Follower = 'Follower',
  Candidate = 'Candidate',
  Leader = 'Leader',
  PreCandidate = 'PreCandidate',
}

/** Volatile state the application may want to observe (never persisted). */
export interface SoftState {
  lead: NodeId;
  state: StateType;
}

/** The answer to a `readIndex(ctx)` call: reads that wait until `index` is applied are linearizable. */
export interface ReadState {
  index: number;
  requestCtx: Uint8Array;
}

export enum ConfChangeType {
  AddNode = 0,
  RemoveNode = 1,
  UpdateNode = 2,
  AddLearnerNode = 3,
}

/** One membership change (etcd's ConfChange, no joint consensus). AddNode on a learner promotes it. */
export interface ConfChange {
  /** opaque request id for the application (etcd uses it to find the waiting request) */
  id: bigint;
  type: ConfChangeType;
  nodeId: NodeId;
  /** opaque to Raft (etcd puts the member record here) */
  context: Uint8Array;
}

/**
 * What the driver must do, in this order, then call `advance()`:
 *  1. persist `snapshot` (if any), `entries` (appending, truncating any conflicting stored suffix) and
 *     `hardState` (if any) — atomically and, when `mustSync`, durably;
 *  2. send `messages` (they may only leave after step 1: votes and acks promise persisted state);
 *  3. apply `snapshot` then `committedEntries` to the state machine, in order; for each ConfChange entry
 *     call `applyConfChange` on the node (even if the application rejects the change: then with a
 *     NONE node id, so every node stays deterministic);
 *  4. serve reads from `readStates` once the applied index reaches their `index`.
 * The node accepts `step`/`tick`/`propose` calls between `ready()` and `advance()`; it does not hand out a
 * new Ready until `advance()` was called.
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  readStates: ReadState[];
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  messages: Message[];
  /** true when hardState's term/vote changed or entries were appended (an fsync is needed) */
  mustSync: boolean;
}

export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: NONE, commit: 0 }) as HardState;

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === NONE && hs.commit === 0;
}

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export function isEmptySnapshot(s: Snapshot | undefined): boolean {
  return s === undefined || s.metadata.index === 0;
}

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

/** A message with every field defaulted; the caller sets what the message type uses. */
export function makeMessage(fields: Partial<Message> & Pick<Message, 'type'>): Message {
  return {
    to: NONE,
    from: NONE,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    ...fields,
  };
}

/** Whether a message type is produced locally (never travels between nodes). */
export function isLocalMessage(type: MessageType): boolean {
  return (
    type === MessageType.Hup ||
    type === MessageType.Beat ||
    type === MessageType.Unreachable ||
    type === MessageType.SnapStatus ||
    type === MessageType.CheckQuorum
  );
}

/** Whether a message type is a response (its sender's progress may be untracked after a conf change). */
export function isResponseMessage(type: MessageType): boolean {
  return (
    type === MessageType.AppResp ||
    type === MessageType.VoteResp ||
    type === MessageType.HeartbeatResp ||
    type === MessageType.PreVoteResp ||
    type === MessageType.Unreachable
  );
}

/** Size of an entry's payload, the unit for message-size and in-flight byte limits. */
export function entryPayloadSize(e: Entry): number {
  return e.data.length;
}

/** Approximate encoded size of an entry (payload plus a fixed header), for batching limits. */
export function entrySize(e: Entry): number {
  return e.data.length + 16;
}
