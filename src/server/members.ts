// Cluster membership records and etcd's deterministic IDs: a member's ID is the first 8 bytes (big endian)
// of sha1(sorted peer URLs joined + cluster token); the cluster ID is the same over the sorted member IDs.
// Deterministic IDs let every member of a new cluster agree on them without talking.
import * as crypto from 'node:crypto';

export interface Member {
  id: bigint;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

export function computeMemberId(peerURLs: string[], clusterToken: string): bigint {
  const joined = [...peerURLs].sort().join('') + clusterToken;
  return crypto.createHash('sha1').update(joined).digest().readBigUInt64BE(0);
}

export function computeClusterId(memberIds: bigint[]): bigint {
  const sorted = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const buf = Buffer.alloc(8 * sorted.length);
  sorted.forEach((id, i) => buf.writeBigUInt64BE(id, 8 * i));
  return crypto.createHash('sha1').update(buf).digest().readBigUInt64BE(0);
}

export function idToHex(id: bigint): string {
  return id.toString(16);
}

export function encodeMember(m: Member): Buffer {
  return Buffer.from(JSON.stringify({ ...m, id: m.id.toString() }));
}

export function decodeMember(b: Buffer): Member {
  const raw = JSON.parse(b.toString('utf8')) as Omit<Member, 'id'> & { id: string };
  return { ...raw, id: BigInt(raw.id) };
}

/** The wire form (etcdserverpb.Member). */
export function memberToPb(m: Member): { ID: string; name: string; peerURLs: string[]; clientURLs: string[]; isLearner: boolean } {
  return { ID: m.id.toString(), name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner };
}
