// The status an EtcdCluster gets after a reconcile, pure: from what was observed and the step the planner
// chose. Conditions go through setCondition, so lastTransitionTime moves only when a status changes.
import {
  type Condition,
  type EtcdClusterStatus,
  type MemberStatus,
  type Phase,
  REASONS,
  quorum,
  readyText,
  setCondition,
} from '../api';
import { memberName, selectorString } from '../resources';
import { type EtcdView, type Observed, type Step, isHealthy, leaderOf, memberOrdinal } from './plan';

export function memberStatuses(o: Observed, view: EtcdView): MemberStatus[] {
  const leader = leaderOf(view);
  return view.members
    .map((m) => {
      const k = memberOrdinal(o.cluster, m);
      const s = view.status[m.id];
      const out: MemberStatus = {
        name: m.name || (k !== undefined ? memberName(o.cluster, k) : undefined),
        id: m.id,
        isLearner: m.isLearner,
        isLeader: m.id === leader,
        healthy: isHealthy(view, m.id),
      };
      if (s?.version) out.version = s.version;
      return { out, k: k ?? Number.MAX_SAFE_INTEGER };
    })
    .sort((a, b) => a.k - b.k)
    .map((x) => x.out);
}

/** The phase a step puts the cluster in. */
export function phaseOf(o: Observed, step: Step, previous?: Phase): Phase {
  switch (step.kind) {
    case 'Invalid':
      return 'Invalid';
    case 'CreateObjects':
      return step.bootstrapState === 'new' ? 'Creating' : previous === 'Running' || previous === undefined ? 'Degraded' : previous;
    case 'UpdateObjects':
      return step.objects.includes('StatefulSet') ? 'Upgrading' : (previous ?? 'Pending');
    case 'SetBootstrapExisting':
      return previous === 'Creating' || previous === undefined || previous === 'Pending' ? 'Creating' : 'Scaling';
    case 'AddLearner':
    case 'ScaleStatefulSet':
    case 'PromoteLearner':
      return previous === 'Repairing' ? 'Repairing' : 'Scaling';
    case 'RemoveMember':
      return step.reason === 'repair' ? 'Repairing' : 'Scaling';
    case 'MoveLeader':
      return step.reason === 'upgrade' ? 'Upgrading' : 'Scaling';
    case 'DeletePod':
      return step.reason === 'upgrade' ? 'Upgrading' : 'Repairing';
    case 'DeletePVC':
      return 'Repairing';
    case 'AnnotatePVC':
      return previous ?? 'Creating';
    case 'InSync':
      return 'Running';
    case 'Wait':
      switch (step.reason) {
        case 'Bootstrapping':
          return 'Creating';
        case 'QuorumLost':
          return 'Unavailable';
        case 'MembersUnreachable':
          return o.bootstrap?.state === 'new' ? 'Creating' : 'Unavailable';
        case 'LearnerCatchingUp':
          return previous === 'Repairing' ? 'Repairing' : 'Scaling';
        case 'MemberStarting':
        case 'PodTerminating':
          return previous === 'Creating' || previous === 'Scaling' || previous === 'Upgrading' || previous === 'Repairing' ? previous : 'Degraded';
        default:
          return 'Degraded';
      }
  }
}

const PROGRESS: Partial<Record<Step['kind'], string>> = {
  CreateObjects: REASONS.Progressing.Creating,
  SetBootstrapExisting: REASONS.Progressing.Creating,
  AddLearner: REASONS.Progressing.AddingMember,
  ScaleStatefulSet: REASONS.Progressing.AddingMember,
  PromoteLearner: REASONS.Progressing.PromotingLearner,
  MoveLeader: REASONS.Progressing.UpgradingMembers,
  DeletePVC: REASONS.Progressing.ReplacingMember,
  AnnotatePVC: REASONS.Progressing.Creating,
};

/** A sentence for the step, used in the Progressing condition and the logs. */
export function describeStep(step: Step): string {
  switch (step.kind) {
    case 'Invalid':
      return `the spec is invalid: ${step.problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`;
    case 'CreateObjects':
      return `creating ${step.objects.join(', ')}`;
    case 'UpdateObjects':
      return `updating ${step.objects.join(', ')}`;
    case 'SetBootstrapExisting':
      return `the cluster has formed; new members now join the existing cluster (${step.members.join(', ')})`;
    case 'AddLearner':
      return `adding member ${step.name} as a learner`;
    case 'ScaleStatefulSet':
      return `scaling the StatefulSet from ${step.from} to ${step.replicas} pod(s)`;
    case 'PromoteLearner':
      return `promoting learner ${step.name} (${step.id}) to a voting member`;
    case 'MoveLeader':
      return `moving leadership from ${step.from} to ${step.toName} (${step.to}) before ${step.reason === 'upgrade' ? 'restarting' : 'removing'} it`;
    case 'RemoveMember':
      return step.reason === 'repair' ? `removing failed member ${step.name} (${step.id}) to replace it` : `removing member ${step.name} (${step.id})`;
    case 'DeletePod':
      return step.reason === 'upgrade' ? `restarting ${step.name} on the new pod template` : `restarting ${step.name} on a fresh volume`;
    case 'DeletePVC':
      return `deleting volume ${step.name}, which holds a removed member's data`;
    case 'AnnotatePVC':
      return `recording member ${step.memberId} on volume ${step.name}`;
    case 'Wait':
      return step.message;
    case 'InSync':
      return 'the cluster matches the spec';
  }
}

