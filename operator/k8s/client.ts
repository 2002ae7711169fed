// A small Kubernetes REST client: JSON over HTTPS to kube-apiserver, for the kinds the operator touches.
// Configured from the pod's service account (in-cluster) or from a kubeconfig file (client certificate or
// bearer token, with the cluster's CA). Plain REST rather than @kubernetes/client-node, which is ESM-only
// while the operator is CommonJS (and whose unit-tested parts must load under jest).
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import * as path from 'path';
import { parse as parseYaml } from 'yaml';

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeConnection {
  server: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** Read on every request: projected service-account tokens rotate. */
  token?: () => string;
  insecureSkipTLSVerify?: boolean;
  /** The namespace of the kubeconfig's context or the service account, if any. */
  namespace?: string;
}

/** The in-cluster configuration, or undefined when not running in a pod. */
export function inClusterConnection(dir = SA_DIR): KubeConnection | undefined {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host || !fs.existsSync(path.join(dir, 'token'))) return undefined;
  const nsFile = path.join(dir, 'namespace');
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: fs.readFileSync(path.join(dir, 'ca.crt')),
    token: () => fs.readFileSync(path.join(dir, 'token'), 'utf8').trim(),
    namespace: fs.existsSync(nsFile) ? fs.readFileSync(nsFile, 'utf8').trim() : undefined,
  };
}

interface KubeconfigFile {
  clusters?: { name: string; cluster: Record<string, unknown> }[];
  users?: { name: string; user: Record<string, unknown> }[];
  contexts?: { name: string; context: { cluster: string; user: string; namespace?: string } }[];
  'current-context'?: string;
}

/** A kubeconfig's current context. Relative file paths are relative to the kubeconfig's directory. */
export function kubeconfigConnection(file: string, context?: string): KubeConnection {
  const config = parseYaml(fs.readFileSync(file, 'utf8')) as KubeconfigFile;
  const ctxName = context ?? config['current-context'];
  const ctx = config.contexts?.find((c) => c.name === ctxName)?.context;
  if (!ctx) throw new Error(`kubeconfig ${file}: no context ${JSON.stringify(ctxName)}`);
  const cluster = config.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  if (!cluster) throw new Error(`kubeconfig ${file}: no cluster ${JSON.stringify(ctx.cluster)}`);
  const user = config.users?.find((u) => u.name === ctx.user)?.user ?? {};
  const dir = path.dirname(path.resolve(file));
  const material = (obj: Record<string, unknown>, fileKey: string, dataKey: string): Buffer | undefined => {
    if (typeof obj[dataKey] === 'string') return Buffer.from(obj[dataKey] as string, 'base64');
    if (typeof obj[fileKey] === 'string') return fs.readFileSync(path.resolve(dir, obj[fileKey] as string));
    return undefined;
  };
  const token = typeof user.token === 'string' ? (user.token as string) : undefined;
  const tokenFile = typeof user.tokenFile === 'string' ? path.resolve(dir, user.tokenFile as string) : undefined;
  return {
    server: String(cluster.server).replace(/\/+$/, ''),
    ca: material(cluster, 'certificate-authority', 'certificate-authority-data'),
    cert: material(user, 'client-certificate', 'client-certificate-data'),
    key: material(user, 'client-key', 'client-key-data'),
    token: token ? () => token : tokenFile ? () => fs.readFileSync(tokenFile, 'utf8').trim() : undefined,
    insecureSkipTLSVerify: cluster['insecure-skip-tls-verify'] === true,
    namespace: ctx.namespace,
  };
}

export class KubeError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'KubeError';
  }
}

export const isNotFound = (err: unknown): boolean => err instanceof KubeError && err.status === 404;
export const isConflict = (err: unknown): boolean => err instanceof KubeError && err.status === 409;
export const isAlreadyExists = (err: unknown): boolean => err instanceof KubeError && err.status === 409 && err.reason === 'AlreadyExists';

