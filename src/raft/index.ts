// The Raft consensus core: a pure state machine (no I/O, timers or clocks) driven through RawNode.
export { RawNode } from './rawnode';
export type { Peer, Status, ProgressStatus } from './rawnode';
export { Raft, TRANSFER_CONTEXT } from './raft';
export type { RaftConfig, RaftLogger } from './raft';
export { MemoryStorage, limitSize } from './storage';
export type { Storage } from './storage';
export { SeededRandom } from './rand';
export type { RandomSource } from './rand';
export { encodeConfChange, decodeConfChange } from './confchange';
export { ProgressState } from './tracker';
export {
  RaftError,
  CompactedError,
  UnavailableError,
  SnapshotTemporarilyUnavailableError,
  SnapOutOfDateError,
  ProposalDroppedError,
  StepLocalMessageError,
  ReadyNotAdvancedError,
} from './errors';
export {
  NONE,
  EntryType,
  MessageType,
  StateType,
  ConfChangeType,
  EMPTY_BYTES,
  makeMessage,
  isEmptyHardState,
  isEmptySnapshot,
  isLocalMessage,
} from './types';
export type {
  NodeId,
  Entry,
  Message,
  HardState,
  SoftState,
  ConfState,
  ConfChange,
  Snapshot,
  SnapshotMetadata,
  ReadState,
  Ready,
} from './types';
