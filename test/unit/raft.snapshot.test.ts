// Log compaction and snapshots: MemoryStorage, a lagging follower caught up with MsgSnap, the leader's
// Snapshot progress state and transport reports, restoring on the follower, and restarting from storage.
import {
  CompactedError,
  Entry,
  EntryType,
  MemoryStorage,
  MessageType,
  NONE,
  NodeId,
  ProgressState,
  RawNode,
  SeededRandom,
  SnapOutOfDateError,
  Snapshot,
  StateType,
  UnavailableError,
  limitSize,
  makeMessage,
} from '../../src/raft';
import { TestNetwork, TestNode, drainReady, newTestNode, utf8 } from '../sim/harness';

function ents(from: number, terms: number[]): Entry[] {
  return terms.map((term, i) => ({ term, index: from + i, type: EntryType.Normal, data: utf8(`e${from + i}`) }));
}

function snapshotAt(index: number, term: number, voters: NodeId[], data = 'state'): Snapshot {
  return { metadata: { index, term, confState: { voters, learners: [] } }, data: utf8(data) };
}

describe('MemoryStorage', () => {
  test('serves entries and terms, with the snapshot index as the entry before the first', () => {
    const s = new MemoryStorage();
    s.append(ents(1, [1, 1, 2, 2, 3]));
    expect([s.firstIndex(), s.lastIndex()]).toEqual([1, 5]);
    expect(s.term(0)).toBe(0);
    expect(s.term(4)).toBe(2);
    expect(s.entries(2, 4).map((e) => e.index)).toEqual([2, 3]);
    expect(() => s.term(6)).toThrow(UnavailableError);
    expect(() => s.entries(3, 7)).toThrow(UnavailableError);
    s.createSnapshot(3, { voters: [1n], learners: [] }, utf8('sm@3'));
    s.compact(3);
    expect([s.firstIndex(), s.lastIndex(), s.term(3)]).toEqual([4, 5, 2]);
    expect(() => s.term(2)).toThrow(CompactedError);
    expect(() => s.entries(3, 5)).toThrow(CompactedError);
    expect(() => s.compact(2)).toThrow(CompactedError);
    expect(s.snapshot().metadata).toEqual({ index: 3, term: 2, confState: { voters: [1n], learners: [] } });
    expect(() => s.createSnapshot(2, { voters: [1n], learners: [] }, utf8(''))).toThrow(SnapOutOfDateError);
  });

  test('append truncates a conflicting suffix and skips compacted entries', () => {
    const s = new MemoryStorage();
    s.append(ents(1, [1, 1, 1, 1]));
    expect(() => s.compact(2)).toThrow('beyond the latest snapshot');
    s.append(ents(3, [2]));
    expect(s.entries(1, s.lastIndex() + 1).map((e) => [e.index, e.term])).toEqual([
      [1, 1],
      [2, 1],
      [3, 2],
    ]);
    s.createSnapshot(2, { voters: [1n], learners: [] }, utf8('sm@2'));
    s.compact(2);
    s.append(ents(1, [1, 1, 2, 3]));
    expect(s.entries(3, s.lastIndex() + 1).map((e) => [e.index, e.term])).toEqual([
      [3, 2],
      [4, 3],
    ]);
    expect(() => s.append(ents(9, [3]))).toThrow('missing log entry');
  });

  test('applySnapshot replaces the log; older snapshots are refused', () => {
    const s = new MemoryStorage();
    s.append(ents(1, [1, 1, 1]));
    s.applySnapshot(snapshotAt(10, 4, [1n, 2n]));
    expect([s.firstIndex(), s.lastIndex(), s.term(10)]).toEqual([11, 10, 4]);
    expect(s.initialState().confState).toEqual({ voters: [1n, 2n], learners: [] });
    expect(() => s.applySnapshot(snapshotAt(9, 4, [1n]))).toThrow(SnapOutOfDateError);
  });

  test('limitSize keeps at least one entry', () => {
    const big = ents(1, [1, 1, 1]).map((e) => ({ ...e, data: new Uint8Array(100) }));
    expect(limitSize(big, 1)).toHaveLength(1);
    expect(limitSize(big, 250)).toHaveLength(2);
    expect(limitSize(big, Number.POSITIVE_INFINITY)).toHaveLength(3);
  });
});

