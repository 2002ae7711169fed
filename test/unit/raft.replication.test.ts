// Log replication: the leader commit rule, AppendEntries consistency checks and conflict truncation,
// fast backoff on mismatch (hints on both sides), batching, pipelining and flow control.
import {
  Entry,
  EntryType,
  MemoryStorage,
  Message,
  MessageType,
  NONE,
  NodeId,
  ProgressState,
  ProposalDroppedError,
  RaftConfig,
  StateType,
  makeMessage,
} from '../../src/raft';
import { TestNetwork, TestNode, drainReady, newTestNode, utf8 } from '../sim/harness';

function entriesWithTerms(terms: number[]): Entry[] {
  return terms.map((term, i) => ({ term, index: i + 1, type: EntryType.Normal, data: utf8(`e${i + 1}`) }));
}

function storageWith(terms: number[], voters: NodeId[], term = Math.max(0, ...terms), commit = 0): MemoryStorage {
  const s = new MemoryStorage({ voters, learners: [] });
  s.append(entriesWithTerms(terms));
  s.setHardState({ term, vote: NONE, commit });
  return s;
}

/** Node 1 elected leader (votes from every other voter) over a log with the given terms. */
function leaderWith(terms: number[], voters: NodeId[] = [1n, 2n, 3n], config: Partial<RaftConfig> = {}, commit = 0): TestNode {
  const n = newTestNode({ id: 1n, storage: storageWith(terms, voters, Math.max(0, ...terms), commit), config: { preVote: false, ...config } });
  n.node.campaign();
  drainReady(n);
  for (const v of voters) if (v !== 1n) n.node.step(makeMessage({ type: MessageType.VoteResp, from: v, to: 1n, term: n.node.raft.term }));
  expect(n.node.raft.state).toBe(StateType.Leader);
  return n;
}

function appResp(from: NodeId, term: number, index: number, extra: Partial<Message> = {}): Message {
  return makeMessage({ type: MessageType.AppResp, from, to: 1n, term, index, ...extra });
}

function apps(msgs: Message[], to?: NodeId): Message[] {
  return msgs.filter((m) => m.type === MessageType.App && (to === undefined || m.to === to));
}

describe('commit rule', () => {
  test('entries of an earlier term are never committed by counting replicas (§5.4.2, Figure 8)', () => {
    // Node 1 holds an uncommitted entry of term 2 at index 2 and becomes leader of term 3.
    const n = leaderWith([1, 2], [1n, 2n, 3n], {}, 1);
    const r = n.node.raft;
    expect(r.term).toBe(3);
    drainReady(n); // persists the leader's empty entry (index 3, term 3)
    expect(r.log.lastIndex()).toBe(3);
    // Node 2 acknowledges index 2 only: a majority (1 and 2) has the term-2 entry, yet it stays uncommitted.
    n.node.step(appResp(2n, 3, 2));
    expect(r.log.committed).toBe(1);
    // Once a majority has the term-3 entry, everything up to it commits.
    n.node.step(appResp(2n, 3, 3));
    expect(r.log.committed).toBe(3);
  });

  test("the leader counts its own log only once it is persisted (advance)", () => {
    const n = leaderWith([], [1n, 2n, 3n]);
    const r = n.node.raft;
    const rd = n.node.ready(); // holds the empty entry, not yet persisted
    expect(rd.entries.map((e) => [e.index, e.term])).toEqual([[1, 1]]);
    n.node.step(appResp(2n, 1, 1));
    // Only node 2 has it durably: not a majority of three.
    expect(r.log.committed).toBe(0);
    n.storage.append(rd.entries);
    n.node.advance();
    expect(r.log.committed).toBe(1);
  });

  test('followers learn the commit index from appends, capped at what they verifiably hold', () => {
    const f = newTestNode({ id: 2n, voters: [1n, 2n, 3n] });
    const ents = entriesWithTerms([1, 1, 1]);
    // The leader committed 3 but sends only entries 1..2: the follower may commit only 2.
    f.node.step(makeMessage({ type: MessageType.App, from: 1n, to: 2n, term: 1, index: 0, logTerm: 0, entries: ents.slice(0, 2), commit: 3 }));
    expect(f.node.raft.log.committed).toBe(2);
    const rd = f.node.ready();
    expect(rd.hardState).toEqual({ term: 1, vote: NONE, commit: 2 });
    expect(rd.committedEntries.map((e) => e.index)).toEqual([1, 2]);
    expect(rd.messages.map((m) => [MessageType[m.type], m.to, m.index, m.reject])).toEqual([['AppResp', 1n, 2, false]]);
  });

  test('heartbeats carry min(follower match, commit) so a follower never commits past its log', () => {
    const n = leaderWith([1, 1, 1], [1n, 2n, 3n]);
    drainReady(n);
    n.node.step(appResp(2n, 2, 4));
    drainReady(n);
    n.node.raft.step(makeMessage({ type: MessageType.Beat, from: 1n, to: 1n }));
    const beats = n.node.raft.msgs.filter((m) => m.type === MessageType.Heartbeat);
    expect(beats.map((m) => [m.to, m.commit])).toEqual([
      [2n, 4],
      [3n, 0],
    ]);
  });
});

