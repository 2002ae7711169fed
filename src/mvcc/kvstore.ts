// The multi-version key-value store: every change creates a new revision; reads can look at any revision
// not yet compacted. The index (keys -> revision history) lives in memory and is rebuilt from RocksDB at
// startup; values live only in RocksDB, keyed by revision.
//
// All methods that change state take the caller's WriteBatch: the server adds its applied index to the
// same batch, so state and "how far we applied" are written in one atomic RocksDB write.
import * as zlib from 'node:zlib';
import { Backend, Prefix, WriteBatch, prefixed } from '../storage';
import { EtcdError, Errors } from '../util/errors';
import { KeyValue, decodeKeyValue, encodeKeyValue } from './keyvalue';
import { revId } from './keyIndex';
import { Revision, parseRevKey, readU64, revKey, revKeyFloor, writeU64 } from './revision';
import { IndexHit, TreeIndex } from './treeIndex';
import { metrics } from '../metrics';

export interface RangeOptions {
  /** 0 or negative: the current revision. */
  rev?: number;
  /** 0: no limit. */
  limit?: number;
  countOnly?: boolean;
  keysOnly?: boolean;
}

export interface RangeResult {
  kvs: KeyValue[];
  count: number;
  rev: number;
}

export const EventType = { PUT: 0, DELETE: 1 } as const;

export interface MvccEvent {
  type: 0 | 1;
  kv: KeyValue;
  prevKv?: KeyValue;
}

const META_CURRENT_REV = prefixed(Prefix.meta, 'mvcc/currentRev');
const META_SCHEDULED_COMPACT = prefixed(Prefix.meta, 'mvcc/scheduledCompactRev');
const META_FINISHED_COMPACT = prefixed(Prefix.meta, 'mvcc/finishedCompactRev');

function u64(value: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, value, 0);
  return b;
}

/** etcd's range end convention: empty = one key, "\0" = every key >= key. */
export function rangeEnd(end: Buffer | undefined): string | null | undefined {
  if (!end || end.length === 0) return undefined;
  if (end.length === 1 && end[0] === 0) return null;
  return end.toString('latin1');
}

export interface MvccLogger {
  info(obj: object, msg: string): void;
}

export class MvccStore {
  private index = new TreeIndex();
  /** The newest revision. */
  currentRev = 1;
  /** Reads below this revision fail with "compacted". */
  compactRev = 0;
  private compaction: Promise<void> = Promise.resolve();
  /**
   * Values committed by write txns but not yet in RocksDB: the server applies a batch of entries and
   * writes their state once, so a later entry of the same batch must read what an earlier one wrote.
   * Emptied by `flushed()` right after the batch is written.
   */
  private readonly unflushed = new Map<string, Buffer>();
  /** key (latin1) -> lease id of every live leased key, as found at startup; the lessor takes it once. */
  restoredLeaseAttachments: Map<string, string> | undefined;

  private constructor(private readonly backend: Backend) {}

  /** Loads metadata and rebuilds the in-memory index from every stored revision, logging progress. */
  static async open(backend: Backend, log?: MvccLogger): Promise<MvccStore> {
    const store = new MvccStore(backend);
    await store.load(log);
    return store;
  }

  /**
   * Rebuilds everything from the backend, whose content was replaced wholesale (a Raft snapshot from
   * the leader). Waits for a running compaction first; the new lease attachments are in
   * `restoredLeaseAttachments` as after open().
   */
  async reload(log?: MvccLogger): Promise<void> {
    await this.compaction.catch(() => undefined);
    this.index = new TreeIndex();
    this.unflushed.clear();
    await this.load(log);
  }

  private async load(log?: MvccLogger): Promise<void> {
    const backend = this.backend;
    const cur = backend.getSync(META_CURRENT_REV);
    this.currentRev = cur ? readU64(cur, 0) : 1;
    const sched = backend.getSync(META_SCHEDULED_COMPACT);
    const fin = backend.getSync(META_FINISHED_COMPACT);
    this.compactRev = sched ? readU64(sched, 0) : 0;
    let n = 0;
    const started = Date.now();
    const leased = new Map<string, string>();
    await backend.scan(Buffer.from([Prefix.kv]), Buffer.from([Prefix.kv + 1]), (key, value) => {
      const { rev, tombstone } = parseRevKey(key);
      const kv = decodeKeyValue(value);
      const k = kv.key.toString('latin1');
      this.index.restore(k, rev, tombstone);
      // Revisions arrive in order, so the last one seen per key says which lease holds it now.
      if (tombstone || kv.lease === '0') leased.delete(k);
      else leased.set(k, kv.lease);
      n++;
      if (log && n % 100000 === 0) log.info({ revisions: n }, 'rebuilding key index');
    });
    if (this.compactRev > 0) {
      this.index.compact(this.compactRev);
      const finished = fin ? readU64(fin, 0) : 0;
      if (finished < this.compactRev) {
        // A compaction was scheduled but its physical deletion did not finish before a restart.
        this.compaction = this.deleteCompacted(this.compactRev);
      }
    }
    this.restoredLeaseAttachments = leased;
    log?.info({ revisions: n, currentRevision: this.currentRev, compactRevision: this.compactRev, tookMs: Date.now() - started }, 'restored mvcc store');
  }

