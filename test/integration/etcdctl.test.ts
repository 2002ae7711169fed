// Differential test: the same scripted sequence of etcdctl 3.6 commands runs against a reference etcd
// and an etcd-ts member (both fresh, single member, same history), and their stdout, stderr and exit
// codes must match after normalising only what legitimately differs between two clusters (see
// test/helpers/compare.ts). A second etcd-ts member replays the same commands so KV hashes can be
// compared exactly between two etcd-ts runs of the same history.
//
// The tests run in file order and build on each other's writes; each one is one etcdctl command.
import { etcdctl, NodeHandle, RunResult, startNode } from '../helpers';
import {
  dbSizes,
  durations,
  expectSameOutput,
  identify,
  kvHashes,
  NodeIdentity,
  PairOptions,
  PairRun,
  raftIndexes,
  runPair,
  serverVersion,
  STATUS_COLUMNS,
} from '../helpers/compare';

jest.setTimeout(60_000);

let refNode: NodeHandle | undefined;
let tsNode: NodeHandle | undefined;
let ts2Node: NodeHandle | undefined;
let ref: NodeIdentity;
let ts: NodeIdentity;
let ts2: NodeIdentity;

beforeAll(async () => {
  const started = await Promise.allSettled([
    startNode({ kind: 'etcd', name: 'diff' }),
    startNode({ kind: 'etcd-ts', name: 'diff' }),
    startNode({ kind: 'etcd-ts', name: 'diff' }),
  ]);
  [refNode, tsNode, ts2Node] = started.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  [ref, ts, ts2] = await Promise.all([
    identify(refNode as NodeHandle, 'etcd'),
    identify(tsNode as NodeHandle, 'etcd-ts'),
    identify(ts2Node as NodeHandle, 'etcd-ts#2'),
  ]);
});

afterAll(async () => {
  await Promise.all([refNode, tsNode, ts2Node].map((n) => n?.destroy()));
});

interface Triple extends PairRun {
  /** The same command's result on the second etcd-ts member. */
  ts2: RunResult;
}

/** Runs the command on all three members (the second etcd-ts only to keep its history identical). */
async function runAll(args: string[], opts: PairOptions = {}): Promise<Triple> {
  const [pair, second] = await Promise.all([
    runPair(ref, ts, args, opts),
    etcdctl(ts2.node.endpoint, args, { input: opts.input, timeoutMs: opts.timeoutMs ?? 15_000 }),
  ]);
  return { ...pair, ts2: second };
}

/** Declares one test: `etcdctl <args>` must behave the same on etcd and etcd-ts. */
function same(name: string, args: string[], opts: PairOptions = {}, extra?: (run: Triple) => void): void {
  test(name, async () => {
    const run = await runAll(args, opts);
    expectSameOutput(run);
    extra?.(run);
  });
}

/** Shorthand: the test name is the command line. */
function cmd(args: string[], opts: PairOptions = {}, extra?: (run: Triple) => void): void {
  same(args.map((a) => (a === '' || /\s/.test(a) ? JSON.stringify(a) : a)).join(' '), args, opts, extra);
}

const revisionOf = (stdout: string): number => {
  const m = /"revision":(\d+)/.exec(stdout);
  if (!m) throw new Error(`no header revision in ${stdout}`);
  return Number(m[1]);
};

async function currentRevision(node: NodeHandle): Promise<number> {
  const res = await etcdctl(node.endpoint, ['get', 'foo', '-w', 'json']);
  if (res.code !== 0) throw new Error(`get failed: ${res.stderr}`);
  return revisionOf(res.stdout);
}

async function raftIndex(node: NodeHandle): Promise<{ index: number; applied: number }> {
  const res = await etcdctl(node.endpoint, ['endpoint', 'status', '-w', 'json']);
  if (res.code !== 0) throw new Error(`endpoint status failed: ${res.stderr}`);
  const index = /"raftIndex":(\d+)/.exec(res.stdout);
  const applied = /"raftAppliedIndex":(\d+)/.exec(res.stdout);
  if (!index || !applied) throw new Error(`no raftIndex/raftAppliedIndex in ${res.stdout}`);
  return { index: Number(index[1]), applied: Number(applied[1]) };
}

