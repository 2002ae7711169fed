import { Writable } from 'node:stream';
import pino from 'pino';
import {
  AutoCompactor,
  type AutoCompactionConfig,
  type CompactionTarget,
  type CompactorTimers,
  periodicSchedule,
  REVISION_MODE_INTERVAL_MS,
} from '../../src/server/compactor';
import { Errors } from '../../src/util/errors';
import { type Logger, silentLogger } from '../../src/util/logger';

const MIN = 60_000;
const HOUR = 60 * MIN;

/** Lets promise continuations (and the compactor's follow-up scheduling) run. */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A manual clock with one-shot timers; time moves only through advance()/advanceTo(). */
class FakeTimers implements CompactorTimers {
  private t = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return () => {
      this.timers.delete(id);
    };
  }

  get pending(): number {
    return this.timers.size;
  }

  /** Fires every timer due up to `target`, in order, letting async work settle after each. */
  async advanceTo(target: number): Promise<void> {
    for (;;) {
      await flush();
      let next: { id: number; at: number; fn: () => void } | undefined;
      for (const [id, e] of this.timers) {
        if (e.at <= target && (next === undefined || e.at < next.at)) next = { id, ...e };
      }
      if (next === undefined) break;
      this.timers.delete(next.id);
      this.t = next.at;
      next.fn();
    }
    this.t = target;
  }

  advance(ms: number): Promise<void> {
    return this.advanceTo(this.t + ms);
  }
}

/** Records compact calls; the revision is a function of the fake time (default: one write per minute). */
class FakeTarget implements CompactionTarget {
  leader = true;
  readonly calls: Array<{ rev: number; atMin: number }> = [];
  /** Outcomes for the next compact calls (undefined = success); consumed in order. */
  readonly outcomes: Array<unknown> = [];
  /** When set, compact() returns this instead (for in-flight tests). */
  hold: Promise<void> | null = null;

  constructor(
    private readonly timers: FakeTimers,
    public revAt: (nowMs: number) => number = (t) => 1 + Math.floor(t / MIN),
  ) {}

  currentRevision(): number {
    return this.revAt(this.timers.now());
  }

  isLeader(): boolean {
    return this.leader;
  }

  compact(rev: number): Promise<void> {
    this.calls.push({ rev, atMin: this.timers.now() / MIN });
    if (this.hold) return this.hold;
    const err = this.outcomes.shift();
    return err === undefined ? Promise.resolve() : Promise.reject(err);
  }
}

function setup(config: AutoCompactionConfig, logger: Logger = silentLogger()) {
  const timers = new FakeTimers();
  const target = new FakeTarget(timers);
  const compactor = new AutoCompactor({ config, target, logger, timers });
  return { timers, target, compactor };
}

const periodic = (retentionMs: number): AutoCompactionConfig => ({ mode: 'periodic', retentionMs });
const revision = (retentionRevisions: number): AutoCompactionConfig => ({ mode: 'revision', retentionRevisions });

/** A pino logger writing JSON lines into an array. */
function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      cb();
    },
  });
  const logger = pino({ level: 'info', base: undefined, timestamp: false, messageKey: 'msg' }, sink);
  return { logger, lines };
}

describe('periodicSchedule', () => {
  it('samples every min(retention, 1h)/10 and compacts at most every min(retention, 1h)', () => {
    expect(periodicSchedule(HOUR)).toEqual({ tickMs: 6 * MIN, compactEveryMs: HOUR, windowSize: 11 });
    expect(periodicSchedule(10 * MIN)).toEqual({ tickMs: MIN, compactEveryMs: 10 * MIN, windowSize: 11 });
    expect(periodicSchedule(59 * MIN)).toEqual({ tickMs: 5.9 * MIN, compactEveryMs: 59 * MIN, windowSize: 11 });
    expect(periodicSchedule(2 * HOUR)).toEqual({ tickMs: 6 * MIN, compactEveryMs: HOUR, windowSize: 21 });
    expect(periodicSchedule(24 * HOUR)).toEqual({ tickMs: 6 * MIN, compactEveryMs: HOUR, windowSize: 241 });
  });
});

