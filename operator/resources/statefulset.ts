// The StatefulSet that runs a cluster's members, and the etcd-ts command line of a member.
//
// Why the StatefulSet is shaped this way:
// - podManagementPolicy Parallel: the initial members must all run before any can become ready (readiness is
//   /readyz, which needs a quorum), so OrderedReady would wait forever for member 0. Ordering of member
//   changes is the operator's job anyway: it adds and removes one member at a time through etcd's membership
//   API and only then changes the StatefulSet's replicas.
// - updateStrategy OnDelete: a pod template change (version, resources, ...) is applied by the operator
//   deleting one member's pod at a time, after checking that the others are healthy (and moving leadership
//   away first) — rather than by the StatefulSet controller, which only waits for readiness.
// - Everything that changes while the cluster lives (which members exist, whether the cluster is being
//   bootstrapped) is read from the bootstrap ConfigMap through environment variables, so scaling never
//   changes the pod template and never restarts the running members.
// - persistentVolumeClaimRetentionPolicy: volumes are kept when the StatefulSet is deleted (the data outlives
//   a mistaken delete) but deleted on scale-down, because a removed member's data must never come back: a pod
//   of the same name starting on it later would act as the removed member.
import type {
  V1Affinity,
  V1Container,
  V1EnvVar,
  V1PersistentVolumeClaim,
  V1PodSpec,
  V1Probe,
  V1ResourceRequirements,
  V1StatefulSet,
  V1Toleration,
  V1TopologySpreadConstraint,
} from '@kubernetes/client-node';
import { ETCD_DEFAULTS, type EtcdCluster, RESERVED_POD_LABELS } from '../api';
import { BOOTSTRAP_KEY_INITIAL_CLUSTER, BOOTSTRAP_KEY_INITIAL_CLUSTER_STATE } from './configmap';
import {
  CLIENT_PORT,
  CLIENT_PORT_NAME,
  PEER_PORT,
  PEER_PORT_NAME,
  bootstrapConfigMapName,
  clusterLabels,
  initialClusterToken,
  memberImage,
  ownedMetadata,
  peerServiceName,
  selectorLabels,
  stableLabels,
  statefulSetName,
} from './names';

export const CONTAINER_NAME = 'etcd';
export const DATA_VOLUME = 'data';
/** Where each member's PersistentVolumeClaim is mounted. */
export const DATA_MOUNT_PATH = '/var/lib/etcd-ts';
/** The data dir: a directory inside the volume, since a fresh volume's root may hold lost+found. */
export const DATA_DIR = `${DATA_MOUNT_PATH}/data`;
/** The unprivileged user and group the members run as (the image must run as this user too). */
export const MEMBER_UID = 65532;

/** Environment variables of the container; none starts with ETCD_, which etcd-ts would read as flags. */
export const ENV_POD_NAME = 'POD_NAME';
export const ENV_INITIAL_CLUSTER = 'INITIAL_CLUSTER';
export const ENV_INITIAL_CLUSTER_STATE = 'INITIAL_CLUSTER_STATE';

export interface StatefulSetOptions {
  /** Pods to run; the reconciler changes it one member at a time. Default: spec.replicas. */
  replicas?: number;
  /** The repository spec.version selects a tag of, when spec.image is unset (default "etcd-ts"). */
  imageRepository?: string;
}

/**
 * The etcd-ts arguments of every member. `$(POD_NAME)` and the other `$(VAR)` references are expanded by
 * the kubelet from the container's environment, so one pod template serves every member.
 */
export function etcdArgs(c: EtcdCluster): string[] {
  const o = c.spec.etcdOptions;
  const self = `$(${ENV_POD_NAME}).${peerServiceName(c)}.${c.metadata.namespace}.svc`;
  return [
    `--name=$(${ENV_POD_NAME})`,
    `--data-dir=${DATA_DIR}`,
    `--listen-client-urls=http://0.0.0.0:${CLIENT_PORT}`,
    `--advertise-client-urls=http://${self}:${CLIENT_PORT}`,
    `--listen-peer-urls=http://0.0.0.0:${PEER_PORT}`,
    `--initial-advertise-peer-urls=http://${self}:${PEER_PORT}`,
    `--initial-cluster=$(${ENV_INITIAL_CLUSTER})`,
    `--initial-cluster-state=$(${ENV_INITIAL_CLUSTER_STATE})`,
    `--initial-cluster-token=${initialClusterToken(c)}`,
    `--quota-backend-bytes=${o.quotaBackendBytes}`,
    `--auto-compaction-mode=${o.autoCompactionMode}`,
    `--auto-compaction-retention=${o.autoCompactionRetention}`,
    `--heartbeat-interval=${o.heartbeatInterval}`,
    `--election-timeout=${o.electionTimeout}`,
    `--snapshot-count=${o.snapshotCount}`,
    // Only when asked for: adding `--metrics=basic` to every cluster would change every pod template, and an
    // operator upgrade would restart every member for nothing.
    ...(o.metrics !== ETCD_DEFAULTS.metrics ? [`--metrics=${o.metrics}`] : []),
  ];
}

