// Linearizability under faults: a 3-member cluster serves a concurrent get / put / compare-and-swap
// workload (test/helpers/history.ts) for ~20 s while a fault loop SIGKILLs a random member and
// restarts it on the same data dir, or SIGSTOPs a member and SIGCONTs it, one fault at a time and
// always restored. The recorded history (failed requests count as "may or may not have happened")
// must be linearizable (test/helpers/linearizability.ts), and enough operations must have succeeded
// for that to mean something. Runs against the reference etcd and against etcd-ts.
// Measured numbers are printed (console.log) for the report.
import { checkHistory, Operation } from '../helpers/linearizability';
import { RecordedOperation, runWorkload, summarizeHistory } from '../helpers/history';
import { haveReferenceTools, NodeHandle, NodeKind, startCluster } from '../helpers/procs';

const WORKLOAD_MS = 20_000;
/** No fault starts later than this before the end of the workload, so the cluster ends healthy. */
const QUIET_TAIL_MS = 4_000;
const READY_TIMEOUT_MS = 20_000;
/** Bound of each linearizability check (they take well under a second on these histories). */
const CHECK_TIMEOUT_MS = 10_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const between = (lo: number, hi: number) => lo + Math.random() * (hi - lo);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)];

interface Fault {
  kind: 'kill' | 'stop';
  member: string;
  at: number;
  heldMs: number;
}

/**
 * SIGKILL + restart (same flags and data dir) and SIGSTOP + SIGCONT, alternating, one at a time,
 * until `until` (performance.now()); each fault is undone, and the member waited healthy, before the
 * next one. NodeHandle.kill(signal) sends any signal to the member's current process. Stops
 * starting faults once aborted() (the test timed out and is tearing down).
 */
async function faultLoop(nodes: NodeHandle[], until: number, faults: Fault[], aborted: () => boolean): Promise<void> {
  let lastVictim: NodeHandle | undefined;
  for (let k = 0; ; k++) {
    await sleep(between(500, 1500));
    if (aborted() || performance.now() > until - QUIET_TAIL_MS) return;
    // "another" member than the previous fault's, so that both kinds hit different members.
    const victim = pick(nodes.filter((n) => n !== lastVictim));
    lastVictim = victim;
    const at = performance.now();
    if (k % 2 === 0) {
      victim.kill('SIGKILL');
      try {
        await victim.waitExit(10_000);
        await sleep(between(500, 1500));
      } finally {
        await victim.restart({ readyTimeoutMs: READY_TIMEOUT_MS });
      }
      faults.push({ kind: 'kill', member: victim.name, at, heldMs: performance.now() - at });
    } else {
      victim.kill('SIGSTOP');
      try {
        await sleep(between(1000, 3000));
      } finally {
        victim.kill('SIGCONT');
      }
      await victim.waitReady(READY_TIMEOUT_MS);
      faults.push({ kind: 'stop', member: victim.name, at, heldMs: performance.now() - at });
    }
  }
}

/**
 * A copy of the history with one completed read changed to a provably stale value: the value of
 * a completed write W1 overwritten by a completed put W2 that was called after W1 returned and
 * returned before the read was called. The checker must reject it (a self-check on real data).
 */
function withStaleRead(history: readonly Operation[]): { history: Operation[]; index: number } | undefined {
  const writes = new Map<string, Operation[]>();
  for (const op of history) {
    if (Number.isFinite(op.ret) && (op.kind === 'put' || (op.kind === 'cas' && op.ok))) writes.set(op.key, [...(writes.get(op.key) ?? []), op]);
  }
  for (let attempt = 0; attempt < 500; attempt++) {
    const index = Math.floor(Math.random() * history.length);
    const read = history[index];
    if (read.kind !== 'get' || !Number.isFinite(read.ret)) continue;
    const ws = writes.get(read.key) ?? [];
    const w2 = ws.find((w) => w.kind === 'put' && w.ret < read.call && ws.some((w1) => w1 !== w && w1.ret < w.call));
    const w1 = w2 && ws.find((w) => w !== w2 && w.ret < w2.call);
    if (!w1 || w1.kind === 'get' || w1.value === read.result) continue;
    const copy = [...history];
    copy[index] = { ...read, result: w1.value };
    return { history: copy, index };
  }
  return undefined;
}

/** Error texts without the per-call details (durations, addresses), for a compact tally. */
const errorClass = (e: string) => e.replace(/ after [\d.]+s.*$/, '').replace(/remote_addr=\S+/, '');

const kinds: NodeKind[] = ['etcd', 'etcd-ts'];

