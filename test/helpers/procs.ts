/**
 * Process helpers for integration tests: locate the reference etcd tools,
 * allocate loopback ports and temp dirs, start etcd-ts or reference etcd
 * nodes, and run etcdctl. Everything listens on 127.0.0.1 only and every wait
 * is bounded in time.
 *
 * Child processes are tracked; a tiny "reaper" process watches a pipe from
 * this process and SIGKILLs the tracked children when the pipe closes, i.e.
 * when this process exits for any reason (including jest killing a worker).
 * A plain `process.on('exit')` hook is not enough under jest: the test
 * sandbox's `process` is a copy whose 'exit' event never fires.
 */
import { ChildProcess, spawn, SpawnOptions } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';

/** Version of the reference etcd tools built by test/tools/build.sh. */
export const REFERENCE_ETCD_VERSION = '3.6.16';

export type ToolName = 'etcd' | 'etcdctl' | 'etcdutl' | 'benchmark';
export type NodeKind = 'etcd-ts' | 'etcd';

const LOG_TAIL_LINES = 200;

// ---------------------------------------------------------------------------
// Locations

let cachedRepoRoot: string | undefined;

/** The etcd-ts repository root (the nearest ancestor with package.json named "etcd-ts"). */
export function repoRoot(): string {
  if (cachedRepoRoot !== undefined) return cachedRepoRoot;
  let dir = __dirname;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        const parsed = JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: unknown };
        if (parsed.name === 'etcd-ts') {
          cachedRepoRoot = dir;
          return dir;
        }
      } catch {
        // not a readable package.json; keep walking up
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the etcd-ts repository root above ${__dirname}`);
    dir = parent;
  }
}

/**
 * Directory holding the reference tools: $ETCD_TS_TOOLS_DIR, else
 * ${ETCD_TS_CACHE:-~/.cache/etcd-ts}/bin/etcd-v<version> (where build.sh puts them).
 */
export function toolsDir(): string {
  const explicit = process.env.ETCD_TS_TOOLS_DIR;
  if (explicit) return explicit;
  const cache = process.env.ETCD_TS_CACHE || path.join(os.homedir(), '.cache', 'etcd-ts');
  return path.join(cache, 'bin', `etcd-v${REFERENCE_ETCD_VERSION}`);
}

/** Absolute path of a reference tool; throws with instructions when it is missing. */
export function toolPath(name: ToolName): string {
  const p = path.join(toolsDir(), name);
  try {
    fs.accessSync(p, fs.constants.X_OK);
  } catch {
    throw new Error(
      `reference tool '${name}' not found at ${p}. Run \`make tools\` (or test/tools/build.sh) ` +
        `to build the etcd v${REFERENCE_ETCD_VERSION} tools, or set ETCD_TS_TOOLS_DIR.`,
    );
  }
  return p;
}

/** True when all reference tools are present (for describe.skip-style guards). */
export function haveReferenceTools(): boolean {
  return (['etcd', 'etcdctl', 'etcdutl', 'benchmark'] as const).every((t) => {
    try {
      toolPath(t);
      return true;
    } catch {
      return false;
    }
  });
}

/** Path of the built etcd-ts entry point; throws if `npm run build` has not been run. */
export function etcdTsBin(): string {
  const p = path.join(repoRoot(), 'dist', 'src', 'bin', 'etcd-ts.js');
  if (!fs.existsSync(p)) {
    throw new Error(`etcd-ts is not built: ${p} is missing. Run \`npm run build\` first.`);
  }
  return p;
}

// ---------------------------------------------------------------------------
// Ports and temp dirs

const handedOutPorts = new Set<number>();

function bindEphemeral(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** An unused TCP port on 127.0.0.1 (not handed out before by this process). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await bindEphemeral();
    if (port > 0 && !handedOutPorts.has(port)) {
      handedOutPorts.add(port);
      return port;
    }
  }
  throw new Error('freePort: could not find an unused port on 127.0.0.1');
}

