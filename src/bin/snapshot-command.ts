// `etcd-ts snapshot status|restore`: etcdutl's snapshot commands for etcd-ts snapshot files (etcd's own
// are bbolt files, which etcdutl reads; ours are read here). Same flags, defaults, output formats and exit
// codes as etcdutl 3.6; errors are one line on stderr ("Error: ..."), progress goes to stderr as log lines.
import * as path from 'node:path';
import { parseInitialCluster, parseUrlList } from '../config/urls';
import { RestoreError, SnapshotFormatError, checkBootstrap, checkRestoreTarget, SnapshotStatus, humanBytes, restoreSnapshot, snapshotStatus } from '../snapshot';
import { idToHex } from '../server/members';
import { createLogger } from '../util/logger';

/** etcdutl's exit codes (cobrautl). */
const EXIT_ERROR = 1;
const EXIT_BAD_FEATURE = 4;
const EXIT_BAD_ARGS = 128;

class CommandError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    readonly usage?: string,
  ) {
    super(message);
  }
}

interface FlagSpec {
  name: string;
  short?: string;
  kind: 'string' | 'bool' | 'uint';
  default: string | boolean | number;
  help: string;
}

const GLOBAL_FLAGS: FlagSpec[] = [
  { name: 'write-out', short: 'w', kind: 'string', default: 'simple', help: 'output format: fields, json, protobuf, simple or table' },
];

const RESTORE_FLAGS: FlagSpec[] = [
  { name: 'bump-revision', kind: 'uint', default: 0, help: 'add this much to the restored revision (needs --mark-compacted)' },
  { name: 'data-dir', kind: 'string', default: '', help: 'the new member data directory to create (default "<name>.etcd")' },
  { name: 'initial-advertise-peer-urls', kind: 'string', default: 'http://localhost:2380', help: "this member's peer URLs" },
  { name: 'initial-cluster', kind: 'string', default: 'default=http://localhost:2380', help: 'the members of the restored cluster, name=peer-url,...' },
  { name: 'initial-cluster-token', kind: 'string', default: 'etcd-cluster', help: 'the token the member and cluster IDs are derived from' },
  { name: 'initial-memory-map-size', kind: 'uint', default: 10737418240, help: 'accepted for etcdutl compatibility; etcd-ts has no memory map (ignored)' },
  { name: 'mark-compacted', kind: 'bool', default: false, help: 'make the (bumped) restored revision the compaction point (needs --bump-revision)' },
  { name: 'name', kind: 'string', default: 'default', help: "this member's name" },
  { name: 'skip-hash-check', kind: 'bool', default: false, help: "restore even when the file has no SHA-256 (the format's own checks still apply)" },
  { name: 'wal-dir', kind: 'string', default: '', help: 'not supported: etcd-ts keeps its log inside the data dir' },
];

function flagUsage(flags: FlagSpec[]): string {
  const rows = flags.map((f) => {
    const left = `${f.short ? `-${f.short}, ` : '    '}--${f.name}${f.kind === 'bool' ? '' : ` ${f.kind === 'uint' ? 'uint' : 'string'}`}`;
    const dflt = f.kind === 'bool' || f.default === '' || f.default === 0 ? '' : ` (default ${typeof f.default === 'string' ? JSON.stringify(f.default) : f.default})`;
    return [left, f.help + dflt];
  });
  const width = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([l, r]) => `  ${l.padEnd(width)}   ${r}`).join('\n');
}

const SNAPSHOT_USAGE = `Usage:
  etcd-ts snapshot [command]

Commands:
  restore     Creates a new member data directory from an etcd-ts snapshot file
  status      Prints a summary of an etcd-ts snapshot file

Snapshots are taken from a running member with \`etcdctl snapshot save <file>\`.

Global Flags:
${flagUsage(GLOBAL_FLAGS)}
`;

const STATUS_USAGE = `Usage:
  etcd-ts snapshot status <filename> [flags]

Prints hash, revision, total keys, total size and version of a snapshot file.

Global Flags:
${flagUsage(GLOBAL_FLAGS)}
`;

const RESTORE_USAGE = `Usage:
  etcd-ts snapshot restore <filename> --data-dir <output dir> [flags]

Flags:
${flagUsage(RESTORE_FLAGS)}

Global Flags:
${flagUsage(GLOBAL_FLAGS)}
`;

type FlagValues = Map<string, string | boolean | number>;

