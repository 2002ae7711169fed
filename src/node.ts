// Wires one etcd-ts member together: storage + server, the peer port (Raft transport), the client port
// (gRPC + HTTP), metrics upkeep, and an orderly shutdown. The command-line entry (bin/etcd-ts.ts) turns a
// Config into NodeOptions.
import * as http from 'node:http';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { TlsFiles, TlsReloader, checkPeerIdentity, secureContextOptions, serverTlsOptions } from './util/tls';
import { ClientListener, GRPC_OVERHEAD_BYTES, MetricsListener, createGateway, createGrpcServer, createHttpHandler } from './api';
import { watchService } from './api/watch';
import { leaseService } from './api/lease';
import { electionService } from './api/election';
import { lockService } from './api/lock';
import { ETCD_API_VERSION, EtcdServer, FetchedCluster, Member, ServerOptions, idToHex } from './server';
import { PEER_SERVER_OPTIONS, PeerTransport, fetchClusterMembers } from './transport';
import { errorToWire } from './util/errors';
import { metrics } from './metrics';
import { AutoCompactionConfig, AutoCompactor } from './server/compactor';

export interface ListenAddress {
  host: string;
  port: number;
  url: string;
  /** https: serve TLS with the client (or peer) certificates */
  tls?: boolean;
}

export interface NodeOptions extends ServerOptions {
  listenClient: ListenAddress[];
  /** --listen-metrics-urls: extra listeners serving only /metrics and the health endpoints */
  listenMetrics?: ListenAddress[];
  /** where the peer port (Raft transport) listens; none: a member that cannot talk to peers */
  listenPeer?: ListenAddress[];
  /** certificates for https client URLs (--cert-file, --key-file, --trusted-ca-file, --client-cert-auth, ...) */
  clientTls?: TlsFiles;
  /** certificates for https peer URLs, both ways (--peer-cert-file, --peer-trusted-ca-file, ...) */
  peerTls?: TlsFiles;
  /** called after the member applied its own removal from the cluster and stopped */
  onRemoved?: () => void;
  /** Interval of progress notifications to watchers that ask for them (etcd: 10 minutes). */
  watchProgressNotifyIntervalMs: number;
  autoCompaction: AutoCompactionConfig;
}

export interface RunningNode {
  server: EtcdServer;
  /** The bound client ports, in listenClient order. */
  clientPorts: number[];
  /** The bound peer ports, in listenPeer order. */
  peerPorts: number[];
  /** The bound --listen-metrics-urls ports, in listenMetrics order. */
  metricsPorts: number[];
  stop(): Promise<void>;
}

