// The EtcdCluster API as the reconciler uses it: defaults, validateSpec's problems, quantities, conditions.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DEFAULT_ETCD_TS_VERSION,
  REASONS,
  type Condition,
  type SpecProblem,
  conditionSchema,
  etcdClusterOpenApiSchema,
  etcdClusterStatusSchema,
  failuresTolerated,
  formatBytes,
  getCondition,
  labelKeyProblem,
  labelValueProblem,
  parseQuantity,
  quorum,
  readyText,
  rfc3339,
  setCondition,
  validateSpec,
  validateValue,
  withDefaults,
  type SchemaNode,
} from '../../operator/api';

const errors = (problems: SpecProblem[]) => problems.filter((p) => p.severity === 'error');
const warnings = (problems: SpecProblem[]) => problems.filter((p) => p.severity === 'warning');

describe('defaults', () => {
  test('an empty spec is a 3-member cluster with etcd\'s own defaults', () => {
    expect(withDefaults({})).toEqual({
      replicas: 3,
      storage: { size: '4Gi' },
      etcdOptions: {
        quotaBackendBytes: 2147483648,
        autoCompactionMode: 'periodic',
        autoCompactionRetention: '0',
        heartbeatInterval: 100,
        electionTimeout: 1000,
        snapshotCount: 10000,
        metrics: 'basic',
      },
    });
    expect(withDefaults(undefined)).toEqual(withDefaults({}));
  });

  test('given fields are kept and the rest defaulted', () => {
    const spec = withDefaults({ replicas: 5, storage: { storageClassName: 'fast' }, etcdOptions: { heartbeatInterval: 250, electionTimeout: 2500 } });
    expect(spec.replicas).toBe(5);
    expect(spec.storage).toEqual({ size: '4Gi', storageClassName: 'fast' });
    expect(spec.etcdOptions).toMatchObject({ heartbeatInterval: 250, electionTimeout: 2500, snapshotCount: 10000 });
  });

  test('a bad spec throws, naming the field', () => {
    expect(() => withDefaults({ replicas: 11 })).toThrow(/replicas/);
  });

  test('the default version is this package\'s version', () => {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
    // When package.json's version changes, DEFAULT_ETCD_TS_VERSION in operator/api/schema.ts changes with it.
    expect(DEFAULT_ETCD_TS_VERSION).toBe(pkg.version);
  });
});

