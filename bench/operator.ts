/**
 * Operator benchmark: how long the operator takes to create and scale an EtcdCluster on a real control plane.
 *
 *   bench/operator.sh                (compiles this file and runs it; needs `make build k8s-tools`)
 *
 * Starts what the operator end-to-end test starts (test/e2e/operator.test.ts): a 3-member etcd-ts cluster
 * holding the control plane's state, kube-apiserver, kube-controller-manager and kube-scheduler built from
 * Kubernetes' Go modules, the test kubelet (member pods as local processes in network namespaces) and the
 * operator (dist/operator/main.js). Each run then, on a fresh EtcdCluster:
 *   - create: EtcdCluster created with 3 replicas → Available with 3 healthy voting members (phase Running);
 *   - 3 → 5: spec.replicas set to 5 → 5 healthy voting members, Available, Running (one learner at a time:
 *     added, started, promoted); each step ends when the status first shows one more voting member, every
 *     voting member healthy and the cluster Available;
 *   - 5 → 3: spec.replicas set to 3 → 3 members, Running (leadership moved off first, removed one at a time;
 *     Running waits for the removed members' pods to be gone); each step ends when the status first shows one
 *     voting member fewer, all healthy, Available;
 * and deletes the cluster, its pods and volumes. The status is polled every 250 ms. The result is a Markdown
 * section on stdout (median / min / max); progress goes to stderr.
 *
 * Knobs (environment), defaults in brackets:
 *   OPERATOR_BENCH_RUNS     runs                                  [1]
 */
