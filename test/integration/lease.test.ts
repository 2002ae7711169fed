// Leases with real clients: etcdctl lease commands, puts with leases, keepalive, revoke, expiry deleting
// every attached key in one revision (seen by a watcher), survival across restart, and the
// capability-registry heartbeat pattern of our reference material (30 s lease, watcher on the prefix).
import { Etcd3, EtcdLeaseInvalidError } from 'etcd3';
import { spawn } from 'node:child_process';
import { NodeHandle, etcdctl, repoRoot, startNode } from '../helpers';

let node: NodeHandle;

beforeAll(async () => {
  node = await startNode({ kind: 'etcd-ts' });
});

afterAll(async () => {
  await node?.destroy();
});

const ctl = (args: string[]) => etcdctl(node.endpoint, args);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function grant(ttl: number): Promise<string> {
  const res = await ctl(['lease', 'grant', String(ttl)]);
  const m = /^lease ([0-9a-f]+) granted with TTL\((\d+)s\)$/m.exec(res.stdout);
  if (!m) throw new Error(`unexpected lease grant output: ${res.stdout}${res.stderr}`);
  expect(Number(m[2])).toBe(ttl);
  return m[1];
}

test('etcdctl lease grant / put --lease / timetolive --keys / list / revoke', async () => {
  const id = await grant(60);
  expect((await ctl(['put', '--lease', id, 'l/a', '1'])).stdout).toBe('OK\n');
  expect((await ctl(['put', '--lease', id, 'l/b', '2'])).stdout).toBe('OK\n');
  const ttl = await ctl(['lease', 'timetolive', id, '--keys']);
  expect(ttl.stdout).toMatch(new RegExp(`^lease ${id} granted with TTL\\(60s\\), remaining\\((59|60)s\\), attached keys\\(\\[l/a l/b\\]\\)\\n$`));
  expect((await ctl(['lease', 'list'])).stdout).toContain(`${id}\n`);
  const rev0 = JSON.parse((await ctl(['get', 'l/a', '-w', 'json'])).stdout).header.revision;
  expect((await ctl(['lease', 'revoke', id])).stdout).toBe(`lease ${id} revoked\n`);
  const after = JSON.parse((await ctl(['get', 'l/', '--prefix', '-w', 'json'])).stdout);
  expect(after.kvs).toBeUndefined();
  // both keys went away in one revision
  expect(after.header.revision).toBe(rev0 + 1);
  expect((await ctl(['lease', 'timetolive', id])).stdout).toBe(`lease ${id} already expired\n`);
  const again = await ctl(['lease', 'revoke', id]);
  expect(again.stderr).toMatch(/etcdserver: requested lease not found/);
});

test('keepalive keeps a lease alive past its TTL; an unknown lease is not found', async () => {
  const id = await grant(2);
  await ctl(['put', '--lease', id, 'ka/k', 'v']);
  for (let i = 0; i < 4; i++) {
    await sleep(800);
    expect((await ctl(['lease', 'keep-alive', '--once', id])).stdout).toBe(`lease ${id} keepalived with TTL(2)\n`);
  }
  expect((await ctl(['get', 'ka/k', '--print-value-only'])).stdout).toBe('v\n');
  const unknown = await ctl(['lease', 'keep-alive', '--once', '1234abcd']);
  expect(unknown.code).not.toBe(0);
  expect(unknown.stderr).toMatch(/requested lease not found/);
});

test('a TTL below the minimum is raised to it (2 s with default timing)', async () => {
  const res = await ctl(['lease', 'grant', '1']);
  expect(res.stdout).toMatch(/granted with TTL\(2s\)/);
});

test('expiry deletes the attached keys in one revision and watchers see the deletes', async () => {
  const client = new Etcd3({ hosts: node.clientUrl });
  try {
    const lease = client.lease(2, { autoKeepAlive: false });
    const id = await lease.grant();
    await client.put('exp/a').value('1').lease(id);
    await client.put('exp/b').value('2').lease(id);
    const deletes: { key: string; rev: string }[] = [];
    const watcher = await client.watch().prefix('exp/').create();
    watcher.on('delete', (kv) => deletes.push({ key: kv.key.toString(), rev: kv.mod_revision }));
    const deadline = Date.now() + 10_000;
    while (deletes.length < 2 && Date.now() < deadline) await sleep(100);
    await watcher.cancel();
    expect(deletes.map((d) => d.key).sort()).toEqual(['exp/a', 'exp/b']);
    expect(deletes[0].rev).toBe(deletes[1].rev);
    expect(await client.get('exp/a').string()).toBeNull();
    await expect(client.put('exp/c').value('x').lease(id)).rejects.toBeInstanceOf(EtcdLeaseInvalidError);
  } finally {
    client.close();
  }
});

test('leases and their keys survive a restart, with the TTL counted again from the restart', async () => {
  const id = await grant(20);
  await ctl(['put', '--lease', id, 'rs/k', 'v']);
  await sleep(1500);
  await node.restart();
  const ttl = await ctl(['lease', 'timetolive', id, '--keys']);
  // etcd refreshes a recovered lease to its full TTL (plus an election timeout)
  const m = /remaining\((\d+)s\), attached keys\(\[rs\/k\]\)/.exec(ttl.stdout);
  expect(m).not.toBeNull();
  expect(Number(m?.[1])).toBeGreaterThanOrEqual(19);
  expect((await ctl(['get', 'rs/k', '--print-value-only'])).stdout).toBe('v\n');
  await ctl(['lease', 'revoke', id]);
});

test('capability registry: a 30 s heartbeat lease; when the service dies the watcher sees the key expire', async () => {
  // The service is a separate process holding a 30 s lease with the etcd3 client's automatic keepalive;
  // "dies" means SIGKILL, so nothing is revoked: only expiry can remove its health key.
  const script = `
    const { Etcd3 } = require('etcd3');
    const client = new Etcd3({ hosts: process.argv[1] });
    const lease = client.lease(30);
    lease.put('/chora/capabilities/test/health').value(new Date().toISOString())
      .then(() => client.put('/chora/capabilities/test/metadata').value('{"kind":"test"}'))
      .then(() => process.stdout.write('ready\\n'));
  `;
  const service = spawn(process.execPath, ['-e', script, node.clientUrl], { cwd: repoRoot(), stdio: ['ignore', 'pipe', 'inherit'] });
  const observer = new Etcd3({ hosts: node.clientUrl });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('service did not start')), 10_000);
      service.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const seen: string[] = [];
    const watcher = await observer.watch().prefix('/chora/capabilities/').create();
    watcher.on('delete', (kv) => seen.push(kv.key.toString()));
    // Alive for a while: its keepalives hold the key.
    await sleep(2000);
    expect(seen).toEqual([]);
    service.kill('SIGKILL');
    const killedAt = Date.now();
    const deadline = Date.now() + 45_000;
    while (seen.length === 0 && Date.now() < deadline) await sleep(200);
    await watcher.cancel();
    expect(seen).toEqual(['/chora/capabilities/test/health']);
    // It expired about one TTL after the last renewal, not early.
    expect(Date.now() - killedAt).toBeGreaterThan(15_000);
    expect(await observer.get('/chora/capabilities/test/metadata').string()).toBe('{"kind":"test"}');
  } finally {
    service.kill('SIGKILL');
    observer.close();
  }
}, 60_000);
