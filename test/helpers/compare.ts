/**
 * Differential-testing utilities: run the same etcdctl command against a
 * reference etcd node and an etcd-ts node, normalise only what legitimately
 * differs between two independent clusters, and compare what is left.
 *
 * Every normalisation is explicit and narrow:
 *  - always: the node's own client/peer endpoint addresses, its own cluster
 *    and member IDs (decimal and hex), and the volatile fields of etcdctl's
 *    client-side warning log lines (timestamp, object address, local port);
 *  - tables are compared cell by cell (column widths follow the cell contents,
 *    which differ once IDs are replaced);
 *  - everything else (durations, DB sizes, raft indexes, hashes, the server
 *    version) only when a test asks for it with one of the named
 *    normalisers below.
 * Whatever is not normalised must match byte for byte.
 */
import { spawn } from 'child_process';
import { createHash } from 'crypto';
import * as grpc from '@grpc/grpc-js';
import { apiPackageDefinition } from '../../src/util/proto';
import { etcdctl, NodeHandle, RunOptions, RunResult, toolPath } from './procs';

// ---------------------------------------------------------------------------
// Node identity

export interface NodeIdentity {
  node: NodeHandle;
  /** Short label used in failure messages ('etcd', 'etcd-ts'). */
  label: string;
  clusterIdDec: string;
  memberIdDec: string;
  clusterIdHex: string;
  memberIdHex: string;
}

/**
 * Reads the cluster and member IDs of a single-member node from
 * `etcdctl member list -w json`. The IDs are uint64 values, so they are taken
 * from the text (JSON.parse would round them).
 */
export async function identify(node: NodeHandle, label: string): Promise<NodeIdentity> {
  const res = await etcdctl(node.endpoint, ['member', 'list', '-w', 'json']);
  if (res.code !== 0) throw new Error(`${label}: member list failed (code ${res.code}):\n${res.stderr}`);
  const cluster = /"cluster_id":(\d+)/.exec(res.stdout);
  const member = /"member_id":(\d+)/.exec(res.stdout);
  if (!cluster || !member) throw new Error(`${label}: no cluster_id/member_id in member list output:\n${res.stdout}`);
  return {
    node,
    label,
    clusterIdDec: cluster[1],
    memberIdDec: member[1],
    clusterIdHex: BigInt(cluster[1]).toString(16),
    memberIdHex: BigInt(member[1]).toString(16),
  };
}

// ---------------------------------------------------------------------------
// Normalisers

/** A table/simple-output row: column header -> cell text. */
export type Row = Map<string, string>;

