// The reconciler's planner, as data: a world (the EtcdCluster, its objects, what etcd says) in, the one next
// step out. Each scenario is a sequence of worlds an operator could find, including those left behind by an
// operator killed between two steps.
import { type EtcdCluster, type EtcdClusterSpecInput, validateSpec, withDefaults } from '../../operator/api';
import {
  type EtcdView,
  type Observed,
  type ObservedMember,
  type Step,
  caughtUp,
  leaderOf,
  memberOrdinal,
  planNext,
  pvcName,
} from '../../operator/controllers/plan';
import { memberName, memberPeerURL } from '../../operator/resources';

const UID = '6f1c2a7e-1b2c-4d5e-8f90-123456789abc';
const NOW = 1_800_000_000_000;
const OLD = NOW - 3600_000;

function cluster(spec: EtcdClusterSpecInput = {}): EtcdCluster {
  return { apiVersion: 'etcd-ts.io/v1alpha1', kind: 'EtcdCluster', metadata: { name: 'main', namespace: 'db', uid: UID, generation: 1 }, spec: withDefaults(spec) };
}

const id = (k: number) => (0x100 + k).toString(16);
const name = (k: number) => `main-${k}`;
const url = (k: number) => `http://main-${k}.main-peer.db.svc:2380`;
const initialCluster = (ks: number[]) => ks.map((k) => `${name(k)}=${url(k)}`).join(',');

interface MemberSpec {
  k: number;
  learner?: boolean;
  started?: boolean;
  healthy?: boolean;
  applied?: number;
}

/** A world: members 0..n-1 healthy, pods ready on revision r1, volumes annotated, objects current. */
function world(
  spec: EtcdClusterSpecInput,
  members: MemberSpec[],
  opts: { replicas?: number; leader?: number; index?: number; pods?: number[]; state?: string; bootstrap?: number[] } = {},
): Observed {
  const c = cluster(spec);
  const leader = opts.leader ?? 0;
  const index = opts.index ?? 1000;
  const replicas = opts.replicas ?? Math.max(...members.map((m) => m.k)) + 1;
  const podKs = opts.pods ?? Array.from({ length: replicas }, (_, i) => i);
  const view: EtcdView = {
    clusterId: 'c1',
    members: members.map((m) => ({ id: id(m.k), name: m.started === false ? '' : name(m.k), peerURLs: [url(m.k)], isLearner: !!m.learner })),
    status: {},
  };
  for (const m of members) {
    const up = (m.healthy ?? true) && m.started !== false && podKs.includes(m.k);
    if (up) view.status[id(m.k)] = { reachable: true, leaderId: id(leader), raftIndex: index, appliedIndex: m.applied ?? index, version: '0.1.0' };
  }
  const voters = members.filter((m) => !m.learner).length;
  return {
    cluster: c,
    problems: validateSpec(c.spec),
    bootstrap: { initialCluster: initialCluster(opts.bootstrap ?? members.map((m) => m.k)), state: opts.state ?? 'existing' },
    peerService: 'current',
    clientService: 'current',
    statefulSet: { replicas, updateRevision: 'r1', templateCurrent: true },
    pdbMaxUnavailable: Math.floor((Math.min(voters, c.spec.replicas) - 1) / 2),
    pods: podKs.map((k) => {
      const m = members.find((x) => x.k === k);
      const ready = !!m && (m.healthy ?? true) && m.started !== false;
      // A pod whose member has not started yet was (normally) just created.
      const createdAt = m && m.started === false ? NOW - 5000 : OLD;
      return { name: name(k), ready, phase: 'Running', deleting: false, revision: 'r1', createdAt, ...(ready ? {} : { notReadySince: createdAt }) };
    }),
    pvcs: podKs.map((k) => ({ name: pvcName(name(k)), memberId: members.some((m) => m.k === k && m.started !== false) ? id(k) : undefined, deleting: false })),
    etcd: view,
    now: NOW,
  };
}

const healthy = (n: number): MemberSpec[] => Array.from({ length: n }, (_, k) => ({ k }));