describe('validateSpec', () => {
  test('a good spec has no problems', () => {
    expect(validateSpec({})).toEqual([]);
    expect(
      validateSpec({
        replicas: 5,
        storage: { size: '20Gi' },
        resources: { requests: { cpu: '1', memory: '2Gi' }, limits: { memory: '2Gi' } },
        etcdOptions: { heartbeatInterval: 250, electionTimeout: 2500, autoCompactionRetention: '1h', quotaBackendBytes: 8589934592 },
        podTemplate: {
          labels: { team: 'db', 'example.com/tier': 'storage' },
          annotations: { 'prometheus.io/scrape': 'true' },
          nodeSelector: { 'kubernetes.io/os': 'linux' },
          tolerations: [{ operator: 'Exists' }, { key: 'dedicated', value: 'etcd', effect: 'NoExecute', tolerationSeconds: 30 }],
          topologySpreadConstraints: [
            { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'DoNotSchedule' },
            { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule' },
          ],
        },
      }),
    ).toEqual([]);
  });

  test('schema errors are reported with the field path', () => {
    const problems = validateSpec({ replicas: 10, storage: { size: '10GB' } });
    expect(problems.map((p) => [p.severity, p.field])).toEqual([
      ['error', 'spec.replicas'],
      ['error', 'spec.storage.size'],
    ]);
  });

  test.each([2, 4, 6, 8])('%i members: a warning that one fewer tolerates as many failures', (n) => {
    const [w] = warnings(validateSpec({ replicas: n, storage: { size: '10Gi' } }));
    expect(w.field).toBe('spec.replicas');
    expect(w.message).toContain(`${n} members tolerate ${failuresTolerated(n)} failed member(s), no more than ${n - 1} do`);
    expect(errors(validateSpec({ replicas: n }))).toEqual([]);
  });

  test('odd member counts above one get no warning', () => {
    for (const n of [3, 5, 7, 9]) expect(validateSpec({ replicas: n })).toEqual([]);
  });

  test('one member: a warning about redundancy and blocked drains', () => {
    expect(warnings(validateSpec({ replicas: 1 })).map((p) => p.message).join()).toMatch(/no redundancy.*kubectl drain/);
  });

  test('election timeout below 5 heartbeats is an error, as etcd makes it', () => {
    const [e] = errors(validateSpec({ etcdOptions: { heartbeatInterval: 300 } }));
    expect(e).toEqual({
      severity: 'error',
      field: 'spec.etcdOptions.electionTimeout',
      message: expect.stringContaining('electionTimeout (1000 ms) must be at least 5 times heartbeatInterval (300 ms), i.e. at least 1500 ms'),
    });
    expect(validateSpec({ etcdOptions: { heartbeatInterval: 200, electionTimeout: 1000 } })).toEqual([]);
    expect(errors(validateSpec({ etcdOptions: { heartbeatInterval: 201, electionTimeout: 1000 } }))).toHaveLength(1);
  });

  test('revision mode with a duration retention is an error', () => {
    const [e] = errors(validateSpec({ etcdOptions: { autoCompactionMode: 'revision', autoCompactionRetention: '1h' } }));
    expect(e.field).toBe('spec.etcdOptions.autoCompactionRetention');
    expect(e.message).toMatch(/number of revisions/);
    expect(validateSpec({ etcdOptions: { autoCompactionMode: 'revision', autoCompactionRetention: '5000' } })).toEqual([]);
  });

  test('a quota above 8 GiB is a warning', () => {
    const problems = validateSpec({ storage: { size: '40Gi' }, etcdOptions: { quotaBackendBytes: 16 * 2 ** 30 } });
    expect(problems.map((p) => [p.severity, p.field])).toEqual([['warning', 'spec.etcdOptions.quotaBackendBytes']]);
    expect(problems[0].message).toContain('16 GiB');
  });

  test('a volume smaller than twice the quota is a warning; quota 0 means etcd\'s 2 GiB', () => {
    const [w] = validateSpec({ storage: { size: '3Gi' } });
    expect(w).toMatchObject({ severity: 'warning', field: 'spec.storage.size' });
    expect(w.message).toContain('storage.size (3 GiB) is less than twice the space quota (2 GiB)');
    expect(validateSpec({ storage: { size: '3Gi' }, etcdOptions: { quotaBackendBytes: 0 } })).toHaveLength(1);
    expect(validateSpec({ storage: { size: '1Gi' }, etcdOptions: { quotaBackendBytes: 512 * 2 ** 20 } })).toEqual([]);
    expect(validateSpec({ storage: { size: 4294967296 } })).toEqual([]);
  });

  test('a zero or negative volume size is an error', () => {
    expect(errors(validateSpec({ storage: { size: '0' } })).map((p) => p.field)).toEqual(['spec.storage.size']);
    expect(errors(validateSpec({ storage: { size: '-1Gi' } })).map((p) => p.field)).toEqual(['spec.storage.size']);
  });

  test('a request above its limit, or a negative quantity, is an error', () => {
    const problems = errors(validateSpec({ resources: { requests: { memory: '2Gi', cpu: '-1' }, limits: { memory: '1Gi' } } }));
    expect(problems.map((p) => p.field)).toEqual(['spec.resources.requests.cpu', 'spec.resources.requests.memory']);
    expect(problems[1].message).toBe('the memory request (2Gi) is above its limit (1Gi)');
    expect(validateSpec({ resources: { requests: { cpu: '500m' }, limits: { cpu: 1 } } })).toEqual([]);
  });

  test('bad label, annotation and node selector keys and values are errors', () => {
    const problems = errors(
      validateSpec({
        podTemplate: {
          labels: { 'bad key': 'x', good: 'bad value!', 'Example.com/x': 'y' },
          annotations: { '-x': 'anything goes in a value!' },
          nodeSelector: { 'a/b/c': 'd' },
        },
      }),
    );
    expect(problems.map((p) => p.field)).toEqual([
      'spec.podTemplate.labels.bad key',
      'spec.podTemplate.labels.good',
      'spec.podTemplate.labels.Example.com/x',
      'spec.podTemplate.annotations.-x',
      'spec.podTemplate.nodeSelector.a/b/c',
    ]);
  });

  test('a podTemplate label the operator owns is a warning: it is ignored', () => {
    const problems = validateSpec({ podTemplate: { labels: { 'app.kubernetes.io/instance': 'other' } } });
    expect(problems).toEqual([
      { severity: 'warning', field: 'spec.podTemplate.labels.app.kubernetes.io/instance', message: expect.stringContaining('is ignored') },
    ]);
  });

  test('tolerations the API server would refuse are errors', () => {
    const problems = errors(
      validateSpec({
        podTemplate: {
          tolerations: [
            { key: 'a', operator: 'Exists', value: 'x' },
            { value: 'x' },
            { key: 'a', value: 'b', effect: 'NoSchedule', tolerationSeconds: 10 },
            { key: 'bad key' },
          ],
        },
      }),
    );
    expect(problems.map((p) => [p.field, p.message])).toEqual([
      ['spec.podTemplate.tolerations[0]', expect.stringContaining('leave value empty')],
      ['spec.podTemplate.tolerations[1]', expect.stringContaining('without key must have operator Exists')],
      ['spec.podTemplate.tolerations[2]', expect.stringContaining('only allowed with effect NoExecute')],
      ['spec.podTemplate.tolerations[3]', expect.stringContaining('toleration key bad key')],
    ]);
  });

  test('two spread constraints on the same key and policy are an error', () => {
    const c = { maxSkew: 1, topologyKey: 'zone', whenUnsatisfiable: 'DoNotSchedule' as const };
    expect(errors(validateSpec({ podTemplate: { topologySpreadConstraints: [c, { ...c, maxSkew: 2 }] } })).map((p) => p.field)).toEqual([
      'spec.podTemplate.topologySpreadConstraints[1]',
    ]);
  });

  test('errors come before warnings', () => {
    const problems = validateSpec({ replicas: 4, etcdOptions: { heartbeatInterval: 500 } });
    expect(problems.map((p) => p.severity)).toEqual(['error', 'warning']);
  });
});

describe('quorum arithmetic', () => {
  test.each([
    [1, 1, 0],
    [2, 2, 0],
    [3, 2, 1],
    [4, 3, 1],
    [5, 3, 2],
    [6, 4, 2],
    [7, 4, 3],
    [9, 5, 4],
  ])('%i members: quorum %i, %i failures tolerated', (n, q, f) => {
    expect(quorum(n)).toBe(q);
    expect(failuresTolerated(n)).toBe(f);
  });
});

describe('label syntax', () => {
  test.each([
    ['app', true],
    ['example.com/app', true],
    ['app.kubernetes.io/name', true],
    ['a_b.c-d', true],
    ['', false],
    ['/app', false],
    ['Example.com/app', false],
    ['app-', false],
    ['a'.repeat(64), false],
    [`${'a'.repeat(254)}/x`, false],
  ])('key %j valid: %s', (key, valid) => {
    expect(labelKeyProblem(key) === undefined).toBe(valid);
  });

  test.each([
    ['', true],
    ['v1.2.3', true],
    ['a'.repeat(63), true],
    ['a'.repeat(64), false],
    ['-a', false],
    ['a b', false],
  ])('value %j valid: %s', (value, valid) => {
    expect(labelValueProblem(value) === undefined).toBe(valid);
  });
});

describe('quantities', () => {
  test.each([
    ['4Gi', 4 * 2 ** 30],
    ['500m', 0.5],
    ['1', 1],
    ['1.5G', 1.5e9],
    ['1e3', 1000],
    ['5E-2', 0.05],
    ['128974848', 128974848],
    ['.5Ki', 512],
    ['+1k', 1000],
    ['-1Mi', -(2 ** 20)],
    [1073741824, 1073741824],
  ])('%j is %d', (q, value) => {
    expect(parseQuantity(q)).toBeCloseTo(value, 9);
  });

  test.each(['10GB', 'Gi', '1 Gi', '', '1.2.3', 'lots'])('%j is not a quantity', (q) => {
    expect(parseQuantity(q)).toBeUndefined();
  });

  test('bytes for people', () => {
    expect(formatBytes(2 ** 31)).toBe('2 GiB');
    expect(formatBytes(1.5 * 2 ** 20)).toBe('1.5 MiB');
    expect(formatBytes(100)).toBe('100 bytes');
  });
});

describe('conditions', () => {
  const t0 = new Date('2026-01-01T10:00:00.123Z');
  const t1 = new Date('2026-01-01T10:05:00Z');

  test('a new condition is added with the time of the change', () => {
    const list = setCondition(undefined, { type: 'Available', status: 'False', reason: 'Bootstrapping', message: 'starting' }, t0, 1);
    expect(list).toEqual([
      { type: 'Available', status: 'False', reason: 'Bootstrapping', message: 'starting', lastTransitionTime: '2026-01-01T10:00:00Z', observedGeneration: 1 },
    ]);
  });

  test('the same status keeps its transition time; reason, message and generation are refreshed', () => {
    const before = setCondition(undefined, { type: 'Degraded', status: 'True', reason: 'MemberUnhealthy', message: 'c-1 down' }, t0, 1);
    const after = setCondition(before, { type: 'Degraded', status: 'True', reason: 'MemberUnhealthy', message: 'c-1 and c-2 down' }, t1, 2);
    expect(after[0]).toMatchObject({ message: 'c-1 and c-2 down', lastTransitionTime: '2026-01-01T10:00:00Z', observedGeneration: 2 });
    expect(before[0].message).toBe('c-1 down');
  });

  test('a status change moves the transition time; other conditions keep their place', () => {
    let list: Condition[] = [];
    list = setCondition(list, { type: 'Available', status: 'False', reason: 'Bootstrapping', message: '' }, t0);
    list = setCondition(list, { type: 'Progressing', status: 'True', reason: 'Creating', message: '' }, t0);
    list = setCondition(list, { type: 'Available', status: 'True', reason: 'QuorumAvailable', message: '3 of 3 healthy' }, t1);
    expect(list.map((c) => c.type)).toEqual(['Available', 'Progressing']);
    expect(getCondition(list, 'Available')).toMatchObject({ status: 'True', lastTransitionTime: '2026-01-01T10:05:00Z' });
    expect(getCondition(list, 'Degraded')).toBeUndefined();
  });

  test('every reason is one the API server accepts', () => {
    for (const [type, reasons] of Object.entries(REASONS)) {
      for (const reason of Object.values(reasons)) {
        const condition = { type, status: 'True', reason, message: '', lastTransitionTime: rfc3339(t0) };
        expect(conditionSchema.safeParse(condition).success).toBe(true);
      }
    }
    expect(conditionSchema.safeParse({ type: 'Available', status: 'True', reason: 'quorum lost', message: '', lastTransitionTime: rfc3339(t0) }).success).toBe(false);
  });

  test('readyText is the Ready column', () => {
    expect(readyText(2, 3)).toBe('2/3');
  });
});

describe('status', () => {
  const status = {
    phase: 'Running',
    observedGeneration: 4,
    replicas: 3,
    readyReplicas: 3,
    ready: '3/3',
    selector: 'app.kubernetes.io/name=etcd-ts,app.kubernetes.io/instance=main,app.kubernetes.io/component=member',
    members: [
      { name: 'main-0', id: '8e9e05c52164694d', isLearner: false, isLeader: true, healthy: true, version: '0.1.0' },
      { id: 'a1b2', isLearner: true, isLeader: false, healthy: false },
    ],
    clusterID: 'cdf818194e3a8c32',
    currentVersion: '0.1.0',
    leader: 'main-0',
    conditions: setCondition(undefined, { type: 'Available', status: 'True', reason: 'QuorumAvailable', message: '3 of 3 members healthy' }, new Date(0), 4),
  };

  test('a full status satisfies both the zod schema and the CRD schema', () => {
    expect(etcdClusterStatusSchema.safeParse(status).success).toBe(true);
    const crdStatus = (etcdClusterOpenApiSchema().properties as Record<string, SchemaNode>).status;
    expect(validateValue(crdStatus, status)).toEqual([]);
  });

  test('an unknown phase or a decimal member id is refused', () => {
    expect(etcdClusterStatusSchema.safeParse({ ...status, phase: 'Happy' }).success).toBe(false);
    expect(etcdClusterStatusSchema.safeParse({ ...status, members: [{ id: '10276657743932975437' }] }).success).toBe(false);
  });
});
