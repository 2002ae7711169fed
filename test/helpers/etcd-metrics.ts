/**
 * The metrics etcd's Grafana dashboard and its Prometheus alert rules (etcd's monitoring mixin) read, as data:
 * name, type, label names, histogram bucket boundaries, and who needs each one. etcd-ts must expose every entry
 * with exactly these facts, so a dashboard or rule written for etcd works unchanged against it.
 *
 * The facts were taken from a reference etcd 3.6 `/metrics` scrape and from the expressions of the mixin's
 * dashboard panels and alerts (names only); test/integration/metrics.test.ts checks them against both a live
 * reference etcd cluster and a live etcd-ts cluster, so a wrong entry here fails there.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram';

/**
 * Who reads the metric:
 * - 'dashboard': a panel of etcd's Grafana dashboard queries it;
 * - 'alert': one of etcd's alert rules queries it;
 * - 'operations': not in the mixin, but commonly read when running etcd (member identity and version, key count,
 *   process health, stream message counts); kept so an operator's own rules and panels work too.
 */
export type MetricUser = 'dashboard' | 'alert' | 'operations';

export interface EtcdMetric {
  name: string;
  type: MetricType;
  /** Label names of the series, sorted, without `le` (histograms add it to `_bucket` series only). */
  labels: readonly string[];
  /** Upper bounds of a histogram's finite buckets, ascending (the `+Inf` bucket is implied). */
  buckets?: readonly number[];
  users: readonly MetricUser[];
  /** Why it is on the list: which panel or rule reads it, in a few words. */
  why: string;
  /**
   * Exposed only when the member runs with `--metrics=extensive` (etcd registers the gRPC latency histogram only
   * then); scrapes of members with the default `--metrics=basic` do not carry it.
   */
  extensiveOnly?: boolean;
  /**
   * Series of this metric appear only once the member has peers (a one-member cluster has no `To`/`From` series,
   * so the family is absent on etcd and empty on etcd-ts).
   */
  needsPeers?: boolean;
  /**
   * Series appear only with the first event counted (etcd creates no zero series for them): a healthy cluster
   * may not show the family at all, on etcd or on etcd-ts.
   */
  onlyAfterFailure?: boolean;
}

/** `count` upper bounds start, start×2, start×4, ... (Prometheus' ExponentialBuckets(start, 2, count)). */
export function exponentialBuckets(start: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(start * 2 ** i);
  return out;
}

/** Prometheus' DefBuckets, the default of the Go gRPC server latency histogram. */
export const PROMETHEUS_DEFAULT_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const GRPC_LABELS = ['grpc_method', 'grpc_service', 'grpc_type'] as const;
const GRPC_HANDLED_LABELS = ['grpc_code', 'grpc_method', 'grpc_service', 'grpc_type'] as const;

