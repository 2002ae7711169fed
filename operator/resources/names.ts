// Names, labels, URLs and owner references of a cluster's objects: one place, so that the builders, the
// reconciler and the people reading `kubectl get` agree on them. A cluster named C in namespace N has:
//   StatefulSet C (pods C-0, C-1, ...), headless Service C-peer, client Service C-client,
//   ConfigMap C-bootstrap, PodDisruptionBudget C; member C-i is reached at C-i.C-peer.N.svc.
import type { V1ObjectMeta, V1OwnerReference } from '@kubernetes/client-node';
import {
  API_VERSION,
  APP_NAME,
  COMPONENT_MEMBER,
  DEFAULT_ETCD_TS_VERSION,
  DEFAULT_IMAGE_REPOSITORY,
  type EtcdCluster,
  KIND,
  LABEL_COMPONENT,
  LABEL_INSTANCE,
  LABEL_MANAGED_BY,
  LABEL_NAME,
  LABEL_VERSION,
  MANAGER_NAME,
} from '../api';

export const CLIENT_PORT = 2379;
export const PEER_PORT = 2380;
export const CLIENT_PORT_NAME = 'client';
export const PEER_PORT_NAME = 'peer';

export const statefulSetName = (c: EtcdCluster): string => c.metadata.name;
export const peerServiceName = (c: EtcdCluster): string => `${c.metadata.name}-peer`;
export const clientServiceName = (c: EtcdCluster): string => `${c.metadata.name}-client`;
export const bootstrapConfigMapName = (c: EtcdCluster): string => `${c.metadata.name}-bootstrap`;
export const podDisruptionBudgetName = (c: EtcdCluster): string => c.metadata.name;

/** Member i's name, which is also its pod's name (the StatefulSet's ordinal naming). */
export const memberName = (c: EtcdCluster, ordinal: number): string => `${c.metadata.name}-${ordinal}`;

/** The first `count` member names: C-0 .. C-(count-1). */
export function memberNames(c: EtcdCluster, count: number): string[] {
  return Array.from({ length: count }, (_, i) => memberName(c, i));
}

/** A member's stable DNS name, through the headless peer Service. */
export const memberHost = (c: EtcdCluster, member: string): string => `${member}.${peerServiceName(c)}.${c.metadata.namespace}.svc`;
export const memberPeerURL = (c: EtcdCluster, member: string): string => `http://${memberHost(c, member)}:${PEER_PORT}`;
export const memberClientURL = (c: EtcdCluster, member: string): string => `http://${memberHost(c, member)}:${CLIENT_PORT}`;
/** The endpoint clients use: the client Service, which routes to ready members only. */
export const clientEndpoint = (c: EtcdCluster): string => `http://${clientServiceName(c)}.${c.metadata.namespace}.svc:${CLIENT_PORT}`;

/** etcd's --initial-cluster value for these members: name=peerURL,... */
export function initialCluster(c: EtcdCluster, members: readonly string[]): string {
  return members.map((m) => `${m}=${memberPeerURL(c, m)}`).join(',');
}

/**
 * The --initial-cluster-token: the cluster's UID makes member and cluster IDs unique to this EtcdCluster, so a
 * member of a deleted cluster of the same name can never be mistaken for a member of this one.
 */
export const initialClusterToken = (c: EtcdCluster): string => `${c.metadata.name}-${requireUid(c)}`;

/** The etcd-ts version the pods run, when known: spec.version, or the operator's own unless an image is given. */
export function runningVersion(c: EtcdCluster): string | undefined {
  return c.spec.version ?? (c.spec.image === undefined ? DEFAULT_ETCD_TS_VERSION : undefined);
}

/**
 * The image the members run: spec.image, else the operator's image repository (the one the operator itself
 * was installed from, so members pull from the same registry) at spec.version.
 */
export function memberImage(c: EtcdCluster, repository: string = DEFAULT_IMAGE_REPOSITORY): string {
  return c.spec.image ?? `${repository}:${c.spec.version ?? DEFAULT_ETCD_TS_VERSION}`;
}

/** The labels that select a cluster's member pods; they never change over the cluster's life. */
export function selectorLabels(c: EtcdCluster): Record<string, string> {
  return { [LABEL_NAME]: APP_NAME, [LABEL_INSTANCE]: c.metadata.name, [LABEL_COMPONENT]: COMPONENT_MEMBER };
}

/** Selector labels as a label selector string (for status.selector and the scale subresource). */
export function selectorString(c: EtcdCluster): string {
  return Object.entries(selectorLabels(c))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** Labels of every object of the cluster: the selector labels, the manager and, when known, the version. */
export function clusterLabels(c: EtcdCluster): Record<string, string> {
  const version = runningVersion(c);
  return { ...selectorLabels(c), [LABEL_MANAGED_BY]: MANAGER_NAME, ...(version !== undefined ? { [LABEL_VERSION]: version } : {}) };
}

/** Labels that must not change over the cluster's life (the StatefulSet's volumeClaimTemplates are immutable). */
export function stableLabels(c: EtcdCluster): Record<string, string> {
  return { ...selectorLabels(c), [LABEL_MANAGED_BY]: MANAGER_NAME };
}

/** Makes the EtcdCluster the controlling owner: its objects are garbage-collected with it. */
export function ownerReference(c: EtcdCluster): V1OwnerReference {
  return { apiVersion: API_VERSION, kind: KIND, name: c.metadata.name, uid: requireUid(c), controller: true, blockOwnerDeletion: true };
}

/** Metadata of a namespaced object owned by the cluster. */
export function ownedMetadata(c: EtcdCluster, name: string, labels: Record<string, string> = clusterLabels(c)): V1ObjectMeta {
  return { name, namespace: c.metadata.namespace, labels, ownerReferences: [ownerReference(c)] };
}

function requireUid(c: EtcdCluster): string {
  const uid = c.metadata.uid;
  if (!uid) throw new Error(`EtcdCluster ${c.metadata.namespace}/${c.metadata.name} has no metadata.uid: build its objects from the stored object`);
  return uid;
}
