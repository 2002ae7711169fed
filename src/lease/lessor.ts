// The lessor: etcd's lease state machine. It owns every lease (id, granted TTL, expiry, attached keys) and
// decides which leases have expired, but it never acts on time by itself: no timers, no I/O besides the
// one read at load. The server drives it:
//
//   - apply loop (every member, in log order): grant / revoke / checkpoint, writing into the apply batch;
//     attach / detach as puts and deletes naming leases are applied (and at startup, from the stored
//     key-values: attached keys are not persisted).
//   - primary (the leader) only: renew (keepalive), timeToLive, and a periodic `expired(limit)` whose
//     result the server proposes as revokes; with checkpointing on, a periodic `dueCheckpoints()` whose
//     result it proposes as one LeaseCheckpointRequest.
//
// Expiry is tracked in a min-heap with positions (see queue.ts), so `expired()` looks only at due leases.
// As in etcd, a lease reported by `expired()` is not reported again until a retry interval has passed:
// its revoke is already on its way through the log, and only a lost proposal needs a second one.
//
// Times are clock milliseconds (monotonic, `Clock`); TTLs are whole seconds as in the API.
import { Backend, WriteBatch } from '../storage';
import { LeaseErrors, LeaseExpiredError, NotPrimaryError } from './errors';
import { LeaseQueue, QueueEntry } from './queue';
import { LEASE_KEYS_FROM, LEASE_KEYS_TO, decodeLeaseRecord, encodeLeaseRecord, leaseKey } from './record';

export interface Clock {
  /** monotonic milliseconds */
  now(): number;
}

export const monotonicClock: Clock = { now: () => performance.now() };

/** Largest TTL (seconds) a lease may be granted with (etcd's MaxLeaseTTL). */
export const MAX_LEASE_TTL = 9_000_000_000;
/** etcd revokes at most this many leases per second... */
export const LEASE_REVOKE_RATE = 1000;
/** ...by looking for expired leases every this many ms... */
export const EXPIRY_CHECK_INTERVAL_MS = 500;
/** ...and taking at most this many each time. */
export const REVOKE_BATCH_LIMIT = LEASE_REVOKE_RATE / 2;
/** etcd's default interval between checkpoints of a lease's remaining TTL. */
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 5 * 60 * 1000;
/** Checkpoints per LeaseCheckpointRequest, at most. */
export const CHECKPOINT_BATCH_LIMIT = 1000;
/**
 * The remaining TTL etcd's arithmetic gives a lease without expiry (on a lessor that is not primary):
 * the largest Go duration, in whole seconds.
 */
export const FOREVER_REMAINING_SECONDS = 9223372036;

/**
 * Minimum TTL a lease is granted with, in seconds: one and a half election timeouts counted in whole
 * heartbeat ticks, rounded up (etcd: ceil(((3 * electionTicks) / 2) * heartbeat), integer ticks).
 */
export function minLeaseTtlSeconds(electionTimeoutMs: number, heartbeatMs: number): number {
  const electionTicks = Math.floor(electionTimeoutMs / heartbeatMs);
  return Math.ceil((Math.floor((3 * electionTicks) / 2) * heartbeatMs) / 1000);
}

/** The election timeout in whole ticks, in ms: what etcd extends every lease by when a leader takes over. */
export function leaseExtendOnPromoteMs(electionTimeoutMs: number, heartbeatMs: number): number {
  return Math.floor(electionTimeoutMs / heartbeatMs) * heartbeatMs;
}

/** etcd's request timeout (5 s + 2 election timeouts): how long before an expired lease is reported again. */
export function leaseRevokeRetryMs(electionTimeoutMs: number, heartbeatMs: number): number {
  return 5000 + 2 * leaseExtendOnPromoteMs(electionTimeoutMs, heartbeatMs);
}

export interface LeaseInfo {
  readonly id: bigint;
  /** granted TTL, seconds */
  readonly ttl: number;
  /** clock ms at which the lease expires; Infinity while the lessor is not primary */
  readonly expiry: number;
  /** last checkpointed remaining TTL, seconds (0 = none) */
  readonly remainingTtl: number;
  /** attached keys, latin1 strings (one char per byte) */
  readonly keys: ReadonlySet<string>;
}

