// Client and peer TLS with real certificates (made by openssl in the test): etcdctl over https with
// client-certificate authentication, refusals (no client certificate, a certificate from another CA, a
// server the client does not trust), a 3-member cluster whose peers talk TLS with peer-client-cert-auth,
// a member with a certificate from another CA kept out, and certificate rotation on disk under load.
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { NodeHandle, etcdctl, freePort, startNode, tmpDataDir } from '../helpers';
import { Ca, makeCa, makeCert, makeExpiredCert } from '../helpers/certs';

jest.setTimeout(120_000);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let dir: string;
let ca: Ca;
let otherCa: Ca;

beforeAll(() => {
  dir = tmpDataDir('etcd-ts-tls-');
  ca = makeCa(path.join(dir, 'pki'), 'ca');
  otherCa = makeCa(path.join(dir, 'other'), 'other-ca');
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function getHealth(port: number, client: { cert: string; key: string } | undefined, caFile: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      {
        host: '127.0.0.1',
        port,
        path: '/health',
        ca: fs.readFileSync(caFile),
        cert: client ? fs.readFileSync(client.cert) : undefined,
        key: client ? fs.readFileSync(client.key) : undefined,
        agent: false,
        timeout: 3000,
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** A JSON gateway POST over https with a client certificate (or none). */
function gatewayPost(
  port: number,
  urlPath: string,
  body: object,
  client: { cert: string; key: string } | undefined,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: urlPath,
        method: 'POST',
        headers,
        ca: fs.readFileSync(ca.cert),
        cert: client ? fs.readFileSync(client.cert) : undefined,
        key: client ? fs.readFileSync(client.key) : undefined,
        agent: false,
        timeout: 5000,
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> });
          } catch {
            reject(new Error(`HTTP ${res.statusCode}: ${text}`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

async function waitHealthy(port: number, client: { cert: string; key: string }, node: NodeHandle, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const h = await getHealth(port, client, ca.cert).catch(() => undefined);
    if (h?.status === 200) return;
    if (!node.running || Date.now() > deadline) throw new Error(`member not healthy over https:\n${node.logTail()}`);
    await sleep(200);
  }
}

/** Starts etcd-ts members with https client and peer URLs (extra flags override the generated http ones). */
async function startTlsCluster(size: number, certs: { cert: string; key: string }[], extra: string[] = []): Promise<NodeHandle[]> {
  const ports = await Promise.all(Array.from({ length: 2 * size }, () => freePort()));
  const names = Array.from({ length: size }, (_, i) => `m${i + 1}`);
  const initial = names.map((n, i) => `${n}=https://127.0.0.1:${ports[2 * i + 1]}`).join(',');
  const token = `tls-${process.pid}-${Date.now()}`;
  return Promise.all(
    names.map((name, i) =>
      startNode({
        kind: 'etcd-ts',
        name,
        clientPort: ports[2 * i],
        peerPort: ports[2 * i + 1],
        initialCluster: initial,
        waitReady: false,
        extraArgs: [
          `--listen-client-urls=https://127.0.0.1:${ports[2 * i]}`,
          `--advertise-client-urls=https://127.0.0.1:${ports[2 * i]}`,
          `--listen-peer-urls=https://127.0.0.1:${ports[2 * i + 1]}`,
          `--initial-advertise-peer-urls=https://127.0.0.1:${ports[2 * i + 1]}`,
          `--cert-file=${certs[i].cert}`,
          `--key-file=${certs[i].key}`,
          `--trusted-ca-file=${ca.cert}`,
          '--client-cert-auth',
          `--peer-cert-file=${certs[i].cert}`,
          `--peer-key-file=${certs[i].key}`,
          `--peer-trusted-ca-file=${ca.cert}`,
          '--peer-client-cert-auth',
          `--initial-cluster-token=${token}`,
          ...extra,
        ],
      }),
    ),
  );
}

test('a 3-member cluster over TLS: client-certificate auth, peer TLS, refusals with the client-side errors', async () => {
  const certs = [1, 2, 3].map((i) => makeCert(ca, `m${i}`, `m${i}`, { dir: path.join(dir, `m${i}`) }));
  const root = makeCert(ca, 'root', 'root', { dir: path.join(dir, 'client') });
  const stranger = makeCert(otherCa, 'stranger', 'root', { dir: path.join(dir, 'stranger') });
  const nodes = await startTlsCluster(3, certs);
  try {
    await Promise.all(nodes.map((n) => waitHealthy(n.clientPort, root, n)));
    const eps = nodes.map((n) => `https://127.0.0.1:${n.clientPort}`);
    const auth = [`--cacert=${ca.cert}`, `--cert=${root.cert}`, `--key=${root.key}`];
    expect((await etcdctl(eps[0], [...auth, 'put', 'secure', 'yes'])).stdout).toBe('OK\n');
    for (const ep of eps) expect((await etcdctl(ep, [...auth, 'get', 'secure', '--print-value-only'])).stdout).toBe('yes\n');
    const list = await etcdctl(eps[1], [...auth, 'member', 'list']);
    for (const n of nodes) expect(list.stdout).toContain(`${n.name}, https://127.0.0.1:${n.peerPort}, https://127.0.0.1:${n.clientPort}, false`);
    const status = await etcdctl(eps.join(','), [...auth, 'endpoint', 'status', '-w', 'json']);
    expect([...status.stdout.matchAll(/"leader":(\d+)/g)].map((m) => m[1]).filter((v, i, a) => a.indexOf(v) === i)).toHaveLength(1);

    // no client certificate: the server ends the handshake
    const noCert = await etcdctl(eps[0], [`--cacert=${ca.cert}`, '--command-timeout=3s', 'get', 'secure']);
    expect(noCert.code).not.toBe(0);
    expect(noCert.stderr).toMatch(/certificate required|bad certificate|context deadline exceeded|tls/i);
    // a client certificate from another CA
    const wrongCa = await etcdctl(eps[0], [`--cacert=${ca.cert}`, `--cert=${stranger.cert}`, `--key=${stranger.key}`, '--command-timeout=3s', 'get', 'secure']);
    expect(wrongCa.code).not.toBe(0);
    // the client does not trust the server (it only knows the other CA)
    const untrusted = await etcdctl(eps[0], [`--cacert=${otherCa.cert}`, `--cert=${root.cert}`, `--key=${root.key}`, '--command-timeout=3s', 'get', 'secure']);
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr).toMatch(/certificate signed by unknown authority|context deadline exceeded/);
    // plain HTTP/1.1 over TLS on the same port: /health, and no certificate means no answer
    expect((await getHealth(nodes[0].clientPort, root, ca.cert)).body).toBe('{"health":"true","reason":""}');
    await expect(getHealth(nodes[0].clientPort, undefined, ca.cert)).rejects.toThrow();
    const log = nodes[0].logTail();
    expect(log).toMatch(/client certificate rejected: .*rejected client connection/);
  } finally {
    await Promise.all(nodes.map((n) => n.destroy()));
  }
});

test('a member whose peer certificate comes from another CA cannot join the cluster', async () => {
  const certs = [1, 2].map((i) => makeCert(ca, `j${i}`, `j${i}`, { dir: path.join(dir, `j${i}`) }));
  certs.push(makeCert(otherCa, 'j3', 'j3', { dir: path.join(dir, 'j3') }));
  const root = makeCert(ca, 'root2', 'root', { dir: path.join(dir, 'client2') });
  const nodes = await startTlsCluster(3, certs);
  try {
    // two good members form a quorum; the third cannot talk to them
    await Promise.all(nodes.slice(0, 2).map((n) => waitHealthy(n.clientPort, root, n)));
    await sleep(2000);
    expect(nodes[0].logTail() + nodes[1].logTail()).toMatch(/client certificate rejected: .*rejected peer connection/);
    const auth = [`--cacert=${ca.cert}`, `--cert=${root.cert}`, `--key=${root.key}`];
    expect((await etcdctl(`https://127.0.0.1:${nodes[0].clientPort}`, [...auth, 'put', 'k', 'v'])).code).toBe(0);
    // the outsider never gets a leader, so it never opens its client port
    await expect(getHealth(nodes[2].clientPort, root, ca.cert)).rejects.toThrow(/ECONNREFUSED/);
  } finally {
    await Promise.all(nodes.map((n) => n.destroy()));
  }
});

test('certificates replaced on disk are used for new connections without a restart or a failed request', async () => {
  const rdir = path.join(dir, 'rotate');
  const server = makeCert(ca, 'server', 'server-v1', { dir: rdir });
  const root = makeCert(ca, 'root3', 'root', { dir: path.join(dir, 'client3') });
  const [node] = await startTlsCluster(1, [server]);
  try {
    await waitHealthy(node.clientPort, root, node);
    const cnOf = () =>
      new Promise<string>((resolve, reject) => {
        const s = tls.connect(
          { host: '127.0.0.1', port: node.clientPort, ca: fs.readFileSync(ca.cert), cert: fs.readFileSync(root.cert), key: fs.readFileSync(root.key), ALPNProtocols: ['http/1.1'] },
          () => {
            const cn = s.getPeerCertificate().subject.CN;
            s.destroy();
            resolve(String(cn));
          },
        );
        s.on('error', reject);
      });
    expect(await cnOf()).toBe('server-v1');
    // a client keeps writing while the certificate is replaced
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const r = await etcdctl(`https://127.0.0.1:${node.clientPort}`, [`--cacert=${ca.cert}`, `--cert=${root.cert}`, `--key=${root.key}`, 'put', `rot/${i}`, 'x']);
        if (r.code === 0) ok++;
        else failures.push(r.stderr);
      }
    })();
    await sleep(1000);
    // write the new pair next to the old files, then move them into place (as a Secret update swaps files)
    const next = makeCert(ca, 'server-next', 'server-v2', { dir: path.join(rdir, 'next') });
    fs.renameSync(next.key, server.key);
    fs.renameSync(next.cert, server.cert);
    const deadline = Date.now() + 15_000;
    let cn = await cnOf();
    while (cn !== 'server-v2' && Date.now() < deadline) {
      await sleep(300);
      cn = await cnOf();
    }
    await sleep(1000);
    stop = true;
    await writer;
    expect(cn).toBe('server-v2');
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(5);
    expect(node.logTail()).toContain('reloaded TLS certificates');
  } finally {
    await node.destroy();
  }
});