export function computeStatus(o: Observed, step: Step, previous: EtcdClusterStatus | undefined, now: Date): EtcdClusterStatus {
  const generation = o.cluster.metadata.generation;
  let conditions: Condition[] = previous?.conditions ?? [];
  const set = (type: 'Available' | 'Progressing' | 'Degraded', status: 'True' | 'False' | 'Unknown', reason: string, message: string) => {
    conditions = setCondition(conditions, { type, status, reason, message }, now, generation);
  };
  const phase = phaseOf(o, step, previous?.phase);

  if (step.kind === 'Invalid') {
    const message = describeStep(step);
    set('Progressing', 'False', REASONS.Progressing.InvalidSpec, 'nothing is changed until the spec is fixed');
    set('Degraded', 'True', REASONS.Degraded.InvalidSpec, message);
    return { ...(previous ?? {}), phase, observedGeneration: generation, conditions };
  }

  const view = o.etcd === 'unreachable' ? undefined : o.etcd;
  const members = view ? memberStatuses(o, view) : [];
  const voters = members.filter((m) => !m.isLearner);
  const healthyVoters = voters.filter((m) => m.healthy);
  const ready = members.filter((m) => m.healthy).length;
  const R = o.cluster.spec.replicas;

  // Available
  if (view && voters.length > 0 && healthyVoters.length >= quorum(voters.length)) {
    set('Available', 'True', REASONS.Available.QuorumAvailable, `${healthyVoters.length} of ${voters.length} voting members are healthy`);
  } else if (view) {
    set('Available', 'False', REASONS.Available.QuorumLost, `only ${healthyVoters.length} of ${voters.length} voting members are healthy`);
  } else if (o.bootstrap?.state === 'new' || !o.bootstrap) {
    set('Available', 'False', REASONS.Available.Bootstrapping, 'the first members are starting');
  } else {
    set('Available', 'Unknown', REASONS.Available.MembersUnreachable, 'no member answers');
  }

  // Progressing
  if (step.kind === 'InSync') set('Progressing', 'False', REASONS.Progressing.Reconciled, describeStep(step));
  else if (step.kind === 'Wait' && (step.reason === 'WaitingForHealthyMembers' || step.reason === 'QuorumLost' || step.reason === 'ForeignMember')) {
    set('Progressing', 'False', REASONS.Progressing.WaitingForHealthyMembers, describeStep(step));
  } else {
    let reason = PROGRESS[step.kind];
    if (step.kind === 'RemoveMember') reason = step.reason === 'repair' ? REASONS.Progressing.ReplacingMember : REASONS.Progressing.RemovingMember;
    if (step.kind === 'DeletePod') reason = step.reason === 'repair' ? REASONS.Progressing.ReplacingMember : REASONS.Progressing.UpgradingMembers;
    if (step.kind === 'MoveLeader') reason = step.reason === 'upgrade' ? REASONS.Progressing.UpgradingMembers : REASONS.Progressing.RemovingMember;
    if (step.kind === 'UpdateObjects') reason = step.objects.includes('StatefulSet') ? REASONS.Progressing.UpgradingMembers : REASONS.Progressing.Creating;
    if (step.kind === 'Wait') {
      reason =
        phase === 'Creating'
          ? REASONS.Progressing.Creating
          : phase === 'Upgrading'
            ? REASONS.Progressing.UpgradingMembers
            : phase === 'Repairing'
              ? REASONS.Progressing.ReplacingMember
              : step.reason === 'LearnerCatchingUp'
                ? REASONS.Progressing.AddingMember
                : REASONS.Progressing.WaitingForHealthyMembers;
    }
    set('Progressing', 'True', reason ?? REASONS.Progressing.Creating, describeStep(step));
  }

  // Degraded
  const nospace = view && Object.values(view.status).some((s) => (s.errors ?? []).some((e) => /NOSPACE/i.test(e)));
  const unhealthy = members.filter((m) => !m.healthy);
  if (nospace) {
    set('Degraded', 'True', REASONS.Degraded.SpaceQuotaExceeded, 'the database reached its space quota (NOSPACE alarm): only reads and deletes work');
  } else if (view && unhealthy.length > 0) {
    set('Degraded', 'True', REASONS.Degraded.MemberUnhealthy, `member(s) ${unhealthy.map((m) => m.name ?? m.id).join(', ')} not healthy`);
  } else if (!view && o.bootstrap?.state !== 'new' && o.bootstrap) {
    set('Degraded', 'True', REASONS.Degraded.MemberUnhealthy, 'no member answers');
  } else {
    set('Degraded', 'False', REASONS.Degraded.AllMembersHealthy, view ? 'every member is healthy' : 'the cluster is being created');
  }

  const versions = members.map((m) => m.version).filter((v): v is string => !!v);
  const leader = members.find((m) => m.isLeader);
  const status: EtcdClusterStatus = {
    phase,
    observedGeneration: generation,
    replicas: members.length,
    readyReplicas: ready,
    ready: readyText(ready, R),
    selector: selectorString(o.cluster),
    members,
    conditions,
  };
  if (view?.clusterId) status.clusterID = view.clusterId;
  else if (previous?.clusterID) status.clusterID = previous.clusterID;
  if (versions.length > 0) status.currentVersion = versions.sort(compareVersions)[0];
  if (leader?.name) status.leader = leader.name;
  return status;
}

/** Semver order (numeric parts; a pre-release sorts before its release). */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const [core, pre] = v.split('-', 2);
    return { nums: core.split('.').map((x) => Number(x) || 0), pre };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++) if ((x.nums[i] ?? 0) !== (y.nums[i] ?? 0)) return (x.nums[i] ?? 0) - (y.nums[i] ?? 0);
  if (x.pre === y.pre) return 0;
  if (x.pre === undefined) return 1;
  if (y.pre === undefined) return -1;
  return x.pre < y.pre ? -1 : 1;
}
