// Locks on an etcd-ts member: `etcdctl lock` (etcdctl 3.6 runs clientv3's mutex recipe over KV, watch
// and leases), the v3lockpb.Lock gRPC service (etcd-ts runs the same recipe on the server), both on the
// same lock names, and the `etcd3` npm client's lock() (its own recipe on KV and leases).
//
// Scenarios marked "same as etcd" run against a reference etcd too; their transcripts must match once
// cluster/member ids, lease ids and the starting revision are replaced by labels.
import * as fs from 'fs';
import * as path from 'path';
import * as grpc from '@grpc/grpc-js';
import { Etcd3, EtcdLockFailedError } from 'etcd3';
import { apiPackageDefinition } from '../../src/util/proto';
import { NodeHandle, removeDir, startNode, tmpDataDir } from '../helpers';
import { RAW_CHANNEL_OPTIONS } from '../helpers/compare';
import { Ctl, sameTranscript, sleep, stopAllCtls, until } from '../helpers/ctl';

jest.setTimeout(90_000);

// ---------------------------------------------------------------------------
// Raw gRPC clients for the Lock service and the KV/Lease calls around it

type Reply = { ok: true; value: Record<string, unknown> } | { ok: false; code: number; details: string };
type Unary = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, v: Record<string, unknown>) => void) => grpc.ClientUnaryCall;

class Rpc {
  private readonly clients: grpc.Client[] = [];
  readonly lock: grpc.Client;
  readonly kv: grpc.Client;
  readonly lease: grpc.Client;

  constructor(endpoint: string) {
    const pkg = grpc.loadPackageDefinition(apiPackageDefinition()) as unknown as Record<string, Record<string, grpc.ServiceClientConstructor>>;
    const make = (ctor: grpc.ServiceClientConstructor) => {
      const c = new ctor(endpoint, grpc.credentials.createInsecure(), RAW_CHANNEL_OPTIONS);
      this.clients.push(c);
      return c;
    };
    this.lock = make(pkg.v3lockpb.Lock);
    this.kv = make(pkg.etcdserverpb.KV);
    this.lease = make(pkg.etcdserverpb.Lease);
  }

