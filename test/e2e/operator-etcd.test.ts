// The operator's member operations (operator/etcd, through the etcd3 client) on real etcd-ts processes: the
// view it plans from, adding a learner that then joins with --initial-cluster-state=existing, promotion once
// caught up, leader transfer and removal — the calls the reconciler makes when scaling and upgrading.
import { EtcdMemberOps, type Endpoint } from '../../operator/etcd';
import { type EtcdView, caughtUp, isHealthy, leaderOf } from '../../operator/controllers/plan';
import { type NodeHandle, freePort, startNode } from '../helpers';

jest.setTimeout(120_000);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

describe('member operations on etcd-ts', () => {
  const nodes: NodeHandle[] = [];
  const ops = new EtcdMemberOps({ timeoutMs: 3000 });
  afterAll(async () => {
    for (const n of nodes) await n.destroy().catch(() => undefined);
  });
  const endpoints = (): Endpoint[] => nodes.filter((n) => n.running).map((n) => ({ name: n.name, url: n.clientUrl }));

  test('view, add learner, join, promote, move leader, remove', async () => {
    const token = `op-${process.pid}-${Date.now()}`;
    const first = await startNode({ kind: 'etcd-ts', name: 'm0', extraArgs: [`--initial-cluster-token=${token}`] });
    nodes.push(first);

    const v1 = await until('a view with a leader', async () => {
      const v = await ops.view(endpoints());
      return v !== 'unreachable' && leaderOf(v) ? v : undefined;
    });
    expect(v1.members).toHaveLength(1);
    const id0 = v1.members[0].id;
    expect(v1.members[0]).toMatchObject({ name: 'm0', peerURLs: [first.peerUrl], isLearner: false });
    expect(id0).toMatch(/^[0-9a-f]+$/);
    expect(isHealthy(v1, id0)).toBe(true);
    expect(v1.clusterId).toMatch(/^[0-9a-f]+$/);

    // An unreachable endpoint alone: 'unreachable'.
    expect(await ops.view([{ name: 'x', url: `http://127.0.0.1:${await freePort()}` }])).toBe('unreachable');

    // Add a learner; the new member joins the existing cluster.
    const clientPort = await freePort();
    const peerPort = await freePort();
    const peerURL = `http://127.0.0.1:${peerPort}`;
    const learnerId = await ops.addLearner(endpoints(), peerURL);
    const listed = (await ops.view(endpoints())) as EtcdView;
    expect(listed.members.find((m) => m.id === learnerId)).toMatchObject({ name: '', isLearner: true, peerURLs: [peerURL] });
    const second = await startNode({
      kind: 'etcd-ts',
      name: 'm1',
      clientPort,
      peerPort,
      initialCluster: `m0=${first.peerUrl},m1=${peerURL}`,
      extraArgs: [`--initial-cluster-token=${token}`, '--initial-cluster-state=existing'],
      waitReady: false,
    });
    nodes.push(second);
    const joined = await until('the learner started and caught up', async () => {
      const v = await ops.view(endpoints());
      return v !== 'unreachable' && isHealthy(v, learnerId) && caughtUp(v, learnerId, 100) && v.members.find((m) => m.id === learnerId)?.name === 'm1'
        ? v
        : undefined;
    });
    expect(joined.status[learnerId].version).toBeTruthy();

    await ops.promote(endpoints(), learnerId);
    const promoted = (await ops.view(endpoints())) as EtcdView;
    expect(promoted.members.find((m) => m.id === learnerId)?.isLearner).toBe(false);

    // Move leadership to the new member, then remove the old one.
    const leaderEndpoint = endpoints().find((e) => e.name === 'm0')!;
    await until('leadership moved', async () => {
      const v = (await ops.view(endpoints())) as EtcdView;
      if (leaderOf(v) === learnerId) return true;
      await ops.moveLeader(leaderEndpoint, learnerId).catch(() => undefined);
      return undefined;
    });
    // etcd refuses to remove a member until the others have been active for a while ("unhealthy cluster"):
    // the reconciler retries; so does this test.
    await until('m0 removed', () => ops.remove(endpoints(), id0).then(() => true));
    const after = await until('m0 gone from the list', async () => {
      const v = await ops.view([{ name: 'm1', url: second.clientUrl }]);
      return v !== 'unreachable' && v.members.length === 1 ? v : undefined;
    });
    expect(after.members[0].id).toBe(learnerId);

    // A refused request (removing an unknown member) is an error, not retried on another endpoint.
    await expect(ops.remove([{ name: 'm1', url: second.clientUrl }], 'abcdef')).rejects.toThrow();
  });
});
