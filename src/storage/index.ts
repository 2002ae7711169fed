export { Backend, WriteBatch, Prefix, prefixed, u64be } from './backend';
export type { BatchOp } from './backend';
