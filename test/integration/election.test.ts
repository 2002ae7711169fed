// Elections on an etcd-ts member: `etcdctl elect` (etcdctl 3.6 runs clientv3's election recipe over KV,
// watch and leases), the v3electionpb.Election gRPC service (etcd-ts runs the same recipe on the
// server), both on the same election names, and the `etcd3` npm client's election() (its own recipe).
//
// Scenarios marked "same as etcd" run against a reference etcd too; their transcripts must match once
// cluster/member ids, lease ids and the starting revision are replaced by labels.
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { apiPackageDefinition } from '../../src/util/proto';
import { NodeHandle, startNode } from '../helpers';
import { RAW_CHANNEL_OPTIONS } from '../helpers/compare';
import { Ctl, sameTranscript, sleep, stopAllCtls, until } from '../helpers/ctl';

jest.setTimeout(90_000);

// ---------------------------------------------------------------------------
// Raw gRPC clients for the Election service and the KV/Lease calls around it

type Reply = { ok: true; value: Record<string, unknown> } | { ok: false; code: number; details: string };
type Unary = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, v: Record<string, unknown>) => void) => grpc.ClientUnaryCall;
type ServerStream = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<Record<string, unknown>>;

interface LeaderKeyOut {
  name: Buffer;
  key: Buffer;
  rev: string;
  lease: string;
}

/** An Observe stream; its responses queue up in arrival order. */
class Observer {
  readonly responses: Record<string, unknown>[] = [];
  ended: string | undefined;

  constructor(readonly stream: grpc.ClientReadableStream<Record<string, unknown>>) {
    stream.on('data', (r: Record<string, unknown>) => this.responses.push(r));
    stream.on('error', (e: grpc.ServiceError) => (this.ended = `error ${e.code}`));
    stream.on('end', () => (this.ended ??= 'end'));
  }

  async waitCount(n: number, what: string): Promise<void> {
    await until(() => this.responses.length >= n || this.ended !== undefined, what);
    if (this.responses.length < n) throw new Error(`observe stream ended (${this.ended}) before ${what}`);
  }

  /** The value of every leader response so far. */
  values(): string[] {
    return this.responses.map((r) => (r.kv as { value: Buffer }).value.toString());
  }

  cancel(): void {
    this.stream.cancel();
  }
}

class Rpc {
  private readonly clients: grpc.Client[] = [];
  readonly election: grpc.Client;
  readonly kv: grpc.Client;
  readonly lease: grpc.Client;

  constructor(endpoint: string) {
    const pkg = grpc.loadPackageDefinition(apiPackageDefinition()) as unknown as Record<string, Record<string, grpc.ServiceClientConstructor>>;
    const make = (ctor: grpc.ServiceClientConstructor) => {
      const c = new ctor(endpoint, grpc.credentials.createInsecure(), RAW_CHANNEL_OPTIONS);
      this.clients.push(c);
      return c;
    };
    this.election = make(pkg.v3electionpb.Election);
    this.kv = make(pkg.etcdserverpb.KV);
    this.lease = make(pkg.etcdserverpb.Lease);
  }

  /** A unary call that can be cancelled; errors become { ok: false, code, details }. */
  start(client: grpc.Client, method: string, req: object): { reply: Promise<Reply>; cancel: () => void } {
    let call: grpc.ClientUnaryCall | undefined;
    const reply = new Promise<Reply>((resolve) => {
      const fn = (client as unknown as Record<string, Unary>)[method].bind(client);
      call = fn(req, new grpc.Metadata(), {}, (err, value) => resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: true, value }));
    });
    return { reply, cancel: () => call?.cancel() };
  }

  call(client: grpc.Client, method: string, req: object): Promise<Reply> {
    return this.start(client, method, req).reply;
  }

  async must(client: grpc.Client, method: string, req: object): Promise<Record<string, unknown>> {
    const r = await this.call(client, method, req);
    if (!r.ok) throw new Error(`${method} failed: ${r.code} ${r.details}`);
    return r.value;
  }

  observe(name: string): Observer {
    const fn = (this.election as unknown as Record<string, ServerStream>).Observe.bind(this.election);
    return new Observer(fn({ name: Buffer.from(name) }, new grpc.Metadata(), {}));
  }

  async grant(ttl: number): Promise<string> {
    return String((await this.must(this.lease, 'LeaseGrant', { TTL: ttl, ID: 0 })).ID);
  }

  async keys(prefix: string): Promise<string[]> {
    const end = Buffer.from(prefix);
    end[end.length - 1]++;
    const r = await this.must(this.kv, 'Range', { key: Buffer.from(prefix), range_end: end, sort_target: 2, sort_order: 1 });
    return (r.kvs as { key: Buffer }[]).map((kv) => kv.key.toString());
  }

  /** The LeaderKey of the candidate whose key is `key` (as a client that lost it would rebuild it). */
  async leaderKey(name: string, key: string): Promise<LeaderKeyOut> {
    const r = await this.must(this.kv, 'Range', { key: Buffer.from(key) });
    const kv = (r.kvs as { create_revision: string; lease: string }[])[0];
    return { name: Buffer.from(name), key: Buffer.from(key), rev: kv.create_revision, lease: kv.lease };
  }

  async revision(): Promise<number> {
    const r = await this.must(this.kv, 'Range', { key: Buffer.from('\0') });
    return Number((r.header as { revision: string }).revision);
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}

