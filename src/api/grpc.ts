// The gRPC services: decode (grpc-js + proto-loader), call the server, turn errors into etcd's status
// codes and messages. Services this member does not offer yet are left unregistered, so clients get
// grpc's own UNIMPLEMENTED, exactly as from an etcd built without them.
import * as grpc from '@grpc/grpc-js';
import { EtcdServer, ETCD_API_VERSION, STORAGE_VERSION, memberToPb } from '../server';
import { AlarmRequest, CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest } from '../pb';

const ALARM_NAMES: Record<number, string> = { 0: 'NONE', 1: 'NOSPACE', 2: 'CORRUPT' };
import { isEtcdError } from '../util/errors';
import { Logger } from '../util/logger';
import { apiPackageDefinition } from '../util/proto';
import { metrics } from '../metrics';

type Handler = (request: never, call: grpc.ServerUnaryCall<unknown, unknown>) => unknown | Promise<unknown>;

/** etcd's gRPC receive limit is the request limit plus this much room for the envelope. */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

function serviceDefinition(name: string): grpc.ServiceDefinition {
  const def = apiPackageDefinition()[name];
  if (!def || 'format' in def) throw new Error(`no service ${name} in the proto definitions`);
  return def as unknown as grpc.ServiceDefinition;
}

export function toServiceError(err: unknown, log: Logger, method: string): Partial<grpc.StatusObject> {
  if (isEtcdError(err)) return { code: err.code, details: err.message };
  log.error({ err, method }, 'request failed with an unexpected error');
  return { code: grpc.status.UNKNOWN, details: err instanceof Error ? err.message : String(err) };
}

function unary(service: string, method: string, fn: Handler, log: Logger): grpc.handleUnaryCall<unknown, unknown> {
  const labels = { grpc_type: 'unary', grpc_service: service, grpc_method: method };
  return (call, callback) => {
    metrics.grpcStarted.inc(labels);
    metrics.grpcMsgReceived.inc(labels);
    const finish = (code: grpc.status) => metrics.grpcHandled.inc({ ...labels, grpc_code: grpcCodeName(code) });
    let result: unknown;
    try {
      result = fn(call.request as never, call);
    } catch (err) {
      const e = toServiceError(err, log, method);
      finish(e.code ?? grpc.status.UNKNOWN);
      callback(e as grpc.ServiceError);
      return;
    }
    Promise.resolve(result).then(
      (value) => {
        finish(grpc.status.OK);
        metrics.grpcMsgSent.inc(labels);
        callback(null, value);
      },
      (err: unknown) => {
        const e = toServiceError(err, log, method);
        finish(e.code ?? grpc.status.UNKNOWN);
        callback(e as grpc.ServiceError);
      },
    );
  };
}

/** grpc_code label values as Go's codes.Code.String() spells them (what etcd's dashboards filter on). */
const GO_CODE_NAMES: Record<number, string> = {
  0: 'OK', 1: 'Canceled', 2: 'Unknown', 3: 'InvalidArgument', 4: 'DeadlineExceeded', 5: 'NotFound',
  6: 'AlreadyExists', 7: 'PermissionDenied', 8: 'ResourceExhausted', 9: 'FailedPrecondition', 10: 'Aborted',
  11: 'OutOfRange', 12: 'Unimplemented', 13: 'Internal', 14: 'Unavailable', 15: 'DataLoss', 16: 'Unauthenticated',
};
export function grpcCodeName(code: grpc.status): string {
  return GO_CODE_NAMES[code] ?? `Code(${code})`;
}

export interface GrpcDeps {
  server: EtcdServer;
  log: Logger;
  dbSize: () => number;
  dbSizeInUse: () => number;
}

export function createGrpcServer(deps: GrpcDeps, maxRequestBytes: number): grpc.Server {
  const { server, log } = deps;
  const g = new grpc.Server({
    'grpc.max_receive_message_length': maxRequestBytes + GRPC_OVERHEAD_BYTES,
    'grpc.max_send_message_length': 2 ** 31 - 1,
    'grpc.keepalive_time_ms': 2 * 60 * 60 * 1000,
    'grpc.keepalive_timeout_ms': 20 * 1000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5000,
  });

  const add = (service: string, short: string, handlers: Record<string, Handler>) => {
    const impl: grpc.UntypedServiceImplementation = {};
    for (const [name, fn] of Object.entries(handlers)) impl[name] = unary(short, name, fn, log);
    g.addService(serviceDefinition(service), impl);
  };

  add('etcdserverpb.KV', 'etcdserverpb.KV', {
    Range: (r: RangeRequest) => server.range(r),
    Put: (r: PutRequest) => server.put(r),
    DeleteRange: (r: DeleteRangeRequest) => server.deleteRange(r),
    Txn: (r: TxnRequest) => server.txn(r),
    Compact: (r: CompactionRequest) => server.compact(r),
  });

  add('etcdserverpb.Cluster', 'etcdserverpb.Cluster', {
    // etcd's cluster API headers carry no revision.
    MemberList: () => ({ header: { ...server.header(), revision: 0 }, members: server.memberList().map(memberToPb) }),
  });

  add('etcdserverpb.Maintenance', 'etcdserverpb.Maintenance', {
    Status: () => ({
      header: server.header(),
      version: ETCD_API_VERSION,
      dbSize: deps.dbSize(),
      leader: server.leaderId().toString(),
      raftIndex: server.lastIndex,
      raftTerm: server.term,
      raftAppliedIndex: server.appliedIndex,
      errors: server.alarms.list().map((a) => `memberID:${a.memberID} alarm:${ALARM_NAMES[a.alarm] ?? a.alarm} `),
      dbSizeInUse: deps.dbSizeInUse(),
      isLearner: false,
      storageVersion: STORAGE_VERSION,
      dbSizeQuota: server.quotaBytes(),
      downgradeInfo: { target_version: '', enabled: false },
    }),
    Alarm: (r: AlarmRequest) => server.alarm(r),
    Hash: async () => ({ header: server.header(), hash: await server.mvcc.hashAll() }),
    HashKV: async (r: { revision: string }) => {
      const h = await server.mvcc.hashKV(Number(r.revision));
      return { header: server.header(), hash: h.hash, compact_revision: h.compactRev, hash_revision: h.hashRev };
    },
  });

  add('grpc.health.v1.Health', 'grpc.health.v1.Health', {
    Check: () => ({ status: 1 }),
  });

  return g;
}
