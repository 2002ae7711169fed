// Membership changes on real clusters: etcdctl member add (learner) / promote / remove / update, a member
// joining with --initial-cluster-state=existing, catch-up by snapshot when the log was compacted, the
// leader removing itself, move-leader, --force-new-cluster and a member of another cluster being refused.
// Error cases are compared with reference etcd 3.6 running the same commands.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NodeHandle, etcdctl, freePort, haveReferenceTools, httpGet, startCluster, startNode } from '../helpers';
import { RawKv } from '../helpers/compare';

jest.setTimeout(240_000);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

interface MemberRow {
  id: string;
  status: string;
  name: string;
  peer: string;
  client: string;
  learner: boolean;
}

async function members(endpoint: string): Promise<MemberRow[]> {
  const res = await etcdctl(endpoint, ['member', 'list']);
  if (res.code !== 0) throw new Error(res.stderr);
  return res.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id, status, name, peer, client, learner] = line.split(', ');
      return { id, status, name, peer, client, learner: learner === 'true' };
    });
}

/** The hex id and endpoint of the member every given member calls leader. */
async function leaderOf(nodes: NodeHandle[]): Promise<{ id: string; node: NodeHandle }> {
  return until('an agreed leader', async () => {
    const res = await etcdctl(
      nodes.filter((n) => n.running).map((n) => n.endpoint),
      ['endpoint', 'status', '-w', 'json', '--command-timeout=2s'],
    );
    const text = res.stdout.replace(/"(member_id|leader)":(\d+)/g, '"$1":"$2"');
    const st = JSON.parse(text) as { Endpoint: string; Status: { header: { member_id: string }; leader: string } }[];
    const leaders = new Set(st.map((s) => s.Status.leader));
    if (leaders.size !== 1 || leaders.has('0') || st.length !== nodes.filter((n) => n.running).length) return undefined;
    const lead = st.find((s) => s.Status.header.member_id === s.Status.leader);
    const node = lead && nodes.find((n) => lead.Endpoint.endsWith(`:${n.clientPort}`));
    return node ? { id: BigInt(st[0].Status.leader).toString(16), node } : undefined;
  });
}

async function revisionOf(node: NodeHandle): Promise<string> {
  const r = await etcdctl(node.endpoint, ['get', 'x', '--consistency=s', '-w', 'json', '--command-timeout=2s']);
  return /"revision":(\d+)/.exec(r.stdout)?.[1] ?? 'err';
}

async function converged(nodes: NodeHandle[]): Promise<void> {
  await until('members to apply the same revision', async () => {
    const revs = await Promise.all(nodes.filter((n) => n.running).map(revisionOf));
    return new Set(revs).size === 1 && revs[0] !== 'err' ? true : undefined;
  });
}

/** Starts a member that joins `cluster` after `etcdctl member add` (etcd's ETCD_INITIAL_CLUSTER output). */
async function join(kind: 'etcd-ts' | 'etcd', cluster: NodeHandle[], name: string, clientPort: number, peerPort: number, extra: string[] = []): Promise<NodeHandle> {
  const initial = [...cluster.map((n) => `${n.name}=${n.peerUrl}`), `${name}=http://127.0.0.1:${peerPort}`].join(',');
  return startNode({ kind, name, clientPort, peerPort, initialCluster: initial, extraArgs: ['--initial-cluster-state=existing', ...extra], readyTimeoutMs: 30_000 });
}

/** Writes unique keys through every member until stopped; remembers what was acknowledged. */
function load(nodes: NodeHandle[], prefix: string): { acked: Map<string, string>; stop(): Promise<void> } {
  const acked = new Map<string, string>();
  let stopped = false;
  let seq = 0;
  const clients = nodes.map((n) => new RawKv(n.endpoint));
  const loops = clients.map(async (kv, i) => {
    while (!stopped) {
      const key = `${prefix}/${i}/${seq++}`;
      try {
        await kv.put(key, `v${key}`);
        acked.set(key, `v${key}`);
      } catch {
        await sleep(50);
      }
    }
  });
  return {
    acked,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
      clients.forEach((c) => c.close());
    },
  };
}

async function missingOn(node: NodeHandle, prefix: string, acked: Map<string, string>): Promise<string[]> {
  const res = await etcdctl(node.endpoint, ['get', `${prefix}/`, '--prefix', '--consistency=s', '-w', 'json']);
  const parsed = JSON.parse(res.stdout) as { kvs?: { key: string; value: string }[] };
  const stored = new Map((parsed.kvs ?? []).map((kv) => [Buffer.from(kv.key, 'base64').toString(), Buffer.from(kv.value, 'base64').toString()]));
  return [...acked].filter(([k, v]) => stored.get(k) !== v).map(([k]) => k);
}

