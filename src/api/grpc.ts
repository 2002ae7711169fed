// The gRPC server: registers every service module, turns errors into etcd's status codes and messages,
// and keeps the grpc_server_* metrics and the client gRPC byte counters. Services this member does not offer
// yet are left unregistered, so clients get gRPC's own UNIMPLEMENTED, as from an etcd built without them.
import * as grpc from '@grpc/grpc-js';
import { EtcdError, Errors, isEtcdError } from '../util/errors';
import { asCallUser, authService, callUser } from './auth';
import { Logger } from '../util/logger';
import { apiPackageDefinition } from '../util/proto';
import { GRPC_CODE_NAMES, grpcHandlingSeconds, initGrpcMethodMetrics, metrics, secondsSince } from '../metrics';
import { ApiDeps, BidiHandler, ServerStreamHandler, ServiceModule, UnaryHandler } from './service';
import { kvService } from './kv';
import { clusterService } from './cluster';
import { maintenanceService } from './maintenance';
import { healthService } from './health';

/** etcd's gRPC receive limit is the request limit plus this much room for the envelope. */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

function serviceDefinition(name: string): grpc.ServiceDefinition {
  const def = apiPackageDefinition()[name];
  if (!def || 'format' in def) throw new Error(`no service ${name} in the proto definitions`);
  return countingBytes(def as unknown as grpc.ServiceDefinition);
}

/**
 * The definition with its (de)serializers counting message payload bytes into
 * etcd_network_client_grpc_{received,sent}_bytes_total: grpc-js hands them exactly the encoded message, so the
 * count is what etcd reports (protobuf size per message, failed requests' bytes in, no bytes out for an error).
 */
function countingBytes(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, m] of Object.entries(def as Record<string, grpc.MethodDefinition<unknown, unknown>>)) {
    out[name] = {
      ...m,
      requestDeserialize: (bytes: Buffer) => {
        metrics.clientGrpcReceivedBytes.inc(bytes.length);
        return m.requestDeserialize(bytes);
      },
      responseSerialize: (value: unknown) => {
        const bytes = m.responseSerialize(value);
        metrics.clientGrpcSentBytes.inc(bytes.length);
        return bytes;
      },
    };
  }
  return out as grpc.ServiceDefinition;
}

export function toServiceError(err: unknown, log: Logger, method: string): Partial<grpc.StatusObject> {
  if (isEtcdError(err)) return { code: err.code, details: err.message };
  log.error({ err, method }, 'request failed with an unexpected error');
  return { code: grpc.status.UNKNOWN, details: err instanceof Error ? err.message : String(err) };
}

/** grpc_code label values as Go's codes.Code.String() spells them (what etcd's dashboards filter on). */
export function grpcCodeName(code: grpc.status): string {
  return GRPC_CODE_NAMES[code] ?? `Code(${code})`;
}

type Labels = { grpc_type: string; grpc_service: string; grpc_method: string };

/** Counts an RPC's end once: handled by status code, and its duration when --metrics=extensive is on. */
function handledOnce(labels: Labels): (code: string) => void {
  const started = process.hrtime.bigint();
  let counted = false;
  return (code) => {
    if (counted) return;
    counted = true;
    metrics.grpcHandled.inc({ ...labels, grpc_code: code });
    grpcHandlingSeconds()?.observe(labels, secondsSince(started));
  };
}

function unary(labels: Labels, fn: UnaryHandler, log: Logger): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    metrics.grpcStarted.inc(labels);
    metrics.grpcMsgReceived.inc(labels);
    const handled = handledOnce(labels);
    // The RPC ends for the client at its deadline or when it cancels, whatever the handler still waits for
    // (a proposal with no leader waits for the server's own timeout): counted then, with the code etcd
    // records, so failure-rate alerts see what clients saw.
    const deadline = call.getDeadline();
    const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
    const timer = Number.isFinite(deadlineMs) ? setTimeout(() => handled('DeadlineExceeded'), Math.max(0, deadlineMs - Date.now())) : undefined;
    timer?.unref();
    call.on('cancelled', () => handled(Date.now() >= deadlineMs ? 'DeadlineExceeded' : 'Canceled'));
    const fail = (err: unknown) => {
      clearTimeout(timer);
      const e = toServiceError(err, log, labels.grpc_method);
      handled(grpcCodeName(e.code ?? grpc.status.UNKNOWN));
      callback(e as grpc.ServiceError);
    };
    let result: unknown;
    try {
      result = fn(call.request as never, call);
    } catch (err) {
      fail(err);
      return;
    }
    Promise.resolve(result).then((value) => {
      clearTimeout(timer);
      handled('OK');
      metrics.grpcMsgSent.inc(labels);
      callback(null, value);
    }, fail);
  };
}

