/**
 * Bounded-time workload recorder for linearizability tests: N concurrent
 * clients against a list of gRPC endpoints run random linearizable gets
 * (Range), puts and compare-and-swaps (Txn) on a few keys with unique values,
 * and record every operation's call and return time (performance.now()) for
 * test/helpers/linearizability.ts.
 *
 * Each client has its own gRPC channel to one endpoint (round-robin
 * assignment); after an error it closes it and moves to the next endpoint.
 * Nothing retries on its own (grpc-js retries are disabled, each call has a
 * deadline): a request that fails or times out is recorded with an unknown
 * outcome (ret = Infinity), since it may still take effect later. Keys get a
 * fresh prefix per run, so every key starts absent, as the model assumes.
 */
import * as grpc from '@grpc/grpc-js';
import { apiPackageDefinition } from '../../src/util/proto';
import { RAW_CHANNEL_OPTIONS } from './compare';
import { Operation } from './linearizability';

/** An operation as recorded: which endpoint served it, and the error when the outcome is unknown. */
export type RecordedOperation = Operation & { client: number; endpoint: string; error?: string };

export interface WorkloadStats {
  elapsedMs: number;
  /** Operations finished so far (completed + unknown outcome). */
  ops: number;
  completed: number;
  /** Operations that ended with an error / timeout (outcome unknown). */
  unknown: number;
  byKind: Record<Operation['kind'], { completed: number; unknown: number }>;
  /** Completed cas operations that swapped. */
  casSucceeded: number;
}

export interface WorkloadOptions {
  /** gRPC endpoints, '127.0.0.1:port' (NodeHandle.endpoint). */
  endpoints: string[];
  /** No new operation starts after this long; in-flight ones finish (bounded by requestTimeoutMs). */
  durationMs: number;
  /** Concurrent clients (default 8). */
  clients?: number;
  /** Number of keys (default 4). */
  keys?: number;
  /** Key prefix; default a fresh `lin/<pid>-<time>-<random>/` so that every key starts absent. */
  keyPrefix?: string;
  /** Deadline of each request (default 2000 ms). */
  requestTimeoutMs?: number;
  /** Pause of a client after an error before its next request (default 100 ms), to bound unknown outcomes. */
  errorBackoffMs?: number;
  /** Relative weights of the operation kinds (default get 4, put 3, cas 3). */
  mix?: { get: number; put: number; cas: number };
  /**
   * Serializable (member-local, possibly stale) reads instead of linearizable ones. Not
   * linearizable by design: only for negative controls of the checker pipeline.
   */
  serializableReads?: boolean;
  /** Called every tickMs with the progress so far (errors it throws are ignored). */
  onTick?: (stats: WorkloadStats) => void;
  tickMs?: number;
}

/** Counts what a recorded history holds. */
export function summarizeHistory(ops: readonly Operation[], elapsedMs = 0): WorkloadStats {
  const s: WorkloadStats = {
    elapsedMs,
    ops: ops.length,
    completed: 0,
    unknown: 0,
    byKind: { get: { completed: 0, unknown: 0 }, put: { completed: 0, unknown: 0 }, cas: { completed: 0, unknown: 0 } },
    casSucceeded: 0,
  };
  for (const op of ops) {
    const known = Number.isFinite(op.ret);
    if (known) s.completed++;
    else s.unknown++;
    s.byKind[op.kind][known ? 'completed' : 'unknown']++;
    if (op.kind === 'cas' && known && op.ok) s.casSucceeded++;
  }
  return s;
}

// ---------------------------------------------------------------------------
// A minimal promisified KV client on its own channel.

interface RangeResponse {
  kvs: { key: Buffer; value: Buffer }[];
}
interface TxnResponse {
  succeeded: boolean;
}
type UnaryFn = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v: unknown) => void) => void;

/* eslint-disable @typescript-eslint/no-explicit-any */
let kvCtor: (new (address: string, creds: grpc.ChannelCredentials, opts: grpc.ChannelOptions) => grpc.Client) | undefined;
function kvServiceCtor(): new (address: string, creds: grpc.ChannelCredentials, opts: grpc.ChannelOptions) => grpc.Client {
  kvCtor ??= (grpc.loadPackageDefinition(apiPackageDefinition()) as any).etcdserverpb.KV;
  return kvCtor as new (address: string, creds: grpc.ChannelCredentials, opts: grpc.ChannelOptions) => grpc.Client;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** Channel options: an own connection, and no retries of any kind (a retry would hide an outcome). */
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  ...RAW_CHANNEL_OPTIONS,
  'grpc.enable_retries': 0,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 500,
};

const COMPARE_EQUAL = 0;
const TARGET_VERSION = 0;
const TARGET_VALUE = 3;

class KvClient {
  private readonly client: grpc.Client;
  constructor(
    readonly endpoint: string,
    private readonly timeoutMs: number,
    private readonly serializable = false,
  ) {
    const Ctor = kvServiceCtor();
    this.client = new Ctor(endpoint, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  }

  private unary<T>(method: string, req: object): Promise<T> {
    const fn = (this.client as unknown as Record<string, UnaryFn>)[method];
    return new Promise<T>((resolve, reject) => {
      fn.call(this.client, req, new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs }, (e, v) => (e ? reject(e) : resolve(v as T)));
    });
  }

