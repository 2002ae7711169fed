// A member stops promptly while clients hold connections open: SIGTERM, and removal from the cluster,
// end the process at once — open watch streams (gRPC and gateway) and keep-alive HTTP connections are
// dropped, not waited for. (Kubernetes SIGKILLs a pod that outlives its grace period; a member stuck in
// shutdown made every rolling restart and scale-down wait for that.)
import * as http from 'node:http';
import { NodeHandle, etcdctl, startCluster, startNode } from '../helpers';
import { RunningCtl, startEtcdctl } from '../helpers/compare';

jest.setTimeout(90_000);

/** Opens the kinds of long-lived client connections real clients hold; returns a closer. */
async function holdConnections(node: NodeHandle): Promise<() => void> {
  const ctl: RunningCtl = startEtcdctl(node.endpoint, ['watch', '--prefix', 'x'], { maxLifetimeMs: 60_000 });
  // a gateway watch: one long POST
  const req = http.request(`${node.clientUrl}/v3/watch`, { method: 'POST', agent: false });
  const created = new Promise<void>((resolve) => req.on('response', (res) => res.once('data', () => resolve())));
  req.on('error', () => undefined);
  req.end(JSON.stringify({ create_request: { key: Buffer.from('x').toString('base64') } }));
  // a keep-alive connection that sits idle
  const agent = new http.Agent({ keepAlive: true });
  await new Promise<void>((resolve, reject) => {
    http.get(`${node.clientUrl}/health`, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    }).on('error', reject);
  });
  await created;
  await new Promise((r) => setTimeout(r, 500)); // the etcdctl watch is connected by now
  return () => {
    void ctl.stop();
    req.destroy();
    agent.destroy();
  };
}

test('SIGTERM with open watch streams and idle keep-alive connections: the member exits 0 within seconds', async () => {
  const node = await startNode({ kind: 'etcd-ts', name: 'term' });
  const release = await holdConnections(node);
  try {
    const began = Date.now();
    node.kill('SIGTERM');
    const exit = await node.waitExit(10_000);
    const took = Date.now() - began;
    console.log(`exited ${exit.code} ${took} ms after SIGTERM with 3 client connections open`);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(took).toBeLessThan(10_000);
    expect(node.logTail()).toContain('"msg":"stopped"');
  } finally {
    release();
    await node.destroy();
  }
});

test('a member removed from its cluster exits by itself even with clients connected to it', async () => {
  const nodes = await startCluster({ kind: 'etcd-ts', size: 3 });
  const [a, , c] = nodes;
  const release = await holdConnections(c);
  try {
    const list = await etcdctl(a.endpoint, ['member', 'list', '-w', 'json', '--hex']);
    const members = (JSON.parse(list.stdout) as { members: { ID: string; name: string }[] }).members;
    const id = members.find((m) => m.name === c.name)?.ID;
    expect(id).toBeDefined();
    // etcd's strict reconfiguration check refuses removals until the members have been connected a while
    let removed = await etcdctl(a.endpoint, ['member', 'remove', String(id)]);
    for (let i = 0; i < 20 && removed.stderr.includes('unhealthy cluster'); i++) {
      await new Promise((r) => setTimeout(r, 500));
      removed = await etcdctl(a.endpoint, ['member', 'remove', String(id)]);
    }
    expect(`${removed.code} ${removed.stderr}`).toBe('0 ');
    const exit = await c.waitExit(15_000);
    expect(exit.code).toBe(0);
    expect(c.logTail()).toContain('permanently removed');
  } finally {
    release();
    await Promise.all(nodes.map((n) => n.destroy()));
  }
});
