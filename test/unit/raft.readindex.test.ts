// ReadIndex (safe mode) and leadership transfer.
import { MessageType, NONE, ProposalDroppedError, StateType, makeMessage } from '../../src/raft';
import { TestNetwork, drainReady, newTestNode, utf8 } from '../sim/harness';

const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe('ReadIndex', () => {
  test('the leader answers with its commit index after a heartbeat round confirms its leadership', () => {
    const net = TestNetwork.ofSize(3);
    net.campaign(1);
    net.propose(1, 'a');
    const leader = net.get(1);
    const committed = leader.node.raft.log.committed;
    net.delivered.length = 0;
    leader.node.readIndex(utf8('r1'));
    const out = drainReady(leader);
    // No answer yet: first a heartbeat round carrying the request context.
    expect(leader.readStates).toEqual([]);
    expect(out.map((m) => [MessageType[m.type], m.to, text(m.context ?? new Uint8Array())])).toEqual([
      ['Heartbeat', 2n, 'r1'],
      ['Heartbeat', 3n, 'r1'],
    ]);
    net.send(out);
    expect(leader.readStates.map((rs) => [rs.index, text(rs.requestCtx)])).toEqual([[committed, 'r1']]);
  });

  test('one quorum acknowledgement releases the request (and earlier ones)', () => {
    const net = TestNetwork.ofSize(3);
    net.campaign(1);
    const leader = net.get(1);
    leader.node.readIndex(utf8('r1'));
    leader.node.readIndex(utf8('r2'));
    const out = drainReady(leader);
    // Only node 2 answers, and only the r2 round: that is a quorum (with the leader) for both.
    const hb = out.find((m) => m.to === 2n && text(m.context ?? new Uint8Array()) === 'r2');
    expect(hb).toBeDefined();
    net.cutBoth(1, 3);
    net.send([hb!]);
    expect(leader.readStates.map((rs) => text(rs.requestCtx))).toEqual(['r1', 'r2']);
  });

  test('a leader that cannot reach a quorum (possibly deposed) never answers', () => {
    const net = TestNetwork.ofSize(3);
    net.campaign(1);
    net.isolate(1);
    net.get(1).node.readIndex(utf8('stale'));
    net.stabilize();
    net.tick(1, 3);
    expect(net.get(1).readStates).toEqual([]);
  });

  test('a new leader answers only after it committed an entry of its own term', () => {
    const n = newTestNode({ id: 1n, voters: [1n, 2n, 3n], config: { preVote: false } });
    n.node.campaign();
    drainReady(n);
    n.node.step(makeMessage({ type: MessageType.VoteResp, from: 2n, to: 1n, term: 1 }));
    drainReady(n);
    n.node.readIndex(utf8('early'));
    // Held back: no heartbeat with the context, nothing answered.
    const out = drainReady(n);
    expect(out.filter((m) => m.context !== undefined && text(m.context) === 'early')).toEqual([]);
    // The first entry of term 1 commits: the request proceeds with a heartbeat round.
    n.node.step(makeMessage({ type: MessageType.AppResp, from: 2n, to: 1n, term: 1, index: 1 }));
    expect(n.node.raft.log.committed).toBe(1);
    const hbs = drainReady(n).filter((m) => m.type === MessageType.Heartbeat);
    expect(hbs.map((m) => [m.to, text(m.context ?? new Uint8Array())])).toEqual([
      [2n, 'early'],
      [3n, 'early'],
    ]);
    n.node.step(makeMessage({ type: MessageType.HeartbeatResp, from: 3n, to: 1n, term: 1, context: utf8('early') }));
    drainReady(n);
    expect(n.readStates.map((rs) => [rs.index, text(rs.requestCtx)])).toEqual([[1, 'early']]);
  });

  test('a follower forwards the request and gets the leader’s read index back', () => {
    const net = TestNetwork.ofSize(3);
    net.campaign(1);
    net.propose(1, 'a');
    net.get(3).node.readIndex(utf8('via-3'));
    net.stabilize();
    expect(net.get(3).readStates.map((rs) => [rs.index, text(rs.requestCtx)])).toEqual([[net.get(1).node.raft.log.committed, 'via-3']]);
    expect(net.delivered.some((m) => m.type === MessageType.ReadIndexResp && m.to === 3n)).toBe(true);
  });

  test('a single-voter leader answers at once', () => {
    const n = newTestNode({ id: 1n, voters: [1n] });
    n.node.campaign();
    drainReady(n);
    n.node.readIndex(utf8('solo'));
    drainReady(n);
    expect(n.readStates.map((rs) => [rs.index, text(rs.requestCtx)])).toEqual([[1, 'solo']]);
  });

  test('without a leader the request is dropped (the driver retries)', () => {
    const n = newTestNode({ id: 1n, voters: [1n, 2n, 3n] });
    n.node.readIndex(utf8('lost'));
    expect(drainReady(n)).toEqual([]);
    expect(n.readStates).toEqual([]);
  });
});

