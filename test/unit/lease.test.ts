// The lessor on a fake clock and a real RocksDB in a temp dir: grant limits and errors, keepalive,
// expiry order / limit / retry, revoke with attached keys, TimeToLive rounding, persistence across a
// restart, checkpoints, promote / demote, and the cost of finding expired leases among 100k.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { Backend, Prefix, WriteBatch } from '../../src/storage';
import {
  FOREVER_REMAINING_SECONDS,
  LeaseExpiredError,
  Lessor,
  LessorOptions,
  MAX_LEASE_TTL,
  NotPrimaryError,
  leaseExtendOnPromoteMs,
  leaseKey,
  leaseRevokeRetryMs,
  minLeaseTtlSeconds,
} from '../../src/lease';
import { LeaseQueue } from '../../src/lease/queue';
import { decodeLeaseRecord, encodeLeaseRecord } from '../../src/lease/record';
import { EtcdError } from '../../src/util/errors';

class FakeClock {
  t = 1_000_000;
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}

function expectEtcdError(fn: () => unknown, code: GrpcStatus, message: string): void {
  const err = thrown(fn);
  expect(err).toBeInstanceOf(EtcdError);
  expect((err as EtcdError).code).toBe(code);
  expect(err.message).toBe(message);
}

const NOT_FOUND = 'etcdserver: requested lease not found';

describe('etcd timing facts', () => {
  test('minimum TTL: 1.5 election timeouts in whole ticks, rounded up to seconds', () => {
    expect(minLeaseTtlSeconds(1000, 100)).toBe(2); // etcd defaults: 15 ticks * 100 ms = 1.5 s
    expect(minLeaseTtlSeconds(5000, 500)).toBe(8); // 15 * 500 ms = 7.5 s
    expect(minLeaseTtlSeconds(1000, 300)).toBe(2); // 3 ticks -> 4 ticks (integer halving) -> 1.2 s
    expect(minLeaseTtlSeconds(2500, 100)).toBe(4); // 37 ticks -> 3.7 s
    expect(minLeaseTtlSeconds(1000, 1000)).toBe(1); // 1 tick -> 1 tick -> 1 s
  });

  test('promote extension and revoke retry follow the election timeout in whole ticks', () => {
    expect(leaseExtendOnPromoteMs(1000, 100)).toBe(1000);
    expect(leaseExtendOnPromoteMs(1050, 100)).toBe(1000);
    expect(leaseRevokeRetryMs(1000, 100)).toBe(7000);
  });
});

describe('LeaseQueue', () => {
  test('pops in (time, id) order through pushes, updates and removals', () => {
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const q = new LeaseQueue();
    const live = new Map<bigint, ReturnType<LeaseQueue['push']>>();
    for (let i = 0; i < 2000; i++) live.set(BigInt(i), q.push(BigInt(i), Math.floor(rand() * 500)));
    for (let i = 0; i < 1000; i++) {
      const id = BigInt(Math.floor(rand() * 2000));
      const entry = live.get(id);
      if (!entry) continue;
      if (rand() < 0.5) q.update(entry, Math.floor(rand() * 500));
      else {
        q.remove(entry);
        live.delete(id);
      }
    }
    const expected = [...live.values()]
      .map((e) => ({ id: e.id, time: e.time }))
      .sort((a, b) => a.time - b.time || (a.id < b.id ? -1 : 1));
    const got: { id: bigint; time: number }[] = [];
    for (let e = q.pop(); e; e = q.pop()) got.push({ id: e.id, time: e.time });
    expect(got).toEqual(expected);
    expect(q.size).toBe(0);
  });

  test('rebuild heapifies and links entries', () => {
    const q = new LeaseQueue();
    const made = q.rebuild([5, 3, 9, 1, 7].map((time, i) => ({ id: BigInt(i), time })));
    q.update(made[2], 0);
    q.remove(made[3]);
    const order: bigint[] = [];
    for (let e = q.pop(); e; e = q.pop()) order.push(e.id);
    expect(order).toEqual([2n, 1n, 0n, 4n]);
  });
});

