// The EtcdCluster reconciler: observe (the EtcdCluster, its owned objects, its pods and volumes, and the etcd
// cluster itself), ask planNext for the one next step, take it, write the status subresource and an Event,
// and say when to look again. Nothing is remembered between calls: the world is the state.
import { createHash } from 'crypto';
import {
  API_VERSION,
  type EtcdCluster,
  type EtcdClusterStatus,
  KIND,
  MANAGER_NAME,
  validateSpec,
  withDefaults,
} from '../api';
import {
  type ClusterObject,
  buildBootstrapConfigMap,
  buildClientService,
  buildPeerService,
  buildPodDisruptionBudget,
  buildStatefulSet,
  bootstrapConfigMapName,
  clientServiceName,
  memberNames,
  peerServiceName,
  podDisruptionBudgetName,
  selectorString,
  statefulSetName,
  BOOTSTRAP_KEY_INITIAL_CLUSTER,
  BOOTSTRAP_KEY_INITIAL_CLUSTER_STATE,
} from '../resources';
import type { Endpoint, EndpointMode, MemberOps } from '../etcd';
import { memberEndpoints } from '../etcd/endpoints';
import { type KubeClient, type KubeObject, RESOURCES, type ResourceType, isAlreadyExists, isNotFound } from '../k8s';
import {
  type EtcdView,
  MEMBER_ID_ANNOTATION,
  type ObjectKind,
  type ObjectState,
  type Observed,
  type ObservedPod,
  type Step,
  type Timings,
  leaderOf,
  planNext,
} from './plan';
import { computeStatus, describeStep } from './status';

/** The hash of the spec the operator last wrote, on every owned object: a different hash means outdated. */
export const SPEC_HASH_ANNOTATION = 'etcd-ts.io/spec-hash';

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface ReconcileHooks {
  onStep?(cluster: string, step: Step): void;
  onMembers?(cluster: string, members: { total: number; healthy: number; learners: number; voting: number }): void;
}

export interface ReconcilerDeps {
  kube: KubeClient;
  etcd: MemberOps;
  endpointMode: EndpointMode;
  log: Logger;
  now?: () => Date;
  timings?: Partial<Timings>;
  hooks?: ReconcileHooks;
  /** Reported in Events (reportingInstance). */
  instance?: string;
  /** The image repository members run when spec.image is unset (--member-image-repository). */
  imageRepository?: string;
}

export interface ReconcileResult {
  step: Step['kind'];
  /** Look again after this many ms (undefined: only when something changes). */
  requeueAfterMs?: number;
}

interface PodObject extends KubeObject {
  spec?: { nodeName?: string };
  status?: { phase?: string; podIP?: string; conditions?: { type: string; status: string; lastTransitionTime?: string }[] };
}
interface StatefulSetObject extends KubeObject {
  spec?: { replicas?: number };
  status?: { updateRevision?: string; currentRevision?: string };
}
interface ConfigMapObject extends KubeObject {
  data?: Record<string, string>;
}
interface PdbObject extends KubeObject {
  spec?: { maxUnavailable?: number | string };
}
interface RawCluster extends KubeObject {
  spec?: unknown;
  status?: EtcdClusterStatus;
}

/** sha256 of a value's JSON with sorted keys, shortened. */
export function specHash(value: unknown): string {
  const canonical = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(canonical);
    if (v && typeof v === 'object') {
      return Object.fromEntries(
        Object.keys(v as object)
          .sort()
          .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
      );
    }
    return v;
  };
  return createHash('sha256').update(JSON.stringify(canonical(value))).digest('hex').slice(0, 16);
}

/** The object with its spec hash annotation (for the StatefulSet, of everything but replicas). */
function withHash<T extends ClusterObject>(obj: T): T {
  const o = obj as unknown as { spec?: Record<string, unknown>; metadata: { annotations?: Record<string, string> } };
  const spec = { ...(o.spec ?? {}) };
  delete spec.replicas;
  o.metadata.annotations = { ...(o.metadata.annotations ?? {}), [SPEC_HASH_ANNOTATION]: specHash({ spec, labels: (obj.metadata ?? {}).labels }) };
  return obj;
}

const stateOf = (obj: KubeObject | undefined, desired: ClusterObject): ObjectState =>
  !obj ? 'missing' : obj.metadata?.annotations?.[SPEC_HASH_ANNOTATION] === desired.metadata?.annotations?.[SPEC_HASH_ANNOTATION] ? 'current' : 'outdated';

const time = (s: string | undefined): number | undefined => (s ? Date.parse(s) : undefined);

export class EtcdClusterReconciler {
  constructor(private readonly deps: ReconcilerDeps) {}