/** Every metric etcd's dashboard and alerts use, plus the operations set, grouped by concern. */
export const ETCD_DASHBOARD_METRICS: readonly EtcdMetric[] = [
  // --- server state
  { name: 'etcd_server_has_leader', type: 'gauge', labels: [], users: ['dashboard', 'alert'], why: '"Up" panel and the cluster variable; no-leader alert' },
  { name: 'etcd_server_is_leader', type: 'gauge', labels: [], users: ['operations'], why: 'which member leads (per-member leader panels, operator checks)' },
  { name: 'etcd_server_leader_changes_seen_total', type: 'counter', labels: [], users: ['dashboard', 'alert'], why: 'leader elections per day panel; frequent leader changes alert' },
  // etcd keeps the two *_total proposal series as gauges (set from raft indexes), despite the suffix.
  { name: 'etcd_server_proposals_committed_total', type: 'gauge', labels: [], users: ['dashboard'], why: 'raft proposals panel (commit rate)' },
  { name: 'etcd_server_proposals_applied_total', type: 'gauge', labels: [], users: ['dashboard'], why: 'raft proposals panel (apply rate)' },
  { name: 'etcd_server_proposals_pending', type: 'gauge', labels: [], users: ['dashboard'], why: 'raft proposals panel (pending)' },
  { name: 'etcd_server_proposals_failed_total', type: 'counter', labels: [], users: ['dashboard', 'alert'], why: 'raft proposals panel (failure rate); failed proposals alert' },
  { name: 'etcd_server_quota_backend_bytes', type: 'gauge', labels: [], users: ['alert'], why: 'database quota low space and excessive growth alerts' },
  { name: 'etcd_server_id', type: 'gauge', labels: ['server_id'], users: ['operations'], why: 'member id per instance (membership rules count it)' },
  { name: 'etcd_server_version', type: 'gauge', labels: ['server_version'], users: ['operations'], why: 'running version per member (rolling upgrade checks)' },

  // --- disk
  { name: 'etcd_disk_wal_fsync_duration_seconds', type: 'histogram', labels: [], buckets: exponentialBuckets(0.001, 14), users: ['dashboard', 'alert'], why: 'disk sync duration panel; high fsync durations alerts' },
  { name: 'etcd_disk_backend_commit_duration_seconds', type: 'histogram', labels: [], buckets: exponentialBuckets(0.001, 14), users: ['dashboard', 'alert'], why: 'disk sync duration panel (DB fsync); high commit durations alert' },

  // --- database
  { name: 'etcd_mvcc_db_total_size_in_bytes', type: 'gauge', labels: [], users: ['dashboard', 'alert'], why: 'DB size panel; quota, growth and fragmentation alerts' },
  { name: 'etcd_mvcc_db_total_size_in_use_in_bytes', type: 'gauge', labels: [], users: ['alert'], why: 'high fragmentation ratio alert' },
  { name: 'etcd_debugging_mvcc_keys_total', type: 'gauge', labels: [], users: ['operations'], why: 'number of live keys (capacity panels)' },

  // --- network
  { name: 'etcd_network_client_grpc_received_bytes_total', type: 'counter', labels: [], users: ['dashboard'], why: 'client traffic in panel' },
  { name: 'etcd_network_client_grpc_sent_bytes_total', type: 'counter', labels: [], users: ['dashboard'], why: 'client traffic out panel' },
  { name: 'etcd_network_peer_received_bytes_total', type: 'counter', labels: ['From'], users: ['dashboard'], why: 'peer traffic in panel', needsPeers: true },
  { name: 'etcd_network_peer_sent_bytes_total', type: 'counter', labels: ['To'], users: ['dashboard'], why: 'peer traffic out panel', needsPeers: true },
  { name: 'etcd_network_peer_sent_failures_total', type: 'counter', labels: ['To'], users: ['alert'], why: 'members down alert (send failures to a peer)', needsPeers: true, onlyAfterFailure: true },
  { name: 'etcd_network_peer_round_trip_time_seconds', type: 'histogram', labels: ['To'], buckets: exponentialBuckets(0.0001, 16), users: ['dashboard', 'alert'], why: 'peer round trip time panel; member communication slow alert', needsPeers: true },

  // --- gRPC server (the labels are the Go gRPC interceptor's)
  { name: 'grpc_server_started_total', type: 'counter', labels: GRPC_LABELS, users: ['dashboard'], why: 'RPC rate panel; active watch and lease streams (started minus handled)' },
  { name: 'grpc_server_handled_total', type: 'counter', labels: GRPC_HANDLED_LABELS, users: ['dashboard', 'alert'], why: 'RPC failed rate and active streams panels; failed gRPC requests alerts' },
  { name: 'grpc_server_msg_received_total', type: 'counter', labels: GRPC_LABELS, users: ['operations'], why: 'stream message rates (watch/keepalive traffic)' },
  { name: 'grpc_server_msg_sent_total', type: 'counter', labels: GRPC_LABELS, users: ['operations'], why: 'stream message rates (watch events sent)' },
  { name: 'grpc_server_handling_seconds', type: 'histogram', labels: GRPC_LABELS, buckets: PROMETHEUS_DEFAULT_BUCKETS, users: ['alert'], why: 'slow gRPC requests alert (p99 of unary calls)', extensiveOnly: true },

  // --- process (the Go process collector's names; etcd-ts' runtime reports the same facts under them)
  { name: 'process_resident_memory_bytes', type: 'gauge', labels: [], users: ['dashboard'], why: 'memory panel' },
  { name: 'process_start_time_seconds', type: 'gauge', labels: [], users: ['operations'], why: 'uptime and restart detection' },
  { name: 'process_open_fds', type: 'gauge', labels: [], users: ['operations'], why: 'file descriptor use (with process_max_fds)' },
  { name: 'process_max_fds', type: 'gauge', labels: [], users: ['operations'], why: 'file descriptor limit' },
  { name: 'process_cpu_seconds_total', type: 'counter', labels: [], users: ['operations'], why: 'CPU use' },
];

/** The entries a given user needs. */
export function metricsFor(user: MetricUser): EtcdMetric[] {
  return ETCD_DASHBOARD_METRICS.filter((m) => m.users.includes(user));
}

/** Looks an entry up by name; throws for a name not on the list (a typo in a test should not pass silently). */
export function etcdMetric(name: string): EtcdMetric {
  const m = ETCD_DASHBOARD_METRICS.find((x) => x.name === name);
  if (!m) throw new Error(`${name} is not on the etcd dashboard/alert metric list`);
  return m;
}