describe('helpers', () => {
  const c = cluster();
  test('member ordinals come from the name, or the peer URL before the member started', () => {
    expect(memberOrdinal(c, { id: '1', name: 'main-3', peerURLs: [url(3)], isLearner: false })).toBe(3);
    expect(memberOrdinal(c, { id: '1', name: '', peerURLs: [url(7)], isLearner: true })).toBe(7);
    expect(memberOrdinal(c, { id: '1', name: '', peerURLs: ['http://other-1.other-peer.db.svc:2380'], isLearner: true })).toBeUndefined();
    expect(memberOrdinal(c, { id: '1', name: 'main-01', peerURLs: [url(1)], isLearner: false })).toBe(1);
    expect(memberPeerURL(c, memberName(c, 2))).toBe(url(2));
  });
  test('leader and catch-up', () => {
    const o = world({}, [{ k: 0 }, { k: 1, applied: 990 }, { k: 2, applied: 10 }], { leader: 1 });
    const v = o.etcd as EtcdView;
    expect(leaderOf(v)).toBe(id(1));
    expect(caughtUp(v, id(1), 100)).toBe(true);
    expect(caughtUp(v, id(2), 100)).toBe(false);
    expect(caughtUp(v, id(0), 100)).toBe(true);
  });
});

describe('bootstrap', () => {
  test('nothing exists: create every object with state new and all members', () => {
    const c = cluster({ replicas: 3 });
    const o: Observed = { cluster: c, problems: [], peerService: 'missing', clientService: 'missing', pods: [], pvcs: [], etcd: 'unreachable', now: NOW };
    expect(planNext(o)).toEqual({
      kind: 'CreateObjects',
      objects: ['ConfigMap', 'PeerService', 'ClientService', 'StatefulSet', 'PodDisruptionBudget'],
      bootstrapMembers: ['main-0', 'main-1', 'main-2'],
      bootstrapState: 'new',
      replicas: 3,
      votingMembers: 3,
    });
  });
  test('objects created, members starting: wait', () => {
    const o = world({}, healthy(3), { state: 'new' });
    o.etcd = 'unreachable';
    expect(planNext(o)).toMatchObject({ kind: 'Wait', reason: 'Bootstrapping' });
  });
  test('formed, no leader yet: wait; leader elected: state existing', () => {
    const o = world({}, healthy(3), { state: 'new' });
    for (const s of Object.values((o.etcd as EtcdView).status)) s.leaderId = '0';
    expect(planNext(o)).toMatchObject({ kind: 'Wait', reason: 'Bootstrapping' });
    expect(planNext(world({}, healthy(3), { state: 'new' }))).toEqual({ kind: 'SetBootstrapExisting', members: ['main-0', 'main-1', 'main-2'] });
  });
  test('once formed, each initial volume records its member ID before the ConfigMap says existing', () => {
    const o = world({}, healthy(3), { state: 'new' });
    for (const p of o.pvcs) p.memberId = undefined;
    expect(planNext(o)).toEqual({ kind: 'AnnotatePVC', name: 'data-main-0', memberId: id(0) });
    o.pvcs[0].memberId = id(0);
    o.pvcs[2].memberId = id(2);
    expect(planNext(o)).toEqual({ kind: 'AnnotatePVC', name: 'data-main-1', memberId: id(1) });
    o.pvcs[1].memberId = id(1);
    expect(planNext(o)).toEqual({ kind: 'SetBootstrapExisting', members: ['main-0', 'main-1', 'main-2'] });
    expect(planNext(world({}, healthy(3)))).toEqual({ kind: 'InSync' });
  });
  test('a started learner records its ID before it is promoted', () => {
    const o = world({ replicas: 4 }, [...healthy(3), { k: 3, learner: true }]);
    o.pvcs[3].memberId = undefined;
    expect(planNext(o)).toEqual({ kind: 'AnnotatePVC', name: 'data-main-3', memberId: id(3) });
  });
  test('a deleted Service is re-created; a drifted one updated', () => {
    const o = world({}, healthy(3));
    o.clientService = 'missing';
    expect(planNext(o)).toMatchObject({ kind: 'CreateObjects', objects: ['ClientService'], bootstrapState: 'existing', replicas: 3 });
    o.clientService = 'outdated';
    expect(planNext(o)).toMatchObject({ kind: 'UpdateObjects', objects: ['ClientService'] });
  });
});

