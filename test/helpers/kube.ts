/**
 * A real Kubernetes control plane for integration tests: kube-apiserver (storage in the etcd
 * cluster a test hands it), kube-controller-manager and kube-scheduler as local processes, and
 * kubectl with an admin kubeconfig. No kubelet and no container runtime: Pods stay Pending.
 *
 * The binaries are built from Kubernetes' Go modules by test/tools/k8s.sh (`make k8s-tools`) into
 * ${ETCD_TS_CACHE:-~/.cache/etcd-ts}/bin/k8s-v<version>/ ($ETCD_TS_K8S_DIR overrides the folder).
 *
 * startControlPlane() makes a temp dir with everything the components need, made with openssl: a
 * CA; kube-apiserver's serving certificate (127.0.0.1, localhost, the `kubernetes` service names and
 * ClusterIP, and every node address the test kubelet may give its pods in place of that ClusterIP);
 * client certificates for an admin (group system:masters), system:kube-controller-manager and
 * system:kube-scheduler (the users Kubernetes' bootstrap RBAC policy binds); the service-account
 * key pair; one kubeconfig per identity. It starts kube-apiserver on a free 127.0.0.1 port with
 * the low-overhead flags (no priority and fairness, no in-flight limits), waits for /readyz, then
 * the controller-manager and the scheduler (no leader election) and waits for their /healthz.
 * Every wait is bounded. stop() ends the three processes and removes the temp dir (kept, with the
 * logs, when ETCD_TS_KEEP_TMP=1).
 *
 * The processes are watched by a guard process: when this process exits for any reason (including
 * jest killing a worker), the guard SIGKILLs them, so no control plane outlives its test.
 */
import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as https from 'https';
import * as os from 'os';
import * as path from 'path';
import { makeCa, makeCert } from './certs';
import { RunOptions, RunResult, freePort, removeDir, run, tmpDataDir, trackChild } from './procs';

/** The Kubernetes release test/tools/k8s.sh builds. */
export const K8S_VERSION = '1.37.2';

export type KubeBinary = 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kubectl';
const KUBE_BINARIES: readonly KubeBinary[] = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl'];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// Binaries

/** $ETCD_TS_K8S_DIR, else ${ETCD_TS_CACHE:-~/.cache/etcd-ts}/bin/k8s-v<version> (where k8s.sh puts them). */
export function k8sBinDir(): string {
  const explicit = process.env.ETCD_TS_K8S_DIR;
  if (explicit) return explicit;
  const cache = process.env.ETCD_TS_CACHE || path.join(os.homedir(), '.cache', 'etcd-ts');
  return path.join(cache, 'bin', `k8s-v${K8S_VERSION}`);
}

/** Absolute path of a Kubernetes binary; throws with instructions when it is missing. */
export function k8sBinPath(name: KubeBinary): string {
  const p = path.join(k8sBinDir(), name);
  try {
    fs.accessSync(p, fs.constants.X_OK);
  } catch {
    throw new Error(
      `Kubernetes binary '${name}' not found at ${p}. Run \`make k8s-tools\` (test/tools/k8s.sh) to build ` +
        `Kubernetes v${K8S_VERSION} from its Go modules (several minutes the first time), or set ETCD_TS_K8S_DIR.`,
    );
  }
  return p;
}

/** Throws (with instructions) unless all four binaries are there. */
export function requireK8sTools(): void {
  for (const b of KUBE_BINARIES) k8sBinPath(b);
}

// ---------------------------------------------------------------------------
// One component process

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const TAIL_LINES = 150;

/** A long-running Kubernetes component: its whole output goes to a log file, the last lines also stay in memory. */
export class KubeProcess {
  private readonly child: ChildProcess;
  private readonly exited: Promise<ExitStatus>;
  private exitStatus: ExitStatus | undefined;
  private tail: string[] = [];
  private partial = '';
  private logBytes = 0;

