// The Watch stream at the protocol level: raw etcdserverpb.Watch bidi streams (grpc-js) against a
// reference etcd and an etcd-ts member, each scenario run on both with the same writes, and the responses
// compared field by field (header revision and raft term, watch_id, created, canceled, compact_revision,
// cancel_reason, fragment, events with kv and prev_kv). Only the header's cluster and member IDs are left
// out. Responses of different watchers of one stream are compared per watch_id: their interleaving is
// arbitrary in etcd (Go map order); the order per watcher is the contract.
//
// Both members start with --max-request-bytes=1048576 (to see fragmentation with ~300 KiB values) and
// --watch-progress-notify-interval=1s. Scenarios run in file order and build one history; compaction is last.
import { NodeHandle, startNode } from '../helpers';
import { byWatchId, canonWatchResponse, lineDiff, RawKv, RawWatchResponse, RawWatchStream } from '../helpers/compare';

jest.setTimeout(60_000);

const MAX_REQUEST_BYTES = 1024 * 1024;
const SERVER_FLAGS = [`--max-request-bytes=${MAX_REQUEST_BYTES}`, '--watch-progress-notify-interval=1s'];
const QUIET_MS = 400;

interface Side {
  label: 'etcd' | 'etcd-ts';
  node: NodeHandle;
  endpoint: string;
  kv: RawKv;
  streams: RawWatchStream[];
}

let sides: Side[] = [];

beforeAll(async () => {
  const started = await Promise.allSettled([
    startNode({ kind: 'etcd', name: 'wproto', extraArgs: SERVER_FLAGS }),
    startNode({ kind: 'etcd-ts', name: 'wproto', extraArgs: SERVER_FLAGS }),
  ]);
  const nodes = started.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
  sides = nodes
    .filter((n): n is NodeHandle => n !== undefined)
    .map((node) => ({ label: node.kind, node, endpoint: node.endpoint, kv: new RawKv(node.endpoint), streams: [] }));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
});

afterEach(() => {
  for (const s of sides) {
    for (const w of s.streams) w.close();
    s.streams = [];
  }
});