export interface LessorOptions {
  /** TTLs below this (seconds) are raised to it; see minLeaseTtlSeconds */
  minTtlSeconds: number;
  /** Whether the loaded lessor is primary (manages expiry). Default true: a single member leads. */
  primary?: boolean;
  /** Added to every lease's expiry when loading as primary (as `promote`). Default 0. */
  extendMs?: number;
  /** How long before `expired()` reports a lease again whose revoke was not applied. Default 7000. */
  expiredRetryMs?: number;
  /** Revokes per second the server performs; pile-ups on promote are spread to 3/4 of it. Default 1000. */
  revokeRate?: number;
  /** Checkpoint remaining TTLs at this interval (etcd's LeaseCheckpoint feature). Unset/0 = off (etcd's default). */
  checkpointIntervalMs?: number;
}

export interface TimeToLive {
  /** granted TTL, seconds */
  grantedTtl: number;
  /** seconds left, truncated toward zero as etcd reports it: 9 just after a 10 s grant, <= 0 once expired */
  remaining: number;
  /** attached keys, sorted */
  keys: string[];
}

export interface Checkpoint {
  id: bigint;
  /** seconds, rounded up */
  remainingTtl: number;
}

class Lease implements LeaseInfo {
  expiry = Infinity;
  remainingTtl = 0;
  readonly keys = new Set<string>();
  /** place in the expiry queue; only while primary */
  entry: QueueEntry | undefined;

  constructor(
    readonly id: bigint,
    public ttl: number,
  ) {}

  /** What a refresh counts from: the checkpointed remaining TTL if any, else the full TTL (seconds). */
  refreshTtl(): number {
    return this.remainingTtl > 0 ? this.remainingTtl : this.ttl;
  }
}

const byExpiry = (a: Lease, b: Lease): number => a.expiry - b.expiry || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

export class Lessor {
  private readonly leases = new Map<bigint, Lease>();
  /** key -> the lease it is attached to */
  private readonly keyLease = new Map<string, bigint>();
  private readonly expiryQueue = new LeaseQueue();
  private readonly checkpointQueue = new LeaseQueue();
  private readonly revokeWaiters = new Map<bigint, ((revoked: boolean) => void)[]>();
  private isPrimary = false;
  private visited = 0;
  readonly minTtlSeconds: number;
  private readonly expiredRetryMs: number;
  private readonly revokeRate: number;
  private readonly checkpointIntervalMs: number;

  private constructor(
    private readonly clock: Clock,
    opts: LessorOptions,
  ) {
    this.minTtlSeconds = opts.minTtlSeconds;
    this.expiredRetryMs = opts.expiredRetryMs ?? 7000;
    this.revokeRate = opts.revokeRate ?? LEASE_REVOKE_RATE;
    this.checkpointIntervalMs = opts.checkpointIntervalMs ?? 0;
  }

  /** An empty lessor (no stored leases to read). */
  static create(clock: Clock, opts: LessorOptions): Lessor {
    const lessor = new Lessor(clock, opts);
    if (opts.primary ?? true) lessor.promote(opts.extendMs ?? 0);
    return lessor;
  }

  /**
   * Reads the leases stored in `backend`. TTLs below the minimum are raised to it (in memory, as etcd
   * does). As primary, each expiry becomes now + extendMs + (checkpointed remaining TTL or granted TTL):
   * a restarted member cannot know how long its leases were kept alive while it was down.
   */
  static async load(backend: Backend, clock: Clock, opts: LessorOptions): Promise<Lessor> {
    const lessor = new Lessor(clock, opts);
    await backend.scan(LEASE_KEYS_FROM, LEASE_KEYS_TO, (_key, value) => {
      const record = decodeLeaseRecord(value);
      const lease = new Lease(record.id, Math.max(record.ttl, lessor.minTtlSeconds));
      lease.remainingTtl = record.remainingTtl;
      lessor.leases.set(lease.id, lease);
    });
    if (opts.primary ?? true) lessor.promote(opts.extendMs ?? 0);
    return lessor;
  }