  /** Single-key read (linearizable unless the client is serializable): the value, or null when absent. */
  async get(key: string): Promise<string | null> {
    const res = await this.unary<RangeResponse>('Range', { key: Buffer.from(key), serializable: this.serializable });
    return res.kvs.length > 0 ? res.kvs[0].value.toString('utf8') : null;
  }

  async put(key: string, value: string): Promise<void> {
    await this.unary('Put', { key: Buffer.from(key), value: Buffer.from(value) });
  }

  /** Txn: if value(key) == expected (or version(key) == 0 when expected is null) then put(key, value). */
  async cas(key: string, expected: string | null, value: string): Promise<boolean> {
    const k = Buffer.from(key);
    const compare =
      expected === null
        ? { result: COMPARE_EQUAL, target: TARGET_VERSION, key: k, version: '0' }
        : { result: COMPARE_EQUAL, target: TARGET_VALUE, key: k, value: Buffer.from(expected) };
    const res = await this.unary<TxnResponse>('Txn', {
      compare: [compare],
      success: [{ request_put: { key: k, value: Buffer.from(value) } }],
      failure: [],
    });
    return res.succeeded;
  }

  close(): void {
    this.client.close();
  }
}

// ---------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function errorText(e: unknown): string {
  const err = e as Partial<grpc.ServiceError>;
  if (err && typeof err.code === 'number') return `${grpc.status[err.code] ?? err.code}: ${err.details ?? err.message ?? ''}`;
  return e instanceof Error ? e.message : String(e);
}

/**
 * Runs the workload for durationMs and resolves with the recorded history
 * (every operation, in the order they finished). Faults can be injected
 * concurrently by the caller; errors are recorded, never thrown.
 */
export async function runWorkload(opts: WorkloadOptions): Promise<RecordedOperation[]> {
  if (opts.endpoints.length === 0) throw new Error('runWorkload: no endpoints');
  const clients = opts.clients ?? 8;
  const nKeys = opts.keys ?? 4;
  const timeoutMs = opts.requestTimeoutMs ?? 2_000;
  const backoffMs = opts.errorBackoffMs ?? 100;
  const mix = opts.mix ?? { get: 4, put: 3, cas: 3 };
  const mixTotal = mix.get + mix.put + mix.cas;
  const prefix = opts.keyPrefix ?? `lin/${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}/`;
  const keys = Array.from({ length: nKeys }, (_, i) => `${prefix}k${i}`);
  const history: RecordedOperation[] = [];
  const start = performance.now();
  const end = start + opts.durationMs;

  const tick = opts.onTick
    ? setInterval(() => {
        try {
          opts.onTick?.(summarizeHistory(history, performance.now() - start));
        } catch {
          // a progress callback must not break the workload
        }
      }, opts.tickMs ?? 500)
    : undefined;

  const runClient = async (id: number): Promise<void> => {
    let epIdx = id % opts.endpoints.length;
    let kv = new KvClient(opts.endpoints[epIdx], timeoutMs, opts.serializableReads ?? false);
    // The last value this client saw per key: the expected value of its next cas.
    const lastSeen = new Map<string, string | null>();
    let seq = 0;
    try {
      while (performance.now() < end) {
        const key = keys[Math.floor(Math.random() * keys.length)];
        const r = Math.random() * mixTotal;
        const endpoint = kv.endpoint;
        const call = performance.now();
        let failed = false;
        try {
          if (r < mix.get) {
            const result = await kv.get(key);
            history.push({ kind: 'get', key, result, call, ret: performance.now(), client: id, endpoint });
            lastSeen.set(key, result);
          } else if (r < mix.get + mix.put) {
            const value = `c${id}-${seq++}`;
            try {
              await kv.put(key, value);
              history.push({ kind: 'put', key, value, call, ret: performance.now(), client: id, endpoint });
              lastSeen.set(key, value);
            } catch (e) {
              history.push({ kind: 'put', key, value, call, ret: Infinity, client: id, endpoint, error: errorText(e) });
              throw e;
            }
          } else {
            const value = `c${id}-${seq++}`;
            const expected = lastSeen.get(key) ?? null;
            try {
              const ok = await kv.cas(key, expected, value);
              history.push({ kind: 'cas', key, expected, value, ok, call, ret: performance.now(), client: id, endpoint });
              if (ok) lastSeen.set(key, value);
              else lastSeen.delete(key);
            } catch (e) {
              history.push({ kind: 'cas', key, expected, value, call, ret: Infinity, client: id, endpoint, error: errorText(e) });
              throw e;
            }
          }
        } catch (e) {
          failed = true;
          // A failed get is recorded too (the checker drops it); it still tells where errors happened.
          if (r < mix.get) history.push({ kind: 'get', key, result: null, call, ret: Infinity, client: id, endpoint, error: errorText(e) });
        }
        if (failed) {
          kv.close();
          epIdx = (epIdx + 1) % opts.endpoints.length;
          kv = new KvClient(opts.endpoints[epIdx], timeoutMs, opts.serializableReads ?? false);
          await sleep(backoffMs);
        }
      }
    } finally {
      kv.close();
    }
  };

  try {
    await Promise.all(Array.from({ length: clients }, (_, i) => runClient(i)));
  } finally {
    if (tick) clearInterval(tick);
  }
  return history;
}
