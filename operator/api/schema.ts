// The EtcdCluster resource (etcd-ts.io/v1alpha1), written once: these zod schemas are the TypeScript types
// the operator works with, the defaults it applies, and the source of the CRD's OpenAPI schema (crd.ts turns
// them into crds/etcd-ts.io_etcdclusters.yaml). Descriptions are what `kubectl explain` shows, so they are
// written for the person running the cluster. Rules that span fields and are sure to be right travel as
// CEL (`x-kubernetes-validations`) so that the API server refuses the object; what a schema cannot express
// is checked by validateSpec (validate.ts) and reported in a condition.
import { z } from 'zod';
import { QUANTITY_PATTERN } from './quantity';

export const GROUP = 'etcd-ts.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'EtcdCluster';
export const LIST_KIND = 'EtcdClusterList';
export const PLURAL = 'etcdclusters';
export const SINGULAR = 'etcdcluster';

export const MIN_REPLICAS = 1;
export const MAX_REPLICAS = 9;
export const DEFAULT_REPLICAS = 3;
/** The etcd-ts release this operator ships with (package.json's version): the default `spec.version`. */
export const DEFAULT_ETCD_TS_VERSION = '0.1.0';
/** The image repository `spec.version` selects a tag of, unless `spec.image` names an image. */
export const DEFAULT_IMAGE_REPOSITORY = 'etcd-ts';
/**
 * Twice etcd's default space quota (2 GiB): the volume must hold the whole quota plus the raft log and the
 * snapshots being written or received, or the disk fills before the quota alarm protects the cluster.
 */
export const DEFAULT_STORAGE_SIZE = '4Gi';

/** etcd's own defaults, which the CRD also defaults to: a spec that says nothing behaves like a bare etcd. */
export const ETCD_DEFAULTS = {
  quotaBackendBytes: 2 * 1024 * 1024 * 1024,
  autoCompactionMode: 'periodic',
  autoCompactionRetention: '0',
  heartbeatInterval: 100,
  electionTimeout: 1000,
  snapshotCount: 10000,
  metrics: 'basic',
} as const;
/** etcd refuses a longer election timeout. */
export const MAX_ELECTION_TIMEOUT_MS = 50000;
/** etcd's suggested maximum space quota; larger quotas are allowed, with a warning. */
export const SUGGESTED_MAX_QUOTA_BYTES = 8 * 1024 * 1024 * 1024;

/** Versions are label values too (app.kubernetes.io/version), hence no `+build` suffix and at most 63 characters. */
export const VERSION_PATTERN = '^[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?$';
/** etcd's --auto-compaction-retention: whole hours or revisions ("1", "1000"), or a Go duration ("30m", "1h30m"). */
export const RETENTION_PATTERN = '^([0-9]+|(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)$';

/** A Kubernetes CEL validation rule, as the CRD carries it. */
export interface ValidationRule {
  rule: string;
  message: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
  fieldPath?: string;
}
const rules = (...list: ValidationRule[]) => ({ 'x-kubernetes-validations': list });

/** A quantity ("10Gi", 1073741824): an integer or a string, as Kubernetes writes them. */
const quantity = () =>
  z.union([z.number().int(), z.string().regex(new RegExp(QUANTITY_PATTERN))]).meta({ 'x-kubernetes-int-or-string': true });
const stringMap = () => z.record(z.string(), z.string());
/** An embedded Kubernetes object whose fields the API server checks when the StatefulSet is created. */
const embedded = (description: string) => z.object({}).loose().describe(description);

// ---------------------------------------------------------------------------------------------------------
// spec

export const storageSchema = z
  .object({
    size: quantity()
      .default(DEFAULT_STORAGE_SIZE)
      .describe(
        'Size of each member\'s volume (a Kubernetes quantity, e.g. "10Gi"). Keep it well above etcdOptions.quotaBackendBytes: ' +
          'the volume also holds the raft log and snapshots. Cannot be changed later.',
      ),
    storageClassName: z
      .string()
      .min(1)
      .max(253)
      .optional()
      .describe('StorageClass of the members\' PersistentVolumeClaims; the cluster\'s default class when unset. Cannot be changed later.'),
  })
  .meta(
    rules({
      rule: 'has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)',
      message: 'storageClassName cannot be changed: the members\' volumes were created with it',
      fieldPath: '.storageClassName',
    },
    {
      // a StatefulSet's claim templates are immutable, and volumes are not expanded (yet)
      rule: 'has(self.size) == has(oldSelf.size) && (!has(self.size) || string(self.size) == string(oldSelf.size))',
      message: 'size cannot be changed: the members\' volumes were created with it (volume expansion is not supported yet)',
      fieldPath: '.size',
    }),
  )
  .prefault({})
  .describe('The PersistentVolumeClaim each member gets (one per member, kept across restarts).');

