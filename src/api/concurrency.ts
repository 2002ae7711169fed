// The server-side pieces of etcd's client "concurrency" recipes (session, mutex, election) shared by
// v3lockpb.Lock (lock.ts) and v3electionpb.Election (election.ts): etcd serves both services by running
// those recipes against its own KV, so these helpers do the same steps directly on the server — a txn,
// a range, a watch on the watchable store — in the same order, with the same keys, values and errors.
//
// What clients can observe and therefore follows etcd exactly:
//  - keys are `<name>/<lease id in lower-case hex>` (Go's %x of the signed id); a lease of 0 means
//    "make me one": a fresh 60-second lease that nobody keeps alive (etcd's default session TTL);
//  - waiters are ordered by create revision and each waits for the deletion of the key with the
//    largest create revision below its own, re-checking after every deletion;
//  - every error reaches the client as gRPC code UNKNOWN with etcd's message (etcd's services see the
//    KV errors through its in-process client, which turns them into plain errors);
//  - a call the client cancels while it waits deletes the key created for it.
import * as grpc from '@grpc/grpc-js';
import { EventType, WatchResponseOut, WatchSink, Watcher } from '../mvcc';
import { Compare, CompareResult, CompareTarget, Int64, KeyValuePb, PutRequest, RangeRequest, RangeResponse, ResponseHeader, SortOrder, SortTarget, TxnRequest, TxnResponse } from '../pb';
import { EtcdServer } from '../server';
import { EtcdError } from '../util/errors';
import { ApiDeps } from './service';

/** TTL of the lease a Lock or Campaign without a lease gets (clientv3 concurrency's default session TTL). */
export const DEFAULT_SESSION_TTL_SECONDS = 60;

export const EMPTY = Buffer.alloc(0);

// ---------------------------------------------------------------------------------------------------
// Errors and cancellation

/** An error as etcd's lock/election services return it: the message, with gRPC code UNKNOWN. */
export function recipeError(message: string): EtcdError {
  return new EtcdError(grpc.status.UNKNOWN, message);
}

/**
 * What a KV error becomes on its way out of a lock/election call: etcd's message with code UNKNOWN.
 * Anything that is not an etcd error (a bug) goes on as it is, for the gRPC layer to log.
 */
export function asRecipeError(err: unknown): unknown {
  if (!(err instanceof EtcdError) || err instanceof CallCancelledError || err.code === grpc.status.UNKNOWN) return err;
  return recipeError(err.message);
}

/** A watch's start revision was compacted away (etcd's clients end the recipe with this error). */
export class WatchCompactedError extends EtcdError {
  constructor() {
    super(grpc.status.UNKNOWN, 'etcdserver: mvcc: required revision has been compacted');
  }
}

/** The client went away (cancel, deadline, connection lost) while the call was running. */
export class CallCancelledError extends EtcdError {
  constructor() {
    super(grpc.status.CANCELLED, 'context canceled');
  }
}

/**
 * Cancellation of one gRPC call. grpc-js emits 'cancelled' also after a call completed normally, so
 * the scope is settled when the handler is done and ignores anything after that.
 */
export class CallScope {
  private isCancelled = false;
  private settled = false;
  private readonly listeners = new Set<() => void>();

  constructor(call: { cancelled?: boolean; on(event: 'cancelled', fn: () => void): unknown }) {
    call.on('cancelled', () => this.cancel());
    if (call.cancelled) this.isCancelled = true;
  }

  get cancelled(): boolean {
    return this.isCancelled;
  }

  private cancel(): void {
    if (this.settled || this.isCancelled) return;
    this.isCancelled = true;
    for (const fn of [...this.listeners]) fn();
    this.listeners.clear();
  }

