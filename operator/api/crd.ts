// The EtcdCluster CustomResourceDefinition, generated from the zod schemas in schema.ts: zod's OpenAPI 3.0
// output, normalised into a Kubernetes *structural* schema (every node typed, no additionalProperties: false,
// int-or-string as the API server wants it, embedded Kubernetes objects kept with
// x-kubernetes-preserve-unknown-fields), plus the printer columns and the status and scale subresources.
// `make crds` writes renderCrdYaml() to crds/; a unit test fails when the committed file is stale.
import { stringify } from 'yaml';
import { z } from 'zod';
import {
  API_VERSION,
  GROUP,
  KIND,
  LIST_KIND,
  PLURAL,
  SINGULAR,
  VERSION,
  type ValidationRule,
  etcdClusterSpecSchema,
  etcdClusterStatusSchema,
} from './schema';

/** An OpenAPI v3 schema node as a CRD carries it (JSON field names). */
export type SchemaNode = { [keyword: string]: unknown };

export const CRD_NAME = `${PLURAL}.${GROUP}`;
/** The committed file, relative to the repository root. */
export const CRD_FILE = `crds/${GROUP}_${PLURAL}.yaml`;

/**
 * Rules on the object as a whole. The name becomes the StatefulSet's and the Services' names: a Service name
 * is a DNS-1035 label, and the StatefulSet controller labels each pod with controller-revision-hash =
 * "<name>-<hash of up to 10 characters>", which must fit a 63-character label value: hence 52. (No fieldPath:
 * the API server accepts only paths declared in the schema, and metadata's fields are not.)
 */
const ROOT_RULES: ValidationRule[] = [
  {
    rule: 'self.metadata.name.size() <= 52',
    message: 'metadata.name must be at most 52 characters (it names the StatefulSet, whose pods carry a label of the name plus 11 characters)',
  },
  {
    rule: "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
    message: "metadata.name must start with a letter and contain only lower-case letters, digits and '-' (it names the cluster's Services)",
  },
];

const PRINTER_COLUMNS = [
  { name: 'Ready', type: 'string', jsonPath: '.status.ready', description: 'Healthy members / desired members' },
  { name: 'Version', type: 'string', jsonPath: '.status.currentVersion', description: 'etcd-ts version the members run' },
  { name: 'Leader', type: 'string', jsonPath: '.status.leader', description: 'The leader member' },
  { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'What the cluster is doing' },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
];

/** The JSON keywords a CRD schema may use (apiextensions.k8s.io/v1 JSONSchemaProps, minus the forbidden ones). */
const ALLOWED_KEYWORDS = new Set([
  'type', 'format', 'title', 'description', 'default', 'example', 'nullable', 'enum', 'properties', 'additionalProperties',
  'items', 'required', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf', 'minLength', 'maxLength',
  'pattern', 'minItems', 'maxItems', 'minProperties', 'maxProperties', 'anyOf', 'allOf', 'oneOf', 'not',
  'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-int-or-string', 'x-kubernetes-embedded-resource',
  'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-map-type', 'x-kubernetes-validations',
]);
/** Keywords the structural-schema rules forbid inside anyOf/allOf/oneOf/not. */
const FORBIDDEN_IN_JUNCTORS = ['description', 'type', 'default', 'additionalProperties', 'nullable'];