// ---------------------------------------------------------------------------
describe('put and get', () => {
  cmd(['put', 'foo', 'bar']);
  cmd(['get', 'foo']);
  cmd(['get', 'foo', '-w', 'json']);
  for (const [k, v] of [
    ['k/c', 'vc'],
    ['k/a', 'va'],
    ['k/d', 'vd'],
    ['k/b', 'vb'],
    ['k/b', 'vb2'],
    ['k/e', 'a value with spaces'],
    ['kz', 'outside the prefix'],
  ]) {
    cmd(['put', k, v]);
  }
  cmd(['get', 'k/', '--prefix']);
  cmd(['get', 'k/', '--prefix', '-w', 'json']);
  cmd(['get', 'k/', '--prefix', '-w', 'fields']);
  cmd(['get', 'k/', '--prefix', '-w', 'simple']);
  cmd(['get', 'k/', '--prefix', '--keys-only']);
  cmd(['get', 'k/', '--prefix', '--keys-only', '-w', 'json']);
  cmd(['get', 'k/', '--prefix', '--print-value-only']);
  cmd(['get', 'k/', '--prefix', '--limit=2']);
  cmd(['get', 'k/', '--prefix', '--limit=2', '-w', 'json']);
  cmd(['get', 'k/', '--prefix', '--limit=2', '-w', 'fields']);
  cmd(['get', 'k/', '--prefix', '--count-only', '-w', 'fields']);
  cmd(['get', 'k/', '--prefix', '--count-only']);
  cmd(['get', '--from-key', 'k/b']);
  cmd(['get', '--from-key', 'k/b', '--keys-only', '--limit=3']);
  cmd(['get', '--from-key', 'k/b', '--limit=2', '-w', 'json']);
  cmd(['get', 'k/a', 'k/c']);
  cmd(['get', 'k/a', 'k/c', '-w', 'json']);
  for (const target of ['KEY', 'CREATE', 'MODIFY', 'VERSION', 'VALUE']) {
    for (const order of ['ASCEND', 'DESCEND']) {
      cmd(['get', 'k/', '--prefix', `--sort-by=${target}`, `--order=${order}`]);
    }
  }
  cmd(['get', 'k/', '--prefix', '--sort-by=MODIFY', '--order=DESCEND', '--limit=2', '-w', 'json']);
  // Ties in the sort target. etcd's order for equal elements is whatever Go's sort.Sort yields on the
  // key-ordered range result: with up to 12 results ties keep key order (ASCEND and DESCEND alike);
  // with more, the pattern-defeating quicksort interleaves them deterministically.
  cmd(['get', 'k/', '--prefix', '--keys-only', '--sort-by=VALUE', '--order=DESCEND']);
  for (let i = 1; i <= 20; i++) cmd(['put', `tie/${String(i).padStart(2, '0')}`, 'same']);
  cmd(['put', 'tie/07', 'same']);
  cmd(['get', 'tie/0', '--prefix', '--keys-only', '--sort-by=VALUE', '--order=DESCEND']);
  // More than 12 results with ties: etcd's order of equal elements is an artefact of Go's unstable sort.
  // etcd-ts keeps ties in key order; both must return the same keys, sorted by the target.
  test('get tie/ --prefix --keys-only --sort-by=VERSION --order=ASCEND (ties: same keys, etcd-ts in key order)', async () => {
    const run = await runAll(['get', 'tie/', '--prefix', '--keys-only', '--sort-by=VERSION', '--order=ASCEND']);
    const keys = (out: string) => out.split('\n').filter((l) => l !== '');
    const ours = keys(run.ts.stdout);
    expect([...ours].sort()).toEqual([...keys(run.ref.stdout)].sort());
    const ones = Array.from({ length: 20 }, (_, i) => `tie/${String(i + 1).padStart(2, '0')}`).filter((k) => k !== 'tie/07');
    expect(ours).toEqual([...ones, 'tie/07']);
  });
  cmd(['get', 'tie/', '--prefix', '--keys-only', '--sort-by=VALUE', '--order=DESCEND']);
  cmd(['get', 'k/', '--prefix', '--order=DESCEND', '--keys-only']);
  cmd(['get', 'k/b', '--rev=5']);
  cmd(['get', 'k/b', '--rev=5', '-w', 'json']);
  cmd(['get', 'k/', '--prefix', '--rev=4', '-w', 'fields']);
  cmd(['get', 'k/', '--prefix', '--rev=1']);
  cmd(['get', 'foo', '--rev=1000']);
  cmd(['get', 'missing']);
  cmd(['get', 'missing', '-w', 'json']);
  cmd(['get', 'missing', '-w', 'fields']);
  cmd(['get', 'foo', '--consistency=s']);

  test('-w json prints header and kv fields as JSON numbers', async () => {
    const run = await runAll(['get', 'k/b', '-w', 'json']);
    expectSameOutput(run);
    for (const [label, out] of [
      ['etcd', run.ref.stdout],
      ['etcd-ts', run.ts.stdout],
    ]) {
      expect({ label, out }).toEqual({
        label,
        out: expect.stringMatching(
          /^\{"header":\{"cluster_id":\d+,"member_id":\d+,"revision":\d+,"raft_term":\d+\},"kvs":\[\{"key":"[A-Za-z0-9+/=]+","create_revision":\d+,"mod_revision":\d+,"version":\d+,"value":"[A-Za-z0-9+/=]+"\}\],"count":1\}\n$/,
        ),
      });
    }
  });
});