export const resourcesSchema = z
  .object({
    requests: z.record(z.string(), quantity()).optional().describe('Minimum resources the scheduler reserves, e.g. {cpu: 500m, memory: 1Gi}.'),
    limits: z.record(z.string(), quantity()).optional().describe('Maximum resources the container may use, e.g. {memory: 2Gi}.'),
  })
  .describe('Compute resources of the etcd-ts container (requests and limits, as in a Pod).');

const tolerationSchema = z
  .object({
    key: z.string().optional().describe('Taint key the toleration applies to; empty matches all keys (with operator Exists).'),
    operator: z.string().optional().describe('Exists or Equal (the default).'),
    value: z.string().optional().describe('Taint value to match (empty with operator Exists).'),
    effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional().describe('Taint effect to match; empty matches all effects.'),
    tolerationSeconds: z.number().int().optional().describe('With effect NoExecute: how long the pod stays bound after the taint appears.'),
  })
  .loose();

const topologySpreadConstraintSchema = z
  .object({
    maxSkew: z.number().int().min(1).describe('Largest allowed difference in member count between two topology domains.'),
    topologyKey: z.string().min(1).describe('Node label whose values are the domains, e.g. topology.kubernetes.io/zone.'),
    whenUnsatisfiable: z.enum(['DoNotSchedule', 'ScheduleAnyway']).describe('Whether a member may be scheduled when the constraint cannot be met.'),
    labelSelector: embedded('Pods counted when spreading; this cluster\'s members when unset.').optional(),
  })
  .loose();

export const podTemplateSchema = z
  .object({
    labels: stringMap().optional().describe('Extra labels on member pods. The operator\'s own app.kubernetes.io/* labels win over these.'),
    annotations: stringMap().optional().describe('Extra annotations on member pods.'),
    nodeSelector: stringMap().optional().describe('Node labels a member\'s node must have.'),
    affinity: z
      .object({
        nodeAffinity: embedded('As in a Pod.').optional(),
        podAffinity: embedded('As in a Pod.').optional(),
        podAntiAffinity: embedded('As in a Pod.').optional(),
      })
      .optional()
      .describe(
        'Pod affinity as in a Pod. When unset, members prefer to run on different nodes (a preferred pod anti-affinity on kubernetes.io/hostname).',
      ),
    tolerations: z.array(tolerationSchema).optional().describe('Taints member pods tolerate, as in a Pod.'),
    topologySpreadConstraints: z
      .array(topologySpreadConstraintSchema)
      .optional()
      .describe('How members spread across zones or nodes, as in a Pod; a constraint without labelSelector counts this cluster\'s members.'),
    priorityClassName: z.string().min(1).max(253).optional().describe('PriorityClass of member pods (e.g. system-cluster-critical).'),
    imagePullSecrets: z
      .array(z.object({ name: z.string().min(1).describe('Name of a Secret in the cluster\'s namespace.') }))
      .optional()
      .describe('Secrets to pull the image with, for private registries.'),
  })
  .describe('Overrides for the member pods: labels, annotations and scheduling.');