describe('lease records', () => {
  // protobufjs as an independent encoder of etcd's leasepb.Lease message
  const LeasePb = protobuf.Root.fromJSON({
    nested: { Lease: { fields: { ID: { type: 'int64', id: 1 }, TTL: { type: 'int64', id: 2 }, RemainingTTL: { type: 'int64', id: 3 } } } },
  }).lookupType('Lease');

  test("records are etcd's leasepb.Lease protobuf", () => {
    const cases = [
      { id: 0x1234567890abn, ttl: 60, remainingTtl: 17 },
      { id: -5n, ttl: MAX_LEASE_TTL, remainingTtl: 0 },
      { id: 0x7fffffffffffffffn, ttl: 2, remainingTtl: 1 },
    ];
    for (const r of cases) {
      const ours = encodeLeaseRecord(r);
      // proto3 leaves zero-valued fields out (protobufjs writes whatever it is given)
      const fields = { ID: r.id.toString(), TTL: r.ttl, ...(r.remainingTtl !== 0 && { RemainingTTL: r.remainingTtl }) };
      const theirs = Buffer.from(LeasePb.encode(LeasePb.fromObject(fields)).finish());
      expect(ours.toString('hex')).toBe(theirs.toString('hex'));
      expect(decodeLeaseRecord(theirs)).toEqual(r);
    }
    // unknown fields (a newer writer) are skipped
    const withExtra = Buffer.concat([encodeLeaseRecord(cases[0]), Buffer.from([0x22, 0x02, 0x61, 0x62, 0x2d, 1, 2, 3, 4])]);
    expect(decodeLeaseRecord(withExtra)).toEqual(cases[0]);
    expect(leaseKey(1n)).toEqual(Buffer.from([Prefix.lease, 0, 0, 0, 0, 0, 0, 0, 1]));
    expect(() => decodeLeaseRecord(Buffer.from([0x08, 0x80]))).toThrow(/corrupt/);
  });
});

