// Leader election: randomized timeouts from the injected PRNG, votes and their persistence, the log
// up-to-date rule, pre-vote, check-quorum and the followers' leader lease.
import {
  MemoryStorage,
  MessageType,
  NONE,
  RawNode,
  SeededRandom,
  StateType,
  TRANSFER_CONTEXT,
  makeMessage,
} from '../../src/raft';
import { TestNetwork, drainReady, newTestNode, utf8 } from '../sim/harness';

describe('randomized election timeout', () => {
  test('lies in [electionTick, 2*electionTick) and is reproducible from the seed', () => {
    const timeouts = (seed: number): number[] => {
      const n = newTestNode({ id: 1n, voters: [1n, 2n, 3n], seed, config: { preVote: false } });
      const out: number[] = [];
      for (let i = 0; i < 50; i++) {
        n.node.raft.becomeFollower(n.node.raft.term + 1, NONE);
        out.push(n.node.raft.randomizedElectionTimeout);
      }
      return out;
    };
    const a = timeouts(42);
    expect(a.every((t) => t >= 10 && t < 20)).toBe(true);
    expect(new Set(a).size).toBeGreaterThan(5);
    expect(timeouts(42)).toEqual(a);
    expect(timeouts(43)).not.toEqual(a);
  });

  test('a follower campaigns exactly when its randomized timeout elapses', () => {
    const n = newTestNode({ id: 1n, voters: [1n, 2n, 3n], config: { preVote: false } });
    const timeout = n.node.raft.randomizedElectionTimeout;
    for (let i = 1; i < timeout; i++) {
      n.node.tick();
      expect(n.node.raft.state).toBe(StateType.Follower);
    }
    n.node.tick();
    expect(n.node.raft.state).toBe(StateType.Candidate);
    expect(n.node.raft.term).toBe(1);
  });
});