test('a server certificate that does not name the address, and a peer CN outside --peer-cert-allowed-cn', async () => {
  // the server's certificate names another host only: the client refuses it
  const wrongSan = makeCert(ca, 'wrongsan', 'wrongsan', { dir: path.join(dir, 'wrongsan'), san: 'DNS:elsewhere.example' });
  const root = makeCert(ca, 'root4', 'root', { dir: path.join(dir, 'client4') });
  const [single] = await startTlsCluster(1, [wrongSan]);
  try {
    const res = await etcdctl(`https://127.0.0.1:${single.clientPort}`, [`--cacert=${ca.cert}`, `--cert=${root.cert}`, `--key=${root.key}`, '--command-timeout=3s', 'get', 'x']);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/certificate is valid for elsewhere\.example, not 127\.0\.0\.1|context deadline exceeded/);
  } finally {
    await single.destroy();
  }
  // peers must present a certificate whose CN is allowed: m3's is not
  const certs = [1, 2, 3].map((i) => makeCert(ca, `cn${i}`, i === 3 ? 'intruder' : 'etcd-peer', { dir: path.join(dir, `cn${i}`) }));
  const nodes = await startTlsCluster(3, certs, ['--peer-cert-allowed-cn=etcd-peer']);
  try {
    await Promise.all(nodes.slice(0, 2).map((n) => waitHealthy(n.clientPort, root, n)));
    const deadline = Date.now() + 10_000;
    while (!/rejected peer connection/.test(nodes[0].logTail() + nodes[1].logTail()) && Date.now() < deadline) await sleep(200);
    expect(nodes[0].logTail() + nodes[1].logTail()).toMatch(/certificate CN \\"intruder\\" is not allowed/);
    await expect(getHealth(nodes[2].clientPort, root, ca.cert)).rejects.toThrow(/ECONNREFUSED/);
  } finally {
    await Promise.all(nodes.map((n) => n.destroy()));
  }
});

