// etcdserverpb.Lease: Grant and Revoke go through the log; KeepAlive, TimeToLive and Leases are answered
// by the leader's lessor (this member, while clusters have one member).
import * as grpc from '@grpc/grpc-js';
import { LeaseExpiredError } from '../lease';
import { LeaseGrantRequest, LeaseRevokeRequest } from '../pb';
import { EtcdServer } from '../server';
import { isEtcdError } from '../util/errors';
import { ApiDeps, ServiceModule } from './service';

export function leaseService({ server, log }: ApiDeps): ServiceModule {
  return {
    service: 'etcdserverpb.Lease',
    unary: {
      LeaseGrant: (r: LeaseGrantRequest) => server.leaseGrant(r),
      LeaseRevoke: (r: LeaseRevokeRequest) => server.leaseRevoke(r),
      LeaseTimeToLive: (r: { ID: string; keys: boolean }) => {
        const id = BigInt(r.ID);
        const t = server.lessor.timeToLive(id);
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
      LeaseLeases: () => ({ header: server.header(), leases: server.lessor.list().map((id) => ({ ID: id.toString() })) }),
    },
    bidi: {
      LeaseKeepAlive: (call) => keepAliveStream(server, call, log),
    },
  };
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
  try {
    const ttl = server.lessor.renew(id);
    return { header: server.header(), ID: id.toString(), TTL: ttl };
  } catch (err) {
    if (err instanceof LeaseExpiredError) {
      // Answer only once the revoke is applied, so a client told "gone" finds the keys gone too.
      await server.lessor.whenRevoked(id);
      return { header: server.header(), ID: id.toString(), TTL: 0 };
    }
    if (isEtcdError(err) && err.code === grpc.status.NOT_FOUND) return { header: server.header(), ID: id.toString(), TTL: 0 };
    throw err;
  }
}
