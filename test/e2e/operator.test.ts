// The operator end to end, on a real control plane (kube-apiserver, controller-manager, scheduler from
// test/helpers/kube.ts, storing into a 3-member etcd-ts cluster) with the test kubelet running the member
// pods: the operator process (dist/operator/main.js) with --member-endpoints=pod-ip
// - creates a 3-member EtcdCluster: Available=True, phase Running, 3 voting members; data written through a
//   member reads back;
// - scales to 5 one member at a time (learner, then promoted); the operator is SIGKILLed while a member is
//   being added and a new operator process (after the old Lease expires) finishes the job;
// - scales back to 3: the member list, the pods and the status follow; the data is still there;
// - upgrades (spec.version changed): one pod at a time, followers first, leadership moved off the leader
//   before its pod restarts;
// - repairs a member whose volume was deleted: removed, re-added as a learner on a fresh volume, promoted;
// - records Events for the member changes, and exits cleanly on SIGTERM (releasing its Lease).
import { type ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Etcd3 } from 'etcd3';
import { type NodeHandle, etcdTsBin, freePort, httpGet, repoRoot, startCluster } from '../helpers';
import { type ControlPlane, requireK8sTools, startControlPlane } from '../helpers/kube';
import { KubeApi, type KubeObject } from './kubeapi';
import { type Pod, TestKubelet } from './kubelet';

jest.setTimeout(600_000);

const NS = 'db';
const NAME = 'main';
const CLUSTER_PATH = `/apis/etcd-ts.io/v1alpha1/namespaces/${NS}/etcdclusters/${NAME}`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The compiled operator: dist/operator/main.js (OPERATOR_MAIN overrides, for a build elsewhere). */
const operatorMain = (): string => process.env.OPERATOR_MAIN ?? path.join(repoRoot(), 'dist', 'operator', 'main.js');

interface ClusterStatus {
  phase?: string;
  observedGeneration?: number;
  readyReplicas?: number;
  members?: { name?: string; id: string; isLearner: boolean; isLeader: boolean; healthy: boolean }[];
  conditions?: { type: string; status: string; reason: string; message: string }[];
  leader?: string;
  clusterID?: string;
}
type EtcdClusterObject = KubeObject & { spec: { replicas: number }; status?: ClusterStatus };

let etcd: NodeHandle[] = [];
let cp: ControlPlane | undefined;
let kubelet: TestKubelet | undefined;
let api: KubeApi | undefined;
let workDir = '';

class Operator {
  readonly proc: ChildProcess;
  readonly log: string;
  readonly metricsPort: number;
  readonly healthPort: number;
  private exited: Promise<number | null>;

  constructor(n: number, metricsPort: number, healthPort: number) {
    this.metricsPort = metricsPort;
    this.healthPort = healthPort;
    this.log = path.join(workDir, `operator-${n}.log`);
    const out = fs.openSync(this.log, 'a');
    this.proc = spawn(
      process.execPath,
      [
        operatorMain(),
        `--kubeconfig=${cp!.kubeconfig}`,
        '--member-endpoints=pod-ip',
        `--metrics-bind-address=127.0.0.1:${metricsPort}`,
        `--health-probe-bind-address=127.0.0.1:${healthPort}`,
        '--leader-election-namespace=default',
        '--log-level=debug',
        '--resync-seconds=10',
        '--member-start-grace-seconds=15',
        '--member-failure-seconds=45',
      ],
      { stdio: ['ignore', out, out] },
    );
    fs.closeSync(out);
    this.exited = new Promise((resolve) => this.proc.once('exit', (code) => resolve(code)));
  }

  static async start(n: number): Promise<Operator> {
    return new Operator(n, await freePort(), await freePort());
  }

  kill(): Promise<number | null> {
    this.proc.kill('SIGKILL');
    return this.exited;
  }

  async stop(): Promise<number | null> {
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 30_000);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }

  tail(lines = 40): string {
    try {
      return fs.readFileSync(this.log, 'utf8').trim().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }
}

const operators: Operator[] = [];