describe('elections without pre-vote', () => {
  test('candidate bumps its term, votes for itself, persists that before asking for votes', () => {
    const n = newTestNode({ id: 1n, voters: [1n, 2n, 3n], config: { preVote: false } });
    n.node.campaign();
    const rd = n.node.ready();
    expect(rd.hardState).toEqual({ term: 1, vote: 1n, commit: 0 });
    expect(rd.mustSync).toBe(true);
    expect(rd.softState).toEqual({ lead: NONE, state: StateType.Candidate });
    expect(rd.messages.map((m) => [MessageType[m.type], m.to, m.term, m.index, m.logTerm])).toEqual([
      ['Vote', 2n, 1, 0, 0],
      ['Vote', 3n, 1, 0, 0],
    ]);
  });

  test('a majority of votes makes a leader that appends an empty entry of its term', () => {
    const net = TestNetwork.ofSize(3, { config: { preVote: false } });
    net.campaign(1);
    const r1 = net.get(1).node.raft;
    expect(r1.state).toBe(StateType.Leader);
    expect(r1.term).toBe(1);
    expect(r1.log.lastIndex()).toBe(1);
    expect(r1.log.term(1)).toBe(1);
    expect(r1.log.committed).toBe(1);
    for (const id of [2, 3]) {
      expect(net.get(id).node.raft.state).toBe(StateType.Follower);
      expect(net.get(id).node.raft.lead).toBe(1n);
      expect(net.get(id).node.raft.vote).toBe(1n);
    }
  });

  test('a node grants at most one vote per term', () => {
    const n = newTestNode({ id: 1n, voters: [1n, 2n, 3n], config: { preVote: false } });
    n.node.step(makeMessage({ type: MessageType.Vote, from: 2n, to: 1n, term: 5, index: 0, logTerm: 0 }));
    n.node.step(makeMessage({ type: MessageType.Vote, from: 3n, to: 1n, term: 5, index: 0, logTerm: 0 }));
    // A repeat of the granted request is granted again (the response may have been lost).
    n.node.step(makeMessage({ type: MessageType.Vote, from: 2n, to: 1n, term: 5, index: 0, logTerm: 0 }));
    const rd = n.node.ready();
    expect(rd.hardState).toEqual({ term: 5, vote: 2n, commit: 0 });
    expect(rd.messages.map((m) => [m.to, MessageType[m.type], m.reject])).toEqual([
      [2n, 'VoteResp', false],
      [3n, 'VoteResp', true],
      [2n, 'VoteResp', false],
    ]);
  });

  test('votes go only to candidates whose log is at least as up to date (§5.4.1)', () => {
    const storage = new MemoryStorage({ voters: [1n, 2n, 3n], learners: [] });
    storage.append([
      { term: 1, index: 1, type: 0, data: utf8('') },
      { term: 2, index: 2, type: 0, data: utf8('') },
    ]);
    storage.setHardState({ term: 2, vote: NONE, commit: 1 });
    const cases: [number, number, boolean][] = [
      // [candidate last index, candidate last term, granted]
      [1, 1, false], // older last term
      [5, 1, false], // longer but older term
      [1, 2, false], // same term, shorter
      [2, 2, true], // same
      [3, 2, true], // same term, longer
      [1, 3, true], // newer last term
    ];
    for (const [index, logTerm, granted] of cases) {
      const n = newTestNode({ id: 1n, storage: storage.clone(), config: { preVote: false } });
      n.node.step(makeMessage({ type: MessageType.Vote, from: 2n, to: 1n, term: 3, index, logTerm }));
      const resp = n.node.ready().messages[0];
      expect([index, logTerm, resp.type, !resp.reject]).toEqual([index, logTerm, MessageType.VoteResp, granted]);
    }
  });

  test('a candidate that loses (majority rejects) becomes follower', () => {
    const n = newTestNode({ id: 1n, voters: [1n, 2n, 3n], config: { preVote: false } });
    n.node.campaign();
    drainReady(n);
    n.node.step(makeMessage({ type: MessageType.VoteResp, from: 2n, to: 1n, term: 1, reject: true }));
    expect(n.node.raft.state).toBe(StateType.Candidate);
    n.node.step(makeMessage({ type: MessageType.VoteResp, from: 3n, to: 1n, term: 1, reject: true }));
    expect(n.node.raft.state).toBe(StateType.Follower);
    expect(n.node.raft.term).toBe(1);
  });

  test('split vote: nobody wins the term, a later timeout elects someone', () => {
    const net = TestNetwork.ofSize(4, { config: { preVote: false } });
    // 1 and 2 campaign in the same term; each gets one other vote (3 votes for 1, 4 for 2): 2 of 4 each.
    net.cutBoth(1, 4);
    net.cutBoth(2, 3);
    net.get(1).node.campaign();
    net.get(2).node.campaign();
    net.stabilize();
    expect([1, 2, 3, 4].map((id) => net.get(id).node.raft.state)).not.toContain(StateType.Leader);
    net.heal();
    // Tick everyone until someone wins (bounded).
    for (let i = 0; i < 100 && ![1, 2, 3, 4].some((id) => net.get(id).node.raft.state === StateType.Leader); i++) {
      for (const id of [1, 2, 3, 4]) net.get(id).node.tick();
      net.stabilize();
    }
    const leaders = [1, 2, 3, 4].filter((id) => net.get(id).node.raft.state === StateType.Leader);
    expect(leaders).toHaveLength(1);
    expect(net.get(leaders[0]).node.raft.term).toBeGreaterThan(1);
  });

  test('a higher term in any message turns a leader into a follower', () => {
    const net = TestNetwork.ofSize(3, { config: { preVote: false, checkQuorum: false } });
    net.campaign(1);
    const r1 = net.get(1).node.raft;
    net.get(1).node.step(makeMessage({ type: MessageType.App, from: 2n, to: 1n, term: 7, index: 1, logTerm: 1 }));
    expect(r1.state).toBe(StateType.Follower);
    expect(r1.term).toBe(7);
    expect(r1.lead).toBe(2n);
  });

  test('a single-voter cluster elects itself at once and commits alone', () => {
    const n = newTestNode({ id: 1n, voters: [1n] });
    n.node.campaign();
    expect(n.node.raft.state).toBe(StateType.Leader);
    n.node.propose(utf8('x'));
    drainReady(n);
    expect(n.applied.map((e) => new TextDecoder().decode(e.data))).toEqual(['', 'x']);
  });

  test('learners and removed nodes never campaign', () => {
    const learner = newTestNode({ id: 3n, voters: [1n, 2n], learners: [3n] });
    for (let i = 0; i < 100; i++) learner.node.tick();
    expect(learner.node.raft.state).toBe(StateType.Follower);
    expect(drainReady(learner)).toEqual([]);
  });
});