  constructor(
    readonly name: KubeBinary,
    readonly args: readonly string[],
    readonly logFile: string,
    cwd: string,
  ) {
    const binary = k8sBinPath(name);
    const fd = fs.openSync(logFile, 'a');
    const header = `----- ${new Date().toISOString()} start ${name} ${args.join(' ')}\n`;
    fs.writeSync(fd, header);
    this.logBytes += Buffer.byteLength(header);
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.KUBECONFIG;
    this.child = spawn(binary, [...args], { stdio: ['ignore', 'pipe', 'pipe'], env, cwd });
    const onData = (d: Buffer) => {
      this.logBytes += d.length;
      try {
        fs.writeSync(fd, d);
      } catch {
        // the log file is gone (dir removed); the tail still has it
      }
      const parts = (this.partial + d.toString('utf8')).split('\n');
      this.partial = parts.pop() ?? '';
      this.tail.push(...parts);
      if (this.tail.length > TAIL_LINES) this.tail.splice(0, this.tail.length - TAIL_LINES);
    };
    this.child.stdout?.on('data', onData);
    this.child.stderr?.on('data', onData);
    // SIGKILLed by procs.ts's reaper should this process die without stopping it
    trackChild(this.child);
    this.exited = new Promise<ExitStatus>((resolve) => {
      let done = false;
      const finish = (s: ExitStatus) => {
        if (done) return;
        done = true;
        this.exitStatus = s;
        try {
          fs.writeSync(fd, `----- ${new Date().toISOString()} exited code=${s.code} signal=${s.signal}\n`);
          fs.closeSync(fd);
        } catch {
          // ignore
        }
        resolve(s);
      };
      this.child.once('error', (e) => {
        this.tail.push(`[spawn error] ${e.message}`);
        finish({ code: null, signal: null });
      });
      this.child.once('close', (code, signal) => finish({ code, signal }));
    });
    // A component a test forgot to stop must not keep jest alive; the guard kills it afterwards.
    this.child.unref();
    for (const s of [this.child.stdout, this.child.stderr]) (s as unknown as { unref?: () => void } | null)?.unref?.();
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }
  get running(): boolean {
    return this.exitStatus === undefined;
  }
  get exitInfo(): ExitStatus | undefined {
    return this.exitStatus;
  }

  /** Bytes written to the log so far: a mark for logSince(). */
  logMark(): number {
    return this.logBytes;
  }

  /** The log from byte `mark` on (the whole log for 0); empty once the temp dir is gone. */
  logSince(mark = 0): string {
    try {
      const buf = fs.readFileSync(this.logFile);
      return buf.subarray(Math.min(mark, buf.length)).toString('utf8');
    } catch {
      return '';
    }
  }

  /** Last ~150 lines of output, newest last. */
  logTail(): string {
    return [...this.tail, ...(this.partial ? [this.partial] : [])].join('\n');
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.running) this.child.kill(signal);
  }

  async waitExit(timeoutMs: number): Promise<ExitStatus> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name} (pid ${this.pid}) did not exit within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  /** SIGTERM, SIGKILL after `graceMs`; resolves once the process has exited. */
  async stop(graceMs = 10_000): Promise<ExitStatus> {
    if (!this.running) return this.exitStatus as ExitStatus;
    this.child.kill('SIGTERM');
    try {
      return await this.waitExit(graceMs);
    } catch {
      this.child.kill('SIGKILL');
      return this.waitExit(10_000);
    }
  }

  /** An error naming the component, how it exited if it did, and its last log lines. */
  failure(what: string): Error {
    const exit = this.exitStatus ? ` (exited code=${this.exitStatus.code} signal=${this.exitStatus.signal})` : '';
    return new Error(`${this.name}${exit}: ${what}; full log ${this.logFile} (kept with ETCD_TS_KEEP_TMP=1), last lines:\n${this.logTail()}`);
  }
}

// ---------------------------------------------------------------------------
// HTTPS to the components

export interface HttpsResult {
  status: number;
  body: string;
}

interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

/** GET https://127.0.0.1:<port><path>; without a CA the server certificate is not checked. */
function httpsGet(port: number, urlPath: string, tls: TlsFiles, timeoutMs = 5_000): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: urlPath,
        method: 'GET',
        agent: false,
        timeout: timeoutMs,
        ca: tls.ca ? fs.readFileSync(tls.ca) : undefined,
        cert: tls.cert ? fs.readFileSync(tls.cert) : undefined,
        key: tls.key ? fs.readFileSync(tls.key) : undefined,
        rejectUnauthorized: tls.ca !== undefined,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET https://127.0.0.1:${port}${urlPath} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------
// Certificates, keys, kubeconfigs

function kubeconfig(file: string, server: string, ca: string, user: string, cert: string, key: string): void {
  // JSON is YAML: kubectl and client-go read it as a kubeconfig.
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'etcd-ts', cluster: { server, 'certificate-authority': ca } }],
    users: [{ name: user, user: { 'client-certificate': cert, 'client-key': key } }],
    contexts: [{ name: user, context: { cluster: 'etcd-ts', user } }],
    'current-context': user,
  };
  fs.writeFileSync(file, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
}

