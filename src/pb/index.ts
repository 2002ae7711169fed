// TypeScript shapes of the etcd messages we handle, as @grpc/proto-loader and protobufjs decode them
// (keepCase, int64 as decimal strings, bytes as Buffer, defaults filled, oneof name in its own field).
// Outgoing messages may use numbers for int64 fields; the encoder accepts both.

export type Int64 = string | number;

export interface ResponseHeader {
  cluster_id: string;
  member_id: string;
  revision: Int64;
  raft_term: Int64;
}

export const SortOrder = { NONE: 0, ASCEND: 1, DESCEND: 2 } as const;
export const SortTarget = { KEY: 0, VERSION: 1, CREATE: 2, MOD: 3, VALUE: 4 } as const;
export const CompareResult = { EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 } as const;
export const CompareTarget = { VERSION: 0, CREATE: 1, MOD: 2, VALUE: 3, LEASE: 4 } as const;

export interface RangeRequest {
  key: Buffer;
  range_end: Buffer;
  limit: Int64;
  revision: Int64;
  sort_order: number;
  sort_target: number;
  serializable: boolean;
  keys_only: boolean;
  count_only: boolean;
  min_mod_revision: Int64;
  max_mod_revision: Int64;
  min_create_revision: Int64;
  max_create_revision: Int64;
}

export interface PutRequest {
  key: Buffer;
  value: Buffer;
  lease: Int64;
  prev_kv: boolean;
  ignore_value: boolean;
  ignore_lease: boolean;
}

export interface DeleteRangeRequest {
  key: Buffer;
  range_end: Buffer;
  prev_kv: boolean;
}

export interface RequestOp {
  request?: 'request_range' | 'request_put' | 'request_delete_range' | 'request_txn';
  request_range?: RangeRequest | null;
  request_put?: PutRequest | null;
  request_delete_range?: DeleteRangeRequest | null;
  request_txn?: TxnRequest | null;
}

export interface Compare {
  result: number;
  target: number;
  key: Buffer;
  target_union?: 'version' | 'create_revision' | 'mod_revision' | 'value' | 'lease';
  version?: Int64;
  create_revision?: Int64;
  mod_revision?: Int64;
  value?: Buffer;
  lease?: Int64;
  range_end: Buffer;
}

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface CompactionRequest {
  revision: Int64;
  physical: boolean;
}

export const AlarmAction = { GET: 0, ACTIVATE: 1, DEACTIVATE: 2 } as const;
export const AlarmType = { NONE: 0, NOSPACE: 1, CORRUPT: 2 } as const;

export interface AlarmRequest {
  action: number;
  memberID: Int64;
  alarm: number;
}

export interface AlarmMember {
  memberID: string;
  alarm: number;
}

/** What a member writes to its log: one client write. */
export interface InternalRequest {
  id: string;
  auth_user?: string;
  from_client?: boolean;
  request?:
    | 'put'
    | 'delete_range'
    | 'txn'
    | 'compaction'
    | 'alarm'
    | 'lease_grant'
    | 'lease_revoke'
    | 'member_attr'
    | 'auth_enable'
    | 'auth_disable'
    | 'user_add'
    | 'user_delete'
    | 'user_change_password'
    | 'user_grant_role'
    | 'user_revoke_role'
    | 'role_add'
    | 'role_delete'
    | 'role_grant_permission'
    | 'role_revoke_permission'
    | 'authenticate';
  put?: PutRequest;
  delete_range?: DeleteRangeRequest;
  txn?: TxnRequest;
  compaction?: CompactionRequest;
  alarm?: AlarmRequest;
  lease_grant?: LeaseGrantRequest;
  lease_revoke?: LeaseRevokeRequest;
  member_attr?: { member_id: string; name: string; client_urls: string[] };
  auth_enable?: Record<string, never>;
  auth_disable?: Record<string, never>;
  user_add?: { name: string; password?: string; options?: { no_password?: boolean }; hashedPassword?: string };
  user_delete?: { name: string };
  user_change_password?: { name: string; password?: string; hashedPassword?: string };
  user_grant_role?: { user: string; role: string };
  user_revoke_role?: { name: string; role: string };
  role_add?: { name: string };
  role_delete?: { role: string };
  role_grant_permission?: { name: string; perm?: { permType?: number | string; key?: Buffer; range_end?: Buffer } };
  role_revoke_permission?: { role: string; key?: Buffer; range_end?: Buffer };
  authenticate?: { name: string; token_prefix: string };
}

export interface LeaseGrantRequest {
  TTL: Int64;
  ID: Int64;
}

export interface LeaseRevokeRequest {
  ID: Int64;
}

export interface KeyValuePb {
  key: Buffer;
  create_revision: Int64;
  mod_revision: Int64;
  version: Int64;
  value: Buffer;
  lease: Int64;
}

export interface RangeResponse {
  header?: ResponseHeader;
  kvs: KeyValuePb[];
  more: boolean;
  count: Int64;
}

export interface PutResponse {
  header?: ResponseHeader;
  prev_kv?: KeyValuePb;
}

export interface DeleteRangeResponse {
  header?: ResponseHeader;
  deleted: Int64;
  prev_kvs: KeyValuePb[];
}

export interface ResponseOp {
  response_range?: RangeResponse;
  response_put?: PutResponse;
  response_delete_range?: DeleteRangeResponse;
  response_txn?: TxnResponse;
}

export interface TxnResponse {
  header?: ResponseHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface CompactionResponse {
  header?: ResponseHeader;
}
