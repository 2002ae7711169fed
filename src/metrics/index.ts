// Prometheus metrics with etcd's names, types, label names and buckets, so dashboards and alert rules written
// for etcd work unchanged. One registry per process; modules update the metric objects exported here. The
// HELP texts are our own words; names, types, labels and bucket bounds are the contract.
import * as client from 'prom-client';

export const registry = new client.Registry();
// process_* (resident memory, start time, open/max fds, cpu seconds) under the Go process collector's names
// and types, which etcd's dashboards read; plus Node's own runtime metrics (nodejs_*).
client.collectDefaultMetrics({ register: registry });

const exp = (start: number, count: number) => client.exponentialBuckets(start, 2, count);

/** Label names of the gRPC server metrics, in the order our series print them. */
export const GRPC_LABEL_NAMES = ['grpc_type', 'grpc_service', 'grpc_method'] as const;

export const metrics = {
  hasLeader: new client.Gauge({ name: 'etcd_server_has_leader', help: '1 while this member knows a leader, 0 otherwise.', registers: [registry] }),
  isLeader: new client.Gauge({ name: 'etcd_server_is_leader', help: '1 while this member is the leader, 0 otherwise.', registers: [registry] }),
  leaderChanges: new client.Counter({ name: 'etcd_server_leader_changes_seen_total', help: 'Leader changes this member has observed.', registers: [registry] }),
  // etcd exposes both as gauges set from the raft commit and apply indexes, despite the _total suffix.
  proposalsCommitted: new client.Gauge({ name: 'etcd_server_proposals_committed_total', help: 'Raft commit index: consensus proposals committed so far.', registers: [registry] }),
  proposalsApplied: new client.Gauge({ name: 'etcd_server_proposals_applied_total', help: 'Raft applied index: consensus proposals applied so far.', registers: [registry] }),
  proposalsPending: new client.Gauge({ name: 'etcd_server_proposals_pending', help: 'Proposals made by this member whose callers are still waiting for the outcome.', registers: [registry] }),
  proposalsFailed: new client.Counter({ name: 'etcd_server_proposals_failed_total', help: 'Proposals that failed (no leader, timeout, dropped).', registers: [registry] }),
  serverId: new client.Gauge({ name: 'etcd_server_id', help: 'Always 1; the server_id label carries this member\'s id in hex.', labelNames: ['server_id'], registers: [registry] }),
  serverVersion: new client.Gauge({ name: 'etcd_server_version', help: 'Always 1; the server_version label carries the etcd API version served.', labelNames: ['server_version'], registers: [registry] }),
  quotaBackendBytes: new client.Gauge({ name: 'etcd_server_quota_backend_bytes', help: 'Backend size quota in bytes (beyond it the NOSPACE alarm is raised).', registers: [registry] }),
  walFsyncDuration: new client.Histogram({ name: 'etcd_disk_wal_fsync_duration_seconds', help: 'Time to make the raft log durable, per synced write.', buckets: exp(0.001, 14), registers: [registry] }),
  backendCommitDuration: new client.Histogram({ name: 'etcd_disk_backend_commit_duration_seconds', help: 'Time to commit an applied batch to the backend.', buckets: exp(0.001, 14), registers: [registry] }),
  dbTotalSize: new client.Gauge({ name: 'etcd_mvcc_db_total_size_in_bytes', help: 'Bytes the backend occupies on disk.', registers: [registry] }),
  dbTotalSizeInUse: new client.Gauge({ name: 'etcd_mvcc_db_total_size_in_use_in_bytes', help: 'Bytes of the backend holding live data (the rest is reclaimable by defragmentation).', registers: [registry] }),
  keysTotal: new client.Gauge({ name: 'etcd_debugging_mvcc_keys_total', help: 'Keys currently present (not deleted).', registers: [registry] }),
  readIndexFailed: new client.Counter({ name: 'etcd_server_read_indexes_failed_total', help: 'Linearizable read index requests that failed.', registers: [registry] }),
  slowReadIndex: new client.Counter({ name: 'etcd_server_slow_read_indexes_total', help: 'Read index requests that timed out or lagged the leader.', registers: [registry] }),
  isLearner: new client.Gauge({ name: 'etcd_server_is_learner', help: '1 while this member is a learner, 0 otherwise.', registers: [registry] }),
  mvccRange: new client.Counter({ name: 'etcd_mvcc_range_total', help: 'Ranges served by this member\'s key-value store.', registers: [registry] }),
  mvccPut: new client.Counter({ name: 'etcd_mvcc_put_total', help: 'Puts applied by this member\'s key-value store.', registers: [registry] }),
  mvccDelete: new client.Counter({ name: 'etcd_mvcc_delete_total', help: 'Deletes applied by this member\'s key-value store.', registers: [registry] }),
  mvccTxn: new client.Counter({ name: 'etcd_mvcc_txn_total', help: 'Transactions applied by this member\'s key-value store.', registers: [registry] }),
  // Payload bytes of every gRPC message on the client port (requests in, responses and stream messages out),
  // as etcd counts them: the encoded protobuf size, before HTTP/2 framing.
  clientGrpcReceivedBytes: new client.Counter({ name: 'etcd_network_client_grpc_received_bytes_total', help: 'Bytes of gRPC messages received from clients.', registers: [registry] }),
  clientGrpcSentBytes: new client.Counter({ name: 'etcd_network_client_grpc_sent_bytes_total', help: 'Bytes of gRPC messages sent to clients.', registers: [registry] }),
  grpcStarted: new client.Counter({ name: 'grpc_server_started_total', help: 'RPCs started on the client port.', labelNames: GRPC_LABEL_NAMES, registers: [registry] }),
  grpcHandled: new client.Counter({ name: 'grpc_server_handled_total', help: 'RPCs finished on the client port, by status code.', labelNames: [...GRPC_LABEL_NAMES, 'grpc_code'], registers: [registry] }),
  grpcMsgReceived: new client.Counter({ name: 'grpc_server_msg_received_total', help: 'Messages received from clients, per method.', labelNames: GRPC_LABEL_NAMES, registers: [registry] }),
  grpcMsgSent: new client.Counter({ name: 'grpc_server_msg_sent_total', help: 'Messages sent to clients, per method.', labelNames: GRPC_LABEL_NAMES, registers: [registry] }),
};

