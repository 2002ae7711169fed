// Durability: a write acknowledged to a client survives kill -9 of the member, with the same revision.
// Writers run concurrently while the process is SIGKILLed at an arbitrary moment; every acknowledged
// put must be there after restart, exactly as acknowledged.
import { Etcd3 } from 'etcd3';
import { NodeHandle, startNode } from '../helpers';

let node: NodeHandle;

beforeAll(async () => {
  node = await startNode({ kind: 'etcd-ts' });
});

afterAll(async () => {
  await node?.destroy();
});

test('every acknowledged put survives SIGKILL mid-load and restart', async () => {
  const client = new Etcd3({ hosts: node.clientUrl });
  const acked = new Map<string, { value: string; rev: string }>();
  let stop = false;
  let seq = 0;
  const writer = async (w: number) => {
    while (!stop) {
      const key = `dur/${w}/${seq++}`;
      const value = `v-${key}`;
      try {
        const res = await client.put(key).value(value).exec();
        acked.set(key, { value, rev: res.header.revision });
      } catch {
        return; // the member is gone: unacknowledged writes may or may not have happened
      }
    }
  };
  const writers = Array.from({ length: 16 }, (_, i) => writer(i));
  // Let load build up, then kill without warning.
  const deadline = Date.now() + 10_000;
  while (acked.size < 500 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  node.kill('SIGKILL');
  stop = true;
  await node.waitExit();
  await Promise.all(writers);
  client.close();
  expect(acked.size).toBeGreaterThanOrEqual(500);

  await node.restart();
  const after = new Etcd3({ hosts: node.clientUrl });
  try {
    const all = await after.getAll().prefix('dur/').exec();
    const stored = new Map(all.kvs.map((kv) => [kv.key.toString(), kv]));
    const missing: string[] = [];
    for (const [key, { value, rev }] of acked) {
      const kv = stored.get(key);
      if (!kv || kv.value.toString() !== value || kv.mod_revision !== rev) missing.push(key);
    }
    expect(missing).toEqual([]);
    // Revisions stay dense and ordered: the next write continues after the highest surviving one.
    const maxRev = Math.max(...all.kvs.map((kv) => Number(kv.mod_revision)));
    const next = await after.put('dur-next').value('x').exec();
    expect(Number(next.header.revision)).toBe(maxRev + 1);
  } finally {
    after.close();
  }
});

test('data and revisions survive a clean restart too', async () => {
  const client = new Etcd3({ hosts: node.clientUrl });
  const put = await client.put('clean/k').value('v').exec();
  client.close();
  await node.restart();
  const again = new Etcd3({ hosts: node.clientUrl });
  try {
    const res = await again.get('clean/k').exec();
    expect(res.kvs[0].value.toString()).toBe('v');
    expect(res.kvs[0].mod_revision).toBe(put.header.revision);
  } finally {
    again.close();
  }
});