export async function startNode(options: NodeOptions): Promise<RunningNode> {
  const log = options.logger;
  let server: EtcdServer | undefined;
  // The peer side: Raft messages in and out, snapshots, the member list for joiners, calls to the leader.
  let clusterIdForPeers = 0n;
  // Outgoing peer connections present this member's peer certificate and trust the peer CA.
  const peerClientTls = (): tls.SecureContextOptions | undefined => {
    if (!options.peerTls) return undefined;
    const o = secureContextOptions(options.peerTls);
    return { ca: o.ca, cert: o.cert, key: o.key, minVersion: o.minVersion, maxVersion: o.maxVersion, ciphers: o.ciphers };
  };
  const transport = new PeerTransport({
    clientTls: peerClientTls(),
    localId: 0n,
    clusterId: () => server?.clusterId ?? clusterIdForPeers,
    logger: log,
    version: ETCD_API_VERSION,
    onMessages: (msgs) => server?.stepMessages(msgs),
    onUnreachable: (peer) => server?.reportUnreachable(peer),
    onSnapshotStatus: (peer, ok) => server?.reportSnapshot(peer, ok),
    receiveSnapshot: async (msg, body) => {
      if (!server) throw new Error('not started');
      await server.receiveSnapshot(msg, body);
    },
    // a peer answered 410 Gone: this member was removed while it was away (etcd stops then too)
    onRemoved: () => server?.markRemoved(),
    membersJson: () => ({ members: (server?.memberList() ?? []).map(memberJson) }),
    isRemoved: (id) => server?.isRemoved(id) ?? false,
    onLeaderCall: async (op, body) => {
      if (!server) throw new Error('not started');
      try {
        return await server.handleLeaderCall(op, body);
      } catch (err) {
        // the gRPC code travels with the message, so the follower answers its client with etcd's error
        throw new Error(errorToWire(err));
      }
    },
  });
  const peerTlsFiles = options.peerTls;
  // The HTTP side of the peer port; with https peer URLs a TLS listener in front of it hands over only
  // connections whose certificate passed (--peer-client-cert-auth, --peer-cert-allowed-cn/hostname), so a
  // refused peer's request is never parsed.
  const peerHttp = http.createServer(PEER_SERVER_OPTIONS, transport.handler);
  peerHttp.keepAliveTimeout = 60_000;
  let peerServer: net.Server = peerHttp;
  let peerReloader: TlsReloader | undefined;
  if (peerTlsFiles) {
    if ((options.listenPeer ?? []).some((a) => a.tls)) {
      const srv = tls.createServer(serverTlsOptions(peerTlsFiles), (socket) => {
        const denied = checkPeerIdentity(socket, peerTlsFiles);
        if (denied) {
          log.warn({ 'remote-addr': `${socket.remoteAddress}:${socket.remotePort}`, reason: denied }, 'rejected peer connection');
          socket.destroy();
          return;
        }
        peerHttp.emit('connection', socket);
      });
      srv.on('tlsClientError', (err: Error, socket: tls.TLSSocket) =>
        log.warn({ 'remote-addr': socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unknown', error: err.message }, 'rejected peer connection (TLS handshake failed)'),
      );
      peerServer = srv;
    }
    peerReloader = new TlsReloader(peerTlsFiles, 'peer', log, (opts) => {
      if (peerServer instanceof tls.Server) peerServer.setSecureContext({ ...opts });
      transport.setClientTls({ ca: opts.ca, cert: opts.cert, key: opts.key, minVersion: opts.minVersion, maxVersion: opts.maxVersion, ciphers: opts.ciphers });
    });
  }
  const peerPorts: number[] = [];
  const fetchCluster = async (): Promise<FetchedCluster> => {
    const peers = [...options.initialCluster.entries()].filter(([name]) => name !== options.name).flatMap(([, urls]) => urls);
    const got = await fetchClusterMembers(peers, 10_000, peerClientTls());
    clusterIdForPeers = got.clusterId;
    const raw = (got.members as { members: ReturnType<typeof memberJson>[] }).members;
    return { clusterId: got.clusterId, members: raw.map(parseMemberJson) };
  };
  try {
    for (const addr of options.listenPeer ?? []) peerPorts.push(await listenHttp(peerServer, addr.host, addr.port));
    server = await EtcdServer.start(options, fetchCluster);
  } catch (err) {
    await transport.close();
    peerServer.close();
    throw err;
  }
  transport.setLocalId(server.memberId);
  server.run(transport);
  const deps = {
    server,
    log,
    dbSize: () => server.dbSizes().total,
    dbSizeInUse: () => server.dbSizes().inUse,
    clientCertAuth: options.clientTls?.clientCertAuth ?? false,
  };
  const { grpcServer, methods } = createGrpcServer(deps, options.maxRequestBytes, [
    leaseService(deps),
    electionService(deps),
    lockService(deps),
    // etcd cuts watch fragments at the request limit plus the gRPC envelope allowance
    watchService(deps, { progressIntervalMs: options.watchProgressNotifyIntervalMs, maxRequestBytes: options.maxRequestBytes + GRPC_OVERHEAD_BYTES }),
  ]);
  const gateway = createGateway({ methods, maxMessageBytes: options.maxRequestBytes + GRPC_OVERHEAD_BYTES, log });
  const httpHandler = createHttpHandler(server, log, gateway);
  const listener = new ClientListener(grpcServer, httpHandler);
  const metricsListener = new MetricsListener(httpHandler);
  const clientPorts: number[] = [];
  const metricsPorts: number[] = [];
  try {
    // As etcd: clients are served once this member has published itself through the log.
    await server.whenPublished();
    for (const addr of options.listenClient) {
      if (addr.tls) {
        if (!options.clientTls) throw new Error(`${addr.url}: https client URLs need --cert-file and --key-file`);
        clientPorts.push(await listener.listenTls(addr.host, addr.port, options.clientTls, log));
      } else {
        clientPorts.push(await listener.listen(addr.host, addr.port));
      }
    }
    for (const addr of options.listenMetrics ?? []) {
      if (addr.tls) {
        if (!options.clientTls) throw new Error(`${addr.url}: https metrics URLs need --cert-file and --key-file`);
        metricsPorts.push(await metricsListener.listenTls(addr.host, addr.port, options.clientTls, log));
      } else {
        metricsPorts.push(await metricsListener.listen(addr.host, addr.port));
      }
      log.info({ address: `${addr.host}:${addr.port}` }, 'serving metrics');
    }
  } catch (err) {
    await metricsListener.close();
    await listener.close();
    await server.stop();
    await transport.close();
    peerServer.close();
    throw err;
  }
  const compactor = new AutoCompactor({
    config: options.autoCompaction,
    logger: log,
    target: {
      currentRevision: () => server.mvcc.currentRev,
      // through the log like a client's Compact, so every member compacts at the same revision
      compact: async (rev) => void (await server.compact({ revision: rev, physical: false })),
      isLeader: () => server.isLeader(),
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
    if (addr.tls) log.info({ address: `${addr.host}:${addr.port}`, 'client-cert-auth': options.clientTls?.clientCertAuth ?? false }, 'serving client traffic securely');
    else log.info({ address: `${addr.host}:${addr.port}` }, 'serving client traffic insecurely; this is strongly discouraged!');
  }
  log.info({ 'local-member-id': idToHex(server.memberId), 'client-urls': options.advertiseClientUrls }, 'ready to serve client requests');

  let stopping: Promise<void> | undefined;
  const running: RunningNode = {
    server,
    clientPorts,
    peerPorts,
    metricsPorts,
    stop: () => {
      stopping ??= (async () => {
        clearInterval(gaugeTimer);
        await compactor.stop();
        await metricsListener.close();
        await listener.close();
        grpcServer.forceShutdown();
        // the server first (a leader hands over leadership through the transport), then the peer port
        await (server as EtcdServer).stop();
        peerReloader?.close();
        await transport.close();
        const closed = new Promise<void>((resolve) => peerServer.close(() => resolve()));
        peerHttp.closeAllConnections();
        await closed;
        log.info({}, 'stopped');
      })();
      return stopping;
    },
  };
  server.onRemoved = () => {
    void running.stop().then(() => options.onRemoved?.());
  };
  return running;
}

function memberJson(m: Member): { id: string; name: string; peerURLs: string[]; clientURLs: string[]; isLearner: boolean } {
  return { id: m.id.toString(), name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner };
}

function parseMemberJson(raw: ReturnType<typeof memberJson>): Member {
  return { id: BigInt(raw.id), name: raw.name, peerURLs: raw.peerURLs, clientURLs: raw.clientURLs, isLearner: raw.isLearner };
}

function listenHttp(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.removeListener('error', onError);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : port);
    });
  });
}
