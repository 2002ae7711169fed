// The reconciler against a simulated world: an in-memory API server with a StatefulSet controller and
// kubelet that create and delete pods and volumes, and an etcd cluster whose members start when their pods
// exist. Each reconcile is a fresh call with nothing remembered, as after an operator restart, so running
// it to a fixed point checks that every intermediate state leads on to the spec.
import { validateSpec } from '../../operator/api';
import { EtcdClusterReconciler, type Logger } from '../../operator/controllers/etcdcluster';
import type { EtcdView } from '../../operator/controllers/plan';
import type { Endpoint, MemberOps } from '../../operator/etcd';
import { type KubeClient, KubeError, type KubeObject, type ResourceType } from '../../operator/k8s';

type Obj = KubeObject & { spec?: Record<string, unknown>; status?: Record<string, unknown>; data?: Record<string, string> };

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

function merge(target: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete target[k];
    else if (v && typeof v === 'object' && !Array.isArray(v) && target[k] && typeof target[k] === 'object' && !Array.isArray(target[k])) {
      merge(target[k] as Record<string, unknown>, v as Record<string, unknown>);
    } else target[k] = clone(v);
  }
  return target;
}

class FakeKube {
  store = new Map<string, Obj>();
  events: Obj[] = [];
  private uid = 0;
  private key = (r: ResourceType, ns: string, name: string) => `${r.plural}/${ns}/${name}`;

  async find<T>(r: ResourceType, ns: string, name: string): Promise<T | undefined> {
    const o = this.store.get(this.key(r, ns, name));
    return o ? (clone(o) as T) : undefined;
  }
  async get<T>(r: ResourceType, ns: string, name: string): Promise<T> {
    const o = await this.find<T>(r, ns, name);
    if (!o) throw new KubeError(404, 'NotFound', 'not found');
    return o;
  }
  async list<T>(r: ResourceType, ns: string | undefined, selector?: string): Promise<{ items: T[] }> {
    const want = (selector ?? '').split(',').filter(Boolean).map((kv) => kv.split('='));
    const items = [...this.store.entries()]
      .filter(([k]) => k.startsWith(`${r.plural}/${ns ?? ''}`))
      .map(([, o]) => o)
      .filter((o) => want.every(([k, v]) => o.metadata?.labels?.[k] === v));
    return { items: clone(items) as T[] };
  }
  put(r: ResourceType, ns: string, o: Obj): Obj {
    const stored = clone(o);
    stored.metadata = { ...stored.metadata, namespace: ns, uid: stored.metadata?.uid ?? `uid-${++this.uid}`, creationTimestamp: stored.metadata?.creationTimestamp ?? new Date().toISOString() };
    this.store.set(this.key(r, ns, stored.metadata!.name!), stored);
    return stored;
  }
  async create<T>(r: ResourceType, ns: string, o: Obj): Promise<T> {
    if (r.plural === 'events') {
      this.events.push(clone(o));
      return o as T;
    }
    if (this.store.has(this.key(r, ns, o.metadata!.name!))) throw new KubeError(409, 'AlreadyExists', 'exists');
    return this.put(r, ns, o) as T;
  }
  async apply<T>(r: ResourceType, ns: string, o: Obj): Promise<T> {
    const old = this.store.get(this.key(r, ns, o.metadata!.name!));
    return this.put(r, ns, { ...clone(o), status: old?.status, metadata: { ...o.metadata, uid: old?.metadata?.uid } }) as T;
  }
  async patch<T>(r: ResourceType, ns: string, name: string, patch: Record<string, unknown>): Promise<T> {
    const o = this.store.get(this.key(r, ns, name));
    if (!o) throw new KubeError(404, 'NotFound', 'not found');
    merge(o as Record<string, unknown>, patch);
    return clone(o) as T;
  }
  async delete(r: ResourceType, ns: string, name: string): Promise<void> {
    this.store.delete(this.key(r, ns, name));
  }
}

interface SimMember {
  id: string;
  name: string;
  peerURL: string;
  isLearner: boolean;
}