function leaderOf(r: Reply): LeaderKeyOut {
  if (!r.ok) throw new Error(`expected a campaign to win, got ${r.code} ${r.details}`);
  return r.value.leader as LeaderKeyOut;
}

afterEach(stopAllCtls);

// ---------------------------------------------------------------------------
// Transcripts compared with the reference


const asText = (v: unknown): string =>
  JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && (x as { type?: string }).type === 'Buffer' ? Buffer.from((x as { data: number[] }).data).toString() : x));

/** A reply as one transcript line (bytes as text; client-made cancel errors by code only). */
function show(label: string, r: Reply): string {
  const body = r.ok ? r.value : r.code === grpc.status.CANCELLED ? { code: r.code } : { code: r.code, details: r.details };
  return `${label} ${asText(body)}`;
}

let ts: NodeHandle | undefined;
let ref: NodeHandle | undefined;

beforeAll(async () => {
  const started = await Promise.allSettled([startNode({ kind: 'etcd-ts', name: 'elect' }), startNode({ kind: 'etcd', name: 'elect' })]);
  [ts, ref] = started.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
});

afterAll(async () => {
  await Promise.all([ts, ref].map((n) => n?.destroy()));
});

const tsNode = () => ts as NodeHandle;

/** Runs a scenario on etcd-ts and on the reference etcd; their normalised transcripts must be equal. */
const sameAsEtcd = (scenario: (node: NodeHandle) => Promise<{ lines: string[]; baseRev: number }>) => sameTranscript(tsNode(), ref as NodeHandle, scenario);

const header = (rev: number) => `{"cluster_id":"<cluster>","member_id":"<member>","revision":"base+${rev}","raft_term":"2"}`;

// ---------------------------------------------------------------------------
// etcdctl elect

