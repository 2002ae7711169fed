// From explicitly set flag values (command line + environment, or a config file) to a validated Config.
// The steps and checks follow etcd 3.6 in order: etcdmain's flag post-processing, embed.Config.Validate,
// the derivations etcdmain makes before starting (initial-cluster from --name, data-dir from --name), then
// the checks etcd only makes while starting the server (cipher suites, HTTPS listeners without certificates,
// initial-cluster syntax, auto-compaction retention, auth token), so that every configuration mistake
// surfaces before anything is opened. Error texts are etcd's where etcd has one, with the flag named.
import { parseAuthToken } from './authtoken';
import { ConfigError } from './errors';
import {
  EXPERIMENTAL_FLAG_TO_FEATURE,
  type FeatureGateSettings,
  effectiveFeatureGates,
} from './features';
import { DEFAULT_INITIAL_CLUSTER, FLAG_BY_NAME, FLAGS } from './flags';
import { formatGoDuration, nsToMs, parseGoDurationNs } from './goparse';
import { type Config, configSchema } from './schema';
import {
  type ParsedUrl,
  checkBindUrls,
  checkHostUrls,
  parseInitialCluster,
} from './urls';
import { type FlagValue, DURATION_HINT, defaultValue } from './values';

export interface RawSettings {
  source: 'cli' | 'file';
  configFile: string;
  /** Explicitly set values, typed (durations as bigint nanoseconds). */
  values: Map<string, FlagValue>;
  /** etcd's FlagsExplicitlySet. */
  explicit: Set<string>;
  clientCertAllowedCn: string[];
  clientSkipClientSanVerification: boolean;
  warnings: string[];
}

export interface LoadedConfig {
  config: Config;
  warnings: string[];
}

/** Go crypto/tls cipher-suite names etcd accepts (tls.CipherSuites + tls.InsecureCipherSuites + two aliases). */
export const GO_CIPHER_SUITES: readonly string[] = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA',
  'TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA',
  'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA',
  'TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA',
  'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
  'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384',
  'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
  'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
  'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256',
  'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256',
  'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305',
  'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305',
  'TLS_RSA_WITH_RC4_128_SHA',
  'TLS_RSA_WITH_3DES_EDE_CBC_SHA',
  'TLS_RSA_WITH_AES_128_CBC_SHA',
  'TLS_RSA_WITH_AES_256_CBC_SHA',
  'TLS_RSA_WITH_AES_128_CBC_SHA256',
  'TLS_RSA_WITH_AES_128_GCM_SHA256',
  'TLS_RSA_WITH_AES_256_GCM_SHA384',
  'TLS_ECDHE_ECDSA_WITH_RC4_128_SHA',
  'TLS_ECDHE_RSA_WITH_RC4_128_SHA',
  'TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA',
  'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256',
  'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256',
];

export const DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;
export const MAX_QUOTA_BYTES = 8 * 1024 * 1024 * 1024;
const MAX_ELECTION_MS = 50000;
const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'dpanic', 'panic', 'fatal'] as const;
const DEFAULT_WARNING_UNARY_REQUEST_MS = 300;

let defaults: Map<string, FlagValue> | undefined;
function defaultOf(name: string): FlagValue {
  defaults ??= new Map(FLAGS.map((f) => [f.name, defaultValue(f)]));
  const v = defaults.get(name);
  if (v === undefined) throw new Error(`no flag --${name}`);
  return v;
}

const err = (message: string, flag?: string, exitCode: 1 | 2 = 1): ConfigError =>
  new ConfigError(message, { flag, exitCode });

