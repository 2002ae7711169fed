// The wire encoding of raft messages between peers: a small fixed-layout binary format (big-endian), not
// protobuf — peers only ever talk to other etcd-ts members, and a fixed layout is trivial to bound-check.
//
//   batch    := magic u32 ("ETR1") | count u32 | { length u32 | message[length] } * count
//   message  := type u8 | flags u8 | to u64 | from u64 | term u64 | logTerm u64 | index u64 | commit u64
//               | rejectHint u64 | entryCount u32 | entry * entryCount | [snapshot] | [context]
//   entry    := term u64 | index u64 | type u8 | dataLength u32 | data
//   snapshot := index u64 | term u64 | voterCount u32 | u64 * voterCount | learnerCount u32
//               | u64 * learnerCount | dataLength u32 | data
//   context  := length u32 | bytes
//   flags    := bit 0 reject, bit 1 snapshot present, bit 2 context present (other bits must be 0)
//
// Terms and indexes are JavaScript numbers: they travel as u64 and must be safe integers (< 2^53) on
// both ends. Node ids are bigints and use the full u64 range.
//
// Decoding validates everything (lengths, enum values, flag bits, exact consumption of every length
// prefix) and throws a CodecError at the first problem; it never loops longer than the input is long.
// Decoded byte fields are copies, so they do not pin the (possibly large) request buffer in memory.
import { Entry, EntryType, Message, MessageType, Snapshot } from '../raft/types';

export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodecError';
  }
}

const MAGIC = 0x45545231; // "ETR1": format version 1
const FLAG_REJECT = 1;
const FLAG_SNAPSHOT = 2;
const FLAG_CONTEXT = 4;
const KNOWN_FLAGS = FLAG_REJECT | FLAG_SNAPSHOT | FLAG_CONTEXT;

const MAX_MESSAGE_TYPE = MessageType.PreVoteResp;
const MAX_U64 = (1n << 64n) - 1n;
const TWO_32 = 2 ** 32;
/** High word limit so that hi * 2^32 + lo stays a safe integer (< 2^53). */
const MAX_SAFE_HI = 0x1fffff;

const BATCH_HEADER = 8;
const MESSAGE_FIXED = 1 + 1 + 8 * 7 + 4;
const ENTRY_FIXED = 8 + 8 + 1 + 4;
const SNAPSHOT_FIXED = 8 + 8 + 4 + 4 + 4;

// ---------------------------------------------------------------------------------------------------
// Encoding

/** Exact encoded size of one message (without its length prefix). */
function messageSize(m: Message): number {
  let n = MESSAGE_FIXED;
  for (const e of m.entries) n += ENTRY_FIXED + e.data.length;
  if (m.snapshot !== undefined) {
    const cs = m.snapshot.metadata.confState;
    n += SNAPSHOT_FIXED + 8 * (cs.voters.length + cs.learners.length) + m.snapshot.data.length;
  }
  if (m.context !== undefined) n += 4 + m.context.length;
  return n;
}

class Writer {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  u8(v: number): void {
    this.buf[this.pos++] = v;
  }

  u32(v: number): void {
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
  }

