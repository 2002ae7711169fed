// One client port serves both gRPC (HTTP/2) and plain HTTP/1.1, as etcd does on 2379: each new
// connection's first bytes decide. The HTTP/2 client preface starts with "PRI", which no HTTP/1 method does.
import * as net from 'node:net';
import * as http from 'node:http';
import * as grpc from '@grpc/grpc-js';

const H2_PREFIX = Buffer.from('PRI');

export class ClientListener {
  private readonly servers: net.Server[] = [];
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
    const srv = net.createServer({ noDelay: true }, (socket) => this.route(socket));
    this.servers.push(srv);
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ host, port, exclusive: true }, () => {
        srv.off('error', reject);
        resolve((srv.address() as net.AddressInfo).port);
      });
    });
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

  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.injector.destroy();
    for (const s of this.sockets) s.destroy();
    this.httpServer.close();
  }
}
