// Checks that the .proto files under proto/ load with @grpc/proto-loader (with the options the
// server uses) and pin down the parts of etcd v3.6's wire contract that clients rely on: service
// method paths and streaming kinds, field numbers and types, enums, oneofs and int64 handling.
import * as path from 'path';
import * as protoLoader from '@grpc/proto-loader';

const PROTO_DIR = path.resolve(__dirname, '..', '..', 'proto');

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: Number,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

const FILES = [
  'mvccpb/kv.proto',
  'authpb/auth.proto',
  'etcdserverpb/rpc.proto',
  'v3electionpb/v3election.proto',
  'v3lockpb/v3lock.proto',
  'grpc/health/v1/health.proto',
];

// The subset of google.protobuf descriptor objects that proto-loader exposes and we look at.
interface FieldDesc {
  name: string;
  number: number;
  label: string; // LABEL_OPTIONAL | LABEL_REPEATED
  type: string; // TYPE_INT64, TYPE_MESSAGE, ...
  typeName: string; // for messages and enums, e.g. ".mvccpb.KeyValue" or "mvccpb.KeyValue"
}
interface EnumDesc {
  name: string;
  value: { name: string; number: number }[];
}
interface MessageDesc {
  name: string;
  field: FieldDesc[];
  oneofDecl: { name: string }[];
  enumType: EnumDesc[];
}

let pkg: protoLoader.PackageDefinition;

beforeAll(() => {
  pkg = protoLoader.loadSync(FILES, LOADER_OPTIONS);
});

function service(name: string): protoLoader.ServiceDefinition {
  const def = pkg[name];
  if (!def || 'format' in def) throw new Error(`${name} is not a service`);
  return def as protoLoader.ServiceDefinition;
}

function method(serviceName: string, rpc: string): protoLoader.MethodDefinition<object, object> {
  const m = service(serviceName)[rpc];
  if (!m) throw new Error(`${serviceName}.${rpc} not found`);
  return m;
}

function message(name: string): MessageDesc {
  const def = pkg[name] as protoLoader.MessageTypeDefinition<object, object> | undefined;
  if (!def || def.format !== 'Protocol Buffer 3 DescriptorProto') throw new Error(`${name} is not a message`);
  return def.type as unknown as MessageDesc;
}

function field(msgName: string, fieldName: string): FieldDesc {
  const f = message(msgName).field.find((x) => x.name === fieldName);
  if (!f) throw new Error(`${msgName}.${fieldName} not found`);
  return f;
}

function enumValues(values: { name: string; number: number }[]): Record<string, number> {
  return Object.fromEntries(values.map((v) => [v.name, v.number]));
}

function topLevelEnum(name: string): Record<string, number> {
  const def = pkg[name] as protoLoader.EnumTypeDefinition | undefined;
  if (!def || def.format !== 'Protocol Buffer 3 EnumDescriptorProto') throw new Error(`${name} is not an enum`);
  return enumValues((def.type as unknown as EnumDesc).value);
}

function nestedEnum(msgName: string, enumName: string): Record<string, number> {
  const e = message(msgName).enumType.find((x) => x.name === enumName);
  if (!e) throw new Error(`${msgName}.${enumName} not found`);
  return enumValues(e.value);
}

// Every message and enum by full name, including the ones nested in messages (proto-loader only
// lists top-level ones as keys of the package definition).
function knownTypeNames(): Set<string> {
  const names = new Set<string>();
  const addMessage = (fullName: string, desc: MessageDesc & { nestedType?: MessageDesc[] }): void => {
    names.add(fullName);
    for (const e of desc.enumType) names.add(`${fullName}.${e.name}`);
    for (const n of desc.nestedType ?? []) addMessage(`${fullName}.${n.name}`, n);
  };
  for (const [key, def] of Object.entries(pkg)) {
    if (!('format' in def)) continue;
    if (def.format === 'Protocol Buffer 3 DescriptorProto') addMessage(key, def.type as unknown as MessageDesc);
    else names.add(key);
  }
  return names;
}