/** Creates a fresh directory under os.tmpdir() (prefix e.g. 'etcd-ts-kv-'). */
export function tmpDataDir(prefix = 'etcd-ts-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Removes a directory tree; no error if it is already gone. Set ETCD_TS_KEEP_TMP=1 to keep it. */
export function removeDir(dir: string): void {
  if (process.env.ETCD_TS_KEEP_TMP === '1') return;
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

// ---------------------------------------------------------------------------
// Child tracking (reaper)

const REAPER_SCRIPT = `
const pids = new Set();
let buf = '';
const reap = () => {
  for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch (e) {} }
  process.exit(0);
};
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    const pid = Number(line.slice(1));
    if (!Number.isInteger(pid) || pid <= 0) continue;
    if (line[0] === '+') pids.add(pid); else if (line[0] === '-') pids.delete(pid);
  }
});
process.stdin.on('end', reap);
process.stdin.on('error', reap);
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
`;

let reaper: ChildProcess | undefined;
const liveChildren = new Set<ChildProcess>();

function onHostExit(): void {
  for (const c of liveChildren) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

function reaperSend(line: string): void {
  const stdin = reaper?.stdin;
  if (stdin && !stdin.destroyed) {
    try {
      stdin.write(line + '\n');
    } catch {
      // reaper died; the 'exit' hook below still covers plain node
    }
  }
}

/** Kills `child` with SIGKILL if this process goes away first (for helpers that spawn their own processes). */
export function trackChild(child: ChildProcess): void {
  track(child);
}

function track(child: ChildProcess): void {
  if (child.pid === undefined) return;
  if (liveChildren.size === 0) {
    // Outside jest this hook works; under jest the reaper does the job.
    process.on('exit', onHostExit);
  }
  liveChildren.add(child);
  if (!reaper || reaper.exitCode !== null || reaper.signalCode !== null) {
    reaper = spawn(process.execPath, ['-e', REAPER_SCRIPT], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true,
    });
    reaper.on('error', () => undefined);
    reaper.stdin?.on('error', () => undefined);
    reaper.unref();
    (reaper.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  }
  reaperSend(`+${child.pid}`);
  const pid = child.pid;
  child.once('exit', () => {
    liveChildren.delete(child);
    reaperSend(`-${pid}`);
    if (liveChildren.size === 0) {
      process.off('exit', onHostExit);
      // Nothing left to guard: let the reaper go (it exits on EOF).
      reaper?.stdin?.end();
      reaper = undefined;
    }
  });
}

/** Environment for a child: inherited env minus variables that would silently change etcd/etcdctl behaviour. */
function childEnv(extra: Record<string, string> | undefined, dropPrefixes: string[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue;
    if (k.startsWith('ETCD_TS_')) {
      env[k] = v;
      continue;
    }
    if (dropPrefixes.some((p) => k.startsWith(p))) continue;
    env[k] = v;
  }
  return { ...env, ...(extra ?? {}) };
}

// ---------------------------------------------------------------------------
// Running tools

export interface RunOptions {
  /** Written to the child's stdin, which is then closed (stdin is always closed). */
  input?: string;
  env?: Record<string, string>;
  /** Kill the child and reject after this long (default 15 s). */
  timeoutMs?: number;
  cwd?: string;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion with a bounded time; rejects on spawn failure or timeout. */
export function run(command: string, args: string[], opts: RunOptions = {}, dropEnvPrefixes: string[] = []): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  return new Promise<RunResult>((resolve, reject) => {
    const spawnOpts: SpawnOptions = {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: childEnv(opts.env, dropEnvPrefixes),
      cwd: opts.cwd,
    };
    const child = spawn(command, args, spawnOpts);
    track(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => err.push(d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`failed to run ${command}: ${e.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) {
        reject(
          new Error(
            `${path.basename(command)} ${args.join(' ')} timed out after ${timeoutMs} ms\n` +
              `--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`,
          ),
        );
        return;
      }
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin?.on('error', () => undefined); // EPIPE if the child exits before reading
    child.stdin?.end(opts.input ?? '');
  });
}

/** Runs a reference tool (etcdutl, benchmark, ...) from toolsDir(). */
export function runTool(name: ToolName, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return run(toolPath(name), args, opts, ['ETCDCTL_', 'ETCDUTL_', 'ETCD_']);
}

/**
 * Runs the reference etcdctl against `endpoints` ('127.0.0.1:port' or URLs).
 * ETCDCTL_* variables of the environment are not passed on unless given in opts.env.
 */
export function etcdctl(endpoints: string | string[], args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const eps = Array.isArray(endpoints) ? endpoints.join(',') : endpoints;
  return run(toolPath('etcdctl'), [`--endpoints=${eps}`, ...args], opts, ['ETCDCTL_']);
}

// ---------------------------------------------------------------------------
// Nodes

export interface StartNodeOptions {
  /** 'etcd-ts' (node dist/src/bin/etcd-ts.js) or 'etcd' (the reference binary). */
  kind: NodeKind;
  /** Member name (default 'node1'). */
  name?: string;
  /** Data dir; default `<fresh temp dir>/<name>.etcd`. Its parent holds the log file. */
  dataDir?: string;
  clientPort?: number;
  peerPort?: number;
  /** Overrides --initial-cluster (default `<name>=<own peer url>`), for multi-node clusters. */
  initialCluster?: string;
  /** Extra flags appended after the generated ones. */
  extraArgs?: string[];
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Wait for /health (default true). With false, call handle.waitReady() yourself. */
  waitReady?: boolean;
  /** Bound for the readiness wait (default 20 s). */
  readyTimeoutMs?: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface NodeHandle {
  readonly kind: NodeKind;
  readonly name: string;
  /** http://127.0.0.1:<client port> */
  readonly clientUrl: string;
  /** 127.0.0.1:<client port>, as etcdctl --endpoints takes it */
  readonly endpoint: string;
  readonly peerUrl: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  /** Temp folder holding the data dir and the log file. */
  readonly baseDir: string;
  readonly logFile: string;
  /** Full argv after the command (flags). */
  readonly args: readonly string[];
  /** pid of the current process (changes on restart). */
  readonly pid: number;
  /** True while the current process has not exited. */
  readonly running: boolean;
  /** Exit status of the current process once it has exited. */
  readonly exitInfo: ExitInfo | undefined;
  /** Sends a signal (default SIGKILL) to the current process. */
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process has exited. */
  stop(): Promise<ExitInfo>;
  /** Resolves when the current process exits; rejects after timeoutMs (default 30 s). */
  waitExit(timeoutMs?: number): Promise<ExitInfo>;
  /** Polls /health until ready; rejects with the log tail on timeout or early exit. */
  waitReady(timeoutMs?: number): Promise<void>;
  /** Stops the process if running and starts it again with the same flags and data dir. */
  restart(opts?: { waitReady?: boolean; readyTimeoutMs?: number }): Promise<void>;
  /** Last ~200 lines of stdout+stderr, newest last. */
  logTail(): string;
  /** stop() and remove baseDir (kept when ETCD_TS_KEEP_TMP=1). */
  destroy(): Promise<void>;
}

/** GET <url>; resolves with status and body, rejects on connection errors or after timeoutMs. */
export function httpGet(url: string, timeoutMs = 2_000): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** True when GET <clientUrl>/health answers 200 with {"health":"true"}. */
export async function isHealthy(clientUrl: string): Promise<boolean> {
  try {
    const res = await httpGet(`${clientUrl}/health`, 1_000);
    if (res.status !== 200) return false;
    const body = JSON.parse(res.body) as { health?: unknown };
    return body.health === 'true';
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

class RingLog {
  private lines: string[] = [];
  private partial = '';

  push(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    for (const l of parts) this.lines.push(l);
    if (this.lines.length > LOG_TAIL_LINES) this.lines.splice(0, this.lines.length - LOG_TAIL_LINES);
  }

  text(): string {
    return [...this.lines, ...(this.partial ? [this.partial] : [])].join('\n');
  }
}

class Node implements NodeHandle {
  private child!: ChildProcess;
  private exitPromise!: Promise<ExitInfo>;
  private exit: ExitInfo | undefined;
  private readonly ring = new RingLog();
  private readonly ownsBaseDir: boolean;

  constructor(
    readonly kind: NodeKind,
    readonly name: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly dataDir: string,
    readonly baseDir: string,
    ownsBaseDir: boolean,
    readonly args: readonly string[],
    private readonly env: Record<string, string> | undefined,
  ) {
    this.ownsBaseDir = ownsBaseDir;
  }

  get clientUrl(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }
  get endpoint(): string {
    return `127.0.0.1:${this.clientPort}`;
  }
  get peerUrl(): string {
    return `http://127.0.0.1:${this.peerPort}`;
  }
  get logFile(): string {
    return path.join(this.baseDir, `${this.name}.log`);
  }
  get pid(): number {
    return this.child.pid ?? -1;
  }
  get running(): boolean {
    return this.exit === undefined;
  }
  get exitInfo(): ExitInfo | undefined {
    return this.exit;
  }

  spawnProcess(): void {
    const command = this.kind === 'etcd' ? toolPath('etcd') : process.execPath;
    const argv = this.kind === 'etcd' ? [...this.args] : [etcdTsBin(), ...this.args];
    const logFd = fs.openSync(this.logFile, 'a');
    fs.writeSync(logFd, `----- ${new Date().toISOString()} start ${path.basename(command)} ${argv.join(' ')}\n`);
    this.exit = undefined;
    const child = spawn(command, argv, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: childEnv(this.env, ['ETCD_', 'ETCDCTL_']),
      cwd: this.baseDir,
    });
    this.child = child;
    const onData = (d: Buffer) => {
      const s = d.toString('utf8');
      this.ring.push(s);
      try {
        fs.writeSync(logFd, s);
      } catch {
        // log file gone (dir removed); the in-memory tail still has it
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exitPromise = new Promise<ExitInfo>((resolve) => {
      let done = false;
      const finish = (info: ExitInfo) => {
        if (done) return;
        done = true;
        this.exit = info;
        try {
          fs.writeSync(logFd, `----- ${new Date().toISOString()} exited code=${info.code} signal=${info.signal}\n`);
          fs.closeSync(logFd);
        } catch {
          // ignore
        }
        resolve(info);
      };
      child.once('error', (e) => {
        this.ring.push(`[spawn error] ${e.message}\n`);
        finish({ code: null, signal: null });
      });
      child.once('close', (code, signal) => finish({ code, signal }));
    });
    track(child);
    // A node a test forgot to stop must not keep jest alive forever; once
    // jest exits, the reaper kills it.
    child.unref();
    for (const s of [child.stdout, child.stderr]) (s as unknown as { unref?: () => void } | null)?.unref?.();
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.running) this.child.kill(signal);
  }

  async waitExit(timeoutMs = 30_000): Promise<ExitInfo> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.name} (pid ${this.pid}) did not exit within ${timeoutMs} ms\n${this.logTail()}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exitPromise, timeout]);
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  async stop(): Promise<ExitInfo> {
    if (!this.running) return this.exit as ExitInfo;
    this.child.kill('SIGTERM');
    try {
      return await this.waitExit(5_000);
    } catch {
      this.child.kill('SIGKILL');
      return this.waitExit(10_000);
    }
  }

  async waitReady(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) {
        throw new Error(
          `${this.kind} node ${this.name} exited before becoming ready ` +
            `(code=${this.exit?.code} signal=${this.exit?.signal}); ${this.logHint()}:\n${this.logTail()}`,
        );
      }
      if (await isHealthy(this.clientUrl)) return;
      if (Date.now() >= deadline) {
        throw new Error(
          `${this.kind} node ${this.name} not healthy at ${this.clientUrl}/health after ${timeoutMs} ms; ` +
            `${this.logHint()}:\n${this.logTail()}`,
        );
      }
      await sleep(50);
    }
  }

  async restart(opts: { waitReady?: boolean; readyTimeoutMs?: number } = {}): Promise<void> {
    if (this.running) await this.stop();
    this.spawnProcess();
    if (opts.waitReady ?? true) await this.readyOrKill(opts.readyTimeoutMs);
  }

  /** waitReady, killing the process if it never gets there (so a failed start leaks nothing). */
  async readyOrKill(timeoutMs?: number): Promise<void> {
    try {
      await this.waitReady(timeoutMs);
    } catch (e) {
      this.kill('SIGKILL');
      await this.waitExit(10_000).catch(() => undefined);
      throw e;
    }
  }

  private logHint(): string {
    return `full log ${this.logFile} (temp dirs of failed starts are kept only with ETCD_TS_KEEP_TMP=1), last lines`;
  }

  logTail(): string {
    return this.ring.text();
  }

  async destroy(): Promise<void> {
    await this.stop();
    if (this.ownsBaseDir) removeDir(this.baseDir);
  }
}

function nodeArgs(name: string, dataDir: string, clientPort: number, peerPort: number, initialCluster: string): string[] {
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  return [
    `--name=${name}`,
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=${initialCluster}`,
  ];
}

/**
 * Starts an etcd-ts or reference etcd node on 127.0.0.1 and (by default) waits
 * until GET /health reports {"health":"true"}. On failure the process is killed
 * and the error carries the log tail.
 */
export async function startNode(opts: StartNodeOptions): Promise<NodeHandle> {
  const name = opts.name ?? 'node1';
  // Fail fast (before creating any temp dir) when the binary is missing.
  if (opts.kind === 'etcd') toolPath('etcd');
  else etcdTsBin();
  const clientPort = opts.clientPort ?? (await freePort());
  const peerPort = opts.peerPort ?? (await freePort());
  let baseDir: string;
  let dataDir: string;
  let owns: boolean;
  if (opts.dataDir) {
    dataDir = opts.dataDir;
    baseDir = path.dirname(dataDir);
    fs.mkdirSync(baseDir, { recursive: true });
    owns = false;
  } else {
    baseDir = tmpDataDir(`etcd-ts-${opts.kind}-${name}-`);
    dataDir = path.join(baseDir, `${name}.etcd`);
    owns = true;
  }
  const initialCluster = opts.initialCluster ?? `${name}=http://127.0.0.1:${peerPort}`;
  const args = [...nodeArgs(name, dataDir, clientPort, peerPort, initialCluster), ...(opts.extraArgs ?? [])];
  const node = new Node(opts.kind, name, clientPort, peerPort, dataDir, baseDir, owns, args, opts.env);
  try {
    node.spawnProcess();
    if (opts.waitReady ?? true) await node.readyOrKill(opts.readyTimeoutMs);
  } catch (e) {
    // The error carries the log tail; the temp dir goes unless ETCD_TS_KEEP_TMP=1.
    if (owns) removeDir(baseDir);
    throw e;
  }
  return node;
}

export interface StartClusterOptions {
  kind: NodeKind;
  /** Number of members (default 3). */
  size?: number;
  /** Extra flags for every member. */
  extraArgs?: string[];
  env?: Record<string, string>;
  readyTimeoutMs?: number;
}

/**
 * Starts a fresh multi-member cluster (members node1..nodeN, each in its own
 * temp dir) and waits until every member is healthy.
 */
export async function startCluster(opts: StartClusterOptions): Promise<NodeHandle[]> {
  const size = opts.size ?? 3;
  const members: { name: string; clientPort: number; peerPort: number }[] = [];
  for (let i = 1; i <= size; i++) {
    members.push({ name: `node${i}`, clientPort: await freePort(), peerPort: await freePort() });
  }
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
  const token = `etcd-ts-test-${process.pid}-${Date.now()}`;
  const nodes: NodeHandle[] = [];
  try {
    for (const m of members) {
      nodes.push(
        await startNode({
          kind: opts.kind,
          name: m.name,
          clientPort: m.clientPort,
          peerPort: m.peerPort,
          initialCluster,
          extraArgs: [`--initial-cluster-token=${token}`, '--initial-cluster-state=new', ...(opts.extraArgs ?? [])],
          env: opts.env,
          waitReady: false,
        }),
      );
    }
    await Promise.all(nodes.map((n) => n.waitReady(opts.readyTimeoutMs)));
    return nodes;
  } catch (e) {
    await Promise.all(nodes.map((n) => n.destroy().catch(() => undefined)));
    throw e;
  }
}