  get primary(): boolean {
    return this.isPrimary;
  }

  get size(): number {
    return this.leases.size;
  }

  /** Work done on the expiry queue: entries looked at by `expired()`, and heap element moves overall. */
  get expiryQueueWork(): { visited: number; moves: number } {
    return { visited: this.visited, moves: this.expiryQueue.swaps };
  }

  // -----------------------------------------------------------------------------------------------------
  // Applied from the log (every member)

  /** API-level check, before proposing a grant (the same check is repeated when the grant is applied). */
  checkTtl(ttl: number): void {
    if (ttl > MAX_LEASE_TTL) throw LeaseErrors.leaseTtlTooLarge();
  }

  grant(id: bigint, ttl: number, batch: WriteBatch): { id: bigint; ttl: number } {
    // id 0 means "no lease"; the API picks an id before proposing, so this is a malformed entry.
    if (id === 0n) throw LeaseErrors.leaseNotFound();
    this.checkTtl(ttl);
    if (this.leases.has(id)) throw LeaseErrors.leaseExist();
    const lease = new Lease(id, Math.max(ttl, this.minTtlSeconds));
    this.leases.set(id, lease);
    this.persist(lease, batch);
    if (this.isPrimary) {
      lease.expiry = this.clock.now() + lease.ttl * 1000;
      lease.entry = this.expiryQueue.push(id, lease.expiry);
      this.scheduleCheckpoint(lease);
    }
    return { id, ttl: lease.ttl };
  }

  /**
   * Removes the lease and returns its attached keys, sorted (so every member deletes them in the same
   * order and their stores hash the same). The caller deletes them in the same write txn, one revision.
   */
  revoke(id: bigint, batch: WriteBatch): string[] {
    const lease = this.leases.get(id);
    if (!lease) throw LeaseErrors.leaseNotFound();
    this.leases.delete(id);
    if (lease.entry) this.expiryQueue.remove(lease.entry);
    lease.entry = undefined;
    const keys = [...lease.keys].sort();
    for (const key of keys) {
      if (this.keyLease.get(key) === id) this.keyLease.delete(key);
    }
    batch.del(leaseKey(id));
    this.settleWaiters(id, true);
    return keys;
  }

  /**
   * Records a lease's remaining TTL (LeaseCheckpointRequest), so that a new leader or a restarted member
   * counts from it rather than from the full TTL. Unknown leases are ignored, as in etcd. Persisted always:
   * etcd persists checkpoints once the cluster version is 3.6, which is ours.
   */
  checkpoint(id: bigint, remainingTtl: number, batch: WriteBatch): void {
    const lease = this.leases.get(id);
    if (!lease) return;
    lease.remainingTtl = remainingTtl;
    this.persist(lease, batch);
    if (this.isPrimary) this.scheduleCheckpoint(lease);
  }

  /**
   * Attaches `key` (latin1) to the lease, moving it off any lease it was attached to. Returns false when
   * the lease does not exist (e.g. a stored key-value naming a lease revoked before a crash).
   */
  attach(id: bigint, key: string): boolean {
    const lease = this.leases.get(id);
    if (!lease) return false;
    const previous = this.keyLease.get(key);
    if (previous !== undefined && previous !== id) this.leases.get(previous)?.keys.delete(key);
    lease.keys.add(key);
    this.keyLease.set(key, id);
    return true;
  }

  /** Detaches `key` from the lease; false when the lease does not exist. */
  detach(id: bigint, key: string): boolean {
    const lease = this.leases.get(id);
    if (!lease) return false;
    lease.keys.delete(key);
    if (this.keyLease.get(key) === id) this.keyLease.delete(key);
    return true;
  }

  // -----------------------------------------------------------------------------------------------------
  // Queries

  exists(id: bigint): boolean {
    return this.leases.has(id);
  }

  lookup(id: bigint): LeaseInfo | undefined {
    return this.leases.get(id);
  }

  /** The lease `key` is attached to, 0n for none. */
  leaseOf(key: string): bigint {
    return this.keyLease.get(key) ?? 0n;
  }