export function buildConfig(raw: RawSettings): LoadedConfig {
  const warnings = [...raw.warnings];
  const cli = raw.source === 'cli';
  const values = new Map(raw.values);
  const explicit = (n: string): boolean => raw.explicit.has(n);
  const get = (n: string): FlagValue => (values.has(n) ? values.get(n)! : defaultOf(n));
  const str = (n: string): string => get(n) as string;
  const bool = (n: string): boolean => get(n) as boolean;
  const num = (n: string): number => get(n) as number;
  const durNs = (n: string): bigint => get(n) as bigint;
  const urls = (n: string): ParsedUrl[] => get(n) as ParsedUrl[];
  const list = (n: string): string[] => get(n) as string[];

  // ---- etcdmain: flag post-processing ------------------------------------------------------------
  let advertiseClientUrls = urls('advertise-client-urls');
  if (cli && explicit('listen-client-urls') && !explicit('advertise-client-urls')) advertiseClientUrls = [];

  const durl = str('discovery');
  const dnsCluster = str('discovery-srv');
  const discoveryEndpoints = list('discovery-endpoints');
  let initialCluster = str('initial-cluster');
  if (cli) {
    if ((durl || dnsCluster || str('discovery-srv-name') || discoveryEndpoints.length > 0) && !explicit('initial-cluster')) {
      initialCluster = '';
    }
  } else if ((durl || dnsCluster || discoveryEndpoints.length > 0) && initialCluster === DEFAULT_INITIAL_CLUSTER) {
    initialCluster = '';
  }

  // Feature gates: --feature-gates plus the deprecated --experimental-* switches (both for one gate is an error).
  const gatesGiven = get('feature-gates') as FeatureGateSettings;
  const gates: FeatureGateSettings = { ...gatesGiven };
  for (const [flag, feature] of Object.entries(EXPERIMENTAL_FLAG_TO_FEATURE)) {
    if (!explicit(flag) || !values.has(flag)) continue;
    const v = bool(flag);
    if (gatesGiven[feature] !== undefined) {
      const gv = effectiveFeatureGates(gatesGiven)[feature];
      throw err(
        `cannot specify both flags: --${flag}=${v} and --feature-gates=${feature}=${gv} at the same time, please just use --feature-gates=${feature}=${gv}`,
        flag,
      );
    }
    gates[feature] = v;
  }
  const featureGates = effectiveFeatureGates(gates);

  if (cli && str('discovery-fallback') === 'proxy') {
    throw err('v2 proxy is deprecated, and --discovery-fallback can\'t be configured as "proxy" (only "exit" remains)', 'discovery-fallback');
  }

  // Deprecated --experimental-X value flags: both names set is an error; the old one alone is copied over.
  for (const spec of FLAGS) {
    if (!spec.replacedBy || spec.name === 'experimental-warning-unary-request-duration') continue;
    if (explicit(spec.name) && explicit(spec.replacedBy)) {
      throw err(`cannot set --${spec.name} and --${spec.replacedBy} at the same time, please use --${spec.replacedBy} only`, spec.name);
    }
  }
  const expCompactHashNs = durNs('experimental-compact-hash-check-time');
  for (const spec of FLAGS) {
    if (!spec.replacedBy || spec.name === 'experimental-warning-unary-request-duration') continue;
    if (explicit(spec.name) && values.has(spec.name)) values.set(spec.replacedBy, values.get(spec.name)!);
  }

  // ---- embed.Config.Validate: logging --------------------------------------------------------------
  const logger = str('logger');
  if (logger === 'capnslog') throw err('--logger=capnslog is removed in v3.5; use --logger=zap', 'logger');
  if (logger !== 'zap') throw err(`unknown logger option ${JSON.stringify(logger)} for --logger (only "zap" is supported)`, 'logger');
  let logOutputs = list('log-outputs');
  if (logOutputs.length === 0) logOutputs = ['default'];
  if (logOutputs.length > 1 && logOutputs.includes('default')) {
    throw err(`multi logoutput for "default" is not supported yet (--log-outputs=${logOutputs.join(',')}); name stderr or stdout instead`, 'log-outputs');
  }
  const enableLogRotation = bool('enable-log-rotation');
  const logRotationConfigJson = str('log-rotation-config-json');
  let logRotation: Config['logRotation'] = null;
  if (enableLogRotation) {
    const files = logOutputs.filter((o) => o !== 'default' && o !== 'stderr' && o !== 'stdout').length;
    if ((logOutputs.length === 1 && files === 0) || files > 1) {
      throw err('--log-outputs requires a single file path when --log-rotate-config-json is defined', 'log-outputs');
    }
    logRotation = parseLogRotation(logRotationConfigJson);
  }
  if (logOutputs.includes('systemd/journal') && logOutputs.length > 1) {
    throw err(
      `running with systemd/journal but other '--log-outputs' values (${logOutputs.join(',')}) are configured; use systemd/journal alone`,
      'log-outputs',
    );
  }
  const levelRaw = str('log-level');
  const level = levelRaw === '' ? 'info' : (LOG_LEVELS as readonly string[]).includes(levelRaw) ? levelRaw : levelRaw.toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    // etcd panics here ("unrecognized level"), which exits 2
    throw err(`invalid value ${JSON.stringify(levelRaw)} for --log-level: unrecognized level (accepted: ${LOG_LEVELS.join(', ')})`, 'log-level', 2);
  }
  const logFormatRaw = str('log-format');
  const logFormat = logFormatRaw === '' ? 'json' : logFormatRaw;
  if (logFormat !== 'json' && logFormat !== 'console') {
    throw err(`unknown log format: ${logFormatRaw} for --log-format, supported values json, console`, 'log-format');
  }

  // ---- Validate: URLs ---------------------------------------------------------------------------------
  const listenPeerUrls = urls('listen-peer-urls');
  const listenClientUrls = urls('listen-client-urls');
  const listenClientHttpUrls = urls('listen-client-http-urls');
  const listenMetricsUrls = urls('listen-metrics-urls');
  for (const [flag, us] of [
    ['listen-peer-urls', listenPeerUrls],
    ['listen-client-urls', listenClientUrls],
    ['listen-client-http-urls', listenClientHttpUrls],
  ] as const) {
    const bad = checkBindUrls(us);
    if (bad) throw err(`--${flag}: ${bad}`, flag);
  }
  if (listenClientHttpUrls.length === 0) {
    warnings.push('Running http and grpc server on single port. This is not recommended for production.');
  }
  {
    const bad = checkBindUrls(listenMetricsUrls);
    if (bad) throw err(`--listen-metrics-urls: ${bad}`, 'listen-metrics-urls');
  }
  const initialAdvertisePeerUrls = urls('initial-advertise-peer-urls');
  for (const [flag, us] of [
    ['initial-advertise-peer-urls', initialAdvertisePeerUrls],
    ['advertise-client-urls', advertiseClientUrls],
  ] as const) {
    const bad = checkHostUrls(us);
    if (bad) throw err(`--${flag} ${JSON.stringify(us.map((u) => u.href).join(','))} must be "host:port" (${bad})`, flag);
  }

  // ---- Validate: clustering -------------------------------------------------------------------------
  let clusterState = str('initial-cluster-state');
  if (!cli && clusterState === '') clusterState = 'new';
  if (clusterState !== 'new' && clusterState !== 'existing') {
    throw err(`unexpected clusterState ${JSON.stringify(clusterState)} for initial-cluster-state (expected new or existing)`, 'initial-cluster-state');
  }
  const bootstrapSources = [durl !== '', initialCluster !== '', dnsCluster !== '', discoveryEndpoints.length > 0];
  if (bootstrapSources.filter(Boolean).length > 1) {
    throw err(
      'multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery", "discovery-endpoints" or "discovery-srv"',
      'initial-cluster',
    );
  }
  const discoveryToken = str('discovery-token');
  const v3DiscoverySet =
    discoveryEndpoints.length > 0 ||
    discoveryToken !== '' ||
    ['discovery-cert', 'discovery-key', 'discovery-cacert', 'discovery-user', 'discovery-password'].some((f) => str(f) !== '');
  if (str('discovery-proxy') !== '' && v3DiscoverySet) {
    throw err(
      'both v2 discovery settings (discovery, discovery-proxy) and v3 discovery settings (discovery-token, discovery-endpoints, discovery-cert, discovery-key, discovery-cacert, discovery-user, discovery-password) are set',
      'discovery-proxy',
    );
  }
  if ((discoveryToken !== '') !== (discoveryEndpoints.length > 0)) {
    throw err('both --discovery-token and --discovery-endpoints must be set', discoveryToken ? 'discovery-endpoints' : 'discovery-token');
  }
  if (discoveryEndpoints.some((e) => e.trim() === '')) {
    throw err('--discovery-endpoints must not contain empty endpoints', 'discovery-endpoints');
  }

  // ---- Validate: timing -----------------------------------------------------------------------------
  const tickMs = num('heartbeat-interval');
  const electionMs = num('election-timeout');
  if (tickMs === 0) throw err(`--heartbeat-interval must be >0 (set to ${tickMs}ms)`, 'heartbeat-interval');
  if (electionMs === 0) throw err(`--election-timeout must be >0 (set to ${electionMs}ms)`, 'election-timeout');
  if (5 * tickMs > electionMs) {
    throw err(`--election-timeout[${electionMs}ms] should be at least as 5 times as --heartbeat-interval[${tickMs}ms]`, 'election-timeout');
  }
  if (electionMs > MAX_ELECTION_MS) {
    throw err(`--election-timeout[${electionMs}ms] is too long, and should be set less than ${MAX_ELECTION_MS}ms`, 'election-timeout');
  }
  if (listenClientUrls.length > 0 && advertiseClientUrls.length === 0) {
    throw err('--advertise-client-urls is required when --listen-client-urls is set explicitly', 'advertise-client-urls');
  }
  const autoCompactionMode = str('auto-compaction-mode');
  if (autoCompactionMode === '') throw err('undefined auto-compaction-mode (expected periodic or revision)', 'auto-compaction-mode');
  if (autoCompactionMode !== 'periodic' && autoCompactionMode !== 'revision') {
    throw err(`unknown auto-compaction-mode ${JSON.stringify(autoCompactionMode)} (expected periodic or revision)`, 'auto-compaction-mode');
  }
  const enableDistributedTracing = bool('enable-distributed-tracing');
  const samplingRate = num('distributed-tracing-sampling-rate');
  if (enableDistributedTracing && (samplingRate < 0 || samplingRate > 1_000_000)) {
    throw err(
      `distributed tracing configuration is not valid: tracing sampling rate must be ${samplingRate < 0 ? 'positive' : 'less than 1000000'} (--distributed-tracing-sampling-rate=${samplingRate})`,
      'distributed-tracing-sampling-rate',
    );
  }
  if (featureGates.LeaseCheckpoint && !featureGates.LeaseCheckpointPersist) {
    warnings.push('Detected that checkpointing is enabled without persistence. Consider enabling feature gate LeaseCheckpointPersist');
  }
  if (featureGates.LeaseCheckpointPersist && !featureGates.LeaseCheckpoint) {
    throw err('enabling feature gate LeaseCheckpointPersist requires enabling feature gate LeaseCheckpoint', 'feature-gates');
  }
  if (expCompactHashNs <= 0n) {
    throw err(`--experimental-compact-hash-check-time must be >0 (set to ${formatGoDuration(expCompactHashNs)})`, 'experimental-compact-hash-check-time');
  }
  if (durNs('compact-hash-check-time') <= 0n) {
    throw err(`--compact-hash-check-time must be >0 (set to ${formatGoDuration(durNs('compact-hash-check-time'))})`, 'compact-hash-check-time');
  }
  const name = str('name');
  if (name === 'default') {
    warnings.push(
      "it isn't recommended to use default name, please set a value for --name. Note that etcd might run into issue when multiple members have the same default name",
    );
  }

  // ---- Validate: TLS versions -----------------------------------------------------------------------
  const tlsMin = str('tls-min-version');
  const tlsMax = str('tls-max-version');
  for (const [flag, v] of [['tls-min-version', tlsMin], ['tls-max-version', tlsMax]] as const) {
    if (v !== '' && v !== 'TLS1.2' && v !== 'TLS1.3') {
      throw err(`unexpected TLS version ${JSON.stringify(v)} for --${flag} (must be one of: TLS1.2, TLS1.3)`, flag);
    }
  }
  if (tlsMax !== '' && tlsMin === 'TLS1.3' && tlsMax === 'TLS1.2') {
    throw err(`min version (${tlsMin}) is greater than max version (${tlsMax})`, 'tls-min-version');
  }
  const cipherSuites = list('cipher-suites');
  if (tlsMin === 'TLS1.3' && cipherSuites.length > 0) {
    throw err('cipher suites cannot be configured when only TLS1.3 is enabled', 'cipher-suites');
  }

  // ---- etcdmain: warning-unary-request-duration and deprecation warnings -----------------------------
  const wurNs = durNs('warning-unary-request-duration');
  const expWurNs = durNs('experimental-warning-unary-request-duration');
  if (wurNs !== 0n && expWurNs !== 0n) {
    throw err(
      'both --experimental-warning-unary-request-duration and --warning-unary-request-duration flags are set. Use only --warning-unary-request-duration',
      'experimental-warning-unary-request-duration',
    );
  }
  let warningUnaryRequestDurationMs = DEFAULT_WARNING_UNARY_REQUEST_MS;
  if (wurNs !== 0n) warningUnaryRequestDurationMs = nsToMs(wurNs);
  else if (expWurNs !== 0n) {
    warnings.push(FLAG_BY_NAME.get('experimental-warning-unary-request-duration')!.deprecated!);
    warningUnaryRequestDurationMs = nsToMs(expWurNs);
  }
  for (const f of [...raw.explicit].sort()) {
    const spec = FLAG_BY_NAME.get(f);
    if (spec?.deprecated && f !== 'experimental-warning-unary-request-duration') warnings.push(spec.deprecated);
  }

  // ---- etcdmain before start: initial-cluster from --name, data-dir from --name ----------------------
  if (name !== 'default' && initialCluster === DEFAULT_INITIAL_CLUSTER) {
    const n = name === '' ? 'default' : name;
    initialCluster = initialAdvertisePeerUrls.map((u) => `${n}=${u.href}`).join(',');
  }
  let dataDir = str('data-dir');
  if (dataDir === '') {
    dataDir = `${name}.etcd`;
    warnings.push(`'data-dir' was empty; using default ${dataDir}`);
  }

  // ---- checks etcd makes while starting the server --------------------------------------------------
  for (const c of cipherSuites) {
    if (!GO_CIPHER_SUITES.includes(c)) {
      throw err(`unexpected TLS cipher suite ${JSON.stringify(c)} for --cipher-suites (names as in Go's crypto/tls, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)`, 'cipher-suites');
    }
  }
  const certFile = str('cert-file');
  const keyFile = str('key-file');
  const autoTls = bool('auto-tls');
  const clientTlsEmpty = certFile === '' && keyFile === '';
  const clientCertAuth = bool('client-cert-auth');
  if (autoTls && !clientTlsEmpty) warnings.push('ignoring client auto TLS since certs given');
  const peerTlsEmpty = str('peer-cert-file') === '' && str('peer-key-file') === '';
  if (bool('peer-auto-tls') && !peerTlsEmpty) warnings.push('ignoring peer auto TLS since certs given');
  for (const u of listenPeerUrls) {
    if (u.scheme !== 'http') continue;
    if (!peerTlsEmpty) warnings.push(`scheme is HTTP while key and cert files are present; ignoring key and cert files (peer-url ${u.href})`);
    if (bool('peer-client-cert-auth')) warnings.push(`scheme is HTTP while --peer-client-cert-auth is enabled; ignoring client cert auth for this URL (peer-url ${u.href})`);
  }
  for (const u of [...listenClientUrls, ...listenClientHttpUrls]) {
    if (u.scheme === 'http' || u.scheme === 'unix') {
      if (!clientTlsEmpty) warnings.push(`scheme is http or unix while key and cert files are present; ignoring key and cert files (client-url ${u.href})`);
      if (clientCertAuth) warnings.push(`scheme is http or unix while --client-cert-auth is enabled; ignoring client cert auth for this URL (client-url ${u.href})`);
    }
    if ((u.scheme === 'https' || u.scheme === 'unixs') && clientTlsEmpty && !autoTls) {
      throw err(`TLS key/cert (--cert-file, --key-file) must be provided for client url ${u.href} with HTTPS scheme`, 'cert-file');
    }
  }
  const bindAddr = (u: ParsedUrl): string => (u.scheme === 'unix' || u.scheme === 'unixs' ? u.hostPort + u.path : u.hostPort);
  const grpcAddrs = new Set(listenClientUrls.map(bindAddr));
  for (const u of listenClientHttpUrls) {
    if (grpcAddrs.has(bindAddr(u))) {
      throw err(`cannot bind both --listen-client-urls and --listen-client-http-urls on the same url ${u.href}`, 'listen-client-http-urls');
    }
  }
  for (const u of listenMetricsUrls) {
    if ((u.scheme === 'https' || u.scheme === 'unixs') && clientTlsEmpty && !autoTls) {
      throw err(`client TLS key/cert (--cert-file, --key-file) must be provided for metrics secure url ${u.href}`, 'listen-metrics-urls');
    }
  }
  // discovery would be used to bootstrap: etcd-ts does not implement it
  const discoveryUsed = durl !== '' ? 'discovery' : dnsCluster !== '' ? 'discovery-srv' : discoveryEndpoints.length > 0 ? 'discovery-endpoints' : null;
  if (discoveryUsed) {
    throw err(`--${discoveryUsed} is set, but etcd-ts does not support discovery; bootstrap with --initial-cluster instead`, discoveryUsed);
  }
  const ic = parseInitialCluster(initialCluster);
  if (!ic.ok) throw err(`invalid value ${JSON.stringify(initialCluster)} for --initial-cluster: ${ic.reason}`, 'initial-cluster');

  const retentionRaw = str('auto-compaction-retention');
  const autoCompaction = parseRetention(autoCompactionMode, retentionRaw === '' ? '0' : retentionRaw, warnings);

  const authTokenRaw = str('auth-token');
  const at = parseAuthToken(authTokenRaw);
  if (!at.ok) throw err(`invalid value ${JSON.stringify(authTokenRaw)} for --auth-token: ${at.reason}`, 'auth-token');
  warnings.push(...at.value.warnings);
  const bcryptCost = num('bcrypt-cost');
  if (bcryptCost < 4 || bcryptCost > 31) {
    warnings.push(`--bcrypt-cost=${bcryptCost} is outside 4..31; the default cost 10 is used instead`);
  }
  const quota = num('quota-backend-bytes');
  if (quota > MAX_QUOTA_BYTES) {
    warnings.push(`quota exceeds the maximum value: --quota-backend-bytes=${quota} is above the suggested maximum of ${MAX_QUOTA_BYTES} bytes (8 GiB)`);
  }
  const wpnNs = durNs('watch-progress-notify-interval');
  if (wpnNs > 0n && wpnNs < 100_000_000n) {
    warnings.push(`adjusting watch progress notify interval to minimum period 100ms (--watch-progress-notify-interval=${formatGoDuration(wpnNs)})`);
  }

  // ---- assemble ---------------------------------------------------------------------------------------
  const v2 = get('v2-deprecation');
  const v2Joined = Array.isArray(v2) ? v2.join(',') : String(v2);
  const cors = get('cors') as Array<ParsedUrl | string>;
  let selfSignedCertValidity = num('self-signed-cert-validity');
  if (!cli && selfSignedCertValidity === 0) selfSignedCertValidity = 1;

  const config: Config = {
    name,
    dataDir,
    walDir: str('wal-dir'),
    snapshotCount: num('snapshot-count'),
    snapshotCatchupEntries: num('snapshot-catchup-entries'),
    heartbeatIntervalMs: tickMs,
    electionTimeoutMs: electionMs,
    initialElectionTickAdvance: bool('initial-election-tick-advance'),
    listenPeerUrls,
    listenClientUrls,
    listenClientHttpUrls,
    listenMetricsUrls,
    maxSnapshots: num('max-snapshots'),
    maxWals: num('max-wals'),
    memoryMlock: bool('memory-mlock'),
    quotaBackendBytes: quota,
    backendBboltFreelistType: str('backend-bbolt-freelist-type'),
    backendBatchIntervalMs: nsToMs(durNs('backend-batch-interval')),
    backendBatchLimit: num('backend-batch-limit'),
    maxTxnOps: num('max-txn-ops'),
    maxRequestBytes: num('max-request-bytes'),
    maxConcurrentStreams: num('max-concurrent-streams'),
    grpcKeepaliveMinTimeMs: nsToMs(durNs('grpc-keepalive-min-time')),
    grpcKeepaliveIntervalMs: nsToMs(durNs('grpc-keepalive-interval')),
    grpcKeepaliveTimeoutMs: nsToMs(durNs('grpc-keepalive-timeout')),
    socketReusePort: bool('socket-reuse-port'),
    socketReuseAddress: bool('socket-reuse-address'),
    enableGrpcGateway: bool('enable-grpc-gateway'),
    raftReadTimeoutMs: nsToMs(durNs('raft-read-timeout')),
    raftWriteTimeoutMs: nsToMs(durNs('raft-write-timeout')),
    featureGates,

    initialAdvertisePeerUrls,
    initialCluster,
    initialClusterMembers: ic.value,
    initialClusterState: clusterState,
    initialClusterToken: str('initial-cluster-token'),
    advertiseClientUrls,
    discovery: durl,
    discoveryToken,
    discoveryEndpoints,
    discoveryDialTimeoutMs: nsToMs(durNs('discovery-dial-timeout')),
    discoveryRequestTimeoutMs: nsToMs(durNs('discovery-request-timeout')),
    discoveryKeepaliveTimeMs: nsToMs(durNs('discovery-keepalive-time')),
    discoveryKeepaliveTimeoutMs: nsToMs(durNs('discovery-keepalive-timeout')),
    discoveryInsecureTransport: bool('discovery-insecure-transport'),
    discoveryInsecureSkipTlsVerify: bool('discovery-insecure-skip-tls-verify'),
    discoveryCert: str('discovery-cert'),
    discoveryKey: str('discovery-key'),
    discoveryCacert: str('discovery-cacert'),
    discoveryUser: str('discovery-user'),
    discoveryPassword: str('discovery-password'),
    discoveryFallback: 'exit',
    discoveryProxy: str('discovery-proxy'),
    discoverySrv: dnsCluster,
    discoverySrvName: str('discovery-srv-name'),
    strictReconfigCheck: bool('strict-reconfig-check'),
    preVote: bool('pre-vote'),
    autoCompactionRetention: retentionRaw,
    autoCompactionMode,
    autoCompaction,
    v2Deprecation: v2Joined === 'write-only-skip-check' ? 'write-only-skip-check' : 'write-only',

    certFile,
    keyFile,
    clientCertAuth,
    clientCertFile: str('client-cert-file'),
    clientKeyFile: str('client-key-file'),
    clientCrlFile: str('client-crl-file'),
    clientCertAllowedHostname: list('client-cert-allowed-hostname'),
    clientCertAllowedCn: raw.clientCertAllowedCn,
    clientSkipClientSanVerification: raw.clientSkipClientSanVerification,
    trustedCaFile: str('trusted-ca-file'),
    autoTls,
    peerCertFile: str('peer-cert-file'),
    peerKeyFile: str('peer-key-file'),
    peerClientCertAuth: bool('peer-client-cert-auth'),
    peerClientCertFile: str('peer-client-cert-file'),
    peerClientKeyFile: str('peer-client-key-file'),
    peerTrustedCaFile: str('peer-trusted-ca-file'),
    peerCertAllowedCn: list('peer-cert-allowed-cn'),
    peerCertAllowedHostname: list('peer-cert-allowed-hostname'),
    peerAutoTls: bool('peer-auto-tls'),
    peerCrlFile: str('peer-crl-file'),
    peerSkipClientSanVerification: bool('peer-skip-client-san-verification'),
    selfSignedCertValidity,
    cipherSuites,
    tlsMinVersion: tlsMin as Config['tlsMinVersion'],
    tlsMaxVersion: tlsMax as Config['tlsMaxVersion'],
    cors: cors.map((c) => (typeof c === 'string' ? c : c.href)),
    hostWhitelist: list('host-whitelist'),

    authToken: authTokenRaw,
    authTokenSpec: at.value.spec,
    bcryptCost,
    authTokenTtl: num('auth-token-ttl'),

    enablePprof: bool('enable-pprof'),
    metrics: str('metrics'),

    logger: 'zap',
    logOutputs,
    logLevel: level as Config['logLevel'],
    logFormat,
    enableLogRotation,
    logRotationConfigJson,
    logRotation,
    warningUnaryRequestDurationMs,
    warningApplyDurationMs: nsToMs(durNs('warning-apply-duration')),

    enableDistributedTracing,
    distributedTracingAddress: str('distributed-tracing-address'),
    distributedTracingServiceName: str('distributed-tracing-service-name'),
    distributedTracingInstanceId: str('distributed-tracing-instance-id'),
    distributedTracingSamplingRate: samplingRate,

    corruptCheckTimeMs: nsToMs(durNs('corrupt-check-time')),
    compactHashCheckTimeMs: nsToMs(durNs('compact-hash-check-time')),
    compactionBatchLimit: num('compaction-batch-limit'),
    compactionSleepIntervalMs: nsToMs(durNs('compaction-sleep-interval')),
    watchProgressNotifyIntervalMs: nsToMs(wpnNs),
    downgradeCheckTimeMs: nsToMs(durNs('downgrade-check-time')),
    bootstrapDefragThresholdMegabytes: num('bootstrap-defrag-threshold-megabytes'),
    maxLearners: num('max-learners'),

    forceNewCluster: bool('force-new-cluster'),
    unsafeNoFsync: bool('unsafe-no-fsync'),

    configFile: raw.configFile,
    explicitlySet: [...raw.explicit].sort(),
  };
  const checked = configSchema.safeParse(config);
  if (!checked.success) {
    // A bug in this module, not a user error: the builder produced something the schema rejects.
    throw new Error(`internal config error: ${checked.error.message}`);
  }
  return { config: checked.data, warnings };
}