/** An etcd cluster whose members run while their pods exist; the fake kubelet marks pods ready accordingly. */
class FakeEtcd implements MemberOps {
  members: SimMember[] = [];
  leader = '';
  private next = 0x10;
  calls: string[] = [];
  constructor(private readonly kube: FakeKube) {}

  private podExists(name: string): boolean {
    return this.kube.store.has(`pods/db/${name}`);
  }
  private nameOf(url: string): string {
    return /^http:\/\/([^.]+)\./.exec(url)![1];
  }
  /** Bootstraps from the ConfigMap once all initial pods run; starts learners whose pods exist. */
  tick(): void {
    const cm = this.kube.store.get('configmaps/db/main-bootstrap');
    if (this.members.length === 0 && cm?.data?.['initial-cluster-state'] === 'new') {
      const initial = cm.data['initial-cluster'].split(',').map((e) => e.split('=')[0]);
      if (initial.every((n) => this.podExists(n))) {
        this.members = initial.map((n) => ({ id: (this.next++).toString(16), name: n, peerURL: `http://${n}.main-peer.db.svc:2380`, isLearner: false }));
      }
    }
    for (const m of this.members) if (!m.name && this.podExists(this.nameOf(m.peerURL))) m.name = this.nameOf(m.peerURL);
    const voters = this.members.filter((m) => !m.isLearner && this.podExists(m.name));
    if (!voters.some((m) => m.id === this.leader) && voters.length > 0) this.leader = voters[0].id;
  }
  running(): SimMember[] {
    return this.members.filter((m) => m.name && this.podExists(m.name));
  }
  async view(endpoints: Endpoint[]): Promise<EtcdView | 'unreachable'> {
    const up = this.running().filter((m) => endpoints.some((e) => e.name === m.name));
    if (up.length === 0) return 'unreachable';
    const status: EtcdView['status'] = {};
    for (const m of up) status[m.id] = { reachable: true, leaderId: this.leader, raftIndex: 100, appliedIndex: 100, version: '0.1.0' };
    return { clusterId: 'c1', members: this.members.map((m) => ({ id: m.id, name: m.name, peerURLs: [m.peerURL], isLearner: m.isLearner })), status };
  }
  async addLearner(_e: Endpoint[], peerURL: string): Promise<string> {
    if (this.members.some((m) => m.isLearner)) throw new Error('etcdserver: too many learner members in cluster');
    const id = (this.next++).toString(16);
    this.members.push({ id, name: '', peerURL, isLearner: true });
    this.calls.push(`add ${this.nameOf(peerURL)}`);
    return id;
  }
  async promote(_e: Endpoint[], id: string): Promise<void> {
    this.members.find((m) => m.id === id)!.isLearner = false;
    this.calls.push(`promote ${this.members.find((m) => m.id === id)!.name}`);
  }
  async remove(_e: Endpoint[], id: string): Promise<void> {
    const m = this.members.find((x) => x.id === id)!;
    if (id === this.leader) throw new Error('removing the leader in this simulation is a bug');
    this.members = this.members.filter((x) => x.id !== id);
    this.calls.push(`remove ${m.name}`);
  }
  async moveLeader(_leader: Endpoint, to: string): Promise<void> {
    this.leader = to;
    this.calls.push(`move-leader ${this.members.find((m) => m.id === to)!.name}`);
  }
  close(): void {}
}

