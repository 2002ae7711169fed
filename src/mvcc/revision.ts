// A revision is (main, sub): main is the store-wide revision a write transaction creates, sub orders the
// changes inside it. Revisions are stored as RocksDB keys 'K' + main(8 BE) + sub(8 BE) [+ 't'], so key
// order is revision order and a tombstone is recognisable from its key alone.
import { Prefix } from '../storage';

export interface Revision {
  readonly main: number;
  readonly sub: number;
}

export const REV_KEY_LENGTH = 17;

export function compareRev(a: Revision, b: Revision): number {
  return a.main !== b.main ? a.main - b.main : a.sub - b.sub;
}

function writeU64(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32BE(Math.floor(value / 0x1_0000_0000), offset);
  buf.writeUInt32BE(value >>> 0, offset + 4);
}

function readU64(buf: Buffer, offset: number): number {
  return buf.readUInt32BE(offset) * 0x1_0000_0000 + buf.readUInt32BE(offset + 4);
}

export function revKey(rev: Revision, tombstone = false): Buffer {
  const b = Buffer.allocUnsafe(tombstone ? REV_KEY_LENGTH + 1 : REV_KEY_LENGTH);
  b[0] = Prefix.kv;
  writeU64(b, rev.main, 1);
  writeU64(b, rev.sub, 9);
  if (tombstone) b[REV_KEY_LENGTH] = 0x74; // 't'
  return b;
}

export function parseRevKey(key: Buffer): { rev: Revision; tombstone: boolean } {
  return {
    rev: { main: readU64(key, 1), sub: readU64(key, 9) },
    tombstone: key.length > REV_KEY_LENGTH && key[REV_KEY_LENGTH] === 0x74,
  };
}

/** The first revision key with main revision `main` (for range scans over revisions). */
export function revKeyFloor(main: number): Buffer {
  return revKey({ main, sub: 0 });
}

export { writeU64, readU64 };