// ---------------------------------------------------------------------------
// The control plane

export interface ControlPlaneOptions {
  /** etcd client URLs (http://127.0.0.1:port), all of them: kube-apiserver's --etcd-servers. */
  etcdServers: string[];
  /** --etcd-compaction-interval (e.g. '20s'); kube-apiserver's default is 5m. */
  compactionInterval?: string;
  /**
   * Resources whose watch cache is turned off (--watch-cache-sizes=<resource>#0), so that their
   * lists, paginated lists and watches go to etcd rather than to kube-apiserver's cache.
   */
  uncachedResources?: string[];
  /** Start kube-controller-manager and kube-scheduler (default true). */
  controllers?: boolean;
  /** Extra flags for each component. */
  apiserverArgs?: string[];
  controllerManagerArgs?: string[];
  schedulerArgs?: string[];
  /** Bound for each readiness wait (default 120 s; kube-apiserver's first start is the slow one). */
  readyTimeoutMs?: number;
}

export interface ControlPlane {
  /** Temp dir holding certificates, kubeconfigs and the components' logs. */
  readonly dir: string;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  readonly apiserverPort: number;
  /** The admin's kubeconfig (group system:masters). */
  readonly kubeconfig: string;
  readonly apiserver: KubeProcess;
  readonly controllerManager: KubeProcess | undefined;
  readonly scheduler: KubeProcess | undefined;
  /** Runs kubectl with the admin kubeconfig (bounded: default 30 s). */
  kubectl(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** kubectl that must exit 0: resolves with stdout, throws with stderr otherwise. */
  kubectlOk(args: string[], opts?: RunOptions): Promise<string>;
  /** GET on kube-apiserver as the admin, straight over HTTPS. */
  get(urlPath: string, timeoutMs?: number): Promise<HttpsResult>;
  /** GET /healthz of the controller-manager or the scheduler (their self-signed serving certificate is not checked). */
  componentHealth(component: 'kube-controller-manager' | 'kube-scheduler'): Promise<HttpsResult>;
  /** Polls GET /readyz until 200 (bounded). */
  waitReady(timeoutMs?: number): Promise<void>;
  /** The last lines of each component's log. */
  logTails(): string;
  /** Stops scheduler, controller-manager and kube-apiserver, then removes dir (unless ETCD_TS_KEEP_TMP=1). */
  stop(): Promise<void>;
}

/** kube-apiserver's flags (exported for the record of what a test ran). */
export function apiserverFlags(o: {
  etcdServers: string[];
  port: number;
  dir: string;
  compactionInterval?: string;
  uncachedResources?: string[];
}): string[] {
  const f = (name: string) => path.join(o.dir, name);
  return [
    `--etcd-servers=${o.etcdServers.join(',')}`,
    ...(o.compactionInterval ? [`--etcd-compaction-interval=${o.compactionInterval}`] : []),
    ...(o.uncachedResources?.length ? [`--watch-cache-sizes=${o.uncachedResources.map((r) => `${r}#0`).join(',')}`] : []),
    `--secure-port=${o.port}`,
    '--bind-address=127.0.0.1',
    // Without a default route kube-apiserver cannot pick an address to advertise by itself.
    '--advertise-address=127.0.0.1',
    // The endpoint reconciler (the `kubernetes` Service's endpoints) refuses a loopback address.
    '--endpoint-reconciler-type=none',
    `--cert-dir=${f('apiserver-certs')}`,
    `--tls-cert-file=${f('apiserver.crt')}`,
    `--tls-private-key-file=${f('apiserver.key')}`,
    `--client-ca-file=${f('ca.crt')}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${f('sa.pub')}`,
    `--service-account-signing-key-file=${f('sa.key')}`,
    '--authorization-mode=RBAC',
    // Low overhead on a small machine.
    '--enable-priority-and-fairness=false',
    '--max-requests-inflight=0',
    '--max-mutating-requests-inflight=0',
    '--profiling=false',
    '--v=2',
    // compact.go logs each compaction at level 4.
    '--vmodule=compact=4',
  ];
}

async function waitFor(what: string, proc: KubeProcess, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!proc.running) throw proc.failure(`exited while waiting for ${what}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw proc.failure(`${what} not reached within ${timeoutMs} ms`);
    await sleep(250);
  }
}

/**
 * Starts kube-apiserver on the given etcd cluster (and, by default, the controller-manager and the
 * scheduler), each waited for. On failure everything started is stopped and the error carries the
 * failing component's log tail.
 */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  requireK8sTools();
  if (opts.etcdServers.length === 0) throw new Error('startControlPlane: no etcd servers');
  const readyTimeoutMs = opts.readyTimeoutMs ?? 120_000;
  const dir = tmpDataDir('etcd-ts-kube-');
  const f = (name: string) => path.join(dir, name);
  const started: KubeProcess[] = [];
  try {
    // --- certificates and keys
    const ca = makeCa(dir, 'ca');
    // Pods of the test kubelet reach the API server at their node's bridge address 10.244.N.1 (N = 0..255,
    // whichever instance the kubelet gets: test/e2e/podnet.ts) in place of the ClusterIP 10.0.0.1, and
    // verify it as in-cluster clients do: every such address is a name of the serving certificate.
    const nodeAddresses = Array.from({ length: 256 }, (_, n) => `IP:10.244.${n}.1`);
    makeCert(ca, 'apiserver', 'kube-apiserver', {
      san: [
        'IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local',
        ...nodeAddresses,
      ].join(','),
    });
    const admin = makeCert(ca, 'admin', 'admin', { subject: '/O=system:masters/CN=admin' });
    const cm = makeCert(ca, 'controller-manager', 'system:kube-controller-manager');
    const sched = makeCert(ca, 'scheduler', 'system:kube-scheduler');
    execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', f('sa.key')], { stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync('openssl', ['pkey', '-in', f('sa.key'), '-pubout', '-out', f('sa.pub')], { stdio: ['ignore', 'ignore', 'pipe'] });

    const apiserverPort = await freePort();
    const server = `https://127.0.0.1:${apiserverPort}`;
    kubeconfig(f('admin.kubeconfig'), server, ca.cert, 'admin', admin.cert, admin.key);
    kubeconfig(f('controller-manager.kubeconfig'), server, ca.cert, 'system:kube-controller-manager', cm.cert, cm.key);
    kubeconfig(f('scheduler.kubeconfig'), server, ca.cert, 'system:kube-scheduler', sched.cert, sched.key);
    const adminTls: TlsFiles = { ca: ca.cert, cert: admin.cert, key: admin.key };

    // --- kube-apiserver
    const apiserverArgs = [
      ...apiserverFlags({ etcdServers: opts.etcdServers, port: apiserverPort, dir, compactionInterval: opts.compactionInterval, uncachedResources: opts.uncachedResources }),
      ...(opts.apiserverArgs ?? []),
    ];
    const apiserver = new KubeProcess('kube-apiserver', apiserverArgs, f('kube-apiserver.log'), dir);
    started.push(apiserver);
    const get = (urlPath: string, timeoutMs = 10_000) => httpsGet(apiserverPort, urlPath, adminTls, timeoutMs);
    const waitReady = (timeoutMs = readyTimeoutMs) => waitFor('GET /readyz = 200', apiserver, timeoutMs, async () => (await get('/readyz', 5_000)).status === 200);
    await waitReady();

    // --- controller-manager and scheduler
    let controllerManager: KubeProcess | undefined;
    let scheduler: KubeProcess | undefined;
    const ports: Partial<Record<KubeBinary, number>> = {};
    if (opts.controllers ?? true) {
      const cmPort = await freePort();
      ports['kube-controller-manager'] = cmPort;
      const cmKubeconfig = f('controller-manager.kubeconfig');
      controllerManager = new KubeProcess(
        'kube-controller-manager',
        [
          `--kubeconfig=${cmKubeconfig}`,
          `--authentication-kubeconfig=${cmKubeconfig}`,
          `--authorization-kubeconfig=${cmKubeconfig}`,
          '--leader-elect=false',
          '--bind-address=127.0.0.1',
          `--secure-port=${cmPort}`,
          `--cert-dir=${f('controller-manager-certs')}`,
          // Each controller gets its own service account and token (as kubeadm sets it up).
          '--use-service-account-credentials=true',
          `--service-account-private-key-file=${f('sa.key')}`,
          `--root-ca-file=${ca.cert}`,
          '--profiling=false',
          '--v=1',
          ...(opts.controllerManagerArgs ?? []),
        ],
        f('kube-controller-manager.log'),
        dir,
      );
      started.push(controllerManager);
      const schedPort = await freePort();
      ports['kube-scheduler'] = schedPort;
      const schedKubeconfig = f('scheduler.kubeconfig');
      scheduler = new KubeProcess(
        'kube-scheduler',
        [
          `--kubeconfig=${schedKubeconfig}`,
          `--authentication-kubeconfig=${schedKubeconfig}`,
          `--authorization-kubeconfig=${schedKubeconfig}`,
          '--leader-elect=false',
          '--bind-address=127.0.0.1',
          `--secure-port=${schedPort}`,
          `--cert-dir=${f('scheduler-certs')}`,
          '--profiling=false',
          '--v=1',
          ...(opts.schedulerArgs ?? []),
        ],
        f('kube-scheduler.log'),
        dir,
      );
      started.push(scheduler);
    }

    const componentHealth = (component: 'kube-controller-manager' | 'kube-scheduler'): Promise<HttpsResult> => {
      const port = ports[component];
      if (port === undefined) return Promise.reject(new Error(`${component} was not started`));
      return httpsGet(port, '/healthz', {}, 5_000);
    };
    for (const p of [controllerManager, scheduler]) {
      if (!p) continue;
      const name = p.name as 'kube-controller-manager' | 'kube-scheduler';
      await waitFor('GET /healthz = 200', p, readyTimeoutMs, async () => (await componentHealth(name)).status === 200);
    }

    const kubectl = (args: string[], runOpts: RunOptions = {}) =>
      run(k8sBinPath('kubectl'), [`--kubeconfig=${f('admin.kubeconfig')}`, ...args], { timeoutMs: 30_000, ...runOpts }, ['KUBECONFIG']);
    const kubectlOk = async (args: string[], runOpts: RunOptions = {}) => {
      const r = await kubectl(args, runOpts);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code ?? r.signal}:\n${r.stderr}${r.stdout}`);
      return r.stdout;
    };
    let stopped = false;
    return {
      dir,
      server,
      apiserverPort,
      kubeconfig: f('admin.kubeconfig'),
      apiserver,
      controllerManager,
      scheduler,
      kubectl,
      kubectlOk,
      get,
      componentHealth,
      waitReady,
      logTails: () => started.map((p) => `--- ${p.name} (${p.logFile}) ---\n${p.logTail()}`).join('\n'),
      stop: async () => {
        if (stopped) return;
        stopped = true;
        for (const p of [...started].reverse()) await p.stop().catch(() => undefined);
        removeDir(dir);
      },
    };
  } catch (e) {
    for (const p of [...started].reverse()) await p.stop().catch(() => undefined);
    if (process.env.ETCD_TS_KEEP_TMP !== '1') removeDir(dir);
    throw e;
  }
}

// ---------------------------------------------------------------------------
// Logs

/**
 * The warning and error lines of a log that mention etcd, gRPC or kube-apiserver's storage layer
 * (its watch cache): klog's (`W0102 15:04:05.000000 ...`, `E0102 ...`, `F0102 ...`) and the etcd
 * client's own JSON lines (`{"level":"warn",...}`). This is what an incompatible storage backend
 * shows up as.
 */
export function etcdProblemLines(log: string): string[] {
  return log
    .split('\n')
    .filter((l) => /^[EWF]\d{4} /.test(l) || /^\{"level":"(warn|error|dpanic|panic|fatal)"/.test(l))
    .filter((l) => /etcd|grpc|clientv3|cacher|watch/i.test(l));
}

/**
 * `lines` grouped by what they say (timestamps, pids, retry attempts, gRPC channel numbers, client
 * pointers and local ports taken out), most frequent first: "<count>x <line>".
 */
export function summarizeLines(lines: string[], maxLength = 400): string[] {
  const counts = new Map<string, number>();
  for (const l of lines) {
    const key = l
      .replace(/^([EWF])\d{4} [\d:.]+\s+\d+ /, '$1 ')
      .replace(/"ts":"[^"]*",/, '')
      .replace(/"attempt":\d+,/, '')
      .replace(/Channel #\d+ SubChannel #\d+/g, 'Channel #N SubChannel #N')
      .replace(/Channel #\d+/g, 'Channel #N')
      .replace(/0x[0-9a-f]+/g, '0x…')
      .replace(/LocalAddr: '[^']*'/g, "LocalAddr: '…'")
      .slice(0, maxLength);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n}x ${k}`);
}
