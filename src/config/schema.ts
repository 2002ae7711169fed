// The typed configuration etcd-ts runs with. Field names are the flag names in camelCase; time values
// carry their unit in the name (…Ms = milliseconds, possibly fractional). Values are what the user asked
// for (etcd's raw flag values); where etcd substitutes a default for 0 at server start, see effective.ts.
//
// "(parsed only)" marks settings etcd-ts accepts and validates so existing etcd configurations keep
// working, but does not act on (yet). Whoever implements one should drop the marker.
import { z } from 'zod';
import { FEATURE_NAMES, type FeatureName } from './features';
import { JWT_SIGN_METHODS } from './authtoken';

export const urlSchema = z.object({
  scheme: z.enum(['http', 'https', 'unix', 'unixs']),
  host: z.string(),
  port: z.number().int().min(0).max(65535).nullable(),
  hostPort: z.string(),
  path: z.string(),
  href: z.string(),
});

const uint = z.number().int().min(0);
const int = z.number().int();
const ms = z.number(); // Go durations may be negative; etcd accepts them on the command line

const featureGatesSchema = z.object(
  Object.fromEntries(FEATURE_NAMES.map((f) => [f, z.boolean()])) as Record<FeatureName, z.ZodBoolean>,
);

export const authTokenSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('simple') }),
  z.object({ type: z.literal('none') }), // --auth-token='' : no token provider
  z.object({
    type: z.literal('jwt'),
    signMethod: z.enum(JWT_SIGN_METHODS),
    pubKey: z.string(),
    privKey: z.string(),
    ttlMs: ms,
  }),
]);

export const autoCompactionSchema = z.discriminatedUnion('mode', [
  /** Keep `retentionMs` of history; 0 = auto-compaction off. */
  z.object({ mode: z.literal('periodic'), retentionMs: z.number().min(0) }),
  /** Keep the last `retentionRevisions` revisions; 0 = auto-compaction off. */
  z.object({ mode: z.literal('revision'), retentionRevisions: z.number().min(0) }),
]);

export const logRotationSchema = z.object({
  maxsize: int,
  maxage: int,
  maxbackups: int,
  localtime: z.boolean(),
  compress: z.boolean(),
});

