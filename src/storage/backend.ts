// The one RocksDB instance of a member. Every concern (raft log, metadata, MVCC revisions, leases, ...)
// lives under its own one-byte key prefix, so a single atomic batch can change several concerns at once:
// that is how the applied index is stored atomically with the state it produced.
//
// The binding's writes and `getManySync` run on the calling thread. That is deliberate here: the apply
// loop and reads are then naturally serialised with no awaits in between, so no reader can observe a
// half-applied entry.
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
  detachResource(resource: RawBatch): void;
}

interface RawIterator {
  nextv(n: number, cb?: undefined): Promise<Buffer[][]>;
  close(): Promise<void>;
}

export class Backend {
  private readonly db: RocksLevel<Buffer, Buffer>;
  private closed = false;

  private constructor(readonly dir: string) {
    this.db = new RocksLevel(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  }

  /** Opens (creating if needed) the RocksDB database in `dir`. */
  static async open(dir: string): Promise<Backend> {
    fs.mkdirSync(dir, { recursive: true });
    const backend = new Backend(dir);
    await backend.db.open();
    return backend;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.db.close();
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
    const it = this.db.iterator({ gte, lt }) as unknown as RawIterator;
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
  }

  /** Deletes every key in [gte, lt) (a RocksDB range tombstone). */
  async deleteRange(gte: Buffer, lt: Buffer): Promise<void> {
    await this.db.clear({ gte, lt });
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
    for (const name of fs.readdirSync(this.dir)) {
      try {
        const st = fs.statSync(path.join(this.dir, name));
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
