// The peer transport over real HTTP servers on 127.0.0.1 (ephemeral ports), several members in one
// process: message delivery and order, batching and the bounded queue, reconnection with backoff,
// refusals (cluster mismatch, removed member, garbage, size), snapshot streaming, /members, /version,
// leader calls, metrics, and a prompt close(). Every wait is bounded.
import * as http from 'node:http';
import * as net from 'node:net';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import pino from 'pino';
import { registry } from '../../src/metrics';
import { EntryType, Message, MessageType, makeMessage } from '../../src/raft/types';
import { PEER_SERVER_OPTIONS, PeerTransport, PeerTransportOptions, PeerTransportTuning, encodeMessages, fetchClusterMembers } from '../../src/transport';

// ---------------------------------------------------------------------------------------------------
// Harness

const CLUSTER = 0xc1c1c1c1c1c1c1c1n;
const VERSION = '3.6.0';

interface LogLine {
  level: string;
  msg: string;
  [k: string]: unknown;
}

interface Member {
  id: bigint;
  label: string;
  transport: PeerTransport;
  server: http.Server;
  port: number;
  url: string;
  received: Message[];
  /** number of onMessages calls (batches delivered) */
  batches: number;
  unreachable: bigint[];
  snapshotStatus: Array<[bigint, boolean]>;
  logs: LogLine[];
  clusterId: bigint;
  removed: Set<bigint>;
  /** per sender: most concurrent /raft requests seen */
  maxConcurrentRaft: Map<string, number>;
  /** hold /raft answers while set (the request is handled once it resolves) */
  gate?: Promise<void>;
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
}

const members: Member[] = [];
const extraServers: net.Server[] = [];