export interface Normalizer {
  name: string;
  /** Applied to each table row (and to simple-output rows when columns are known). */
  row?: (row: Row, problems: string[]) => void;
  /** Applied to the whole text (JSON and `-w fields` output). */
  text?: (s: string, problems: string[]) => string;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function replaceWhole(s: string, value: string, by: string, alphabet: string): string {
  if (value === '') return s;
  return s.replace(new RegExp(`(?<![${alphabet}])${escapeRe(value)}(?![${alphabet}])`, 'g'), by);
}

function setCell(row: Row, col: string, f: (v: string) => string): void {
  const v = row.get(col);
  if (v !== undefined) row.set(col, f(v));
}

/** Replaces the value of a JSON number field (`"key":123`) everywhere. */
function jsonNumber(s: string, key: string, by: (v: string) => string): string {
  return s.replace(new RegExp(`"${escapeRe(key)}":(-?\\d+)`, 'g'), (_m, v: string) => `"${key}":${by(v)}`);
}

/** Replaces the value of a `-w fields` line (`"Key" : 123`) everywhere. */
function fieldsValue(s: string, key: string, by: (v: string) => string): string {
  return s.replace(new RegExp(`^"${escapeRe(key)}" : (.*)$`, 'gm'), (_m, v: string) => `"${key}" : ${by(v)}`);
}

/** A Go time.Duration string: 2.5ms, 812µs, 1m2.5s. */
const GO_DURATION = '(?:\\d+(?:\\.\\d+)?(?:ns|µs|us|ms|s|m|h))+';

/** `took = 2.1ms`, the TOOK column and `"took":"2.1ms"` of `endpoint health`. */
export const durations: Normalizer = {
  name: 'durations',
  row: (row) => setCell(row, 'TOOK', (v) => (new RegExp(`^${GO_DURATION}$`).test(v) ? '<duration>' : v)),
  text: (s) =>
    s
      .replace(new RegExp(`took = ${GO_DURATION}`, 'g'), 'took = <duration>')
      .replace(new RegExp(`"took":"${GO_DURATION}"`, 'g'), '"took":"<duration>"'),
};

/** DB SIZE, IN USE and PERCENTAGE NOT IN USE (storage layout differs by design). */
export const dbSizes: Normalizer = {
  name: 'dbSizes',
  row: (row, problems) => {
    for (const col of ['DB SIZE', 'IN USE']) {
      setCell(row, col, (v) => {
        if (!/^\d+(\.\d+)? (B|kB|MB|GB)$/.test(v)) problems.push(`${col} cell is not a size: ${JSON.stringify(v)}`);
        return '<size>';
      });
    }
    setCell(row, 'PERCENTAGE NOT IN USE', (v) => {
      if (!/^\d+%$/.test(v)) problems.push(`PERCENTAGE NOT IN USE is not a percentage: ${JSON.stringify(v)}`);
      return '<percent>';
    });
  },
  text: (s) => {
    for (const k of ['dbSize', 'dbSizeInUse']) s = jsonNumber(s, k, () => '<size>');
    for (const k of ['DBSize', 'DBSizeInUse']) s = fieldsValue(s, k, (v) => (/^\d+$/.test(v) ? '<size>' : v));
    return s;
  },
};

/**
 * Raft index / applied index: the two clusters start at different indexes, so
 * the values are replaced, after checking that index == applied index within
 * the output (a settled single member has applied everything it committed).
 * The per-write increment is checked by a separate test.
 */
export const raftIndexes: Normalizer = {
  name: 'raftIndexes',
  row: (row, problems) => {
    const idx = row.get('RAFT INDEX');
    const applied = row.get('RAFT APPLIED INDEX');
    if (idx === undefined && applied === undefined) return;
    if (!/^\d+$/.test(idx ?? '') || idx !== applied) {
      problems.push(`RAFT INDEX ${JSON.stringify(idx)} vs RAFT APPLIED INDEX ${JSON.stringify(applied)}`);
    }
    row.set('RAFT INDEX', '<raft-index>');
    row.set('RAFT APPLIED INDEX', '<raft-index>');
  },
  text: (s, problems) => {
    const pairs: [string, string, (t: string, k: string, by: (v: string) => string) => string, RegExp, RegExp][] = [
      ['raftIndex', 'raftAppliedIndex', jsonNumber, /"raftIndex":(\d+)/g, /"raftAppliedIndex":(\d+)/g],
      ['RaftIndex', 'RaftAppliedIndex', fieldsValue, /^"RaftIndex" : (\d+)$/gm, /^"RaftAppliedIndex" : (\d+)$/gm],
    ];
    for (const [a, b, repl, reA, reB] of pairs) {
      const va = [...s.matchAll(reA)].map((m) => m[1]);
      const vb = [...s.matchAll(reB)].map((m) => m[1]);
      if (va.length === 0 && vb.length === 0) continue;
      if (va.join() !== vb.join()) problems.push(`${a} ${va.join()} vs ${b} ${vb.join()}`);
      s = repl(s, a, () => '<raft-index>');
      s = repl(s, b, () => '<raft-index>');
    }
    return s;
  },
};

/** The server version: must be a 3.6.x release string, the patch level may differ. */
export const serverVersion: Normalizer = {
  name: 'serverVersion',
  row: (row, problems) =>
    setCell(row, 'VERSION', (v) => {
      if (!/^3\.6\.\d+$/.test(v)) problems.push(`VERSION is not 3.6.x: ${JSON.stringify(v)}`);
      return '3.6.x';
    }),
  text: (s, problems) => {
    const check = (v: string) => {
      if (!/^3\.6\.\d+$/.test(v)) problems.push(`version is not 3.6.x: ${JSON.stringify(v)}`);
      return '3.6.x';
    };
    return s
      .replace(/"version":"([^"]*)"/g, (_m, v: string) => `"version":"${check(v)}"`)
      .replace(/^"Version" : "([^"]*)"$/gm, (_m, v: string) => `"Version" : "${check(v)}"`);
  },
};

