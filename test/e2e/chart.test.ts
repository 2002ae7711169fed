// The operator's Helm chart (charts/etcd-ts-operator) installed with helm into a real control plane
// (kube-apiserver, controller-manager, scheduler; state in a 3-member etcd-ts cluster), whose Deployment the
// test kubelet runs as pods: the operator in-cluster, with the chart's ServiceAccount and RBAC only (the
// token the API server's ServiceAccount admission mounts; the API server through KUBERNETES_SERVICE_HOST/PORT,
// verified with the mounted ca.crt) and the chart's default --member-endpoints=dns (members reached by their
// stable DNS names, which the pods' /etc/hosts answers as cluster DNS would).
// - a value values.schema.json refuses: helm install fails with a message naming it; no release, no namespace,
//   no objects (only the CRD: helm applies crds/ before it checks values);
// - helm install: the CRD from crds/, 2 operator pods Running and Ready as the chart's ServiceAccount, exactly
//   one holding the leader Lease (its metrics say is_leader 1, the other's 0);
// - an EtcdCluster (test/kind/etcdcluster.yaml) becomes Available with 3 members; etcdctl put/get on a member;
// - the leading operator pod deleted: it releases the Lease, another pod takes it (the standby or the
//   replacement, whichever asks first), the Deployment replaces the pod, and the new leader scales the cluster 3 → 5 → 3 (etcdctl member list follows) and a deleted member pod rejoins as
//   the same member — all of which needs the chart's RBAC to be enough;
// - helm uninstall removes every object of the release (Deployment, ServiceAccount, RBAC, Service) and the
//   operator's pods, keeps the CRD (helm never deletes crds/) and the EtcdCluster, whose members keep serving;
// - the same chart with rbac.create=false: the operator is refused (403 naming its ServiceAccount), which shows
//   it acts with the pod's token only, so the runs above did prove the chart's RBAC enough.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseAllDocuments } from 'yaml';
import { etcdctl, httpGet, repoRoot, run, type RunResult } from '../helpers';
import { chartDir, helmPath } from '../helpers/charttools';
import { type E2eEnv, type EtcdClusterObject, condition, runningWith, startE2eEnv, waitFor as waitForEnv } from './env';
import { ApiError, type KubeObject } from './kubeapi';
import { type Pod } from './kubelet';

jest.setTimeout(600_000);

const RELEASE = 'etcd-ts-operator';
const OP_NS = 'etcd-ts-system';
const DB_NS = 'db';
const CLUSTER = 'main';
const CLUSTER_PATH = `/apis/etcd-ts.io/v1alpha1/namespaces/${DB_NS}/etcdclusters/${CLUSTER}`;
const CRD_PATH = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/etcdclusters.etcd-ts.io';
/** The chart's Lease: the release's full name, which is the release name when it holds the chart's name. */
const LEASE_PATH = `/apis/coordination.k8s.io/v1/namespaces/${OP_NS}/leases/${RELEASE}`;
const OPERATOR_SELECTOR = `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component=operator`;

let env: E2eEnv | undefined;
let helmHome = '';
const timings: string[] = [];
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

type Lease = KubeObject & { spec: { holderIdentity?: string } };

/** helm with the admin kubeconfig and its own (temporary) config, cache and data dirs; bounded. */
function helm(args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return run(helmPath(), [...args, `--kubeconfig=${env!.cp.kubeconfig}`], {
    timeoutMs,
    env: { HELM_CONFIG_HOME: path.join(helmHome, 'config'), HELM_CACHE_HOME: path.join(helmHome, 'cache'), HELM_DATA_HOME: path.join(helmHome, 'data') },
  }, ['HELM_', 'KUBECONFIG']);
}

async function helmOk(args: string[], timeoutMs?: number): Promise<string> {
  const r = await helm(args, timeoutMs);
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')} exited ${r.code ?? r.signal}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function pods(ns: string, selector: string): Promise<Pod[]> {
  const list = await env!.api.get<{ items: Pod[] }>(`/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(selector)}`);
  return list.items.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}
