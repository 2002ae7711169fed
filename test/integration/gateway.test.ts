// The JSON gateway (POST /v3/...), compared with reference etcd 3.6's grpc-gateway: the same scripted
// session runs against both; every answer's HTTP status and JSON body (ids, tokens and sizes replaced by
// placeholders) must be equal. Streams (watch, keepalive, observe) are compared line by line.
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { NodeHandle, startNode } from '../helpers';

let ts: NodeHandle | undefined;
let ref: NodeHandle | undefined;

beforeAll(async () => {
  const started = await Promise.allSettled([startNode({ kind: 'etcd-ts', name: 'gw' }), startNode({ kind: 'etcd', name: 'gw' })]);
  [ts, ref] = started.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
});

afterAll(async () => {
  await Promise.all([ts, ref].map((n) => n?.destroy()));
});

const b64 = (s: string) => Buffer.from(s).toString('base64');

interface Reply {
  status: number;
  text: string;
  headers: http.IncomingHttpHeaders;
}

/** One POST with a whole body; resolves with status and body. */
function post(base: string, path: string, body: string | Buffer, headers: Record<string, string> = {}, method = 'POST'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(base + path, { method, agent: false, headers, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`POST ${path} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * A streaming POST: the body is sent (and kept open unless `endBody`), lines are collected; resolves when
 * `enough(lines)` holds, the response ends, or after timeoutMs; then the request is dropped.
 */
interface Stream {
  lines: string[];
  status: number;
  /** Resolves once `enough` holds for the lines so far (or the stream ends, or the time is up). */
  wait(enough: (lines: string[]) => boolean, timeoutMs?: number): Promise<string[]>;
  close(): void;
}

function openStream(base: string, path: string, body: string, headers: Record<string, string> = {}, endBody = true): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req = http.request(base + path, { method: 'POST', agent: false, headers });
    req.on('error', (err) => {
      if (!closed) reject(err);
    });
    let closed = false;
    req.on('response', (res) => {
      let partial = '';
      const waiters: (() => void)[] = [];
      const s: Stream = {
        lines: [],
        status: res.statusCode ?? 0,
        wait(enough, timeoutMs = 8000) {
          return new Promise((done) => {
            const deadline = setTimeout(() => done(s.lines), timeoutMs);
            const check = () => {
              if (enough(s.lines) || ended) {
                clearTimeout(deadline);
                done(s.lines);
                return true;
              }
              return false;
            };
            if (!check()) waiters.push(() => void check());
          });
        },
        close() {
          closed = true;
          req.destroy();
        },
      };
      let ended = false;
      const wake = () => waiters.splice(0).forEach((w) => w());
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        partial += text;
        const parts = partial.split('\n');
        partial = parts.pop() ?? '';
        s.lines.push(...parts.filter((p) => p.trim() !== ''));
        wake();
      });
      res.on('end', () => {
        ended = true;
        if (partial.trim() !== '') s.lines.push(partial);
        wake();
      });
      res.on('error', () => {
        ended = true;
        wake();
      });
      resolve(s);
    });
    req.write(body);
    if (endBody) req.end();
    else req.flushHeaders();
  });
}

/** Replaces what differs between two servers by nature (ids, tokens, sizes, hashes, ports) with placeholders. */
class Normalizer {
  private readonly ids = new Map<string, string>();

  private id(v: string): string {
    if (v === '0') return v;
    let p = this.ids.get(v);
    if (!p) {
      p = `<id${this.ids.size + 1}>`;
      this.ids.set(v, p);
    }
    return p;
  }

  value(v: unknown, key = ''): unknown {
    // members are listed by id, and an added member's id is new on each server: order them by what they hold
    if (key === 'members' && Array.isArray(v)) return v.map((x) => this.value(x, key)).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
    if (Array.isArray(v)) return v.map((x) => this.value(x, key));
    if (key === 'hash') return '<hash>';
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = this.value(x, k);
      return out;
    }
    if (typeof v !== 'string') return v;
    if (['cluster_id', 'member_id', 'ID', 'leader', 'lease', 'memberID', 'targetID'].includes(key)) return this.id(v);
    if (['dbSize', 'dbSizeInUse', 'raftIndex', 'raftAppliedIndex', 'hash', 'token', 'blob'].includes(key)) return `<${key}>`;
    if (key === 'peerURLs' || key === 'clientURLs') return v.replace(/:\d+$/, ':<port>');
    // Go's protobuf messages put a no-break space after "proto:" in some builds (so nobody matches on them)
    if (key === 'message' || key === 'cancel_reason') return v.replace(/\(\d+ vs\. \d+\)/, '(<n> vs. <n>)').replace(/^proto:\u00a0/, 'proto: ');
    // an election or lock key ends with the lease id in hex
    if (key === 'key') {
      const text = Buffer.from(v, 'base64').toString('latin1');
      const m = /^(.*\/)([0-9a-f]{1,16})$/.exec(text);
      if (m) return `${m[1]}${this.id(BigInt('0x' + m[2]).toString())}`;
    }
    return v;
  }

  line(label: string, r: { status: number; text: string }): string {
    let body: unknown;
    try {
      body = this.value(JSON.parse(r.text));
    } catch {
      body = r.text;
    }
    return `${label} → ${r.status} ${JSON.stringify(body)}`;
  }

  streamLines(label: string, lines: string[]): string[] {
    return lines.map((l, i) => this.line(`${label} [${i}]`, { status: 0, text: l }));
  }
}

/** Case label → body; sent in this order to both servers (each one's answers make its transcript). */
const BAD_INPUT: [string, string, string][] = [
  ['truncated JSON', '/v3/kv/range', '{"key":"Zm9v"'],
  ['bytes given a number', '/v3/kv/range', '{"key":1}'],
  ['bytes not base64', '/v3/kv/range', '{"key":"!!"}'],
  ['int64 not a number', '/v3/kv/range', '{"key":"Zm9v","revision":"abc"}'],
  ['int64 with a fraction', '/v3/kv/range', '{"key":"Zm9v","limit":1.5}'],
  ['int64 with spaces', '/v3/kv/range', '{"key":"Zm9v","limit":" 5"}'],
  ['int64 out of range', '/v3/kv/range', '{"key":"Zm9v","limit":99999999999999999999}'],
  ['uint64 negative', '/v3/cluster/member/remove', '{"ID":"-5"}'],
  ['bool as a string', '/v3/kv/range', '{"key":"Zm9v","serializable":"true"}'],
  ['top-level array', '/v3/kv/range', '[1]'],
  ['top-level string', '/v3/kv/range', '"x"'],
  ['top-level null', '/v3/kv/range', 'null'],
  ['missing value', '/v3/kv/range', '{"key":}'],
  ['trailing comma', '/v3/kv/range', '{"key":"YQ==" , "limit": 2 ,}'],
  ['bad literal', '/v3/kv/range', '{"key":"YQ==", "limit": tru}'],
  ['unquoted key', '/v3/kv/range', '{key:1}'],
  ['bad escape', '/v3/kv/range', '{"key":"a\\qb"}'],
  ['duplicate field', '/v3/kv/range', '{"key":"YQ==","key":"YQ=="}'],
  ['duplicate field by its other name', '/v3/kv/range', '{"key":"YQ==","rangeEnd":"YQ==","range_end":"YQ=="}'],
  ['repeated given an object', '/v3/kv/txn', '{"compare":{}}'],
  ['repeated holding a number', '/v3/kv/txn', '{"compare":[1]}'],
  ['repeated holding null', '/v3/kv/txn', '{"compare":null,"success":[null]}'],
  ['repeated string given a string', '/v3/cluster/member/add', '{"peerURLs":"x"}'],
  ['two members of a oneof', '/v3/kv/txn', '{"success":[{"request_put":{"key":"YQ=="},"request_range":{"key":"YQ=="}}]}'],
  ['an invalid sort order number', '/v3/kv/range', '{"key":"Zm9v","sort_order":7}'],
  ['no key', '/v3/kv/put', '{}'],
  ['empty body', '/v3/kv/range', ''],
  ['blank body', '/v3/kv/range', '   '],
  ['an unknown path', '/v3/kv/nothing', '{}'],
];

async function scenario(node: NodeHandle): Promise<string[]> {
  const base = node.clientUrl;
  const n = new Normalizer();
  const out: string[] = [];
  const call = async (label: string, path: string, body: unknown, headers: Record<string, string> = {}) => {
    const r = await post(base, path, typeof body === 'string' ? body : JSON.stringify(body), headers);
    out.push(n.line(label, r));
    return JSON.parse(r.text) as Record<string, unknown>;
  };

  // --- KV
  await call('put foo', '/v3/kv/put', { key: b64('foo'), value: b64('bar') });
  await call('put foo with prev_kv', '/v3/kv/put', { key: b64('foo'), value: b64('baz'), prev_kv: true });
  await call('put foo2 (json names)', '/v3/kv/put', { key: b64('foo2'), value: b64('x'), prevKv: true });
  await call('range foo', '/v3/kv/range', { key: b64('foo') });
  await call('range prefix, sorted by key descending (enum names)', '/v3/kv/range', { key: b64('foo'), range_end: b64('fop'), sort_order: 'DESCEND', sort_target: 'KEY' });
  await call('range limit 1 keys only', '/v3/kv/range', { key: b64('foo'), range_end: b64('fop'), limit: 1, keys_only: true });
  await call('range count only (json names)', '/v3/kv/range', { key: b64('foo'), rangeEnd: b64('fop'), countOnly: true });
  await call('range serializable at revision 2', '/v3/kv/range', { key: b64('foo'), serializable: true, revision: '2' });
  await call('range an unknown enum name and an unknown field (dropped)', '/v3/kv/range', { key: b64('foo'), sort_order: 'NOPE', bogus: 1 });
  await call('range with 64-bit integers as exponent numbers', '/v3/kv/range', { key: b64('foo'), limit: 1e2 });
  await call('range unpadded and url-safe base64', '/v3/kv/range', '{"key":"Zm9v","range_end":"Zm9w"}');
  await call('txn value compare, put / range', '/v3/kv/txn', {
    compare: [{ key: b64('foo'), target: 'VALUE', value: b64('baz') }],
    success: [{ request_put: { key: b64('a'), value: b64('1') } }],
    failure: [{ request_range: { key: b64('foo') } }],
  });
  await call('txn create_revision 0 (Patroni), nested txn in failure', '/v3/kv/txn', {
    compare: [{ key: b64('a'), target: 'CREATE', create_revision: '0' }],
    success: [{ requestPut: { key: b64('a'), value: b64('2') } }],
    failure: [{ request_txn: { success: [{ request_range: { key: b64('a') } }, { request_delete_range: { key: b64('nope') } }] } }],
  });
  await call('txn mod_revision LESS, numeric enums', '/v3/kv/txn', {
    compare: [{ key: b64('foo'), target: 2, result: 2, mod_revision: '100' }],
    success: [{ request_range: { key: b64('foo'), count_only: true } }],
  });
  await call('txn with too many operations', '/v3/kv/txn', { success: Array.from({ length: 129 }, (_, i) => ({ request_put: { key: b64(`k${i}`) } })) });
  await call('txn with a duplicate key', '/v3/kv/txn', { success: [{ request_put: { key: b64('d') } }, { request_put: { key: b64('d') } }] });
  await call('deleterange with prev_kv', '/v3/kv/deleterange', { key: b64('a'), prev_kv: true });
  await call('deleterange of a missing key', '/v3/kv/deleterange', { key: b64('nope') });
  await call('range at a future revision', '/v3/kv/range', { key: b64('foo'), revision: '999' });
  await call('compaction', '/v3/kv/compaction', { revision: '3' });
  await call('range at a compacted revision', '/v3/kv/range', { key: b64('foo'), revision: '2' });
  await call('compaction again at the same revision', '/v3/kv/compaction', { revision: '3', physical: true });
  for (const [label, path, body] of BAD_INPUT) await call(label, path, body);
  out.push(n.line('GET of a POST endpoint', await post(base, '/v3/kv/range', '', {}, 'GET')));

  // --- leases
  await call('lease grant with an id', '/v3/lease/grant', { TTL: 60, ID: '100' });
  await call('lease grant of an existing id', '/v3/lease/grant', { TTL: 60, ID: '100' });
  await call('lease grant with a too large TTL', '/v3/lease/grant', { TTL: '9000000001' });
  await call('put with the lease', '/v3/kv/put', { key: b64('leased'), value: b64('v'), lease: '100' });
  await call('put with an unknown lease', '/v3/kv/put', { key: b64('leased'), value: b64('v'), lease: '999' });
  const ttl = await post(base, '/v3/lease/timetolive', JSON.stringify({ ID: '100', keys: true }));
  const ttlBody = JSON.parse(ttl.text) as { TTL: string; grantedTTL: string };
  expect(Number(ttlBody.TTL)).toBeGreaterThan(50);
  out.push(n.line('lease timetolive', { status: ttl.status, text: JSON.stringify({ ...ttlBody, TTL: '<ttl>' }) }));
  const ttl2 = await post(base, '/v3/kv/lease/timetolive', JSON.stringify({ ID: 100 }));
  out.push(n.line('lease timetolive (kv alias, numeric id)', { status: ttl2.status, text: JSON.stringify({ ...JSON.parse(ttl2.text), TTL: '<ttl>' }) }));
  await call('lease timetolive of an unknown lease', '/v3/lease/timetolive', { ID: '999' });
  await call('lease leases', '/v3/lease/leases', {});
  await call('lease leases (kv alias)', '/v3/kv/lease/leases', {});
  for (const [label, id] of [
    ['keepalive', '100'],
    ['keepalive of an unknown lease', '999'],
  ]) {
    const s = await openStream(base, '/v3/lease/keepalive', JSON.stringify({ ID: id }));
    out.push(...n.streamLines(`${label} (status ${s.status})`, await s.wait(() => false)));
    s.close();
  }
  const ka = await openStream(base, '/v3/lease/keepalive', `${JSON.stringify({ ID: '100' })}\n${JSON.stringify({ ID: '100' })}`);
  out.push(...n.streamLines('keepalive with two requests in one body', await ka.wait(() => false)));
  await call('lease revoke', '/v3/lease/revoke', { ID: '100' });
  await call('lease revoke again (kv alias)', '/v3/kv/lease/revoke', { ID: '100' });
  await call('the leased key is gone', '/v3/kv/range', { key: b64('leased') });

  // --- watch
  const rev = Number(((await call('range for the watch revision', '/v3/kv/range', { key: b64('w') })).header as { revision: string }).revision);
  const w = await openStream(base, '/v3/watch', JSON.stringify({ create_request: { key: b64('w'), start_revision: String(rev + 1), prev_kv: true } }));
  await w.wait((l) => l.length >= 1);
  await call('put w 1', '/v3/kv/put', { key: b64('w'), value: b64('1') });
  await call('put w 2', '/v3/kv/put', { key: b64('w'), value: b64('2') });
  await call('delete w', '/v3/kv/deleterange', { key: b64('w') });
  out.push(...n.streamLines('watch w with prev_kv', await w.wait((l) => l.length >= 4)));
  w.close();
  const w2 = await openStream(
    base,
    '/v3/watch',
    [
      { create_request: { key: b64('w'), range_end: b64('x'), start_revision: String(rev + 1), filters: ['NOPUT'] } },
      { create_request: { key: b64('w'), watch_id: '7', start_revision: String(rev + 1) } },
    ]
      .map((m) => JSON.stringify(m))
      .join(' '),
  );
  // watchers created in one body: their creations and their history (order across watchers is not fixed)
  out.push(...n.streamLines('two watchers in one body', (await w2.wait((l) => l.length >= 4)).sort()));
  w2.close();
  const w3 = await openStream(base, '/v3/watch', JSON.stringify({ create_request: { key: b64('foo'), start_revision: '2' } }));
  out.push(...n.streamLines('watch from a compacted revision', await w3.wait((l) => l.length >= 2)));
  w3.close();
  const w4 = await openStream(base, '/v3/watch', JSON.stringify({ create_request: { key: b64('w'), start_revision: '-1' } }));
  out.push(...n.streamLines('watch from a negative revision', await w4.wait((l) => l.length >= 1)));
  w4.close();

  // --- cluster and maintenance
  await call('member list', '/v3/cluster/member/list', {});
  const added = await call('member add (learner)', '/v3/cluster/member/add', { peerURLs: ['http://127.0.0.1:1'], isLearner: true });
  await call("member add of an existing member's peer URL", '/v3/cluster/member/add', { peerURLs: [node.peerUrl] });
  await call('member add of an invalid URL', '/v3/cluster/member/add', { peerURLs: ['not a url'] });
  const learnerId = (added.member as { ID: string }).ID;
  await call('member promote of a learner not in sync', '/v3/cluster/member/promote', { ID: learnerId });
  await call('member update of an unknown member', '/v3/cluster/member/update', { ID: '12345', peerURLs: ['http://127.0.0.1:2'] });
  await call('member remove of the learner', '/v3/cluster/member/remove', { ID: learnerId });
  await call('member remove of an unknown member', '/v3/cluster/member/remove', { ID: '12345' });
  await call('member list, linearizable', '/v3/cluster/member/list', { linearizable: true });
  await call('status', '/v3/maintenance/status', {});
  await call('alarm get', '/v3/maintenance/alarm', { action: 'GET' });
  await call('hashkv', '/v3/maintenance/hashkv', { revision: '0' });
  await call('defragment', '/v3/maintenance/defragment', {});
  await call('transfer-leadership to an unknown member', '/v3/maintenance/transfer-leadership', { targetID: '12345' });

  // --- election and lock
  await call('lease for the election', '/v3/lease/grant', { TTL: 60, ID: '200' });
  const camp = await call('campaign', '/v3/election/campaign', { name: b64('e'), lease: '200', value: b64('v1') });
  await call('leader', '/v3/election/leader', { name: b64('e') });
  const obs = await openStream(base, '/v3/election/observe', JSON.stringify({ name: b64('e') }));
  await obs.wait((l) => l.length >= 1);
  await call('proclaim', '/v3/election/proclaim', { leader: camp.leader, value: b64('v2') });
  out.push(...n.streamLines('observe', await obs.wait((l) => l.length >= 2)));
  obs.close();
  await call('resign', '/v3/election/resign', { leader: camp.leader });
  await call('leader of an empty election', '/v3/election/leader', { name: b64('e') });
  const lock = await call('lock', '/v3/lock/lock', { name: b64('l'), lease: '200' });
  await call('unlock', '/v3/lock/unlock', { key: lock.key });
  await call('lock with an unknown lease', '/v3/lock/lock', { name: b64('l'), lease: '999' });

  // --- request size
  await call('put of a value over --max-request-bytes', '/v3/kv/put', { key: b64('big'), value: Buffer.alloc(1_600_000, 'x').toString('base64') });
  await call('put of a value over the gRPC message limit', '/v3/kv/put', { key: b64('big'), value: Buffer.alloc(2_300_000, 'x').toString('base64') });
  await call('the big key was not written', '/v3/kv/range', { key: b64('big'), count_only: true });

  // --- auth (last: it changes what every request needs)
  await call('user add root', '/v3/auth/user/add', { name: 'root', password: 'rootpw' });
  await call('user grant root root', '/v3/auth/user/grant', { user: 'root', role: 'root' });
  await call('role add patroni-role', '/v3/auth/role/add', { name: 'patroni-role' });
  await call('role grant readwrite /service/', '/v3/auth/role/grant', { name: 'patroni-role', perm: { permType: 'READWRITE', key: b64('/service/'), range_end: b64('/service0') } });
  await call('user add patroni', '/v3/auth/user/add', { name: 'patroni', password: 'pw', options: { no_password: false } });
  await call('user grant patroni', '/v3/auth/user/grant', { user: 'patroni', role: 'patroni-role' });
  await call('auth enable', '/v3/auth/enable', {});
  await call('range without a token', '/v3/kv/range', { key: b64('foo') });
  await call('authenticate with a wrong password', '/v3/auth/authenticate', { name: 'root', password: 'bad' });
  const root = (await call('authenticate root', '/v3/auth/authenticate', { name: 'root', password: 'rootpw' })).token as string;
  const patroni = (await call('authenticate patroni', '/v3/auth/authenticate', { name: 'patroni', password: 'pw' })).token as string;
  const asRoot = { Authorization: root };
  await call('range as root', '/v3/kv/range', { key: b64('foo') }, asRoot);
  await call('range with a Bearer token', '/v3/kv/range', { key: b64('foo') }, { Authorization: `Bearer ${root}` });
  const bad = await post(base, '/v3/kv/range', JSON.stringify({ key: b64('foo') }), { Authorization: 'junk' });
  out.push(n.line(`range with an invalid token (WWW-Authenticate: ${String(bad.headers['www-authenticate'])})`, bad));
  await call('auth status', '/v3/auth/status', {}, asRoot);
  await call('user list', '/v3/auth/user/list', {}, asRoot);
  await call('user get patroni', '/v3/auth/user/get', { name: 'patroni' }, asRoot);
  await call('role list', '/v3/auth/role/list', {}, asRoot);
  await call('role get patroni-role', '/v3/auth/role/get', { role: 'patroni-role' }, asRoot);
  await call('role get root', '/v3/auth/role/get', { role: 'root' }, asRoot);
  await call('role get of an unknown role', '/v3/auth/role/get', { role: 'nope' }, asRoot);
  await call('patroni puts under /service/', '/v3/kv/put', { key: b64('/service/pg/leader'), value: b64('n1') }, { Authorization: patroni });
  await call('patroni puts elsewhere', '/v3/kv/put', { key: b64('/other'), value: b64('n1') }, { Authorization: patroni });
  await call('patroni lists users', '/v3/auth/user/list', {}, { Authorization: patroni });
  const ws = await openStream(base, '/v3/watch', JSON.stringify({ create_request: { key: b64('foo') } }));
  out.push(...n.streamLines('watch without a token', await ws.wait((l) => l.length >= 1)));
  ws.close();
  await call('user changepw', '/v3/auth/user/changepw', { name: 'patroni', password: 'pw2' }, asRoot);
  await call('role revoke', '/v3/auth/role/revoke', { role: 'patroni-role', key: b64('/service/'), range_end: b64('/service0') }, asRoot);
  await call('user revoke', '/v3/auth/user/revoke', { name: 'patroni', role: 'patroni-role' }, asRoot);
  await call('role delete', '/v3/auth/role/delete', { role: 'patroni-role' }, asRoot);
  await call('user delete', '/v3/auth/user/delete', { name: 'patroni' }, asRoot);
  await call('auth disable', '/v3/auth/disable', {}, asRoot);
  await call('range after auth disable', '/v3/kv/range', { key: b64('foo') });
  return out;
}

test('a scripted gateway session answers as etcd 3.6 does, request by request', async () => {
  const [ours, theirs] = await Promise.all([scenario(ts as NodeHandle), scenario(ref as NodeHandle)]);
  expect(ours).toEqual(theirs);
  // the transcript is long enough to mean something
  expect(ours.length).toBeGreaterThan(120);
}, 120_000);

test('a watch over the gateway goes on after its request body ended, until the client leaves', async () => {
  const base = (ts as NodeHandle).clientUrl;
  const s = await openStream(base, '/v3/watch', JSON.stringify({ create_request: { key: b64('late') } }));
  await s.wait((l) => l.length >= 1);
  await new Promise((r) => setTimeout(r, 1500));
  await post(base, '/v3/kv/put', JSON.stringify({ key: b64('late'), value: b64('1') }));
  const lines = await s.wait((l) => l.length >= 2);
  s.close();
  expect(lines).toHaveLength(2);
  expect(JSON.parse(lines[1]).result.events[0].kv.value).toBe(b64('1'));
});

test('a bad message in a watch body ends the stream with an error object (etcd goes silent)', async () => {
  const base = (ts as NodeHandle).clientUrl;
  const s = await openStream(base, '/v3/watch', `${JSON.stringify({ create_request: { key: b64('x') } })} {"create_request":{"key":1}}`);
  const lines = await s.wait(() => false, 3000);
  expect(lines).toHaveLength(2);
  expect(JSON.parse(lines[0]).result.created).toBe(true);
  expect(JSON.parse(lines[1])).toEqual({ error: { code: 3, message: 'proto: (line 1:26): invalid value for bytes field key: 1' } });
});

test('a watch body can arrive in pieces: requests split across writes are put together', async () => {
  const base = (ts as NodeHandle).clientUrl;
  const req = http.request(base + '/v3/watch', { method: 'POST', agent: false });
  const lines: string[] = [];
  const got = new Promise<void>((resolve) => {
    req.on('response', (res) => {
      res.setEncoding('utf8');
      res.on('data', (t: string) => {
        lines.push(...t.split('\n').filter((x) => x !== ''));
        if (lines.length >= 2) resolve();
      });
    });
  });
  const text = JSON.stringify({ create_request: { key: b64('p1') } }) + JSON.stringify({ create_request: { key: b64('p2') } });
  for (let i = 0; i < text.length; i += 7) {
    req.write(text.slice(i, i + 7));
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.race([got, new Promise((r) => setTimeout(r, 5000))]);
  req.destroy();
  expect(lines.map((l) => JSON.parse(l).result.watch_id ?? '0')).toEqual(['0', '1']);
});

test('snapshot over the gateway: base64 blobs counting down, the last 32 bytes the SHA-256 of the rest', async () => {
  const base = (ts as NodeHandle).clientUrl;
  const s = await openStream(base, '/v3/maintenance/snapshot', '{}');
  const lines = await s.wait(() => false, 20_000);
  s.close();
  expect(s.status).toBe(200);
  const parts = lines.map((l) => JSON.parse(l).result as { blob: string; remaining_bytes?: string });
  expect(parts.length).toBeGreaterThan(0);
  const data = Buffer.concat(parts.map((p) => Buffer.from(p.blob, 'base64')));
  expect(parts[parts.length - 1].remaining_bytes).toBeUndefined();
  const body = data.subarray(0, data.length - 32);
  expect(crypto.createHash('sha256').update(body).digest().equals(data.subarray(data.length - 32))).toBe(true);
});
