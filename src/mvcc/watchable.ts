// The watchable store: delivers every change to the watchers whose key range it touches, in revision
// order, with no gap and no duplicate — whether the watcher is live ("synced": it gets events as writes
// are applied) or catching up from history ("unsynced": events are read back from the stored revisions).
//
// A slow consumer never blocks writes or other watchers: when its sink refuses a response, the watcher
// becomes a "victim" holding that one response; it is retried later and then catches up from history,
// so memory per slow watcher stays bounded. (The design follows etcd's synced/unsynced/victim groups.)
import { KeyValue, decodeKeyValue } from './keyvalue';
import { EventType, MvccEvent, MvccStore, rangeEnd } from './kvstore';
import { Backend } from '../storage';
import { parseRevKey, revKeyFloor } from './revision';

export interface WatchResponseOut {
  watchId: number;
  events: MvccEvent[];
  /** The store revision the response speaks for (the header revision). */
  revision: number;
  /** Set when the watcher's start revision was compacted away: the watch is canceled. */
  compactRevision?: number;
}

/** Where a watcher's responses go. `send` returns false when it cannot take more right now. */
export interface WatchSink {
  send(resp: WatchResponseOut): boolean;
}

export interface WatchOptions {
  noPut?: boolean;
  noDelete?: boolean;
  prevKv?: boolean;
}

export class Watcher {
  /** The next revision this watcher must be given. */
  minRev: number;
  /** The response a full sink refused; delivered before anything else. */
  pending?: WatchResponseOut;
  canceled = false;

  constructor(
    readonly id: number,
    readonly key: string,
    /** undefined: one key; null: every key >= key */
    readonly end: string | null | undefined,
    /** As asked (0: from now on); progress notices wait until the store reaches it. */
    readonly startRev: number,
    readonly opts: WatchOptions,
    readonly sink: WatchSink,
    minRev: number,
  ) {
    this.minRev = minRev;
  }

  matches(key: string): boolean {
    if (this.end === undefined) return key === this.key;
    if (key < this.key) return false;
    return this.end === null || key < this.end;
  }

  /** This watcher's share of `events` (keys[i] is events[i]'s key as latin1, converted once per round). */
  filter(events: MvccEvent[], keys: string[]): MvccEvent[] {
    const { noPut, noDelete } = this.opts;
    const out: MvccEvent[] = [];
    for (let i = 0; i < events.length; i++) {
      const ev = events[i];
      if (ev.kv.mod_revision < this.minRev) continue;
      if (noPut && ev.type === EventType.PUT) continue;
      if (noDelete && ev.type === EventType.DELETE) continue;
      if (!this.matches(keys[i])) continue;
      out.push(ev);
    }
    return out;
  }
}

/** At most this many distinct revisions go to one watcher per catch-up response (etcd's batch). */
const MAX_REVS_PER_SYNC = 1000;
/** At most this many store revisions are read back per catch-up round, so memory per round stays bounded. */
const MAX_REVS_PER_READ = 100_000;
/** At most this many unsynced watchers are served per catch-up round. */
const MAX_WATCHERS_PER_SYNC = 512;
const SYNC_INTERVAL_MS = 100;
const VICTIM_RETRY_MS = 10;

export interface WatchLogger {
  warn(obj: object, msg: string): void;
}

export class WatchableStore {
  private readonly synced = new Set<Watcher>();
  private readonly unsynced = new Set<Watcher>();
  private readonly victims = new Set<Watcher>();
  /** synced single-key watchers by key, for O(1) matching on the hot path */
  private readonly byKey = new Map<string, Set<Watcher>>();
  /** synced range watchers */
  private readonly ranges = new Set<Watcher>();
  private timer: NodeJS.Timeout | undefined;
  private syncing = false;
  private stopped = false;

  constructor(
    private readonly store: MvccStore,
    private readonly backend: Backend,
    private readonly log?: WatchLogger,
  ) {}

  get watcherCount(): number {
    return this.synced.size + this.unsynced.size + this.victims.size;
  }

  /**
   * Starts watching [key, end) from `startRev` (0: from the next revision). A start at or below the
   * current revision catches up from history first; a compacted start is canceled with the compact
   * revision (by the catch-up round, as etcd does).
   */
  watch(id: number, key: Buffer, end: Buffer | undefined, startRev: number, opts: WatchOptions, sink: WatchSink): Watcher {
    const current = this.store.currentRev;
    const w = new Watcher(id, key.toString('latin1'), rangeEnd(end), Math.max(0, startRev), opts, sink, startRev > 0 ? startRev : current + 1);
    if (w.minRev > current) this.addSynced(w);
    else {
      this.unsynced.add(w);
      this.schedule();
    }
    return w;
  }

