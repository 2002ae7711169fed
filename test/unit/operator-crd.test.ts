// The generated EtcdCluster CRD: the committed copies (crds/ and the Helm chart's crds/) are current, the schema is structural, and the schema the
// API server enforces agrees with the zod schema the operator parses with (same defaults, same verdicts).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import {
  CRD_FILE,
  type SchemaNode,
  applyDefaults,
  checkStructural,
  etcdClusterCrd,
  etcdClusterOpenApiSchema,
  etcdClusterSpecSchema,
  renderCrdYaml,
  validateValue,
} from '../../operator/api';
import { CHART_CRD_FILE } from '../../operator/api/generate-crds';

const ROOT = join(__dirname, '..', '..');

function firstDifference(a: string, b: string): string {
  const la = a.split('\n');
  const lb = b.split('\n');
  for (let i = 0; i < Math.max(la.length, lb.length); i++) {
    if (la[i] !== lb[i]) return `line ${i + 1}: committed ${JSON.stringify(lb[i])}, generated ${JSON.stringify(la[i])}`;
  }
  return 'no difference';
}

describe.each([
  ['crds/', CRD_FILE],
  ["the Helm chart's crds/", CHART_CRD_FILE],
])('committed CRD in %s', (_where, file) => {
  test(`${file} is what operator/api generates`, () => {
    const generated = renderCrdYaml();
    let committed = '';
    try {
      committed = readFileSync(join(ROOT, file), 'utf8');
    } catch {
      throw new Error(`${file} is missing: run \`make crds\` and commit it`);
    }
    if (generated !== committed) {
      throw new Error(`${file} is stale (${firstDifference(generated, committed)}): run \`make crds\` and commit the result`);
    }
  });

  test('the YAML parses back to the CRD object', () => {
    expect(parse(readFileSync(join(ROOT, file), 'utf8'))).toEqual(etcdClusterCrd());
  });
});

