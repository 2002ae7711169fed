// Watch under load, against etcd-ts:
//  (a) 2,000 watchers (4 streams x 500: single keys, prefixes, ranges, from-key, filters, prev_kv) while a
//      writer does 2,000 puts (and 100 deletes) over 20 keys: every watcher receives exactly the events of
//      its range, in revision order, none lost or duplicated, prev_kv = the previous write of the key;
//  (b) watchers starting from old revisions (catch-up from history, > 1000 revisions behind, > 512 at
//      once, different start revisions) while writes keep coming: each sees every revision of its range
//      from its start revision exactly once, across the history/live boundary;
//  (c) a stalled consumer (raw HTTP/2 stream that stops reading) while large values are written at full
//      speed: writes keep succeeding with bounded latency, a normal watcher keeps receiving promptly, the
//      server's RSS stays bounded, and once the consumer reads again it receives every event, in order;
//  (d) a stalled consumer whose history is compacted meanwhile (etcd and etcd-ts): after it resumes, its
//      watch ends with a canceled response carrying the compact revision — it is never left silent.
// Measured numbers are printed (console.log) for the report.
import * as http2 from 'http2';
import { createHash } from 'crypto';
import { httpGet, NodeHandle, startNode } from '../helpers';
import { RawKv, RawWatchResponse, RawWatchStream } from '../helpers/compare';
import { messageType } from '../../src/util/proto';

jest.setTimeout(60_000);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `pred` every 20 ms until it holds; throws `what()` after timeoutMs. */
async function waitUntil(pred: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what()}`);
    await sleep(20);
  }
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

/** One write as the server applied it. */
interface Write {
  rev: number;
  key: string;
  type: 'PUT' | 'DELETE';
  value: string;
}

/** What a watcher is expected to get: its range, filters and start. */
interface Spec {
  id: number;
  key: string;
  /** undefined: single key; '\0': every key >= key; else [key, end) */
  end?: string;
  noPut?: boolean;
  noDelete?: boolean;
  prevKv?: boolean;
  startRev?: number;
}

function matches(spec: Spec, key: string): boolean {
  if (spec.end === undefined) return key === spec.key;
  if (key < spec.key) return false;
  return spec.end === '\0' || key < spec.end;
}

/** Compact form of an event as received: rev|type|key|value|prev value. */
function eventLine(ev: { type: number; kv: { key: Buffer; mod_revision: string | number; value: Buffer }; prev_kv?: { value: Buffer } | null }): string {
  const prev = ev.prev_kv ? ev.prev_kv.value.toString() : '-';
  return `${Number(ev.kv.mod_revision)}|${ev.type === 1 ? 'DELETE' : 'PUT'}|${ev.kv.key.toString()}|${ev.type === 1 ? '' : ev.kv.value.toString()}|${prev}`;
}

/** The event lines a watcher must receive, given every write in revision order. */
function expectedLines(spec: Spec, writes: Write[]): string[] {
  const last = new Map<string, Write>(); // previous write per key, for prev_kv
  const out: string[] = [];
  for (const w of writes) {
    const prev = last.get(w.key);
    last.set(w.key, w);
    if (!matches(spec, w.key)) continue;
    if (spec.startRev !== undefined && w.rev < spec.startRev) continue;
    if (spec.noPut && w.type === 'PUT') continue;
    if (spec.noDelete && w.type === 'DELETE') continue;
    const prevValue = spec.prevKv && prev && prev.type === 'PUT' ? prev.value : '-';
    out.push(`${w.rev}|${w.type}|${w.key}|${w.type === 'DELETE' ? '' : w.value}|${prevValue}`);
  }
  return out;
}

/** Compares what a watcher got with what it should have; returns a problem description or undefined. */
function checkWatcher(label: string, got: string[], want: string[]): string | undefined {
  if (got.length === want.length && got.every((g, i) => g === want[i])) return undefined;
  const revs = got.map((l) => Number(l.split('|')[0]));
  const seen = new Set<string>();
  const dups = got.filter((l) => (seen.has(l) ? true : (seen.add(l), false)));
  const gotSet = new Set(got);
  const wantSet = new Set(want);
  const missing = want.filter((l) => !gotSet.has(l));
  const extra = got.filter((l) => !wantSet.has(l));
  const disorder = revs.findIndex((r, i) => i > 0 && r <= revs[i - 1]);
  return (
    `${label}: got ${got.length} events, want ${want.length}; ${missing.length} missing (first: ${missing.slice(0, 3).join(', ')}), ` +
    `${extra.length} unexpected (first: ${extra.slice(0, 3).join(', ')}), ${dups.length} duplicated (first: ${dups.slice(0, 3).join(', ')})` +
    (disorder >= 0 ? `, out of order at #${disorder} (rev ${revs[disorder - 1]} then ${revs[disorder]})` : '')
  );
}