const operatorPods = () => pods(OP_NS, OPERATOR_SELECTOR);
const memberPods = () => pods(DB_NS, `app.kubernetes.io/instance=${CLUSTER}`);
const isReady = (p: Pod) => p.status?.phase === 'Running' && !p.metadata.deletionTimestamp && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
/** Pods, their logs, the Lease, the EtcdCluster's status, Events, the kubelet's and the control plane's logs. */
async function diagnostics(): Promise<string> {
  const parts: string[] = [];
  if (!env) return '';
  const { api, kubelet } = env;
  const c = await api.getOrNull<EtcdClusterObject>(CLUSTER_PATH).catch(() => undefined);
  parts.push(`EtcdCluster status: ${JSON.stringify(c?.status)}`);
  parts.push(`Lease: ${JSON.stringify((await api.getOrNull<Lease>(LEASE_PATH).catch(() => undefined))?.spec)}`);
  for (const ns of [OP_NS, DB_NS]) {
    const list = await api.get<{ items: Pod[] }>(`/api/v1/namespaces/${ns}/pods`).catch(() => ({ items: [] as Pod[] }));
    for (const p of list.items) {
      parts.push(`pod ${ns}/${p.metadata.name}: ${p.status?.phase} ${JSON.stringify(p.status?.conditions?.map((x) => `${x.type}=${x.status}`))} ${JSON.stringify(p.status?.containerStatuses)}`);
      if (ns === OP_NS) parts.push(`--- log of ${p.metadata.name} ---\n${kubelet.containerLog(ns, p.metadata.name).split('\n').slice(-40).join('\n')}`);
    }
    const events = await api.get<{ items: { reason: string; message: string; involvedObject: { name: string } }[] }>(`/api/v1/namespaces/${ns}/events`).catch(() => ({ items: [] }));
    for (const e of events.items.slice(-25)) parts.push(`event ${ns}/${e.involvedObject.name}: ${e.reason}: ${e.message}`);
  }
  parts.push(kubelet.logTails(15));
  parts.push(env.cp.logTails());
  return parts.join('\n');
}

const waitFor = <T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, intervalMs = 500) => waitForEnv(what, timeoutMs, check, diagnostics, intervalMs);

/** The operator pod holding the Lease (its identity is `<hostname>_<random>`, the hostname being the pod's name). */
async function leaseHolder(): Promise<string | undefined> {
  const lease = await env!.api.getOrNull<Lease>(LEASE_PATH);
  const holder = lease?.spec.holderIdentity ?? '';
  return /^(.+)_[0-9a-f]+$/.exec(holder)?.[1];
}

/** Every operator pod seen, for the check of their logs at the end. */
const seenOperators = new Set<string>();

/** Two operator pods Running and Ready, one of them holding the Lease; resolves with [leader, standby]. */
async function waitOperators(what: string, timeoutMs: number, exclude: string[] = []): Promise<[Pod, Pod]> {
  return waitFor(what, timeoutMs, async () => {
    const list = (await operatorPods()).filter((p) => !p.metadata.deletionTimestamp);
    list.forEach((p) => seenOperators.add(p.metadata.name));
    if (list.length !== 2 || !list.every(isReady) || list.some((p) => exclude.includes(p.metadata.name))) return undefined;
    const holder = await leaseHolder();
    const leader = list.find((p) => p.metadata.name === holder);
    const standby = list.find((p) => p.metadata.name !== holder);
    return leader && standby ? ([leader, standby] as [Pod, Pod]) : undefined;
  });
}

async function isLeaderMetric(p: Pod): Promise<string | undefined> {
  const m = await httpGet(`http://${p.status!.podIP}:8080/metrics`, 5_000);
  return /^etcd_ts_operator_is_leader (\d)$/m.exec(m.body)?.[1];
}

const getCluster = () => env!.api.get<EtcdClusterObject>(CLUSTER_PATH);

/** Phase Running for the current generation with `n` healthy voting members, Available. */
function waitRunning(n: number, timeoutMs: number): Promise<EtcdClusterObject> {
  return waitFor(`EtcdCluster Running with ${n} members`, timeoutMs, async () => {
    const c = await getCluster();
    return runningWith(c, n) ? c : undefined;
  }, 1000);
}