test('the runbook: 3 members with TLS and client-certificate auth, RBAC with a patroni user on /service/', async () => {
  const certs = [1, 2, 3].map((i) => makeCert(ca, `rb${i}`, `rb${i}`, { dir: path.join(dir, `rb${i}`) }));
  // root authenticates by its certificate's CN; patroni by password over a certificate without a CN
  const rootCert = makeCert(ca, 'rb-root', 'root', { dir: path.join(dir, 'rb-client') });
  const anon = makeCert(ca, 'rb-anon', '', { dir: path.join(dir, 'rb-client'), subject: '/O=etcd-clients' });
  const nodes = await startTlsCluster(3, certs);
  try {
    await Promise.all(nodes.map((n) => waitHealthy(n.clientPort, rootCert, n)));
    const eps = nodes.map((n) => `https://127.0.0.1:${n.clientPort}`).join(',');
    const asRoot = [`--cacert=${ca.cert}`, `--cert=${rootCert.cert}`, `--key=${rootCert.key}`];
    const asAnon = [`--cacert=${ca.cert}`, `--cert=${anon.cert}`, `--key=${anon.key}`];
    const setup = [
      ['user', 'add', 'root:rootpw'],
      ['user', 'grant-role', 'root', 'root'],
      ['role', 'add', 'patroni'],
      ['role', 'grant-permission', 'patroni', 'readwrite', '/service/', '--prefix=true'],
      ['user', 'add', 'patroni:patronipw'],
      ['user', 'grant-role', 'patroni', 'patroni'],
    ];
    for (const args of setup) {
      const r = await etcdctl(eps, [...asRoot, ...args]);
      expect(`${args.join(' ')} -> ${r.code} ${r.stderr}`).toBe(`${args.join(' ')} -> 0 `);
    }
    expect((await etcdctl(eps, [...asRoot, 'auth', 'enable'])).stdout).toBe('Authentication Enabled\n');
    // patroni writes and reads its prefix, through every member
    expect((await etcdctl(eps, [...asAnon, '--user=patroni:patronipw', 'put', '/service/test', 'leader'])).stdout).toBe('OK\n');
    for (const n of nodes) {
      const got = await etcdctl(`https://127.0.0.1:${n.clientPort}`, [...asAnon, '--user=patroni:patronipw', 'get', '/service/test', '--print-value-only']);
      expect(got.stdout).toBe('leader\n');
    }
    // ...but nothing outside it
    const outside = await etcdctl(eps, [...asAnon, '--user=patroni:patronipw', 'get', '/', '--prefix']);
    expect(outside.code).not.toBe(0);
    expect(outside.stderr).toContain('etcdserver: permission denied');
    // no token and a certificate without a name: etcd takes the empty name as a user it does not know
    const unauth = await etcdctl(eps, [...asAnon, 'get', '/', '--prefix']);
    expect(unauth.code).not.toBe(0);
    expect(unauth.stderr).toContain('Error: etcdserver: permission denied');
    // ...which is still no user for admin requests
    const unauthAdmin = await etcdctl(eps, [...asAnon, 'user', 'list']);
    expect(unauthAdmin.stderr).toContain('Error: etcdserver: user name is empty');
    // the root certificate alone is enough to act as root (CN = user)
    const all = await etcdctl(eps, [...asRoot, 'get', '/', '--prefix', '--keys-only']);
    expect(all.stdout).toContain('/service/test');
    // a watch outside the prefix is refused when it is created
    const watch = await etcdctl(eps, [...asAnon, '--user=patroni:patronipw', 'watch', '/elsewhere', '--command-timeout=3s'], { timeoutMs: 8000 });
    expect(watch.stdout + watch.stderr).toContain('permission denied');
    // The JSON gateway over https, as Patroni uses it: a password token in the Authorization header.
    const port = nodes[1].clientPort;
    const b64 = (t: string) => Buffer.from(t).toString('base64');
    await expect(gatewayPost(port, '/v3/kv/range', { key: b64('/service/test') }, undefined)).rejects.toThrow();
    const login = await gatewayPost(port, '/v3/auth/authenticate', { name: 'patroni', password: 'patronipw' }, anon);
    expect(login.status).toBe(200);
    const asPatroni = { Authorization: String(login.json.token) };
    expect((await gatewayPost(port, '/v3/kv/put', { key: b64('/service/gw'), value: b64('v') }, anon, asPatroni)).status).toBe(200);
    const got = await gatewayPost(port, '/v3/kv/range', { key: b64('/service/gw'), serializable: true }, anon, asPatroni);
    expect((got.json.kvs as { value: string }[])[0].value).toBe(b64('v'));
    expect(await gatewayPost(port, '/v3/kv/range', { key: b64('/'), range_end: b64('0') }, anon, asPatroni)).toEqual({
      status: 403,
      json: { code: 7, message: 'etcdserver: permission denied' },
    });
    expect(await gatewayPost(port, '/v3/kv/range', { key: b64('/service/gw') }, anon)).toEqual({
      status: 400,
      json: { code: 3, message: 'etcdserver: user name is empty' },
    });
    // a gateway request never runs as its certificate's name: one whose certificate has a name is refused
    await expect(gatewayPost(port, '/v3/kv/range', { key: b64('/'), range_end: b64('0'), keys_only: true }, rootCert)).rejects.toThrow(
      /CommonName of client sending a request against gateway will be ignored/,
    );
  } finally {
    await Promise.all(nodes.map((n) => n.destroy()));
  }
});

