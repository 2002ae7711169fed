// What a KV request does to the MVCC store, as etcd defines it. Two halves:
//  - check*: validation done before a request is proposed (etcd's API-level checks); a request that
//    fails them never reaches the log.
//  - apply*: the deterministic effect of a committed request. Everything that can fail does so before
//    the first change (so a failed request leaves no partial state).
import { KeyValue, RangeResult, WriteTxn } from '../mvcc';
import {
  Compare,
  CompareResult,
  CompareTarget,
  DeleteRangeRequest,
  DeleteRangeResponse,
  KeyValuePb,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseHeader,
  ResponseOp,
  SortOrder,
  SortTarget,
  TxnRequest,
  TxnResponse,
} from '../pb';
import { Errors } from '../util/errors';

export interface Reader {
  range(key: Buffer, end: Buffer | undefined, opts: { rev?: number; limit?: number; countOnly?: boolean; keysOnly?: boolean }): RangeResult;
}

export interface LeaseLookup {
  exists(id: string): boolean;
}

export interface Limits {
  maxTxnOps: number;
}

const isZero = (v: string | number | undefined): boolean => v === undefined || v === 0 || v === '0' || v === '';
const num = (v: string | number | undefined): number => (v === undefined || v === '' ? 0 : Number(v));

export function toPb(kv: KeyValue): KeyValuePb {
  return kv;
}

// ---------------------------------------------------------------------------------------------------
// Checks before proposing

export function checkRange(r: RangeRequest): void {
  if (r.key.length === 0) throw Errors.emptyKey();
  // a number outside the enums (the JSON gateway and raw clients can send any) is refused as etcd does
  const order = Number(r.sort_order);
  const target = Number(r.sort_target);
  if (!Object.values(SortOrder).includes(order as never) || !Object.values(SortTarget).includes(target as never)) throw Errors.invalidSortOption();
}

export function checkPut(r: PutRequest): void {
  if (r.key.length === 0) throw Errors.emptyKey();
  if (r.ignore_value && r.value.length !== 0) throw Errors.valueProvided();
  if (r.ignore_lease && !isZero(r.lease)) throw Errors.leaseProvided();
}

export function checkDeleteRange(r: DeleteRangeRequest): void {
  if (r.key.length === 0) throw Errors.emptyKey();
}

export function checkTxn(r: TxnRequest, limits: Limits): void {
  const max = limits.maxTxnOps;
  if (r.compare.length > max || r.success.length > max || r.failure.length > max) throw Errors.tooManyOps();
  for (const op of [...r.success, ...r.failure]) checkOp(op, limits);
  checkIntervals(r.success);
  checkIntervals(r.failure);
}

function checkOp(op: RequestOp, limits: Limits): void {
  switch (op.request) {
    case 'request_range':
      return checkRange(op.request_range as RangeRequest);
    case 'request_put':
      return checkPut(op.request_put as PutRequest);
    case 'request_delete_range':
      return checkDeleteRange(op.request_delete_range as DeleteRangeRequest);
    case 'request_txn':
      return checkTxn(op.request_txn as TxnRequest, limits);
    default:
      // an op with nothing set: etcd rejects it the same way as an empty key
      throw Errors.emptyKey();
  }
}

interface Interval {
  key: string;
  /** undefined: single key; null: unbounded */
  end: string | null | undefined;
}

function contains(iv: Interval, key: string): boolean {
  if (iv.end === undefined) return key === iv.key;
  if (key < iv.key) return false;
  return iv.end === null || key < iv.end;
}

function toInterval(key: Buffer, end: Buffer): Interval {
  if (end.length === 0) return { key: key.toString('latin1'), end: undefined };
  if (end.length === 1 && end[0] === 0) return { key: key.toString('latin1'), end: null };
  return { key: key.toString('latin1'), end: end.toString('latin1') };
}

/**
 * A txn branch may not write one key twice, nor put a key that it also deletes: the result would depend on
 * op order in a way etcd forbids. Nested txns count with both of their branches.
 */
function checkIntervals(ops: RequestOp[]): { dels: Interval[]; puts: Set<string> } {
  const dels: Interval[] = [];
  const puts = new Set<string>();
  for (const op of ops) {
    if (op.request === 'request_delete_range') {
      const d = op.request_delete_range as DeleteRangeRequest;
      dels.push(toInterval(d.key, d.range_end));
    }
  }
  for (const op of ops) {
    if (op.request === 'request_put') {
      const key = (op.request_put as PutRequest).key.toString('latin1');
      if (puts.has(key)) throw Errors.duplicateKey();
      puts.add(key);
    }
  }
  for (const op of ops) {
    if (op.request !== 'request_txn') continue;
    const t = op.request_txn as TxnRequest;
    const s = checkIntervals(t.success);
    const f = checkIntervals(t.failure);
    const nestedPuts = new Set([...s.puts, ...f.puts]);
    for (const k of nestedPuts) {
      if (puts.has(k)) throw Errors.duplicateKey();
    }
    for (const k of nestedPuts) puts.add(k);
    dels.push(...s.dels, ...f.dels);
  }
  for (const iv of dels) {
    for (const k of puts) {
      if (contains(iv, k)) throw Errors.duplicateKey();
    }
  }
  return { dels, puts };
}

