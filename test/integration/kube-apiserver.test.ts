// kube-apiserver with its storage in a 3-member etcd-ts cluster, as a real control plane runs it:
// kube-apiserver, kube-controller-manager and kube-scheduler (Kubernetes built from its Go modules
// by `make k8s-tools`), driven with kubectl. No kubelet: Pods stay Pending.
//
// What it checks, in order (the tests share one cluster and one control plane):
// - /readyz?verbose: every check ok, etcd's included; /version; Status (dbSize) behind
//   apiserver_storage_size_bytes;
// - 200 ConfigMaps, listed in pages of 50 (ConfigMaps bypass the watch cache here, so each page is
//   an etcd range with a limit at the first page's revision: counts, order, remainingItemCount);
// - an update with a stale resourceVersion is a Conflict (txn compare on mod_revision), a create
//   of an existing name is AlreadyExists (compare mod_revision == 0);
// - a watch from a resourceVersion sees a create, an update and a delete (etcd watch from rev+1
//   with prev_kv), live and replayed;
// - SIGKILL of the etcd leader: the apiserver, which has all three endpoints, keeps working;
// - a Deployment gets its ReplicaSet and Pods from the controller-manager, the scheduler marks
//   the Pods Unschedulable (there are no nodes) and stays up;
// - deleting the namespace empties it in etcd and removes it (namespace controller);
// - the apiserver's compaction (every 20 s here) compacts etcd: compact_rev_key advances, a read
//   below the compacted revision fails, and kube-apiserver turns a continue token and a watch from
//   before the compaction into 410 Expired;
// - the three components' logs have no unexpected warning or error about etcd or gRPC (all are
//   printed, grouped), and every consistent read from the watch cache was served without falling
//   back to etcd (progress notifications came in time).
//
// The etcd cluster is etcd-ts; ETCD_TS_KUBE_KIND=etcd runs the same tests against reference etcd.
import { NodeHandle, NodeKind, etcdctl, httpGet, startCluster } from '../helpers';
import { ControlPlane, K8S_VERSION, etcdProblemLines, requireK8sTools, startControlPlane, summarizeLines } from '../helpers/kube';

const KIND: NodeKind = process.env.ETCD_TS_KUBE_KIND === 'etcd' ? 'etcd' : 'etcd-ts';
const NS = 'kube-e2e';
const CONFIGMAPS = 200;
const PAGE = 50;
const COMPACTION_INTERVAL_S = 20;