  private now(): Date {
    return this.deps.now ? this.deps.now() : new Date();
  }

  async reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    const { kube, log } = this.deps;
    const raw = await kube.find<RawCluster>(RESOURCES.etcdclusters, namespace, name);
    if (!raw || raw.metadata?.deletionTimestamp) return { step: 'InSync' };
    const key = `${namespace}/${name}`;

    const problems = validateSpec(raw.spec);
    const metadata = { ...(raw.metadata ?? {}), name, namespace } as EtcdCluster['metadata'];
    if (problems.some((p) => p.severity === 'error')) {
      const c = { apiVersion: API_VERSION, kind: KIND, metadata, spec: {} } as unknown as EtcdCluster;
      const step: Step = { kind: 'Invalid', problems: problems.filter((p) => p.severity === 'error') };
      const o = { cluster: c, problems } as unknown as Observed;
      const status = computeStatus(o, step, raw.status, this.now());
      if (raw.status?.phase !== 'Invalid') await this.event(c, 'Warning', 'InvalidSpec', describeStep(step));
      await this.writeStatus(c, status);
      log.warn({ cluster: key, problems: step.problems }, 'invalid spec');
      this.deps.hooks?.onStep?.(key, step);
      return { step: step.kind };
    }

    const c: EtcdCluster = { apiVersion: API_VERSION, kind: KIND, metadata, spec: withDefaults(raw.spec), status: raw.status };
    const { observed, pods } = await this.observe(c, problems);
    const step = planNext(observed);
    this.deps.hooks?.onStep?.(key, step);
    if (observed.etcd !== 'unreachable') {
      const view = observed.etcd;
      const healthy = view.members.filter((m) => view.status[m.id]?.reachable).length;
      const learners = view.members.filter((m) => m.isLearner).length;
      this.deps.hooks?.onMembers?.(key, { total: view.members.length, healthy, learners, voting: view.members.length - learners });
    }
    log.debug({ cluster: key, step }, describeStep(step));

    const status = computeStatus(observed, step, raw.status, this.now());
    let failure: unknown;
    try {
      await this.execute(c, observed, pods, step);
    } catch (err) {
      failure = err;
    }
    if (failure) {
      const message = `${describeStep(step)} failed: ${(failure as Error).message ?? String(failure)}`;
      log.warn({ cluster: key, step: step.kind, err: String(failure) }, message);
      await this.event(c, 'Warning', 'StepFailed', message).catch(() => undefined);
      await this.writeStatus(c, status).catch(() => undefined);
      throw failure;
    }
    if (status.phase !== raw.status?.phase) log.info({ cluster: key, phase: status.phase, from: raw.status?.phase }, `phase ${status.phase}`);
    await this.writeStatus(c, status);