  /**
   * The store's content was replaced (a Raft snapshot): every synced watcher catches up from the stored
   * history like a new one — or is canceled as compacted if its next revision is gone.
   */
  resync(): void {
    for (const w of [...this.synced]) {
      this.removeSynced(w);
      this.unsynced.add(w);
    }
    this.schedule();
  }

  cancel(w: Watcher): void {
    w.canceled = true;
    this.removeSynced(w);
    this.unsynced.delete(w);
    this.victims.delete(w);
  }

  private addSynced(w: Watcher): void {
    this.synced.add(w);
    if (w.end === undefined) {
      let set = this.byKey.get(w.key);
      if (!set) this.byKey.set(w.key, (set = new Set()));
      set.add(w);
    } else this.ranges.add(w);
  }

  private removeSynced(w: Watcher): void {
    if (!this.synced.delete(w)) return;
    if (w.end === undefined) {
      const set = this.byKey.get(w.key);
      set?.delete(w);
      if (set && set.size === 0) this.byKey.delete(w.key);
    } else this.ranges.delete(w);
  }

  /** Called after a write txn at revision `rev` is applied (and readable): fans its events out. */
  notify(rev: number, events: MvccEvent[]): void {
    if (this.synced.size === 0 || events.length === 0) return;
    const perWatcher = new Map<Watcher, MvccEvent[]>();
    const add = (w: Watcher, ev: MvccEvent) => {
      if ((w.opts.noPut && ev.type === EventType.PUT) || (w.opts.noDelete && ev.type === EventType.DELETE)) return;
      const list = perWatcher.get(w);
      if (list) list.push(ev);
      else perWatcher.set(w, [ev]);
    };
    for (const ev of events) {
      const key = ev.kv.key.toString('latin1');
      const exact = this.byKey.get(key);
      if (exact) for (const w of exact) add(w, ev);
      for (const w of this.ranges) if (w.matches(key)) add(w, ev);
    }
    for (const [w, evs] of perWatcher) {
      if (w.minRev > rev) continue; // a watcher waiting for a future start revision
      this.deliver(w, { watchId: w.id, events: evs, revision: rev }, rev + 1);
    }
  }

  /** Sends, or turns the watcher into a victim holding the response. */
  private deliver(w: Watcher, resp: WatchResponseOut, nextRev: number): boolean {
    if (w.sink.send(resp)) {
      w.minRev = nextRev;
      return true;
    }
    this.removeSynced(w);
    this.unsynced.delete(w);
    w.pending = resp;
    w.minRev = nextRev;
    this.victims.add(w);
    this.schedule();
    return false;
  }

  /** etcd's progress notification for one watcher: only when it is synced and past its start. */
  progress(w: Watcher): boolean {
    return this.progressIfSynced([w], w.id);
  }

  /** RequestProgress for a whole stream: one response (watch id -1) only if all its watchers are synced. */
  progressAll(watchers: Watcher[], sink: WatchSink): boolean {
    return this.progressIfSynced(watchers, -1, sink);
  }

  private progressIfSynced(watchers: Watcher[], responseId: number, sink?: WatchSink): boolean {
    const rev = this.store.currentRev;
    for (const w of watchers) {
      if (!this.synced.has(w) || rev < w.startRev) return false;
    }
    // One notice, on behalf of all of them (the client fans it out); none for a stream without watchers.
    if (watchers.length === 0) return true;
    (sink ?? watchers[0].sink).send({ watchId: responseId, events: [], revision: rev });
    return true;
  }

  /** A sink that refused a response can take more now: retry at once rather than at the next tick. */
  kick(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.schedule(0);
  }

