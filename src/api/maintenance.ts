// etcdserverpb.Maintenance: Status, Alarm, Hash, HashKV, Snapshot, Defragment, MoveLeader (Downgrade comes
// with its issue).
import * as path from 'node:path';
import { ETCD_API_VERSION, STORAGE_VERSION } from '../server';
import { AlarmRequest } from '../pb';
import { SnapshotSink, sendSnapshot, writeSnapshotFile } from '../snapshot';
import { ApiDeps, ServiceModule } from './service';

const ALARM_NAMES: Record<number, string> = { 0: 'NONE', 1: 'NOSPACE', 2: 'CORRUPT' };

export function maintenanceService({ server, log, dbSize, dbSizeInUse }: ApiDeps): ServiceModule {
  return {
    service: 'etcdserverpb.Maintenance',
    unary: {
      Status: () => ({
        header: server.header(),
        version: ETCD_API_VERSION,
        dbSize: dbSize(),
        leader: server.leaderId().toString(),
        raftIndex: server.commitIndex,
        raftTerm: server.term,
        raftAppliedIndex: server.appliedIndex,
        // etcd lists each raised alarm in protobuf text form
        errors: [
          ...(server.leaderId() === 0n ? ['etcdserver: no leader'] : []),
          ...server.alarms.list().map((a) => `memberID:${a.memberID} alarm:${ALARM_NAMES[a.alarm] ?? a.alarm} `),
        ],
        dbSizeInUse: dbSizeInUse(),
        isLearner: server.isLearner,
        storageVersion: STORAGE_VERSION,
        dbSizeQuota: server.quotaBytes(),
        downgradeInfo: { target_version: '', enabled: false },
      }),
      Alarm: (r: AlarmRequest) => server.alarm(r),
      // Only the leader hands leadership over (etcdctl move-leader finds it); etcd's reply has no header.
      MoveLeader: async (r: { targetID: string }) => {
        await server.moveLeader(BigInt(r.targetID));
        return { header: server.header() };
      },
      Hash: async () => ({ header: server.header(), hash: await server.mvcc.hashAll() }),
      HashKV: async (r: { revision: string }) => {
        const h = await server.mvcc.hashKV(Number(r.revision));
        return { header: server.header(), hash: h.hash, compact_revision: h.compactRev, hash_revision: h.hashRev };
      },
      // Rewrites the backend into a fresh database (see Backend.defragment); requests wait meanwhile.
      // etcd answers with an empty response (no header).
      Defragment: async () => {
        log.info({}, 'starting defragment');
        try {
          await server.backend.defragment(log);
        } catch (err) {
          log.warn({ err: err instanceof Error ? err.message : String(err) }, 'failed to defragment');
          throw err;
        }
        log.info({}, 'finished defragment');
        return {};
      },
    },
    serverStream: {
      // A point-in-time snapshot in etcd's framing; the content is etcd-ts's format (src/snapshot).
      Snapshot: async (_r: unknown, call) => {
        const file = await writeSnapshotFile(
          server.backend,
          path.dirname(path.resolve(server.backend.dir)),
          { storageVersion: STORAGE_VERSION, etcdVersion: ETCD_API_VERSION, createdAt: new Date().toISOString() },
          log,
        );
        try {
          await sendSnapshot(file, call as unknown as SnapshotSink, STORAGE_VERSION, log);
        } finally {
          await file.dispose();
        }
      },
    },
  };
}
