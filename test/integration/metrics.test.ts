// The metrics etcd's Grafana dashboard and alert rules read (test/helpers/etcd-metrics.ts), checked on a
// 3-member etcd-ts cluster against a 3-member reference etcd 3.6 cluster driven the same way: every listed
// metric exists on both with the listed type, label names and buckets, and after the same client traffic
// (etcdctl writes/reads/a txn/failing requests, a raw watch stream and lease keep-alive stream) the values that
// should move moved, on both. Member 1 of each cluster runs with --metrics=extensive (the gRPC latency
// histogram), the others with the default, so both modes are covered.
import * as http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { apiPackageDefinition } from '../../src/util/proto';
import { NodeHandle, NodeKind, etcdctl, freePort, httpGet, startNode } from '../helpers';
import { RAW_CHANNEL_OPTIONS } from '../helpers/compare';
import { until } from '../helpers/ctl';
import { ETCD_DASHBOARD_METRICS, EtcdMetric, PROMETHEUS_DEFAULT_BUCKETS } from '../helpers/etcd-metrics';
import { MetricFamily, bucketBounds, histogramSeries, labelNames, parseExposition, sumSamples } from '../helpers/exposition';

jest.setTimeout(180_000);

type Families = Map<string, MetricFamily>;

interface Side {
  kind: NodeKind;
  nodes: NodeHandle[];
  /** node1's scrape just before and just after the etcdctl batch */
  beforeBatch?: Families;
  afterBatch?: Families;
  /** node1's open Watch / Lease streams (started - handled) while the raw streams were open, and after */
  openStreams?: { watch: number; lease: number; watchAfter: number; leaseAfter: number };
  /** node1's client gRPC byte counters moved by two JSON gateway calls */
  gatewayBytes?: { received: number; sent: number };
  /** How node1 counted the two cancelled streams: "method code" -> count */
  streamCodes?: Record<string, number>;
}

const sides: Side[] = [];
const bySide = (kind: NodeKind) => sides.find((s) => s.kind === kind) as Side;

/** node1 with --metrics=extensive, node2 and node3 with the default (basic). */
async function startMixedCluster(kind: NodeKind): Promise<NodeHandle[]> {
  const members: { name: string; clientPort: number; peerPort: number }[] = [];
  for (let i = 1; i <= 3; i++) members.push({ name: `node${i}`, clientPort: await freePort(), peerPort: await freePort() });
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
  const token = `metrics-${kind}-${process.pid}-${Date.now()}`;
  const nodes: NodeHandle[] = [];
  try {
    for (const [i, m] of members.entries()) {
      nodes.push(
        await startNode({
          kind,
          name: m.name,
          clientPort: m.clientPort,
          peerPort: m.peerPort,
          initialCluster,
          extraArgs: [`--initial-cluster-token=${token}`, '--initial-cluster-state=new', ...(i === 0 ? ['--metrics=extensive'] : [])],
          waitReady: false,
        }),
      );
    }
    await Promise.all(nodes.map((n) => n.waitReady(30_000)));
    return nodes;
  } catch (e) {
    await Promise.all(nodes.map((n) => n.destroy().catch(() => undefined)));
    throw e;
  }
}

async function scrape(node: NodeHandle): Promise<Families> {
  const res = await httpGet(`${node.clientUrl}/metrics`, 5_000);
  if (res.status !== 200) throw new Error(`${node.kind} ${node.name} /metrics answered ${res.status}`);
  return parseExposition(res.body);
}

/** Value of an unlabelled (or label-matched) sample; throws when absent so a missing series fails loudly. */
function value(f: Families, name: string, match: Record<string, string> = {}, sample = name): number {
  const v = sumSamples(f, name, match, sample);
  if (v === undefined) throw new Error(`no ${sample}${JSON.stringify(match)} in the scrape`);
  return v;
}

// ---------------------------------------------------------------------------
// Client traffic, the same on both clusters