const isNode = (v: unknown): v is SchemaNode => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Turns zod's OpenAPI 3.0 output into a structural schema, with keys in a stable, sorted order. */
export function normalizeSchema(node: SchemaNode): SchemaNode {
  const out: SchemaNode = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$schema') continue;
    if (key === 'properties' && isNode(value)) {
      const props: SchemaNode = {};
      for (const name of Object.keys(value).sort()) props[name] = normalizeSchema(value[name] as SchemaNode);
      if (Object.keys(props).length > 0) out.properties = props;
    } else if (key === 'additionalProperties') {
      // zod writes `false` for strict objects (the API server prunes unknown fields anyway) and `{}` for
      // loose ones: an embedded object whose unknown fields must be kept.
      if (value === false) continue;
      if (isNode(value) && Object.keys(value).length === 0) out['x-kubernetes-preserve-unknown-fields'] = true;
      else if (isNode(value)) out.additionalProperties = normalizeSchema(value);
    } else if (key === 'items' && isNode(value)) {
      out.items = normalizeSchema(value);
    } else if ((key === 'anyOf' || key === 'allOf' || key === 'oneOf') && Array.isArray(value)) {
      out[key] = value.map((v) => normalizeSchema(v as SchemaNode));
    } else if (key === 'required' && Array.isArray(value)) {
      if (value.length > 0) out.required = [...value];
    } else if ((key === 'minimum' || key === 'maximum') && Math.abs(value as number) === Number.MAX_SAFE_INTEGER) {
      // zod bounds every integer to the safe range; Kubernetes has its own int64 range.
      continue;
    } else {
      out[key] = value;
    }
  }
  if (out['x-kubernetes-int-or-string'] === true && Array.isArray(out.anyOf)) {
    // The one anyOf shape a structural schema allows for int-or-string: the string's pattern moves out.
    const branches = out.anyOf as SchemaNode[];
    const pattern = branches.find((b) => b.type === 'string')?.pattern;
    out.anyOf = [{ type: 'integer' }, { type: 'string' }];
    if (typeof pattern === 'string') out.pattern = pattern;
  }
  return sortKeys(out);
}

function sortKeys(node: SchemaNode): SchemaNode {
  const sorted: SchemaNode = {};
  for (const key of Object.keys(node).sort()) sorted[key] = node[key];
  return sorted;
}

function toOpenApi(schema: z.ZodType): SchemaNode {
  // io: 'input' — a field with a default is optional for the person writing the object.
  const json = z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'throw' }) as SchemaNode;
  return normalizeSchema(json);
}

/** The openAPIV3Schema of EtcdCluster. */
export function etcdClusterOpenApiSchema(): SchemaNode {
  const spec = toOpenApi(etcdClusterSpecSchema);
  const status = toOpenApi(etcdClusterStatusSchema);
  return {
    description: 'An etcd-ts cluster: a set of etcd-v3-compatible members that the etcd-ts operator runs as a StatefulSet.',
    properties: {
      apiVersion: { description: 'APIVersion of this object.', type: 'string' },
      kind: { description: 'Kind of this object.', type: 'string' },
      metadata: { type: 'object' },
      spec: sortKeys({ ...spec, default: {} }),
      status,
    },
    type: 'object',
    'x-kubernetes-validations': ROOT_RULES,
  };
}

/** The CustomResourceDefinition object. */
export function etcdClusterCrd(): SchemaNode {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: CRD_NAME,
      labels: { 'app.kubernetes.io/name': 'etcd-ts', 'app.kubernetes.io/component': 'crd' },
    },
    spec: {
      group: GROUP,
      names: { kind: KIND, listKind: LIST_KIND, plural: PLURAL, singular: SINGULAR },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          additionalPrinterColumns: PRINTER_COLUMNS,
          subresources: {
            status: {},
            scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
          },
          schema: { openAPIV3Schema: etcdClusterOpenApiSchema() },
        },
      ],
    },
  };
}

/** The YAML file `make crds` writes. */
export function renderCrdYaml(): string {
  const problems = checkStructural(etcdClusterOpenApiSchema());
  if (problems.length > 0) throw new Error(`the ${KIND} schema is not structural:\n${problems.join('\n')}`);
  const header = [
    `# ${KIND} (${API_VERSION}): generated from operator/api by \`make crds\`; do not edit by hand.`,
    '# Install with: kubectl apply --server-side -f ' + CRD_FILE,
  ];
  return `${header.join('\n')}\n${stringify(etcdClusterCrd(), { lineWidth: 0, aliasDuplicateObjects: false })}`;
}

/**
 * Problems that make a CRD schema non-structural, or that the API server refuses, one per line with its path:
 * a node without a type (unless int-or-string or preserve-unknown-fields), properties together with
 * additionalProperties, types or defaults inside anyOf/allOf/oneOf/not (beyond the int-or-string shape),
 * keywords a CRD may not use, preserve-unknown-fields at the root, list-map keys that are not required,
 * and defaults that the schema itself would refuse.
 */
