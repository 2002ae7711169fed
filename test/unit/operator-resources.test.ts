// The resource builders, as data: what each object says, and that a member's command line is one etcd-ts
// itself accepts (parsed with the node's own configuration loader).
import type { V1Container, V1EnvVar, V1StatefulSet } from '@kubernetes/client-node';
import { type EtcdCluster, type EtcdClusterSpecInput, failuresTolerated, quorum, withDefaults } from '../../operator/api';
import {
  buildBootstrapConfigMap,
  buildClientService,
  buildClusterObjects,
  buildPeerService,
  buildPodDisruptionBudget,
  buildStatefulSet,
  clientEndpoint,
  etcdArgs,
  initialCluster,
  memberClientURL,
  memberImage,
  memberNames,
  memberPeerURL,
  selectorString,
} from '../../operator/resources';
import { loadConfig } from '../../src/config';

const UID = '6f1c2a7e-1b2c-4d5e-8f90-123456789abc';

function cluster(spec: EtcdClusterSpecInput = {}, name = 'main', namespace = 'db'): EtcdCluster {
  return { apiVersion: 'etcd-ts.io/v1alpha1', kind: 'EtcdCluster', metadata: { name, namespace, uid: UID }, spec: withDefaults(spec) };
}

const SELECTOR = { 'app.kubernetes.io/name': 'etcd-ts', 'app.kubernetes.io/instance': 'main', 'app.kubernetes.io/component': 'member' };
const OWNER = { apiVersion: 'etcd-ts.io/v1alpha1', kind: 'EtcdCluster', name: 'main', uid: UID, controller: true, blockOwnerDeletion: true };

const container = (sts: V1StatefulSet): V1Container => sts.spec!.template.spec!.containers[0];

/** etcd's advice to serve HTTP on its own port applies to every member: etcd-ts serves both on the client port. */
const SINGLE_PORT = 'Running http and grpc server on single port. This is not recommended for production.';
const unexpected = (warnings: string[]) => warnings.filter((w) => w !== SINGLE_PORT);

/** What the kubelet does with the container's env and args for one pod: $(VAR) replaced by its value. */
function expandArgs(c: EtcdCluster, podName: string, configMapData: Record<string, string>): string[] {
  const ctr = container(buildStatefulSet(c));
  const values = new Map<string, string>();
  for (const e of ctr.env as V1EnvVar[]) {
    if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') values.set(e.name, podName);
    else if (e.valueFrom?.configMapKeyRef) values.set(e.name, configMapData[e.valueFrom.configMapKeyRef.key]);
    else values.set(e.name, e.value ?? '');
  }
  return (ctr.args ?? []).map((a) =>
    a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => {
      const v = values.get(name);
      if (v === undefined) throw new Error(`${whole} is not defined in the container's env`);
      return v;
    }),
  );
}

describe('names and URLs', () => {
  const c = cluster();
  test('members and their stable DNS names', () => {
    expect(memberNames(c, 3)).toEqual(['main-0', 'main-1', 'main-2']);
    expect(memberPeerURL(c, 'main-1')).toBe('http://main-1.main-peer.db.svc:2380');
    expect(memberClientURL(c, 'main-1')).toBe('http://main-1.main-peer.db.svc:2379');
    expect(clientEndpoint(c)).toBe('http://main-client.db.svc:2379');
    expect(initialCluster(c, ['main-0', 'main-1'])).toBe('main-0=http://main-0.main-peer.db.svc:2380,main-1=http://main-1.main-peer.db.svc:2380');
    expect(selectorString(c)).toBe('app.kubernetes.io/name=etcd-ts,app.kubernetes.io/instance=main,app.kubernetes.io/component=member');
  });

  test('the image: the version\'s tag, or the image given', () => {
    expect(memberImage(cluster())).toBe('etcd-ts:0.1.0');
    expect(memberImage(cluster({ version: '0.2.0' }))).toBe('etcd-ts:0.2.0');
    expect(memberImage(cluster({ version: '0.2.0', image: 'mirror.example/etcd-ts:0.2.0' }))).toBe('mirror.example/etcd-ts:0.2.0');
    // the operator's repository (--member-image-repository) takes the place of the default one; spec.image still wins
    expect(memberImage(cluster({ version: '0.2.0' }), 'registry.example.com/etcd-ts')).toBe('registry.example.com/etcd-ts:0.2.0');
    expect(memberImage(cluster({ image: 'mirror.example/etcd-ts:0.2.0' }), 'registry.example.com/etcd-ts')).toBe('mirror.example/etcd-ts:0.2.0');
    expect(container(buildStatefulSet(cluster(), { imageRepository: 'registry.example.com/etcd-ts' })).image).toBe('registry.example.com/etcd-ts:0.1.0');
  });

  test('objects cannot be built for a cluster without uid (the owner reference needs it)', () => {
    const c2 = cluster();
    delete c2.metadata.uid;
    expect(() => buildPeerService(c2)).toThrow(/no metadata.uid/);
  });
});

