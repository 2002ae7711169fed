// The etcd-ts snapshot file format (version 1): the bytes Maintenance.Snapshot streams and
// `etcd-ts snapshot status|restore` read. etcd's own snapshots are bbolt files; ours are a flat list of the
// member's stored key/value pairs, so the format is independent of RocksDB's files.
//
//   header   magic "\x89ETCDTS\n" (8 bytes) | format version u32 BE (= 1) | meta length u32 BE | meta:
//            UTF-8 JSON object ({"storageVersion", "etcdVersion", "createdAt"}; unknown fields ignored)
//   records  tag 0x01 | key length u32 BE | value length u32 BE | key | value      (repeated, key order)
//   end      tag 0xFF | record count u64 BE | CRC-32 (IEEE) u32 BE of every byte before the end tag
//   padding  zero bytes up to the next multiple of 512
//
// etcdctl appends the stream's 32-byte SHA-256 when it saves a snapshot and refuses any file whose size is
// not 32 more than a multiple of 512: the padding is what makes our content fit that rule. The end marker
// (count + CRC) makes a truncated or damaged file detectable even when the SHA-256 is absent or skipped.
import * as zlib from 'node:zlib';

export const MAGIC = Buffer.from([0x89, 0x45, 0x54, 0x43, 0x44, 0x54, 0x53, 0x0a]); // \x89 E T C D T S \n
export const FORMAT_VERSION = 1;
/** Content length is padded to a multiple of this (etcdctl's check: size % 512 == 32 with the hash). */
export const PAD_TO = 512;
export const SHA256_SIZE = 32;

const TAG_RECORD = 0x01;
const TAG_END = 0xff;
const RECORD_HEADER = 1 + 4 + 4;
const END_LENGTH = 1 + 8 + 4;
const FIXED_HEADER = MAGIC.length + 4 + 4;
/** Sanity bounds: a length beyond these is corruption, not data. */
const MAX_META_BYTES = 1024 * 1024;
const MAX_RECORD_BYTES = 1024 * 1024 * 1024;

export interface SnapshotMeta {
  /** The storage version of the member that wrote it (what etcd reports as the snapshot's version). */
  storageVersion: string;
  /** The etcd API version of the member that wrote it. */
  etcdVersion?: string;
  /** ISO 8601 time the snapshot was taken. */
  createdAt?: string;
}

export class SnapshotFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotFormatError';
  }
}

/** Content length plus padding for a snapshot whose bytes up to and including the end marker are `length`. */
export function paddedLength(length: number): number {
  return Math.ceil(length / PAD_TO) * PAD_TO;
}

/**
 * Writes the format. Encoded bytes accumulate inside; `take()` hands them out (the caller writes them to
 * a file or a stream), so memory stays bounded by how often the caller takes.
 */
export class SnapshotEncoder {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private crc = 0;
  private written = 0;
  private count = 0;
  private finished = false;

  constructor(meta: SnapshotMeta) {
    const json = Buffer.from(JSON.stringify(meta), 'utf8');
    const fixed = Buffer.alloc(FIXED_HEADER);
    MAGIC.copy(fixed, 0);
    fixed.writeUInt32BE(FORMAT_VERSION, MAGIC.length);
    fixed.writeUInt32BE(json.length, MAGIC.length + 4);
    this.push(fixed);
    this.push(json);
  }

  private push(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.bufferedBytes += b.length;
    this.written += b.length;
    this.crc = zlib.crc32(b, this.crc);
  }

  record(key: Buffer, value: Buffer): void {
    if (this.finished) throw new Error('snapshot encoder: record after finish');
    const head = Buffer.allocUnsafe(RECORD_HEADER);
    head[0] = TAG_RECORD;
    head.writeUInt32BE(key.length, 1);
    head.writeUInt32BE(value.length, 5);
    this.push(head);
    this.push(key);
    this.push(value);
    this.count++;
  }

  /** Appends the end marker and the padding. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    const end = Buffer.alloc(END_LENGTH);
    end[0] = TAG_END;
    end.writeBigUInt64BE(BigInt(this.count), 1);
    end.writeUInt32BE(this.crc >>> 0, 9);
    this.chunks.push(end);
    this.bufferedBytes += end.length;
    this.written += end.length;
    const padding = paddedLength(this.written) - this.written;
    if (padding > 0) {
      this.chunks.push(Buffer.alloc(padding));
      this.bufferedBytes += padding;
      this.written += padding;
    }
  }

  /** Bytes encoded so far (after finish: the content length). */
  get length(): number {
    return this.written;
  }

