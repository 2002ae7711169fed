// The status vocabulary of an EtcdCluster: the three condition types, the reasons the operator writes (one
// CamelCase word a person can read, with the message saying the rest), and the helpers that keep
// conditions as Kubernetes expects (lastTransitionTime moves only when the status changes).
import type { Condition } from './schema';

export const CONDITION_TYPES = ['Available', 'Progressing', 'Degraded'] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

/**
 * Reasons, by the condition they explain. The reconciler may add more; each must match the API server's
 * reason pattern (a CamelCase word).
 */
export const REASONS = {
  Available: {
    /** True: a majority of members is healthy, so the cluster serves reads and writes. */
    QuorumAvailable: 'QuorumAvailable',
    /** False: the first members are starting and have not elected a leader yet. */
    Bootstrapping: 'Bootstrapping',
    /** False: fewer than a majority of members are healthy; no writes are accepted. */
    QuorumLost: 'QuorumLost',
    /** Unknown: the operator could reach no member to ask. */
    MembersUnreachable: 'MembersUnreachable',
  },
  Progressing: {
    /** True: creating the cluster's objects and starting its first members. */
    Creating: 'Creating',
    /** True: a new member was added as a learner and is catching up. */
    AddingMember: 'AddingMember',
    /** True: a caught-up learner is being promoted to a voting member. */
    PromotingLearner: 'PromotingLearner',
    /** True: a member is being removed (scale down). */
    RemovingMember: 'RemovingMember',
    /** True: members are restarting one at a time on a new version or pod template. */
    UpgradingMembers: 'UpgradingMembers',
    /** True: a failed member is being replaced by a fresh one. */
    ReplacingMember: 'ReplacingMember',
    /** False: the cluster matches the spec; nothing to do. */
    Reconciled: 'Reconciled',
    /** False: a change is waiting because taking the next step now could cost quorum. */
    WaitingForHealthyMembers: 'WaitingForHealthyMembers',
    /** False: the spec has a problem; nothing is changed until it is fixed. */
    InvalidSpec: 'InvalidSpec',
  },
  Degraded: {
    /** False: every member is healthy. */
    AllMembersHealthy: 'AllMembersHealthy',
    /** True: a member does not answer its health check. */
    MemberUnhealthy: 'MemberUnhealthy',
    /** True: the spec has a problem the schema could not catch (the message says which). */
    InvalidSpec: 'InvalidSpec',
    /** True: the database reached etcdOptions.quotaBackendBytes (NOSPACE alarm): only reads and deletes work. */
    SpaceQuotaExceeded: 'SpaceQuotaExceeded',
  },
} as const;

/** What a caller sets; the helper fills lastTransitionTime and observedGeneration. */
export interface ConditionUpdate {
  type: ConditionType;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

/**
 * The conditions with `update` applied, as meta.SetStatusCondition does: a condition whose status does not
 * change keeps its lastTransitionTime; reason, message and observedGeneration are always refreshed. Returns
 * a new array (the input is not modified), with the other conditions in their order.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  now: Date,
  observedGeneration?: number,
): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === update.type);
  const previous = index >= 0 ? list[index] : undefined;
  const next: Condition = {
    type: update.type,
    status: update.status,
    reason: update.reason,
    message: update.message,
    lastTransitionTime: previous && previous.status === update.status ? previous.lastTransitionTime : rfc3339(now),
    ...(observedGeneration !== undefined ? { observedGeneration } : {}),
  };
  if (index >= 0) list[index] = next;
  else list.push(next);
  return list;
}

export function getCondition(conditions: readonly Condition[] | undefined, type: ConditionType): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** metav1.Time's wire form: RFC 3339 in UTC with whole seconds. */
export function rfc3339(time: Date): string {
  return time.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The Ready column of `kubectl get etcdclusters`: healthy members / desired members. */
export function readyText(readyReplicas: number, desiredReplicas: number): string {
  return `${readyReplicas}/${desiredReplicas}`;
}