describe('Services', () => {
  const c = cluster();
  test('the headless peer Service publishes members before they are ready', () => {
    const svc = buildPeerService(c);
    expect(svc.metadata).toMatchObject({ name: 'main-peer', namespace: 'db', ownerReferences: [OWNER] });
    expect(svc.spec).toEqual({
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: SELECTOR,
      ports: [
        { name: 'client', port: 2379, targetPort: 'client', protocol: 'TCP' },
        { name: 'peer', port: 2380, targetPort: 'peer', protocol: 'TCP' },
      ],
    });
  });

  test('the client Service routes to ready members only, on the client port', () => {
    const svc = buildClientService(c);
    expect(svc.metadata).toMatchObject({ name: 'main-client', namespace: 'db', ownerReferences: [OWNER] });
    expect(svc.spec).toEqual({ type: 'ClusterIP', selector: SELECTOR, ports: [{ name: 'client', port: 2379, targetPort: 'client', protocol: 'TCP' }] });
  });
});

describe('bootstrap ConfigMap', () => {
  test('creating: state new, the first spec.replicas members', () => {
    const cm = buildBootstrapConfigMap(cluster({ replicas: 3 }));
    expect(cm.metadata).toMatchObject({ name: 'main-bootstrap', namespace: 'db', ownerReferences: [OWNER] });
    expect(cm.data).toEqual({
      'initial-cluster':
        'main-0=http://main-0.main-peer.db.svc:2380,main-1=http://main-1.main-peer.db.svc:2380,main-2=http://main-2.main-peer.db.svc:2380',
      'initial-cluster-state': 'new',
    });
  });

  test('joining: state existing, the members the reconciler names', () => {
    const cm = buildBootstrapConfigMap(cluster({ replicas: 5 }), { state: 'existing', members: ['main-0', 'main-1', 'main-2', 'main-3'] });
    expect(cm.data!['initial-cluster-state']).toBe('existing');
    expect(cm.data!['initial-cluster'].split(',')).toHaveLength(4);
  });

  test('no members is refused', () => {
    expect(() => buildBootstrapConfigMap(cluster(), { members: [] })).toThrow();
  });
});