export function checkStructural(root: SchemaNode): string[] {
  const problems: string[] = [];
  if (root.type !== 'object') problems.push('.: the root must be of type object');
  if (root['x-kubernetes-preserve-unknown-fields'] === true) problems.push('.: x-kubernetes-preserve-unknown-fields at the root turns off pruning for the whole object');
  const metadata = (root.properties as SchemaNode | undefined)?.metadata;
  if (isNode(metadata) && Object.keys(metadata).some((k) => k !== 'type')) problems.push('.metadata: only {type: object} is allowed');
  walk(root, '', false, problems);
  return problems;
}

function walk(node: SchemaNode, path: string, inJunctor: boolean, problems: string[]): void {
  const at = path === '' ? '.' : path;
  for (const key of Object.keys(node)) {
    if (!ALLOWED_KEYWORDS.has(key)) problems.push(`${at}: keyword ${key} is not allowed in a CRD schema`);
  }
  const intOrString = node['x-kubernetes-int-or-string'] === true;
  const preserve = node['x-kubernetes-preserve-unknown-fields'] === true;
  if (inJunctor) {
    for (const key of FORBIDDEN_IN_JUNCTORS) if (key in node) problems.push(`${at}: ${key} is not allowed inside anyOf/allOf/oneOf/not`);
  } else if (typeof node.type !== 'string' && !intOrString && !preserve) {
    problems.push(`${at}: no type`);
  }
  if (node['x-kubernetes-preserve-unknown-fields'] === false) problems.push(`${at}: x-kubernetes-preserve-unknown-fields: false is forbidden`);
  if (node.properties !== undefined && node.additionalProperties !== undefined) {
    problems.push(`${at}: properties and additionalProperties are mutually exclusive`);
  }
  if (typeof node.additionalProperties === 'boolean') problems.push(`${at}: additionalProperties must be a schema`);
  if (node.uniqueItems === true) problems.push(`${at}: uniqueItems cannot be true`);
  if (node.type === 'array' && !isNode(node.items)) problems.push(`${at}: an array needs items`);
  if (intOrString) {
    const anyOf = node.anyOf;
    const okShape =
      anyOf === undefined ||
      (Array.isArray(anyOf) && anyOf.length === 2 && (anyOf[0] as SchemaNode).type === 'integer' && (anyOf[1] as SchemaNode).type === 'string');
    if (!okShape || node.type !== undefined) problems.push(`${at}: int-or-string must be untyped with anyOf [{type: integer}, {type: string}]`);
  } else {
    for (const junctor of ['anyOf', 'allOf', 'oneOf']) {
      const list = node[junctor];
      if (Array.isArray(list)) list.forEach((v, i) => walk(v as SchemaNode, `${path}.${junctor}[${i}]`, true, problems));
    }
    if (isNode(node.not)) walk(node.not, `${path}.not`, true, problems);
  }
  if (node['x-kubernetes-list-type'] === 'map') {
    const keys = node['x-kubernetes-list-map-keys'];
    const item = node.items as SchemaNode | undefined;
    const required = new Set((item?.required as string[] | undefined) ?? []);
    if (!Array.isArray(keys) || keys.length === 0) problems.push(`${at}: a map list needs x-kubernetes-list-map-keys`);
    else for (const k of keys as string[]) if (!required.has(k)) problems.push(`${at}: map key ${k} must be required in the items`);
  }
  if (node.default !== undefined) {
    // The API server checks a default after filling in the defaults inside it.
    for (const p of validateValue(node, applyDefaults(node, node.default), `${at} default`)) problems.push(p);
  }
  const props = node.properties;
  if (isNode(props)) for (const [name, child] of Object.entries(props)) walk(child as SchemaNode, `${path}.${name}`, inJunctor, problems);
  if (isNode(node.additionalProperties)) walk(node.additionalProperties, `${path}.*`, inJunctor, problems);
  if (isNode(node.items)) walk(node.items, `${path}[*]`, inJunctor, problems);
}

/**
 * Checks a value against a structural schema as the API server's OpenAPI validation does, for the keywords
 * this CRD uses (types, enums, bounds, lengths, patterns, required fields). CEL rules are not evaluated here.
 * Unknown fields are reported (the API server would prune them, or refuse them with strict field validation).
 */