describe('etcdctl elect', () => {
  test('leader, a waiting candidate, an observer, proclaim and resign (same as etcd)', async () => {
    const lines = await sameAsEtcd(async (node) => {
      const rpc = new Rpc(node.endpoint);
      try {
        const baseRev = await rpc.revision();
        const observer = new Ctl(node.endpoint, ['elect', '-l', 'myelection']);
        await sleep(300); // no leader yet: the observer prints nothing
        const c1 = new Ctl(node.endpoint, ['elect', 'myelection', 'candidate1']);
        await c1.waitOutput((s) => s.includes('candidate1'), 'candidate1 to lead');
        await observer.waitOutput((s) => s.includes('candidate1'), 'the observer to see candidate1');
        const c2 = new Ctl(node.endpoint, ['elect', 'myelection', 'candidate2']);
        await until(async () => (await rpc.keys('myelection/')).length === 2, "candidate2's key");
        await sleep(300);
        const c2Waiting = `candidate2 while candidate1 leads: ${JSON.stringify(c2.stdout)}`;
        // Anyone holding the leader's key, name, create revision and lease can proclaim for it.
        const lk = await rpc.leaderKey('myelection', (await rpc.keys('myelection/'))[0]);
        const proclaimed = await rpc.call(rpc.election, 'Proclaim', { leader: lk, value: Buffer.from('proclaimed') });
        await observer.waitOutput((s) => s.includes('proclaimed'), 'the observer to see the proclamation');
        c1.term(); // resigns
        const c1Done = await c1.exited;
        await c2.waitOutput((s) => s.includes('candidate2'), 'candidate2 to lead');
        await observer.waitOutput((s) => s.includes('candidate2'), 'the observer to see candidate2');
        const leader = await rpc.call(rpc.election, 'Leader', { name: Buffer.from('myelection') });
        c2.term();
        const c2Done = await c2.exited;
        const none = await rpc.call(rpc.election, 'Leader', { name: Buffer.from('myelection') });
        await sleep(300); // an empty election: the observer prints nothing more
        observer.term();
        const obsDone = await observer.exited;
        return {
          baseRev,
          lines: [
            c2Waiting,
            show('proclaim', proclaimed),
            `candidate1: ${c1Done.code} ${c1Done.stdout}`,
            `candidate2: ${c2Done.code} ${c2Done.stdout}`,
            show('leader', leader),
            show('leader after both left', none),
            `observer: ${obsDone.code} ${obsDone.stdout}`,
          ],
        };
      } finally {
        rpc.close();
      }
    });
    expect(lines).toEqual([
      'candidate2 while candidate1 leads: ""',
      `proclaim {"header":${header(3)}}`,
      'candidate1: 0 myelection/<lease1>',
      'candidate1',
      '',
      'candidate2: 0 myelection/<lease2>',
      'candidate2',
      '',
      `leader {"header":${header(4)},"kv":{"key":"myelection/<lease2>","create_revision":"base+2","mod_revision":"base+2","version":"1","value":"candidate2","lease":"<lease2>"}}`,
      'leader after both left {"code":2,"details":"election: no leader"}',
      'observer: 0 myelection/<lease1>',
      'candidate1',
      'myelection/<lease1>',
      'proclaimed',
      'myelection/<lease2>',
      'candidate2',
      '',
    ]);
  });

  test('a leader whose lease expires (nobody keeps it alive) hands over to the waiting etcdctl; Observe sees both (same as etcd)', async () => {
    const tookMs: Record<string, number> = {};
    const lines = await sameAsEtcd(async (node) => {
      const rpc = new Rpc(node.endpoint);
      try {
        const baseRev = await rpc.revision();
        const lease = await rpc.grant(2);
        const won = await rpc.call(rpc.election, 'Campaign', { name: Buffer.from('failover'), lease, value: Buffer.from('short-lived') });
        const obs = rpc.observe('failover');
        await obs.waitCount(1, 'the first leader');
        const survivor = new Ctl(node.endpoint, ['elect', 'failover', 'survivor']);
        await until(async () => (await rpc.keys('failover/')).length === 2, "the survivor's key");
        const started = Date.now();
        await survivor.waitOutput((s) => s.includes('survivor'), 'the survivor to lead');
        tookMs[node.kind] = Date.now() - started;
        await obs.waitCount(2, 'the second leader');
        obs.cancel();
        survivor.term();
        const done = await survivor.exited;
        return { baseRev, lines: [show('campaign', won), ...obs.responses.map((r) => `observed ${asText(r)}`), `survivor: ${done.code} ${done.stdout}`] };
      } finally {
        rpc.close();
      }
    });
    expect(lines).toEqual([
      `campaign {"header":${header(1)},"leader":{"name":"failover","key":"failover/<lease1>","rev":"base+1","lease":"<lease1>"}}`,
      `observed {"header":${header(1)},"kv":{"key":"failover/<lease1>","create_revision":"base+1","mod_revision":"base+1","version":"1","value":"short-lived","lease":"<lease1>"}}`,
      `observed {"header":${header(3)},"kv":{"key":"failover/<lease2>","create_revision":"base+2","mod_revision":"base+2","version":"1","value":"survivor","lease":"<lease2>"}}`,
      'survivor: 0 failover/<lease2>',
      'survivor',
      '',
    ]);
    expect(tookMs['etcd-ts']).toBeLessThan(8000);
  });
});

// ---------------------------------------------------------------------------
// The v3electionpb.Election service

