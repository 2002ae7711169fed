// Alarms: raised through the Maintenance API, persisted, listed by etcdctl, and NOSPACE caps the store
// (puts refused with etcd's error; reads, deletes and compaction still work) until disarmed.
import { Etcd3 } from 'etcd3';
import { NodeHandle, etcdctl, httpGet, startNode } from '../helpers';

let node: NodeHandle;

beforeAll(async () => {
  node = await startNode({ kind: 'etcd-ts' });
});

afterAll(async () => {
  await node?.destroy();
});

test('NOSPACE alarm: writes refused, reads/deletes work, survives restart, disarm recovers', async () => {
  let client = new Etcd3({ hosts: node.clientUrl });
  try {
    await client.put('a/keep').value('1');
    await client.put('a/drop').value('2');
    const status = await client.maintenance.status();
    const memberID = status.header.member_id;
    // ACTIVATE = 1, NOSPACE = 1
    const activated = await client.maintenance.alarm({ action: 1, memberID, alarm: 1 });
    // the etcd3 client's own proto spells the enum value 'Nospace'
    expect(activated.alarms).toEqual([{ memberID, alarm: expect.stringMatching(/^nospace$/i) }]);

    // (etcdctl for the refused writes: the etcd3 client's circuit breaker opens on RESOURCE_EXHAUSTED)
    const put = await etcdctl(node.endpoint, ['put', 'a/new', 'x']);
    expect(put.code).toBe(1);
    expect(put.stderr).toMatch(/\nError: etcdserver: mvcc: database space exceeded\n$/);
    const txn = await etcdctl(node.endpoint, ['txn'], { input: 'value("a/keep") = "1"\n\nput a/new x\n\n\n' });
    expect(txn.code).toBe(1);
    expect(txn.stderr).toMatch(/Error: etcdserver: mvcc: database space exceeded\n$/);
    expect(await client.get('a/keep').string()).toBe('1');
    expect(await client.get('a/new').string()).toBeNull();
    expect((await client.delete().key('a/drop').exec()).deleted).toBe('1');

    // /health reports the alarm first (as etcd), unless the client excludes it
    const health = await httpGet(`${node.clientUrl}/health`);
    expect([health.status, health.body]).toEqual([503, '{"health":"false","reason":"ALARM NOSPACE"}']);
    const excluded = await httpGet(`${node.clientUrl}/health?exclude=NOSPACE`);
    expect([excluded.status, excluded.body]).toEqual([200, '{"health":"true","reason":""}']);
    const list = await etcdctl(node.endpoint, ['alarm', 'list']);
    expect(list.stdout).toBe(`memberID:${memberID} alarm:NOSPACE \n`);
    const st = await etcdctl(node.endpoint, ['endpoint', 'status', '-w', 'json']);
    expect(st.stdout).toContain(`"errors":["memberID:${memberID} alarm:NOSPACE "]`);
  } finally {
    client.close();
  }

  // With the alarm still raised /health is false (etcd's behaviour), so wait for readiness excluding it.
  await node.restart({ waitReady: false });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ready = await httpGet(`${node.clientUrl}/health?exclude=NOSPACE`).catch(() => undefined);
    if (ready?.status === 200) break;
    if (Date.now() > deadline) throw new Error(`not ready after restart:\n${node.logTail()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  expect((await httpGet(`${node.clientUrl}/health`)).body).toBe('{"health":"false","reason":"ALARM NOSPACE"}');
  client = new Etcd3({ hosts: node.clientUrl });
  try {
    const put = await etcdctl(node.endpoint, ['put', 'a/new', 'x']);
    expect(put.stderr).toMatch(/Error: etcdserver: mvcc: database space exceeded\n$/);
    const disarm = await etcdctl(node.endpoint, ['alarm', 'disarm']);
    expect(disarm.code).toBe(0);
    expect((await etcdctl(node.endpoint, ['alarm', 'list'])).stdout).toBe('');
    await client.put('a/new').value('x');
    expect(await client.get('a/new').string()).toBe('x');
  } finally {
    client.close();
  }
});