  private readValues(revs: Revision[], pending?: Map<string, Buffer>): KeyValue[] {
    const out: KeyValue[] = new Array(revs.length);
    const missing: number[] = [];
    const keys: Buffer[] = [];
    const overlay = this.unflushed.size > 0;
    for (let i = 0; i < revs.length; i++) {
      const id = pending || overlay ? revId(revs[i]) : '';
      const p = pending?.get(id) ?? (overlay ? this.unflushed.get(id) : undefined);
      if (p) out[i] = decodeKeyValue(p);
      else {
        missing.push(i);
        keys.push(revKey(revs[i]));
      }
    }
    const values = this.backend.getManySync(keys);
    for (let j = 0; j < missing.length; j++) {
      const v = values[j];
      if (!v) throw new Error(`mvcc: revision ${revs[missing[j]].main}_${revs[missing[j]].sub} is indexed but not stored`);
      out[missing[j]] = decodeKeyValue(v);
    }
    return out;
  }

  private checkRev(rev: number, current: number): number {
    const at = rev > 0 ? rev : current;
    if (at > current) throw Errors.futureRev();
    if (at < this.compactRev) throw Errors.compacted();
    return at;
  }

  rangeAt(key: Buffer, end: Buffer | undefined, opts: RangeOptions, current: number, pending?: Map<string, Buffer>): RangeResult {
    const at = this.checkRev(opts.rev ?? 0, current);
    const limit = opts.limit && opts.limit > 0 ? opts.limit : Infinity;
    const hits: IndexHit[] = [];
    let count = 0;
    this.index.range(key.toString('latin1'), rangeEnd(end), at, (hit) => {
      count++;
      if (!opts.countOnly && hits.length < limit) hits.push(hit);
    });
    let kvs: KeyValue[];
    if (opts.countOnly) kvs = [];
    else if (opts.keysOnly) {
      // keys-only needs no value: answer from the index alone. The lease is not in the index, so read it.
      kvs = this.readValues(
        hits.map((h) => h.modified),
        pending,
      ).map((kv) => ({ ...kv, value: Buffer.alloc(0) }));
    } else kvs = this.readValues(hits.map((h) => h.modified), pending);
    return { kvs, count, rev: current };
  }

  range(key: Buffer, end: Buffer | undefined, opts: RangeOptions = {}): RangeResult {
    metrics.mvccRange.inc();
    return this.rangeAt(key, end, opts, this.currentRev);
  }

  beginWrite(): WriteTxn {
    return new WriteTxn(this, this.index);
  }

  /** @internal used by WriteTxn */
  _readValues(revs: Revision[], pending: Map<string, Buffer>): KeyValue[] {
    return this.readValues(revs, pending);
  }

  /**
   * Compacts history below `rev`: the index is compacted now (reads below rev fail from here on) and the
   * change is recorded in `batch`; the stored revisions are deleted in the background. `done` resolves
   * when they are gone.
   */
  compact(rev: number, batch: WriteBatch): { done: Promise<void> } {
    if (rev <= this.compactRev) throw Errors.compacted();
    if (rev > this.currentRev) throw Errors.futureRev();
    this.compactRev = rev;
    batch.put(META_SCHEDULED_COMPACT, u64(rev));
    const keep = this.index.compact(rev);
    const previous = this.compaction;
    this.compaction = previous.then(() => this.deleteCompacted(rev, keep));
    return { done: this.compaction };
  }

  /** Resolves once every scheduled physical compaction has finished. */
  compactionsDone(): Promise<void> {
    return this.compaction;
  }

  private async deleteCompacted(rev: number, keep?: Set<string>): Promise<void> {
    const keepIds = keep ?? this.keepSetFromIndex(rev);
    let batch = new WriteBatch();
    const flush = () => {
      if (batch.size > 0) this.backend.write(batch, false);
      batch = new WriteBatch();
    };
    await this.backend.scan(revKeyFloor(0), revKeyFloor(rev + 1), (key) => {
      const { rev: r } = parseRevKey(key);
      if (!keepIds.has(revId(r))) batch.del(key);
      if (batch.size >= 10000) flush();
    });
    batch.put(META_FINISHED_COMPACT, u64(rev));
    flush();
  }

  private keepSetFromIndex(rev: number): Set<string> {
    // After a restart the index has already been compacted: what it still holds at or below rev is
    // exactly what must stay.
    return this.index.compact(rev);
  }