describe('pre-vote', () => {
  test('a pre-candidate asks for votes for term+1 without changing its term or vote', () => {
    const n = newTestNode({ id: 1n, voters: [1n, 2n, 3n], config: { preVote: true } });
    n.node.campaign();
    expect(n.node.raft.state).toBe(StateType.PreCandidate);
    expect(n.node.raft.term).toBe(0);
    const rd = n.node.ready();
    expect(rd.hardState).toBeUndefined();
    expect(rd.messages.map((m) => [MessageType[m.type], m.to, m.term])).toEqual([
      ['PreVote', 2n, 1],
      ['PreVote', 3n, 1],
    ]);
  });

  test('voters answer pre-votes with the request term and do not record them', () => {
    const n = newTestNode({ id: 2n, voters: [1n, 2n, 3n], config: { preVote: true } });
    n.node.step(makeMessage({ type: MessageType.PreVote, from: 1n, to: 2n, term: 1, index: 0, logTerm: 0 }));
    n.node.step(makeMessage({ type: MessageType.PreVote, from: 3n, to: 2n, term: 1, index: 0, logTerm: 0 }));
    expect(n.node.raft.term).toBe(0);
    expect(n.node.raft.vote).toBe(NONE);
    expect(n.node.ready().messages.map((m) => [MessageType[m.type], m.to, m.term, m.reject])).toEqual([
      ['PreVoteResp', 1n, 1, false],
      ['PreVoteResp', 3n, 1, false],
    ]);
  });

  test('winning the pre-vote starts the real election', () => {
    const net = TestNetwork.ofSize(3, { config: { preVote: true } });
    net.campaign(1);
    expect(net.get(1).node.raft.state).toBe(StateType.Leader);
    expect(net.get(1).node.raft.term).toBe(1);
    const kinds = net.delivered.map((m) => MessageType[m.type]);
    expect(kinds.indexOf('PreVote')).toBeLessThan(kinds.indexOf('Vote'));
  });

  test('a partitioned node does not inflate its term, so it cannot disrupt the leader when it returns', () => {
    for (const preVote of [true, false]) {
      const net = TestNetwork.ofSize(3, { config: { preVote, checkQuorum: false } });
      net.campaign(1);
      net.isolate(3);
      net.propose(1, 'x'); // node 3 falls behind
      for (let i = 0; i < 5; i++) net.get(3).node.campaign();
      net.stabilize();
      const isolatedTerm = net.get(3).node.raft.term;
      net.heal();
      // Node 3 tries again once it rejoins (its log is behind: it cannot win either way).
      net.get(3).node.campaign();
      net.stabilize();
      if (preVote) {
        expect(isolatedTerm).toBe(1);
        expect(net.get(1).node.raft.state).toBe(StateType.Leader);
        expect(net.get(1).node.raft.term).toBe(1);
      } else {
        // Without pre-vote the rejoining node's term deposes the leader.
        expect(isolatedTerm).toBe(6);
        expect(net.get(1).node.raft.term).toBeGreaterThan(1);
      }
    }
  });

  test('a pre-candidate that gets rejections from a majority goes back to follower in its own term', () => {
    const storage = new MemoryStorage({ voters: [1n, 2n, 3n], learners: [] });
    storage.setHardState({ term: 2, vote: NONE, commit: 0 });
    const n = newTestNode({ id: 1n, storage, config: { preVote: true } });
    n.node.campaign();
    drainReady(n);
    // Rejections carry the voter's own term (here equal to ours).
    n.node.step(makeMessage({ type: MessageType.PreVoteResp, from: 2n, to: 1n, term: 2, reject: true }));
    expect(n.node.raft.state).toBe(StateType.PreCandidate);
    n.node.step(makeMessage({ type: MessageType.PreVoteResp, from: 3n, to: 1n, term: 2, reject: true }));
    expect(n.node.raft.state).toBe(StateType.Follower);
    expect(n.node.raft.term).toBe(2);
    expect(n.node.raft.vote).toBe(NONE);
  });

  test('a pre-vote rejection from a higher term makes the pre-candidate adopt that term', () => {
    const n = newTestNode({ id: 1n, voters: [1n, 2n, 3n], config: { preVote: true } });
    n.node.campaign();
    drainReady(n);
    n.node.step(makeMessage({ type: MessageType.PreVoteResp, from: 2n, to: 1n, term: 7, reject: true }));
    expect(n.node.raft.state).toBe(StateType.Follower);
    expect(n.node.raft.term).toBe(7);
  });
});

