// v3electionpb.Election (Campaign, Proclaim, Leader, Observe, Resign): etcd's election recipe run on
// the server, step for step as etcd runs its client concurrency package against itself (see concurrency.ts for
// the shared pieces: sessions, keys, waiting for deletes on the watchable store).
//
// An election `<name>` is the set of keys `<name>/<lease hex>`; the leader is the one with the smallest
// create revision, and its value is the election's current proclamation. Campaign waits (by watch, not
// polling) for every older candidate's key to go; a cancelled Campaign removes its own key.
import * as grpc from '@grpc/grpc-js';
import { EventType } from '../mvcc';
import { Int64, KeyValuePb, ResponseHeader } from '../pb';
import { EtcdServer } from '../server';
import {
  CallCancelledError,
  CallScope,
  REFUSE,
  Txn,
  WatchCompactedError,
  asRecipeError,
  bestEffort,
  createRevisionIs,
  firstCreated,
  prefixEnd,
  putRequest,
  rangeKvs,
  rangeRequest,
  recipeError,
  recipePrefix,
  runRange,
  runTxn,
  sessionKey,
  sessionLease,
  waitDeletes,
  watchUntil,
} from './concurrency';
import { ApiDeps, ServiceModule } from './service';

interface LeaderKey {
  name: Buffer;
  key: Buffer;
  rev: Int64;
  lease: Int64;
}

interface CampaignRequest {
  name: Buffer;
  lease: Int64;
  value: Buffer;
}

interface ProclaimRequest {
  leader: LeaderKey | null;
  value: Buffer;
}

interface LeaderRequest {
  name: Buffer;
}

interface ResignRequest {
  leader: LeaderKey | null;
}

const notLeader = () => recipeError('election: not leader');
const noLeader = () => recipeError('election: no leader');
const missingLeaderKey = () => recipeError('"leader" field must be provided');

/** Proclaim's txn: the new value, only while the key is still the one created at rev. */
function proclaimTxn(server: EtcdServer, key: Buffer, rev: number, lease: bigint, value: Buffer): Promise<Txn> {
  return runTxn(server, {
    compare: [createRevisionIs(key, rev)],
    success: [{ request: 'request_put', request_put: putRequest(key, value, lease.toString()) }],
    failure: [],
  });
}

/** Resign's txn: delete the key, only while it is still the one created at rev. */
function resignTxn(server: EtcdServer, key: Buffer, rev: number): Promise<Txn> {
  return runTxn(server, {
    compare: [createRevisionIs(key, rev)],
    success: [{ request: 'request_delete_range', request_delete_range: { key, range_end: Buffer.alloc(0), prev_kv: false } }],
    failure: [],
  });
}

/**
 * A server stream's writes with backpressure: once grpc-js's buffer is full, watch responses are refused
 * (the store keeps them and offers them again) until the stream drains.
 */
class StreamOut {
  blocked = false;

  constructor(
    private readonly call: grpc.ServerWritableStream<unknown, unknown>,
    private readonly server: EtcdServer,
  ) {}

  write(msg: object): void {
    if (this.call.write(msg) || this.blocked) return;
    this.blocked = true;
    this.call.once('drain', () => {
      this.blocked = false;
      this.server.watchable.kick();
    });
  }

  /** Resolves once the stream can take more (the observer's next round waits here, as etcd's does). */
  ready(scope: CallScope): Promise<void> {
    if (!this.blocked) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const unsubscribe = scope.onCancel(() => reject(new CallCancelledError()));
      this.call.once('drain', () => {
        unsubscribe();
        resolve();
      });
    });
  }
}