  num(v: number, what: string): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new CodecError(`cannot encode ${what} ${v}: not a non-negative safe integer`);
    this.u32(Math.floor(v / TWO_32));
    this.u32(v >>> 0); // low 32 bits (ToUint32 is exact modulo 2^32 for safe integers)
  }

  id(v: bigint, what: string): void {
    if (typeof v !== 'bigint' || v < 0n || v > MAX_U64) throw new CodecError(`cannot encode ${what} ${String(v)}: not a u64`);
    this.buf.writeBigUInt64BE(v, this.pos);
    this.pos += 8;
  }

  bytes(b: Uint8Array): void {
    this.u32(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
}

function writeMessage(w: Writer, m: Message): void {
  if (!Number.isInteger(m.type) || m.type < 0 || m.type > MAX_MESSAGE_TYPE) throw new CodecError(`cannot encode message type ${m.type}`);
  w.u8(m.type);
  w.u8((m.reject ? FLAG_REJECT : 0) | (m.snapshot !== undefined ? FLAG_SNAPSHOT : 0) | (m.context !== undefined ? FLAG_CONTEXT : 0));
  w.id(m.to, 'to');
  w.id(m.from, 'from');
  w.num(m.term, 'term');
  w.num(m.logTerm, 'logTerm');
  w.num(m.index, 'index');
  w.num(m.commit, 'commit');
  w.num(m.rejectHint, 'rejectHint');
  w.u32(m.entries.length);
  for (const e of m.entries) {
    if (e.type !== EntryType.Normal && e.type !== EntryType.ConfChange) throw new CodecError(`cannot encode entry type ${e.type}`);
    w.num(e.term, 'entry term');
    w.num(e.index, 'entry index');
    w.u8(e.type);
    w.bytes(e.data);
  }
  if (m.snapshot !== undefined) {
    const md = m.snapshot.metadata;
    w.num(md.index, 'snapshot index');
    w.num(md.term, 'snapshot term');
    w.u32(md.confState.voters.length);
    for (const v of md.confState.voters) w.id(v, 'voter');
    w.u32(md.confState.learners.length);
    for (const l of md.confState.learners) w.id(l, 'learner');
    w.bytes(m.snapshot.data);
  }
  if (m.context !== undefined) w.bytes(m.context);
}

/** Encode a batch of messages. Throws CodecError for a value the format cannot carry. */
export function encodeMessages(msgs: readonly Message[]): Buffer {
  const sizes = msgs.map(messageSize);
  const total = sizes.reduce((a, s) => a + 4 + s, BATCH_HEADER);
  const w = new Writer(Buffer.allocUnsafe(total));
  w.u32(MAGIC);
  w.u32(msgs.length);
  for (let i = 0; i < msgs.length; i++) {
    w.u32(sizes[i]);
    const start = w.pos;
    writeMessage(w, msgs[i]);
    // Guards the size computation and the writer against drifting apart.
    if (w.pos - start !== sizes[i]) throw new CodecError(`internal error: message ${i} encoded to ${w.pos - start} bytes, expected ${sizes[i]}`);
  }
  return w.buf;
}

// ---------------------------------------------------------------------------------------------------
// Decoding

class Reader {
  constructor(
    private readonly buf: Buffer,
    public pos: number,
    private readonly end: number,
  ) {}

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.end - this.pos < n) throw new CodecError(`truncated input: need ${n} bytes for ${what} at offset ${this.pos}, have ${this.end - this.pos}`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++];
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  num(what: string): number {
    this.need(8, what);
    const hi = this.buf.readUInt32BE(this.pos);
    const lo = this.buf.readUInt32BE(this.pos + 4);
    if (hi > MAX_SAFE_HI) throw new CodecError(`invalid ${what} at offset ${this.pos}: exceeds 2^53`);
    this.pos += 8;
    return hi * TWO_32 + lo;
  }

  id(what: string): bigint {
    this.need(8, what);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  bytes(what: string): Uint8Array {
    const n = this.u32(`${what} length`);
    this.need(n, what);
    const out = new Uint8Array(n); // a copy: see the file comment
    out.set(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }

  /** A count of items that each take at least `minSize` bytes, checked against what is left. */
  count(what: string, minSize: number): number {
    const n = this.u32(`${what} count`);
    if (n * minSize > this.remaining) throw new CodecError(`invalid ${what} count ${n} at offset ${this.pos - 4}: only ${this.remaining} bytes left`);
    return n;
  }
}

function readMessage(r: Reader): Message {
  const type = r.u8('message type');
  if (type > MAX_MESSAGE_TYPE) throw new CodecError(`unknown message type ${type} at offset ${r.pos - 1}`);
  const flags = r.u8('message flags');
  if ((flags & ~KNOWN_FLAGS) !== 0) throw new CodecError(`unknown message flags 0x${flags.toString(16)} at offset ${r.pos - 1}`);
  const to = r.id('to');
  const from = r.id('from');
  const term = r.num('term');
  const logTerm = r.num('logTerm');
  const index = r.num('index');
  const commit = r.num('commit');
  const rejectHint = r.num('rejectHint');
  const entryCount = r.count('entry', ENTRY_FIXED);
  const entries: Entry[] = [];
  for (let i = 0; i < entryCount; i++) {
    const eTerm = r.num('entry term');
    const eIndex = r.num('entry index');
    const eType = r.u8('entry type');
    if (eType !== EntryType.Normal && eType !== EntryType.ConfChange) throw new CodecError(`unknown entry type ${eType} at offset ${r.pos - 1}`);
    entries.push({ term: eTerm, index: eIndex, type: eType, data: r.bytes('entry data') });
  }
  const m: Message = { type, to, from, term, logTerm, index, entries, commit, reject: (flags & FLAG_REJECT) !== 0, rejectHint };
  if (flags & FLAG_SNAPSHOT) {
    const sIndex = r.num('snapshot index');
    const sTerm = r.num('snapshot term');
    const voters: bigint[] = [];
    const nVoters = r.count('voter', 8);
    for (let i = 0; i < nVoters; i++) voters.push(r.id('voter'));
    const learners: bigint[] = [];
    const nLearners = r.count('learner', 8);
    for (let i = 0; i < nLearners; i++) learners.push(r.id('learner'));
    const snapshot: Snapshot = { metadata: { index: sIndex, term: sTerm, confState: { voters, learners } }, data: r.bytes('snapshot data') };
    m.snapshot = snapshot;
  }
  if (flags & FLAG_CONTEXT) m.context = r.bytes('context');
  return m;
}

/** Decode a batch produced by encodeMessages. Throws CodecError for anything malformed or truncated. */
export function decodeMessages(buf: Uint8Array): Message[] {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const r = new Reader(b, 0, b.length);
  const magic = r.u32('batch magic');
  if (magic !== MAGIC) throw new CodecError(`not a raft message batch (bad magic 0x${magic.toString(16)})`);
  const count = r.count('message', 4 + MESSAGE_FIXED);
  const out: Message[] = [];
  for (let i = 0; i < count; i++) {
    const len = r.u32(`message ${i} length`);
    if (len > r.remaining) throw new CodecError(`truncated input: message ${i} needs ${len} bytes at offset ${r.pos}, have ${r.remaining}`);
    const end = r.pos + len;
    const mr = new Reader(b, r.pos, end);
    out.push(readMessage(mr));
    if (mr.pos !== end) throw new CodecError(`message ${i}: ${end - mr.pos} unexpected trailing bytes at offset ${mr.pos}`);
    r.pos = end;
  }
  if (r.remaining !== 0) throw new CodecError(`${r.remaining} unexpected trailing bytes after ${count} messages`);
  return out;
}