/** pflag-style parsing: --f=v, --f v, -w v, -wv, -w=v; booleans --f or --f=true|false; -- ends flags. */
function parseFlags(argv: string[], specs: FlagSpec[], usage: string): { values: FlagValues; args: string[]; help: boolean } {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short as string, s]));
  const values: FlagValues = new Map(specs.map((s) => [s.name, s.default]));
  const args: string[] = [];
  let help = false;
  const set = (spec: FlagSpec, raw: string, shown: string) => {
    if (spec.kind === 'bool') {
      const v = /^(1|t|T|TRUE|true|True)$/.test(raw) ? true : /^(0|f|F|FALSE|false|False)$/.test(raw) ? false : undefined;
      if (v === undefined) throw new CommandError(`invalid argument ${JSON.stringify(raw)} for "${shown}" flag: not a boolean`, EXIT_ERROR, usage);
      values.set(spec.name, v);
    } else if (spec.kind === 'uint') {
      if (!/^[0-9]+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
        throw new CommandError(`invalid argument ${JSON.stringify(raw)} for "${shown}" flag: not an unsigned integer`, EXIT_ERROR, usage);
      }
      values.set(spec.name, Number(raw));
    } else values.set(spec.name, raw);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (a === '-h' || a === '--help') {
      help = true;
      continue;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      const spec = byName.get(name);
      if (!spec) throw new CommandError(`unknown flag: --${name}`, EXIT_ERROR, usage);
      if (eq >= 0) set(spec, a.slice(eq + 1), `--${name}`);
      else if (spec.kind === 'bool') values.set(spec.name, true);
      else if (i + 1 < argv.length) set(spec, argv[++i], `--${name}`);
      else throw new CommandError(`flag needs an argument: --${name}`, EXIT_ERROR, usage);
    } else if (a.startsWith('-') && a.length > 1) {
      const short = a[1];
      const spec = byShort.get(short);
      if (!spec) throw new CommandError(`unknown shorthand flag: '${short}' in ${a}`, EXIT_ERROR, usage);
      const rest = a.slice(2);
      const shown = `-${short}, --${spec.name}`;
      if (spec.kind === 'bool') set(spec, rest.startsWith('=') ? rest.slice(1) : 'true', shown);
      else if (rest !== '') set(spec, rest.startsWith('=') ? rest.slice(1) : rest, shown);
      else if (i + 1 < argv.length) set(spec, argv[++i], shown);
      else throw new CommandError(`flag needs an argument: '${short}' in -${short}`, EXIT_ERROR, usage);
    } else args.push(a);
  }
  return { values, args, help };
}