import { type ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { freePort } from '../test/helpers/procs';
import { type ControlPlane, K8S_VERSION } from '../test/helpers/kube';
import { type ClusterStatus, type E2eEnv, type EtcdClusterObject, condition, installCrdAndNamespace, operatorMain, outOfClusterOperatorArgs, startE2eEnv } from '../test/e2e/env';
import { type KubeApi } from '../test/e2e/kubeapi';
import { type Pod } from '../test/e2e/kubelet';

const RUNS = Number(process.env.OPERATOR_BENCH_RUNS ?? 1);
const NS = 'bench';
const POLL_MS = 250;

const log = (msg: string) => process.stderr.write(`bench/operator: ${msg}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The measured times of one run, in ms. */
interface Sample {
  create: number;
  up: number;
  up4: number;
  up5: number;
  down: number;
  down4: number;
  down3: number;
}

const ROWS: { key: keyof Sample; label: string }[] = [
  { key: 'create', label: 'create 3 members → Available, Running' },
  { key: 'up', label: 'scale 3 → 5 (spec change → 5 voting members, Available, Running)' },
  { key: 'up4', label: '  step 3 → 4 (learner added, started, promoted; Available)' },
  { key: 'up5', label: '  step 4 → 5' },
  { key: 'down', label: 'scale 5 → 3 (spec change → 3 members, Running)' },
  { key: 'down4', label: '  step 5 → 4 (leadership moved if needed, member removed; Available)' },
  { key: 'down3', label: '  step 4 → 3' },
];

function startOperator(kubeconfig: string, logFile: string, metricsPort: number, healthPort: number): ChildProcess {
  const out = fs.openSync(logFile, 'a');
  const proc = spawn(process.execPath, outOfClusterOperatorArgs(kubeconfig, metricsPort, healthPort), { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  return proc;
}

/** How many voting members the status shows when they are all healthy and the cluster is Available (learners aside). */
function settledVoters(s: ClusterStatus | undefined): number | undefined {
  const voters = s?.members?.filter((m) => !m.isLearner) ?? [];
  if (voters.length === 0) return undefined;
  const ok = voters.every((m) => m.healthy) && condition(s, 'Available')?.status === 'True';
  return ok ? voters.length : undefined;
}

/**
 * Polls the EtcdCluster until it is Running with `n` healthy voting members for its current generation;
 * returns the elapsed time since `since` and when each member count was first settled.
 */
async function waitRunning(api: KubeApi, clusterPath: string, n: number, since: number, timeoutMs: number): Promise<{ ms: number; settled: Map<number, number> }> {
  const settled = new Map<number, number>();
  const deadline = since + timeoutMs;
  let last: ClusterStatus | undefined;
  for (;;) {
    const c = await api.get<EtcdClusterObject>(clusterPath).catch(() => undefined);
    const s = c?.status;
    if (s) last = s;
    const k = settledVoters(s);
    if (k !== undefined && !settled.has(k)) settled.set(k, Date.now() - since);
    const done = s?.phase === 'Running' && s.observedGeneration === c?.metadata.generation && k === n && s.members?.length === n;
    if (done) return { ms: Date.now() - since, settled };
    if (Date.now() > deadline) throw new Error(`${clusterPath}: not Running with ${n} members within ${timeoutMs} ms; last status ${JSON.stringify(last)}`);
    await sleep(POLL_MS);
  }
}

async function waitGone(api: KubeApi, name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const selector = encodeURIComponent(`app.kubernetes.io/instance=${name}`);
  for (;;) {
    const pods = await api.get<{ items: Pod[] }>(`/api/v1/namespaces/${NS}/pods?labelSelector=${selector}`).catch(() => ({ items: [{} as Pod] }));
    if (pods.items.length === 0) return;
    if (Date.now() > deadline) throw new Error(`the pods of ${name} are still there after ${timeoutMs} ms`);
    await sleep(500);
  }
}

async function runOnce(api: KubeApi, cp: ControlPlane, run: number): Promise<Sample> {
  const name = `b${run}`;
  const clusterPath = `/apis/etcd-ts.io/v1alpha1/namespaces/${NS}/etcdclusters/${name}`;
  try {
    const t0 = Date.now();
    await api.create(`/apis/etcd-ts.io/v1alpha1/namespaces/${NS}/etcdclusters`, {
      apiVersion: 'etcd-ts.io/v1alpha1',
      kind: 'EtcdCluster',
      metadata: { name },
      spec: { replicas: 3 },
    });
    const create = await waitRunning(api, clusterPath, 3, t0, 300_000);
    log(`run ${run}: create → Available ${sec(create.ms)} s`);

    const t1 = Date.now();
    await api.mergePatch(clusterPath, { spec: { replicas: 5 } });
    const up = await waitRunning(api, clusterPath, 5, t1, 400_000);
    log(`run ${run}: 3 → 5 ${sec(up.ms)} s`);

    const t2 = Date.now();
    await api.mergePatch(clusterPath, { spec: { replicas: 3 } });
    const down = await waitRunning(api, clusterPath, 3, t2, 400_000);
    log(`run ${run}: 5 → 3 ${sec(down.ms)} s`);

    const at = (m: Map<number, number>, k: number) => m.get(k) ?? Number.NaN;
    return {
      create: create.ms,
      up: up.ms,
      up4: at(up.settled, 4),
      up5: at(up.settled, 5) - at(up.settled, 4),
      down: down.ms,
      down4: at(down.settled, 4),
      down3: at(down.settled, 3) - at(down.settled, 4),
    };
  } finally {
    // The cluster first (the operator then leaves its objects alone), then what it owned.
    await cp.kubectl(['-n', NS, 'delete', 'etcdcluster', name, '--wait=false', '--ignore-not-found']).catch(() => undefined);
    await cp.kubectl(['-n', NS, 'delete', 'statefulset', name, '--wait=false', '--ignore-not-found']).catch(() => undefined);
    await waitGone(api, name, 120_000).catch((e: Error) => log(e.message));
    await cp.kubectl(['-n', NS, 'delete', 'pvc', '-l', `app.kubernetes.io/instance=${name}`, '--wait=false']).catch(() => undefined);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const sec = (ms: number) => (Number.isFinite(ms) ? (ms / 1000).toFixed(1) : '?');

async function main(): Promise<void> {
  if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error(`OPERATOR_BENCH_RUNS must be a positive integer, not ${process.env.OPERATOR_BENCH_RUNS}`);
  if (!fs.existsSync(operatorMain())) throw new Error('the operator is not built: run `make build` first');
  const began = Date.now();
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-ts-operator-bench-'));
  let env: E2eEnv | undefined;
  let operator: ChildProcess | undefined;
  const samples: Sample[] = [];
  try {
    log('starting the control plane ...');
    env = await startE2eEnv({ backoffInitialMs: 2000, backoffMaxMs: 10_000 });
    await installCrdAndNamespace(env.cp, NS);
    operator = startOperator(env.cp.kubeconfig, path.join(workDir, 'operator.log'), await freePort(), await freePort());
    for (let run = 1; run <= RUNS; run++) {
      log(`run ${run}/${RUNS} ...`);
      samples.push(await runOnce(env.api, env.cp, run));
    }
  } catch (e) {
    const tail = fs.existsSync(path.join(workDir, 'operator.log'))
      ? fs.readFileSync(path.join(workDir, 'operator.log'), 'utf8').trim().split('\n').slice(-30).join('\n')
      : '';
    if (tail) log(`operator log (last lines):\n${tail}`);
    throw e;
  } finally {
    if (operator && operator.exitCode === null) {
      operator.kill('SIGTERM');
      const proc = operator;
      await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(15_000)]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    }
    await env?.stop();
    fs.rmSync(workDir, { recursive: true, force: true });
  }

  const out: string[] = [];
  out.push('## Operator (EtcdCluster on a real control plane)');
  out.push('');
  out.push(
    `etcd-ts-operator with --member-endpoints=pod-ip and --resync-seconds=10 against kube-apiserver, kube-controller-manager and ` +
      `kube-scheduler ${K8S_VERSION} (state in a 3-member etcd-ts cluster), member pods run by the test kubelet as local processes; ` +
      `${RUNS} run${RUNS === 1 ? '' : 's'}, a fresh EtcdCluster each; status polled every ${POLL_MS} ms; ${os.cpus().length} cores; ` +
      `${Math.round((Date.now() - began) / 1000)} s in all. A scale step ends when the status shows one voting member more (or fewer), ` +
      'every voting member healthy and the cluster Available (a step up: its learner promoted; a step down: its member removed); a scale ends when the phase is ' +
      'Running again for the new generation (scaling down, once the removed members\' pods are gone).',
  );
  out.push('');
  out.push('| operation | median (s) | min (s) | max (s) |');
  out.push('| --- | ---: | ---: | ---: |');
  for (const { key, label } of ROWS) {
    const xs = samples.map((s) => s[key]).filter((x) => Number.isFinite(x));
    const cells = xs.length === 0 ? '? | ? | ?' : `${sec(median(xs))} | ${sec(Math.min(...xs))} | ${sec(Math.max(...xs))}`;
    out.push(`| ${label.replace(/^ {2}/, '&nbsp;&nbsp;')} | ${cells} |`);
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
