// One client port serves both gRPC (HTTP/2) and plain HTTP/1.1, as etcd does on 2379: each new
// connection's first bytes decide. The HTTP/2 client preface starts with "PRI", which no HTTP/1 method does.
//
// With TLS (https client URLs), ALPN decides first: "h2" goes to gRPC, "http/1.1" to HTTP; a client that
// negotiates neither is sniffed like a plain connection. The certificates are re-read when their files
// change (see util/tls.ts).
import * as net from 'node:net';
import * as http from 'node:http';
import * as https from 'node:https';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { Logger } from '../util/logger';
import { TlsFiles, TlsReloader, checkPeerIdentity, serverTlsOptions } from '../util/tls';

const H2_PREFIX = Buffer.from('PRI');

/** Listens on host:port; resolves with the bound port, rejects with the bind error (e.g. EADDRINUSE). */
function listenOn(srv: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ host, port, exclusive: true }, () => {
      srv.off('error', reject);
      resolve((srv.address() as net.AddressInfo).port);
    });
  });
}

export class ClientListener {
  private readonly servers: net.Server[] = [];
  private readonly reloaders: TlsReloader[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly injector: grpc.ConnectionInjector;
  private readonly httpServer: http.Server;

  constructor(grpcServer: grpc.Server, httpHandler: http.RequestListener) {
    this.injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    this.httpServer = http.createServer(httpHandler);
    this.httpServer.keepAliveTimeout = 30_000;
  }

  /** Listens on host:port; resolves with the bound port. */
  listen(host: string, port: number): Promise<number> {
    return this.bind(
      net.createServer({ noDelay: true }, (socket) => this.route(socket)),
      host,
      port,
    );
  }

  private bind(srv: net.Server, host: string, port: number): Promise<number> {
    this.servers.push(srv);
    return listenOn(srv, host, port);
  }

  /** Listens with TLS on host:port; resolves with the bound port. */
  listenTls(host: string, port: number, files: TlsFiles, log: Logger): Promise<number> {
    const srv = tls.createServer({ ...serverTlsOptions(files), ALPNProtocols: ['h2', 'http/1.1'] }, (socket) => {
      const denied = checkPeerIdentity(socket, files);
      if (denied) {
        log.warn({ 'remote-addr': `${socket.remoteAddress}:${socket.remotePort}`, reason: denied }, 'rejected client connection');
        socket.destroy();
        return;
      }
      if (socket.alpnProtocol === 'h2') {
        this.sockets.add(socket);
        socket.once('close', () => this.sockets.delete(socket));
        socket.on('error', () => socket.destroy());
        this.injector.injectConnection(socket);
      } else if (socket.alpnProtocol === 'http/1.1') {
        this.sockets.add(socket);
        socket.once('close', () => this.sockets.delete(socket));
        socket.on('error', () => socket.destroy());
        this.httpServer.emit('connection', socket);
      } else {
        this.route(socket);
      }
    });
    srv.on('tlsClientError', (err, socket) => {
      log.warn({ 'remote-addr': socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unknown', error: err.message }, 'rejected connection (TLS handshake failed)');
    });
    this.reloaders.push(new TlsReloader(files, 'client', log, (opts) => srv.setSecureContext({ ...opts })));
    return this.bind(srv, host, port);
  }

  private route(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      if (head.length < H2_PREFIX.length) return;
      socket.off('data', onData);
      socket.pause();
      socket.unshift(head);
      if (head.subarray(0, 3).equals(H2_PREFIX)) {
        // Node's HTTP/2 session picks up the unshifted bytes itself; resuming here would hand them to
        // nobody and lose the client preface.
        this.injector.injectConnection(socket);
      } else {
        this.httpServer.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', onData);
    socket.on('error', () => socket.destroy());
  }

  /**
   * Stops listening and drops every client connection. A server's close callback waits for its open
   * connections to end, so they are destroyed before waiting: clients keep connections (watch streams,
   * keep-alive pools) open for as long as they like, and a stop must not wait for them.
   */
  async close(): Promise<void> {
    for (const r of this.reloaders) r.close();
    const closed = Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.injector.destroy();
    for (const s of this.sockets) s.destroy();
    this.httpServer.closeAllConnections();
    this.httpServer.close();
    await closed;
  }
}

/** The paths a --listen-metrics-urls listener serves, as etcd's metrics listener does; anything else is 404. */
const METRICS_PATHS = new Set(['/metrics', '/health', '/livez', '/readyz']);

/**
 * The --listen-metrics-urls listeners: plain HTTP/1.1 (or HTTPS with the client certificates) serving only
 * /metrics and the health endpoints, so Prometheus and probes can reach a member on a port that carries no
 * client traffic. The handler is the client port's own, so the answers are the same.
 */
export class MetricsListener {
  private readonly servers: net.Server[] = [];
  private readonly reloaders: TlsReloader[] = [];
  private readonly handler: http.RequestListener;

  constructor(httpHandler: http.RequestListener) {
    this.handler = (req, res) => {
      const p = new URL(req.url ?? '/', 'http://localhost').pathname;
      if (METRICS_PATHS.has(p) || p.startsWith('/livez/') || p.startsWith('/readyz/')) {
        httpHandler(req, res);
        return;
      }
      // Go's http.NotFound, which etcd's metrics mux answers with
      res.statusCode = 404;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.end('404 page not found\n');
    };
  }

  listen(host: string, port: number): Promise<number> {
    return this.bind(http.createServer(this.handler), host, port);
  }

  listenTls(host: string, port: number, files: TlsFiles, log: Logger): Promise<number> {
    const srv = https.createServer({ ...serverTlsOptions(files), ALPNProtocols: ['http/1.1'] }, this.handler);
    srv.on('secureConnection', (socket: tls.TLSSocket) => {
      const denied = checkPeerIdentity(socket, files);
      if (denied) {
        log.warn({ 'remote-addr': `${socket.remoteAddress}:${socket.remotePort}`, reason: denied }, 'rejected metrics connection');
        socket.destroy();
      }
    });
    this.reloaders.push(new TlsReloader(files, 'client', log, (opts) => srv.setSecureContext({ ...opts })));
    return this.bind(srv, host, port);
  }

  private bind(srv: http.Server, host: string, port: number): Promise<number> {
    srv.keepAliveTimeout = 30_000;
    this.servers.push(srv);
    return listenOn(srv, host, port);
  }

  async close(): Promise<void> {
    for (const r of this.reloaders) r.close();
    await Promise.all(
      this.servers.map((s) => {
        const closed = new Promise<void>((resolve) => s.close(() => resolve()));
        (s as http.Server).closeAllConnections();
        return closed;
      }),
    );
  }
}
