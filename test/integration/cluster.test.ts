// Multi-member clusters of real etcd-ts processes: leader election, replication, linearizable reads on
// every member, and faults (SIGKILL of the leader, SIGSTOP of a minority and of a majority) under write
// load. Every acknowledged write must be on every member afterwards. The same status commands run against
// a reference etcd cluster to compare what etcdctl shows.
import { NodeHandle, etcdctl, freePort, haveReferenceTools, startCluster, startNode } from '../helpers';
import { RawKv } from '../helpers/compare';

jest.setTimeout(180_000);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface EndpointStatus {
  Endpoint: string;
  Status: {
    header: { cluster_id: string; member_id: string; raft_term: number };
    leader: string;
    raftIndex: number;
    raftTerm: number;
    raftAppliedIndex: number;
    isLearner?: boolean;
    errors?: string[];
  };
}

/** `etcdctl endpoint status -w json` of each reachable member (ids kept as text: they are uint64). */
async function statuses(nodes: NodeHandle[]): Promise<EndpointStatus[]> {
  const live = nodes.filter((n) => n.running);
  const res = await etcdctl(
    live.map((n) => n.endpoint),
    ['endpoint', 'status', '-w', 'json', '--command-timeout=2s'],
  );
  const text = res.stdout.replace(/"(cluster_id|member_id|leader)":(\d+)/g, '"$1":"$2"');
  return text.trim() ? (JSON.parse(text) as EndpointStatus[]) : [];
}

/** Waits until every given running member reports the same leader; returns the leader's handle. */
async function waitLeader(nodes: NodeHandle[], timeoutMs = 20_000): Promise<NodeHandle> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const st = await statuses(nodes).catch(() => []);
    const leaders = new Set(st.map((s) => s.Status.leader));
    if (st.length === nodes.filter((n) => n.running).length && leaders.size === 1 && !leaders.has('0')) {
      const lead = st.find((s) => s.Status.header.member_id === s.Status.leader);
      const node = lead && nodes.find((n) => lead.Endpoint.endsWith(`:${n.clientPort}`));
      if (node) return node;
    }
    last = JSON.stringify(st.map((s) => [s.Endpoint, s.Status.leader, s.Status.raftTerm]));
    await sleep(200);
  }
  throw new Error(`no agreed leader within ${timeoutMs} ms; last status ${last}`);
}

interface Load {
  acked: Map<string, string>;
  failures: string[];
  stop(): Promise<void>;
}

/** Writers (one per endpoint, several in flight each) putting unique keys; remembers what was acknowledged. */
function writeLoad(nodes: NodeHandle[], prefix: string, perNode = 4): Load {
  const acked = new Map<string, string>();
  const failures: string[] = [];
  let stopped = false;
  let seq = 0;
  const clients = nodes.map((n) => new RawKv(n.endpoint));
  const loops: Promise<void>[] = [];
  clients.forEach((kv, i) => {
    for (let j = 0; j < perNode; j++) {
      loops.push(
        (async () => {
          while (!stopped) {
            const key = `${prefix}/${i}/${seq++}`;
            try {
              await kv.put(key, `v${key}`);
              acked.set(key, `v${key}`);
            } catch (err) {
              failures.push((err as Error).message);
              await sleep(50);
            }
          }
        })(),
      );
    }
  });
  return {
    acked,
    failures,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
      for (const c of clients) c.close();
    },
  };
}

/** Every acknowledged key with its value, read from `node` (serializable: its own state). */
async function missingOn(node: NodeHandle, prefix: string, acked: Map<string, string>): Promise<string[]> {
  const res = await etcdctl(node.endpoint, ['get', `${prefix}/`, '--prefix', '--consistency=s', '-w', 'json']);
  expect(res.code).toBe(0);
  const parsed = JSON.parse(res.stdout) as { kvs?: { key: string; value: string }[] };
  const stored = new Map((parsed.kvs ?? []).map((kv) => [Buffer.from(kv.key, 'base64').toString(), Buffer.from(kv.value, 'base64').toString()]));
  return [...acked].filter(([k, v]) => stored.get(k) !== v).map(([k]) => k);
}

/** Waits until every running member has applied what the leader has committed (same revision). */
async function waitConverged(nodes: NodeHandle[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const revs = await Promise.all(
      nodes
        .filter((n) => n.running)
        .map(async (n) => {
          const r = await etcdctl(n.endpoint, ['get', 'x', '--consistency=s', '-w', 'json', '--command-timeout=2s']);
          return r.code === 0 ? (/"revision":(\d+)/.exec(r.stdout)?.[1] ?? '?') : 'err';
        }),
    );
    if (new Set(revs).size === 1 && revs[0] !== 'err') return;
    last = revs.join(',');
    await sleep(200);
  }
  throw new Error(`members did not converge within ${timeoutMs} ms: revisions ${last}`);
}

