// The test kubelet (kubelet.ts) under a real control plane: kube-apiserver, controller-manager and scheduler
// (test/helpers/kube.ts) with their storage in a 3-member etcd-ts cluster, running the objects the operator's
// builders make for a 3-member EtcdCluster:
// - the Node registers and becomes Ready without taints (Lease renewed, node-lifecycle controller content);
// - the StatefulSet controller creates 3 pods and 3 claims, the kubelet provisions a volume per claim, the PV
//   controller binds them, the scheduler binds the pods to the node;
// - the pods run etcd-ts in their own network namespaces as the builder's user (65532); the members find each
//   other by their StatefulSet DNS names (from the EndpointSlices of the headless peer Service) and form one
//   cluster: `etcdctl endpoint status --cluster` from inside a pod lists 3 members with one leader, and every
//   pod is Running and Ready through the builder's startup and readiness probes;
// - each volume is mounted at its mountPath in the container's own mount namespace (the data dir as the pod
//   spec names it; an emptyDir at /scratch, which this machine does not have and still does not have after);
// - readOnlyRootFilesystem: the root is read-only, the volumes and /dev are not;
// - in-cluster: the pod's hostname is its name; the service account volume the API server adds is at
//   /var/run/secrets/kubernetes.io/serviceaccount, read-only, and nowhere on this machine; KUBERNETES_SERVICE_HOST/
//   PORT lead to kube-apiserver, whose certificate verifies with the mounted ca.crt and which takes the token;
// - a key written, pod main-1 deleted: SIGTERM, the delete, the StatefulSet controller makes a new main-1 on
//   the same claim and volume; it rejoins as the same member (no new member ID), becomes Ready and serves the
//   key from its own data (a serializable read);
// - main-2's process SIGKILLed: the kubelet restarts the container in place (restartCount 1, lastState
//   terminated with exit code 137), it is Ready again and still has the key;
// - an image other than etcd-ts leaves its container waiting with ErrImagePull/ImagePullBackOff and a message
//   saying so; deleting that pod works too; a container that keeps exiting (a bad flag) goes into
//   CrashLoopBackOff after its immediate first restart; a failing liveness probe restarts its container;
// - stop() leaves no network namespace, veth, bridge or /etc/netns entry behind.
import * as fs from 'fs';
import * as path from 'path';
import { type EtcdCluster, withDefaults } from '../../operator/api';
import { buildClusterObjects, memberNames, memberPeerURL, memberClientURL } from '../../operator/resources';
import { DATA_DIR, MEMBER_UID } from '../../operator/resources/statefulset';
import { etcdctl, repoRoot, run, toolPath } from '../helpers';
import { ControlPlane } from '../helpers/kube';
import { type E2eEnv, startE2eEnv, waitFor as waitForWith } from './env';
import { KubeApi, KubeObject } from './kubeapi';
import { Pod, TestKubelet } from './kubelet';
import { PodNetwork } from './podnet';

jest.setTimeout(150_000);

const NS = 'db';
const NAME = 'main';
const KEY = 'e2e-kubelet-key';
const VALUE = 'survives-pod-deletion';

let cp: ControlPlane | undefined;
let kubelet: TestKubelet | undefined;
let api: KubeApi | undefined;
let cluster: EtcdCluster;
const timings: string[] = [];
const t0 = Date.now();
/** Whether this machine had /run/secrets before the test (the kubelet must not make it). */
const hostHadRunSecrets = fs.existsSync('/run/secrets');
const mark = (what: string, since: number) => timings.push(`${what}: ${((Date.now() - since) / 1000).toFixed(1)} s`);