export const configSchema = z.object({
  // ---- member
  name: z.string(),
  /** Already defaulted to `${name}.etcd` when not given. */
  dataDir: z.string(),
  walDir: z.string(),
  /** 0 means 10000 (see effective.ts). */
  snapshotCount: uint,
  /** 0 means 5000. */
  snapshotCatchupEntries: uint,
  heartbeatIntervalMs: uint,
  electionTimeoutMs: uint,
  initialElectionTickAdvance: z.boolean(),
  listenPeerUrls: z.array(urlSchema),
  listenClientUrls: z.array(urlSchema),
  listenClientHttpUrls: z.array(urlSchema),
  listenMetricsUrls: z.array(urlSchema),
  /** (parsed only) Deprecated in etcd 3.6. */
  maxSnapshots: uint,
  maxWals: uint,
  /** (parsed only) */
  memoryMlock: z.boolean(),
  /** Raw value: 0 = default quota (2 GiB), negative = no quota. Use effectiveQuotaBackendBytes(). */
  quotaBackendBytes: int,
  /** (parsed only) bbolt freelist; '' and anything but 'array' mean 'map'. */
  backendBboltFreelistType: z.string(),
  /** 0 means 100ms. */
  backendBatchIntervalMs: ms,
  /** 0 means 10000. */
  backendBatchLimit: int,
  maxTxnOps: uint,
  maxRequestBytes: uint,
  maxConcurrentStreams: uint,
  grpcKeepaliveMinTimeMs: ms,
  grpcKeepaliveIntervalMs: ms,
  grpcKeepaliveTimeoutMs: ms,
  /** (parsed only) */
  socketReusePort: z.boolean(),
  /** (parsed only) */
  socketReuseAddress: z.boolean(),
  enableGrpcGateway: z.boolean(),
  /** Raw value; etcd raises anything below 5s to 5s. */
  raftReadTimeoutMs: ms,
  raftWriteTimeoutMs: ms,
  /** Effective value of every server feature gate (defaults, --feature-gates and the --experimental-* switches). */
  featureGates: featureGatesSchema,

  // ---- clustering
  initialAdvertisePeerUrls: z.array(urlSchema),
  /** As given, or derived as `${name}=<each initial-advertise-peer-url>` when left at etcd's default. */
  initialCluster: z.string(),
  /** initialCluster parsed; a member with several peer URLs appears once per URL. */
  initialClusterMembers: z.array(z.object({ name: z.string(), peerUrl: urlSchema })),
  initialClusterState: z.enum(['new', 'existing']),
  initialClusterToken: z.string(),
  /** Empty only when listen-client-urls was given without advertise-client-urls (which is an error). */
  advertiseClientUrls: z.array(urlSchema),
  /** (parsed only) Discovery is rejected when it would be used; these are kept for completeness. */
  discovery: z.string(),
  discoveryToken: z.string(),
  discoveryEndpoints: z.array(z.string()),
  discoveryDialTimeoutMs: ms,
  discoveryRequestTimeoutMs: ms,
  discoveryKeepaliveTimeMs: ms,
  discoveryKeepaliveTimeoutMs: ms,
  discoveryInsecureTransport: z.boolean(),
  discoveryInsecureSkipTlsVerify: z.boolean(),
  discoveryCert: z.string(),
  discoveryKey: z.string(),
  discoveryCacert: z.string(),
  discoveryUser: z.string(),
  discoveryPassword: z.string(),
  discoveryFallback: z.literal('exit'),
  discoveryProxy: z.string(),
  discoverySrv: z.string(),
  discoverySrvName: z.string(),
  strictReconfigCheck: z.boolean(),
  preVote: z.boolean(),
  /** Raw --auto-compaction-retention string. */
  autoCompactionRetention: z.string(),
  autoCompactionMode: z.enum(['periodic', 'revision']),
  /** Parsed retention (periodic: a bare integer means hours). */
  autoCompaction: autoCompactionSchema,
  /** (parsed only) etcd 3.6 enforces write-only unless write-only-skip-check is given. */
  v2Deprecation: z.enum(['write-only', 'write-only-skip-check']),

  // ---- security (client side of the server)
  certFile: z.string(),
  keyFile: z.string(),
  clientCertAuth: z.boolean(),
  clientCertFile: z.string(),
  clientKeyFile: z.string(),
  clientCrlFile: z.string(),
  clientCertAllowedHostname: z.array(z.string()),
  /** Only settable in a config file (client-transport-security.allowed-cn). */
  clientCertAllowedCn: z.array(z.string()),
  /** Only settable in a config file (client-transport-security.skip-client-san-verification). */
  clientSkipClientSanVerification: z.boolean(),
  trustedCaFile: z.string(),
  autoTls: z.boolean(),
  // ---- security (peer side)
  peerCertFile: z.string(),
  peerKeyFile: z.string(),
  peerClientCertAuth: z.boolean(),
  peerClientCertFile: z.string(),
  peerClientKeyFile: z.string(),
  peerTrustedCaFile: z.string(),
  peerCertAllowedCn: z.array(z.string()),
  peerCertAllowedHostname: z.array(z.string()),
  peerAutoTls: z.boolean(),
  peerCrlFile: z.string(),
  peerSkipClientSanVerification: z.boolean(),
  selfSignedCertValidity: uint,
  /** Go cipher-suite names, validated against Go's list. */
  cipherSuites: z.array(z.string()),
  tlsMinVersion: z.enum(['', 'TLS1.2', 'TLS1.3']),
  tlsMaxVersion: z.enum(['', 'TLS1.2', 'TLS1.3']),
  /** Allowed CORS origins (canonical URL strings), or ['*']. */
  cors: z.array(z.string()),
  hostWhitelist: z.array(z.string()),

  // ---- auth
  authToken: z.string(),
  authTokenSpec: authTokenSchema,
  /** Raw value; outside 4..31 etcd falls back to 10 (see effective.ts). */
  bcryptCost: uint,
  /** Seconds. */
  authTokenTtl: uint,

  // ---- profiling and monitoring
  enablePprof: z.boolean(),
  /** 'basic' or 'extensive' (etcd accepts any string; only 'extensive' changes anything). */
  metrics: z.string(),

  // ---- logging
  logger: z.literal('zap'),
  /** Sorted, deduplicated; 'default' means stderr. */
  logOutputs: z.array(z.string()),
  logLevel: z.enum(['debug', 'info', 'warn', 'error', 'dpanic', 'panic', 'fatal']),
  logFormat: z.enum(['json', 'console']),
  enableLogRotation: z.boolean(),
  logRotationConfigJson: z.string(),
  /** Parsed log-rotation-config-json when enableLogRotation is set, else null. */
  logRotation: logRotationSchema.nullable(),
  warningUnaryRequestDurationMs: ms,
  warningApplyDurationMs: ms,

  // ---- distributed tracing (parsed only)
  enableDistributedTracing: z.boolean(),
  distributedTracingAddress: z.string(),
  distributedTracingServiceName: z.string(),
  distributedTracingInstanceId: z.string(),
  distributedTracingSamplingRate: int,

  // ---- former experimental features
  /** 0 disables. */
  corruptCheckTimeMs: ms,
  compactHashCheckTimeMs: ms,
  /** 0 means 1000. */
  compactionBatchLimit: int,
  /** 0 means 10ms. */
  compactionSleepIntervalMs: ms,
  /** 0 means 10 minutes; below 100ms etcd uses 100ms. */
  watchProgressNotifyIntervalMs: ms,
  /** (parsed only) */
  downgradeCheckTimeMs: ms,
  /** (parsed only) */
  bootstrapDefragThresholdMegabytes: uint,
  maxLearners: int,

  // ---- unsafe
  forceNewCluster: z.boolean(),
  unsafeNoFsync: z.boolean(),

  // ---- where it came from
  /** The YAML file the configuration was read from, or '' for flags + environment. */
  configFile: z.string(),
  /** Flag names set explicitly (command line, ETCD_* variables, or keys of the config file), sorted. */
  explicitlySet: z.array(z.string()),
});

export type Config = z.infer<typeof configSchema>;
export type ParsedUrlT = z.infer<typeof urlSchema>;
