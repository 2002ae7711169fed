// The reconciler's brain, pure: what the operator observed (the EtcdCluster, its Kubernetes objects, and what
// the etcd cluster says about itself) in, the one next step out. No I/O and no memory between calls: every
// step is derived again from the world, so the operator may be killed between any two steps and the next
// process picks up where the world is (level-triggered). Examples:
// - a learner is in the member list but its pod does not exist yet (killed after MemberAdd): scale the
//   StatefulSet, never add a second learner;
// - a member is in the list beyond spec.replicas: remove it (leadership moved off it first), then shrink;
// - a pod runs an old revision: restart it, followers first, the leader last and only after leadership moved.
// Safety rules: one membership change at a time; learners first; never a step that could lose quorum; an
// upgrade or scale step only while every voting member is healthy (so a step never makes two unhealthy).
//
// Member data identity: each member's PersistentVolumeClaim carries the ID of the member whose data it holds
// (annotation MEMBER_ID_ANNOTATION, written once the member is seen healthy). A claim without it under a
// member that ran before means the data is gone (the claim was deleted and re-created); a claim naming another
// ID holds a removed member's data and must be replaced before the new member can start on it.
import { type EtcdCluster, type SpecProblem, failuresTolerated, quorum } from '../api';
import { DATA_VOLUME, memberName, memberPeerURL } from '../resources';

export const MEMBER_ID_ANNOTATION = 'etcd-ts.io/member-id';

/** Owned objects besides the StatefulSet, compared with what the builders make. */
export type ObjectKind = 'ConfigMap' | 'PeerService' | 'ClientService' | 'StatefulSet' | 'PodDisruptionBudget';
export type ObjectState = 'missing' | 'current' | 'outdated';

export interface ObservedPod {
  name: string;
  ready: boolean;
  phase?: string;
  podIP?: string;
  deleting: boolean;
  /** The pod's controller-revision-hash label. */
  revision?: string;
  /** Milliseconds since the epoch. */
  createdAt?: number;
  /** When the pod's Ready condition last became False (ms), if it is not ready. */
  notReadySince?: number;
}

export interface ObservedPVC {
  name: string;
  /** MEMBER_ID_ANNOTATION: the member whose data the volume holds. */
  memberId?: string;
  deleting: boolean;
}

export interface ObservedStatefulSet {
  replicas: number;
  /** status.updateRevision: the revision pods should run. */
  updateRevision?: string;
  /** Whether the pod template (and the rest of the spec but replicas) is what the builder makes now. */
  templateCurrent: boolean;
}

export interface ObservedBootstrap {
  initialCluster: string;
  state: string;
}

export interface ObservedMember {
  /** Hex, as etcdctl prints it. */
  id: string;
  /** Empty until the member has started. */
  name: string;
  peerURLs: string[];
  isLearner: boolean;
}

export interface ObservedMemberStatus {
  reachable: boolean;
  leaderId?: string;
  raftIndex?: number;
  appliedIndex?: number;
  version?: string;
  errors?: string[];
}

export interface EtcdView {
  clusterId?: string;
  members: ObservedMember[];
  /** By member ID. A member missing here did not answer. */
  status: Record<string, ObservedMemberStatus>;
}

export interface Observed {
  /** The EtcdCluster with defaults applied (meaningless when problems has errors). */
  cluster: EtcdCluster;
  /** validateSpec's result. */
  problems: SpecProblem[];
  bootstrap?: ObservedBootstrap;
  peerService: ObjectState;
  clientService: ObjectState;
  statefulSet?: ObservedStatefulSet;
  /** The budget's maxUnavailable, or undefined when it does not exist. */
  pdbMaxUnavailable?: number;
  pdbState?: ObjectState;
  pods: ObservedPod[];
  pvcs: ObservedPVC[];
  etcd: EtcdView | 'unreachable';
  /** Milliseconds since the epoch. */
  now: number;
  /** Tunables; defaults in DEFAULT_TIMINGS. */
  timings?: Partial<Timings>;
}

export interface Timings {
  /** A pod younger than this is never judged failed (it may still be starting). */
  startGraceMs: number;
  /** A member not ready this long on a pod older than startGraceMs is replaced. */
  failedAfterMs: number;
  /** A learner may be promoted when it is this many entries or fewer behind the leader. */
  catchUpEntries: number;
}

export const DEFAULT_TIMINGS: Timings = { startGraceMs: 60_000, failedAfterMs: 10 * 60_000, catchUpEntries: 100 };

