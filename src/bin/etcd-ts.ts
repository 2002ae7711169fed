#!/usr/bin/env node
// The etcd-ts command: etcd's flags / ETCD_* env / --config-file YAML -> one Config -> a running member.
// A bad flag or value is one line on stderr and a non-zero exit, before any data is touched.
import { Config, ConfigError, parseCommandLine, usageText } from '../config';
import { NodeOptions, startNode } from '../node';
import { enableGrpcHandlingHistogram } from '../metrics';
import { ETCD_API_VERSION } from '../server';
import { createLogger } from '../util/logger';
import type { TlsFiles } from '../util/tls';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const PACKAGE_VERSION: string = require('../../../package.json').version;

export function versionText(): string {
  return [
    `etcd-ts Version: ${PACKAGE_VERSION}`,
    `etcd API Version: ${ETCD_API_VERSION}`,
    `Node Version: ${process.version}`,
    `OS/Arch: ${process.platform}/${process.arch}`,
  ].join('\n');
}

export function toNodeOptions(config: Config, logger: ReturnType<typeof createLogger>): NodeOptions {
  const unsupported = (what: string) => new ConfigError(`${what} is not supported by this etcd-ts build yet`);
  for (const u of config.listenClientUrls) {
    if (u.scheme !== 'http' && u.scheme !== 'https') throw unsupported(`--listen-client-urls ${u.href} (scheme ${u.scheme})`);
  }
  for (const u of config.listenPeerUrls) {
    if (u.scheme !== 'http' && u.scheme !== 'https') throw unsupported(`--listen-peer-urls ${u.href} (scheme ${u.scheme})`);
  }
  for (const u of config.listenMetricsUrls) {
    if (u.scheme !== 'http' && u.scheme !== 'https') throw unsupported(`--listen-metrics-urls ${u.href} (scheme ${u.scheme})`);
  }
  if (config.autoTls && !config.certFile) throw unsupported('--auto-tls');
  if (config.peerAutoTls && !config.peerCertFile) throw unsupported('--peer-auto-tls');
  if (config.clientCrlFile || config.peerCrlFile) throw unsupported('--client-crl-file / --peer-crl-file');
  const tlsCommon = { minVersion: config.tlsMinVersion, maxVersion: config.tlsMaxVersion, cipherSuites: config.cipherSuites };
  const clientTls: TlsFiles | undefined = config.certFile
    ? {
        certFile: config.certFile,
        keyFile: config.keyFile,
        trustedCaFile: config.trustedCaFile,
        clientCertAuth: config.clientCertAuth,
        allowedCn: config.clientCertAllowedCn,
        allowedHostname: config.clientCertAllowedHostname,
        ...tlsCommon,
      }
    : undefined;
  const peerTls: TlsFiles | undefined = config.peerCertFile
    ? {
        certFile: config.peerCertFile,
        keyFile: config.peerKeyFile,
        trustedCaFile: config.peerTrustedCaFile,
        clientCertAuth: config.peerClientCertAuth,
        allowedCn: config.peerCertAllowedCn,
        allowedHostname: config.peerCertAllowedHostname,
        ...tlsCommon,
      }
    : undefined;
  if (config.listenPeerUrls.some((u) => u.scheme === 'https') && !peerTls) {
    throw new ConfigError('TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for https peer URLs');
  }
  if (config.discovery || config.discoverySrv || config.discoveryEndpoints.length > 0) throw unsupported('discovery');
  const initialCluster = new Map<string, string[]>();
  for (const m of config.initialClusterMembers) {
    initialCluster.set(m.name, [...(initialCluster.get(m.name) ?? []), m.peerUrl.href]);
  }
  return {
    name: config.name,
    dataDir: config.dataDir,
    initialAdvertisePeerUrls: config.initialAdvertisePeerUrls.map((u) => u.href),
    advertiseClientUrls: config.advertiseClientUrls.map((u) => u.href),
    initialCluster,
    initialClusterToken: config.initialClusterToken,
    initialClusterState: config.initialClusterState,
    maxTxnOps: config.maxTxnOps,
    maxRequestBytes: config.maxRequestBytes,
    quotaBackendBytes: config.quotaBackendBytes,
    snapshotCatchupEntries: config.snapshotCatchupEntries,
    snapshotCount: config.snapshotCount,
    strictReconfigCheck: config.strictReconfigCheck,
    preVote: config.preVote,
    initialElectionTickAdvance: config.initialElectionTickAdvance,
    forceNewCluster: config.forceNewCluster,
    authTokenTtlSeconds: config.authTokenTtl,
    authToken: config.authTokenSpec,
    bcryptCost: config.bcryptCost,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    walDir: config.walDir || undefined,
    electionTimeoutMs: config.electionTimeoutMs,
    logger,
    watchProgressNotifyIntervalMs: config.watchProgressNotifyIntervalMs > 0 ? config.watchProgressNotifyIntervalMs : 10 * 60 * 1000,
    autoCompaction: config.autoCompaction,
    listenClient: config.listenClientUrls.map((u) => ({ host: u.host, port: u.port ?? 2379, url: u.href, tls: u.scheme === 'https' })),
    listenMetrics: config.listenMetricsUrls.map((u) => ({ host: u.host, port: u.port ?? 2381, url: u.href, tls: u.scheme === 'https' })),
    listenPeer: config.listenPeerUrls.map((u) => ({ host: u.host, port: u.port ?? 2380, url: u.href, tls: u.scheme === 'https' })),
    clientTls,
    peerTls,
  };
}

async function main(): Promise<number> {
  if (process.argv[2] === 'snapshot') {
    // `etcd-ts snapshot save|restore|status ...`: the etcdutl-style tools for our snapshot files.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { snapshotCommand } = require('./snapshot-command') as { snapshotCommand(argv: string[]): Promise<number> };
    return snapshotCommand(process.argv.slice(3));
  }
  let parsed;
  try {
    parsed = parseCommandLine(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`etcd-ts: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
  if (parsed.action === 'help') {
    process.stdout.write(usageText());
    return 0;
  }
  if (parsed.action === 'version') {
    process.stdout.write(`${versionText()}\n`);
    return 0;
  }
  const { config, warnings } = parsed;
  const logger = createLogger(config.logLevel, config.logOutputs.includes('stdout') ? 'stdout' : 'stderr');
  for (const w of warnings) logger.warn({}, w);
  let options: NodeOptions;
  try {
    options = toNodeOptions(config, logger);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`etcd-ts: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
  // --metrics=extensive adds the gRPC latency histogram (etcd's slow-request alert reads it); basic omits it
  if (config.metrics === 'extensive') enableGrpcHandlingHistogram();
  logger.info({ 'etcd-ts-version': PACKAGE_VERSION, 'etcd-api-version': ETCD_API_VERSION, 'data-dir': config.dataDir, name: config.name }, 'starting etcd-ts');
  let node;
  try {
    node = await startNode(options);
  } catch (err) {
    logger.fatal({ err: err instanceof Error ? err.message : String(err) }, 'failed to start');
    return 1;
  }
  let removed = false;
  await new Promise<void>((resolve) => {
    // A member removed from its cluster stops, as etcd does.
    options.onRemoved = () => {
      removed = true;
      resolve();
    };
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info({ signal }, 'received signal; shutting down');
      resolve();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  if (!removed) await node.stop();
  return 0;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`etcd-ts: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
