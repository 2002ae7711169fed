// What a snapshot's records mean: they are the member's stored key/value pairs, verbatim, under the
// storage prefixes of src/storage (MVCC revisions, leases, metadata, ...), except the raft log. This file
// names the few stored keys the snapshot tools have to understand; they mirror the names server.ts and
// mvcc/kvstore.ts write (test/unit/snapshot.test.ts checks them against a real store).
import * as zlib from 'node:zlib';
import { Prefix, prefixed } from '../storage';
import { decodeKeyValue } from '../mvcc/keyvalue';
import { parseRevKey, readU64 } from '../mvcc/revision';

/** Key ranges a snapshot leaves out: the raft log ([gte, lt), sorted). A restored member starts a new log. */
export const EXCLUDED_RANGES: { gte: Buffer; lt: Buffer }[] = [{ gte: Buffer.from([Prefix.log]), lt: Buffer.from([Prefix.log + 1]) }];

export const META_KEYS = {
  currentRev: prefixed(Prefix.meta, 'mvcc/currentRev'),
  scheduledCompactRev: prefixed(Prefix.meta, 'mvcc/scheduledCompactRev'),
  finishedCompactRev: prefixed(Prefix.meta, 'mvcc/finishedCompactRev'),
  clusterId: prefixed(Prefix.meta, 'cluster/id'),
  memberId: prefixed(Prefix.meta, 'member/id'),
  term: prefixed(Prefix.meta, 'raft/term'),
  appliedIndex: prefixed(Prefix.meta, 'raft/appliedIndex'),
  memberPrefix: prefixed(Prefix.meta, 'members/'),
  /** removed member ids and refused membership changes: facts of the old cluster's log */
  removedPrefix: prefixed(Prefix.meta, 'removed/'),
  rejectedPrefix: prefixed(Prefix.meta, 'ccrejected/'),
};

function hasPrefix(key: Buffer, prefix: Buffer): boolean {
  return key.length >= prefix.length && key.subarray(0, prefix.length).equals(prefix);
}

/**
 * True for stored keys that describe the member and its cluster rather than the data: a restore drops
 * them and writes a new member's (as etcdutl drops the membership from etcd's snapshot), and the raft log.
 */
export function isMemberIdentityKey(key: Buffer): boolean {
  if (key.length > 0 && key[0] === Prefix.log) return true;
  if (key.length === 0 || key[0] !== Prefix.meta) return false;
  return (
    key.equals(META_KEYS.clusterId) ||
    key.equals(META_KEYS.memberId) ||
    key.equals(META_KEYS.term) ||
    key.equals(META_KEYS.appliedIndex) ||
    hasPrefix(key, META_KEYS.memberPrefix) ||
    hasPrefix(key, META_KEYS.removedPrefix) ||
    hasPrefix(key, META_KEYS.rejectedPrefix)
  );
}

/** What `etcd-ts snapshot status` reports, in etcdutl's shape (and JSON field names). */
export interface SnapshotStatus {
  /** CRC-32 over every record's key and value, in file order. */
  hash: number;
  /** The store's revision when the snapshot was taken. */
  revision: number;
  /** Keys live at that revision. */
  totalKey: number;
  /** Bytes of the snapshot's content (without the SHA-256 etcdctl appends). */
  totalSize: number;
  /** Storage version of the member that wrote it. */
  version: string;
}

/** Accumulates a SnapshotStatus (and restore-relevant facts) record by record. */
export class SnapshotAnalyzer {
  hash = 0;
  private lastRevision = 0;
  private storedCurrentRev = 0;
  private compact = 0;
  private readonly live = new Set<string>();
  records = 0;

  add(key: Buffer, value: Buffer): void {
    this.records++;
    this.hash = zlib.crc32(key, this.hash);
    this.hash = zlib.crc32(value, this.hash);
    if (key[0] === Prefix.kv) {
      const { rev, tombstone } = parseRevKey(key);
      this.lastRevision = Math.max(this.lastRevision, rev.main);
      const name = decodeKeyValue(value).key.toString('latin1');
      // Records come in revision order, so the last event of each key decides whether it is live.
      if (tombstone) this.live.delete(name);
      else this.live.add(name);
    } else if (key.equals(META_KEYS.currentRev)) {
      this.storedCurrentRev = readU64(value, 0);
    } else if (key.equals(META_KEYS.scheduledCompactRev)) {
      this.compact = readU64(value, 0);
    }
  }

  /** The store's revision: the one it recorded, else the newest stored revision (1 for an empty store). */
  get revision(): number {
    return Math.max(this.storedCurrentRev, this.lastRevision, 1);
  }

  get compactRevision(): number {
    return this.compact;
  }

  status(totalSize: number, version: string): SnapshotStatus {
    return { hash: this.hash >>> 0, revision: this.revision, totalKey: this.live.size, totalSize, version };
  }
}
