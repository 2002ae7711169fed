// Defragmentation through etcdctl: after large values are deleted and compacted away, `etcdctl defrag`
// gives the space back (dbSize in `endpoint status` drops), every key stays as it was, writes running
// during the defragmentation all land, and the member restarts on the new database.
import * as crypto from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { NodeHandle, etcdctl, startNode } from '../helpers';

let node: NodeHandle;

beforeAll(async () => {
  node = await startNode({ kind: 'etcd-ts' });
});

afterAll(async () => {
  await node?.destroy();
});

interface EndpointStatus {
  Status: { header: { revision: number }; dbSize: number; dbSizeInUse: number };
}

async function endpointStatus(): Promise<EndpointStatus['Status']> {
  const res = await etcdctl(node.endpoint, ['endpoint', 'status', '-w', 'json']);
  expect(res.code).toBe(0);
  return (JSON.parse(res.stdout) as EndpointStatus[])[0].Status;
}

/** dbSize as Status reports it, once it is stable (the member refreshes it at most once a second). */
async function settledDbSize(): Promise<number> {
  let last = -1;
  for (let i = 0; i < 20; i++) {
    const size = (await endpointStatus()).dbSize;
    if (size === last) return size;
    last = size;
    await new Promise((r) => setTimeout(r, 1100));
  }
  return last;
}

async function snapshotOfKeys(client: Etcd3): Promise<string[]> {
  const all = await client.getAll().prefix('').exec();
  return all.kvs.map((kv) => `${kv.key}=${crypto.createHash('sha1').update(kv.value).digest('hex')}@${kv.create_revision}/${kv.mod_revision}/${kv.version}`);
}

test('etcdctl defrag releases the space of deleted, compacted values; data intact; restart fine', async () => {
  const client = new Etcd3({ hosts: node.clientUrl });
  let kept: string[];
  let before: number;
  let after: number;
  try {
    for (let i = 0; i < 20; i++) await client.put(`keep/${i}`).value(`value-${i}`);
    // random (incompressible) values, ~12 MB in all
    for (let i = 0; i < 120; i++) await client.put(`big/${i}`).value(crypto.randomBytes(100_000));
    await client.delete().prefix('big/');
    const rev = (await endpointStatus()).header.revision;
    const compact = await etcdctl(node.endpoint, ['compact', String(rev), '--physical']);
    expect(compact.code).toBe(0);
    kept = await snapshotOfKeys(client);
    expect(kept).toHaveLength(20);
    before = await settledDbSize();

    const res = await etcdctl(node.endpoint, ['defrag'], { timeoutMs: 60_000 });
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(new RegExp(`^Finished defragmenting etcd member\\[${node.endpoint.replace(/\./g, '\\.')}\\]\\. took [0-9.]+(µs|ms|s)\\n$`));
    after = await settledDbSize();
    console.log(`dbSize before defrag ${before} bytes, after ${after} bytes`);
    // the deleted values (~12 MB) are gone; what stays is mostly the raft log, which still holds the
    // puts of those values until it is compacted (it lives in the same RocksDB as the data)
    expect(before - after).toBeGreaterThan(10_000_000);
    expect(await snapshotOfKeys(client)).toEqual(kept);
    const next = await client.put('after-defrag').value('x').exec();
    expect(Number(next.header.revision)).toBe(rev + 1);
  } finally {
    client.close();
  }

  await node.restart();
  const again = new Etcd3({ hosts: node.clientUrl });
  try {
    const keys = await snapshotOfKeys(again);
    expect(keys.filter((k) => k.startsWith('keep/'))).toEqual(kept);
    expect(keys.some((k) => k.startsWith('after-defrag='))).toBe(true);
    expect(await settledDbSize()).toBeLessThan(before - 10_000_000);
  } finally {
    again.close();
  }
});

test('writes running during defrag all land; defrag twice in a row; restart fine', async () => {
  const client = new Etcd3({ hosts: node.clientUrl });
  const acked = new Map<string, string>();
  let stop = false;
  const writer = async (w: number) => {
    for (let i = 0; !stop; i++) {
      const key = `during/${w}/${i}`;
      const res = await client.put(key).value(`v${i}`).exec();
      acked.set(key, res.header.revision);
    }
  };
  const writers = Array.from({ length: 8 }, (_, w) => writer(w));
  try {
    while (acked.size < 200) await new Promise((r) => setTimeout(r, 10));
    for (let i = 0; i < 2; i++) {
      const res = await etcdctl(node.endpoint, ['defrag'], { timeoutMs: 60_000 });
      expect(res.code).toBe(0);
    }
    const atDefrag = acked.size;
    while (acked.size < atDefrag + 200) await new Promise((r) => setTimeout(r, 10));
  } finally {
    stop = true;
    await Promise.all(writers);
  }
  const check = async (c: Etcd3) => {
    const all = await c.getAll().prefix('during/').exec();
    const stored = new Map(all.kvs.map((kv) => [kv.key.toString(), kv.mod_revision]));
    const wrong = [...acked].filter(([k, rev]) => stored.get(k) !== rev);
    expect(wrong).toEqual([]);
  };
  await check(client);
  client.close();
  await node.restart();
  const again = new Etcd3({ hosts: node.clientUrl });
  try {
    await check(again);
  } finally {
    again.close();
  }
});
