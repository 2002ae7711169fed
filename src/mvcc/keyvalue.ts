// The KeyValue as clients see it (mvccpb.KeyValue), and its stored form. Revisions are JS numbers
// (exact up to 2^53); lease IDs are int64 and travel as decimal strings.
import { readU64, writeU64 } from './revision';

export interface KeyValue {
  key: Buffer;
  create_revision: number;
  mod_revision: number;
  version: number;
  value: Buffer;
  lease: string;
}

const HEADER = 1 + 8 * 4 + 4;
const FORMAT_V1 = 1;

export function encodeKeyValue(kv: KeyValue): Buffer {
  const out = Buffer.allocUnsafe(HEADER + kv.key.length + kv.value.length);
  out[0] = FORMAT_V1;
  writeU64(out, kv.create_revision, 1);
  writeU64(out, kv.mod_revision, 9);
  writeU64(out, kv.version, 17);
  out.writeBigInt64BE(BigInt(kv.lease), 25);
  out.writeUInt32BE(kv.key.length, 33);
  kv.key.copy(out, HEADER);
  kv.value.copy(out, HEADER + kv.key.length);
  return out;
}

export function decodeKeyValue(buf: Buffer): KeyValue {
  if (buf.length < HEADER || buf[0] !== FORMAT_V1) {
    throw new Error(`corrupt stored key-value (length ${buf.length}, format ${buf[0]})`);
  }
  const keyLength = buf.readUInt32BE(33);
  return {
    create_revision: readU64(buf, 1),
    mod_revision: readU64(buf, 9),
    version: readU64(buf, 17),
    lease: buf.readBigInt64BE(25).toString(),
    key: buf.subarray(HEADER, HEADER + keyLength),
    value: buf.subarray(HEADER + keyLength),
  };
}