describe('v3electionpb.Election', () => {
  test('campaign, leader, proclaim, observe, resign, cancel and errors (same as etcd)', async () => {
    const lines = await sameAsEtcd(async (node) => {
      const rpc = new Rpc(node.endpoint);
      const out: string[] = [];
      const name = Buffer.from('api');
      try {
        const baseRev = await rpc.revision();
        out.push(show('leader of an empty election', await rpc.call(rpc.election, 'Leader', { name })));
        const obs = rpc.observe('api');
        await sleep(200);
        const [l1, l2, l3] = [await rpc.grant(30), await rpc.grant(30), await rpc.grant(30)];
        const c1 = await rpc.call(rpc.election, 'Campaign', { name, lease: l1, value: Buffer.from('v1') });
        out.push(show('campaign l1', c1));
        const lead1 = leaderOf(c1);
        await obs.waitCount(1, 'the first leader');
        out.push(show('leader', await rpc.call(rpc.election, 'Leader', { name })));
        out.push(show('proclaim v1b', await rpc.call(rpc.election, 'Proclaim', { leader: lead1, value: Buffer.from('v1b') })));
        await obs.waitCount(2, 'the proclamation');
        out.push(show('proclaim with a wrong rev', await rpc.call(rpc.election, 'Proclaim', { leader: { ...lead1, rev: '1' }, value: Buffer.from('x') })));
        // Two more candidates wait; the client gives up on the second, whose key then goes.
        const c2 = rpc.call(rpc.election, 'Campaign', { name, lease: l2, value: Buffer.from('v2') });
        await until(async () => (await rpc.keys('api/')).length === 2, "l2's key");
        const c3 = rpc.start(rpc.election, 'Campaign', { name, lease: l3, value: Buffer.from('v3') });
        await until(async () => (await rpc.keys('api/')).length === 3, "l3's key");
        c3.cancel();
        out.push(show('cancelled campaign', await c3.reply));
        await until(async () => (await rpc.keys('api/')).length === 2, "the cancelled campaign's key to go");
        // Campaigning again with the leader's lease and a new value: same key and rev, the value proclaimed.
        out.push(show('campaign l1 again with v1c', await rpc.call(rpc.election, 'Campaign', { name, lease: l1, value: Buffer.from('v1c') })));
        await obs.waitCount(3, 'v1c');
        out.push(show('resign with a wrong rev', await rpc.call(rpc.election, 'Resign', { leader: { ...lead1, rev: '1' } })));
        out.push(show('resign l1', await rpc.call(rpc.election, 'Resign', { leader: lead1 })));
        out.push(show('campaign l2 (was waiting)', await c2));
        await obs.waitCount(4, 'the second leader');
        out.push(show('proclaim by the resigned leader', await rpc.call(rpc.election, 'Proclaim', { leader: lead1, value: Buffer.from('y') })));
        out.push(show('proclaim without a leader key', await rpc.call(rpc.election, 'Proclaim', { value: Buffer.from('y') })));
        out.push(show('resign without a leader key', await rpc.call(rpc.election, 'Resign', {})));
        out.push(show('campaign with an unknown lease', await rpc.call(rpc.election, 'Campaign', { name, lease: '123456789', value: Buffer.from('z') })));
        // Lease 0: the service grants a 60-second lease nobody keeps alive.
        const c0 = await rpc.call(rpc.election, 'Campaign', { name: Buffer.from('api0'), lease: 0, value: Buffer.from('own') });
        out.push(show('campaign with lease 0', c0));
        const ttl = await rpc.must(rpc.lease, 'LeaseTimeToLive', { ID: leaderOf(c0).lease, keys: true });
        out.push(`its lease: grantedTTL=${String(ttl.grantedTTL)} keys=${(ttl.keys as Buffer[]).map((k) => k.toString()).join(',')}`);
        await rpc.must(rpc.lease, 'LeaseRevoke', { ID: leaderOf(c0).lease });
        // The leader's lease is revoked: no leader; the observer waits for the next candidate's key.
        await rpc.must(rpc.lease, 'LeaseRevoke', { ID: l2 });
        out.push(show('leader after the revoke', await rpc.call(rpc.election, 'Leader', { name })));
        await sleep(200);
        out.push(show('campaign l3', await rpc.call(rpc.election, 'Campaign', { name, lease: l3, value: Buffer.from('v3') })));
        await obs.waitCount(5, 'the third leader');
        obs.cancel();
        for (const r of obs.responses) out.push(`observed ${asText(r)}`);
        await rpc.must(rpc.lease, 'LeaseRevoke', { ID: l3 });
        await rpc.must(rpc.lease, 'LeaseRevoke', { ID: l1 });
        return { baseRev, lines: out };
      } finally {
        rpc.close();
      }
    });
    const kv = (lease: number, create: number, mod: number, version: number, value: string) =>
      `{"key":"api/<lease${lease}>","create_revision":"base+${create}","mod_revision":"base+${mod}","version":"${version}","value":"${value}","lease":"<lease${lease}>"}`;
    const leaderKey = (lease: number, rev: number) => `{"name":"api","key":"api/<lease${lease}>","rev":"base+${rev}","lease":"<lease${lease}>"}`;
    expect(lines).toEqual([
      'leader of an empty election {"code":2,"details":"election: no leader"}',
      `campaign l1 {"header":${header(1)},"leader":${leaderKey(1, 1)}}`,
      `leader {"header":${header(1)},"kv":${kv(1, 1, 1, 1, 'v1')}}`,
      `proclaim v1b {"header":${header(2)}}`,
      'proclaim with a wrong rev {"code":2,"details":"election: not leader"}',
      'cancelled campaign {"code":1}',
      // the header is the one of the campaign's first txn (which found the key), not of the proclaim after it
      `campaign l1 again with v1c {"header":${header(5)},"leader":${leaderKey(1, 1)}}`,
      `resign with a wrong rev {"header":${header(6)}}`,
      `resign l1 {"header":${header(7)}}`,
      `campaign l2 (was waiting) {"header":${header(3)},"leader":${leaderKey(2, 3)}}`,
      'proclaim by the resigned leader {"code":2,"details":"election: not leader"}',
      'proclaim without a leader key {"code":2,"details":"\\"leader\\" field must be provided"}',
      'resign without a leader key {"code":2,"details":"\\"leader\\" field must be provided"}',
      'campaign with an unknown lease {"code":2,"details":"etcdserver: requested lease not found"}',
      `campaign with lease 0 {"header":${header(8)},"leader":{"name":"api0","key":"api0/<lease3>","rev":"base+8","lease":"<lease3>"}}`,
      'its lease: grantedTTL=60 keys=api0/<lease3>',
      'leader after the revoke {"code":2,"details":"election: no leader"}',
      `campaign l3 {"header":${header(11)},"leader":${leaderKey(4, 11)}}`,
      `observed {"header":${header(1)},"kv":${kv(1, 1, 1, 1, 'v1')}}`,
      `observed {"header":${header(2)},"kv":${kv(1, 1, 2, 2, 'v1b')}}`,
      `observed {"header":${header(6)},"kv":${kv(1, 1, 6, 3, 'v1c')}}`,
      `observed {"header":${header(7)},"kv":${kv(2, 3, 3, 1, 'v2')}}`,
      // a leader that appears in an empty election is reported at its own revision
      `observed {"header":${header(11)},"kv":${kv(4, 11, 11, 1, 'v3')}}`,
    ]);
  });
});