/** Everything useful when a wait fails: the pods, the kubelet's and the containers' logs, the control plane's. */
async function diagnostics(): Promise<string> {
  const parts: string[] = [];
  if (api) {
    const pods = await api.get<{ items: Pod[] }>(`/api/v1/namespaces/${NS}/pods`).catch((e: Error) => ({ items: [], error: e.message }));
    for (const p of pods.items) parts.push(`pod ${p.metadata.name}: ${JSON.stringify(p.status)}`);
    const pvcs = await api.get<{ items: KubeObject[] }>(`/api/v1/namespaces/${NS}/persistentvolumeclaims`).catch(() => ({ items: [] as KubeObject[] }));
    for (const c of pvcs.items) parts.push(`pvc ${c.metadata.name}: ${JSON.stringify(c.status)} ${JSON.stringify(c.spec)}`);
    const events = await api.get<{ items: { reason: string; message: string; involvedObject: { name: string } }[] }>(`/api/v1/namespaces/${NS}/events`).catch(() => ({ items: [] }));
    for (const e of events.items.slice(-40)) parts.push(`event ${e.involvedObject.name}: ${e.reason}: ${e.message}`);
  }
  if (kubelet) parts.push(kubelet.logTails(30));
  if (cp) parts.push(cp.logTails());
  return parts.join('\n');
}

/** Polls `check` until it returns a value (bounded); fails with `what` and the diagnostics. */
const waitFor = <T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, intervalMs = 500): Promise<T> =>
  waitForWith(what, timeoutMs, check, diagnostics, intervalMs);

const podReady = (p: Pod) => p.status?.phase === 'Running' && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

async function memberPods(): Promise<Pod[]> {
  const list = await api!.get<{ items: Pod[] }>(`/api/v1/namespaces/${NS}/pods?labelSelector=${encodeURIComponent(`app.kubernetes.io/instance=${NAME}`)}`);
  return list.items.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}

async function waitAllReady(what: string, timeoutMs: number, notUid?: string): Promise<Pod[]> {
  return waitFor(what, timeoutMs, async () => {
    const pods = await memberPods();
    const ok = pods.length === 3 && pods.every((p) => podReady(p) && !p.metadata.deletionTimestamp) && !pods.some((p) => p.metadata.uid === notUid);
    return ok ? pods : undefined;
  });
}

interface EndpointStatus {
  Endpoint: string;
  Status: { header: { cluster_id: string; member_id: string }; leader: string };
}
interface MemberList {
  header: { cluster_id: string };
  members: { ID: string; name: string; peerURLs: string[]; clientURLs: string[]; isLearner?: boolean }[];
}