jest.setTimeout(180_000);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Retries `fn` until it returns without throwing (bounded); rethrows the last error with `what`. */
async function eventually<T>(what: string, timeoutMs: number, fn: () => Promise<T>, intervalMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${what}: still failing after ${timeoutMs} ms: ${(e as Error).message}`);
    }
    await sleep(intervalMs);
  }
}

interface ObjectMeta {
  name: string;
  namespace?: string;
  resourceVersion?: string;
  ownerReferences?: { kind: string; name: string }[];
}
interface KubeObject {
  kind?: string;
  metadata: ObjectMeta;
  data?: Record<string, string>;
  status?: { phase?: string; replicas?: number; conditions?: { type: string; status: string; reason?: string }[] };
}
interface KubeList {
  metadata: { resourceVersion: string; continue?: string; remainingItemCount?: number };
  items: KubeObject[];
}
interface WatchEvent {
  type: string;
  object: KubeObject;
}

let nodes: NodeHandle[] = [];
let cp: ControlPlane;
let killed: NodeHandle | undefined;
type Component = 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler';
/** Log positions of each component at the kill and once kube-apiserver served again. */
const marks: {
  kill: Partial<Record<Component, number>>;
  recovered: Partial<Record<Component, number>>;
  /** Around the compaction test's reads below the compacted revision. */
  staleReads: Partial<Record<Component, { from: number; to: number }>>;
} = { kill: {}, recovered: {}, staleReads: {} };
function markLogs(): Partial<Record<Component, number>> {
  const m: Partial<Record<Component, number>> = { 'kube-apiserver': cp.apiserver.logMark() };
  if (cp.controllerManager) m['kube-controller-manager'] = cp.controllerManager.logMark();
  if (cp.scheduler) m['kube-scheduler'] = cp.scheduler.logMark();
  return m;
}
let compactVersionAtKill = 0;
/** A continue token of the paginated list and the revision its pages were read at. */
let staleContinue = '';
let pagesRevision = 0;
const startedAt = Date.now();

function survivors(): string[] {
  return nodes.filter((n) => n.running).map((n) => n.endpoint);
}

/** Value of one sample of a Prometheus text exposition (0 when absent). */
function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((kv) => l.includes(kv)));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

async function apiserverMetrics(): Promise<string> {
  return cp.kubectlOk(['get', '--raw', '/metrics']);
}

/** compact_rev_key as the apiserver's compactor keeps it: its version counts compaction rounds, its value is the last compacted revision. */
async function compactRevKey(): Promise<{ version: number; compacted: number }> {
  const r = await etcdctl(survivors(), ['get', 'compact_rev_key', '-w', 'json']);
  if (r.code !== 0) throw new Error(`etcdctl get compact_rev_key: ${r.stderr}`);
  const kvs = (JSON.parse(r.stdout) as { kvs?: { version: number; value: string }[] }).kvs ?? [];
  if (kvs.length === 0) return { version: 0, compacted: 0 };
  return { version: Number(kvs[0].version), compacted: Number(Buffer.from(kvs[0].value, 'base64').toString('utf8')) };
}

async function etcdLeader(): Promise<NodeHandle> {
  return eventually('an etcd member reporting etcd_server_is_leader 1', 15_000, async () => {
    for (const n of nodes.filter((x) => x.running)) {
      const m = await httpGet(`${n.clientUrl}/metrics`, 2_000).catch(() => undefined);
      if (m && /^etcd_server_is_leader 1$/m.test(m.body)) return n;
    }
    throw new Error('no leader yet');
  }, 200);
}

beforeAll(async () => {
  // Fails (rather than skips) when `make k8s-tools` has not built the control plane.
  requireK8sTools();
  nodes = await startCluster({ kind: KIND, size: 3 });
  const t0 = Date.now();
  cp = await startControlPlane({
    etcdServers: nodes.map((n) => n.clientUrl),
    compactionInterval: `${COMPACTION_INTERVAL_S}s`,
    uncachedResources: ['configmaps'],
  });
  console.log(`control plane v${K8S_VERSION} on a 3-member ${KIND} cluster ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (logs in ${cp.dir})`);
}, 300_000);

afterAll(async () => {
  console.log(`kube-apiserver test: ${((Date.now() - startedAt) / 1000).toFixed(1)} s in all`);
  await cp?.stop();
  await Promise.all(nodes.map((n) => n.destroy().catch(() => undefined)));
}, 60_000);

test('/readyz?verbose: every check ok, etcd included; /version is the release built', async () => {
  const out = await cp.kubectlOk(['get', '--raw', '/readyz?verbose']);
  const checks = out.split('\n').filter((l) => /^\[[+-]\]/.test(l));
  expect(checks.filter((l) => !l.startsWith('[+]'))).toEqual([]);
  expect(checks).toEqual(expect.arrayContaining(['[+]etcd ok', '[+]etcd-readiness ok']));
  expect(out).toMatch(/readyz check passed/);
  const version = JSON.parse(await cp.kubectlOk(['get', '--raw', '/version'])) as { gitVersion: string };
  expect(version.gitVersion).toBe(`v${K8S_VERSION}`);
  // Each /metrics scrape asks one etcd member for Status (its dbSize).
  const dbSize = await eventually('apiserver_storage_size_bytes from etcd Status', 20_000, async () => {
    const size = metric(await apiserverMetrics(), 'apiserver_storage_size_bytes', 'storage_cluster_id="etcd-0"');
    if (!(size > 0)) throw new Error(`apiserver_storage_size_bytes ${size}`);
    return size;
  });
  expect(dbSize).toBeGreaterThan(0);
});

test(`${CONFIGMAPS} ConfigMaps, listed in pages of ${PAGE} from etcd (range with limit at one revision)`, async () => {
  await cp.kubectlOk(['create', 'namespace', NS]);
  // The controller-manager's root-CA publisher puts kube-root-ca.crt into every namespace; wait
  // for it so that the namespace's ConfigMaps are exactly it and ours.
  await eventually('kube-root-ca.crt published into the namespace', 60_000, () => cp.kubectlOk(['get', 'configmap', 'kube-root-ca.crt', '-n', NS, '-o', 'name']));
  const list = {
    apiVersion: 'v1',
    kind: 'List',
    items: Array.from({ length: CONFIGMAPS }, (_, i) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: `cm-${String(i).padStart(3, '0')}`, namespace: NS, labels: { batch: 'a' } },
      data: { index: String(i), payload: 'x'.repeat(512) },
    })),
  };
  await cp.kubectlOk(['create', '-f', '-'], { input: JSON.stringify(list), timeoutMs: 120_000 });
  const total = CONFIGMAPS + 1; // and kube-root-ca.crt

  const before = await apiserverMetrics();

  // kubectl's own chunking.
  const names = (await cp.kubectlOk(['get', 'configmaps', '-n', NS, `--chunk-size=${PAGE}`, '-o', 'name'])).trim().split('\n');
  expect(names.length).toBe(total);
  expect(names.filter((n) => n.startsWith('configmap/cm-')).length).toBe(CONFIGMAPS);

  // The same pages by hand: limit + continue, every page read at the first page's revision, so
  // a ConfigMap created and one deleted after the first page do not change what the pages hold.
  const pages: KubeList[] = [];
  let cont = '';
  do {
    const q = `/api/v1/namespaces/${NS}/configmaps?limit=${PAGE}${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`;
    const page = JSON.parse(await cp.kubectlOk(['get', '--raw', q])) as KubeList;
    pages.push(page);
    cont = page.metadata.continue ?? '';
    if (pages.length === 1) {
      await cp.kubectlOk(['create', 'configmap', 'cm-150a', '-n', NS, '--from-literal=k=v']);
      await cp.kubectlOk(['delete', 'configmap', 'cm-180', '-n', NS]);
    }
  } while (cont && pages.length < 20);
  const expectedPages = Math.ceil(total / PAGE);
  expect(pages.map((p) => p.items.length)).toEqual(Array.from({ length: expectedPages }, (_, i) => Math.min(PAGE, total - i * PAGE)));
  expect(new Set(pages.map((p) => p.metadata.resourceVersion)).size).toBe(1);
  staleContinue = pages[0].metadata.continue ?? '';
  pagesRevision = Number(pages[0].metadata.resourceVersion);
  expect(pages[0].metadata.remainingItemCount).toBe(total - PAGE);
  const paged = pages.flatMap((p) => p.items.map((o) => o.metadata.name));
  expect(paged).toEqual(names.map((n) => n.replace(/^configmap\//, '')).sort());
  expect(paged).toContain('cm-180');
  expect(paged).not.toContain('cm-150a');
  // A fresh list sees both changes.
  const fresh = (await cp.kubectlOk(['get', 'configmaps', '-n', NS, '-o', 'name'])).trim().split('\n');
  expect(fresh).toContain('configmap/cm-150a');
  expect(fresh).not.toContain('configmap/cm-180');

  // The listings went to etcd (the ConfigMap watch cache is off): one "list" per page at least.
  const after = await apiserverMetrics();
  const labels = 'operation="list",group="",resource="configmaps"';
  const etcdLists = metric(after, 'etcd_requests_total', labels) - metric(before, 'etcd_requests_total', labels);
  expect(etcdLists).toBeGreaterThanOrEqual(2 * expectedPages + 1);
  expect(metric(after, 'etcd_request_errors_total', labels)).toBe(0);
});

test('a stale resourceVersion is a Conflict; creating an existing name is AlreadyExists', async () => {
  const cm = JSON.parse(await cp.kubectlOk(['get', 'configmap', 'cm-007', '-n', NS, '-o', 'json'])) as KubeObject;
  const stale = cm.metadata.resourceVersion;
  cm.data = { index: '7', value: 'first' };
  const updated = JSON.parse(await cp.kubectlOk(['replace', '-o', 'json', '-f', '-'], { input: JSON.stringify(cm) })) as KubeObject;
  expect(Number(updated.metadata.resourceVersion)).toBeGreaterThan(Number(stale));

  cm.data = { index: '7', value: 'second' };
  cm.metadata.resourceVersion = stale;
  const conflict = await cp.kubectl(['replace', '-f', '-'], { input: JSON.stringify(cm) });
  expect(conflict.code).not.toBe(0);
  expect(conflict.stderr).toMatch(/Operation cannot be fulfilled on configmaps "cm-007": the object has been modified/);

  const now = JSON.parse(await cp.kubectlOk(['get', 'configmap', 'cm-007', '-n', NS, '-o', 'json'])) as KubeObject;
  expect(now.data?.value).toBe('first');
  expect(now.metadata.resourceVersion).toBe(updated.metadata.resourceVersion);

  const exists = await cp.kubectl(['create', 'configmap', 'cm-007', '-n', NS, '--from-literal=a=b']);
  expect(exists.code).not.toBe(0);
  expect(exists.stderr).toMatch(/configmaps "cm-007" already exists/);
});

test('a watch from a resourceVersion sees a create, an update and a delete (live and replayed)', async () => {
  const rv = (JSON.parse(await cp.kubectlOk(['get', '--raw', `/api/v1/namespaces/${NS}/configmaps?limit=1`])) as KubeList).metadata.resourceVersion;
  const watchPath = (timeoutSeconds: number) => `/api/v1/namespaces/${NS}/configmaps?watch=1&resourceVersion=${rv}&timeoutSeconds=${timeoutSeconds}`;
  const parse = (out: string): WatchEvent[] =>
    out
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as WatchEvent)
      .filter((e) => e.object.metadata.name === 'cm-watch');

  // The server ends the watch after timeoutSeconds.
  const live = cp.kubectl(['get', '--raw', watchPath(6)], { timeoutMs: 30_000 });
  await sleep(1_000);
  await cp.kubectlOk(['create', 'configmap', 'cm-watch', '-n', NS, '--from-literal=k=1']);
  await cp.kubectlOk(['patch', 'configmap', 'cm-watch', '-n', NS, '--type=merge', '-p', '{"data":{"k":"2"}}']);
  await cp.kubectlOk(['delete', 'configmap', 'cm-watch', '-n', NS]);
  const liveOut = await live;
  expect(liveOut.code).toBe(0);
  const liveEvents = parse(liveOut.stdout);
  expect(liveEvents.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
  expect(liveEvents.map((e) => e.object.data?.k)).toEqual(['1', '2', '2']);
  const rvs = liveEvents.map((e) => Number(e.object.metadata.resourceVersion));
  expect([...rvs].sort((a, b) => a - b)).toEqual(rvs);
  expect(rvs[0]).toBeGreaterThan(Number(rv));

  // From etcd's history: the same three events, same revisions.
  const replay = await cp.kubectl(['get', '--raw', watchPath(2)], { timeoutMs: 30_000 });
  expect(replay.code).toBe(0);
  const replayed = parse(replay.stdout);
  expect(replayed.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
  expect(replayed.map((e) => Number(e.object.metadata.resourceVersion))).toEqual(rvs);
});

test('SIGKILL of the etcd leader: kube-apiserver keeps working on the other two members', async () => {
  compactVersionAtKill = (await compactRevKey()).version;
  const leader = await etcdLeader();
  killed = leader;
  marks.kill = markLogs();
  const t0 = Date.now();
  leader.kill('SIGKILL');
  await leader.waitExit(10_000);

  // A write through the apiserver (bounded retries while the other two elect a leader; a create
  // that timed out may still have been committed, hence AlreadyExists counts).
  await eventually('a ConfigMap create after the kill', 60_000, async () => {
    const r = await cp.kubectl(['create', 'configmap', 'after-kill', '-n', NS, '--from-literal=k=v']);
    if (r.code !== 0 && !/AlreadyExists|already exists/.test(r.stderr)) throw new Error(r.stderr);
  }, 250);
  const recoveredAfter = Date.now() - t0;
  await cp.kubectlOk(['get', 'configmap', 'cm-199', 'after-kill', '-n', NS, '-o', 'name']);
  const out = await eventually('/readyz?verbose all ok after the kill', 60_000, async () => {
    const r = await cp.kubectlOk(['get', '--raw', '/readyz?verbose']);
    if (!/readyz check passed/.test(r)) throw new Error(r);
    return r;
  });
  expect(out).toMatch(/\[\+\]etcd ok/);
  const newLeader = await etcdLeader();
  expect(newLeader).not.toBe(leader);

  // From now on every request works the first time. Requests that were in flight at the kill
  // end within etcd's request timeout (5 s + 2 election timeouts); until then the logs may still
  // report them.
  const settleAt = t0 + 10_000;
  for (let i = 0; Date.now() < settleAt || i < 5; i++) {
    await cp.kubectlOk(['create', 'configmap', `after-kill-${i}`, '-n', NS, '--from-literal=k=v']);
    await cp.kubectlOk(['get', 'configmap', `after-kill-${i}`, '-n', NS, '-o', 'name']);
    await sleep(500);
  }
  marks.recovered = markLogs();
  console.log(`killed etcd leader ${leader.name} (${leader.endpoint}); first write through kube-apiserver ${recoveredAfter} ms later; new leader ${newLeader.name}`);
});

test('a Deployment gets its ReplicaSet and Pods (controller-manager); the scheduler marks them Unschedulable', async () => {
  await cp.kubectlOk(['create', 'deployment', 'web', '-n', NS, '--image=registry.invalid/pause:3.10', '--replicas=2']);
  const rs = await eventually('the Deployment\'s ReplicaSet', 60_000, async () => {
    const l = JSON.parse(await cp.kubectlOk(['get', 'replicasets', '-n', NS, '-l', 'app=web', '-o', 'json'])) as KubeList;
    if (l.items.length !== 1) throw new Error(`${l.items.length} ReplicaSets`);
    return l.items[0];
  });
  expect(rs.metadata.ownerReferences?.map((o) => `${o.kind}/${o.name}`)).toEqual(['Deployment/web']);

  const pods = await eventually('2 Pods of the ReplicaSet, marked Unschedulable by the scheduler', 90_000, async () => {
    const l = JSON.parse(await cp.kubectlOk(['get', 'pods', '-n', NS, '-l', 'app=web', '-o', 'json'])) as KubeList;
    if (l.items.length !== 2) throw new Error(`${l.items.length} Pods`);
    for (const p of l.items) {
      const scheduled = p.status?.conditions?.find((c) => c.type === 'PodScheduled');
      if (scheduled?.status !== 'False' || scheduled.reason !== 'Unschedulable') throw new Error(`${p.metadata.name}: PodScheduled ${JSON.stringify(scheduled)}`);
    }
    return l.items;
  });
  for (const p of pods) {
    expect(p.status?.phase).toBe('Pending');
    expect(p.metadata.ownerReferences?.map((o) => `${o.kind}/${o.name}`)).toEqual([`ReplicaSet/${rs.metadata.name}`]);
  }
  await eventually('Deployment status.replicas = 2', 30_000, async () => {
    const d = JSON.parse(await cp.kubectlOk(['get', 'deployment', 'web', '-n', NS, '-o', 'json'])) as KubeObject;
    if (d.status?.replicas !== 2) throw new Error(`status ${JSON.stringify(d.status)}`);
  });

  expect(cp.scheduler?.running).toBe(true);
  expect(cp.controllerManager?.running).toBe(true);
  expect((await cp.componentHealth('kube-scheduler')).status).toBe(200);
  expect((await cp.componentHealth('kube-controller-manager')).status).toBe(200);
});

test('deleting the namespace empties it in etcd and removes it (namespace controller)', async () => {
  await cp.kubectlOk(['delete', 'namespace', NS, '--wait=false']);
  await eventually(`namespace ${NS} gone`, 120_000, async () => {
    const r = await cp.kubectl(['get', 'namespace', NS, '-o', 'name']);
    if (r.code === 0 || !/NotFound/.test(r.stderr)) throw new Error(`still there: ${r.stdout}${r.stderr}`);
  }, 1_000);
  for (const resource of ['configmaps', 'pods', 'replicasets', 'deployments']) {
    const r = await etcdctl(survivors(), ['get', `/registry/${resource}/${NS}/`, '--prefix', '--count-only', '-w', 'fields']);
    expect({ resource, code: r.code, stderr: r.stderr }).toEqual({ resource, code: 0, stderr: '' });
    expect({ resource, count: /^"Count" : (\d+)$/m.exec(r.stdout)?.[1] }).toEqual({ resource, count: '0' });
  }
});

test(`the apiserver compacts etcd every ${COMPACTION_INTERVAL_S} s, also after the kill`, async () => {
  // Each round bumps compact_rev_key's version and compacts at the revision it stored the round before.
  const { version, compacted } = await eventually('a compaction round after the kill', (3 * COMPACTION_INTERVAL_S + 30) * 1000, async () => {
    const k = await compactRevKey();
    if (k.version < Math.max(2, compactVersionAtKill + 1) || k.compacted <= pagesRevision) throw new Error(`compact_rev_key ${JSON.stringify(k)}`);
    return k;
  }, 1_000);
  for (const ep of survivors()) {
    const below = await etcdctl(ep, ['get', 'compact_rev_key', `--rev=${compacted - 1}`]);
    expect(below.code).not.toBe(0);
    expect(below.stderr).toMatch(/required revision has been compacted/);
    const at = await etcdctl(ep, ['get', 'compact_rev_key', `--rev=${compacted}`]);
    expect(at.code).toBe(0);
  }
  // What kube-apiserver makes of the compacted revisions: 410 Expired for a continue token and for
  // a watch from before the compaction (ConfigMaps: straight from etcd).
  expect(staleContinue).not.toBe('');
  const staleFrom = cp.apiserver.logMark();
  const cont = await cp.kubectl(['get', '--raw', `/api/v1/namespaces/${NS}/configmaps?limit=${PAGE}&continue=${encodeURIComponent(staleContinue)}`]);
  expect(cont.code).not.toBe(0);
  expect(cont.stderr).toMatch(/Expired.*continue parameter is too old|continue parameter is too old.*Expired/s);
  const oldWatch = await cp.kubectl(['get', '--raw', `/api/v1/configmaps?watch=1&resourceVersion=${pagesRevision}&timeoutSeconds=5`], { timeoutMs: 30_000 });
  const events = oldWatch.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as { type: string; object: { code?: number; reason?: string } });
  await sleep(500); // let kube-apiserver log what it saw
  marks.staleReads['kube-apiserver'] = { from: staleFrom, to: cp.apiserver.logMark() };
  expect(events.map((e) => [e.type, e.object.code, e.object.reason])).toEqual([['ERROR', 410, 'Expired']]);

  // Failed rounds (`compact failed`) are errors about etcd: the log test judges them.
  const rounds = cp.apiserver.logSince(0).split('\n').filter((l) => /compact\.go/.test(l));
  console.log(`compact_rev_key version ${version} (version ${compactVersionAtKill} at the kill), compacted at revision ${compacted}; kube-apiserver logged:\n${rounds.join('\n')}`);
});

// What the logs may show, and when.
const esc = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
// Any time, client-side only: grpc-go's text when kube-apiserver closes one of its etcd clients
// (a storage it destroys while starting) with a request still in flight, and cancellations by
// kube-apiserver itself; no server can produce these.
const CLIENT_LOCAL = [/grpc: the client connection is closing/, /code = Canceled desc = context canceled/, /failed to sync with latest state: context canceled/];
// From the kill on: the gRPC client redialling the dead member.
const deadMember = (endpoint: string) => [new RegExp(`Addr: "${esc(endpoint)}"`), new RegExp(`Peer\\{Addr: '${esc(endpoint)}'`), new RegExp(`dial tcp ${esc(endpoint)}: connect`)];
// Until the requests in flight at the kill have ended: etcd's errors for a lost leader (reference
// etcd shows the same) and kube-apiserver's reports of the requests that got them.
const LEADER_LOSS = [/code = Unavailable desc = etcdserver: /, /etcdserver: request timed out/, /DeadlineExceeded desc = latest balancer error/];
// While the compaction test reads below the compacted revision on purpose.
const COMPACTED = [/required revision has been compacted/];

interface Window {
  name: string;
  from: number;
  to: number;
  allowed: RegExp[];
}

test('the logs show no unexpected warning or error about etcd / gRPC', async () => {
  const metrics = await apiserverMetrics();
  const errorCounters = metrics.split('\n').filter((l) => l.startsWith('etcd_request_errors_total{'));
  const consistentReads = metrics.split('\n').filter((l) => l.startsWith('apiserver_watch_cache_consistent_read_total{'));
  const dead = killed?.endpoint;
  const report: string[] = [];
  const unexpected: string[] = [];
  for (const [name, proc] of [['kube-apiserver', cp.apiserver], ['kube-controller-manager', cp.controllerManager], ['kube-scheduler', cp.scheduler]] as const) {
    if (!proc) continue;
    const log = Buffer.from(proc.logSince(0), 'utf8');
    const end = log.length;
    // Without a kill (its test failed) nothing but CLIENT_LOCAL is allowed.
    const killAt = marks.kill[name] ?? end;
    const settledAt = marks.recovered[name] ?? end;
    const windows: Window[] = [
      { name: 'before the kill', from: 0, to: killAt, allowed: CLIENT_LOCAL },
      { name: `from the kill of ${dead} until requests in flight ended`, from: killAt, to: settledAt, allowed: [...CLIENT_LOCAL, ...LEADER_LOSS, ...(dead ? deadMember(dead) : [])] },
      { name: 'after that', from: settledAt, to: end, allowed: [...CLIENT_LOCAL, ...(dead ? deadMember(dead) : [])] },
    ];
    const stale = marks.staleReads[name];
    for (const w of windows) {
      const lines = etcdProblemLines(log.subarray(Math.min(w.from, end), Math.min(w.to, end)).toString('utf8'));
      if (lines.length === 0) continue;
      report.push(`${name}, ${w.name}: ${lines.length} lines`, ...summarizeLines(lines).map((l) => `  ${l}`));
      // The compaction test's own reads below the compacted revision fall in the last window.
      const staleLines = stale ? etcdProblemLines(log.subarray(stale.from, stale.to).toString('utf8')) : [];
      const bad = lines.filter((l) => !w.allowed.some((re) => re.test(l)) && !(staleLines.includes(l) && COMPACTED.some((re) => re.test(l))));
      unexpected.push(...summarizeLines(bad).map((l) => `${name}, ${w.name}: ${l}`));
    }
  }
  console.log(
    [
      `etcd / gRPC warnings and errors in the logs (grouped; full logs in ${cp.dir} with ETCD_TS_KEEP_TMP=1):`,
      ...(report.length ? report : ['  none']),
      'kube-apiserver etcd_request_errors_total:',
      ...(errorCounters.length ? errorCounters.map((l) => `  ${l}`) : ['  none']),
      'kube-apiserver consistent reads from its watch cache (fallback="true": the cache did not catch up with etcd in time):',
      ...consistentReads.map((l) => `  ${l}`),
    ].join('\n'),
  );
  expect(unexpected).toEqual([]);
  // Consistent reads are served from the watch cache once etcd's progress notifications (asked
  // for with RequestProgress) show it is fresh; a fallback means they did not come in time.
  expect(consistentReads.filter((l) => /fallback="true"|success="false"/.test(l) && !/ 0$/.test(l))).toEqual([]);
});
