// The operator's Helm chart (charts/etcd-ts-operator), with the real tools: `helm lint` and `helm template`
// read back as data (replicas, leader election, security context, RBAC exactly as the operator's code needs
// it, monitors that select what the operator puts on members), the values schema refusing bad values,
// `promtool check rules` / `promtool test rules` on the alert rules, and a live etcd-ts cluster's /metrics
// holding every metric the rules and the dashboard use, with etcd's types, labels and buckets.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { APP_NAME, COMPONENT_MEMBER, CRD_FILE, DEFAULT_ETCD_TS_VERSION, type EtcdCluster, LABEL_COMPONENT, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME, MANAGER_NAME, withDefaults } from '../../operator/api';
import { RESOURCES } from '../../operator/k8s';
import { parseFlags } from '../../operator/main';
import { CLIENT_PORT_NAME, buildClientService, buildPeerService, buildStatefulSet, clientServiceName, peerServiceName } from '../../operator/resources';
import { chartDir, helmPath, promtoolPath } from '../helpers/charttools';
import { type EtcdMetric, etcdMetric } from '../helpers/etcd-metrics';
import { bucketBounds, labelNames, parseExposition } from '../helpers/exposition';
import { type NodeHandle, etcdctl, httpGet, removeDir, repoRoot, run, startCluster } from '../helpers/procs';

jest.setTimeout(120_000);

const NAMESPACE = 'etcd-ops';
const RELEASE = 'ops';
const FULLNAME = `${RELEASE}-etcd-ts-operator`;
const ALL_FEATURES = [
  '--set', 'members.monitor.enabled=true',
  '--set', 'metrics.serviceMonitor.enabled=true',
  '--set', 'prometheusRule.enabled=true',
  '--set', 'grafanaDashboard.enabled=true',
];
const RULES_FILE = 'files/etcd-alerts.yaml';
const RULES_TEST_FILE = 'tests/etcd-alerts_test.yaml';
const DASHBOARD_FILE = 'files/etcd-ts-dashboard.json';

/** etcd's standard alerts, as the chart ships them (etcdGRPCRequestsSlow has series only with spec.etcdOptions.metrics: extensive). */
const EXPECTED_ALERTS: Record<string, string[]> = {
  etcdMembersDown: ['critical'],
  etcdInsufficientMembers: ['critical'],
  etcdNoLeader: ['critical'],
  etcdHighNumberOfLeaderChanges: ['warning'],
  etcdHighNumberOfFailedGRPCRequests: ['warning', 'critical'],
  etcdGRPCRequestsSlow: ['critical'],
  etcdMemberCommunicationSlow: ['warning'],
  etcdHighNumberOfFailedProposals: ['warning'],
  etcdHighFsyncDurations: ['warning', 'critical'],
  etcdHighCommitDurations: ['warning'],
  etcdDatabaseQuotaLowSpace: ['critical'],
  etcdExcessiveDatabaseGrowth: ['warning'],
  etcdDatabaseHighFragmentationRatio: ['warning'],
};

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}

async function helm(args: string[], timeoutMs = 60_000) {
  return run(helmPath(), args, { timeoutMs, cwd: repoRoot() });
}