  /** Every lease id, soonest expiry first (etcd's LeaseLeases order). */
  list(): bigint[] {
    return [...this.leases.values()].sort(byExpiry).map((l) => l.id);
  }

  /**
   * TimeToLive as etcd's leader answers it, or undefined for an unknown lease (the API then answers
   * TTL -1, not an error). Meaningful on the primary only: elsewhere `remaining` is the "forever" value,
   * and etcd forwards the request to the leader.
   */
  timeToLive(id: bigint): TimeToLive | undefined {
    const lease = this.leases.get(id);
    if (!lease) return undefined;
    return { grantedTtl: lease.ttl, remaining: this.remainingSeconds(lease), keys: [...lease.keys].sort() };
  }

  private remainingSeconds(lease: Lease): number {
    if (lease.expiry === Infinity) return FOREVER_REMAINING_SECONDS;
    const seconds = Math.trunc((lease.expiry - this.clock.now()) / 1000);
    return seconds === 0 ? 0 : seconds; // no -0
  }

  // -----------------------------------------------------------------------------------------------------
  // Primary only

  /**
   * Keepalive: the lease now expires a full TTL from now; returns the granted TTL (the keepalive
   * response's TTL). Throws leaseNotFound for an unknown lease (the API answers TTL 0), NotPrimaryError
   * when not primary, and LeaseExpiredError when the lease has expired and its revoke is pending.
   */
  renew(id: bigint): number {
    if (!this.isPrimary) throw new NotPrimaryError();
    const lease = this.leases.get(id);
    if (!lease) throw LeaseErrors.leaseNotFound();
    const now = this.clock.now();
    if (lease.expiry <= now) throw new LeaseExpiredError(id);
    lease.expiry = now + lease.ttl * 1000;
    if (lease.entry) this.expiryQueue.update(lease.entry, lease.expiry);
    return lease.ttl;
  }

  /**
   * With checkpointing on, a renew of a lease that has a checkpointed remaining TTL must first get that
   * cleared through the log (a checkpoint of 0), or a later leader would count from the stale value.
   */
  checkpointResetNeeded(id: bigint): boolean {
    const lease = this.leases.get(id);
    return this.checkpointIntervalMs > 0 && lease !== undefined && lease.remainingTtl > 0;
  }