export type Step =
  | { kind: 'Invalid'; problems: SpecProblem[] }
  | { kind: 'CreateObjects'; objects: ObjectKind[]; bootstrapMembers: string[]; bootstrapState: 'new' | 'existing'; replicas: number; votingMembers: number }
  | { kind: 'UpdateObjects'; objects: ObjectKind[]; replicas: number; votingMembers: number }
  | { kind: 'SetBootstrapExisting'; members: string[] }
  | { kind: 'AddLearner'; name: string; peerURL: string }
  | { kind: 'ScaleStatefulSet'; from: number; replicas: number }
  | { kind: 'PromoteLearner'; id: string; name: string }
  | { kind: 'MoveLeader'; from: string; to: string; toName: string; reason: 'scale-in' | 'upgrade' }
  | { kind: 'RemoveMember'; id: string; name: string; reason: 'scale-in' | 'repair' }
  | { kind: 'DeletePod'; name: string; reason: 'upgrade' | 'repair' }
  | { kind: 'DeletePVC'; name: string; reason: 'repair' }
  | { kind: 'AnnotatePVC'; name: string; memberId: string }
  | { kind: 'Wait'; reason: WaitReason; message: string }
  | { kind: 'InSync' };

export type WaitReason =
  | 'Bootstrapping'
  | 'QuorumLost'
  | 'MembersUnreachable'
  | 'LearnerCatchingUp'
  | 'MemberStarting'
  | 'WaitingForHealthyMembers'
  | 'PodTerminating'
  | 'ForeignMember';

/** The PVC name of a member (the StatefulSet's volumeClaimTemplate naming). */
export const pvcName = (member: string): string => `${DATA_VOLUME}-${member}`;

/** The ordinal of a pod or member name of this cluster, or undefined. */
export function ordinalOf(c: EtcdCluster, name: string): number | undefined {
  const prefix = `${c.metadata.name}-`;
  if (!name.startsWith(prefix)) return undefined;
  const rest = name.slice(prefix.length);
  return /^(0|[1-9][0-9]*)$/.test(rest) ? Number(rest) : undefined;
}

/** The ordinal of a member: by its name once started, else by its peer URL. */
export function memberOrdinal(c: EtcdCluster, m: ObservedMember): number | undefined {
  if (m.name) {
    const byName = ordinalOf(c, m.name);
    if (byName !== undefined && m.peerURLs.every((u) => u === memberPeerURL(c, m.name))) return byName;
  }
  const url = m.peerURLs[0];
  if (!url) return undefined;
  const match = /^http:\/\/([^.]+)\./.exec(url);
  if (!match) return undefined;
  const ordinal = ordinalOf(c, match[1]);
  return ordinal !== undefined && url === memberPeerURL(c, memberName(c, ordinal)) ? ordinal : undefined;
}

export function isHealthy(view: EtcdView, id: string): boolean {
  const s = view.status[id];
  return !!s && s.reachable && !(s.errors && s.errors.length > 0);
}

/** The leader's ID, as the members that answered report it (the most common answer). */
export function leaderOf(view: EtcdView): string | undefined {
  const votes = new Map<string, number>();
  for (const s of Object.values(view.status)) {
    if (s.reachable && s.leaderId && s.leaderId !== '0') votes.set(s.leaderId, (votes.get(s.leaderId) ?? 0) + 1);
  }
  let best: string | undefined;
  let count = 0;
  for (const [id, n] of votes) {
    if (n > count && view.members.some((m) => m.id === id)) {
      best = id;
      count = n;
    }
  }
  return best;
}

/** Whether member `id` has applied nearly everything the leader has committed. */
export function caughtUp(view: EtcdView, id: string, catchUpEntries: number): boolean {
  const leader = leaderOf(view);
  const s = view.status[id];
  if (!leader || !s || !s.reachable) return false;
  if (leader === id) return true;
  const l = view.status[leader];
  if (!l || l.raftIndex === undefined) return false;
  const applied = s.appliedIndex ?? s.raftIndex;
  if (applied === undefined) return false;
  return l.raftIndex - applied <= catchUpEntries;
}

