/**
 * Patroni failover benchmark: reference etcd 3.6 against etcd-ts.
 *
 *   bench/patroni.sh                 (compiles this file and runs it; needs `make build tools`)
 *
 * Each run starts a fresh 3-member cluster of one target on 127.0.0.1 and two Patroni 4 /
 * PostgreSQL members on it (etcd3 DCS, i.e. the JSON gateway), then measures
 *   - leader election: from starting both Patroni members to the first running primary
 *     (initdb and bootstrap included), and
 *   - failover: from SIGKILL of the primary's Patroni and postmaster to the replica running as the
 *     new primary (dominated by the leader key's lease TTL),
 * and tears everything down. Runs alternate between the targets so drift hits both alike. The
 * result is a Markdown table on stdout (median / min / max per target, and etcd-ts / etcd ratios of
 * the medians); progress goes to stderr.
 *
 * Knobs (environment), defaults in brackets:
 *   PATRONI_BENCH_RUNS      runs per target                        [3]
 *   PATRONI_BENCH_TARGETS   targets, in order                      ["etcd etcd-ts"]
 *   PATRONI_BENCH_TTL       Patroni ttl / loop_wait / retry_timeout [20 / 1 / 5]
 *   PATRONI_BENCH_LOOP_WAIT, PATRONI_BENCH_RETRY_TIMEOUT
 */
import { execFileSync } from 'child_process';
import * as os from 'os';
import * as path from 'path';
import { NodeHandle, NodeKind, startCluster } from '../test/helpers/procs';
import { PatroniCluster, PatroniMember, patroniTools } from '../test/helpers/patroni';

const RUNS = Number(process.env.PATRONI_BENCH_RUNS ?? 3);
const TARGETS = (process.env.PATRONI_BENCH_TARGETS ?? 'etcd etcd-ts').split(/\s+/).filter(Boolean) as NodeKind[];
const TTL = Number(process.env.PATRONI_BENCH_TTL ?? 20);
const LOOP_WAIT = Number(process.env.PATRONI_BENCH_LOOP_WAIT ?? 1);
const RETRY_TIMEOUT = Number(process.env.PATRONI_BENCH_RETRY_TIMEOUT ?? 5);

const log = (msg: string) => process.stderr.write(`bench/patroni: ${msg}\n`);

interface Sample {
  electionMs: number;
  failoverMs: number;
}

/** One run: fresh cluster, fresh Patroni members, election, failover; everything removed after. */
async function runOnce(kind: NodeKind, run: number): Promise<Sample> {
  const nodes: NodeHandle[] = await startCluster({ kind, size: 3 });
  let pg: PatroniCluster | undefined;
  try {
    pg = await PatroniCluster.create({
      etcd: { hosts: nodes.map((n) => n.endpoint) },
      scope: `bench-${kind}-${run}`,
      ttl: TTL,
      loopWait: LOOP_WAIT,
      retryTimeout: RETRY_TIMEOUT,
    });
    const startedAt = pg.startAll();
    const first = await pg.waitPrimary(120_000);
    const primary = first.member;
    const replica = pg.members.find((m) => m !== primary) as PatroniMember;
    await pg.waitStreaming(primary, replica, 60_000);
    const killedAt = await primary.kill9();
    const promoted = await pg.waitPrimary(TTL * 1000 + 60_000, [primary.name]);
    if (promoted.member !== replica) throw new Error(`unexpected new primary ${promoted.member.name}`);
    return { electionMs: first.at - startedAt, failoverMs: promoted.at - killedAt };
  } finally {
    await pg?.destroy();
    await Promise.all(nodes.map((n) => n.destroy()));
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const sec = (ms: number) => (ms / 1000).toFixed(2);

function stats(xs: number[]): string {
  return `${sec(median(xs))} | ${sec(Math.min(...xs))} | ${sec(Math.max(...xs))}`;
}

async function main(): Promise<void> {
  if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error(`PATRONI_BENCH_RUNS must be a positive integer, not ${process.env.PATRONI_BENCH_RUNS}`);
  for (const t of TARGETS) if (t !== 'etcd' && t !== 'etcd-ts') throw new Error(`unknown target '${t}' in PATRONI_BENCH_TARGETS (etcd, etcd-ts)`);
  const tools = patroniTools();
  const results = new Map<NodeKind, Sample[]>(TARGETS.map((t) => [t, []]));
  const began = Date.now();
  for (let run = 1; run <= RUNS; run++) {
    for (const kind of TARGETS) {
      log(`${kind} run ${run}/${RUNS} ...`);
      const s = await runOnce(kind, run);
      results.get(kind)?.push(s);
      log(`${kind} run ${run}/${RUNS}: leader election ${sec(s.electionMs)} s, failover ${sec(s.failoverMs)} s`);
    }
  }

  const out: string[] = [];
  out.push(`## Patroni failover (${RUNS} run${RUNS === 1 ? '' : 's'} per target)`);
  out.push('');
  const version = (bin: string, args: string[]) => execFileSync(bin, args, { encoding: 'utf8' }).trim();
  const patroniVersion = version(path.join(tools.patroniBin, 'patroni'), ['--version']);
  const pgVersion = version(path.join(tools.pgBin, 'postgres'), ['--version']).replace(/^postgres \(PostgreSQL\) /, '');
  out.push(
    `${patroniVersion} (etcd3 DCS over the JSON gateway) with 2 PostgreSQL ${pgVersion} members on a fresh 3-member cluster per run, ` +
      `ttl ${TTL} s, loop_wait ${LOOP_WAIT} s, retry_timeout ${RETRY_TIMEOUT} s; ${os.cpus().length} cores; ${Math.round((Date.now() - began) / 1000)} s in all. ` +
      'Leader election: both Patroni members started → first running primary (initdb and bootstrap included). ' +
      "Failover: SIGKILL of the primary's Patroni and postmaster → the replica runs as the primary (bounded below by the leader key's lease TTL).",
  );
  out.push('');
  out.push('| target | leader election median (s) | min | max | failover median (s) | min | max |');
  out.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const kind of TARGETS) {
    const s = results.get(kind) ?? [];
    out.push(`| ${kind} | ${stats(s.map((x) => x.electionMs))} | ${stats(s.map((x) => x.failoverMs))} |`);
  }
  const ref = results.get('etcd');
  const ts = results.get('etcd-ts');
  if (ref?.length && ts?.length) {
    const ratio = (f: (x: Sample) => number) => (median(ts.map(f)) / median(ref.map(f))).toFixed(2);
    out.push(`| etcd-ts / etcd (medians) | ${ratio((x) => x.electionMs)} | | | ${ratio((x) => x.failoverMs)} | | |`);
  }
  process.stdout.write(out.join('\n') + '\n');
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    log(`ERROR: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
