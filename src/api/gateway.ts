// The JSON gateway on the client port: etcd's grpc-gateway API (`POST /v3/...`, the API Patroni and other
// HTTP clients use). Each request runs the same method the gRPC server registered — the same auth and
// learner guards, the same grpc_server_* metrics, the same errors — through a small call object standing
// in for grpc-js' own. Bodies are read as protojson (see protojson.ts); responses are written the way
// etcd's gateway writes them: a JSON object for unary calls, newline-delimited {"result": ...} objects for
// streams, {"code","message"} with the gateway's HTTP status for errors.
import { EventEmitter } from 'node:events';
import * as http from 'node:http';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { isEtcdError } from '../util/errors';
import { LOADER_OPTIONS, protoRoot } from '../util/proto';
import { Logger } from '../util/logger';
import { ApiMethod } from './grpc';
import { JsonRequestError, JsonValueSplitter, jsonToProto, protoToJson } from './protojson';
import { metrics } from '../metrics';

/** Gateway paths → "package.Service/Method", as etcd 3.6 serves them. */
export const GATEWAY_ROUTES: Record<string, string> = {
  '/v3/kv/range': 'etcdserverpb.KV/Range',
  '/v3/kv/put': 'etcdserverpb.KV/Put',
  '/v3/kv/deleterange': 'etcdserverpb.KV/DeleteRange',
  '/v3/kv/txn': 'etcdserverpb.KV/Txn',
  '/v3/kv/compaction': 'etcdserverpb.KV/Compact',
  '/v3/watch': 'etcdserverpb.Watch/Watch',
  '/v3/lease/grant': 'etcdserverpb.Lease/LeaseGrant',
  '/v3/lease/revoke': 'etcdserverpb.Lease/LeaseRevoke',
  '/v3/kv/lease/revoke': 'etcdserverpb.Lease/LeaseRevoke',
  '/v3/lease/keepalive': 'etcdserverpb.Lease/LeaseKeepAlive',
  '/v3/lease/timetolive': 'etcdserverpb.Lease/LeaseTimeToLive',
  '/v3/kv/lease/timetolive': 'etcdserverpb.Lease/LeaseTimeToLive',
  '/v3/lease/leases': 'etcdserverpb.Lease/LeaseLeases',
  '/v3/kv/lease/leases': 'etcdserverpb.Lease/LeaseLeases',
  '/v3/cluster/member/add': 'etcdserverpb.Cluster/MemberAdd',
  '/v3/cluster/member/remove': 'etcdserverpb.Cluster/MemberRemove',
  '/v3/cluster/member/update': 'etcdserverpb.Cluster/MemberUpdate',
  '/v3/cluster/member/list': 'etcdserverpb.Cluster/MemberList',
  '/v3/cluster/member/promote': 'etcdserverpb.Cluster/MemberPromote',
  '/v3/maintenance/alarm': 'etcdserverpb.Maintenance/Alarm',
  '/v3/maintenance/status': 'etcdserverpb.Maintenance/Status',
  '/v3/maintenance/defragment': 'etcdserverpb.Maintenance/Defragment',
  '/v3/maintenance/hash': 'etcdserverpb.Maintenance/Hash',
  '/v3/maintenance/hashkv': 'etcdserverpb.Maintenance/HashKV',
  '/v3/maintenance/snapshot': 'etcdserverpb.Maintenance/Snapshot',
  '/v3/maintenance/transfer-leadership': 'etcdserverpb.Maintenance/MoveLeader',
  '/v3/maintenance/downgrade': 'etcdserverpb.Maintenance/Downgrade',
  '/v3/auth/enable': 'etcdserverpb.Auth/AuthEnable',
  '/v3/auth/disable': 'etcdserverpb.Auth/AuthDisable',
  '/v3/auth/status': 'etcdserverpb.Auth/AuthStatus',
  '/v3/auth/authenticate': 'etcdserverpb.Auth/Authenticate',
  '/v3/auth/user/add': 'etcdserverpb.Auth/UserAdd',
  '/v3/auth/user/get': 'etcdserverpb.Auth/UserGet',
  '/v3/auth/user/list': 'etcdserverpb.Auth/UserList',
  '/v3/auth/user/delete': 'etcdserverpb.Auth/UserDelete',
  '/v3/auth/user/changepw': 'etcdserverpb.Auth/UserChangePassword',
  '/v3/auth/user/grant': 'etcdserverpb.Auth/UserGrantRole',
  '/v3/auth/user/revoke': 'etcdserverpb.Auth/UserRevokeRole',
  '/v3/auth/role/add': 'etcdserverpb.Auth/RoleAdd',
  '/v3/auth/role/get': 'etcdserverpb.Auth/RoleGet',
  '/v3/auth/role/list': 'etcdserverpb.Auth/RoleList',
  '/v3/auth/role/delete': 'etcdserverpb.Auth/RoleDelete',
  '/v3/auth/role/grant': 'etcdserverpb.Auth/RoleGrantPermission',
  '/v3/auth/role/revoke': 'etcdserverpb.Auth/RoleRevokePermission',
  '/v3/election/campaign': 'v3electionpb.Election/Campaign',
  '/v3/election/proclaim': 'v3electionpb.Election/Proclaim',
  '/v3/election/leader': 'v3electionpb.Election/Leader',
  '/v3/election/observe': 'v3electionpb.Election/Observe',
  '/v3/election/resign': 'v3electionpb.Election/Resign',
  '/v3/lock/lock': 'v3lockpb.Lock/Lock',
  '/v3/lock/unlock': 'v3lockpb.Lock/Unlock',
};