/** KV hashes differ between implementations (different storage encodings); only the shape is compared. */
export const kvHashes: Normalizer = {
  name: 'kvHashes',
  row: (row, problems) =>
    setCell(row, 'HASH', (v) => {
      if (!/^\d+$/.test(v)) problems.push(`HASH is not a number: ${JSON.stringify(v)}`);
      return '<hash>';
    }),
  text: (s) => jsonNumber(s, 'hash', () => '<hash>'),
};

// ---------------------------------------------------------------------------
// Base normalisation

/** The columns of `etcdctl endpoint status` (table header and `-w simple` order). */
export const STATUS_COLUMNS = [
  'ENDPOINT',
  'ID',
  'VERSION',
  'STORAGE VERSION',
  'DB SIZE',
  'IN USE',
  'PERCENTAGE NOT IN USE',
  'QUOTA',
  'IS LEADER',
  'IS LEARNER',
  'RAFT TERM',
  'RAFT INDEX',
  'RAFT APPLIED INDEX',
  'ERRORS',
  'DOWNGRADE TARGET VERSION',
  'DOWNGRADE ENABLED',
];

export interface NormalizeOptions {
  normalizers?: Normalizer[];
  /** Column names of comma-separated `-w simple` rows (e.g. STATUS_COLUMNS), so row normalisers apply. */
  simpleColumns?: string[];
}

function identityAndAddresses(s: string, id: NodeIdentity): string {
  const { node } = id;
  s = s.split(`127.0.0.1:${node.clientPort}`).join('<client-addr>');
  s = s.split(`127.0.0.1:${node.peerPort}`).join('<peer-addr>');
  s = replaceWhole(s, id.clusterIdDec, '<cluster-id>', '0-9');
  s = replaceWhole(s, id.memberIdDec, '<member-id>', '0-9');
  s = replaceWhole(s, id.clusterIdHex, '<cluster-id>', '0-9a-fA-F');
  s = replaceWhole(s, id.memberIdHex, '<member-id>', '0-9a-fA-F');
  return s;
}

