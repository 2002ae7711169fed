export { EtcdServer, ETCD_API_VERSION, CLUSTER_VERSION, STORAGE_VERSION, DEFAULT_QUOTA_BYTES } from './server';
export type { ServerOptions, RaftTransport, FetchedCluster } from './server';
export type { Member } from './members';
export { computeMemberId, computeClusterId, idToHex, memberToPb } from './members';
