// etcdserverpb.Watch: one bidirectional stream carries many watchers. Requests create, cancel, or ask
// for progress; responses carry a watcher's events, created/canceled notices, and progress headers.
// Backpressure: when the gRPC stream's buffer is full the store is told "not now" and the watcher
// catches up from history later, so a stalled client holds at most one response per watcher.
import * as grpc from '@grpc/grpc-js';
import { AuthErrors } from '../auth';
import { EtcdError } from '../util/errors';
import { STREAM_USER, grpcCodeName } from './grpc';
import { MvccEvent, Watcher, WatchResponseOut, WatchSink } from '../mvcc';
import { EtcdServer } from '../server';
import { messageType } from '../util/proto';
import { ApiDeps, ServiceModule } from './service';

const AUTO_WATCH_ID = 0;
/** Responses a stream may hold unsent before its watchers are told to wait (etcd's channel size). */
const STREAM_BUFFER_MESSAGES = 128;
const INVALID_WATCH_ID = -1;
const FILTER_NOPUT = 0;
const FILTER_NODELETE = 1;

interface CreateRequest {
  key: Buffer;
  range_end: Buffer;
  start_revision: string;
  progress_notify: boolean;
  filters: number[];
  prev_kv: boolean;
  watch_id: string;
  fragment: boolean;
}

interface WatchRequest {
  request_union?: 'create_request' | 'cancel_request' | 'progress_request';
  create_request?: CreateRequest;
  cancel_request?: { watch_id: string };
  progress_request?: object;
}

export interface WatchServiceOptions {
  /** How often watchers that asked for progress_notify get one (etcd default 10 minutes). */
  progressIntervalMs: number;
  maxRequestBytes: number;
}

export function watchService({ server, log }: ApiDeps, opts: WatchServiceOptions): ServiceModule {
  return {
    service: 'etcdserverpb.Watch',
    bidi: {
      Watch: (call) => new WatchStream(server, call, opts, log).start(),
    },
  };
}

class WatchStream implements WatchSink {
  private readonly watchers = new Map<number, { w: Watcher; progressNotify: boolean; progressDue: boolean; prevKv: boolean; fragment: boolean }>();
  private nextId = 0;
  private blocked = false;
  private closed = false;
  private progressTimer: NodeJS.Timeout | undefined;
  private readonly responseType = messageType('etcdserverpb.WatchResponse');

  constructor(
    private readonly server: EtcdServer,
    private readonly call: grpc.ServerDuplexStream<unknown, unknown>,
    private readonly opts: WatchServiceOptions,
    private readonly log: ApiDeps['log'],
  ) {}

  start(): void {
    this.call.on('data', (req: WatchRequest) => {
      try {
        this.onRequest(req);
      } catch (err) {
        this.log.warn({ err }, 'failed to handle a watch request');
      }
    });
    this.call.on('end', () => this.close(true));
    this.call.on('error', () => this.close(false));
    this.call.on('cancelled', () => this.close(false));
    this.progressTimer = setInterval(() => this.progressTick(), this.opts.progressIntervalMs);
    this.progressTimer.unref();
  }

  private close(endStream: boolean): void {
    if (this.closed) return;
    this.closed = true;
    if (this.progressTimer) clearInterval(this.progressTimer);
    for (const { w } of this.watchers.values()) this.server.watchable.cancel(w);
    this.watchers.clear();
    if (endStream) this.call.end();
  }

  private write(msg: object): boolean {
    if (this.closed) return false;
    return this.call.write(msg);
  }

  private onRequest(req: WatchRequest): void {
    switch (req.request_union) {
      case 'create_request':
        return this.create(req.create_request as CreateRequest);
      case 'cancel_request': {
        const id = Number(req.cancel_request?.watch_id ?? 0);
        const entry = this.watchers.get(id);
        if (!entry) return; // etcd answers nothing for an unknown id
        this.server.watchable.cancel(entry.w);
        this.watchers.delete(id);
        this.write({ header: this.server.header(), watch_id: id, canceled: true });
        return;
      }
      case 'progress_request':
        this.server.watchable.progressAll(
          [...this.watchers.values()].map((e) => e.w),
          this,
        );
        return;
      default:
        // like etcd: an unknown request type does not end the stream
        return;
    }
  }

