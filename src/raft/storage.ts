// The Storage contract between the Raft core and the driver, and an in-memory implementation.
//
// Raft only reads storage (synchronously, like etcd's); the driver writes it while handling a Ready: it
// appends entries, sets the hard state, applies received snapshots, and — on its own schedule — creates
// snapshots of its state machine and compacts the log behind them. A real server keeps the log tail in a
// MemoryStorage (fed from its durable log on restart) exactly like etcd keeps raft.MemoryStorage next to
// its WAL; the simulation uses a MemoryStorage as each node's "disk".
//
// Entries are immutable values: storage keeps the references it is given and hands them back.
import { CompactedError, RaftError, SnapOutOfDateError, UnavailableError } from './errors';
import { ConfState, Entry, EntryType, EMPTY_BYTES, HardState, Snapshot, entrySize } from './types';

export interface Storage {
  /** The persisted hard state and the configuration as of the stored snapshot. */
  initialState(): { hardState: HardState; confState: ConfState };
  /**
   * Entries in [lo, hi), at most `maxBytes` in total (but always at least one entry if any is in range).
   * Throws CompactedError if lo is below firstIndex(), UnavailableError if hi - 1 is beyond lastIndex().
   */
  entries(lo: number, hi: number, maxBytes?: number): Entry[];
  /**
   * The term of the entry at `index`, for index in [firstIndex() - 1, lastIndex()] (the entry just before
   * the first one is the snapshot's last included entry). Throws CompactedError / UnavailableError outside.
   */
  term(index: number): number;
  /** Index of the first entry still available (snapshot index + 1). */
  firstIndex(): number;
  lastIndex(): number;
  /** The most recent snapshot; may throw SnapshotTemporarilyUnavailableError while one is being made. */
  snapshot(): Snapshot;
}

function emptyConfState(): ConfState {
  return { voters: [], learners: [] };
}

export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: 0n, commit: 0 };
  private snap: Snapshot = { metadata: { index: 0, term: 0, confState: emptyConfState() }, data: EMPTY_BYTES };
  /** ents[0] is a placeholder carrying the snapshot's index and term; real entries follow. */
  private ents: Entry[] = [{ index: 0, term: 0, type: EntryType.Normal, data: EMPTY_BYTES }];

  /**
   * `confState`: a configuration to report before any snapshot exists (tests start nodes this way; a new
   * cluster normally uses RawNode.bootstrap, which puts the initial membership in the log instead).
   */
  constructor(confState?: ConfState) {
    if (confState !== undefined) this.snap = { ...this.snap, metadata: { ...this.snap.metadata, confState: cloneConfState(confState) } };
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: cloneConfState(this.snap.metadata.confState) };
  }

  hardStateValue(): HardState {
    return { ...this.hardState };
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  private offset(): number {
    return this.ents[0].index;
  }

  firstIndex(): number {
    return this.offset() + 1;
  }

  lastIndex(): number {
    return this.offset() + this.ents.length - 1;
  }

  term(index: number): number {
    const offset = this.offset();
    if (index < offset) throw new CompactedError();
    if (index - offset >= this.ents.length) throw new UnavailableError();
    return this.ents[index - offset].term;
  }

  entries(lo: number, hi: number, maxBytes = Number.POSITIVE_INFINITY): Entry[] {
    const offset = this.offset();
    if (lo <= offset) throw new CompactedError();
    if (hi > this.lastIndex() + 1) throw new UnavailableError();
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxBytes);
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replace everything with a received snapshot (the log restarts after it). */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index <= this.snap.metadata.index) throw new SnapOutOfDateError();
    this.snap = snap;
    this.ents = [{ index: snap.metadata.index, term: snap.metadata.term, type: EntryType.Normal, data: EMPTY_BYTES }];
  }

  /**
   * Record a snapshot of the application's state as of `index` (which must be applied, hence stored and
   * committed). Does not drop entries: call `compact` for that, possibly keeping a tail for slow followers.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) throw new SnapOutOfDateError();
    if (index > this.lastIndex()) throw new RaftError('snapshot_out_of_bound', `snapshot ${index} is out of bound lastindex(${this.lastIndex()})`);
    this.snap = { metadata: { index, term: this.term(index), confState: cloneConfState(confState) }, data };
    return this.snap;
  }

  /**
   * Discard entries up to and including `compactIndex`. It must not pass the latest snapshot: a follower
   * that needs a discarded entry is sent that snapshot instead, which must cover everything discarded.
   */
  compact(compactIndex: number): void {
    const offset = this.offset();
    if (compactIndex <= offset) throw new CompactedError();
    if (compactIndex > this.snap.metadata.index) {
      throw new RaftError('compact_beyond_snapshot', `compact ${compactIndex} is beyond the latest snapshot (${this.snap.metadata.index})`);
    }
    if (compactIndex > this.lastIndex()) throw new RaftError('compact_out_of_bound', `compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`);
    const i = compactIndex - offset;
    const head: Entry = { index: this.ents[i].index, term: this.ents[i].term, type: EntryType.Normal, data: EMPTY_BYTES };
    this.ents = [head, ...this.ents.slice(i + 1)];
  }

  /**
   * Append entries, first dropping any stored entries at or after the first new index (a new leader's log
   * wins over an uncommitted suffix). Entries already compacted away are skipped.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[entries.length - 1].index;
    if (last < first) return;
    const fresh = first > entries[0].index ? entries.slice(first - entries[0].index) : entries;
    const offset = fresh[0].index - this.offset();
    if (offset > this.ents.length) {
      throw new RaftError('missing_log_entry', `missing log entry [last: ${this.lastIndex()}, append at: ${fresh[0].index}]`);
    }
    this.ents = this.ents.slice(0, offset).concat(fresh);
  }

  /** A deep-enough copy (entries and snapshots are immutable and shared) — the simulation's "disk image". */
  clone(): MemoryStorage {
    const copy = new MemoryStorage();
    copy.hardState = { ...this.hardState };
    copy.snap = this.snap;
    copy.ents = this.ents.slice();
    return copy;
  }
}

export function cloneConfState(cs: ConfState): ConfState {
  return { voters: cs.voters.slice(), learners: cs.learners.slice() };
}

/** The longest prefix of `entries` within maxBytes, but never empty if entries is not. */
export function limitSize(entries: Entry[], maxBytes: number): Entry[] {
  if (entries.length === 0 || maxBytes === Number.POSITIVE_INFINITY) return entries;
  let size = entrySize(entries[0]);
  let n = 1;
  for (; n < entries.length; n++) {
    size += entrySize(entries[n]);
    if (size > maxBytes) break;
  }
  return n === entries.length ? entries : entries.slice(0, n);
}
