// Differential test of `etcdctl watch` (etcdctl 3.6): the same scripted sequence — start a watch, wait
// until it is established, write with etcdctl, wait, stop the watch — runs against a reference etcd and
// an etcd-ts member, and what etcdctl printed (stdout, stderr, exit status) must match after normalising
// only cluster/member IDs and addresses (test/helpers/compare.ts).
//
// A watch never ends by itself, so etcdctl is stopped (SIGTERM) when the script is done; the cases where
// etcdctl exits on its own (watch canceled by the server) compare its exit code too.
//
// Both members get exactly the same writes in the same order, so revision numbers match; the tests run in
// file order and build on each other's history (compaction comes last).
import { etcdctl, NodeHandle, startNode } from '../helpers';
import { expectSameOutput, identify, Normalizer, NodeIdentity, PairRun, RunningCtl, runScriptedPair, ScriptedPairOptions } from '../helpers/compare';

jest.setTimeout(60_000);

/** Both members send progress notifications every second (etcd adds up to 10% jitter). */
const SERVER_FLAGS = ['--watch-progress-notify-interval=1s'];
/** Time given to a new watch to be established (or to replay its history) before writing. */
const ESTABLISH_MS = 700;
/** Time given to the last events to arrive before etcdctl is stopped. */
const SETTLE_MS = 600;

let refNode: NodeHandle | undefined;
let tsNode: NodeHandle | undefined;
let ref: NodeIdentity;
let ts: NodeIdentity;

beforeAll(async () => {
  const started = await Promise.allSettled([
    startNode({ kind: 'etcd', name: 'watch', extraArgs: SERVER_FLAGS }),
    startNode({ kind: 'etcd-ts', name: 'watch', extraArgs: SERVER_FLAGS }),
  ]);
  [refNode, tsNode] = started.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  [ref, ts] = await Promise.all([identify(refNode as NodeHandle, 'etcd'), identify(tsNode as NodeHandle, 'etcd-ts')]);
});