// Resolves a field's type name the way protoc does: relative names are looked up from the
// innermost enclosing scope outwards.
function resolveTypeName(scope: string, typeName: string): string {
  if (typeName.startsWith('.')) return typeName.slice(1);
  const known = knownTypeNames();
  const parts = scope.split('.');
  for (let i = parts.length; i >= 0; i--) {
    const candidate = [...parts.slice(0, i), typeName].join('.');
    if (known.has(candidate)) return candidate;
  }
  throw new Error(`cannot resolve ${typeName} from ${scope}`);
}

// [field name, number, type, repeated?] with type being a scalar name or a message/enum full name.
type FieldSpec = [string, number, string, boolean?];

function expectFields(msgName: string, specs: FieldSpec[]): void {
  const msg = message(msgName);
  const actual = msg.field.map((f) => [
    f.name,
    f.number,
    f.type === 'TYPE_MESSAGE' || f.type === 'TYPE_ENUM'
      ? resolveTypeName(msgName, f.typeName)
      : f.type.replace(/^TYPE_/, '').toLowerCase(),
    f.label === 'LABEL_REPEATED',
  ]);
  const expected = specs.map(([n, num, t, rep]) => [n, num, t, rep === true]);
  const byName = (a: unknown[], b: unknown[]): number => String(a[0]).localeCompare(String(b[0]));
  expect(actual.sort(byName)).toEqual(expected.sort(byName));
}