describe('Lessor', () => {
  let clock: FakeClock;
  let batch: WriteBatch;
  const make = (opts: Partial<LessorOptions> = {}) => Lessor.create(clock, { minTtlSeconds: 2, ...opts });

  beforeEach(() => {
    clock = new FakeClock();
    batch = new WriteBatch();
  });

  test('grant raises a TTL below the minimum and persists the lease into the batch', () => {
    const lessor = make({ minTtlSeconds: 5 });
    expect(lessor.grant(1n, 1, batch)).toEqual({ id: 1n, ttl: 5 });
    expect(lessor.grant(2n, -3, batch)).toEqual({ id: 2n, ttl: 5 });
    expect(lessor.grant(3n, 60, batch)).toEqual({ id: 3n, ttl: 60 });
    expect(batch.ops.map((op) => op.type)).toEqual(['put', 'put', 'put']);
    expect(decodeLeaseRecord(batch.ops[0].value as Buffer)).toEqual({ id: 1n, ttl: 5, remainingTtl: 0 });
    expect(batch.ops[2].key).toEqual(leaseKey(3n));
    expect(lessor.lookup(3n)?.expiry).toBe(clock.t + 60_000);
    expect(lessor.exists(2n)).toBe(true);
    expect(lessor.exists(4n)).toBe(false);
  });

  test('grant errors: too large TTL, existing id, id 0', () => {
    const lessor = make();
    expectEtcdError(() => lessor.checkTtl(MAX_LEASE_TTL + 1), GrpcStatus.OUT_OF_RANGE, 'etcdserver: too large lease TTL');
    expect(() => lessor.checkTtl(MAX_LEASE_TTL)).not.toThrow();
    expectEtcdError(() => lessor.grant(1n, MAX_LEASE_TTL + 1, batch), GrpcStatus.OUT_OF_RANGE, 'etcdserver: too large lease TTL');
    expect(lessor.grant(1n, MAX_LEASE_TTL, batch).ttl).toBe(MAX_LEASE_TTL);
    expectEtcdError(() => lessor.grant(1n, 10, batch), GrpcStatus.FAILED_PRECONDITION, 'etcdserver: lease already exists');
    expectEtcdError(() => lessor.grant(0n, 10, batch), GrpcStatus.NOT_FOUND, NOT_FOUND);
    expect(lessor.size).toBe(1);
    expect(batch.size).toBe(1);
  });

  test('renew moves the expiry a full TTL from now and returns the granted TTL', () => {
    const lessor = make();
    lessor.grant(7n, 10, batch);
    clock.advance(8000);
    expect(lessor.renew(7n)).toBe(10);
    expect(lessor.lookup(7n)?.expiry).toBe(clock.t + 10_000);
    clock.advance(9999);
    expect(lessor.expired(10)).toEqual([]);
    clock.advance(1);
    expect(lessor.expired(10)).toEqual([7n]);
  });

  test('renew errors: unknown lease, expired lease awaiting revoke, not primary', () => {
    const lessor = make();
    expectEtcdError(() => lessor.renew(9n), GrpcStatus.NOT_FOUND, NOT_FOUND);
    lessor.grant(9n, 5, batch);
    clock.advance(5000);
    const err = thrown(() => lessor.renew(9n));
    expect(err).toBeInstanceOf(LeaseExpiredError);
    expect((err as LeaseExpiredError).id).toBe(9n);
    lessor.demote();
    expect(thrown(() => lessor.renew(9n))).toBeInstanceOf(NotPrimaryError);
  });

  test('expired() returns due leases soonest first, at most `limit`, and holds reported ones back', () => {
    const lessor = make({ expiredRetryMs: 3000 });
    const ttls: [bigint, number][] = [[1n, 30], [2n, 10], [3n, 20], [4n, 10], [5n, 40], [6n, 25]];
    for (const [id, ttl] of ttls) lessor.grant(id, ttl, batch);
    clock.advance(9999);
    expect(lessor.expired(10)).toEqual([]);
    clock.advance(20_001); // t0 + 30 s: 2, 4 (10 s), 3 (20 s), 6 (25 s), 1 (30 s) are due
    expect(lessor.expired(2)).toEqual([2n, 4n]);
    expect(lessor.expired(2)).toEqual([3n, 6n]);
    expect(lessor.expired(0)).toEqual([]);
    expect(lessor.expired(10)).toEqual([1n]);
    // reported ones are not reported again until the retry interval has passed
    expect(lessor.expired(10)).toEqual([]);
    lessor.revoke(2n, batch);
    lessor.revoke(3n, batch);
    clock.advance(2999);
    expect(lessor.expired(10)).toEqual([]);
    clock.advance(1);
    // all three were held back to the same instant: reported again in id order
    expect(lessor.expired(10)).toEqual([1n, 4n, 6n]);
  });

  test('revoke returns attached keys sorted, forgets them, and deletes the record in the batch', () => {
    const lessor = make();
    lessor.grant(1n, 10, batch);
    lessor.grant(2n, 10, batch);
    for (const key of ['zeta', 'alpha', 'm\u00ff', 'mid']) expect(lessor.attach(1n, key)).toBe(true);
    expect(lessor.attach(2n, 'other')).toBe(true);
    expect(lessor.attach(3n, 'nope')).toBe(false);
    // a key put again with another lease moves to it
    lessor.attach(2n, 'mid');
    expect(lessor.leaseOf('mid')).toBe(2n);
    expect(lessor.detach(2n, 'other')).toBe(true);
    expect(lessor.leaseOf('other')).toBe(0n);
    expect(lessor.detach(3n, 'other')).toBe(false);
    expect(lessor.timeToLive(2n)?.keys).toEqual(['mid']);

    const revokeBatch = new WriteBatch();
    expect(lessor.revoke(1n, revokeBatch)).toEqual(['alpha', 'm\u00ff', 'zeta']);
    expect(revokeBatch.ops).toEqual([{ type: 'del', key: leaseKey(1n) }]);
    expect(lessor.exists(1n)).toBe(false);
    expect(lessor.leaseOf('alpha')).toBe(0n);
    expect(lessor.leaseOf('mid')).toBe(2n);
    expectEtcdError(() => lessor.revoke(1n, revokeBatch), GrpcStatus.NOT_FOUND, NOT_FOUND);
    clock.advance(60_000);
    expect(lessor.expired(10)).toEqual([2n]);
  });

  test('timeToLive truncates remaining seconds toward zero, as etcd reports them', () => {
    const lessor = make();
    lessor.grant(1n, 10, batch);
    lessor.attach(1n, 'b');
    lessor.attach(1n, 'a');
    expect(lessor.timeToLive(1n)).toEqual({ grantedTtl: 10, remaining: 10, keys: ['a', 'b'] });
    clock.advance(1);
    expect(lessor.timeToLive(1n)?.remaining).toBe(9);
    clock.advance(8998); // 1 ms short of 9 s in
    expect(lessor.timeToLive(1n)?.remaining).toBe(1);
    clock.advance(1);
    expect(lessor.timeToLive(1n)?.remaining).toBe(1);
    clock.advance(999); // 1 ms left
    expect(lessor.timeToLive(1n)?.remaining).toBe(0);
    // expired, revoke not applied yet: 0, then negative whole seconds
    clock.advance(500);
    expect(Object.is(lessor.timeToLive(1n)?.remaining, 0)).toBe(true);
    clock.advance(1000);
    expect(lessor.timeToLive(1n)?.remaining).toBe(-1);
    expect(lessor.timeToLive(2n)).toBeUndefined();
    lessor.demote();
    expect(lessor.timeToLive(1n)?.remaining).toBe(FOREVER_REMAINING_SECONDS);
  });

  test('list() orders leases by expiry', () => {
    const lessor = make();
    lessor.grant(1n, 30, batch);
    lessor.grant(2n, 10, batch);
    lessor.grant(3n, 20, batch);
    clock.advance(5000);
    lessor.renew(2n); // now expires at +15 s
    expect(lessor.list()).toEqual([2n, 3n, 1n]);
  });

  test('whenRevoked resolves true on revoke, false on demote', async () => {
    const lessor = make();
    lessor.grant(1n, 10, batch);
    lessor.grant(2n, 10, batch);
    const first = lessor.whenRevoked(1n);
    const second = lessor.whenRevoked(2n);
    lessor.revoke(1n, batch);
    await expect(first).resolves.toBe(true);
    await expect(lessor.whenRevoked(1n)).resolves.toBe(true);
    lessor.demote();
    await expect(second).resolves.toBe(false);
    await expect(lessor.whenRevoked(2n)).resolves.toBe(false);
  });

  test('a lessor that is not primary grants without expiry and reports nothing; promote refreshes', () => {
    const lessor = make({ primary: false });
    expect(lessor.primary).toBe(false);
    lessor.grant(1n, 10, batch);
    expect(lessor.lookup(1n)?.expiry).toBe(Infinity);
    clock.advance(60_000);
    expect(lessor.expired(10)).toEqual([]);
    lessor.promote(1000);
    expect(lessor.lookup(1n)?.expiry).toBe(clock.t + 11_000);
    clock.advance(11_000);
    expect(lessor.expired(10)).toEqual([1n]);
  });

  test('promote spreads a pile-up of expiries to 3/4 of the revoke rate per second', () => {
    const lessor = make({ primary: false, revokeRate: 100 }); // 75 per second
    for (let i = 1; i <= 200; i++) lessor.grant(BigInt(i), 10, batch);
    lessor.promote(0);
    const start = clock.t;
    const offsets = lessor.list().map((id) => (lessor.lookup(id) as { expiry: number }).expiry - start);
    expect(offsets.slice(0, 75).every((o) => o === 10_000)).toBe(true);
    // the rest follow 1/75 s apart: the 76th at 10 s + 76/75 s, the last at 10 s + 200/75 s
    expect(offsets[75]).toBeCloseTo(10_000 + (76 * 1000) / 75, 6);
    expect(offsets[199]).toBeCloseTo(10_000 + (200 * 1000) / 75, 6);
    for (let second = 10; second < 13; second++) {
      const inSecond = offsets.filter((o) => o >= second * 1000 && o < (second + 1) * 1000).length;
      expect(inSecond).toBeLessThanOrEqual(75);
    }
    // fewer leases than the revoke rate: left alone
    const small = make({ primary: false, revokeRate: 1000 });
    for (let i = 1; i <= 200; i++) small.grant(BigInt(i), 10, batch);
    small.promote(0);
    expect(small.list().every((id) => small.lookup(id)?.expiry === clock.t + 10_000)).toBe(true);
  });

  test('checkpoints: due ones carry the remaining TTL rounded up; a renew needs them reset first', () => {
    const lessor = make({ checkpointIntervalMs: 1000 });
    lessor.grant(1n, 10, batch);
    lessor.grant(2n, 1, batch); // raised to 2 s: still longer than the 1 s interval, so scheduled
    lessor.grant(3n, 60, batch);
    clock.advance(999);
    expect(lessor.dueCheckpoints()).toEqual([]);
    clock.advance(1);
    lessor.renew(3n); // renewed: remaining equals the TTL, nothing to checkpoint
    clock.advance(1);
    expect(lessor.dueCheckpoints()).toEqual([
      { id: 1n, remainingTtl: 9 },
      { id: 2n, remainingTtl: 1 },
    ]);
    expect(lessor.dueCheckpoints()).toEqual([]);
    expect(lessor.checkpointResetNeeded(1n)).toBe(false);
    const cpBatch = new WriteBatch();
    lessor.checkpoint(1n, 9, cpBatch);
    lessor.checkpoint(42n, 9, cpBatch); // unknown: ignored
    expect(cpBatch.ops.map((op) => decodeLeaseRecord(op.value as Buffer))).toEqual([{ id: 1n, ttl: 10, remainingTtl: 9 }]);
    expect(lessor.lookup(1n)?.remainingTtl).toBe(9);
    expect(lessor.checkpointResetNeeded(1n)).toBe(true);
    expect(make().checkpointResetNeeded(1n)).toBe(false);
    // applying the checkpoint scheduled the next one
    clock.advance(1000);
    expect(lessor.dueCheckpoints()).toEqual([{ id: 1n, remainingTtl: 8 }]);
    // without the feature nothing is ever due
    const off = make();
    off.grant(1n, 600, batch);
    clock.advance(600_000);
    expect(off.dueCheckpoints()).toEqual([]);
  });

  test('100k leases: expired() looks only at what is due', () => {
    const lessor = make({ expiredRetryMs: 5000 });
    const n = 100_000;
    for (let i = 0; i < n; i++) lessor.grant(BigInt(i + 1), 10 + (i % 997), batch);
    // keepalives for the even-numbered half, as a busy leader sees
    clock.advance(5000);
    for (let i = 0; i < n; i += 2) lessor.renew(BigInt(i + 1));
    // t0 + 10.5 s: due are the leases with TTL 10 (i a multiple of 997) that were not renewed (i odd)
    clock.advance(5500);
    const expected: bigint[] = [];
    for (let i = 997; i < n; i += 2 * 997) expected.push(BigInt(i + 1));
    expect(expected.length).toBe(50);
    const before = lessor.expiryQueueWork;
    const due = lessor.expired(500);
    const after = lessor.expiryQueueWork;
    expect(due).toEqual(expected);
    // each due lease: one look, one sift down of at most log2(n) levels; plus the final look
    const log2 = Math.ceil(Math.log2(n));
    expect(after.visited - before.visited).toBe(due.length + 1);
    expect(after.moves - before.moves).toBeLessThanOrEqual(due.length * log2);
    // nothing due: a single look
    const again = lessor.expiryQueueWork;
    expect(lessor.expired(500)).toEqual([]);
    expect(lessor.expiryQueueWork.visited - again.visited).toBe(1);
    expect(lessor.expiryQueueWork.moves).toBe(again.moves);
  });
});

