// Membership changes, one node at a time (no joint consensus — like etcd's default): applying a committed
// ConfChange to the tracker, rebuilding the tracker from a ConfState (restart, snapshot), and the byte
// encoding of a ConfChange inside a log entry. The encoding is protobuf-compatible with etcd's
// raftpb.ConfChange (ID=1, Type=2, NodeID=3, Context=4) so a server can keep etcd's on-disk meaning.
//
// Why single changes are safe: any majority of the old voter set overlaps any majority of a set that
// differs by one voter, so two leaders can never be elected from disjoint quorums during the switch. The
// leader only proposes a change after the previous one is applied (see Raft's pendingConfIndex).
import { RaftError } from './errors';
import { ProgressTracker } from './tracker';
import { ConfChange, ConfChangeType, ConfState, EMPTY_BYTES, NONE, NodeId } from './types';

/**
 * Apply one change to the tracker. New peers start in Probe (see addProgress) and are considered
 * recently active (so they can get a snapshot right away). Returns a reason when the change is refused —
 * it is then a no-op, identical on every node since all apply the same committed entries in order.
 */
export function applyChange(tracker: ProgressTracker, cc: ConfChange, lastIndex: number): string | undefined {
  const id = cc.nodeId;
  if (id === NONE) return undefined; // the application's way to turn a committed change into a no-op
  const voters = new Set(tracker.voters);
  const learners = new Set(tracker.learners);
  switch (cc.type) {
    case ConfChangeType.AddNode: {
      if (voters.has(id)) return undefined;
      if (learners.has(id)) {
        learners.delete(id);
        const pr = tracker.progress.get(id);
        if (pr !== undefined) pr.isLearner = false;
      } else {
        addProgress(tracker, id, lastIndex, false);
      }
      voters.add(id);
      break;
    }
    case ConfChangeType.AddLearnerNode: {
      if (learners.has(id)) return undefined;
      if (voters.has(id)) {
        if (voters.size === 1) return 'cannot demote the only voter';
        voters.delete(id);
        const pr = tracker.progress.get(id);
        if (pr !== undefined) pr.isLearner = true;
      } else {
        addProgress(tracker, id, lastIndex, true);
      }
      learners.add(id);
      break;
    }
    case ConfChangeType.RemoveNode: {
      if (voters.has(id)) {
        if (voters.size === 1) return 'removed all voters';
        voters.delete(id);
      } else if (learners.has(id)) {
        learners.delete(id);
      } else {
        return undefined;
      }
      tracker.progress.delete(id);
      tracker.votes.delete(id);
      break;
    }
    case ConfChangeType.UpdateNode:
      return undefined; // carries application data only
    default:
      return `unknown conf change type ${String(cc.type)}`;
  }
  tracker.setVoters(voters);
  tracker.setLearners(learners);
  return undefined;
}

function addProgress(tracker: ProgressTracker, id: NodeId, lastIndex: number, isLearner: boolean): void {
  // next = lastIndex (not lastIndex + 1): the first probe then carries the last entry, so it goes out
  // right away instead of waiting for the next heartbeat or proposal.
  const pr = tracker.newProgress(Math.max(lastIndex, 1), isLearner);
  pr.recentActive = true;
  tracker.progress.set(id, pr);
}

/** A fresh tracker holding exactly the configuration `cs`. */
export function restoreTracker(cs: ConfState, lastIndex: number, maxInflight: number, maxInflightBytes: number): ProgressTracker {
  const tracker = new ProgressTracker(maxInflight, maxInflightBytes);
  for (const id of cs.voters) {
    applyChange(tracker, { id: 0n, type: ConfChangeType.AddNode, nodeId: id, context: EMPTY_BYTES }, lastIndex);
  }
  for (const id of cs.learners) {
    applyChange(tracker, { id: 0n, type: ConfChangeType.AddLearnerNode, nodeId: id, context: EMPTY_BYTES }, lastIndex);
  }
  return tracker;
}

// --- protobuf-compatible encoding -----------------------------------------------------------------

function pushVarint(out: number[], value: bigint): void {
  let v = BigInt.asUintN(64, value);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
}

export function encodeConfChange(cc: ConfChange): Uint8Array {
  const out: number[] = [];
  out.push(0x08); // field 1 (ID), varint
  pushVarint(out, cc.id);
  out.push(0x10); // field 2 (Type), varint
  pushVarint(out, BigInt(cc.type));
  out.push(0x18); // field 3 (NodeID), varint
  pushVarint(out, cc.nodeId);
  if (cc.context.length > 0) {
    out.push(0x22); // field 4 (Context), length-delimited
    pushVarint(out, BigInt(cc.context.length));
    const bytes = new Uint8Array(out.length + cc.context.length);
    bytes.set(out, 0);
    bytes.set(cc.context, out.length);
    return bytes;
  }
  return Uint8Array.from(out);
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  const cc: ConfChange = { id: 0n, type: ConfChangeType.AddNode, nodeId: NONE, context: EMPTY_BYTES };
  let pos = 0;
  const readVarint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (pos >= data.length) throw new RaftError('bad_conf_change', 'truncated varint in ConfChange');
      const b = data[pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return BigInt.asUintN(64, result);
      shift += 7n;
    }
    throw new RaftError('bad_conf_change', 'varint too long in ConfChange');
  };
  while (pos < data.length) {
    const key = Number(readVarint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) {
      const v = readVarint();
      if (field === 1) cc.id = v;
      else if (field === 2) cc.type = Number(v) as ConfChangeType;
      else if (field === 3) cc.nodeId = v;
    } else if (wire === 2) {
      const len = Number(readVarint());
      if (pos + len > data.length) throw new RaftError('bad_conf_change', 'truncated bytes in ConfChange');
      if (field === 4) cc.context = data.slice(pos, pos + len);
      pos += len;
    } else {
      throw new RaftError('bad_conf_change', `unsupported wire type ${wire} in ConfChange`);
    }
  }
  return cc;
}
