// Errors that cross the API. Each is etcd's error: the same message text and the same gRPC status code,
// because clients (etcdctl, clientv3, Patroni, kube-apiserver) match on both.
import { status as GrpcStatus } from '@grpc/grpc-js';

export class EtcdError extends Error {
  constructor(
    readonly code: GrpcStatus,
    message: string,
  ) {
    super(message);
    this.name = 'EtcdError';
  }
}

const e = (code: GrpcStatus, message: string) => () => new EtcdError(code, message);
const S = GrpcStatus;

/** Factories, so each throw gets a fresh stack. Names follow etcd's rpctypes where one exists. */
export const Errors = {
  emptyKey: e(S.INVALID_ARGUMENT, 'etcdserver: key is not provided'),
  keyNotFound: e(S.INVALID_ARGUMENT, 'etcdserver: key not found'),
  valueProvided: e(S.INVALID_ARGUMENT, 'etcdserver: value is provided'),
  leaseProvided: e(S.INVALID_ARGUMENT, 'etcdserver: lease is provided'),
  tooManyOps: e(S.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request'),
  duplicateKey: e(S.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request'),
  requestTooLarge: e(S.INVALID_ARGUMENT, 'etcdserver: request is too large'),
  compacted: e(S.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'),
  futureRev: e(S.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'),
  noSpace: e(S.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded'),
  tooManyRequests: e(S.RESOURCE_EXHAUSTED, 'etcdserver: too many requests'),
  leaseNotFound: e(S.NOT_FOUND, 'etcdserver: requested lease not found'),
  memberNotFound: e(S.NOT_FOUND, 'etcdserver: member not found'),
  notCapable: e(S.FAILED_PRECONDITION, 'etcdserver: not capable'),
  noLeader: e(S.UNAVAILABLE, 'etcdserver: no leader'),
  stopped: e(S.UNAVAILABLE, 'etcdserver: server stopped'),
  timeout: e(S.UNAVAILABLE, 'etcdserver: request timed out'),
  corrupt: e(S.DATA_LOSS, 'etcdserver: corrupt cluster'),
  canceled: e(S.CANCELLED, 'etcdserver: request canceled'),
} as const;

export function isEtcdError(err: unknown): err is EtcdError {
  return err instanceof EtcdError;
}
