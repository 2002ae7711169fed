// The HTTP side of the client port, compared with reference etcd 3.6 where the answer is the same by
// contract (/health, /livez, /readyz, /version shape), plus /metrics carrying etcd's metric names.
import { Etcd3 } from 'etcd3';
import { NodeHandle, freePort, httpGet, startNode } from '../helpers';

let ts: NodeHandle;
let ref: NodeHandle;

beforeAll(async () => {
  [ts, ref] = await Promise.all([startNode({ kind: 'etcd-ts' }), startNode({ kind: 'etcd' })]);
});

afterAll(async () => {
  await Promise.all([ts?.destroy(), ref?.destroy()]);
});

const SAME_AS_ETCD = [
  '/health',
  '/health?serializable=true',
  '/livez',
  '/livez?verbose',
  '/readyz',
  '/readyz?verbose',
  '/readyz/linearizable_read',
  '/readyz/bogus',
  '/no-such-path',
];

// etcd lists verbose health checks in Go map order, which changes from run to run: compare the lines as a set.
const bodyLines = (body: string) => body.split('\n').sort();

test.each(SAME_AS_ETCD)('GET %s answers as etcd does (status, content type, body)', async (path) => {
  const [a, b] = await Promise.all([httpGet(ts.clientUrl + path), httpGet(ref.clientUrl + path)]);
  expect({ status: a.status, type: a.headers['content-type'], body: bodyLines(a.body) }).toEqual({
    status: b.status,
    type: b.headers['content-type'],
    body: bodyLines(b.body),
  });
  expect(a.headers['access-control-allow-origin']).toBe(b.headers['access-control-allow-origin']);
});

test('/readyz?exclude=...&verbose lists the same checks as etcd (etcd orders them by map iteration)', async () => {
  const path = '/readyz?exclude=linearizable_read&verbose';
  const [a, b] = await Promise.all([httpGet(ts.clientUrl + path), httpGet(ref.clientUrl + path)]);
  expect({ status: a.status, lines: bodyLines(a.body) }).toEqual({ status: b.status, lines: bodyLines(b.body) });
  expect(a.body).not.toContain('linearizable_read');
  expect(a.body.endsWith('ok\n')).toBe(true);
});

test('/version reports a 3.6 server, cluster and storage version (dotted integers, as Patroni parses)', async () => {
  const [a, b] = await Promise.all([httpGet(`${ts.clientUrl}/version`), httpGet(`${ref.clientUrl}/version`)]);
  const ours = JSON.parse(a.body);
  const theirs = JSON.parse(b.body);
  expect(Object.keys(ours).sort()).toEqual(Object.keys(theirs).sort());
  expect(ours.etcdserver).toMatch(/^3\.6\.\d+$/);
  expect(ours.etcdcluster).toBe(theirs.etcdcluster);
  expect(ours.storage).toBe(theirs.storage);
});

test('/metrics exposes etcd metric names with etcd types, and they move', async () => {
  const client = new Etcd3({ hosts: ts.clientUrl });
  try {
    await client.put('m/k').value('v');
    await client.get('m/k');
  } finally {
    client.close();
  }
  const { status, body } = await httpGet(`${ts.clientUrl}/metrics`);
  expect(status).toBe(200);
  const ref_ = await httpGet(`${ref.clientUrl}/metrics`);
  const types = (text: string) => new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
  const ourTypes = types(body);
  const etcdTypes = types(ref_.body);
  for (const name of [
    'etcd_server_has_leader',
    'etcd_server_is_leader',
    'etcd_server_leader_changes_seen_total',
    'etcd_server_proposals_committed_total',
    'etcd_server_proposals_applied_total',
    'etcd_server_proposals_pending',
    'etcd_server_proposals_failed_total',
    'etcd_server_quota_backend_bytes',
    'etcd_server_id',
    'etcd_server_version',
    'etcd_disk_wal_fsync_duration_seconds',
    'etcd_disk_backend_commit_duration_seconds',
    'etcd_mvcc_db_total_size_in_bytes',
    'etcd_mvcc_db_total_size_in_use_in_bytes',
    'etcd_debugging_mvcc_keys_total',
    'etcd_mvcc_put_total',
    'etcd_mvcc_range_total',
    'grpc_server_started_total',
    'grpc_server_handled_total',
    'process_resident_memory_bytes',
  ]) {
    expect([name, ourTypes.get(name)]).toEqual([name, etcdTypes.get(name)]);
  }
  expect(body).toMatch(/^etcd_server_has_leader 1$/m);
  expect(body).toMatch(/^etcd_server_quota_backend_bytes 2147483648$/m);
  expect(body).toMatch(/^etcd_disk_wal_fsync_duration_seconds_bucket\{le="0.001"\} \d+$/m);
  expect(body).toMatch(/^etcd_disk_wal_fsync_duration_seconds_bucket\{le="8.192"\} \d+$/m);
  expect(body).toMatch(/^grpc_server_handled_total\{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put",grpc_code="OK"\} [1-9]\d*$/m);
  const committed = Number(/^etcd_server_proposals_committed_total (\d+)$/m.exec(body)?.[1]);
  expect(committed).toBeGreaterThanOrEqual(1);
});

describe('--listen-metrics-urls', () => {
  let tsM: NodeHandle;
  let refM: NodeHandle;
  let tsPort: number;
  let refPort: number;

  beforeAll(async () => {
    [tsPort, refPort] = [await freePort(), await freePort()];
    [tsM, refM] = await Promise.all([
      startNode({ kind: 'etcd-ts', extraArgs: [`--listen-metrics-urls=http://127.0.0.1:${tsPort}`] }),
      startNode({ kind: 'etcd', extraArgs: [`--listen-metrics-urls=http://127.0.0.1:${refPort}`] }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([tsM?.destroy(), refM?.destroy()]);
  });

  // The metrics listener serves /metrics and the health endpoints, and nothing of the client API.
  test.each(['/health', '/livez', '/readyz?verbose', '/readyz/serializable_read', '/version', '/v3/kv/range', '/'])(
    'GET %s on the metrics port answers as etcd does',
    async (path) => {
      const [a, b] = await Promise.all([httpGet(`http://127.0.0.1:${tsPort}${path}`), httpGet(`http://127.0.0.1:${refPort}${path}`)]);
      expect({ status: a.status, type: a.headers['content-type'], body: bodyLines(a.body) }).toEqual({
        status: b.status,
        type: b.headers['content-type'],
        body: bodyLines(b.body),
      });
    },
  );

  test('/metrics on the metrics port is the member registry (the same series as on the client port)', async () => {
    const res = await httpGet(`http://127.0.0.1:${tsPort}/metrics`);
    expect(res.status).toBe(200);
    expect(res.body).toMatch(/^etcd_server_has_leader 1$/m);
    expect(res.body).toMatch(/^# TYPE etcd_disk_wal_fsync_duration_seconds histogram$/m);
    const names = (body: string) => new Set(body.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]));
    expect(names(res.body)).toEqual(names((await httpGet(`${tsM.clientUrl}/metrics`)).body));
  });

  test('a metrics URL that cannot be bound fails the start with the address in the error', async () => {
    await expect(startNode({ kind: 'etcd-ts', extraArgs: [`--listen-metrics-urls=http://127.0.0.1:${tsPort}`], readyTimeoutMs: 10_000 })).rejects.toThrow(
      new RegExp(`127\\.0\\.0\\.1:${tsPort}`),
    );
  });
});
