// `etcd-ts snapshot restore`: a snapshot file -> a new member data dir that etcd-ts boots from with the
// same keys, revision and compaction, as a member of a new cluster (new member and cluster IDs, derived
// from --initial-cluster and --initial-cluster-token exactly as a first boot derives them).
//
// Nothing is written unless everything succeeds: the member dir is built in a temporary folder and
// renamed into place at the very end; any error removes the temporary folder. The new member's log is
// empty and its applied index is set to where that empty log starts, so the first boot replays nothing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Backend, WriteBatch, fsyncDir, u64be } from '../storage';
import { computeClusterId, computeMemberId, encodeMember, idToHex, Member } from '../server/members';
import { META_KEYS, SnapshotAnalyzer, isMemberIdentityKey } from './content';
import { readSnapshotFile } from './file';
import { SnapshotMeta } from './format';

const BATCH_BYTES = 4 * 1024 * 1024;
const PROGRESS_EVERY_MS = 2000;

export interface RestoreOptions {
  snapshotPath: string;
  dataDir: string;
  /** This member's name; must be in initialCluster. */
  name: string;
  /** name -> peer URLs (canonical strings), in --initial-cluster order. */
  initialCluster: Map<string, string[]>;
  initialClusterToken: string;
  /** This member's advertised peer URLs; must equal its initialCluster entry. */
  initialAdvertisePeerUrls: string[];
  skipHashCheck: boolean;
  /** etcdutl's --bump-revision / --mark-compacted. */
  revisionBump?: number;
  markCompacted?: boolean;
  /** Progress for big restores (called at most every 2 s while records are written). */
  onProgress?: (p: { records: number; bytesRead: number; totalBytes: number }) => void;
}

export interface RestoreResult {
  memberId: bigint;
  clusterId: bigint;
  revision: number;
  compactRevision: number;
  records: number;
  meta: SnapshotMeta;
}

export class RestoreError extends Error {}

/** etcd's bootstrap checks (VerifyBootstrap), with its error texts. */
export function checkBootstrap(opts: Pick<RestoreOptions, 'name' | 'initialCluster' | 'initialAdvertisePeerUrls'>): void {
  const mine = opts.initialCluster.get(opts.name);
  if (!mine) throw new RestoreError(`couldn't find local name "${opts.name}" in the initial cluster configuration`);
  const advertised = [...opts.initialAdvertisePeerUrls].sort();
  const listed = [...mine].sort();
  if (advertised.join(',') !== listed.join(',')) {
    const missing = listed.filter((u) => !advertised.includes(u));
    if (missing.length > 0) {
      throw new RestoreError(`--initial-cluster has ${missing.map((u) => `${opts.name}=${u}`).join(',')} but missing from --initial-advertise-peer-urls=${advertised.join(',')}`);
    }
    const extra = advertised.filter((u) => !listed.includes(u));
    throw new RestoreError(`--initial-advertise-peer-urls has ${extra.join(',')} but missing from --initial-cluster=${opts.name}=${listed.join(',')}`);
  }
  const seen = new Set<string>();
  for (const urls of opts.initialCluster.values()) {
    for (const u of urls) {
      if (seen.has(u)) {
        const all = [...opts.initialCluster].flatMap(([n, us]) => us.map((x) => `${n}=${x}`)).join(',');
        throw new RestoreError(`initial cluster ${all} has duplicate url`);
      }
      seen.add(u);
    }
  }
}

function isEmptyDir(dir: string): boolean {
  try {
    return fs.statSync(dir).isDirectory() && fs.readdirSync(dir).length === 0;
  } catch {
    return false;
  }
}

/** Refuses a data dir that exists and is not an empty folder (etcdutl's rule); true if it exists. */
export function checkRestoreTarget(dataDir: string): boolean {
  const exists = fs.existsSync(dataDir);
  if (exists && !isEmptyDir(dataDir)) throw new RestoreError(`data-dir "${dataDir}" not empty or could not be read`);
  return exists;
}

