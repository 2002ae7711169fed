// v3lockpb.Lock (Lock, Unlock): clientv3 concurrency's mutex, run on the server (the shared recipe
// pieces are in concurrency.ts).
import { Int64, ResponseHeader } from '../pb';
import {
  CallScope,
  EMPTY,
  asRecipeError,
  bestEffort,
  createRevisionIs,
  firstCreated,
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
} from './concurrency';
import { ApiDeps, ServiceModule } from './service';
// ---------------------------------------------------------------------------------------------------
// The Lock service

interface LockRequest {
  name: Buffer;
  lease: Int64;
}

interface UnlockRequest {
  key: Buffer;
}

export function lockService({ server, log }: ApiDeps): ServiceModule {
  const unlock = (key: Buffer) => server.deleteRange({ key, range_end: EMPTY, prev_kv: false }) as Promise<{ header: ResponseHeader }>;

  /** clientv3 concurrency's Mutex.Lock, run on the server. */
  async function lock(r: LockRequest, scope: CallScope): Promise<{ header: ResponseHeader; key: Buffer }> {
    const lease = await sessionLease(server, r.lease);
    const prefix = recipePrefix(r.name);
    const key = sessionKey(prefix, lease);
    // Queue up (or find our key from an earlier call with the same lease) and read the holder, in one txn.
    const t = await runTxn(server, {
      compare: [createRevisionIs(key, 0)],
      success: [
        { request: 'request_put', request_put: putRequest(key, EMPTY, lease.toString()) },
        { request: 'request_range', request_range: firstCreated(prefix) },
      ],
      failure: [
        { request: 'request_range', request_range: rangeRequest(key) },
        { request: 'request_range', request_range: firstCreated(prefix) },
      ],
    });
    const myRev = t.succeeded ? Number(t.header.revision) : Number(rangeKvs(t, 0)[0].create_revision);
    const holder = rangeKvs(t, 1);
    if (holder.length === 0 || Number(holder[0].create_revision) === myRev) return { header: t.header, key };
    try {
      await waitDeletes(server, scope, prefix, myRev - 1);
      scope.throwIfCancelled();
    } catch (err) {
      // Give up our place in the queue, so the holders after us are not stuck behind a ghost.
      await bestEffort(() => unlock(key), log, 'failed to delete the key of an abandoned lock request');
      throw err;
    }
    // Our turn; but the lease may have expired (and taken our key) while we waited.
    const own = runRange(server, rangeRequest(key));
    if (own.kvs.length === 0) throw recipeError('mutex: session is expired');
    return { header: own.header, key };
  }

  return {
    service: 'v3lockpb.Lock',
    unary: {
      Lock: async (r: LockRequest, call) => {
        const scope = new CallScope(call);
        try {
          return await lock(r, scope);
        } catch (err) {
          throw asRecipeError(err);
        } finally {
          scope.settle();
        }
      },
      Unlock: async (r: UnlockRequest) => {
        try {
          const resp = await unlock(r.key);
          return { header: resp.header };
        } catch (err) {
          throw asRecipeError(err);
        }
      },
    },
  };
}