/** Runs `n` concurrent loops of `op` until `until()` says stop; each loop awaits its op. */
async function concurrently(n: number, op: (i: number) => Promise<void>, until: (i: number) => boolean): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      for (;;) {
        const i = next++;
        if (until(i)) return;
        await op(i);
      }
    }),
  );
}

async function rssBytes(node: NodeHandle): Promise<number> {
  const res = await httpGet(`${node.clientUrl}/metrics`, 2_000);
  const m = /^process_resident_memory_bytes (\S+)$/m.exec(res.body);
  if (!m) throw new Error('no process_resident_memory_bytes in /metrics');
  return Number(m[1]);
}

// ---------------------------------------------------------------------------
// A raw HTTP/2 gRPC Watch stream that can stop reading (flow control then stops the server).

const digest = (v: Uint8Array) => createHash('sha1').update(v).digest('hex').slice(0, 8);
const WatchRequest = messageType('etcdserverpb.WatchRequest');
const WatchResponse = messageType('etcdserverpb.WatchResponse');

interface H2Response {
  watchId: number;
  created: boolean;
  canceled: boolean;
  compactRevision: number;
  headerRevision: number;
  /** rev|type|key|value digest */
  events: string[];
}

class H2WatchStream {
  readonly responses: H2Response[] = [];
  private readonly session: http2.ClientHttp2Session;
  private readonly stream: http2.ClientHttp2Stream;
  ended = false;