/** grpc-gateway's HTTP status for a gRPC code. */
export function httpStatusOf(code: grpc.status): number {
  switch (code) {
    case grpc.status.OK:
      return 200;
    case grpc.status.CANCELLED:
      return 499;
    case grpc.status.INVALID_ARGUMENT:
    case grpc.status.FAILED_PRECONDITION:
    case grpc.status.OUT_OF_RANGE:
      return 400;
    case grpc.status.DEADLINE_EXCEEDED:
      return 504;
    case grpc.status.NOT_FOUND:
      return 404;
    case grpc.status.ALREADY_EXISTS:
    case grpc.status.ABORTED:
      return 409;
    case grpc.status.PERMISSION_DENIED:
      return 403;
    case grpc.status.UNAUTHENTICATED:
      return 401;
    case grpc.status.RESOURCE_EXHAUSTED:
      return 429;
    case grpc.status.UNIMPLEMENTED:
      return 501;
    case grpc.status.UNAVAILABLE:
      return 503;
    default:
      return 500;
  }
}

interface Status {
  code: grpc.status;
  message: string;
}

function statusOf(err: unknown): Status {
  if (err instanceof JsonRequestError) return { code: grpc.status.INVALID_ARGUMENT, message: err.message };
  if (isEtcdError(err)) return { code: err.code, message: err.message };
  const e = err as { code?: unknown; details?: unknown; message?: unknown };
  if (typeof e?.code === 'number') return { code: e.code, message: String(e.details ?? e.message ?? '') };
  return { code: grpc.status.UNKNOWN, message: err instanceof Error ? err.message : String(err) };
}

function sendError(res: http.ServerResponse, st: Status): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.statusCode = httpStatusOf(st.code);
  res.setHeader('Content-Type', 'application/json');
  if (st.code === grpc.status.UNAUTHENTICATED) res.setHeader('WWW-Authenticate', st.message);
  res.end(JSON.stringify({ code: st.code, message: st.message }));
}

export interface GatewayOptions {
  methods: Map<string, ApiMethod>;
  /** The gRPC receive limit (--max-request-bytes plus the envelope allowance): a larger message is refused. */
  maxMessageBytes: number;
  log: Logger;
}

/**
 * The handler for one `/v3/...` request, or undefined when the path is not the gateway's (the caller
 * answers those).
 */