  get records(): number {
    return this.count;
  }

  /** Bytes encoded but not yet taken. */
  get buffered(): number {
    return this.bufferedBytes;
  }

  /** Hands out (and forgets) everything encoded since the last take. */
  take(): Buffer {
    const out = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.bufferedBytes);
    this.chunks = [];
    this.bufferedBytes = 0;
    return out;
  }
}

/** Encodes a whole snapshot in memory (tests and small tools). */
export function encodeSnapshot(meta: SnapshotMeta, records: Iterable<[Buffer, Buffer]>): Buffer {
  const enc = new SnapshotEncoder(meta);
  for (const [k, v] of records) enc.record(k, v);
  enc.finish();
  return enc.take();
}

export interface DecodedSummary {
  meta: SnapshotMeta;
  records: number;
  /** Bytes of content (header to padding, without any SHA-256 appended). */
  contentLength: number;
}

/** bbolt files carry this magic (little endian) in the meta page right after the 16-byte page header. */
const BBOLT_MAGIC = 0xed0cdaed;

/**
 * Reads the format incrementally: `push` chunks as they come (any sizes), `end` when there are no more.
 * Every record is handed to `onRecord` in file order; any framing problem throws a SnapshotFormatError
 * naming the offset. A record is only handed out once all its bytes are there.
 */