  constructor(node: NodeHandle) {
    this.session = http2.connect(node.clientUrl);
    this.session.on('error', () => undefined);
    this.stream = this.session.request({ ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers' });
    this.stream.on('error', () => undefined);
    this.stream.on('close', () => (this.ended = true));
    this.stream.on('data', (d: Buffer) => this.onData(d));
  }

  /** Bytes the client has read from its TCP socket so far (all streams of the connection). */
  get socketBytesRead(): number {
    return this.session.socket?.bytesRead ?? 0;
  }

  create(c: { key: string; rangeEnd?: string; startRevision?: number; watchId?: number; prevKv?: boolean }): void {
    const msg = WatchRequest.encode(
      WatchRequest.fromObject({
        create_request: {
          key: Buffer.from(c.key),
          range_end: Buffer.from(c.rangeEnd ?? ''),
          start_revision: c.startRevision ?? 0,
          watch_id: c.watchId ?? 0,
          prev_kv: c.prevKv ?? false,
        },
      }),
    ).finish();
    const frame = Buffer.alloc(5 + msg.length);
    frame.writeUInt32BE(msg.length, 1);
    Buffer.from(msg).copy(frame, 5);
    this.stream.write(frame);
  }

  pause(): void {
    this.stream.pause();
  }
  resume(): void {
    this.stream.resume();
  }

  private chunks: Buffer[] = [];
  private have = 0;
  private need: number | undefined;

  /** gRPC length-prefixed messages; a message is concatenated once, when all of it has arrived. */
  private onData(d: Buffer): void {
    this.chunks.push(d);
    this.have += d.length;
    for (;;) {
      if (this.need === undefined) {
        if (this.have < 5) return;
        const head = this.chunks[0].length >= 5 ? this.chunks[0] : Buffer.concat(this.chunks);
        this.need = 5 + head.readUInt32BE(1);
      }
      if (this.have < this.need) return;
      const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
      const msg = all.subarray(5, this.need);
      const rest = all.subarray(this.need);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.have = rest.length;
      this.need = undefined;
      this.onMessage(msg);
    }
  }

  private onMessage(msg: Buffer): void {
    const r = WatchResponse.toObject(WatchResponse.decode(msg), { longs: Number, defaults: true }) as {
      header: { revision: number };
      watch_id: number;
      created: boolean;
      canceled: boolean;
      compact_revision: number;
      events: { type: number; kv: { key: Uint8Array; mod_revision: number; value: Uint8Array } }[];
    };
    this.responses.push({
      watchId: r.watch_id,
      created: r.created,
      canceled: r.canceled,
      compactRevision: r.compact_revision,
      headerRevision: r.header?.revision ?? 0,
      events: r.events.map((e) => `${e.kv.mod_revision}|${e.type === 1 ? 'DELETE' : 'PUT'}|${Buffer.from(e.kv.key).toString()}|${digest(e.kv.value)}`),
    });
  }

  eventLines(watchId?: number): string[] {
    return this.responses.filter((r) => watchId === undefined || r.watchId === watchId).flatMap((r) => r.events);
  }

  close(): void {
    this.stream.close();
    this.session.destroy();
  }
}


// ---------------------------------------------------------------------------

let node: NodeHandle | undefined;
let kv: RawKv;

beforeAll(async () => {
  node = await startNode({ kind: 'etcd-ts', name: 'wstress' });
  kv = new RawKv(node.endpoint);
});

afterAll(async () => {
  kv?.close();
  await node?.destroy();
});

test('(a) 2,000 watchers on 4 streams, 2,000 puts + 100 deletes over 20 keys: every watcher gets exactly its events', async () => {
  const ep = (node as NodeHandle).endpoint;
  const KEYS = Array.from({ length: 20 }, (_, i) => `s/k${String(i).padStart(2, '0')}`);
  const specs: Spec[] = [];
  for (let i = 0; i < 500; i++) {
    const id = i + 1;
    if (i < 400) {
      specs.push({ id, key: KEYS[i % 20], prevKv: i % 7 === 0, noDelete: i % 11 === 0 });
      continue;
    }
    const j = i - 400;
    if (j < 20) specs.push({ id, key: 's/k0', end: 's/k1' });
    else if (j < 40) specs.push({ id, key: 's/k1', end: 's/k2', prevKv: true });
    else if (j < 60) specs.push({ id, key: 's/k05', end: 's/k12' });
    else if (j < 80) specs.push({ id, key: 's/k15', end: '\0' });
    else if (j < 90) specs.push({ id, key: 's/', end: 's0', prevKv: true });
    else specs.push({ id, key: 's/', end: 's0', noPut: true });
  }
  const STREAMS = 4;
  const got: Map<number, string[]>[] = Array.from({ length: STREAMS }, () => new Map(specs.map((s) => [s.id, [] as string[]])));
  const created: number[] = new Array(STREAMS).fill(0);
  const bad: string[] = [];
  let responses = 0;
  const streams = Array.from(
    { length: STREAMS },
    (_, si) =>
      new RawWatchStream(ep, {
        keep: false,
        onResponse: (r: RawWatchResponse) => {
          responses++;
          const id = Number(r.watch_id);
          if (r.created) {
            if (r.canceled) bad.push(`stream ${si}: create of ${id} refused: ${r.cancel_reason}`);
            created[si]++;
            return;
          }
          if (r.canceled) bad.push(`stream ${si}: watcher ${id} canceled (compact_revision ${r.compact_revision})`);
          const list = got[si].get(id);
          if (!list) {
            if (r.events.length > 0) bad.push(`stream ${si}: events for unknown watch id ${id}`);
            return;
          }
          for (const ev of r.events) list.push(eventLine(ev));
        },
      }),
  );
  try {
    for (const w of streams) {
      for (const s of specs) {
        w.create({ key: s.key, range_end: s.end === undefined ? undefined : s.end === '\0' ? Buffer.from([0]) : s.end, watch_id: s.id, prev_kv: s.prevKv, filters: [...(s.noPut ? [0] : []), ...(s.noDelete ? [1] : [])] });
      }
    }
    await waitUntil(() => created.every((c) => c === specs.length), 20_000, () => `created responses per stream: ${created.join(', ')}`);
    expect(bad).toEqual([]);

    const writes: Write[] = [];
    const started = Date.now();
    const latencies: number[] = [];
    await concurrently(
      8,
      async (n) => {
        const key = KEYS[n % 20];
        const t0 = Date.now();
        if (n % 21 === 20) {
          const r = await kv.delete(key);
          if (Number(r.deleted) > 0) writes.push({ rev: Number(r.header.revision), key, type: 'DELETE', value: '' });
        } else {
          const value = `v${n}`;
          const r = await kv.put(key, value);
          writes.push({ rev: Number(r.header.revision), key, type: 'PUT', value });
        }
        latencies.push(Date.now() - t0);
      },
      (n) => n >= 2100,
    );
    const writeMs = Date.now() - started;
    writes.sort((a, b) => a.rev - b.rev);
    const wants = new Map(specs.map((s) => [s.id, expectedLines(s, writes)]));
    const total = STREAMS * [...wants.values()].reduce((n, w) => n + w.length, 0);
    const receivedCount = () => got.reduce((n, m) => n + [...m.values()].reduce((k, l) => k + l.length, 0), 0);
    await waitUntil(() => receivedCount() >= total, 25_000, () => `received ${receivedCount()} of ${total} events`).catch(() => undefined);
    await sleep(300); // anything extra (duplicates) would arrive now
    const deliveredMs = Date.now() - started;
    const problems: string[] = [...bad];
    for (let si = 0; si < STREAMS; si++) {
      for (const s of specs) {
        const p = checkWatcher(`stream ${si} watcher ${s.id} (${s.key}${s.end === undefined ? '' : s.end === '\0' ? '..' : `..${s.end}`}${s.noPut ? ' NOPUT' : ''}${s.noDelete ? ' NODELETE' : ''}${s.prevKv ? ' prev_kv' : ''})`, got[si].get(s.id) ?? [], wants.get(s.id) ?? []);
        if (p) problems.push(p);
      }
    }
    console.log(
      `(a) ${STREAMS * specs.length} watchers, ${writes.length} revisions written in ${writeMs} ms (put latency p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms), ` +
        `${total} events expected, ${receivedCount()} received in ${responses} responses within ${deliveredMs} ms; ${problems.length} watchers wrong`,
    );
    expect(problems.slice(0, 20)).toEqual([]);
  } finally {
    for (const w of streams) w.close();
  }
});

test('(b) catch-up from old revisions while writes keep coming: every revision exactly once across the history/live boundary', async () => {
  const ep = (node as NodeHandle).endpoint;
  const KEYS = Array.from({ length: 10 }, (_, i) => `b/k${i}`);
  const writes: Write[] = [];
  const put = async (n: number) => {
    const key = KEYS[n % 10];
    const value = `w${n}`;
    const r = await kv.put(key, value);
    writes.push({ rev: Number(r.header.revision), key, type: 'PUT', value });
  };
  // 2,500 revisions of history first (more than 1,000 behind for the oldest watchers)
  await concurrently(16, put, (n) => n >= 2500);
  writes.sort((a, b) => a.rev - b.rev);
  const first = writes[0].rev;
  const historyTop = writes[writes.length - 1].rev;

  // Watcher specs: a few broad ones at very different start revisions, and 600 single-key watchers from
  // start revisions spread over the history (more than one catch-up round of 512).
  const specs: Spec[] = [
    { id: 1, key: 'b/', end: 'b0', startRev: first },
    { id: 2, key: 'b/', end: 'b0', startRev: first + 1200, prevKv: true },
    { id: 3, key: 'b/', end: 'b0', startRev: historyTop - 20 },
    { id: 4, key: 'b/k3', startRev: first },
    { id: 5, key: 'b/k7', startRev: first + 2000, prevKv: true },
    { id: 6, key: 'b/', end: 'b0', startRev: historyTop + 1 },
  ];
  for (let i = 0; i < 600; i++) specs.push({ id: 100 + i, key: KEYS[i % 10], startRev: first + Math.floor((i * 2500) / 600) });
  const late: Spec[] = [
    { id: 1001, key: 'b/', end: 'b0', startRev: first + 10 },
    { id: 1002, key: 'b/k5', startRev: first + 1500 },
  ];

  const got = new Map<number, string[]>([...specs, ...late].map((s) => [s.id, []]));
  const bad: string[] = [];
  const onResponse = (r: RawWatchResponse) => {
    const id = Number(r.watch_id);
    if (r.canceled) bad.push(`watcher ${id} canceled: ${r.cancel_reason} compact ${r.compact_revision}`);
    if (r.created) return;
    const list = got.get(id);
    if (!list) return void bad.push(`events for unknown watch id ${id}`);
    for (const ev of r.events) list.push(eventLine(ev));
  };
  const streams = [new RawWatchStream(ep, { keep: false, onResponse }), new RawWatchStream(ep, { keep: false, onResponse })];
  const create = (s: Spec, stream: RawWatchStream) =>
    stream.create({ key: s.key, range_end: s.end, watch_id: s.id, start_revision: s.startRev, prev_kv: s.prevKv });
  try {
    // writes keep coming while the watchers are created and catch up
    let stop = false;
    const writer = concurrently(4, put, () => stop);
    await sleep(200);
    specs.forEach((s, i) => create(s, streams[i % 2]));
    await sleep(1_000);
    late.forEach((s) => create(s, streams[0]));
    await sleep(2_000);
    stop = true;
    await writer;
    writes.sort((a, b) => a.rev - b.rev);
    const top = writes[writes.length - 1].rev;
    const all = [...specs, ...late];
    const wants = new Map(all.map((s) => [s.id, expectedLines(s, writes)]));
    const lastRevOf = (id: number) => Number((got.get(id) ?? []).at(-1)?.split('|')[0] ?? 0);
    const wantLast = (id: number) => Number((wants.get(id) ?? []).at(-1)?.split('|')[0] ?? 0);
    await waitUntil(() => all.every((s) => lastRevOf(s.id) >= wantLast(s.id)), 20_000, () => {
      const behind = all.filter((s) => lastRevOf(s.id) < wantLast(s.id));
      return `${behind.length} watchers behind, e.g. ${behind
        .slice(0, 3)
        .map((s) => `${s.id} at ${lastRevOf(s.id)} of ${wantLast(s.id)}`)
        .join(', ')}`;
    }).catch(() => undefined);
    await sleep(300);
    const problems = [...bad];
    for (const s of all) {
      const p = checkWatcher(`watcher ${s.id} (${s.key}${s.end ? `..${s.end}` : ''} from rev ${s.startRev})`, got.get(s.id) ?? [], wants.get(s.id) ?? []);
      if (p) problems.push(p);
    }
    console.log(`(b) history ${first}..${historyTop}, live writes up to ${top}; ${all.length} watchers; ${problems.length} wrong`);
    expect(problems.slice(0, 20)).toEqual([]);
  } finally {
    for (const w of streams) w.close();
  }
});

test('(c) a stalled consumer: writes and other watchers go on, memory stays bounded, the consumer gets everything after resuming', async () => {
  // A fresh member, so that RSS is not skewed by the tests above.
  const fresh = await startNode({ kind: 'etcd-ts', name: 'wstall' });
  const writer = new RawKv(fresh.endpoint);
  const stalled = new H2WatchStream(fresh);
  const arrivals = new Map<number, number>(); // revision -> arrival time at the normal watcher
  const normalLines: string[] = [];
  const normal = new RawWatchStream(fresh.endpoint, {
    keep: false,
    onResponse: (r) => {
      const now = Date.now();
      for (const ev of r.events) {
        arrivals.set(Number(ev.kv.mod_revision), now);
        normalLines.push(`${Number(ev.kv.mod_revision)}|${ev.type === 1 ? 'DELETE' : 'PUT'}|${ev.kv.key.toString()}|${digest(ev.kv.value)}`);
      }
    },
  });
  try {
    const VALUE = 64 * 1024;
    const KEYS = Array.from({ length: 8 }, (_, i) => `big/k${i}`);
    const start = (await writer.currentRevision()) + 1;
    stalled.create({ key: 'big/', rangeEnd: 'big0', watchId: 1 });
    normal.create({ key: 'big/', range_end: 'big0' });
    await waitUntil(() => stalled.responses.length >= 1, 5_000, () => 'stalled stream: no created response');
    await sleep(300);

    const values = KEYS.map((_, i) => Buffer.alloc(VALUE, 97 + i));
    const writes: { rev: number; key: string; digest: string; doneAt: number; latency: number }[] = [];
    let n = 0;
    const put = async () => {
      const i = n++;
      const key = KEYS[i % KEYS.length];
      const v = Buffer.from(values[i % KEYS.length]);
      v.writeUInt32BE(i, 0); // every value distinct
      const t0 = Date.now();
      const r = await writer.put(key, v);
      const doneAt = Date.now();
      writes.push({ rev: Number(r.header.revision), key, digest: digest(v), doneAt, latency: doneAt - t0 });
    };
    /** 4 writers at full speed for `ms`, RSS sampled every 250 ms; returns the phase's writes and samples. */
    const phase = async (ms: number) => {
      const from = writes.length;
      const t0 = Date.now();
      let sampling = true;
      const rss: number[] = [];
      const sampler = (async () => {
        while (sampling) {
          const x = await rssBytes(fresh).catch(() => NaN);
          if (!Number.isNaN(x)) rss.push(x);
          await sleep(250);
        }
      })();
      await concurrently(4, put, () => Date.now() - t0 >= ms);
      sampling = false;
      await sampler;
      const ws = writes.slice(from);
      const lat = ws.map((w) => w.latency);
      const lastRev = Math.max(...ws.map((w) => w.rev));
      await waitUntil(() => arrivals.has(lastRev), 10_000, () => `normal watcher: no event for revision ${lastRev}`).catch(() => undefined);
      const lags = ws.map((w) => (arrivals.has(w.rev) ? (arrivals.get(w.rev) as number) - w.doneAt : Infinity));
      return { ws, lat, lags, rssMax: Math.max(...rss), rssLast: rss[rss.length - 1], bytes: ws.length * VALUE };
    };
    const fmt = (name: string, p: Awaited<ReturnType<typeof phase>>) =>
      `${name}: ${p.ws.length} puts of ${VALUE / 1024} KiB (${mb(p.bytes)}), put latency p50 ${percentile(p.lat, 50)} / p99 ${percentile(p.lat, 99)} / max ${Math.max(...p.lat)} ms, ` +
      `normal watcher lag p50 ${percentile(p.lags, 50)} / p99 ${percentile(p.lags, 99)} / max ${Math.max(...p.lags)} ms, RSS max ${mb(p.rssMax)}`;

    // control phase: both consumers read
    const rssAtStart = await rssBytes(fresh);
    const control = await phase(5_000);
    const controlTop = Math.max(...control.ws.map((w) => w.rev));
    await waitUntil(() => stalled.eventLines(1).length >= controlTop - start + 1, 15_000, () => 'stalled consumer did not get the control phase');
    // stall phase: the consumer stops reading
    stalled.pause();
    const bytesBefore = stalled.socketBytesRead;
    const stall = await phase(5_000);
    const stalledBytes = stalled.socketBytesRead - bytesBefore;
    writes.sort((a, b) => a.rev - b.rev);
    const top = writes[writes.length - 1].rev;

    // resume the consumer: it must receive every revision, in order, once
    stalled.resume();
    const resumedAt = Date.now();
    const lastOfStalled = () => Number(stalled.eventLines(1).at(-1)?.split('|')[0] ?? 0);
    await waitUntil(() => lastOfStalled() >= top, 25_000, () => `stalled consumer at revision ${lastOfStalled()} of ${top} after resuming`).catch(() => undefined);
    const catchUpMs = Date.now() - resumedAt;
    await sleep(300);

    console.log(
      `(c) RSS at start ${mb(rssAtStart)}\n(c) ${fmt('control (no stalled consumer)', control)} (+${mb(control.rssMax - rssAtStart)})\n(c) ${fmt('stall', stall)} (+${mb(stall.rssMax - control.rssMax)}); ` +
        `the stalled client read ${stalledBytes} bytes from its socket during the stall; after resuming it caught up in ${catchUpMs} ms (${stalled.responses.length} responses in all)`,
    );

    const want = writes.filter((w) => w.rev >= start).map((w) => `${w.rev}|PUT|${w.key}|${w.digest}`);
    expect(checkWatcher('normal watcher', normalLines, want)).toBeUndefined();
    expect(checkWatcher('stalled watcher after resuming', stalled.eventLines(1), want)).toBeUndefined();
    expect(stalled.responses.filter((r) => r.canceled)).toEqual([]);
    // the stall was real: the client read (almost) nothing of what was written meanwhile
    expect(stalledBytes).toBeLessThan(stall.bytes / 10);
    // writes went on at a useful rate with bounded latency
    expect(stall.ws.length).toBeGreaterThan(100);
    expect(percentile(stall.lat, 99)).toBeLessThan(1_000);
    expect(Math.max(...stall.lat)).toBeLessThan(3_000);
    // the normal watcher got every event promptly
    expect(percentile(stall.lags, 99)).toBeLessThan(1_000);
    // Memory did not grow with what the stalled consumer did not read. Heavy writes alone grow RSS (RocksDB
    // memtables, V8 heap) by tens of MiB per phase, so the stall phase's growth is compared with the control
    // phase's: holding the unread events would add about the bytes written (~100 MiB) on top.
    expect(stall.rssMax - control.rssMax).toBeLessThan(Math.max(0, control.rssMax - rssAtStart) + stall.bytes / 2);
    expect(stall.rssMax).toBeLessThan(1024 * 1024 * 1024);
  } finally {
    stalled.close();
    normal.close();
    writer.close();
    await fresh.destroy();
  }
});

describe('(d) a stalled consumer whose history is compacted meanwhile', () => {
  for (const kind of ['etcd', 'etcd-ts'] as const) {
    test(`${kind}: after resuming, the events it gets are gap-free and the watch ends canceled with the compact revision`, async () => {
      const n = await startNode({ kind, name: 'wcompact' });
      const writer = new RawKv(n.endpoint);
      const stalled = new H2WatchStream(n);
      try {
        const start = (await writer.currentRevision()) + 1;
        stalled.create({ key: 'cmp/', rangeEnd: 'cmp0', watchId: 1 });
        await waitUntil(() => stalled.responses.length >= 1, 5_000, () => 'no created response');
        await sleep(200);
        stalled.pause();
        const revs: { rev: number; key: string; digest: string }[] = [];
        await concurrently(
          4,
          async (i) => {
            const v = Buffer.alloc(64 * 1024, 65 + (i % 26));
            v.writeUInt32BE(i, 0);
            const r = await writer.put(`cmp/k${i % 4}`, v);
            revs.push({ rev: Number(r.header.revision), key: `cmp/k${i % 4}`, digest: digest(v) });
          },
          (i) => i >= 300,
        );
        revs.sort((a, b) => a.rev - b.rev);
        const compactRev = revs[revs.length - 1].rev;
        await writer.compact(compactRev, true);
        // a second watcher on the stalled stream, from a revision compacted away
        stalled.create({ key: 'cmp/k1', startRevision: compactRev - 10, watchId: 2 });
        await sleep(300);
        await writer.put('cmp/k0', 'after the compaction');
        await sleep(300);
        stalled.resume();
        await waitUntil(() => stalled.responses.filter((r) => r.canceled).length >= 2, 10_000, () => `not both canceled after resuming`).catch(() => undefined);
        await sleep(500);
        const lines = stalled.eventLines(1);
        const want = revs.filter((r) => r.rev >= start).map((r) => `${r.rev}|PUT|${r.key}|${r.digest}`);
        const prefix = want.slice(0, lines.length);
        const canceled = stalled.responses.filter((r) => r.canceled);
        const of = (id: number) => stalled.responses.filter((r) => r.watchId === id);
        console.log(`(d) ${kind}: watcher 1 got ${lines.length} of ${want.length} events before the end; responses ${stalled.responses.length}; canceled: ${JSON.stringify(canceled)}`);
        expect(checkWatcher('events received before the cancel', lines, prefix)).toBeUndefined();
        // watcher 1 (fell behind the compaction while stalled): its last response is the cancel
        expect(of(1).at(-1)).toMatchObject({ canceled: true, compactRevision: compactRev });
        // watcher 2 (created at a compacted revision while its stream was stalled): created, then canceled
        expect(of(2).map((r) => ({ created: r.created, canceled: r.canceled, compactRevision: r.compactRevision }))).toEqual([
          { created: true, canceled: false, compactRevision: 0 },
          { created: false, canceled: true, compactRevision: compactRev },
        ]);
      } finally {
        stalled.close();
        writer.close();
        await n.destroy();
      }
    });
  }
});