/** A 3-node cluster where node 3 missed entries the leader has since compacted away. */
function laggingCluster(): { net: TestNetwork; leader: TestNode; snapIndex: number } {
  const net = TestNetwork.ofSize(3);
  net.campaign(1);
  net.isolate(3);
  for (let i = 0; i < 10; i++) net.propose(1, `v${i}`);
  const leader = net.get(1);
  const applied = leader.node.raft.log.applied;
  leader.storage.createSnapshot(applied, leader.confState, utf8(`sm@${applied}`));
  leader.storage.compact(applied);
  return { net, leader, snapIndex: applied };
}

describe('catching up a lagging follower with a snapshot', () => {
  test('the leader sends MsgSnap when the entries the follower needs are compacted, and pauses it', () => {
    const { leader, snapIndex } = laggingCluster();
    const pr = leader.node.raft.tracker.progress.get(3n);
    expect(pr!.match).toBe(1); // node 3 has only the leader's first entry
    // Node 3 rejects an append (its log ends at 1): the leader needs entry 2 on, which is compacted.
    leader.node.step(makeMessage({ type: MessageType.AppResp, from: 3n, to: 1n, term: 1, index: pr!.next - 1, reject: true, rejectHint: 1, logTerm: 1 }));
    const out = drainReady(leader).filter((m) => m.to === 3n);
    expect(out.map((m) => MessageType[m.type])).toEqual(['Snap']);
    expect(out[0].snapshot?.metadata.index).toBe(snapIndex);
    expect(pr!.state).toBe(ProgressState.Snapshot);
    expect(pr!.pendingSnapshot).toBe(snapIndex);
    expect(pr!.isPaused()).toBe(true);
  });

  test('end to end: the follower installs the snapshot, then replicates the rest of the log', () => {
    const { net, snapIndex } = laggingCluster();
    net.heal();
    net.tick(1);
    net.propose(1, 'after');
    const f = net.get(3);
    expect(f.storage.snapshot().metadata.index).toBe(snapIndex);
    expect(f.node.raft.log.firstIndex()).toBe(snapIndex + 1);
    // The state up to the snapshot came as the snapshot; only later entries were applied one by one.
    expect(f.applied.map((e) => e.index).filter((i) => i > 1 && i <= snapIndex)).toEqual([]);
    expect(net.appliedData(3)).toEqual(['after']);
    expect(net.delivered.some((m) => m.type === MessageType.Snap && m.to === 3n)).toBe(true);
    const pr = net.get(1).node.raft.tracker.progress.get(3n);
    expect(pr?.state).toBe(ProgressState.Replicate);
    expect(pr?.match).toBe(net.get(1).node.raft.log.lastIndex());
  });

  test('transport reports: failure → probe from match (paused until a heartbeat answer); success → probe after the snapshot', () => {
    for (const ok of [false, true]) {
      const { net, leader, snapIndex } = laggingCluster();
      net.heal();
      net.ignored.add(MessageType.Snap);
      net.tick(1);
      const pr = leader.node.raft.tracker.progress.get(3n)!;
      expect(pr.state).toBe(ProgressState.Snapshot);
      leader.node.reportSnapshot(3n, ok);
      expect(pr.state).toBe(ProgressState.Probe);
      expect(pr.next).toBe(ok ? snapIndex + 1 : pr.match + 1);
      expect(pr.isPaused()).toBe(true);
    }
  });

  test('the follower installs a snapshot: Ready carries it, commit jumps, the log restarts after it', () => {
    const f = newTestNode({ id: 3n, voters: [1n, 2n, 3n] });
    const snap = snapshotAt(20, 3, [1n, 2n, 3n, 4n], 'image');
    f.node.step(makeMessage({ type: MessageType.Snap, from: 1n, to: 3n, term: 3, snapshot: snap }));
    const rd = f.node.ready();
    expect(rd.snapshot).toBe(snap);
    expect(rd.committedEntries).toEqual([]);
    expect(rd.hardState).toEqual({ term: 3, vote: NONE, commit: 20 });
    expect(rd.messages.map((m) => [MessageType[m.type], m.to, m.index])).toEqual([['AppResp', 1n, 20]]);
    f.storage.applySnapshot(rd.snapshot!);
    f.storage.setHardState(rd.hardState!);
    f.node.advance();
    expect(f.node.raft.log.applied).toBe(20);
    expect(f.node.raft.tracker.voters).toEqual([1n, 2n, 3n, 4n]);
    expect(f.node.hasReady()).toBe(false);
  });

  test('an outdated snapshot is ignored; one whose last entry we hold only advances commit', () => {
    const f = newTestNode({ id: 3n, voters: [1n, 2n, 3n] });
    f.node.step(makeMessage({ type: MessageType.App, from: 1n, to: 3n, term: 2, index: 0, logTerm: 0, entries: ents(1, [1, 1, 2, 2]), commit: 2 }));
    drainReady(f);
    f.node.step(makeMessage({ type: MessageType.Snap, from: 1n, to: 3n, term: 2, snapshot: snapshotAt(1, 1, [1n, 2n, 3n]) }));
    expect(f.node.ready().messages.map((m) => [m.index, m.reject])).toEqual([[2, false]]);
    f.node.advance();
    f.node.step(makeMessage({ type: MessageType.Snap, from: 1n, to: 3n, term: 2, snapshot: snapshotAt(3, 2, [1n, 2n, 3n]) }));
    const rd = f.node.ready();
    expect(rd.snapshot).toBeUndefined();
    expect(rd.hardState?.commit).toBe(3);
    expect(rd.messages.map((m) => [m.index, m.reject])).toEqual([[3, false]]);
    expect(f.node.raft.log.lastIndex()).toBe(4);
  });

  test('a node added after the snapshot was taken still installs it and learns its membership from the log', () => {
    const net = TestNetwork.bootstrapped([1n, 2n, 3n], [4n]);
    net.campaign(1);
    for (let i = 0; i < 5; i++) net.propose(1, `v${i}`);
    const leader = net.get(1);
    const applied = leader.node.raft.log.applied;
    leader.storage.createSnapshot(applied, leader.confState, utf8('sm'));
    leader.storage.compact(applied);
    net.applyConf(1, { id: 0n, type: 3, nodeId: 4n, context: new Uint8Array() }); // AddLearnerNode
    net.tick(1);
    const n4 = net.get(4);
    expect(n4.storage.snapshot().metadata.confState.learners).toEqual([]);
    expect(n4.confState).toEqual({ voters: [1n, 2n, 3n], learners: [4n] });
    expect(n4.node.raft.log.committed).toBe(leader.node.raft.log.committed);
  });

  test('no snapshot is sent to a peer that is not recently active', () => {
    const { net, leader } = laggingCluster();
    const pr = leader.node.raft.tracker.progress.get(3n)!;
    pr.recentActive = false;
    pr.becomeProbe();
    pr.next = 1;
    leader.node.raft.step(makeMessage({ type: MessageType.Beat, from: 1n }));
    expect(drainReady(leader).filter((m) => m.type === MessageType.Snap)).toEqual([]);
    expect(pr.state).toBe(ProgressState.Probe);
    expect(net).toBeDefined();
  });
});

