// The Ready/advance contract of RawNode: what each Ready holds, what must be persisted before what, how
// steps between ready() and advance() are handled, and what advance() acknowledges.
import {
  EntryType,
  MemoryStorage,
  MessageType,
  NONE,
  RawNode,
  ReadyNotAdvancedError,
  SeededRandom,
  StateType,
  makeMessage,
} from '../../src/raft';
import { drainReady, newTestNode, persistReady, utf8 } from '../sim/harness';

describe('Ready', () => {
  test('one Ready at a time: ready() again before advance() throws, and hasReady() is false meanwhile', () => {
    const n = newTestNode({ id: 1n, voters: [1n, 2n, 3n] });
    n.node.campaign();
    expect(n.node.hasReady()).toBe(true);
    n.node.ready();
    expect(n.node.awaitingAdvance).toBe(true);
    expect(n.node.hasReady()).toBe(false);
    expect(() => n.node.ready()).toThrow(ReadyNotAdvancedError);
    n.node.advance();
    expect(() => n.node.advance()).toThrow('without a pending Ready');
  });

  test('a leader proposal: entries to persist and appends to send in one Ready; committed entries after acks', () => {
    const n = newTestNode({ id: 1n, voters: [1n, 2n], config: { preVote: false } });
    n.node.campaign();
    n.node.step(makeMessage({ type: MessageType.VoteResp, from: 2n, to: 1n, term: 1 }));
    drainReady(n);
    n.node.step(makeMessage({ type: MessageType.AppResp, from: 2n, to: 1n, term: 1, index: 1 }));
    drainReady(n);
    n.node.propose(utf8('hello'));
    const rd = n.node.ready();
    expect(rd.entries.map((e) => [e.index, e.term, new TextDecoder().decode(e.data)])).toEqual([[2, 1, 'hello']]);
    expect(rd.mustSync).toBe(true);
    expect(rd.committedEntries).toEqual([]);
    expect(rd.messages.map((m) => [MessageType[m.type], m.to, m.index, m.entries.length])).toEqual([['App', 2n, 1, 1]]);
    persistReady(n.storage, rd);
    n.node.advance();
    n.node.step(makeMessage({ type: MessageType.AppResp, from: 2n, to: 1n, term: 1, index: 2 }));
    const rd2 = n.node.ready();
    expect(rd2.hardState).toEqual({ term: 1, vote: 1n, commit: 2 });
    expect(rd2.mustSync).toBe(false); // only the commit index changed
    expect(rd2.entries).toEqual([]);
    expect(rd2.committedEntries.map((e) => e.index)).toEqual([2]);
    // The new commit index goes to the follower right away (an empty append).
    expect(rd2.messages.map((m) => [MessageType[m.type], m.index, m.entries.length, m.commit])).toEqual([['App', 2, 0, 2]]);
    persistReady(n.storage, rd2);
    n.node.advance();
    expect(n.node.raft.log.applied).toBe(2);
    expect(n.node.hasReady()).toBe(false);
  });

  test('softState appears only when leader or role changes', () => {
    const n = newTestNode({ id: 1n, voters: [1n] });
    expect(n.node.hasReady()).toBe(false);
    n.node.campaign();
    const rd = n.node.ready();
    expect(rd.softState).toEqual({ lead: 1n, state: StateType.Leader });
    persistReady(n.storage, rd);
    n.node.advance();
    const rd2 = n.node.ready();
    expect(rd2.softState).toBeUndefined();
    n.node.advance();
  });

  test('committed entries are bounded by maxCommittedSizePerReady and delivered exactly once', () => {
    const storage = new MemoryStorage({ voters: [1n], learners: [] });
    storage.append(Array.from({ length: 10 }, (_, i) => ({ term: 1, index: i + 1, type: EntryType.Normal, data: new Uint8Array(100) })));
    storage.setHardState({ term: 1, vote: 1n, commit: 10 });
    const n = new RawNode({ id: 1n, storage, electionTick: 10, heartbeatTick: 1, random: new SeededRandom(1), maxCommittedSizePerReady: 350 });
    const batches: number[][] = [];
    for (let i = 0; i < 10 && n.hasReady(); i++) {
      const rd = n.ready();
      batches.push(rd.committedEntries.map((e) => e.index));
      n.advance();
    }
    expect(batches).toEqual([
      [1, 2, 3],
      [4, 5, 6],
      [7, 8, 9],
      [10],
    ]);
  });

  test('steps between ready() and advance(): entries replaced meanwhile are not marked stable and are re-emitted', () => {
    const f = newTestNode({ id: 2n, voters: [1n, 2n, 3n] });
    const e = (index: number, term: number, d: string) => ({ index, term, type: EntryType.Normal, data: utf8(d) });
    f.node.step(makeMessage({ type: MessageType.App, from: 1n, to: 2n, term: 1, index: 0, logTerm: 0, entries: [e(1, 1, 'a'), e(2, 1, 'b'), e(3, 1, 'c')], commit: 1 }));
    const rd = f.node.ready();
    expect(rd.entries.map((x) => x.index)).toEqual([1, 2, 3]);
    // While the driver writes them, a new leader (term 2) overwrites index 2 on.
    f.node.step(makeMessage({ type: MessageType.App, from: 3n, to: 2n, term: 2, index: 1, logTerm: 1, entries: [e(2, 2, 'x')], commit: 1 }));
    persistReady(f.storage, rd);
    f.node.advance();
    // The write of 1..3 does not make the new entry 2 "stable": it is handed out again.
    const rd2 = f.node.ready();
    expect(rd2.entries.map((x) => [x.index, x.term])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    persistReady(f.storage, rd2);
    f.node.advance();
    expect(f.storage.entries(1, f.storage.lastIndex() + 1).map((x) => [x.index, x.term])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(f.node.raft.log.unstableEntries()).toEqual([]);
  });

  test('appends arriving while a Ready is in flight are handed out in the next one', () => {
    const f = newTestNode({ id: 2n, voters: [1n, 2n, 3n] });
    const e = (index: number, d: string) => ({ index, term: 1, type: EntryType.Normal, data: utf8(d) });
    f.node.step(makeMessage({ type: MessageType.App, from: 1n, to: 2n, term: 1, index: 0, logTerm: 0, entries: [e(1, 'a')], commit: 0 }));
    const rd = f.node.ready();
    f.node.step(makeMessage({ type: MessageType.App, from: 1n, to: 2n, term: 1, index: 1, logTerm: 1, entries: [e(2, 'b')], commit: 1 }));
    // The ack for index 2 must not leave with the first Ready (index 2 is not on disk yet).
    expect(rd.messages.map((m) => m.index)).toEqual([1]);
    persistReady(f.storage, rd);
    f.node.advance();
    const rd2 = f.node.ready();
    expect(rd2.entries.map((x) => x.index)).toEqual([2]);
    expect(rd2.messages.map((m) => m.index)).toEqual([2]);
    expect(rd2.committedEntries.map((x) => x.index)).toEqual([1]);
  });

  test('a vote is in the same Ready as the hard state recording it', () => {
    const n = newTestNode({ id: 1n, voters: [1n, 2n, 3n], config: { preVote: false } });
    n.node.step(makeMessage({ type: MessageType.Vote, from: 2n, to: 1n, term: 3, index: 0, logTerm: 0 }));
    const rd = n.node.ready();
    expect(rd.hardState).toEqual({ term: 3, vote: 2n, commit: 0 });
    expect(rd.mustSync).toBe(true);
    expect(rd.messages.map((m) => [MessageType[m.type], m.reject])).toEqual([['VoteResp', false]]);
  });

  test('readStates are handed out once', () => {
    const n = newTestNode({ id: 1n, voters: [1n] });
    n.node.campaign();
    drainReady(n);
    n.node.readIndex(utf8('q'));
    const rd = n.node.ready();
    expect(rd.readStates.map((r) => r.index)).toEqual([1]);
    n.node.advance();
    expect(n.node.hasReady()).toBe(false);
  });

  test('status reports the node and, on a leader, its peers', () => {
    const n = newTestNode({ id: 1n, voters: [1n] });
    expect(n.node.status()).toMatchObject({ id: 1n, term: 0, lead: NONE, state: StateType.Follower });
    n.node.campaign();
    drainReady(n);
    const st = n.node.status();
    expect(st).toMatchObject({ term: 1, lead: 1n, state: StateType.Leader, commit: 1, applied: 1 });
    expect(st.progress?.get(1n)?.match).toBe(1);
  });
});