/** Prometheus' default buckets, the layout of the Go gRPC server's latency histogram that etcd uses. */
const GRPC_HANDLING_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

let grpcHandling: client.Histogram<(typeof GRPC_LABEL_NAMES)[number]> | undefined;

/**
 * `--metrics=extensive`: adds grpc_server_handling_seconds (time from the start of an RPC to its status), which
 * etcd registers only in that mode and which etcd's slow-request alert reads. Idempotent.
 */
export function enableGrpcHandlingHistogram(): void {
  grpcHandling ??= new client.Histogram({
    name: 'grpc_server_handling_seconds',
    help: 'Time from the start of an RPC to its status on the client port.',
    labelNames: GRPC_LABEL_NAMES,
    buckets: GRPC_HANDLING_BUCKETS,
    registers: [registry],
  });
}

/** The gRPC latency histogram when `--metrics=extensive` is on, else undefined. */
export function grpcHandlingSeconds(): client.Histogram<(typeof GRPC_LABEL_NAMES)[number]> | undefined {
  return grpcHandling;
}

/** The status code names of Go's codes.Code.String(), which grpc_code label values use. */
export const GRPC_CODE_NAMES: readonly string[] = [
  'OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists', 'PermissionDenied',
  'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange', 'Unimplemented', 'Internal', 'Unavailable',
  'DataLoss', 'Unauthenticated',
];

/**
 * Creates every series of one method at zero (all status codes for handled), as etcd's gRPC interceptor does
 * at start: a rate() over a series that appears only with its first failure would miss that failure, so the
 * failed-request alerts and the RPC panels need the series to exist beforehand.
 */
export function initGrpcMethodMetrics(labels: { grpc_type: string; grpc_service: string; grpc_method: string }): void {
  metrics.grpcStarted.inc(labels, 0);
  metrics.grpcMsgReceived.inc(labels, 0);
  metrics.grpcMsgSent.inc(labels, 0);
  for (const code of GRPC_CODE_NAMES) metrics.grpcHandled.inc({ ...labels, grpc_code: code }, 0);
  grpcHandling?.zero(labels);
}

/** Seconds elapsed since `startNs` (a process.hrtime.bigint() reading). */
export function secondsSince(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs) / 1e9;
}