/** etcdctl's client-side zap warnings: timestamp, Go object address and local port vary per run. */
function clientLogLines(s: string): string {
  return s.replace(/^\{"level":.*\}$/gm, (line) =>
    line
      .replace(/"ts":"[^"]*"/, '"ts":"<ts>"')
      .replace(/etcd-endpoints:\/\/0x[0-9a-f]+\//g, 'etcd-endpoints://<ptr>/')
      .replace(/LocalAddr: '127\.0\.0\.1:\d+'/g, "LocalAddr: '<local-addr>'"),
  );
}

const isBorder = (l: string) => /^\+[-+]+\+$/.test(l);
const isTableRow = (l: string) => l.length >= 2 && l.startsWith('|') && l.endsWith('|');

/** Rewrites tablewriter tables as canonical `| a | b |` rows, applying row normalisers per column. */
function tables(s: string, normalizers: Normalizer[], problems: string[]): string {
  const lines = s.split('\n');
  let header: string[] | undefined;
  const out: string[] = [];
  for (const line of lines) {
    if (isBorder(line)) {
      out.push('+--+');
      continue;
    }
    if (!isTableRow(line)) {
      header = undefined;
      out.push(line);
      continue;
    }
    const cells = line
      .slice(1, -1)
      .split('|')
      .map((c) => c.trim());
    if (header === undefined) {
      header = cells;
      out.push(`| ${cells.join(' | ')} |`);
      continue;
    }
    const row: Row = new Map(header.map((h, i) => [h, cells[i] ?? '']));
    for (const n of normalizers) n.row?.(row, problems);
    out.push(`| ${header.map((h) => row.get(h) ?? '').join(' | ')} |`);
  }
  return out.join('\n');
}

function simpleRows(s: string, columns: string[], normalizers: Normalizer[], problems: string[]): string {
  return s
    .split('\n')
    .map((line) => {
      const cells = line.split(', ');
      if (cells.length !== columns.length) return line;
      const row: Row = new Map(columns.map((c, i) => [c, cells[i]]));
      for (const n of normalizers) n.row?.(row, problems);
      return columns.map((c) => row.get(c) ?? '').join(', ');
    })
    .join('\n');
}

export interface Normalized {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Invariant violations found while normalising (e.g. raft index != applied index). */
  problems: string[];
}

export function normalize(res: RunResult, id: NodeIdentity, opts: NormalizeOptions = {}): Normalized {
  const normalizers = opts.normalizers ?? [];
  const problems: string[] = [];
  const one = (s: string) => {
    s = identityAndAddresses(s, id);
    s = clientLogLines(s);
    s = tables(s, normalizers, problems);
    if (opts.simpleColumns) s = simpleRows(s, opts.simpleColumns, normalizers, problems);
    for (const n of normalizers) if (n.text) s = n.text(s, problems);
    return s;
  };
  return { code: res.code, stdout: one(res.stdout), stderr: one(res.stderr), problems };
}

// ---------------------------------------------------------------------------
// Running and comparing

export interface PairRun {
  args: string[];
  ref: RunResult;
  ts: RunResult;
  refNorm: Normalized;
  tsNorm: Normalized;
}

export interface PairOptions extends NormalizeOptions {
  /** stdin for etcdctl (e.g. the interactive txn script). */
  input?: string;
  timeoutMs?: number;
}

/** Runs `etcdctl <args>` against both nodes concurrently and normalises both results. */
export async function runPair(ref: NodeIdentity, ts: NodeIdentity, args: string[], opts: PairOptions = {}): Promise<PairRun> {
  const runOpts: RunOptions = { input: opts.input, timeoutMs: opts.timeoutMs ?? 15_000 };
  const [r, t] = await Promise.all([etcdctl(ref.node.endpoint, args, runOpts), etcdctl(ts.node.endpoint, args, runOpts)]);
  return { args, ref: r, ts: t, refNorm: normalize(r, ref, opts), tsNorm: normalize(t, ts, opts) };
}

const indent = (s: string) =>
  s === ''
    ? '    (empty)'
    : s
        .replace(/\n$/, '')
        .split('\n')
        .map((l) => `    ${l}`)
        .join('\n');

function describeRun(label: string, r: RunResult): string {
  return `--- ${label}: exit ${r.code}${r.signal ? ` (signal ${r.signal})` : ''}\n  stdout:\n${indent(r.stdout)}\n  stderr:\n${indent(r.stderr)}`;
}

/** A small line diff (reference lines prefixed '-', etcd-ts lines '+'). */
export function lineDiff(a: string, b: string): string {
  const x = a.split('\n');
  const y = b.split('\n');
  const n = x.length;
  const m = y.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) {
      out.push(`  ${x[i]}`);
      i++;
      j++;
    } else if (i < n && (j === m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      out.push(`- ${x[i++]}`);
    } else {
      out.push(`+ ${y[j++]}`);
    }
  }
  return out.join('\n');
}

/**
 * Throws (failing the test) unless both runs have the same exit code, stdout
 * and stderr after normalisation and no normaliser reported a problem. The
 * message shows the command, both raw outputs, and a diff of the normalised ones.
 */