describe('scale out 3 → 5', () => {
  const spec = { replicas: 5 };
  test('every intermediate state', () => {
    // 3 healthy members, spec says 5: add main-3 as a learner.
    expect(planNext(world(spec, healthy(3)))).toEqual({ kind: 'AddLearner', name: 'main-3', peerURL: url(3) });
    // Operator killed after MemberAdd: the learner is listed, the ConfigMap does not name it yet.
    const added = [...healthy(3), { k: 3, learner: true, started: false }];
    expect(planNext(world(spec, added, { replicas: 3, bootstrap: [0, 1, 2] }))).toEqual({
      kind: 'SetBootstrapExisting',
      members: ['main-0', 'main-1', 'main-2', 'main-3'],
    });
    // ConfigMap updated, StatefulSet not scaled (killed again): scale, never add a second learner.
    expect(planNext(world(spec, added, { replicas: 3 }))).toEqual({ kind: 'ScaleStatefulSet', from: 3, replicas: 4 });
    // Pod created, member not started yet: wait.
    expect(planNext(world(spec, added, { replicas: 4 }))).toMatchObject({ kind: 'Wait', reason: 'LearnerCatchingUp' });
    // Started but behind.
    const behind = [...healthy(3), { k: 3, learner: true, applied: 10 }];
    expect(planNext(world(spec, behind, { replicas: 4 }))).toMatchObject({ kind: 'Wait', reason: 'LearnerCatchingUp' });
    // Caught up: promote.
    const caught = [...healthy(3), { k: 3, learner: true }];
    expect(planNext(world(spec, caught, { replicas: 4 }))).toEqual({ kind: 'PromoteLearner', id: id(3), name: 'main-3' });
    // Promoted: the budget follows the voting members (4 → 1 may be unavailable, which it already is), then main-4.
    expect(planNext(world(spec, healthy(4)))).toEqual({ kind: 'AddLearner', name: 'main-4', peerURL: url(4) });
    const five = world(spec, healthy(5));
    five.pdbMaxUnavailable = 1;
    expect(planNext(five)).toEqual({ kind: 'UpdateObjects', objects: ['PodDisruptionBudget'], replicas: 5, votingMembers: 5 });
    expect(planNext(world(spec, healthy(5)))).toEqual({ kind: 'InSync' });
  });
  test('no member is added while a voting member is unhealthy or behind', () => {
    const sick = world(spec, [{ k: 0 }, { k: 1 }, { k: 2, healthy: false }]);
    sick.pods[2].notReadySince = NOW - 1000;
    expect(planNext(sick)).toMatchObject({ kind: 'Wait', reason: 'WaitingForHealthyMembers' });
    expect(planNext(world(spec, [{ k: 0 }, { k: 1 }, { k: 2, applied: 1 }]))).toMatchObject({ kind: 'Wait', reason: 'WaitingForHealthyMembers' });
  });
  test('a learner no longer wanted (spec went back to 3) is removed', () => {
    const o = world({ replicas: 3 }, [...healthy(3), { k: 3, learner: true, started: false }], { replicas: 3 });
    expect(planNext(o)).toEqual({ kind: 'RemoveMember', id: id(3), name: 'main-3', reason: 'scale-in' });
  });
});

describe('scale in 5 → 3', () => {
  const spec = { replicas: 3 };
  test('every intermediate state', () => {
    // The highest member goes first.
    expect(planNext(world(spec, healthy(5)))).toEqual({ kind: 'RemoveMember', id: id(4), name: 'main-4', reason: 'scale-in' });
    // Removed, pod still there (killed before shrinking): shrink.
    expect(planNext(world(spec, healthy(4), { replicas: 5 }))).toEqual({ kind: 'ScaleStatefulSet', from: 5, replicas: 4 });
    // Shrunk: the budget follows 4 → 3 voting members? min(4, 3) = 3: one may be unavailable.
    expect(planNext(world(spec, healthy(4), { replicas: 4 }))).toEqual({ kind: 'RemoveMember', id: id(3), name: 'main-3', reason: 'scale-in' });
    expect(planNext(world(spec, healthy(3), { replicas: 4 }))).toEqual({ kind: 'ScaleStatefulSet', from: 4, replicas: 3 });
    expect(planNext(world(spec, healthy(3)))).toEqual({ kind: 'InSync' });
  });
  test('leadership is moved off a member before it is removed', () => {
    expect(planNext(world(spec, healthy(5), { leader: 4 }))).toEqual({ kind: 'MoveLeader', from: id(4), to: id(0), toName: 'main-0', reason: 'scale-in' });
  });
  test('a member listed beyond replicas whose pod is gone is removed', () => {
    expect(planNext(world(spec, healthy(4), { replicas: 3, pods: [0, 1, 2] }))).toEqual({ kind: 'RemoveMember', id: id(3), name: 'main-3', reason: 'scale-in' });
  });
  test('never remove when it would lose quorum', () => {
    // 4 voting, 2 healthy besides the one going: 3 remaining need 2 healthy → allowed (main-3 healthy).
    // 5 voting, main-0 and main-1 down: quorum(5)=3 healthy (2,3,4); removing main-4 leaves 2 healthy of 4 → no.
    const o = world(spec, [{ k: 0, healthy: false }, { k: 1, healthy: false }, { k: 2 }, { k: 3 }, { k: 4 }], { leader: 2 });
    expect(planNext(o)).toMatchObject({ kind: 'Wait', reason: 'WaitingForHealthyMembers' });
  });
  test('quorum lost: nothing is done', () => {
    const o = world(spec, [{ k: 0, healthy: false }, { k: 1, healthy: false }, { k: 2 }], { leader: 2 });
    expect(planNext(o)).toMatchObject({ kind: 'Wait', reason: 'QuorumLost' });
    const none = world(spec, healthy(3));
    none.etcd = 'unreachable';
    expect(planNext(none)).toMatchObject({ kind: 'Wait', reason: 'MembersUnreachable' });
  });
});

