/**
 * A small Kubernetes REST client for the e2e tests and the test kubelet: JSON requests to
 * kube-apiserver over HTTPS with the client certificate of a kubeconfig, and list+watch caches
 * ("informers") that follow a collection through the watch API, relisting after 410 Gone.
 *
 * Plain REST because @kubernetes/client-node 1.x is ESM-only and the project is CommonJS.
 */
import * as fs from 'fs';
import * as https from 'https';
import * as path from 'path';
import { parse as parseYaml } from 'yaml';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
  generateName?: string;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

/** An answer that is not 2xx. */
export class ApiError extends Error {
  constructor(
    readonly method: string,
    readonly urlPath: string,
    readonly status: number,
    readonly body: string,
  ) {
    let message = body;
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      // not a Status object
    }
    super(`${method} ${urlPath}: ${status} ${message}`);
  }
}

export interface Credentials {
  /** https://host:port */
  server: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** Server, CA and client certificate of a kubeconfig's current context (file paths or inline data). */
export function credentialsFromKubeconfig(file: string): Credentials {
  interface Named<T> {
    name: string;
    [k: string]: T | string;
  }
  const cfg = parseYaml(fs.readFileSync(file, 'utf8')) as {
    'current-context'?: string;
    contexts: Named<{ cluster: string; user: string }>[];
    clusters: Named<{ server: string; 'certificate-authority'?: string; 'certificate-authority-data'?: string }>[];
    users: Named<{ 'client-certificate'?: string; 'client-key'?: string; 'client-certificate-data'?: string; 'client-key-data'?: string }>[];
  };
  const ctx = (cfg.contexts.find((c) => c.name === cfg['current-context']) ?? cfg.contexts[0]).context as { cluster: string; user: string };
  const cluster = cfg.clusters.find((c) => c.name === ctx.cluster)?.cluster as { server: string; 'certificate-authority'?: string; 'certificate-authority-data'?: string };
  const user = cfg.users.find((u) => u.name === ctx.user)?.user as Record<string, string | undefined>;
  if (!cluster || !user) throw new Error(`${file}: the current context names no cluster or user`);
  const base = path.dirname(file);
  const read = (fileKey: string, dataKey: string, from: Record<string, string | undefined>): Buffer => {
    if (from[dataKey]) return Buffer.from(from[dataKey] as string, 'base64');
    const p = from[fileKey];
    if (!p) throw new Error(`${file}: no ${fileKey} or ${dataKey} (the test kubelet authenticates with a client certificate)`);
    return fs.readFileSync(path.resolve(base, p));
  };
  return {
    server: cluster.server,
    ca: read('certificate-authority', 'certificate-authority-data', cluster as unknown as Record<string, string | undefined>),
    cert: read('client-certificate', 'client-certificate-data', user),
    key: read('client-key', 'client-key-data', user),
  };
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export class KubeApi {
  private readonly agent: https.Agent;
  private readonly url: URL;

  constructor(readonly creds: Credentials) {
    this.url = new URL(creds.server);
    this.agent = new https.Agent({ keepAlive: true, maxSockets: 8, ca: creds.ca, cert: creds.cert, key: creds.key });
  }

  static fromKubeconfig(file: string): KubeApi {
    return new KubeApi(credentialsFromKubeconfig(file));
  }

  close(): void {
    this.agent.destroy();
  }

  /** One request; resolves with the parsed JSON body (undefined when empty), rejects with ApiError unless 2xx. */
  request<T = unknown>(method: string, urlPath: string, body?: unknown, contentType = 'application/json', timeoutMs = 15_000): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = https.request(
        {
          host: this.url.hostname,
          port: this.url.port,
          path: urlPath,
          method,
          agent: this.agent,
          timeout: timeoutMs,
          headers: {
            Accept: 'application/json',
            ...(payload ? { 'Content-Type': contentType, 'Content-Length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (d: Buffer) => chunks.push(d));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status < 200 || status > 299) return reject(new ApiError(method, urlPath, status, text));
            try {
              resolve((text ? JSON.parse(text) : undefined) as T);
            } catch (e) {
              reject(new Error(`${method} ${urlPath}: bad JSON: ${(e as Error).message}`));
            }
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath} timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  get<T = KubeObject>(urlPath: string): Promise<T> {
    return this.request<T>('GET', urlPath);
  }
  /** GET that resolves undefined on 404. */
  async getOrNull<T = KubeObject>(urlPath: string): Promise<T | undefined> {
    try {
      return await this.get<T>(urlPath);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return undefined;
      throw e;
    }
  }
  create<T = KubeObject>(urlPath: string, obj: unknown): Promise<T> {
    return this.request<T>('POST', urlPath, obj);
  }
  /** JSON merge patch (RFC 7386). */
  mergePatch<T = KubeObject>(urlPath: string, patch: unknown): Promise<T> {
    return this.request<T>('PATCH', urlPath, patch, 'application/merge-patch+json');
  }
  delete<T = unknown>(urlPath: string, options?: unknown): Promise<T> {
    return this.request<T>('DELETE', urlPath, options);
  }

  /**
   * A watch stream from `resourceVersion`: calls onEvent per event; resolves when the server ends
   * the stream (its timeout) or `signal` aborts it, rejects on a non-200 answer or a broken stream.
   */
  watch<T>(urlPath: string, resourceVersion: string, onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal): Promise<void> {
    const sep = urlPath.includes('?') ? '&' : '?';
    const full = `${urlPath}${sep}watch=true&allowWatchBookmarks=true&timeoutSeconds=240&resourceVersion=${encodeURIComponent(resourceVersion)}`;
    return new Promise<void>((resolve, reject) => {
      const req = https.request(
        {
          host: this.url.hostname,
          port: this.url.port,
          path: full,
          method: 'GET',
          agent: false,
          ca: this.creds.ca,
          cert: this.creds.cert,
          key: this.creds.key,
          headers: { Accept: 'application/json' },
          signal,
        },
        (res) => {
          if (res.statusCode !== 200) {
            const chunks: Buffer[] = [];
            res.on('data', (d: Buffer) => chunks.push(d));
            res.on('end', () => reject(new ApiError('GET', full, res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
            res.on('error', reject);
            return;
          }
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            buf += d;
            let i;
            while ((i = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, i).trim();
              buf = buf.slice(i + 1);
              if (!line) continue;
              try {
                onEvent(JSON.parse(line) as WatchEvent<T>);
              } catch (e) {
                req.destroy(e as Error);
                return;
              }
            }
          });
          res.on('end', () => resolve());
          res.on('error', (e) => (signal.aborted ? resolve() : reject(e)));
        },
      );
      req.on('error', (e) => (signal.aborted ? resolve() : reject(e)));
      req.end();
    });
  }
}

export const objectKey = (o: KubeObject): string => (o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name);

/**
 * A list+watch cache of one collection (e.g. /api/v1/pods?fieldSelector=...): `items` is the current
 * state; onChange runs after every change (type, the object and, for updates, the previous one).
 * A watch that ends is resumed from the last resourceVersion seen; 410 Gone relists.
 */
export class Informer<T extends KubeObject> {
  readonly items = new Map<string, T>();
  private resourceVersion = '';
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private synced!: Promise<void>;
  /** The last error of the list/watch loop (for diagnostics). */
  lastError: Error | undefined;

  constructor(
    private readonly api: KubeApi,
    private readonly collection: string,
    private readonly onChange: (type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: T, old: T | undefined) => void,
  ) {}

  /** Starts the loop; resolves after the first successful list (bounded). */
  async start(timeoutMs = 30_000): Promise<void> {
    let markSynced!: () => void;
    this.synced = new Promise<void>((r) => (markSynced = r));
    this.loop = this.run(markSynced);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.synced,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`list ${this.collection} failed for ${timeoutMs} ms: ${this.lastError?.message}`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private async relist(): Promise<void> {
    const list = await this.api.get<{ metadata: { resourceVersion: string }; items: T[] }>(this.collection);
    const seen = new Set<string>();
    for (const item of list.items) {
      const key = objectKey(item);
      seen.add(key);
      const old = this.items.get(key);
      this.items.set(key, item);
      if (!old) this.onChange('ADDED', item, undefined);
      else if (old.metadata.resourceVersion !== item.metadata.resourceVersion) this.onChange('MODIFIED', item, old);
    }
    for (const [key, old] of [...this.items]) {
      if (seen.has(key)) continue;
      this.items.delete(key);
      this.onChange('DELETED', old, old);
    }
    this.resourceVersion = list.metadata.resourceVersion;
  }

  private async run(markSynced: () => void): Promise<void> {
    let needList = true;
    while (!this.abort.signal.aborted) {
      try {
        if (needList) {
          await this.relist();
          needList = false;
          markSynced();
        }
        await this.api.watch<T>(
          this.collection,
          this.resourceVersion,
          (e) => {
            if (e.type === 'ERROR') {
              const status = e.object as unknown as { code?: number; message?: string };
              if (status.code === 410) needList = true;
              throw new Error(`watch ${this.collection}: ${status.code} ${status.message}`);
            }
            if (e.object.metadata.resourceVersion) this.resourceVersion = e.object.metadata.resourceVersion;
            if (e.type === 'BOOKMARK') return;
            const key = objectKey(e.object);
            const old = this.items.get(key);
            if (e.type === 'DELETED') this.items.delete(key);
            else this.items.set(key, e.object);
            this.onChange(e.type, e.object, old);
          },
          this.abort.signal,
        );
      } catch (e) {
        if (this.abort.signal.aborted) break;
        this.lastError = e as Error;
        if (e instanceof ApiError && e.status === 410) needList = true;
        await sleep(500);
      }
    }
  }
}