test('an expired client certificate is refused, and the server logs why', async () => {
  const server = makeCert(ca, 'exp-server', 'exp-server', { dir: path.join(dir, 'exp') });
  const expired = makeExpiredCert(ca, 'exp-client', 'root', path.join(dir, 'exp'));
  const good = makeCert(ca, 'exp-good', 'root', { dir: path.join(dir, 'exp') });
  const [node] = await startTlsCluster(1, [server]);
  try {
    await waitHealthy(node.clientPort, good, node);
    const r = await etcdctl(`https://127.0.0.1:${node.clientPort}`, [`--cacert=${ca.cert}`, `--cert=${expired.cert}`, `--key=${expired.key}`, '--command-timeout=3s', 'get', 'x']);
    expect(r.code).not.toBe(0);
    await expect(getHealth(node.clientPort, expired, ca.cert)).rejects.toThrow();
    const deadline = Date.now() + 5000;
    while (!/CERT_HAS_EXPIRED/.test(node.logTail()) && Date.now() < deadline) await sleep(100);
    expect(node.logTail()).toMatch(/client certificate rejected: CERT_HAS_EXPIRED.*rejected client connection/);
    // the same client with a valid certificate is served
    expect((await etcdctl(`https://127.0.0.1:${node.clientPort}`, [`--cacert=${ca.cert}`, `--cert=${good.cert}`, `--key=${good.key}`, 'put', 'x', 'y'])).stdout).toBe('OK\n');
  } finally {
    await node.destroy();
  }
});