export type PatchType = 'merge' | 'apply' | 'json';
const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  apply: 'application/apply-patch+yaml',
  json: 'application/json-patch+json',
};

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface KubeList<T> {
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/** A resource type's place in the API. */
export interface ResourceType {
  group: string; // '' for core
  version: string;
  plural: string;
  namespaced: boolean;
}

export const RESOURCES = {
  pods: { group: '', version: 'v1', plural: 'pods', namespaced: true },
  services: { group: '', version: 'v1', plural: 'services', namespaced: true },
  configmaps: { group: '', version: 'v1', plural: 'configmaps', namespaced: true },
  persistentvolumeclaims: { group: '', version: 'v1', plural: 'persistentvolumeclaims', namespaced: true },
  events: { group: '', version: 'v1', plural: 'events', namespaced: true },
  statefulsets: { group: 'apps', version: 'v1', plural: 'statefulsets', namespaced: true },
  poddisruptionbudgets: { group: 'policy', version: 'v1', plural: 'poddisruptionbudgets', namespaced: true },
  leases: { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespaced: true },
  etcdclusters: { group: 'etcd-ts.io', version: 'v1alpha1', plural: 'etcdclusters', namespaced: true },
} satisfies Record<string, ResourceType>;

/** The URL path of a collection (namespace undefined: all namespaces) or of one object. */
export function resourcePath(r: ResourceType, namespace?: string, name?: string, subresource?: string): string {
  let p = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  if (r.namespaced && namespace !== undefined) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${r.plural}`;
  if (name !== undefined) p += `/${encodeURIComponent(name)}`;
  if (subresource !== undefined) p += `/${subresource}`;
  return p;
}

export const FIELD_MANAGER = 'etcd-ts-operator';

export class KubeClient {
  private readonly agent: https.Agent | http.Agent;
  private readonly url: URL;

  constructor(
    readonly connection: KubeConnection,
    private readonly timeoutMs = 30_000,
  ) {
    this.url = new URL(connection.server);
    this.agent =
      this.url.protocol === 'https:'
        ? new https.Agent({
            keepAlive: true,
            ca: connection.ca,
            cert: connection.cert,
            key: connection.key,
            rejectUnauthorized: !connection.insecureSkipTLSVerify,
          })
        : new http.Agent({ keepAlive: true });
  }

  close(): void {
    this.agent.destroy();
  }

  private options(method: string, pathAndQuery: string, headers: Record<string, string>): https.RequestOptions {
    const h: Record<string, string> = { Accept: 'application/json', ...headers };
    const token = this.connection.token?.();
    if (token) h.Authorization = `Bearer ${token}`;
    return {
      method,
      hostname: this.url.hostname.replace(/^\[|\]$/g, ''),
      port: this.url.port || (this.url.protocol === 'https:' ? 443 : 80),
      path: pathAndQuery,
      headers: h,
      agent: this.agent,
    };
  }

  /** One request; resolves the parsed JSON body, rejects with KubeError for a non-2xx status. */
  request<T>(method: string, pathAndQuery: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const headers: Record<string, string> = payload ? { 'Content-Type': contentType, 'Content-Length': String(payload.length) } : {};
    const mod = this.url.protocol === 'https:' ? https : http;
    return new Promise<T>((resolve, reject) => {
      const req = mod.request(this.options(method, pathAndQuery, headers), (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : {};
          } catch {
            parsed = { message: text };
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(parsed as T);
          else {
            const s = parsed as { reason?: string; message?: string };
            reject(new KubeError(status, s.reason ?? '', `${method} ${pathAndQuery}: ${status} ${s.message ?? text}`));
          }
        });
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`${method} ${pathAndQuery}: timed out after ${this.timeoutMs} ms`)));
      req.on('error', reject);
      if (payload) req.write(payload);
      req.end();
    });
  }

  get<T extends KubeObject>(r: ResourceType, namespace: string, name: string): Promise<T> {
    return this.request<T>('GET', resourcePath(r, namespace, name));
  }

  /** The object, or undefined when it does not exist. */
  async find<T extends KubeObject>(r: ResourceType, namespace: string, name: string): Promise<T | undefined> {
    try {
      return await this.get<T>(r, namespace, name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  list<T extends KubeObject>(r: ResourceType, namespace?: string, labelSelector?: string): Promise<KubeList<T>> {
    const q = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : '';
    return this.request<KubeList<T>>('GET', resourcePath(r, namespace) + q);
  }

  create<T extends KubeObject>(r: ResourceType, namespace: string, obj: T): Promise<T> {
    return this.request<T>('POST', `${resourcePath(r, namespace)}?fieldManager=${FIELD_MANAGER}`, obj);
  }

  replace<T extends KubeObject>(r: ResourceType, namespace: string, name: string, obj: T, subresource?: string): Promise<T> {
    return this.request<T>('PUT', `${resourcePath(r, namespace, name, subresource)}?fieldManager=${FIELD_MANAGER}`, obj);
  }

  patch<T extends KubeObject>(r: ResourceType, namespace: string, name: string, patch: unknown, type: PatchType = 'merge', subresource?: string): Promise<T> {
    const force = type === 'apply' ? '&force=true' : '';
    return this.request<T>('PATCH', `${resourcePath(r, namespace, name, subresource)}?fieldManager=${FIELD_MANAGER}${force}`, patch, PATCH_CONTENT_TYPES[type]);
  }

  /** Server-side apply of a whole object (the operator owns every field it sets). */
  apply<T extends KubeObject>(r: ResourceType, namespace: string, obj: T): Promise<T> {
    return this.patch<T>(r, namespace, obj.metadata!.name!, obj, 'apply');
  }

  async delete(r: ResourceType, namespace: string, name: string, options: { uid?: string; propagationPolicy?: string } = {}): Promise<void> {
    const body: Record<string, unknown> = { kind: 'DeleteOptions', apiVersion: 'v1' };
    if (options.uid) body.preconditions = { uid: options.uid };
    if (options.propagationPolicy) body.propagationPolicy = options.propagationPolicy;
    try {
      await this.request('DELETE', resourcePath(r, namespace, name), body);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * Watches a collection from resourceVersion until the server ends the stream, the signal aborts, or an ERROR
   * event arrives (e.g. 410 Gone: relist). Resolves when the stream ends.
   */
  watch<T extends KubeObject>(
    r: ResourceType,
    namespace: string | undefined,
    resourceVersion: string | undefined,
    onEvent: (e: WatchEvent<T>) => void,
    signal: AbortSignal,
    labelSelector?: string,
  ): Promise<void> {
    const q = new URLSearchParams({ watch: '1', allowWatchBookmarks: 'true', timeoutSeconds: '300' });
    if (resourceVersion) q.set('resourceVersion', resourceVersion);
    if (labelSelector) q.set('labelSelector', labelSelector);
    const mod = this.url.protocol === 'https:' ? https : http;
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) return resolve();
      const req = mod.request(this.options('GET', `${resourcePath(r, namespace)}?${q}`, {}), (res) => {
        if ((res.statusCode ?? 0) >= 300) {
          res.resume();
          return reject(new KubeError(res.statusCode ?? 0, '', `watch ${r.plural}: ${res.statusCode}`));
        }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            try {
              onEvent(JSON.parse(line) as WatchEvent<T>);
            } catch {
              // a malformed line: ignore it, the periodic resync covers anything missed
            }
          }
        });
        res.on('end', () => resolve());
        res.on('error', () => resolve());
      });
      const abort = () => req.destroy();
      signal.addEventListener('abort', abort, { once: true });
      req.on('error', (err) => (signal.aborted ? resolve() : reject(err)));
      req.on('close', () => signal.removeEventListener('abort', abort));
      req.end();
    });
  }
}
