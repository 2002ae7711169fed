// Prometheus metrics with etcd's names, types and buckets, so etcd's dashboards and alert rules work
// unchanged. One registry per process; modules update the metric objects exported here.
import * as client from 'prom-client';

export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });

const exp = (start: number, count: number) => client.exponentialBuckets(start, 2, count);

export const metrics = {
  hasLeader: new client.Gauge({ name: 'etcd_server_has_leader', help: 'Whether or not a leader exists. 1 is existence, 0 is not.', registers: [registry] }),
  isLeader: new client.Gauge({ name: 'etcd_server_is_leader', help: 'Whether or not this member is a leader. 1 if is, 0 otherwise.', registers: [registry] }),
  leaderChanges: new client.Counter({ name: 'etcd_server_leader_changes_seen_total', help: 'The number of leader changes seen.', registers: [registry] }),
  proposalsCommitted: new client.Gauge({ name: 'etcd_server_proposals_committed_total', help: 'The total number of consensus proposals committed.', registers: [registry] }),
  proposalsApplied: new client.Gauge({ name: 'etcd_server_proposals_applied_total', help: 'The total number of consensus proposals applied.', registers: [registry] }),
  proposalsPending: new client.Gauge({ name: 'etcd_server_proposals_pending', help: 'The current number of pending proposals to commit.', registers: [registry] }),
  proposalsFailed: new client.Counter({ name: 'etcd_server_proposals_failed_total', help: 'The total number of failed proposals seen.', registers: [registry] }),
  serverId: new client.Gauge({ name: 'etcd_server_id', help: 'Server or member ID in hexadecimal format. 1 for \'server_id\' label with current ID.', labelNames: ['server_id'], registers: [registry] }),
  serverVersion: new client.Gauge({ name: 'etcd_server_version', help: 'Which version is running. 1 for \'server_version\' label with current version.', labelNames: ['server_version'], registers: [registry] }),
  quotaBackendBytes: new client.Gauge({ name: 'etcd_server_quota_backend_bytes', help: 'Current backend storage quota size in bytes.', registers: [registry] }),
  walFsyncDuration: new client.Histogram({ name: 'etcd_disk_wal_fsync_duration_seconds', help: 'The latency distributions of fsync called by WAL.', buckets: exp(0.001, 14), registers: [registry] }),
  backendCommitDuration: new client.Histogram({ name: 'etcd_disk_backend_commit_duration_seconds', help: 'The latency distributions of commit called by backend.', buckets: exp(0.001, 14), registers: [registry] }),
  dbTotalSize: new client.Gauge({ name: 'etcd_mvcc_db_total_size_in_bytes', help: 'Total size of the underlying database physically allocated in bytes.', registers: [registry] }),
  dbTotalSizeInUse: new client.Gauge({ name: 'etcd_mvcc_db_total_size_in_use_in_bytes', help: 'Total size of the underlying database logically in use in bytes.', registers: [registry] }),
  keysTotal: new client.Gauge({ name: 'etcd_debugging_mvcc_keys_total', help: 'Total number of keys.', registers: [registry] }),
  readIndexFailed: new client.Counter({ name: 'etcd_server_read_indexes_failed_total', help: 'The total number of failed read indexes seen.', registers: [registry] }),
  slowReadIndex: new client.Counter({ name: 'etcd_server_slow_read_indexes_total', help: 'The total number of pending read indexes not in sync with leader\'s or timed out read index requests.', registers: [registry] }),
  isLearner: new client.Gauge({ name: 'etcd_server_is_learner', help: 'Whether or not this member is a learner. 1 if is, 0 otherwise.', registers: [registry] }),
  mvccRange: new client.Counter({ name: 'etcd_mvcc_range_total', help: 'Total number of ranges seen by this member.', registers: [registry] }),
  mvccPut: new client.Counter({ name: 'etcd_mvcc_put_total', help: 'Total number of puts seen by this member.', registers: [registry] }),
  mvccDelete: new client.Counter({ name: 'etcd_mvcc_delete_total', help: 'Total number of deletes seen by this member.', registers: [registry] }),
  mvccTxn: new client.Counter({ name: 'etcd_mvcc_txn_total', help: 'Total number of txns seen by this member.', registers: [registry] }),
  grpcStarted: new client.Counter({ name: 'grpc_server_started_total', help: 'Total number of RPCs started on the server.', labelNames: ['grpc_type', 'grpc_service', 'grpc_method'], registers: [registry] }),
  grpcHandled: new client.Counter({ name: 'grpc_server_handled_total', help: 'Total number of RPCs completed on the server, regardless of success or failure.', labelNames: ['grpc_type', 'grpc_service', 'grpc_method', 'grpc_code'], registers: [registry] }),
  grpcMsgReceived: new client.Counter({ name: 'grpc_server_msg_received_total', help: 'Total number of RPC stream messages received on the server.', labelNames: ['grpc_type', 'grpc_service', 'grpc_method'], registers: [registry] }),
  grpcMsgSent: new client.Counter({ name: 'grpc_server_msg_sent_total', help: 'Total number of gRPC stream messages sent by the server.', labelNames: ['grpc_type', 'grpc_service', 'grpc_method'], registers: [registry] }),
};

/** Seconds elapsed since `startNs` (a process.hrtime.bigint() reading). */
export function secondsSince(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs) / 1e9;
}
