#!/usr/bin/env node
// etcd-ts-operator: runs EtcdClusters. One active replica at a time (a coordination.k8s.io Lease); it
// watches EtcdClusters and the StatefulSets and Pods it owns, reconciles each cluster through a work queue
// with per-key exponential backoff, serves /metrics and /healthz /readyz, logs JSON, and on SIGTERM
// finishes the step in progress, releases the Lease and exits.
import * as http from 'http';
import * as os from 'os';
import { randomBytes } from 'crypto';
import * as client from 'prom-client';
import { DEFAULT_IMAGE_REPOSITORY, LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGER_NAME } from './api';
import { EtcdClusterReconciler } from './controllers/etcdcluster';
import { LeaderElector } from './controllers/leader';
import { DEFAULT_TIMINGS } from './controllers/plan';
import { WorkQueue } from './controllers/queue';
import { EtcdMemberOps, type EndpointMode } from './etcd';
import { KubeClient, type KubeConnection, type KubeObject, RESOURCES, type ResourceType, inClusterConnection, kubeconfigConnection } from './k8s';
import { createLogger } from '../src/util/logger';

export interface OperatorFlags {
  kubeconfig?: string;
  namespace?: string;
  leaderElect: boolean;
  leaderElectionNamespace?: string;
  leaderElectionName: string;
  metricsBindAddress: string;
  healthProbeBindAddress: string;
  memberEndpoints: EndpointMode;
  /** The repository spec.version selects a tag of when an EtcdCluster names no image. */
  memberImageRepository: string;
  logLevel: string;
  workers: number;
  resyncSeconds: number;
  /** A member's pod younger than this is never judged failed. */
  memberStartGraceSeconds: number;
  /** A member not ready this long is replaced. */
  memberFailureSeconds: number;
}

const USAGE = `Usage: etcd-ts-operator [flags]
  --kubeconfig FILE                     kubeconfig to use (default: in-cluster service account, else $KUBECONFIG)
  --namespace NS                        watch only this namespace (default: all namespaces)
  --leader-elect=true|false             run leader election (default true)
  --leader-election-namespace NS        namespace of the Lease (default: the pod's namespace, or "default")
  --leader-election-name NAME           name of the Lease (default etcd-ts-operator)
  --metrics-bind-address HOST:PORT      Prometheus metrics (default 127.0.0.1:8080; "0" disables)
  --health-probe-bind-address HOST:PORT /healthz and /readyz (default :8081; "0" disables)
  --member-endpoints dns|pod-ip         how to reach members (default dns)
  --member-image-repository REPO        image repository of members without spec.image; the tag is spec.version
                                        (default etcd-ts; the Helm chart passes the operator's own repository)
  --log-level debug|info|warn|error     (default info)
  --workers N                           clusters reconciled in parallel (default 2)
  --resync-seconds N                    reconcile every cluster at least this often (default 60)
  --member-start-grace-seconds N        a member's pod younger than this is never judged failed (default 60)
  --member-failure-seconds N            a member not ready this long is replaced (default 600)
`;