/** etcdctl run inside a member pod's network namespace (its /etc/hosts resolves the members' names). */
async function etcdctlInPod(pod: string, args: string[]): Promise<string> {
  const ip = kubelet!.podWorker(NS, pod)?.ip;
  const r = await kubelet!.exec(NS, pod, [toolPath('etcdctl'), `--endpoints=${ip}:2379`, '--command-timeout=5s', ...args], { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} in pod ${pod} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** endpoint status --cluster: 3 members, one cluster, one leader, the advertised URLs of the builder. */
async function clusterFormed(pod: string): Promise<{ clusterId: string; leader: string } | undefined> {
  const statuses = JSON.parse(await etcdctlInPod(pod, ['endpoint', 'status', '--cluster', '-w', 'json'])) as EndpointStatus[];
  if (statuses.length !== 3) throw new Error(`endpoint status --cluster: ${statuses.length} endpoints`);
  const clusters = new Set(statuses.map((s) => String(s.Status.header.cluster_id)));
  const leaders = new Set(statuses.map((s) => String(s.Status.leader)));
  const ids = new Set(statuses.map((s) => String(s.Status.header.member_id)));
  if (clusters.size !== 1 || leaders.size !== 1 || !ids.has([...leaders][0])) throw new Error(`not one cluster with one leader: ${JSON.stringify(statuses)}`);
  expect(statuses.map((s) => s.Endpoint).sort()).toEqual(memberNames(cluster, 3).map((m) => memberClientURL(cluster, m)));
  return { clusterId: [...clusters][0], leader: [...leaders][0] };
}

async function memberList(pod: string): Promise<MemberList> {
  return JSON.parse(await etcdctlInPod(pod, ['member', 'list', '-w', 'json'])) as MemberList;
}

let env: E2eEnv | undefined;

beforeAll(async () => {
  env = await startE2eEnv();
  ({ cp, kubelet, api } = env);
  timings.push(...env.timings);
}, 150_000);

afterAll(async () => {
  await env?.stop();
  timings.push(`total: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`test kubelet e2e timings:\n  ${timings.join('\n  ')}`);
});

test('the node registers, becomes Ready and is not tainted', async () => {
  const since = Date.now();
  const node = await waitFor('node-1 Ready without taints', 60_000, async () => {
    const n = await api!.get<KubeObject & { spec: { taints?: unknown[] }; status: { conditions: { type: string; status: string }[] } }>('/api/v1/nodes/node-1');
    const ready = n.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True');
    return ready && !(n.spec.taints?.length) ? n : undefined;
  });
  mark('node Ready, untainted', since);
  expect(node.metadata.labels?.['kubernetes.io/hostname']).toBe('node-1');
  const lease = await api!.get<KubeObject & { spec: { holderIdentity: string; renewTime: string } }>('/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1');
  expect(lease.spec.holderIdentity).toBe('node-1');
  expect(Date.now() - Date.parse(lease.spec.renewTime)).toBeLessThan(30_000);
});

test('a 3-member EtcdCluster from the builders runs: pods Running and Ready, one etcd cluster', async () => {
  const kubectl = cp!.kubectlOk;
  await kubectl(['apply', '--server-side', '-f', path.join(repoRoot(), 'crds', 'etcd-ts.io_etcdclusters.yaml')]);
  await kubectl(['wait', '--for=condition=Established', 'crd/etcdclusters.etcd-ts.io', '--timeout=30s'], { timeoutMs: 40_000 });
  await kubectl(['create', 'namespace', NS]);
  // The owner of every object (their ownerReferences name its uid; without it the garbage collector would delete them).
  const stored = await waitFor('EtcdCluster created', 20_000, () =>
    api!.create<KubeObject & { spec: unknown }>(`/apis/etcd-ts.io/v1alpha1/namespaces/${NS}/etcdclusters`, {
      apiVersion: 'etcd-ts.io/v1alpha1',
      kind: 'EtcdCluster',
      metadata: { name: NAME },
      spec: { replicas: 3 },
    }),
  );
  cluster = {
    apiVersion: 'etcd-ts.io/v1alpha1',
    kind: 'EtcdCluster',
    metadata: { name: NAME, namespace: NS, uid: stored.metadata.uid },
    spec: withDefaults(stored.spec),
  };
  const since = Date.now();
  await kubectl(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: buildClusterObjects(cluster) }) });

  const pods = await waitAllReady('3 member pods Running and Ready', 120_000);
  mark('3 members Running and Ready after the objects were created', since);
  expect(pods.map((p) => p.metadata.name)).toEqual(memberNames(cluster, 3));
  for (const p of pods) {
    const st = p.status as { podIP: string; podIPs: { ip: string }[]; hostIP: string; containerStatuses: { name: string; ready: boolean; started: boolean; restartCount: number; state: { running?: unknown } }[] };
    expect(st.podIP).toMatch(/^10\.244\.\d+\.\d+$/);
    expect(st.podIPs).toEqual([{ ip: st.podIP }]);
    expect(st.podIP).toBe(kubelet!.podWorker(NS, p.metadata.name)?.ip);
    expect(st.containerStatuses).toHaveLength(1);
    expect(st.containerStatuses[0]).toMatchObject({ name: 'etcd', ready: true, started: true, restartCount: 0 });
    expect(st.containerStatuses[0].state.running).toBeDefined();
    const types = (p.status?.conditions ?? []).filter((c) => c.status === 'True').map((c) => c.type).sort();
    expect(types).toEqual(['ContainersReady', 'Initialized', 'PodReadyToStartContainers', 'PodScheduled', 'Ready']);
    // The names the members use for each other resolve to the pods' IPs, as cluster DNS would answer.
    expect(kubelet!.resolve(`${p.metadata.name}.${NAME}-peer.${NS}.svc`)).toEqual([st.podIP]);
  }

  const formed = await waitFor('the members form one cluster', 30_000, () => clusterFormed('main-0'));
  expect(formed.clusterId).toBeTruthy();
  const members = await memberList('main-2');
  expect(members.members.map((m) => m.name).sort()).toEqual(memberNames(cluster, 3));
  for (const m of members.members) expect(m.peerURLs).toEqual([memberPeerURL(cluster, m.name)]);

  // The members run as the builder's user, in their own network namespace, on their claim's volume.
  const w = kubelet!.podWorker(NS, 'main-0')!;
  const pids = (await run('ip', ['netns', 'pids', w.netns as string])).stdout.split(/\s+/).filter(Boolean);
  expect(pids).toHaveLength(1);
  const uid = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pids[0]}/status`, 'utf8'))?.[1];
  expect(Number(uid)).toBe(MEMBER_UID);
  const dataVolume = w.volumes.get('data') as string;
  expect(fs.existsSync(path.join(dataVolume, 'data', 'member'))).toBe(true);
  // The volume is mounted at its mountPath: the member was given the path as written in the pod spec.
  expect(kubelet!.containerLog(NS, 'main-0', 'etcd')).toContain(`--data-dir=${DATA_DIR}`);
  expect((await kubelet!.exec(NS, 'main-0', ['ls', DATA_DIR])).stdout.split('\n')).toContain('member');
  // The service account volume the API server adds to every pod: a bound token, the CA, the namespace.
  const access = [...w.volumes].find(([name]) => name.startsWith('kube-api-access-'));
  expect(access).toBeDefined();
  expect(fs.readFileSync(path.join(access![1], 'namespace'), 'utf8')).toBe(NS);
  expect(fs.readFileSync(path.join(access![1], 'ca.crt'), 'utf8')).toMatch(/^-----BEGIN CERTIFICATE-----/);
  expect(fs.readFileSync(path.join(access![1], 'token'), 'utf8')).toMatch(/^eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
});

test('in the pod: its hostname, the service account token at its fixed path (read-only), the API server verified with ca.crt', async () => {
  const SA = '/var/run/secrets/kubernetes.io/serviceaccount';
  expect((await kubelet!.exec(NS, 'main-1', ['hostname'])).stdout.trim()).toBe('main-1');
  const w = kubelet!.podWorker(NS, 'main-1')!;
  const access = [...w.volumes].find(([name]) => name.startsWith('kube-api-access-'))!;
  expect((await kubelet!.exec(NS, 'main-1', ['cat', `${SA}/token`])).stdout).toBe(fs.readFileSync(path.join(access[1], 'token'), 'utf8'));
  const write = await kubelet!.exec(NS, 'main-1', ['touch', `${SA}/x`]);
  expect(write.code).not.toBe(0);
  expect(write.stderr).toMatch(/Read-only file system/);
  // Nothing of it on this machine: the directories exist only in the containers' mount namespaces.
  expect(hostHadRunSecrets || !fs.existsSync('/run/secrets')).toBe(true);

  // readOnlyRootFilesystem (the builder sets it): the root is read-only, the volumes (/tmp, the data) and /dev are not.
  const pod = await api!.get<Pod>(`/api/v1/namespaces/${NS}/pods/main-1`);
  expect(pod.spec.containers[0].securityContext?.readOnlyRootFilesystem).toBe(true);
  for (const f of ['/x', '/etc/x', '/var/lib/x', '/run/x']) {
    const r = await kubelet!.exec(NS, 'main-1', ['touch', f]);
    expect(`${f}: ${r.stderr.trim()}`).toMatch(/Read-only file system/);
  }
  expect(await kubelet!.exec(NS, 'main-1', ['sh', '-c', 'touch /tmp/x && echo ok > /dev/null && rm /tmp/x'])).toMatchObject({ code: 0, stderr: '' });

  // The process's environment names the `kubernetes` Service as a kubelet injects it.
  const pid = (await run('ip', ['netns', 'pids', w.netns as string])).stdout.split(/\s+/).filter(Boolean)[0];
  const environ = new Map(
    fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const),
  );
  expect(environ.get('KUBERNETES_SERVICE_HOST')).toBe(kubelet!.apiServiceAddress.host);
  expect(environ.get('KUBERNETES_SERVICE_PORT')).toBe('443');
  expect(environ.get('HOSTNAME')).toBe('main-1');

  // From inside the pod, as an in-cluster client: TLS verified with ca.crt, authenticated by the token
  // (the pod's service account has no rights: a 403 naming it proves the token was taken).
  const client = [
    "const fs = require('fs'); const https = require('https');",
    `const dir = '${SA}';`,
    'const req = https.get({ host: process.argv[1], port: Number(process.argv[2]), path: `/api/v1/namespaces/${fs.readFileSync(dir + "/namespace", "utf8")}/pods`,',
    '  ca: fs.readFileSync(dir + "/ca.crt"), headers: { Authorization: "Bearer " + fs.readFileSync(dir + "/token", "utf8") } }, (res) => {',
    '  let body = ""; res.on("data", (d) => (body += d)); res.on("end", () => console.log(res.statusCode, body)); });',
    'req.on("error", (e) => { console.log("error", e.message); process.exitCode = 1; });',
  ].join('\n');
  const { host, port } = kubelet!.apiServiceAddress;
  const r = await kubelet!.exec(NS, 'main-1', ['setpriv', `--reuid=${MEMBER_UID}`, `--regid=${MEMBER_UID}`, '--clear-groups', process.execPath, '-e', client, host, String(port)]);
  expect(r.stderr).toBe('');
  expect(r.stdout).toMatch(/^403 .*system:serviceaccount:db:default.*cannot list resource \\?"pods\\?"/s);
});

test('a deleted member pod comes back on the same volume, rejoins as the same member and has the data', async () => {
  const put = await etcdctl(`${kubelet!.podWorker(NS, 'main-0')!.ip}:2379`, ['put', KEY, VALUE]);
  expect(put.stdout.trim()).toBe('OK');
  const before = kubelet!.podWorker(NS, 'main-1')!;
  const pvcBefore = await api!.get<KubeObject & { spec: { volumeName: string } }>(`/api/v1/namespaces/${NS}/persistentvolumeclaims/data-main-1`);
  const memberBefore = (await memberList('main-0')).members.find((m) => m.name === 'main-1');
  expect(memberBefore).toBeDefined();

  let since = Date.now();
  await cp!.kubectlOk(['-n', NS, 'delete', 'pod', 'main-1', '--timeout=60s'], { timeoutMs: 70_000 });
  mark('kubectl delete pod main-1 (SIGTERM, exit, delete)', since);
  // SIGTERM ended etcd-ts (no SIGKILL after the grace period) and its network namespace went with the pod.
  const oldLogs = kubelet!.containerLog(NS, 'main-1', 'etcd');
  expect(oldLogs).toMatch(/exited code=0 signal=null|exited code=null signal=SIGTERM/);
  expect(fs.existsSync(`/var/run/netns/${before.netns}`)).toBe(false);

  since = Date.now();
  const pods = await waitAllReady('main-1 recreated, Running and Ready', 90_000, before.uid);
  mark('main-1 recreated and Ready', since);
  const after = kubelet!.podWorker(NS, 'main-1')!;
  expect(after.uid).not.toBe(before.uid);
  expect(pods.find((p) => p.metadata.name === 'main-1')?.metadata.uid).toBe(after.uid);
  const pvcAfter = await api!.get<KubeObject & { spec: { volumeName: string } }>(`/api/v1/namespaces/${NS}/persistentvolumeclaims/data-main-1`);
  expect(pvcAfter.metadata.uid).toBe(pvcBefore.metadata.uid);
  expect(pvcAfter.spec.volumeName).toBe(pvcBefore.spec.volumeName);
  expect(after.volumes.get('data')).toBe(before.volumes.get('data'));

  await waitFor('the cluster has 3 healthy members again', 30_000, () => clusterFormed('main-1'));
  const members = await memberList('main-1');
  expect(members.members).toHaveLength(3);
  expect(members.members.find((m) => m.name === 'main-1')?.ID).toBe(memberBefore!.ID);
  // A serializable read is answered from main-1's own data.
  const got = await etcdctl(`${after.ip}:2379`, ['get', KEY, '--print-value-only', '--consistency=s']);
  expect(got.stdout.trim()).toBe(VALUE);
});

test('a member process killed with SIGKILL is restarted in place: restartCount 1, same pod and IP, Ready again', async () => {
  const before = kubelet!.podWorker(NS, 'main-2')!;
  const pids = (await run('ip', ['netns', 'pids', before.netns as string])).stdout.split(/\s+/).filter(Boolean);
  expect(pids).toHaveLength(1);
  const since = Date.now();
  process.kill(Number(pids[0]), 'SIGKILL');
  const pod = await waitFor('main-2 restarted and Ready', 60_000, async () => {
    const p = await api!.get<Pod>(`/api/v1/namespaces/${NS}/pods/main-2`);
    const cs = (p.status?.containerStatuses as { restartCount: number }[] | undefined)?.[0];
    return cs?.restartCount === 1 && podReady(p) ? p : undefined;
  });
  mark('main-2 restarted after SIGKILL and Ready', since);
  expect(pod.metadata.uid).toBe(before.uid);
  expect(pod.status?.podIP).toBe(before.ip);
  const cs = (pod.status?.containerStatuses as { lastState: { terminated?: { exitCode: number; signal?: number; reason: string } } }[])[0];
  expect(cs.lastState.terminated).toMatchObject({ exitCode: 137, signal: 9, reason: 'Error' });
  await waitFor('the cluster has 3 healthy members again', 30_000, () => clusterFormed('main-2'));
  const got = await etcdctl(`${before.ip}:2379`, ['get', KEY, '--print-value-only', '--consistency=s']);
  expect(got.stdout.trim()).toBe(VALUE);
});

test('an image other than etcd-ts waits with ErrImagePull and a clear message; the pod can be deleted', async () => {
  await api!.create(`/api/v1/namespaces/${NS}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'not-etcd' },
    spec: { containers: [{ name: 'sh', image: 'busybox:1.36', command: ['sleep', '3600'] }], terminationGracePeriodSeconds: 5 },
  });
  const waiting = await waitFor('not-etcd waiting with ErrImagePull', 30_000, async () => {
    const p = await api!.get<Pod>(`/api/v1/namespaces/${NS}/pods/not-etcd`);
    const cs = (p.status?.containerStatuses as { state: { waiting?: { reason: string; message: string } } }[] | undefined)?.[0];
    return cs?.state.waiting?.reason && ['ErrImagePull', 'ImagePullBackOff'].includes(cs.state.waiting.reason) ? { pod: p, waiting: cs.state.waiting } : undefined;
  });
  expect(waiting.waiting.message).toContain('the test kubelet runs only the etcd-ts image');
  expect(waiting.pod.status?.phase).toBe('Pending');
  await cp!.kubectlOk(['-n', NS, 'delete', 'pod', 'not-etcd', '--timeout=30s'], { timeoutMs: 40_000 });
});

test('a container that keeps exiting is restarted with back-off: CrashLoopBackOff, restartCount, lastState', async () => {
  await api!.create(`/api/v1/namespaces/${NS}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'bad-flag' },
    spec: { containers: [{ name: 'etcd', image: 'etcd-ts:0.1.0', args: ['--no-such-flag'] }], terminationGracePeriodSeconds: 5 },
  });
  type Status = { restartCount: number; state: { waiting?: { reason: string; message: string } }; lastState: { terminated?: { exitCode: number; reason: string } } };
  const since = Date.now();
  const { pod, cs } = await waitFor('bad-flag in CrashLoopBackOff after a restart', 30_000, async () => {
    const p = await api!.get<Pod>(`/api/v1/namespaces/${NS}/pods/bad-flag`);
    const c = (p.status?.containerStatuses as Status[] | undefined)?.[0];
    return c && c.restartCount >= 1 && c.state.waiting?.reason === 'CrashLoopBackOff' ? { pod: p, cs: c } : undefined;
  });
  mark('bad-flag: exit, immediate restart, exit, CrashLoopBackOff', since);
  expect(pod.status?.phase).toBe('Running');
  expect(cs.state.waiting?.message).toMatch(/^back-off 10s restarting failed container=etcd/);
  expect(cs.lastState.terminated).toMatchObject({ reason: 'Error' });
  expect(cs.lastState.terminated?.exitCode).not.toBe(0);
  expect(kubelet!.containerLog(NS, 'bad-flag', 'etcd')).toMatch(/no-such-flag/);
  await cp!.kubectlOk(['-n', NS, 'delete', 'pod', 'bad-flag', '--timeout=30s'], { timeoutMs: 40_000 });
});