  /**
   * Resolves when the lease is gone: true once it is revoked (or if it does not exist), false if the
   * lessor is demoted or closed first (etcd: not primary, the client retries with the new leader).
   */
  whenRevoked(id: bigint): Promise<boolean> {
    if (!this.leases.has(id)) return Promise.resolve(true);
    if (!this.isPrimary) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiters = this.revokeWaiters.get(id);
      if (waiters) waiters.push(resolve);
      else this.revokeWaiters.set(id, [resolve]);
    });
  }

  /**
   * Up to `limit` leases whose expiry has passed, soonest first, for the server to propose revokes of
   * (etcd: every 500 ms, at most REVOKE_BATCH_LIMIT). Each reported lease is held back for the retry
   * interval; it is reported again only if its revoke has not been applied by then.
   */
  expired(limit: number): bigint[] {
    const out: bigint[] = [];
    if (!this.isPrimary) return out;
    const now = this.clock.now();
    while (out.length < limit) {
      const top = this.expiryQueue.peek();
      if (!top) break;
      this.visited++;
      if (top.time > now) break;
      this.expiryQueue.update(top, now + this.expiredRetryMs);
      const lease = this.leases.get(top.id);
      if (lease && lease.expiry <= now) out.push(top.id);
    }
    return out;
  }

  /**
   * Checkpoints that are due (only with checkpointing on): each names a lease whose remaining TTL has
   * dropped below its granted TTL, rounded up to whole seconds. The server proposes them in one
   * LeaseCheckpointRequest.
   */
  dueCheckpoints(limit: number = CHECKPOINT_BATCH_LIMIT): Checkpoint[] {
    const out: Checkpoint[] = [];
    if (!this.isPrimary || this.checkpointIntervalMs <= 0) return out;
    const now = this.clock.now();
    while (out.length < limit) {
      const top = this.checkpointQueue.peek();
      if (!top || top.time > now) break;
      this.checkpointQueue.pop();
      const lease = this.leases.get(top.id);
      if (!lease || lease.expiry <= now) continue;
      const remainingTtl = Math.ceil((lease.expiry - now) / 1000);
      if (remainingTtl >= lease.ttl) continue;
      out.push({ id: lease.id, remainingTtl });
    }
    return out;
  }

  /**
   * Becomes primary (the local member became leader and applied its predecessors' entries): every lease
   * expires `extendMs` + its (checkpointed remaining or granted) TTL from now. With many leases, those
   * that would expire in the same second beyond 3/4 of the revoke rate are pushed later, so a new leader
   * does not revoke a pile of leases at once (etcd does the same).
   */
  promote(extendMs: number): void {
    this.isPrimary = true;
    const now = this.clock.now();
    for (const lease of this.leases.values()) lease.expiry = now + extendMs + lease.refreshTtl() * 1000;
    if (this.leases.size >= this.revokeRate) this.spreadExpiries();
    const leases = [...this.leases.values()];
    const entries = this.expiryQueue.rebuild(leases.map((l) => ({ id: l.id, time: l.expiry })));
    leases.forEach((lease, i) => (lease.entry = entries[i]));
    this.checkpointQueue.clear();
    for (const lease of leases) this.scheduleCheckpoint(lease);
  }

  /** Stops managing expiry (leadership lost): leases never expire here until the next promote. */
  demote(): void {
    this.isPrimary = false;
    for (const lease of this.leases.values()) {
      lease.expiry = Infinity;
      lease.entry = undefined;
    }
    this.expiryQueue.clear();
    this.checkpointQueue.clear();
    for (const id of [...this.revokeWaiters.keys()]) this.settleWaiters(id, false);
  }

  /** Releases anyone waiting in `whenRevoked` (server shutdown). */
  close(): void {
    for (const id of [...this.revokeWaiters.keys()]) this.settleWaiters(id, false);
  }

  // -----------------------------------------------------------------------------------------------------

  private persist(lease: Lease, batch: WriteBatch): void {
    batch.put(leaseKey(lease.id), encodeLeaseRecord({ id: lease.id, ttl: lease.ttl, remainingTtl: lease.remainingTtl }));
  }

  private scheduleCheckpoint(lease: Lease): void {
    if (this.checkpointIntervalMs <= 0 || !this.isPrimary) return;
    // Only leases that live longer than one interval can lose anything worth a checkpoint.
    if (lease.refreshTtl() > Math.floor(this.checkpointIntervalMs / 1000)) {
      this.checkpointQueue.push(lease.id, this.clock.now() + this.checkpointIntervalMs);
    }
  }

  private settleWaiters(id: bigint, revoked: boolean): void {
    const waiters = this.revokeWaiters.get(id);
    if (!waiters) return;
    this.revokeWaiters.delete(id);
    for (const resolve of waiters) resolve(revoked);
  }

  /**
   * Walks leases in expiry order in one-second windows; once a window holds more than `target` leases,
   * the n-th one is moved to windowStart + n/target s. The window then ends at windowStart + the delay
   * just added (etcd's arithmetic, kept so both pick the same expiries); a later lease beyond that end
   * opens a new window.
   */
  private spreadExpiries(): void {
    const target = Math.floor((3 * this.revokeRate) / 4);
    if (target <= 0) return;
    const sorted = [...this.leases.values()].sort(byExpiry);
    let windowStart = sorted[0].expiry;
    let windowEnd = windowStart + 1000;
    let count = 0;
    for (const lease of sorted) {
      if (lease.expiry > windowEnd) {
        windowStart = lease.expiry;
        windowEnd = windowStart + 1000;
        count = 1;
        continue;
      }
      count++;
      if (count <= target) continue;
      const delay = (count * 1000) / target - (lease.expiry - windowStart);
      lease.expiry += delay;
      windowEnd = windowStart + delay;
    }
  }
}