// ---------------------------------------------------------------------------------------------------
// Reads

export function doRange(reader: Reader, r: RangeRequest): RangeResponse {
  const limit = num(r.limit);
  let sortOrder = r.sort_order;
  if (r.sort_target !== SortTarget.KEY && sortOrder === SortOrder.NONE) sortOrder = SortOrder.ASCEND;
  else if (r.sort_target === SortTarget.KEY && sortOrder === SortOrder.ASCEND) sortOrder = SortOrder.NONE;
  const minMod = num(r.min_mod_revision);
  const maxMod = num(r.max_mod_revision);
  const minCreate = num(r.min_create_revision);
  const maxCreate = num(r.max_create_revision);
  const filtered = minMod !== 0 || maxMod !== 0 || minCreate !== 0 || maxCreate !== 0;
  // Sorting and filtering need every key of the range; otherwise fetch one extra to learn `more`.
  const storeLimit = sortOrder !== SortOrder.NONE || filtered ? 0 : limit > 0 ? limit + 1 : 0;
  // Sorting by value needs the values even when the client asked for keys only.
  const sortsByValue = sortOrder !== SortOrder.NONE && r.sort_target === SortTarget.VALUE;
  const rr = reader.range(r.key, r.range_end, {
    rev: num(r.revision),
    limit: storeLimit,
    countOnly: r.count_only,
    keysOnly: r.keys_only && !sortsByValue,
  });
  let kvs = rr.kvs;
  if (filtered) {
    kvs = kvs.filter(
      (kv) =>
        (minMod === 0 || kv.mod_revision >= minMod) &&
        (maxMod === 0 || kv.mod_revision <= maxMod) &&
        (minCreate === 0 || kv.create_revision >= minCreate) &&
        (maxCreate === 0 || kv.create_revision <= maxCreate),
    );
  }
  if (sortOrder !== SortOrder.NONE) {
    // Stable in both directions: equal elements keep key order, as etcd's sort does for small results.
    // (For larger results Go's sort is not stable, so etcd's order of ties is unspecified there.)
    const by = sortKey(r.sort_target);
    kvs = [...kvs].sort(sortOrder === SortOrder.DESCEND ? (a, b) => by(b, a) : by);
  }
  let more = false;
  if (limit > 0 && kvs.length > limit) {
    kvs = kvs.slice(0, limit);
    more = true;
  }
  if (r.keys_only && sortsByValue) kvs = kvs.map((kv) => ({ ...kv, value: Buffer.alloc(0) }));
  return { kvs: kvs.map(toPb), more, count: rr.count };
}

function sortKey(target: number): (a: KeyValue, b: KeyValue) => number {
  switch (target) {
    case SortTarget.VERSION:
      return (a, b) => a.version - b.version;
    case SortTarget.CREATE:
      return (a, b) => a.create_revision - b.create_revision;
    case SortTarget.MOD:
      return (a, b) => a.mod_revision - b.mod_revision;
    case SortTarget.VALUE:
      return (a, b) => Buffer.compare(a.value, b.value);
    default:
      return (a, b) => Buffer.compare(a.key, b.key);
  }
}

// ---------------------------------------------------------------------------------------------------
// Writes

/** Everything a put needs to hold at apply time; throws before any change. */
function checkPutApply(txn: WriteTxn, r: PutRequest, leases: LeaseLookup): KeyValue | undefined {
  const prev = r.ignore_value || r.ignore_lease || r.prev_kv ? txn.get(r.key) : undefined;
  if ((r.ignore_value || r.ignore_lease) && !prev) throw Errors.keyNotFound();
  if (!r.ignore_lease && !isZero(r.lease) && !leases.exists(String(r.lease))) throw Errors.leaseNotFound();
  return prev;
}

export function applyPut(txn: WriteTxn, r: PutRequest, leases: LeaseLookup): PutResponse {
  const prev = checkPutApply(txn, r, leases);
  const value = r.ignore_value && prev ? prev.value : r.value;
  const lease = r.ignore_lease && prev ? prev.lease : isZero(r.lease) ? '0' : String(r.lease);
  txn.put(r.key, value, lease, prev);
  return r.prev_kv && prev ? { prev_kv: toPb(prev) } : {};
}

export function applyDeleteRange(txn: WriteTxn, r: DeleteRangeRequest): DeleteRangeResponse {
  const deleted = txn.deleteRange(r.key, r.range_end);
  return { deleted: deleted.length, prev_kvs: r.prev_kv ? deleted.map(toPb) : [] };
}