describe('services', () => {
  type Kind = 'unary' | 'server' | 'client' | 'bidi';
  const kind = (m: protoLoader.MethodDefinition<object, object>): Kind =>
    m.requestStream ? (m.responseStream ? 'bidi' : 'client') : m.responseStream ? 'server' : 'unary';

  const expected: Record<string, Record<string, [string, string, Kind]>> = {
    'etcdserverpb.KV': {
      Range: ['RangeRequest', 'RangeResponse', 'unary'],
      Put: ['PutRequest', 'PutResponse', 'unary'],
      DeleteRange: ['DeleteRangeRequest', 'DeleteRangeResponse', 'unary'],
      Txn: ['TxnRequest', 'TxnResponse', 'unary'],
      Compact: ['CompactionRequest', 'CompactionResponse', 'unary'],
    },
    'etcdserverpb.Watch': {
      Watch: ['WatchRequest', 'WatchResponse', 'bidi'],
    },
    'etcdserverpb.Lease': {
      LeaseGrant: ['LeaseGrantRequest', 'LeaseGrantResponse', 'unary'],
      LeaseRevoke: ['LeaseRevokeRequest', 'LeaseRevokeResponse', 'unary'],
      LeaseKeepAlive: ['LeaseKeepAliveRequest', 'LeaseKeepAliveResponse', 'bidi'],
      LeaseTimeToLive: ['LeaseTimeToLiveRequest', 'LeaseTimeToLiveResponse', 'unary'],
      LeaseLeases: ['LeaseLeasesRequest', 'LeaseLeasesResponse', 'unary'],
    },
    'etcdserverpb.Cluster': {
      MemberAdd: ['MemberAddRequest', 'MemberAddResponse', 'unary'],
      MemberRemove: ['MemberRemoveRequest', 'MemberRemoveResponse', 'unary'],
      MemberUpdate: ['MemberUpdateRequest', 'MemberUpdateResponse', 'unary'],
      MemberList: ['MemberListRequest', 'MemberListResponse', 'unary'],
      MemberPromote: ['MemberPromoteRequest', 'MemberPromoteResponse', 'unary'],
    },
    'etcdserverpb.Maintenance': {
      Alarm: ['AlarmRequest', 'AlarmResponse', 'unary'],
      Status: ['StatusRequest', 'StatusResponse', 'unary'],
      Defragment: ['DefragmentRequest', 'DefragmentResponse', 'unary'],
      Hash: ['HashRequest', 'HashResponse', 'unary'],
      HashKV: ['HashKVRequest', 'HashKVResponse', 'unary'],
      Snapshot: ['SnapshotRequest', 'SnapshotResponse', 'server'],
      MoveLeader: ['MoveLeaderRequest', 'MoveLeaderResponse', 'unary'],
      Downgrade: ['DowngradeRequest', 'DowngradeResponse', 'unary'],
    },
    'etcdserverpb.Auth': {
      AuthEnable: ['AuthEnableRequest', 'AuthEnableResponse', 'unary'],
      AuthDisable: ['AuthDisableRequest', 'AuthDisableResponse', 'unary'],
      AuthStatus: ['AuthStatusRequest', 'AuthStatusResponse', 'unary'],
      Authenticate: ['AuthenticateRequest', 'AuthenticateResponse', 'unary'],
      UserAdd: ['AuthUserAddRequest', 'AuthUserAddResponse', 'unary'],
      UserGet: ['AuthUserGetRequest', 'AuthUserGetResponse', 'unary'],
      UserList: ['AuthUserListRequest', 'AuthUserListResponse', 'unary'],
      UserDelete: ['AuthUserDeleteRequest', 'AuthUserDeleteResponse', 'unary'],
      UserChangePassword: ['AuthUserChangePasswordRequest', 'AuthUserChangePasswordResponse', 'unary'],
      UserGrantRole: ['AuthUserGrantRoleRequest', 'AuthUserGrantRoleResponse', 'unary'],
      UserRevokeRole: ['AuthUserRevokeRoleRequest', 'AuthUserRevokeRoleResponse', 'unary'],
      RoleAdd: ['AuthRoleAddRequest', 'AuthRoleAddResponse', 'unary'],
      RoleGet: ['AuthRoleGetRequest', 'AuthRoleGetResponse', 'unary'],
      RoleList: ['AuthRoleListRequest', 'AuthRoleListResponse', 'unary'],
      RoleDelete: ['AuthRoleDeleteRequest', 'AuthRoleDeleteResponse', 'unary'],
      RoleGrantPermission: ['AuthRoleGrantPermissionRequest', 'AuthRoleGrantPermissionResponse', 'unary'],
      RoleRevokePermission: ['AuthRoleRevokePermissionRequest', 'AuthRoleRevokePermissionResponse', 'unary'],
    },
    'v3electionpb.Election': {
      Campaign: ['CampaignRequest', 'CampaignResponse', 'unary'],
      Proclaim: ['ProclaimRequest', 'ProclaimResponse', 'unary'],
      Leader: ['LeaderRequest', 'LeaderResponse', 'unary'],
      Observe: ['LeaderRequest', 'LeaderResponse', 'server'],
      Resign: ['ResignRequest', 'ResignResponse', 'unary'],
    },
    'v3lockpb.Lock': {
      Lock: ['LockRequest', 'LockResponse', 'unary'],
      Unlock: ['UnlockRequest', 'UnlockResponse', 'unary'],
    },
    'grpc.health.v1.Health': {
      Check: ['HealthCheckRequest', 'HealthCheckResponse', 'unary'],
      Watch: ['HealthCheckRequest', 'HealthCheckResponse', 'server'],
    },
  };

  for (const [svc, methods] of Object.entries(expected)) {
    test(`${svc} has exactly the expected rpcs, paths, types and streaming kinds`, () => {
      const def = service(svc);
      // proto-loader also indexes methods by their lower-camel alias; compare the originals only.
      const names = Object.keys(def).filter((k) => def[k].path.endsWith(`/${k}`));
      expect(names.sort()).toEqual(Object.keys(methods).sort());
      for (const [rpc, [req, res, k]] of Object.entries(methods)) {
        const m = method(svc, rpc);
        expect(m.path).toBe(`/${svc}/${rpc}`);
        expect(kind(m)).toBe(k);
        expect((m.requestType.type as unknown as MessageDesc).name).toBe(req);
        expect((m.responseType.type as unknown as MessageDesc).name).toBe(res);
      }
    });
  }

  test('well-known paths used by etcd clients', () => {
    expect(method('etcdserverpb.KV', 'Range').path).toBe('/etcdserverpb.KV/Range');
    expect(method('etcdserverpb.Watch', 'Watch').path).toBe('/etcdserverpb.Watch/Watch');
    expect(method('etcdserverpb.Lease', 'LeaseKeepAlive').path).toBe('/etcdserverpb.Lease/LeaseKeepAlive');
    expect(method('etcdserverpb.Maintenance', 'Snapshot').path).toBe('/etcdserverpb.Maintenance/Snapshot');
    expect(method('etcdserverpb.Maintenance', 'Downgrade').path).toBe('/etcdserverpb.Maintenance/Downgrade');
    expect(method('v3electionpb.Election', 'Observe').path).toBe('/v3electionpb.Election/Observe');
    expect(method('v3lockpb.Lock', 'Lock').path).toBe('/v3lockpb.Lock/Lock');
    expect(method('grpc.health.v1.Health', 'Check').path).toBe('/grpc.health.v1.Health/Check');
  });
});