describe('AppendEntries on the follower', () => {
  function follower(terms: number[], commit = 0): TestNode {
    return newTestNode({ id: 2n, storage: storageWith(terms, [1n, 2n, 3n], Math.max(1, ...terms), commit) });
  }

  test('a conflicting uncommitted suffix is replaced by the leader entries', () => {
    const f = follower([1, 1, 2, 2], 2);
    const newEnts: Entry[] = [
      { term: 3, index: 3, type: EntryType.Normal, data: utf8('x') },
      { term: 3, index: 4, type: EntryType.Normal, data: utf8('y') },
    ];
    f.node.step(makeMessage({ type: MessageType.App, from: 1n, to: 2n, term: 3, index: 2, logTerm: 1, entries: newEnts, commit: 4 }));
    const log = f.node.raft.log;
    expect(log.allEntries().map((e) => [e.index, e.term])).toEqual([
      [1, 1],
      [2, 1],
      [3, 3],
      [4, 3],
    ]);
    const rd = f.node.ready();
    // Only the replacement is handed to the driver; storage truncates at index 3 when appending it.
    expect(rd.entries.map((e) => [e.index, e.term])).toEqual([
      [3, 3],
      [4, 3],
    ]);
    f.storage.append(rd.entries);
    expect(f.storage.lastIndex()).toBe(4);
    expect(f.storage.term(3)).toBe(3);
  });

  test('entries it already has are not re-appended (duplicate / reordered appends are harmless)', () => {
    const f = follower([1, 1, 1], 0);
    f.node.step(makeMessage({ type: MessageType.App, from: 1n, to: 2n, term: 1, index: 0, logTerm: 0, entries: entriesWithTerms([1, 1]), commit: 0 }));
    expect(f.node.raft.log.unstableEntries()).toEqual([]);
    expect(f.node.ready().messages.map((m) => m.index)).toEqual([2]);
  });

  test('an append below the commit index is answered with the commit index', () => {
    const f = follower([1, 1, 1], 3);
    f.node.step(makeMessage({ type: MessageType.App, from: 1n, to: 2n, term: 1, index: 1, logTerm: 1, entries: [], commit: 3 }));
    expect(f.node.ready().messages.map((m) => [MessageType[m.type], m.index, m.reject])).toEqual([['AppResp', 3, false]]);
  });

  test('a mismatch is rejected with a hint that skips entries of later terms', () => {
    // Leader terms: 1 3 3 3 3 3 3 3 7 ; follower: 1 3 3 4 4 5 5 5 6. The leader probes at (8, 3).
    const f = follower([1, 3, 3, 4, 4, 5, 5, 5, 6]);
    f.node.step(makeMessage({ type: MessageType.App, from: 1n, to: 2n, term: 7, index: 8, logTerm: 3, entries: [], commit: 1 }));
    const resp = f.node.ready().messages[0];
    expect([MessageType[resp.type], resp.reject, resp.index, resp.rejectHint, resp.logTerm]).toEqual(['AppResp', true, 8, 3, 3]);
  });

  test('a follower whose log is short hints its last index', () => {
    const f = follower([1, 1]);
    f.node.step(makeMessage({ type: MessageType.App, from: 1n, to: 2n, term: 2, index: 9, logTerm: 2, entries: [], commit: 0 }));
    const resp = f.node.ready().messages[0];
    expect([resp.reject, resp.index, resp.rejectHint, resp.logTerm]).toEqual([true, 9, 2, 1]);
  });
});