describe('Lessor persistence', () => {
  let dir: string;
  let backend: Backend;
  let clock: FakeClock;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-ts-lease-'));
    backend = await Backend.open(dir);
    clock = new FakeClock();
  });
  afterEach(async () => {
    await backend.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const reopen = async (opts: Partial<LessorOptions> = {}): Promise<Lessor> => {
    await backend.close();
    backend = await Backend.open(dir);
    return Lessor.load(backend, clock, { minTtlSeconds: 2, ...opts });
  };

  test('leases survive a restart with expiries refreshed to now + TTL (+ extension)', async () => {
    const lessor = await Lessor.load(backend, clock, { minTtlSeconds: 2 });
    expect(lessor.size).toBe(0);
    const batch = new WriteBatch();
    lessor.grant(1n, 10, batch);
    lessor.grant(2n, 3, batch);
    lessor.grant(3n, 100, batch);
    lessor.grant(-4n, 50, batch);
    lessor.attach(1n, 'k');
    backend.write(batch, false);
    const revoke = new WriteBatch();
    lessor.revoke(3n, revoke);
    backend.write(revoke, false);
    clock.advance(60_000); // long past every expiry: the member was down

    const loaded = await reopen({ minTtlSeconds: 5, extendMs: 1000 });
    expect(loaded.primary).toBe(true);
    expect(loaded.list()).toEqual([2n, 1n, -4n]);
    expect(loaded.lookup(1n)).toMatchObject({ ttl: 10, expiry: clock.t + 11_000 });
    expect(loaded.lookup(2n)).toMatchObject({ ttl: 5, expiry: clock.t + 6_000 }); // raised to the new minimum
    expect(loaded.lookup(-4n)?.ttl).toBe(50);
    expect(loaded.exists(3n)).toBe(false);
    // keys are not persisted: the server re-attaches them from the stored key-values
    expect(loaded.timeToLive(1n)?.keys).toEqual([]);
    expect(loaded.expired(10)).toEqual([]);
    expectEtcdError(() => loaded.grant(1n, 10, new WriteBatch()), GrpcStatus.FAILED_PRECONDITION, 'etcdserver: lease already exists');
    clock.advance(6_000);
    expect(loaded.expired(10)).toEqual([2n]);
  });

  test('a checkpointed remaining TTL is what a restart counts from', async () => {
    const lessor = await Lessor.load(backend, clock, { minTtlSeconds: 2, checkpointIntervalMs: 1000 });
    const batch = new WriteBatch();
    lessor.grant(1n, 60, batch);
    clock.advance(20_000);
    const [cp] = lessor.dueCheckpoints();
    expect(cp).toEqual({ id: 1n, remainingTtl: 40 });
    lessor.checkpoint(cp.id, cp.remainingTtl, batch);
    backend.write(batch, false);

    const loaded = await reopen({ checkpointIntervalMs: 1000 });
    expect(loaded.lookup(1n)).toMatchObject({ ttl: 60, remainingTtl: 40, expiry: clock.t + 40_000 });
    expect(loaded.checkpointResetNeeded(1n)).toBe(true);
    // the reset, applied, is persisted; the next restart counts from the full TTL again
    const reset = new WriteBatch();
    loaded.checkpoint(1n, 0, reset);
    expect(loaded.renew(1n)).toBe(60);
    backend.write(reset, false);
    const again = await reopen({ primary: false });
    expect(again.primary).toBe(false);
    expect(again.lookup(1n)).toMatchObject({ remainingTtl: 0, expiry: Infinity });
    again.promote(0);
    expect(again.lookup(1n)?.expiry).toBe(clock.t + 60_000);
  });
});
