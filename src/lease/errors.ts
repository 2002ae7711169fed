// The lease errors. Those that reach clients are etcd's (same message, same gRPC code: clients match on
// both); the two classes below never reach a client as such — they tell the server what to do instead.
import { status as GrpcStatus } from '@grpc/grpc-js';
import { EtcdError, Errors } from '../util/errors';

export const LeaseErrors = {
  /** Also what a keepalive of an unknown lease turns into TTL 0, and TimeToLive into TTL -1. */
  leaseNotFound: Errors.leaseNotFound,
  leaseExist: () => new EtcdError(GrpcStatus.FAILED_PRECONDITION, 'etcdserver: lease already exists'),
  leaseTtlTooLarge: () => new EtcdError(GrpcStatus.OUT_OF_RANGE, 'etcdserver: too large lease TTL'),
} as const;

/**
 * Renew on a member whose lessor is not the primary (not the leader): the request must be forwarded to
 * the leader, as etcd does, rather than answered here.
 */
export class NotPrimaryError extends Error {
  constructor() {
    super('not a primary lessor');
    this.name = 'NotPrimaryError';
  }
}

/**
 * Renew of a lease that has expired but whose revoke has not been applied yet. etcd does not answer such
 * a keepalive until the revoke is applied (then: lease not found, TTL 0) or the lessor is demoted (then:
 * not primary, retry elsewhere), so that a client told "expired" finds the lease's keys already gone.
 * The server waits on `Lessor.whenRevoked(id)`.
 */
export class LeaseExpiredError extends Error {
  constructor(readonly id: bigint) {
    super(`lease ${id} has expired and is waiting to be revoked`);
    this.name = 'LeaseExpiredError';
  }
}
