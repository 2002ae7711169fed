// The one RocksDB instance of a member. Every concern (raft log, metadata, MVCC revisions, leases, ...)
// lives under its own one-byte key prefix, so a single atomic batch can change several concerns at once:
// that is how the applied index is stored atomically with the state it produced.
//
// The binding's writes and `getManySync` run on the calling thread. That is deliberate here: the apply
// loop and reads are then naturally serialised with no awaits in between, so no reader can observe a
// half-applied entry.
//
// On disk a member's database is a "generation" directory next to the path the server names (say
// `member/rocksdb`): generation 0 is that path itself (the original layout), generation n > 0 is
// `member/rocksdb.gen-<n>`, and the small pointer file `member/rocksdb.current` names the live one (no
// pointer: generation 0). Defragment writes the live data into the next generation, makes it durable,
// replaces the pointer atomically (write temp, fsync, rename, fsync the folder) and only then switches;
// whatever generation the pointer does not name is garbage, removed at the next open. So a crash at any
// point leaves either the old generation (pointer not yet replaced) or the complete new one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RocksLevel } from '@nxtedition/rocksdb';

export const Prefix = {
  /** raft log entries: 'L' + index (8 bytes BE) */
  log: 0x4c,
  /** member metadata: 'M' + name */
  meta: 0x4d,
  /** MVCC revisions: 'K' + main (8 BE) + sub (8 BE) [+ 't' for a tombstone] */
  kv: 0x4b,
  /** leases: 'E' + id (8 BE) */
  lease: 0x45,
} as const;

export interface BatchOp {
  type: 'put' | 'del';
  key: Buffer;
  value?: Buffer;
}

export class WriteBatch {
  readonly ops: BatchOp[] = [];
  put(key: Buffer, value: Buffer): void {
    this.ops.push({ type: 'put', key, value });
  }
  del(key: Buffer): void {
    this.ops.push({ type: 'del', key });
  }
  get size(): number {
    return this.ops.length;
  }
}

const NO_OPTIONS = {};

/** The binding's synchronous batch surface (see the file header for why it is used directly). */
interface RawBatch {
  _put(key: Buffer, value: Buffer, options: object): void;
  _del(key: Buffer, options: object): void;
  _writeSync(options: { sync: boolean }): void;
  _closeSync(): void;
}

interface RawDb {
  _chainedBatch(): RawBatch;
  detachResource(resource: unknown): void;
}

interface RawIterator {
  nextv(n: number, cb?: undefined): Promise<Buffer[][]>;
  seek(target: Buffer): void;
  close(): Promise<void>;
  /** The binding's synchronous read: a flat [key, value, key, value, ...] array. */
  _nextvSync(n: number, options: object): { rows: Buffer[]; finished: boolean };
  _closeSync(): void;
}

/** Bounds the bytes one iterator step may buffer (the binding's default is 2 GiB). */
const ITERATOR_OPTIONS = { highWaterMarkBytes: 4 * 1024 * 1024 };
/** Copy batches of a defragmentation are written once they hold this many bytes. */
const DEFRAG_BATCH_BYTES = 8 * 1024 * 1024;

const GENERATION_SUFFIX = '.gen-';
const POINTER_SUFFIX = '.current';

/** Where the generations of the database named `dir` live, and which one is live. */
export interface DbLocation {
  /** The folder holding `dir`, its generations and the pointer file. */
  parent: string;
  /** The base name of `dir` (e.g. "rocksdb"). */
  base: string;
  /** The live generation's folder. */
  current: string;
  generation: number;
}

function generationDir(parent: string, base: string, generation: number): string {
  return path.join(parent, generation === 0 ? base : `${base}${GENERATION_SUFFIX}${generation}`);
}