  /** Runs fn once if the call is cancelled (at once if it already is); returns an unsubscribe. */
  onCancel(fn: () => void): () => void {
    if (this.isCancelled) {
      fn();
      return () => undefined;
    }
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  throwIfCancelled(): void {
    if (this.isCancelled) throw new CallCancelledError();
  }

  /** The handler is done: later cancel notices mean nothing. */
  settle(): void {
    this.settled = true;
    this.listeners.clear();
  }
}

// ---------------------------------------------------------------------------------------------------
// Requests, as clientv3's op helpers build them

/** The first key after every key that starts with `prefix` (clientv3's WithPrefix range end). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all 0xff: every key from prefix on
}

export function rangeRequest(key: Buffer, fields: Partial<RangeRequest> = {}): RangeRequest {
  return {
    key,
    range_end: EMPTY,
    limit: 0,
    revision: 0,
    sort_order: SortOrder.NONE,
    sort_target: SortTarget.KEY,
    serializable: false,
    keys_only: false,
    count_only: false,
    min_mod_revision: 0,
    max_mod_revision: 0,
    min_create_revision: 0,
    max_create_revision: 0,
    ...fields,
  };
}

/** The oldest key under prefix (clientv3's WithFirstCreate): the lock holder, the election leader. */
export function firstCreated(prefix: Buffer): RangeRequest {
  return rangeRequest(prefix, { range_end: prefixEnd(prefix), sort_target: SortTarget.CREATE, sort_order: SortOrder.ASCEND, limit: 1 });
}

/** The newest key under prefix created at or before maxCreateRev (WithLastCreate + WithMaxCreateRev). */
function lastCreatedUpTo(prefix: Buffer, maxCreateRev: number): RangeRequest {
  return rangeRequest(prefix, {
    range_end: prefixEnd(prefix),
    sort_target: SortTarget.CREATE,
    sort_order: SortOrder.DESCEND,
    limit: 1,
    max_create_revision: maxCreateRev,
  });
}

export function putRequest(key: Buffer, value: Buffer, lease: string): PutRequest {
  return { key, value, lease, prev_kv: false, ignore_value: false, ignore_lease: false };
}

export function createRevisionIs(key: Buffer, rev: number): Compare {
  return { result: CompareResult.EQUAL, target: CompareTarget.CREATE, key, target_union: 'create_revision', create_revision: rev, range_end: EMPTY };
}

export type Txn = TxnResponse & { header: ResponseHeader };
export type Range = RangeResponse & { header: ResponseHeader };

export async function runTxn(server: EtcdServer, r: TxnRequest): Promise<Txn> {
  return (await server.txn(r)) as Txn;
}

export function runRange(server: EtcdServer, r: RangeRequest): Range {
  return server.rangeLocal(r) as Range;
}

/** The kvs of the i-th response of a txn (which is a range). */
export function rangeKvs(t: Txn, i: number): KeyValuePb[] {
  return t.responses[i]?.response_range?.kvs ?? [];
}

// ---------------------------------------------------------------------------------------------------
// Sessions and keys

/**
 * The lease a call works under: the client's, or — for 0 — a new one of 60 s that etcd grants and then
 * leaves alone (its session is orphaned at once, so the key lives until the lease expires or is revoked).
 * A lease that does not exist is not checked here: the put that uses it fails with etcd's error.
 */
export async function sessionLease(server: EtcdServer, lease: Int64): Promise<bigint> {
  const id = BigInt(lease || 0);
  if (id !== 0n) return id;
  const granted = (await server.leaseGrant({ TTL: DEFAULT_SESSION_TTL_SECONDS, ID: 0 })) as { ID: Int64 };
  return BigInt(granted.ID);
}

/** `<prefix><lease id in hex>`, as Go's fmt %x prints an int64 (negative ids keep their sign). */
export function sessionKey(prefix: Buffer, lease: bigint): Buffer {
  return Buffer.concat([prefix, Buffer.from(lease.toString(16), 'latin1')]);
}

/** A recipe's keys live under `<name>/`. */
export function recipePrefix(name: Buffer): Buffer {
  return Buffer.concat([name, Buffer.from('/')]);
}

// ---------------------------------------------------------------------------------------------------
// Waiting on the watchable store

/** What a watch callback answers: keep going (undefined), refuse this response for now, or finish. */
export const REFUSE = Symbol('refuse');
export type WatchStep<T> = undefined | typeof REFUSE | { value: T };

/**
 * Watches [key, end) from fromRev on the server's watchable store and hands each response to onResponse
 * until it returns { value }. REFUSE leaves the response with the store, which offers it again later
 * (backpressure without buffering here). Rejects when the call is cancelled, or with etcd's compaction
 * error if the history from fromRev is gone. The watcher is always removed at the end.
 */
export function watchUntil<T>(
  server: EtcdServer,
  scope: CallScope,
  key: Buffer,
  end: Buffer | undefined,
  fromRev: number,
  onResponse: (resp: WatchResponseOut) => WatchStep<T>,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let finished = false;
    let unsubscribe: () => void = () => undefined;
    const finish = () => {
      finished = true;
      unsubscribe();
      // Not from inside send(): the store may still be working on this watcher in the same tick.
      queueMicrotask(() => server.watchable.cancel(watcher));
    };
    const sink: WatchSink = {
      send: (resp) => {
        if (finished) return true;
        if (resp.compactRevision !== undefined) {
          finish();
          reject(new WatchCompactedError());
          return true;
        }
        let step: WatchStep<T>;
        try {
          step = onResponse(resp);
        } catch (err) {
          finish();
          reject(err);
          return true;
        }
        if (step === REFUSE) return false;
        if (step !== undefined) {
          finish();
          resolve(step.value);
        }
        return true;
      },
    };
    // The store never calls send() from inside watch(), so `watcher` is set before finish() can run.
    const watcher: Watcher = server.watchable.watch(0, key, end, fromRev, {}, sink);
    unsubscribe = scope.onCancel(() => {
      if (finished) return;
      finish();
      reject(new CallCancelledError());
    });
  });
}

/** Resolves once `key` is deleted at a revision >= fromRev. */
function waitDelete(server: EtcdServer, scope: CallScope, key: Buffer, fromRev: number): Promise<void> {
  return watchUntil(server, scope, key, undefined, fromRev, (resp) => (resp.events.some((ev) => ev.type === EventType.DELETE) ? { value: undefined } : undefined));
}

/**
 * Waits until no key under prefix with create revision <= maxCreateRev is left: each round finds the
 * newest such key and waits for its deletion. The watch starts right after the revision the range read,
 * in the same tick (nothing can be applied in between), so a delete can never slip through unseen. The
 * rounds are bounded by the keys that exist now: a key created later has a larger create revision.
 */
export async function waitDeletes(server: EtcdServer, scope: CallScope, prefix: Buffer, maxCreateRev: number): Promise<void> {
  for (;;) {
    scope.throwIfCancelled();
    const r = runRange(server, lastCreatedUpTo(prefix, maxCreateRev));
    if (r.kvs.length === 0) return;
    await waitDelete(server, scope, r.kvs[0].key, Number(r.header.revision) + 1);
  }
}

/** Runs a cleanup step whose failure must not hide the error that caused it. */
export async function bestEffort(step: () => Promise<unknown>, log: ApiDeps['log'], what: string): Promise<void> {
  try {
    await step();
  } catch (err) {
    log.warn({ err }, what);
  }
}
