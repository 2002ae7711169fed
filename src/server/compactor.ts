// Auto-compaction (`--auto-compaction-mode`, `--auto-compaction-retention`), behaving like etcd 3.6.
//
// What etcd 3.6 does (checked against its v3compactor package and its server wiring):
//
//  - The compactor exists only when the retention is non-zero; it starts when the server is created, and
//    it is paused while this member is not the leader and resumed when it is (only the leader compacts;
//    the compaction itself goes through the log like a client's Compact). Here, instead of pause/resume
//    calls, every tick asks `target.isLeader()`: a non-leader tick does nothing except what is noted below.
//  - A compaction that fails with "required revision has been compacted" counts as a success (someone,
//    e.g. a client, already compacted at least that far). Any other failure is logged as a warning and
//    retried on the next tick.
//
//  periodic (retention is a duration P):
//  - Let B = min(P, 1h). A tick runs every B/10 (6 minutes for any P >= 1h; P/10 below an hour).
//  - Each tick is preceded by a sample of the current revision, kept in a sliding window of
//    floor(P / (B/10)) + 1 samples (11 when P <= 1h; 21 for 2h; 241 for 24h). Sampling continues while
//    not the leader, so a member that becomes leader already has the history it needs.
//  - On a tick the candidate is the oldest sample in the window. Nothing happens until P has passed since
//    start (the first compaction lands exactly at P, on the revision sampled at start); after that a
//    compaction happens at most once every B since the last successful one, i.e. every P when P < 1h and
//    every hour when P >= 1h. Once the window is full its oldest sample is window-size ticks old (66 min
//    for P = 1h, 11 min for P = 10m, 2h6m for P = 2h), so at least P of history is kept.
//  - A candidate equal to the last compacted revision is skipped (no writes since then).
//  - After a failure the next tick (B/10 later) tries again with the then-oldest sample.
//
//  revision (retention is a revision count R):
//  - A tick every 5 minutes (the first one 5 minutes after start). The target is current - R; it is
//    skipped when <= 0 or not above the last compacted target; otherwise compacted. Failures are retried
//    on the next tick.
//
// Logging: one info line when a compaction starts, one when it completes ("took" as a Go duration), a
// warning when it fails (with the retry interval and the error). The structured field names are etcd's
// ("revision", "compact-period" / "revision-compaction-retention", "took", "retry-interval", "error") so
// log queries keep working; the messages are ours.
//
// Everything time-related goes through an injected `CompactorTimers`, so tests drive it with a fake clock.
import type { Config } from '../config/schema';
import { formatGoDuration } from '../config/goparse';
import type { Logger } from '../util/logger';

export type AutoCompactionConfig = Config['autoCompaction'];

/** What the compactor compacts. */
export interface CompactionTarget {
  /** The store's current revision. */
  currentRevision(): number;
  /**
   * Compacts history below `rev` (through consensus). Rejects with etcd's "required revision has been
   * compacted" error when `rev` is at or below the compacted revision; that rejection counts as success.
   */
  compact(rev: number): Promise<void>;
  /** Whether this member is the leader now; only the leader compacts. */
  isLeader(): boolean;
}

/** Clock and one-shot timers. `setTimer` returns a function that cancels the timer. */
export interface CompactorTimers {
  now(): number;
  setTimer(fn: () => void, ms: number): () => void;
}

/** Wall clock and Node timers (unref'd: a pending compaction tick never keeps the process alive). */
export function realTimers(): CompactorTimers {
  return {
    now: () => Date.now(),
    setTimer: (fn, ms) => {
      const t = setTimeout(fn, ms);
      t.unref();
      return () => clearTimeout(t);
    },
  };
}

