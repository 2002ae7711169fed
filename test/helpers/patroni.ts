/**
 * Patroni + PostgreSQL members for integration tests and bench/patroni.ts: one YAML config per
 * member (etcd3 DCS, REST API and PostgreSQL on free 127.0.0.1 ports, data in a temp dir), start,
 * SIGKILL of Patroni and its postmaster, roles from Patroni's REST API and from psql, a sampler that
 * records every member's role every ~200 ms, and cleanup of every process and temp dir.
 *
 * PostgreSQL refuses to run as root and Patroni starts postgres itself, so when the tests run as
 * root Patroni runs as the `postgres` user (the Debian package creates it) and its directories are
 * handed to that user. test/tools/patroni.sh (run by `make tools`) installs PostgreSQL and Patroni.
 *
 * Patroni and the postmasters it starts are watched by a guard process: when this process exits
 * for any reason (including jest killing a worker) the guard SIGKILLs every registered pid and every
 * process whose working directory is inside a registered member dir (postgres processes chdir to
 * their data dir, and the postmaster is not Patroni's child once Patroni dies).
 */
import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { stringify } from 'yaml';
import { freePort, httpGet, removeDir, repoRoot, run, tmpDataDir } from './procs';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// Installation

export interface PatroniTools {
  /** The virtualenv's bin dir (patroni, patronictl). */
  patroniBin: string;
  /** PostgreSQL's bin dir (postgres, initdb, pg_ctl, psql, ...). */
  pgBin: string;
}

let cachedTools: PatroniTools | undefined;

/**
 * Where test/tools/patroni.sh installed Patroni and PostgreSQL (it is asked with --check, so a
 * test never installs anything); throws with instructions when they are missing.
 */