export function expectSameOutput(run: PairRun, labels: [string, string] = ['etcd', 'etcd-ts']): void {
  const { refNorm: a, tsNorm: b } = run;
  const mismatches: string[] = [];
  if (a.code !== b.code) mismatches.push(`exit code: ${labels[0]} ${a.code}, ${labels[1]} ${b.code}`);
  if (a.stdout !== b.stdout) mismatches.push(`stdout differs (normalised; - ${labels[0]}, + ${labels[1]}):\n${lineDiff(a.stdout, b.stdout)}`);
  if (a.stderr !== b.stderr) mismatches.push(`stderr differs (normalised; - ${labels[0]}, + ${labels[1]}):\n${lineDiff(a.stderr, b.stderr)}`);
  for (const p of a.problems) mismatches.push(`${labels[0]} output invariant: ${p}`);
  for (const p of b.problems) mismatches.push(`${labels[1]} output invariant: ${p}`);
  if (mismatches.length === 0) return;
  throw new Error(
    [`etcdctl ${run.args.join(' ')}`, ...mismatches, describeRun(labels[0], run.ref), describeRun(labels[1], run.ts)].join('\n\n'),
  );
}

// ---------------------------------------------------------------------------
// Long-running etcdctl (watch): started, driven by a script, then stopped

/**
 * A running etcdctl whose stdin stays open (for `watch -i`). It is wrapped in
 * coreutils `timeout`, so it dies on its own after `maxLifetimeMs` even if the
 * test process is killed first; stop() sends SIGTERM (forwarded by timeout).
 */
export interface RunningCtl {
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Writes to etcdctl's stdin. */
  write(s: string): void;
  /** Resolves when etcdctl has exited (by itself or by stop()). */
  readonly exited: Promise<RunResult>;
  /** Stops etcdctl unless it has exited already; resolves with everything it printed. */
  stop(): Promise<RunResult>;
  /** Resolves once stdout+stderr satisfy `pred`; rejects with the output so far after timeoutMs. */
  waitOutput(pred: (stdout: string, stderr: string) => boolean, timeoutMs?: number): Promise<void>;
}

export function startEtcdctl(endpoint: string, args: string[], opts: { maxLifetimeMs?: number; env?: Record<string, string> } = {}): RunningCtl {
  const lifetimeS = Math.ceil((opts.maxLifetimeMs ?? 30_000) / 1000);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('ETCDCTL_')) env[k] = v;
  Object.assign(env, opts.env ?? {});
  const child = spawn('timeout', ['-k', '2', `${lifetimeS}s`, toolPath('etcdctl'), `--endpoints=${endpoint}`, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env,
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const listeners = new Set<() => void>();
  const changed = () => {
    for (const l of [...listeners]) l();
  };
  child.stdout.on('data', (d: Buffer) => {
    out.push(d);
    changed();
  });
  child.stderr.on('data', (d: Buffer) => {
    err.push(d);
    changed();
  });
  child.stdin.on('error', () => undefined);
  const stdout = () => Buffer.concat(out).toString('utf8');
  const stderr = () => Buffer.concat(err).toString('utf8');
  let stoppedByUs = false;
  const exited = new Promise<RunResult>((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`failed to run etcdctl: ${e.message}`)));
    child.once('close', (code, signal) => {
      changed();
      // `timeout` reports a forwarded SIGTERM as 124/143; report it as the signal it was.
      if (stoppedByUs && signal === null && (code === 124 || code === 143)) resolve({ code: null, signal: 'SIGTERM', stdout: stdout(), stderr: stderr() });
      else resolve({ code, signal, stdout: stdout(), stderr: stderr() });
    });
  });
  let exitedAlready = false;
  void exited.then(
    () => (exitedAlready = true),
    () => (exitedAlready = true),
  );
  return {
    stdout,
    stderr,
    write: (s) => {
      if (!child.stdin.destroyed) child.stdin.write(s);
    },
    exited,
    stop: async () => {
      if (!exitedAlready) {
        stoppedByUs = true;
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 3_000);
        try {
          return await exited;
        } finally {
          clearTimeout(t);
        }
      }
      return exited;
    },
    waitOutput: (pred, timeoutMs = 5_000) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (pred(stdout(), stderr())) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve();
          } else if (exitedAlready) {
            listeners.delete(check);
            clearTimeout(timer);
            reject(new Error(`etcdctl exited before the expected output\n--- stdout ---\n${stdout()}\n--- stderr ---\n${stderr()}`));
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for etcdctl output\n--- stdout ---\n${stdout()}\n--- stderr ---\n${stderr()}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      }),
  };
}