describe('StatefulSet', () => {
  const c = cluster({ replicas: 3, version: '0.1.0', storage: { size: '10Gi', storageClassName: 'fast' } });
  const sts = buildStatefulSet(c);
  const spec = sts.spec!;
  const pod = spec.template.spec!;
  const ctr = container(sts);

  test('identity, ownership and the choices that keep members safe', () => {
    expect(sts.apiVersion).toBe('apps/v1');
    expect(sts.kind).toBe('StatefulSet');
    expect(sts.metadata).toMatchObject({ name: 'main', namespace: 'db', ownerReferences: [OWNER] });
    expect(spec.serviceName).toBe('main-peer');
    expect(spec.replicas).toBe(3);
    expect(spec.podManagementPolicy).toBe('Parallel');
    expect(spec.updateStrategy).toEqual({ type: 'OnDelete' });
    expect(spec.persistentVolumeClaimRetentionPolicy).toEqual({ whenDeleted: 'Retain', whenScaled: 'Delete' });
    expect(buildStatefulSet(c, { replicas: 4 }).spec!.replicas).toBe(4);
  });

  test('labels: the selector is a stable subset of the pod labels; the version is not in it', () => {
    expect(spec.selector.matchLabels).toEqual(SELECTOR);
    expect(spec.template.metadata!.labels).toEqual({ ...SELECTOR, 'app.kubernetes.io/managed-by': 'etcd-ts-operator', 'app.kubernetes.io/version': '0.1.0' });
    expect(sts.metadata!.labels).toEqual(spec.template.metadata!.labels);
    // volumeClaimTemplates cannot change: no version there.
    expect(spec.volumeClaimTemplates![0].metadata!.labels).toEqual({ ...SELECTOR, 'app.kubernetes.io/managed-by': 'etcd-ts-operator' });
    // An upgrade changes the template only where it must.
    const upgraded = buildStatefulSet(cluster({ replicas: 3, version: '0.2.0', storage: { size: '10Gi', storageClassName: 'fast' } }));
    expect(upgraded.spec!.selector).toEqual(spec.selector);
    expect(upgraded.spec!.volumeClaimTemplates).toEqual(spec.volumeClaimTemplates);
    expect(container(upgraded).image).toBe('etcd-ts:0.2.0');
    // An image without a version: no version label (the operator does not know it).
    expect(buildStatefulSet(cluster({ image: 'x/y:z' })).spec!.template.metadata!.labels!['app.kubernetes.io/version']).toBeUndefined();
  });

  test('scaling changes only replicas: the pod template does not depend on the member count', () => {
    const three = buildStatefulSet(cluster({ replicas: 3 }));
    const five = buildStatefulSet(cluster({ replicas: 5 }));
    expect(five.spec!.template).toEqual(three.spec!.template);
    expect(five.spec!.volumeClaimTemplates).toEqual(three.spec!.volumeClaimTemplates);
  });

  test('one PersistentVolumeClaim per member, from spec.storage', () => {
    expect(spec.volumeClaimTemplates).toEqual([
      {
        metadata: { name: 'data', labels: { ...SELECTOR, 'app.kubernetes.io/managed-by': 'etcd-ts-operator' } },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } }, storageClassName: 'fast' },
      },
    ]);
    const noClass = buildStatefulSet(cluster({ storage: { size: 4294967296 } })).spec!.volumeClaimTemplates![0].spec!;
    expect(noClass).toEqual({ accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '4294967296' } } });
    expect(ctr.volumeMounts).toContainEqual({ name: 'data', mountPath: '/var/lib/etcd-ts' });
  });

  test('the container: etcd-ts, ports, probes, non-root', () => {
    expect(ctr.name).toBe('etcd');
    expect(ctr.image).toBe('etcd-ts:0.1.0');
    expect(ctr.command).toEqual(['etcd-ts']);
    expect(ctr.ports).toEqual([
      { name: 'client', containerPort: 2379, protocol: 'TCP' },
      { name: 'peer', containerPort: 2380, protocol: 'TCP' },
    ]);
    expect(ctr.readinessProbe!.httpGet).toEqual({ path: '/readyz', port: 'client', scheme: 'HTTP' });
    expect(ctr.livenessProbe!.httpGet).toEqual({ path: '/livez', port: 'client', scheme: 'HTTP' });
    expect(ctr.startupProbe!.httpGet).toEqual({ path: '/livez', port: 'client', scheme: 'HTTP' });
    // Liveness gives a slow member more time than readiness does before acting.
    const patience = (p: { periodSeconds?: number; failureThreshold?: number }) => p.periodSeconds! * p.failureThreshold!;
    expect(patience(ctr.livenessProbe!)).toBeGreaterThan(patience(ctr.readinessProbe!));
    // A start may take 5 minutes, but one that is quick is noticed within 2 s.
    expect(patience(ctr.startupProbe!)).toBe(300);
    expect(ctr.startupProbe!.periodSeconds).toBe(2);
    expect(ctr.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532 });
    expect(pod.enableServiceLinks).toBe(false);
    expect(ctr.resources).toBeUndefined();
    expect(ctr.imagePullPolicy).toBeUndefined();
    // No variable etcd-ts would read as a flag.
    expect((ctr.env ?? []).filter((e) => e.name.startsWith('ETCD'))).toEqual([]);
  });

  test('the environment comes from the pod name and the bootstrap ConfigMap\'s keys', () => {
    const cm = buildBootstrapConfigMap(c);
    expect(ctr.env).toEqual([
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'INITIAL_CLUSTER', valueFrom: { configMapKeyRef: { name: cm.metadata!.name, key: 'initial-cluster' } } },
      { name: 'INITIAL_CLUSTER_STATE', valueFrom: { configMapKeyRef: { name: cm.metadata!.name, key: 'initial-cluster-state' } } },
    ]);
    for (const e of ctr.env!) if (e.valueFrom?.configMapKeyRef) expect(Object.keys(cm.data!)).toContain(e.valueFrom.configMapKeyRef.key);
  });

  test('the arguments', () => {
    expect(etcdArgs(c)).toEqual([
      '--name=$(POD_NAME)',
      '--data-dir=/var/lib/etcd-ts/data',
      '--listen-client-urls=http://0.0.0.0:2379',
      '--advertise-client-urls=http://$(POD_NAME).main-peer.db.svc:2379',
      '--listen-peer-urls=http://0.0.0.0:2380',
      '--initial-advertise-peer-urls=http://$(POD_NAME).main-peer.db.svc:2380',
      '--initial-cluster=$(INITIAL_CLUSTER)',
      '--initial-cluster-state=$(INITIAL_CLUSTER_STATE)',
      `--initial-cluster-token=main-${UID}`,
      '--quota-backend-bytes=2147483648',
      '--auto-compaction-mode=periodic',
      '--auto-compaction-retention=0',
      '--heartbeat-interval=100',
      '--election-timeout=1000',
      '--snapshot-count=10000',
    ]);
    expect(ctr.args).toEqual(etcdArgs(c));
  });

  test('--metrics=extensive only when etcdOptions.metrics asks for it (the default adds no flag, so no restart)', () => {
    expect(etcdArgs(c).some((a) => a.startsWith('--metrics'))).toBe(false);
    const extensive = cluster({ etcdOptions: { metrics: 'extensive' } });
    expect(etcdArgs(extensive)).toEqual([...etcdArgs(c), '--metrics=extensive']);
  });

  test('default scheduling: members prefer different nodes', () => {
    expect(pod.affinity).toEqual({
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          { weight: 100, podAffinityTerm: { labelSelector: { matchLabels: SELECTOR }, topologyKey: 'kubernetes.io/hostname' } },
        ],
      },
    });
    for (const field of ['nodeSelector', 'tolerations', 'topologySpreadConstraints', 'priorityClassName', 'imagePullSecrets'] as const) {
      expect(pod[field]).toBeUndefined();
    }
    expect(spec.template.metadata!.annotations).toBeUndefined();
  });

  test('podTemplate overrides are merged; the operator\'s labels win', () => {
    const affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'disk', operator: 'In', values: ['ssd'] }] }] } } };
    const custom = buildStatefulSet(
      cluster({
        imagePullPolicy: 'Always',
        resources: { requests: { cpu: '500m', memory: 1073741824 }, limits: { memory: '2Gi' } },
        podTemplate: {
          labels: { team: 'db', 'app.kubernetes.io/instance': 'hijack' },
          annotations: { 'prometheus.io/scrape': 'true' },
          nodeSelector: { 'kubernetes.io/os': 'linux' },
          affinity,
          tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'etcd', effect: 'NoSchedule' }],
          topologySpreadConstraints: [
            { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'DoNotSchedule' },
            { maxSkew: 2, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { team: 'db' } } },
          ],
          priorityClassName: 'system-cluster-critical',
          imagePullSecrets: [{ name: 'regcred' }],
        },
      }),
    );
    const t = custom.spec!.template;
    expect(t.metadata!.labels).toMatchObject({ team: 'db', 'app.kubernetes.io/instance': 'main' });
    expect(t.metadata!.annotations).toEqual({ 'prometheus.io/scrape': 'true' });
    expect(t.spec!.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(t.spec!.affinity).toEqual(affinity);
    expect(t.spec!.tolerations).toEqual([{ key: 'dedicated', operator: 'Equal', value: 'etcd', effect: 'NoSchedule' }]);
    expect(t.spec!.topologySpreadConstraints).toEqual([
      { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: SELECTOR } },
      { maxSkew: 2, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { team: 'db' } } },
    ]);
    expect(t.spec!.priorityClassName).toBe('system-cluster-critical');
    expect(t.spec!.imagePullSecrets).toEqual([{ name: 'regcred' }]);
    const ctr2 = t.spec!.containers[0];
    expect(ctr2.imagePullPolicy).toBe('Always');
    expect(ctr2.resources).toEqual({ requests: { cpu: '500m', memory: '1073741824' }, limits: { memory: '2Gi' } });
    // The selector is untouched by the override.
    expect(custom.spec!.selector.matchLabels).toEqual(SELECTOR);
  });

  test('the builder does not share or modify the spec\'s objects', () => {
    const c2 = cluster({ podTemplate: { labels: { a: 'b' }, nodeSelector: { x: 'y' } } });
    const before = JSON.stringify(c2);
    const built = buildStatefulSet(c2);
    built.spec!.template.spec!.nodeSelector!.x = 'changed';
    built.spec!.template.metadata!.labels!.a = 'changed';
    expect(JSON.stringify(c2)).toBe(before);
  });
});