describe('restart from storage', () => {
  test('term, vote, commit, log and configuration come back; entries after `applied` are redelivered', () => {
    const storage = new MemoryStorage();
    storage.applySnapshot(snapshotAt(5, 2, [1n, 2n, 3n]));
    storage.append(ents(6, [2, 3, 3]));
    storage.setHardState({ term: 3, vote: 2n, commit: 7 });
    const node = new RawNode({ id: 1n, storage, electionTick: 10, heartbeatTick: 1, random: new SeededRandom(1), applied: 5 });
    const r = node.raft;
    expect([r.term, r.vote, r.log.committed, r.log.applied, r.log.lastIndex(), r.state]).toEqual([3, 2n, 7, 5, 8, StateType.Follower]);
    expect(r.tracker.voters).toEqual([1n, 2n, 3n]);
    const rd = node.ready();
    expect(rd.committedEntries.map((e) => e.index)).toEqual([6, 7]);
    expect(rd.hardState).toBeUndefined(); // nothing new to persist
    expect(rd.entries).toEqual([]);
  });

  test('a restarted node that persisted its vote does not vote for someone else in that term', () => {
    const storage = new MemoryStorage({ voters: [1n, 2n, 3n], learners: [] });
    storage.setHardState({ term: 4, vote: 2n, commit: 0 });
    const n = newTestNode({ id: 1n, storage, config: { preVote: false } });
    n.node.step(makeMessage({ type: MessageType.Vote, from: 3n, to: 1n, term: 4, index: 0, logTerm: 0 }));
    expect(n.node.ready().messages.map((m) => [m.to, m.reject])).toEqual([[3n, true]]);
  });
});