/** Reads the pointer file of the database named `dir` (no pointer: generation 0, the path itself). */
export function locateDb(dir: string): DbLocation {
  const resolved = path.resolve(dir);
  const parent = path.dirname(resolved);
  const base = path.basename(resolved);
  const pointer = path.join(parent, base + POINTER_SUFFIX);
  let named: string;
  try {
    named = fs.readFileSync(pointer, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { parent, base, current: resolved, generation: 0 };
    throw err;
  }
  let generation = -1;
  if (named === base) generation = 0;
  else if (named.startsWith(base + GENERATION_SUFFIX) && /^[1-9][0-9]*$/.test(named.slice(base.length + GENERATION_SUFFIX.length))) {
    generation = Number(named.slice(base.length + GENERATION_SUFFIX.length));
  }
  if (generation < 0) throw new Error(`database pointer ${pointer} names ${JSON.stringify(named)}, not a generation of ${base}`);
  const current = generationDir(parent, base, generation);
  if (!fs.existsSync(current)) throw new Error(`database pointer ${pointer} names ${named}, which does not exist`);
  return { parent, base, current, generation };
}

/** fsyncs a directory, so a rename or a new file in it is durable. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Replaces the pointer file atomically and durably: afterwards (even after a crash) it names `name`. */
function writePointer(loc: DbLocation, name: string): void {
  const pointer = path.join(loc.parent, loc.base + POINTER_SUFFIX);
  const tmp = `${pointer}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, `${name}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, pointer);
  fsyncDir(loc.parent);
}

export interface DefragmentResult {
  /** Bytes on disk of the database before and after. */
  sizeBefore: number;
  sizeAfter: number;
  /** Key/value pairs copied. */
  keys: number;
  generation: number;
  tookMs: number;
}

export interface BackendLogger {
  info(obj: object, msg: string): void;
}

/** Opens an iterator (and with it RocksDB's implicit snapshot) now, on the calling thread. */
function openIterator(db: RocksLevel<Buffer, Buffer>, options: object): RawIterator {
  return (db as unknown as { iterator(options: object): RawIterator }).iterator(options);
}

