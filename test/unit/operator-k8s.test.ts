// The operator's Kubernetes REST client against a local HTTP server standing in for kube-apiserver:
// kubeconfig parsing (token, client certificate data or files), requests and their errors, patches with the
// right content types, and watch streams.
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import { KubeClient, KubeError, RESOURCES, isAlreadyExists, kubeconfigConnection, type WatchEvent } from '../../operator/k8s';

interface Seen {
  method: string;
  url: string;
  contentType?: string;
  auth?: string;
  body: string;
}

let server: http.Server;
let base = '';
const seen: Seen[] = [];
let handler: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void = () => {};

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, contentType: req.headers['content-type'], auth: req.headers.authorization, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  seen.length = 0;
});

const json = (res: http.ServerResponse, status: number, obj: unknown) => res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(obj));

describe('kubeconfig', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'op-kubeconfig-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  test('token user, CA data, context namespace', () => {
    const file = path.join(dir, 'token.yaml');
    fs.writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'current-context: ctx',
        'clusters: [{name: c, cluster: {server: "https://10.1.2.3:6443/", certificate-authority-data: ' + Buffer.from('CA').toString('base64') + '}}]',
        'users: [{name: u, user: {token: abc}}]',
        'contexts: [{name: ctx, context: {cluster: c, user: u, namespace: ops}}]',
      ].join('\n'),
    );
    const c = kubeconfigConnection(file);
    expect(c.server).toBe('https://10.1.2.3:6443');
    expect(c.ca?.toString()).toBe('CA');
    expect(c.token?.()).toBe('abc');
    expect(c.namespace).toBe('ops');
  });
  test('client certificate files, relative to the kubeconfig', () => {
    fs.writeFileSync(path.join(dir, 'admin.crt'), 'CERT');
    fs.writeFileSync(path.join(dir, 'admin.key'), 'KEY');
    fs.writeFileSync(path.join(dir, 'ca.crt'), 'CA2');
    const file = path.join(dir, 'cert.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1', 'certificate-authority': 'ca.crt' } }],
        users: [{ name: 'u', user: { 'client-certificate': 'admin.crt', 'client-key': path.join(dir, 'admin.key') } }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'x',
      }),
    );
    const c = kubeconfigConnection(file);
    expect([c.ca?.toString(), c.cert?.toString(), c.key?.toString(), c.token]).toEqual(['CA2', 'CERT', 'KEY', undefined]);
    expect(() => kubeconfigConnection(file, 'nope')).toThrow(/no context "nope"/);
  });
});

describe('requests', () => {
  test('find: the object, or undefined on 404; errors carry status and reason', async () => {
    const kube = new KubeClient({ server: base, token: () => 't0k' });
    handler = (req, res) => {
      if (req.url!.endsWith('/main')) json(res, 200, { metadata: { name: 'main' } });
      else if (req.url!.endsWith('/gone')) json(res, 404, { kind: 'Status', reason: 'NotFound', message: 'not found' });
      else json(res, 500, { reason: 'InternalError', message: 'boom' });
    };
    expect(await kube.find(RESOURCES.etcdclusters, 'db', 'main')).toEqual({ metadata: { name: 'main' } });
    expect(await kube.find(RESOURCES.etcdclusters, 'db', 'gone')).toBeUndefined();
    const err = await kube.get(RESOURCES.etcdclusters, 'db', 'bad').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeError);
    expect(err).toMatchObject({ status: 500, reason: 'InternalError' });
    expect(seen[0]).toMatchObject({ method: 'GET', url: '/apis/etcd-ts.io/v1alpha1/namespaces/db/etcdclusters/main', auth: 'Bearer t0k' });
    kube.close();
  });
  test('create, merge patch of a subresource, server-side apply, delete (404 is fine), list with a selector', async () => {
    const kube = new KubeClient({ server: base });
    handler = (req, res) => {
      if (req.method === 'POST') json(res, 409, { reason: 'AlreadyExists', message: 'exists' });
      else if (req.method === 'DELETE') json(res, 404, { reason: 'NotFound' });
      else json(res, 200, { items: [], metadata: { resourceVersion: '7' } });
    };
    const created = await kube.create(RESOURCES.configmaps, 'db', { metadata: { name: 'x' } }).catch((e: unknown) => e);
    expect(isAlreadyExists(created)).toBe(true);
    await kube.patch(RESOURCES.etcdclusters, 'db', 'main', { status: { phase: 'Running' } }, 'merge', 'status');
    await kube.apply(RESOURCES.statefulsets, 'db', { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'main' } });
    await kube.delete(RESOURCES.pods, 'db', 'main-0', { uid: 'u1' });
    const list = await kube.list(RESOURCES.pods, 'db', 'a=b,c=d');
    expect(list.metadata?.resourceVersion).toBe('7');
    expect(seen.map((s) => [s.method, s.url, s.contentType])).toEqual([
      ['POST', '/api/v1/namespaces/db/configmaps?fieldManager=etcd-ts-operator', 'application/json'],
      ['PATCH', '/apis/etcd-ts.io/v1alpha1/namespaces/db/etcdclusters/main/status?fieldManager=etcd-ts-operator', 'application/merge-patch+json'],
      ['PATCH', '/apis/apps/v1/namespaces/db/statefulsets/main?fieldManager=etcd-ts-operator&force=true', 'application/apply-patch+yaml'],
      ['DELETE', '/api/v1/namespaces/db/pods/main-0', 'application/json'],
      ['GET', '/api/v1/namespaces/db/pods?labelSelector=a%3Db%2Cc%3Dd', undefined],
    ]);
    expect(JSON.parse(seen[3].body)).toMatchObject({ preconditions: { uid: 'u1' } });
    kube.close();
  });
  test('watch: events line by line, until the server ends the stream or the signal aborts', async () => {
    const kube = new KubeClient({ server: base });
    handler = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write(JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a', resourceVersion: '1' } } }) + '\n{"type":"MODI');
      setTimeout(() => res.end('FIED","object":{"metadata":{"name":"a","resourceVersion":"2"}}}\n'), 20);
    };
    const events: WatchEvent<{ metadata: { name: string } }>[] = [];
    await kube.watch(RESOURCES.etcdclusters, undefined, '0', (e) => events.push(e as never), new AbortController().signal);
    expect(events.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED']);
    expect(seen[0].url).toMatch(/^\/apis\/etcd-ts.io\/v1alpha1\/etcdclusters\?watch=1&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion=0$/);

    handler = (_req, res) => {
      res.writeHead(200);
      res.write('');
    };
    const ac = new AbortController();
    const pending = kube.watch(RESOURCES.pods, 'db', undefined, () => {}, ac.signal);
    setTimeout(() => ac.abort(), 50);
    await expect(pending).resolves.toBeUndefined();
    kube.close();
  });
});
