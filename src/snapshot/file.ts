// Reading a saved snapshot file: etcdctl's framing (content + 32-byte SHA-256 when size % 512 == 32), the
// integrity check, then the records, streamed from disk in chunks so a file of any size reads in bounded
// memory.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { PAD_TO, SHA256_SIZE, SnapshotDecoder, SnapshotFormatError, SnapshotMeta } from './format';

const READ_CHUNK = 1024 * 1024;

export interface SnapshotFileInfo {
  size: number;
  /** etcdctl's rule: a file whose size is 32 more than a multiple of 512 ends with the SHA-256. */
  hasHash: boolean;
  contentLength: number;
}

export function inspectSnapshotFile(file: string): SnapshotFileInfo {
  const st = fs.statSync(file);
  if (!st.isFile()) throw new SnapshotFormatError(`${file} is not a regular file`);
  const hasHash = st.size % PAD_TO === SHA256_SIZE;
  return { size: st.size, hasHash, contentLength: hasHash ? st.size - SHA256_SIZE : st.size };
}

function readRange(fd: number, start: number, length: number, visit: (chunk: Buffer) => void, onProgress?: (done: number) => void): void {
  let done = 0;
  while (done < length) {
    const n = Math.min(READ_CHUNK, length - done);
    const buf = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const r = fs.readSync(fd, buf, got, n - got, start + done + got);
      if (r === 0) throw new SnapshotFormatError('snapshot file changed while being read (it got shorter)');
      got += r;
    }
    visit(buf);
    done += n;
    onProgress?.(done);
  }
}

/** Compares the SHA-256 stored at the end of the file with the content's; throws on a mismatch. */
export function verifySnapshotHash(file: string, info: SnapshotFileInfo): void {
  if (!info.hasHash) throw new SnapshotFormatError(`snapshot has no sha256 checksum (size ${info.size} is not 32 more than a multiple of 512)`);
  const fd = fs.openSync(file, 'r');
  try {
    const stored = Buffer.alloc(SHA256_SIZE);
    fs.readSync(fd, stored, 0, SHA256_SIZE, info.contentLength);
    const h = crypto.createHash('sha256');
    readRange(fd, 0, info.contentLength, (chunk) => h.update(chunk));
    const actual = h.digest();
    if (!actual.equals(stored)) {
      throw new SnapshotFormatError(`snapshot sha256 mismatch: file says ${stored.toString('hex')}, content is ${actual.toString('hex')}`);
    }
  } finally {
    fs.closeSync(fd);
  }
}

export interface ReadSnapshotOptions {
  /** Skip the SHA-256 comparison (etcdutl's --skip-hash-check); the format's own checks still apply. */
  skipHashCheck?: boolean;
  /** Called after each chunk with the content bytes read so far. */
  onProgress?: (bytesRead: number, contentLength: number) => void;
}

/**
 * Checks and decodes a snapshot file, handing every record to `onRecord` in order. Any problem (missing
 * or wrong hash, bad magic, truncation, corruption) throws before `readSnapshotFile` returns, possibly
 * after some records were handed out: callers that write must write somewhere they can throw away.
 */
export function readSnapshotFile(
  file: string,
  onRecord: (key: Buffer, value: Buffer) => void,
  opts: ReadSnapshotOptions = {},
): { info: SnapshotFileInfo; meta: SnapshotMeta; records: number } {
  const info = inspectSnapshotFile(file);
  if (!opts.skipHashCheck) {
    if (!info.hasHash) throw new SnapshotFormatError('snapshot missing hash but --skip-hash-check=false');
    verifySnapshotHash(file, info);
  }
  const dec = new SnapshotDecoder(onRecord);
  const fd = fs.openSync(file, 'r');
  try {
    readRange(fd, 0, info.contentLength, (chunk) => dec.push(chunk), (done) => opts.onProgress?.(done, info.contentLength));
  } finally {
    fs.closeSync(fd);
  }
  const summary = dec.end();
  return { info, meta: summary.meta, records: summary.records };
}