/** v3compactor retention as etcd parses it (embed.parseCompactionRetention). */
function parseRetention(mode: 'periodic' | 'revision', retention: string, warnings: string[]): Config['autoCompaction'] {
  if (/^[+-]?[0-9]+$/.test(retention)) {
    const h = Number(retention);
    if (h >= 0) {
      return mode === 'revision' ? { mode, retentionRevisions: h } : { mode, retentionMs: h * 3_600_000 };
    }
  }
  const d = parseGoDurationNs(retention);
  if (!d.ok) {
    throw err(
      `invalid value ${JSON.stringify(retention)} for --auto-compaction-retention: error parsing CompactionRetention: ${d.reason} (${mode === 'revision' ? 'expected a revision count' : `expected hours or a duration; ${DURATION_HINT}`})`,
      'auto-compaction-retention',
    );
  }
  if (mode === 'revision') {
    // etcd takes the duration's nanosecond count as the number of revisions to keep
    warnings.push(
      `--auto-compaction-retention=${retention} is a duration but --auto-compaction-mode is revision; etcd reads it as ${d.value} revisions`,
    );
    return { mode, retentionRevisions: Number(d.value) };
  }
  if (d.value < 0n) {
    throw err(`invalid value ${JSON.stringify(retention)} for --auto-compaction-retention: a retention cannot be negative`, 'auto-compaction-retention');
  }
  return { mode, retentionMs: nsToMs(d.value) };
}