  /** crc32 of every stored revision up to `rev` (etcd's HashKV contract: equal state, equal hash). */
  async hashKV(rev: number): Promise<{ hash: number; compactRev: number; hashRev: number }> {
    await this.compaction;
    const at = this.checkRev(rev, this.currentRev);
    let hash = 0;
    await this.backend.scan(revKeyFloor(0), revKeyFloor(at + 1), (key, value) => {
      hash = zlib.crc32(key, hash);
      hash = zlib.crc32(value, hash);
    });
    return { hash, compactRev: this.compactRev, hashRev: at };
  }

  /** crc32 of the stored key space (revisions and leases), for Maintenance.Hash. */
  async hashAll(): Promise<number> {
    await this.compaction;
    let hash = 0;
    const visit = (key: Buffer, value: Buffer) => {
      hash = zlib.crc32(key, hash);
      hash = zlib.crc32(value, hash);
    };
    await this.backend.scan(Buffer.from([Prefix.kv]), Buffer.from([Prefix.kv + 1]), visit);
    await this.backend.scan(Buffer.from([Prefix.lease]), Buffer.from([Prefix.lease + 1]), visit);
    return hash;
  }

  /** Number of keys live at the current revision (etcd_debugging_mvcc_keys_total). */
  keysTotal(): number {
    return this.index.liveKeys();
  }

  /** @internal used by WriteTxn */
  _setCurrent(rev: number, batch: WriteBatch, pending: Map<string, Buffer>): void {
    this.currentRev = rev;
    batch.put(META_CURRENT_REV, u64(rev));
    for (const [id, value] of pending) this.unflushed.set(id, value);
  }

  /** The caller has written every batch it passed to commit/compact: values are now readable from disk. */
  flushed(): void {
    this.unflushed.clear();
  }
}

/**
 * One write transaction: all its changes share the main revision currentRev+1 and get increasing sub
 * revisions. Reads through it see its own earlier writes. Nothing is visible to others until `commit`.
 */
export class WriteTxn {
  readonly main: number;
  private sub = 0;
  private readonly pending = new Map<string, Buffer>();
  private readonly ops: { key: Buffer; value: Buffer }[] = [];
  readonly events: MvccEvent[] = [];

  constructor(
    private readonly store: MvccStore,
    private readonly index: TreeIndex,
  ) {
    this.main = store.currentRev + 1;
  }

  /** The revision reads inside this txn see: its own if it has written, else the store's. */
  private readRev(): number {
    return this.sub > 0 ? this.main : this.store.currentRev;
  }

  get changed(): boolean {
    return this.sub > 0;
  }

  /** The revision a response header reports after this txn. */
  get rev(): number {
    return this.readRev();
  }

  range(key: Buffer, end: Buffer | undefined, opts: RangeOptions = {}): RangeResult {
    return this.store.rangeAt(key, end, opts, this.readRev(), this.pending);
  }

  /** The current KeyValue of one key (with value), or undefined. */
  get(key: Buffer): KeyValue | undefined {
    return this.range(key, undefined).kvs[0];
  }

  put(key: Buffer, value: Buffer, lease: string, prev?: KeyValue): KeyValue {
    const rev = { main: this.main, sub: this.sub++ };
    const k = key.toString('latin1');
    const before = prev ?? this.get(key);
    const kv: KeyValue = {
      key,
      value,
      lease,
      create_revision: before ? before.create_revision : rev.main,
      mod_revision: rev.main,
      version: before ? before.version + 1 : 1,
    };
    const encoded = encodeKeyValue(kv);
    this.index.put(k, rev);
    this.pending.set(revId(rev), encoded);
    this.ops.push({ key: revKey(rev), value: encoded });
    this.events.push({ type: EventType.PUT, kv, prevKv: before });
    metrics.mvccPut.inc();
    return kv;
  }

  /** Deletes every live key in the range; returns what was deleted. */
  deleteRange(key: Buffer, end: Buffer | undefined): KeyValue[] {
    metrics.mvccDelete.inc();
    const existing = this.range(key, end).kvs;
    for (const prev of existing) {
      const rev = { main: this.main, sub: this.sub++ };
      const tomb: KeyValue = { key: prev.key, value: Buffer.alloc(0), lease: '0', create_revision: 0, mod_revision: rev.main, version: 0 };
      this.index.tombstone(prev.key.toString('latin1'), rev);
      this.ops.push({ key: revKey(rev, true), value: encodeKeyValue(tomb) });
      this.events.push({ type: EventType.DELETE, kv: tomb, prevKv: prev });
    }
    return existing;
  }

  /** Adds this txn's changes to `batch` and makes them the store's current state. */
  commit(batch: WriteBatch): void {
    if (this.sub === 0) return;
    for (const op of this.ops) batch.put(op.key, op.value);
    this.store._setCurrent(this.main, batch, this.pending);
  }
}

export { EtcdError };