    switch (step.kind) {
      case 'InSync':
        return { step: step.kind, requeueAfterMs: 30_000 };
      case 'Wait':
        return { step: step.kind, requeueAfterMs: step.reason === 'LearnerCatchingUp' || step.reason === 'Bootstrapping' ? 2000 : 5000 };
      default:
        return { step: step.kind, requeueAfterMs: 500 };
    }
  }

  private desired(c: EtcdCluster, replicas: number, votingMembers: number, bootstrap?: { members: string[]; state: 'new' | 'existing' }) {
    return {
      ConfigMap: buildBootstrapConfigMap(c, bootstrap ? { members: bootstrap.members.length > 0 ? bootstrap.members : memberNames(c, Math.max(replicas, 1)), state: bootstrap.state } : {}),
      PeerService: withHash(buildPeerService(c)),
      ClientService: withHash(buildClientService(c)),
      StatefulSet: withHash(buildStatefulSet(c, { replicas, imageRepository: this.deps.imageRepository })),
      PodDisruptionBudget: buildPodDisruptionBudget(c, { votingMembers }),
    };
  }

  async observe(c: EtcdCluster, problems: Observed['problems']): Promise<{ observed: Observed; pods: PodObject[] }> {
    const { kube } = this.deps;
    const ns = c.metadata.namespace;
    const selector = selectorString(c);
    const [cm, peer, client, sts, pdb, podList, pvcList] = await Promise.all([
      kube.find<ConfigMapObject>(RESOURCES.configmaps, ns, bootstrapConfigMapName(c)),
      kube.find(RESOURCES.services, ns, peerServiceName(c)),
      kube.find(RESOURCES.services, ns, clientServiceName(c)),
      kube.find<StatefulSetObject>(RESOURCES.statefulsets, ns, statefulSetName(c)),
      kube.find<PdbObject>(RESOURCES.poddisruptionbudgets, ns, podDisruptionBudgetName(c)),
      kube.list<PodObject>(RESOURCES.pods, ns, selector),
      kube.list(RESOURCES.persistentvolumeclaims, ns, selector),
    ]);
    const desired = this.desired(c, sts?.spec?.replicas ?? c.spec.replicas, c.spec.replicas);

    const pods = podList.items.filter((p) => p.metadata?.ownerReferences?.some((r) => r.kind === 'StatefulSet' && r.name === statefulSetName(c)));
    const observedPods: ObservedPod[] = pods.map((p) => {
      const ready = p.status?.conditions?.find((x) => x.type === 'Ready');
      const isReady = ready?.status === 'True';
      return {
        name: p.metadata!.name!,
        ready: isReady,
        phase: p.status?.phase,
        podIP: p.status?.podIP,
        deleting: !!p.metadata?.deletionTimestamp,
        revision: p.metadata?.labels?.['controller-revision-hash'],
        createdAt: time(p.metadata?.creationTimestamp),
        ...(!isReady ? { notReadySince: time(ready?.lastTransitionTime) ?? time(p.metadata?.creationTimestamp) } : {}),
      };
    });
    const live = pods.filter((p) => !p.metadata?.deletionTimestamp && p.status?.phase !== 'Failed' && p.status?.phase !== 'Succeeded');
    const endpoints = memberEndpoints(
      c,
      live.map((p) => ({ name: p.metadata!.name!, podIP: p.status?.podIP })),
      this.deps.endpointMode,
    );
    const etcd = endpoints.length === 0 ? ('unreachable' as const) : await this.deps.etcd.view(endpoints);

    const stsState = sts ? stateOf(sts, desired.StatefulSet) : 'missing';
    const maxUnavailable = pdb?.spec?.maxUnavailable;
    const observed: Observed = {
      cluster: c,
      problems,
      bootstrap: cm
        ? { initialCluster: cm.data?.[BOOTSTRAP_KEY_INITIAL_CLUSTER] ?? '', state: cm.data?.[BOOTSTRAP_KEY_INITIAL_CLUSTER_STATE] ?? '' }
        : undefined,
      peerService: stateOf(peer, desired.PeerService),
      clientService: stateOf(client, desired.ClientService),
      statefulSet: sts
        ? { replicas: sts.spec?.replicas ?? 0, updateRevision: sts.status?.updateRevision, templateCurrent: stsState === 'current' }
        : undefined,
      pdbMaxUnavailable: pdb ? (typeof maxUnavailable === 'number' ? maxUnavailable : -1) : undefined,
      pdbState: pdb ? 'current' : 'missing',
      pods: observedPods,
      pvcs: pvcList.items.map((p) => ({
        name: p.metadata!.name!,
        memberId: p.metadata?.annotations?.[MEMBER_ID_ANNOTATION],
        deleting: !!p.metadata?.deletionTimestamp,
      })),
      etcd,
      now: this.now().getTime(),
      timings: this.deps.timings,
    };
    return { observed, pods };
  }

  private endpoints(c: EtcdCluster, pods: PodObject[]): Endpoint[] {
    const live = pods.filter((p) => !p.metadata?.deletionTimestamp);
    return memberEndpoints(
      c,
      live.map((p) => ({ name: p.metadata!.name!, podIP: p.status?.podIP })),
      this.deps.endpointMode,
    );
  }

  private async execute(c: EtcdCluster, o: Observed, pods: PodObject[], step: Step): Promise<void> {
    const { kube, etcd } = this.deps;
    const ns = c.metadata.namespace;
    const resource: Record<ObjectKind, ResourceType> = {
      ConfigMap: RESOURCES.configmaps,
      PeerService: RESOURCES.services,
      ClientService: RESOURCES.services,
      StatefulSet: RESOURCES.statefulsets,
      PodDisruptionBudget: RESOURCES.poddisruptionbudgets,
    };
    switch (step.kind) {
      case 'Invalid':
      case 'Wait':
      case 'InSync':
        return;
      case 'CreateObjects': {
        const d = this.desired(c, step.replicas, step.votingMembers, { members: step.bootstrapMembers, state: step.bootstrapState });
        for (const kind of ['ConfigMap', 'PeerService', 'ClientService', 'StatefulSet', 'PodDisruptionBudget'] as ObjectKind[]) {
          if (!step.objects.includes(kind)) continue;
          try {
            await kube.create(resource[kind], ns, d[kind] as KubeObject);
          } catch (err) {
            if (!isAlreadyExists(err)) throw err;
          }
        }
        if (step.bootstrapState === 'new') await this.event(c, 'Normal', 'Creating', `creating a ${step.replicas}-member cluster: ${step.bootstrapMembers.join(', ')}`);
        else await this.event(c, 'Normal', 'Recreated', `re-created ${step.objects.join(', ')}`);
        return;
      }
      case 'UpdateObjects': {
        const d = this.desired(c, step.replicas, step.votingMembers);
        for (const kind of step.objects) await kube.apply(resource[kind], ns, d[kind] as KubeObject);
        if (step.objects.includes('StatefulSet')) await this.event(c, 'Normal', 'UpgradeStarted', 'the pod template changed; members will restart one at a time');
        return;
      }
      case 'SetBootstrapExisting': {
        const cm = buildBootstrapConfigMap(c, { members: step.members, state: 'existing' });
        await kube.apply(RESOURCES.configmaps, ns, cm as KubeObject);
        return;
      }
      case 'AddLearner': {
        const id = await etcd.addLearner(this.endpoints(c, pods), step.peerURL);
        await this.event(c, 'Normal', 'MemberAdded', `added member ${step.name} (${id}) as a learner`);
        return;
      }
      case 'ScaleStatefulSet':
        await kube.patch(RESOURCES.statefulsets, ns, statefulSetName(c), { spec: { replicas: step.replicas } });
        await this.event(c, 'Normal', 'StatefulSetScaled', describeStep(step));
        return;
      case 'PromoteLearner':
        await etcd.promote(this.endpoints(c, pods), step.id);
        await this.event(c, 'Normal', 'MemberPromoted', `promoted learner ${step.name} (${step.id}) to a voting member`);
        return;
      case 'RemoveMember':
        await etcd.remove(this.endpoints(c, pods), step.id);
        await this.event(
          c,
          step.reason === 'repair' ? 'Warning' : 'Normal',
          'MemberRemoved',
          step.reason === 'repair' ? `removed failed member ${step.name} (${step.id}); it will be re-added empty` : `removed member ${step.name} (${step.id})`,
        );
        return;
      case 'MoveLeader': {
        const view = o.etcd as EtcdView;
        const leaderId = leaderOf(view) ?? step.from;
        const leader = view.members.find((m) => m.id === leaderId);
        const endpoint = this.endpoints(c, pods).find((e) => leader && e.name === leader.name);
        if (!endpoint) throw new Error(`no endpoint for the leader ${leaderId}`);
        await etcd.moveLeader(endpoint, step.to);
        await this.event(c, 'Normal', 'LeaderMoved', describeStep(step));
        return;
      }
      case 'DeletePod': {
        const pod = pods.find((p) => p.metadata?.name === step.name);
        await kube.delete(RESOURCES.pods, ns, step.name, { uid: pod?.metadata?.uid });
        await this.event(c, 'Normal', step.reason === 'upgrade' ? 'MemberRestarted' : 'MemberReplaced', describeStep(step));
        return;
      }
      case 'DeletePVC':
        await kube.delete(RESOURCES.persistentvolumeclaims, ns, step.name);
        await this.event(c, 'Normal', 'VolumeDeleted', describeStep(step));
        return;
      case 'AnnotatePVC':
        await kube.patch(RESOURCES.persistentvolumeclaims, ns, step.name, { metadata: { annotations: { [MEMBER_ID_ANNOTATION]: step.memberId } } });
        return;
    }
  }

  private async writeStatus(c: EtcdCluster, status: EtcdClusterStatus): Promise<void> {
    // Fields the new status leaves out are cleared (merge patch null), so a stale leader is not left behind.
    const patch: Record<string, unknown> = { leader: null, currentVersion: null, clusterID: null, ...status };
    try {
      await this.deps.kube.patch(RESOURCES.etcdclusters, c.metadata.namespace, c.metadata.name, { status: patch }, 'merge', 'status');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** A core/v1 Event about the EtcdCluster. */
  async event(c: EtcdCluster, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = this.now().toISOString();
    try {
      await this.deps.kube.create(RESOURCES.events, c.metadata.namespace, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { generateName: `${c.metadata.name}.`, namespace: c.metadata.namespace },
        involvedObject: { apiVersion: API_VERSION, kind: KIND, name: c.metadata.name, namespace: c.metadata.namespace, uid: c.metadata.uid },
        type,
        reason,
        message: message.slice(0, 1024),
        source: { component: MANAGER_NAME },
        reportingComponent: MANAGER_NAME,
        reportingInstance: this.deps.instance ?? MANAGER_NAME,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      });
    } catch (err) {
      this.deps.log.warn({ err: String(err), reason }, 'could not record an event');
    }
  }
}
