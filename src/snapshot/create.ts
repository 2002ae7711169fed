// Taking a snapshot of a running member (Maintenance.Snapshot): first the whole content is written to a
// temporary file, then that file is streamed with etcd's framing.
//
// Why point-in-time: the content comes from one walk with one RocksDB iterator, and an iterator reads
// from the implicit snapshot RocksDB takes when it is created. The server writes every applied entry's
// state together with its applied index in one atomic batch, on the same thread that creates the
// iterator, so the walk sees exactly the state after some applied index — never half an entry — no
// matter how many writes land while it runs.
//
// Why a file first: etcd's stream announces the total size (remaining_bytes) from the first message, and
// our content's size is only known once it is written. Writing locally is also fast, so the iterator
// (which pins old data in RocksDB and holds up a defragmentation) is released long before a slow client
// has downloaded everything. The file is unlinked as soon as it is open, so nothing is left behind even
// if the process dies mid-way.
import * as crypto from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Backend } from '../storage';
import { EXCLUDED_RANGES } from './content';
import { SnapshotEncoder, SnapshotMeta } from './format';

/** etcd sends the snapshot in blobs of this size. */
export const SNAPSHOT_BLOB_SIZE = 32 * 1024;
const WRITE_THRESHOLD = 1024 * 1024;
const PROGRESS_EVERY_MS = 5000;

export interface SnapshotLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface SnapshotFile {
  handle: fsp.FileHandle;
  /** Content length (bytes to stream before the SHA-256). */
  size: number;
  records: number;
  /** Removes the file if it could not be unlinked while open, and closes it. */
  dispose(): Promise<void>;
}

let sequence = 0;

/** Writes a point-in-time snapshot of `backend` into a temporary file in `tmpDir` (see the header). */
export async function writeSnapshotFile(backend: Backend, tmpDir: string, meta: SnapshotMeta, log?: SnapshotLogger): Promise<SnapshotFile> {
  const name = path.join(tmpDir, `.snapshot-${process.pid}-${Date.now()}-${sequence++}.tmp`);
  const handle = await fsp.open(name, 'w+', 0o600);
  let unlinked = false;
  try {
    await fsp.unlink(name);
    unlinked = true;
  } catch {
    // a platform that cannot unlink open files: removed in dispose()
  }
  const dispose = async () => {
    await handle.close().catch(() => undefined);
    if (!unlinked) await fsp.rm(name, { force: true });
  };
  try {
    const enc = new SnapshotEncoder(meta);
    let position = 0;
    const flush = async () => {
      const chunk = enc.take();
      let done = 0;
      while (done < chunk.length) {
        const { bytesWritten } = await handle.write(chunk, done, chunk.length - done, position + done);
        done += bytesWritten;
      }
      position += chunk.length;
    };
    const started = Date.now();
    let lastLog = started;
    await backend.consistentScan((key, value) => {
      enc.record(key, value);
      if (log && Date.now() - lastLog >= PROGRESS_EVERY_MS) {
        lastLog = Date.now();
        log.info({ records: enc.records, bytes: enc.length }, 'writing database snapshot');
      }
      if (enc.buffered >= WRITE_THRESHOLD) return flush();
      return undefined;
    }, EXCLUDED_RANGES);
    enc.finish();
    await flush();
    log?.info({ records: enc.records, 'total-bytes': enc.length, 'took-ms': Date.now() - started }, 'wrote database snapshot');
    return { handle, size: enc.length, records: enc.records, dispose };
  } catch (err) {
    await dispose();
    throw err;
  }
}

/** The part of a gRPC server stream the sender needs. */
export interface SnapshotSink {
  write(message: unknown): boolean;
  readonly cancelled: boolean;
  once(event: 'drain' | 'cancelled' | 'close' | 'error', listener: () => void): unknown;
  removeListener(event: 'drain' | 'cancelled' | 'close' | 'error', listener: () => void): unknown;
}

function waitDrain(sink: SnapshotSink): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      for (const e of ['drain', 'cancelled', 'close', 'error'] as const) sink.removeListener(e, done);
      resolve();
    };
    for (const e of ['drain', 'cancelled', 'close', 'error'] as const) sink.once(e, done);
  });
}

export function humanBytes(n: number): string {
  // go-humanize's Bytes: SI units, one decimal below 10, none above ("20 kB", "1.5 MB").
  if (n < 10) return `${n} B`;
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  const e = Math.floor(Math.log(n) / Math.log(1000));
  const value = n / Math.pow(1000, e);
  const rounded = Math.floor(value * 10 + 0.5) / 10;
  if (rounded < 10) return `${rounded.toFixed(1)} ${units[e]}`;
  // Go's %.0f rounds a half to the even neighbour (20.5 -> "20")
  const whole = Math.floor(rounded);
  const frac = rounded - whole;
  const int = frac > 0.5 || (frac === 0.5 && whole % 2 === 1) ? whole + 1 : whole;
  return `${int} ${units[e]}`;
}

/**
 * Streams a snapshot file as etcd does: blobs of 32 KiB with remaining_bytes counting down to 0, then one
 * more message whose blob is the SHA-256 of everything sent; every message carries the storage version
 * (etcd 3.6 sends no header on this stream). Waits for the sink to drain; stops if the client goes away.
 */
export async function sendSnapshot(file: SnapshotFile, sink: SnapshotSink, version: string, log?: SnapshotLogger): Promise<'sent' | 'cancelled'> {
  const total = file.size;
  const started = Date.now();
  log?.info({ 'total-bytes': total, size: humanBytes(total), 'storage-version': version }, 'sending database snapshot to client');
  const sha = crypto.createHash('sha256');
  let sent = 0;
  let lastLog = started;
  while (sent < total) {
    if (sink.cancelled) {
      log?.warn({ 'sent-bytes': sent, 'total-bytes': total }, 'snapshot stream cancelled by the client');
      return 'cancelled';
    }
    const n = Math.min(SNAPSHOT_BLOB_SIZE, total - sent);
    const blob = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await file.handle.read(blob, got, n - got, sent + got);
      if (bytesRead === 0) throw new Error('snapshot temporary file is shorter than written');
      got += bytesRead;
    }
    sha.update(blob);
    sent += n;
    const ok = sink.write({ remaining_bytes: total - sent, blob, version });
    if (!ok) await waitDrain(sink);
    if (log && Date.now() - lastLog >= PROGRESS_EVERY_MS) {
      lastLog = Date.now();
      log.info({ 'sent-bytes': sent, 'total-bytes': total }, 'sending database snapshot to client');
    }
  }
  if (sink.cancelled) return 'cancelled';
  const digest = sha.digest();
  log?.info({ 'total-bytes': total, 'checksum-size': digest.length }, 'sending database sha256 checksum to client');
  sink.write({ remaining_bytes: 0, blob: digest, version });
  log?.info({ 'total-bytes': total, size: humanBytes(total), 'took-ms': Date.now() - started, 'storage-version': version }, 'successfully sent database snapshot to client');
  return 'sent';
}
