// The operator process's pure parts: the work queue (dedup, no concurrent processing of a key, per-key
// exponential backoff), leader election decisions on a Lease, flag parsing, and the status computed from a
// planned step.
import { validateSpec, withDefaults, type EtcdCluster } from '../../operator/api';
import { decide } from '../../operator/controllers/leader';
import type { EtcdView, Observed } from '../../operator/controllers/plan';
import { type Clock, WorkQueue, backoffDelay } from '../../operator/controllers/queue';
import { compareVersions, computeStatus, phaseOf } from '../../operator/controllers/status';
import { toDecimal, toHex } from '../../operator/etcd';
import { memberEndpoints } from '../../operator/etcd/endpoints';
import { parseBindAddress, parseFlags } from '../../operator/main';
import { resourcePath, RESOURCES } from '../../operator/k8s';

class FakeClock implements Clock {
  t = 0;
  timers: { at: number; fn: () => void; id: number }[] = [];
  private next = 0;
  now() {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number) {
    const id = ++this.next;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown) {
    this.timers = this.timers.filter((x) => x.id !== h);
  }
  advance(ms: number) {
    this.t += ms;
    const due = this.timers.filter((x) => x.at <= this.t).sort((a, b) => a.at - b.at);
    this.timers = this.timers.filter((x) => x.at > this.t);
    for (const d of due) d.fn();
  }
}

describe('work queue', () => {
  test('a key is queued once and never processed twice at the same time', async () => {
    const q = new WorkQueue({ baseMs: 100, maxMs: 1000 }, new FakeClock());
    q.add('a');
    q.add('a');
    q.add('b');
    expect(q.length).toBe(2);
    const k = await q.get();
    expect(k).toBe('a');
    q.add('a'); // while processing: remembered, not handed out
    expect(await q.get()).toBe('b');
    expect(q.length).toBe(0);
    q.done('a');
    expect(q.length).toBe(1);
    expect(await q.get()).toBe('a');
  });
  test('retries back off exponentially per key, reset by forget', () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ baseMs: 100, maxMs: 1000 }, clock);
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, { baseMs: 100, maxMs: 1000 }))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(q.addRateLimited('a')).toBe(100);
    expect(q.addRateLimited('a')).toBe(200);
    expect(q.addRateLimited('b')).toBe(100);
    clock.advance(100);
    expect(q.length).toBe(2); // a's earlier timer (100) kept over the later (200), b due too
    q.forget('a');
    expect(q.failureCount('a')).toBe(0);
    expect(q.addRateLimited('a')).toBe(100);
  });
  test('a delayed add keeps the earliest time; a direct add cancels the delay', () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ baseMs: 100, maxMs: 1000 }, clock);
    q.addAfter('a', 500);
    q.addAfter('a', 1000);
    clock.advance(499);
    expect(q.length).toBe(0);
    clock.advance(1);
    expect(q.length).toBe(1);
    q.addAfter('b', 300);
    q.add('b');
    expect(q.length).toBe(2);
    clock.advance(1000);
    expect(q.length).toBe(2);
  });
  test('shutDown wakes waiting workers', async () => {
    const q = new WorkQueue();
    const waiting = q.get();
    q.shutDown();
    expect(await waiting).toBeUndefined();
  });
});

describe('leader election decisions', () => {
  const now = 1_000_000;
  test('no lease or a released one: acquire', () => {
    expect(decide(undefined, 'me', now, 15, undefined)).toMatchObject({ action: 'acquire', spec: { holderIdentity: 'me', leaseDurationSeconds: 15 } });
    expect(decide({ holderIdentity: null, leaseTransitions: 3 }, 'me', now, 15, undefined)).toMatchObject({ action: 'acquire', spec: { leaseTransitions: 3 } });
  });
  test('own lease: renew', () => {
    expect(decide({ holderIdentity: 'me', leaseDurationSeconds: 15 }, 'me', now, 15, undefined).action).toBe('renew');
  });
  test("another's lease is taken only after it has not changed for the lease duration, by the local clock", () => {
    const lease = { holderIdentity: 'other', leaseDurationSeconds: 15, renewTime: '2020-01-01T00:00:00.000000Z', leaseTransitions: 1 };
    // First sight: wait, however old its renewTime looks (clocks differ).
    expect(decide(lease, 'me', now, 15, undefined)).toEqual({ action: 'wait', holder: 'other' });
    const seen = { record: JSON.stringify(lease), observedAt: now };
    expect(decide(lease, 'me', now + 14_999, 15, seen).action).toBe('wait');
    expect(decide(lease, 'me', now + 15_000, 15, seen)).toMatchObject({ action: 'acquire', spec: { holderIdentity: 'me', leaseTransitions: 2 } });
    // Renewed meanwhile: the observation restarts.
    const renewed = { ...lease, renewTime: '2020-01-01T00:00:10.000000Z' };
    expect(decide(renewed, 'me', now + 20_000, 15, seen).action).toBe('wait');
  });
});