// ---------------------------------------------------------------------------
// The etcd3 npm client's election(), next to etcdctl and the gRPC service on the same keys

describe('etcd3 npm client election()', () => {
  test('campaign, leader, observe, proclaim, resign; an etcdctl candidate and the gRPC Leader see the same election', async () => {
    const client = new Etcd3({ hosts: tsNode().clientUrl });
    const rpc = new Rpc(tsNode().endpoint);
    try {
      const election = client.election('npm', 10);
      const observer = await election.observe();
      const changes: (string | undefined)[] = [];
      observer.on('change', (v) => changes.push(v));
      const first = election.campaign('first');
      await first.wait();
      expect(await election.leader()).toBe('first');
      // (etcd3's observer takes the last put of a watch response as the leader, so let it settle first)
      await until(() => changes.includes('first'), 'the observer to see the first leader');
      const second = election.campaign('second');
      let secondElected = false;
      const secondWon = second.wait().then(() => (secondElected = true));
      // the second candidate's key must exist before etcdctl's: the order of their keys is the order of succession
      await until(async () => (await rpc.keys('election/npm/')).length === 2, 'the second candidate');
      // etcd3 keeps its candidates under election/<name>/: etcdctl and the gRPC service can join that election.
      const ctl = new Ctl(tsNode().endpoint, ['elect', 'election/npm', 'from-etcdctl']);
      await until(async () => (await rpc.keys('election/npm/')).length === 3, 'the etcdctl candidate');
      const viaGrpc = await rpc.call(rpc.election, 'Leader', { name: Buffer.from('election/npm') });
      expect(viaGrpc.ok && (viaGrpc.value.kv as { value: Buffer }).value.toString()).toBe('first');
      await first.proclaim('first-b');
      await until(() => changes.includes('first-b'), 'the observer to see the proclamation');
      expect(secondElected).toBe(false);
      await first.resign();
      await secondWon;
      expect(await election.leader()).toBe('second');
      await until(() => changes.includes('second'), 'the observer to see the second leader');
      expect(ctl.stdout).toBe('');
      await second.resign();
      await ctl.waitOutput((s) => s.includes('from-etcdctl'), 'the etcdctl candidate to lead');
      await until(() => changes.includes('from-etcdctl'), 'the observer to see the etcdctl leader');
      expect(changes).toEqual(['first', 'first-b', 'second', 'from-etcdctl']);
      ctl.term();
      expect((await ctl.exited).code).toBe(0);
      await until(() => changes.length === 5, 'the observer to see the election empty');
      expect(changes[4]).toBeUndefined();
      await observer.cancel();
    } finally {
      rpc.close();
      client.close();
    }
  });
});
