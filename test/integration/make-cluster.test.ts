// `make cluster` (test/tools/cluster.sh): three members on 127.0.0.1 client ports 2379/2381/2383 and
// peer ports 2380/2382/2384, started by one command and stopped by one signal.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { etcdctl, httpGet, repoRoot, tmpDataDir } from '../helpers';

jest.setTimeout(90_000);

const PORTS = [2379, 2380, 2381, 2382, 2383, 2384];

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

test('make cluster starts three members on the documented ports and Ctrl-C stops them', async () => {
  const busy = [];
  for (const p of PORTS) if (!(await portFree(p))) busy.push(p);
  // the documented ports are the point of this test: say clearly if something else holds them
  expect({ busyPorts: busy }).toEqual({ busyPorts: [] });
  const dir = tmpDataDir('etcd-ts-make-cluster-');
  const script = spawn(path.join(repoRoot(), 'test/tools/cluster.sh'), [], {
    env: { ...process.env, CLUSTER_DIR: path.join(dir, 'cluster.etcd') },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: false,
  });
  let out = '';
  script.stdout.on('data', (d: Buffer) => (out += d.toString()));
  script.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => script.once('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 60_000;
    while (!out.includes('Ctrl-C stops the cluster') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(out).toContain('endpoints: http://127.0.0.1:2379,http://127.0.0.1:2381,http://127.0.0.1:2383');
    for (const port of [2379, 2381, 2383]) {
      expect((await httpGet(`http://127.0.0.1:${port}/health`)).body).toBe('{"health":"true","reason":""}');
    }
    const list = await etcdctl('127.0.0.1:2379', ['member', 'list']);
    expect(list.stdout).toContain('started, node1, http://127.0.0.1:2380, http://127.0.0.1:2379, false');
    expect(list.stdout).toContain('started, node2, http://127.0.0.1:2382, http://127.0.0.1:2381, false');
    expect(list.stdout).toContain('started, node3, http://127.0.0.1:2384, http://127.0.0.1:2383, false');
    expect((await etcdctl('127.0.0.1:2381', ['put', 'hello', 'cluster'])).code).toBe(0);
    expect((await etcdctl('127.0.0.1:2383', ['get', 'hello', '--print-value-only'])).stdout.trim()).toBe('cluster');
  } finally {
    script.kill('SIGINT');
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000))]);
    expect(code).toBe(0);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  expect(out).toContain('stopping the cluster');
  for (const p of PORTS) expect(await portFree(p)).toBe(true);
});
