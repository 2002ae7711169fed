// Talking to a managed etcd-ts cluster.
export * from './client';
export * from './endpoints';
