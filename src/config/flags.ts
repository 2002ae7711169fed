// The table of every command-line flag etcd 3.6 accepts: name, value syntax, default (as etcd's flag
// default, i.e. the raw value before any server-side substitution), the --help group, and our own one-line
// description. Names, defaults and accepted values follow etcd 3.6.16; the descriptions are ours.
import type { IntKind } from './goparse';

export type FlagKind =
  | 'string'
  | 'bool'
  | IntKind
  | 'duration'
  | 'urls' // comma-separated URL list, deduplicated and sorted (flags.UniqueURLs)
  | 'strings' // comma-separated list kept as given (flags.StringsValue)
  | 'uniqueStrings' // comma-separated set, sorted (flags.UniqueStringsValue)
  | 'select' // one of `choices`
  | 'selectMulti' // comma-separated subset of `choices`, accumulating over repeats
  | 'featureGates'
  | 'ignored'; // pre-v3 flag: accepted as a boolean-style flag and ignored

export type FlagGroup =
  | 'Member'
  | 'Clustering'
  | 'Security'
  | 'Auth'
  | 'Profiling and Monitoring'
  | 'Logging'
  | 'Distributed tracing'
  | 'Former experimental features'
  | 'Unsafe'
  | 'Command';

export interface FlagSpec {
  name: string;
  kind: FlagKind;
  /** etcd's flag default, in flag syntax. */
  def: string;
  group: FlagGroup;
  help: string;
  /** What --help shows as the default when the raw default is a placeholder (e.g. 0 meaning "10m"). */
  shown?: string;
  /** Unit word used in "expected ..." error messages for numbers. */
  unit?: string;
  choices?: readonly string[];
  /** Values accepted verbatim by a 'urls' flag ("*" for --cors). */
  urlExceptions?: readonly string[];
  /** Deprecation warning printed when the flag is set (etcd's text where etcd has one). */
  deprecated?: string;
  /** For a deprecated --experimental-* value flag: the flag that replaces it. */
  replacedBy?: string;
  hidden?: boolean;
}

const F = (s: FlagSpec): FlagSpec => s;

const expDeprecated = (old: string, repl: string, v = 'v3.6', v7 = 'v3.7'): string =>
  `--${old} is deprecated in ${v} and will be decommissioned in ${v7}. Use '--${repl}' instead.`;
const gateDeprecated = (old: string, gate: string, v = 'v3.6', v7 = 'v3.7'): string =>
  `--${old} is deprecated in ${v} and will be decommissioned in ${v7}. Use '--feature-gates=${gate}=true' instead.`;

export const DEFAULT_LOG_ROTATION_CONFIG =
  '{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}';
export const DEFAULT_INITIAL_CLUSTER = 'default=http://localhost:2380';