export interface ScriptedPairOptions extends NormalizeOptions {
  maxLifetimeMs?: number;
  env?: Record<string, string>;
}

/**
 * Starts `etcdctl <args>` against both nodes at the same time, runs `script`
 * for each (with its node and its running etcdctl; e.g. wait, write, wait),
 * then stops whichever etcdctl is still running and normalises both results.
 */
export async function runScriptedPair(
  ref: NodeIdentity,
  ts: NodeIdentity,
  args: string[],
  script: (node: NodeHandle, ctl: RunningCtl) => Promise<void>,
  opts: ScriptedPairOptions = {},
): Promise<PairRun> {
  const one = async (id: NodeIdentity): Promise<RunResult> => {
    const ctl = startEtcdctl(id.node.endpoint, args, { maxLifetimeMs: opts.maxLifetimeMs, env: opts.env });
    try {
      await script(id.node, ctl);
    } finally {
      await ctl.stop();
    }
    return ctl.exited;
  };
  const [r, t] = await Promise.all([one(ref), one(ts)]);
  return { args, ref: r, ts: t, refNorm: normalize(r, ref, opts), tsNorm: normalize(t, ts, opts) };
}

// ---------------------------------------------------------------------------
// Raw gRPC clients (Watch stream, KV) for protocol-level comparisons

/* eslint-disable @typescript-eslint/no-explicit-any */
function etcdserverpb(): any {
  return (grpc.loadPackageDefinition(apiPackageDefinition()) as any).etcdserverpb;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** Channel options: an own connection per client (no shared subchannel), no receive limit. */
export const RAW_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.use_local_subchannel_pool': 1,
  'grpc.max_receive_message_length': -1,
  'grpc.max_send_message_length': -1,
};

export interface RawKeyValue {
  key: Buffer;
  create_revision: string;
  mod_revision: string;
  version: string;
  value: Buffer;
  lease: string;
}
export interface RawEvent {
  type: number;
  kv: RawKeyValue;
  prev_kv: RawKeyValue | null;
}
export interface RawWatchResponse {
  header: { cluster_id: string; member_id: string; revision: string; raft_term: string };
  watch_id: string;
  created: boolean;
  canceled: boolean;
  compact_revision: string;
  cancel_reason: string;
  fragment: boolean;
  events: RawEvent[];
}

export interface RawCreate {
  key: string | Buffer;
  range_end?: string | Buffer;
  start_revision?: number;
  progress_notify?: boolean;
  /** 0 NOPUT, 1 NODELETE */
  filters?: number[];
  prev_kv?: boolean;
  watch_id?: number;
  fragment?: boolean;
}

/** A raw etcdserverpb.Watch bidi stream over its own connection; responses queue up in arrival order. */
export class RawWatchStream {
  readonly responses: { at: number; resp: RawWatchResponse }[] = [];
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<object, RawWatchResponse>;
  private readonly listeners = new Set<() => void>();
  private cursor = 0;
  ended = false;
  error: Error | undefined;