test('rotating every member\'s certificate (client and peer) in a 3-member cluster under load: no failed request', async () => {
  const certs = [1, 2, 3].map((i) => makeCert(ca, `rot${i}`, `rot${i}-v1`, { dir: path.join(dir, `rot${i}`) }));
  const root = makeCert(ca, 'rot-root', 'root', { dir: path.join(dir, 'rot-client') });
  const nodes = await startTlsCluster(3, certs);
  try {
    await Promise.all(nodes.map((n) => waitHealthy(n.clientPort, root, n)));
    const eps = nodes.map((n) => `https://127.0.0.1:${n.clientPort}`).join(',');
    const auth = [`--cacert=${ca.cert}`, `--cert=${root.cert}`, `--key=${root.key}`];
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const r = await etcdctl(eps, [...auth, 'put', `rot/${i}`, 'x']);
        if (r.code === 0) ok++;
        else failures.push(r.stderr);
      }
    })();
    await sleep(1000);
    for (const [i, c] of certs.entries()) {
      const next = makeCert(ca, `rot${i + 1}-next`, `rot${i + 1}-v2`, { dir: path.join(dir, `rot${i + 1}`, 'next') });
      fs.renameSync(next.key, c.key);
      fs.renameSync(next.cert, c.cert);
      await sleep(700);
    }
    const deadline = Date.now() + 15_000;
    while (!nodes.every((n) => (n.logTail().match(/reloaded TLS certificates/g) ?? []).length >= 2) && Date.now() < deadline) await sleep(300);
    await sleep(1500);
    stop = true;
    await writer;
    // every member reloaded both its client and its peer certificates
    for (const n of nodes) {
      expect(n.logTail()).toMatch(/"what":"client"[^\n]*reloaded TLS certificates/);
      expect(n.logTail()).toMatch(/"what":"peer"[^\n]*reloaded TLS certificates/);
    }
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(5);
    // the cluster still replicates over the new peer certificates
    expect((await etcdctl(eps, [...auth, 'put', 'after-rotation', 'yes'])).code).toBe(0);
    for (const n of nodes) {
      const got = await etcdctl(`https://127.0.0.1:${n.clientPort}`, [...auth, 'get', 'after-rotation', '--print-value-only']);
      expect(got.stdout).toBe('yes\n');
    }
  } finally {
    await Promise.all(nodes.map((n) => n.destroy()));
  }
});