async function diagnostics(): Promise<string> {
  const parts: string[] = [];
  if (api) {
    const c = await api.getOrNull<EtcdClusterObject>(CLUSTER_PATH).catch(() => undefined);
    parts.push(`EtcdCluster status: ${JSON.stringify(c?.status)}`);
    const pods = await api.get<{ items: Pod[] }>(`/api/v1/namespaces/${NS}/pods`).catch(() => ({ items: [] as Pod[] }));
    for (const p of pods.items) parts.push(`pod ${p.metadata.name}: ${JSON.stringify(p.status?.conditions)} ${p.status?.phase}`);
    const events = await api
      .get<{ items: { reason: string; message: string; involvedObject: { name: string } }[] }>(`/api/v1/namespaces/${NS}/events`)
      .catch(() => ({ items: [] }));
    for (const e of events.items.slice(-30)) parts.push(`event ${e.involvedObject.name}: ${e.reason}: ${e.message}`);
  }
  for (const [i, o] of operators.entries()) parts.push(`operator ${i} log:\n${o.tail()}`);
  if (kubelet) parts.push(kubelet.logTails(20));
  return parts.join('\n');
}

async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, intervalMs = 1000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not reached within ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message})` : ''}\n${await diagnostics()}`);
    }
    await sleep(intervalMs);
  }
}

const getCluster = () => api!.get<EtcdClusterObject>(CLUSTER_PATH);
const condition = (s: ClusterStatus | undefined, type: string) => s?.conditions?.find((c) => c.type === type);

/** Waits for phase Running with `n` healthy voting members and no learner, for the current generation. */
async function waitRunning(n: number, timeoutMs: number): Promise<EtcdClusterObject> {
  return waitFor(`EtcdCluster Running with ${n} members`, timeoutMs, async () => {
    const c = await getCluster();
    const s = c.status;
    const ok =
      s?.phase === 'Running' &&
      s.observedGeneration === c.metadata.generation &&
      s.members?.length === n &&
      s.members.every((m) => m.healthy && !m.isLearner) &&
      condition(s, 'Available')?.status === 'True';
    return ok ? c : undefined;
  });
}

async function podIPs(): Promise<string[]> {
  const list = await api!.get<{ items: Pod[] }>(`/api/v1/namespaces/${NS}/pods?labelSelector=${encodeURIComponent(`app.kubernetes.io/instance=${NAME}`)}`);
  return list.items.filter((p) => !p.metadata.deletionTimestamp && p.status?.podIP).map((p) => `http://${p.status!.podIP}:2379`);
}