afterAll(async () => {
  await Promise.all([refNode, tsNode].map((n) => n?.destroy()));
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs etcdctl on one node; fails the test unless it succeeds. */
async function ctl(node: NodeHandle, args: string[], input?: string): Promise<string> {
  const res = await etcdctl(node.endpoint, args, { input });
  if (res.code !== 0) throw new Error(`etcdctl ${args.join(' ')} failed on ${node.kind} (code ${res.code}):\n${res.stdout}\n${res.stderr}`);
  return res.stdout;
}

/** Writes on one node and returns the revision of the write. */
async function write(node: NodeHandle, args: string[], input?: string): Promise<number> {
  const out = await ctl(node, [...args, '-w', 'json'], input);
  const m = /"revision":(\d+)/.exec(out);
  if (!m) throw new Error(`no revision in ${out}`);
  return Number(m[1]);
}

/** The same writes on both members, in order; asserts that they land at the same revisions. */
async function writeBoth(...cmds: (string[] | { args: string[]; input: string })[]): Promise<number[]> {
  const revs: number[] = [];
  for (const c of cmds) {
    const [args, input] = Array.isArray(c) ? [c, undefined] : [c.args, c.input];
    const [r, t] = await Promise.all([write(ref.node, args, input), write(ts.node, args, input)]);
    expect({ cmd: args.join(' '), etcdTs: t }).toEqual({ cmd: args.join(' '), etcdTs: r });
    revs.push(r);
  }
  return revs;
}

async function currentRevision(node: NodeHandle): Promise<number> {
  return write(node, ['get', 'no-such-key']);
}

type Step = number | string[] | { args: string[]; input: string } | { stdin: string };

/**
 * A script: numbers are pauses (ms), arrays are etcdctl writes on the same node, { stdin } is written to
 * the watching etcdctl's stdin (interactive mode).
 */
function script(...steps: Step[]): (node: NodeHandle, ctl: RunningCtl) => Promise<void> {
  return async (node, watcher) => {
    for (const s of steps) {
      if (typeof s === 'number') await sleep(s);
      else if (Array.isArray(s)) await ctl(node, s);
      else if ('stdin' in s) watcher.write(s.stdin);
      else await ctl(node, s.args, s.input);
    }
  };
}

/** Declares a test: `etcdctl <args>` driven by the same script on both members prints the same. */
function watchCase(name: string, args: string[], steps: Step[] | (() => Step[]), opts: ScriptedPairOptions = {}, extra?: (run: PairRun) => void): void {
  test(name, async () => {
    const [before, beforeTs] = await Promise.all([currentRevision(ref.node), currentRevision(ts.node)]);
    expect({ etcdTsRevision: beforeTs }).toEqual({ etcdTsRevision: before });
    const s = typeof steps === 'function' ? steps() : steps;
    const run = await runScriptedPair(ref, ts, args, script(...s), opts);
    expectSameOutput(run);
    extra?.(run);
  });
}

/**
 * etcd's progress ticker fires every interval + up to 10% jitter, so how many identical consecutive
 * "progress notify: N" lines fit into a time window is timing; runs of identical ones are collapsed.
 */
const collapseProgressRepeats: Normalizer = {
  name: 'collapseProgressRepeats',
  text: (s) => s.replace(/^(progress notify: \d+\n(?:\{"Header".*"Events":\[\].*\n)?)(?:\1)+/gm, '$1'),
};

// ---------------------------------------------------------------------------
describe('history replay with --rev', () => {
  let first = 0;
  test('history: puts, deletes and a txn on h/', async () => {
    const revs = await writeBoth(
      ['put', 'h/a', '1'],
      ['put', 'h/b', '2'],
      ['del', 'h/a'],
      ['put', 'h/a', '3'],
      ['put', 'h/a', '4'],
      { args: ['txn'], input: '\nput h/a 5\nput h/b 6\nput h/c 7\n\n\n' },
      ['del', 'h/', '--prefix'],
      ['put', 'h/b', '8'],
      ['put', 'hz', 'outside'],
    );
    first = revs[0];
  });

  const rev = (d = 0) => () => String(first + d);
  const replay = (name: string, build: () => string[], steps: Step[] = [ESTABLISH_MS], opts: ScriptedPairOptions = {}) => {
    test(name, async () => {
      const args = build();
      const run = await runScriptedPair(ref, ts, args, script(...steps), opts);
      expectSameOutput(run);
      expect(run.ref.stdout).not.toBe('');
    });
  };

  replay('watch h/a --rev=<first>', () => ['watch', 'h/a', `--rev=${rev()()}`]);
  replay('watch h/a --rev=<first> -w json', () => ['watch', 'h/a', `--rev=${rev()()}`, '-w', 'json']);
  replay('watch h/ --prefix --rev=<first>', () => ['watch', 'h/', '--prefix', `--rev=${rev()()}`]);
  replay('watch h/ --prefix --rev=<first> -w json', () => ['watch', 'h/', '--prefix', `--rev=${rev()()}`, '-w', 'json']);
  replay('watch h/a --rev=<first> --prev-kv', () => ['watch', 'h/a', `--rev=${rev()()}`, '--prev-kv']);
  replay('watch h/ --prefix --rev=<first> --prev-kv -w json', () => ['watch', 'h/', '--prefix', `--rev=${rev()()}`, '--prev-kv', '-w', 'json']);
  replay('watch h/ --prefix --rev=<first> --prev-kv -w fields', () => ['watch', 'h/', '--prefix', `--rev=${rev()()}`, '--prev-kv', '-w', 'fields']);
  replay('watch h/a h/c --rev=<first> (range)', () => ['watch', 'h/a', 'h/c', `--rev=${rev()()}`]);
  replay('watch h/ --prefix --rev=<first+4> (from the middle of the history)', () => ['watch', 'h/', '--prefix', `--rev=${rev(4)()}`, '-w', 'json']);
  replay('watch --prefix "" --rev=<first> (every key)', () => ['watch', '--prefix', '', `--rev=${rev()()}`]);
  replay(
    'replay then live: watch h/ --prefix --rev=<first+6> while writing',
    () => ['watch', 'h/', '--prefix', `--rev=${rev(6)()}`, '--prev-kv'],
    [ESTABLISH_MS, ['put', 'h/a', 'live1'], ['put', 'h/b', 'live2'], ['del', 'h/a'], SETTLE_MS],
  );

  test('watch h/f --rev=<future revision> sees only events from that revision on', async () => {
    const now = await currentRevision(ref.node);
    const args = ['watch', 'h/f', `--rev=${now + 3}`];
    const run = await runScriptedPair(ref, ts, args, script(ESTABLISH_MS, ['put', 'h/f', 'r1'], ['put', 'h/f', 'r2'], ['put', 'h/f', 'r3'], ['put', 'h/f', 'r4'], SETTLE_MS));
    expectSameOutput(run);
    expect(run.ref.stdout).toBe('PUT\nh/f\nr3\nPUT\nh/f\nr4\n');
  });
});

// ---------------------------------------------------------------------------
describe('live events', () => {
  watchCase('watch l/k --prev-kv', ['watch', 'l/k', '--prev-kv'], [ESTABLISH_MS, ['put', 'l/k', 'v1'], ['put', 'l/k', 'v2'], ['del', 'l/k'], ['put', 'l/k', 'v3'], SETTLE_MS]);
  watchCase('watch l/k --prev-kv -w json', ['watch', 'l/k', '--prev-kv', '-w', 'json'], [ESTABLISH_MS, ['put', 'l/k', 'v4'], ['del', 'l/k'], ['put', 'l/k', 'v5'], SETTLE_MS]);
  watchCase(
    'watch l/ --prefix',
    ['watch', 'l/', '--prefix'],
    [ESTABLISH_MS, ['put', 'l/a', 'A'], ['put', 'lx', 'outside'], ['put', 'l/b', 'B'], ['put', 'l/', 'the prefix itself'], ['del', 'l/', '--prefix'], SETTLE_MS],
  );
  watchCase(
    'watch l/a l/c (range)',
    ['watch', 'l/a', 'l/c'],
    [ESTABLISH_MS, ['put', 'l/a', '1'], ['put', 'l/b', '2'], ['put', 'l/c', 'excluded'], ['put', 'l/bb', '3'], ['put', 'l/', 'before'], ['del', 'l/a', 'l/z'], SETTLE_MS],
  );
  watchCase(
    'watch l/a l/c -w fields',
    ['watch', 'l/a', 'l/c', '-w', 'fields', '--prev-kv'],
    [ESTABLISH_MS, ['put', 'l/a', '1'], ['put', 'l/a', '2'], ['del', 'l/a'], SETTLE_MS],
  );
  watchCase('watch "" (an empty key stands for the key \\x00: nothing else matches)', ['watch', ''], [ESTABLISH_MS, ['put', 'l/e', 'x'], SETTLE_MS]);
  watchCase(
    'watch with an exec command: env of each event',
    ['watch', 'e/k', '--', 'sh', '-c', 'echo "rev=$ETCD_WATCH_REVISION type=$ETCD_WATCH_EVENT_TYPE key=$ETCD_WATCH_KEY value=$ETCD_WATCH_VALUE"'],
    [ESTABLISH_MS, ['put', 'e/k', 'one'], ['put', 'e/k', 'two'], ['del', 'e/k'], SETTLE_MS],
  );
});

// ---------------------------------------------------------------------------
describe('several events of one revision arrive in one response', () => {
  const txn = { args: ['txn'], input: '\nput t/a 1\nput t/b 2\nput t/c 3\nput other 4\n\n\n' };
  watchCase('txn of 3 keys: watch t/ --prefix -w json prints one response', ['watch', 't/', '--prefix', '-w', 'json'], [ESTABLISH_MS, txn, SETTLE_MS], {}, (run) => {
    const lines = run.ref.stdout.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect((lines[0].match(/"kv":/g) ?? []).length).toBe(3);
  });
  watchCase(
    'txn overwriting and deleting: watch t/ --prefix --prev-kv -w json',
    ['watch', 't/', '--prefix', '--prev-kv', '-w', 'json'],
    [ESTABLISH_MS, { args: ['txn'], input: '\nput t/a 10\ndel t/b\nput t/d 4\n\n\n' }, ['del', 't/', '--prefix'], SETTLE_MS],
    {},
    (run) => expect(run.ref.stdout.split('\n').filter((l) => l !== '')).toHaveLength(2),
  );
  watchCase('txn of 3 keys, single-key watch t/b sees only its event', ['watch', 't/b', '-w', 'json'], [ESTABLISH_MS, txn, SETTLE_MS]);
});

// ---------------------------------------------------------------------------
describe('progress notifications', () => {
  // Timeline (interval 1 s, jitter <= 0.1 s): tick 1 at ~1.0-1.1 s -> progress at the current revision;
  // a write elsewhere at 1.5 s; tick 2 at ~2.0-2.2 s -> progress at that revision; a watched write at
  // 2.6 s; tick 3 at ~3.0-3.3 s is elided (an event was sent since the last tick); stop at 3.6 s.
  const progressSteps: Step[] = [1_500, ['put', 'pn-other', 'x'], 1_100, ['put', 'pn/k', 'v'], 1_000];
  watchCase('watch pn/k --progress-notify', ['watch', 'pn/k', '--progress-notify'], progressSteps, { normalizers: [collapseProgressRepeats] }, (run) => {
    expect(run.ref.stdout).toMatch(/^progress notify: \d+\nprogress notify: \d+\nPUT\npn\/k\nv\n$/);
  });
  watchCase('watch pn/k --progress-notify -w json', ['watch', 'pn/k', '--progress-notify', '-w', 'json'], progressSteps, { normalizers: [collapseProgressRepeats] });
  watchCase(
    'watch pn/k --progress-notify --rev=<future>: no progress before the start revision',
    ['watch', 'pn/k', '--progress-notify', '--rev=1000000'],
    [2_300],
    { normalizers: [collapseProgressRepeats] },
    (run) => expect(run.ref.stdout).toBe(''),
  );
});

// ---------------------------------------------------------------------------
describe('interactive watch -i', () => {
  watchCase(
    'watch -i: two watches, writes, progress, invalid lines',
    ['watch', '-i'],
    [
      { stdin: 'watch i/a\n' },
      300,
      { stdin: 'watch i/b --prev-kv\n' },
      ESTABLISH_MS,
      ['put', 'i/a', '1'],
      200,
      ['put', 'i/b', '2'],
      200,
      ['put', 'i/b', '3'],
      200,
      ['put', 'i/c', 'not watched'],
      { stdin: 'progress\n' },
      400,
      { stdin: 'foo bar\n' },
      { stdin: 'watch\n' },
      { stdin: '\n' },
      200,
      ['del', 'i/a'],
      SETTLE_MS,
    ],
  );
  watchCase(
    'watch -i: progress right after the watch is created (no write in between)',
    ['watch', '-i'],
    [{ stdin: 'watch i/p\n' }, ESTABLISH_MS, { stdin: 'progress\n' }, SETTLE_MS],
    {},
    (run) => expect(run.ref.stdout).toMatch(/^progress notify: \d+\n$/),
  );
  watchCase('watch -i with --rev replay and a range', ['watch', '-i'], () => [{ stdin: 'watch i/a i/c --rev=1\n' }, ESTABLISH_MS, ['put', 'i/a', 'again'], SETTLE_MS]);
});

// ---------------------------------------------------------------------------
describe('watching a compacted revision', () => {
  let compactRev = 0;
  test('compaction of both members', async () => {
    await writeBoth(['put', 'c/a', '1'], ['put', 'c/a', '2'], ['put', 'c/b', '3']);
    const [r, t] = await Promise.all([currentRevision(ref.node), currentRevision(ts.node)]);
    expect(t).toBe(r);
    compactRev = r - 1;
    await Promise.all([ctl(ref.node, ['compaction', String(compactRev)]), ctl(ts.node, ['compaction', String(compactRev)])]);
    await writeBoth(['put', 'c/a', '4']);
  });

  const compacted = (name: string, args: () => string[], steps: () => Step[] = () => [ESTABLISH_MS]) =>
    test(name, async () => {
      const run = await runScriptedPair(ref, ts, args(), script(...steps()));
      expectSameOutput(run);
    });

  compacted('watch c/a --rev=<compact-1>: canceled by the server, exit code', () => ['watch', 'c/a', `--rev=${compactRev - 1}`]);
  compacted('watch c/a --rev=<compact-1> -w json', () => ['watch', 'c/a', `--rev=${compactRev - 1}`, '-w', 'json']);
  compacted('watch --prefix c/ --rev=1 -w fields', () => ['watch', '--prefix', 'c/', '--rev=1', '-w', 'fields']);
  compacted('watch c/ --prefix --rev=<compact revision itself> -w json (still available)', () => ['watch', 'c/', '--prefix', `--rev=${compactRev}`, '-w', 'json']);
  compacted('watch c/ --prefix --rev=<compact+1>', () => ['watch', 'c/', '--prefix', `--rev=${compactRev + 1}`]);
  compacted('watch -i: a compacted watch is canceled, the session goes on', () => ['watch', '-i'], () => [
    { stdin: `watch c/a --rev=${compactRev - 1}\n` },
    ESTABLISH_MS,
    { stdin: 'watch c/b\n' },
    ESTABLISH_MS,
    ['put', 'c/b', 'after'],
    SETTLE_MS,
  ]);
});
