export { MvccStore, WriteTxn, EventType, rangeEnd } from './kvstore';
export { WatchableStore, Watcher } from './watchable';
export type { WatchResponseOut, WatchSink, WatchOptions } from './watchable';
export type { RangeOptions, RangeResult, MvccEvent } from './kvstore';
export type { KeyValue } from './keyvalue';
export { TreeIndex } from './treeIndex';
export { KeyIndex } from './keyIndex';