export class SnapshotDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** File offset of the first pending byte. */
  private offset = 0;
  private state: 'fixed' | 'meta' | 'records' | 'padding' = 'fixed';
  private metaLength = 0;
  private crc = 0;
  private count = 0;
  private meta: SnapshotMeta | undefined;
  private endOffset = 0;

  constructor(private readonly onRecord: (key: Buffer, value: Buffer) => void) {}

  /** The header's meta, once decoded. */
  get header(): SnapshotMeta | undefined {
    return this.meta;
  }

  get records(): number {
    return this.count;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.state === 'padding') {
      this.checkPadding(chunk);
      return;
    }
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.parse();
  }

  /** Declares the input complete; throws if it stopped early or the padding is wrong. */
  end(): DecodedSummary {
    if (this.state !== 'padding') {
      if (this.state === 'fixed' && this.offset === 0 && this.pendingBytes === 0) throw new SnapshotFormatError('empty snapshot file');
      throw new SnapshotFormatError(
        `snapshot truncated: it ends at byte ${this.offset + this.pendingBytes} inside ${this.state === 'records' ? 'a record' : 'the header'}, before its end marker`,
      );
    }
    if (this.offset !== paddedLength(this.endOffset)) {
      throw new SnapshotFormatError(`snapshot truncated: content length ${this.offset} is not a multiple of ${PAD_TO}`);
    }
    return { meta: this.meta as SnapshotMeta, records: this.count, contentLength: this.offset };
  }

  /** Returns the first n pending bytes as one buffer, or undefined if fewer are there (consumes nothing). */
  private peek(n: number): Buffer | undefined {
    if (this.pendingBytes < n) return undefined;
    if (this.pending[0].length < n) {
      const joined = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [joined];
    }
    return this.pending[0].subarray(0, n);
  }

  private consume(n: number, hash: boolean): void {
    let left = n;
    while (left > 0) {
      const head = this.pending[0];
      const used = Math.min(left, head.length);
      if (hash) this.crc = zlib.crc32(head.subarray(0, used), this.crc);
      if (used === head.length) this.pending.shift();
      else this.pending[0] = head.subarray(used);
      left -= used;
    }
    this.pendingBytes -= n;
    this.offset += n;
  }

  private parse(): void {
    for (;;) {
      if (this.state === 'fixed') {
        const b = this.peek(FIXED_HEADER);
        if (!b) return;
        if (!b.subarray(0, MAGIC.length).equals(MAGIC)) {
          const bbolt = this.pendingBytes >= 24 && this.peek(24)?.readUInt32LE(16) === BBOLT_MAGIC;
          throw new SnapshotFormatError(
            bbolt
              ? 'not an etcd-ts snapshot: this is an etcd (bbolt) snapshot; restore it with etcdutl'
              : 'not an etcd-ts snapshot (bad magic bytes at offset 0)',
          );
        }
        const version = b.readUInt32BE(MAGIC.length);
        if (version !== FORMAT_VERSION) {
          throw new SnapshotFormatError(`unsupported etcd-ts snapshot format version ${version} (this build reads version ${FORMAT_VERSION})`);
        }
        this.metaLength = b.readUInt32BE(MAGIC.length + 4);
        if (this.metaLength > MAX_META_BYTES) throw new SnapshotFormatError(`corrupt snapshot: header length ${this.metaLength} at offset ${MAGIC.length + 4}`);
        this.consume(FIXED_HEADER, true);
        this.state = 'meta';
      } else if (this.state === 'meta') {
        const b = this.peek(this.metaLength);
        if (!b) return;
        let parsed: unknown;
        try {
          parsed = JSON.parse(b.toString('utf8'));
        } catch {
          throw new SnapshotFormatError(`corrupt snapshot: unreadable header at offset ${this.offset}`);
        }
        if (typeof parsed !== 'object' || parsed === null || typeof (parsed as SnapshotMeta).storageVersion !== 'string') {
          throw new SnapshotFormatError(`corrupt snapshot: header at offset ${this.offset} has no storage version`);
        }
        this.meta = parsed as SnapshotMeta;
        this.consume(this.metaLength, true);
        this.state = 'records';
      } else if (this.state === 'records') {
        const tagBuf = this.peek(1);
        if (!tagBuf) return;
        const tag = tagBuf[0];
        if (tag === TAG_RECORD) {
          const head = this.peek(RECORD_HEADER);
          if (!head) return;
          const keyLength = head.readUInt32BE(1);
          const valueLength = head.readUInt32BE(5);
          if (keyLength + valueLength > MAX_RECORD_BYTES) {
            throw new SnapshotFormatError(`corrupt snapshot: record of ${keyLength + valueLength} bytes at offset ${this.offset}`);
          }
          const whole = this.peek(RECORD_HEADER + keyLength + valueLength);
          if (!whole) return;
          // Copies: the pending buffers are reused views of the caller's chunks.
          const key = Buffer.from(whole.subarray(RECORD_HEADER, RECORD_HEADER + keyLength));
          const value = Buffer.from(whole.subarray(RECORD_HEADER + keyLength));
          this.consume(RECORD_HEADER + keyLength + valueLength, true);
          this.count++;
          this.onRecord(key, value);
        } else if (tag === TAG_END) {
          const end = this.peek(END_LENGTH);
          if (!end) return;
          const count = end.readBigUInt64BE(1);
          const crc = end.readUInt32BE(9);
          if (count !== BigInt(this.count)) {
            throw new SnapshotFormatError(`corrupt snapshot: ${this.count} records read but the end marker says ${count}`);
          }
          if (crc !== this.crc >>> 0) {
            throw new SnapshotFormatError(`corrupt snapshot: checksum mismatch (end marker ${hex32(crc)}, content ${hex32(this.crc >>> 0)})`);
          }
          this.consume(END_LENGTH, false);
          this.endOffset = this.offset;
          this.state = 'padding';
          const rest = this.pending;
          this.pending = [];
          this.pendingBytes = 0;
          for (const r of rest) this.checkPadding(r);
          return;
        } else {
          throw new SnapshotFormatError(`corrupt snapshot: unknown record tag 0x${tag.toString(16).padStart(2, '0')} at offset ${this.offset}`);
        }
      } else {
        return;
      }
    }
  }

  private checkPadding(chunk: Buffer): void {
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] !== 0) throw new SnapshotFormatError(`corrupt snapshot: data after the end marker at offset ${this.offset + i}`);
    }
    // Padding only ever fills up to the next multiple of 512 after the end marker.
    if (this.offset + chunk.length > paddedLength(this.endOffset)) {
      throw new SnapshotFormatError(`corrupt snapshot: data after the end marker at offset ${paddedLength(this.endOffset)}`);
    }
    this.offset += chunk.length;
  }
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/** Decodes a whole in-memory snapshot (content only, no SHA-256). */
export function decodeSnapshot(content: Buffer): { summary: DecodedSummary; records: [Buffer, Buffer][] } {
  const records: [Buffer, Buffer][] = [];
  const dec = new SnapshotDecoder((k, v) => records.push([k, v]));
  dec.push(content);
  return { summary: dec.end(), records };
}