afterAll(async () => {
  for (const s of sides) s.kv.close();
  await Promise.all(sides.map((s) => s.node.destroy()));
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function open(side: Side): RawWatchStream {
  const w = new RawWatchStream(side.endpoint);
  side.streams.push(w);
  return w;
}

const rev = (r: { header: { revision: string } }) => Number(r.header.revision);
const canon = (rs: RawWatchResponse[]) => rs.map(canonWatchResponse);

function show(v: unknown): string {
  return JSON.stringify(v, null, 1);
}

/** Fails with a readable diff unless etcd-ts produced the same data as etcd. */
function expectSame(what: string, etcd: unknown, etcdTs: unknown): void {
  const a = show(etcd);
  const b = show(etcdTs);
  if (a === b) return;
  throw new Error(`${what}: etcd-ts differs from etcd (- etcd, + etcd-ts):\n${lineDiff(a, b)}`);
}

/**
 * Runs the scenario on both members at once (each with its own streams and writes, identical by
 * construction) after checking they are at the same revision; returns [etcd result, etcd-ts result].
 */
async function onBoth<T>(fn: (side: Side) => Promise<T>): Promise<[T, T]> {
  const revs = await Promise.all(sides.map((s) => s.kv.currentRevision()));
  expect({ etcdTsRevision: revs[1] }).toEqual({ etcdTsRevision: revs[0] });
  const [a, b] = await Promise.all(sides.map(fn));
  return [a, b];
}

/** Declares a scenario whose results must be identical on both members; `check` asserts on etcd's result. */
function scenario<T>(name: string, fn: (side: Side) => Promise<T>, check?: (etcd: T, etcdTs: T) => void): void {
  test(name, async () => {
    const [a, b] = await onBoth(fn);
    check?.(a, b);
    expectSame(name, a, b);
  });
}

const header = (r: Record<string, unknown>) => r.header as { revision: number };

// ---------------------------------------------------------------------------
describe('creating watchers', () => {
  scenario(
    'created response fields, then an event',
    async (s) => {
      const w = open(s);
      w.create({ key: 'p1/a' });
      const created = canon(await w.take(1));
      const put = await s.kv.put('p1/a', 'v1');
      const events = canon(await w.take(1));
      return { created, putRevision: rev(put), events, rest: canon(await w.drain(QUIET_MS)) };
    },
    (etcd) => {
      const c = etcd.created[0];
      expect(c).toMatchObject({ watch_id: 0, created: true, canceled: false, compact_revision: 0, cancel_reason: '', fragment: false, events: [] });
      expect(header(c).revision).toBe(etcd.putRevision - 1);
      expect(header(etcd.events[0]).revision).toBe(etcd.putRevision);
    },
  );

  scenario('client-chosen watch ids, and automatic ids around them', async (s) => {
    const w = open(s);
    w.create({ key: 'p2/a', watch_id: 7 });
    w.create({ key: 'p2/a' });
    w.create({ key: 'p2/b', watch_id: 1 });
    w.create({ key: 'p2/b' });
    w.create({ key: 'p2/b', watch_id: -5 });
    w.create({ key: 'p2/b' });
    const created = canon(await w.take(6));
    await s.kv.put('p2/a', 'a');
    await s.kv.put('p2/b', 'b');
    return { created, after: byWatchId(await w.drain(QUIET_MS)) };
  });

  scenario(
    'duplicate watch id on one stream: refused, the first watcher goes on',
    async (s) => {
      const w = open(s);
      w.create({ key: 'p3/a', watch_id: 7 });
      w.create({ key: 'p3/b', watch_id: 7 });
      const created = canon(await w.take(2));
      await s.kv.put('p3/a', 'a');
      await s.kv.put('p3/b', 'b');
      // the same id on another stream is fine
      const other = open(s);
      other.create({ key: 'p3/b', watch_id: 7 });
      const otherCreated = canon(await other.take(1));
      return { created, after: byWatchId(await w.drain(QUIET_MS)), otherCreated };
    },
    (etcd) => expect(etcd.created[1]).toMatchObject({ watch_id: -1, created: true, canceled: true, cancel_reason: 'mvcc: duplicate watch ID provided on the WatchStream' }),
  );

  scenario(
    'negative start revision: watch id -1, created and canceled with a reason',
    async (s) => {
      const w = open(s);
      w.create({ key: 'p4/a', start_revision: -1 });
      w.create({ key: 'p4/a', start_revision: -100, watch_id: 3 });
      const refused = canon(await w.take(2));
      w.create({ key: 'p4/a' });
      const ok = canon(await w.take(1));
      return { refused, ok, rest: canon(await w.drain(QUIET_MS)) };
    },
    (etcd) =>
      expect(etcd.refused[0]).toMatchObject({ watch_id: -1, created: true, canceled: true, cancel_reason: 'etcdserver: mvcc: required revision has been compacted' }),
  );

  scenario(
    'range end <= key: refused as an empty range; range_end "\\0" watches every key >= key',
    async (s) => {
      const w = open(s);
      w.create({ key: 'p5/b', range_end: 'p5/a' });
      w.create({ key: 'p5/b', range_end: 'p5/b' });
      w.create({ key: 'p5/b', range_end: 'p5/bb' });
      w.create({ key: 'p5/b', range_end: Buffer.from([0]) });
      w.create({ key: '', range_end: Buffer.from([0]) });
      const created = canon(await w.take(5));
      await s.kv.put('p5/a', '1');
      await s.kv.put('p5/b', '2');
      await s.kv.put('p5/ba', '3');
      await s.kv.put('p5/c', '4');
      return { created, after: byWatchId(await w.drain(QUIET_MS)) };
    },
    (etcd) => {
      expect(etcd.created[0]).toMatchObject({ watch_id: -1, created: true, canceled: true, cancel_reason: 'mvcc: watcher range is empty' });
      expect(etcd.created[1]).toMatchObject({ watch_id: -1, canceled: true });
    },
  );

  scenario('an unknown (empty) request is ignored and the stream goes on', async (s) => {
    const w = open(s);
    w.send({});
    w.create({ key: 'p5u/a' });
    const created = canon(await w.take(1));
    await s.kv.put('p5u/a', 'x');
    return { created, after: canon(await w.drain(QUIET_MS)) };
  });
});

// ---------------------------------------------------------------------------
describe('canceling', () => {
  scenario(
    'cancel: a canceled response, then no more events; unknown ids get no answer',
    async (s) => {
      const w = open(s);
      w.create({ key: 'p6/a' });
      w.create({ key: 'p6/a' });
      const created = canon(await w.take(2));
      await s.kv.put('p6/a', '1');
      const events = byWatchId(await w.take(2));
      w.cancel(0);
      const canceled = canon(await w.take(1));
      await s.kv.put('p6/a', '2');
      w.cancel(0);
      w.cancel(42);
      await s.kv.put('p6/a', '3');
      return { created, events, canceled, after: byWatchId(await w.drain(QUIET_MS)) };
    },
    (etcd) => expect(etcd.canceled[0]).toMatchObject({ watch_id: 0, created: false, canceled: true, cancel_reason: '', events: [] }),
  );
});

// ---------------------------------------------------------------------------
describe('progress', () => {
  scenario('progress_request on a stream without watchers', async (s) => {
    const w = open(s);
    w.progress();
    return canon(await w.drain(QUIET_MS));
  });

  scenario(
    'progress_request right after creating watchers (no write since): one header-only response, watch id -1',
    async (s) => {
      const w = open(s);
      w.create({ key: 'p7/a' });
      w.create({ key: 'p7/', range_end: 'p70' });
      const created = canon(await w.take(2));
      w.progress();
      const first = canon(await w.drain(QUIET_MS));
      await s.kv.put('p7-elsewhere', 'x');
      w.progress();
      const second = canon(await w.drain(QUIET_MS));
      return { created, first, second };
    },
    (etcd) => {
      expect(etcd.first).toHaveLength(1);
      expect(etcd.first[0]).toMatchObject({ watch_id: -1, created: false, canceled: false, events: [] });
      expect(header(etcd.first[0]).revision).toBe(header(etcd.created[1]).revision);
    },
  );

  scenario('progress_request while a watcher waits for a future start revision: no response', async (s) => {
    const w = open(s);
    const now = await s.kv.currentRevision();
    w.create({ key: 'p7f/a' });
    w.create({ key: 'p7f/b', start_revision: now + 100 });
    const created = canon(await w.take(2));
    await s.kv.put('p7f/a', 'x');
    w.progress();
    return { created, after: byWatchId(await w.drain(QUIET_MS)) };
  });

  scenario('progress_request after a catch-up from history has finished', async (s) => {
    const w = open(s);
    const first = rev(await s.kv.put('p7h/a', '1'));
    await s.kv.put('p7h/a', '2');
    w.create({ key: 'p7h/a', start_revision: first });
    const got = canon(await w.take(2));
    await sleep(300);
    w.progress();
    return { got, progress: canon(await w.drain(QUIET_MS)) };
  });

  scenario(
    'progress_notify watcher: a progress response per interval while idle, elided after an event',
    async (s) => {
      const w = open(s);
      w.create({ key: 'p8/a', progress_notify: true });
      const created = canon(await w.take(1));
      await sleep(1_500); // tick 1 at 1.0-1.1 s
      const idle = canon(await w.drain(100, 500));
      await s.kv.put('p8/a', 'x'); // tick 2 at 2.0-2.2 s is elided
      await sleep(800);
      const afterEvent = canon(await w.drain(100, 500));
      await sleep(1_200); // tick 3 at 3.0-3.3 s, tick 4 not before 4.0 s
      const later = canon(await w.drain(100, 500));
      return { created, idle, afterEvent, later };
    },
    (etcd) => {
      expect(etcd.idle).toHaveLength(1);
      expect(etcd.idle[0]).toMatchObject({ watch_id: 0, events: [] });
      expect(etcd.afterEvent).toHaveLength(1);
      expect(etcd.later).toHaveLength(1);
    },
  );
});

// ---------------------------------------------------------------------------
describe('filters', () => {
  scenario('NOPUT / NODELETE / both / none on one prefix', async (s) => {
    const w = open(s);
    w.create({ key: 'p9/', range_end: 'p90', filters: [0] });
    w.create({ key: 'p9/', range_end: 'p90', filters: [1] });
    w.create({ key: 'p9/', range_end: 'p90', filters: [0, 1] });
    w.create({ key: 'p9/', range_end: 'p90', prev_kv: true });
    w.create({ key: 'p9/a', filters: [1], prev_kv: true });
    const created = canon(await w.take(5));
    await s.kv.put('p9/a', '1');
    await s.kv.put('p9/b', '2');
    await s.kv.delete('p9/a');
    await s.kv.txn([{ put: ['p9/c', '3'] }, { del: ['p9/b'] }, { put: ['p9/a', '4'] }]);
    await s.kv.delete('p9/', 'p90');
    return { created, after: byWatchId(await w.drain(QUIET_MS)) };
  });
});

// ---------------------------------------------------------------------------
describe('one revision, one response; header revisions', () => {
  scenario(
    'txn of several keys: all its events in one response, in txn order; delete-range: one response',
    async (s) => {
      const w = open(s);
      w.create({ key: 'p11/', range_end: 'p110', prev_kv: true });
      w.create({ key: 'p11/b' });
      const created = canon(await w.take(2));
      const t = await s.kv.txn([{ put: ['p11/c', 'c'] }, { put: ['p11/a', 'a'] }, { put: ['p11/b', 'b'] }, { del: ['p11/x'] }, { put: ['p11x', 'outside'] }]);
      const t2 = await s.kv.txn([{ put: ['p11/a', 'a2'] }, { del: ['p11/c'] }]);
      const d = await s.kv.delete('p11/', 'p110');
      return { created, txnRevision: rev(t), txn2Revision: rev(t2), delRevision: rev(d), after: byWatchId(await w.drain(QUIET_MS)) };
    },
    (etcd) => {
      const prefix = etcd.after['0'];
      expect(prefix).toHaveLength(3);
      expect(prefix.map((r) => (r.events as unknown[]).length)).toEqual([3, 2, 2]);
      expect(prefix.map((r) => header(r).revision)).toEqual([etcd.txnRevision, etcd.txn2Revision, etcd.delRevision]);
    },
  );

  scenario(
    'catch-up response: events of several revisions, header revision = current revision',
    async (s) => {
      const r1 = rev(await s.kv.put('p12/a', '1'));
      await s.kv.put('p12/a', '2');
      await s.kv.put('p12/b', 'other key');
      const last = rev(await s.kv.put('p12x', 'outside'));
      const w = open(s);
      w.create({ key: 'p12/a', start_revision: r1, prev_kv: true });
      w.create({ key: 'p12/', range_end: 'p120', start_revision: r1 + 1 });
      const got = byWatchId(await w.take(4));
      return { r1, last, got, rest: canon(await w.drain(QUIET_MS)) };
    },
    (etcd) => {
      for (const id of ['0', '1']) expect(header(etcd.got[id][1]).revision).toBe(etcd.last);
    },
  );

  let p13First = 0;
  scenario('catch-up of more than 1000 revisions: how the history is split into responses', async (s) => {
    const first = rev(await s.kv.put('p13/k0', 'v0'));
    p13First = first;
    for (let i = 1; i < 1100; i++) await s.kv.put(`p13/k${i % 10}`, `v${i}`);
    const w = open(s);
    w.create({ key: 'p13/', range_end: 'p130', start_revision: first });
    w.create({ key: 'p13/k3', start_revision: first });
    await w.take(2);
    await w.waitFor((all) => all.filter((r) => Number(r.watch_id) === 0).reduce((n, r) => n + r.events.length, 0) >= 1100, 15_000, 'all 1100 events');
    await w.waitFor((all) => all.filter((r) => Number(r.watch_id) === 1).reduce((n, r) => n + r.events.length, 0) >= 110, 15_000, 'all 110 events');
    const rs = await w.drain(QUIET_MS);
    const shape = (id: number) =>
      rs.filter((r) => Number(r.watch_id) === id).map((r) => ({ events: r.events.length, firstRev: Number(r.events[0]?.kv.mod_revision), lastRev: Number(r.events[r.events.length - 1]?.kv.mod_revision), header: rev(r) }));
    return { first, prefix: shape(0), singleKey: shape(1) };
  });

  scenario(
    'two catch-up watchers created together, start revisions more than 1000 apart: each gets only events from its start',
    async (s) => {
      const first = p13First;
      const w = open(s);
      w.create({ key: 'p13/', range_end: 'p130', start_revision: first, watch_id: 1 });
      w.create({ key: 'p13/', range_end: 'p130', start_revision: first + 1050, watch_id: 2 });
      w.create({ key: 'p13/k5', start_revision: first + 1080, watch_id: 3 });
      await w.take(3);
      const count = (all: RawWatchResponse[], id: number) => all.filter((r) => Number(r.watch_id) === id).reduce((n, r) => n + r.events.length, 0);
      await w.waitFor((all) => count(all, 1) >= 1100, 15_000, 'all 1100 events of watcher 1');
      const rs = await w.drain(QUIET_MS);
      const shape = (id: number) =>
        rs
          .filter((r) => Number(r.watch_id) === id)
          .map((r) => ({ events: r.events.length, firstRev: Number(r.events[0]?.kv.mod_revision), lastRev: Number(r.events[r.events.length - 1]?.kv.mod_revision) }));
      return { startRevisions: [first, first + 1050, first + 1080], from1050: shape(2), keyFrom1080: shape(3) };
    },
    (etcd) => {
      expect(etcd.from1050).toEqual([{ events: 50, firstRev: etcd.startRevisions[1], lastRev: etcd.startRevisions[0] + 1099 }]);
      expect(etcd.keyFrom1080).toEqual([{ events: 2, firstRev: etcd.startRevisions[0] + 1085, lastRev: etcd.startRevisions[0] + 1095 }]);
    },
  );
});

// ---------------------------------------------------------------------------
describe('fragmentation (fragment = true, --max-request-bytes=1MiB)', () => {
  const big = (c: string, n = 300 * 1024) => Buffer.alloc(n, c);

  scenario(
    'large events of one revision: fragments with fragment=true except the last; reassembly gives every event',
    async (s) => {
      for (const [k, c] of [['a', 'A'], ['b', 'B'], ['c', 'C']]) await s.kv.put(`frag/${k}`, big(c));
      const w = open(s);
      w.create({ key: 'frag/', range_end: 'frag0', fragment: true, prev_kv: true, watch_id: 1 });
      w.create({ key: 'frag/', range_end: 'frag0', fragment: true, watch_id: 2 });
      w.create({ key: 'frag/', range_end: 'frag0', prev_kv: true, watch_id: 3 });
      await w.take(3);
      const t = await s.kv.txn([{ put: ['frag/a', big('a')] }, { put: ['frag/b', big('b')] }, { put: ['frag/c', big('c')] }]);
      const d = await s.kv.delete('frag/', 'frag0');
      // a watcher catching up from history over both revisions
      w.create({ key: 'frag/', range_end: 'frag0', fragment: true, prev_kv: true, start_revision: rev(t), watch_id: 4 });
      const count = (all: RawWatchResponse[], id: number) => all.filter((r) => Number(r.watch_id) === id).reduce((n, r) => n + r.events.length, 0);
      await w.waitFor((all) => [1, 2, 3, 4].every((id) => count(all, id) >= 6), 15_000, 'all events of 4 watchers');
      const rs = await w.drain(QUIET_MS);
      const per = byWatchId(rs);
      // How the responses are cut (the wire shape), and what they reassemble to (fragments are joined
      // until one with fragment=false, as clientv3 does).
      const shape = Object.fromEntries(
        Object.entries(per).map(([id, list]) => [id, list.map((r) => `${r.created ? 'created' : `${(r.events as unknown[]).length} events`} rev=${header(r).revision}${r.fragment ? ' fragment' : ''}`)]),
      );
      const reassembled = Object.fromEntries(
        Object.entries(per).map(([id, list]) => {
          const out: unknown[][] = [];
          let cur: unknown[] = [];
          for (const r of list.filter((x) => !x.created)) {
            cur.push(...(r.events as unknown[]));
            if (!r.fragment) {
              out.push(cur);
              cur = [];
            }
          }
          if (cur.length > 0) out.push(cur);
          return [id, out];
        }),
      );
      return { txnRevision: rev(t), delRevision: rev(d), shape, reassembled };
    },
    (etcd, etcdTs) => {
      // On each member: fragments reassemble to one response per revision (a catch-up: one for both).
      for (const r of [etcd, etcdTs]) {
        const ev = (e: unknown) => {
          const x = e as { type: string; kv: { key: string; mod_revision: number } };
          return `${x.type} ${x.kv.key}@${x.kv.mod_revision}`;
        };
        const puts = ['frag/a', 'frag/b', 'frag/c'].map((k) => `PUT ${k}@${r.txnRevision}`);
        const dels = ['frag/a', 'frag/b', 'frag/c'].map((k) => `DELETE ${k}@${r.delRevision}`);
        for (const id of ['1', '2', '3']) expect({ id, got: r.reassembled[id].map((g) => g.map(ev)) }).toEqual({ id, got: [puts, dels] });
        expect({ id: '4', got: r.reassembled['4'].map((g) => g.map(ev)) }).toEqual({ id: '4', got: [[...puts, ...dels]] });
        expect(r.shape['3'].some((x) => x.endsWith('fragment'))).toBe(false);
      }
    },
  );
});

// ---------------------------------------------------------------------------
describe('compacted start revision (runs last: compacts the history)', () => {
  let compactRev = 0;
  test('compaction of both members', async () => {
    const [r] = await onBoth(async (s) => {
      await s.kv.put('p14/a', '1');
      const c = rev(await s.kv.put('p14/a', '2'));
      await s.kv.put('p14/a', '3');
      await s.kv.compact(c, true);
      return c;
    });
    compactRev = r;
  });

  scenario(
    'start revision below the compact revision: created, then canceled with compact_revision',
    async (s) => {
      const w = open(s);
      w.create({ key: 'p14/a', start_revision: compactRev - 1, watch_id: 10 });
      return canon(await w.take(2)).concat(canon(await w.drain(QUIET_MS)));
    },
    (etcd) => {
      expect(etcd[0]).toMatchObject({ watch_id: 10, created: true, canceled: false });
      expect(etcd[1]).toMatchObject({ watch_id: 10, created: false, canceled: true, compact_revision: compactRev, events: [] });
    },
  );

  scenario('start revision = the compact revision itself', async (s) => {
    const w = open(s);
    w.create({ key: 'p14/a', start_revision: compactRev, watch_id: 11 });
    return canon(await w.take(2)).concat(canon(await w.drain(QUIET_MS)));
  });

  scenario('cancel request for a watcher the server canceled for compaction', async (s) => {
    const w = open(s);
    w.create({ key: 'p14/a', start_revision: 1, watch_id: 12 });
    await w.take(2);
    w.cancel(12);
    return canon(await w.drain(QUIET_MS));
  });

  scenario('reusing the id of a watcher the server canceled for compaction', async (s) => {
    const w = open(s);
    w.create({ key: 'p14/a', start_revision: 1, watch_id: 13 });
    await w.take(2);
    w.create({ key: 'p14/a', watch_id: 13 });
    const again = canon(await w.take(1));
    await s.kv.put('p14/a', '4');
    return { again, after: canon(await w.drain(QUIET_MS)) };
  });
});
