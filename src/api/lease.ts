// etcdserverpb.Lease: Grant and Revoke go through the log; KeepAlive, TimeToLive and Leases are answered
// by the leader's lessor (a follower asks the leader over the peer port).
import * as grpc from '@grpc/grpc-js';
import { LeaseGrantRequest, LeaseRevokeRequest } from '../pb';
import { EtcdServer } from '../server';
import { isEtcdError } from '../util/errors';
import { AuthErrors } from '../auth';
import { ApiDeps, ServiceModule } from './service';

export function leaseService({ server, log }: ApiDeps): ServiceModule {
  return {
    service: 'etcdserverpb.Lease',
    unary: {
      LeaseGrant: (r: LeaseGrantRequest) => server.leaseGrant(r),
      LeaseRevoke: (r: LeaseRevokeRequest) => server.leaseRevoke(r),
      LeaseTimeToLive: async (r: { ID: string; keys: boolean }) => {
        const id = BigInt(r.ID);
        checkLeaseRead(server, [id]);
        // the leader keeps lease time: a follower asks it
        const t = await server.leaseTimeToLive(id);
        // An unknown (or already revoked) lease is TTL -1, not an error, as in etcd.
        if (!t) return { header: server.header(), ID: r.ID, TTL: -1, grantedTTL: 0, keys: [] };
        return {
          header: server.header(),
          ID: r.ID,
          TTL: t.remaining,
          grantedTTL: t.grantedTtl,
          keys: r.keys ? t.keys.map((k) => Buffer.from(k, 'latin1')) : [],
        };
      },
      LeaseLeases: () => {
        checkLeaseRead(server, server.lessor.list());
        return leasesResponse(server);
      },
    },
    bidi: {
      LeaseKeepAlive: (call) => keepAliveStream(server, call, log),
    },
  };
}

function leasesResponse(server: EtcdServer): object {
  return { header: server.header(), leases: server.lessor.list().map((id) => ({ ID: id.toString() })) };
}

/** With auth on, a non-admin user may look at a lease only if it may read every key attached to it (etcd's rule). */
function checkLeaseRead(server: EtcdServer, ids: bigint[]): void {
  const user = server.currentUser();
  if (user === undefined) return;
  if (!user) throw AuthErrors.userEmpty();
  if (server.auth.isAdmin(user)) return;
  for (const id of ids) {
    for (const key of server.lessor.timeToLive(id)?.keys ?? []) server.auth.checkPermission(user, Buffer.from(key, 'latin1'), undefined, 'read');
  }
}

/** One response per request, in order; an unknown or revoked lease is TTL 0 (clients read that as "lost"). */
function keepAliveStream(server: EtcdServer, call: grpc.ServerDuplexStream<unknown, unknown>, log: ApiDeps['log']): void {
  let chain = Promise.resolve();
  let closed = false;
  call.on('data', (req: { ID: string }) => {
    chain = chain.then(async () => {
      if (closed) return;
      const resp = await renewOnce(server, BigInt(req.ID));
      if (!closed) call.write(resp);
    });
    chain.catch((err: unknown) => {
      log.warn({ err }, 'lease keepalive failed');
      if (!closed) {
        closed = true;
        call.emit('error', { code: isEtcdError(err) ? err.code : grpc.status.UNKNOWN, details: err instanceof Error ? err.message : String(err) });
      }
    });
  });
  const close = () => {
    closed = true;
  };
  call.on('end', () => {
    chain.then(() => {
      if (!closed) call.end();
      closed = true;
    });
  });
  call.on('error', close);
  call.on('cancelled', close);
}

async function renewOnce(server: EtcdServer, id: bigint): Promise<object> {
  // on the leader the lessor renews; a follower forwards to the leader (EtcdServer.leaseRenew)
  const ttl = await server.leaseRenew(id);
  return { header: server.header(), ID: id.toString(), TTL: ttl };
}
