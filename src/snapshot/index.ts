// Snapshots of a member's state: the file format, taking one from a running member (Maintenance.Snapshot),
// and the offline tools (`etcd-ts snapshot status|restore`).
export { MAGIC, FORMAT_VERSION, PAD_TO, SHA256_SIZE, SnapshotDecoder, SnapshotEncoder, SnapshotFormatError, decodeSnapshot, encodeSnapshot, paddedLength } from './format';
export type { DecodedSummary, SnapshotMeta } from './format';
export { EXCLUDED_RANGES, META_KEYS, SnapshotAnalyzer, isMemberIdentityKey } from './content';
export type { SnapshotStatus } from './content';
export { inspectSnapshotFile, readSnapshotFile, verifySnapshotHash } from './file';
export type { ReadSnapshotOptions, SnapshotFileInfo } from './file';
export { SNAPSHOT_BLOB_SIZE, humanBytes, sendSnapshot, writeSnapshotFile } from './create';
export type { SnapshotFile, SnapshotLogger, SnapshotSink } from './create';
export { RestoreError, checkBootstrap, checkRestoreTarget, restoreSnapshot } from './restore';
export type { RestoreOptions, RestoreResult } from './restore';
export { snapshotStatus } from './status';