describe('upgrade', () => {
  function outdated(leader: number, old: number[]): Observed {
    const o = world({}, healthy(3), { leader });
    o.statefulSet!.updateRevision = 'r2';
    for (const p of o.pods) p.revision = old.includes(Number(p.name.slice(5))) ? 'r1' : 'r2';
    return o;
  }
  test('the template is updated first', () => {
    const o = world({ version: '0.2.0' }, healthy(3));
    o.statefulSet!.templateCurrent = false;
    expect(planNext(o)).toEqual({ kind: 'UpdateObjects', objects: ['StatefulSet'], replicas: 3, votingMembers: 3 });
  });
  test('followers first (highest ordinal), then leadership moves, then the old leader', () => {
    expect(planNext(outdated(1, [0, 1, 2]))).toEqual({ kind: 'DeletePod', name: 'main-2', reason: 'upgrade' });
    expect(planNext(outdated(1, [0, 1]))).toEqual({ kind: 'DeletePod', name: 'main-0', reason: 'upgrade' });
    expect(planNext(outdated(1, [1]))).toEqual({ kind: 'MoveLeader', from: id(1), to: id(0), toName: 'main-0', reason: 'upgrade' });
    expect(planNext(outdated(0, [1]))).toEqual({ kind: 'DeletePod', name: 'main-1', reason: 'upgrade' });
    expect(planNext(outdated(0, []))).toEqual({ kind: 'InSync' });
  });
  test('waits for the restarted member to be ready, healthy and caught up', () => {
    const o = outdated(1, [0, 1]);
    o.pods[2].ready = false;
    expect(planNext(o)).toMatchObject({ kind: 'Wait', reason: 'MemberStarting' });
    const d = outdated(1, [0, 1]);
    d.pods[2].deleting = true;
    expect(planNext(d)).toMatchObject({ kind: 'Wait', reason: 'PodTerminating' });
    const b = outdated(1, [0, 1]);
    (b.etcd as EtcdView).status[id(2)].appliedIndex = 3;
    expect(planNext(b)).toMatchObject({ kind: 'Wait', reason: 'WaitingForHealthyMembers' });
    const u = outdated(1, [0, 1]);
    delete (u.etcd as EtcdView).status[id(2)];
    expect(planNext(u)).toMatchObject({ kind: 'Wait', reason: 'WaitingForHealthyMembers' });
  });
  test('a single member is restarted in place', () => {
    const o = world({ replicas: 1 }, healthy(1));
    o.statefulSet!.updateRevision = 'r2';
    expect(planNext(o)).toEqual({ kind: 'DeletePod', name: 'main-0', reason: 'upgrade' });
  });
});