describe('AutoCompactor, periodic mode', () => {
  it('1h retention: first compaction at 1h to the start revision, then hourly to the revision of 66 min ago', async () => {
    const { timers, target, compactor } = setup(periodic(HOUR));
    compactor.start();
    await timers.advanceTo(60 * MIN - 1);
    expect(target.calls).toEqual([]);
    await timers.advanceTo(5 * HOUR);
    expect(target.calls).toEqual([
      { rev: 1, atMin: 60 },
      { rev: 55, atMin: 120 }, // sampled at 54 min
      { rev: 115, atMin: 180 },
      { rev: 175, atMin: 240 },
      { rev: 235, atMin: 300 },
    ]);
    expect(compactor.lastCompactedRevision).toBe(235);
    await compactor.stop();
  });

  it('10m retention (< 1h): compacts every 10 minutes, sampling every minute', async () => {
    const { timers, target, compactor } = setup(periodic(10 * MIN));
    compactor.start();
    await timers.advanceTo(HOUR);
    expect(target.calls).toEqual([
      { rev: 1, atMin: 10 },
      { rev: 10, atMin: 20 }, // sampled at minute 9 = 11 samples back
      { rev: 20, atMin: 30 },
      { rev: 30, atMin: 40 },
      { rev: 40, atMin: 50 },
      { rev: 50, atMin: 60 },
    ]);
    await compactor.stop();
  });

  it('2h retention (>= 1h): waits 2h for the first compaction, then compacts hourly', async () => {
    const { timers, target, compactor } = setup(periodic(2 * HOUR));
    compactor.start();
    await timers.advanceTo(5 * HOUR);
    expect(target.calls).toEqual([
      { rev: 1, atMin: 120 },
      { rev: 55, atMin: 180 }, // sampled 2h6m earlier
      { rev: 115, atMin: 240 },
      { rev: 175, atMin: 300 },
    ]);
    await compactor.stop();
  });

  it('24h retention: first compaction after a day, then hourly', async () => {
    const { timers, target, compactor } = setup(periodic(24 * HOUR));
    compactor.start();
    await timers.advanceTo(24 * HOUR - 1);
    expect(target.calls).toEqual([]);
    await timers.advanceTo(26 * HOUR);
    expect(target.calls).toEqual([
      { rev: 1, atMin: 24 * 60 },
      { rev: 55, atMin: 25 * 60 },
      { rev: 115, atMin: 26 * 60 },
    ]);
    await compactor.stop();
  });

  it('does not compact the same revision twice when nothing was written', async () => {
    const { timers, target, compactor } = setup(periodic(10 * MIN));
    target.revAt = () => 42;
    compactor.start();
    await timers.advanceTo(HOUR);
    expect(target.calls).toEqual([{ rev: 42, atMin: 10 }]);
    // writes resume after 60 min: the new revisions reach the head of the window 11 samples later
    // (the sample at 60 min was already taken as 42; the one at 61 min is 43)
    target.revAt = (t) => 42 + Math.floor((t - HOUR) / MIN);
    await timers.advanceTo(HOUR + 12 * MIN);
    expect(target.calls).toEqual([
      { rev: 42, atMin: 10 },
      { rev: 43, atMin: 72 },
    ]);
    await compactor.stop();
  });

  it('retries a failed compaction one sample interval later, then keeps the regular cadence', async () => {
    const { timers, target, compactor } = setup(periodic(HOUR));
    target.outcomes.push(new Error('etcdserver: request timed out'));
    compactor.start();
    await timers.advanceTo(3 * HOUR + 6 * MIN);
    expect(target.calls).toEqual([
      { rev: 1, atMin: 60 }, // fails
      { rev: 1, atMin: 66 }, // retried (window not yet full, same oldest sample)
      { rev: 61, atMin: 126 }, // an hour after the success
      { rev: 121, atMin: 186 },
    ]);
    await compactor.stop();
  });

  it('keeps retrying while compaction fails, with the window sliding', async () => {
    const { timers, target, compactor } = setup(periodic(10 * MIN));
    const boom = new Error('etcdserver: no leader');
    target.outcomes.push(undefined, boom, boom, boom);
    compactor.start();
    await timers.advanceTo(24 * MIN);
    expect(target.calls).toEqual([
      { rev: 1, atMin: 10 },
      { rev: 10, atMin: 20 }, // fails
      { rev: 11, atMin: 21 }, // fails
      { rev: 12, atMin: 22 }, // fails
      { rev: 13, atMin: 23 }, // succeeds
    ]);
    expect(compactor.lastCompactedRevision).toBe(13);
    await compactor.stop();
  });

  it('treats "required revision has been compacted" as done (no retry)', async () => {
    const { timers, target, compactor } = setup(periodic(10 * MIN));
    target.outcomes.push(Errors.compacted());
    compactor.start();
    await timers.advanceTo(20 * MIN);
    expect(target.calls).toEqual([
      { rev: 1, atMin: 10 },
      { rev: 10, atMin: 20 },
    ]);
    expect(compactor.lastCompactedRevision).toBe(10);
    await compactor.stop();
  });

  it('does not compact while not the leader, but keeps sampling and compacts on the first tick as leader', async () => {
    const { timers, target, compactor } = setup(periodic(HOUR));
    target.leader = false;
    compactor.start();
    await timers.advanceTo(3 * HOUR + MIN);
    expect(target.calls).toEqual([]);
    target.leader = true;
    await timers.advanceTo(4 * HOUR + 6 * MIN);
    expect(target.calls).toEqual([
      { rev: 121, atMin: 186 },
      { rev: 181, atMin: 246 },
    ]);
    // losing leadership pauses it again
    target.leader = false;
    await timers.advanceTo(8 * HOUR);
    expect(target.calls).toHaveLength(2);
    await compactor.stop();
  });

  it('logs start, completion and failure with etcd field names', async () => {
    const { logger, lines } = capturingLogger();
    const { timers, target, compactor } = setup(periodic(10 * MIN), logger);
    target.outcomes.push(new Error('etcdserver: request timed out'));
    compactor.start();
    await timers.advanceTo(11 * MIN);
    await compactor.stop();
    const withRev = lines.filter((l) => 'revision' in l);
    expect(withRev).toEqual([
      expect.objectContaining({ level: 30, revision: 1, 'compact-period': '10m0s' }),
      expect.objectContaining({
        level: 40,
        revision: 1,
        'compact-period': '10m0s',
        'retry-interval': '1m0s',
        error: 'etcdserver: request timed out',
      }),
      expect.objectContaining({ level: 30, revision: 1, 'compact-period': '10m0s' }),
      expect.objectContaining({ level: 30, revision: 1, 'compact-period': '10m0s', took: '0s' }),
    ]);
    expect(String(withRev[0].msg)).toContain('revision 1');
  });
});