describe('flags', () => {
  test('defaults and values', () => {
    const f = parseFlags([]);
    expect(f).toMatchObject({ leaderElect: true, memberEndpoints: 'dns', metricsBindAddress: '127.0.0.1:8080', logLevel: 'info' });
    const g = parseFlags(['--kubeconfig', '/k', '--namespace=db', '--leader-elect=false', '--member-endpoints=pod-ip', '--metrics-bind-address=0']);
    expect(g).toMatchObject({ kubeconfig: '/k', namespace: 'db', leaderElect: false, memberEndpoints: 'pod-ip', metricsBindAddress: '0' });
    expect(() => parseFlags(['--member-endpoints=ip'])).toThrow(/dns or pod-ip/);
    expect(() => parseFlags(['--nope'])).toThrow(/unknown flag --nope/);
  });
  test('--member-image-repository: a repository (registry, port, path), never a tag or digest', () => {
    expect(parseFlags([]).memberImageRepository).toBe('etcd-ts');
    for (const repo of ['etcd-ts', 'registry.example.com/etcd-ts', 'registry.example.com:5000/team/etcd-ts', 'localhost:5000/etcd_ts']) {
      expect(parseFlags([`--member-image-repository=${repo}`]).memberImageRepository).toBe(repo);
    }
    for (const bad of ['etcd-ts:0.1.0', 'registry.example.com/etcd-ts:0.1.0', 'etcd-ts@sha256:abc', 'Etcd-TS', '', '/etcd-ts']) {
      expect(() => parseFlags([`--member-image-repository=${bad}`])).toThrow(/is not an image repository/);
    }
  });
  test('bind addresses', () => {
    expect(parseBindAddress('127.0.0.1:8080')).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(parseBindAddress(':8081')).toEqual({ host: undefined, port: 8081 });
    expect(parseBindAddress('[::1]:9')).toEqual({ host: '::1', port: 9 });
    expect(parseBindAddress('0')).toBeUndefined();
    expect(() => parseBindAddress('8080')).toThrow(/HOST:PORT/);
  });
});

describe('helpers', () => {
  const c: EtcdCluster = { apiVersion: 'etcd-ts.io/v1alpha1', kind: 'EtcdCluster', metadata: { name: 'main', namespace: 'db', uid: 'u', generation: 4 }, spec: withDefaults({}) };
  test('member IDs: decimal (etcd3) ↔ hex (etcdctl)', () => {
    expect(toHex('10276657743932975437')).toBe('8e9e05c52164694d');
    expect(toDecimal('8e9e05c52164694d')).toBe('10276657743932975437');
  });
  test('endpoints by DNS or pod IP', () => {
    expect(memberEndpoints(c, [{ name: 'main-0', podIP: '10.0.0.5' }], 'dns')).toEqual([{ name: 'main-0', url: 'http://main-0.main-peer.db.svc:2379' }]);
    expect(memberEndpoints(c, [{ name: 'main-0', podIP: '10.0.0.5' }, { name: 'main-1' }], 'pod-ip')).toEqual([{ name: 'main-0', url: 'http://10.0.0.5:2379' }]);
  });
  test('API paths', () => {
    expect(resourcePath(RESOURCES.etcdclusters, 'db', 'main', 'status')).toBe('/apis/etcd-ts.io/v1alpha1/namespaces/db/etcdclusters/main/status');
    expect(resourcePath(RESOURCES.pods)).toBe('/api/v1/pods');
  });
  test('versions order', () => {
    expect(['0.2.0', '0.1.0', '0.10.0', '0.2.0-rc.1'].sort(compareVersions)).toEqual(['0.1.0', '0.2.0-rc.1', '0.2.0', '0.10.0']);
  });
});