describe('a member\'s command line is one etcd-ts accepts', () => {
  test.each([1, 3, 5])('%i members: every member\'s expanded arguments load with the node\'s own config loader', (n) => {
    const c = cluster({ replicas: n });
    const cm = buildBootstrapConfigMap(c).data!;
    for (const member of memberNames(c, n)) {
      const { config, warnings } = loadConfig(expandArgs(c, member, cm), {});
      expect(unexpected(warnings)).toEqual([]);
      expect(config.name).toBe(member);
      expect(config.dataDir).toBe('/var/lib/etcd-ts/data');
      expect(config.initialClusterState).toBe('new');
      expect(config.initialClusterToken).toBe(`main-${UID}`);
      expect(config.initialClusterMembers.map((m) => m.name)).toEqual(memberNames(c, n));
      // The member's own entry in --initial-cluster is the URL it advertises (etcd checks this at bootstrap).
      const mine = config.initialClusterMembers.filter((m) => m.name === member).map((m) => m.peerUrl.href);
      expect(mine).toEqual(config.initialAdvertisePeerUrls.map((u) => u.href));
      expect(config.advertiseClientUrls.map((u) => u.href)).toEqual([memberClientURL(c, member)]);
      expect(config.listenClientUrls.map((u) => u.hostPort)).toEqual(['0.0.0.0:2379']);
      expect(config.listenPeerUrls.map((u) => u.hostPort)).toEqual(['0.0.0.0:2380']);
    }
  });

  test('etcd options reach etcd-ts', () => {
    const c = cluster({
      replicas: 3,
      etcdOptions: { heartbeatInterval: 250, electionTimeout: 2500, snapshotCount: 5000, quotaBackendBytes: 4294967296, autoCompactionMode: 'revision', autoCompactionRetention: '10000' },
    });
    const cm = buildBootstrapConfigMap(c, { state: 'existing', members: ['main-0', 'main-1', 'main-2', 'main-3'] }).data!;
    const { config, warnings } = loadConfig(expandArgs(c, 'main-3', cm), {});
    expect(unexpected(warnings)).toEqual([]);
    expect(config).toMatchObject({
      name: 'main-3',
      initialClusterState: 'existing',
      heartbeatIntervalMs: 250,
      electionTimeoutMs: 2500,
      snapshotCount: 5000,
      quotaBackendBytes: 4294967296,
      autoCompaction: { mode: 'revision', retentionRevisions: 10000 },
    });
  });

  test('a periodic duration retention reaches etcd-ts as a duration', () => {
    const c = cluster({ etcdOptions: { autoCompactionRetention: '1h30m' } });
    const { config } = loadConfig(expandArgs(c, 'main-0', buildBootstrapConfigMap(c).data!), {});
    expect(config.autoCompaction).toEqual({ mode: 'periodic', retentionMs: 90 * 60 * 1000 });
  });
});