describe('fast backoff on the leader', () => {
  test('a rejection hint lets the leader skip all its entries with larger terms in one step', () => {
    // Leader: 1 3 3 3 5 5 5 5 5 (term 6 after election adds index 10); follower: 1 1 1 1 2 2.
    const n = leaderWith([1, 3, 3, 3, 5, 5, 5, 5, 5], [1n, 2n, 3n]);
    drainReady(n);
    const pr = n.node.raft.tracker.progress.get(2n);
    expect(pr?.next).toBe(10);
    // The follower rejects the probe at index 9 with hint (6, term 2).
    n.node.step(appResp(2n, 6, 9, { reject: true, rejectHint: 6, logTerm: 2 }));
    // Indexes 2..6 have leader terms > 2 and cannot match: the next probe is at index 1.
    const probe = apps(drainReady(n), 2n);
    expect(probe.map((m) => [m.index, m.logTerm, m.entries.length])).toEqual([[1, 1, 9]]);
  });

  test('without a term in the hint the leader probes right after the hinted index', () => {
    const n = leaderWith([1, 1, 1, 1, 1], [1n, 2n, 3n]);
    drainReady(n);
    n.node.step(appResp(2n, 2, 5, { reject: true, rejectHint: 2, logTerm: 0 }));
    expect(apps(drainReady(n), 2n).map((m) => [m.index, m.logTerm])).toEqual([[2, 1]]);
  });

  test('stale rejections (not for the outstanding probe) are ignored', () => {
    const n = leaderWith([1, 1, 1, 1, 1], [1n, 2n, 3n]);
    drainReady(n);
    n.node.step(appResp(2n, 2, 3, { reject: true, rejectHint: 1, logTerm: 1 }));
    expect(n.node.raft.tracker.progress.get(2n)?.next).toBe(6);
    expect(apps(drainReady(n), 2n)).toEqual([]);
  });

  test('end to end: a follower with a long divergent tail converges', () => {
    const net = new TestNetwork([
      newTestNode({ id: 1n, storage: storageWith([1, 2, 2, 2, 2, 2], [1n, 2n, 3n], 2, 1), config: { preVote: false } }),
      newTestNode({ id: 2n, storage: storageWith([1, 2, 2, 2, 2, 2], [1n, 2n, 3n], 2, 1), config: { preVote: false } }),
      newTestNode({ id: 3n, storage: storageWith([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [1n, 2n, 3n], 2, 1), config: { preVote: false } }),
    ]);
    net.campaign(1);
    net.propose(1, 'z');
    const terms = (id: number) => net.get(id).node.raft.log.allEntries().map((e) => e.term);
    expect(terms(3)).toEqual(terms(1));
    // Rejections to the leader: the hint skipped the divergent tail at once.
    const rejections = net.delivered.filter((m) => m.type === MessageType.AppResp && m.reject && m.from === 3n);
    expect(rejections.length).toBeLessThanOrEqual(2);
  });
});

describe('flow control', () => {
  test('in Probe state only one append is outstanding until the follower answers', () => {
    const n = leaderWith([], [1n, 2n]);
    drainReady(n);
    const pr = n.node.raft.tracker.progress.get(2n);
    expect(pr?.state).toBe(ProgressState.Probe);
    expect(pr?.isPaused()).toBe(true);
    n.node.propose(utf8('a'));
    n.node.propose(utf8('b'));
    expect(apps(drainReady(n), 2n)).toEqual([]);
    // The heartbeat answer unpauses a probing follower and the probe is resent.
    n.node.step(makeMessage({ type: MessageType.HeartbeatResp, from: 2n, to: 1n, term: 1 }));
    expect(apps(drainReady(n), 2n).map((m) => [m.index, m.entries.length])).toEqual([[0, 3]]);
  });

  test('in Replicate state appends are pipelined up to maxInflightMsgs, then paused until acks', () => {
    const n = leaderWith([], [1n, 2n], { maxInflightMsgs: 2 });
    drainReady(n);
    n.node.step(appResp(2n, 1, 1));
    drainReady(n);
    const pr = n.node.raft.tracker.progress.get(2n);
    expect(pr?.state).toBe(ProgressState.Replicate);
    for (const d of ['a', 'b', 'c']) n.node.propose(utf8(d));
    const sent = apps(drainReady(n), 2n);
    expect(sent.map((m) => [m.index, m.entries.map((e) => e.index)])).toEqual([
      [1, [2]],
      [2, [3]],
    ]);
    expect(pr?.isPaused()).toBe(true);
    expect(pr?.inflights.count).toBe(2);
    // One ack frees a slot: the third entry goes out.
    n.node.step(appResp(2n, 1, 2));
    expect(apps(drainReady(n), 2n).map((m) => [m.index, m.entries.map((e) => e.index)])).toEqual([[3, [4]]]);
  });

  test('maxInflightBytes bounds the payload in flight (the window closes once it is reached)', () => {
    const n = leaderWith([], [1n, 2n], { maxInflightMsgs: 100, maxInflightBytes: 20, maxSizePerMsg: 1 });
    drainReady(n);
    n.node.step(appResp(2n, 1, 1));
    drainReady(n);
    for (const d of ['0123456789', '0123456789', '0123456789']) n.node.propose(utf8(d));
    // Two 10-byte entries reach the 20-byte limit: the third waits for an ack.
    expect(apps(drainReady(n), 2n).map((m) => m.entries.map((e) => e.index))).toEqual([[2], [3]]);
    const pr = n.node.raft.tracker.progress.get(2n);
    expect([pr?.inflights.count, pr?.inflights.bytes, pr?.isPaused()]).toEqual([2, 20, true]);
    n.node.step(appResp(2n, 1, 2));
    expect(apps(drainReady(n), 2n).map((m) => m.entries.map((e) => e.index))).toEqual([[4]]);
  });

  test('appends are batched up to maxSizePerMsg bytes (but always at least one entry)', () => {
    const n = leaderWith([], [1n, 2n], { maxSizePerMsg: 60 });
    drainReady(n);
    n.node.step(appResp(2n, 1, 1));
    drainReady(n);
    n.node.raft.tracker.progress.get(2n)?.becomeProbe(); // probe: one message with as many entries as fit
    for (const d of ['aaaaaaaaaa', 'bbbbbbbbbb', 'cccccccccc', 'dddddddddd']) n.node.propose(utf8(d));
    drainReady(n);
    n.node.step(makeMessage({ type: MessageType.HeartbeatResp, from: 2n, to: 1n, term: 1 }));
    // Each entry counts payload + 16 bytes of overhead: 26 bytes, so two fit in 60.
    expect(apps(drainReady(n), 2n).map((m) => m.entries.length)).toEqual([2]);
  });

  test('a heartbeat answer from a follower with a full window triggers an empty probe (recovers lost appends)', () => {
    const n = leaderWith([], [1n, 2n], { maxInflightMsgs: 1 });
    drainReady(n);
    n.node.step(appResp(2n, 1, 1));
    drainReady(n);
    n.node.propose(utf8('lost'));
    expect(apps(drainReady(n), 2n)).toHaveLength(1); // this one is lost in the network
    n.node.step(makeMessage({ type: MessageType.HeartbeatResp, from: 2n, to: 1n, term: 1 }));
    const retry = apps(drainReady(n), 2n);
    expect(retry.map((m) => [m.index, m.entries.length])).toEqual([[2, 0]]);
    // The follower rejects (it lacks index 2): the leader falls back to probing from its match.
    n.node.step(appResp(2n, 1, 2, { reject: true, rejectHint: 1, logTerm: 1 }));
    expect(n.node.raft.tracker.progress.get(2n)?.state).toBe(ProgressState.Probe);
    expect(apps(drainReady(n), 2n).map((m) => [m.index, m.entries.map((e) => e.index)])).toEqual([[1, [2]]]);
  });

  test('an unreachable report sends a replicating follower back to probing', () => {
    const n = leaderWith([], [1n, 2n]);
    drainReady(n);
    n.node.step(appResp(2n, 1, 1));
    expect(n.node.raft.tracker.progress.get(2n)?.state).toBe(ProgressState.Replicate);
    n.node.reportUnreachable(2n);
    expect(n.node.raft.tracker.progress.get(2n)?.state).toBe(ProgressState.Probe);
  });
});

describe('proposals', () => {
  test('followers forward proposals to the leader', () => {
    const net = TestNetwork.ofSize(3);
    net.campaign(1);
    net.propose(3, 'from-3');
    expect(net.appliedData(1)).toEqual(['from-3']);
    expect(net.delivered.some((m) => m.type === MessageType.Prop && m.from === 3n && m.to === 1n)).toBe(true);
  });

  test('without a known leader a proposal is dropped with an error', () => {
    const n = newTestNode({ id: 1n, voters: [1n, 2n, 3n] });
    expect(() => n.node.propose(utf8('x'))).toThrow(ProposalDroppedError);
  });

  test('with forwarding disabled a follower drops proposals', () => {
    const net = new TestNetwork([1n, 2n, 3n].map((id) => newTestNode({ id, voters: [1n, 2n, 3n], config: { disableProposalForwarding: true } })));
    net.campaign(1);
    expect(() => net.get(2).node.propose(utf8('x'))).toThrow('forwarding is disabled');
  });

  test('the leader refuses proposals once its uncommitted tail exceeds maxUncommittedEntriesSize', () => {
    const n = leaderWith([], [1n, 2n, 3n], { maxUncommittedEntriesSize: 10 });
    n.node.propose(utf8('12345678'));
    expect(() => n.node.propose(utf8('12345678'))).toThrow('too many uncommitted entries');
  });

  test('every proposal is applied once, in order, on every node', () => {
    const net = TestNetwork.ofSize(5);
    net.campaign(2);
    const expected: string[] = [];
    for (let i = 0; i < 20; i++) {
      const d = `v${i}`;
      expected.push(d);
      net.propose(1 + (i % 5), d);
    }
    for (const id of [1, 2, 3, 4, 5]) expect(net.appliedData(id)).toEqual(expected);
  });
});