// ---------------------------------------------------------------------------
describe('put flags', () => {
  cmd(['put', 'k/a', 'va2', '--prev-kv']);
  cmd(['put', 'k/a', 'va3', '--prev-kv', '-w', 'json']);
  cmd(['put', 'fresh', 'v', '--prev-kv']);
  cmd(['put', 'k/a', '--ignore-value']);
  cmd(['get', 'k/a', '-w', 'json']);
  cmd(['put', 'k/a', 'va4', '--ignore-lease']);
  cmd(['put', 'missing', '--ignore-value']);
  cmd(['put', 'missing', 'v', '--ignore-lease']);
  cmd(['put', 'k/a', 'v', '--lease=1234']);
  cmd(['put', 'k/a', 'v', '--lease=1234', '-w', 'json']);
  cmd(['put', '', 'v']);
  cmd(['put', 'k/a', 'v', '--ignore-value']);
  cmd(['put', 'k/a', '-w', 'json'], { input: 'from stdin\n' });
  cmd(['get', 'k/a', '--print-value-only']);
});

// ---------------------------------------------------------------------------
describe('del', () => {
  cmd(['del', 'k/c']);
  cmd(['del', 'k/c']);
  cmd(['del', 'missing', '-w', 'json']);
  cmd(['del', 'k/', '--prefix', '--prev-kv']);
  cmd(['get', 'k/', '--prefix']);
  for (const k of ['z/a', 'z/b', 'z/c', 'z/d']) cmd(['put', k, k.toUpperCase()]);
  cmd(['del', '--from-key', 'z/c', '--prev-kv', '-w', 'json']);
  cmd(['del', 'z/a', '-w', 'fields']);
  cmd(['del', 'z/', '--prefix', '--prev-kv', '-w', 'fields']);
  cmd(['get', 'z/', '--prefix', '-w', 'json']);
});

// ---------------------------------------------------------------------------
describe('txn (interactive script on stdin)', () => {
  cmd(['put', 't/a', '1']);
  cmd(['put', 't/b', 'x']);

  const successScript = [
    'value("t/a") = "1"',
    'version("t/a") > "0"',
    'create("t/b") != "0"',
    'mod("t/a") < "1000"',
    '',
    'put t/c yes',
    'get t/a',
    '',
    'put t/c no',
    '',
    '',
  ].join('\n');
  same('txn: all compares true -> success branch', ['txn'], { input: successScript });

  const failureScript = [
    'value("t/a") != "1"',
    '',
    'put t/c yes',
    '',
    'put t/c no',
    'del t/b',
    'get t/ --prefix',
    '',
    '',
  ].join('\n');
  same('txn: value != fails -> failure branch', ['txn'], { input: failureScript });
  same('txn: failure branch -w json', ['txn', '-w', 'json'], { input: failureScript });
  same('txn: success branch -w json', ['txn', '-w', 'json'], { input: successScript });

  same('txn: value < and > on strings, version = 0 of a missing key', ['txn', '-w', 'json'], {
    input: ['value("t/c") > "a"', 'value("t/a") < "2"', 'version("t/missing") = "0"', '', 'put t/d d', 'del t/missing', '', '', ''].join('\n'),
  });
  same('txn: create revision > fails, failure branch reads', ['txn'], {
    input: ['create("t/a") > "1000"', '', 'put t/e never', '', 'get t/a', 'get t/missing', '', ''].join('\n'),
  });
  same('txn: mod revision = of the current revision', ['txn'], {
    input: ['mod("t/a") = "0"', '', '', 'put t/f f', '', ''].join('\n'),
  });
  same('txn: no compares, success ops only', ['txn', '-w', 'json'], {
    input: ['', 'put t/g g', 'put t/g g2 --prev-kv', 'get t/g', '', ''].join('\n'),
  });
  same('txn: -w fields', ['txn', '-w', 'fields'], { input: successScript });
  same('txn --interactive prints prompts', ['txn', '--interactive'], { input: successScript });
  cmd(['get', 't/', '--prefix', '-w', 'json']);
});