export const etcdOptionsSchema = z
  .object({
    quotaBackendBytes: z
      .number()
      .int()
      .min(0)
      .default(ETCD_DEFAULTS.quotaBackendBytes)
      .describe(
        'etcd --quota-backend-bytes: when the database grows past this many bytes, the cluster raises a NOSPACE alarm and accepts only ' +
          'reads and deletes. 0 means etcd\'s default (2 GiB); above 8 GiB is allowed but not recommended.',
      ),
    autoCompactionMode: z
      .enum(['periodic', 'revision'])
      .default(ETCD_DEFAULTS.autoCompactionMode)
      .describe('etcd --auto-compaction-mode: periodic keeps a window of time, revision keeps a number of revisions.'),
    autoCompactionRetention: z
      .string()
      .max(32)
      .regex(new RegExp(RETENTION_PATTERN))
      .default(ETCD_DEFAULTS.autoCompactionRetention)
      .describe(
        'etcd --auto-compaction-retention: in periodic mode hours ("1") or a duration ("30m", "1h30m"); in revision mode a number of ' +
          'revisions ("10000"). "0" turns auto-compaction off.',
      ),
    heartbeatInterval: z
      .number()
      .int()
      .min(1)
      .max(MAX_ELECTION_TIMEOUT_MS / 5)
      .default(ETCD_DEFAULTS.heartbeatInterval)
      .describe('etcd --heartbeat-interval, in milliseconds: how often the leader heartbeats (about the round-trip time between members).'),
    electionTimeout: z
      .number()
      .int()
      .min(1)
      .max(MAX_ELECTION_TIMEOUT_MS)
      .default(ETCD_DEFAULTS.electionTimeout)
      .describe(
        'etcd --election-timeout, in milliseconds: how long a follower waits for the leader before calling an election. ' +
          'At least 5 times heartbeatInterval, at most 50000.',
      ),
    snapshotCount: z
      .number()
      .int()
      .min(1)
      .default(ETCD_DEFAULTS.snapshotCount)
      .describe('etcd --snapshot-count: committed entries between two snapshots (after which the raft log is compacted).'),
    metrics: z
      .enum(['basic', 'extensive'])
      .default(ETCD_DEFAULTS.metrics)
      .describe(
        'etcd --metrics: basic, or extensive to add the gRPC latency histogram grpc_server_handling_seconds ' +
          '(the etcdGRPCRequestsSlow alert of the Helm chart reads it).',
      ),
  })
  .meta(
    rules(
      {
        // Both fields are defaulted; the fallbacks are etcd's defaults, so the rule is right either way.
        rule:
          `(has(self.electionTimeout) ? self.electionTimeout : ${ETCD_DEFAULTS.electionTimeout}) >= ` +
          `5 * (has(self.heartbeatInterval) ? self.heartbeatInterval : ${ETCD_DEFAULTS.heartbeatInterval})`,
        message: 'electionTimeout must be at least 5 times heartbeatInterval (etcd refuses to start otherwise)',
        fieldPath: '.electionTimeout',
      },
      {
        rule: "!has(self.autoCompactionMode) || self.autoCompactionMode != 'revision' || !has(self.autoCompactionRetention) || self.autoCompactionRetention.matches('^[0-9]+$')",
        message: 'with autoCompactionMode revision, autoCompactionRetention is a number of revisions (digits only), not a duration',
        fieldPath: '.autoCompactionRetention',
      },
    ),
  )
  .prefault({})
  .describe('etcd flags for every member. Each field is the etcd flag of the same name, with etcd\'s default.');

export const tlsSchema = z
  .object({})
  .describe('Reserved for TLS on the client and peer ports (coming in a later release). Members use plain HTTP for now; leave empty.');

export const backupSchema = z
  .object({})
  .describe('Reserved for scheduled backups (coming in a later release); leave empty.');

export const etcdClusterSpecSchema = z
  .object({
    replicas: z
      .number()
      .int()
      .min(MIN_REPLICAS)
      .max(MAX_REPLICAS)
      .default(DEFAULT_REPLICAS)
      .describe(
        'Number of members. Use an odd number: n members keep working while a majority (n/2+1) is up, so 4 tolerate one failure, like 3. ' +
          'The operator adds or removes one member at a time.',
      ),
    version: z
      .string()
      .max(63)
      .regex(new RegExp(VERSION_PATTERN))
      .optional()
      .describe(
        `etcd-ts version to run, e.g. "${DEFAULT_ETCD_TS_VERSION}": selects the tag of the operator's member image repository ` +
          `(--member-image-repository: the repository the operator was installed from, by default ${DEFAULT_IMAGE_REPOSITORY}). ` +
          'When unset, the version this operator ships with. Changing it upgrades the members one at a time.',
      ),
    image: z
      .string()
      .min(1)
      .max(512)
      .optional()
      .describe('Full image reference to run instead of the one version selects (e.g. a mirror). Set version too, so the operator knows what the image runs.'),
    imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional().describe('Image pull policy of the etcd-ts container.'),
    storage: storageSchema,
    resources: resourcesSchema.optional(),
    podTemplate: podTemplateSchema.optional(),
    etcdOptions: etcdOptionsSchema,
    tls: tlsSchema.optional(),
    backup: backupSchema.optional(),
  })
  .describe('The desired etcd-ts cluster.');

// ---------------------------------------------------------------------------------------------------------
// status

/**
 * The cluster's phase, a one-word summary for `kubectl get`; the conditions say why.
 * - Pending: accepted, nothing created yet.
 * - Creating: the first members are starting and have not formed the cluster yet.
 * - Running: every member healthy, as many as asked, nothing in progress.
 * - Scaling: a member is being added or removed.
 * - Upgrading: members are being restarted one at a time on a new version or pod template.
 * - Repairing: a failed member is being replaced.
 * - Degraded: the cluster serves (it has quorum), but a member is unhealthy and no step can be taken now.
 * - Unavailable: the cluster has lost quorum and serves no writes.
 * - Invalid: the spec has a problem (see the Degraded condition); nothing is changed until it is fixed.
 */