describe('CRD shape', () => {
  const crd = etcdClusterCrd() as { metadata: { name: string }; spec: Record<string, unknown> };
  const spec = crd.spec as {
    group: string;
    scope: string;
    names: Record<string, string>;
    versions: Array<{
      name: string;
      served: boolean;
      storage: boolean;
      additionalPrinterColumns: Array<{ name: string; jsonPath: string; type: string }>;
      subresources: { status: object; scale: Record<string, string> };
      schema: { openAPIV3Schema: SchemaNode };
    }>;
  };

  test('names, scope and the one served and stored version', () => {
    expect(crd.metadata.name).toBe('etcdclusters.etcd-ts.io');
    expect(spec.group).toBe('etcd-ts.io');
    expect(spec.scope).toBe('Namespaced');
    expect(spec.names).toEqual({ kind: 'EtcdCluster', listKind: 'EtcdClusterList', plural: 'etcdclusters', singular: 'etcdcluster' });
    expect(spec.versions.map((v) => [v.name, v.served, v.storage])).toEqual([['v1alpha1', true, true]]);
  });

  test('printer columns: Ready, Version, Leader, Phase, Age', () => {
    const columns = spec.versions[0].additionalPrinterColumns;
    expect(columns.map((c) => [c.name, c.jsonPath])).toEqual([
      ['Ready', '.status.ready'],
      ['Version', '.status.currentVersion'],
      ['Leader', '.status.leader'],
      ['Phase', '.status.phase'],
      ['Age', '.metadata.creationTimestamp'],
    ]);
    expect(columns[4].type).toBe('date');
    // Every column points at a field the schema declares.
    const schema = spec.versions[0].schema.openAPIV3Schema;
    for (const c of columns.slice(0, 4)) {
      const field = c.jsonPath.split('.').slice(1);
      expect(lookup(schema, field)).toBeDefined();
    }
  });

  test('status and scale subresources point at declared fields', () => {
    const { status, scale } = spec.versions[0].subresources;
    expect(status).toEqual({});
    expect(scale).toEqual({ specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' });
    const schema = spec.versions[0].schema.openAPIV3Schema;
    expect(lookup(schema, ['spec', 'replicas'])).toMatchObject({ type: 'integer', minimum: 1, maximum: 9, default: 3 });
    expect(lookup(schema, ['status', 'replicas'])).toMatchObject({ type: 'integer' });
    expect(lookup(schema, ['status', 'selector'])).toMatchObject({ type: 'string' });
  });

  test('conditions are a map list keyed by type, with metav1.Condition\'s required fields', () => {
    const conditions = lookup(etcdClusterOpenApiSchema(), ['status', 'conditions']) as SchemaNode;
    expect(conditions['x-kubernetes-list-type']).toBe('map');
    expect(conditions['x-kubernetes-list-map-keys']).toEqual(['type']);
    expect((conditions.items as SchemaNode).required).toEqual(['type', 'status', 'lastTransitionTime', 'reason', 'message']);
  });

  test('cross-field rules travel as CEL where the API server can enforce them', () => {
    const schema = etcdClusterOpenApiSchema();
    const rulesOf = (node: unknown) => ((node as SchemaNode)['x-kubernetes-validations'] as Array<{ rule: string }>).map((r) => r.rule);
    expect(rulesOf(lookup(schema, ['spec', 'etcdOptions'])).join('\n')).toMatch(/electionTimeout.*>= 5 \* /);
    expect(rulesOf(lookup(schema, ['spec', 'etcdOptions'])).join('\n')).toMatch(/autoCompactionRetention\.matches/);
    expect(rulesOf(lookup(schema, ['spec', 'storage'])).join('\n')).toMatch(/oldSelf\.storageClassName/);
    expect(rulesOf(lookup(schema, ['spec', 'storage'])).join('\n')).toMatch(/string\(oldSelf\.size\)/);
    expect(rulesOf(schema).join('\n')).toMatch(/self\.metadata\.name\.size\(\) <= 52/);
  });
});

describe('structural schema', () => {
  test('the generated schema is structural', () => {
    expect(checkStructural(etcdClusterOpenApiSchema())).toEqual([]);
  });

  test('every object node is typed, and only embedded Kubernetes objects keep unknown fields', () => {
    const preserved: string[] = [];
    const visit = (node: SchemaNode, path: string) => {
      if (node['x-kubernetes-preserve-unknown-fields'] === true) preserved.push(path);
      if (node.type === undefined) expect([path, node['x-kubernetes-int-or-string']]).toEqual([path, true]);
      for (const [name, child] of Object.entries((node.properties as Record<string, SchemaNode>) ?? {})) visit(child, `${path}.${name}`);
      if (node.items) visit(node.items as SchemaNode, `${path}[]`);
      if (node.additionalProperties) visit(node.additionalProperties as SchemaNode, `${path}.*`);
    };
    visit(etcdClusterOpenApiSchema(), '');
    expect(preserved.sort()).toEqual([
      '.spec.podTemplate.affinity.nodeAffinity',
      '.spec.podTemplate.affinity.podAffinity',
      '.spec.podTemplate.affinity.podAntiAffinity',
      '.spec.podTemplate.tolerations[]',
      '.spec.podTemplate.topologySpreadConstraints[]',
      '.spec.podTemplate.topologySpreadConstraints[].labelSelector',
    ]);
  });

  test('int-or-string quantities have the one shape the API server accepts', () => {
    const size = lookup(etcdClusterOpenApiSchema(), ['spec', 'storage', 'size']) as SchemaNode;
    expect(size.type).toBeUndefined();
    expect(size.anyOf).toEqual([{ type: 'integer' }, { type: 'string' }]);
    expect(size['x-kubernetes-int-or-string']).toBe(true);
    expect(typeof size.pattern).toBe('string');
  });

  test('the checker catches what the API server refuses', () => {
    const bad: SchemaNode = {
      type: 'object',
      'x-kubernetes-preserve-unknown-fields': true,
      properties: {
        metadata: { type: 'object', properties: { labels: { type: 'object' } } },
        untyped: { description: 'no type' },
        strict: { type: 'object', properties: { a: { type: 'string' } }, additionalProperties: false },
        both: { type: 'object', properties: { a: { type: 'string' } }, additionalProperties: { type: 'string' } },
        junctor: { type: 'string', anyOf: [{ type: 'string', pattern: 'a' }] },
        intOrString: { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer', minimum: 0 }, { type: 'number' }] },
        ref: { $ref: '#/definitions/x' },
        list: { type: 'array' },
        mapList: { type: 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['k'], items: { type: 'object', properties: { k: { type: 'string' } } } },
        badDefault: { type: 'integer', minimum: 1, default: 0 },
      },
    };
    const problems = checkStructural(bad).join('\n');
    for (const expected of [
      '.: x-kubernetes-preserve-unknown-fields at the root',
      '.metadata: only {type: object}',
      '.untyped: no type',
      '.strict: additionalProperties must be a schema',
      '.both: properties and additionalProperties are mutually exclusive',
      '.junctor.anyOf[0]: type is not allowed inside anyOf',
      '.intOrString: int-or-string must be untyped',
      '.ref: keyword $ref is not allowed',
      '.list: an array needs items',
      '.mapList: map key k must be required',
      '.badDefault default: must be >= 1',
    ]) {
      expect(problems).toContain(expected);
    }
  });
});

describe('the API server\'s schema and the operator\'s zod schema agree', () => {
  const specSchema = lookup(etcdClusterOpenApiSchema(), ['spec']) as SchemaNode;

  const accepted: Array<[string, unknown]> = [
    ['an empty spec', {}],
    ['five members', { replicas: 5 }],
    ['one member', { replicas: 1 }],
    ['a version', { version: '1.2.3' }],
    ['a pre-release version', { version: '1.2.3-rc.1' }],
    ['an image', { image: 'registry.example/etcd-ts:1.2.3', imagePullPolicy: 'IfNotPresent' }],
    ['storage as a string', { storage: { size: '10Gi', storageClassName: 'fast' } }],
    ['storage as an integer', { storage: { size: 10737418240 } }],
    ['resources', { resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: 2147483648 } } }],
    ['a duration retention', { etcdOptions: { autoCompactionRetention: '1h30m' } }],
    ['hours retention', { etcdOptions: { autoCompactionRetention: '1' } }],
    ['a fractional duration', { etcdOptions: { autoCompactionRetention: '1.5h' } }],
    ['revision mode', { etcdOptions: { autoCompactionMode: 'revision', autoCompactionRetention: '10000' } }],
    ['timing', { etcdOptions: { heartbeatInterval: 250, electionTimeout: 2500, snapshotCount: 5000, quotaBackendBytes: 8589934592 } }],
    [
      'a pod template',
      {
        podTemplate: {
          labels: { team: 'db' },
          annotations: { 'example.com/x': 'y' },
          nodeSelector: { 'kubernetes.io/os': 'linux' },
          tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'etcd', effect: 'NoSchedule' }],
          affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } } },
          topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway' }],
          priorityClassName: 'system-cluster-critical',
          imagePullSecrets: [{ name: 'regcred' }],
        },
      },
    ],
    ['a toleration field added by a later Kubernetes', { podTemplate: { tolerations: [{ operator: 'Exists', futureField: 1 }] } }],
    ['empty tls and backup', { tls: {}, backup: {} }],
  ];
  const refused: Array<[string, unknown]> = [
    ['no members', { replicas: 0 }],
    ['ten members', { replicas: 10 }],
    ['a fractional member count', { replicas: 2.5 }],
    ['a v-prefixed version', { version: 'v1.2.3' }],
    ['a version with build metadata (not a label value)', { version: '1.2.3+build' }],
    ['an empty image', { image: '' }],
    ['an unknown pull policy', { imagePullPolicy: 'Sometimes' }],
    ['a size in GB', { storage: { size: '10GB' } }],
    ['an empty storage class', { storage: { storageClassName: '' } }],
    ['a bad quantity', { resources: { limits: { memory: 'lots' } } }],
    ['an unknown compaction mode', { etcdOptions: { autoCompactionMode: 'hourly' } }],
    ['a retention without unit', { etcdOptions: { autoCompactionRetention: '1.5' } }],
    ['a negative retention', { etcdOptions: { autoCompactionRetention: '-1h' } }],
    ['a zero heartbeat', { etcdOptions: { heartbeatInterval: 0 } }],
    ['an election timeout over 50 s', { etcdOptions: { electionTimeout: 50001 } }],
    ['a negative quota', { etcdOptions: { quotaBackendBytes: -1 } }],
    ['a zero snapshot count', { etcdOptions: { snapshotCount: 0 } }],
    ['an unknown toleration effect', { podTemplate: { tolerations: [{ effect: 'Sometimes' }] } }],
    ['a spread constraint without topologyKey', { podTemplate: { topologySpreadConstraints: [{ maxSkew: 1, whenUnsatisfiable: 'DoNotSchedule' }] } }],
    ['a zero maxSkew', { podTemplate: { topologySpreadConstraints: [{ maxSkew: 0, topologyKey: 'z', whenUnsatisfiable: 'DoNotSchedule' }] } }],
    ['a pull secret without name', { podTemplate: { imagePullSecrets: [{}] } }],
    ['a non-string label', { podTemplate: { labels: { a: 1 } } }],
    ['replicas as a string', { replicas: '3' }],
  ];

  test.each(accepted)('both accept %s, with the same defaults', (_name, spec) => {
    const zod = etcdClusterSpecSchema.safeParse(spec);
    expect(zod.success).toBe(true);
    const defaulted = applyDefaults(specSchema, spec);
    expect(validateValue(specSchema, defaulted)).toEqual([]);
    expect(defaulted).toEqual(zod.data);
  });

  test.each(refused)('both refuse %s', (_name, spec) => {
    expect(etcdClusterSpecSchema.safeParse(spec).success).toBe(false);
    expect(validateValue(specSchema, applyDefaults(specSchema, spec))).not.toEqual([]);
  });

  test('defaulting an empty object gives every default the API server writes', () => {
    expect(applyDefaults(specSchema, {})).toEqual({
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
  });

  test('unknown fields outside embedded objects are reported (pruned or refused by the API server)', () => {
    expect(validateValue(specSchema, { replicas: 3, replica: 3 })).toEqual(['.replica: unknown field']);
    expect(validateValue(specSchema, { tls: { enabled: true } })).toEqual(['.tls.enabled: unknown field']);
  });
});

function lookup(schema: SchemaNode, path: string[]): unknown {
  let node: SchemaNode | undefined = schema;
  for (const name of path) node = (node?.properties as Record<string, SchemaNode> | undefined)?.[name];
  return node;
}
