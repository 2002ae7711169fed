// The node's view of its Raft log: the part the driver has persisted (read through Storage) followed by an
// "unstable" tail that only lives in memory until a Ready hands it to the driver and `advance()` confirms it
// was written. Also owns the two cursors over the log: `committed` (known replicated on a quorum) and
// `applied` (handed to the state machine and confirmed by `advance()`).
//
// Invariants: applied <= committed <= lastIndex(); firstIndex() - 1 <= committed (compaction only ever
// drops applied entries); the unstable tail starts right after the entries storage serves for it.
import { CompactedError, RaftError, UnavailableError } from './errors';
import { Storage, limitSize } from './storage';
import { Entry, Snapshot, entrySize } from './types';

/** Entries and/or a snapshot not yet confirmed persisted. */
class Unstable {
  /** a received snapshot that the driver must persist and apply before anything after it */
  snapshot: Snapshot | undefined;
  entries: Entry[] = [];
  /** index of entries[0] (or where it would be) */
  offset: number;

  constructor(offset: number) {
    this.offset = offset;
  }

  /** The term at `index` if this tail knows it. */
  maybeTerm(index: number): number | undefined {
    if (index < this.offset) {
      if (this.snapshot !== undefined && this.snapshot.metadata.index === index) return this.snapshot.metadata.term;
      return undefined;
    }
    const last = this.offset + this.entries.length - 1;
    if (index > last) return undefined;
    return this.entries[index - this.offset].term;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    if (this.snapshot !== undefined) return this.snapshot.metadata.index;
    return undefined;
  }

  /** Append, replacing any suffix from entries[0].index on (possibly reaching back into storage). */
  truncateAndAppend(entries: readonly Entry[]): void {
    const first = entries[0].index;
    const end = this.offset + this.entries.length;
    if (first === end) {
      this.entries = this.entries.concat(entries);
    } else if (first <= this.offset) {
      // The new entries replace the whole tail and maybe part of what storage holds: the driver's append
      // truncates storage at `first` when it persists them.
      this.offset = first;
      this.entries = entries.slice();
    } else {
      this.entries = this.entries.slice(0, first - this.offset).concat(entries);
    }
  }
}