// ---------------------------------------------------------------------------
describe('compaction', () => {
  // Both members have the same history, so revision numbers match; these are read in the tests.
  let compactTo = 0;
  let head = 0;

  test('both members are at the same revision', async () => {
    const [r, t, t2] = await Promise.all([currentRevision(ref.node), currentRevision(ts.node), currentRevision(ts2.node)]);
    expect({ etcdTs: t, etcdTs2: t2 }).toEqual({ etcdTs: r, etcdTs2: r });
    head = r;
    compactTo = r - 10;
    expect(compactTo).toBeGreaterThan(5);
  });

  test('compaction to an earlier revision', async () => {
    const run = await runAll(['compaction', String(compactTo)]);
    expectSameOutput(run);
    expect(run.ref.stdout).toBe(`compacted revision ${compactTo}\n`);
  });
  test('get at a compacted revision', async () => expectSameOutput(await runAll(['get', 'k/a', `--rev=${compactTo - 1}`])));
  test('get at the compact revision itself', async () => expectSameOutput(await runAll(['get', 't/', '--prefix', `--rev=${compactTo}`, '-w', 'json'])));
  test('compaction of the already compacted revision', async () => expectSameOutput(await runAll(['compaction', String(compactTo)])));
  test('compaction of an older revision', async () => expectSameOutput(await runAll(['compaction', String(compactTo - 3)])));
  test('compaction of a future revision', async () => expectSameOutput(await runAll(['compaction', String(head + 100)])));
  test('compaction --physical', async () => expectSameOutput(await runAll(['compaction', '--physical', String(compactTo + 5)])));
  test('get at a revision compacted by --physical', async () =>
    expectSameOutput(await runAll(['get', 't/a', `--rev=${compactTo + 4}`, '-w', 'json'])));
  test('compaction to revision 0', async () => expectSameOutput(await runAll(['compaction', '0'])));
  cmd(['get', 't/', '--prefix', '-w', 'json']);
});