  /**
   * opts.onResponse sees every response as it arrives; with opts.keep false responses are not kept
   * (for streams carrying too many to hold), so take/drain/waitFor see none.
   */
  constructor(endpoint: string, opts: { keep?: boolean; onResponse?: (r: RawWatchResponse) => void } = {}) {
    const Watch = etcdserverpb().Watch;
    this.client = new Watch(endpoint, grpc.credentials.createInsecure(), RAW_CHANNEL_OPTIONS);
    this.call = (this.client as unknown as { Watch(): grpc.ClientDuplexStream<object, RawWatchResponse> }).Watch();
    const keep = opts.keep ?? true;
    this.call.on('data', (resp: RawWatchResponse) => {
      opts.onResponse?.(resp);
      if (keep) this.responses.push({ at: Date.now(), resp });
      this.notify();
    });
    this.call.on('error', (e: Error) => {
      this.error = e;
      this.ended = true;
      this.notify();
    });
    this.call.on('end', () => {
      this.ended = true;
      this.notify();
    });
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  send(req: object): void {
    this.call.write(req);
  }
  create(c: RawCreate): void {
    const b = (v: string | Buffer | undefined) => (v === undefined ? Buffer.alloc(0) : Buffer.isBuffer(v) ? v : Buffer.from(v));
    this.send({
      create_request: {
        key: b(c.key),
        range_end: b(c.range_end),
        start_revision: String(c.start_revision ?? 0),
        progress_notify: c.progress_notify ?? false,
        filters: c.filters ?? [],
        prev_kv: c.prev_kv ?? false,
        watch_id: String(c.watch_id ?? 0),
        fragment: c.fragment ?? false,
      },
    });
  }
  cancel(watchId: number): void {
    this.send({ cancel_request: { watch_id: String(watchId) } });
  }
  progress(): void {
    this.send({ progress_request: {} });
  }

  /** Resolves when pred(all responses) holds; rejects after timeoutMs with what arrived. */
  waitFor(pred: (all: RawWatchResponse[]) => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        let ok = false;
        try {
          ok = pred(this.responses.map((r) => r.resp));
        } catch (e) {
          done();
          reject(e);
          return;
        }
        if (ok) {
          done();
          resolve();
        } else if (this.ended) {
          done();
          reject(new Error(`watch stream ended (${this.error?.message ?? 'end'}) while waiting for ${what}; got ${this.responses.length} responses`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${this.responses.length} responses:\n${describeResponses(this.responses.map((r) => r.resp).slice(-20))}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Waits until at least `n` responses arrived in total, then returns the ones not taken yet. */
  async take(n: number, timeoutMs = 10_000): Promise<RawWatchResponse[]> {
    const want = this.cursor + n;
    await this.waitFor((all) => all.length >= want, timeoutMs, `${n} more responses`);
    const out = this.responses.slice(this.cursor, want).map((r) => r.resp);
    this.cursor = want;
    return out;
  }

  /** Waits until no response has arrived for quietMs (bounded by maxMs); returns the ones not taken yet. */
  async drain(quietMs = 300, maxMs = 10_000): Promise<RawWatchResponse[]> {
    const deadline = Date.now() + maxMs;
    for (;;) {
      const count = this.responses.length;
      await new Promise((r) => setTimeout(r, quietMs));
      if (this.responses.length === count || Date.now() >= deadline) break;
    }
    const out = this.responses.slice(this.cursor).map((r) => r.resp);
    this.cursor = this.responses.length;
    return out;
  }

  close(): void {
    try {
      this.call.end();
      this.call.cancel();
    } catch {
      // already closed
    }
    this.client.close();
  }
}

export interface RawPutResult {
  header: { revision: string };
  prev_kv: RawKeyValue | null;
}

/** Promisified etcdserverpb.KV over its own connection. */
export class RawKv {
  private readonly client: grpc.Client;
  constructor(endpoint: string) {
    const KV = etcdserverpb().KV;
    this.client = new KV(endpoint, grpc.credentials.createInsecure(), RAW_CHANNEL_OPTIONS);
  }
  private unary<T>(method: string, req: object, timeoutMs = 10_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const fn = (this.client as unknown as Record<string, (r: object, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: Error | null, v: T) => void) => void>)[method];
      fn.call(this.client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (e, v) => (e ? reject(e) : resolve(v)));
    });
  }
  put(key: string | Buffer, value: string | Buffer, opts: { prev_kv?: boolean } = {}): Promise<RawPutResult> {
    return this.unary('Put', { key: Buffer.from(key), value: Buffer.from(value), prev_kv: opts.prev_kv ?? false });
  }
  delete(key: string | Buffer, rangeEnd?: string | Buffer): Promise<{ header: { revision: string }; deleted: string }> {
    return this.unary('DeleteRange', { key: Buffer.from(key), range_end: rangeEnd === undefined ? Buffer.alloc(0) : Buffer.from(rangeEnd) });
  }
  /** A txn without compares whose success branch is `ops` (each a put or a delete-range). */
  txn(ops: ({ put: [string | Buffer, string | Buffer] } | { del: [string | Buffer, (string | Buffer)?] })[]): Promise<{ header: { revision: string }; succeeded: boolean }> {
    const success = ops.map((op) =>
      'put' in op
        ? { request_put: { key: Buffer.from(op.put[0]), value: Buffer.from(op.put[1]) } }
        : { request_delete_range: { key: Buffer.from(op.del[0]), range_end: op.del[1] === undefined ? Buffer.alloc(0) : Buffer.from(op.del[1]) } },
    );
    return this.unary('Txn', { compare: [], success, failure: [] });
  }
  compact(revision: number, physical = false): Promise<object> {
    return this.unary('Compact', { revision: String(revision), physical });
  }
  async currentRevision(): Promise<number> {
    const r = await this.unary<{ header: { revision: string } }>('Range', { key: Buffer.from('\0'), limit: '1', count_only: true });
    return Number(r.header.revision);
  }
  close(): void {
    this.client.close();
  }
}

/** Shows a value in diffs: short printable values as text, others as length + digest. */
function showValue(v: Buffer): string {
  if (v.length <= 64 && /^[\x20-\x7e]*$/.test(v.toString('latin1'))) return v.toString('latin1');
  return `<${v.length} bytes sha1:${createHash('sha1').update(v).digest('hex').slice(0, 12)}>`;
}

function canonKv(kv: RawKeyValue | null | undefined): object | null {
  if (!kv) return null;
  return {
    key: showValue(kv.key),
    create_revision: Number(kv.create_revision),
    mod_revision: Number(kv.mod_revision),
    version: Number(kv.version),
    value: showValue(kv.value),
    lease: Number(kv.lease),
  };
}

/**
 * A WatchResponse as plain comparable data: every field etcd sends, with the
 * header's cluster and member IDs (which differ between two clusters) left out.
 */
export function canonWatchResponse(r: RawWatchResponse): Record<string, unknown> {
  return {
    header: r.header ? { revision: Number(r.header.revision), raft_term: Number(r.header.raft_term) } : null,
    watch_id: Number(r.watch_id),
    created: r.created,
    canceled: r.canceled,
    compact_revision: Number(r.compact_revision),
    cancel_reason: r.cancel_reason,
    fragment: r.fragment,
    events: (r.events ?? []).map((e) => ({ type: e.type === 1 ? 'DELETE' : 'PUT', kv: canonKv(e.kv), prev_kv: canonKv(e.prev_kv) })),
  };
}

export function describeResponses(rs: RawWatchResponse[]): string {
  return rs.map((r) => JSON.stringify(canonWatchResponse(r))).join('\n');
}

/**
 * Groups canonical responses by watch_id, keeping arrival order within each
 * group: etcd orders responses of different watchers of one stream arbitrarily
 * (Go map iteration), only the order per watcher is part of the contract.
 */
export function byWatchId(rs: RawWatchResponse[]): Record<string, Record<string, unknown>[]> {
  const out: Record<string, Record<string, unknown>[]> = {};
  for (const r of rs) (out[String(Number(r.watch_id))] ??= []).push(canonWatchResponse(r));
  return out;
}
