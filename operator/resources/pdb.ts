// The PodDisruptionBudget: voluntary evictions (node drains, cluster autoscaler) may take down at most as
// many members as the cluster can lose and keep a quorum: floor((n-1)/2) of n voting members. So 1 or 2
// members allow no eviction at all (kubectl drain waits until the pod is deleted by hand or the cluster is
// scaled up), 3 or 4 allow one, 5 or 6 two. Members that are already down count against the budget, so a
// drain never takes a second member of a 3-member cluster.
import type { V1PodDisruptionBudget } from '@kubernetes/client-node';
import { type EtcdCluster, failuresTolerated } from '../api';
import { ownedMetadata, podDisruptionBudgetName, selectorLabels } from './names';

export interface PodDisruptionBudgetOptions {
  /**
   * Voting members the cluster has now. While scaling, pass the smaller of the current and the desired count:
   * a budget computed from spec.replicas = 5 while only 4 members exist would allow losing quorum.
   * Default: spec.replicas.
   */
  votingMembers?: number;
}

export function buildPodDisruptionBudget(c: EtcdCluster, options: PodDisruptionBudgetOptions = {}): V1PodDisruptionBudget {
  const members = options.votingMembers ?? c.spec.replicas;
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: ownedMetadata(c, podDisruptionBudgetName(c)),
    spec: {
      maxUnavailable: failuresTolerated(Math.max(members, 1)),
      selector: { matchLabels: selectorLabels(c) },
    },
  };
}
