// The peer wire encoding of raft messages: exact round trips (every message type, absent vs empty optional
// fields, full-range u64 ids, large payloads) and clear errors for truncated or garbage input.
import { EntryType, Message, MessageType, makeMessage } from '../../src/raft/types';
import { CodecError, decodeMessages, encodeMessages } from '../../src/transport/codec';

const BIG_ID = (1n << 64n) - 1n; // above 2^63
const ID_2 = 0x8000000000000001n;

const bytes = (...xs: number[]) => new Uint8Array(xs);

function full(type: MessageType): Message {
  return makeMessage({
    type,
    to: BIG_ID,
    from: ID_2,
    term: 7,
    logTerm: 6,
    index: 2 ** 53 - 1, // the largest safe integer
    commit: 41,
    reject: true,
    rejectHint: 39,
    entries: [
      { term: 6, index: 40, type: EntryType.Normal, data: bytes(1, 2, 3) },
      { term: 7, index: 41, type: EntryType.ConfChange, data: new Uint8Array(0) },
    ],
    snapshot: { metadata: { index: 30, term: 5, confState: { voters: [1n, ID_2, BIG_ID], learners: [0x10n] } }, data: bytes(9, 8, 7) },
    context: bytes(0xde, 0xad),
  });
}

const roundTrip = (msgs: Message[]) => decodeMessages(encodeMessages(msgs));

describe('round trips', () => {
  const types = Object.values(MessageType).filter((v): v is MessageType => typeof v === 'number');

  test.each(types.map((t) => [MessageType[t], t] as const))('every field of a %s message', (_name, t) => {
    const m = full(t);
    expect(roundTrip([m])).toEqual([m]);
  });

  test.each(types.map((t) => [MessageType[t], t] as const))('a minimal %s message (no entries, no snapshot, no context)', (_name, t) => {
    const m = makeMessage({ type: t });
    const [out] = roundTrip([m]);
    expect(out).toEqual(m);
    expect('snapshot' in out).toBe(false);
    expect('context' in out).toBe(false);
    expect(out.reject).toBe(false);
  });

  test('empty optional fields stay present and empty, distinct from absent', () => {
    const m = makeMessage({
      type: MessageType.Snap,
      to: 2n,
      from: 1n,
      snapshot: { metadata: { index: 1, term: 1, confState: { voters: [], learners: [] } }, data: new Uint8Array(0) },
      context: new Uint8Array(0),
    });
    const [out] = roundTrip([m]);
    expect(out.context).toEqual(new Uint8Array(0));
    expect(out.snapshot).toEqual(m.snapshot);
  });

  test('64-bit ids above 2^63 and zero', () => {
    const m = makeMessage({ type: MessageType.Heartbeat, to: BIG_ID, from: 0n });
    const [out] = roundTrip([m]);
    expect(out.to).toBe(BIG_ID);
    expect(out.from).toBe(0n);
  });

  test('an empty batch', () => {
    expect(roundTrip([])).toEqual([]);
  });

  test('a batch keeps order and contents', () => {
    const msgs = Array.from({ length: 300 }, (_, i) =>
      makeMessage({ type: MessageType.App, to: 2n, from: 1n, term: 3, index: i, entries: [{ term: 3, index: i + 1, type: EntryType.Normal, data: new Uint8Array(Buffer.from(`entry ${i}`)) }] }),
    );
    expect(roundTrip(msgs)).toEqual(msgs);
  });

  test('big entry payloads (several MiB) survive byte for byte', () => {
    const a = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < a.length; i++) a[i] = (i * 31) & 0xff;
    const b = Buffer.alloc(1024 * 1024 + 7, 0xab);
    const m = makeMessage({
      type: MessageType.App,
      to: 2n,
      from: 1n,
      entries: [
        { term: 1, index: 1, type: EntryType.Normal, data: a },
        { term: 1, index: 2, type: EntryType.Normal, data: b },
      ],
    });
    const [out] = roundTrip([m]);
    expect(Buffer.compare(Buffer.from(out.entries[0].data), a)).toBe(0);
    expect(Buffer.compare(Buffer.from(out.entries[1].data), b)).toBe(0);
  });

  test('decoded bytes are copies, not views of the input buffer', () => {
    const buf = encodeMessages([makeMessage({ type: MessageType.App, entries: [{ term: 1, index: 1, type: EntryType.Normal, data: bytes(1, 2, 3) }] })]);
    const [out] = decodeMessages(buf);
    buf.fill(0);
    expect(out.entries[0].data).toEqual(bytes(1, 2, 3));
  });

  test('accepts a plain Uint8Array as input, including one at an offset inside a larger buffer', () => {
    const enc = encodeMessages([full(MessageType.App)]);
    const big = new Uint8Array(enc.length + 10);
    big.set(enc, 5);
    expect(decodeMessages(big.subarray(5, 5 + enc.length))).toEqual([full(MessageType.App)]);
  });
});

