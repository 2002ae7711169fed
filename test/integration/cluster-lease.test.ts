// Leases on a 3-member cluster, used as Patroni and service registries use them: everything through a
// follower's endpoint (the leader keeps lease time, followers forward keepalive and time-to-live), the
// lease surviving a leader failure while kept alive, and expiry deleting the keys on every member with a
// watcher on a follower seeing the delete.
import { NodeHandle, etcdctl, startCluster } from '../helpers';
import { RunningCtl, startEtcdctl } from '../helpers/compare';

jest.setTimeout(120_000);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let nodes: NodeHandle[] = [];

beforeAll(async () => {
  nodes = await startCluster({ kind: 'etcd-ts', size: 3 });
});

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.destroy()));
});

async function leader(): Promise<NodeHandle> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const live = nodes.filter((n) => n.running);
    const res = await etcdctl(
      live.map((n) => n.endpoint),
      ['endpoint', 'status', '-w', 'json', '--command-timeout=2s'],
    );
    const text = res.stdout.replace(/"(member_id|leader)":(\d+)/g, '"$1":"$2"');
    try {
      const st = JSON.parse(text) as { Endpoint: string; Status: { header: { member_id: string }; leader: string } }[];
      const lead = st.find((s) => s.Status.leader !== '0' && s.Status.header.member_id === s.Status.leader);
      const node = lead && live.find((n) => lead.Endpoint.endsWith(`:${n.clientPort}`));
      if (node && st.length === live.length && st.every((s) => s.Status.leader === lead.Status.leader)) return node;
    } catch {
      // not all members answered yet
    }
    await sleep(200);
  }
  throw new Error('no leader');
}

async function grant(endpoint: string, ttl: number): Promise<string> {
  const res = await etcdctl(endpoint, ['lease', 'grant', String(ttl)]);
  const m = /^lease ([0-9a-f]+) granted with TTL\((\d+)s\)$/m.exec(res.stdout);
  if (!m) throw new Error(`unexpected lease grant output: ${res.stdout}${res.stderr}`);
  return m[1];
}

test('a lease kept alive through a follower outlives its TTL and a leader failure', async () => {
  const lead = await leader();
  const follower = nodes.find((n) => n !== lead) as NodeHandle;
  const id = await grant(follower.endpoint, 5);
  expect((await etcdctl(follower.endpoint, ['put', '--lease', id, 'svc/a', 'up'])).code).toBe(0);
  const ttl = await etcdctl(follower.endpoint, ['lease', 'timetolive', id, '--keys']);
  expect(ttl.stdout).toMatch(new RegExp(`^lease ${id} granted with TTL\\(5s\\), remaining\\([345]s\\), attached keys\\(\\[svc/a\\]\\)\\n$`));
  let keepalive: RunningCtl | undefined = startEtcdctl(follower.endpoint, ['lease', 'keep-alive', id], { maxLifetimeMs: 60_000 });
  try {
    await keepalive.waitOutput((out) => out.includes(`lease ${id} keepalived with TTL(5)`), 10_000);
    await sleep(6000); // more than the TTL: alive only because the keepalives reach the leader
    expect((await etcdctl(nodes.map((n) => n.endpoint), ['get', 'svc/a', '--print-value-only'])).stdout.trim()).toBe('up');
    // the leader dies; the keepalive stream (on the follower) goes on with the new leader
    lead.kill('SIGKILL');
    await lead.waitExit();
    await leader();
    await sleep(7000);
    const survivor = nodes.find((n) => n.running) as NodeHandle;
    expect((await etcdctl(survivor.endpoint, ['get', 'svc/a', '--print-value-only'])).stdout.trim()).toBe('up');
    const remaining = await etcdctl(follower.endpoint, ['lease', 'timetolive', id]);
    expect(remaining.stdout).toMatch(/remaining\([1-5]s\)/);
  } finally {
    await keepalive?.stop();
    keepalive = undefined;
    if (!lead.running) await lead.restart();
  }
});

test('expiry through the leader deletes the keys on every member; a watcher on a follower sees it', async () => {
  const lead = await leader();
  const follower = nodes.find((n) => n !== lead) as NodeHandle;
  const id = await grant(follower.endpoint, 3);
  expect((await etcdctl(follower.endpoint, ['put', '--lease', id, 'svc/b', 'up'])).code).toBe(0);
  const watch = startEtcdctl(follower.endpoint, ['watch', 'svc/b'], { maxLifetimeMs: 30_000 });
  try {
    await sleep(500); // the watch is established
    await watch.waitOutput((out) => out.includes('DELETE\nsvc/b\n'), 15_000);
  } finally {
    await watch.stop();
  }
  for (const n of nodes) {
    const got = await etcdctl(n.endpoint, ['get', 'svc/b', '--consistency=s', '-w', 'json']);
    expect(got.stdout).not.toContain('"kvs"');
  }
  const gone = await etcdctl(follower.endpoint, ['lease', 'timetolive', id]);
  expect(gone.stdout).toBe(`lease ${id} already expired\n`);
});

test('revoke through a follower, and the member list read linearizably', async () => {
  const lead = await leader();
  const follower = nodes.find((n) => n !== lead) as NodeHandle;
  const id = await grant(follower.endpoint, 60);
  expect((await etcdctl(follower.endpoint, ['put', '--lease', id, 'svc/c', 'x'])).code).toBe(0);
  expect((await etcdctl(follower.endpoint, ['lease', 'revoke', id])).stdout).toBe(`lease ${id} revoked\n`);
  expect((await etcdctl(lead.endpoint, ['get', 'svc/c', '--print-value-only'])).stdout).toBe('');
  const list = await etcdctl(follower.endpoint, ['member', 'list', '--consistency=l']);
  expect(list.code).toBe(0);
  expect(list.stdout.trim().split('\n')).toHaveLength(3);
});