function newRocks(dir: string): RocksLevel<Buffer, Buffer> {
  return new RocksLevel(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
}

export class Backend {
  /** Replaced (on the calling thread, between two synchronous calls) only by defragment(). */
  private db: RocksLevel<Buffer, Buffer>;
  private location: DbLocation;
  private closed = false;
  /** Asynchronous operations (iterators) running on `db`: a defragmentation waits for them. */
  private inflight = 0;
  private onIdle: (() => void) | undefined;
  /** Set while a defragmentation needs `db` to itself: new asynchronous operations wait for it. */
  private gate: Promise<void> | undefined;
  private defragging: Promise<DefragmentResult> | undefined;

  /** `dir` is the database's name (e.g. `<data-dir>/member/rocksdb`); see `currentDir` for its files. */
  private constructor(
    readonly dir: string,
    location: DbLocation,
  ) {
    this.location = location;
    this.db = newRocks(location.current);
  }

  /** Opens (creating if needed) the RocksDB database named `dir` (its live generation, see the header). */
  static async open(dir: string): Promise<Backend> {
    fs.mkdirSync(path.dirname(path.resolve(dir)), { recursive: true });
    const location = locateDb(dir);
    fs.mkdirSync(location.current, { recursive: true });
    const backend = new Backend(dir, location);
    await backend.db.open();
    // Only now that RocksDB holds the live generation's lock: a second process on the same data dir
    // fails above instead of deleting what the first one is writing.
    backend.removeStaleGenerations();
    return backend;
  }

  /** The folder of the live generation (where the RocksDB files are). */
  get currentDir(): string {
    return this.location.current;
  }

  get generation(): number {
    return this.location.generation;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.defragging?.catch(() => undefined);
    await this.db.close();
  }

  /** Removes every generation of this database except the live one, and a half-written pointer. */
  private removeStaleGenerations(): void {
    const { parent, base, current } = this.location;
    for (const name of fs.readdirSync(parent)) {
      const full = path.join(parent, name);
      const isGeneration = name === base || (name.startsWith(base + GENERATION_SUFFIX) && /^[0-9]+$/.test(name.slice(base.length + GENERATION_SUFFIX.length)));
      if ((isGeneration && full !== current) || name === base + POINTER_SUFFIX + '.tmp') {
        fs.rmSync(full, { recursive: true, force: true });
      }
    }
  }

  /** Waits while a defragmentation holds the database, then counts one more asynchronous operation. */
  private async enter(): Promise<void> {
    while (this.gate) await this.gate;
    this.inflight++;
  }

  private leave(): void {
    this.inflight--;
    if (this.inflight === 0 && this.onIdle) {
      const idle = this.onIdle;
      this.onIdle = undefined;
      idle();
    }
  }

  /**
   * Writes a batch atomically. With `sync`, returns only after RocksDB's write-ahead log is fsynced:
   * the write then survives a crash of the process and of the machine. A sync write also makes every
   * earlier non-sync write durable (the log is sequential).
   */
  write(batch: WriteBatch, sync: boolean): void {
    if (batch.size === 0 && !sync) return;
    // Straight to the binding's native batch: the abstract-level wrapper would copy every operation into
    // a JS array and keep the batch registered with the database until closed.
    const db = this.db as unknown as RawDb;
    const chained = db._chainedBatch();
    try {
      for (const op of batch.ops) {
        if (op.type === 'put') chained._put(op.key, op.value as Buffer, NO_OPTIONS);
        else chained._del(op.key, NO_OPTIONS);
      }
      chained._writeSync({ sync });
    } finally {
      chained._closeSync();
      db.detachResource(chained);
    }
  }

  getSync(key: Buffer): Buffer | undefined {
    return this.getManySync([key])[0];
  }

  getManySync(keys: Buffer[]): (Buffer | undefined)[] {
    if (keys.length === 0) return [];
    return (this.db as unknown as { _getManySync(k: Buffer[], o: object): (Buffer | undefined)[] })._getManySync(keys, {});
  }

  /** Iterates [gte, lt) in key order, in chunks; the callback returns false to stop. */
  async scan(gte: Buffer, lt: Buffer, visit: (key: Buffer, value: Buffer) => boolean | void): Promise<void> {
    // No await before the iterator exists unless a defragmentation is waiting: the scan sees the state
    // as of this call, as it always has.
    if (this.gate) await this.enter();
    else this.inflight++;
    try {
      const it = openIterator(this.db, { gte, lt, ...ITERATOR_OPTIONS });
      try {
        for (;;) {
          const chunk = await it.nextv(1000);
          if (chunk.length === 0) return;
          for (const [key, value] of chunk) {
            if (visit(key, value) === false) return;
          }
        }
      } finally {
        await it.close();
      }
    } finally {
      this.leave();
    }
  }

  /**
   * Visits every key/value pair of the database, in key order, as of the moment of this call, skipping
   * the ranges in `skip` ([gte, lt) each, sorted). One RocksDB iterator does the whole walk and an
   * iterator reads from the implicit snapshot taken when it is created (synchronously, here), so writes
   * made while the walk runs (even while `visit` awaits) are not seen: the result is point-in-time.
   * `visit` may be async; the next chunk is read once it resolves.
   */
  async consistentScan(visit: (key: Buffer, value: Buffer) => void | Promise<void>, skip: { gte: Buffer; lt: Buffer }[] = []): Promise<void> {
    if (this.gate) await this.enter();
    else this.inflight++;
    try {
      const it = openIterator(this.db, ITERATOR_OPTIONS);
      try {
        let next = 0;
        for (;;) {
          const chunk = await it.nextv(1000);
          if (chunk.length === 0) return;
          let sought = false;
          for (const [key, value] of chunk) {
            while (next < skip.length && Buffer.compare(key, skip[next].lt) >= 0) next++;
            if (next < skip.length && Buffer.compare(key, skip[next].gte) >= 0) {
              // Inside a skipped range: continue from its end (same iterator, same snapshot).
              it.seek(skip[next].lt);
              next++;
              sought = true;
              break;
            }
            const pending = visit(key, value);
            if (pending) await pending;
          }
          if (sought) continue;
        }
      } finally {
        await it.close();
      }
    } finally {
      this.leave();
    }
  }

  /** Deletes every key in [gte, lt) (a RocksDB range tombstone). */
  async deleteRange(gte: Buffer, lt: Buffer): Promise<void> {
    if (this.gate) await this.enter();
    else this.inflight++;
    try {
      await this.db.clear({ gte, lt });
    } finally {
      this.leave();
    }
  }

  /**
   * Rewrites the live data into a fresh RocksDB (the next generation) and switches to it, releasing the
   * space that deleted and overwritten data still occupies (RocksDB only drops it when compaction gets
   * to it, and the binding cannot ask for a compaction). Concurrent calls run one after the other.
   *
   * The copy and the switch run synchronously on the calling thread: every read and write of this
   * backend also runs there (see the file header), so none can see a half-copied or half-switched
   * database, and none can be lost between the copy and the switch. Requests wait meanwhile, as etcd's
   * defragmentation blocks them. Before that, it waits for running scans to finish and holds new ones.
   */
  defragment(log?: BackendLogger): Promise<DefragmentResult> {
    const previous = this.defragging?.catch(() => undefined) ?? Promise.resolve();
    const run = previous.then(() => this.defragmentNow(log));
    this.defragging = run;
    return run;
  }

  private async defragmentNow(log?: BackendLogger): Promise<DefragmentResult> {
    const started = Date.now();
    let sizeBefore = 0;
    let keys = 0;
    const generation = await this.switchGeneration((fresh) => {
      sizeBefore = this.sizeOnDisk();
      log?.info({ 'db-size-bytes': sizeBefore, from: this.location.current }, 'defragmenting: copying live data into a new database');
      keys = this.copyAllSync(fresh, log);
    });
    const result = { sizeBefore, sizeAfter: this.sizeOnDisk(), keys, generation, tookMs: Date.now() - started };
    log?.info({ 'db-size-bytes-before': result.sizeBefore, 'db-size-bytes-after': result.sizeAfter, keys, generation, 'took-ms': result.tookMs }, 'defragmented database');
    return result;
  }

  /**
   * Replaces the whole content with the pairs `fill` hands to `put` (a leader's state arriving as a Raft
   * snapshot): written into a fresh generation, fsynced, then switched to exactly as defragment switches.
   * `fill` runs synchronously; if it throws, nothing changes.
   */
  replaceContent(fill: (put: (key: Buffer, value: Buffer) => void) => void): Promise<number> {
    const previous = this.defragging?.catch(() => undefined) ?? Promise.resolve();
    const run = previous.then(() =>
      this.switchGeneration((fresh) => {
        const writer = new BatchedWriter(fresh as unknown as RawDb);
        try {
          fill((key, value) => writer.put(key, value));
        } catch (err) {
          writer.abort();
          throw err;
        }
        writer.finish();
      }),
    );
    this.defragging = run.then(() => ({ sizeBefore: 0, sizeAfter: 0, keys: 0, generation: this.generation, tookMs: 0 }));
    return run;
  }

  /**
   * Opens the next generation, waits for running scans and holds new ones, runs `fill` on it (synchronous:
   * nothing else touches this backend meanwhile), then points the database at it and drops the old one.
   */
  private async switchGeneration(fill: (fresh: RocksLevel<Buffer, Buffer>) => void): Promise<number> {
    if (this.closed) throw new Error('backend is closed');
    const from = this.location;
    const generation = from.generation + 1;
    const to: DbLocation = { ...from, current: generationDir(from.parent, from.base, generation), generation };
    fs.rmSync(to.current, { recursive: true, force: true });
    const fresh = newRocks(to.current);
    await fresh.open({ createIfMissing: true, errorIfExists: true });
    let switched = false;
    let releaseGate: () => void = () => undefined;
    this.gate = new Promise<void>((resolve) => (releaseGate = resolve));
    try {
      if (this.inflight > 0) await new Promise<void>((resolve) => (this.onIdle = resolve));
      if (this.closed) throw new Error('backend is closed');
      // ---- synchronous from here to the switch: nothing else runs on this backend meanwhile ----
      fill(fresh);
      writePointer(to, path.basename(to.current));
      const old = this.db;
      this.db = fresh;
      this.location = to;
      switched = true;
      // ---- end of the synchronous part ----
      this.gate = undefined;
      releaseGate();
      await old.close();
      fs.rmSync(from.current, { recursive: true, force: true });
      return generation;
    } finally {
      if (this.gate) {
        this.gate = undefined;
        releaseGate();
      }
      if (!switched) {
        await fresh.close().catch(() => undefined);
        fs.rmSync(to.current, { recursive: true, force: true });
      }
    }
  }

  /** Copies every pair of the live database into `target`; the last write is fsynced. Synchronous. */
  private copyAllSync(target: RocksLevel<Buffer, Buffer>, log?: BackendLogger): number {
    const source = this.db as unknown as RawDb;
    const sink = target as unknown as RawDb;
    const it = openIterator(this.db, ITERATOR_OPTIONS);
    let keys = 0;
    let lastLog = Date.now();
    try {
      const writer = new BatchedWriter(sink);
      try {
        for (;;) {
          const { rows, finished } = it._nextvSync(1000, NO_OPTIONS);
          for (let i = 0; i < rows.length; i += 2) {
            writer.put(rows[i], rows[i + 1]);
            keys++;
          }
          if (log && Date.now() - lastLog >= 5000) {
            lastLog = Date.now();
            log.info({ keys }, 'defragmenting: copying');
          }
          if (finished || rows.length === 0) break;
        }
      } catch (err) {
        writer.abort();
        throw err;
      }
      writer.finish();
    } finally {
      it._closeSync();
      source.detachResource(it as unknown as RawBatch);
    }
    return keys;
  }

  property(name: string): string | undefined {
    try {
      return this.db.getProperty(name) as string | undefined;
    } catch {
      return undefined;
    }
  }

  /** Bytes the database occupies on disk (all files of its directory). */
  sizeOnDisk(): number {
    let total = 0;
    const dir = this.location.current;
    for (const name of fs.readdirSync(dir)) {
      try {
        const st = fs.statSync(path.join(dir, name));
        if (st.isFile()) total += st.size;
      } catch {
        // a file compacted away between readdir and stat
      }
    }
    return total;
  }

  /** RocksDB's own estimate of the bytes of live (not overwritten, not deleted) data. */
  liveDataSize(): number {
    const live = Number(this.property('rocksdb.estimate-live-data-size') ?? 'NaN');
    const mem = Number(this.property('rocksdb.cur-size-all-mem-tables') ?? '0');
    return Number.isFinite(live) ? live + mem : this.sizeOnDisk();
  }
}

/**
 * Writes many pairs into a database in batches of about DEFRAG_BATCH_BYTES, synchronously; the last batch
 * is fsynced (which makes every earlier write of that database durable too) and never empty.
 */
class BatchedWriter {
  private batch: RawBatch;
  private pending = 0;
  constructor(private readonly sink: RawDb) {
    this.batch = sink._chainedBatch();
  }
  put(key: Buffer, value: Buffer): void {
    // a full batch goes before the next pair joins, so the final (synced) one holds at least that pair
    if (this.pending >= DEFRAG_BATCH_BYTES) {
      this.write(false);
      this.batch = this.sink._chainedBatch();
      this.pending = 0;
    }
    this.batch._put(key, value, NO_OPTIONS);
    this.pending += key.length + value.length;
  }
  finish(): void {
    this.write(true);
  }
  abort(): void {
    this.batch._closeSync();
    this.sink.detachResource(this.batch);
  }
  private write(sync: boolean): void {
    try {
      this.batch._writeSync({ sync });
    } finally {
      this.abort();
    }
  }
}

export function prefixed(prefix: number, rest: Buffer | string): Buffer {
  const tail = typeof rest === 'string' ? Buffer.from(rest, 'utf8') : rest;
  const out = Buffer.allocUnsafe(1 + tail.length);
  out[0] = prefix;
  tail.copy(out, 1);
  return out;
}

export function u64be(value: bigint | number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(value));
  return b;
}
