// Authentication and RBAC as etcd 3.6 does them, checked by running the same etcdctl script against a
// reference etcd member and an etcd-ts member and comparing every output (stdout, stderr, exit code) after
// normalising only what differs between two servers (IDs, ports, log timestamps, tokens).
import { NodeHandle, etcdctl, haveReferenceTools, startNode } from '../helpers';

jest.setTimeout(120_000);

const transcripts: Record<string, string[]> = {};

/** etcdctl's client-side warn lines carry timestamps, addresses and pointers: keep the error they report. */
function norm(text: string): string {
  return text
    .split('\n')
    .map((l) => {
      if (!l.startsWith('{"level"')) return l;
      try {
        const j = JSON.parse(l) as { msg?: string; method?: string; error?: string };
        return `[warn] ${j.msg} ${j.method ?? ''} ${j.error ?? ''}`;
      } catch {
        return l;
      }
    })
    .join('\n')
    .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:<port>')
    .replace(/\b[0-9a-f]{16}\b/g, '<id>')
    .trim();
}

// Each step: [etcdctl args, what it shows]. --user travels as user:password (etcdctl authenticates itself).
const SCRIPT: string[][] = [
  ['auth', 'status'],
  ['user', 'add', 'root:rootpw'],
  ['user', 'add', 'root:again'],
  ['role', 'add', 'patroni'],
  ['role', 'add', 'patroni'],
  ['role', 'grant-permission', 'patroni', 'readwrite', '/service/', '--prefix=true'],
  ['role', 'grant-permission', 'patroni', 'read', '/config', '/configz'],
  ['role', 'grant-permission', 'nosuchrole', 'read', '/x'],
  ['role', 'get', 'patroni'],
  ['role', 'get', 'nosuchrole'],
  ['user', 'add', 'patroni:patronipw'],
  ['user', 'grant-role', 'patroni', 'patroni'],
  ['user', 'grant-role', 'patroni', 'nosuchrole'],
  ['user', 'get', 'patroni'],
  ['user', 'list'],
  ['role', 'list'],
  ['auth', 'enable'],
  ['get', '/', '--prefix'],
  ['put', 'x', 'y'],
  ['--user', 'root:wrong', 'get', 'x'],
  ['--user', 'nobody:pw', 'get', 'x'],
  ['--user', 'patroni:patronipw', 'put', '/service/test', 'ok'],
  ['--user', 'patroni:patronipw', 'get', '/service/test', '--print-value-only'],
  ['--user', 'patroni:patronipw', 'get', '/service/', '--prefix', '--keys-only'],
  ['--user', 'patroni:patronipw', 'get', '/', '--prefix'],
  ['--user', 'patroni:patronipw', 'put', '/config', 'c'],
  ['--user', 'patroni:patronipw', 'get', '/config'],
  ['--user', 'patroni:patronipw', 'del', '/service/test', '--prev-kv'],
  ['--user', 'patroni:patronipw', 'txn', '--interactive=false'],
  ['--user', 'patroni:patronipw', 'compaction', '1'],
  ['--user', 'patroni:patronipw', 'user', 'list'],
  ['--user', 'patroni:patronipw', 'user', 'get', 'patroni'],
  ['--user', 'patroni:patronipw', 'role', 'get', 'patroni'],
  ['--user', 'patroni:patronipw', 'auth', 'status'],
  ['--user', 'root:rootpw', 'auth', 'status'],
  ['--user', 'root:rootpw', 'user', 'delete', 'root'],
  ['--user', 'root:rootpw', 'role', 'revoke-permission', 'patroni', '/nothing'],
  ['--user', 'root:rootpw', 'role', 'revoke-permission', 'patroni', '/config', '/configz'],
  ['--user', 'root:rootpw', 'user', 'revoke-role', 'patroni', 'patroni'],
  ['--user', 'patroni:patronipw', 'get', '/service/test'],
  ['--user', 'root:rootpw', 'user', 'passwd', 'patroni', '--interactive=false'],
  ['--user', 'patroni:patronipw', 'get', '/service/test'],
  ['--user', 'root:rootpw', 'get', '/service/test', '--print-value-only'],
  ['--user', 'root:rootpw', 'auth', 'disable'],
  ['get', '/service/test', '--print-value-only'],
];

/** stdin for steps that read it (txn, passwd). */
function stdinFor(args: string[]): string | undefined {
  if (args.includes('txn')) return 'value("/service/test") = "ok"\n\nput /service/test txn-ok\n\nget /outside\n\n';
  if (args.includes('passwd')) return 'newpatronipw\n';
  return undefined;
}

describe.each(['etcd', 'etcd-ts'] as const)('etcdctl user / role / auth (%s)', (kind) => {
  let node: NodeHandle;
  beforeAll(async () => {
    if (kind === 'etcd' && !haveReferenceTools()) throw new Error('reference etcd missing: run make tools');
    node = await startNode({ kind });
  });
  afterAll(async () => {
    await node?.destroy();
  });

  test('the runbook RBAC script gives etcd\'s outputs', async () => {
    const out: string[] = [];
    for (const args of SCRIPT) {
      const r = await etcdctl(node.endpoint, args, { input: stdinFor(args) });
      out.push(`$ etcdctl ${args.join(' ')}\n[${r.code}]\n${norm(r.stdout)}\n${norm(r.stderr)}`);
    }
    transcripts[kind] = out;
    if (process.env.AUTH_TRANSCRIPT) process.stdout.write(out.join('\n') + '\n');
    // the essentials, stated directly as well
    const text = out.join('\n');
    expect(text).toContain('$ etcdctl get / --prefix\n[1]');
    expect(text).toContain('etcdserver: user name is empty');
    expect(text).toContain('$ etcdctl --user patroni:patronipw get /service/test --print-value-only\n[0]\nok');
    expect(text).toContain('etcdserver: permission denied');
    if (kind === 'etcd-ts') {
      expect(transcripts['etcd-ts']).toEqual(transcripts.etcd);
    }
  });
});
