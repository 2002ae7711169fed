// Membership changes through the log, one at a time: add voter, add learner, promote, remove; learners
// replicate but neither vote nor count; a removed leader steps down; the ConfChange encoding; bootstrap.
import {
  ConfChange,
  ConfChangeType,
  EMPTY_BYTES,
  EntryType,
  MemoryStorage,
  MessageType,
  NodeId,
  ProposalDroppedError,
  RawNode,
  SeededRandom,
  StateType,
  decodeConfChange,
  encodeConfChange,
  makeMessage,
} from '../../src/raft';
import { TestNetwork, drainReady, newTestNode } from '../sim/harness';

function cc(type: ConfChangeType, nodeId: NodeId): ConfChange {
  return { id: 0n, type, nodeId, context: EMPTY_BYTES };
}

function clusterWithSpares(voters: NodeId[], spares: NodeId[]): TestNetwork {
  return TestNetwork.bootstrapped(voters, spares);
}

describe('membership changes', () => {
  test('adding a voter: the new node catches up and then counts in the quorum', () => {
    const net = clusterWithSpares([1n, 2n, 3n], [4n]);
    net.campaign(1);
    net.propose(1, 'before');
    net.applyConf(1, cc(ConfChangeType.AddNode, 4n));
    expect(net.get(1).confState).toEqual({ voters: [1n, 2n, 3n, 4n], learners: [] });
    expect(net.get(4).confState).toEqual({ voters: [1n, 2n, 3n, 4n], learners: [] });
    expect(net.appliedData(4)).toEqual(['before']);
    // Four voters: a quorum is three. With 3 and 4 cut off nothing commits.
    net.isolate(3);
    net.isolate(4);
    const before = net.get(1).node.raft.log.committed;
    net.propose(1, 'stuck');
    expect(net.get(1).node.raft.log.committed).toBe(before);
    net.heal();
    net.tick(1);
    expect(net.appliedData(4)).toEqual(['before', 'stuck']);
  });

  test('learners receive the log but neither vote nor count towards commit', () => {
    const net = clusterWithSpares([1n, 2n, 3n], [4n]);
    net.campaign(1);
    net.applyConf(1, cc(ConfChangeType.AddLearnerNode, 4n));
    expect(net.get(1).confState).toEqual({ voters: [1n, 2n, 3n], learners: [4n] });
    net.propose(1, 'x');
    expect(net.appliedData(4)).toEqual(['x']);
    expect(net.get(4).node.raft.isLearner).toBe(true);
    // With two voters down, the leader plus the learner is not a quorum.
    net.isolate(2);
    net.isolate(3);
    const before = net.get(1).node.raft.log.committed;
    net.propose(1, 'y');
    expect(net.get(1).node.raft.log.committed).toBe(before);
    // A learner does not campaign however long it waits.
    net.isolate(1);
    for (let i = 0; i < 50; i++) net.tick(4);
    expect(net.get(4).node.raft.state).toBe(StateType.Follower);
    // Vote requests are not sent to learners.
    net.heal();
    net.delivered.length = 0;
    net.get(2).node.campaign();
    net.stabilize();
    expect(net.delivered.filter((m) => (m.type === MessageType.Vote || m.type === MessageType.PreVote) && m.to === 4n)).toEqual([]);
  });

  test('promoting a learner makes it a voter (AddNode on a learner)', () => {
    const net = new TestNetwork([1n, 2n, 3n, 4n].map((id) => newTestNode({ id, voters: [1n, 2n, 3n], learners: [4n] })));
    net.campaign(1);
    net.applyConf(1, cc(ConfChangeType.AddNode, 4n));
    for (const id of [1, 2, 3, 4]) expect(net.get(id).confState).toEqual({ voters: [1n, 2n, 3n, 4n], learners: [] });
    expect(net.get(4).node.raft.isLearner).toBe(false);
    expect(net.get(4).node.raft.promotable()).toBe(true);
  });

  test('removing a voter shrinks the quorum', () => {
    const net = TestNetwork.ofSize(3);
    net.campaign(1);
    net.applyConf(1, cc(ConfChangeType.RemoveNode, 3n));
    expect(net.get(1).confState).toEqual({ voters: [1n, 2n], learners: [] });
    expect(net.get(1).node.raft.tracker.progress.has(3n)).toBe(false);
    // Now {1, 2} is the whole cluster: commits need both, and node 3 gets nothing.
    const delivered = net.delivered.length;
    net.propose(1, 'after');
    expect(net.appliedData(2)).toEqual(['after']);
    expect(net.delivered.slice(delivered).filter((m) => m.to === 3n)).toEqual([]);
  });

  test('a removed leader steps down and the rest elect a new one', () => {
    const net = TestNetwork.ofSize(3);
    net.campaign(1);
    net.applyConf(1, cc(ConfChangeType.RemoveNode, 1n));
    expect(net.get(1).node.raft.state).toBe(StateType.Follower);
    expect(net.get(1).node.raft.promotable()).toBe(false);
    net.isolate(1);
    for (let i = 0; i < 30 && net.get(2).node.raft.state !== StateType.Leader && net.get(3).node.raft.state !== StateType.Leader; i++) {
      net.get(2).node.tick();
      net.get(3).node.tick();
      net.stabilize();
    }
    const leader = [2, 3].find((id) => net.get(id).node.raft.state === StateType.Leader);
    expect(leader).toBeDefined();
    net.propose(leader!, 'without-1');
    expect(net.appliedData(2)).toEqual(['without-1']);
    expect(net.appliedData(3)).toEqual(['without-1']);
  });

  test('one change at a time: a second change is refused until the first is applied', () => {
    const n = newTestNode({ id: 1n, voters: [1n, 2n, 3n], config: { preVote: false } });
    n.node.campaign();
    n.node.step(makeMessage({ type: MessageType.VoteResp, from: 2n, to: 1n, term: 1 }));
    drainReady(n);
    n.node.step(makeMessage({ type: MessageType.AppResp, from: 2n, to: 1n, term: 1, index: 1 }));
    drainReady(n); // the leader's first entry is applied: changes are allowed now
    n.node.proposeConfChange(cc(ConfChangeType.AddLearnerNode, 4n));
    expect(() => n.node.proposeConfChange(cc(ConfChangeType.AddLearnerNode, 5n))).toThrow(ProposalDroppedError);
    // A change forwarded by a follower in that situation becomes an empty normal entry.
    const forwarded = makeMessage({
      type: MessageType.Prop,
      from: 2n,
      to: 1n,
      entries: [{ term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange(cc(ConfChangeType.AddLearnerNode, 6n)) }],
    });
    n.node.step(forwarded);
    const tail = n.node.raft.log.allEntries().slice(-2);
    expect(tail.map((e) => EntryType[e.type])).toEqual(['ConfChange', 'Normal']);
    expect(tail[1].data.length).toBe(0);
    // Once the pending change is committed and applied, the next one is accepted.
    drainReady(n); // persisted: the leader counts itself
    n.node.step(makeMessage({ type: MessageType.AppResp, from: 2n, to: 1n, term: 1, index: n.node.raft.log.lastIndex() }));
    drainReady(n); // committed and applied (the harness calls applyConfChange)
    expect(n.node.raft.tracker.learners).toEqual([4n]);
    expect(() => n.node.proposeConfChange(cc(ConfChangeType.AddLearnerNode, 5n))).not.toThrow();
  });

  test('a node does not campaign while it has committed but unapplied conf changes', () => {
    const n = newTestNode({ id: 1n, voters: [1n, 2n, 3n], config: { preVote: false } });
    n.node.step(
      makeMessage({
        type: MessageType.App,
        from: 2n,
        to: 1n,
        term: 1,
        index: 0,
        logTerm: 0,
        commit: 1,
        entries: [{ term: 1, index: 1, type: EntryType.ConfChange, data: encodeConfChange(cc(ConfChangeType.RemoveNode, 3n)) }],
      }),
    );
    n.node.campaign();
    expect(n.node.raft.state).toBe(StateType.Follower);
    drainReady(n); // applies the change
    n.node.campaign();
    expect(n.node.raft.state).toBe(StateType.Candidate);
    expect(n.node.raft.tracker.voters).toEqual([1n, 2n]);
  });

  test('invalid changes are deterministic no-ops (removing the last voter, NONE node id)', () => {
    const n = newTestNode({ id: 1n, voters: [1n] });
    expect(n.node.applyConfChange(cc(ConfChangeType.RemoveNode, 1n))).toEqual({ voters: [1n], learners: [] });
    expect(n.node.applyConfChange(cc(ConfChangeType.AddLearnerNode, 1n))).toEqual({ voters: [1n], learners: [] });
    expect(n.node.applyConfChange(cc(ConfChangeType.AddNode, 0n))).toEqual({ voters: [1n], learners: [] });
    expect(n.node.applyConfChange(cc(ConfChangeType.AddLearnerNode, 2n))).toEqual({ voters: [1n], learners: [2n] });
    expect(n.node.applyConfChange(cc(ConfChangeType.AddNode, 2n))).toEqual({ voters: [1n, 2n], learners: [] });
  });
});

