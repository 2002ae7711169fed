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

/** An error factory: each call makes a fresh EtcdError (own stack) with etcd's code and text. */
export const etcdError = (code: GrpcStatus, message: string) => () => new EtcdError(code, message);
const e = etcdError;
const S = GrpcStatus;

/** Factories, so each throw gets a fresh stack. Names follow etcd's rpctypes where one exists. */
export const Errors = {
  emptyKey: e(S.INVALID_ARGUMENT, 'etcdserver: key is not provided'),
  keyNotFound: e(S.INVALID_ARGUMENT, 'etcdserver: key not found'),
  invalidSortOption: e(S.INVALID_ARGUMENT, 'etcdserver: invalid sort option'),
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
  timeoutDueToLeaderFail: e(S.UNAVAILABLE, 'etcdserver: request timed out, possibly due to previous leader failure'),
  timeoutDueToConnectionLost: e(S.UNAVAILABLE, 'etcdserver: request timed out, possibly due to connection lost'),
  leaderChanged: e(S.UNAVAILABLE, 'etcdserver: leader changed'),
  notLeader: e(S.FAILED_PRECONDITION, 'etcdserver: not leader'),
  unhealthy: e(S.UNAVAILABLE, 'etcdserver: unhealthy cluster'),
  memberExist: e(S.FAILED_PRECONDITION, 'etcdserver: member ID already exist'),
  peerURLExist: e(S.FAILED_PRECONDITION, 'etcdserver: Peer URLs already exists'),
  memberNotEnoughStarted: e(S.FAILED_PRECONDITION, 'etcdserver: re-configuration failed due to not enough started members'),
  memberBadURLs: e(S.INVALID_ARGUMENT, 'etcdserver: given member URLs are invalid'),
  memberNotLearner: e(S.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member'),
  learnerNotReady: e(S.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member which is in sync with leader'),
  tooManyLearners: e(S.FAILED_PRECONDITION, 'etcdserver: too many learner members in cluster'),
  notSupportedForLearner: e(S.FAILED_PRECONDITION, 'etcdserver: rpc not supported for learner'),
  // etcd has no gRPC mapping for these: they reach clients with code Unknown
  timeoutLeaderTransfer: e(S.UNKNOWN, 'etcdserver: request timed out, leader transfer took too long'),
  memberRemoved: e(S.UNKNOWN, 'etcdserver: the member has been permanently removed from the cluster'),
  badLeaderTransferee: e(S.FAILED_PRECONDITION, 'etcdserver: bad leader transferee'),
} as const;

/** Rebuilds an error that crossed the peer transport as text ("code|message") into the same EtcdError. */
export function errorFromWire(text: string): Error {
  const bar = text.indexOf('|');
  const code = Number(text.slice(0, bar));
  if (bar > 0 && Number.isInteger(code)) return new EtcdError(code as GrpcStatus, text.slice(bar + 1));
  return new Error(text);
}

export function errorToWire(err: unknown): string {
  if (err instanceof EtcdError) return `${err.code}|${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

export function isEtcdError(err: unknown): err is EtcdError {
  return err instanceof EtcdError;
}