export interface CompactorOptions {
  config: AutoCompactionConfig;
  target: CompactionTarget;
  logger: Logger;
  /** Defaults to realTimers(). */
  timers?: CompactorTimers;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
/** Revision mode: fixed tick. */
export const REVISION_MODE_INTERVAL_MS = 5 * MINUTE_MS;
const TICKS_PER_BASE = 10;

/** The periodic mode's schedule for a retention of `retentionMs` (> 0). */
export function periodicSchedule(retentionMs: number): {
  /** Time between samples / ticks (also the retry delay). */
  tickMs: number;
  /** Minimum time between two successful compactions (after the first, which waits the full retention). */
  compactEveryMs: number;
  /** Samples kept in the sliding window. */
  windowSize: number;
} {
  const base = Math.min(retentionMs, HOUR_MS);
  const tickMs = base / TICKS_PER_BASE;
  const windowSize = (retentionMs <= HOUR_MS ? TICKS_PER_BASE : Math.floor(retentionMs / tickMs)) + 1;
  return { tickMs, compactEveryMs: base, windowSize };
}

const ALREADY_COMPACTED = 'required revision has been compacted';

function isAlreadyCompacted(err: unknown): boolean {
  return err instanceof Error && err.message.includes(ALREADY_COMPACTED);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The auto-compactor. `start()` once after boot, `stop()` on shutdown. With a retention of 0 it is
 * disabled: `enabled` is false and `start()` does nothing.
 */
export class AutoCompactor {
  readonly mode: AutoCompactionConfig['mode'];
  readonly enabled: boolean;

  private readonly target: CompactionTarget;
  private readonly log: Logger;
  private readonly timers: CompactorTimers;
  private readonly retention: number;

  private started = false;
  private stopped = false;
  private cancelTimer: (() => void) | null = null;
  private inFlight: Promise<void> | null = null;

  /** Last revision compacted (or found already compacted) by this compactor; 0 = none yet. */
  private lastCompacted = 0;

  // periodic mode state
  private samples: number[] = [];
  private lastSuccessAt = 0;
  private gateMs = 0;

  constructor(opts: CompactorOptions) {
    this.target = opts.target;
    this.log = opts.logger;
    this.timers = opts.timers ?? realTimers();
    this.mode = opts.config.mode;
    this.retention = opts.config.mode === 'periodic' ? opts.config.retentionMs : opts.config.retentionRevisions;
    this.enabled = this.retention > 0;
  }

  /** The revision this compactor last compacted to (0 before its first compaction). */
  get lastCompactedRevision(): number {
    return this.lastCompacted;
  }

  start(): void {
    if (!this.enabled || this.started || this.stopped) return;
    this.started = true;
    if (this.mode === 'periodic') {
      const sched = periodicSchedule(this.retention);
      this.lastSuccessAt = this.timers.now();
      this.gateMs = this.retention; // the first compaction waits the whole retention
      this.log.info(
        {
          mode: this.mode,
          'compact-period': formatGoDuration(this.retention),
          'sample-interval': formatGoDuration(sched.tickMs),
        },
        'auto-compaction enabled',
      );
      this.samplePeriodic();
    } else {
      this.log.info(
        { mode: this.mode, 'revision-compaction-retention': this.retention },
        'auto-compaction enabled',
      );
      this.schedule(REVISION_MODE_INTERVAL_MS, () => this.revisionTick());
    }
  }

  /**
   * Cancels the pending tick; no compaction starts after this. The returned promise settles when a
   * compaction already in flight (if any) has finished; callers may ignore it.
   */
  stop(): Promise<void> {
    this.stopped = true;
    if (this.cancelTimer) {
      this.cancelTimer();
      this.cancelTimer = null;
    }
    return this.inFlight ?? Promise.resolve();
  }

  private schedule(ms: number, fn: () => void): void {
    if (this.stopped) return;
    this.cancelTimer = this.timers.setTimer(() => {
      this.cancelTimer = null;
      if (!this.stopped) fn();
    }, ms);
  }

  // ---- periodic

  /** Records the current revision in the window, then waits one tick. */
  private samplePeriodic(): void {
    if (this.stopped) return;
    const sched = periodicSchedule(this.retention);
    try {
      this.samples.push(this.target.currentRevision());
      if (this.samples.length > sched.windowSize) this.samples.shift();
    } catch (err) {
      this.log.warn({ error: errorText(err) }, 'auto-compaction could not read the current revision');
    }
    this.schedule(sched.tickMs, () => this.periodicTick());
  }

  private periodicTick(): void {
    const sched = periodicSchedule(this.retention);
    const rev = this.samples[0];
    const due =
      rev !== undefined &&
      this.isLeader() &&
      this.timers.now() - this.lastSuccessAt >= this.gateMs &&
      rev !== this.lastCompacted;
    if (!due) {
      this.samplePeriodic();
      return;
    }
    this.gateMs = sched.compactEveryMs;
    const fields = { revision: rev, 'compact-period': formatGoDuration(this.retention) };
    this.runCompaction(rev, fields, sched.tickMs, () => {
      this.lastSuccessAt = this.timers.now();
    }).then(() => this.samplePeriodic());
  }

  // ---- revision

  private revisionTick(): void {
    const next = () => this.schedule(REVISION_MODE_INTERVAL_MS, () => this.revisionTick());
    if (!this.isLeader()) return next();
    let rev: number;
    try {
      rev = this.target.currentRevision() - this.retention;
    } catch (err) {
      this.log.warn({ error: errorText(err) }, 'auto-compaction could not read the current revision');
      return next();
    }
    if (rev <= 0 || rev <= this.lastCompacted) return next();
    const fields = { revision: rev, 'revision-compaction-retention': this.retention };
    this.runCompaction(rev, fields, REVISION_MODE_INTERVAL_MS, () => {}).then(next);
  }

  // ---- shared

  private isLeader(): boolean {
    try {
      return this.target.isLeader();
    } catch {
      return false;
    }
  }

  /** Compacts to `rev` and logs; never rejects. `onSuccess` runs after a success (or "already compacted"). */
  private runCompaction(
    rev: number,
    fields: Record<string, string | number>,
    retryMs: number,
    onSuccess: () => void,
  ): Promise<void> {
    const mode = this.mode;
    const startedAt = this.timers.now();
    this.log.info(fields, `auto-compaction (${mode}) starting at revision ${rev}`);
    let call: Promise<void>;
    try {
      call = this.target.compact(rev);
    } catch (err) {
      call = Promise.reject(err);
    }
    const done = call
      .then(
        () => true,
        (err: unknown) => {
          if (isAlreadyCompacted(err)) return true;
          this.log.warn(
            { ...fields, 'retry-interval': formatGoDuration(retryMs), error: errorText(err) },
            `auto-compaction (${mode}) at revision ${rev} failed; will retry`,
          );
          return false;
        },
      )
      .then((ok) => {
        if (!ok) return;
        this.lastCompacted = Math.max(this.lastCompacted, rev);
        onSuccess();
        this.log.info(
          { ...fields, took: formatGoDuration(this.timers.now() - startedAt) },
          `auto-compaction (${mode}) done at revision ${rev}`,
        );
      })
      .catch((err: unknown) => {
        // Only reachable if logging itself throws; keep the loop alive.
        this.log.error({ error: errorText(err) }, 'auto-compaction bookkeeping failed');
      })
      .finally(() => {
        if (this.inFlight === done) this.inFlight = null;
      });
    this.inFlight = done;
    return done;
  }
}