describe('AutoCompactor, revision mode', () => {
  it('retention 1000: every 5 minutes compacts to current - 1000 when positive and new', async () => {
    const { timers, target, compactor } = setup(revision(1000));
    target.revAt = (t) => 1 + 100 * Math.floor(t / MIN); // 100 writes a minute
    compactor.start();
    await timers.advanceTo(5 * MIN - 1);
    expect(timers.now()).toBe(5 * MIN - 1);
    await timers.advanceTo(25 * MIN);
    expect(target.calls).toEqual([
      // 5 min: 501 - 1000 < 0, skipped
      { rev: 1, atMin: 10 },
      { rev: 501, atMin: 15 },
      { rev: 1001, atMin: 20 },
      { rev: 1501, atMin: 25 },
    ]);
    // no writes: the target does not move, nothing to do
    target.revAt = () => 2501;
    await timers.advanceTo(40 * MIN);
    expect(target.calls).toHaveLength(4);
    await compactor.stop();
  });

  it('first tick is 5 minutes after start', async () => {
    const { timers, target, compactor } = setup(revision(1000));
    target.revAt = () => 5000;
    compactor.start();
    await timers.advanceTo(REVISION_MODE_INTERVAL_MS - 1);
    expect(target.calls).toEqual([]);
    await timers.advanceTo(REVISION_MODE_INTERVAL_MS);
    expect(target.calls).toEqual([{ rev: 4000, atMin: 5 }]);
    await compactor.stop();
  });

  it('retries a failed compaction on the next tick', async () => {
    const { timers, target, compactor } = setup(revision(1000));
    target.revAt = () => 5000;
    target.outcomes.push(new Error('etcdserver: request timed out'));
    compactor.start();
    await timers.advanceTo(20 * MIN);
    expect(target.calls).toEqual([
      { rev: 4000, atMin: 5 },
      { rev: 4000, atMin: 10 },
    ]);
    await compactor.stop();
  });

  it('treats "required revision has been compacted" as done', async () => {
    const { timers, target, compactor } = setup(revision(1000));
    target.revAt = () => 5000;
    target.outcomes.push(Errors.compacted());
    compactor.start();
    await timers.advanceTo(20 * MIN);
    expect(target.calls).toEqual([{ rev: 4000, atMin: 5 }]);
    expect(compactor.lastCompactedRevision).toBe(4000);
    await compactor.stop();
  });

  it('does nothing while not the leader', async () => {
    const { timers, target, compactor } = setup(revision(1000));
    target.revAt = (t) => 5000 + Math.floor(t / MIN);
    target.leader = false;
    compactor.start();
    await timers.advanceTo(HOUR);
    expect(target.calls).toEqual([]);
    target.leader = true;
    await timers.advanceTo(HOUR + 5 * MIN);
    expect(target.calls).toEqual([{ rev: 4065, atMin: 65 }]);
    await compactor.stop();
  });

  it('logs with the revision retention field', async () => {
    const { logger, lines } = capturingLogger();
    const { timers, target, compactor } = setup(revision(1000), logger);
    target.revAt = () => 5000;
    compactor.start();
    await timers.advanceTo(5 * MIN);
    await compactor.stop();
    expect(lines.filter((l) => 'revision' in l)).toEqual([
      expect.objectContaining({ level: 30, revision: 4000, 'revision-compaction-retention': 1000 }),
      expect.objectContaining({ level: 30, revision: 4000, 'revision-compaction-retention': 1000, took: '0s' }),
    ]);
  });
});