/** Replaces member ids (16 hex digits) and ports so two clusters' outputs compare. */
function norm(text: string): string {
  return text
    .replace(/\b[0-9a-f]{16}\b/g, '<id>')
    .replace(/\b[0-9a-f]{13,15}\b/g, '<id>')
    // etcdctl prints ids with %16x: a shorter one is padded with spaces
    .replace(/ {2,}<id>/g, ' <id>')
    .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:<port>')
    .replace(/^\{"level".*$/gm, '')
    // etcd prints the initial cluster in map order: compare it sorted
    .replace(/ETCD_INITIAL_CLUSTER="([^"]*)"/, (_m, list: string) => `ETCD_INITIAL_CLUSTER="${list.split(',').sort().join(',')}"`)
    .trim();
}

describe.each(['etcd', 'etcd-ts'] as const)('membership errors as etcd reports them (%s)', (kind) => {
  let nodes: NodeHandle[] = [];
  beforeAll(async () => {
    if (kind === 'etcd' && !haveReferenceTools()) throw new Error('reference etcd missing: run make tools');
    nodes = await startCluster({ kind, size: 3 });
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.destroy()));
  });

  const transcripts: Record<string, string[]> = ((globalThis as Record<string, unknown>).__membershipTranscripts ??= {}) as Record<string, string[]>;

  test('member add / promote / remove / update errors', async () => {
    // one member answers everything: the health interval is per member
    const ep = [nodes[0].endpoint];
    // strict reconfiguration checks want peers connected for etcd's health interval (5 s): wait until a
    // probe learner can be added (and remove it again)
    const probe = await until(
      'the cluster to accept a member add',
      async () => {
        const r = await etcdctl(ep, ['member', 'add', 'probe', '--learner', `--peer-urls=http://127.0.0.1:${await freePort()}`]);
        return r.code === 0 ? r : undefined;
      },
      30_000,
    );
    // etcdctl prints ids with %16x: short ones are padded with spaces
    const probeId = /Member\s+([0-9a-f]+) added/.exec(probe.stdout)?.[1] as string;
    expect(probeId).toMatch(/^[0-9a-f]+$/);
    expect((await etcdctl(ep, ['member', 'remove', probeId])).code).toBe(0);
    const out: string[] = [];
    const run = async (args: string[]) => {
      const r = await etcdctl(ep, args);
      out.push(`$ ${norm(args.join(' '))}\n[${r.code}]\n${norm(r.stdout)}\n${norm(r.stderr)}`);
      return r;
    };
    await run(['member', 'add', 'dup', `--peer-urls=${nodes[1].peerUrl}`]);
    await run(['member', 'add', 'bad', '--peer-urls=not-a-url']);
    const learnerPort = await freePort();
    const added = await run(['member', 'add', 'l1', '--learner', `--peer-urls=http://127.0.0.1:${learnerPort}`]);
    expect(`${added.code} ${added.stderr}`).toBe('0 ');
    await run(['member', 'add', 'l2', '--learner', `--peer-urls=http://127.0.0.1:${await freePort()}`]);
    const list = await members(nodes[0].endpoint);
    const learner = list.find((m) => m.learner) as MemberRow;
    const voter = list.find((m) => !m.learner) as MemberRow;
    await run(['member', 'promote', voter.id]);
    await run(['member', 'promote', 'ffffffffffff']);
    await run(['member', 'remove', 'ffffffffffff']);
    await run(['member', 'update', 'ffffffffffff', '--peer-urls=http://127.0.0.1:1']);
    // a learner that never started has not caught up: promoting it is refused
    await run(['member', 'promote', learner.id]);
    const rm = await run(['member', 'remove', learner.id]);
    expect(rm.code).toBe(0);
    transcripts[kind] = out;
    if (kind === 'etcd-ts' && transcripts.etcd) {
      expect(transcripts['etcd-ts']).toEqual(transcripts.etcd);
    }
  });
});