describe('check-quorum and the leader lease', () => {
  test('a leader that hears from no quorum for an election timeout steps down', () => {
    const net = TestNetwork.ofSize(3, { config: { checkQuorum: true } });
    net.campaign(1);
    net.isolate(1);
    const r1 = net.get(1).node.raft;
    // The first check only resets activity flags (followers were active); the second finds none.
    for (let i = 0; i < 10; i++) net.tick(1);
    expect(r1.state).toBe(StateType.Leader);
    for (let i = 0; i < 10; i++) net.tick(1);
    expect(r1.state).toBe(StateType.Follower);
    expect(r1.lead).toBe(NONE);
    expect(r1.term).toBe(1);
  });

  test('a leader with a live quorum stays leader', () => {
    const net = TestNetwork.ofSize(3, { config: { checkQuorum: true } });
    net.campaign(1);
    net.isolate(3);
    for (let i = 0; i < 50; i++) net.tick(1);
    expect(net.get(1).node.raft.state).toBe(StateType.Leader);
  });

  test('followers that recently heard from the leader ignore vote requests (no term change, no reply)', () => {
    const net = TestNetwork.ofSize(3, { config: { checkQuorum: true, preVote: false } });
    net.campaign(1);
    const f2 = net.get(2);
    f2.node.step(makeMessage({ type: MessageType.Vote, from: 3n, to: 2n, term: 5, index: 9, logTerm: 9 }));
    expect(f2.node.raft.term).toBe(1);
    expect(drainReady(f2).filter((m) => m.type === MessageType.VoteResp)).toEqual([]);
    // After an election timeout without the leader, the lease is over and the vote is granted.
    for (let i = 0; i < 10; i++) f2.node.tick();
    drainReady(f2);
    f2.node.step(makeMessage({ type: MessageType.Vote, from: 3n, to: 2n, term: 5, index: 9, logTerm: 9 }));
    expect(f2.node.raft.term).toBe(5);
    expect(drainReady(f2).map((m) => [MessageType[m.type], m.reject])).toEqual([['VoteResp', false]]);
  });

  test('a leadership-transfer vote bypasses the lease', () => {
    const net = TestNetwork.ofSize(3, { config: { checkQuorum: true, preVote: false } });
    net.campaign(1);
    const f2 = net.get(2);
    const last = f2.node.raft.log.lastIndex();
    f2.node.step(makeMessage({ type: MessageType.Vote, from: 3n, to: 2n, term: 2, index: last, logTerm: 1, context: TRANSFER_CONTEXT }));
    expect(f2.node.raft.term).toBe(2);
    expect(f2.node.raft.vote).toBe(3n);
  });

  test('a node with a higher term rejoining a lease-holding cluster is brought back by the leader', () => {
    // Without pre-vote the isolated node inflates its term; with check-quorum the others ignore its
    // votes, but its answer to the leader's append (carrying its higher term) forces a new election
    // that it can take part in.
    const net = TestNetwork.ofSize(3, { config: { checkQuorum: true, preVote: false } });
    net.campaign(1);
    net.isolate(3);
    for (let i = 0; i < 3; i++) net.get(3).node.campaign();
    net.stabilize();
    expect(net.get(3).node.raft.term).toBe(4);
    net.heal();
    net.get(1).node.propose(utf8('x'));
    net.stabilize();
    // The stale-term appends were answered with term 4: the leader stepped down.
    expect(net.get(1).node.raft.term).toBe(4);
    expect(net.get(1).node.raft.state).toBe(StateType.Follower);
    // A new election (bounded) restores a leader that all follow.
    for (let i = 0; i < 100 && ![1, 2, 3].some((id) => net.get(id).node.raft.state === StateType.Leader); i++) {
      for (const id of [1, 2, 3]) net.get(id).node.tick();
      net.stabilize();
    }
    const leader = [1, 2, 3].find((id) => net.get(id).node.raft.state === StateType.Leader);
    expect(leader).toBeDefined();
    expect(leader).not.toBe(3); // its log lacks 'x'
  });

  test('a stale leader receiving a lower-term append tells the sender its term', () => {
    const n = newTestNode({ id: 2n, voters: [1n, 2n, 3n], config: { checkQuorum: true } });
    n.node.step(makeMessage({ type: MessageType.Heartbeat, from: 3n, to: 2n, term: 4 }));
    drainReady(n);
    n.node.step(makeMessage({ type: MessageType.App, from: 1n, to: 2n, term: 2, index: 0, logTerm: 0 }));
    expect(n.node.ready().messages.map((m) => [MessageType[m.type], m.to, m.term])).toEqual([['AppResp', 1n, 4]]);
  });
});

test('RawNode refuses local message types from the network', () => {
  const n = new RawNode({ id: 1n, storage: new MemoryStorage({ voters: [1n], learners: [] }), electionTick: 10, heartbeatTick: 1, random: new SeededRandom(1) });
  expect(() => n.step(makeMessage({ type: MessageType.Hup, from: 2n, to: 1n }))).toThrow('local message');
});