describe('messages', () => {
  test('mvccpb', () => {
    expectFields('mvccpb.KeyValue', [
      ['key', 1, 'bytes'],
      ['create_revision', 2, 'int64'],
      ['mod_revision', 3, 'int64'],
      ['version', 4, 'int64'],
      ['value', 5, 'bytes'],
      ['lease', 6, 'int64'],
    ]);
    expectFields('mvccpb.Event', [
      ['type', 1, 'mvccpb.Event.EventType'],
      ['kv', 2, 'mvccpb.KeyValue'],
      ['prev_kv', 3, 'mvccpb.KeyValue'],
    ]);
    expect(nestedEnum('mvccpb.Event', 'EventType')).toEqual({ PUT: 0, DELETE: 1 });
  });

  test('authpb', () => {
    expectFields('authpb.User', [
      ['name', 1, 'bytes'],
      ['password', 2, 'bytes'],
      ['roles', 3, 'string', true],
      ['options', 4, 'authpb.UserAddOptions'],
    ]);
    expectFields('authpb.Permission', [
      ['permType', 1, 'authpb.Permission.Type'],
      ['key', 2, 'bytes'],
      ['range_end', 3, 'bytes'],
    ]);
    expectFields('authpb.Role', [
      ['name', 1, 'bytes'],
      ['keyPermission', 2, 'authpb.Permission', true],
    ]);
    expectFields('authpb.UserAddOptions', [['no_password', 1, 'bool']]);
    expect(nestedEnum('authpb.Permission', 'Type')).toEqual({ READ: 0, WRITE: 1, READWRITE: 2 });
  });

  test('ResponseHeader: unsigned ids, signed revision', () => {
    expectFields('etcdserverpb.ResponseHeader', [
      ['cluster_id', 1, 'uint64'],
      ['member_id', 2, 'uint64'],
      ['revision', 3, 'int64'],
      ['raft_term', 4, 'uint64'],
    ]);
  });

  test('RangeRequest / RangeResponse', () => {
    expectFields('etcdserverpb.RangeRequest', [
      ['key', 1, 'bytes'],
      ['range_end', 2, 'bytes'],
      ['limit', 3, 'int64'],
      ['revision', 4, 'int64'],
      ['sort_order', 5, 'etcdserverpb.RangeRequest.SortOrder'],
      ['sort_target', 6, 'etcdserverpb.RangeRequest.SortTarget'],
      ['serializable', 7, 'bool'],
      ['keys_only', 8, 'bool'],
      ['count_only', 9, 'bool'],
      ['min_mod_revision', 10, 'int64'],
      ['max_mod_revision', 11, 'int64'],
      ['min_create_revision', 12, 'int64'],
      ['max_create_revision', 13, 'int64'],
    ]);
    expect(nestedEnum('etcdserverpb.RangeRequest', 'SortOrder')).toEqual({ NONE: 0, ASCEND: 1, DESCEND: 2 });
    expect(nestedEnum('etcdserverpb.RangeRequest', 'SortTarget')).toEqual({
      KEY: 0,
      VERSION: 1,
      CREATE: 2,
      MOD: 3,
      VALUE: 4,
    });
    expectFields('etcdserverpb.RangeResponse', [
      ['header', 1, 'etcdserverpb.ResponseHeader'],
      ['kvs', 2, 'mvccpb.KeyValue', true],
      ['more', 3, 'bool'],
      ['count', 4, 'int64'],
    ]);
  });

  test('Put / DeleteRange', () => {
    expectFields('etcdserverpb.PutRequest', [
      ['key', 1, 'bytes'],
      ['value', 2, 'bytes'],
      ['lease', 3, 'int64'],
      ['prev_kv', 4, 'bool'],
      ['ignore_value', 5, 'bool'],
      ['ignore_lease', 6, 'bool'],
    ]);
    expectFields('etcdserverpb.DeleteRangeResponse', [
      ['header', 1, 'etcdserverpb.ResponseHeader'],
      ['deleted', 2, 'int64'],
      ['prev_kvs', 3, 'mvccpb.KeyValue', true],
    ]);
  });

  test('Compare: enums, target_union oneof and range_end = 64', () => {
    const cmp = message('etcdserverpb.Compare');
    expect(cmp.oneofDecl.map((o) => o.name)).toEqual(['target_union']);
    // proto-loader's descriptor objects fill oneofIndex with 0 for every field, so membership is
    // checked by behaviour: set one field alone, round-trip it through TxnRequest.compare, and see
    // which member the decoded target_union names.
    const txn = method('etcdserverpb.KV', 'Txn');
    const sample: Record<string, unknown> = {
      result: 1,
      target: 1,
      key: Buffer.from('k'),
      version: '1',
      create_revision: '1',
      mod_revision: '1',
      value: Buffer.from('v'),
      lease: '1',
      range_end: Buffer.from('z'),
    };
    const inUnion = cmp.field
      .map((f) => f.name)
      .filter((name) => {
        const out = txn.requestDeserialize(txn.requestSerialize({ compare: [{ [name]: sample[name] }] })) as {
          compare: Record<string, unknown>[];
        };
        return out.compare[0].target_union === name;
      })
      .sort();
    expect(inUnion).toEqual(['create_revision', 'lease', 'mod_revision', 'value', 'version']);
    expect(field('etcdserverpb.Compare', 'range_end').number).toBe(64);
    expect(field('etcdserverpb.Compare', 'lease').number).toBe(8);
    expect(field('etcdserverpb.Compare', 'value').type).toBe('TYPE_BYTES');
    expect(nestedEnum('etcdserverpb.Compare', 'CompareResult')).toEqual({ EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 });
    expect(nestedEnum('etcdserverpb.Compare', 'CompareTarget')).toEqual({
      VERSION: 0,
      CREATE: 1,
      MOD: 2,
      VALUE: 3,
      LEASE: 4,
    });
  });

  test('RequestOp / ResponseOp oneofs', () => {
    expect(message('etcdserverpb.RequestOp').oneofDecl.map((o) => o.name)).toEqual(['request']);
    expectFields('etcdserverpb.RequestOp', [
      ['request_range', 1, 'etcdserverpb.RangeRequest'],
      ['request_put', 2, 'etcdserverpb.PutRequest'],
      ['request_delete_range', 3, 'etcdserverpb.DeleteRangeRequest'],
      ['request_txn', 4, 'etcdserverpb.TxnRequest'],
    ]);
    expect(message('etcdserverpb.ResponseOp').oneofDecl.map((o) => o.name)).toEqual(['response']);
    expectFields('etcdserverpb.ResponseOp', [
      ['response_range', 1, 'etcdserverpb.RangeResponse'],
      ['response_put', 2, 'etcdserverpb.PutResponse'],
      ['response_delete_range', 3, 'etcdserverpb.DeleteRangeResponse'],
      ['response_txn', 4, 'etcdserverpb.TxnResponse'],
    ]);
  });

  test('Watch messages', () => {
    expect(message('etcdserverpb.WatchRequest').oneofDecl.map((o) => o.name)).toEqual(['request_union']);
    expectFields('etcdserverpb.WatchCreateRequest', [
      ['key', 1, 'bytes'],
      ['range_end', 2, 'bytes'],
      ['start_revision', 3, 'int64'],
      ['progress_notify', 4, 'bool'],
      ['filters', 5, 'etcdserverpb.WatchCreateRequest.FilterType', true],
      ['prev_kv', 6, 'bool'],
      ['watch_id', 7, 'int64'],
      ['fragment', 8, 'bool'],
    ]);
    expect(nestedEnum('etcdserverpb.WatchCreateRequest', 'FilterType')).toEqual({ NOPUT: 0, NODELETE: 1 });
    expectFields('etcdserverpb.WatchResponse', [
      ['header', 1, 'etcdserverpb.ResponseHeader'],
      ['watch_id', 2, 'int64'],
      ['created', 3, 'bool'],
      ['canceled', 4, 'bool'],
      ['compact_revision', 5, 'int64'],
      ['cancel_reason', 6, 'string'],
      ['fragment', 7, 'bool'],
      ['events', 11, 'mvccpb.Event', true],
    ]);
  });

  test('Lease messages', () => {
    expectFields('etcdserverpb.LeaseKeepAliveResponse', [
      ['header', 1, 'etcdserverpb.ResponseHeader'],
      ['ID', 2, 'int64'],
      ['TTL', 3, 'int64'],
    ]);
    expectFields('etcdserverpb.LeaseGrantRequest', [
      ['TTL', 1, 'int64'],
      ['ID', 2, 'int64'],
    ]);
    expectFields('etcdserverpb.LeaseTimeToLiveResponse', [
      ['header', 1, 'etcdserverpb.ResponseHeader'],
      ['ID', 2, 'int64'],
      ['TTL', 3, 'int64'],
      ['grantedTTL', 4, 'int64'],
      ['keys', 5, 'bytes', true],
    ]);
    expectFields('etcdserverpb.LeaseLeasesResponse', [
      ['header', 1, 'etcdserverpb.ResponseHeader'],
      ['leases', 2, 'etcdserverpb.LeaseStatus', true],
    ]);
  });

  test('Cluster messages', () => {
    expectFields('etcdserverpb.Member', [
      ['ID', 1, 'uint64'],
      ['name', 2, 'string'],
      ['peerURLs', 3, 'string', true],
      ['clientURLs', 4, 'string', true],
      ['isLearner', 5, 'bool'],
    ]);
    expectFields('etcdserverpb.MemberAddRequest', [
      ['peerURLs', 1, 'string', true],
      ['isLearner', 2, 'bool'],
    ]);
    expectFields('etcdserverpb.MemberListRequest', [['linearizable', 1, 'bool']]);
  });

  test('Maintenance messages', () => {
    expectFields('etcdserverpb.StatusResponse', [
      ['header', 1, 'etcdserverpb.ResponseHeader'],
      ['version', 2, 'string'],
      ['dbSize', 3, 'int64'],
      ['leader', 4, 'uint64'],
      ['raftIndex', 5, 'uint64'],
      ['raftTerm', 6, 'uint64'],
      ['raftAppliedIndex', 7, 'uint64'],
      ['errors', 8, 'string', true],
      ['dbSizeInUse', 9, 'int64'],
      ['isLearner', 10, 'bool'],
      ['storageVersion', 11, 'string'],
      ['dbSizeQuota', 12, 'int64'],
      ['downgradeInfo', 13, 'etcdserverpb.DowngradeInfo'],
    ]);
    expect(topLevelEnum('etcdserverpb.AlarmType')).toEqual({ NONE: 0, NOSPACE: 1, CORRUPT: 2 });
    expect(nestedEnum('etcdserverpb.AlarmRequest', 'AlarmAction')).toEqual({ GET: 0, ACTIVATE: 1, DEACTIVATE: 2 });
    expectFields('etcdserverpb.AlarmRequest', [
      ['action', 1, 'etcdserverpb.AlarmRequest.AlarmAction'],
      ['memberID', 2, 'uint64'],
      ['alarm', 3, 'etcdserverpb.AlarmType'],
    ]);
    expectFields('etcdserverpb.HashKVResponse', [
      ['header', 1, 'etcdserverpb.ResponseHeader'],
      ['hash', 2, 'uint32'],
      ['compact_revision', 3, 'int64'],
      ['hash_revision', 4, 'int64'],
    ]);
    expectFields('etcdserverpb.SnapshotResponse', [
      ['header', 1, 'etcdserverpb.ResponseHeader'],
      ['remaining_bytes', 2, 'uint64'],
      ['blob', 3, 'bytes'],
      ['version', 4, 'string'],
    ]);
    expectFields('etcdserverpb.MoveLeaderRequest', [['targetID', 1, 'uint64']]);
    expect(nestedEnum('etcdserverpb.DowngradeRequest', 'DowngradeAction')).toEqual({ VALIDATE: 0, ENABLE: 1, CANCEL: 2 });
  });

  test('Auth messages', () => {
    expectFields('etcdserverpb.AuthUserAddRequest', [
      ['name', 1, 'string'],
      ['password', 2, 'string'],
      ['options', 3, 'authpb.UserAddOptions'],
      ['hashedPassword', 4, 'string'],
    ]);
    expectFields('etcdserverpb.AuthStatusResponse', [
      ['header', 1, 'etcdserverpb.ResponseHeader'],
      ['enabled', 2, 'bool'],
      ['authRevision', 3, 'uint64'],
    ]);
    expectFields('etcdserverpb.AuthUserGrantRoleRequest', [
      ['user', 1, 'string'],
      ['role', 2, 'string'],
    ]);
    expectFields('etcdserverpb.AuthRoleGetResponse', [
      ['header', 1, 'etcdserverpb.ResponseHeader'],
      ['perm', 2, 'authpb.Permission', true],
    ]);
  });

  test('election, lock and health messages', () => {
    expectFields('v3electionpb.LeaderKey', [
      ['name', 1, 'bytes'],
      ['key', 2, 'bytes'],
      ['rev', 3, 'int64'],
      ['lease', 4, 'int64'],
    ]);
    expectFields('v3electionpb.LeaderResponse', [
      ['header', 1, 'etcdserverpb.ResponseHeader'],
      ['kv', 2, 'mvccpb.KeyValue'],
    ]);
    expectFields('v3lockpb.LockResponse', [
      ['header', 1, 'etcdserverpb.ResponseHeader'],
      ['key', 2, 'bytes'],
    ]);
    expectFields('grpc.health.v1.HealthCheckRequest', [['service', 1, 'string']]);
    expectFields('grpc.health.v1.HealthCheckResponse', [
      ['status', 1, 'grpc.health.v1.HealthCheckResponse.ServingStatus'],
    ]);
    expect(nestedEnum('grpc.health.v1.HealthCheckResponse', 'ServingStatus')).toEqual({
      UNKNOWN: 0,
      SERVING: 1,
      NOT_SERVING: 2,
      SERVICE_UNKNOWN: 3,
    });
  });
});