export function buildStatefulSet(c: EtcdCluster, options: StatefulSetOptions = {}): V1StatefulSet {
  const selector = selectorLabels(c);
  const template = c.spec.podTemplate ?? {};
  // The operator's labels win: the selector labels must stay on every pod.
  const userLabels = Object.fromEntries(Object.entries(template.labels ?? {}).filter(([k]) => !RESERVED_POD_LABELS.includes(k)));
  const podLabels = { ...userLabels, ...clusterLabels(c) };

  const podSpec: V1PodSpec = {
    containers: [memberContainer(c, options.imageRepository)],
    // Service links would add a variable per Service in the namespace; a Service named "etcd" alone adds
    // ETCD_PORT, ETCD_SERVICE_HOST, ..., which etcd-ts would take for (unknown) flags.
    enableServiceLinks: false,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: MEMBER_UID,
      runAsGroup: MEMBER_UID,
      fsGroup: MEMBER_UID,
      fsGroupChangePolicy: 'OnRootMismatch',
      seccompProfile: { type: 'RuntimeDefault' },
    },
    affinity: (template.affinity as V1Affinity | undefined) ?? defaultAffinity(c),
    volumes: [{ name: 'tmp', emptyDir: {} }],
  };
  if (template.nodeSelector) podSpec.nodeSelector = { ...template.nodeSelector };
  if (template.tolerations) podSpec.tolerations = template.tolerations.map((t) => ({ ...t }) as V1Toleration);
  if (template.topologySpreadConstraints) {
    // A constraint without a selector counts no pods; the useful default is this cluster's members.
    podSpec.topologySpreadConstraints = template.topologySpreadConstraints.map(
      (t) => ({ ...t, labelSelector: t.labelSelector ?? { matchLabels: { ...selector } } }) as V1TopologySpreadConstraint,
    );
  }
  if (template.priorityClassName) podSpec.priorityClassName = template.priorityClassName;
  if (template.imagePullSecrets) podSpec.imagePullSecrets = template.imagePullSecrets.map((s) => ({ name: s.name }));

  const claim: V1PersistentVolumeClaim = {
    metadata: { name: DATA_VOLUME, labels: stableLabels(c) },
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: String(c.spec.storage.size) } },
      ...(c.spec.storage.storageClassName !== undefined ? { storageClassName: c.spec.storage.storageClassName } : {}),
    },
  };

  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: ownedMetadata(c, statefulSetName(c)),
    spec: {
      replicas: options.replicas ?? c.spec.replicas,
      serviceName: peerServiceName(c),
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'OnDelete' },
      persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Delete' },
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: podLabels, ...(template.annotations ? { annotations: { ...template.annotations } } : {}) },
        spec: podSpec,
      },
      volumeClaimTemplates: [claim],
    },
  };
}

function memberContainer(c: EtcdCluster, imageRepository: string | undefined): V1Container {
  const configMap = bootstrapConfigMapName(c);
  const env: V1EnvVar[] = [
    { name: ENV_POD_NAME, valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: ENV_INITIAL_CLUSTER, valueFrom: { configMapKeyRef: { name: configMap, key: BOOTSTRAP_KEY_INITIAL_CLUSTER } } },
    { name: ENV_INITIAL_CLUSTER_STATE, valueFrom: { configMapKeyRef: { name: configMap, key: BOOTSTRAP_KEY_INITIAL_CLUSTER_STATE } } },
  ];
  const container: V1Container = {
    name: CONTAINER_NAME,
    image: memberImage(c, imageRepository),
    command: ['etcd-ts'],
    args: etcdArgs(c),
    env,
    ports: [
      { name: CLIENT_PORT_NAME, containerPort: CLIENT_PORT, protocol: 'TCP' },
      { name: PEER_PORT_NAME, containerPort: PEER_PORT, protocol: 'TCP' },
    ],
    volumeMounts: [
      { name: DATA_VOLUME, mountPath: DATA_MOUNT_PATH },
      { name: 'tmp', mountPath: '/tmp' },
    ],
    // /readyz needs a quorum (a linearizable read): a member is ready when the cluster serves through it.
    readinessProbe: httpProbe('/readyz', { periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 3 }),
    // /livez is a local read: it does not fail when the cluster lost quorum, so members are not restarted
    // (which would only make recovery harder) because their peers are down. Generous like kubeadm's: a
    // member slow under load or on a slow disk must not be killed for it.
    livenessProbe: httpProbe('/livez', { periodSeconds: 10, timeoutSeconds: 15, failureThreshold: 8 }),
    // Opening a large data dir and replaying the log takes a while: up to 5 minutes before liveness applies.
    // Asked often (every 2 s), since readiness is not checked before it passes: a 10 s period made every
    // member start or restart wait at least one period after it was up.
    startupProbe: httpProbe('/livez', { periodSeconds: 2, timeoutSeconds: 5, failureThreshold: 150 }),
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    },
  };
  if (c.spec.imagePullPolicy) container.imagePullPolicy = c.spec.imagePullPolicy;
  const resources = containerResources(c);
  if (resources) container.resources = resources;
  return container;
}

function httpProbe(path: string, timing: Pick<V1Probe, 'periodSeconds' | 'timeoutSeconds' | 'failureThreshold'>): V1Probe {
  return { httpGet: { path, port: CLIENT_PORT_NAME, scheme: 'HTTP' }, ...timing };
}

function containerResources(c: EtcdCluster): V1ResourceRequirements | undefined {
  const r = c.spec.resources;
  if (!r || (!r.requests && !r.limits)) return undefined;
  const asStrings = (m: Record<string, string | number>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String(v)]));
  return { ...(r.requests ? { requests: asStrings(r.requests) } : {}), ...(r.limits ? { limits: asStrings(r.limits) } : {}) };
}

/** Members prefer different nodes, so that one node's loss costs one member; preferred, so small clusters still schedule. */
function defaultAffinity(c: EtcdCluster): V1Affinity {
  return {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        { weight: 100, podAffinityTerm: { labelSelector: { matchLabels: selectorLabels(c) }, topologyKey: 'kubernetes.io/hostname' } },
      ],
    },
  };
}