describe('repair', () => {
  test('a member whose volume is new (data gone) is removed, re-added, and starts on the fresh volume', () => {
    const o = world({}, [{ k: 0 }, { k: 1 }, { k: 2, healthy: false }]);
    o.pvcs[2].memberId = undefined; // re-created claim
    expect(planNext(o)).toEqual({ kind: 'RemoveMember', id: id(2), name: 'main-2', reason: 'repair' });
    // Removed: re-add as a learner (pod exists already).
    const removed = world({}, healthy(2), { replicas: 3 });
    removed.pvcs[2].memberId = undefined;
    expect(planNext(removed)).toEqual({ kind: 'AddLearner', name: 'main-2', peerURL: url(2) });
    // The learner (new ID) on the fresh unannotated volume: wait for it while its pod is young...
    const learner = world({}, [...healthy(2), { k: 2, learner: true, started: false }], { replicas: 3 });
    expect(planNext(learner)).toMatchObject({ kind: 'Wait', reason: 'LearnerCatchingUp' });
    // ...but a pod that has been failing since before the learner was added cannot join on that volume
    // (its failed starts wrote the old member's identity): replace the volume, then the pod.
    learner.pods[2].createdAt = OLD;
    expect(planNext(learner)).toEqual({ kind: 'DeletePVC', name: 'data-main-2', reason: 'repair' });
    learner.pvcs[2].deleting = true;
    expect(planNext(learner)).toEqual({ kind: 'DeletePod', name: 'main-2', reason: 'repair' });
    // The new pod, on a new volume: wait.
    learner.pods[2] = { ...learner.pods[2], createdAt: NOW - 1000 };
    learner.pvcs[2] = { name: 'data-main-2', deleting: false };
    expect(planNext(learner)).toMatchObject({ kind: 'Wait', reason: 'LearnerCatchingUp' });
  });
  test('a re-added member whose volume holds the old member data: volume, then pod, replaced', () => {
    const o = world({}, [...healthy(2), { k: 2, learner: true, started: false }], { replicas: 3 });
    o.pvcs[2].memberId = 'dead';
    expect(planNext(o)).toEqual({ kind: 'DeletePVC', name: 'data-main-2', reason: 'repair' });
    o.pvcs[2].deleting = true;
    expect(planNext(o)).toEqual({ kind: 'DeletePod', name: 'main-2', reason: 'repair' });
    o.pods[2].deleting = true;
    expect(planNext(o)).toMatchObject({ kind: 'Wait', reason: 'PodTerminating' });
  });
  test('a healthy voting member on a volume without its ID (data lost, re-created claim) is replaced too', () => {
    const o = world({}, healthy(3));
    o.pvcs[1].memberId = undefined;
    expect(planNext(o)).toEqual({ kind: 'RemoveMember', id: id(1), name: 'main-1', reason: 'repair' });
    // ...but not when removing it would leave too few healthy members.
    const tight = world({}, [{ k: 0 }, { k: 1 }, { k: 2, healthy: false }]);
    tight.pods[2].notReadySince = NOW - 1000;
    tight.pvcs[1].memberId = undefined;
    expect(planNext(tight)).toMatchObject({ kind: 'Wait', reason: 'WaitingForHealthyMembers' });
  });
  test('a member failing for long is replaced; a recently started one is not', () => {
    const o = world({}, [{ k: 0 }, { k: 1 }, { k: 2, healthy: false }]);
    expect(planNext(o)).toEqual({ kind: 'RemoveMember', id: id(2), name: 'main-2', reason: 'repair' });
    o.pods[2].notReadySince = NOW - 1000;
    expect(planNext(o)).toMatchObject({ kind: 'Wait', reason: 'WaitingForHealthyMembers' });
    const young = world({}, [{ k: 0 }, { k: 1 }, { k: 2, healthy: false }]);
    young.pods[2].createdAt = NOW - 1000;
    young.pvcs[2].memberId = undefined;
    expect(planNext(young)).toMatchObject({ kind: 'Wait', reason: 'WaitingForHealthyMembers' });
  });
  test('never two at once: with two of five unhealthy one is removed at a time, none re-added until all are healthy', () => {
    const o = world({ replicas: 5 }, [{ k: 0 }, { k: 1 }, { k: 2 }, { k: 3, healthy: false }, { k: 4, healthy: false }]);
    expect(planNext(o)).toEqual({ kind: 'RemoveMember', id: id(3), name: 'main-3', reason: 'repair' });
    const after = world({ replicas: 5 }, [{ k: 0 }, { k: 1 }, { k: 2 }, { k: 4, healthy: false }], { replicas: 5 });
    expect(planNext(after)).toEqual({ kind: 'RemoveMember', id: id(4), name: 'main-4', reason: 'repair' });
  });
  test('no repair removal when the cluster could not lose another voter', () => {
    const o = world({}, [{ k: 0 }, { k: 1, healthy: false }, { k: 2, healthy: false }]);
    expect(planNext(o)).toMatchObject({ kind: 'Wait', reason: 'QuorumLost' });
  });
});

describe('invalid spec and foreign members', () => {
  test('an invalid spec changes nothing', () => {
    const o = world({}, healthy(3));
    o.problems = validateSpec({ etcdOptions: { heartbeatInterval: 500, electionTimeout: 1000 } });
    const step: Step = planNext(o);
    expect(step.kind).toBe('Invalid');
    expect(step.kind === 'Invalid' && step.problems[0].field).toBe('spec.etcdOptions.electionTimeout');
  });
  test('a member that is not one of the pods stops the planner', () => {
    const o = world({}, healthy(3));
    const foreign: ObservedMember = { id: 'abc', name: 'x', peerURLs: ['http://10.0.0.9:2380'], isLearner: false };
    (o.etcd as EtcdView).members.push(foreign);
    expect(planNext(o)).toMatchObject({ kind: 'Wait', reason: 'ForeignMember' });
  });
});