export function validateValue(node: SchemaNode, value: unknown, path = '.'): string[] {
  const problems: string[] = [];
  const intOrString = node['x-kubernetes-int-or-string'] === true;
  const type = node.type as string | undefined;
  if (intOrString) {
    if (!(typeof value === 'string' || (typeof value === 'number' && Number.isInteger(value)))) return [`${path}: must be an integer or a string`];
  } else if (type === 'object') {
    if (!isNode(value)) return [`${path}: must be an object`];
  } else if (type === 'array') {
    if (!Array.isArray(value)) return [`${path}: must be an array`];
  } else if (type === 'string') {
    if (typeof value !== 'string') return [`${path}: must be a string`];
  } else if (type === 'integer') {
    if (typeof value !== 'number' || !Number.isInteger(value)) return [`${path}: must be an integer`];
  } else if (type === 'number') {
    if (typeof value !== 'number') return [`${path}: must be a number`];
  } else if (type === 'boolean') {
    if (typeof value !== 'boolean') return [`${path}: must be a boolean`];
  }
  if (Array.isArray(node.enum) && !node.enum.includes(value)) problems.push(`${path}: must be one of ${node.enum.join(', ')}`);
  if (typeof value === 'number') {
    if (typeof node.minimum === 'number' && (node.exclusiveMinimum === true ? value <= node.minimum : value < node.minimum)) {
      problems.push(`${path}: must be ${node.exclusiveMinimum === true ? '>' : '>='} ${node.minimum}`);
    }
    if (typeof node.maximum === 'number' && (node.exclusiveMaximum === true ? value >= node.maximum : value > node.maximum)) {
      problems.push(`${path}: must be ${node.exclusiveMaximum === true ? '<' : '<='} ${node.maximum}`);
    }
  }
  if (typeof value === 'string') {
    // Kubernetes counts characters (runes), not UTF-16 code units.
    const length = [...value].length;
    if (typeof node.minLength === 'number' && length < node.minLength) problems.push(`${path}: must have at least ${node.minLength} characters`);
    if (typeof node.maxLength === 'number' && length > node.maxLength) problems.push(`${path}: must have at most ${node.maxLength} characters`);
    if (typeof node.pattern === 'string' && !new RegExp(node.pattern, 'u').test(value)) problems.push(`${path}: must match ${node.pattern}`);
  }
  if (Array.isArray(value)) {
    if (typeof node.minItems === 'number' && value.length < node.minItems) problems.push(`${path}: must have at least ${node.minItems} items`);
    if (typeof node.maxItems === 'number' && value.length > node.maxItems) problems.push(`${path}: must have at most ${node.maxItems} items`);
    if (isNode(node.items)) value.forEach((v, i) => problems.push(...validateValue(node.items as SchemaNode, v, `${path}[${i}]`)));
  }
  if (isNode(value) && type === 'object') {
    const props = isNode(node.properties) ? node.properties : {};
    for (const name of (node.required as string[] | undefined) ?? []) {
      if (!(name in value)) problems.push(`${path === '.' ? '' : path}.${name}: required`);
    }
    for (const [name, v] of Object.entries(value)) {
      const child = props[name];
      const sub = `${path === '.' ? '' : path}.${name}`;
      if (isNode(child)) problems.push(...validateValue(child, v, sub));
      else if (isNode(node.additionalProperties)) problems.push(...validateValue(node.additionalProperties, v, sub));
      else if (node['x-kubernetes-preserve-unknown-fields'] !== true) problems.push(`${sub}: unknown field`);
    }
  }
  return problems;
}

/**
 * Fills in the schema's defaults as the API server does: a missing field with a default gets it, then the
 * defaulting goes on inside it (so `default: {}` on an object brings its fields' defaults).
 */
export function applyDefaults(node: SchemaNode, value: unknown): unknown {
  if (Array.isArray(value) && isNode(node.items)) return value.map((v) => applyDefaults(node.items as SchemaNode, v));
  if (!isNode(value)) return value;
  const out: SchemaNode = { ...value };
  if (isNode(node.properties)) {
    for (const [name, child] of Object.entries(node.properties)) {
      const childNode = child as SchemaNode;
      if (!(name in out) && childNode.default !== undefined) out[name] = structuredClone(childNode.default);
      if (name in out) out[name] = applyDefaults(childNode, out[name]);
    }
  } else if (isNode(node.additionalProperties)) {
    for (const name of Object.keys(out)) out[name] = applyDefaults(node.additionalProperties, out[name]);
  }
  return out;
}