/** The StatefulSet controller and kubelet: pods and volumes follow replicas; pods are ready while their member runs. */
function kubeControllers(kube: FakeKube, etcd: FakeEtcd): void {
  const sts = kube.store.get('statefulsets/db/main');
  if (!sts) return;
  const replicas = (sts.spec as { replicas: number }).replicas;
  const template = (sts.spec as { template: { metadata: { labels: Record<string, string> } } }).template;
  const revision = `rev-${JSON.stringify(template).length}-${template.metadata.labels['app.kubernetes.io/version']}`;
  sts.status = { updateRevision: revision };
  for (const [key, o] of [...kube.store.entries()]) {
    const m = /^pods\/db\/main-(\d+)$/.exec(key);
    if (m && Number(m[1]) >= replicas) {
      kube.store.delete(key);
      kube.store.delete(`persistentvolumeclaims/db/data-main-${m[1]}`);
    }
    void o;
  }
  for (let i = 0; i < replicas; i++) {
    if (!kube.store.has(`persistentvolumeclaims/db/data-main-${i}`)) {
      kube.put({ group: '', version: 'v1', plural: 'persistentvolumeclaims', namespaced: true }, 'db', {
        metadata: { name: `data-main-${i}`, labels: { ...template.metadata.labels } },
      });
    }
    if (!kube.store.has(`pods/db/main-${i}`)) {
      kube.put({ group: '', version: 'v1', plural: 'pods', namespaced: true }, 'db', {
        metadata: {
          name: `main-${i}`,
          labels: { ...template.metadata.labels, 'controller-revision-hash': revision },
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'main', uid: sts.metadata!.uid!, controller: true }],
          creationTimestamp: new Date().toISOString(),
        },
        status: { phase: 'Running', podIP: `10.0.0.${i + 2}` },
      });
    }
  }
  etcd.tick();
  const running = new Set(etcd.running().map((m) => m.name));
  for (const [key, o] of kube.store.entries()) {
    if (!key.startsWith('pods/db/')) continue;
    const ready = running.has(o.metadata!.name!) && etcd.members.filter((m) => !m.isLearner).length > 0;
    o.status = { ...o.status, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: new Date().toISOString() }] };
  }
}

const silent: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

function setup(spec: Record<string, unknown>) {
  const kube = new FakeKube();
  const etcd = new FakeEtcd(kube);
  const cluster = kube.put({ group: 'etcd-ts.io', version: 'v1alpha1', plural: 'etcdclusters', namespaced: true }, 'db', {
    apiVersion: 'etcd-ts.io/v1alpha1',
    kind: 'EtcdCluster',
    metadata: { name: 'main', generation: 1 },
    spec,
  });
  const reconciler = new EtcdClusterReconciler({ kube: kube as unknown as KubeClient, etcd, endpointMode: 'dns', log: silent });
  const steps: string[] = [];
  /** Reconciles (each call a fresh start) until InSync or the bound; the world moves between calls. */
  async function converge(max = 60): Promise<string[]> {
    const taken: string[] = [];
    for (let i = 0; i < max; i++) {
      kubeControllers(kube, etcd);
      const r = await reconciler.reconcile('db', 'main');
      taken.push(r.step);
      steps.push(r.step);
      if (r.step === 'InSync' || r.step === 'Invalid') return taken;
    }
    throw new Error(`did not converge: ${taken.join(' ')}`);
  }
  const status = () => kube.store.get('etcdclusters/db/main')!.status as Record<string, unknown> & { members: { name: string; isLearner: boolean }[] };
  const setSpec = (patch: Record<string, unknown>) => {
    const c = kube.store.get('etcdclusters/db/main')!;
    merge(c as Record<string, unknown>, { spec: patch, metadata: { generation: (c.metadata!.generation ?? 0) + 1 } });
  };
  return { kube, etcd, cluster, reconciler, converge, status, setSpec, steps };
}

