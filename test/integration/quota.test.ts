// --quota-backend-bytes: writes past the quota fail with etcd's "database space exceeded" and raise the
// NOSPACE alarm; reads and deletes keep working; compaction + defrag + `alarm disarm` recovers, as in the
// maintenance runbook of our reference material.
import * as crypto from 'node:crypto';
import { NodeHandle, etcdctl, startNode } from '../helpers';

let node: NodeHandle;

beforeAll(async () => {
  node = await startNode({ kind: 'etcd-ts', extraArgs: ['--quota-backend-bytes=2000000'] });
});

afterAll(async () => {
  await node?.destroy();
});

const ctl = (args: string[], input?: string) => etcdctl(node.endpoint, args, { input, timeoutMs: 20_000 });

test('over quota: NOSPACE, reads and deletes work, compact + defrag + disarm recovers', async () => {
  // Incompressible values (RocksDB compresses), 100 KB each, until the quota bites.
  let refused = '';
  const written: string[] = [];
  for (let i = 0; i < 60 && refused === ''; i++) {
    const value = crypto.randomBytes(75_000).toString('base64');
    const res = await ctl(['put', `big/${String(i).padStart(2, '0')}`], value);
    if (res.code === 0) written.push(`big/${String(i).padStart(2, '0')}`);
    else refused = res.stderr;
    // the size the quota is checked against is re-read at most once a second
    await new Promise((r) => setTimeout(r, 1100));
  }
  expect(refused).toMatch(/etcdserver: mvcc: database space exceeded/);
  expect(written.length).toBeGreaterThan(3);
  const alarms = await ctl(['alarm', 'list']);
  expect(alarms.stdout).toMatch(/^memberID:\d+ alarm:NOSPACE \n$/);
  // still refused while the alarm is up, even a tiny write
  expect((await ctl(['put', 'small', 'x'])).stderr).toMatch(/database space exceeded/);
  // reads and deletes work
  expect((await ctl(["get", written[0], "--keys-only"])).stdout.split("\n")[0]).toBe(written[0]);
  const del = await ctl(['del', 'big/', '--prefix']);
  expect(del.stdout).toBe(`${written.length}\n`);
  // the runbook: compact to the current revision, defragment, disarm
  const rev = JSON.parse((await ctl(['endpoint', 'status', '-w', 'json'])).stdout)[0].Status.header.revision;
  expect((await ctl(['compaction', String(rev), '--physical'])).code).toBe(0);
  const before = JSON.parse((await ctl(['endpoint', 'status', '-w', 'json'])).stdout)[0].Status.dbSize;
  expect((await ctl(['defrag'])).code).toBe(0);
  const after = JSON.parse((await ctl(['endpoint', 'status', '-w', 'json'])).stdout)[0].Status.dbSize;
  expect(after).toBeLessThan(before);
  expect((await ctl(['alarm', 'disarm'])).code).toBe(0);
  expect((await ctl(['alarm', 'list'])).stdout).toBe('');
  expect((await ctl(['put', 'small', 'x'])).stdout).toBe('OK\n');
}, 120_000);
