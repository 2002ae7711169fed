// Pod networking of the test kubelet (podnet.ts), without a control plane: two pod namespaces reach each other
// and the root namespace over the bridge, listen on 0.0.0.0, see their own /etc/hosts (also after a rewrite,
// while running); close() removes everything; init() removes what a dead owner left behind.
import { spawn } from 'child_process';
import * as fs from 'fs';
import { run } from '../helpers';
import { NET_PREFIX, PodNetwork, sh } from './podnet';

jest.setTimeout(60_000);

const STATE_DIR = '/run/etcd-ts-test-kubelet';

let net: PodNetwork | undefined;

/** GET http://ip:8080 from `prefix` (nothing: the root namespace; or ip netns exec <ns>): the body. */
async function get(ip: string, prefix: string[] = []): Promise<string> {
  const script = `require('http').get('http://${ip}:8080', r => { let b = ''; r.on('data', d => b += d); r.on('end', () => console.log(b)); })`;
  const argv = [...prefix, process.execPath, '-e', script];
  const r = await run(argv[0], argv.slice(1));
  return r.stdout.trim() || r.stderr;
}

afterEach(async () => {
  await net?.close();
  net = undefined;
});

/** A small HTTP server in the pod's namespace on 0.0.0.0:port answering its own hostname lookup of `name`. */
const SERVER = `
const http = require('http'); const dns = require('dns');
http.createServer((req, res) => dns.lookup(process.argv[2], (e, a) => res.end(e ? 'ERR ' + e.code : a))).listen(Number(process.argv[1]), '0.0.0.0', () => console.log('listening'));
`;

test('pods reach each other over the bridge, listen on 0.0.0.0 and resolve names from their /etc/hosts', async () => {
  net = new PodNetwork();
  await net.init();
  const a = await net.add();
  const b = await net.add();
  expect(a.ip).not.toBe(b.ip);
  expect(a.ip.startsWith(net.gateway.replace(/\.1$/, '.'))).toBe(true);
  net.writeHosts(a, `127.0.0.1\tlocalhost\n${b.ip}\tpeer.example.svc\n`);

  const [cmd, ...prefix] = net.execPrefix(a);
  const child = spawn(cmd, [...prefix, process.execPath, '-e', SERVER, '8080', 'peer.example.svc'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
    });
    // From the root namespace (as probes do) and from the other pod.
    expect(await get(a.ip)).toBe(b.ip);
    expect(await get(a.ip, net.execPrefix(b))).toBe(b.ip);
    // A rewrite in place reaches the running process (its /etc/hosts is a bind mount of the file).
    net.writeHosts(a, `127.0.0.1\tlocalhost\n10.244.255.77\tpeer.example.svc\n`);
    expect(await get(a.ip)).toBe('10.244.255.77');
  } finally {
    child.kill('SIGKILL');
  }
  // Nothing routes out of a pod: no default route.
  const routes = await sh('ip', ['-n', a.netns, 'route', 'show']);
  expect(routes).not.toMatch(/default/);

  const instance = net.instanceNumber;
  expect((await PodNetwork.leftovers(instance)).length).toBeGreaterThan(0);
  await net.close();
  net = undefined;
  expect(await PodNetwork.leftovers(instance)).toEqual([]);
});

test('init() removes what an owner that died left behind', async () => {
  // A fake crashed run: an instance number nobody holds, with a namespace, a bridge, a veth and an /etc/netns entry.
  fs.mkdirSync(STATE_DIR, { recursive: true });
  let n = 250;
  while (n > 200 && (fs.existsSync(`${STATE_DIR}/${n}.owner`) || (await PodNetwork.leftovers(n)).length > 0)) n--;
  const prefix = `${NET_PREFIX}${n}`;
  fs.writeFileSync(`${STATE_DIR}/${n}.owner`, JSON.stringify({ pid: 999_999_999, start: '1' }));
  await sh('ip', ['netns', 'add', `${prefix}-7`]);
  await sh('ip', ['link', 'add', `${prefix}br`, 'type', 'bridge']);
  await sh('ip', ['link', 'add', `${prefix}v7`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', `${prefix}-7`]);
  fs.mkdirSync(`/etc/netns/${prefix}-7`, { recursive: true });
  fs.writeFileSync(`/etc/netns/${prefix}-7/hosts`, '');
  expect((await PodNetwork.leftovers(n)).sort()).toEqual([`${prefix}-7`, `${prefix}br`, `${prefix}v7`, `/etc/netns/${prefix}-7`].sort());

  net = new PodNetwork();
  await net.init();
  expect(await PodNetwork.leftovers(n)).toEqual([]);
  expect(fs.existsSync(`${STATE_DIR}/${n}.owner`)).toBe(false);
});