describe('PodDisruptionBudget', () => {
  test.each([1, 2, 3, 4, 5, 6, 7, 8, 9])('%i members: evictions never take the cluster below quorum', (n) => {
    const pdb = buildPodDisruptionBudget(cluster({ replicas: n }));
    const maxUnavailable = pdb.spec!.maxUnavailable as number;
    expect(maxUnavailable).toBe(Math.floor((n - 1) / 2));
    expect(maxUnavailable).toBe(failuresTolerated(n));
    expect(n - maxUnavailable).toBeGreaterThanOrEqual(quorum(n));
    // ...and allows as many as possible: one more would lose quorum.
    expect(n - (maxUnavailable + 1)).toBeLessThan(quorum(n));
  });

  test('one member: no voluntary eviction at all', () => {
    expect(buildPodDisruptionBudget(cluster({ replicas: 1 })).spec!.maxUnavailable).toBe(0);
  });

  test('while scaling, the budget follows the members that exist, not spec.replicas', () => {
    const growing = cluster({ replicas: 5 });
    expect(buildPodDisruptionBudget(growing).spec!.maxUnavailable).toBe(2);
    expect(buildPodDisruptionBudget(growing, { votingMembers: 4 }).spec!.maxUnavailable).toBe(1);
  });

  test('selects the members and is owned by the cluster', () => {
    const pdb = buildPodDisruptionBudget(cluster());
    expect(pdb.apiVersion).toBe('policy/v1');
    expect(pdb.metadata).toMatchObject({ name: 'main', namespace: 'db', ownerReferences: [OWNER] });
    expect(pdb.spec!.selector).toEqual({ matchLabels: SELECTOR });
  });
});

describe('all objects', () => {
  test('in creation order, each owned by the cluster and in its namespace', () => {
    const objects = buildClusterObjects(cluster());
    expect(objects.map((o) => `${o.kind}/${o.metadata!.name}`)).toEqual([
      'ConfigMap/main-bootstrap',
      'Service/main-peer',
      'Service/main-client',
      'StatefulSet/main',
      'PodDisruptionBudget/main',
    ]);
    for (const o of objects) {
      expect(o.metadata!.namespace).toBe('db');
      expect(o.metadata!.ownerReferences).toEqual([OWNER]);
      expect(o.metadata!.labels).toMatchObject(SELECTOR);
    }
  });
});