export function createGateway(opts: GatewayOptions): (req: http.IncomingMessage, res: http.ServerResponse, path: string) => boolean {
  const types = new Map<string, { request: protobuf.Type; response: protobuf.Type }>();
  const typesOf = (target: string) => {
    let t = types.get(target);
    if (!t) {
      const [service, method] = target.split('/');
      const m = protoRoot().lookupService(service).methods[method];
      m.resolve();
      t = { request: m.resolvedRequestType as protobuf.Type, response: m.resolvedResponseType as protobuf.Type };
      types.set(target, t);
    }
    return t;
  };

  return (req, res, path) => {
    if (!path.startsWith('/v3/')) return false;
    // As etcd: a gateway request is never authenticated by its certificate's name, and one whose
    // certificate has a name is refused outright, so nobody believes the name counted.
    if (req.socket instanceof tls.TLSSocket) {
      const cert = req.socket.getPeerCertificate();
      if (cert && cert.raw && typeof cert.subject?.CN === 'string' && cert.subject.CN !== '') {
        drain(req);
        res.statusCode = 400;
        res.setHeader('Content-Type', 'text/plain; charset=utf-8');
        res.setHeader('X-Content-Type-Options', 'nosniff');
        res.end('CommonName of client sending a request against gateway will be ignored and not used as expected\n');
        return true;
      }
    }
    const target = GATEWAY_ROUTES[path];
    if (!target) {
      sendError(res, { code: grpc.status.NOT_FOUND, message: 'Not Found' });
      return true;
    }
    if (req.method !== 'POST') {
      sendError(res, { code: grpc.status.UNIMPLEMENTED, message: 'Method Not Allowed' });
      return true;
    }
    const method = opts.methods.get(target);
    if (!method) {
      const [service, name] = target.split('/');
      drain(req);
      sendError(res, { code: grpc.status.UNIMPLEMENTED, message: `unknown method ${name} for service ${service}` });
      return true;
    }
    const t = typesOf(target);
    const call = new GatewayCall(req, res, t.response, opts.log);
    const decode = (text: string): unknown => {
      const bytes = jsonToProto(t.request, text);
      if (bytes.length > opts.maxMessageBytes) {
        throw Object.assign(new Error(), {
          code: grpc.status.RESOURCE_EXHAUSTED,
          details: `grpc: received message larger than max (${bytes.length} vs. ${opts.maxMessageBytes})`,
        });
      }
      // etcd's gateway is a gRPC client of its own server, so its messages count as client gRPC bytes there too
      metrics.clientGrpcReceivedBytes.inc(bytes.length);
      return t.request.toObject(t.request.decode(bytes), LOADER_OPTIONS);
    };
    if (method.kind === 'bidi') {
      // A watch goes on after the request body ends (etcd's watch server ignores the client closing its
      // side); a keepalive stream ends after answering the last request.
      streamBody(req, call, decode, opts.maxMessageBytes, method.method !== 'Watch');
      method.impl(call as unknown as grpc.ServerDuplexStream<unknown, unknown>);
      return true;
    }
    readBody(req, opts.maxMessageBytes)
      .then((text) => {
        call.request = decode(text);
        if (method.kind === 'unary') {
          method.impl(call as unknown as grpc.ServerUnaryCall<unknown, unknown>, (err, value) => {
            if (err) return sendError(res, statusOf(err));
            let body: string;
            try {
              countSentBytes(t.response, value);
              body = JSON.stringify(protoToJson(t.response, value));
            } catch (e) {
              opts.log.error({ err: e, method: target }, 'gateway could not encode a response');
              return sendError(res, { code: grpc.status.INTERNAL, message: 'grpc: error while marshaling' });
            }
            res.statusCode = 200;
            res.setHeader('Content-Type', 'application/json');
            res.end(body);
          });
        } else {
          method.impl(call as unknown as grpc.ServerWritableStream<unknown, unknown>);
        }
      })
      .catch((err: unknown) => sendError(res, statusOf(err)));
    return true;
  };
}

/** Counts a response as the gRPC message etcd's gateway would have received for it (its encoded size). */
function countSentBytes(type: protobuf.Type, value: unknown): void {
  metrics.clientGrpcSentBytes.inc(type.encode(type.fromObject(value as Record<string, unknown>)).finish().length);
}

/** Reads a whole body, refusing one that could not encode into an allowed message. */
function readBody(req: http.IncomingMessage, maxMessageBytes: number): Promise<string> {
  // base64 makes bytes 4/3 larger and JSON adds names and quotes: anything past 4x cannot fit
  const maxText = 4 * maxMessageBytes + 64 * 1024;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > maxText) {
        refused = true;
        chunks.length = 0;
        reject(Object.assign(new Error(), { code: grpc.status.RESOURCE_EXHAUSTED, details: `grpc: received message larger than max (${size} vs. ${maxMessageBytes})` }));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!refused) resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', (err) => {
      if (!refused) reject(err);
    });
  });
}

function drain(req: http.IncomingMessage): void {
  req.resume();
}