  /** A unary call that can be cancelled; errors become { ok: false, code, details }. */
  start(client: grpc.Client, method: string, req: object, opts: grpc.CallOptions = {}): { reply: Promise<Reply>; cancel: () => void } {
    let call: grpc.ClientUnaryCall | undefined;
    const reply = new Promise<Reply>((resolve) => {
      const fn = (client as unknown as Record<string, Unary>)[method].bind(client);
      call = fn(req, new grpc.Metadata(), opts, (err, value) => resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: true, value }));
    });
    return { reply, cancel: () => call?.cancel() };
  }

  call(client: grpc.Client, method: string, req: object, opts: grpc.CallOptions = {}): Promise<Reply> {
    return this.start(client, method, req, opts).reply;
  }

  /** Like call(), but the reply must be OK. */
  async must(client: grpc.Client, method: string, req: object): Promise<Record<string, unknown>> {
    const r = await this.call(client, method, req);
    if (!r.ok) throw new Error(`${method} failed: ${r.code} ${r.details}`);
    return r.value;
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

  async revision(): Promise<number> {
    const r = await this.must(this.kv, 'Range', { key: Buffer.from('\0') });
    return Number((r.header as { revision: string }).revision);
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}

afterEach(stopAllCtls);

// ---------------------------------------------------------------------------
// Transcripts compared with the reference


/** The key of a successful Lock reply. */
function keyOf(r: Reply): Buffer {
  if (!r.ok) throw new Error(`expected a lock, got ${r.code} ${r.details}`);
  return r.value.key as Buffer;
}

/** A reply as one transcript line (bytes as text). */
function show(label: string, r: Reply): string {
  // Cancel and deadline errors are made by the client (details carry timings and addresses): code only.
  const body = r.ok ? r.value : r.code === grpc.status.CANCELLED || r.code === grpc.status.DEADLINE_EXCEEDED ? { code: r.code } : { code: r.code, details: r.details };
  return `${label} ${JSON.stringify(body, (_k, v: unknown) => (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' ? Buffer.from((v as { data: number[] }).data).toString() : v))}`;
}

let ts: NodeHandle | undefined;
let ref: NodeHandle | undefined;

beforeAll(async () => {
  const started = await Promise.allSettled([startNode({ kind: 'etcd-ts', name: 'lock' }), startNode({ kind: 'etcd', name: 'lock' })]);
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

// ---------------------------------------------------------------------------
// etcdctl lock

describe('etcdctl lock', () => {
  let dir: string;
  beforeAll(() => {
    dir = tmpDataDir('etcd-ts-lock-');
  });
  afterAll(() => removeDir(dir));

  /** A command for `etcdctl lock name -- sh -c`: prints what it holds, then waits for its flag file (bounded). */
  const holdUntilFlag = (who: string, flag: string) =>
    `echo "${who} holds $ETCD_LOCK_KEY rev=$ETCD_LOCK_REV"; for i in $(seq 1 400); do [ -e ${flag} ] && break; sleep 0.05; done; echo "${who} done"`;

  test('two contenders run their commands one after the other, in arrival order (same as etcd)', async () => {
    const lines = await sameAsEtcd(async (node) => {
      const rpc = new Rpc(node.endpoint);
      try {
        const baseRev = await rpc.revision();
        const flagA = path.join(dir, `${node.kind}-a`);
        const flagB = path.join(dir, `${node.kind}-b`);
        const a = new Ctl(node.endpoint, ['lock', 'mylock', '--', 'sh', '-c', holdUntilFlag('A', flagA)]);
        await a.waitOutput((s) => s.includes('A holds'), 'A to hold the lock');
        const b = new Ctl(node.endpoint, ['lock', 'mylock', '--', 'sh', '-c', holdUntilFlag('B', flagB)]);
        await until(async () => (await rpc.keys('mylock/')).length === 2, "B's key to queue up behind A's");
        await sleep(300);
        const bWhileAHolds = b.stdout;
        fs.writeFileSync(flagA, '');
        const aDone = await a.exited;
        await b.waitOutput((s) => s.includes('B holds'), 'B to get the lock');
        fs.writeFileSync(flagB, '');
        const bDone = await b.exited;
        const left = await rpc.keys('mylock/');
        return {
          baseRev,
          lines: [`B while A holds: ${JSON.stringify(bWhileAHolds)}`, `A: ${aDone.code} ${aDone.stdout}`, `B: ${bDone.code} ${bDone.stdout}`, `left: ${left.length}`],
        };
      } finally {
        rpc.close();
      }
    });
    // A's key was put at base+1 (its lock revision); B queued at base+2 and got the lock at A's unlock.
    expect(lines).toEqual([
      'B while A holds: ""',
      'A: 0 A holds mylock/<lease1> rev=base+1',
      'A done',
      '',
      'B: 0 B holds mylock/<lease2> rev=base+3',
      'B done',
      '',
      'left: 0',
    ]);
  });

  test('SIGKILLed holder: the lock is released when its lease expires; an etcdctl and a gRPC waiter follow in order (same as etcd)', async () => {
    const timings: Record<string, number> = {};
    const lines = await sameAsEtcd(async (node) => {
      const rpc = new Rpc(node.endpoint);
      try {
        const baseRev = await rpc.revision();
        // A 2-second session: etcdctl keeps it alive until it is killed.
        const holder = new Ctl(node.endpoint, ['lock', '--ttl=2', 'killme']);
        await holder.waitOutput((s) => s.includes('killme/'), 'the holder to print its key');
        const waiter = new Ctl(node.endpoint, ['lock', 'killme', '--', 'sh', '-c', 'echo "waiter holds $ETCD_LOCK_KEY rev=$ETCD_LOCK_REV"']);
        await until(async () => (await rpc.keys('killme/')).length === 2, "the etcdctl waiter's key");
        // The gRPC Lock service queues on the same keys, behind both.
        const lease = await rpc.grant(30);
        const grpcWaiter = rpc.call(rpc.lock, 'Lock', { name: Buffer.from('killme'), lease });
        await until(async () => (await rpc.keys('killme/')).length === 3, "the gRPC waiter's key");
        await sleep(1000);
        const beforeKill = `waiter before kill: ${JSON.stringify(waiter.stdout)}`;
        const killedAt = Date.now();
        await holder.kill9();
        const waited = await waiter.exited;
        timings[node.kind] = Date.now() - killedAt;
        const got = await grpcWaiter;
        const left = await rpc.keys('killme/');
        await rpc.must(rpc.lock, 'Unlock', { key: Buffer.from(left[0]) });
        return {
          baseRev,
          lines: [`holder: ${holder.stdout}`, beforeKill, `waiter: ${waited.code} ${waited.stdout}`, show('grpc waiter', got), `left: ${left.join(',')}`],
        };
      } finally {
        rpc.close();
      }
    });
    expect(lines[0]).toBe('holder: killme/<lease1>');
    expect(lines).toContain('waiter before kill: ""');
    expect(lines).toContain('waiter: 0 waiter holds killme/<lease2> rev=base+4');
    // The lease (TTL 2 s, renewed every ~0.7 s) outlives the holder by a moment, not by the waiter's patience.
    expect(timings['etcd-ts']).toBeGreaterThan(500);
    expect(timings['etcd-ts']).toBeLessThan(8000);
  });
});

// ---------------------------------------------------------------------------
// The v3lockpb.Lock service

describe('v3lockpb.Lock', () => {
  test('lock, queue, unlock, cancel, expired session and errors (same as etcd)', async () => {
    const lines = await sameAsEtcd(async (node) => {
      const rpc = new Rpc(node.endpoint);
      const out: string[] = [];
      const name = Buffer.from('svc');
      try {
        const baseRev = await rpc.revision();
        const [l1, l2, l3] = [await rpc.grant(30), await rpc.grant(30), await rpc.grant(30)];
        const first = await rpc.call(rpc.lock, 'Lock', { name, lease: l1 });
        out.push(show('lock l1', first));
        // Locking again under the same lease finds the same key: it already holds the lock.
        out.push(show('lock l1 again', await rpc.call(rpc.lock, 'Lock', { name, lease: l1 })));
        // A waiter, then a second waiter the client cancels: the cancelled one's key is removed.
        const second = rpc.call(rpc.lock, 'Lock', { name, lease: l2 });
        await until(async () => (await rpc.keys('svc/')).length === 2, 'the first waiter');
        const third = rpc.start(rpc.lock, 'Lock', { name, lease: l3 });
        await until(async () => (await rpc.keys('svc/')).length === 3, 'the second waiter');
        third.cancel();
        out.push(show('cancelled waiter', await third.reply));
        await until(async () => (await rpc.keys('svc/')).length === 2, "the cancelled waiter's key to go");
        out.push(`keys after cancel: ${(await rpc.keys('svc/')).join(',')}`);
        // A deadline is a cancel too.
        const late = await rpc.call(rpc.lock, 'Lock', { name, lease: l3 }, { deadline: Date.now() + 400 });
        // Who ends it races: the client's own deadline timer (DEADLINE_EXCEEDED) or the server, which sees
        // the deadline pass and resets the stream (CANCELLED). Either way the waiter must not have the lock.
        out.push(`waiter past its deadline: ${late.ok ? 'got the lock' : late.code === grpc.status.CANCELLED || late.code === grpc.status.DEADLINE_EXCEEDED ? 'ended by its deadline' : show('', late)}`);
        await until(async () => (await rpc.keys('svc/')).length === 2, "the late waiter's key to go");
        // Unlock hands the lock to the first waiter (its header is the read after the wait).
        const key = keyOf(first);
        out.push(show('unlock l1', await rpc.call(rpc.lock, 'Unlock', { key })));
        out.push(show('lock l2 (was waiting)', await second));
        // A waiter whose lease is revoked while it waits: etcd's "session is expired".
        const waiter = rpc.call(rpc.lock, 'Lock', { name, lease: l3 });
        await until(async () => (await rpc.keys('svc/')).length === 2, 'the l3 waiter');
        await rpc.must(rpc.lease, 'LeaseRevoke', { ID: l3 });
        await rpc.must(rpc.lease, 'LeaseRevoke', { ID: l2 });
        out.push(show('lock l3 after its lease was revoked', await waiter));
        // Lease 0: the service grants a 60-second lease nobody keeps alive.
        const own = await rpc.call(rpc.lock, 'Lock', { name: Buffer.from('svc0'), lease: 0 });
        out.push(show('lock with lease 0', own));
        const ownKey = keyOf(own).toString();
        const ownLease = BigInt('0x' + ownKey.split('/')[1]).toString();
        const ttl = await rpc.must(rpc.lease, 'LeaseTimeToLive', { ID: ownLease, keys: true });
        out.push(`its lease: grantedTTL=${String(ttl.grantedTTL)} keys=${(ttl.keys as Buffer[]).map((k) => k.toString()).join(',')}`);
        // Errors: all with gRPC code 2 (UNKNOWN), as etcd's service returns them.
        out.push(show('lock with an unknown lease', await rpc.call(rpc.lock, 'Lock', { name, lease: '123456789' })));
        out.push(show('unlock without a key', await rpc.call(rpc.lock, 'Unlock', { key: Buffer.alloc(0) })));
        out.push(show('unlock of a missing key', await rpc.call(rpc.lock, 'Unlock', { key: Buffer.from('svc/none') })));
        await rpc.must(rpc.kv, 'DeleteRange', { key: Buffer.from('svc0/'), range_end: Buffer.from('svc00') });
        return { baseRev, lines: out };
      } finally {
        rpc.close();
      }
    });
    const header = (rev: number) => `{"cluster_id":"<cluster>","member_id":"<member>","revision":"base+${rev}","raft_term":"2"}`;
    expect(lines).toEqual([
      `lock l1 {"header":${header(1)},"key":"svc/<lease1>"}`,
      `lock l1 again {"header":${header(1)},"key":"svc/<lease1>"}`,
      'cancelled waiter {"code":1}',
      'keys after cancel: svc/<lease1>,svc/<lease2>',
      'waiter past its deadline: ended by its deadline',
      `unlock l1 {"header":${header(7)}}`,
      `lock l2 (was waiting) {"header":${header(7)},"key":"svc/<lease2>"}`,
      'lock l3 after its lease was revoked {"code":2,"details":"mutex: session is expired"}',
      `lock with lease 0 {"header":${header(11)},"key":"svc0/<lease3>"}`,
      'its lease: grantedTTL=60 keys=svc0/<lease3>',
      'lock with an unknown lease {"code":2,"details":"etcdserver: requested lease not found"}',
      'unlock without a key {"code":2,"details":"etcdserver: key is not provided"}',
      `unlock of a missing key {"header":${header(11)}}`,
    ]);
  });

  // Two clients: each waiter queues right behind the holder, whose unlock then often lands while the
  // waiter is between reading its predecessor and watching it (the window a missed delete would hang in).
  test.each([
    [2, 40],
    [6, 15],
  ])('mutual exclusion: %i clients blocking in Lock (%i rounds each) increment a counter without losing an update', async (workers, rounds) => {
    const endpoint = tsNode().endpoint;
    let inside = 0;
    let maxInside = 0;
    const admin = new Rpc(endpoint);
    await admin.must(admin.kv, 'Put', { key: Buffer.from('svc-counter'), value: Buffer.from('0') });
    const work = async (w: number) => {
      const rpc = new Rpc(endpoint);
      try {
        const lease = await rpc.grant(30);
        for (let i = 0; i < rounds; i++) {
          // A missed unlock would leave a waiter blocked: the deadline turns that into a failure.
          const locked = await rpc.call(rpc.lock, 'Lock', { name: Buffer.from('counter-lock'), lease }, { deadline: Date.now() + 10_000 });
          const key = keyOf(locked);
          inside++;
          maxInside = Math.max(maxInside, inside);
          const cur = await rpc.must(rpc.kv, 'Range', { key: Buffer.from('svc-counter') });
          const n = Number((cur.kvs as { value: Buffer }[])[0].value.toString());
          // Sections of 0 to 3 ms: unlocks land at every moment of the waiters' range-then-watch step.
          const pause = (w * 7 + i) % 4;
          if (pause > 0) await sleep(pause);
          await rpc.must(rpc.kv, 'Put', { key: Buffer.from('svc-counter'), value: Buffer.from(String(n + 1)) });
          inside--;
          await rpc.must(rpc.lock, 'Unlock', { key });
        }
      } finally {
        rpc.close();
      }
    };
    try {
      await Promise.all(Array.from({ length: workers }, (_, w) => work(w)));
      const final = await admin.must(admin.kv, 'Range', { key: Buffer.from('svc-counter') });
      expect((final.kvs as { value: Buffer }[])[0].value.toString()).toBe(String(workers * rounds));
      expect(maxInside).toBe(1);
      expect(await admin.keys('counter-lock/')).toEqual([]);
    } finally {
      admin.close();
    }
  });
});

// ---------------------------------------------------------------------------
// The etcd3 npm client's lock()

describe('etcd3 npm client lock()', () => {
  test('lock().do(fn) from several clients at once: one holder at a time, no lost increment', async () => {
    const clients = Array.from({ length: 4 }, () => new Etcd3({ hosts: tsNode().clientUrl }));
    const rounds = 5;
    let inside = 0;
    let maxInside = 0;
    let refused = 0;
    try {
      await clients[0].put('npm-counter').value('0');
      const work = async (client: Etcd3) => {
        for (let i = 0; i < rounds; i++) {
          // etcd3's lock() does not wait: a held lock fails at once, so each increment retries (bounded).
          for (let attempt = 0; ; attempt++) {
            if (attempt > 400) throw new Error('could not get the lock in 400 attempts');
            try {
              await client.lock('npm-lock').ttl(10).do(async () => {
                inside++;
                maxInside = Math.max(maxInside, inside);
                const n = Number(await client.get('npm-counter').string());
                await sleep(3);
                await client.put('npm-counter').value(String(n + 1));
                inside--;
              });
              break;
            } catch (err) {
              if (!(err instanceof EtcdLockFailedError)) throw err;
              refused++;
              await sleep(5 + Math.floor(Math.random() * 10));
            }
          }
        }
      };
      await Promise.all(clients.map(work));
      expect(await clients[0].get('npm-counter').string()).toBe(String(clients.length * rounds));
      expect(maxInside).toBe(1);
      expect(refused).toBeGreaterThan(0); // they really did contend
      expect(await clients[0].get('npm-lock').string()).toBeNull();
    } finally {
      for (const c of clients) c.close();
    }
  });
});