/** Keys left after the batch and the stream traffic below (m/c is deleted again). */
const EXPECTED_KEYS = ['m/a', 'm/b', 'm/t', 'w/k', 'g/k'];

/** POST to the JSON gateway; resolves with the status (bounded in time). */
function gatewayPost(node: NodeHandle, path: string, body: object): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${node.clientUrl}${path}`, { method: 'POST', agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error(`POST ${path} timed out`)));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** etcdctl against node1 only (a second endpoint would spread the calls): [args, expected exit code]. */
const BATCH: [string[], number, string?][] = [
  [['put', 'm/a', '1'], 0],
  [['put', 'm/b', '2'], 0],
  [['put', 'm/c', '3'], 0],
  [['get', 'm/a'], 0],
  [['get', 'm/', '--prefix'], 0],
  [['txn', '--interactive=false'], 0, 'mod("m/a") > "0"\n\nput m/t yes\n\nput m/t no\n\n'],
  [['del', 'm/c'], 0],
  [['get', 'm/a', '--consistency=s'], 0],
  // failing requests: a future revision (OutOfRange) and an unknown user (FailedPrecondition, which etcd's
  // failed-request panel and alerts count)
  [['get', 'm/a', '--rev=1000000'], 1],
  [['user', 'get', 'nobody'], 1],
  [['endpoint', 'status'], 0],
];

/* eslint-disable @typescript-eslint/no-explicit-any */
function rawClients(endpoint: string): { kv: any; watch: any; lease: any; close: () => void } {
  const pkg = (grpc.loadPackageDefinition(apiPackageDefinition()) as any).etcdserverpb;
  const kv = new pkg.KV(endpoint, grpc.credentials.createInsecure(), RAW_CHANNEL_OPTIONS);
  const watch = new pkg.Watch(endpoint, grpc.credentials.createInsecure(), RAW_CHANNEL_OPTIONS);
  const lease = new pkg.Lease(endpoint, grpc.credentials.createInsecure(), RAW_CHANNEL_OPTIONS);
  return { kv, watch, lease, close: () => [kv, watch, lease].forEach((c) => c.close()) };
}
/* eslint-enable @typescript-eslint/no-explicit-any */

function unaryCall<T>(client: { [m: string]: (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, v: T) => void) => void }, method: string, req: object): Promise<T> {
  return new Promise((resolve, reject) => {
    client[method](req, { deadline: Date.now() + 10_000 }, (err, v) => (err ? reject(err) : resolve(v)));
  });
}

/** First message of a stream matching `pred`, bounded in time. */
function nextMessage<T>(stream: grpc.ClientDuplexStream<object, T>, pred: (m: T) => boolean, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stream.off('data', onData);
      reject(new Error(`no ${what} within 10 s`));
    }, 10_000);
    const onData = (m: T) => {
      if (!pred(m)) return;
      clearTimeout(timer);
      stream.off('data', onData);
      resolve(m);
    };
    stream.on('data', onData);
  });
}

const openStreams = (f: Families, service: string) =>
  value(f, 'grpc_server_started_total', { grpc_service: service, grpc_type: 'bidi_stream' }) -
  value(f, 'grpc_server_handled_total', { grpc_service: service, grpc_type: 'bidi_stream' });

async function driveTraffic(side: Side): Promise<void> {
  const node1 = side.nodes[0];
  side.beforeBatch = await scrape(node1);
  for (const [args, code, input] of BATCH) {
    const r = await etcdctl(node1.endpoint, args, { input, timeoutMs: 15_000 });
    if (r.code !== code) throw new Error(`${side.kind}: etcdctl ${args.join(' ')} exited ${r.code}, expected ${code}\n${r.stdout}${r.stderr}`);
  }
  side.afterBatch = await scrape(node1);

  // The JSON gateway: etcd's is a gRPC client of its own server, so its traffic is client gRPC bytes too.
  const b64 = (t: string) => Buffer.from(t).toString('base64');
  expect(await gatewayPost(node1, '/v3/kv/put', { key: b64('g/k'), value: b64('gateway') })).toBe(200);
  expect(await gatewayPost(node1, '/v3/kv/range', { key: b64('g/k') })).toBe(200);
  const afterGateway = await scrape(node1);
  side.gatewayBytes = {
    received: value(afterGateway, 'etcd_network_client_grpc_received_bytes_total') - value(side.afterBatch, 'etcd_network_client_grpc_received_bytes_total'),
    sent: value(afterGateway, 'etcd_network_client_grpc_sent_bytes_total') - value(side.afterBatch, 'etcd_network_client_grpc_sent_bytes_total'),
  };

  // One Watch stream and one LeaseKeepAlive stream, open while scraped, then cancelled by the client.
  const c = rawClients(node1.endpoint);
  try {
    const before = await scrape(node1);
    const ws = c.watch.Watch() as grpc.ClientDuplexStream<object, { created?: boolean; events?: unknown[] }>;
    ws.on('error', () => undefined); // the cancellation below surfaces as an error here
    const created = nextMessage(ws, (m) => m.created === true, 'watch created');
    ws.write({ create_request: { key: Buffer.from('w/k') } });
    await created;
    const event = nextMessage(ws, (m) => (m.events?.length ?? 0) > 0, 'watch event');
    await unaryCall(c.kv, 'Put', { key: Buffer.from('w/k'), value: Buffer.from('v') });
    await event;
    const grant = await unaryCall<{ ID: string }>(c.lease, 'LeaseGrant', { TTL: 60 });
    const ks = c.lease.LeaseKeepAlive() as grpc.ClientDuplexStream<object, { ID: string; TTL: string }>;
    ks.on('error', () => undefined);
    const renewed = nextMessage(ks, (m) => m.ID === grant.ID, 'keep-alive answer');
    ks.write({ ID: grant.ID });
    await renewed;
    const during = await scrape(node1);
    ws.cancel();
    ks.cancel();
    let after = during;
    await until(async () => {
      after = await scrape(node1);
      return openStreams(after, 'etcdserverpb.Watch') === openStreams(before, 'etcdserverpb.Watch') &&
        openStreams(after, 'etcdserverpb.Lease') === openStreams(before, 'etcdserverpb.Lease');
    }, `${side.kind}: cancelled streams counted as handled`, 10_000).catch(() => undefined); // a miss shows in openStreams below
    side.openStreams = {
      watch: openStreams(during, 'etcdserverpb.Watch') - openStreams(before, 'etcdserverpb.Watch'),
      lease: openStreams(during, 'etcdserverpb.Lease') - openStreams(before, 'etcdserverpb.Lease'),
      watchAfter: openStreams(after, 'etcdserverpb.Watch') - openStreams(before, 'etcdserverpb.Watch'),
      leaseAfter: openStreams(after, 'etcdserverpb.Lease') - openStreams(before, 'etcdserverpb.Lease'),
    };
    side.streamCodes = {};
    for (const s of after.get('grpc_server_handled_total')?.samples ?? []) {
      if (s.labels.grpc_type !== 'bidi_stream') continue;
      const d = s.value - (sumSamples(before, 'grpc_server_handled_total', s.labels) ?? 0);
      if (d !== 0) side.streamCodes[`${s.labels.grpc_method} ${s.labels.grpc_code}`] = d;
    }
  } finally {
    c.close();
  }
}

beforeAll(async () => {
  const started = await Promise.allSettled((['etcd-ts', 'etcd'] as const).map(startMixedCluster));
  for (const [i, r] of started.entries()) if (r.status === 'fulfilled') sides.push({ kind: (['etcd-ts', 'etcd'] as const)[i], nodes: r.value });
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  for (const side of sides) await driveTraffic(side);
  // etcd measures peer round trip times with a prober every few seconds: let every member of both clusters have
  // observations for every peer (bounded), so the checks below see the families etcd shows in steady state.
  await Promise.all(sides.flatMap((side) => side.nodes.map((node) =>
    until(async () => {
      const f = await scrape(node);
      const series = f.get('etcd_network_peer_round_trip_time_seconds')?.samples.filter((x) => x.name.endsWith('_count') && x.value > 0) ?? [];
      return series.length === side.nodes.length - 1;
    }, `${side.kind} ${node.name}: round trip times to every peer`, 30_000),
  )));
});

afterAll(async () => {
  await Promise.all(sides.flatMap((s) => s.nodes.map((n) => n.destroy())));
});

// ---------------------------------------------------------------------------

const KINDS: NodeKind[] = ['etcd-ts', 'etcd'];

/** What a listed metric looks like in one member's scrape, for a readable comparison. */
function shape(f: Families, m: EtcdMetric): { name: string; present: boolean; [k: string]: unknown } {
  const fam = f.get(m.name);
  if (!fam || fam.samples.length === 0) return { name: m.name, present: false };
  return {
    name: m.name,
    present: true,
    type: fam.type,
    labels: labelNames(fam),
    ...(fam.type === 'histogram' ? { buckets: bucketBounds(fam) } : {}),
  };
}

function expectedShape(m: EtcdMetric, extensive: boolean, got: { present?: boolean }): object {
  if (m.extensiveOnly && !extensive) return { name: m.name, present: false };
  // absent until the first failure (checked by the last test, which stops a member)
  if (m.onlyAfterFailure && !got.present) return { name: m.name, present: false };
  return { name: m.name, present: true, type: m.type, labels: [...m.labels], ...(m.buckets ? { buckets: [...m.buckets] } : {}) };
}

test.each(KINDS)('%s: every dashboard/alert metric has the listed type, label names and buckets on every member', async (kind) => {
  const side = bySide(kind);
  for (const [i, node] of side.nodes.entries()) {
    const f = await scrape(node);
    const got = ETCD_DASHBOARD_METRICS.map((m) => ({ member: node.name, ...shape(f, m) }));
    const want = ETCD_DASHBOARD_METRICS.map((m, j) => ({ member: node.name, ...expectedShape(m, i === 0, got[j]) }));
    expect(got).toEqual(want);
  }
});

test('gRPC series: etcd-ts creates at start the series etcd creates, for the methods it serves', async () => {
  // node2 of each cluster saw no client call: its series are exactly those created at start.
  const methods = async (node: NodeHandle) => {
    const f = await scrape(node);
    const started = f.get('grpc_server_started_total')?.samples ?? [];
    const handled = f.get('grpc_server_handled_total')?.samples ?? [];
    const key = (l: Record<string, string>) => `${l.grpc_service}/${l.grpc_method} ${l.grpc_type}`;
    const codes = new Map<string, Set<string>>();
    for (const s of handled) codes.set(key(s.labels), (codes.get(key(s.labels)) ?? new Set()).add(s.labels.grpc_code));
    return {
      started: started.map((s) => key(s.labels)).sort(),
      codesPerMethod: [...new Set([...codes.values()].map((c) => [...c].sort().join(',')))],
      handledMethods: [...codes.keys()].sort(),
    };
  };
  const [ours, theirs] = await Promise.all([methods(bySide('etcd-ts').nodes[1]), methods(bySide('etcd').nodes[1])]);
  // Methods etcd-ts does not serve (so grpc-js answers UNIMPLEMENTED without reaching a handler).
  const NOT_SERVED = ['etcdserverpb.Maintenance/Downgrade unary', 'grpc.health.v1.Health/List unary', 'grpc.health.v1.Health/Watch server_stream'];
  expect(theirs.started.length).toBeGreaterThan(40);
  expect(ours.started).toEqual(theirs.started.filter((k) => !NOT_SERVED.includes(k)));
  expect(ours.handledMethods).toEqual(ours.started);
  // every method has every status code, on both
  expect(theirs.codesPerMethod).toHaveLength(1);
  expect(ours.codesPerMethod).toEqual(theirs.codesPerMethod);
  expect(ours.codesPerMethod[0].split(',')).toHaveLength(17);
});

test.each(KINDS)('%s: one leader, every member knows it, leader changes seen', async (kind) => {
  const scrapes = await Promise.all(bySide(kind).nodes.map(scrape));
  expect(scrapes.map((f) => value(f, 'etcd_server_has_leader'))).toEqual([1, 1, 1]);
  expect(scrapes.map((f) => value(f, 'etcd_server_is_leader')).sort()).toEqual([0, 0, 1]);
  for (const f of scrapes) expect(value(f, 'etcd_server_leader_changes_seen_total')).toBeGreaterThanOrEqual(1);
});

test.each(KINDS)('%s: raft proposals and disk histograms moved with the writes', async (kind) => {
  const { beforeBatch, afterBatch, nodes } = bySide(kind);
  const b = beforeBatch as Families;
  const a = afterBatch as Families;
  // 5 writes (3 puts, a txn, a delete) went through the log between the two scrapes
  expect(value(a, 'etcd_server_proposals_committed_total') - value(b, 'etcd_server_proposals_committed_total')).toBeGreaterThanOrEqual(5);
  expect(value(a, 'etcd_server_proposals_applied_total') - value(b, 'etcd_server_proposals_applied_total')).toBeGreaterThanOrEqual(5);
  expect(value(a, 'etcd_server_proposals_failed_total')).toBeGreaterThanOrEqual(0);
  expect(value(a, 'etcd_server_proposals_pending')).toBeGreaterThanOrEqual(0);
  for (const f of await Promise.all(nodes.map(scrape))) {
    for (const h of ['etcd_disk_wal_fsync_duration_seconds', 'etcd_disk_backend_commit_duration_seconds']) {
      const [series] = histogramSeries(f.get(h) as MetricFamily);
      expect([h, series.count > 0, series.sum > 0]).toEqual([h, true, true]);
    }
  }
});

test.each(KINDS)('%s: peer traffic, failures and round trip times are labelled with the other members\' ids', async (kind) => {
  const nodes = bySide(kind).nodes;
  const ids = (await Promise.all(nodes.map(scrape))).map((f) => f.get('etcd_server_id')?.samples[0]?.labels.server_id);
  expect(ids.every((id) => /^[0-9a-f]+$/.test(id ?? ''))).toBe(true);
  for (const [i, node] of nodes.entries()) {
    const others = ids.filter((_, j) => j !== i).sort();
    const f = await scrape(node);
    const labelValues = (name: string, label: string) => [...new Set(f.get(name)?.samples.map((s) => s.labels[label]))].sort();
    expect(labelValues('etcd_network_peer_sent_bytes_total', 'To')).toEqual(others);
    expect(labelValues('etcd_network_peer_round_trip_time_seconds', 'To')).toEqual(others);
    for (const id of others) {
      expect(value(f, 'etcd_network_peer_sent_bytes_total', { To: id as string })).toBeGreaterThan(0);
      expect(value(f, 'etcd_network_peer_round_trip_time_seconds', { To: id as string }, 'etcd_network_peer_round_trip_time_seconds_count')).toBeGreaterThan(0);
    }
    const from = labelValues('etcd_network_peer_received_bytes_total', 'From');
    expect(value(f, 'etcd_network_peer_received_bytes_total')).toBeGreaterThan(0);
    if (kind === 'etcd') {
      // etcd files the bytes of its message streams under From="0" (the sender is not known to the reader), so
      // only some peers have their own series there; the dashboard sums over From, which is the same total.
      for (const v of from) expect([...others, '0']).toContain(v);
    } else {
      expect(from).toEqual(others);
      for (const id of others) expect(value(f, 'etcd_network_peer_received_bytes_total', { From: id as string })).toBeGreaterThan(0);
    }
    for (const s of f.get('etcd_network_peer_sent_failures_total')?.samples ?? []) expect(others).toContain(s.labels.To);
  }
});

test('client gRPC bytes: etcd-ts counts exactly the request bytes etcd counts, and response bytes alike', () => {
  const delta = (side: Side, name: string) => value(side.afterBatch as Families, name) - value(side.beforeBatch as Families, name);
  const ts = bySide('etcd-ts');
  const ref = bySide('etcd');
  const received = [delta(ts, 'etcd_network_client_grpc_received_bytes_total'), delta(ref, 'etcd_network_client_grpc_received_bytes_total')];
  // the same etcdctl requests reached both: the protobuf payload bytes are identical
  expect(received[1]).toBeGreaterThan(50);
  expect(received[0]).toBe(received[1]);
  // responses carry member ids and revisions whose varint sizes differ between clusters: close, not equal
  const sent = [delta(ts, 'etcd_network_client_grpc_sent_bytes_total'), delta(ref, 'etcd_network_client_grpc_sent_bytes_total')];
  expect(sent[1]).toBeGreaterThan(200);
  expect(sent[0] / sent[1]).toBeGreaterThan(0.75);
  expect(sent[0] / sent[1]).toBeLessThan(1.33);
});

test('client gRPC bytes include JSON gateway calls, as on etcd', () => {
  const ours = bySide('etcd-ts').gatewayBytes as { received: number; sent: number };
  const theirs = bySide('etcd').gatewayBytes as { received: number; sent: number };
  // PutRequest{key: g/k, value: gateway} is 14 bytes and RangeRequest{key: g/k} 5, encoded the same on both
  expect(theirs.received).toBe(19);
  expect(ours.received).toBe(theirs.received);
  expect(theirs.sent).toBeGreaterThan(40);
  expect(ours.sent / theirs.sent).toBeGreaterThan(0.75);
  expect(ours.sent / theirs.sent).toBeLessThan(1.33);
});

test('RPC counts by method and status code after the batch are the same as etcd\'s (what the RPC panels and failure alerts read)', () => {
  const deltas = (side: Side) => {
    const out: Record<string, number> = {};
    const a = side.afterBatch as Families;
    const b = side.beforeBatch as Families;
    for (const s of a.get('grpc_server_handled_total')?.samples ?? []) {
      const d = s.value - (sumSamples(b, 'grpc_server_handled_total', s.labels) ?? 0);
      if (d !== 0) out[`${s.labels.grpc_service}/${s.labels.grpc_method} ${s.labels.grpc_code}`] = d;
    }
    return out;
  };
  const theirs = deltas(bySide('etcd'));
  expect(theirs['etcdserverpb.KV/Range OutOfRange']).toBe(1);
  expect(theirs['etcdserverpb.Auth/UserGet FailedPrecondition']).toBe(1);
  expect(deltas(bySide('etcd-ts'))).toEqual(theirs);
});

test.each(KINDS)('%s: open Watch and Lease streams show as started minus handled, and are handled once cancelled', (kind) => {
  expect(bySide(kind).openStreams).toEqual({ watch: 1, lease: 1, watchAfter: 0, leaseAfter: 0 });
});

test('cancelled streams are counted with the codes etcd counts', () => {
  expect(bySide('etcd').streamCodes).toEqual({ 'Watch Canceled': 1, 'LeaseKeepAlive OK': 1 });
  expect(bySide('etcd-ts').streamCodes).toEqual(bySide('etcd').streamCodes);
});

test.each(KINDS)('%s: database size, quota and key count', async (kind) => {
  const node1 = bySide(kind).nodes[0];
  let f = await scrape(node1);
  // etcd-ts refreshes these gauges every few seconds: wait (bounded) for the key count to catch up
  await until(async () => {
    f = await scrape(node1);
    return value(f, 'etcd_debugging_mvcc_keys_total') === EXPECTED_KEYS.length;
  }, `${kind}: etcd_debugging_mvcc_keys_total = ${EXPECTED_KEYS.length}`, 15_000);
  const total = value(f, 'etcd_mvcc_db_total_size_in_bytes');
  const inUse = value(f, 'etcd_mvcc_db_total_size_in_use_in_bytes');
  expect(total).toBeGreaterThan(0);
  expect(inUse).toBeGreaterThan(0);
  expect(inUse).toBeLessThanOrEqual(total);
  expect(value(f, 'etcd_server_quota_backend_bytes')).toBe(2 * 1024 ** 3);
});

test.each(KINDS)('%s: version and process metrics', async (kind) => {
  const node = bySide(kind).nodes[1];
  const [f, version] = await Promise.all([scrape(node), httpGet(`${node.clientUrl}/version`)]);
  const served = (JSON.parse(version.body) as { etcdserver: string }).etcdserver;
  expect(f.get('etcd_server_version')?.samples.map((s) => [s.labels, s.value])).toEqual([[{ server_version: served }, 1]]);
  expect(f.get('etcd_server_id')?.samples.map((s) => s.value)).toEqual([1]);
  const now = Date.now() / 1000;
  expect(value(f, 'process_resident_memory_bytes')).toBeGreaterThan(1024 * 1024);
  expect(value(f, 'process_start_time_seconds')).toBeGreaterThan(now - 900);
  expect(value(f, 'process_start_time_seconds')).toBeLessThanOrEqual(now + 1);
  expect(value(f, 'process_open_fds')).toBeGreaterThan(0);
  expect(value(f, 'process_open_fds')).toBeLessThan(value(f, 'process_max_fds'));
  expect(value(f, 'process_cpu_seconds_total')).toBeGreaterThan(0);
});

test.each(KINDS)('%s: --metrics=extensive times unary calls in grpc_server_handling_seconds; basic members have no such histogram', async (kind) => {
  const [extensive, basic] = await Promise.all(bySide(kind).nodes.slice(0, 2).map(scrape));
  const fam = extensive.get('grpc_server_handling_seconds') as MetricFamily;
  expect(bucketBounds(fam)).toEqual(PROMETHEUS_DEFAULT_BUCKETS);
  const ranges = value(bySide(kind).afterBatch as Families, 'grpc_server_started_total', { grpc_method: 'Range', grpc_type: 'unary' });
  // every Range of the batch (successful or not) was timed
  expect(value(extensive, 'grpc_server_handling_seconds', { grpc_method: 'Range', grpc_type: 'unary' }, 'grpc_server_handling_seconds_count')).toBeGreaterThanOrEqual(ranges);
  expect(ranges).toBeGreaterThanOrEqual(4);
  expect(basic.get('grpc_server_handling_seconds')?.samples ?? []).toEqual([]);
});

// Last: it stops a member of each cluster.
test.each(KINDS)('%s: a stopped member shows as send failures to it on the leader (the members-down alert), the rest keep their leader', async (kind) => {
  const nodes = bySide(kind).nodes;
  const scrapes = await Promise.all(nodes.map(scrape));
  const leader = scrapes.findIndex((f) => value(f, 'etcd_server_is_leader') === 1);
  expect(leader).toBeGreaterThanOrEqual(0);
  const victim = [0, 1, 2].find((i) => i !== leader) as number;
  const victimId = scrapes[victim].get('etcd_server_id')?.samples[0]?.labels.server_id as string;
  const failuresTo = (f: Families) => sumSamples(f, 'etcd_network_peer_sent_failures_total', { To: victimId }) ?? 0;
  const before = failuresTo(scrapes[leader]);
  await nodes[victim].stop();
  let f = scrapes[leader];
  await until(async () => {
    f = await scrape(nodes[leader]);
    return failuresTo(f) > before;
  }, `${kind}: etcd_network_peer_sent_failures_total{To="${victimId}"} to grow on the leader`, 20_000);
  const fam = f.get('etcd_network_peer_sent_failures_total') as MetricFamily;
  expect({ type: fam.type, labels: labelNames(fam) }).toEqual({ type: 'counter', labels: ['To'] });
  const survivors = await Promise.all(nodes.filter((_, i) => i !== victim).map(scrape));
  expect(survivors.map((x) => value(x, 'etcd_server_has_leader'))).toEqual([1, 1]);
});
