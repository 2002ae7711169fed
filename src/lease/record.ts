// The stored form of a lease: key Prefix.lease + id (8 bytes, big-endian two's complement), value the
// protobuf encoding of etcd's leasepb.Lease { int64 ID = 1; int64 TTL = 2; int64 RemainingTTL = 3 }.
// Using etcd's own message keeps the record readable by anything that understands etcd's lease bucket
// (e.g. a future import of an etcd snapshot). Attached keys are not stored: they are rebuilt from the
// key-values, whose records name their lease.
import { Prefix } from '../storage';

export interface LeaseRecord {
  id: bigint;
  /** granted TTL, seconds */
  ttl: number;
  /** last checkpointed remaining TTL, seconds; 0 = none */
  remainingTtl: number;
}

export function leaseKey(id: bigint): Buffer {
  const key = Buffer.allocUnsafe(9);
  key[0] = Prefix.lease;
  key.writeBigInt64BE(id, 1);
  return key;
}

export const LEASE_KEYS_FROM = Buffer.from([Prefix.lease]);
export const LEASE_KEYS_TO = Buffer.from([Prefix.lease + 1]);

function pushVarint(out: number[], value: bigint): void {
  let v = BigInt.asUintN(64, value);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
}

function pushField(out: number[], field: number, value: bigint): void {
  if (value === 0n) return; // proto3: zero values are not written
  out.push(field << 3); // wire type 0 (varint)
  pushVarint(out, value);
}

export function encodeLeaseRecord(r: LeaseRecord): Buffer {
  const out: number[] = [];
  pushField(out, 1, r.id);
  pushField(out, 2, BigInt(r.ttl));
  pushField(out, 3, BigInt(r.remainingTtl));
  return Buffer.from(out);
}

export function decodeLeaseRecord(buf: Buffer): LeaseRecord {
  const record: LeaseRecord = { id: 0n, ttl: 0, remainingTtl: 0 };
  let pos = 0;
  const varint = (): bigint => {
    let value = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (pos >= buf.length || shift > 63n) throw new Error('corrupt stored lease: bad varint');
      const byte = buf[pos++];
      value |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return value;
    }
  };
  while (pos < buf.length) {
    const tag = Number(varint());
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire === 0) {
      const value = BigInt.asIntN(64, varint());
      if (field === 1) record.id = value;
      else if (field === 2) record.ttl = Number(value);
      else if (field === 3) record.remainingTtl = Number(value);
    } else if (wire === 1 || wire === 5) {
      pos += wire === 1 ? 8 : 4; // an unknown fixed-width field
    } else if (wire === 2) {
      const length = Number(varint()); // an unknown length-delimited field (read before moving pos)
      pos += length;
    } else {
      throw new Error(`corrupt stored lease: wire type ${wire}`);
    }
  }
  if (pos !== buf.length) throw new Error('corrupt stored lease: truncated field');
  return record;
}
