// The bootstrap ConfigMap: the --initial-cluster and --initial-cluster-state a member starts with, read by the
// pods through environment variables. The operator rewrites it as the cluster changes; a running member never
// rereads it (etcd uses these flags only when its data dir is empty), so changing it restarts nothing.
//
// How the reconciler uses it:
// - creating the cluster: state "new" and the first spec.replicas members, all started together;
// - as soon as the cluster has formed, state "existing": from then on a member that starts on an empty volume
//   joins the running cluster instead of bootstrapping a second one with the same token;
// - adding member C-n: `member add` it first, then list every current member plus C-n (etcd checks that
//   --initial-cluster matches the cluster's member list), then raise the StatefulSet's replicas.
import type { V1ConfigMap } from '@kubernetes/client-node';
import type { EtcdCluster } from '../api';
import { bootstrapConfigMapName, initialCluster, memberNames, ownedMetadata } from './names';

export const BOOTSTRAP_KEY_INITIAL_CLUSTER = 'initial-cluster';
export const BOOTSTRAP_KEY_INITIAL_CLUSTER_STATE = 'initial-cluster-state';

export interface BootstrapOptions {
  /** Members a starting member is told about. Default: the first spec.replicas members. */
  members?: readonly string[];
  /** Default: "new" (the cluster is being created). */
  state?: 'new' | 'existing';
}

export function buildBootstrapConfigMap(c: EtcdCluster, options: BootstrapOptions = {}): V1ConfigMap {
  const members = options.members ?? memberNames(c, c.spec.replicas);
  if (members.length === 0) throw new Error('the bootstrap ConfigMap needs at least one member');
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: ownedMetadata(c, bootstrapConfigMapName(c)),
    data: {
      [BOOTSTRAP_KEY_INITIAL_CLUSTER]: initialCluster(c, members),
      [BOOTSTRAP_KEY_INITIAL_CLUSTER_STATE]: options.state ?? 'new',
    },
  };
}