/** A streamed body: each JSON value in it is one request message of the stream. */
function streamBody(req: http.IncomingMessage, call: GatewayCall, decode: (text: string) => unknown, maxMessageBytes: number, endWithBody: boolean): void {
  const splitter = new JsonValueSplitter();
  const maxText = 4 * maxMessageBytes + 64 * 1024;
  let failed = false;
  const fail = (err: unknown) => {
    if (failed) return;
    failed = true;
    req.resume();
    // etcd's gateway goes silent on a bad message in a stream; a clear error is more use to a client
    call.fail(statusOf(err));
  };
  req.setEncoding('utf8');
  req.on('data', (text: string) => {
    if (failed) return;
    try {
      for (const value of splitter.push(text)) call.deliver(decode(value));
      if (splitter.pending > maxText) fail({ code: grpc.status.RESOURCE_EXHAUSTED, details: `grpc: received message larger than max (${splitter.pending} vs. ${maxMessageBytes})` });
    } catch (err) {
      fail(err);
    }
  });
  req.on('end', () => {
    if (failed) return;
    const rest = splitter.rest();
    try {
      if (rest !== '') call.deliver(decode(rest));
    } catch (err) {
      return fail(err);
    }
    if (endWithBody) call.deliverEnd();
  });
}

/**
 * What a gRPC method handler sees of a gateway request: the parts of grpc-js' call objects the API
 * handlers use (request, metadata, auth context, write/end/error, pause/resume, cancellation, drain).
 */
class GatewayCall extends EventEmitter {
  request: unknown = undefined;
  readonly metadata = new grpc.Metadata();
  cancelled = false;
  private finished = false;
  private paused = false;
  private held: ({ kind: 'data'; value: unknown } | { kind: 'end' })[] = [];
  private queued = 0;

  constructor(
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
    private readonly responseType: protobuf.Type,
    private readonly log: Logger,
  ) {
    super();
    const auth = req.headers.authorization;
    // etcd's gateway passes Authorization on as the token ("Bearer " is accepted as well)
    if (auth) this.metadata.set('authorization', auth.replace(/^Bearer\s+/i, ''));
    for (const [name, value] of Object.entries(req.headers)) {
      if (name.startsWith('grpc-metadata-') && typeof value === 'string') this.metadata.set(name.slice('grpc-metadata-'.length), value);
    }
    res.on('close', () => {
      if (!this.finished) {
        this.finished = true;
        this.cancelled = true;
        super.emit('cancelled');
      }
    });
    res.on('drain', () => {
      this.queued = 0;
      super.emit('drain');
    });
  }

  /** Never the client certificate: gateway requests authenticate by token only (see createGateway). */
  getAuthContext(): unknown {
    return { transportSecurityType: this.req.socket instanceof tls.TLSSocket ? 'ssl' : 'insecure' };
  }

  getPeer(): string {
    return `${this.req.socket.remoteAddress}:${this.req.socket.remotePort}`;
  }

  getDeadline(): number {
    return Infinity;
  }

  sendMetadata(): void {
    /* headers go out with the first message */
  }

  get writableLength(): number {
    return this.res.writableNeedDrain ? this.queued : 0;
  }

  write(message: unknown): boolean {
    if (this.finished) return false;
    let line: string;
    try {
      countSentBytes(this.responseType, message);
      line = JSON.stringify({ result: protoToJson(this.responseType, message) }) + '\n';
    } catch (err) {
      this.log.error({ err }, 'gateway could not encode a stream message');
      this.fail({ code: grpc.status.INTERNAL, message: 'grpc: error while marshaling' });
      return false;
    }
    this.startStream(200);
    const ok = this.res.write(line);
    if (!ok) this.queued++;
    return ok;
  }

  end(): void {
    if (this.finished) return;
    this.finished = true;
    this.startStream(200);
    this.res.end();
  }

  /** Ends the stream with an error chunk (a status line too if nothing was sent yet). */
  fail(st: Status): void {
    if (this.finished) return;
    this.finished = true;
    this.startStream(httpStatusOf(st.code));
    this.res.end(JSON.stringify({ error: { code: st.code, message: st.message } }) + '\n');
    super.emit('cancelled');
  }

  /** Handlers end a stream with an error by emitting it, as on grpc-js' calls. */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'error') {
      this.fail(statusOf(args[0]));
      return this.listenerCount('error') > 0 ? super.emit('error', ...args) : true;
    }
    return super.emit(event, ...args);
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    this.paused = false;
    const held = this.held;
    this.held = [];
    for (const h of held) {
      if (h.kind === 'data') super.emit('data', h.value);
      else super.emit('end');
    }
    return this;
  }

  deliver(value: unknown): void {
    if (this.paused) this.held.push({ kind: 'data', value });
    else super.emit('data', value);
  }

  deliverEnd(): void {
    if (this.paused) this.held.push({ kind: 'end' });
    else super.emit('end');
  }

  private startStream(status: number): void {
    if (this.res.headersSent) return;
    this.res.statusCode = status;
    this.res.setHeader('Content-Type', 'application/json');
    this.res.flushHeaders();
  }
}
