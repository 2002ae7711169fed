// Authentication and RBAC as etcd 3.6 does them, checked by running the same etcdctl script against a
// reference etcd member and an etcd-ts member and comparing every output (stdout, stderr, exit code) after
// normalising only what differs between two servers (IDs, ports, log timestamps, tokens).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { NodeHandle, etcdctl, haveReferenceTools, startNode, tmpDataDir } from '../helpers';
import { RAW_CHANNEL_OPTIONS } from '../helpers/compare';
import { apiPackageDefinition } from '../../src/util/proto';

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

describe.each([
  ['simple', ['--auth-token-ttl=2']],
  ['jwt', []],
] as const)('%s tokens (etcd-ts)', (tokenKind, extraArgs) => {
  let node: NodeHandle;
  let keyDir = '';
  beforeAll(async () => {
    const args: string[] = [...extraArgs];
    if (tokenKind === 'jwt') {
      keyDir = tmpDataDir('etcd-ts-jwt-keys-');
      const pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
      fs.writeFileSync(path.join(keyDir, 'jwt.key'), pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
      fs.writeFileSync(path.join(keyDir, 'jwt.pub'), pair.publicKey.export({ type: 'spki', format: 'pem' }));
      args.push(`--auth-token=jwt,pub-key=${path.join(keyDir, 'jwt.pub')},priv-key=${path.join(keyDir, 'jwt.key')},sign-method=RS256,ttl=3s`);
    }
    node = await startNode({ kind: 'etcd-ts', extraArgs: args });
    for (const args of [['user', 'add', 'root:rootpw'], ['user', 'grant-role', 'root', 'root'], ['auth', 'enable']]) {
      expect((await etcdctl(node.endpoint, args)).code).toBe(0);
    }
  });
  afterAll(async () => {
    await node?.destroy();
    if (keyDir) fs.rmSync(keyDir, { recursive: true, force: true });
  });

  /* eslint-disable @typescript-eslint/no-explicit-any */
  const pkg = () => (grpc.loadPackageDefinition(apiPackageDefinition()) as any).etcdserverpb;
  function unary<T>(service: string, method: string, req: object, token?: string): Promise<T> {
    const client = new (pkg()[service])(node.endpoint, grpc.credentials.createInsecure(), RAW_CHANNEL_OPTIONS);
    const md = new grpc.Metadata();
    if (token !== undefined) md.set('token', token);
    return new Promise<T>((resolve, reject) => {
      client[method](req, md, { deadline: Date.now() + 5000 }, (err: Error | null, v: T) => {
        client.close();
        if (err) reject(err);
        else resolve(v);
      });
    });
  }
  /* eslint-enable @typescript-eslint/no-explicit-any */

  test('a token works until --auth-token-ttl passes unused, then fails with "invalid auth token"; a made-up token fails too', async () => {
    const { token } = await unary<{ token: string }>('Auth', 'Authenticate', { name: 'root', password: 'rootpw' });
    if (tokenKind === 'simple') {
      expect(token).toMatch(/^[A-Za-z]{16}\.\d+$/);
    } else {
      const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as Record<string, unknown>;
      expect(Object.keys(claims).sort()).toEqual(['exp', 'revision', 'username']);
      expect(claims.username).toBe('root');
    }
    const range = { key: Buffer.from('k'), range_end: Buffer.alloc(0) };
    await expect(unary('KV', 'Range', range, token)).resolves.toBeDefined();
    if (tokenKind === 'simple') {
      // used within the TTL, a simple token stays alive
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        await expect(unary('KV', 'Range', range, token)).resolves.toBeDefined();
      }
      await new Promise((r) => setTimeout(r, 2500));
    } else {
      // a JWT lives its ttl (3 s) from issue, used or not
      await new Promise((r) => setTimeout(r, 4000));
    }
    await expect(unary('KV', 'Range', range, token)).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: 'etcdserver: invalid auth token' });
    const madeUp = tokenKind === 'simple' ? 'AAAAAAAAAAAAAAAA.999' : `${token.split('.')[0]}.eyJ1c2VybmFtZSI6InJvb3QifQ.c2ln`;
    await expect(unary('KV', 'Range', range, madeUp)).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: 'etcdserver: invalid auth token' });
    await expect(unary('KV', 'Range', range)).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: user name is empty' });
    await expect(unary('Auth', 'Authenticate', { name: 'root', password: 'nope' })).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'etcdserver: authentication failed, invalid user ID or password',
    });
  });
});