export async function restoreSnapshot(opts: RestoreOptions): Promise<RestoreResult> {
  checkBootstrap(opts);
  const bump = opts.revisionBump ?? 0;
  if ((bump === 0 && opts.markCompacted) || (bump > 0 && !opts.markCompacted)) {
    throw new RestoreError('--mark-compacted required if --revision-bump > 0');
  }
  const dataDir = path.resolve(opts.dataDir);
  const exists = checkRestoreTarget(opts.dataDir);
  fs.statSync(opts.snapshotPath); // a missing file fails here, before anything is created

  // The temporary folder sits where a rename into place cannot cross file systems: inside an existing
  // (empty, possibly a mount point) data dir, else next to the data dir to be.
  const suffix = `${process.pid}-${Date.now().toString(36)}`;
  let createdParent: string | undefined;
  if (!exists) createdParent = fs.mkdirSync(path.dirname(dataDir), { recursive: true }) ?? undefined;
  const tmpRoot = exists ? path.join(dataDir, `.restore-${suffix}`) : `${dataDir}.restore-${suffix}`;
  let backend: Backend | undefined;
  try {
    fs.mkdirSync(tmpRoot, { mode: 0o700 });
    backend = await Backend.open(path.join(tmpRoot, 'member', 'rocksdb'));
    const db = backend;
    const analyzer = new SnapshotAnalyzer();
    let batch = new WriteBatch();
    let batchBytes = 0;
    let lastProgress = Date.now();
    let bytesRead = 0;
    let totalBytes = 0;
    const { meta, records } = readSnapshotFile(
      opts.snapshotPath,
      (key, value) => {
        analyzer.add(key, value);
        if (isMemberIdentityKey(key)) return;
        batch.put(key, value);
        batchBytes += key.length + value.length;
        if (batchBytes >= BATCH_BYTES) {
          db.write(batch, false);
          batch = new WriteBatch();
          batchBytes = 0;
        }
        if (opts.onProgress && Date.now() - lastProgress >= PROGRESS_EVERY_MS) {
          lastProgress = Date.now();
          opts.onProgress({ records: analyzer.records, bytesRead, totalBytes });
        }
      },
      {
        skipHashCheck: opts.skipHashCheck,
        onProgress: (done, total) => {
          bytesRead = done;
          totalBytes = total;
        },
      },
    );

    // The new member: IDs as a first boot with these flags derives them; one log entry per member (as
    // etcd's restore writes a membership entry per member), all applied; a term the first boot advances.
    const members: Member[] = [];
    for (const [name, urls] of opts.initialCluster) {
      members.push({ id: computeMemberId(urls, opts.initialClusterToken), name, peerURLs: urls, clientURLs: [], isLearner: false });
    }
    const memberId = computeMemberId(opts.initialCluster.get(opts.name) as string[], opts.initialClusterToken);
    const clusterId = computeClusterId(members.map((m) => m.id));
    batch.put(META_KEYS.memberId, u64be(memberId));
    batch.put(META_KEYS.clusterId, u64be(clusterId));
    for (const m of members) batch.put(Buffer.concat([META_KEYS.memberPrefix, Buffer.from(idToHex(m.id))]), encodeMember(m));
    batch.put(META_KEYS.term, u64be(1));
    batch.put(META_KEYS.appliedIndex, u64be(members.length));
    let revision = analyzer.revision;
    let compactRevision = analyzer.compactRevision;
    if (bump > 0) {
      // etcdutl's --bump-revision with --mark-compacted: the next write gets a revision past every one a
      // client may have seen, and everything before it reads as compacted (watchers must resync).
      revision += bump;
      compactRevision = revision;
      batch.put(META_KEYS.currentRev, u64be(revision));
      batch.put(META_KEYS.scheduledCompactRev, u64be(revision));
    }
    // A synced write makes the whole restore durable.
    db.write(batch, true);
    await db.close();
    backend = undefined;
    fsyncDir(path.join(tmpRoot, 'member'));
    fsyncDir(tmpRoot);

    if (exists) {
      fs.renameSync(path.join(tmpRoot, 'member'), path.join(dataDir, 'member'));
      fs.rmdirSync(tmpRoot);
      fsyncDir(dataDir);
    } else {
      fs.renameSync(tmpRoot, dataDir);
      fsyncDir(path.dirname(dataDir));
    }
    return { memberId, clusterId, revision, compactRevision, records, meta };
  } catch (err) {
    await backend?.close().catch(() => undefined);
    fs.rmSync(tmpRoot, { recursive: true, force: true });
    if (createdParent) fs.rmSync(createdParent, { recursive: true, force: true });
    throw err;
  }
}