/** etcdctl against a member pod's IP (the test process reaches pod IPs over the kubelet's bridge). */
async function etcdctlOk(ip: string, args: string[]): Promise<string> {
  const r = await etcdctl(`${ip}:2379`, ['--command-timeout=10s', ...args], { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} on ${ip} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function memberIP(): Promise<string> {
  const ready = (await memberPods()).filter(isReady);
  if (ready.length === 0) throw new Error('no member pod is ready');
  return ready[0].status!.podIP as string;
}

beforeAll(async () => {
  helmPath(); // fail first with how to build helm when it is missing
  if (!fs.existsSync(path.join(repoRoot(), 'dist', 'operator', 'main.js'))) throw new Error('dist/operator/main.js is missing: build first (make build)');
  helmHome = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-ts-helm-'));
  // Short crash back-off: an operator that loses the Lease exits and is restarted.
  env = await startE2eEnv({ backoffInitialMs: 2000, backoffMaxMs: 10_000 });
  timings.push(...env.timings);
  await env.cp.kubectlOk(['create', 'namespace', DB_NS]);
}, 240_000);

afterAll(async () => {
  if (timings.length > 0) process.stdout.write(`chart e2e timings:\n${timings.map((t) => `  ${t}`).join('\n')}\n`);
  await env?.stop();
  if (helmHome && process.env.ETCD_TS_KEEP_TMP !== '1') fs.rmSync(helmHome, { recursive: true, force: true });
});

test('values.schema.json refuses a bad value: helm install fails naming it; no release, no namespace, no objects but the CRD', async () => {
  for (const [set, message] of [
    ['replicaCount=two', "at '/replicaCount': got string, want integer"],
    ['operator.memberEndpoints=cluster-ip', "at '/operator/memberEndpoints': value must be one of 'dns', 'pod-ip'"],
  ]) {
    const r = await helm(['install', 'bad', chartDir(), '-n', 'bad', '--create-namespace', '--set', 'image.repository=etcd-ts', '--set', set]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/values don't meet the specifications of the schema/);
    expect(r.stderr).toContain(message);
  }
  expect((await helmOk(['list', '--all-namespaces', '--deployed', '--failed', '--pending', '-q'])).trim()).toBe('');
  // helm installs the chart's crds/ before it checks the values (helm's order of operations, which the chart
  // cannot change): the CRD is the one thing a refused install leaves behind. No namespace, no release objects.
  expect(await env!.api.getOrNull(CRD_PATH)).toBeDefined();
  expect(await env!.api.getOrNull('/api/v1/namespaces/bad')).toBeUndefined();
  for (const p of ['/apis/apps/v1/namespaces/bad/deployments', '/api/v1/namespaces/bad/serviceaccounts', '/api/v1/namespaces/bad/services', '/apis/rbac.authorization.k8s.io/v1/namespaces/bad/roles']) {
    const list = await env!.api.get<{ items: KubeObject[] }>(p);
    expect(list.items.filter((o) => o.metadata.name !== 'default').map((o) => o.metadata.name)).toEqual([]);
  }
  const clusterRoles = await env!.api.get<{ items: KubeObject[] }>(`/apis/rbac.authorization.k8s.io/v1/clusterroles?labelSelector=${encodeURIComponent('app.kubernetes.io/instance=bad')}`);
  expect(clusterRoles.items).toEqual([]);
});

test('helm install: two operator pods Ready in-cluster as the chart\'s ServiceAccount, exactly one holding the Lease', async () => {
  const since = Date.now();
  await helmOk(['install', RELEASE, chartDir(), '-n', OP_NS, '--create-namespace', '--set', 'image.repository=etcd-ts']);
  timings.push(`helm install: ${secs(Date.now() - since)}`);
  // The CRD is the chart's (from its crds/, applied by helm).
  const crd = await env!.api.get<KubeObject & { metadata: { managedFields?: { manager: string }[] } }>(CRD_PATH);
  expect(crd.metadata.managedFields?.map((f) => f.manager)).toContain('helm');
  const [leader, standby] = await waitOperators('2 operator pods Running and Ready, one holding the Lease', 120_000);
  timings.push(`helm install → 2 operator pods Ready, Lease held: ${secs(Date.now() - since)}`);
  const deployment = await env!.api.get<KubeObject & { spec: { template: { spec: { serviceAccountName: string } } } }>(`/apis/apps/v1/namespaces/${OP_NS}/deployments/${RELEASE}`);
  for (const p of [leader, standby]) {
    expect(p.spec.serviceAccountName).toBe(deployment.spec.template.spec.serviceAccountName);
    expect(p.spec.containers[0].command).toEqual(['etcd-ts-operator']);
    // In-cluster: no kubeconfig; the service account volume the API server added.
    expect(JSON.stringify(p.spec.containers[0].args)).not.toMatch(/kubeconfig/);
    expect(p.spec.containers[0].volumeMounts?.map((m) => m.mountPath)).toContain('/var/run/secrets/kubernetes.io/serviceaccount');
  }
  // The one leading says so in its metrics and started the controllers, in dns mode; the other stands by.
  await waitFor('is_leader 1 on the leader, 0 on the standby', 30_000, async () =>
    (await isLeaderMetric(leader)) === '1' && (await isLeaderMetric(standby)) === '0' ? true : undefined,
  );
  const leaderLog = env!.kubelet.containerLog(OP_NS, leader.metadata.name, 'operator');
  expect(leaderLog).toMatch(/"memberEndpoints":"dns".*"msg":"starting controllers"/);
  expect(env!.kubelet.containerLog(OP_NS, standby.metadata.name, 'operator')).not.toMatch(/starting controllers/);
});

test('an EtcdCluster becomes Available through the in-cluster operator; etcdctl put/get on a member', async () => {
  const manifest = path.join(repoRoot(), 'test', 'kind', 'etcdcluster.yaml');
  const since = Date.now();
  if (fs.existsSync(manifest)) {
    await env!.cp.kubectlOk(['-n', DB_NS, 'apply', '-f', manifest]);
  } else {
    const doc = { apiVersion: 'etcd-ts.io/v1alpha1', kind: 'EtcdCluster', metadata: { name: CLUSTER, namespace: DB_NS }, spec: { replicas: 3 } };
    await env!.cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(doc) });
  }
  const c = await waitRunning(3, 240_000);
  timings.push(`EtcdCluster created → 3 members, Available: ${secs(Date.now() - since)}`);
  expect(c.status!.members!.map((m) => m.name)).toEqual(['main-0', 'main-1', 'main-2']);
  const ip = await memberIP();
  expect((await etcdctlOk(ip, ['put', 'chart-e2e', 'hello'])).trim()).toBe('OK');
  for (const p of await memberPods()) expect((await etcdctlOk(p.status!.podIP as string, ['get', 'chart-e2e', '--print-value-only'])).trim()).toBe('hello');
});

test('the leading operator pod deleted: it releases the Lease, another pod takes it, the Deployment replaces the pod', async () => {
  const [leader, standby] = await waitOperators('operators settled', 30_000);
  const since = Date.now();
  await env!.cp.kubectlOk(['-n', OP_NS, 'delete', 'pod', leader.metadata.name, '--wait=false']);
  // The leader releases the Lease on SIGTERM; the standby (retrying every 2 s) and the replacement pod (trying
  // as it starts) race for it, as replicas do in any cluster: either may win.
  const holder = await waitFor('another operator pod holding the Lease', 60_000, async () => {
    const h = await leaseHolder();
    return h && h !== leader.metadata.name ? h : undefined;
  }, 250);
  timings.push(`leader pod deleted → ${holder === standby.metadata.name ? 'the standby' : 'the replacement pod'} holds the Lease: ${secs(Date.now() - since)}`);
  const [newLeader, other] = await waitOperators('the Deployment back to 2 Ready pods', 120_000, [leader.metadata.name]);
  timings.push(`leader pod deleted → 2 Ready operator pods again: ${secs(Date.now() - since)}`);
  expect(newLeader.metadata.name).toBe(holder);
  expect([newLeader.metadata.name, other.metadata.name]).toContain(standby.metadata.name);
  await waitFor('is_leader 1 on the new leader, 0 on the other', 30_000, async () =>
    (await isLeaderMetric(newLeader)) === '1' && (await isLeaderMetric(other)) === '0' ? true : undefined,
  );
  expect(env!.kubelet.containerLog(OP_NS, newLeader.metadata.name, 'operator')).toMatch(/"msg":"starting controllers"/);
  expect(env!.kubelet.containerLog(OP_NS, other.metadata.name, 'operator')).not.toMatch(/starting controllers/);
  // The old leader finished, released the Lease and exited cleanly (code 0).
  const oldLog = env!.kubelet.containerLog(OP_NS, leader.metadata.name, 'operator');
  expect(oldLog).toMatch(/"msg":"stopped"/);
  expect(oldLog).toMatch(/exited code=0 signal=null/);
});

test('the new leader scales the cluster 3 → 5 → 3; etcdctl member list follows', async () => {
  for (const n of [5, 3]) {
    const since = Date.now();
    await env!.api.mergePatch(CLUSTER_PATH, { spec: { replicas: n } });
    const c = await waitRunning(n, 300_000);
    timings.push(`scale to ${n}: ${secs(Date.now() - since)}`);
    expect(c.status!.members!.map((m) => m.name)).toEqual(Array.from({ length: n }, (_, i) => `main-${i}`));
    const list = await waitFor(`etcdctl member list with ${n} voting members`, 60_000, async () => {
      const l = JSON.parse(await etcdctlOk(await memberIP(), ['member', 'list', '-w', 'json'])) as { members: { name: string; isLearner?: boolean }[] };
      return l.members.length === n && l.members.every((m) => !m.isLearner) ? l : undefined;
    });
    expect(list.members.map((m) => m.name).sort()).toEqual(Array.from({ length: n }, (_, i) => `main-${i}`));
  }
  await waitFor('3 member pods left', 60_000, async () => ((await memberPods()).filter((p) => !p.metadata.deletionTimestamp).length === 3 ? true : undefined));
  expect((await etcdctlOk(await memberIP(), ['get', 'chart-e2e', '--print-value-only'])).trim()).toBe('hello');
});

test('a deleted member pod is recreated and rejoins as the same member', async () => {
  const before = await waitRunning(3, 60_000);
  const ids = before.status!.members!.map((m) => `${m.name}=${m.id}`);
  const victim = before.status!.members!.find((m) => !m.isLeader)!.name!;
  const old = (await memberPods()).find((p) => p.metadata.name === victim)!;
  const since = Date.now();
  await env!.cp.kubectlOk(['-n', DB_NS, 'delete', 'pod', victim, '--wait=false']);
  const pod = await waitFor(`${victim} recreated and Ready`, 120_000, async () => {
    const p = (await memberPods()).find((x) => x.metadata.name === victim);
    return p && p.metadata.uid !== old.metadata.uid && isReady(p) ? p : undefined;
  });
  expect((await etcdctlOk(pod.status!.podIP as string, ['get', 'chart-e2e', '--print-value-only', '--consistency=s'])).trim()).toBe('hello');
  const after = await waitFor('status: 3 healthy members, Available', 120_000, async () => {
    const c = await getCluster();
    const s = c.status;
    return s?.members?.length === 3 && s.members.every((m) => m.healthy && !m.isLearner) && condition(s, 'Available')?.status === 'True' ? c : undefined;
  });
  timings.push(`member pod deleted → recreated, rejoined, healthy: ${secs(Date.now() - since)}`);
  expect(after.status!.members!.map((m) => `${m.name}=${m.id}`)).toEqual(ids);
});

/** API paths of the objects helm created for the release (from its stored manifest). */
async function releaseObjects(): Promise<string[]> {
  const manifest = await helmOk(['get', 'manifest', RELEASE, '-n', OP_NS]);
  const paths: string[] = [];
  const bases: Record<string, string> = {
    ServiceAccount: `/api/v1/namespaces/${OP_NS}/serviceaccounts`,
    Service: `/api/v1/namespaces/${OP_NS}/services`,
    Deployment: `/apis/apps/v1/namespaces/${OP_NS}/deployments`,
    Role: `/apis/rbac.authorization.k8s.io/v1/namespaces/${OP_NS}/roles`,
    RoleBinding: `/apis/rbac.authorization.k8s.io/v1/namespaces/${OP_NS}/rolebindings`,
    ClusterRole: '/apis/rbac.authorization.k8s.io/v1/clusterroles',
    ClusterRoleBinding: '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
  };
  for (const doc of parseAllDocuments(manifest)) {
    const o = doc.toJS() as KubeObject | null;
    if (!o) continue;
    const base = bases[o.kind as string];
    if (!base) throw new Error(`the release has a ${o.kind} this test does not know how to look up`);
    paths.push(`${base}/${o.metadata.name}`);
  }
  return paths;
}

test('helm uninstall removes the release\'s objects and the operator pods, keeps the CRD and the cluster', async () => {
  // Everything above ran on the chart's RBAC alone: no request of the operators was refused.
  for (const p of await operatorPods()) seenOperators.add(p.metadata.name);
  expect(seenOperators.size).toBeGreaterThanOrEqual(3);
  for (const name of seenOperators) {
    const log = env!.kubelet.containerLog(OP_NS, name, 'operator');
    expect(log).toMatch(/waiting for the leader lease/);
    expect(log).not.toMatch(/forbidden/i);
  }
  const objects = await releaseObjects();
  // What the chart must have made, at least.
  for (const kind of ['serviceaccounts', 'deployments', '/clusterroles/', '/clusterrolebindings/', '/roles/', '/rolebindings/', '/services/']) {
    expect(objects.some((p) => p.includes(kind))).toBe(true);
  }
  for (const p of objects) expect(await env!.api.getOrNull(p)).toBeDefined();
  const since = Date.now();
  await helmOk(['uninstall', RELEASE, '-n', OP_NS]);
  for (const p of objects) {
    await waitFor(`${p} deleted`, 30_000, async () => {
      try {
        await env!.api.get<KubeObject>(p);
        return undefined;
      } catch (e) {
        return e instanceof ApiError && e.status === 404 ? true : undefined;
      }
    });
  }
  await waitFor('operator pods gone', 90_000, async () => ((await operatorPods()).length === 0 ? true : undefined));
  timings.push(`helm uninstall → objects and operator pods gone: ${secs(Date.now() - since)}`);
  expect((await helmOk(['list', '-n', OP_NS, '-q'])).trim()).toBe('');
  expect((await env!.api.get<KubeObject>(CRD_PATH)).metadata.deletionTimestamp).toBeUndefined();
  expect((await getCluster()).spec.replicas).toBe(3);
  // The members do not need the operator to serve.
  await sleep(1000);
  expect((await etcdctlOk(await memberIP(), ['get', 'chart-e2e', '--print-value-only'])).trim()).toBe('hello');
});

test('without the chart\'s RBAC the operator is refused: it really acts as its ServiceAccount, not as an admin', async () => {
  const ns = 'norbac';
  const since = Date.now();
  await helmOk(['install', ns, chartDir(), '-n', ns, '--create-namespace', '--set', 'image.repository=etcd-ts', '--set', 'rbac.create=false', '--set', 'replicaCount=1']);
  const sa = `system:serviceaccount:${ns}:${ns}-${RELEASE}`;
  const refused = await waitFor('the operator refused by the API server', 60_000, async () => {
    const [p] = await pods(ns, `app.kubernetes.io/instance=${ns}`);
    const log = p ? env!.kubelet.containerLog(ns, p.metadata.name, 'operator') : '';
    return /forbidden/.test(log) ? log : undefined;
  });
  timings.push(`install without RBAC → the operator's first refusal: ${secs(Date.now() - since)}`);
  expect(refused).toMatch(new RegExp(`leases.* is forbidden: User \\\\?"${sa}\\\\?" cannot`));
  expect(refused).not.toMatch(/starting controllers/);
  await helmOk(['uninstall', ns, '-n', ns]);
});
