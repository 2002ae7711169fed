// Errors the Raft core and its Storage raise. The driver tells them apart by class (or `code`).

export class RaftError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'RaftError';
  }
}

/** The requested index is below the first available one (it was compacted into a snapshot). */
export class CompactedError extends RaftError {
  constructor() {
    super('compacted', 'requested index is unavailable due to compaction');
  }
}

/** The requested index is beyond the last stored entry. */
export class UnavailableError extends RaftError {
  constructor() {
    super('unavailable', 'requested entry at index is unavailable');
  }
}

/** A snapshot is being produced; the leader retries later. */
export class SnapshotTemporarilyUnavailableError extends RaftError {
  constructor() {
    super('snapshot_temporarily_unavailable', 'snapshot is temporarily unavailable');
  }
}

/** The snapshot being applied or created is older than what storage holds. */
export class SnapOutOfDateError extends RaftError {
  constructor() {
    super('snap_out_of_date', 'requested index is older than the existing snapshot');
  }
}

/**
 * A proposal was not appended: no known leader, leadership transfer in progress, this node was removed,
 * the uncommitted tail is full, or (for conf changes) another change is still unapplied.
 */
export class ProposalDroppedError extends RaftError {
  constructor(readonly reason: string) {
    super('proposal_dropped', `raft proposal dropped: ${reason}`);
  }
}

/** A local-only message type was passed to `step`. */
export class StepLocalMessageError extends RaftError {
  constructor() {
    super('step_local_msg', 'raft: cannot step raft local message');
  }
}

/** `ready()` was called again before `advance()`. */
export class ReadyNotAdvancedError extends RaftError {
  constructor() {
    super('ready_not_advanced', 'raft: previous Ready was not advanced');
  }
}