export function patroniTools(): PatroniTools {
  if (cachedTools) return cachedTools;
  const script = path.join(repoRoot(), 'test', 'tools', 'patroni.sh');
  let out: string;
  try {
    out = execFileSync(script, ['--check'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr ?? String(e);
    throw new Error(`Patroni / PostgreSQL are not installed; run \`make tools\` (test/tools/patroni.sh):\n${stderr}`);
  }
  const [patroniBin, pgBin] = out.trim().split('\n');
  if (!patroniBin || !pgBin) throw new Error(`test/tools/patroni.sh --check printed no paths:\n${out}`);
  cachedTools = { patroniBin, pgBin };
  return cachedTools;
}

interface RunUser {
  name: string;
  uid: number;
  gid: number;
}

let cachedRunUser: RunUser | undefined | null = null;

/** The user Patroni runs as: `postgres` when we are root, else undefined (ourselves). */
export function patroniRunUser(): RunUser | undefined {
  if (cachedRunUser !== null) return cachedRunUser;
  if (process.getuid?.() !== 0) {
    cachedRunUser = undefined;
    return undefined;
  }
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error("running as root, but there is no 'postgres' user to run Patroni as (run `make tools`)");
  const fields = line.split(':');
  cachedRunUser = { name: 'postgres', uid: Number(fields[2]), gid: Number(fields[3]) };
  return cachedRunUser;
}

/** Hands a directory tree to the user Patroni runs as (no-op when that is us). */
export function shareWithRunUser(dir: string): void {
  const user = patroniRunUser();
  if (!user) return;
  const walk = (p: string) => {
    fs.lchownSync(p, user.uid, user.gid);
    if (fs.lstatSync(p).isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e));
  };
  walk(dir);
}

// ---------------------------------------------------------------------------
// Processes: guard and /proc scans

const GUARD_SCRIPT = `
const fs = require('fs');
const pids = new Set();
const dirs = new Set();
let buf = '';
const inDirs = (cwd) => [...dirs].some((d) => cwd === d || cwd.startsWith(d + '/'));
const reap = () => {
  for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch (e) {} }
  for (let round = 0; round < 3 && dirs.size > 0; round++) {
    for (const e of fs.readdirSync('/proc')) {
      if (!/^[0-9]+$/.test(e)) continue;
      let cwd;
      try { cwd = fs.readlinkSync('/proc/' + e + '/cwd'); } catch (err) { continue; }
      if (inDirs(cwd)) { try { process.kill(Number(e), 'SIGKILL'); } catch (err) {} }
    }
  }
  process.exit(0);
};
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    const op = line[0], kind = line[1], arg = line.slice(3);
    const set = kind === 'p' ? pids : dirs;
    const val = kind === 'p' ? Number(arg) : arg;
    if (op === '+') set.add(val); else set.delete(val);
  }
});
process.stdin.on('end', reap);
process.stdin.on('error', reap);
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
`;

let guard: ChildProcess | undefined;
let guardUsers = 0;

function guardSend(line: string): void {
  if (!guard || guard.exitCode !== null || guard.signalCode !== null) {
    guard = spawn(process.execPath, ['-e', GUARD_SCRIPT], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    guard.on('error', () => undefined);
    guard.stdin?.on('error', () => undefined);
    guard.unref();
    (guard.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  }
  try {
    guard.stdin?.write(line + '\n');
  } catch {
    // the guard died; cleanup paths below still kill what they started
  }
}

function guardDir(dir: string, add: boolean): void {
  if (add) guardUsers++;
  guardSend(`${add ? '+' : '-'}d ${dir}`);
  if (!add && --guardUsers <= 0) {
    guardUsers = 0;
    guard?.stdin?.end();
    guard = undefined;
  }
}

/** pids of the processes whose working directory is `dir` or inside it. */
export function processesIn(dir: string): number[] {
  const found: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(e)) continue;
    let cwd: string;
    try {
      cwd = fs.readlinkSync(`/proc/${e}/cwd`);
    } catch {
      continue; // gone, a zombie, or not ours
    }
    if (cwd === dir || cwd.startsWith(dir + '/')) found.push(Number(e));
  }
  return found;
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

// ---------------------------------------------------------------------------
// Configuration

/** How Patroni reaches etcd (its `etcd3:` section). */
export interface EtcdConnection {
  /** host:port of every cluster member (Patroni's `hosts:` list). */
  hosts: string[];
  protocol?: 'http' | 'https';
  cacert?: string;
  cert?: string;
  key?: string;
  username?: string;
  password?: string;
}

export interface PatroniClusterOptions {
  etcd: EtcdConnection;
  /** Number of Patroni / PostgreSQL members (default 2), named pg1, pg2, ... */
  size?: number;
  scope?: string;
  /** Patroni's namespace (default '/service/'). */
  namespace?: string;
  /** bootstrap.dcs: leader key TTL (s), loop wait (s), retry timeout (s). */
  ttl?: number;
  loopWait?: number;
  retryTimeout?: number;
  /** Parent directory (default: a fresh temp dir, removed by destroy()). */
  baseDir?: string;
}

export const SUPERUSER = { username: 'postgres', password: 'pg-super-secret' };
export const REPLICATION = { username: 'replicator', password: 'pg-repl-secret' };

export interface RestStatus {
  /** 'primary', 'replica', 'uninitialized', ... (Patroni's role). */
  role?: string;
  /** 'running', 'starting', 'stopped', 'crashed', ... */
  state?: string;
  /**
   * True when Patroni answered from a live query of postgres (postmaster_start_time is present):
   * only then does `role` reflect pg_is_in_recovery(); otherwise it is guessed from the data dir.
   */
  queried: boolean;
  timeline?: number;
  replication_state?: string;
  replication?: { application_name?: string; state?: string }[];
}

/** One Patroni + PostgreSQL member. */
export class PatroniMember {
  private child: ChildProcess | undefined;
  private exitPromise: Promise<void> = Promise.resolve();
  /** When the current Patroni process was spawned (ms since epoch). */
  startedAt = 0;

  constructor(
    readonly name: string,
    readonly dir: string,
    readonly restPort: number,
    readonly pgPort: number,
    private readonly tools: PatroniTools,
  ) {}

  get dataDir(): string {
    return path.join(this.dir, 'data');
  }
  get configFile(): string {
    return path.join(this.dir, 'patroni.yml');
  }
  get logFile(): string {
    return path.join(this.dir, 'patroni.log');
  }
  get restUrl(): string {
    return `http://127.0.0.1:${this.restPort}`;
  }
  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }
  get pid(): number {
    return this.child?.pid ?? -1;
  }

  /** Spawns Patroni (as the run user) with this member's config; its output goes to patroni.log. */
  start(): void {
    if (this.running) throw new Error(`Patroni ${this.name} is already running`);
    const user = patroniRunUser();
    const logFd = fs.openSync(this.logFile, 'a');
    if (user) fs.fchownSync(logFd, user.uid, user.gid);
    fs.writeSync(logFd, `----- ${new Date().toISOString()} start patroni ${this.configFile}\n`);
    const env: NodeJS.ProcessEnv = {
      PATH: `${this.tools.patroniBin}:/usr/local/bin:/usr/bin:/bin`,
      HOME: this.dir,
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      TZ: 'UTC',
      PYTHONUNBUFFERED: '1',
    };
    const child = spawn(path.join(this.tools.patroniBin, 'patroni'), [this.configFile], {
      cwd: this.dir,
      env,
      stdio: ['ignore', logFd, logFd],
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
    });
    fs.closeSync(logFd);
    this.child = child;
    this.startedAt = Date.now();
    this.exitPromise = new Promise<void>((resolve) => {
      child.once('error', () => resolve());
      child.once('exit', () => resolve());
    });
    if (child.pid) guardSend(`+p ${child.pid}`);
    child.unref();
  }

  /** pid of the running postmaster, from the data dir's postmaster.pid (undefined when none). */
  postmasterPid(): number | undefined {
    try {
      const pid = Number(fs.readFileSync(path.join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      if (!Number.isInteger(pid) || pid <= 0) return undefined;
      process.kill(pid, 0);
      return pid;
    } catch {
      return undefined;
    }
  }

  private async waitPatroniExit(timeoutMs: number): Promise<boolean> {
    if (!this.running) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
    try {
      return await Promise.race([this.exitPromise.then(() => true), timeout]);
    } finally {
      clearTimeout(timer);
      if (!this.running && this.child?.pid) guardSend(`-p ${this.child.pid}`);
    }
  }

  /** Waits (bounded) until no process runs in this member's dir (postmaster and backends gone). */
  async waitNoProcesses(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = processesIn(this.dir);
      if (left.length === 0) return;
      if (Date.now() > deadline) throw new Error(`${this.name}: processes still running in ${this.dir}: ${left.join(' ')}`);
      await sleep(50);
    }
  }

  /**
   * SIGKILL to Patroni and to its postmaster at once (a machine losing power, as far as this
   * member goes); resolves once both and the postmaster's children are gone. Returns the kill time.
   */
  async kill9(): Promise<number> {
    const postmaster = this.postmasterPid();
    const at = Date.now();
    if (this.running) this.child?.kill('SIGKILL');
    if (postmaster) killQuietly(postmaster, 'SIGKILL');
    if (!(await this.waitPatroniExit(10_000))) throw new Error(`Patroni ${this.name} survived SIGKILL`);
    // Backends notice the postmaster's death and exit by themselves; do not wait forever.
    try {
      await this.waitNoProcesses(10_000);
    } catch {
      for (const pid of processesIn(this.dir)) killQuietly(pid, 'SIGKILL');
      await this.waitNoProcesses(5_000);
    }
    return at;
  }

  /** SIGTERM (Patroni stops postgres and releases its keys), then SIGKILL whatever is left. */
  async stop(timeoutMs = 20_000): Promise<void> {
    if (this.running) {
      this.child?.kill('SIGTERM');
      if (!(await this.waitPatroniExit(timeoutMs))) {
        this.child?.kill('SIGKILL');
        await this.waitPatroniExit(5_000);
      }
    }
    const postmaster = this.postmasterPid();
    if (postmaster) killQuietly(postmaster, 'SIGKILL');
    for (const pid of processesIn(this.dir)) killQuietly(pid, 'SIGKILL');
    await this.waitNoProcesses(10_000).catch(() => undefined);
  }

  /** GET <rest>/<path> as JSON; undefined when Patroni does not answer (in time). */
  async rest<T>(p: string, timeoutMs = 1_000): Promise<{ status: number; body: T } | undefined> {
    try {
      const res = await httpGet(`${this.restUrl}${p}`, timeoutMs);
      return { status: res.status, body: JSON.parse(res.body) as T };
    } catch {
      return undefined;
    }
  }

  /** GET /patroni, reduced to what the tests look at; undefined when Patroni does not answer. */
  async status(timeoutMs = 1_000): Promise<RestStatus | undefined> {
    const res = await this.rest<Record<string, unknown>>('/patroni', timeoutMs);
    if (!res) return undefined;
    const b = res.body;
    return {
      role: typeof b.role === 'string' ? b.role : undefined,
      state: typeof b.state === 'string' ? b.state : undefined,
      queried: b.postmaster_start_time !== undefined,
      timeline: typeof b.timeline === 'number' ? b.timeline : undefined,
      replication_state: typeof b.replication_state === 'string' ? b.replication_state : undefined,
      replication: Array.isArray(b.replication) ? (b.replication as RestStatus['replication']) : undefined,
    };
  }

  /** True when Patroni reports a running postgres that is not in recovery. */
  async isPrimary(timeoutMs = 1_000): Promise<boolean> {
    const s = await this.status(timeoutMs);
    return s !== undefined && s.queried && s.state === 'running' && isPrimaryRole(s.role);
  }

  /** Runs one SQL statement through psql over TCP as the superuser; resolves with its unaligned output. */
  async sql(query: string, timeoutMs = 5_000): Promise<string> {
    const res = await run(
      path.join(this.tools.pgBin, 'psql'),
      ['-h', '127.0.0.1', '-p', String(this.pgPort), '-U', SUPERUSER.username, '-d', 'postgres', '-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', '-c', query],
      { env: { PGPASSWORD: SUPERUSER.password, PGCONNECT_TIMEOUT: '2', PGAPPNAME: 'etcd-ts-test' }, timeoutMs },
      ['PG'],
    );
    if (res.code !== 0) throw new Error(`psql on ${this.name} (port ${this.pgPort}) failed: ${res.stderr.trim()}`);
    return res.stdout.trim();
  }

  /** pg_is_in_recovery() via psql; undefined when postgres does not answer. */
  async inRecovery(timeoutMs = 2_000): Promise<boolean | undefined> {
    try {
      const out = await this.sql('SELECT pg_is_in_recovery()', timeoutMs);
      if (out === 't') return true;
      if (out === 'f') return false;
      return undefined;
    } catch {
      return undefined;
    }
  }

  /** Last `lines` lines of patroni.log (Patroni's and postgres' output). */
  logTail(lines = 60): string {
    try {
      const text = fs.readFileSync(this.logFile, 'utf8');
      return text.split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

export function isPrimaryRole(role: string | undefined): boolean {
  return role === 'primary' || role === 'master';
}

/** Patroni's YAML for one member. */
function memberConfig(opts: Required<Omit<PatroniClusterOptions, 'baseDir' | 'size'>>, m: PatroniMember, tools: PatroniTools): string {
  const etcd3: Record<string, unknown> = {
    hosts: opts.etcd.hosts,
    protocol: opts.etcd.protocol ?? 'http',
  };
  if (opts.etcd.cacert) etcd3.cacert = opts.etcd.cacert;
  if (opts.etcd.cert) etcd3.cert = opts.etcd.cert;
  if (opts.etcd.key) etcd3.key = opts.etcd.key;
  if (opts.etcd.username) etcd3.username = opts.etcd.username;
  if (opts.etcd.password) etcd3.password = opts.etcd.password;
  const config = {
    scope: opts.scope,
    namespace: opts.namespace,
    name: m.name,
    // ETCD_TS_PATRONI_LOG_LEVEL=DEBUG shows every DCS request in patroni.log.
    log: { level: process.env.ETCD_TS_PATRONI_LOG_LEVEL ?? 'INFO' },
    restapi: { listen: `127.0.0.1:${m.restPort}`, connect_address: `127.0.0.1:${m.restPort}` },
    etcd3,
    bootstrap: {
      dcs: {
        ttl: opts.ttl,
        loop_wait: opts.loopWait,
        retry_timeout: opts.retryTimeout,
        maximum_lag_on_failover: 1048576,
        postgresql: {
          use_pg_rewind: true,
          use_slots: true,
          parameters: {
            wal_level: 'replica',
            hot_standby: 'on',
            wal_log_hints: 'on',
            max_wal_senders: 5,
            max_replication_slots: 5,
            max_connections: 50,
          },
        },
      },
      initdb: [{ encoding: 'UTF8' }, { locale: 'C.UTF-8' }, { auth: 'scram-sha-256' }],
    },
    postgresql: {
      listen: `127.0.0.1:${m.pgPort}`,
      connect_address: `127.0.0.1:${m.pgPort}`,
      data_dir: m.dataDir,
      bin_dir: tools.pgBin,
      pgpass: path.join(m.dir, 'pgpass'),
      remove_data_directory_on_rewind_failure: true,
      remove_data_directory_on_diverged_timelines: true,
      authentication: { superuser: SUPERUSER, replication: REPLICATION },
      parameters: {
        unix_socket_directories: m.dir,
        shared_buffers: '16MB',
        password_encryption: 'scram-sha-256',
      },
      pg_hba: [
        'local all all trust',
        `host replication ${REPLICATION.username} 127.0.0.1/32 scram-sha-256`,
        'host all all 127.0.0.1/32 scram-sha-256',
      ],
    },
    watchdog: { mode: 'off' },
  };
  return stringify(config);
}

/** A Patroni cluster: `size` members sharing one scope, configured but not started. */
export class PatroniCluster {
  private constructor(
    readonly members: PatroniMember[],
    readonly baseDir: string,
    private readonly ownsBaseDir: boolean,
    readonly scope: string,
    readonly namespace: string,
    readonly ttl: number,
    readonly loopWait: number,
  ) {}

  static async create(opts: PatroniClusterOptions): Promise<PatroniCluster> {
    const tools = patroniTools();
    const size = opts.size ?? 2;
    const owns = opts.baseDir === undefined;
    const baseDir = opts.baseDir ?? tmpDataDir('etcd-ts-patroni-');
    const full = {
      etcd: opts.etcd,
      scope: opts.scope ?? `pg-${process.pid}-${Date.now() % 100000}`,
      namespace: opts.namespace ?? '/service/',
      ttl: opts.ttl ?? 20,
      loopWait: opts.loopWait ?? 1,
      retryTimeout: opts.retryTimeout ?? 5,
    };
    const members: PatroniMember[] = [];
    for (let i = 1; i <= size; i++) {
      const dir = path.join(baseDir, `pg${i}`);
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      const m = new PatroniMember(`pg${i}`, dir, await freePort(), await freePort(), tools);
      fs.writeFileSync(m.configFile, memberConfig(full, m, tools), { mode: 0o600 });
      members.push(m);
    }
    // The run user needs the member dirs; root keeps access to everything anyway.
    fs.chmodSync(baseDir, 0o755);
    for (const m of members) shareWithRunUser(m.dir);
    guardDir(baseDir, true);
    return new PatroniCluster(members, baseDir, owns, full.scope, full.namespace, full.ttl, full.loopWait);
  }

  member(name: string): PatroniMember {
    const m = this.members.find((x) => x.name === name);
    if (!m) throw new Error(`no Patroni member ${name}`);
    return m;
  }

  /** Starts every member at once (they race for the initialize key, as in production). */
  startAll(): number {
    const at = Date.now();
    for (const m of this.members) m.start();
    return at;
  }

  /** Names of the members that Patroni reports as running primaries right now. */
  async primaries(): Promise<string[]> {
    const flags = await Promise.all(this.members.map((m) => m.isPrimary()));
    return this.members.filter((_, i) => flags[i]).map((m) => m.name);
  }

  /**
   * Polls (every 100 ms, bounded) until exactly one member, not in `exclude`, is a running primary;
   * resolves with it and the time it was first seen.
   */
  async waitPrimary(timeoutMs: number, exclude: string[] = []): Promise<{ member: PatroniMember; at: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const candidates = this.members.filter((m) => !exclude.includes(m.name));
      const flags = await Promise.all(candidates.map((m) => m.isPrimary(800)));
      const at = Date.now();
      const found = candidates.filter((_, i) => flags[i]);
      if (found.length === 1) return { member: found[0], at };
      if (at > deadline) {
        throw new Error(`no single primary among ${candidates.map((m) => m.name).join(', ')} after ${timeoutMs} ms (found: ${found.map((m) => m.name).join(', ') || 'none'})\n${this.logTails()}`);
      }
      await sleep(100);
    }
  }

  /**
   * Waits (bounded) until `replica` streams from `primary`: the primary's pg_stat_replication lists
   * it as streaming and the replica's pg_stat_wal_receiver is streaming from the primary's port.
   */
  async waitStreaming(primary: PatroniMember, replica: PatroniMember, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      try {
        const senders = await primary.sql(`SELECT state FROM pg_stat_replication WHERE application_name = '${replica.name}'`, 3_000);
        const receiver = await replica.sql('SELECT status, sender_host, sender_port FROM pg_stat_wal_receiver', 3_000);
        last = `primary ${primary.name} pg_stat_replication[${replica.name}]=${senders || '(none)'}; replica ${replica.name} pg_stat_wal_receiver=${receiver || '(none)'}`;
        if (senders === 'streaming' && receiver === `streaming|127.0.0.1|${primary.pgPort}`) return;
      } catch (e) {
        last = (e as Error).message;
      }
      if (Date.now() > deadline) {
        throw new Error(`${replica.name} is not streaming from ${primary.name} after ${timeoutMs} ms: ${last}\n${this.logTails()}`);
      }
      await sleep(250);
    }
  }

  /** The last lines of every member's log, for failure messages. */
  logTails(lines = 40): string {
    return this.members.map((m) => `----- ${m.name} (${m.logFile}) -----\n${m.logTail(lines)}`).join('\n');
  }

  /** Stops every member (SIGTERM, then SIGKILL) and removes the temp dir (kept with ETCD_TS_KEEP_TMP=1). */
  async destroy(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop().catch(() => undefined)));
    guardDir(this.baseDir, false);
    if (this.ownsBaseDir) removeDir(this.baseDir);
  }
}

// ---------------------------------------------------------------------------
// Role sampling

export interface MemberSample {
  name: string;
  /** Patroni's answer: role, or 'down' when the REST API does not answer. */
  rest: string;
  /** pg_is_in_recovery() through psql: true / false, undefined when postgres does not answer. */
  inRecovery: boolean | undefined;
  /** Acting as a primary by either source: REST primary from a live query, or not in recovery. */
  primary: boolean;
}

export interface RoleSample {
  /** ms since the sampler started. */
  t: number;
  members: MemberSample[];
  primaries: string[];
}

/**
 * Samples every member's role every `intervalMs` (REST /patroni and pg_is_in_recovery() in
 * parallel, each with a short timeout) until stopped, so a test can assert that no sampled moment
 * had two primaries.
 */
export class RoleSampler {
  readonly samples: RoleSample[] = [];
  private stopped = false;
  private loop: Promise<void> | undefined;
  private t0 = 0;

  constructor(
    private readonly members: PatroniMember[],
    private readonly intervalMs = 200,
  ) {}

  start(): this {
    this.t0 = Date.now();
    this.loop = this.run();
    return this;
  }

  private async sampleMember(m: PatroniMember): Promise<MemberSample> {
    const [s, inRecovery] = await Promise.all([m.status(800), m.inRecovery(1_500)]);
    const restPrimary = s !== undefined && s.queried && s.state === 'running' && isPrimaryRole(s.role);
    return {
      name: m.name,
      rest: s === undefined ? 'down' : `${s.role ?? '?'}/${s.state ?? '?'}${s.queried ? '' : '(not queried)'}`,
      inRecovery,
      primary: restPrimary || inRecovery === false,
    };
  }

  private async run(): Promise<void> {
    // Bounded by the caller's stop(); each round is bounded by the probes' timeouts.
    while (!this.stopped) {
      const started = Date.now();
      const members = await Promise.all(this.members.map((m) => this.sampleMember(m)));
      this.samples.push({ t: started - this.t0, members, primaries: members.filter((x) => x.primary).map((x) => x.name) });
      const wait = this.intervalMs - (Date.now() - started);
      if (wait > 0) await sleep(wait);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  /** Samples in which more than one member acted as a primary. */
  splitBrain(): RoleSample[] {
    return this.samples.filter((s) => s.primaries.length > 1);
  }

  /** A compact description of a sample, for failure messages. */
  static describe(s: RoleSample): string {
    return `t=${s.t}ms ` + s.members.map((m) => `${m.name}: rest=${m.rest} in_recovery=${m.inRecovery ?? '?'}`).join('; ');
  }

  /** The sampled role timeline with consecutive identical samples collapsed (for logs). */
  timeline(): string {
    const out: string[] = [];
    let prev = '';
    for (const s of this.samples) {
      const key = s.members.map((m) => `${m.name}=${m.primary ? 'PRIMARY' : m.rest === 'down' ? 'down' : m.inRecovery === true ? 'replica' : m.rest}`).join(' ');
      if (key !== prev) out.push(`  ${String(s.t).padStart(6)} ms  ${key}`);
      prev = key;
    }
    return out.join('\n');
  }
}