describe('ConfChange encoding', () => {
  test('matches the protobuf bytes of etcd raftpb.ConfChange', () => {
    // ConfChange{ID: 5, Type: AddNode, NodeID: 0x8e9e05c52164694d, Context: "ab"} as gogoproto writes it (cross-checked with protobufjs' writer).
    const bytes = encodeConfChange({ id: 5n, type: ConfChangeType.AddNode, nodeId: 0x8e9e05c52164694dn, context: new Uint8Array([0x61, 0x62]) });
    expect(Buffer.from(bytes).toString('hex')).toBe('0805' + '1000' + '18cdd2918bd2b881cf8e01' + '22026162');
    expect(decodeConfChange(bytes)).toEqual({ id: 5n, type: ConfChangeType.AddNode, nodeId: 0x8e9e05c52164694dn, context: new Uint8Array([0x61, 0x62]) });
  });

  test('round-trips every type and large ids', () => {
    for (const type of [ConfChangeType.AddNode, ConfChangeType.RemoveNode, ConfChangeType.UpdateNode, ConfChangeType.AddLearnerNode]) {
      const c: ConfChange = { id: 2n ** 64n - 1n, type, nodeId: 2n ** 63n + 7n, context: EMPTY_BYTES };
      expect(decodeConfChange(encodeConfChange(c))).toEqual(c);
    }
  });

  test('rejects truncated input', () => {
    expect(() => decodeConfChange(new Uint8Array([0x18, 0xff]))).toThrow('truncated');
  });
});

describe('bootstrap', () => {
  test('the initial membership becomes committed conf-change entries at term 1', () => {
    const storage = new MemoryStorage();
    const node = new RawNode({ id: 1n, storage, electionTick: 10, heartbeatTick: 1, random: new SeededRandom(7) });
    node.bootstrap([{ id: 1n }, { id: 2n }, { id: 3n, learner: true }]);
    const rd = node.ready();
    expect(rd.hardState).toEqual({ term: 1, vote: 0n, commit: 3 });
    expect(rd.entries.map((e) => [e.index, e.term, EntryType[e.type]])).toEqual([
      [1, 1, 'ConfChange'],
      [2, 1, 'ConfChange'],
      [3, 1, 'ConfChange'],
    ]);
    expect(rd.committedEntries.map((e) => decodeConfChange(e.data).nodeId)).toEqual([1n, 2n, 3n]);
    expect(node.raft.tracker.voters).toEqual([1n, 2n]);
    expect(node.raft.tracker.learners).toEqual([3n]);
    expect(() => node.bootstrap([{ id: 1n }])).toThrow('nonempty');
  });
});