/**
 * An etcdctl table with what differs between two clusters masked, cell by cell (the columns named
 * here), and its rows sorted (etcdctl lists members in member-ID order, and IDs differ). What is left
 * — the header, the column set, versions, leader/learner flags, errors — must be equal.
 */
function maskTable(text: string, masked: Record<string, string>): string[] {
  const lines = text.split('\n').filter((l) => l.startsWith('|'));
  const cells = (l: string) => l.split('|').slice(1, -1).map((c) => c.trim());
  const header = cells(lines[0]);
  const rows = lines.slice(1).map((l) =>
    cells(l)
      .map((c, i) => (header[i] in masked ? masked[header[i]] : c))
      .join(' | '),
  );
  return [header.join(' | '), ...rows.sort()];
}

describe('etcdctl shows an etcd-ts cluster as it shows an etcd cluster', () => {
  const tables: Record<string, { status: string[]; members: string[] }> = {};
  for (const kind of ['etcd', 'etcd-ts'] as const) {
    test(`${kind}: endpoint status --cluster and member list tables`, async () => {
      if (kind === 'etcd' && !haveReferenceTools()) throw new Error('reference etcd missing: run make tools');
      const cluster = await startCluster({ kind, size: 3 });
      try {
        await waitLeader(cluster);
        const status = await etcdctl(cluster[0].endpoint, ['endpoint', 'status', '--cluster', '-w', 'table']);
        expect(status.code).toBe(0);
        const list = await etcdctl(cluster[0].endpoint, ['member', 'list', '-w', 'table']);
        expect(list.code).toBe(0);
        tables[kind] = {
          status: maskTable(status.stdout, { ENDPOINT: '<url>', ID: '<id>', 'DB SIZE': '<size>', 'IN USE': '<size>', 'PERCENTAGE NOT IN USE': '<pct>', 'RAFT TERM': '<n>', 'RAFT INDEX': '<n>', 'RAFT APPLIED INDEX': '<n>' }),
          members: maskTable(list.stdout, { ID: '<id>', 'PEER ADDRS': '<url>', 'CLIENT ADDRS': '<url>' }),
        };
        const leaders = tables[kind].status.filter((r) => / \| true \| (true|false) \| /.test(r)).length;
        expect({ table: status.stdout, leaders }).toEqual({ table: status.stdout, leaders: 1 });
        if (kind === 'etcd-ts') {
          expect(tables['etcd-ts']).toEqual(tables.etcd);
        }
      } finally {
        await Promise.all(cluster.map((n) => n.destroy()));
      }
    });
  }
});

test('member and cluster IDs equal etcd\'s for the same names, peer URLs and token', async () => {
  const ports = await Promise.all(Array.from({ length: 6 }, () => freePort()));
  const names = ['node1', 'node2', 'node3'];
  const initial = names.map((n, i) => `${n}=http://127.0.0.1:${ports[2 * i + 1]}`).join(',');
  const ids: Record<string, string> = {};
  for (const kind of ['etcd', 'etcd-ts'] as const) {
    const members = await Promise.all(
      names.map((name, i) =>
        startNode({
          kind,
          name,
          clientPort: ports[2 * i],
          peerPort: ports[2 * i + 1],
          initialCluster: initial,
          extraArgs: ['--initial-cluster-token=same-token', '--initial-cluster-state=new'],
          waitReady: false,
        }),
      ),
    );
    try {
      await Promise.all(members.map((m) => m.waitReady()));
      const list = await etcdctl(members[0].endpoint, ['member', 'list', '-w', 'json']);
      const cluster = /"cluster_id":(\d+)/.exec(list.stdout)?.[1];
      const memberIds = [...list.stdout.matchAll(/"ID":(\d+)/g)].map((m) => m[1]).sort();
      ids[kind] = `${cluster} ${memberIds.join(',')}`;
    } finally {
      await Promise.all(members.map((m) => m.destroy()));
    }
  }
  expect(ids['etcd-ts']).toBe(ids.etcd);
  expect(ids.etcd).toMatch(/^\d+ \d+,\d+,\d+$/);
});

