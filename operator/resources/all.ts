// Every object of a cluster, in the order to create them: the ConfigMap and Services the pods need first,
// then the StatefulSet, then the budget that protects it.
import type { V1ConfigMap, V1PodDisruptionBudget, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import type { EtcdCluster } from '../api';
import { type BootstrapOptions, buildBootstrapConfigMap } from './configmap';
import { buildPodDisruptionBudget } from './pdb';
import { buildClientService, buildPeerService } from './services';
import { buildStatefulSet } from './statefulset';

export type ClusterObject = V1ConfigMap | V1Service | V1StatefulSet | V1PodDisruptionBudget;

/** The objects of a cluster being created (bootstrap state "new" unless told otherwise). */
export function buildClusterObjects(c: EtcdCluster, bootstrap: BootstrapOptions = {}): ClusterObject[] {
  return [buildBootstrapConfigMap(c, bootstrap), buildPeerService(c), buildClientService(c), buildStatefulSet(c), buildPodDisruptionBudget(c)];
}