describe('encoding', () => {
  test('RangeResponse round-trips kvs with 64-bit values as strings', () => {
    const range = method('etcdserverpb.KV', 'Range');
    const original = {
      header: {
        cluster_id: '18446744073709551615', // max uint64
        member_id: '9372538179322589801',
        revision: '9223372036854775807', // max int64
        raft_term: '7',
      },
      kvs: [
        {
          key: Buffer.from('foo'),
          create_revision: '2',
          mod_revision: '9007199254740993', // 2^53 + 1: not representable as a JS number
          version: '3',
          value: Buffer.from([0, 1, 2, 255]),
          lease: '7587883391846096000',
        },
        { key: Buffer.from('foo/bar'), create_revision: '5', mod_revision: '5', version: '1', value: Buffer.alloc(0), lease: '0' },
      ],
      more: true,
      count: '2',
    };
    const bytes = range.responseSerialize(original);
    expect(Buffer.isBuffer(bytes)).toBe(true);
    const decoded = range.responseDeserialize(bytes) as typeof original;
    expect(decoded.header).toEqual(original.header);
    expect(decoded.more).toBe(true);
    expect(decoded.count).toBe('2');
    expect(decoded.kvs).toHaveLength(2);
    expect(decoded.kvs[0].mod_revision).toBe('9007199254740993');
    expect(decoded.kvs[0].lease).toBe('7587883391846096000');
    expect(Buffer.isBuffer(decoded.kvs[0].key)).toBe(true);
    expect(decoded.kvs[0].key.toString()).toBe('foo');
    expect([...decoded.kvs[0].value]).toEqual([0, 1, 2, 255]);
    // defaults: true fills in zero values that were not on the wire.
    expect(decoded.kvs[1].value).toEqual(Buffer.alloc(0));
    expect(decoded.kvs[1].lease).toBe('0');
  });

  test('defaults are filled in for an empty message', () => {
    const decoded = method('etcdserverpb.KV', 'Range').requestDeserialize(Buffer.alloc(0)) as Record<string, unknown>;
    expect(decoded.limit).toBe('0');
    expect(decoded.sort_order).toBe(0);
    expect(decoded.keys_only).toBe(false);
    expect(Buffer.isBuffer(decoded.key)).toBe(true);
  });

  test('Compare.range_end is encoded with field number 64 (two-byte tag)', () => {
    const txn = method('etcdserverpb.KV', 'Txn');
    const bytes = txn.requestSerialize({ compare: [{ key: Buffer.from('a'), range_end: Buffer.from('b') }] });
    // TxnRequest.compare (1, LEN) wraps Compare: key (3, LEN) "a", range_end (64, LEN) "b".
    // Tag of range_end: (64 << 3) | 2 = 514 = varint 0x82 0x04.
    expect([...bytes]).toEqual([0x0a, 0x07, 0x1a, 0x01, 0x61, 0x82, 0x04, 0x01, 0x62]);
  });

  test('oneofs decode with their discriminator (Txn ops, Compare target_union)', () => {
    const txn = method('etcdserverpb.KV', 'Txn');
    const bytes = txn.requestSerialize({
      compare: [{ result: 3, target: 2, key: Buffer.from('k'), mod_revision: '42' }],
      success: [{ request_put: { key: Buffer.from('k'), value: Buffer.from('v'), lease: '123' } }],
      failure: [{ request_range: { key: Buffer.from('k'), limit: '1' } }],
    });
    const decoded = txn.requestDeserialize(bytes) as {
      compare: Record<string, unknown>[];
      success: Record<string, unknown>[];
      failure: Record<string, unknown>[];
    };
    expect(decoded.compare[0].target_union).toBe('mod_revision');
    expect(decoded.compare[0].mod_revision).toBe('42');
    expect(decoded.compare[0].result).toBe(3);
    expect(decoded.success[0].request).toBe('request_put');
    expect((decoded.success[0].request_put as Record<string, unknown>).lease).toBe('123');
    expect(decoded.failure[0].request).toBe('request_range');
  });

  test('WatchResponse events (field 11) round-trip', () => {
    const watch = method('etcdserverpb.Watch', 'Watch');
    const bytes = watch.responseSerialize({
      watch_id: '1',
      events: [{ type: 1, kv: { key: Buffer.from('x'), mod_revision: '10' } }],
    });
    const decoded = watch.responseDeserialize(bytes) as {
      watch_id: string;
      events: { type: number; kv: { key: Buffer; mod_revision: string } }[];
    };
    expect(decoded.watch_id).toBe('1');
    expect(decoded.events[0].type).toBe(1);
    expect(decoded.events[0].kv.key.toString()).toBe('x');
    expect(decoded.events[0].kv.mod_revision).toBe('10');
    // watch_id (2, VARINT) = 1, then events with tag (11 << 3) | 2 = 0x5a.
    expect([...bytes.subarray(0, 3)]).toEqual([0x10, 0x01, 0x5a]);
    const req = watch.requestDeserialize(
      watch.requestSerialize({ create_request: { key: Buffer.from('x'), filters: [0, 1], fragment: true } }),
    ) as { request_union: string; create_request: { filters: number[]; fragment: boolean } };
    expect(req.request_union).toBe('create_request');
    expect(req.create_request.filters).toEqual([0, 1]);
    expect(req.create_request.fragment).toBe(true);
  });
});