/** Poll `cond` every 10 ms for at most `ms`; fail with `what` on timeout. */
async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function listen(server: net.Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

async function startMember(id: bigint, over: Partial<PeerTransportOptions> = {}, tuning: Partial<PeerTransportTuning> = {}): Promise<Member> {
  const logs: LogLine[] = [];
  const logger = pino({ level: 'debug', messageKey: 'msg', formatters: { level: (label) => ({ level: label }) } }, { write: (s: string) => logs.push(JSON.parse(s) as LogLine) });
  const m = {
    id,
    label: id.toString(16),
    received: [] as Message[],
    batches: 0,
    unreachable: [] as bigint[],
    snapshotStatus: [] as Array<[bigint, boolean]>,
    logs,
    clusterId: CLUSTER,
    removed: new Set<bigint>(),
    maxConcurrentRaft: new Map<string, number>(),
  } as Member;
  m.transport = new PeerTransport({
    localId: id,
    clusterId: () => m.clusterId,
    logger,
    version: VERSION,
    onMessages: (msgs) => {
      m.batches++;
      m.received.push(...msgs);
    },
    onUnreachable: (peer) => m.unreachable.push(peer),
    onSnapshotStatus: (peer, ok) => m.snapshotStatus.push([peer, ok]),
    receiveSnapshot: async (_msg, body) => {
      for await (const _chunk of body) {
        // discard
      }
    },
    membersJson: () => ({ members: [{ ID: m.label, name: `m-${m.label}` }] }),
    isRemoved: (from) => m.removed.has(from),
    onLeaderCall: async (op, body) => ({ op, body }),
    ...over,
    tuning: { requestTimeoutMs: 2000, ...tuning },
  });
  const concurrent = new Map<string, number>();
  const handler = m.transport.handler;
  m.server = http.createServer(PEER_SERVER_OPTIONS, (req, res) => {
    if (req.url === '/raft') {
      const from = String(req.headers['x-server-from']);
      const n = (concurrent.get(from) ?? 0) + 1;
      concurrent.set(from, n);
      m.maxConcurrentRaft.set(from, Math.max(n, m.maxConcurrentRaft.get(from) ?? 0));
      res.once('close', () => concurrent.set(from, (concurrent.get(from) ?? 1) - 1));
      if (m.gate) {
        void m.gate.then(() => handler(req, res));
        return;
      }
    }
    handler(req, res);
  });
  m.port = await listen(m.server);
  m.url = `http://127.0.0.1:${m.port}`;
  m.stopServer = () =>
    new Promise((resolve) => {
      m.server.close(() => resolve());
      m.server.closeAllConnections();
    });
  m.startServer = async () => {
    await listen(m.server, m.port);
  };
  members.push(m);
  return m;
}

/** Make every pair of the given members peers of each other. */
function connect(...ms: Member[]): void {
  for (const a of ms) for (const b of ms) if (a !== b) a.transport.addPeer(b.id, [b.url]);
}

function app(from: Member, to: Member, index: number, data: Uint8Array = new Uint8Array(0)): Message {
  return makeMessage({ type: MessageType.App, from: from.id, to: to.id, term: 1, index, entries: [{ term: 1, index: index + 1, type: EntryType.Normal, data }] });
}

function heartbeat(from: Member, to: Member): Message {
  return makeMessage({ type: MessageType.Heartbeat, from: from.id, to: to.id, term: 1 });
}

function snapMsg(from: Member, to: Member): Message {
  return makeMessage({
    type: MessageType.Snap,
    from: from.id,
    to: to.id,
    term: 2,
    snapshot: { metadata: { index: 100, term: 2, confState: { voters: [from.id, to.id], learners: [] } }, data: new Uint8Array(0) },
  });
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request without keep-alive; bounded by 5 s. */
function raw(port: number, method: string, path: string, headers: http.OutgoingHttpHeaders = {}, body?: Buffer | string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('raw request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

function peerHeaders(from: bigint, cluster = CLUSTER): http.OutgoingHttpHeaders {
  return { 'X-Etcd-Cluster-ID': cluster.toString(16), 'X-Server-From': from.toString(16), 'X-Server-Version': VERSION };
}

/** A metric sample's value (histograms: pass the `_count`/`_sum` series name); 0 when absent. */
async function metric(name: string, labels: Record<string, string>, series = name): Promise<number> {
  const base = name.replace(/_(count|sum|bucket)$/, '');
  const m = registry.getSingleMetric(base);
  if (m === undefined) throw new Error(`metric ${base} is not registered`);
  const data = await m.get();
  // histogram samples carry their series name (`_bucket`, `_sum`, `_count`); plain metrics do not
  const values = data.values as Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>;
  const v = values.find((s) => (s.metricName ?? base) === series && Object.entries(labels).every(([k, val]) => String(s.labels[k]) === val));
  return v?.value ?? 0;
}

/** A readable of `size` pseudo-random bytes in 64 KiB chunks, and its sha256. */
function payload(size: number, seed: number): { open: () => Readable; sha: string } {
  const buf = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    buf[i] = x >>> 16;
  }
  const sha = createHash('sha256').update(buf).digest('hex');
  const open = () => {
    let off = 0;
    return new Readable({
      read() {
        if (off >= buf.length) this.push(null);
        else {
          this.push(buf.subarray(off, off + 65536));
          off += 65536;
        }
      },
    });
  };
  return { open, sha };
}

afterEach(async () => {
  for (const m of members.splice(0)) {
    await m.transport.close();
    await m.stopServer();
  }
  for (const s of extraServers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
});

// Distinct ids per test keep the shared metric series apart.
let nextId = 0x100n;
const newId = () => (nextId += 0x100n) | 0x8000000000000000n;

// ---------------------------------------------------------------------------------------------------
// Delivery

describe('raft messages', () => {
  test('are delivered in order per sender, batched, with at most one request in flight per peer', async () => {
    const [a, b, c] = await Promise.all([startMember(newId()), startMember(newId()), startMember(newId())]);
    connect(a, b, c);
    const N = 2000;
    for (let i = 0; i < N; i += 10) {
      a.transport.send(Array.from({ length: 10 }, (_, k) => app(a, b, i + k, Buffer.from(`a${i + k}`))));
      c.transport.send(Array.from({ length: 10 }, (_, k) => app(c, b, i + k, Buffer.from(`c${i + k}`))));
      if (i % 200 === 0) await sleep(1); // let some batches leave in between
    }
    await waitFor('all messages at b', () => b.received.length === 2 * N);
    for (const sender of [a, c]) {
      const got = b.received.filter((m) => m.from === sender.id);
      expect(got.map((m) => m.index)).toEqual(Array.from({ length: N }, (_, i) => i));
      expect(got.every((m) => m.to === b.id && m.entries.length === 1)).toBe(true);
    }
    expect(Buffer.from(b.received.find((m) => m.from === c.id && m.index === 1234)!.entries[0].data).toString()).toBe('c1234');
    expect(b.batches).toBeLessThan(2 * N); // batching happened
    expect(b.maxConcurrentRaft.get(a.label)).toBe(1);
    expect(b.maxConcurrentRaft.get(c.label)).toBe(1);
    expect(a.unreachable).toEqual([]);
    expect(a.transport.activeSince(b.id)).toBeLessThanOrEqual(Date.now());
    expect(a.logs.filter((l) => l.msg === 'peer became active' && l['remote-peer-id'] === b.label)).toHaveLength(1);
  });

  test('messages to unknown peers are ignored and MsgSnap through send() is streamed as a snapshot', async () => {
    const got: Array<{ msg: Message; data: Buffer }> = [];
    const [a, b] = await Promise.all([
      startMember(newId()),
      startMember(newId(), {
        receiveSnapshot: async (msg, body) => {
          const chunks: Buffer[] = [];
          for await (const ch of body) chunks.push(Buffer.from(ch as Buffer));
          got.push({ msg, data: Buffer.concat(chunks) });
        },
      }),
    ]);
    connect(a, b);
    const snap = snapMsg(a, b);
    snap.snapshot!.data = new Uint8Array([1, 2, 3, 4]);
    a.transport.send([makeMessage({ type: MessageType.App, from: a.id, to: 0x1234n }), snap, heartbeat(a, b)]);
    await waitFor('snapshot status', () => a.snapshotStatus.length === 1);
    expect(a.snapshotStatus).toEqual([[b.id, true]]);
    expect(got[0].data).toEqual(Buffer.from([1, 2, 3, 4]));
    expect(got[0].msg.snapshot!.data).toEqual(new Uint8Array(0));
    await waitFor('heartbeat', () => b.received.length === 1);
    expect(b.received[0].type).toBe(MessageType.Heartbeat);
  });

  test('a full queue drops new messages, counts them, and reports the peer unreachable once', async () => {
    const [a, b] = await Promise.all([startMember(newId(), {}, { maxQueuedMessages: 10 }), startMember(newId())]);
    connect(a, b);
    let open!: () => void;
    b.gate = new Promise<void>((r) => (open = r));
    const failuresBefore = await metric('etcd_network_peer_sent_failures_total', { To: b.label });
    a.transport.send([app(a, b, 0)]); // in flight, held by the gate
    await waitFor('first request at b', () => b.maxConcurrentRaft.get(a.label) === 1);
    for (let i = 1; i <= 100; i++) a.transport.send([app(a, b, i)]);
    b.gate = undefined;
    open();
    await waitFor('queued messages at b', () => b.received.length === 11);
    await sleep(50);
    expect(b.received.map((m) => m.index)).toEqual(Array.from({ length: 11 }, (_, i) => i));
    expect(a.unreachable).toEqual([b.id]);
    expect((await metric('etcd_network_peer_sent_failures_total', { To: b.label })) - failuresBefore).toBe(90);
    expect(a.logs.filter((l) => l.msg.startsWith('dropped internal Raft message since sending buffer is full'))).toHaveLength(1);
  });

  test('a peer that goes away is reported unreachable with backoff; delivery resumes when it returns', async () => {
    const [a, b] = await Promise.all([startMember(newId()), startMember(newId())]);
    connect(a, b);
    a.transport.send([heartbeat(a, b)]);
    await waitFor('first delivery', () => b.received.length === 1);
    const since = a.transport.activeSince(b.id);
    expect(since).toBeDefined();
    const disconnectsBefore = await metric('etcd_network_disconnected_peers_total', { Local: a.label, Remote: b.label });

    await b.stopServer();
    // a heartbeat every 5 ms for 800 ms against the dead peer
    const stopAt = Date.now() + 800;
    let sends = 0;
    while (Date.now() < stopAt) {
      a.transport.send([heartbeat(a, b)]);
      sends++;
      await sleep(5);
    }
    expect(a.unreachable.length).toBeGreaterThanOrEqual(1);
    // backoff 50, 100, 200, 400, 500 ms: a handful of reports, far fewer than sends
    expect(a.unreachable.length).toBeLessThanOrEqual(8);
    expect(sends).toBeGreaterThan(50);
    expect(a.unreachable.every((id) => id === b.id)).toBe(true);
    expect(a.transport.activeSince(b.id)).toBeUndefined();
    expect(await metric('etcd_network_active_peers', { Local: a.label, Remote: b.label })).toBe(0);
    expect((await metric('etcd_network_disconnected_peers_total', { Local: a.label, Remote: b.label })) - disconnectsBefore).toBe(1);
    expect(a.logs.filter((l) => l.msg === 'peer became inactive (message send to peer failed)')).toHaveLength(1);

    await b.startServer();
    const before = b.received.length;
    await waitFor(
      'delivery after reconnect',
      () => {
        a.transport.send([heartbeat(a, b)]);
        return b.received.length > before;
      },
      5000,
    );
    expect(a.transport.activeSince(b.id)).toBeGreaterThan(since!);
    expect(await metric('etcd_network_active_peers', { Local: a.label, Remote: b.label })).toBe(1);
    expect(a.logs.filter((l) => l.msg === 'peer became active')).toHaveLength(2);
  });

  test('a peer that accepts connections but never answers times out and is reported', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    extraServers.push(silent);
    const port = await listen(silent);
    const a = await startMember(newId(), {}, { requestTimeoutMs: 200 });
    const deadId = newId();
    a.transport.addPeer(deadId, [`http://127.0.0.1:${port}`]);
    a.transport.send([makeMessage({ type: MessageType.Heartbeat, from: a.id, to: deadId })]);
    await waitFor('unreachable after the request timeout', () => a.unreachable.length === 1, 3000);
    for (const s of sockets) s.destroy();
  });

  test('updatePeer moves a peer to new URLs at once (clearing the backoff); re-adding the same URLs changes nothing', async () => {
    const [a, b] = await Promise.all([startMember(newId(), {}, { backoffStartMs: 5000, backoffMaxMs: 5000 }), startMember(newId())]);
    a.transport.addPeer(b.id, ['http://127.0.0.1:1']);
    a.transport.send([heartbeat(a, b)]);
    await waitFor('unreachable', () => a.unreachable.length === 1);
    a.transport.updatePeer(b.id, [b.url]);
    a.transport.send([heartbeat(a, b)]);
    await waitFor('delivery at the new URL', () => b.received.length === 1, 2000);
    a.transport.addPeer(b.id, [b.url]);
    expect(a.logs.filter((l) => l.msg === 'updated remote peer')).toHaveLength(1);
    expect(a.logs.filter((l) => l.msg === 'added remote peer')).toHaveLength(1);
  });

  test('a transport created before its member id is known skips the X-Raft-To check until setLocalId', async () => {
    const b = await startMember(0n);
    const from = newId();
    const hb = makeMessage({ type: MessageType.Heartbeat, from, to: 0xabcn });
    expect((await raw(b.port, 'POST', '/raft', { ...peerHeaders(from), 'X-Raft-To': 'abc' }, encodeMessages([hb]))).status).toBe(204);
    b.transport.setLocalId(0xdefn);
    expect((await raw(b.port, 'POST', '/raft', { ...peerHeaders(from), 'X-Raft-To': 'abc' }, encodeMessages([hb]))).status).toBe(412);
    expect((await raw(b.port, 'POST', '/raft', { ...peerHeaders(from), 'X-Raft-To': 'def' }, encodeMessages([hb]))).status).toBe(204);
  });

  test('a peer with several URLs is reached on the next URL when the first fails', async () => {
    const [a, b] = await Promise.all([startMember(newId()), startMember(newId())]);
    const dead = net.createServer();
    await listen(dead);
    const deadPort = (dead.address() as net.AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    a.transport.addPeer(b.id, [`http://127.0.0.1:${deadPort}`, b.url]);
    await waitFor(
      'delivery via the second URL',
      () => {
        a.transport.send([heartbeat(a, b)]);
        return b.received.length > 0;
      },
      3000,
    );
    expect(a.unreachable.length).toBeGreaterThanOrEqual(1);
  });
});

// ---------------------------------------------------------------------------------------------------
// Refusals

describe('the receiver refuses', () => {
  test('another cluster with 412 and a warning, and delivers nothing', async () => {
    const [a, b] = await Promise.all([startMember(newId()), startMember(newId())]);
    a.clusterId = 0xaaan;
    connect(a, b);
    a.transport.send([heartbeat(a, b)]);
    await waitFor('unreachable', () => a.unreachable.length === 1);
    expect(b.received).toEqual([]);
    const warn = b.logs.find((l) => l.msg === 'request cluster ID mismatch');
    expect(warn).toMatchObject({ level: 'warn', 'remote-peer-cluster-id': 'aaa', 'local-member-cluster-id': CLUSTER.toString(16) });

    const r = await raw(b.port, 'POST', '/raft', peerHeaders(a.id, 0xaaan), encodeMessages([heartbeat(a, b)]));
    expect(r.status).toBe(412);
    expect(r.body).toMatch(/cluster ID mismatch/);
    expect(b.received).toEqual([]);
  });

  test('nothing while its own cluster id is still 0 (a joining member)', async () => {
    const [a, b] = await Promise.all([startMember(newId()), startMember(newId())]);
    b.clusterId = 0n;
    const r = await raw(b.port, 'POST', '/raft', peerHeaders(a.id, 0xaaan), encodeMessages([heartbeat(a, b)]));
    expect(r.status).toBe(204);
    expect(b.received).toHaveLength(1);
  });

  test('a request meant for another member (X-Raft-To) with 412', async () => {
    const [a, b] = await Promise.all([startMember(newId()), startMember(newId())]);
    const r = await raw(b.port, 'POST', '/raft', { ...peerHeaders(a.id), 'X-Raft-To': 'abc' }, encodeMessages([heartbeat(a, b)]));
    expect(r.status).toBe(412);
    expect(b.received).toEqual([]);
  });

  test('a removed member with 410 and a log line; the removed sender logs that it was removed', async () => {
    const [a, b] = await Promise.all([startMember(newId()), startMember(newId())]);
    b.removed.add(a.id);
    connect(a, b);
    const r = await raw(b.port, 'POST', '/raft', peerHeaders(a.id), encodeMessages([heartbeat(a, b)]));
    expect(r.status).toBe(410);
    a.transport.send([heartbeat(a, b)]);
    await waitFor('unreachable', () => a.unreachable.length === 1);
    expect(b.received).toEqual([]);
    expect(b.logs.some((l) => l.msg === 'rejected request from removed member' && l['remote-peer-id'] === a.label)).toBe(true);
    expect(a.logs.some((l) => l.level === 'error' && /permanently removed/.test(l.msg))).toBe(true);
  });

  test('an undecodable body with 400, delivering nothing, and keeps serving', async () => {
    const [a, b] = await Promise.all([startMember(newId()), startMember(newId())]);
    connect(a, b);
    const failuresBefore = await metric('etcd_network_peer_received_failures_total', { From: a.label });
    const garbage = await raw(b.port, 'POST', '/raft', peerHeaders(a.id), Buffer.from('definitely not a batch'));
    expect(garbage.status).toBe(400);
    expect(garbage.body).toMatch(/failed to decode raft message: not a raft message batch/);
    const truncated = encodeMessages([app(a, b, 1, Buffer.alloc(100))]).subarray(0, 50);
    expect((await raw(b.port, 'POST', '/raft', peerHeaders(a.id), truncated)).status).toBe(400);
    expect((await raw(b.port, 'POST', '/raft', peerHeaders(a.id), encodeMessages([snapMsg(a, b)]))).status).toBe(400);
    expect(b.received).toEqual([]);
    expect(b.logs.filter((l) => l.msg === 'failed to decode raft message')).toHaveLength(3);
    expect((await metric('etcd_network_peer_received_failures_total', { From: a.label })) - failuresBefore).toBe(3);

    a.transport.send([heartbeat(a, b)]);
    await waitFor('delivery after garbage', () => b.received.length === 1);
  });

  test('a missing sender id with 400, oversized bodies with 413, unknown paths with 404, wrong methods with 405', async () => {
    const [a, b] = await Promise.all([startMember(newId()), startMember(newId(), {}, { maxRaftBodyBytes: 1024 })]);
    expect((await raw(b.port, 'POST', '/raft', { 'X-Etcd-Cluster-ID': CLUSTER.toString(16) }, encodeMessages([]))).status).toBe(400);
    const big = encodeMessages([app(a, b, 1, Buffer.alloc(2000))]);
    expect((await raw(b.port, 'POST', '/raft', peerHeaders(a.id), big)).status).toBe(413);
    // chunked, without a Content-Length: caught while reading
    const chunked = await raw(b.port, 'POST', '/raft', { ...peerHeaders(a.id), 'Transfer-Encoding': 'chunked' }, big);
    expect(chunked.status).toBe(413);
    expect((await raw(b.port, 'GET', '/nope')).status).toBe(404);
    expect((await raw(b.port, 'GET', '/etcdts/leader/')).status).toBe(404);
    const wrong = await raw(b.port, 'GET', '/raft');
    expect(wrong.status).toBe(405);
    expect(wrong.headers.allow).toBe('POST');
    expect(b.received).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------
// Snapshots

describe('snapshots', () => {
  test('a multi-MiB snapshot streams to the receiver intact; status ok; metrics move', async () => {
    const got: Array<{ msg: Message; sha: string; bytes: number }> = [];
    const [a, b] = await Promise.all([
      startMember(newId()),
      startMember(newId(), {
        receiveSnapshot: async (msg, body) => {
          const h = createHash('sha256');
          let bytes = 0;
          for await (const ch of body) {
            h.update(ch as Buffer);
            bytes += (ch as Buffer).length;
          }
          await sleep(20); // "installing"
          got.push({ msg, sha: h.digest('hex'), bytes });
        },
      }),
    ]);
    connect(a, b);
    const size = 12 * 1024 * 1024 + 123;
    const p = payload(size, 7);
    const msg = snapMsg(a, b);
    a.transport.sendSnapshot(msg, p.open);
    await waitFor('snapshot status', () => a.snapshotStatus.length === 1, 20000);
    expect(a.snapshotStatus).toEqual([[b.id, true]]);
    expect(got).toHaveLength(1);
    expect(got[0].bytes).toBe(size);
    expect(got[0].sha).toBe(p.sha);
    expect(got[0].msg).toEqual(msg);
    expect(await metric('etcd_network_snapshot_send_success', { To: b.label })).toBe(1);
    expect(await metric('etcd_network_snapshot_send_total_duration_seconds', { To: b.label }, 'etcd_network_snapshot_send_total_duration_seconds_count')).toBe(1);
    expect(await metric('etcd_network_snapshot_receive_success', { From: a.label })).toBe(1);
    expect(await metric('etcd_network_snapshot_receive_total_duration_seconds', { From: a.label }, 'etcd_network_snapshot_receive_total_duration_seconds_count')).toBe(1);
    expect(await metric('etcd_network_peer_sent_bytes_total', { To: b.label })).toBeGreaterThanOrEqual(size);
    expect(await metric('etcd_network_peer_received_bytes_total', { From: a.label })).toBeGreaterThanOrEqual(size);
    expect(await metric('etcd_network_snapshot_send_inflights_total', { To: b.label })).toBe(0);
  });

  test('a failing receiver yields status false and a failure metric on both sides', async () => {
    const [a, b] = await Promise.all([
      startMember(newId()),
      startMember(newId(), {
        receiveSnapshot: async (_msg, body) => {
          // read a little, then give up
          for await (const _ch of body) break;
          throw new Error('disk full');
        },
      }),
    ]);
    connect(a, b);
    a.transport.sendSnapshot(snapMsg(a, b), payload(4 * 1024 * 1024, 3).open);
    await waitFor('snapshot status', () => a.snapshotStatus.length === 1, 10000);
    expect(a.snapshotStatus).toEqual([[b.id, false]]);
    expect(await metric('etcd_network_snapshot_send_failures', { To: b.label })).toBe(1);
    expect(await metric('etcd_network_snapshot_receive_failures', { From: a.label })).toBe(1);
    expect(b.logs.some((l) => l.msg === 'failed to receive database snapshot' && l.error === 'disk full')).toBe(true);
    // the peer port still works
    a.transport.send([heartbeat(a, b)]);
    await waitFor('delivery', () => b.received.length === 1);
  });

  test('a sender whose stream fails mid-way: status false, and the receiver sees the body error', async () => {
    let receiverError: unknown;
    const [a, b] = await Promise.all([
      startMember(newId()),
      startMember(newId(), {
        receiveSnapshot: async (_msg, body) => {
          try {
            for await (const _ch of body) {
              // consume
            }
          } catch (err) {
            receiverError = err;
            throw err;
          }
        },
      }),
    ]);
    connect(a, b);
    let sent = 0;
    const failing = new Readable({
      read() {
        if (sent >= 1024 * 1024) {
          this.destroy(new Error('backend read failed'));
          return;
        }
        sent += 65536;
        this.push(Buffer.alloc(65536, 1));
      },
    });
    a.transport.sendSnapshot(snapMsg(a, b), () => failing);
    await waitFor('snapshot status', () => a.snapshotStatus.length === 1);
    expect(a.snapshotStatus).toEqual([[b.id, false]]);
    await waitFor('receiver error', () => receiverError !== undefined);
  });

  test('the receiver aborts a stalled sender after the idle timeout', async () => {
    let receiverError: unknown;
    const [a, b] = await Promise.all([
      startMember(newId(), {}, { snapshotIdleTimeoutMs: 5000 }),
      startMember(
        newId(),
        {
          receiveSnapshot: async (_msg, body) => {
            try {
              for await (const _ch of body) {
                // consume
              }
            } catch (err) {
              receiverError = err;
              throw err;
            }
          },
        },
        { snapshotIdleTimeoutMs: 200 },
      ),
    ]);
    connect(a, b);
    let pushed = false;
    const stalled = new Readable({
      read() {
        if (!pushed) this.push(Buffer.alloc(1000));
        pushed = true; // then never again
      },
    });
    a.transport.sendSnapshot(snapMsg(a, b), () => stalled);
    await waitFor('snapshot status', () => a.snapshotStatus.length === 1, 3000);
    expect(a.snapshotStatus).toEqual([[b.id, false]]);
    expect(String(receiverError)).toMatch(/idle|premature|aborted/i);
  });

  test('an unknown peer or an open() that throws yields status false', async () => {
    const a = await startMember(newId());
    const b = await startMember(newId());
    a.transport.sendSnapshot(snapMsg(a, b), () => Readable.from([]));
    connect(a, b);
    a.transport.sendSnapshot(snapMsg(a, b), () => {
      throw new Error('no snapshot file');
    });
    await waitFor('two statuses', () => a.snapshotStatus.length === 2);
    expect(a.snapshotStatus).toEqual([
      [b.id, false],
      [b.id, false],
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------
// Other endpoints

describe('members, version and leader calls', () => {
  test('GET /members via fetchClusterMembers from the first URL that answers', async () => {
    const b = await startMember(newId());
    const dead = net.createServer();
    const deadPort = await listen(dead);
    await new Promise<void>((r) => dead.close(() => r()));
    const got = await fetchClusterMembers([`http://127.0.0.1:${deadPort}`, b.url], 2000);
    expect(got.clusterId).toBe(CLUSTER);
    expect(got.members).toEqual({ members: [{ ID: b.label, name: `m-${b.label}` }] });
    const r = await raw(b.port, 'GET', '/members');
    expect(r.headers['x-etcd-cluster-id']).toBe(CLUSTER.toString(16));
    expect(r.headers['content-type']).toBe('application/json');
  });

  test('fetchClusterMembers fails with every URL named, within its timeouts', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    extraServers.push(silent);
    const port = await listen(silent);
    const start = Date.now();
    await expect(fetchClusterMembers([`http://127.0.0.1:${port}`, 'ftp://127.0.0.1:1'], 300)).rejects.toThrow(/127\.0\.0\.1:\d+: request to .* timed out after 300 ms.*peer URLs are http:\/\/ or https:\/\//);
    expect(Date.now() - start).toBeLessThan(2000);
    for (const s of sockets) s.destroy();
  });

  test('GET /version', async () => {
    const b = await startMember(newId());
    const r = await raw(b.port, 'GET', '/version');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ etcdserver: VERSION, etcdcluster: '3.6.0' });
  });

  test('callPeer returns the remote result and turns a remote error into an Error with its message', async () => {
    const calls: Array<[string, unknown]> = [];
    const [a, b] = await Promise.all([
      startMember(newId()),
      startMember(newId(), {
        onLeaderCall: async (op, body) => {
          calls.push([op, body]);
          if (op === 'promote') throw new Error('etcdserver: can only promote a learner member which is in sync with leader');
          if (op === 'nothing') return undefined;
          return { ok: true, echo: body };
        },
      }),
    ]);
    connect(a, b);
    await expect(a.transport.callPeer(b.id, 'echo', { id: '8e9e05c52164694d', n: 1 }, 2000)).resolves.toEqual({ ok: true, echo: { id: '8e9e05c52164694d', n: 1 } });
    await expect(a.transport.callPeer(b.id, 'nothing', null, 2000)).resolves.toBeUndefined();
    await expect(a.transport.callPeer(b.id, 'promote', {}, 2000)).rejects.toThrow(new Error('etcdserver: can only promote a learner member which is in sync with leader'));
    expect(calls.map(([op]) => op)).toEqual(['echo', 'nothing', 'promote']);
    await expect(a.transport.callPeer(0x77n, 'echo', {}, 2000)).rejects.toThrow(/unknown peer 77/);
    await expect(a.transport.callPeer(b.id, '../x', {}, 2000)).rejects.toThrow(/invalid leader call name/);
    // the receiver's checks apply to leader calls too
    b.removed.add(a.id);
    await expect(a.transport.callPeer(b.id, 'echo', {}, 2000)).rejects.toThrow(/410/);
  });

  test('callPeer to a peer that is down fails within its timeout', async () => {
    const a = await startMember(newId());
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    extraServers.push(silent);
    const port = await listen(silent);
    a.transport.addPeer(0x99n, [`http://127.0.0.1:${port}`]);
    const start = Date.now();
    await expect(a.transport.callPeer(0x99n, 'echo', {}, 300)).rejects.toThrow(/timed out/);
    expect(Date.now() - start).toBeLessThan(1500);
    for (const s of sockets) s.destroy();
  });
});

// ---------------------------------------------------------------------------------------------------
// Metrics and shutdown

describe('metrics and close', () => {
  test('bytes, round trips and active peers are counted under etcd names and hex labels', async () => {
    const [a, b] = await Promise.all([startMember(newId()), startMember(newId())]);
    connect(a, b);
    const before = {
      sent: await metric('etcd_network_peer_sent_bytes_total', { To: b.label }),
      received: await metric('etcd_network_peer_received_bytes_total', { From: a.label }),
      rtt: await metric('etcd_network_peer_round_trip_time_seconds', { To: b.label }, 'etcd_network_peer_round_trip_time_seconds_count'),
    };
    for (let i = 0; i < 20; i++) {
      a.transport.send([app(a, b, i, Buffer.alloc(1000))]);
      await sleep(2);
    }
    await waitFor('delivery', () => b.received.length === 20);
    await sleep(20); // the last answer reaches a
    const sent = (await metric('etcd_network_peer_sent_bytes_total', { To: b.label })) - before.sent;
    const received = (await metric('etcd_network_peer_received_bytes_total', { From: a.label })) - before.received;
    expect(sent).toBeGreaterThan(20 * 1000);
    expect(received).toBe(sent);
    expect((await metric('etcd_network_peer_round_trip_time_seconds', { To: b.label }, 'etcd_network_peer_round_trip_time_seconds_count')) - before.rtt).toBeGreaterThanOrEqual(1);
    expect(await metric('etcd_network_active_peers', { Local: a.label, Remote: b.label })).toBe(1);

    const text = await registry.metrics();
    expect(text).toContain(`etcd_network_peer_sent_bytes_total{To="${b.label}"}`);
    expect(text).toMatch(/etcd_network_peer_round_trip_time_seconds_bucket\{le="0\.0001",To="[0-9a-f]+"\}/);
    expect(text).toMatch(/etcd_network_peer_round_trip_time_seconds_bucket\{le="3\.2768",To=/);
    expect(text).toMatch(/etcd_network_snapshot_send_total_duration_seconds_bucket\{le="51\.2",To=|# TYPE etcd_network_snapshot_send_total_duration_seconds histogram/);
    a.transport.removePeer(b.id);
    expect(await metric('etcd_network_active_peers', { Local: a.label, Remote: b.label })).toBe(0);
    expect(a.transport.hasPeer(b.id)).toBe(false);
  });

  test('close() returns promptly with requests hanging on an unresponsive peer, and no callback fires afterwards', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    extraServers.push(silent);
    const port = await listen(silent);
    const a = await startMember(newId(), {}, { requestTimeoutMs: 30_000, snapshotIdleTimeoutMs: 30_000 });
    const deadId = newId();
    a.transport.addPeer(deadId, [`http://127.0.0.1:${port}`]);
    a.transport.send([makeMessage({ type: MessageType.Heartbeat, from: a.id, to: deadId })]);
    a.transport.sendSnapshot(makeMessage({ ...snapMsg(a, a), to: deadId }), payload(1024 * 1024, 1).open);
    const call = a.transport.callPeer(deadId, 'echo', {}, 30_000);
    const callResult = call.then(
      () => 'resolved',
      (err: Error) => err.message,
    );
    await waitFor('connections at the silent peer', () => sockets.length >= 3, 3000);
    const start = Date.now();
    await a.transport.close();
    expect(Date.now() - start).toBeLessThan(100);
    expect(await callResult).toMatch(/closed/);
    await sleep(50);
    expect(a.unreachable).toEqual([]);
    expect(a.snapshotStatus).toEqual([]);
    // after close, nothing is sent and the handler answers 503
    a.transport.send([makeMessage({ type: MessageType.Heartbeat, from: a.id, to: deadId })]);
    expect((await raw(a.port, 'GET', '/version')).status).toBe(503);
    for (const s of sockets) s.destroy();
  });
});