export const FLAGS: readonly FlagSpec[] = [
  // ---------------------------------------------------------------- Member
  F({ name: 'name', kind: 'string', def: 'default', group: 'Member', help: 'Name of this member (must match its entry in --initial-cluster).' }),
  F({ name: 'data-dir', kind: 'string', def: '', shown: '${name}.etcd', group: 'Member', help: 'Directory holding the member data.' }),
  F({ name: 'wal-dir', kind: 'string', def: '', group: 'Member', help: 'Separate directory for the write-ahead log (default: inside --data-dir).' }),
  F({ name: 'snapshot-count', kind: 'uint64', def: '10000', group: 'Member', unit: 'committed entries', help: 'Committed entries between two snapshots (0 = 10000).' }),
  F({ name: 'heartbeat-interval', kind: 'uint', def: '100', group: 'Member', unit: 'milliseconds', help: 'Leader heartbeat period, in milliseconds.' }),
  F({ name: 'election-timeout', kind: 'uint', def: '1000', group: 'Member', unit: 'milliseconds', help: 'Election timeout in milliseconds; at least 5x the heartbeat, at most 50000.' }),
  F({ name: 'initial-election-tick-advance', kind: 'bool', def: 'true', group: 'Member', help: 'Fast-forward election ticks at boot so the first election happens sooner.' }),
  F({ name: 'listen-peer-urls', kind: 'urls', def: 'http://localhost:2380', group: 'Member', help: 'URLs to accept peer (raft) traffic on; hosts must be IPs or localhost.' }),
  F({ name: 'listen-client-urls', kind: 'urls', def: 'http://localhost:2379', group: 'Member', help: 'URLs to serve clients (gRPC, and HTTP unless --listen-client-http-urls is set).' }),
  F({ name: 'listen-client-http-urls', kind: 'urls', def: '', group: 'Member', help: 'Extra URLs serving HTTP only; when set, HTTP is no longer served on --listen-client-urls.' }),
  F({ name: 'max-snapshots', kind: 'uint', def: '5', group: 'Member', unit: 'files', help: 'Snapshot files to keep (0 = unlimited). Deprecated.', deprecated: '--max-snapshots is deprecated in 3.6 and will be decommissioned in 3.8.' }),
  F({ name: 'max-wals', kind: 'uint', def: '5', group: 'Member', unit: 'files', help: 'WAL files to keep (0 = unlimited).' }),
  F({ name: 'memory-mlock', kind: 'bool', def: 'false', group: 'Member', help: 'Lock the process memory in RAM.' }),
  F({ name: 'quota-backend-bytes', kind: 'int64', def: '0', group: 'Member', unit: 'bytes', help: 'Backend size that raises the NOSPACE alarm (0 = 2 GiB, negative = no quota; above 8 GiB is discouraged).' }),
  F({ name: 'backend-bbolt-freelist-type', kind: 'string', def: '', shown: 'map', group: 'Member', help: "Storage freelist type: 'array' or 'map'." }),
  F({ name: 'backend-batch-interval', kind: 'duration', def: '0s', group: 'Member', help: 'Longest time before a backend transaction is committed (0 = 100ms).' }),
  F({ name: 'backend-batch-limit', kind: 'int', def: '0', group: 'Member', unit: 'operations', help: 'Most operations before a backend transaction is committed (0 = 10000).' }),
  F({ name: 'max-txn-ops', kind: 'uint', def: '128', group: 'Member', unit: 'operations', help: 'Most operations allowed in one transaction.' }),
  F({ name: 'max-request-bytes', kind: 'uint', def: '1572864', group: 'Member', unit: 'bytes', help: 'Largest client request accepted, in bytes.' }),
  F({ name: 'max-concurrent-streams', kind: 'uint32', def: '4294967295', group: 'Member', unit: 'streams', help: 'Most concurrent gRPC streams per client connection.' }),
  F({ name: 'grpc-keepalive-min-time', kind: 'duration', def: '5s', group: 'Member', help: 'Shortest interval a client may ping the server at.' }),
  F({ name: 'grpc-keepalive-interval', kind: 'duration', def: '2h', group: 'Member', help: 'Server-to-client ping interval (0 disables).' }),
  F({ name: 'grpc-keepalive-timeout', kind: 'duration', def: '20s', group: 'Member', help: 'Wait for a ping answer before closing the connection (0 disables).' }),
  F({ name: 'socket-reuse-port', kind: 'bool', def: 'false', group: 'Member', help: 'Set SO_REUSEPORT on listeners.' }),
  F({ name: 'socket-reuse-address', kind: 'bool', def: 'false', group: 'Member', help: 'Set SO_REUSEADDR on listeners.' }),
  F({ name: 'enable-grpc-gateway', kind: 'bool', def: 'true', group: 'Member', help: 'Serve the JSON/HTTP gateway to the v3 API.' }),
  F({ name: 'raft-read-timeout', kind: 'duration', def: '5s', group: 'Member', help: 'Read timeout on peer connections (at least 5s).' }),
  F({ name: 'raft-write-timeout', kind: 'duration', def: '5s', group: 'Member', help: 'Write timeout on peer connections (at least 5s).' }),
  F({ name: 'feature-gates', kind: 'featureGates', def: '', group: 'Member', help: 'Comma-separated Name=true|false switches for server features:' }),

  // ---------------------------------------------------------------- Clustering
  F({ name: 'initial-advertise-peer-urls', kind: 'urls', def: 'http://localhost:2380', group: 'Clustering', help: "This member's peer URLs as announced to the other members." }),
  F({ name: 'initial-cluster', kind: 'string', def: DEFAULT_INITIAL_CLUSTER, shown: '${name}=<initial-advertise-peer-urls>', group: 'Clustering', help: 'Bootstrap membership as name=peer-url pairs, comma-separated.' }),
  F({ name: 'initial-cluster-state', kind: 'select', choices: ['new', 'existing'], def: 'new', group: 'Clustering', help: "'new' to bootstrap a cluster, 'existing' to join one (ignored once the member has data)." }),
  F({ name: 'initial-cluster-token', kind: 'string', def: 'etcd-cluster', group: 'Clustering', help: 'Token that keeps separately bootstrapped clusters apart.' }),
  F({ name: 'advertise-client-urls', kind: 'urls', def: 'http://localhost:2379', group: 'Clustering', help: "This member's client URLs as announced to clients (required when --listen-client-urls is set)." }),
  F({ name: 'discovery', kind: 'string', def: '', group: 'Clustering', help: 'v2 discovery URL (not supported by etcd-ts).' }),
  F({ name: 'discovery-token', kind: 'string', def: '', group: 'Clustering', help: 'v3 discovery token (not supported by etcd-ts).' }),
  F({ name: 'discovery-endpoints', kind: 'uniqueStrings', def: '', group: 'Clustering', help: 'v3 discovery service endpoints (not supported by etcd-ts).' }),
  F({ name: 'discovery-dial-timeout', kind: 'duration', def: '2s', group: 'Clustering', help: 'v3 discovery dial timeout.' }),
  F({ name: 'discovery-request-timeout', kind: 'duration', def: '5s', group: 'Clustering', help: 'v3 discovery request timeout.' }),
  F({ name: 'discovery-keepalive-time', kind: 'duration', def: '2s', group: 'Clustering', help: 'v3 discovery keepalive time.' }),
  F({ name: 'discovery-keepalive-timeout', kind: 'duration', def: '6s', group: 'Clustering', help: 'v3 discovery keepalive timeout.' }),
  F({ name: 'discovery-insecure-transport', kind: 'bool', def: 'true', group: 'Clustering', help: 'v3 discovery without TLS.' }),
  F({ name: 'discovery-insecure-skip-tls-verify', kind: 'bool', def: 'false', group: 'Clustering', help: 'v3 discovery without server certificate checks.' }),
  F({ name: 'discovery-cert', kind: 'string', def: '', group: 'Clustering', help: 'v3 discovery client certificate.' }),
  F({ name: 'discovery-key', kind: 'string', def: '', group: 'Clustering', help: 'v3 discovery client key.' }),
  F({ name: 'discovery-cacert', kind: 'string', def: '', group: 'Clustering', help: 'v3 discovery CA bundle.' }),
  F({ name: 'discovery-user', kind: 'string', def: '', group: 'Clustering', help: 'v3 discovery user[:password].' }),
  F({ name: 'discovery-password', kind: 'string', def: '', group: 'Clustering', help: 'v3 discovery password.' }),
  F({ name: 'discovery-fallback', kind: 'select', choices: ['exit', 'proxy'], def: 'exit', group: 'Clustering', help: "What to do when discovery fails; only 'exit' remains." }),
  F({ name: 'discovery-proxy', kind: 'string', def: '', group: 'Clustering', help: 'HTTP proxy for v2 discovery.' }),
  F({ name: 'discovery-srv', kind: 'string', def: '', group: 'Clustering', help: 'DNS domain for SRV-record bootstrap (not supported by etcd-ts).' }),
  F({ name: 'discovery-srv-name', kind: 'string', def: '', group: 'Clustering', help: 'Suffix of the SRV names queried.' }),
  F({ name: 'strict-reconfig-check', kind: 'bool', def: 'true', group: 'Clustering', help: 'Refuse membership changes that would lose quorum.' }),
  F({ name: 'pre-vote', kind: 'bool', def: 'true', group: 'Clustering', help: 'Use raft pre-vote so a rejoining member does not disrupt the leader.' }),
  F({ name: 'auto-compaction-retention', kind: 'string', def: '0', group: 'Clustering', help: "History to keep: periodic mode takes a duration or plain hours, revision mode a count; '0' disables." }),
  F({ name: 'auto-compaction-mode', kind: 'string', def: 'periodic', group: 'Clustering', help: "How to read --auto-compaction-retention: 'periodic' or 'revision'." }),
  F({ name: 'v2-deprecation', kind: 'selectMulti', choices: ['write-only', 'write-only-skip-check', 'write-only-drop-data', 'gone'], def: '', shown: 'write-only', group: 'Clustering', help: "v2 store phase; only 'write-only-skip-check' changes anything. Deprecated.", deprecated: '--v2-deprecation is deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input.' }),

  // ---------------------------------------------------------------- Security
  F({ name: 'cert-file', kind: 'string', def: '', group: 'Security', help: 'Server certificate for client connections.' }),
  F({ name: 'key-file', kind: 'string', def: '', group: 'Security', help: 'Server key for client connections.' }),
  F({ name: 'client-cert-auth', kind: 'bool', def: 'false', group: 'Security', help: 'Require clients to present a certificate signed by --trusted-ca-file.' }),
  F({ name: 'client-cert-file', kind: 'string', def: '', group: 'Security', help: 'Certificate this server uses as a client (default: --cert-file).' }),
  F({ name: 'client-key-file', kind: 'string', def: '', group: 'Security', help: 'Key this server uses as a client (default: --key-file).' }),
  F({ name: 'client-crl-file', kind: 'string', def: '', group: 'Security', help: 'Revocation list for client certificates.' }),
  F({ name: 'client-cert-allowed-hostname', kind: 'strings', def: '', group: 'Security', help: 'Comma-separated SAN hostnames a client certificate must carry.' }),
  F({ name: 'trusted-ca-file', kind: 'string', def: '', group: 'Security', help: 'CA bundle for verifying client certificates.' }),
  F({ name: 'auto-tls', kind: 'bool', def: 'false', group: 'Security', help: 'Serve clients with a generated self-signed certificate.' }),
  F({ name: 'peer-cert-file', kind: 'string', def: '', group: 'Security', help: 'Certificate for peer connections.' }),
  F({ name: 'peer-key-file', kind: 'string', def: '', group: 'Security', help: 'Key for peer connections.' }),
  F({ name: 'peer-client-cert-auth', kind: 'bool', def: 'false', group: 'Security', help: 'Require peers to present a certificate signed by --peer-trusted-ca-file.' }),
  F({ name: 'peer-client-cert-file', kind: 'string', def: '', group: 'Security', help: 'Certificate used when dialing peers (default: --peer-cert-file).' }),
  F({ name: 'peer-client-key-file', kind: 'string', def: '', group: 'Security', help: 'Key used when dialing peers (default: --peer-key-file).' }),
  F({ name: 'peer-trusted-ca-file', kind: 'string', def: '', group: 'Security', help: 'CA bundle for verifying peer certificates.' }),
  F({ name: 'peer-cert-allowed-cn', kind: 'strings', def: '', group: 'Security', help: 'Comma-separated CNs a peer certificate may carry.' }),
  F({ name: 'peer-cert-allowed-hostname', kind: 'strings', def: '', group: 'Security', help: 'Comma-separated SAN hostnames a peer certificate may carry.' }),
  F({ name: 'peer-auto-tls', kind: 'bool', def: 'false', group: 'Security', help: 'Use a generated self-signed certificate for peers when no peer cert/key is given.' }),
  F({ name: 'peer-crl-file', kind: 'string', def: '', group: 'Security', help: 'Revocation list for peer certificates.' }),
  F({ name: 'peer-skip-client-san-verification', kind: 'bool', def: 'false', group: 'Security', help: "Do not check the SAN of a peer's client certificate." }),
  F({ name: 'experimental-peer-skip-client-san-verification', kind: 'bool', def: 'false', group: 'Security', help: 'Old name of --peer-skip-client-san-verification.', replacedBy: 'peer-skip-client-san-verification', deprecated: expDeprecated('experimental-peer-skip-client-san-verification', 'peer-skip-client-san-verification') }),
  F({ name: 'self-signed-cert-validity', kind: 'uint', def: '1', group: 'Security', unit: 'years', help: 'Validity of generated certificates, in years.' }),
  F({ name: 'cipher-suites', kind: 'strings', def: '', group: 'Security', help: 'Comma-separated TLS cipher suites (Go names) for client and peer TLS.' }),
  F({ name: 'tls-min-version', kind: 'string', def: 'TLS1.2', group: 'Security', help: "Lowest TLS version: 'TLS1.2' or 'TLS1.3'." }),
  F({ name: 'tls-max-version', kind: 'string', def: '', group: 'Security', help: "Highest TLS version: 'TLS1.2' or 'TLS1.3' (empty: newest available)." }),
  F({ name: 'cors', kind: 'urls', urlExceptions: ['*'], def: '*', group: 'Security', help: "Comma-separated CORS origins as scheme://host:port ('*' allows all)." }),
  F({ name: 'host-whitelist', kind: 'uniqueStrings', def: '*', group: 'Security', help: "Host headers accepted on plain-HTTP requests ('*' allows all)." }),

  // ---------------------------------------------------------------- Auth
  F({ name: 'auth-token', kind: 'string', def: 'simple', group: 'Auth', help: "'simple', or 'jwt,pub-key=<path>,priv-key=<path>,sign-method=<alg>[,ttl=<duration>]'." }),
  F({ name: 'bcrypt-cost', kind: 'uint', def: '10', group: 'Auth', unit: 'bcrypt cost', help: 'bcrypt cost for password hashes (4 to 31).' }),
  F({ name: 'auth-token-ttl', kind: 'uint', def: '300', group: 'Auth', unit: 'seconds', help: 'Lifetime of a simple token, in seconds.' }),

  // ---------------------------------------------------------------- Profiling and Monitoring
  F({ name: 'enable-pprof', kind: 'bool', def: 'false', group: 'Profiling and Monitoring', help: 'Serve runtime profiles under /debug/pprof/ on the client URLs.' }),
  F({ name: 'metrics', kind: 'string', def: 'basic', group: 'Profiling and Monitoring', help: "'basic', or 'extensive' for gRPC latency histograms." }),
  F({ name: 'listen-metrics-urls', kind: 'urls', def: '', group: 'Profiling and Monitoring', help: 'Extra URLs serving only /metrics and /health.' }),

  // ---------------------------------------------------------------- Logging
  F({ name: 'logger', kind: 'string', def: 'zap', group: 'Logging', help: "Logger implementation; only 'zap' (structured JSON/console logs)." }),
  F({ name: 'log-outputs', kind: 'uniqueStrings', def: 'default', group: 'Logging', help: "Comma-separated targets: 'default' (stderr), 'stderr', 'stdout', 'systemd/journal' or file paths." }),
  F({ name: 'log-level', kind: 'string', def: 'info', group: 'Logging', help: 'debug, info, warn, error, dpanic, panic or fatal.' }),
  F({ name: 'log-format', kind: 'string', def: 'json', group: 'Logging', help: "'json' or 'console'." }),
  F({ name: 'enable-log-rotation', kind: 'bool', def: 'false', group: 'Logging', help: 'Rotate the single log file named in --log-outputs.' }),
  F({ name: 'log-rotation-config-json', kind: 'string', def: DEFAULT_LOG_ROTATION_CONFIG, group: 'Logging', help: 'Rotation settings as JSON: maxsize (MB), maxage (days), maxbackups, localtime, compress.' }),
  F({ name: 'warning-unary-request-duration', kind: 'duration', def: '0s', shown: '300ms', group: 'Logging', help: 'Log a warning for unary requests slower than this.' }),
  F({ name: 'experimental-warning-unary-request-duration', kind: 'duration', def: '0s', group: 'Logging', help: 'Old name of --warning-unary-request-duration.', replacedBy: 'warning-unary-request-duration', deprecated: '--experimental-warning-unary-request-duration is deprecated, and will be decommissioned in v3.7. Use --warning-unary-request-duration instead.' }),

  // ---------------------------------------------------------------- Distributed tracing
  F({ name: 'enable-distributed-tracing', kind: 'bool', def: 'false', group: 'Distributed tracing', help: 'Export OpenTelemetry traces.' }),
  F({ name: 'distributed-tracing-address', kind: 'string', def: 'localhost:4317', group: 'Distributed tracing', help: 'OpenTelemetry collector address.' }),
  F({ name: 'distributed-tracing-service-name', kind: 'string', def: 'etcd', group: 'Distributed tracing', help: 'Service name, the same on every member.' }),
  F({ name: 'distributed-tracing-instance-id', kind: 'string', def: '', group: 'Distributed tracing', help: 'Instance ID, unique per member.' }),
  F({ name: 'distributed-tracing-sampling-rate', kind: 'int', def: '0', group: 'Distributed tracing', unit: 'samples per million', help: 'Spans sampled per million (0 to 1000000).' }),
  F({ name: 'experimental-enable-distributed-tracing', kind: 'bool', def: 'false', group: 'Distributed tracing', help: 'Old name of --enable-distributed-tracing.', replacedBy: 'enable-distributed-tracing', deprecated: '--experimental-enable-distributed-tracing is deprecated in 3.6 and will be decommissioned in 3.7. Use --enable-distributed-tracing instead.' }),
  F({ name: 'experimental-distributed-tracing-address', kind: 'string', def: 'localhost:4317', group: 'Distributed tracing', help: 'Old name of --distributed-tracing-address.', replacedBy: 'distributed-tracing-address', deprecated: '--experimental-distributed-tracing-address is deprecated in 3.6 and will be decommissioned in 3.7. Use --distributed-tracing-address instead.' }),
  F({ name: 'experimental-distributed-tracing-service-name', kind: 'string', def: 'etcd', group: 'Distributed tracing', help: 'Old name of --distributed-tracing-service-name.', replacedBy: 'distributed-tracing-service-name', deprecated: '--experimental-distributed-tracing-service-name is deprecated in 3.6 and will be decommissioned in 3.7. Use --distributed-tracing-service-name instead.' }),
  F({ name: 'experimental-distributed-tracing-instance-id', kind: 'string', def: '', group: 'Distributed tracing', help: 'Old name of --distributed-tracing-instance-id.', replacedBy: 'distributed-tracing-instance-id', deprecated: '--experimental-distributed-tracing-instance-id is deprecated in 3.6 and will be decommissioned in 3.7. Use --distributed-tracing-instance-id instead.' }),
  F({ name: 'experimental-distributed-tracing-sampling-rate', kind: 'int', def: '0', group: 'Distributed tracing', unit: 'samples per million', help: 'Old name of --distributed-tracing-sampling-rate.', replacedBy: 'distributed-tracing-sampling-rate', deprecated: '--experimental-distributed-tracing-sampling-rate is deprecated in 3.6 and will be decommissioned in 3.7. Use --distributed-tracing-sampling-rate instead.' }),

  // ---------------------------------------------------------------- Former experimental features
  F({ name: 'corrupt-check-time', kind: 'duration', def: '0s', group: 'Former experimental features', help: 'Period of cluster-wide corruption checks (0 disables).' }),
  F({ name: 'compact-hash-check-time', kind: 'duration', def: '1m', group: 'Former experimental features', help: 'Period of leader checks of follower compaction hashes (must be > 0).' }),
  F({ name: 'compaction-batch-limit', kind: 'int', def: '0', group: 'Former experimental features', unit: 'revisions', help: 'Revisions deleted per compaction batch (0 = 1000).' }),
  F({ name: 'compaction-sleep-interval', kind: 'duration', def: '0s', group: 'Former experimental features', help: 'Pause between compaction batches (0 = 10ms).' }),
  F({ name: 'watch-progress-notify-interval', kind: 'duration', def: '0s', group: 'Former experimental features', help: 'Period of progress notifications on idle watches (0 = 10m; at least 100ms).' }),
  F({ name: 'warning-apply-duration', kind: 'duration', def: '100ms', group: 'Former experimental features', help: 'Log a warning when applying a request takes longer than this.' }),
  F({ name: 'downgrade-check-time', kind: 'duration', def: '5s', group: 'Former experimental features', help: 'Period of downgrade status checks.' }),
  F({ name: 'bootstrap-defrag-threshold-megabytes', kind: 'uint', def: '0', group: 'Former experimental features', unit: 'megabytes', help: 'Defragment at boot when at least this many MB would be freed (0 disables).' }),
  F({ name: 'max-learners', kind: 'int', def: '1', group: 'Former experimental features', unit: 'members', help: 'Most learner members allowed.' }),
  F({ name: 'snapshot-catchup-entries', kind: 'uint64', def: '5000', group: 'Former experimental features', unit: 'entries', help: 'Entries kept after a snapshot for slow followers to catch up.' }),
  F({ name: 'experimental-initial-corrupt-check', kind: 'bool', def: 'false', group: 'Former experimental features', help: 'Old switch for --feature-gates=InitialCorruptCheck=true.', deprecated: gateDeprecated('experimental-initial-corrupt-check', 'InitialCorruptCheck') }),
  F({ name: 'experimental-corrupt-check-time', kind: 'duration', def: '0s', group: 'Former experimental features', help: 'Old name of --corrupt-check-time.', replacedBy: 'corrupt-check-time', deprecated: expDeprecated('experimental-corrupt-check-time', 'corrupt-check-time') }),
  F({ name: 'experimental-compact-hash-check-enabled', kind: 'bool', def: 'false', group: 'Former experimental features', help: 'Old switch for --feature-gates=CompactHashCheck=true.', deprecated: gateDeprecated('experimental-compact-hash-check-enabled', 'CompactHashCheck', '3.6', '3.7') }),
  F({ name: 'experimental-compact-hash-check-time', kind: 'duration', def: '1m', group: 'Former experimental features', help: 'Old name of --compact-hash-check-time.', replacedBy: 'compact-hash-check-time', deprecated: expDeprecated('experimental-compact-hash-check-time', 'compact-hash-check-time', '3.6', '3.7') }),
  F({ name: 'experimental-enable-lease-checkpoint', kind: 'bool', def: 'false', group: 'Former experimental features', help: 'Old switch for --feature-gates=LeaseCheckpoint=true.', deprecated: gateDeprecated('experimental-enable-lease-checkpoint', 'LeaseCheckpoint') }),
  F({ name: 'experimental-enable-lease-checkpoint-persist', kind: 'bool', def: 'false', group: 'Former experimental features', help: 'Old switch for --feature-gates=LeaseCheckpointPersist=true.', deprecated: gateDeprecated('experimental-enable-lease-checkpoint-persist', 'LeaseCheckpointPersist') }),
  F({ name: 'experimental-compaction-batch-limit', kind: 'int', def: '0', group: 'Former experimental features', unit: 'revisions', help: 'Old name of --compaction-batch-limit.', replacedBy: 'compaction-batch-limit', deprecated: expDeprecated('experimental-compaction-batch-limit', 'compaction-batch-limit') }),
  F({ name: 'experimental-compaction-sleep-interval', kind: 'duration', def: '0s', group: 'Former experimental features', help: 'Old name of --compaction-sleep-interval.', replacedBy: 'compaction-sleep-interval', deprecated: expDeprecated('experimental-compaction-sleep-interval', 'compaction-sleep-interval') }),
  F({ name: 'experimental-watch-progress-notify-interval', kind: 'duration', def: '0s', group: 'Former experimental features', help: 'Old name of --watch-progress-notify-interval.', replacedBy: 'watch-progress-notify-interval', deprecated: expDeprecated('experimental-watch-progress-notify-interval', 'watch-progress-notify-interval') }),
  F({ name: 'experimental-warning-apply-duration', kind: 'duration', def: '100ms', group: 'Former experimental features', help: 'Old name of --warning-apply-duration.', replacedBy: 'warning-apply-duration', deprecated: expDeprecated('experimental-warning-apply-duration', 'warning-apply-duration') }),
  F({ name: 'experimental-downgrade-check-time', kind: 'duration', def: '5s', group: 'Former experimental features', help: 'Old name of --downgrade-check-time.', replacedBy: 'downgrade-check-time', deprecated: expDeprecated('experimental-downgrade-check-time', 'downgrade-check-time') }),
  F({ name: 'experimental-memory-mlock', kind: 'bool', def: 'false', group: 'Former experimental features', help: 'Old name of --memory-mlock.', replacedBy: 'memory-mlock', deprecated: expDeprecated('experimental-memory-mlock', 'memory-mlock') }),
  F({ name: 'experimental-txn-mode-write-with-shared-buffer', kind: 'bool', def: 'true', group: 'Former experimental features', help: 'Old switch for --feature-gates=TxnModeWriteWithSharedBuffer.', deprecated: gateDeprecated('experimental-txn-mode-write-with-shared-buffer', 'TxnModeWriteWithSharedBuffer') }),
  F({ name: 'experimental-stop-grpc-service-on-defrag', kind: 'bool', def: 'false', group: 'Former experimental features', help: 'Old switch for --feature-gates=StopGRPCServiceOnDefrag=true.', deprecated: gateDeprecated('experimental-stop-grpc-service-on-defrag', 'StopGRPCServiceOnDefrag') }),
  F({ name: 'experimental-bootstrap-defrag-threshold-megabytes', kind: 'uint', def: '0', group: 'Former experimental features', unit: 'megabytes', help: 'Old name of --bootstrap-defrag-threshold-megabytes.', replacedBy: 'bootstrap-defrag-threshold-megabytes', deprecated: expDeprecated('experimental-bootstrap-defrag-threshold-megabytes', 'bootstrap-defrag-threshold-megabytes') }),
  F({ name: 'experimental-snapshot-catchup-entries', kind: 'uint64', def: '5000', group: 'Former experimental features', unit: 'entries', help: 'Old name of --snapshot-catchup-entries.', replacedBy: 'snapshot-catchup-entries', deprecated: expDeprecated('experimental-snapshot-catchup-entries', 'snapshot-catchup-entries') }),

  // ---------------------------------------------------------------- Unsafe
  F({ name: 'force-new-cluster', kind: 'bool', def: 'false', group: 'Unsafe', help: 'Restart as a one-member cluster, dropping the other members.' }),
  F({ name: 'unsafe-no-fsync', kind: 'bool', def: 'false', group: 'Unsafe', help: 'Never fsync: fast, and loses data on a crash.' }),

  // ---------------------------------------------------------------- Command
  F({ name: 'config-file', kind: 'string', def: '', group: 'Command', help: 'YAML configuration file; when given, all other flags and ETCD_* variables are ignored.' }),
  F({ name: 'version', kind: 'bool', def: 'false', group: 'Command', help: 'Print the version and exit.' }),

  // ---------------------------------------------------------------- pre-v3 flags etcd still accepts and ignores
  ...[
    'cluster-active-size', 'cluster-remove-delay', 'cluster-sync-interval', 'config', 'force',
    'max-result-buffer', 'max-retry-attempts', 'peer-heartbeat-interval', 'peer-election-timeout',
    'retry-interval', 'snapshot', 'v', 'vv', 'test.coverprofile', 'test.outputdir',
  ].map((name) => F({ name, kind: 'ignored', def: '', group: 'Command', help: '', hidden: true })),
];

export const FLAG_BY_NAME: ReadonlyMap<string, FlagSpec> = new Map(FLAGS.map((f) => [f.name, f]));

/** flags.FlagToEnv: --foo-bar → ETCD_FOO_BAR. */
export const flagToEnv = (name: string): string => 'ETCD_' + name.toUpperCase().replace(/-/g, '_');

export const isBoolKind = (k: FlagKind): boolean => k === 'bool' || k === 'ignored';