export function planNext(o: Observed): Step {
  const errors = o.problems.filter((p) => p.severity === 'error');
  if (errors.length > 0) return { kind: 'Invalid', problems: errors };

  const c = o.cluster;
  const R = c.spec.replicas;
  const t: Timings = { ...DEFAULT_TIMINGS, ...(o.timings ?? {}) };
  const view = o.etcd === 'unreachable' ? undefined : o.etcd;
  const voters = view ? view.members.filter((m) => !m.isLearner) : [];
  const votingMembers = view ? Math.min(voters.length, R) : R;

  // 1. Objects that do not exist.
  const missing: ObjectKind[] = [];
  if (!o.bootstrap) missing.push('ConfigMap');
  if (o.peerService === 'missing') missing.push('PeerService');
  if (o.clientService === 'missing') missing.push('ClientService');
  if (!o.statefulSet) missing.push('StatefulSet');
  if (o.pdbMaxUnavailable === undefined) missing.push('PodDisruptionBudget');
  if (missing.length > 0) {
    if (view) {
      const members = memberNamesOf(c, view);
      const top = Math.max(0, ...view.members.map((m) => (memberOrdinal(c, m) ?? -1) + 1));
      return { kind: 'CreateObjects', objects: missing, bootstrapMembers: members, bootstrapState: 'existing', replicas: top, votingMembers };
    }
    if (!o.statefulSet && o.pvcs.length === 0 && o.pods.length === 0) {
      // A new cluster: its first members, started together.
      const members = Array.from({ length: R }, (_, i) => memberName(c, i));
      return { kind: 'CreateObjects', objects: missing, bootstrapMembers: members, bootstrapState: 'new', replicas: R, votingMembers: R };
    }
    if (missing.includes('StatefulSet') && o.bootstrap) {
      // Volumes exist but the StatefulSet was deleted: start the members again on their data.
      const replicas = Math.max(1, ...o.pvcs.map((p) => (ordinalOf(c, p.name.slice(DATA_VOLUME.length + 1)) ?? -1) + 1));
      return {
        kind: 'CreateObjects',
        objects: missing,
        bootstrapMembers: [],
        bootstrapState: o.bootstrap.state === 'new' ? 'new' : 'existing',
        replicas,
        votingMembers,
      };
    }
    if (missing.includes('ConfigMap')) {
      return { kind: 'Wait', reason: 'MembersUnreachable', message: 'the bootstrap ConfigMap is missing and no member answers to say who the members are' };
    }
    return { kind: 'CreateObjects', objects: missing, bootstrapMembers: [], bootstrapState: 'existing', replicas: o.statefulSet?.replicas ?? R, votingMembers };
  }
  const sts = o.statefulSet!;

  // 2. Services and the budget follow the spec whatever state etcd is in.
  const outdated: ObjectKind[] = [];
  if (o.peerService === 'outdated') outdated.push('PeerService');
  if (o.clientService === 'outdated') outdated.push('ClientService');
  if (o.pdbState === 'outdated' || o.pdbMaxUnavailable !== failuresTolerated(Math.max(votingMembers, 1))) outdated.push('PodDisruptionBudget');
  if (outdated.length > 0) return { kind: 'UpdateObjects', objects: outdated, replicas: sts.replicas, votingMembers };

  // 3. Nobody answers.
  if (!view) {
    if (o.bootstrap?.state === 'new') {
      return { kind: 'Wait', reason: 'Bootstrapping', message: `waiting for the first ${sts.replicas} member(s) to start and elect a leader` };
    }
    return { kind: 'Wait', reason: 'MembersUnreachable', message: 'no member answers; waiting for the members to come back' };
  }

  const ordinals = new Map<string, number>();
  for (const m of view.members) {
    const k = memberOrdinal(c, m);
    if (k === undefined) {
      return { kind: 'Wait', reason: 'ForeignMember', message: `member ${m.id} (${m.peerURLs.join(',')}) is not one of this cluster's pods; remove it by hand` };
    }
    ordinals.set(m.id, k);
  }
  const byOrdinal = new Map<number, ObservedMember>();
  for (const m of view.members) byOrdinal.set(ordinals.get(m.id)!, m);
  const pod = (k: number) => o.pods.find((p) => p.name === memberName(c, k));
  const pvc = (k: number) => o.pvcs.find((p) => p.name === pvcName(memberName(c, k)));
  const healthy = (m: ObservedMember) => isHealthy(view, m.id);
  const healthyVoters = voters.filter(healthy);
  const leader = leaderOf(view);
  const annotateStep = (candidates: ObservedMember[]): Step | undefined => {
    for (const m of candidates) {
      const claim = pvc(ordinals.get(m.id)!);
      if (claim && !claim.deleting && claim.memberId === undefined && m.name !== '' && healthy(m)) {
        return { kind: 'AnnotatePVC', name: claim.name, memberId: m.id };
      }
    }
    return undefined;
  };

  // 4. The cluster has formed: record which member's data each initial volume holds, then switch the
  //    ConfigMap to "existing" so that members starting on an empty volume from now on join the cluster.
  //    From then on a voting member on a volume without the record has lost its data (see step 10).
  const members = memberNamesOf(c, view);
  const wantCluster = members.map((n) => `${n}=${memberPeerURL(c, n)}`).join(',');
  if (o.bootstrap && o.bootstrap.state !== 'existing') {
    if (!leader) return { kind: 'Wait', reason: 'Bootstrapping', message: 'the first members have not elected a leader yet' };
    const step = annotateStep(voters);
    if (step) return step;
    return { kind: 'SetBootstrapExisting', members };
  }
  if (o.bootstrap && o.bootstrap.initialCluster !== wantCluster) return { kind: 'SetBootstrapExisting', members };

  if (healthyVoters.length < quorum(voters.length)) {
    return {
      kind: 'Wait',
      reason: 'QuorumLost',
      message: `only ${healthyVoters.length} of ${voters.length} voting members are healthy; ${quorum(voters.length)} are needed`,
    };
  }

  // 5. A learner that started: record its ID on its volume (before it can be promoted).
  const annotate = annotateStep(view.members.filter((m) => m.isLearner));
  if (annotate) return annotate;

  // 6. A volume holding another (removed) member's data: replace it, then the pod, so the member starts empty.
  //    Likewise a learner that has not started on a pod older than the start grace: whatever that pod's
  //    volume holds (a removed member's data, or what a failed start wrote) keeps it from joining.
  for (const m of view.members) {
    const k = ordinals.get(m.id)!;
    const claim = pvc(k);
    const p = pod(k);
    const staleData = !!claim && claim.memberId !== undefined && claim.memberId !== m.id;
    const stuck = m.isLearner && m.name === '' && !!p && !p.deleting && p.createdAt !== undefined && o.now - p.createdAt >= t.startGraceMs;
    if (healthy(m) || !(staleData || stuck)) continue;
    if (!claim) {
      if (p && !p.deleting) return { kind: 'DeletePod', name: p.name, reason: 'repair' };
      continue;
    }
    if (!claim.deleting) return { kind: 'DeletePVC', name: claim.name, reason: 'repair' };
    if (p && !p.deleting) return { kind: 'DeletePod', name: p.name, reason: 'repair' };
    return { kind: 'Wait', reason: 'PodTerminating', message: `waiting for ${memberName(c, k)}'s old volume and pod to go` };
  }

  // 7. Pods beyond the members and spec.replicas: shrink the StatefulSet.
  const topMember = Math.max(0, ...[...ordinals.values()].map((k) => k + 1));
  const wantReplicas = Math.max(topMember, Math.min(sts.replicas, R));
  if (sts.replicas > wantReplicas) return { kind: 'ScaleStatefulSet', from: sts.replicas, replicas: wantReplicas };

  // 8. A learner: give it a pod, promote it once caught up, or remove it if no longer wanted.
  const learner = view.members.find((m) => m.isLearner);
  if (learner) {
    const k = ordinals.get(learner.id)!;
    const name = memberName(c, k);
    if (k >= R) return { kind: 'RemoveMember', id: learner.id, name, reason: 'scale-in' };
    if (sts.replicas <= k) return { kind: 'ScaleStatefulSet', from: sts.replicas, replicas: k + 1 };
    if (!healthy(learner) || !caughtUp(view, learner.id, t.catchUpEntries)) {
      return { kind: 'Wait', reason: 'LearnerCatchingUp', message: `learner ${name} is starting and catching up with the leader` };
    }
    if (healthyVoters.length + 1 < quorum(voters.length + 1)) {
      return { kind: 'Wait', reason: 'WaitingForHealthyMembers', message: `promoting ${name} now would leave too few healthy voting members` };
    }
    return { kind: 'PromoteLearner', id: learner.id, name };
  }

  // 9. Scale in: the highest member beyond spec.replicas, leadership moved off it first.
  const extra = voters.filter((m) => ordinals.get(m.id)! >= R).sort((a, b) => ordinals.get(b.id)! - ordinals.get(a.id)!);
  if (extra.length > 0) {
    const m = extra[0];
    const name = memberName(c, ordinals.get(m.id)!);
    const remaining = voters.length - 1;
    const healthyAfter = healthyVoters.filter((v) => v.id !== m.id).length;
    if (remaining < 1 || healthyAfter < quorum(remaining)) {
      return { kind: 'Wait', reason: 'WaitingForHealthyMembers', message: `removing ${name} now would lose quorum; waiting for the other members to be healthy` };
    }
    if (leader === m.id) {
      const to = healthyVoters.filter((v) => v.id !== m.id && ordinals.get(v.id)! < R).sort((a, b) => ordinals.get(a.id)! - ordinals.get(b.id)!)[0];
      if (!to) return { kind: 'Wait', reason: 'WaitingForHealthyMembers', message: `no healthy member to move leadership to before removing ${name}` };
      return { kind: 'MoveLeader', from: m.id, to: to.id, toName: memberName(c, ordinals.get(to.id)!), reason: 'scale-in' };
    }
    return { kind: 'RemoveMember', id: m.id, name, reason: 'scale-in' };
  }

  // 10. Repair: a voting member whose volume lost its data (no ID recorded: the claim was re-created) or that has
  //     been failing for long is removed, then re-added below as a learner on a fresh volume. Even a healthy
  //     member that lost its data goes: it has forgotten entries it acknowledged.
  for (const m of voters) {
    const k = ordinals.get(m.id)!;
    const p = pod(k);
    const claim = pvc(k);
    const dataGone = m.name !== '' && claim !== undefined && !claim.deleting && claim.memberId === undefined;
    if (healthy(m) && !dataGone) continue;
    if (!healthy(m)) {
      if (!p || p.deleting || p.createdAt === undefined || o.now - p.createdAt < t.startGraceMs) continue;
      const failing = !p.ready && p.notReadySince !== undefined && o.now - p.notReadySince >= t.failedAfterMs;
      if (!dataGone && !failing) continue;
    }
    const remaining = voters.length - 1;
    const healthyAfter = healthyVoters.filter((v) => v.id !== m.id).length;
    if (remaining < 1 || healthyAfter < quorum(remaining)) continue;
    return { kind: 'RemoveMember', id: m.id, name: memberName(c, k), reason: 'repair' };
  }

  // Everything below changes the cluster: only while every voting member is healthy and caught up.
  const unhealthy = voters.filter((m) => !healthy(m));
  if (unhealthy.length > 0) {
    return {
      kind: 'Wait',
      reason: 'WaitingForHealthyMembers',
      message: `member(s) ${unhealthy.map((m) => memberName(c, ordinals.get(m.id)!)).join(', ')} not healthy; waiting before the next change`,
    };
  }
  const behind = voters.filter((m) => !caughtUp(view, m.id, t.catchUpEntries));
  if (behind.length > 0) {
    return { kind: 'Wait', reason: 'WaitingForHealthyMembers', message: `member(s) ${behind.map((m) => memberName(c, ordinals.get(m.id)!)).join(', ')} catching up` };
  }

  // 11. Scale out (or re-add a repaired member): the lowest missing ordinal, as a learner.
  if (view.members.length < R) {
    let k = 0;
    while (byOrdinal.has(k)) k++;
    const name = memberName(c, k);
    return { kind: 'AddLearner', name, peerURL: memberPeerURL(c, name) };
  }

  // 12. Upgrade: the StatefulSet's template first, then one pod at a time, followers first.
  if (!sts.templateCurrent) return { kind: 'UpdateObjects', objects: ['StatefulSet'], replicas: sts.replicas, votingMembers };
  if (o.pods.some((p) => p.deleting)) return { kind: 'Wait', reason: 'PodTerminating', message: 'waiting for a pod to terminate' };
  const notReady = o.pods.filter((p) => !p.ready);
  if (notReady.length > 0) {
    return { kind: 'Wait', reason: 'MemberStarting', message: `pod(s) ${notReady.map((p) => p.name).join(', ')} not ready yet` };
  }
  if (sts.updateRevision) {
    const old = o.pods
      .filter((p) => p.revision !== undefined && p.revision !== sts.updateRevision)
      .map((p) => ({ p, k: ordinalOf(c, p.name) ?? -1, m: byOrdinal.get(ordinalOf(c, p.name) ?? -1) }))
      .sort((a, b) => b.k - a.k);
    const follower = old.find((x) => !x.m || x.m.id !== leader);
    if (follower) return { kind: 'DeletePod', name: follower.p.name, reason: 'upgrade' };
    if (old.length > 0) {
      const x = old[0];
      const others = healthyVoters.filter((v) => v.id !== x.m?.id);
      if (others.length > 0 && x.m) {
        const to = others.sort((a, b) => ordinals.get(a.id)! - ordinals.get(b.id)!)[0];
        return { kind: 'MoveLeader', from: x.m.id, to: to.id, toName: memberName(c, ordinals.get(to.id)!), reason: 'upgrade' };
      }
      return { kind: 'DeletePod', name: x.p.name, reason: 'upgrade' };
    }
  }
  return { kind: 'InSync' };
}

/** The names of the members in the list, by ordinal. */
function memberNamesOf(c: EtcdCluster, view: EtcdView): string[] {
  return view.members
    .map((m) => memberOrdinal(c, m))
    .filter((k): k is number => k !== undefined)
    .sort((a, b) => a - b)
    .map((k) => memberName(c, k));
}