describe('encoding refuses values the format cannot carry', () => {
  test.each([
    ['a negative term', { term: -1 }],
    ['a fractional index', { index: 1.5 }],
    ['an unsafe integer commit', { commit: 2 ** 53 }],
    ['an id above 2^64-1', { to: 1n << 64n }],
    ['a negative id', { from: -1n }],
    ['an unknown message type', { type: 99 as MessageType }],
  ])('%s', (_name, fields) => {
    expect(() => encodeMessages([makeMessage({ type: MessageType.App, ...fields })])).toThrow(CodecError);
  });

  test('an unknown entry type', () => {
    expect(() => encodeMessages([makeMessage({ type: MessageType.App, entries: [{ term: 1, index: 1, type: 5 as EntryType, data: bytes() }] })])).toThrow(/entry type/);
  });
});

describe('decoding rejects malformed input with a clear error', () => {
  const good = encodeMessages([full(MessageType.App), full(MessageType.Heartbeat)]);

  test('every truncation of a valid batch', () => {
    // Each prefix must fail (never decode to something shorter or different).
    for (let n = 0; n < good.length; n++) {
      expect(() => decodeMessages(good.subarray(0, n))).toThrow(CodecError);
    }
  });

  test('the truncation message says what is missing', () => {
    expect(() => decodeMessages(good.subarray(0, good.length - 1))).toThrow(/truncated input/);
    expect(() => decodeMessages(new Uint8Array(0))).toThrow(/truncated input: need 4 bytes for batch magic/);
  });

  test('trailing bytes after the batch', () => {
    expect(() => decodeMessages(Buffer.concat([good, Buffer.from([0])]))).toThrow(/trailing bytes/);
  });

  test('bad magic', () => {
    expect(() => decodeMessages(Buffer.from('{"type":3,"to":"2"}'))).toThrow(/not a raft message batch/);
  });

  test('random garbage never decodes and never hangs', () => {
    let seed = 12345;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 2000; i++) {
      const g = Buffer.alloc(rnd() % 200);
      for (let j = 0; j < g.length; j++) g[j] = rnd() & 0xff;
      expect(() => decodeMessages(g)).toThrow(CodecError);
    }
  });

  test('random corruption of a valid batch either throws CodecError or yields well-formed messages', () => {
    let seed = 99;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 2000; i++) {
      const g = Buffer.from(good);
      g[rnd() % g.length] ^= 1 + (rnd() % 255);
      let out: Message[] | undefined;
      try {
        out = decodeMessages(g);
      } catch (err) {
        expect(err).toBeInstanceOf(CodecError);
        continue;
      }
      // a flip inside a value field (a term, a payload byte) is undetectable; the result must still be sane
      for (const m of out) {
        expect(MessageType[m.type]).toBeDefined();
        expect(Number.isSafeInteger(m.term) && Number.isSafeInteger(m.index)).toBe(true);
      }
    }
  });

  test('a huge entry count is refused before allocating anything', () => {
    const m = encodeMessages([makeMessage({ type: MessageType.App })]);
    // entry count sits right after the fixed header: batch(8) + len(4) + type, flags, 7 u64 fields
    const at = 8 + 4 + 2 + 7 * 8;
    m.writeUInt32BE(0xffffffff, at);
    expect(() => decodeMessages(m)).toThrow(/invalid entry count 4294967295/);
  });

  test('a message length pointing past the end', () => {
    const m = Buffer.from(encodeMessages([makeMessage({ type: MessageType.App })]));
    m.writeUInt32BE(m.length, 8);
    expect(() => decodeMessages(m)).toThrow(/truncated input: message 0 needs/);
  });

  test('unknown flag bits, message types and entry types', () => {
    const m = Buffer.from(encodeMessages([makeMessage({ type: MessageType.App, entries: [{ term: 1, index: 1, type: EntryType.Normal, data: bytes(1) }] })]));
    const flags = Buffer.from(m);
    flags[13] = 0x80;
    expect(() => decodeMessages(flags)).toThrow(/unknown message flags/);
    const type = Buffer.from(m);
    type[12] = 19;
    expect(() => decodeMessages(type)).toThrow(/unknown message type 19/);
    const etype = Buffer.from(m);
    etype[8 + 4 + 2 + 7 * 8 + 4 + 16] = 2;
    expect(() => decodeMessages(etype)).toThrow(/unknown entry type 2/);
  });

  test('a term or index beyond 2^53 is refused rather than rounded', () => {
    const m = Buffer.from(encodeMessages([makeMessage({ type: MessageType.App })]));
    m.writeUInt32BE(0x00200000, 8 + 4 + 2 + 16); // term high word: 2^53
    expect(() => decodeMessages(m)).toThrow(/invalid term .* exceeds 2\^53/);
  });

  test('a message whose declared length leaves bytes unread', () => {
    const one = encodeMessages([makeMessage({ type: MessageType.App })]);
    // grow message 0's length by 4 and append 4 bytes: the message parser stops early
    const m = Buffer.concat([one, Buffer.alloc(4)]);
    m.writeUInt32BE(one.length - 12 + 4, 8);
    expect(() => decodeMessages(m)).toThrow(/message 0: 4 unexpected trailing bytes/);
  });
});