// ---------------------------------------------------------------------------
describe('endpoint and member commands', () => {
  cmd(['endpoint', 'health'], { normalizers: [durations] });
  cmd(['endpoint', 'health', '-w', 'table'], { normalizers: [durations] });
  cmd(['endpoint', 'health', '-w', 'json'], { normalizers: [durations] });

  const statusNorm: PairOptions = { normalizers: [serverVersion, dbSizes, raftIndexes], simpleColumns: STATUS_COLUMNS };
  cmd(['endpoint', 'status'], statusNorm);
  cmd(['endpoint', 'status', '-w', 'table'], statusNorm, (run) => {
    // Meaningful values, on both: leader, not learner, the default 2 GiB quota, no errors.
    for (const out of [run.ref.stdout, run.ts.stdout]) {
      const lines = out.split('\n').filter((l) => l.startsWith('|'));
      const header = lines[0].split('|').map((c) => c.trim());
      const row = lines[1].split('|').map((c) => c.trim());
      const cell = (name: string) => row[header.indexOf(name)];
      expect(cell('VERSION')).toMatch(/^3\.6\.\d+$/);
      expect(cell('STORAGE VERSION')).toMatch(/^3\.6\.\d+$/);
      expect(cell('IS LEADER')).toBe('true');
      expect(cell('IS LEARNER')).toBe('false');
      expect(cell('QUOTA')).toBe('2.1 GB');
      expect(cell('RAFT TERM')).toMatch(/^[1-9]\d*$/);
      expect(cell('ERRORS')).toBe('');
    }
  });
  cmd(['endpoint', 'status', '-w', 'json'], statusNorm, (run) => {
    for (const out of [run.ref.stdout, run.ts.stdout]) {
      const member = /"member_id":(\d+)/.exec(out)?.[1];
      expect(out).toContain(`"leader":${member},`);
      expect(out).toMatch(/"version":"3\.6\.\d+"/);
      expect(out).toMatch(/"raftTerm":[1-9]\d*,/);
      expect(out).toContain('"dbSizeQuota":2147483648');
    }
  });
  cmd(['endpoint', 'status', '-w', 'fields'], statusNorm);

  test('raft index and applied index advance by exactly one per write', async () => {
    const before = await Promise.all([raftIndex(ref.node), raftIndex(ts.node)]);
    const put = await runAll(['put', 'raft/one', '1']);
    expectSameOutput(put);
    const after = await Promise.all([raftIndex(ref.node), raftIndex(ts.node)]);
    const delta = (i: number) => ({
      index: after[i].index - before[i].index,
      applied: after[i].applied - before[i].applied,
      settled: after[i].index === after[i].applied,
    });
    expect({ etcd: delta(0), etcdTs: delta(1) }).toEqual({
      etcd: { index: 1, applied: 1, settled: true },
      etcdTs: { index: 1, applied: 1, settled: true },
    });
  });

  test('raft index accounting per request type matches etcd', async () => {
    // How many raft entries each request appends (visible to operators in `endpoint status`).
    const ops: [string, string[], string?][] = [
      ['put', ['put', 'raft/two', '2']],
      ['serializable get', ['get', 'raft/two', '--consistency=s']],
      ['linearizable get', ['get', 'raft/two']],
      ['delete of a missing key', ['del', 'raft/missing']],
      ['put --ignore-value of a missing key (error)', ['put', 'raft/missing', '--ignore-value']],
      ['put with a missing lease (error)', ['put', 'raft/two', 'x', '--lease=1234']],
      ['read-only txn', ['txn'], 'value("raft/two") = "2"\n\nget raft/two\n\n\n'],
      ['compaction of an old revision (error)', ['compaction', '1']],
      ['alarm list', ['alarm', 'list']],
      ['endpoint health', ['endpoint', 'health']],
      ['member list', ['member', 'list']],
    ];
    const deltas: Record<string, { etcd: number; etcdTs: number }> = {};
    for (const [label, args, input] of ops) {
      const before = await Promise.all([raftIndex(ref.node), raftIndex(ts.node)]);
      await runAll(args, { input });
      const after = await Promise.all([raftIndex(ref.node), raftIndex(ts.node)]);
      deltas[label] = { etcd: after[0].index - before[0].index, etcdTs: after[1].index - before[1].index };
    }
    const mismatched = Object.entries(deltas).filter(([, d]) => d.etcd !== d.etcdTs);
    expect(Object.fromEntries(mismatched)).toEqual({});
  });

  cmd(['endpoint', 'hashkv', '-w', 'json'], { normalizers: [kvHashes] }, (run) => {
    for (const out of [run.ref.stdout, run.ts.stdout]) {
      expect(out).toMatch(
        /^\[\{"Endpoint":"[^"]+","HashKV":\{"header":\{"cluster_id":\d+,"member_id":\d+,"revision":\d+,"raft_term":\d+\},"hash":\d+,"compact_revision":\d+,"hash_revision":\d+\}\}\]\n$/,
      );
    }
    // Two etcd-ts members with the same history must agree on the hash.
    const hash = (out: string) => /"hash":(\d+)/.exec(out)?.[1];
    expect(hash(run.ts2.stdout)).toBe(hash(run.ts.stdout));
  });
  cmd(['endpoint', 'hashkv', '-w', 'table'], { normalizers: [kvHashes] });
  test('endpoint hashkv --rev=<earlier revision> -w json', async () => {
    const rev = (await currentRevision(ref.node)) - 3;
    const run = await runAll(['endpoint', 'hashkv', `--rev=${rev}`, '-w', 'json'], { normalizers: [kvHashes] });
    expectSameOutput(run);
    const hash = (out: string) => /"hash":(\d+)/.exec(out)?.[1];
    expect(hash(run.ts2.stdout)).toBe(hash(run.ts.stdout));
    expect(run.ts.stdout).toContain(`"hash_revision":${rev}`);
  });
  test('endpoint hashkv is stable across calls', async () => {
    const a = await etcdctl(ts.node.endpoint, ['endpoint', 'hashkv', '-w', 'json']);
    const b = await etcdctl(ts.node.endpoint, ['endpoint', 'hashkv', '-w', 'json']);
    expect(b.stdout).toBe(a.stdout);
  });

  cmd(['member', 'list']);
  cmd(['member', 'list', '-w', 'simple']);
  cmd(['member', 'list', '-w', 'table']);
  cmd(['member', 'list', '-w', 'json']);
  cmd(['member', 'list', '-w', 'fields']);
  cmd(['alarm', 'list']);
  cmd(['alarm', 'list', '-w', 'json']);
});