export function parseFlags(argv: string[]): OperatorFlags {
  const f: OperatorFlags = {
    leaderElect: true,
    leaderElectionName: 'etcd-ts-operator',
    metricsBindAddress: '127.0.0.1:8080',
    healthProbeBindAddress: ':8081',
    memberEndpoints: 'dns',
    memberImageRepository: DEFAULT_IMAGE_REPOSITORY,
    logLevel: 'info',
    workers: 2,
    resyncSeconds: 60,
    memberStartGraceSeconds: DEFAULT_TIMINGS.startGraceMs / 1000,
    memberFailureSeconds: DEFAULT_TIMINGS.failedAfterMs / 1000,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') throw new UsageError('');
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const name = m[1];
    const value = (): string => {
      if (m[2] !== undefined) return m[2];
      const next = argv[++i];
      if (next === undefined) throw new UsageError(`flag --${name} needs a value`);
      return next;
    };
    const bool = (): boolean => {
      const v = m[2] ?? 'true';
      if (v !== 'true' && v !== 'false') throw new UsageError(`--${name} must be true or false`);
      return v === 'true';
    };
    const int = (): number => {
      const v = Number(value());
      if (!Number.isInteger(v) || v <= 0) throw new UsageError(`--${name} must be a positive integer`);
      return v;
    };
    switch (name) {
      case 'kubeconfig':
        f.kubeconfig = value();
        break;
      case 'namespace':
        f.namespace = value() || undefined;
        break;
      case 'leader-elect':
        f.leaderElect = bool();
        break;
      case 'leader-election-namespace':
        f.leaderElectionNamespace = value();
        break;
      case 'leader-election-name':
        f.leaderElectionName = value();
        break;
      case 'metrics-bind-address':
        f.metricsBindAddress = value();
        break;
      case 'health-probe-bind-address':
        f.healthProbeBindAddress = value();
        break;
      case 'member-endpoints': {
        const v = value();
        if (v !== 'dns' && v !== 'pod-ip') throw new UsageError('--member-endpoints must be dns or pod-ip');
        f.memberEndpoints = v;
        break;
      }
      case 'member-image-repository': {
        const v = value();
        // a repository, not an image: a tag or digest here would make "<repo>:<version>" meaningless
        if (!/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(v) || /@/.test(v)) {
          throw new UsageError(`--member-image-repository ${JSON.stringify(v)} is not an image repository (want e.g. registry.example.com/etcd-ts, without a tag)`);
        }
        f.memberImageRepository = v;
        break;
      }
      case 'log-level':
        f.logLevel = value();
        if (!['debug', 'info', 'warn', 'error', 'trace', 'fatal'].includes(f.logLevel)) throw new UsageError('--log-level must be debug, info, warn or error');
        break;
      case 'workers':
        f.workers = int();
        break;
      case 'resync-seconds':
        f.resyncSeconds = int();
        break;
      case 'member-start-grace-seconds':
        f.memberStartGraceSeconds = int();
        break;
      case 'member-failure-seconds':
        f.memberFailureSeconds = int();
        break;
      default:
        throw new UsageError(`unknown flag --${name}`);
    }
  }
  return f;
}

export class UsageError extends Error {}

/** "127.0.0.1:8080", ":8081", "[::1]:80" → host and port; "0" → disabled. */
export function parseBindAddress(addr: string): { host?: string; port: number } | undefined {
  if (addr === '0' || addr === '') return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr);
  if (!m) throw new UsageError(`bad bind address ${JSON.stringify(addr)} (want HOST:PORT)`);
  const host = m[1] ?? m[2];
  return { host: host || undefined, port: Number(m[3]) };
}

function connection(f: OperatorFlags): KubeConnection {
  if (f.kubeconfig) return kubeconfigConnection(f.kubeconfig);
  const inCluster = inClusterConnection();
  if (inCluster) return inCluster;
  const env = process.env.KUBECONFIG?.split(':')[0];
  if (env) return kubeconfigConnection(env);
  const home = `${os.homedir()}/.kube/config`;
  return kubeconfigConnection(home);
}

function listen(server: http.Server, bind: { host?: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(bind.port, bind.host, () => resolve());
  });
}

