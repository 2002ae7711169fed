/**
 * The e2e tier's common setup: a 3-member etcd-ts cluster holding a real control plane's state
 * (test/helpers/kube.ts), the control plane, a test kubelet (kubelet.ts) registered as one node, and an
 * admin API client; plus the bounded wait every e2e test uses, whose failure message carries the
 * diagnostics the caller asks for. stop() tears everything down in reverse order.
 */
import * as path from 'path';
import { type NodeHandle, etcdTsBin, repoRoot, startCluster } from '../helpers';
import { type ControlPlane, requireK8sTools, startControlPlane } from '../helpers/kube';
import { KubeApi, type KubeObject } from './kubeapi';
import { TestKubelet, type TestKubeletOptions } from './kubelet';

export interface E2eEnv {
  etcd: NodeHandle[];
  cp: ControlPlane;
  kubelet: TestKubelet;
  api: KubeApi;
  /** How long each part took to start, for the test's timings. */
  timings: string[];
  stop(): Promise<void>;
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Starts etcd-ts ×3, the control plane and the kubelet (each bounded); on failure stops what started and throws. */
export async function startE2eEnv(kubeletOptions: Omit<TestKubeletOptions, 'kubeconfig'> = {}): Promise<E2eEnv> {
  requireK8sTools();
  etcdTsBin();
  const timings: string[] = [];
  let etcd: NodeHandle[] = [];
  let cp: ControlPlane | undefined;
  let api: KubeApi | undefined;
  let kubelet: TestKubelet | undefined;
  const stop = async () => {
    await kubelet?.stop().catch(() => undefined);
    api?.close();
    await cp?.stop().catch(() => undefined);
    await Promise.all(etcd.map((n) => n.destroy().catch(() => undefined)));
  };
  try {
    let since = Date.now();
    etcd = await startCluster({ kind: 'etcd-ts', size: 3, readyTimeoutMs: 30_000 });
    timings.push(`etcd-ts cluster for the control plane: ${secs(Date.now() - since)}`);
    since = Date.now();
    cp = await startControlPlane({ etcdServers: etcd.map((n) => n.clientUrl), readyTimeoutMs: 90_000 });
    timings.push(`control plane ready: ${secs(Date.now() - since)}`);
    api = KubeApi.fromKubeconfig(cp.kubeconfig);
    since = Date.now();
    kubelet = new TestKubelet({ nodeName: 'node-1', ...kubeletOptions, kubeconfig: cp.kubeconfig });
    await kubelet.start();
    timings.push(`kubelet started: ${secs(Date.now() - since)}`);
    return { etcd, cp, kubelet, api, timings, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The compiled operator: dist/operator/main.js (OPERATOR_MAIN overrides, for a build elsewhere). */
export const operatorMain = (): string => process.env.OPERATOR_MAIN ?? path.join(repoRoot(), 'dist', 'operator', 'main.js');

/**
 * The command line of an operator run outside the cluster, as the operator e2e test and benchmark run it:
 * the admin kubeconfig, members by pod IP (this process reaches pod IPs over the kubelet's bridge, not their
 * DNS names), its ports on 127.0.0.1, and member timings short enough for a test.
 */
export function outOfClusterOperatorArgs(kubeconfig: string, metricsPort: number, healthPort: number): string[] {
  return [
    operatorMain(),
    `--kubeconfig=${kubeconfig}`,
    '--member-endpoints=pod-ip',
    `--metrics-bind-address=127.0.0.1:${metricsPort}`,
    `--health-probe-bind-address=127.0.0.1:${healthPort}`,
    '--leader-election-namespace=default',
    '--resync-seconds=10',
    '--member-start-grace-seconds=15',
    '--member-failure-seconds=45',
  ];
}

/** Applies the EtcdCluster CRD of crds/ and waits until the API server serves it; creates `namespace`. */
export async function installCrdAndNamespace(cp: ControlPlane, namespace: string): Promise<void> {
  await cp.kubectlOk(['apply', '--server-side', '-f', path.join(repoRoot(), 'crds', 'etcd-ts.io_etcdclusters.yaml')]);
  await cp.kubectlOk(['wait', '--for=condition=Established', 'crd/etcdclusters.etcd-ts.io', '--timeout=30s'], { timeoutMs: 40_000 });
  await cp.kubectlOk(['create', 'namespace', namespace]);
}

/**
 * Polls `check` until it returns a value other than undefined, for at most timeoutMs; then fails with
 * `what`, the last error `check` threw, and `diagnostics()`.
 */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, diagnostics: () => Promise<string>, intervalMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not reached within ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message})` : ''}\n${await diagnostics()}`);
    }
    await sleep(intervalMs);
  }
}

/** An EtcdCluster's status, as the e2e tests read it. */
export interface ClusterStatus {
  phase?: string;
  observedGeneration?: number;
  readyReplicas?: number;
  members?: { name?: string; id: string; isLearner: boolean; isLeader: boolean; healthy: boolean }[];
  conditions?: { type: string; status: string; reason: string; message: string }[];
  leader?: string;
  clusterID?: string;
}
export type EtcdClusterObject = KubeObject & { spec: { replicas: number }; status?: ClusterStatus };

export const condition = (s: ClusterStatus | undefined, type: string) => s?.conditions?.find((c) => c.type === type);

/** Settled: phase Running for the current generation, `n` healthy voting members and no learner, Available. */
export function runningWith(c: EtcdClusterObject, n: number): boolean {
  const s = c.status;
  return (
    s?.phase === 'Running' &&
    s.observedGeneration === c.metadata.generation &&
    s.members?.length === n &&
    s.members.every((m) => m.healthy && !m.isLearner) &&
    condition(s, 'Available')?.status === 'True'
  );
}
