// Pure builders: an EtcdCluster (spec with defaults applied, see api.withDefaults) in, the Kubernetes objects
// that run it out. No I/O: the reconciler decides when to create or update each object.
export * from './names';
export {
  buildStatefulSet,
  etcdArgs,
  CONTAINER_NAME,
  DATA_VOLUME,
  DATA_MOUNT_PATH,
  DATA_DIR,
  MEMBER_UID,
  ENV_POD_NAME,
  ENV_INITIAL_CLUSTER,
  ENV_INITIAL_CLUSTER_STATE,
  type StatefulSetOptions,
} from './statefulset';
export {
  buildBootstrapConfigMap,
  BOOTSTRAP_KEY_INITIAL_CLUSTER,
  BOOTSTRAP_KEY_INITIAL_CLUSTER_STATE,
  type BootstrapOptions,
} from './configmap';
export { buildPeerService, buildClientService } from './services';
export { buildPodDisruptionBudget, type PodDisruptionBudgetOptions } from './pdb';
export { buildClusterObjects, type ClusterObject } from './all';