describe('AutoCompactor lifecycle', () => {
  it('retention 0 disables it', async () => {
    for (const config of [periodic(0), revision(0)]) {
      const { timers, target, compactor } = setup(config);
      expect(compactor.enabled).toBe(false);
      compactor.start();
      expect(timers.pending).toBe(0);
      await timers.advanceTo(48 * HOUR);
      expect(target.calls).toEqual([]);
    }
  });

  it('stop() cancels the pending timer', async () => {
    for (const config of [periodic(10 * MIN), revision(10)]) {
      const { timers, target, compactor } = setup(config);
      compactor.start();
      expect(timers.pending).toBe(1);
      await compactor.stop();
      expect(timers.pending).toBe(0);
      await timers.advanceTo(48 * HOUR);
      expect(target.calls).toEqual([]);
      compactor.start(); // not restartable
      expect(timers.pending).toBe(0);
    }
  });

  it('stop() during a compaction waits for it and schedules nothing afterwards', async () => {
    const { timers, target, compactor } = setup(periodic(10 * MIN));
    let release!: () => void;
    target.hold = new Promise<void>((resolve) => (release = resolve));
    compactor.start();
    await timers.advanceTo(10 * MIN);
    expect(target.calls).toEqual([{ rev: 1, atMin: 10 }]);
    expect(timers.pending).toBe(0); // waiting on the compaction, no tick scheduled
    let stopped = false;
    const stopping = compactor.stop().then(() => (stopped = true));
    await flush();
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(timers.pending).toBe(0);
    await timers.advanceTo(HOUR);
    expect(target.calls).toHaveLength(1);
  });

  it('start() twice does not double the timers', () => {
    const { timers, compactor } = setup(revision(10));
    compactor.start();
    compactor.start();
    expect(timers.pending).toBe(1);
    void compactor.stop();
  });
});