  private schedule(delay?: number): void {
    if (this.stopped || this.timer) return;
    if (this.unsynced.size === 0 && this.victims.size === 0) return;
    // Victims (a response waiting for room) are retried often, as etcd does every 10 ms; history
    // catch-up runs at a calmer pace.
    delay ??= this.victims.size > 0 ? VICTIM_RETRY_MS : SYNC_INTERVAL_MS;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.syncRound().catch((err: unknown) => this.log?.warn({ err }, 'watch catch-up round failed'));
    }, delay);
  }

  private async syncRound(): Promise<void> {
    if (this.syncing || this.stopped) return;
    this.syncing = true;
    try {
      this.retryVictims();
      await this.syncUnsynced();
    } finally {
      this.syncing = false;
      this.schedule();
    }
  }

  private retryVictims(): void {
    for (const w of [...this.victims]) {
      const resp = w.pending as WatchResponseOut;
      if (!w.sink.send(resp)) continue;
      w.pending = undefined;
      this.victims.delete(w);
      if (w.canceled) continue;
      if (w.minRev > this.store.currentRev) this.addSynced(w);
      else this.unsynced.add(w);
    }
  }

  /**
   * Reads history for (up to 512) unsynced watchers from their lowest needed revision, in one scan, and
   * gives each watcher up to 1000 revisions' worth of its events per round (etcd's batching); the header
   * revision of catch-up responses is the store's revision when the round started.
   */
  private async syncUnsynced(): Promise<void> {
    if (this.unsynced.size === 0) return;
    const current = this.store.currentRev;
    const compactRev = this.store.compactRev;
    const chosen: Watcher[] = [];
    for (const w of this.unsynced) {
      if (w.minRev < compactRev) {
        // History it needs is gone: cancel with the compact revision (etcd's behaviour). The notice
        // must not be lost to a full stream: if refused, it waits as the victim's pending response.
        this.unsynced.delete(w);
        w.canceled = true;
        const resp: WatchResponseOut = { watchId: w.id, events: [], revision: 0, compactRevision: compactRev };
        if (!w.sink.send(resp)) {
          w.pending = resp;
          this.victims.add(w);
        }
        continue;
      }
      if (w.minRev > current) {
        this.unsynced.delete(w);
        this.addSynced(w);
        continue;
      }
      chosen.push(w);
      if (chosen.length >= MAX_WATCHERS_PER_SYNC) break;
    }
    if (chosen.length === 0) return;
    const from = Math.min(...chosen.map((w) => w.minRev));
    const to = Math.min(current, from + MAX_REVS_PER_READ - 1);
    const events = await this.readEvents(from, to, chosen.some((w) => w.opts.prevKv));
    const keys = events.map((ev) => ev.kv.key.toString('latin1'));
    const header = to === current ? current : to;
    for (const w of chosen) {
      if (w.canceled || !this.unsynced.has(w) || w.minRev > to) continue;
      let evs = w.filter(events, keys);
      let next = to + 1;
      // At most MAX_REVS_PER_SYNC distinct revisions per response; the rest next round.
      let revs = 0;
      let last = -1;
      for (let i = 0; i < evs.length; i++) {
        const rev = evs[i].kv.mod_revision;
        if (rev !== last) {
          if (++revs > MAX_REVS_PER_SYNC) {
            next = rev;
            evs = evs.slice(0, i);
            break;
          }
          last = rev;
        }
      }
      if (evs.length > 0) {
        if (!this.deliver(w, { watchId: w.id, events: evs, revision: header }, next)) continue;
      } else w.minRev = next;
      // Joining the live stream must happen in the same tick as the check that nothing newer exists.
      if (w.minRev > this.store.currentRev) {
        this.unsynced.delete(w);
        this.addSynced(w);
      }
    }
  }

  /** Every change with main revision in [from, to], in order, with prev_kv filled from history. */
  private async readEvents(from: number, to: number, withPrevKv: boolean): Promise<MvccEvent[]> {
    const events: MvccEvent[] = [];
    await this.backend.scan(revKeyFloor(from), revKeyFloor(to + 1), (key, value) => {
      const { tombstone } = parseRevKey(key);
      const kv: KeyValue = decodeKeyValue(value);
      events.push({ type: tombstone ? EventType.DELETE : EventType.PUT, kv });
    });
    if (!withPrevKv) return events;
    for (const ev of events) {
      // The previous version, for watchers that asked for prev_kv (gone if compacted: then omitted).
      if (ev.type === EventType.PUT && ev.kv.create_revision === ev.kv.mod_revision) continue;
      try {
        const prev = this.store.range(ev.kv.key, undefined, { rev: ev.kv.mod_revision - 1 }).kvs[0];
        if (prev) ev.prevKv = prev;
      } catch {
        // compacted: no previous version to give
      }
    }
    return events;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