function serverStream(labels: Labels, fn: ServerStreamHandler, log: Logger): grpc.handleServerStreamingCall<unknown, unknown> {
  return (call) => {
    metrics.grpcStarted.inc(labels);
    metrics.grpcMsgReceived.inc(labels);
    const handled = handledOnce(labels);
    const write = call.write.bind(call);
    call.write = ((chunk: unknown, ...rest: never[]) => {
      metrics.grpcMsgSent.inc(labels);
      return write(chunk, ...rest);
    }) as typeof call.write;
    // a client that leaves mid-stream (e.g. an interrupted snapshot) ends the RPC whether or not the handler notices
    call.on('cancelled', () => handled('Canceled'));
    fn(call.request as never, call).then(
      () => {
        handled('OK');
        call.end();
      },
      (err: unknown) => {
        const e = toServiceError(err, log, labels.grpc_method);
        handled(grpcCodeName(e.code ?? grpc.status.UNKNOWN));
        call.emit('error', e);
      },
    );
  };
}

/**
 * The code etcd counts when a client leaves a stream: Canceled, except for LeaseKeepAlive, whose etcd handler
 * returns without an error then (so etcd counts OK).
 */
const CLIENT_LEFT_CODE: Record<string, string> = { LeaseKeepAlive: 'OK' };

/**
 * A bidi stream ends in one of three ways, each counted once in grpc_server_handled_total (the dashboards'
 * open-stream count is started minus handled): the handler ends it (OK), the handler fails it with a status
 * (emitted as 'error'), or the client goes away first (see CLIENT_LEFT_CODE).
 */
function bidi(labels: Labels, fn: BidiHandler): grpc.handleBidiStreamingCall<unknown, unknown> {
  return (call) => {
    metrics.grpcStarted.inc(labels);
    const handled = handledOnce(labels);
    const clientLeft = CLIENT_LEFT_CODE[labels.grpc_method] ?? 'Canceled';
    call.on('data', () => metrics.grpcMsgReceived.inc(labels));
    const write = call.write.bind(call);
    call.write = ((chunk: unknown, ...rest: never[]) => {
      metrics.grpcMsgSent.inc(labels);
      return write(chunk, ...rest);
    }) as typeof call.write;
    const end = call.end.bind(call);
    call.end = ((...args: never[]) => {
      // grpc-js turns a client's cancellation into a half-close (on which handlers end the stream) before it
      // emits 'cancelled' on the next tick: decide after that tick, so a cancellation is not counted as OK.
      setImmediate(() => handled('OK'));
      return end(...args);
    }) as typeof call.end;
    const emit = call.emit.bind(call);
    call.emit = ((event: string | symbol, ...args: unknown[]) => {
      if (event === 'error') handled(grpcCodeName((args[0] as { code?: grpc.status } | undefined)?.code ?? grpc.status.UNKNOWN));
      return emit(event, ...args);
    }) as typeof call.emit;
    call.on('cancelled', () => handled(clientLeft));
    fn(call);
  };
}

/** Requests only a user with the root role may make once auth is on (etcd's isPermitted checks). */
const ADMIN_METHODS: Record<string, string[]> = {
  'etcdserverpb.KV': ['Compact'],
  'etcdserverpb.Maintenance': ['Alarm', 'Defragment', 'Hash', 'HashKV', 'Snapshot', 'MoveLeader', 'Downgrade'],
  'etcdserverpb.Cluster': ['MemberAdd', 'MemberRemove', 'MemberUpdate', 'MemberPromote'],
};

/** The key a watch or keepalive stream keeps its user under (checked when a watcher is created). */
export const STREAM_USER = Symbol('etcd-ts.stream-user');

/** Resolves the call's user (token or certificate CN), checks admin-only methods, runs the handler as that user. */
function authGuard(deps: ApiDeps, service: string, method: string, fn: UnaryHandler): UnaryHandler {
  const adminOnly = (ADMIN_METHODS[service] ?? []).includes(method);
  return (req: never, call) => {
    if (!deps.server.auth.enabled) return fn(req, call);
    return (async () => {
      const user = await callUser(deps.server, call, deps.clientCertAuth ?? false);
      if (adminOnly && user !== undefined) deps.server.auth.checkAdmin(user);
      return asCallUser(user, () => fn(req, call));
    })();
  };
}

async function authStreamGuard<C extends grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>>(
  deps: ApiDeps,
  service: string,
  method: string,
  call: C,
): Promise<{ user: string | undefined; error?: { code: grpc.status; details: string } }> {
  try {
    const user = await callUser(deps.server, call, deps.clientCertAuth ?? false);
    if ((ADMIN_METHODS[service] ?? []).includes(method) && user !== undefined) deps.server.auth.checkAdmin(user);
    (call as unknown as Record<symbol, unknown>)[STREAM_USER] = user;
    return { user };
  } catch (err) {
    const e = isEtcdError(err) ? err : Errors.notCapable();
    return { user: undefined, error: { code: e.code, details: e.message } };
  }
}