export async function main(argv: string[]): Promise<void> {
  let flags: OperatorFlags;
  let metricsBind: ReturnType<typeof parseBindAddress>;
  let healthBind: ReturnType<typeof parseBindAddress>;
  try {
    flags = parseFlags(argv);
    metricsBind = parseBindAddress(flags.metricsBindAddress);
    healthBind = parseBindAddress(flags.healthProbeBindAddress);
  } catch (err) {
    if (err instanceof UsageError) {
      if (err.message) process.stderr.write(`etcd-ts-operator: ${err.message}\n`);
      process.stderr.write(USAGE);
      process.exit(err.message ? 2 : 0);
    }
    throw err;
  }
  const log = createLogger(flags.logLevel, 'stderr').child({ logger: 'operator' });
  const conn = connection(flags);
  const kube = new KubeClient(conn);
  const identity = `${os.hostname()}_${randomBytes(4).toString('hex')}`;

  // Metrics.
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'etcd_ts_operator_' });
  const reconciles = new client.Counter({ name: 'etcd_ts_operator_reconcile_total', help: 'Reconciles, by result and step.', labelNames: ['result', 'step'], registers: [registry] });
  const reconcileErrors = new client.Counter({ name: 'etcd_ts_operator_reconcile_errors_total', help: 'Reconciles that failed.', labelNames: ['cluster'], registers: [registry] });
  const duration = new client.Histogram({
    name: 'etcd_ts_operator_reconcile_duration_seconds',
    help: 'Time to reconcile one cluster once.',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const members = new client.Gauge({ name: 'etcd_ts_operator_cluster_members', help: 'Members of each cluster, by state.', labelNames: ['cluster', 'state'], registers: [registry] });
  const isLeader = new client.Gauge({ name: 'etcd_ts_operator_is_leader', help: '1 while this replica is the active operator.', registers: [registry] });
  isLeader.set(0);
  const queueDepth = new client.Gauge({ name: 'etcd_ts_operator_workqueue_depth', help: 'Clusters waiting to be reconciled.', registers: [registry] });

  const reconciler = new EtcdClusterReconciler({
    kube,
    etcd: new EtcdMemberOps({ timeoutMs: 5000 }),
    endpointMode: flags.memberEndpoints,
    log,
    timings: { startGraceMs: flags.memberStartGraceSeconds * 1000, failedAfterMs: flags.memberFailureSeconds * 1000 },
    instance: identity,
    imageRepository: flags.memberImageRepository,
    hooks: {
      onMembers: (cluster, m) => {
        members.set({ cluster, state: 'total' }, m.total);
        members.set({ cluster, state: 'healthy' }, m.healthy);
        members.set({ cluster, state: 'learner' }, m.learners);
        members.set({ cluster, state: 'voting' }, m.voting);
      },
    },
  });

  const queue = new WorkQueue({ baseMs: 500, maxMs: 2 * 60_000 });
  const abort = new AbortController();
  let running = false;
  const workers: Promise<void>[] = [];

  async function worker(): Promise<void> {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      queueDepth.set(queue.length);
      const [ns, name] = key.split('/', 2);
      const end = duration.startTimer();
      try {
        const result = await reconciler.reconcile(ns, name);
        reconciles.inc({ result: 'success', step: result.step });
        queue.forget(key);
        if (result.requeueAfterMs !== undefined) queue.addAfter(key, result.requeueAfterMs);
      } catch (err) {
        reconciles.inc({ result: 'error', step: 'error' });
        reconcileErrors.inc({ cluster: key });
        const delay = queue.addRateLimited(key);
        log.warn({ cluster: key, err: (err as Error).message ?? String(err), retryInMs: delay }, 'reconcile failed');
      } finally {
        end();
        queue.done(key);
      }
    }
  }

  const keyOf = (o: KubeObject): string | undefined => {
    const ns = o.metadata?.namespace;
    const name = o.metadata?.name;
    return ns && name ? `${ns}/${name}` : undefined;
  };
  const ownerKeyOf = (o: KubeObject): string | undefined => {
    const ns = o.metadata?.namespace;
    const instance = o.metadata?.labels?.[LABEL_INSTANCE];
    return ns && instance ? `${ns}/${instance}` : undefined;
  };

  /** List, enqueue, then watch from the list's resourceVersion; relist whenever the watch ends. */
  async function informer(r: ResourceType, selector: string | undefined, key: (o: KubeObject) => string | undefined): Promise<void> {
    while (!abort.signal.aborted) {
      try {
        const list = await kube.list(r, flags.namespace, selector);
        for (const o of list.items) {
          const k = key(o);
          if (k) queue.add(k);
        }
        let rv = list.metadata?.resourceVersion;
        let gone = false;
        while (!abort.signal.aborted && !gone) {
          await kube.watch(
            r,
            flags.namespace,
            rv,
            (e) => {
              if (e.type === 'ERROR') {
                gone = true;
                return;
              }
              if (e.object?.metadata?.resourceVersion) rv = e.object.metadata.resourceVersion;
              if (e.type === 'BOOKMARK') return;
              const k = key(e.object);
              if (k) queue.add(k);
            },
            abort.signal,
            selector,
          );
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        log.warn({ resource: r.plural, err: String(err) }, 'watch failed; relisting');
      }
      await new Promise((res) => setTimeout(res, 1000));
    }
  }

  async function resync(): Promise<void> {
    while (!abort.signal.aborted) {
      await new Promise((res) => setTimeout(res, flags.resyncSeconds * 1000).unref());
      if (abort.signal.aborted) return;
      try {
        const list = await kube.list(RESOURCES.etcdclusters, flags.namespace);
        for (const o of list.items) {
          const k = keyOf(o);
          if (k) queue.add(k);
        }
      } catch (err) {
        log.warn({ err: String(err) }, 'resync failed');
      }
    }
  }

  function startControllers(): void {
    if (running) return;
    running = true;
    isLeader.set(1);
    log.info({ namespace: flags.namespace ?? '(all)', memberEndpoints: flags.memberEndpoints, identity }, 'starting controllers');
    const managed = `${LABEL_MANAGED_BY}=${MANAGER_NAME}`;
    void informer(RESOURCES.etcdclusters, undefined, keyOf);
    void informer(RESOURCES.statefulsets, managed, ownerKeyOf);
    void informer(RESOURCES.pods, managed, ownerKeyOf);
    void resync();
    for (let i = 0; i < flags.workers; i++) workers.push(worker());
  }

  // Health probes: alive while the process runs; ready once started (leading or standing by).
  let ready = false;
  const servers: http.Server[] = [];
  if (healthBind) {
    const health = http.createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (path === '/healthz' || path === '/livez') {
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
      } else if (path === '/readyz') {
        res.writeHead(ready ? 200 : 503, { 'Content-Type': 'text/plain' }).end(ready ? 'ok' : 'not ready');
      } else res.writeHead(404).end();
    });
    await listen(health, healthBind);
    servers.push(health);
  }
  if (metricsBind) {
    const metrics = http.createServer((req, res) => {
      if ((req.url ?? '').split('?')[0] !== '/metrics') return void res.writeHead(404).end();
      queueDepth.set(queue.length);
      registry
        .metrics()
        .then((text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text))
        .catch((err) => res.writeHead(500).end(String(err)));
    });
    await listen(metrics, metricsBind);
    servers.push(metrics);
  }

  const leaseNamespace = flags.leaderElectionNamespace ?? conn.namespace ?? flags.namespace ?? 'default';
  const elector = new LeaderElector(kube, {
    namespace: leaseNamespace,
    name: flags.leaderElectionName,
    identity,
    leaseDurationSeconds: 15,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2000,
    log,
    onStartedLeading: startControllers,
    onStoppedLeading: () => {
      // As controller-runtime: a replica that lost the Lease exits and restarts clean.
      isLeader.set(0);
      log.error({}, 'lost the leader lease; exiting');
      void shutdown('lease-lost', 1);
    },
  });
  let shuttingDown = false;
  const shutdown = async (signal: string, code = 0) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal }, 'shutting down');
    abort.abort();
    queue.shutDown();
    // Let the step in progress finish (bounded), then release the Lease.
    await Promise.race([Promise.all(workers), new Promise((res) => setTimeout(res, 20_000).unref())]);
    await elector.stop();
    for (const s of servers) s.close();
    kube.close();
    log.info({}, 'stopped');
    process.exit(code);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  ready = true;
  if (!flags.leaderElect) {
    startControllers();
    return;
  }
  log.info({ lease: `${leaseNamespace}/${flags.leaderElectionName}`, identity }, 'waiting for the leader lease');
  void elector.run();
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`etcd-ts-operator: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