test('a failing liveness probe kills and restarts the container; an emptyDir mounted where this machine has no directory', async () => {
  await api!.create(`/api/v1/namespaces/${NS}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'not-alive' },
    spec: {
      containers: [
        {
          name: 'etcd',
          image: 'etcd-ts:0.1.0',
          args: ['--name=solo', '--data-dir=/scratch/solo.etcd'],
          volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }],
          livenessProbe: { tcpSocket: { port: 9999 }, periodSeconds: 1, failureThreshold: 2 },
        },
      ],
      volumes: [{ name: 'scratch', emptyDir: {} }],
      terminationGracePeriodSeconds: 5,
    },
  });
  type Status = { restartCount: number; lastState: { terminated?: { exitCode: number; reason: string; message?: string } } };
  const since = Date.now();
  const cs = await waitFor('not-alive restarted after failing its liveness probe', 30_000, async () => {
    const p = await api!.get<Pod>(`/api/v1/namespaces/${NS}/pods/not-alive`);
    const c = (p.status?.containerStatuses as Status[] | undefined)?.[0];
    return c && c.restartCount >= 1 && c.lastState.terminated ? c : undefined;
  });
  mark('not-alive: liveness failures, SIGTERM, restart', since);
  expect(cs.lastState.terminated?.message).toBe('liveness probe failed');
  const scratch = kubelet!.podWorker(NS, 'not-alive')!.volumes.get('scratch') as string;
  expect(fs.existsSync(path.join(scratch, 'solo.etcd', 'member'))).toBe(true);
  expect(fs.existsSync('/scratch')).toBe(false);
  const events = await api!.get<{ items: { reason: string; message: string }[] }>(
    `/api/v1/namespaces/${NS}/events?fieldSelector=${encodeURIComponent('involvedObject.name=not-alive')}`,
  );
  expect(events.items.map((e) => e.reason)).toEqual(expect.arrayContaining(['Started', 'Unhealthy', 'Killing']));
  await cp!.kubectlOk(['-n', NS, 'delete', 'pod', 'not-alive', '--timeout=30s'], { timeoutMs: 40_000 });
});

test('stop() removes the pod network: namespaces, veths, bridge, /etc/netns entries', async () => {
  const instance = kubelet!.net.instanceNumber;
  expect((await PodNetwork.leftovers(instance)).length).toBeGreaterThan(0);
  const since = Date.now();
  await kubelet!.stop();
  mark('kubelet stop', since);
  expect(await PodNetwork.leftovers(instance)).toEqual([]);
});