describe.each(kinds)('%s 3-member cluster', (kind) => {
  const run = kind === 'etcd' && !haveReferenceTools() ? test.skip : test;
  let nodes: NodeHandle[] = [];
  let aborted = false;

  afterAll(async () => {
    aborted = true;
    // A stopped member would ignore SIGTERM: continue everything first.
    for (const n of nodes) n.kill('SIGCONT');
    await Promise.all(nodes.map((n) => n.destroy().catch(() => undefined)));
  }, 30_000);

  run(
    'history under SIGKILL/restart and SIGSTOP/SIGCONT of members is linearizable',
    async () => {
      nodes = await startCluster({ kind, size: 3, readyTimeoutMs: READY_TIMEOUT_MS });
      const start = performance.now();
      const faults: Fault[] = [];
      const faulting = faultLoop(nodes, start + WORKLOAD_MS, faults, () => aborted);
      // Keep the fault loop's rejection until the workload is done (no unhandled rejection meanwhile).
      const faultResult = faulting.then(
        () => undefined,
        (e: unknown) => e,
      );
      const history = await runWorkload({
        endpoints: nodes.map((n) => n.endpoint),
        durationMs: WORKLOAD_MS,
        clients: 8,
        keys: 4,
        requestTimeoutMs: 2_000,
      });
      const faultError = await faultResult;
      const elapsed = performance.now() - start;

      const summary = summarizeHistory(history, elapsed);
      const t0 = performance.now();
      const result = checkHistory(history, { timeoutMs: CHECK_TIMEOUT_MS });
      const checkMs = performance.now() - t0;
      const errors = new Map<string, number>();
      for (const op of history as RecordedOperation[]) if (op.error) errors.set(errorClass(op.error), (errors.get(errorClass(op.error)) ?? 0) + 1);
      console.log(
        `${kind}: ${summary.ops} ops in ${(elapsed / 1000).toFixed(1)} s: ${summary.completed} completed ` +
          `(get ${summary.byKind.get.completed}, put ${summary.byKind.put.completed}, cas ${summary.byKind.cas.completed} ` +
          `of which ${summary.casSucceeded} swapped), ${summary.unknown} unknown outcome ` +
          `(get ${summary.byKind.get.unknown}, put ${summary.byKind.put.unknown}, cas ${summary.byKind.cas.unknown}); ` +
          `check ${result.ok ? 'linearizable' : result.timedOut ? 'TIMED OUT' : 'NOT linearizable'} in ${checkMs.toFixed(0)} ms ` +
          `(${result.stats.map((s) => `${s.ops} ops/${s.unknown} unknown/${s.cacheEntries} states`).join(', ')})\n` +
          `faults: ${faults.map((f) => `${f.kind} ${f.member} @${((f.at - start) / 1000).toFixed(1)}s for ${(f.heldMs / 1000).toFixed(1)}s`).join('; ')}\n` +
          `errors: ${[...errors].map(([e, c]) => `${c}× ${e}`).join('; ') || 'none'}`,
      );

      if (faultError) throw faultError;
      // The faults did happen, so the history covers them.
      expect(faults.filter((f) => f.kind === 'kill').length).toBeGreaterThanOrEqual(1);
      expect(faults.filter((f) => f.kind === 'stop').length).toBeGreaterThanOrEqual(1);
      // Not vacuous: plenty of completed operations of every kind, including swaps.
      expect(summary.completed).toBeGreaterThan(100);
      expect(summary.byKind.get.completed).toBeGreaterThan(10);
      expect(summary.byKind.put.completed).toBeGreaterThan(10);
      expect(summary.casSucceeded).toBeGreaterThan(10);
      if (!result.ok) throw new Error(`history of ${summary.ops} operations is not linearizable${result.timedOut ? ' (check timed out)' : ''}:\n${result.reason}`);
      // The check is not vacuous on this very history: one provably stale read makes it fail.
      const stale = withStaleRead(history);
      expect(stale).toBeDefined();
      const staleResult = checkHistory(stale?.history ?? [], { timeoutMs: CHECK_TIMEOUT_MS });
      expect(staleResult).toMatchObject({ ok: false, key: history[stale?.index ?? 0].key });
      expect(staleResult.timedOut).toBeUndefined();
      // Every member is back and healthy.
      for (const n of nodes) expect(n.running).toBe(true);
    },
    // cluster start (bounded by READY_TIMEOUT_MS) + workload + in-flight deadlines + a restart still
    // in progress + the check
    READY_TIMEOUT_MS + WORKLOAD_MS + 30_000,
  );
});