export const PHASES = ['Pending', 'Creating', 'Running', 'Scaling', 'Upgrading', 'Repairing', 'Degraded', 'Unavailable', 'Invalid'] as const;
export type Phase = (typeof PHASES)[number];

/** metav1.Condition, with the constraints the API server puts on it. */
export const conditionSchema = z.object({
  type: z
    .string()
    .max(316)
    .regex(new RegExp('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$'))
    .describe('Available, Progressing or Degraded.'),
  status: z.enum(['True', 'False', 'Unknown']).describe('True, False or Unknown.'),
  observedGeneration: z.number().int().min(0).optional().describe('The .metadata.generation the condition was set for.'),
  lastTransitionTime: z.string().describe('When the condition last changed status (RFC 3339).').meta({ format: 'date-time' }),
  reason: z
    .string()
    .min(1)
    .max(1024)
    .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/)
    .describe('One CamelCase word for the cause, e.g. QuorumLost.'),
  message: z.string().max(32768).describe('The cause in a sentence, for a person.'),
});

export const memberStatusSchema = z.object({
  name: z.string().optional().describe('Member name (its pod\'s name); empty while an added member has not started yet.'),
  id: z.string().regex(/^[0-9a-f]{1,16}$/).describe('Member ID in hex, as etcdctl member list shows it.'),
  isLearner: z.boolean().default(false).describe('Whether the member is a learner (receives the log, does not vote yet).'),
  isLeader: z.boolean().default(false).describe('Whether the member is the current leader.'),
  healthy: z.boolean().default(false).describe('Whether the member answered its health check.'),
  version: z.string().optional().describe('etcd-ts version the member reports.'),
});

export const etcdClusterStatusSchema = z
  .object({
    phase: z.enum(PHASES).optional().describe('One-word summary: Pending, Creating, Running, Scaling, Upgrading, Repairing, Degraded, Unavailable or Invalid.'),
    observedGeneration: z.number().int().min(0).optional().describe('The .metadata.generation this status describes.'),
    replicas: z.number().int().min(0).optional().describe('Members in the cluster (voting members and learners).'),
    readyReplicas: z.number().int().min(0).optional().describe('Members that are healthy.'),
    ready: z.string().optional().describe('readyReplicas/spec.replicas, for kubectl get.'),
    selector: z.string().optional().describe('Label selector of the member pods (for the scale subresource).'),
    members: z.array(memberStatusSchema).optional().describe('The members, as the cluster lists them.'),
    clusterID: z.string().optional().describe('Cluster ID in hex.'),
    currentVersion: z.string().optional().describe('Lowest etcd-ts version the members run.'),
    leader: z.string().optional().describe('Name of the leader member.'),
    conditions: z
      .array(conditionSchema)
      .optional()
      .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] })
      .describe('Available (the cluster serves reads and writes), Progressing (a change is being made) and Degraded (something needs attention).'),
  })
  .describe('What the operator observed.');

export type EtcdClusterSpec = z.output<typeof etcdClusterSpecSchema>;
export type EtcdClusterSpecInput = z.input<typeof etcdClusterSpecSchema>;
export type EtcdClusterStatus = z.output<typeof etcdClusterStatusSchema>;
export type EtcdOptions = EtcdClusterSpec['etcdOptions'];
export type StorageSpec = EtcdClusterSpec['storage'];
export type PodTemplateSpec = NonNullable<EtcdClusterSpec['podTemplate']>;
export type ResourcesSpec = NonNullable<EtcdClusterSpec['resources']>;
export type Condition = z.output<typeof conditionSchema>;
export type MemberStatus = z.output<typeof memberStatusSchema>;

/** The metadata the operator reads; the API server's objects carry more, which is kept as it is. */
export interface EtcdClusterMetadata {
  name: string;
  namespace: string;
  uid?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

/** An EtcdCluster as the operator works with it: its spec with every default applied. */
export interface EtcdCluster {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: EtcdClusterMetadata;
  spec: EtcdClusterSpec;
  status?: EtcdClusterStatus;
}

/** Applies the CRD's defaults to a spec (as the API server does), or throws a ZodError naming every bad field. */
export function withDefaults(spec: unknown): EtcdClusterSpec {
  return etcdClusterSpecSchema.parse(spec ?? {});
}