test('--tls-min-version, --tls-max-version and --cipher-suites decide what a client may negotiate', async () => {
  const server = makeCert(ca, 'ver-server', 'ver-server', { dir: path.join(dir, 'ver') });
  const client = makeCert(ca, 'ver-client', 'root', { dir: path.join(dir, 'ver') });
  const attempt = (port: number, opts: tls.ConnectionOptions) =>
    new Promise<{ version: string | null; cipher: string }>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(ca.cert), cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key), ALPNProtocols: ['http/1.1'], ...opts }, () => {
        const r = { version: s.getProtocol(), cipher: s.getCipher().name };
        s.destroy();
        resolve(r);
      });
      s.on('error', reject);
    });
  const [only13] = await startTlsCluster(1, [server], ['--tls-min-version=TLS1.3']);
  try {
    await waitHealthy(only13.clientPort, client, only13);
    expect((await attempt(only13.clientPort, {})).version).toBe('TLSv1.3');
    await expect(attempt(only13.clientPort, { maxVersion: 'TLSv1.2' })).rejects.toThrow();
  } finally {
    await only13.destroy();
  }
  const [suites] = await startTlsCluster(1, [server], ['--tls-max-version=TLS1.2', '--cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384']);
  try {
    await waitHealthy(suites.clientPort, client, suites);
    const ok = await attempt(suites.clientPort, {});
    expect(ok).toEqual({ version: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES256-GCM-SHA384' });
    await expect(attempt(suites.clientPort, { ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', maxVersion: 'TLSv1.2' })).rejects.toThrow();
  } finally {
    await suites.destroy();
  }
});

test('a no-password user authenticates by its client certificate only', async () => {
  const server = makeCert(ca, 'np-server', 'np-server', { dir: path.join(dir, 'np') });
  const rootCert = makeCert(ca, 'np-root', 'root', { dir: path.join(dir, 'np') });
  const svcCert = makeCert(ca, 'np-svc', 'svc', { dir: path.join(dir, 'np') });
  const [node] = await startTlsCluster(1, [server]);
  try {
    await waitHealthy(node.clientPort, rootCert, node);
    const ep = `https://127.0.0.1:${node.clientPort}`;
    const asRoot = [`--cacert=${ca.cert}`, `--cert=${rootCert.cert}`, `--key=${rootCert.key}`];
    const asSvc = [`--cacert=${ca.cert}`, `--cert=${svcCert.cert}`, `--key=${svcCert.key}`];
    for (const args of [
      ['user', 'add', 'root:rootpw'],
      ['user', 'grant-role', 'root', 'root'],
      ['user', 'add', 'svc', '--no-password'],
      ['role', 'add', 'svc'],
      ['role', 'grant-permission', 'svc', 'readwrite', '/svc/', '--prefix=true'],
      ['user', 'grant-role', 'svc', 'svc'],
      ['auth', 'enable'],
    ]) {
      const r = await etcdctl(ep, [...asRoot, ...args]);
      expect(`${args.join(' ')}: ${r.code} ${r.stderr}`).toBe(`${args.join(' ')}: 0 `);
    }
    expect((await etcdctl(ep, [...asSvc, 'put', '/svc/a', '1'])).stdout).toBe('OK\n');
    const denied = await etcdctl(ep, [...asSvc, 'put', '/other', '1']);
    expect(denied.stderr).toContain('etcdserver: permission denied');
    // a password can never log in as a no-password user
    const pw = await etcdctl(ep, [...asSvc, '--user=svc:anything', 'get', '/svc/a']);
    expect(pw.code).not.toBe(0);
    expect(pw.stderr).toMatch(/password was given for no password user|authentication failed/);
  } finally {
    await node.destroy();
  }
});