export function electionService({ server, log }: ApiDeps): ServiceModule {
  /** clientv3 concurrency's Election.Campaign, run on the server. */
  async function campaign(r: CampaignRequest, scope: CallScope): Promise<object> {
    const lease = await sessionLease(server, r.lease);
    const prefix = recipePrefix(r.name);
    const key = sessionKey(prefix, lease);
    const t = await runTxn(server, {
      compare: [createRevisionIs(key, 0)],
      success: [{ request: 'request_put', request_put: putRequest(key, r.value, lease.toString()) }],
      failure: [{ request: 'request_range', request_range: rangeRequest(key) }],
    });
    let leaderRev = Number(t.header.revision);
    if (!t.succeeded) {
      // This lease already campaigns here: keep its place in line, but take the new value.
      const existing = rangeKvs(t, 0)[0];
      leaderRev = Number(existing.create_revision);
      if (!existing.value.equals(r.value)) {
        let proclaimed: Txn;
        try {
          proclaimed = await proclaimTxn(server, key, leaderRev, lease, r.value);
        } catch (err) {
          await bestEffort(() => resignTxn(server, key, leaderRev), log, 'failed to resign after a failed proclaim');
          throw err;
        }
        // The key changed hands in between: etcd's follow-up resign targets no key and deletes nothing.
        if (!proclaimed.succeeded) throw notLeader();
      }
    }
    try {
      await waitDeletes(server, scope, prefix, leaderRev - 1);
      scope.throwIfCancelled();
    } catch (err) {
      // A campaign the client gave up on must not become leader later: take its key back out.
      if (scope.cancelled) await bestEffort(() => resignTxn(server, key, leaderRev), log, 'failed to resign an abandoned campaign');
      throw err;
    }
    // The header is the one of the campaign's first txn, as etcd answers.
    return { header: t.header, leader: { name: r.name, key, rev: leaderRev, lease: lease.toString() } };
  }

  async function proclaim(r: ProclaimRequest): Promise<{ header: ResponseHeader }> {
    if (!r.leader) throw missingLeaderKey();
    const lease = await sessionLease(server, r.leader.lease);
    const t = await proclaimTxn(server, r.leader.key, Number(r.leader.rev), lease, r.value);
    if (!t.succeeded) throw notLeader();
    return { header: t.header };
  }

  async function resign(r: ResignRequest): Promise<{ header: ResponseHeader }> {
    if (!r.leader) throw missingLeaderKey();
    // etcd opens a session here too, so a lease of 0 gets granted (and left to expire) even for a resign.
    await sessionLease(server, r.leader.lease);
    const t = await resignTxn(server, r.leader.key, Number(r.leader.rev));
    return { header: t.header };
  }

  function leader(r: LeaderRequest): { header: ResponseHeader; kv: KeyValuePb } {
    const found = runRange(server, firstCreated(recipePrefix(r.name)));
    if (found.kvs.length === 0) throw noLeader();
    return { header: found.header, kv: found.kvs[0] };
  }

  /**
   * clientv3 concurrency's Election.Observe: the current leader, then each new value it proclaims, then
   * — once its key is deleted — the next leader, and so on until the client goes away. An election with
   * no leader sends nothing until the first candidate's key appears.
   */
  async function observe(r: LeaderRequest, call: grpc.ServerWritableStream<unknown, unknown>, scope: CallScope): Promise<void> {
    const out = new StreamOut(call, server);
    const prefix = recipePrefix(r.name);
    // One round per leader; each round ends only when that leader's key is deleted.
    for (;;) {
      await out.ready(scope);
      scope.throwIfCancelled();
      const current = runRange(server, firstCreated(prefix));
      let kv: KeyValuePb;
      let rev: number;
      if (current.kvs.length > 0) {
        kv = current.kvs[0];
        rev = Number(current.header.revision);
      } else {
        // No leader: the first key put under the prefix is the next one (deletes are not leaders).
        kv = await watchUntil(server, scope, prefix, prefixEnd(prefix), Number(current.header.revision) + 1, (resp) => {
          const put = resp.events.find((ev) => ev.type === EventType.PUT);
          return put ? { value: put.kv as KeyValuePb } : undefined;
        });
        rev = Number(kv.mod_revision);
      }
      out.write({ header: server.header(rev), kv });
      await watchUntil(server, scope, kv.key, undefined, rev + 1, (resp) => {
        if (out.blocked) return REFUSE;
        for (const ev of resp.events) {
          if (ev.type === EventType.DELETE) return { value: undefined };
          out.write({ header: server.header(resp.revision), kv: ev.kv });
        }
        return undefined;
      });
    }
  }

  /** Unary calls: errors as etcd's election service returns them; cancellation scoped to the call. */
  const unary =
    <R, T>(fn: (r: R, scope: CallScope) => Promise<T> | T) =>
    async (r: R, call: grpc.ServerUnaryCall<unknown, unknown>): Promise<T> => {
      const scope = new CallScope(call);
      try {
        return await fn(r, scope);
      } catch (err) {
        throw asRecipeError(err);
      } finally {
        scope.settle();
      }
    };

  return {
    service: 'v3electionpb.Election',
    unary: {
      Campaign: unary(campaign),
      Proclaim: unary(proclaim),
      Leader: unary(leader),
      Resign: unary(resign),
    },
    serverStream: {
      Observe: async (r: LeaderRequest, call) => {
        const scope = new CallScope(call);
        try {
          await observe(r, call, scope);
        } catch (err) {
          // The client left: the stream is gone already; like etcd, the call counts as Canceled.
          if (err instanceof CallCancelledError) throw err;
          // etcd's observer stops quietly (the stream ends OK) when its watch is compacted away.
          if (err instanceof WatchCompactedError) return;
          throw asRecipeError(err);
        } finally {
          scope.settle();
        }
      },
    },
  };
}