describe('leadership transfer', () => {
  test('to an up-to-date follower: MsgTimeoutNow, and it wins at once (bypassing pre-vote and the lease)', () => {
    const net = TestNetwork.ofSize(3, { config: { preVote: true, checkQuorum: true } });
    net.campaign(1);
    net.propose(1, 'a');
    net.delivered.length = 0;
    net.get(1).node.transferLeader(2n);
    net.stabilize();
    expect(net.delivered.map((m) => MessageType[m.type]).slice(0, 2)).toEqual(['TimeoutNow', 'Vote']);
    expect(net.delivered.filter((m) => m.type === MessageType.PreVote)).toEqual([]);
    expect(net.get(2).node.raft.state).toBe(StateType.Leader);
    expect(net.get(2).node.raft.term).toBe(2);
    expect(net.get(1).node.raft.state).toBe(StateType.Follower);
    expect(net.get(1).node.raft.lead).toBe(2n);
  });

  test('to a lagging follower: the leader first catches it up, then sends MsgTimeoutNow', () => {
    const net = TestNetwork.ofSize(3);
    net.campaign(1);
    net.isolate(3);
    net.propose(1, 'a');
    net.propose(1, 'b');
    net.heal();
    net.cut.add('1->3'); // hold appends back for a moment
    net.get(1).node.transferLeader(3n);
    net.stabilize();
    expect(net.get(1).node.raft.leadTransferee).toBe(3n);
    expect(net.get(1).node.raft.state).toBe(StateType.Leader);
    // Proposals are refused while the transfer is in progress.
    expect(() => net.get(1).node.propose(utf8('c'))).toThrow(ProposalDroppedError);
    net.heal();
    net.tick(1); // heartbeat → node 3 answers → leader appends → caught up → TimeoutNow
    expect(net.get(3).node.raft.state).toBe(StateType.Leader);
    expect(net.appliedData(3)).toEqual(['a', 'b']);
  });

  test('an unfinished transfer is abandoned after an election timeout', () => {
    const net = TestNetwork.ofSize(3);
    net.campaign(1);
    net.isolate(3);
    net.get(1).node.transferLeader(3n);
    net.stabilize();
    expect(net.get(1).node.raft.leadTransferee).toBe(3n);
    for (let i = 0; i < 10; i++) net.tick(1);
    expect(net.get(1).node.raft.leadTransferee).toBe(NONE);
    expect(net.get(1).node.raft.state).toBe(StateType.Leader);
    net.propose(1, 'after');
    expect(net.appliedData(2)).toEqual(['after']);
  });

  test('a follower forwards the request to the leader', () => {
    const net = TestNetwork.ofSize(3);
    net.campaign(1);
    net.get(3).node.transferLeader(2n);
    net.stabilize();
    expect(net.get(2).node.raft.state).toBe(StateType.Leader);
  });

  test('transfers to the leader itself, to learners or to unknown nodes are ignored', () => {
    const net = new TestNetwork([1n, 2n, 3n].map((id) => newTestNode({ id, voters: [1n, 2n], learners: [3n] })));
    net.campaign(1);
    for (const to of [1n, 3n, 9n]) {
      net.get(1).node.transferLeader(to);
      net.stabilize();
      expect(net.get(1).node.raft.state).toBe(StateType.Leader);
      expect(net.get(1).node.raft.leadTransferee).toBe(NONE);
    }
  });
});
