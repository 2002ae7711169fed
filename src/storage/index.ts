export { Backend, WriteBatch, Prefix, fsyncDir, prefixed, u64be } from './backend';
export type { BatchOp } from './backend';