/** --log-rotation-config-json, decoded as etcd decodes it into lumberjack.Logger (keys case-insensitive). */
function parseLogRotation(json: string): NonNullable<Config['logRotation']> {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (e) {
    throw err(`improperly formatted log rotation config: ${(e as Error).message} (--log-rotation-config-json)`, 'log-rotation-config-json');
  }
  const out = { maxsize: 0, maxage: 0, maxbackups: 0, localtime: false, compress: false };
  if (v === null) return out;
  if (typeof v !== 'object' || Array.isArray(v)) {
    throw err('invalid log rotation config: expected a JSON object (--log-rotation-config-json)', 'log-rotation-config-json');
  }
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    const key = k.toLowerCase();
    if (key === 'maxsize' || key === 'maxage' || key === 'maxbackups') {
      if (typeof val !== 'number' || !Number.isInteger(val)) {
        throw err(`invalid log rotation config: ${k} must be an integer (--log-rotation-config-json)`, 'log-rotation-config-json');
      }
      out[key] = val;
    } else if (key === 'localtime' || key === 'compress') {
      if (typeof val !== 'boolean') {
        throw err(`invalid log rotation config: ${k} must be true or false (--log-rotation-config-json)`, 'log-rotation-config-json');
      }
      out[key] = val;
    }
  }
  return out;
}