/** Go-style text for file system errors ("stat x: no such file or directory"). */
function describeError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && e.syscall && e.path) {
    const m = /^[A-Z0-9_]+: ([^,]+),/.exec(e.message);
    return `${e.syscall} ${e.path}: ${m ? m[1] : e.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------------------------------------
// status

/** tablewriter's layout as etcdutl uses it: centred upper-case header, cells aligned right. */
export function renderTable(header: string[], rows: string[][]): string {
  const heads = header.map((h) => h.toUpperCase());
  const widths = heads.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = '+' + widths.map((w) => '-'.repeat(w + 2)).join('+') + '+';
  const center = (s: string, w: number) => {
    const gap = w - s.length;
    const left = Math.floor(gap / 2);
    return ' '.repeat(left) + s + ' '.repeat(gap - left);
  };
  const out = [line, '| ' + heads.map((h, i) => center(h, widths[i])).join(' | ') + ' |', line];
  for (const r of rows) out.push('| ' + r.map((c, i) => c.padStart(widths[i])).join(' | ') + ' |');
  out.push(line);
  return out.join('\n') + '\n';
}

export function formatStatus(s: SnapshotStatus, format: string): string {
  const row = [s.hash.toString(16), String(s.revision), String(s.totalKey), humanBytes(s.totalSize), s.version];
  switch (format) {
    case 'simple':
      return row.join(', ') + '\n';
    case 'table':
      return renderTable(['hash', 'revision', 'total keys', 'total size', 'version'], [row]);
    case 'json':
      return JSON.stringify({ hash: s.hash, revision: s.revision, totalKey: s.totalKey, totalSize: s.totalSize, version: s.version }) + '\n';
    case 'fields':
      return [`"Hash" : ${s.hash}`, `"Revision" : ${s.revision}`, `"Keys" : ${s.totalKey}`, `"Size" : ${s.totalSize}`, `"Version" : ${s.version}`].join('\n') + '\n';
    case 'protobuf':
      throw new CommandError('protobuf not supported as output format', EXIT_BAD_FEATURE);
    default:
      throw new CommandError('unsupported output format', EXIT_BAD_FEATURE);
  }
}

function statusCommand(argv: string[]): number {
  const { values, args, help } = parseFlags(argv, GLOBAL_FLAGS, STATUS_USAGE);
  if (help) {
    process.stdout.write(STATUS_USAGE);
    return 0;
  }
  if (args.length !== 1) throw new CommandError('snapshot status requires exactly one argument', EXIT_BAD_ARGS);
  const format = values.get('write-out') as string;
  if (!['simple', 'table', 'json', 'fields', 'protobuf'].includes(format)) throw new CommandError('unsupported output format', EXIT_BAD_FEATURE);
  const status = snapshotStatus(args[0]);
  process.stdout.write(formatStatus(status, format));
  return 0;
}

// ---------------------------------------------------------------------------------------------------------
// restore

function parseCluster(raw: string): Map<string, string[]> {
  const parsed = parseInitialCluster(raw);
  if (!parsed.ok) throw new CommandError(parsed.reason, EXIT_ERROR);
  const cluster = new Map<string, string[]>();
  for (const m of parsed.value) cluster.set(m.name, [...(cluster.get(m.name) ?? []), m.peerUrl.href]);
  if (cluster.size === 0) throw new CommandError('initial cluster unset and no discovery URL found', EXIT_ERROR);
  return cluster;
}

async function restoreCommand(argv: string[]): Promise<number> {
  const { values, args, help } = parseFlags(argv, [...RESTORE_FLAGS, ...GLOBAL_FLAGS], RESTORE_USAGE);
  if (help) {
    process.stdout.write(RESTORE_USAGE);
    return 0;
  }
  if (args.length !== 1) throw new CommandError('snapshot restore requires exactly one argument', EXIT_BAD_ARGS);
  const bump = values.get('bump-revision') as number;
  const markCompacted = values.get('mark-compacted') as boolean;
  if ((bump === 0 && markCompacted) || (bump > 0 && !markCompacted)) {
    throw new CommandError('--mark-compacted required if --revision-bump > 0', EXIT_BAD_ARGS);
  }
  if (values.get('wal-dir') !== '') {
    throw new CommandError('--wal-dir is not supported: etcd-ts keeps its log in the data dir', EXIT_ERROR);
  }
  const name = values.get('name') as string;
  const peerUrls = parseUrlList(values.get('initial-advertise-peer-urls') as string);
  if (!peerUrls.ok) throw new CommandError(peerUrls.reason, EXIT_ERROR);
  const cluster = parseCluster(values.get('initial-cluster') as string);
  const dataDir = (values.get('data-dir') as string) || `${name}.etcd`;
  const file = args[0];
  const initialAdvertisePeerUrls = peerUrls.value.map((u) => u.href);
  checkBootstrap({ name, initialCluster: cluster, initialAdvertisePeerUrls });
  checkRestoreTarget(dataDir);
  const log = createLogger('info', 'stderr');
  log.info({ path: file, 'data-dir': dataDir }, 'restoring snapshot');
  const started = Date.now();
  const result = await restoreSnapshot({
    snapshotPath: file,
    dataDir,
    name,
    initialCluster: cluster,
    initialClusterToken: values.get('initial-cluster-token') as string,
    initialAdvertisePeerUrls,
    skipHashCheck: values.get('skip-hash-check') as boolean,
    revisionBump: bump,
    markCompacted,
    onProgress: (p) => {
      const percent = p.totalBytes > 0 ? Math.floor((100 * p.bytesRead) / p.totalBytes) : 0;
      log.info({ records: p.records, 'read-bytes': p.bytesRead, 'total-bytes': p.totalBytes, percent }, 'restoring snapshot: progress');
    },
  });
  log.info(
    {
      path: file,
      'data-dir': path.resolve(dataDir),
      'member-id': idToHex(result.memberId),
      'cluster-id': idToHex(result.clusterId),
      revision: result.revision,
      'compact-revision': result.compactRevision,
      records: result.records,
      'took-ms': Date.now() - started,
    },
    'restored snapshot',
  );
  return 0;
}

// ---------------------------------------------------------------------------------------------------------

export async function snapshotCommand(argv: string[]): Promise<number> {
  // The global -w flag may come before the subcommand too.
  let i = 0;
  const leading: string[] = [];
  while (i < argv.length && argv[i].startsWith('-') && argv[i] !== '--') {
    const a = argv[i];
    leading.push(a);
    if ((a === '-w' || a === '--write-out') && i + 1 < argv.length) leading.push(argv[++i]);
    i++;
  }
  const sub = argv[i];
  const rest = [...leading, ...argv.slice(i + 1)];
  try {
    if (sub === undefined) {
      parseFlags(rest, GLOBAL_FLAGS, SNAPSHOT_USAGE);
      process.stdout.write(SNAPSHOT_USAGE);
      return 0;
    }
    switch (sub) {
      case 'status':
        return statusCommand(rest);
      case 'restore':
        return await restoreCommand(rest);
      case 'save':
        throw new CommandError('unknown command "save" for "etcd-ts snapshot": take snapshots with `etcdctl snapshot save <file>`', EXIT_ERROR);
      default:
        throw new CommandError(`unknown command ${JSON.stringify(sub)} for "etcd-ts snapshot"`, EXIT_ERROR, SNAPSHOT_USAGE);
    }
  } catch (err) {
    if (err instanceof CommandError) {
      process.stderr.write(`Error: ${err.message}\n`);
      if (err.usage) process.stderr.write(err.usage);
      return err.exitCode;
    }
    if (err instanceof SnapshotFormatError || err instanceof RestoreError) {
      process.stderr.write(`Error: ${err.message}\n`);
      return EXIT_ERROR;
    }
    process.stderr.write(`Error: ${describeError(err)}\n`);
    return EXIT_ERROR;
  }
}
