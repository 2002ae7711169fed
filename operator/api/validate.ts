// validateSpec: the problems of an EtcdCluster spec, in sentences a person can act on. It repeats the schema's
// checks (the object may have been stored under an older CRD) and adds what a schema cannot say: rules across
// fields that CEL is not trusted with, quantities compared with each other, label syntax, and advice
// (warnings) such as an even member count. The reconciler reports errors in the Degraded condition (reason
// InvalidSpec) and changes nothing while there are any; warnings are reported but do not block.
import { RESERVED_POD_LABELS } from './labels';
import { formatBytes, parseQuantity } from './quantity';
import {
  ETCD_DEFAULTS,
  type EtcdClusterSpec,
  SUGGESTED_MAX_QUOTA_BYTES,
  etcdClusterSpecSchema,
} from './schema';

export interface SpecProblem {
  /** An error blocks reconciliation until fixed; a warning is advice. */
  severity: 'error' | 'warning';
  /** Where, from the object's root, e.g. "spec.etcdOptions.electionTimeout". */
  field: string;
  message: string;
}

/** Errors first, then warnings; an empty list means the spec is good. */
export function validateSpec(spec: unknown): SpecProblem[] {
  const parsed = etcdClusterSpecSchema.safeParse(spec ?? {});
  if (!parsed.success) {
    return parsed.error.issues.map((issue) => ({
      severity: 'error' as const,
      field: ['spec', ...issue.path.map(String)].join('.'),
      message: issue.message,
    }));
  }
  const problems: SpecProblem[] = [];
  const error = (field: string, message: string) => problems.push({ severity: 'error', field: `spec.${field}`, message });
  const warning = (field: string, message: string) => problems.push({ severity: 'warning', field: `spec.${field}`, message });
  const s: EtcdClusterSpec = parsed.data;

  // Members.
  if (s.replicas % 2 === 0) {
    warning(
      'replicas',
      `${s.replicas} members tolerate ${failuresTolerated(s.replicas)} failed member(s), no more than ${s.replicas - 1} do, ` +
        `and every write waits for ${quorum(s.replicas)} of them: use ${s.replicas - 1} or ${s.replicas + 1}`,
    );
  }
  if (s.replicas === 1) {
    warning(
      'replicas',
      'a single member has no redundancy: any restart makes the cluster unavailable, and its PodDisruptionBudget blocks ' +
        'voluntary evictions (kubectl drain waits) — use 3 members for anything that matters',
    );
  }

  // etcd flags (the CRD checks the first two with CEL as well).
  const o = s.etcdOptions;
  if (o.electionTimeout < 5 * o.heartbeatInterval) {
    error(
      'etcdOptions.electionTimeout',
      `electionTimeout (${o.electionTimeout} ms) must be at least 5 times heartbeatInterval (${o.heartbeatInterval} ms), ` +
        `i.e. at least ${5 * o.heartbeatInterval} ms: etcd refuses to start otherwise`,
    );
  }
  if (o.autoCompactionMode === 'revision' && !/^[0-9]+$/.test(o.autoCompactionRetention)) {
    error(
      'etcdOptions.autoCompactionRetention',
      `with autoCompactionMode revision, autoCompactionRetention is a number of revisions; "${o.autoCompactionRetention}" is a duration ` +
        '(etcd would read it as billions of revisions and never compact)',
    );
  }
  const quota = o.quotaBackendBytes === 0 ? ETCD_DEFAULTS.quotaBackendBytes : o.quotaBackendBytes;
  if (quota > SUGGESTED_MAX_QUOTA_BYTES) {
    warning(
      'etcdOptions.quotaBackendBytes',
      `a space quota of ${formatBytes(quota)} is above etcd's suggested maximum of 8 GiB: snapshots, defragmentation and ` +
        'members catching up get slow',
    );
  }

  // Storage.
  const size = parseQuantity(s.storage.size);
  if (size === undefined || size <= 0) {
    error('storage.size', `storage.size must be a positive quantity such as "10Gi", not ${JSON.stringify(s.storage.size)}`);
  } else if (size < 2 * quota) {
    warning(
      'storage.size',
      `storage.size (${formatBytes(size)}) is less than twice the space quota (${formatBytes(quota)}): the volume also holds ` +
        'the raft log and snapshots, and can fill up before the quota alarm stops writes — use at least ' +
        `${formatBytes(2 * quota)} or lower etcdOptions.quotaBackendBytes`,
    );
  }

  // Resources: the API server refuses a pod whose request exceeds its limit.
  const requests = s.resources?.requests ?? {};
  const limits = s.resources?.limits ?? {};
  for (const [kind, map] of [['requests', requests], ['limits', limits]] as const) {
    for (const [name, value] of Object.entries(map)) {
      const n = parseQuantity(value);
      if (n === undefined || n < 0) error(`resources.${kind}.${name}`, `${kind}.${name} must be a non-negative quantity, not ${JSON.stringify(value)}`);
    }
  }
  for (const [name, value] of Object.entries(requests)) {
    const request = parseQuantity(value);
    const limit = limits[name] === undefined ? undefined : parseQuantity(limits[name]);
    if (request !== undefined && limit !== undefined && request > limit) {
      error(`resources.requests.${name}`, `the ${name} request (${value}) is above its limit (${limits[name]})`);
    }
  }

  // Pod template.
  const t = s.podTemplate;
  if (t) {
    for (const [key, value] of Object.entries(t.labels ?? {})) {
      const bad = labelKeyProblem(key) ?? labelValueProblem(value);
      if (bad) error(`podTemplate.labels.${key}`, `label ${key}=${value}: ${bad}`);
      else if (RESERVED_POD_LABELS.includes(key)) {
        warning(`podTemplate.labels.${key}`, `label ${key} is set by the operator (it selects the members); this value is ignored`);
      }
    }
    for (const key of Object.keys(t.annotations ?? {})) {
      const bad = labelKeyProblem(key);
      if (bad) error(`podTemplate.annotations.${key}`, `annotation ${key}: ${bad}`);
    }
    for (const [key, value] of Object.entries(t.nodeSelector ?? {})) {
      const bad = labelKeyProblem(key) ?? labelValueProblem(value);
      if (bad) error(`podTemplate.nodeSelector.${key}`, `node selector ${key}=${value}: ${bad}`);
    }
    (t.tolerations ?? []).forEach((tol, i) => {
      const at = `podTemplate.tolerations[${i}]`;
      const operator = tol.operator ?? 'Equal';
      if (operator === 'Exists' && (tol.value ?? '') !== '') error(at, 'a toleration with operator Exists matches any value: leave value empty');
      if ((tol.key ?? '') === '' && operator !== 'Exists') error(at, 'a toleration without key must have operator Exists (it then tolerates every taint)');
      if (tol.key && labelKeyProblem(tol.key)) error(at, `toleration key ${tol.key}: ${labelKeyProblem(tol.key)}`);
      if (tol.tolerationSeconds !== undefined && tol.effect !== 'NoExecute') error(at, 'tolerationSeconds is only allowed with effect NoExecute');
    });
    const seen = new Set<string>();
    (t.topologySpreadConstraints ?? []).forEach((c, i) => {
      const pair = `${c.topologyKey}/${c.whenUnsatisfiable}`;
      if (seen.has(pair)) {
        error(`podTemplate.topologySpreadConstraints[${i}]`, `two constraints have topologyKey ${c.topologyKey} and whenUnsatisfiable ${c.whenUnsatisfiable}`);
      }
      seen.add(pair);
    });
  }

  return [...problems.filter((p) => p.severity === 'error'), ...problems.filter((p) => p.severity === 'warning')];
}

/** Members needed for a majority. */
export function quorum(members: number): number {
  return Math.floor(members / 2) + 1;
}

/** Members that may fail while the rest keep a majority. */
export function failuresTolerated(members: number): number {
  return members - quorum(members);
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Why a label or annotation key is not a Kubernetes qualified name ([prefix/]name), or undefined. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) {
    return 'the prefix before "/" must be a DNS subdomain (lower-case letters, digits, "-" and ".")';
  }
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name)) {
    return 'the name must be 1 to 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit';
  }
  return undefined;
}

/** Why a label value is not valid, or undefined. */
export function labelValueProblem(value: string): string | undefined {
  if (value.length > 63 || !LABEL_VALUE.test(value)) {
    return 'the value must be at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit';
  }
  return undefined;
}
