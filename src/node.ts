// Wires one etcd-ts member together: storage + server, the client port (gRPC + HTTP), metrics upkeep,
// and an orderly shutdown. The command-line entry (bin/etcd-ts.ts) turns a Config into NodeOptions.
import { ClientListener, GRPC_OVERHEAD_BYTES, createGrpcServer, createHttpHandler } from './api';
import { watchService } from './api/watch';
import { leaseService } from './api/lease';
import { electionService } from './api/election';
import { lockService } from './api/lock';
import { EtcdServer, ServerOptions, idToHex } from './server';
import { metrics } from './metrics';
import { AutoCompactionConfig, AutoCompactor } from './server/compactor';

export interface ListenAddress {
  host: string;
  port: number;
  url: string;
}

export interface NodeOptions extends ServerOptions {
  listenClient: ListenAddress[];
  /** Interval of progress notifications to watchers that ask for them (etcd: 10 minutes). */
  watchProgressNotifyIntervalMs: number;
  autoCompaction: AutoCompactionConfig;
}

export interface RunningNode {
  server: EtcdServer;
  /** The bound client ports, in listenClient order. */
  clientPorts: number[];
  stop(): Promise<void>;
}

export async function startNode(options: NodeOptions): Promise<RunningNode> {
  const log = options.logger;
  const server = await EtcdServer.start(options);
  const deps = { server, log, dbSize: () => server.dbSizes().total, dbSizeInUse: () => server.dbSizes().inUse };
  const grpcServer = createGrpcServer(deps, options.maxRequestBytes, [
    leaseService(deps),
    electionService(deps),
    lockService(deps),
    // etcd cuts watch fragments at the request limit plus the gRPC envelope allowance
    watchService(deps, { progressIntervalMs: options.watchProgressNotifyIntervalMs, maxRequestBytes: options.maxRequestBytes + GRPC_OVERHEAD_BYTES }),
  ]);
  const listener = new ClientListener(grpcServer, createHttpHandler(server, log));
  const clientPorts: number[] = [];
  try {
    for (const addr of options.listenClient) {
      clientPorts.push(await listener.listen(addr.host, addr.port));
    }
  } catch (err) {
    await listener.close();
    await server.stop();
    throw err;
  }
  const compactor = new AutoCompactor({
    config: options.autoCompaction,
    logger: log,
    target: {
      currentRevision: () => server.mvcc.currentRev,
      // through the log like a client's Compact, so every member compacts at the same revision
      compact: async (rev) => void (await server.compact({ revision: rev, physical: false })),
      isLeader: () => server.leaderId() === server.memberId,
    },
  });
  compactor.start();
  const gaugeTimer = setInterval(() => {
    const s = server.dbSizes();
    metrics.dbTotalSize.set(s.total);
    metrics.dbTotalSizeInUse.set(s.inUse);
    metrics.keysTotal.set(server.mvcc.keysTotal());
  }, 5000);
  gaugeTimer.unref();
  for (const addr of options.listenClient) {
    log.info({ address: `${addr.host}:${addr.port}` }, 'serving client traffic insecurely; this is strongly discouraged!');
  }
  log.info({ 'local-member-id': idToHex(server.memberId), 'client-urls': options.advertiseClientUrls }, 'ready to serve client requests');

  let stopping: Promise<void> | undefined;
  return {
    server,
    clientPorts,
    stop: () => {
      stopping ??= (async () => {
        clearInterval(gaugeTimer);
        await compactor.stop();
        await listener.close();
        grpcServer.forceShutdown();
        await server.stop();
        log.info({}, 'stopped');
      })();
      return stopping;
    },
  };
}
