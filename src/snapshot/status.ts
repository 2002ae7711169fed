// `etcd-ts snapshot status`: etcdutl's summary of a snapshot file (hash, revision, total keys, total
// size, version), computed by reading every record. The SHA-256 is checked when the file has one.
import { SnapshotAnalyzer, SnapshotStatus } from './content';
import { inspectSnapshotFile, readSnapshotFile } from './file';

export function snapshotStatus(file: string): SnapshotStatus {
  const info = inspectSnapshotFile(file);
  const analyzer = new SnapshotAnalyzer();
  const { meta } = readSnapshotFile(file, (k, v) => analyzer.add(k, v), { skipHashCheck: !info.hasHash });
  return analyzer.status(info.contentLength, meta.storageVersion);
}