export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  committed: number;
  applied: number;
  /** cap on the bytes of committed entries handed out in one Ready */
  readonly maxApplyingBytes: number;

  constructor(storage: Storage, maxApplyingBytes: number) {
    this.storage = storage;
    this.maxApplyingBytes = maxApplyingBytes;
    const first = storage.firstIndex();
    this.unstable = new Unstable(storage.lastIndex() + 1);
    this.committed = first - 1;
    this.applied = first - 1;
  }

  firstIndex(): number {
    const s = this.unstable.snapshot;
    return s !== undefined ? s.metadata.index + 1 : this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  /** Highest index known persisted (the leader counts itself in a quorum only up to here). */
  stableLastIndex(): number {
    // A node waiting to install a snapshot is a follower; it never counts itself, so stay conservative.
    if (this.unstable.snapshot !== undefined) return 0;
    return this.unstable.entries.length > 0 ? this.unstable.offset - 1 : this.lastIndex();
  }

  /** Term of the entry at `index`; throws CompactedError / UnavailableError outside the log. */
  term(index: number): number {
    const t = this.unstable.maybeTerm(index);
    if (t !== undefined) return t;
    if (index < this.firstIndex() - 1) throw new CompactedError();
    if (index > this.lastIndex()) throw new UnavailableError();
    return this.storage.term(index);
  }

  /** term(index), or 0 when the index is outside the log. */
  termOrZero(index: number): number {
    try {
      return this.term(index);
    } catch (err) {
      if (err instanceof CompactedError || err instanceof UnavailableError) return 0;
      throw err;
    }
  }

  matchTerm(index: number, term: number): boolean {
    // Past the end is the common case on every append a follower takes: answer it without an exception.
    if (index > this.lastIndex()) return false;
    try {
      return this.term(index) === term;
    } catch (err) {
      if (err instanceof CompactedError || err instanceof UnavailableError) return false;
      throw err;
    }
  }

  /** Whether a log ending at (lastIndex, lastTerm) is at least as up to date as ours (§5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /** Entries from `lo` to the end, at most maxBytes (at least one). */
  entries(lo: number, maxBytes: number): Entry[] {
    const last = this.lastIndex();
    if (lo > last) return [];
    return this.slice(lo, last + 1, maxBytes);
  }

  /** Entries in [lo, hi), at most maxBytes (at least one if the range is not empty). */
  slice(lo: number, hi: number, maxBytes: number = Number.POSITIVE_INFINITY): Entry[] {
    if (lo > hi) throw new RaftError('invalid_slice', `invalid slice ${lo} > ${hi}`);
    if (lo < this.firstIndex()) throw new CompactedError();
    if (hi > this.lastIndex() + 1) throw new RaftError('slice_out_of_bound', `slice[${lo},${hi}) out of bound [${this.firstIndex()},${this.lastIndex()}]`);
    if (lo === hi) return [];
    const offset = this.unstable.offset;
    let result: Entry[] = [];
    if (lo < offset) {
      const stored = this.storage.entries(lo, Math.min(hi, offset), maxBytes);
      // Storage stopped early because of the size limit: do not add unstable entries after a gap.
      if (stored.length < Math.min(hi, offset) - lo) return stored;
      result = stored;
    }
    if (hi > offset) {
      const tail = this.unstable.entries.slice(Math.max(lo, offset) - offset, hi - offset);
      result = result.length > 0 ? result.concat(tail) : tail;
    }
    return limitSize(result, maxBytes);
  }

  /**
   * The follower side of AppendEntries: if our log has (prevIndex, prevTerm), append what is new (dropping a
   * conflicting uncommitted suffix), advance commit to min(leaderCommit, last new index), and return that
   * last new index; otherwise return undefined.
   */
  maybeAppend(prevIndex: number, prevTerm: number, leaderCommit: number, entries: readonly Entry[]): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      if (conflict <= this.committed) {
        throw new RaftError('conflict_with_committed', `entry ${conflict} conflicts with committed entry [committed(${this.committed})]`);
      }
      this.append(entries.slice(conflict - (prevIndex + 1)));
    }
    this.commitTo(Math.min(leaderCommit, lastNew));
    return lastNew;
  }

  /** Index of the first entry that is not in our log with the same term; 0 if all are. */
  findConflict(entries: readonly Entry[]): number {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term`, with that term (0 when the index leaves the
   * log). Used on both sides of the fast log-mismatch backoff: no index above the answer can match a log
   * whose entry at `index` has term `term`, because terms never decrease along a log.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let i = index;
    // Each step moves one index down; the loop ends at the latest at the first index (term lookup fails).
    while (i > 0) {
      let t: number;
      try {
        t = this.term(i);
      } catch (err) {
        if (err instanceof CompactedError || err instanceof UnavailableError) return { index: i, term: 0 };
        throw err;
      }
      if (t <= term) return { index: i, term: t };
      i--;
    }
    return { index: 0, term: 0 };
  }

  /** Append to the unstable tail; returns the new last index. */
  append(entries: readonly Entry[]): number {
    if (entries.length === 0) return this.lastIndex();
    const after = entries[0].index - 1;
    if (after < this.committed) {
      throw new RaftError('append_below_commit', `after(${after}) is out of range [committed(${this.committed})]`);
    }
    this.unstable.truncateAndAppend(entries);
    return this.lastIndex();
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (this.lastIndex() < index) {
      throw new RaftError('commit_out_of_range', `tocommit(${index}) is out of range [lastIndex(${this.lastIndex()})]`);
    }
    this.committed = index;
  }

  /** Leader commit rule: only an entry of the current term is committed by counting replicas (§5.4.2). */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.termOrZero(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  appliedTo(index: number): void {
    if (index === 0 || index <= this.applied) return;
    if (index > this.committed) {
      throw new RaftError('applied_out_of_range', `applied(${index}) is out of range [committed(${this.committed})]`);
    }
    this.applied = index;
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  /** Committed entries not yet applied (none while a snapshot waits to be applied first). */
  nextCommittedEntries(): Entry[] {
    if (this.unstable.snapshot !== undefined) return [];
    const lo = this.applied + 1;
    const hi = this.committed + 1;
    if (lo >= hi) return [];
    return this.slice(lo, hi, this.maxApplyingBytes);
  }

  hasNextCommittedEntries(): boolean {
    return this.unstable.snapshot === undefined && this.committed > this.applied;
  }

  /** Confirm that entries up to (index, term) were persisted (ignored if that entry was since replaced). */
  stableTo(index: number, term: number): void {
    const u = this.unstable;
    if (u.entries.length === 0 || index < u.offset) return;
    if (u.maybeTerm(index) !== term) return;
    u.entries = u.entries.slice(index + 1 - u.offset);
    u.offset = index + 1;
  }

  stableSnapTo(index: number): void {
    if (this.unstable.snapshot !== undefined && this.unstable.snapshot.metadata.index === index) {
      this.unstable.snapshot = undefined;
    }
  }

  /** Replace the log with a snapshot (the driver persists and applies it from the next Ready). */
  restore(snap: Snapshot): void {
    this.committed = snap.metadata.index;
    this.unstable.snapshot = snap;
    this.unstable.entries = [];
    this.unstable.offset = snap.metadata.index + 1;
  }

  /** The snapshot to send a lagging follower. */
  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  unstableEntries(): Entry[] {
    return this.unstable.entries;
  }

  /** Every entry currently in the log from firstIndex() on (tests and simulation checks only). */
  allEntries(): Entry[] {
    return this.entries(this.firstIndex(), Number.POSITIVE_INFINITY);
  }
}

export function entriesSize(entries: readonly Entry[]): number {
  let n = 0;
  for (const e of entries) n += entrySize(e);
  return n;
}