describe('a 3-member etcd-ts cluster', () => {
  let nodes: NodeHandle[];

  beforeAll(async () => {
    nodes = await startCluster({ kind: 'etcd-ts', size: 3 });
  });

  afterAll(async () => {
    await Promise.all((nodes ?? []).map((n) => n.destroy()));
  });

  test('elects one leader that every member agrees on; status shows raft state', async () => {
    const leader = await waitLeader(nodes);
    const st = await statuses(nodes);
    expect(st).toHaveLength(3);
    const leaderId = st[0].Status.leader;
    for (const s of st) {
      expect(s.Status.leader).toBe(leaderId);
      expect(s.Status.raftTerm).toBeGreaterThanOrEqual(2);
      expect(s.Status.raftIndex).toBeGreaterThanOrEqual(4); // 3 membership entries + the leader's empty entry
      expect(s.Status.raftAppliedIndex).toBeGreaterThan(0);
      expect(s.Status.header.cluster_id).toBe(st[0].Status.header.cluster_id);
    }
    expect(new Set(st.map((s) => s.Status.header.member_id)).size).toBe(3);
    expect(leader.running).toBe(true);
    // the member list shows every member with its published name and client URL
    const list = await etcdctl(nodes[0].endpoint, ['member', 'list', '-w', 'simple']);
    expect(list.code).toBe(0);
    for (const n of nodes) expect(list.stdout).toContain(`, started, ${n.name}, ${n.peerUrl}, ${n.clientUrl}, false`);
  });

  test('a write on any member is visible to a linearizable read on every member', async () => {
    for (const [i, writer] of nodes.entries()) {
      const put = await etcdctl(writer.endpoint, ['put', `lin/${i}`, `from-${writer.name}`]);
      expect(put.code).toBe(0);
      for (const reader of nodes) {
        const got = await etcdctl(reader.endpoint, ['get', `lin/${i}`, '--print-value-only']);
        expect(got.stdout.trim()).toBe(`from-${writer.name}`);
      }
    }
  });

  test('SIGKILL of the leader under write load: a new leader, every acknowledged write on every member', async () => {
    const leader = await waitLeader(nodes);
    const load = writeLoad(nodes, 'kill');
    let ackedBefore = 0;
    let ackedDuring = 0;
    let electionMs = 0;
    try {
      await sleep(1500);
      ackedBefore = load.acked.size;
      leader.kill('SIGKILL');
      await leader.waitExit();
      const others = nodes.filter((n) => n !== leader);
      const t0 = Date.now();
      const newLeader = await waitLeader(others, 15_000);
      electionMs = Date.now() - t0;
      expect(newLeader).not.toBe(leader);
      // writes go on through the new leader (requests forwarded to the dead one wait out their timeout,
      // as etcd's do)
      const atElection = load.acked.size;
      const deadline = Date.now() + 15_000;
      while (load.acked.size < atElection + 50 && Date.now() < deadline) await sleep(100);
      ackedDuring = load.acked.size;
      await leader.restart();
      await sleep(1000);
    } finally {
      await load.stop();
    }
    expect(ackedBefore).toBeGreaterThan(50);
    expect(ackedDuring).toBeGreaterThan(ackedBefore);
    await waitConverged(nodes);
    for (const n of nodes) expect(await missingOn(n, 'kill', load.acked)).toEqual([]);
    // default election timeout 1 s: the new leader came within a few
    expect(electionMs).toBeLessThan(15_000);
  });

  test('SIGSTOP of a minority: the majority keeps serving, the paused member catches up after SIGCONT', async () => {
    const leader = await waitLeader(nodes);
    const paused = nodes.find((n) => n !== leader) as NodeHandle;
    const rest = nodes.filter((n) => n !== paused);
    paused.kill('SIGSTOP');
    const load = writeLoad(rest, 'minority');
    try {
      await sleep(3000);
    } finally {
      await load.stop();
      paused.kill('SIGCONT');
    }
    expect(load.acked.size).toBeGreaterThan(100);
    await waitConverged(nodes);
    for (const n of nodes) expect(await missingOn(n, 'minority', load.acked)).toEqual([]);
  });

  test('SIGSTOP of a majority: writes fail with etcd errors, nothing acknowledged is lost', async () => {
    const leader = await waitLeader(nodes);
    const before = writeLoad(nodes, 'majority');
    try {
      await sleep(1000);
    } finally {
      await before.stop();
    }
    const paused = nodes.filter((n) => n !== leader);
    for (const p of paused) p.kill('SIGSTOP');
    try {
      const put = await etcdctl(leader.endpoint, ['put', 'majority/after', 'x', '--command-timeout=3s']);
      expect(put.code).not.toBe(0);
      expect(put.stderr).toMatch(/context deadline exceeded|etcdserver: request timed out|etcdserver: no leader/);
      // a serializable read still answers from the member's own state
      const local = await etcdctl(leader.endpoint, ['get', 'majority/0/0', '--consistency=s', '--print-value-only']);
      expect(local.code).toBe(0);
    } finally {
      for (const p of paused) p.kill('SIGCONT');
    }
    await waitLeader(nodes);
    await waitConverged(nodes);
    for (const n of nodes) expect(await missingOn(n, 'majority', before.acked)).toEqual([]);
  });
});