describe('reconciler in a simulated world', () => {
  test('creates a 3-member cluster, scales 3 → 5 → 3, one member change at a time', async () => {
    const w = setup({ replicas: 3 });
    await w.converge();
    expect(w.etcd.members.map((m) => m.name)).toEqual(['main-0', 'main-1', 'main-2']);
    expect(w.kube.store.get('configmaps/db/main-bootstrap')!.data!['initial-cluster-state']).toBe('existing');
    const s = w.status();
    expect(s).toMatchObject({ phase: 'Running', readyReplicas: 3, replicas: 3, ready: '3/3', observedGeneration: 1, clusterID: 'c1' });
    expect((s.conditions as { type: string; status: string }[]).find((c) => c.type === 'Available')!.status).toBe('True');
    const pvc = w.kube.store.get('persistentvolumeclaims/db/data-main-1')!;
    expect(pvc.metadata!.annotations!['etcd-ts.io/member-id']).toBe(w.etcd.members[1].id);
    expect(w.kube.store.get('poddisruptionbudgets/db/main')!.spec).toMatchObject({ maxUnavailable: 1 });
    expect(w.kube.events.map((e) => e.reason)).toContain('Creating');

    w.setSpec({ replicas: 5 });
    await w.converge();
    expect(w.etcd.calls).toEqual(['add main-3', 'promote main-3', 'add main-4', 'promote main-4']);
    expect(w.status()).toMatchObject({ phase: 'Running', readyReplicas: 5, observedGeneration: 2 });
    expect(w.kube.store.get('poddisruptionbudgets/db/main')!.spec).toMatchObject({ maxUnavailable: 2 });
    expect(w.kube.store.get('configmaps/db/main-bootstrap')!.data!['initial-cluster'].split(',')).toHaveLength(5);

    w.etcd.calls = [];
    w.etcd.leader = w.etcd.members[4].id; // the leader is the first to go
    w.setSpec({ replicas: 3 });
    await w.converge();
    expect(w.etcd.calls).toEqual(['move-leader main-0', 'remove main-4', 'remove main-3']);
    expect(w.status().members.map((m) => m.name)).toEqual(['main-0', 'main-1', 'main-2']);
    expect(w.kube.store.has('pods/db/main-3')).toBe(false);
    expect((w.kube.store.get('statefulsets/db/main')!.spec as { replicas: number }).replicas).toBe(3);
    const reasons = w.kube.events.map((e) => e.reason);
    expect(reasons.filter((r) => r === 'MemberAdded')).toHaveLength(2);
    expect(reasons.filter((r) => r === 'MemberRemoved')).toHaveLength(2);
    expect(reasons).toContain('LeaderMoved');
  });

  test('an upgrade restarts followers first and the leader last, after moving leadership', async () => {
    const w = setup({ replicas: 3, version: '0.1.0' });
    await w.converge();
    w.etcd.leader = w.etcd.members[2].id;
    const deleted: string[] = [];
    const del = w.kube.delete.bind(w.kube);
    w.kube.delete = async (r, ns, name) => {
      if (r.plural === 'pods') deleted.push(name);
      return del(r, ns, name);
    };
    w.setSpec({ version: '0.2.0' });
    await w.converge();
    expect(deleted).toEqual(['main-1', 'main-0', 'main-2']);
    expect(w.etcd.calls).toEqual(['move-leader main-0']);
    expect(w.kube.events.map((e) => e.reason)).toContain('UpgradeStarted');
  });

  test('a member whose volume was re-created (no member ID on it) is removed and re-added as a learner', async () => {
    const w = setup({ replicas: 3 });
    await w.converge();
    const oldId = w.etcd.members[1].id;
    delete w.kube.store.get('persistentvolumeclaims/db/data-main-1')!.metadata!.annotations;
    await w.converge();
    expect(w.etcd.calls).toEqual(['remove main-1', 'add main-1', 'promote main-1']);
    const m1 = w.etcd.members.find((m) => m.name === 'main-1')!;
    expect(m1.id).not.toBe(oldId);
    expect(w.kube.store.get('persistentvolumeclaims/db/data-main-1')!.metadata!.annotations!['etcd-ts.io/member-id']).toBe(m1.id);
    expect(w.status()).toMatchObject({ phase: 'Running', readyReplicas: 3 });
    const removed = w.kube.events.find((e) => e.reason === 'MemberRemoved')!;
    expect(removed).toMatchObject({ type: 'Warning', involvedObject: { kind: 'EtcdCluster', name: 'main', namespace: 'db' } });
  });

  test('an invalid spec sets the condition and changes nothing', async () => {
    const w = setup({ replicas: 3 });
    await w.converge();
    const before = JSON.stringify(w.kube.store.get('statefulsets/db/main'));
    w.setSpec({ etcdOptions: { heartbeatInterval: 500, electionTimeout: 1000 } });
    expect(validateSpec(w.kube.store.get('etcdclusters/db/main')!.spec).some((p) => p.severity === 'error')).toBe(true);
    expect(await w.converge()).toEqual(['Invalid']);
    expect(JSON.stringify(w.kube.store.get('statefulsets/db/main'))).toBe(before);
    const s = w.status();
    expect(s.phase).toBe('Invalid');
    expect((s.conditions as { type: string; status: string; reason: string }[]).find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'InvalidSpec' });
    expect(w.kube.events.map((e) => e.reason)).toContain('InvalidSpec');
  });
});