test('a JWT issued before users or roles changed is refused as old (etcd-ts)', async () => {
  const keyDir = tmpDataDir('etcd-ts-jwt-rev-');
  const pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  fs.writeFileSync(path.join(keyDir, 'k'), pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  fs.writeFileSync(path.join(keyDir, 'k.pub'), pair.publicKey.export({ type: 'spki', format: 'pem' }));
  const node = await startNode({ kind: 'etcd-ts', extraArgs: [`--auth-token=jwt,pub-key=${path.join(keyDir, 'k.pub')},priv-key=${path.join(keyDir, 'k')},sign-method=ES256`] });
  try {
    for (const args of [['user', 'add', 'root:rootpw'], ['user', 'grant-role', 'root', 'root'], ['auth', 'enable'], ['--user', 'root:rootpw', 'put', 'k', 'v']]) {
      expect((await etcdctl(node.endpoint, args)).code).toBe(0);
    }
    /* eslint-disable @typescript-eslint/no-explicit-any */
    const pkg = (grpc.loadPackageDefinition(apiPackageDefinition()) as any).etcdserverpb;
    const call = <T>(service: string, method: string, req: object, token?: string): Promise<T> => {
      const client = new pkg[service](node.endpoint, grpc.credentials.createInsecure(), RAW_CHANNEL_OPTIONS);
      const md = new grpc.Metadata();
      if (token) md.set('token', token);
      return new Promise<T>((resolve, reject) =>
        client[method](req, md, { deadline: Date.now() + 5000 }, (err: Error | null, v: T) => {
          client.close();
          if (err) reject(err);
          else resolve(v);
        }),
      );
    };
    /* eslint-enable @typescript-eslint/no-explicit-any */
    const { token } = await call<{ token: string }>('Auth', 'Authenticate', { name: 'root', password: 'rootpw' });
    const range = { key: Buffer.from('k'), range_end: Buffer.alloc(0) };
    await expect(call('KV', 'Range', range, token)).resolves.toBeDefined();
    expect((await etcdctl(node.endpoint, ['--user', 'root:rootpw', 'role', 'add', 'newrole'])).code).toBe(0);
    await expect(call('KV', 'Range', range, token)).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: revision of auth store is old' });
    // etcdctl authenticates afresh each time: it keeps working
    expect((await etcdctl(node.endpoint, ['--user', 'root:rootpw', 'get', 'k', '--print-value-only'])).stdout).toBe('v\n');
  } finally {
    await node.destroy();
    fs.rmSync(keyDir, { recursive: true, force: true });
  }
});

test('a non-admin user whose write hits the quota still raises the NOSPACE alarm (the server raises it, not the user)', async () => {
  const node = await startNode({ kind: 'etcd-ts', extraArgs: ['--quota-backend-bytes=2000000'] });
  try {
    for (const args of [
      ['user', 'add', 'root:rootpw'],
      ['user', 'grant-role', 'root', 'root'],
      ['role', 'add', 'writer'],
      ['role', 'grant-permission', 'writer', 'readwrite', 'big/', '--prefix=true'],
      ['user', 'add', 'writer:writerpw'],
      ['user', 'grant-role', 'writer', 'writer'],
      ['auth', 'enable'],
    ]) {
      expect((await etcdctl(node.endpoint, args)).code).toBe(0);
    }
    let refused = '';
    for (let i = 0; i < 60 && refused === ''; i++) {
      const value = crypto.randomBytes(75_000).toString('base64');
      const res = await etcdctl(node.endpoint, ['--user=writer:writerpw', 'put', `big/${i}`], { input: value, timeoutMs: 20_000 });
      if (res.code !== 0) refused = res.stderr;
      // the size the quota is checked against is re-read at most once a second
      await new Promise((r) => setTimeout(r, 1100));
    }
    expect(refused).toMatch(/etcdserver: mvcc: database space exceeded/);
    const alarms = await etcdctl(node.endpoint, ['--user=root:rootpw', 'alarm', 'list']);
    expect(alarms.stdout).toMatch(/^memberID:\d+ alarm:NOSPACE \n$/);
    // and the writer may not disarm it: alarms are for admins
    const disarm = await etcdctl(node.endpoint, ['--user=writer:writerpw', 'alarm', 'disarm']);
    expect(disarm.stderr).toContain('etcdserver: permission denied');
  } finally {
    await node.destroy();
  }
});
