import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ConfigError,
  DEFAULT_QUOTA_BYTES,
  FLAGS,
  type Config,
  effectiveQuotaBackendBytes,
  effectiveSettings,
  formatGoDuration,
  loadConfig,
  parseCommandLine,
  parseGoDurationNs,
  usageText,
  wantsHelp,
  wantsVersion,
} from '../../src/config';

const FIXTURES = join(__dirname, '..', 'fixtures', 'config');

/** Runs loadConfig and returns the ConfigError it throws (fails the test if it does not throw one). */
function configError(argv: string[], env: Record<string, string> = {}, files: Record<string, string> = {}): ConfigError {
  try {
    loadConfig(argv, env, { readFile: (p) => fileOrThrow(files, p) });
  } catch (e) {
    if (e instanceof ConfigError) {
      expect(e.message).not.toContain('\n');
      return e;
    }
    throw e;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(argv)}`);
}

function fileOrThrow(files: Record<string, string>, p: string): string {
  if (p in files) return files[p];
  const e = new Error(`ENOENT: no such file or directory, open '${p}'`) as NodeJS.ErrnoException;
  e.code = 'ENOENT';
  throw e;
}

const cfg = (argv: string[], env: Record<string, string> = {}): Config => loadConfig(argv, env).config;
const fromYaml = (yaml: string, argv: string[] = [], env: Record<string, string> = {}) =>
  loadConfig(['--config-file', 'etcd.yml', ...argv], env, { readFile: (p) => fileOrThrow({ 'etcd.yml': yaml }, p) });
const hrefs = (us: Array<{ href: string }>): string[] => us.map((u) => u.href);

describe('defaults (etcd 3.6.16)', () => {
  const { config: c, warnings } = loadConfig([], {});

  it('member settings', () => {
    expect(c.name).toBe('default');
    expect(c.dataDir).toBe('default.etcd');
    expect(c.walDir).toBe('');
    expect(c.heartbeatIntervalMs).toBe(100);
    expect(c.electionTimeoutMs).toBe(1000);
    expect(c.snapshotCount).toBe(10000);
    expect(c.snapshotCatchupEntries).toBe(5000);
    expect(c.maxTxnOps).toBe(128);
    expect(c.maxRequestBytes).toBe(1572864);
    expect(c.maxConcurrentStreams).toBe(4294967295);
    expect(c.maxSnapshots).toBe(5);
    expect(c.maxWals).toBe(5);
    expect(c.quotaBackendBytes).toBe(0);
    expect(c.grpcKeepaliveMinTimeMs).toBe(5000);
    expect(c.grpcKeepaliveIntervalMs).toBe(2 * 3600 * 1000);
    expect(c.grpcKeepaliveTimeoutMs).toBe(20000);
    expect(c.initialElectionTickAdvance).toBe(true);
    expect(c.enableGrpcGateway).toBe(true);
    expect(c.raftReadTimeoutMs).toBe(5000);
  });

  it('URLs and cluster', () => {
    expect(hrefs(c.listenClientUrls)).toEqual(['http://localhost:2379']);
    expect(hrefs(c.listenPeerUrls)).toEqual(['http://localhost:2380']);
    expect(hrefs(c.advertiseClientUrls)).toEqual(['http://localhost:2379']);
    expect(hrefs(c.initialAdvertisePeerUrls)).toEqual(['http://localhost:2380']);
    expect(c.listenClientHttpUrls).toEqual([]);
    expect(c.listenMetricsUrls).toEqual([]);
    expect(c.listenClientUrls[0]).toEqual({
      scheme: 'http',
      host: 'localhost',
      port: 2379,
      hostPort: 'localhost:2379',
      path: '',
      href: 'http://localhost:2379',
    });
    expect(c.initialCluster).toBe('default=http://localhost:2380');
    expect(c.initialClusterMembers).toEqual([{ name: 'default', peerUrl: c.initialAdvertisePeerUrls[0] }]);
    expect(c.initialClusterState).toBe('new');
    expect(c.initialClusterToken).toBe('etcd-cluster');
    expect(c.strictReconfigCheck).toBe(true);
    expect(c.preVote).toBe(true);
    expect(c.autoCompactionRetention).toBe('0');
    expect(c.autoCompactionMode).toBe('periodic');
    expect(c.autoCompaction).toEqual({ mode: 'periodic', retentionMs: 0 });
    expect(c.v2Deprecation).toBe('write-only');
  });

  it('security, auth, logging, features', () => {
    expect(c.authToken).toBe('simple');
    expect(c.authTokenSpec).toEqual({ type: 'simple' });
    expect(c.bcryptCost).toBe(10);
    expect(c.authTokenTtl).toBe(300);
    expect(c.tlsMinVersion).toBe('TLS1.2');
    expect(c.tlsMaxVersion).toBe('');
    expect(c.cors).toEqual(['*']);
    expect(c.hostWhitelist).toEqual(['*']);
    expect(c.selfSignedCertValidity).toBe(1);
    expect(c.clientCertAuth).toBe(false);
    expect(c.logger).toBe('zap');
    expect(c.logOutputs).toEqual(['default']);
    expect(c.logLevel).toBe('info');
    expect(c.logFormat).toBe('json');
    expect(c.logRotation).toBeNull();
    expect(c.metrics).toBe('basic');
    expect(c.enablePprof).toBe(false);
    expect(c.warningUnaryRequestDurationMs).toBe(300);
    expect(c.warningApplyDurationMs).toBe(100);
    expect(c.compactHashCheckTimeMs).toBe(60000);
    expect(c.downgradeCheckTimeMs).toBe(5000);
    expect(c.maxLearners).toBe(1);
    expect(c.distributedTracingAddress).toBe('localhost:4317');
    expect(c.featureGates).toEqual({
      AllAlpha: false,
      AllBeta: false,
      CompactHashCheck: false,
      InitialCorruptCheck: false,
      LeaseCheckpoint: false,
      LeaseCheckpointPersist: false,
      SetMemberLocalAddr: false,
      StopGRPCServiceOnDefrag: false,
      TxnModeWriteWithSharedBuffer: true,
    });
    expect(c.configFile).toBe('');
    expect(c.explicitlySet).toEqual([]);
  });

  it('values etcd substitutes at start are exposed through helpers', () => {
    expect(c.watchProgressNotifyIntervalMs).toBe(0);
    expect(effectiveQuotaBackendBytes(c)).toBe(DEFAULT_QUOTA_BYTES);
    expect(DEFAULT_QUOTA_BYTES).toBe(2147483648);
    const e = effectiveSettings(c);
    expect(e.watchProgressNotifyIntervalMs).toBe(10 * 60 * 1000);
    expect(e.snapshotCount).toBe(10000);
    expect(e.electionTicks).toBe(10);
    expect(e.backendBatchIntervalMs).toBe(100);
    expect(e.backendBatchLimit).toBe(10000);
    expect(e.compactionBatchLimit).toBe(1000);
    expect(e.backendBboltFreelistType).toBe('map');
    expect(e.maxRequestBytesWithOverhead).toBe(1572864 + 512 * 1024);
    expect(effectiveQuotaBackendBytes({ quotaBackendBytes: -1 })).toBe(Infinity);
    expect(effectiveQuotaBackendBytes({ quotaBackendBytes: 4096 })).toBe(4096);
  });

  it('warns as etcd does on a default start', () => {
    expect(warnings).toEqual(
      expect.arrayContaining([
        expect.stringContaining('single port'),
        expect.stringContaining('default name'),
        "'data-dir' was empty; using default default.etcd",
      ]),
    );
  });
});

describe('flag syntax (Go flag package)', () => {
  it.each([
    [['-name', 'x']],
    [['--name', 'x']],
    [['-name=x']],
    [['--name=x']],
  ])('accepts %j', (argv) => {
    expect(cfg(argv).name).toBe('x');
  });

  it('booleans take --f, --f=true|false and Go spellings, not a separate argument', () => {
    expect(cfg(['--auto-tls']).autoTls).toBe(true);
    expect(cfg(['-auto-tls=false']).autoTls).toBe(false);
    expect(cfg(['--strict-reconfig-check=0']).strictReconfigCheck).toBe(false);
    expect(cfg(['--strict-reconfig-check=F']).strictReconfigCheck).toBe(false);
    expect(cfg(['--pre-vote=TRUE']).preVote).toBe(true);
    const e = configError(['--auto-tls', 'false']);
    expect(e.message).toBe('"false" is not a valid flag (etcd-ts takes no positional arguments)');
    expect(e.exitCode).toBe(1);
    const b = configError(['--auto-tls=yes']);
    expect(b.message).toBe('invalid value "yes" for flag --auto-tls: expected a boolean (true or false)');
    expect(b.exitCode).toBe(2);
  });

  it('a non-boolean flag takes the next argument even if it starts with a dash', () => {
    expect(cfg(['--name', '-odd-']).name).toBe('-odd-');
  });

  it('the last of repeated flags wins; feature gates accumulate', () => {
    expect(cfg(['--name=a', '--name=b']).name).toBe('b');
    const c = cfg(['--feature-gates=CompactHashCheck=true', '--feature-gates=InitialCorruptCheck=true']);
    expect(c.featureGates.CompactHashCheck).toBe(true);
    expect(c.featureGates.InitialCorruptCheck).toBe(true);
  });

  it('integers use Go base-0 syntax', () => {
    expect(cfg(['--max-txn-ops=0x10']).maxTxnOps).toBe(16);
    expect(cfg(['--max-txn-ops=010']).maxTxnOps).toBe(8);
    expect(cfg(['--max-txn-ops=1_000']).maxTxnOps).toBe(1000);
    expect(cfg(['--quota-backend-bytes=-1']).quotaBackendBytes).toBe(-1);
    expect(configError(['--max-txn-ops=-1']).message).toBe(
      'invalid value "-1" for flag --max-txn-ops: expected an unsigned integer (operations)',
    );
    expect(configError(['--max-concurrent-streams=4294967296']).message).toContain('value out of range');
    expect(configError(['--max-txn-ops=1__0']).exitCode).toBe(2);
  });

  it('parsing stops at "--" and at the first non-flag; leftovers are errors', () => {
    const e = configError(['--', '--name', 'x']);
    expect(e.message).toBe('"--name" is not a valid flag (etcd-ts takes no positional arguments)');
    expect(e.exitCode).toBe(1);
    expect(configError(['foo']).message).toContain('"foo" is not a valid flag');
  });

  it('rejects unknown flags, bad syntax and missing arguments with exit code 2', () => {
    const u = configError(['--bogus']);
    expect(u.message).toBe('flag provided but not defined: --bogus (see --help)');
    expect(u.exitCode).toBe(2);
    expect(u.flag).toBe('bogus');
    const s = configError(['---name']);
    expect(s.message).toBe('bad flag syntax: ---name');
    expect(s.exitCode).toBe(2);
    const m = configError(['--heartbeat-interval']);
    expect(m.message).toBe('flag needs an argument: --heartbeat-interval');
    expect(m.exitCode).toBe(2);
  });

  it('rejects a malformed value naming the flag and the accepted values', () => {
    const e = configError(['--heartbeat-interval', 'abc']);
    expect(e.message).toBe('invalid value "abc" for flag --heartbeat-interval: expected an unsigned integer (milliseconds)');
    expect(e.exitCode).toBe(2);
    expect(e.flag).toBe('heartbeat-interval');
    expect(configError(['--initial-cluster-state=old']).message).toBe(
      'invalid value "old" for flag --initial-cluster-state: expected one of: new, existing',
    );
    expect(configError(['--grpc-keepalive-timeout=10']).message).toBe(
      'invalid value "10" for flag --grpc-keepalive-timeout: time: missing unit in duration "10"; expected a Go duration such as 500ms, 2s or 1h30m (units ns, us, ms, s, m, h)',
    );
    expect(configError(['--listen-client-urls=localhost:2379']).message).toBe(
      'invalid value "localhost:2379" for flag --listen-client-urls: URL scheme must be http, https, unix, or unixs: localhost:2379',
    );
    expect(configError(['--listen-peer-urls=http://10.0.0.1']).message).toBe(
      'invalid value "http://10.0.0.1" for flag --listen-peer-urls: URL address does not have the form "host:port": http://10.0.0.1',
    );
    expect(configError(['--advertise-client-urls=http://a:1/path']).message).toContain('URL must not contain a path');
    expect(configError(['--listen-peer-urls', 'http://[::1:2380']).message).toBe(
      'invalid value "http://[::1:2380" for flag --listen-peer-urls: parse "http://[::1:2380": missing \']\' in host',
    );
    expect(configError(['--listen-peer-urls', 'http://h:abc']).message).toContain('invalid port ":abc" after host');
    expect(configError(['--listen-peer-urls', 'http://a b:1']).message).toContain('invalid character " " in host name');
    expect(configError(['--cors', 'http://x.com']).message).toContain('URL address does not have the form "host:port"');
    expect(configError(['--v2-deprecation=not-yet']).message).toContain('expected a comma-separated list of: write-only');
    expect(configError(['--feature-gates=Nope=true']).message).toContain('unrecognized feature gate: Nope');
    expect(configError(['--feature-gates=CompactHashCheck']).message).toContain('missing bool value for CompactHashCheck');
  });

  it('accepts and ignores the pre-v3 flags etcd still accepts', () => {
    const r = loadConfig(['--v', '--snapshot=x', '--peer-heartbeat-interval'], {});
    expect(r.warnings).toContain('flag --v is no longer supported; it is ignored');
    expect(r.warnings).toContain('flag --snapshot is no longer supported; it is ignored');
  });
});

describe('--help and --version', () => {
  it('detects help as Go does: -h, -help, --help (any value), unless an error comes first', () => {
    expect(wantsHelp(['-h'])).toBe(true);
    expect(wantsHelp(['--help'])).toBe(true);
    expect(wantsHelp(['--help=false'])).toBe(true);
    expect(wantsHelp(['--name', 'x', '-help'])).toBe(true);
    expect(wantsHelp(['--help', '--bogus'])).toBe(true);
    expect(wantsHelp(['--bogus', '--help'])).toBe(false);
    expect(wantsHelp(['--name', '--help'])).toBe(false); // "--help" is the value of --name
    expect(wantsHelp([])).toBe(false);
  });

  it('detects --version only when the command line is otherwise valid', () => {
    expect(wantsVersion(['--version'])).toBe(true);
    expect(wantsVersion(['-version=true', '--name', 'x'])).toBe(true);
    expect(wantsVersion(['--version=false'])).toBe(false);
    expect(wantsVersion(['--version', 'extra'])).toBe(false);
    expect(wantsVersion(['--bogus', '--version'])).toBe(false);
  });

  it('parseCommandLine returns a discriminated result', () => {
    expect(parseCommandLine(['--help'], {})).toEqual({ action: 'help' });
    expect(parseCommandLine(['--version'], { ETCD_NAME: 'x' })).toEqual({ action: 'version' });
    const r = parseCommandLine(['--name', 'n1'], {});
    expect(r.action).toBe('run');
    if (r.action === 'run') expect(r.config.name).toBe('n1');
    expect(() => parseCommandLine(['--version', 'extra'], {})).toThrow('"extra" is not a valid flag');
    // the ETCD_VERSION variable never asks for the version
    expect(parseCommandLine([], { ETCD_VERSION: '1' }).action).toBe('run');
  });

  it('loadConfig ignores --help and --version', () => {
    expect(loadConfig(['--help', '--name', 'x', '--version'], {}).config.name).toBe('x');
  });

  it('usageText is grouped like etcd and lists every visible flag', () => {
    const text = usageText();
    for (const g of ['Member:', 'Clustering:', 'Security:', 'Auth:', 'Profiling and Monitoring:', 'Logging:', 'Unsafe:']) {
      expect(text).toContain(`\n${g}\n`);
    }
    expect(text.indexOf('Member:')).toBeLessThan(text.indexOf('Clustering:'));
    expect(text.indexOf('Clustering:')).toBeLessThan(text.indexOf('Security:'));
    for (const f of FLAGS) {
      if (!f.hidden && f.group !== 'Command') expect(text).toContain(`  --${f.name}`);
    }
    expect(text).toContain("--heartbeat-interval '100'");
    expect(text).toContain("--data-dir '${name}.etcd'");
    expect(text).toContain('CompactHashCheck=true|false (ALPHA - default=false)');
    expect(text).toContain('--config-file');
  });
});

describe('environment variables', () => {
  it('ETCD_FOO_BAR sets --foo-bar and counts as explicitly set', () => {
    const c = cfg([], { ETCD_NAME: 'env1', ETCD_HEARTBEAT_INTERVAL: '200', ETCD_ELECTION_TIMEOUT: '2000', ETCD_AUTO_TLS: 'true' });
    expect(c.name).toBe('env1');
    expect(c.heartbeatIntervalMs).toBe(200);
    expect(c.electionTimeoutMs).toBe(2000);
    expect(c.autoTls).toBe(true);
    expect(c.dataDir).toBe('env1.etcd');
    expect(c.explicitlySet).toEqual(['auto-tls', 'election-timeout', 'heartbeat-interval', 'name']);
  });

  it('a flag and its variable together are an error, as in etcd (which exits 1)', () => {
    const e = configError(['--name', 'flag'], { ETCD_NAME: 'env' });
    expect(e.message).toBe(
      'conflicting environment variable ETCD_NAME is shadowed by command-line flag --name (unset the variable or drop the flag)',
    );
    expect(e.exitCode).toBe(1);
    // even an empty variable conflicts
    expect(configError(['--name', 'flag'], { ETCD_NAME: '' }).flag).toBe('name');
  });

  it('a bad variable value names the variable', () => {
    const e = configError([], { ETCD_HEARTBEAT_INTERVAL: 'abc' });
    expect(e.message).toBe('invalid value "abc" for ETCD_HEARTBEAT_INTERVAL: expected an unsigned integer (milliseconds)');
    expect(e.exitCode).toBe(1);
    expect(configError([], { ETCD_AUTO_TLS: 'yes' }).message).toBe(
      'invalid value "yes" for ETCD_AUTO_TLS: expected a boolean (true or false)',
    );
  });

  it('warns about unrecognized and empty ETCD_* variables, ignores ETCDCTL_* and others', () => {
    const { config, warnings } = loadConfig([], {
      ETCD_FOO: '1',
      ETCD_NAME: '',
      ETCD_VERSION: '3.6',
      ETCDCTL_ENDPOINTS: 'http://x:2379',
      ETCDCTL_API: '3',
      PATH: '/usr/bin',
    });
    expect(config.name).toBe('default');
    expect(warnings).toContain('unrecognized environment variable ETCD_FOO; it is ignored');
    expect(warnings).toContain('environment variable ETCD_NAME is empty; it is ignored');
    expect(warnings).toContain('cannot set special environment variable ETCD_VERSION; it is ignored');
    expect(warnings.join('\n')).not.toContain('ETCDCTL');
    expect(warnings.join('\n')).not.toContain('PATH');
  });

  it('parses the compose-style environment of the reference Patroni cluster', () => {
    const { config: c } = loadConfig([], {
      ETCD_NAME: 'etcd1',
      ETCD_INITIAL_CLUSTER: 'etcd1=http://etcd1:2380,etcd2=http://etcd2:2380,etcd3=http://etcd3:2380',
      ETCD_INITIAL_CLUSTER_TOKEN: 'paws360-etcd-cluster',
      ETCD_INITIAL_CLUSTER_STATE: 'new',
      ETCD_LISTEN_CLIENT_URLS: 'http://0.0.0.0:2379',
      ETCD_ADVERTISE_CLIENT_URLS: 'http://etcd1:2379',
      ETCD_LISTEN_PEER_URLS: 'http://0.0.0.0:2380',
      ETCD_INITIAL_ADVERTISE_PEER_URLS: 'http://etcd1:2380',
      ETCDCTL_API: '3',
    });
    expect(c.name).toBe('etcd1');
    expect(c.dataDir).toBe('etcd1.etcd');
    expect(c.initialClusterToken).toBe('paws360-etcd-cluster');
    expect(c.initialClusterState).toBe('new');
    expect(c.listenClientUrls).toEqual([
      { scheme: 'http', host: '0.0.0.0', port: 2379, hostPort: '0.0.0.0:2379', path: '', href: 'http://0.0.0.0:2379' },
    ]);
    expect(hrefs(c.advertiseClientUrls)).toEqual(['http://etcd1:2379']);
    expect(hrefs(c.listenPeerUrls)).toEqual(['http://0.0.0.0:2380']);
    expect(hrefs(c.initialAdvertisePeerUrls)).toEqual(['http://etcd1:2380']);
    expect(c.initialClusterMembers.map((m) => [m.name, m.peerUrl.host, m.peerUrl.port])).toEqual([
      ['etcd1', 'etcd1', 2380],
      ['etcd2', 'etcd2', 2380],
      ['etcd3', 'etcd3', 2380],
    ]);
  });
});

describe('derived values', () => {
  it('data-dir defaults to ${name}.etcd after the name is known; an explicit one is kept', () => {
    expect(cfg(['--name', 'n1']).dataDir).toBe('n1.etcd');
    expect(cfg(['--name', 'n1', '--data-dir', '/var/lib/etcd']).dataDir).toBe('/var/lib/etcd');
  });

  it('initial-cluster is derived from --name and --initial-advertise-peer-urls when left at its default', () => {
    expect(cfg(['--name', 'n1']).initialCluster).toBe('n1=http://localhost:2380');
    const c = cfg([
      '--name', 'n1',
      '--initial-advertise-peer-urls', 'http://10.0.0.2:2380,http://10.0.0.1:2380,http://10.0.0.1:2380',
    ]);
    // sorted and deduplicated, as etcd's URL flags are
    expect(hrefs(c.initialAdvertisePeerUrls)).toEqual(['http://10.0.0.1:2380', 'http://10.0.0.2:2380']);
    expect(c.initialCluster).toBe('n1=http://10.0.0.1:2380,n1=http://10.0.0.2:2380');
    expect(c.initialClusterMembers.map((m) => m.name)).toEqual(['n1', 'n1']);
    expect(cfg(['--name', 'n1', '--initial-cluster', 'a=http://a:2380']).initialCluster).toBe('a=http://a:2380');
  });

  it('advertise-client-urls must accompany an explicit listen-client-urls', () => {
    const e = configError(['--listen-client-urls', 'http://127.0.0.1:2379']);
    expect(e.message).toBe('--advertise-client-urls is required when --listen-client-urls is set explicitly');
    expect(e.exitCode).toBe(1);
  });

  it('experimental aliases still work, with etcd’s deprecation warning; both names is an error', () => {
    const r = loadConfig(['--experimental-watch-progress-notify-interval=5s', '--experimental-snapshot-catchup-entries=100'], {});
    expect(r.config.watchProgressNotifyIntervalMs).toBe(5000);
    expect(r.config.snapshotCatchupEntries).toBe(100);
    expect(r.warnings).toContain(
      "--experimental-watch-progress-notify-interval is deprecated in v3.6 and will be decommissioned in v3.7. Use '--watch-progress-notify-interval' instead.",
    );
    expect(configError(['--experimental-corrupt-check-time=1m', '--corrupt-check-time=2m']).message).toBe(
      'cannot set --experimental-corrupt-check-time and --corrupt-check-time at the same time, please use --corrupt-check-time only',
    );
    expect(cfg(['--experimental-peer-skip-client-san-verification']).peerSkipClientSanVerification).toBe(true);
    expect(loadConfig(['--max-snapshots=3'], {}).warnings).toContain(
      '--max-snapshots is deprecated in 3.6 and will be decommissioned in 3.8.',
    );
  });

  it('experimental boolean switches feed the feature gates', () => {
    const c = cfg(['--experimental-initial-corrupt-check', '--experimental-txn-mode-write-with-shared-buffer=false']);
    expect(c.featureGates.InitialCorruptCheck).toBe(true);
    expect(c.featureGates.TxnModeWriteWithSharedBuffer).toBe(false);
    expect(configError(['--experimental-compact-hash-check-enabled', '--feature-gates=CompactHashCheck=false']).message).toBe(
      'cannot specify both flags: --experimental-compact-hash-check-enabled=true and --feature-gates=CompactHashCheck=false at the same time, please just use --feature-gates=CompactHashCheck=false',
    );
    const all = cfg(['--feature-gates=AllAlpha=true,LeaseCheckpointPersist=true']);
    expect(all.featureGates.CompactHashCheck).toBe(true);
    expect(all.featureGates.TxnModeWriteWithSharedBuffer).toBe(true);
    expect(configError(['--feature-gates=LeaseCheckpointPersist=true']).message).toBe(
      'enabling feature gate LeaseCheckpointPersist requires enabling feature gate LeaseCheckpoint',
    );
    expect(loadConfig(['--feature-gates=LeaseCheckpoint=true'], {}).warnings).toContain(
      'Detected that checkpointing is enabled without persistence. Consider enabling feature gate LeaseCheckpointPersist',
    );
  });

  it('warning-unary-request-duration: default 300ms, old name accepted with a warning, both is an error', () => {
    expect(cfg(['--warning-unary-request-duration=1s']).warningUnaryRequestDurationMs).toBe(1000);
    const r = loadConfig(['--experimental-warning-unary-request-duration=2s'], {});
    expect(r.config.warningUnaryRequestDurationMs).toBe(2000);
    expect(r.warnings.some((w) => w.startsWith('--experimental-warning-unary-request-duration is deprecated'))).toBe(true);
    expect(
      configError(['--experimental-warning-unary-request-duration=2s', '--warning-unary-request-duration=1s']).message,
    ).toContain('both --experimental-warning-unary-request-duration and --warning-unary-request-duration flags are set');
  });

  it('v2-deprecation is forced to write-only unless write-only-skip-check', () => {
    expect(cfg(['--v2-deprecation=gone']).v2Deprecation).toBe('write-only');
    expect(cfg(['--v2-deprecation=write-only-skip-check']).v2Deprecation).toBe('write-only-skip-check');
  });
});

describe('validation (etcd’s rules and texts)', () => {
  it.each<[string[], string]>([
    [['--election-timeout', '400'], '--election-timeout[400ms] should be at least as 5 times as --heartbeat-interval[100ms]'],
    [['--heartbeat-interval', '0'], '--heartbeat-interval must be >0 (set to 0ms)'],
    [['--election-timeout', '0'], '--election-timeout must be >0 (set to 0ms)'],
    [['--election-timeout', '60000'], '--election-timeout[60000ms] is too long, and should be set less than 50000ms'],
    [
      ['--listen-client-urls', 'http://example.com:2379', '--advertise-client-urls', 'http://example.com:2379'],
      '--listen-client-urls: expected IP in URL for binding (http://example.com:2379)',
    ],
    [['--initial-advertise-peer-urls', 'http://:2380'], '--initial-advertise-peer-urls "http://:2380" must be "host:port" (unexpected empty host (http://:2380))'],
    [['--auto-compaction-mode', 'daily'], 'unknown auto-compaction-mode "daily" (expected periodic or revision)'],
    [['--auto-compaction-mode', ''], 'undefined auto-compaction-mode (expected periodic or revision)'],
    [['--auto-compaction-retention', 'abc'], 'invalid value "abc" for --auto-compaction-retention: error parsing CompactionRetention: time: invalid duration "abc" (expected hours or a duration; expected a Go duration such as 500ms, 2s or 1h30m (units ns, us, ms, s, m, h))'],
    [['--auto-compaction-retention', '-1'], 'invalid value "-1" for --auto-compaction-retention: error parsing CompactionRetention: time: missing unit in duration "-1" (expected hours or a duration; expected a Go duration such as 500ms, 2s or 1h30m (units ns, us, ms, s, m, h))'],
    [['--log-format', 'text'], 'unknown log format: text for --log-format, supported values json, console'],
    [['--logger', 'capnslog'], '--logger=capnslog is removed in v3.5; use --logger=zap'],
    [['--log-outputs', 'default,stdout'], 'multi logoutput for "default" is not supported yet (--log-outputs=default,stdout); name stderr or stdout instead'],
    [['--enable-log-rotation'], '--log-outputs requires a single file path when --log-rotate-config-json is defined'],
    [['--enable-log-rotation', '--log-outputs', '/tmp/a.log', '--log-rotation-config-json', '{bad'], 'improperly formatted log rotation config'],
    [['--tls-min-version', 'TLS1.1'], 'unexpected TLS version "TLS1.1" for --tls-min-version (must be one of: TLS1.2, TLS1.3)'],
    [['--tls-min-version', 'TLS1.3', '--tls-max-version', 'TLS1.2'], 'min version (TLS1.3) is greater than max version (TLS1.2)'],
    [['--tls-min-version', 'TLS1.3', '--cipher-suites', 'TLS_AES_128_GCM_SHA256'], 'cipher suites cannot be configured when only TLS1.3 is enabled'],
    [['--cipher-suites', 'TLS_FAKE'], 'unexpected TLS cipher suite "TLS_FAKE" for --cipher-suites'],
    [['--discovery-srv', 'example.com'], '--discovery-srv is set, but etcd-ts does not support discovery; bootstrap with --initial-cluster instead'],
    [['--discovery', 'https://discovery.example/abc'], '--discovery is set, but etcd-ts does not support discovery'],
    [['--discovery-token', 'tok'], 'both --discovery-token and --discovery-endpoints must be set'],
    [['--discovery-fallback', 'proxy'], 'v2 proxy is deprecated, and --discovery-fallback can\'t be configured as "proxy"'],
    [['--initial-cluster', 'a=http://a:2380', '--discovery-srv', 'example.com'], 'multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery", "discovery-endpoints" or "discovery-srv"'],
    [['--initial-cluster', 'n1=10.0.0.1:2380'], 'invalid value "n1=10.0.0.1:2380" for --initial-cluster: member "n1": parse "10.0.0.1:2380": first path segment in URL cannot contain colon'],
    [['--initial-cluster', 'n1'], 'invalid value "n1" for --initial-cluster: member entry "n1" is not of the form name=peer-url'],
    [['--compact-hash-check-time', '0s'], '--compact-hash-check-time must be >0 (set to 0s)'],
    [['--experimental-compact-hash-check-time', '-1m'], '--experimental-compact-hash-check-time must be >0 (set to -1m0s)'],
    [['--auth-token', 'jwt'], 'invalid value "jwt" for --auth-token: auth: invalid auth signature method "" (accepted: HS256'],
    [['--auth-token', 'jwt,sign-method=RS256'], 'invalid value "jwt,sign-method=RS256" for --auth-token: auth: missing key data'],
    [['--auth-token', 'oauth'], 'auth: invalid auth options (unknown token type "oauth"; accepted: simple, jwt)'],
    [['--auth-token', 'jwt,ttl'], 'is not key=value'],
    [
      ['--listen-client-urls', 'https://127.0.0.1:2379', '--advertise-client-urls', 'https://127.0.0.1:2379'],
      'TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 with HTTPS scheme',
    ],
    [
      ['--listen-client-http-urls', 'http://localhost:2379'],
      'cannot bind both --listen-client-urls and --listen-client-http-urls on the same url http://localhost:2379',
    ],
    [['--listen-metrics-urls', 'https://127.0.0.1:2381'], 'client TLS key/cert (--cert-file, --key-file) must be provided for metrics secure url https://127.0.0.1:2381'],
    [['--enable-distributed-tracing', '--distributed-tracing-sampling-rate=-5'], 'tracing sampling rate must be positive'],
  ])('%j → %s', (argv, message) => {
    const e = configError(argv);
    expect(e.message).toContain(message);
    expect(e.exitCode).toBe(1);
  });

  it('an unknown log level is exit code 2 (etcd panics)', () => {
    const e = configError(['--log-level', 'verbose']);
    expect(e.message).toBe(
      'invalid value "verbose" for --log-level: unrecognized level (accepted: debug, info, warn, error, dpanic, panic, fatal)',
    );
    expect(e.exitCode).toBe(2);
    expect(cfg(['--log-level', 'WARN']).logLevel).toBe('warn');
    expect(cfg(['--log-level', 'Debug']).logLevel).toBe('debug');
  });

  it('https with certificates, or with auto-tls, is fine', () => {
    const c = cfg([
      '--listen-client-urls', 'https://127.0.0.1:2379',
      '--advertise-client-urls', 'https://127.0.0.1:2379',
      '--cert-file', 's.crt', '--key-file', 's.key',
    ]);
    expect(c.listenClientUrls[0].scheme).toBe('https');
    expect(cfg(['--listen-client-urls', 'https://127.0.0.1:2379', '--advertise-client-urls', 'https://h:2379', '--auto-tls']).autoTls).toBe(true);
  });

  it('quota above 8 GiB only warns', () => {
    const r = loadConfig(['--quota-backend-bytes', String(9 * 1024 ** 3)], {});
    expect(r.config.quotaBackendBytes).toBe(9 * 1024 ** 3);
    expect(r.warnings.some((w) => w.startsWith('quota exceeds the maximum value'))).toBe(true);
  });

  it('out-of-range bcrypt cost and too-short watch progress interval only warn', () => {
    const r = loadConfig(['--bcrypt-cost=40', '--watch-progress-notify-interval=10ms'], {});
    expect(r.config.bcryptCost).toBe(40);
    expect(effectiveSettings(r.config).bcryptCost).toBe(10);
    expect(effectiveSettings(r.config).watchProgressNotifyIntervalMs).toBe(100);
    expect(r.warnings.some((w) => w.includes('bcrypt-cost=40'))).toBe(true);
    expect(r.warnings.some((w) => w.startsWith('adjusting watch progress notify interval'))).toBe(true);
  });

  it('http listeners with TLS files warn that the files are ignored', () => {
    const r = loadConfig(['--cert-file', 'a', '--key-file', 'b'], {});
    expect(r.warnings.some((w) => w.startsWith('scheme is http or unix while key and cert files are present'))).toBe(true);
  });

  it('parses URLs into parts, including IPv6 and unix sockets', () => {
    const c = cfg([
      '--listen-client-urls', 'http://[::1]:2379,unix://localhost:12345,HTTP://127.0.0.1:22379',
      '--advertise-client-urls', 'http://[::1]:2379',
    ]);
    expect(c.listenClientUrls).toEqual([
      { scheme: 'http', host: '127.0.0.1', port: 22379, hostPort: '127.0.0.1:22379', path: '', href: 'http://127.0.0.1:22379' },
      { scheme: 'http', host: '::1', port: 2379, hostPort: '[::1]:2379', path: '', href: 'http://[::1]:2379' },
      { scheme: 'unix', host: 'localhost', port: 12345, hostPort: 'localhost:12345', path: '', href: 'unix://localhost:12345' },
    ]);
  });
});

describe('auth token, compaction, durations', () => {
  it('parses jwt options', () => {
    const r = loadConfig(['--auth-token', 'jwt,pub-key=app.rsa.pub,priv-key=app.rsa,sign-method=RS256,ttl=10m'], {});
    expect(r.config.authTokenSpec).toEqual({ type: 'jwt', signMethod: 'RS256', pubKey: 'app.rsa.pub', privKey: 'app.rsa', ttlMs: 600000 });
    expect(cfg(['--auth-token', 'jwt,priv-key=k,sign-method=HS256']).authTokenSpec).toMatchObject({ ttlMs: 300000 });
    expect(loadConfig(['--auth-token', 'jwt,priv-key=k,sign-method=HS256,foo=1'], {}).warnings).toContain(
      'unknown JWT options in --auth-token: foo',
    );
    expect(cfg(['--auth-token=']).authTokenSpec).toEqual({ type: 'none' });
  });

  it('auto-compaction-retention as etcd reads it', () => {
    expect(cfg(['--auto-compaction-retention', '5']).autoCompaction).toEqual({ mode: 'periodic', retentionMs: 5 * 3600_000 });
    expect(cfg(['--auto-compaction-retention', '1h30m']).autoCompaction).toEqual({ mode: 'periodic', retentionMs: 5400_000 });
    expect(cfg(['--auto-compaction-retention', '30m']).autoCompaction).toEqual({ mode: 'periodic', retentionMs: 1800_000 });
    expect(cfg(['--auto-compaction-mode', 'revision', '--auto-compaction-retention', '1000']).autoCompaction).toEqual({
      mode: 'revision',
      retentionRevisions: 1000,
    });
    const r = loadConfig(['--auto-compaction-mode', 'revision', '--auto-compaction-retention', '1s'], {});
    expect(r.config.autoCompaction).toEqual({ mode: 'revision', retentionRevisions: 1e9 });
    expect(r.warnings.some((w) => w.includes('reads it as 1000000000 revisions'))).toBe(true);
  });

  it('parses and formats Go durations', () => {
    const ns = (s: string): bigint => {
      const r = parseGoDurationNs(s);
      if (!r.ok) throw new Error(r.reason);
      return r.value;
    };
    expect(ns('1h30m')).toBe(5_400_000_000_000n);
    expect(ns('500ms')).toBe(500_000_000n);
    expect(ns('2s')).toBe(2_000_000_000n);
    expect(ns('1.5h')).toBe(5_400_000_000_000n);
    expect(ns('1us')).toBe(1000n);
    expect(ns('1µs')).toBe(1000n);
    expect(ns('3ns')).toBe(3n);
    expect(ns('0')).toBe(0n);
    expect(ns('-1m')).toBe(-60_000_000_000n);
    expect(ns('.5s')).toBe(500_000_000n);
    expect(parseGoDurationNs('1d')).toEqual({ ok: false, reason: 'time: unknown unit "d" in duration "1d"' });
    expect(parseGoDurationNs('5')).toEqual({ ok: false, reason: 'time: missing unit in duration "5"' });
    expect(parseGoDurationNs('')).toEqual({ ok: false, reason: 'time: invalid duration ""' });
    expect(parseGoDurationNs('.s').ok).toBe(false);
    expect(formatGoDuration(5_400_000_000_000n)).toBe('1h30m0s');
    expect(formatGoDuration(60_000_000_000n)).toBe('1m0s');
    expect(formatGoDuration(500_000_000n)).toBe('500ms');
    expect(formatGoDuration(1500n)).toBe('1.5µs');
    expect(formatGoDuration(0n)).toBe('0s');
    expect(formatGoDuration(1_500_000_000n)).toBe('1.5s');
    expect(cfg(['--backend-batch-interval=250us']).backendBatchIntervalMs).toBe(0.25);
  });
});

describe('--config-file (YAML)', () => {
  const runbook = readFileSync(join(FIXTURES, 'runbook.etcd.conf.yml'), 'utf8');

  it('parses and validates the production runbook into the expected Config', () => {
    const r = loadConfig(['--config-file', 'runbook.etcd.conf.yml'], {}, { readFile: () => runbook });
    const c = r.config;
    expect(c.configFile).toBe('runbook.etcd.conf.yml');
    expect(c.name).toBe('etcd-1');
    expect(c.dataDir).toBe('/var/lib/etcd');
    expect(hrefs(c.listenPeerUrls)).toEqual(['https://10.0.0.11:2380']);
    expect(hrefs(c.initialAdvertisePeerUrls)).toEqual(['https://10.0.0.11:2380']);
    expect(hrefs(c.listenClientUrls)).toEqual(['https://10.0.0.11:2379', 'https://127.0.0.1:2379']);
    expect(hrefs(c.advertiseClientUrls)).toEqual(['https://10.0.0.11:2379']);
    expect(c.initialClusterToken).toBe('patroni-etcd-cluster');
    expect(c.initialClusterState).toBe('new');
    expect(c.initialCluster).toBe('etcd-1=https://10.0.0.11:2380,etcd-2=https://10.0.0.12:2380,etcd-3=https://10.0.0.13:2380');
    expect(c.initialClusterMembers.map((m) => [m.name, m.peerUrl.scheme, m.peerUrl.host, m.peerUrl.port])).toEqual([
      ['etcd-1', 'https', '10.0.0.11', 2380],
      ['etcd-2', 'https', '10.0.0.12', 2380],
      ['etcd-3', 'https', '10.0.0.13', 2380],
    ]);
    expect(c.heartbeatIntervalMs).toBe(250);
    expect(c.electionTimeoutMs).toBe(2500);
    expect(c.snapshotCount).toBe(10000);
    expect(c.quotaBackendBytes).toBe(2147483648);
    expect(effectiveQuotaBackendBytes(c)).toBe(2147483648);
    expect(c.autoCompactionMode).toBe('periodic');
    expect(c.autoCompactionRetention).toBe('1h');
    expect(c.autoCompaction).toEqual({ mode: 'periodic', retentionMs: 3600_000 });
    expect(c.certFile).toBe('/etc/etcd/pki/server.crt');
    expect(c.keyFile).toBe('/etc/etcd/pki/server.key');
    expect(c.trustedCaFile).toBe('/etc/etcd/pki/ca.crt');
    expect(c.clientCertAuth).toBe(true);
    expect(c.peerCertFile).toBe('/etc/etcd/pki/peer.crt');
    expect(c.peerKeyFile).toBe('/etc/etcd/pki/peer.key');
    expect(c.peerTrustedCaFile).toBe('/etc/etcd/pki/ca.crt');
    expect(c.peerClientCertAuth).toBe(true);
    expect(c.autoTls).toBe(false);
    // untouched settings keep etcd's defaults
    expect(c.maxRequestBytes).toBe(1572864);
    expect(c.authToken).toBe('simple');
    expect(c.logLevel).toBe('info');
    expect(effectiveSettings(c).electionTicks).toBe(10);
    expect(c.explicitlySet).toEqual(
      expect.arrayContaining(['name', 'heartbeat-interval', 'client-transport-security', 'peer-cert-file', 'peer-client-cert-auth']),
    );
    expect(r.warnings.some((w) => w.startsWith('unknown key'))).toBe(false);
  });

  it('is also found through ETCD_CONFIG_FILE, and then other flags and variables are ignored', () => {
    const r = loadConfig(['--name', 'ignored'], { ETCD_CONFIG_FILE: '/etc/etcd/etcd.conf.yml', ETCD_NAME: 'also-ignored' }, {
      readFile: (p) => fileOrThrow({ '/etc/etcd/etcd.conf.yml': runbook }, p),
    });
    expect(r.config.name).toBe('etcd-1');
    expect(r.config.configFile).toBe('/etc/etcd/etcd.conf.yml');
    expect(r.warnings).toContain(
      'configuration loaded from /etc/etcd/etcd.conf.yml; other command-line flags and environment variables are ignored: --name, ETCD_NAME',
    );
  });

  it('derives initial-cluster and data-dir from the name, and keeps the default advertise URL', () => {
    const c = fromYaml("name: abc\nlisten-client-urls: 'http://127.0.0.1:2379'\n").config;
    expect(c.initialCluster).toBe('abc=http://localhost:2380');
    expect(c.dataDir).toBe('abc.etcd');
    // unlike the command line, etcd's file loader keeps the default advertise-client-urls
    expect(hrefs(c.advertiseClientUrls)).toEqual(['http://localhost:2379']);
  });

  it('takes YAML 1.1 booleans, integer nanosecond durations and lists', () => {
    const c = fromYaml(
      [
        'client-transport-security:',
        '  client-cert-auth: yes',
        '  allowed-cn: [a, b]',
        '  allowed-hostname: [h1]',
        'peer-transport-security:',
        '  auto-tls: on',
        '  allowed-cn: [peer1]',
        '  skip-client-san-verification: true',
        'watch-progress-notify-interval: 600000000000',
        'grpc-keepalive-timeout: 1500000000',
        'log-outputs: [stdout]',
        'cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]',
        "cors: 'http://a.example:80,http://b.example:80'",
        "host-whitelist: 'b,a'",
        "feature-gates: 'CompactHashCheck=true'",
        'socket-options:',
        '  reuse-port: true',
        'experimental-snapshot-catch-up-entries: 42',
        'log-level: DEBUG',
        '',
      ].join('\n'),
    ).config;
    expect(c.clientCertAuth).toBe(true);
    expect(c.clientCertAllowedCn).toEqual(['a', 'b']);
    expect(c.clientCertAllowedHostname).toEqual(['h1']);
    expect(c.peerAutoTls).toBe(true);
    expect(c.peerCertAllowedCn).toEqual(['peer1']);
    expect(c.peerSkipClientSanVerification).toBe(true);
    expect(c.watchProgressNotifyIntervalMs).toBe(600000);
    expect(c.grpcKeepaliveTimeoutMs).toBe(1500);
    expect(c.logOutputs).toEqual(['stdout']);
    expect(c.cipherSuites).toEqual(['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256']);
    expect(c.cors).toEqual(['http://a.example:80', 'http://b.example:80']);
    expect(c.hostWhitelist).toEqual(['a', 'b']);
    expect(c.featureGates.CompactHashCheck).toBe(true);
    expect(c.socketReusePort).toBe(true);
    expect(c.snapshotCatchupEntries).toBe(42);
    expect(c.logLevel).toBe('debug');
  });

  it('ignores unknown keys like etcd, with a warning', () => {
    const r = fromYaml('bogus-key: 1\nname: x\nclient-transport-security:\n  crl-file: /x.crl\ncert-file: /top-level.crt\n');
    expect(r.config.name).toBe('x');
    expect(r.config.certFile).toBe('');
    expect(r.warnings).toContain('unknown key "bogus-key" in config file etcd.yml is ignored (etcd ignores it too)');
    expect(r.warnings).toContain(
      'unknown key "client-transport-security.crl-file" in config file etcd.yml is ignored (etcd 3.6 has no config-file setting for CRL files)',
    );
    expect(r.warnings.some((w) => w.startsWith('unknown key "cert-file"'))).toBe(true);
  });

  it('warns about deprecated keys and applies experimental ones', () => {
    const r = fromYaml('max-snapshots: 2\nexperimental-watch-progress-notify-interval: 5000000000\n');
    expect(r.config.maxSnapshots).toBe(2);
    expect(r.config.watchProgressNotifyIntervalMs).toBe(5000);
    expect(r.warnings).toContain('--max-snapshots is deprecated in 3.6 and will be decommissioned in 3.8.');
  });

  it('rejects values of the wrong type, naming the key', () => {
    const e1 = configError(['--config-file', 'c.yml'], {}, { 'c.yml': 'heartbeat-interval: "250"\n' });
    expect(e1.message).toBe(
      'invalid value for "heartbeat-interval" in config file c.yml: expected an unsigned integer (milliseconds), got "250" (a string)',
    );
    expect(e1.exitCode).toBe(1);
    expect(e1.flag).toBe('heartbeat-interval');
    expect(configError(['--config-file', 'c.yml'], {}, { 'c.yml': 'auto-compaction-retention: 1\n' }).message).toBe(
      'invalid value for "auto-compaction-retention" in config file c.yml: expected a string, got 1 (a number)',
    );
    expect(configError(['--config-file', 'c.yml'], {}, { 'c.yml': 'watch-progress-notify-interval: 10m\n' }).message).toContain(
      'expected an integer number of nanoseconds',
    );
    expect(configError(['--config-file', 'c.yml'], {}, { 'c.yml': 'heartbeat-interval: -5\n' }).message).toContain(
      'got -5 (a number)',
    );
    expect(configError(['--config-file', 'c.yml'], {}, { 'c.yml': 'peer-transport-security: 5\n' }).message).toBe(
      'invalid peer-transport-security in config file c.yml: expected a mapping of TLS settings, got 5 (a number)',
    );
    expect(configError(['--config-file', 'c.yml'], {}, { 'c.yml': 'log-outputs: stderr\n' }).message).toContain(
      'expected a list of strings',
    );
    expect(configError(['--config-file', 'c.yml'], {}, { 'c.yml': "listen-peer-urls: 'localhost:2380'\n" }).message).toBe(
      'invalid value for "listen-peer-urls" in config file c.yml: URL scheme must be http, https, unix, or unixs: localhost:2380',
    );
  });

  it('validates a file like the command line', () => {
    expect(configError(['--config-file', 'c.yml'], {}, { 'c.yml': 'heartbeat-interval: 250\nelection-timeout: 1000\n' }).message).toBe(
      '--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[250ms]',
    );
    expect(configError(['--config-file', 'c.yml'], {}, { 'c.yml': "initial-cluster-state: 'old'\n" }).message).toBe(
      'unexpected clusterState "old" for initial-cluster-state (expected new or existing)',
    );
    expect(fromYaml("initial-cluster-state: ''\n").config.initialClusterState).toBe('new');
  });

  it('reports unreadable and unparsable files', () => {
    const e = configError(['--config-file', 'missing.yml']);
    expect(e.message).toBe('cannot read config file missing.yml (from --config-file): ENOENT');
    expect(configError([], { ETCD_CONFIG_FILE: 'gone.yml' }).message).toContain('(from ETCD_CONFIG_FILE)');
    expect(configError(['--config-file', 'c.yml'], {}, { 'c.yml': 'name: [unclosed\n' }).message).toMatch(
      /^cannot parse config file c\.yml: /,
    );
    expect(configError(['--config-file', 'c.yml'], {}, { 'c.yml': 'name: a\nname: b\n' }).message).toMatch(/^cannot parse config file/);
    expect(configError(['--config-file', 'c.yml'], {}, { 'c.yml': 'just a string\n' }).message).toContain(
      'must be a YAML mapping',
    );
    expect(fromYaml('').config.name).toBe('default');
  });
});