describe('membership changes on an etcd-ts cluster', () => {
  let nodes: NodeHandle[] = [];
  const extra: NodeHandle[] = [];
  beforeAll(async () => {
    // small snapshot settings so a member that falls behind (or joins late) needs a snapshot
    nodes = await startCluster({ kind: 'etcd-ts', size: 3, extraArgs: ['--snapshot-count=200', '--snapshot-catchup-entries=50'] });
  });
  afterAll(async () => {
    await Promise.all([...nodes, ...extra].map((n) => n.destroy()));
  });

  test('a learner joins under load, catches up by snapshot, is promoted, then removed; the removed member stops', async () => {
    const w = load(nodes, 'm1');
    try {
      await until('enough writes to compact the log', async () => (w.acked.size > 600 ? true : undefined), 60_000);
      const clientPort = await freePort();
      const peerPort = await freePort();
      // strict reconfiguration: accepted once the members have been connected for etcd's health interval
      const add = await until(
        'member add to be accepted',
        async () => {
          const r = await etcdctl(nodes[0].endpoint, ['member', 'add', 'node4', '--learner', `--peer-urls=http://127.0.0.1:${peerPort}`]);
          if (r.code !== 0) expect(r.stderr).toContain('etcdserver: unhealthy cluster');
          return r.code === 0 ? r : undefined;
        },
        30_000,
      );
      expect(add.stdout).toContain('added as learner to cluster');
      expect(add.stdout).toContain('ETCD_INITIAL_CLUSTER_STATE="existing"');
      const n4 = await join('etcd-ts', nodes, 'node4', clientPort, peerPort, ['--snapshot-count=200', '--snapshot-catchup-entries=50']);
      extra.push(n4);
      // the learner got the leader's state as a snapshot (the log it would need is compacted away)
      await until('the learner to install a snapshot', async () => (/installed database snapshot from the leader/.test(n4.logTail()) ? true : undefined), 30_000);
      const st = await etcdctl(n4.endpoint, ['endpoint', 'status', '-w', 'json']);
      expect(st.stdout).toContain('"isLearner":true');
      // a learner serves serializable reads only
      const lin = await etcdctl(n4.endpoint, ['get', 'm1/0/0']);
      expect(lin.stderr).toContain('etcdserver: rpc not supported for learner');
      const ser = await etcdctl(n4.endpoint, ['get', 'm1/0/0', '--consistency=s', '--print-value-only']);
      expect(ser.stdout.trim()).toBe('vm1/0/0');
      const id = (await members(nodes[0].endpoint)).find((m) => m.peer === `http://127.0.0.1:${peerPort}`)?.id as string;
      expect(id).toMatch(/^[0-9a-f]+$/);
      // it publishes its name once it runs
      await until('the learner to publish its name', async () => ((await members(nodes[0].endpoint)).some((m) => m.name === 'node4') ? true : undefined));
      let lastError = '';
      await until(
        'promotion once caught up',
        async () => {
          const r = await etcdctl(nodes[1].endpoint, ['member', 'promote', id]);
          lastError = r.stderr;
          return r.code === 0 ? r : undefined;
        },
        30_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; last answer: ${lastError}`);
      });
      expect((await members(nodes[0].endpoint)).filter((m) => !m.learner)).toHaveLength(4);
      // remove it again, through another member, under the same load
      const rm = await until(
        'member remove to be accepted',
        async () => {
          const r = await etcdctl(nodes[2].endpoint, ['member', 'remove', id]);
          return r.code === 0 ? r : undefined;
        },
        30_000,
      );
      expect(rm.stdout).toMatch(new RegExp(`Member\\s+${id} removed from cluster`));
      const exit = await n4.waitExit(20_000);
      expect(exit.code).toBe(0);
      expect(n4.logTail()).toContain('permanently removed from the cluster');
      await sleep(500);
    } finally {
      await w.stop();
    }
    await converged(nodes);
    for (const n of nodes) expect(await missingOn(n, 'm1', w.acked)).toEqual([]);
    expect(await members(nodes[0].endpoint)).toHaveLength(3);
    // the leader's snapshot send shows in etcd's metrics
    const lead = await leaderOf(nodes);
    const metricsText = (await httpGet(`${lead.node.clientUrl}/metrics`)).body;
    expect(metricsText).toMatch(/etcd_network_snapshot_send_success\{To="[0-9a-f]+"\} [1-9]/);
    expect(metricsText).toMatch(/etcd_network_peer_sent_bytes_total\{To="[0-9a-f]+"\} [1-9]/);
  });

  test('a follower paused past the compacted log catches up by snapshot; hashes agree', async () => {
    const lead = await leaderOf(nodes);
    const follower = nodes.find((n) => n !== lead.node) as NodeHandle;
    follower.kill('SIGSTOP');
    const w = load(
      nodes.filter((n) => n !== follower),
      'm2',
    );
    try {
      await until('writes past two snapshots', async () => (w.acked.size > 500 ? true : undefined), 60_000);
    } finally {
      await w.stop();
      follower.kill('SIGCONT');
    }
    await converged(nodes);
    for (const n of nodes) expect(await missingOn(n, 'm2', w.acked)).toEqual([]);
    const hk = await etcdctl(
      nodes.map((n) => n.endpoint),
      ['endpoint', 'hashkv', '-w', 'json'],
    );
    const hashes = [...hk.stdout.matchAll(/"hash":(\d+)/g)].map((m) => m[1]);
    expect(hashes).toHaveLength(3);
    expect(new Set(hashes).size).toBe(1);
  });

  test('move-leader hands leadership to the named member', async () => {
    const lead = await leaderOf(nodes);
    const target = (await members(nodes[0].endpoint)).find((m) => m.id !== lead.id) as MemberRow;
    const r = await etcdctl(
      nodes.map((n) => n.endpoint),
      ['move-leader', target.id],
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Leadership transferred from ${lead.id} to ${target.id}`);
    expect((await leaderOf(nodes)).id).toBe(target.id);
    // only the leader can be asked
    const follower = nodes.find((n) => n !== lead.node && !n.clientUrl.endsWith(target.client.split(':').pop() as string)) as NodeHandle;
    const bad = await etcdctl(follower.endpoint, ['move-leader', target.id]);
    expect(bad.code).not.toBe(0);
  });

  test('the leader removing itself hands over leadership first and stops', async () => {
    const lead = await leaderOf(nodes);
    const w = load(
      nodes.filter((n) => n !== lead.node),
      'm3',
    );
    try {
      await sleep(500);
      const rm = await etcdctl(lead.node.endpoint, ['member', 'remove', lead.id]);
      expect(`${rm.code} ${rm.stderr}`).toBe('0 ');
      await lead.node.waitExit(20_000);
    } finally {
      await w.stop();
    }
    const rest = nodes.filter((n) => n !== lead.node);
    const next = await leaderOf(rest);
    expect(next.id).not.toBe(lead.id);
    expect(lead.node.logTail()).toContain('leadership transfer finished');
    await converged(rest);
    for (const n of rest) expect(await missingOn(n, 'm3', w.acked)).toEqual([]);
    nodes = rest;
  });
});

describe('bootstrap safety', () => {
  test('--force-new-cluster turns one surviving member into a single-member cluster with all its data', async () => {
    const nodes = await startCluster({ kind: 'etcd-ts', size: 3 });
    try {
      for (let i = 0; i < 20; i++) expect((await etcdctl(nodes[i % 3].endpoint, ['put', `f/${i}`, `${i}`])).code).toBe(0);
      await converged(nodes);
      for (const n of nodes) await n.stop();
      const survivor = nodes[0];
      const restarted = await startNode({
        kind: 'etcd-ts',
        name: survivor.name,
        dataDir: survivor.dataDir,
        clientPort: survivor.clientPort,
        peerPort: survivor.peerPort,
        initialCluster: nodes.map((n) => `${n.name}=${n.peerUrl}`).join(','),
        extraArgs: ['--force-new-cluster'],
      });
      try {
        const list = await members(restarted.endpoint);
        expect(list.map((m) => m.name)).toEqual([survivor.name]);
        const got = await etcdctl(restarted.endpoint, ['get', 'f/', '--prefix', '--keys-only']);
        expect(got.stdout.trim().split('\n').filter(Boolean)).toHaveLength(20);
        expect((await etcdctl(restarted.endpoint, ['put', 'f/after', 'x'])).code).toBe(0);
      } finally {
        await restarted.stop();
      }
    } finally {
      await Promise.all(nodes.map((n) => n.destroy()));
    }
  });

  test('a member of another cluster is refused (cluster ID mismatch) and never joins', async () => {
    const nodes = await startCluster({ kind: 'etcd-ts', size: 3 });
    let stranger: NodeHandle | undefined;
    try {
      // same names and peer URLs for the others, but another token: another cluster ID
      const victim = nodes[2];
      await victim.stop();
      const initial = nodes.map((n) => `${n.name}=${n.peerUrl}`).join(',');
      fs.rmSync(path.join(victim.dataDir), { recursive: true, force: true });
      stranger = await startNode({
        kind: 'etcd-ts',
        name: victim.name,
        clientPort: await freePort(),
        peerPort: victim.peerPort,
        initialCluster: initial,
        extraArgs: ['--initial-cluster-token=another-cluster'],
        waitReady: false,
      });
      await until(
        'the mismatch to be logged',
        async () => (nodes.slice(0, 2).some((n) => /cluster ID mismatch/.test(n.logTail())) ? true : undefined),
        20_000,
      );
      // it never joins a quorum, so (like etcd) it never publishes itself nor opens its client port
      await expect(httpGet(`${stranger.clientUrl}/health`)).rejects.toThrow(/ECONNREFUSED/);
      expect(stranger.running).toBe(true);
      expect((await members(nodes[0].endpoint)).map((m) => m.name).sort()).toEqual(['node1', 'node2', 'node3']);
    } finally {
      await stranger?.destroy();
      await Promise.all(nodes.map((n) => n.destroy()));
    }
  });
});