  private create(c: CreateRequest): void {
    const key = c.key.length === 0 ? Buffer.from([0]) : c.key;
    const startRev = Number(c.start_revision);
    const refuse = (reason: string) =>
      this.write({ header: this.server.header(), watch_id: INVALID_WATCH_ID, created: true, canceled: true, cancel_reason: reason });
    if (startRev < 0) return void refuse('etcdserver: mvcc: required revision has been compacted');
    // with auth on, the stream's user must be allowed to read the watched range (checked at creation)
    const user = (this.call as unknown as Record<symbol, string | undefined>)[STREAM_USER];
    if (user !== undefined && this.server.auth.enabled) {
      try {
        if (!user) throw AuthErrors.userEmpty();
        this.server.auth.checkPermission(user, c.key, c.range_end, 'read');
      } catch (err) {
        const e = err as EtcdError;
        return void refuse(`rpc error: code = ${grpcCodeName(e.code)} desc = ${e.message}`);
      }
    }
    // A range whose end is not after its key watches nothing.
    const isRange = c.range_end.length > 0 && !(c.range_end.length === 1 && c.range_end[0] === 0);
    if (isRange && Buffer.compare(key, c.range_end) >= 0) return void refuse('mvcc: watcher range is empty');
    let id = Number(c.watch_id);
    if (id === AUTO_WATCH_ID) {
      while (this.watchers.has(this.nextId)) this.nextId++;
      id = this.nextId++;
    } else if (this.watchers.has(id)) {
      return void refuse('mvcc: duplicate watch ID provided on the WatchStream');
    }
    // The created notice goes out before the watcher exists, so no event can overtake it.
    this.write({ header: this.server.header(), watch_id: id, created: true });
    const w = this.server.watchable.watch(
      id,
      key,
      c.range_end,
      startRev,
      { noPut: c.filters.includes(FILTER_NOPUT), noDelete: c.filters.includes(FILTER_NODELETE), prevKv: c.prev_kv },
      this,
    );
    this.watchers.set(id, { w, progressNotify: c.progress_notify, progressDue: true, prevKv: c.prev_kv, fragment: c.fragment });
  }

  /** WatchSink: called by the store with events, progress notices and compaction cancels. */
  send(resp: WatchResponseOut): boolean {
    if (this.closed) return true; // dropped: the stream is gone
    if (this.blocked) return false;
    const entry = this.watchers.get(resp.watchId);
    const wr: Record<string, unknown> = {
      header: this.server.header(resp.revision),
      watch_id: resp.watchId,
      events: resp.events.map((ev) => toPbEvent(ev, entry?.prevKv ?? false)),
    };
    if (resp.compactRevision !== undefined) {
      // The id stays registered (as in etcd): a later cancel is answered, a reuse is a duplicate.
      wr.compact_revision = resp.compactRevision;
      wr.canceled = true;
    }
    if (entry && resp.events.length > 0) entry.progressDue = false; // an event is progress enough until the next tick
    const ok = entry?.fragment && resp.events.length > 1 ? this.sendFragments(wr) : this.write(wr);
    if (!ok && this.call.writableLength >= STREAM_BUFFER_MESSAGES) {
      // This response is queued in the stream; stop taking more until it drains. (Like etcd's per-stream
      // channel of 128 responses: a burst is buffered, a consumer that stops reading is not.)
      this.blocked = true;
      this.call.once('drain', () => {
        this.blocked = false;
        this.server.watchable.kick();
      });
    }
    return true;
  }

  /** Splits one large response into several, each under the request limit, all but the last marked fragment. */
  private sendFragments(wr: Record<string, unknown>): boolean {
    const events = wr.events as object[];
    const size = (m: object) => this.responseType.encode(this.responseType.fromObject(m)).len;
    if (size(wr) < this.opts.maxRequestBytes) return this.write(wr);
    let ok = true;
    let batch: object[] = [];
    for (const ev of events) {
      batch.push(ev);
      if (batch.length > 1 && size({ ...wr, events: batch }) >= this.opts.maxRequestBytes) {
        batch.pop();
        ok = this.write({ ...wr, events: batch, fragment: true }) && ok;
        batch = [ev];
      }
    }
    return this.write({ ...wr, events: batch, fragment: false }) && ok;
  }

  /** Each interval, a watcher that asked for progress_notify and saw no event since the last tick gets one. */
  private progressTick(): void {
    for (const entry of this.watchers.values()) {
      if (!entry.progressNotify) continue;
      if (entry.progressDue) this.server.watchable.progress(entry.w);
      entry.progressDue = true;
    }
  }
}

function toPbEvent(ev: MvccEvent, withPrev: boolean): object {
  const out: Record<string, unknown> = { type: ev.type, kv: ev.kv };
  if (withPrev && ev.prevKv) out.prev_kv = ev.prevKv;
  return out;
}