describe('status', () => {
  const c: EtcdCluster = { apiVersion: 'etcd-ts.io/v1alpha1', kind: 'EtcdCluster', metadata: { name: 'main', namespace: 'db', uid: 'u', generation: 4 }, spec: withDefaults({}) };
  const url = (k: number) => `http://main-${k}.main-peer.db.svc:2380`;
  function observed(healthyCount: number): Observed {
    const view: EtcdView = { clusterId: 'cafe', members: [0, 1, 2].map((k) => ({ id: `a${k}`, name: `main-${k}`, peerURLs: [url(k)], isLearner: false })), status: {} };
    for (let k = 0; k < healthyCount; k++) view.status[`a${k}`] = { reachable: true, leaderId: 'a0', raftIndex: 5, appliedIndex: 5, version: k === 1 ? '0.1.0' : '0.2.0' };
    return { cluster: c, problems: [], peerService: 'current', clientService: 'current', pods: [], pvcs: [], etcd: view, now: 0, bootstrap: { initialCluster: '', state: 'existing' } };
  }
  const now = new Date('2026-01-01T00:00:00Z');
  test('a healthy cluster in sync', () => {
    const s = computeStatus(observed(3), { kind: 'InSync' }, undefined, now);
    expect(s).toMatchObject({ phase: 'Running', observedGeneration: 4, replicas: 3, readyReplicas: 3, ready: '3/3', clusterID: 'cafe', leader: 'main-0', currentVersion: '0.1.0' });
    expect(s.members![0]).toEqual({ name: 'main-0', id: 'a0', isLearner: false, isLeader: true, healthy: true, version: '0.2.0' });
    const byType = Object.fromEntries(s.conditions!.map((x) => [x.type, [x.status, x.reason]]));
    expect(byType).toEqual({ Available: ['True', 'QuorumAvailable'], Progressing: ['False', 'Reconciled'], Degraded: ['False', 'AllMembersHealthy'] });
  });
  test('one member down, waiting', () => {
    const s = computeStatus(observed(2), { kind: 'Wait', reason: 'WaitingForHealthyMembers', message: 'x' }, undefined, now);
    const byType = Object.fromEntries(s.conditions!.map((x) => [x.type, [x.status, x.reason]]));
    expect(s.phase).toBe('Degraded');
    expect(byType).toEqual({ Available: ['True', 'QuorumAvailable'], Progressing: ['False', 'WaitingForHealthyMembers'], Degraded: ['True', 'MemberUnhealthy'] });
  });
  test('quorum lost', () => {
    const s = computeStatus(observed(1), { kind: 'Wait', reason: 'QuorumLost', message: 'x' }, undefined, now);
    expect(s.phase).toBe('Unavailable');
    expect(s.conditions!.find((x) => x.type === 'Available')).toMatchObject({ status: 'False', reason: 'QuorumLost' });
  });
  test('an invalid spec: Degraded InvalidSpec, phase Invalid', () => {
    const problems = validateSpec({ replicas: 3, etcdOptions: { heartbeatInterval: 500, electionTimeout: 1000 } });
    const step = { kind: 'Invalid' as const, problems };
    const s = computeStatus(observed(3), step, undefined, now);
    expect(s.phase).toBe('Invalid');
    expect(s.conditions!.find((x) => x.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'InvalidSpec' });
    expect(s.conditions!.find((x) => x.type === 'Degraded')!.message).toMatch(/electionTimeout/);
  });
  test('phases of steps', () => {
    const o = observed(3);
    expect(phaseOf(o, { kind: 'AddLearner', name: 'main-3', peerURL: url(3) })).toBe('Scaling');
    expect(phaseOf(o, { kind: 'DeletePod', name: 'main-2', reason: 'upgrade' })).toBe('Upgrading');
    expect(phaseOf(o, { kind: 'RemoveMember', id: 'a2', name: 'main-2', reason: 'repair' })).toBe('Repairing');
    expect(phaseOf(o, { kind: 'Wait', reason: 'MemberStarting', message: '' }, 'Upgrading')).toBe('Upgrading');
  });
});