async function withEtcd<T>(fn: (client: Etcd3) => Promise<T>): Promise<T> {
  const client = new Etcd3({ hosts: await podIPs(), dialTimeout: 5000 });
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

beforeAll(async () => {
  requireK8sTools();
  etcdTsBin();
  if (!fs.existsSync(operatorMain())) throw new Error(`${operatorMain()} is missing: build first (make build)`);
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-ts-operator-e2e-'));
  etcd = await startCluster({ kind: 'etcd-ts', size: 3, readyTimeoutMs: 30_000 });
  cp = await startControlPlane({ etcdServers: etcd.map((n) => n.clientUrl), readyTimeoutMs: 90_000 });
  api = KubeApi.fromKubeconfig(cp.kubeconfig);
  kubelet = new TestKubelet({ kubeconfig: cp.kubeconfig, nodeName: 'node-1', backoffInitialMs: 2000, backoffMaxMs: 10_000 });
  await kubelet.start();
  await cp.kubectlOk(['apply', '--server-side', '-f', path.join(repoRoot(), 'crds', 'etcd-ts.io_etcdclusters.yaml')]);
  await cp.kubectlOk(['wait', '--for=condition=Established', 'crd/etcdclusters.etcd-ts.io', '--timeout=30s'], { timeoutMs: 40_000 });
  await cp.kubectlOk(['create', 'namespace', NS]);
}, 240_000);

afterAll(async () => {
  for (const o of operators) if (o.proc.exitCode === null) await o.kill();
  await kubelet?.stop().catch(() => undefined);
  api?.close();
  await cp?.stop().catch(() => undefined);
  await Promise.all(etcd.map((n) => n.destroy().catch(() => undefined)));
  if (workDir && !process.env.ETCD_TS_KEEP_TMP) fs.rmSync(workDir, { recursive: true, force: true });
});

test('the operator creates a 3-member cluster: Available, Running, data served', async () => {
  operators.push(await Operator.start(0));
  const op = operators[0];
  await waitFor('operator /healthz and /readyz', 30_000, async () => {
    const h = await httpGet(`http://127.0.0.1:${op.healthPort}/healthz`);
    const r = await httpGet(`http://127.0.0.1:${op.healthPort}/readyz`);
    return h.status === 200 && r.status === 200 ? true : undefined;
  });
  await waitFor('EtcdCluster created', 20_000, () =>
    api!.create(`/apis/etcd-ts.io/v1alpha1/namespaces/${NS}/etcdclusters`, {
      apiVersion: 'etcd-ts.io/v1alpha1',
      kind: 'EtcdCluster',
      metadata: { name: NAME },
      spec: { replicas: 3 },
    }),
  );
  const c = await waitRunning(3, 240_000);
  expect(c.status!.members!.map((m) => m.name)).toEqual(['main-0', 'main-1', 'main-2']);
  expect(c.status!.members!.filter((m) => m.isLeader)).toHaveLength(1);
  expect(c.status!.leader).toMatch(/^main-[0-2]$/);
  expect(c.status!.clusterID).toMatch(/^[0-9a-f]+$/);
  expect(condition(c.status, 'Degraded')).toMatchObject({ status: 'False' });

  await withEtcd(async (client) => {
    await client.put('operator-e2e').value('hello');
    expect(await client.get('operator-e2e').string()).toBe('hello');
  });

  const lease = await api!.get<KubeObject & { spec: { holderIdentity: string } }>('/apis/coordination.k8s.io/v1/namespaces/default/leases/etcd-ts-operator');
  expect(lease.spec.holderIdentity).toBeTruthy();
  const metrics = await httpGet(`http://127.0.0.1:${op.metricsPort}/metrics`);
  expect(metrics.body).toMatch(/etcd_ts_operator_reconcile_total\{result="success"/);
  expect(metrics.body).toMatch(/etcd_ts_operator_cluster_members\{cluster="db\/main",state="voting"\} 3/);
  expect(metrics.body).toMatch(/etcd_ts_operator_is_leader 1/);

  // A second replica stands by: ready, not leading, and it leaves the Lease alone when stopped.
  const standby = await Operator.start(99);
  operators.push(standby);
  await waitFor('standby ready', 30_000, async () => ((await httpGet(`http://127.0.0.1:${standby.healthPort}/readyz`)).status === 200 ? true : undefined));
  await sleep(3000);
  expect((await httpGet(`http://127.0.0.1:${standby.metricsPort}/metrics`)).body).toMatch(/etcd_ts_operator_is_leader 0/);
  expect(fs.readFileSync(standby.log, 'utf8')).not.toMatch(/became leader/);
  expect(await standby.stop()).toBe(0);
  operators.pop();
  const still = await api!.get<KubeObject & { spec: { holderIdentity: string } }>('/apis/coordination.k8s.io/v1/namespaces/default/leases/etcd-ts-operator');
  expect(still.spec.holderIdentity).toBe(lease.spec.holderIdentity);
});

test('scale 3 → 5 with the operator killed while a member is being added; a new operator finishes', async () => {
  await api!.mergePatch(CLUSTER_PATH, { spec: { replicas: 5 } });
  // Kill the operator as soon as the first learner is in the member list.
  await waitFor('a learner added', 120_000, async () => {
    const s = (await getCluster()).status;
    return s?.members?.some((m) => m.isLearner) || (s?.members?.length ?? 0) > 3 ? true : undefined;
  }, 200);
  expect(await operators[0].kill()).toBeNull();
  operators.push(await Operator.start(1));
  const c = await waitRunning(5, 300_000);
  expect(c.status!.members!.map((m) => m.name)).toEqual(['main-0', 'main-1', 'main-2', 'main-3', 'main-4']);
  const list = await withEtcd((client) => client.cluster.memberList({ linearizable: true }));
  expect(list.members).toHaveLength(5);
  expect(list.members.every((m) => !m.isLearner)).toBe(true);
  const events = await api!.get<{ items: { reason: string; involvedObject: { kind: string; name: string } }[] }>(`/api/v1/namespaces/${NS}/events`);
  const reasons = events.items.filter((e) => e.involvedObject.kind === 'EtcdCluster').map((e) => e.reason);
  expect(reasons.filter((r) => r === 'MemberAdded').length).toBeGreaterThanOrEqual(2);
  expect(reasons.filter((r) => r === 'MemberPromoted').length).toBeGreaterThanOrEqual(2);
});

test('scale 5 → 3: members removed one at a time, pods follow, data kept', async () => {
  await api!.mergePatch(CLUSTER_PATH, { spec: { replicas: 3 } });
  const c = await waitRunning(3, 300_000);
  expect(c.status!.members!.map((m) => m.name)).toEqual(['main-0', 'main-1', 'main-2']);
  await waitFor('2 pods gone', 60_000, async () => ((await podIPs()).length === 3 ? true : undefined));
  const value = await withEtcd(async (client) => {
    expect((await client.cluster.memberList({ linearizable: true })).members).toHaveLength(3);
    return client.get('operator-e2e').string();
  });
  expect(value).toBe('hello');
  const events = await api!.get<{ items: { reason: string; involvedObject: { kind: string } }[] }>(`/api/v1/namespaces/${NS}/events`);
  expect(events.items.filter((e) => e.involvedObject.kind === 'EtcdCluster' && e.reason === 'MemberRemoved').length).toBeGreaterThanOrEqual(2);
});

interface EventItem {
  reason: string;
  message: string;
  involvedObject: { kind: string };
  metadata: { creationTimestamp?: string; name: string };
  firstTimestamp?: string;
}
async function clusterEvents(reason: string): Promise<EventItem[]> {
  const events = await api!.get<{ items: EventItem[] }>(`/api/v1/namespaces/${NS}/events`);
  return events.items
    .filter((e) => e.involvedObject.kind === 'EtcdCluster' && e.reason === reason)
    .sort((a, b) => Date.parse(a.firstTimestamp ?? a.metadata.creationTimestamp ?? '') - Date.parse(b.firstTimestamp ?? b.metadata.creationTimestamp ?? ''));
}

test('upgrade: one pod at a time, followers first, leadership moved before the leader restarts', async () => {
  const before = await getCluster();
  const leader = before.status!.leader!;
  const movedBefore = (await clusterEvents('LeaderMoved')).length;
  await api!.mergePatch(CLUSTER_PATH, { spec: { version: '0.1.1' } });
  await waitFor('every pod on version 0.1.1', 300_000, async () => {
    const list = await api!.get<{ items: Pod[] }>(`/api/v1/namespaces/${NS}/pods?labelSelector=${encodeURIComponent(`app.kubernetes.io/instance=${NAME}`)}`);
    const ok = list.items.length === 3 && list.items.every((p) => p.metadata.labels?.['app.kubernetes.io/version'] === '0.1.1' && !p.metadata.deletionTimestamp);
    return ok ? true : undefined;
  });
  await waitRunning(3, 180_000);
  const restarted = (await clusterEvents('MemberRestarted')).map((e) => /restarting (main-\d+)/.exec(e.message)?.[1]);
  expect(new Set(restarted)).toEqual(new Set(['main-0', 'main-1', 'main-2']));
  expect(restarted).toHaveLength(3);
  expect(restarted[0]).not.toBe(leader);
  expect(restarted[2]).toBe(leader);
  expect((await clusterEvents('LeaderMoved')).length).toBeGreaterThan(movedBefore);
  expect(await withEtcd((client) => client.get('operator-e2e').string())).toBe('hello');
});

test('repair: a member whose volume was deleted is removed and re-added on a fresh volume', async () => {
  const before = await getCluster();
  const oldId = before.status!.members!.find((m) => m.name === 'main-1')!.id;
  const removedBefore = (await clusterEvents('MemberRemoved')).length;
  await cp!.kubectlOk(['-n', NS, 'delete', 'pvc', 'data-main-1', '--wait=false']);
  await cp!.kubectlOk(['-n', NS, 'delete', 'pod', 'main-1', '--wait=false']);
  const c = await waitFor('main-1 replaced by a new member', 400_000, async () => {
    const cl = await getCluster();
    const s = cl.status;
    const m1 = s?.members?.find((m) => m.name === 'main-1');
    const ok = s?.phase === 'Running' && s.members?.length === 3 && s.members.every((m) => m.healthy && !m.isLearner) && m1 && m1.id !== oldId;
    return ok ? cl : undefined;
  }, 2000);
  expect(c.status!.members!.map((m) => m.name)).toEqual(['main-0', 'main-1', 'main-2']);
  expect((await clusterEvents('MemberRemoved')).length).toBeGreaterThan(removedBefore);
  expect(await withEtcd((client) => client.get('operator-e2e').string())).toBe('hello');
});

test('SIGTERM: the operator exits 0 and releases its Lease', async () => {
  const op = operators[operators.length - 1];
  expect(await op.stop()).toBe(0);
  const lease = await api!.get<KubeObject & { spec: { holderIdentity?: string } }>('/apis/coordination.k8s.io/v1/namespaces/default/leases/etcd-ts-operator');
  expect(lease.spec.holderIdentity ?? '').toBe('');
});