/** A learner serves Status and serializable Range only (etcd's isRPCSupportedForLearner). */
function learnerGuard(deps: ApiDeps, method: string, fn: UnaryHandler): UnaryHandler {
  return (req: never, call) => {
    if (deps.server.isLearner && method !== 'Status' && !(method === 'Range' && (req as { serializable?: boolean }).serializable === true)) {
      throw Errors.notSupportedForLearner();
    }
    return fn(req, call);
  };
}

/** Of the streams, a learner serves Snapshot only. */
function learnerStreamGuard(deps: ApiDeps, fn: BidiHandler): BidiHandler {
  return (call) => {
    if (deps.server.isLearner) {
      const e = Errors.notSupportedForLearner();
      call.emit('error', { code: e.code, details: e.message });
      return;
    }
    fn(call);
  };
}

/** One method as registered with grpc-js (guards and metrics included), for the JSON gateway to call too. */
export type ApiMethod =
  | { kind: 'unary'; service: string; method: string; impl: grpc.handleUnaryCall<unknown, unknown> }
  | { kind: 'serverStream'; service: string; method: string; impl: grpc.handleServerStreamingCall<unknown, unknown> }
  | { kind: 'bidi'; service: string; method: string; impl: grpc.handleBidiStreamingCall<unknown, unknown> };

export interface ApiServer {
  grpcServer: grpc.Server;
  /** Every registered method by "package.Service/Method". */
  methods: Map<string, ApiMethod>;
}

export function createGrpcServer(deps: ApiDeps, maxRequestBytes: number, extra: ServiceModule[] = []): ApiServer {
  const methods = new Map<string, ApiMethod>();
  const { log } = deps;
  const g = new grpc.Server({
    'grpc.max_receive_message_length': maxRequestBytes + GRPC_OVERHEAD_BYTES,
    'grpc.max_send_message_length': 2 ** 31 - 1,
    'grpc.keepalive_time_ms': 2 * 60 * 60 * 1000,
    'grpc.keepalive_timeout_ms': 20 * 1000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5000,
  });
  const modules = [kvService(deps), clusterService(deps), maintenanceService(deps), authService(deps), healthService(), ...extra];
  for (const m of modules) {
    const impl: grpc.UntypedServiceImplementation = {};
    // etcd creates its gRPC series at zero for the services registered before its metrics interceptor, i.e. all
    // but Election and Lock (those appear with their first call); the same set here keeps scrapes alike.
    const preinit = !m.service.startsWith('v3');
    const labels = (type: string, method: string): Labels => {
      const l = { grpc_type: type, grpc_service: m.service, grpc_method: method };
      if (preinit) initGrpcMethodMetrics(l);
      return l;
    };
    const etcdApi = m.service.startsWith('etcdserverpb.') || m.service.startsWith('v3');
    for (const [name, fn] of Object.entries(m.unary ?? {})) {
      const h = unary(labels('unary', name), etcdApi ? learnerGuard(deps, name, authGuard(deps, m.service, name, fn)) : fn, log);
      impl[name] = h;
      methods.set(`${m.service}/${name}`, { kind: 'unary', service: m.service, method: name, impl: h });
    }
    for (const [name, fn] of Object.entries(m.serverStream ?? {})) {
      const guarded: ServerStreamHandler = etcdApi
        ? async (req, call) => {
            const { user, error } = await authStreamGuard(deps, m.service, name, call as unknown as grpc.ServerWritableStream<unknown, unknown>);
            if (error) throw Object.assign(new EtcdError(error.code, error.details));
            return asCallUser(user, () => fn(req, call));
          }
        : fn;
      const h = serverStream(labels('server_stream', name), guarded, log);
      impl[name] = h;
      methods.set(`${m.service}/${name}`, { kind: 'serverStream', service: m.service, method: name, impl: h });
    }
    for (const [name, fn] of Object.entries(m.bidi ?? {})) {
      const guarded: BidiHandler = etcdApi
        ? (call) => {
            if (!deps.server.auth.enabled) return fn(call);
            // the stream's first messages wait (paused) until its user is known
            call.pause();
            void authStreamGuard(deps, m.service, name, call).then(({ user, error }) => {
              if (error) {
                call.emit('error', error);
                return;
              }
              asCallUser(user, () => fn(call));
              call.resume();
            });
          }
        : fn;
      const h = bidi(labels('bidi_stream', name), etcdApi ? learnerStreamGuard(deps, guarded) : guarded);
      impl[name] = h;
      methods.set(`${m.service}/${name}`, { kind: 'bidi', service: m.service, method: name, impl: h });
    }
    g.addService(serviceDefinition(m.service), impl);
  }
  return { grpcServer: g, methods };
}
