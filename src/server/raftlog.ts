// The member's durable Raft log (etcd's WAL role) on its own RocksDB: log entries keyed by index, the hard
// state {term, vote, commit}, and the metadata of the newest snapshot (the point the log was compacted
// to, with the configuration as of that point). Raft reads a MemoryStorage mirror of it; every Ready's
// entries, hard state and received snapshot go here first, in one write batch, fsynced when Raft says so.
import { Backend, Prefix, WriteBatch, prefixed, u64be } from '../storage';
import { ConfState, Entry, EntryType, HardState, MemoryStorage, SnapshotMetadata } from '../raft';

const KEYS = {
  format: prefixed(Prefix.meta, 'wal/format'),
  hardState: prefixed(Prefix.meta, 'raft/hardstate'),
  snapshot: prefixed(Prefix.meta, 'raft/snapshot'),
};
/** Version 2: entries carry their type (1 was the single-member log, before Raft). */
const FORMAT = 2;

const logKey = (index: number): Buffer => prefixed(Prefix.log, u64be(index));
const LOG_END = Buffer.from([Prefix.log + 1]);

export function encodeEntry(e: Entry): Buffer {
  const head = Buffer.alloc(9);
  head.writeBigUInt64BE(BigInt(e.term), 0);
  head.writeUInt8(e.type, 8);
  return Buffer.concat([head, e.data]);
}

export function decodeEntry(index: number, v: Buffer): Entry {
  if (v.length < 9) throw new Error(`log entry ${index} is truncated (${v.length} bytes)`);
  return { index, term: Number(v.readBigUInt64BE(0)), type: v.readUInt8(8) as EntryType, data: v.subarray(9) };
}

function encodeHardState(hs: HardState): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64BE(BigInt(hs.term), 0);
  b.writeBigUInt64BE(hs.vote, 8);
  b.writeBigUInt64BE(BigInt(hs.commit), 16);
  return b;
}

function decodeHardState(b: Buffer): HardState {
  return { term: Number(b.readBigUInt64BE(0)), vote: b.readBigUInt64BE(8), commit: Number(b.readBigUInt64BE(16)) };
}

function encodeSnapshotMeta(m: SnapshotMetadata): Buffer {
  return Buffer.from(
    JSON.stringify({
      index: m.index,
      term: m.term,
      voters: m.confState.voters.map(String),
      learners: m.confState.learners.map(String),
    }),
  );
}

function decodeSnapshotMeta(b: Buffer): SnapshotMetadata {
  const raw = JSON.parse(b.toString('utf8')) as { index: number; term: number; voters: string[]; learners: string[] };
  return { index: raw.index, term: raw.term, confState: { voters: raw.voters.map(BigInt), learners: raw.learners.map(BigInt) } };
}

export interface LoadedLog {
  storage: MemoryStorage;
  hardState: HardState;
  snapshot: SnapshotMetadata;
  /** true when the log holds nothing yet (a brand-new member) */
  empty: boolean;
}

export class RaftLog {
  constructor(readonly wal: Backend) {}

  /** Reads the whole durable log into a MemoryStorage for Raft. */
  async load(): Promise<LoadedLog> {
    const format = this.wal.getSync(KEYS.format);
    const storage = new MemoryStorage();
    const hsRaw = this.wal.getSync(KEYS.hardState);
    const snapRaw = this.wal.getSync(KEYS.snapshot);
    const snapshot: SnapshotMetadata = snapRaw ? decodeSnapshotMeta(snapRaw) : { index: 0, term: 0, confState: { voters: [], learners: [] } };
    let any = false;
    const entries: Entry[] = [];
    await this.wal.scan(logKey(snapshot.index + 1), LOG_END, (k, v) => {
      any = true;
      entries.push(decodeEntry(Number(k.readBigUInt64BE(1)), v));
    });
    if (!format && (any || hsRaw)) {
      throw new Error('the log in this data dir was written by a pre-release single-member format; start with a new --data-dir');
    }
    if (snapshot.index > 0) storage.applySnapshot({ metadata: snapshot, data: new Uint8Array(0) });
    // entries must be contiguous after the snapshot: a gap means a damaged log
    for (let i = 0; i < entries.length; i++) {
      if (entries[i].index !== snapshot.index + 1 + i) {
        throw new Error(`the log is damaged: expected entry ${snapshot.index + 1 + i}, found ${entries[i].index}`);
      }
    }
    storage.append(entries);
    const hardState = hsRaw ? decodeHardState(hsRaw) : { term: 0, vote: 0n, commit: 0 };
    // The commit index never points past the stored log nor before the snapshot.
    hardState.commit = Math.max(snapshot.index, Math.min(hardState.commit, storage.lastIndex()));
    storage.setHardState(hardState);
    return { storage, hardState, snapshot, empty: !any && !hsRaw && snapshot.index === 0 };
  }

  /**
   * Persists one Ready's worth: a received snapshot's metadata (dropping every older entry), appended
   * entries (dropping any stored suffix they replace), and the hard state — one batch, fsynced if `sync`.
   */
  async save(opts: {
    snapshot?: SnapshotMetadata;
    entries: Entry[];
    hardState?: HardState;
    sync: boolean;
    /** the stored log's bounds before this Ready */
    firstIndex: number;
    lastIndex: number;
  }): Promise<void> {
    const batch = new WriteBatch();
    batch.put(KEYS.format, u64be(FORMAT));
    const newLast = opts.entries.length > 0 ? opts.entries[opts.entries.length - 1].index : undefined;
    if (opts.snapshot) {
      // A received snapshot replaces the whole log; stale entries after it must not survive a restart.
      batch.put(KEYS.snapshot, encodeSnapshotMeta(opts.snapshot));
      for (let i = opts.firstIndex; i <= opts.lastIndex; i++) batch.del(logKey(i));
    } else if (newLast !== undefined) {
      // A conflicting suffix beyond the new last entry goes in the same write, or a crash could leave
      // entries of an old term after entries of a new one.
      for (let i = newLast + 1; i <= opts.lastIndex; i++) batch.del(logKey(i));
    }
    for (const e of opts.entries) batch.put(logKey(e.index), encodeEntry(e));
    if (opts.hardState) batch.put(KEYS.hardState, encodeHardState(opts.hardState));
    this.wal.write(batch, opts.sync);
  }

  /** Records a snapshot of the local state at `meta.index` and drops log entries up to `compactTo`. */
  async compact(meta: SnapshotMetadata, compactTo: number): Promise<void> {
    const batch = new WriteBatch();
    batch.put(KEYS.snapshot, encodeSnapshotMeta(meta));
    this.wal.write(batch, true);
    await this.wal.deleteRange(logKey(0), logKey(compactTo + 1));
  }

  /** Rewrites the hard state (force-new-cluster) and appends entries, durably. */
  forceWrite(entries: Entry[], hardState: HardState, dropAfter: number, lastIndex: number): void {
    const batch = new WriteBatch();
    batch.put(KEYS.format, u64be(FORMAT));
    for (let i = dropAfter + 1; i <= lastIndex; i++) batch.del(logKey(i));
    for (const e of entries) batch.put(logKey(e.index), encodeEntry(e));
    batch.put(KEYS.hardState, encodeHardState(hardState));
    this.wal.write(batch, true);
  }
}

export function confStateEqual(a: ConfState, b: ConfState): boolean {
  const eq = (x: bigint[], y: bigint[]) => x.length === y.length && x.every((v, i) => v === y[i]);
  return eq(a.voters, b.voters) && eq(a.learners, b.learners);
}