/** `helm template` of the chart as parsed objects; fails the test with helm's message when it does not render. */
async function template(extra: string[] = []): Promise<K8sObject[]> {
  const r = await helm(['template', RELEASE, chartDir(), '--namespace', NAMESPACE, ...extra]);
  if (r.code !== 0) throw new Error(`helm template ${extra.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

function one(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}: ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return found[0];
}

/** "group/resource[names]:verb" strings: rules compared as sets, whatever their grouping. */
function grants(rules: PolicyRule[]): string[] {
  const out: string[] = [];
  for (const r of rules) {
    for (const g of r.apiGroups ?? [])
      for (const res of r.resources ?? [])
        for (const v of r.verbs) out.push(`${g}/${res}${r.resourceNames ? `[${[...r.resourceNames].sort().join(',')}]` : ''}:${v}`);
  }
  return out.sort();
}

const group = (r: { group: string }): string => r.group;

/** What operator/ uses, per resource (each verb traced to its call in the operator's code). */
const EXPECTED_GRANTS = [
  `${group(RESOURCES.etcdclusters)}/etcdclusters:get`,
  `${group(RESOURCES.etcdclusters)}/etcdclusters:list`,
  `${group(RESOURCES.etcdclusters)}/etcdclusters:watch`,
  `${group(RESOURCES.etcdclusters)}/etcdclusters/status:patch`,
  `${group(RESOURCES.etcdclusters)}/etcdclusters/finalizers:update`,
  'apps/statefulsets:get',
  'apps/statefulsets:list',
  'apps/statefulsets:watch',
  'apps/statefulsets:create',
  'apps/statefulsets:patch',
  '/pods:list',
  '/pods:watch',
  '/pods:delete',
  '/services:get',
  '/services:create',
  '/services:patch',
  '/configmaps:get',
  '/configmaps:create',
  '/configmaps:patch',
  'policy/poddisruptionbudgets:get',
  'policy/poddisruptionbudgets:create',
  'policy/poddisruptionbudgets:patch',
  '/persistentvolumeclaims:list',
  '/persistentvolumeclaims:delete',
  '/persistentvolumeclaims:patch',
  '/events:create',
].sort();

const LEASE_GRANTS = ['coordination.k8s.io/leases:create', `coordination.k8s.io/leases[${FULLNAME}]:get`, `coordination.k8s.io/leases[${FULLNAME}]:update`].sort();

function sampleCluster(): EtcdCluster {
  return { apiVersion: 'etcd-ts.io/v1alpha1', kind: 'EtcdCluster', metadata: { name: 'main', namespace: 'db', uid: '0d7f3c52-93a4-4c1e-9a51-2b7c3e1d9f00' }, spec: withDefaults({}) };
}

/** Prometheus' own mapping of a Kubernetes label to a discovery meta label (non-alphanumerics to "_"). */
const podLabelMeta = (label: string): string => `__meta_kubernetes_pod_label_${label.replace(/[^a-zA-Z0-9_]/g, '_')}`;

const chartFile = (rel: string): string => path.join(chartDir(), rel);

// ---------------------------------------------------------------------------

describe('helm lint', () => {
  test.each([
    ['defaults', []],
    ['every optional feature on', ALL_FEATURES],
    ['one watched namespace, ServiceMonitor for members', [...ALL_FEATURES, '--set', 'operator.watchNamespace=apps', '--set', 'members.monitor.kind=ServiceMonitor']],
    ['one replica without leader election', ['--set', 'replicaCount=1', '--set', 'operator.leaderElection.enabled=false']],
  ])('passes with %s', async (_name, extra) => {
    const r = await helm(['lint', '--strict', chartDir(), '--namespace', NAMESPACE, ...extra]);
    expect(`${r.stdout}${r.stderr}`).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(r.code).toBe(0);
  });
});

describe('helm template: the operator Deployment', () => {
  let objects: K8sObject[];
  beforeAll(async () => {
    objects = await template();
  });

  test('renders only the always-on objects by default', () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      [
        `ClusterRole/${FULLNAME}`,
        `ClusterRoleBinding/${FULLNAME}`,
        `Deployment/${FULLNAME}`,
        `Role/${FULLNAME}-leader-election`,
        `RoleBinding/${FULLNAME}-leader-election`,
        `Service/${FULLNAME}-metrics`,
        `ServiceAccount/${FULLNAME}`,
      ].sort(),
    );
    for (const o of objects) if (!o.kind.startsWith('Cluster')) expect([o.kind, o.metadata.namespace]).toEqual([o.kind, NAMESPACE]);
  });

  test('two replicas of the one image, started as etcd-ts-operator with leader election in the release namespace', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as { version: string };
    const chart = parseYaml(fs.readFileSync(chartFile('Chart.yaml'), 'utf8')) as { version: string; appVersion: string };
    expect([chart.version, chart.appVersion]).toEqual([pkg.version, pkg.version]);

    const deploy = one(objects, 'Deployment') as unknown as {
      spec: { replicas: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
    };
    expect(deploy.spec.replicas).toBe(2);
    const pod = deploy.spec.template.spec;
    expect(pod.serviceAccountName).toBe(FULLNAME);
    const c = pod.containers[0];
    expect(pod.containers).toHaveLength(1);
    expect(c.image).toBe(`etcd-ts:${pkg.version}`);
    expect(c.command).toEqual(['etcd-ts-operator']);
    expect(c.args).toEqual(
      expect.arrayContaining(['--leader-elect=true', `--leader-election-namespace=${NAMESPACE}`, `--leader-election-name=${FULLNAME}`, '--metrics-bind-address=:8080', '--health-probe-bind-address=:8081']),
    );
    // The operator itself accepts the command line and reads it as meant.
    const flags = parseFlags(c.args);
    expect(flags).toMatchObject({
      leaderElect: true,
      leaderElectionNamespace: NAMESPACE,
      leaderElectionName: FULLNAME,
      metricsBindAddress: ':8080',
      healthProbeBindAddress: ':8081',
      memberEndpoints: 'dns',
      memberImageRepository: 'etcd-ts',
      workers: 2,
    });
    expect(flags.namespace).toBeUndefined();
    // Its selector picks its own pods.
    expect(deploy.spec.template.metadata.labels).toMatchObject(deploy.spec.selector.matchLabels);
  });

  test('image.repository is the operator\'s image and the repository members run (spec.version picks the tag)', async () => {
    const objects = await template(['--set', 'image.repository=registry.example.com:5000/team/etcd-ts', '--set', 'image.tag=0.1.0-rc1']);
    const c = (one(objects, 'Deployment') as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec.containers[0];
    expect(c.image).toBe('registry.example.com:5000/team/etcd-ts:0.1.0-rc1');
    const flags = parseFlags(c.args as string[]);
    expect(flags.memberImageRepository).toBe('registry.example.com:5000/team/etcd-ts');
    const sts = buildStatefulSet(sampleCluster(), { imageRepository: flags.memberImageRepository });
    expect(sts.spec!.template.spec!.containers[0].image).toBe(`registry.example.com:5000/team/etcd-ts:${DEFAULT_ETCD_TS_VERSION}`);
  });

  test('probes on /healthz and /readyz of the health port; metrics and health ports named', () => {
    const c = (one(objects, 'Deployment') as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec.containers[0];
    expect(c.ports).toEqual(
      expect.arrayContaining([
        { name: 'metrics', containerPort: 8080, protocol: 'TCP' },
        { name: 'health', containerPort: 8081, protocol: 'TCP' },
      ]),
    );
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'health' });
    const svc = one(objects, 'Service') as unknown as { spec: { selector: Record<string, string>; ports: { name: string; port: number; targetPort: string }[] } };
    expect(svc.spec.ports).toEqual([{ name: 'metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP' }]);
    const podLabels = (one(objects, 'Deployment') as unknown as { spec: { template: { metadata: { labels: Record<string, string> } } } }).spec.template.metadata.labels;
    expect(podLabels).toMatchObject(svc.spec.selector);
  });

  test('non-root 65532, read-only root filesystem, no capabilities, RuntimeDefault seccomp, resources, spread over nodes', () => {
    const pod = (one(objects, 'Deployment') as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } });
    const c = pod.containers[0];
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      capabilities: { drop: ['ALL'] },
    });
    expect(c.resources?.requests).toEqual({ cpu: '50m', memory: '128Mi' });
    expect(c.resources?.limits).toEqual({ memory: '512Mi' });
    const pref = pod.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
    expect(pref).toHaveLength(1);
    expect(pref[0].podAffinityTerm.topologyKey).toBe('kubernetes.io/hostname');
    expect(pod.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution).toBeUndefined();
  });
});

interface PodSpec {
  serviceAccountName: string;
  securityContext: Record<string, unknown>;
  affinity?: {
    podAntiAffinity?: {
      preferredDuringSchedulingIgnoredDuringExecution?: { weight: number; podAffinityTerm: { topologyKey: string } }[];
      requiredDuringSchedulingIgnoredDuringExecution?: unknown[];
    };
  };
  containers: {
    image: string;
    command: string[];
    args: string[];
    ports: unknown[];
    livenessProbe?: { httpGet: unknown };
    readinessProbe?: { httpGet: unknown };
    securityContext: Record<string, unknown>;
    resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  }[];
}

describe('helm template: RBAC', () => {
  test('a ClusterRole with exactly what the operator uses; Lease rights only in the release namespace', async () => {
    const objects = await template(ALL_FEATURES);
    const clusterRole = one(objects, 'ClusterRole') as unknown as { rules: PolicyRule[] };
    expect(grants(clusterRole.rules)).toEqual(EXPECTED_GRANTS);
    // Every kind the operator's client knows is granted somewhere, and Leases nowhere cluster-wide.
    for (const [key, r] of Object.entries(RESOURCES)) {
      const inClusterRole = grants(clusterRole.rules).some((g) => g.startsWith(`${r.group}/${r.plural}`));
      expect([key, inClusterRole]).toEqual([key, key !== 'leases']);
    }
    const role = one(objects, 'Role') as unknown as { metadata: { namespace: string }; rules: PolicyRule[] };
    expect(role.metadata.namespace).toBe(NAMESPACE);
    expect(grants(role.rules)).toEqual(LEASE_GRANTS);

    const crb = one(objects, 'ClusterRoleBinding') as unknown as { roleRef: { kind: string; name: string }; subjects: unknown[] };
    expect(crb.roleRef).toMatchObject({ kind: 'ClusterRole', name: FULLNAME });
    expect(crb.subjects).toEqual([{ kind: 'ServiceAccount', name: FULLNAME, namespace: NAMESPACE }]);
    const rb = one(objects, 'RoleBinding') as unknown as { metadata: { namespace: string }; roleRef: { kind: string; name: string }; subjects: unknown[] };
    expect(rb.metadata.namespace).toBe(NAMESPACE);
    expect(rb.roleRef).toMatchObject({ kind: 'Role', name: `${FULLNAME}-leader-election` });
    expect(rb.subjects).toEqual([{ kind: 'ServiceAccount', name: FULLNAME, namespace: NAMESPACE }]);

    // No wildcard anywhere, and no access to Secrets (the operator reads none).
    const text = JSON.stringify(objects.filter((o) => o.kind !== 'ConfigMap'));
    expect(text).not.toMatch(/"\*"/);
    expect(text).not.toMatch(/"secrets"/);
  });

  test('with operator.watchNamespace: a Role in that namespace, and --namespace for the operator', async () => {
    const objects = await template(['--set', 'operator.watchNamespace=apps']);
    expect(objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding')).toEqual([]);
    const role = one(objects, 'Role', FULLNAME) as unknown as { metadata: { namespace: string }; rules: PolicyRule[] };
    expect(role.metadata.namespace).toBe('apps');
    expect(grants(role.rules)).toEqual(EXPECTED_GRANTS);
    const binding = one(objects, 'RoleBinding', FULLNAME) as unknown as { metadata: { namespace: string }; roleRef: unknown; subjects: unknown[] };
    expect(binding.metadata.namespace).toBe('apps');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: FULLNAME });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: FULLNAME, namespace: NAMESPACE }]);
    const lease = one(objects, 'Role', `${FULLNAME}-leader-election`) as unknown as { metadata: { namespace: string }; rules: PolicyRule[] };
    expect(lease.metadata.namespace).toBe(NAMESPACE);
    const args = (one(objects, 'Deployment') as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec.containers[0].args;
    expect(parseFlags(args).namespace).toBe('apps');
  });

  test('without leader election (one replica): no Lease rights and --leader-elect=false', async () => {
    const objects = await template(['--set', 'replicaCount=1', '--set', 'operator.leaderElection.enabled=false']);
    expect(objects.filter((o) => o.metadata.name.endsWith('-leader-election'))).toEqual([]);
    const args = (one(objects, 'Deployment') as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec.containers[0].args;
    expect(parseFlags(args).leaderElect).toBe(false);
  });
});

describe('helm template: monitoring', () => {
  let objects: K8sObject[];
  beforeAll(async () => {
    objects = await template(ALL_FEATURES);
  });

  interface Monitor {
    spec: {
      selector: { matchLabels: Record<string, string> };
      namespaceSelector: Record<string, unknown>;
      podMetricsEndpoints?: Endpoint[];
      endpoints?: Endpoint[];
    };
  }
  interface Endpoint {
    port: string;
    path: string;
    scheme: string;
    tlsConfig?: unknown;
    relabelings: { action: string; sourceLabels?: string[]; targetLabel?: string; replacement?: string; regex?: string }[];
  }

  test('the member PodMonitor selects the labels and port the operator puts on member pods', () => {
    const pm = one(objects, 'PodMonitor') as unknown as Monitor;
    expect(pm.spec.selector.matchLabels).toEqual({ [LABEL_NAME]: APP_NAME, [LABEL_MANAGED_BY]: MANAGER_NAME, [LABEL_COMPONENT]: COMPONENT_MEMBER });
    expect(pm.spec.namespaceSelector).toEqual({ any: true });
    const sts = buildStatefulSet(sampleCluster());
    const podLabels = sts.spec!.template.metadata!.labels!;
    expect(podLabels).toMatchObject(pm.spec.selector.matchLabels);
    const [ep] = pm.spec.podMetricsEndpoints!;
    expect(ep).toMatchObject({ port: CLIENT_PORT_NAME, path: '/metrics', scheme: 'http' });
    expect(sts.spec!.template.spec!.containers[0].ports!.map((p) => p.name)).toContain(ep.port);
    // Series get job="etcd-ts" and etcd_cluster from the pod's instance label, which the operator sets to the cluster's name.
    expect(ep.relabelings).toEqual(
      expect.arrayContaining([
        { action: 'replace', targetLabel: 'job', replacement: 'etcd-ts' },
        { action: 'replace', sourceLabels: [podLabelMeta(LABEL_INSTANCE)], targetLabel: 'etcd_cluster' },
      ]),
    );
    expect(podLabels[LABEL_INSTANCE]).toBe('main');
  });

  test('the member ServiceMonitor keeps only the headless peer Service, which carries the selected labels and the client port', async () => {
    const sm = one(await template([...ALL_FEATURES, '--set', 'members.monitor.kind=ServiceMonitor', '--set', 'members.monitor.scheme=https', '--set', 'members.monitor.tlsConfig.insecureSkipVerify=true', '--set', 'operator.watchNamespace=apps']), 'ServiceMonitor', `${FULLNAME}-members`) as unknown as Monitor;
    const c = sampleCluster();
    const peer = buildPeerService(c);
    const client = buildClientService(c);
    expect(peer.metadata!.labels).toMatchObject(sm.spec.selector.matchLabels);
    expect(sm.spec.namespaceSelector).toEqual({ matchNames: ['apps'] });
    const [ep] = sm.spec.endpoints!;
    expect(ep).toMatchObject({ port: CLIENT_PORT_NAME, scheme: 'https', tlsConfig: { insecureSkipVerify: true } });
    expect(peer.spec!.ports!.map((p) => p.name)).toContain(ep.port);
    const keep = ep.relabelings.find((r) => r.action === 'keep');
    expect(keep?.sourceLabels).toEqual(['__meta_kubernetes_service_name']);
    // Prometheus anchors relabel regexes at both ends.
    const re = new RegExp(`^(?:${keep!.regex})$`);
    expect(re.test(peerServiceName(c))).toBe(true);
    expect(re.test(clientServiceName(c))).toBe(false);
    expect(client.metadata!.labels).toMatchObject(sm.spec.selector.matchLabels); // why the keep rule is needed
  });

  test('the operator ServiceMonitor scrapes the metrics Service of this release', () => {
    const sm = one(objects, 'ServiceMonitor', FULLNAME) as unknown as Monitor;
    const svc = one(objects, 'Service') as unknown as { metadata: { labels: Record<string, string> } };
    expect(svc.metadata.labels).toMatchObject(sm.spec.selector.matchLabels);
    expect(sm.spec.namespaceSelector).toEqual({ matchNames: [NAMESPACE] });
    expect(sm.spec.endpoints![0]).toMatchObject({ port: 'metrics', path: '/metrics' });
  });

  test('the PrometheusRule holds files/etcd-alerts.yaml as it is', () => {
    const rule = one(objects, 'PrometheusRule') as unknown as { spec: unknown };
    expect(rule.spec).toEqual(parseYaml(fs.readFileSync(chartFile(RULES_FILE), 'utf8')));
  });

  test('the dashboard ConfigMap carries the sidecar label and the dashboard JSON', () => {
    const cm = one(objects, 'ConfigMap') as unknown as { metadata: { labels: Record<string, string> }; data: Record<string, string> };
    expect(cm.metadata.labels.grafana_dashboard).toBe('1');
    expect(Object.keys(cm.data)).toEqual(['etcd-ts.json']);
    expect(JSON.parse(cm.data['etcd-ts.json'])).toEqual(JSON.parse(fs.readFileSync(chartFile(DASHBOARD_FILE), 'utf8')));
  });

  test('NOTES tell how to create a cluster, connect with etcdctl and scrape', async () => {
    const r = await helm(['install', RELEASE, chartDir(), '--namespace', NAMESPACE, '--dry-run=client', '--set', 'members.monitor.enabled=true']);
    expect(r.code).toBe(0);
    const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
    expect(notes).toContain('kind: EtcdCluster');
    expect(notes).toContain('etcdctl --endpoints=http://127.0.0.1:2379 put hello world');
    expect(notes).toContain(`port-forward svc/demo-client 2379:2379`);
    expect(notes).toContain(`A PodMonitor (${FULLNAME}-members) scrapes every member`);
    expect(notes).toContain(`Lease ${NAMESPACE}/${FULLNAME}`);
  });

  test('the chart installs the EtcdCluster CRD that operator/api generates', async () => {
    const crds = (await template(['--include-crds'])).filter((o) => o.kind === 'CustomResourceDefinition');
    expect(crds).toEqual([parseYaml(fs.readFileSync(path.join(repoRoot(), CRD_FILE), 'utf8'))]);
  });
});

interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { refId: string; expr: string }[];
}

describe('the Grafana dashboard', () => {
  const dashboard = JSON.parse(fs.readFileSync(chartFile(DASHBOARD_FILE), 'utf8')) as {
    uid: string;
    title: string;
    panels: DashboardPanel[];
    templating: { list: { name: string }[] };
  };
  const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t })));

  test('panels are laid out on the 24-column grid with unique ids, each query on the chosen data source', () => {
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    for (const p of dashboard.panels) {
      expect([p.title, p.gridPos.x + p.gridPos.w <= 24]).toEqual([p.title, true]);
      if (p.type !== 'row') {
        expect([p.title, p.datasource?.uid]).toEqual([p.title, '${datasource}']);
        expect([p.title, (p.targets ?? []).length > 0]).toEqual([p.title, true]);
      }
    }
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'namespace', 'cluster']);
  });

  test('it shows what an etcd dashboard must: up, RPCs, failures, watch streams, DB size vs quota, disk syncs, memory, traffic, proposals, leader changes, peer round trip', () => {
    const all = queries.map((q) => q.expr).join('\n');
    for (const needle of [
      'up{',
      'grpc_server_started_total{',
      'grpc_code!="OK"',
      'grpc_service="etcdserverpb.Watch"',
      'etcd_mvcc_db_total_size_in_bytes{',
      'etcd_server_quota_backend_bytes{',
      'etcd_disk_wal_fsync_duration_seconds_bucket{',
      'etcd_disk_backend_commit_duration_seconds_bucket{',
      'process_resident_memory_bytes{',
      'etcd_network_client_grpc_received_bytes_total{',
      'etcd_network_peer_sent_bytes_total{',
      'etcd_server_proposals_committed_total{',
      'etcd_server_proposals_applied_total{',
      'etcd_server_proposals_pending{',
      'etcd_server_proposals_failed_total{',
      'etcd_server_leader_changes_seen_total{',
      'etcd_network_peer_round_trip_time_seconds_bucket{',
    ])
      expect([needle, all.includes(needle)]).toEqual([needle, true]);
    // Every query is scoped to the selected cluster.
    for (const q of queries) expect([q.panel, q.expr]).toEqual([q.panel, expect.stringContaining('etcd_cluster="$cluster"')]);
  });

  test('every query is valid PromQL (promtool checks them as recording rules)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-ts-chart-dashboard-'));
    try {
      // Grafana's variables replaced by values, as Grafana does before sending a query.
      const rules = queries.map((q, i) => ({
        record: `dashboard:query_${i}:${q.refId.toLowerCase()}`,
        expr: q.expr.replace(/\$__rate_interval/g, '1m').replace(/\$namespace/g, 'db').replace(/\$cluster/g, 'main'),
      }));
      const file = path.join(dir, 'dashboard-queries.yaml');
      fs.writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
      const r = await run(promtoolPath(), ['check', 'rules', '--lint=none', file], { timeoutMs: 30_000 });
      if (r.code !== 0) throw new Error(`promtool rejects a dashboard query:\n${r.stdout}\n${r.stderr}`);
      expect(r.stdout).toContain(`SUCCESS: ${rules.length} rules found`);
    } finally {
      removeDir(dir);
    }
  });
});

describe('values schema and template checks refuse bad values', () => {
  test.each([
    [['--set', 'replicaCount=0'], "at '/replicaCount': minimum: got 0, want 1"],
    [['--set', 'image.pullPolicy=Sometimes'], "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'"],
    [['--set', 'image.repository='], "at '/image/repository': minLength: got 0, want 1"],
    [['--set', 'replicas=3'], "additional properties 'replicas' not allowed"],
    [['--set', 'operator.leaderElect=true'], "at '/operator': additional properties 'leaderElect' not allowed"],
    [['--set', 'operator.workers=two'], "at '/operator/workers': got string, want integer"],
    [['--set', 'operator.logLevel=verbose'], "at '/operator/logLevel': value must be one of 'debug', 'info', 'warn', 'error'"],
    [['--set', 'operator.watchNamespace=Bad_NS'], "'Bad_NS' does not match pattern"],
    [['--set', 'members.monitor.kind=Probe'], "at '/members/monitor/kind': value must be one of 'PodMonitor', 'ServiceMonitor'"],
    [['--set', 'members.monitor.scheme=ftp'], "at '/members/monitor/scheme': value must be one of 'http', 'https'"],
    [['--set', 'metrics.serviceMonitor.interval=soon'], "at '/metrics/serviceMonitor/interval': 'soon' does not match pattern"],
    [['--set', 'metrics.port=70000'], "at '/metrics/port': maximum: got 70,000, want 65,535"],
    [['--set', 'operator.leaderElection.enabled=false'], 'replicaCount is 2 but operator.leaderElection.enabled is false'],
  ])('%j', async (args, message) => {
    const r = await helm(['template', RELEASE, chartDir(), '--namespace', NAMESPACE, ...args]);
    expect(r.stderr).toContain(message);
    expect(r.code).not.toBe(0);
  });

  test('helm lint reports a schema violation too', async () => {
    const r = await helm(['lint', chartDir(), '--set', 'replicaCount=-1']);
    expect(`${r.stdout}${r.stderr}`).toContain("at '/replicaCount': minimum: got -1, want 1");
    expect(r.code).not.toBe(0);
  });
});

// ---------------------------------------------------------------------------
// Alert rules

interface RuleGroupFile {
  groups: { name: string; rules: { alert?: string; record?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }[] }[];
}
interface RuleTestFile {
  rule_files: string[];
  tests: { name: string; alert_rule_test?: { eval_time: string; alertname: string; exp_alerts: { exp_labels?: Record<string, string> }[] }[] }[];
}

describe('alert rules (promtool)', () => {
  const rules = parseYaml(fs.readFileSync(chartFile(RULES_FILE), 'utf8')) as RuleGroupFile;
  const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined);

  test("etcd's standard alerts, with etcd's names and severities, every one with a summary and a description", () => {
    const bySeverity: Record<string, string[]> = {};
    for (const a of alerts) (bySeverity[a.alert!] ??= []).push(a.labels?.severity ?? '(none)');
    expect(bySeverity).toEqual(EXPECTED_ALERTS);
    for (const a of alerts) {
      expect([a.alert, typeof a.annotations?.summary, typeof a.annotations?.description]).toEqual([a.alert, 'string', 'string']);
      // Everything the rules read is an etcd-ts member series, as the member monitor labels them.
      for (const selector of a.expr.match(/\b(?:etcd|grpc|up)[a-z_]*\{[^}]*\}/g) ?? []) expect([a.alert, selector]).toEqual([a.alert, expect.stringContaining('job="etcd-ts"')]);
    }
  });

  test('thresholds are etcd\'s: no leader 1m, fsync p99 0.5 s / 1 s, failed gRPC 1% / 5%, commit 0.25 s, peer RTT and unary gRPC p99 0.15 s, quota 95%, fragmentation 0.5', () => {
    const find = (name: string, severity: string) => alerts.find((a) => a.alert === name && a.labels?.severity === severity)!;
    expect(find('etcdNoLeader', 'critical').for).toBe('1m');
    expect(find('etcdHighFsyncDurations', 'warning').expr).toMatch(/histogram_quantile\(0\.99,[\s\S]*etcd_disk_wal_fsync_duration_seconds_bucket[\s\S]*\)\s*> 0\.5\s*$/);
    expect(find('etcdHighFsyncDurations', 'critical').expr).toMatch(/etcd_disk_wal_fsync_duration_seconds_bucket[\s\S]*\)\s*> 1\s*$/);
    expect(find('etcdHighNumberOfFailedGRPCRequests', 'warning').expr).toMatch(/\)\s*> 1\s*$/);
    expect(find('etcdHighNumberOfFailedGRPCRequests', 'critical').expr).toMatch(/\)\s*> 5\s*$/);
    expect(find('etcdHighCommitDurations', 'warning').expr).toMatch(/etcd_disk_backend_commit_duration_seconds_bucket[\s\S]*\)\s*> 0\.25\s*$/);
    expect(find('etcdMemberCommunicationSlow', 'warning').expr).toMatch(/etcd_network_peer_round_trip_time_seconds_bucket[\s\S]*\)\s*> 0\.15\s*$/);
    expect(find('etcdGRPCRequestsSlow', 'critical').expr).toMatch(/grpc_server_handling_seconds_bucket\{[^}]*grpc_type="unary"[\s\S]*\)\s*> 0\.15\s*$/);
    expect(find('etcdGRPCRequestsSlow', 'critical').for).toBe('10m');
    expect(find('etcdDatabaseQuotaLowSpace', 'critical').expr).toMatch(/\)\s*> 95\s*$/);
    expect(find('etcdDatabaseHighFragmentationRatio', 'warning').expr).toMatch(/\)\s*< 0\.5\s/);
    expect(find('etcdHighNumberOfLeaderChanges', 'warning').expr).toMatch(/\[15m\][\s\S]*>= 4\s*$/);
  });

  test('promtool check rules accepts the file', async () => {
    const r = await run(promtoolPath(), ['check', 'rules', chartFile(RULES_FILE)], { timeoutMs: 30_000 });
    expect(`${r.stdout}${r.stderr}`).toContain(`SUCCESS: ${alerts.length} rules found`);
    expect(r.code).toBe(0);
  });

  test('the promtool tests fire every alert at every severity on bad series (and stay silent on healthy ones)', () => {
    const t = parseYaml(fs.readFileSync(chartFile(RULES_TEST_FILE), 'utf8')) as RuleTestFile;
    expect(t.rule_files).toEqual([`../${RULES_FILE}`]);
    const fired: Record<string, Set<string>> = {};
    for (const test of t.tests)
      for (const a of test.alert_rule_test ?? []) for (const e of a.exp_alerts) (fired[a.alertname] ??= new Set()).add(e.exp_labels?.severity ?? '(none)');
    expect(Object.fromEntries(Object.entries(fired).map(([k, v]) => [k, [...v].sort()]))).toEqual(
      Object.fromEntries(Object.entries(EXPECTED_ALERTS).map(([k, v]) => [k, [...v].sort()])),
    );
    // And a healthy cluster fires none of them.
    const healthy = t.tests.find((x) => x.name === 'a healthy cluster fires nothing');
    const quiet = (healthy?.alert_rule_test ?? []).filter((a) => a.exp_alerts.length === 0).map((a) => a.alertname);
    expect(quiet.sort()).toEqual(Object.keys(EXPECTED_ALERTS).sort());
  });

  test('promtool test rules: the unit tests pass', async () => {
    const r = await run(promtoolPath(), ['test', 'rules', RULES_TEST_FILE], { timeoutMs: 60_000, cwd: chartDir() });
    if (r.code !== 0) throw new Error(`promtool test rules failed:\n${r.stdout}\n${r.stderr}`);
    expect(r.stdout).toContain('SUCCESS');
  });

  test('the unit tests can fail: with the fsync warning threshold raised to 5 s they do', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-ts-chart-rules-'));
    try {
      fs.mkdirSync(path.join(dir, 'files'));
      fs.mkdirSync(path.join(dir, 'tests'));
      const original = fs.readFileSync(chartFile(RULES_FILE), 'utf8');
      const broken = original.replace(/(etcd_disk_wal_fsync_duration_seconds_bucket[\s\S]*?\)\s*\)\s*\)\s*>) 0\.5\b/, '$1 5');
      expect(broken).not.toBe(original);
      fs.writeFileSync(path.join(dir, RULES_FILE), broken);
      fs.copyFileSync(chartFile(RULES_TEST_FILE), path.join(dir, RULES_TEST_FILE));
      const r = await run(promtoolPath(), ['test', 'rules', RULES_TEST_FILE], { timeoutMs: 60_000, cwd: dir });
      expect(r.code).not.toBe(0);
      expect(`${r.stdout}${r.stderr}`).toContain('etcdHighFsyncDurations');
    } finally {
      removeDir(dir);
    }
  });
});

// ---------------------------------------------------------------------------
// Live: the metrics the rules and the dashboard use, on a real etcd-ts cluster

/** Label names (not metrics) that share the metric prefixes below. */
const LABELS_LIKE_METRICS = new Set(['etcd_cluster', 'grpc_type', 'grpc_service', 'grpc_method', 'grpc_code']);

/**
 * Metric names an expression reads (Prometheus' own `up` aside), histogram suffixes stripped. Every metric in
 * the rules and the dashboard is written with a selector, so a name is an identifier followed by "{"; any other
 * identifier with these prefixes must be a known label name, or this function refuses the expression.
 */
function metricNames(expr: string): string[] {
  const names = new Set<string>();
  for (const m of expr.matchAll(/\b((?:etcd|grpc|process)_[a-zA-Z0-9_]+)\b(\{)?/g)) {
    if (m[2] === '{') names.add(m[1].replace(/_(bucket|sum|count)$/, ''));
    else if (!LABELS_LIKE_METRICS.has(m[1])) throw new Error(`${m[1]} is used without a selector or is an unknown label: ${expr.slice(0, 200)}`);
  }
  return [...names];
}

describe('live metrics of an etcd-ts cluster', () => {
  let members: NodeHandle[] = [];
  let text = '';

  beforeAll(async () => {
    // extensive: the gRPC latency histogram the slow-requests alert reads
    members = await startCluster({ kind: 'etcd-ts', size: 3, readyTimeoutMs: 30_000, extraArgs: ['--metrics=extensive'] });
    const endpoints = members.map((m) => m.endpoint);
    for (let i = 0; i < 20; i++) {
      const r = await etcdctl(endpoints, ['put', `chart-key-${i}`, `value-${i}`]);
      if (r.code !== 0) throw new Error(`etcdctl put failed: ${r.stderr}`);
    }
    const get = await etcdctl(endpoints, ['get', '--prefix', 'chart-key-']);
    expect(get.stdout).toContain('value-19');
    // Peers probe each other on a timer: give the round-trip histogram time to get samples.
    await new Promise((r) => setTimeout(r, 3_000));
    const res = await httpGet(`${members[0].clientUrl}/metrics`, 5_000);
    expect(res.status).toBe(200);
    text = res.body;
  });

  afterAll(async () => {
    await Promise.all(members.map((m) => m.destroy()));
  });

  /** Every metric the rules and the dashboard read (each must be on the shared list of etcd's metric facts). */
  function usedMetrics(): EtcdMetric[] {
    const rules = parseYaml(fs.readFileSync(chartFile(RULES_FILE), 'utf8')) as RuleGroupFile;
    const dashboard = fs.readFileSync(chartFile(DASHBOARD_FILE), 'utf8');
    const used = new Set([...rules.groups.flatMap((g) => g.rules.flatMap((r) => metricNames(r.expr))), ...metricNames(dashboard)]);
    return [...used].sort().map((n) => etcdMetric(n));
  }

  test('the rules and the dashboard read only metrics on the list of etcd\'s dashboard and alert metrics', () => {
    const used = usedMetrics().map((m) => m.name);
    expect(used.length).toBeGreaterThanOrEqual(20);
    expect(used).toContain('grpc_server_handling_seconds');
  });

  test('/metrics serves each of them with etcd\'s type, label names and buckets', () => {
    const families = parseExposition(text);
    const problems: string[] = [];
    for (const m of usedMetrics()) {
      const f = families.get(m.name);
      if (!f) {
        problems.push(`${m.name}: missing`);
        continue;
      }
      if (f.type !== m.type) problems.push(`${m.name}: type ${f.type}, want ${m.type}`);
      if (f.samples.length === 0) {
        // Counted only after a failure (e.g. peer send failures): declared, but no series yet.
        if (!m.onlyAfterFailure) problems.push(`${m.name}: no series`);
        continue;
      }
      const labels = labelNames(f);
      if (JSON.stringify(labels) !== JSON.stringify([...m.labels].sort())) problems.push(`${m.name}: labels ${labels.join(',')}, want ${[...m.labels].sort().join(',')}`);
      if (m.buckets) {
        const bounds = bucketBounds(f) ?? [];
        const same = bounds.length === m.buckets.length && bounds.every((b, i) => Math.abs(b - m.buckets![i]) <= m.buckets![i] * 1e-9);
        if (!same) problems.push(`${m.name}: buckets ${bounds.join(',')}, want ${m.buckets.join(',')}`);
      }
    }
    expect(problems).toEqual([]);
    expect(families.get('etcd_server_has_leader')!.samples[0].value).toBe(1);
  });

  test('promtool check metrics parses the exposition (its lint notes are printed, not failed on)', async () => {
    const r = await run(promtoolPath(), ['check', 'metrics'], { input: text, timeoutMs: 30_000 });
    const out = `${r.stdout}${r.stderr}`.trim();
    // promtool exits 1 when it cannot parse the exposition and 3 when it only has lint advice (etcd's own
    // gauges named *_total, Node's default metrics): the first is a failure, the second is printed.
    expect(out).not.toMatch(/error while linting/i);
    expect([0, 3]).toContain(r.code);
    console.log(`promtool check metrics on etcd-ts /metrics (exit ${r.code}):\n${out || '(no findings)'}`);
  });
});