function compareOne(reader: Reader, c: Compare): boolean {
  const needValue = c.target === CompareTarget.VALUE;
  const { kvs } = reader.range(c.key, c.range_end, { keysOnly: !needValue });
  if (kvs.length === 0) {
    if (needValue) return false;
    return compareKv(c, { key: c.key, value: Buffer.alloc(0), lease: '0', create_revision: 0, mod_revision: 0, version: 0 });
  }
  return kvs.every((kv) => compareKv(c, kv));
}

function compareKv(c: Compare, kv: KeyValue): boolean {
  let cmp: number;
  switch (c.target) {
    case CompareTarget.VERSION:
      cmp = kv.version - num(c.version);
      break;
    case CompareTarget.CREATE:
      cmp = kv.create_revision - num(c.create_revision);
      break;
    case CompareTarget.MOD:
      cmp = kv.mod_revision - num(c.mod_revision);
      break;
    case CompareTarget.VALUE:
      cmp = Buffer.compare(kv.value, c.value ?? Buffer.alloc(0));
      break;
    case CompareTarget.LEASE: {
      const a = BigInt(kv.lease);
      const b = BigInt(c.lease === undefined || c.lease === '' ? 0 : c.lease);
      cmp = a < b ? -1 : a > b ? 1 : 0;
      break;
    }
    default:
      return false;
  }
  switch (c.result) {
    case CompareResult.EQUAL:
      return cmp === 0;
    case CompareResult.GREATER:
      return cmp > 0;
    case CompareResult.LESS:
      return cmp < 0;
    case CompareResult.NOT_EQUAL:
      return cmp !== 0;
    default:
      return false;
  }
}

/** Picks each (nested) txn's branch and checks every put in the chosen branches, before any change. */
function planTxn(txn: WriteTxn, r: TxnRequest, leases: LeaseLookup, plan: boolean[]): void {
  const ok = r.compare.every((c) => compareOne(txn, c));
  plan.push(ok);
  for (const op of ok ? r.success : r.failure) {
    if (op.request === 'request_put') checkPutApply(txn, op.request_put as PutRequest, leases);
    else if (op.request === 'request_txn') planTxn(txn, op.request_txn as TxnRequest, leases, plan);
    else if (op.request === 'request_range') {
      const rr = op.request_range as RangeRequest;
      // a read at a compacted or future revision fails the whole txn
      txn.range(rr.key, rr.range_end, { rev: num(rr.revision), countOnly: true });
    }
  }
}

/** True when no op of any branch (nested included) writes: such a txn needs no log entry. */
export function isTxnReadOnly(r: TxnRequest): boolean {
  const ro = (ops: RequestOp[]): boolean =>
    ops.every((op) => op.request === 'request_range' || (op.request === 'request_txn' && isTxnReadOnly(op.request_txn as TxnRequest)));
  return ro(r.success) && ro(r.failure);
}

/** True when some op of some branch (nested included) is a put: the txn may add data. */
export function txnHasPut(r: TxnRequest): boolean {
  const has = (ops: RequestOp[]): boolean =>
    ops.some((op) => op.request === 'request_put' || (op.request === 'request_txn' && txnHasPut(op.request_txn as TxnRequest)));
  return has(r.success) || has(r.failure);
}

/** Bytes of keys and values the txn's puts (any branch) could add: its cost against the space quota. */
export function txnPutBytes(r: TxnRequest): number {
  let total = 0;
  for (const op of [...r.success, ...r.failure]) {
    if (op.request === 'request_put') total += (op.request_put as PutRequest).key.length + (op.request_put as PutRequest).value.length;
    else if (op.request === 'request_txn') total += txnPutBytes(op.request_txn as TxnRequest);
  }
  return total;
}

export function applyTxn(txn: WriteTxn, r: TxnRequest, leases: LeaseLookup): TxnResponse {
  const plan: boolean[] = [];
  planTxn(txn, r, leases, plan);
  let step = 0;
  const run = (t: TxnRequest): TxnResponse => {
    const succeeded = plan[step++];
    const responses: ResponseOp[] = [];
    // Like etcd, each inner range/put/delete response carries a header holding only the revision the
    // store was at right after that op; a nested txn's own header stays empty.
    const revOnly = () => ({ revision: txn.rev }) as ResponseHeader;
    for (const op of succeeded ? t.success : t.failure) {
      switch (op.request) {
        case 'request_range': {
          const resp = doRange(txn, op.request_range as RangeRequest);
          responses.push({ response_range: { header: revOnly(), ...resp } });
          break;
        }
        case 'request_put': {
          const resp = applyPut(txn, op.request_put as PutRequest, leases);
          responses.push({ response_put: { header: revOnly(), ...resp } });
          break;
        }
        case 'request_delete_range': {
          const resp = applyDeleteRange(txn, op.request_delete_range as DeleteRangeRequest);
          responses.push({ response_delete_range: { header: revOnly(), ...resp } });
          break;
        }
        case 'request_txn':
          responses.push({ response_txn: { header: {} as ResponseHeader, ...run(op.request_txn as TxnRequest) } });
          break;
      }
    }
    return { succeeded, responses };
  };
  return run(r);
}
