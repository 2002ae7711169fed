// EtcdServer: the one place where state changes. Writes are proposed, made durable in the member's log,
// then applied in log order by the apply loop, which stores the applied index atomically with the state
// it produced (a restart replays exactly the entries after it: no double apply, no gap).
//
// This member commits on its own (a single-member cluster): an entry is committed once it is fsynced in
// the local log. The Raft node (src/raft) takes over `commit` when clusters have more than one member;
// everything above that seam (propose, wait for apply, read index) stays as it is.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Backend, Prefix, WriteBatch, prefixed, u64be } from '../storage';
import { MvccEvent, MvccStore, WatchableStore, WriteTxn } from '../mvcc';
import {
  AlarmAction,
  AlarmRequest,
  AlarmType,
  CompactionRequest,
  LeaseGrantRequest,
  LeaseRevokeRequest,
  DeleteRangeRequest,
  InternalRequest,
  PutRequest,
  RangeRequest,
  ResponseHeader,
  TxnRequest,
} from '../pb';
import { EtcdError, Errors, isEtcdError } from '../util/errors';
import { Logger } from '../util/logger';
import { messageType, TO_OBJECT } from '../util/proto';
import { metrics, secondsSince } from '../metrics';
import { LeaseLookup, applyDeleteRange, applyPut, applyTxn, checkDeleteRange, checkPut, checkRange, checkTxn, doRange, isTxnReadOnly, txnHasPut, txnPutBytes } from './apply';
import { AlarmStore } from './alarms';
import {
  EXPIRY_CHECK_INTERVAL_MS,
  LeaseErrors,
  Lessor,
  REVOKE_BATCH_LIMIT,
  leaseExtendOnPromoteMs,
  leaseRevokeRetryMs,
  minLeaseTtlSeconds,
  monotonicClock,
} from '../lease';
import { Member, computeClusterId, computeMemberId, decodeMember, encodeMember, idToHex } from './members';

/** The etcd API version this server speaks (what Status and /version report). */
export const ETCD_API_VERSION = '3.6.16';
export const CLUSTER_VERSION = '3.6.0';
export const STORAGE_VERSION = '3.6.0';

export const DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;
export const MAX_QUOTA_BYTES = 8 * 1024 * 1024 * 1024;

export interface ServerOptions {
  name: string;
  dataDir: string;
  initialAdvertisePeerUrls: string[];
  advertiseClientUrls: string[];
  /** name -> peer URLs */
  initialCluster: Map<string, string[]>;
  initialClusterToken: string;
  initialClusterState: 'new' | 'existing';
  maxTxnOps: number;
  maxRequestBytes: number;
  /** 0 = etcd's default (2 GiB) */
  quotaBackendBytes: number;
  /** keep this many applied log entries for followers to catch up from */
  snapshotCatchupEntries: number;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  /** Where the log lives (etcd's --wal-dir); default <data-dir>/member/wal. */
  walDir?: string;
  logger: Logger;
}

const META = {
  clusterId: prefixed(Prefix.meta, 'cluster/id'),
  memberId: prefixed(Prefix.meta, 'member/id'),
  term: prefixed(Prefix.meta, 'raft/term'),
  appliedIndex: prefixed(Prefix.meta, 'raft/appliedIndex'),
  logCompactedTo: prefixed(Prefix.meta, 'raft/logCompactedTo'),
  memberPrefix: 'members/',
};

const logKey = (index: number): Buffer => prefixed(Prefix.log, u64be(index));

interface Waiter {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

interface Proposal {
  id: bigint;
  data: Buffer;
}

export class EtcdServer {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  term: number;
  appliedIndex: number;
  lastIndex: number;
  private members = new Map<bigint, Member>();
  private readonly waiters = new Map<bigint, Waiter>();
  private queue: Proposal[] = [];
  private flushScheduled = false;
  private nextRequestId: bigint;
  private stopped = false;
  private readonly requestType = messageType('etcdts.InternalRequest');
  private readonly log: Logger;
  private readonly leases: LeaseLookup;
  private expiryTimer: NodeJS.Timeout | undefined;
  private compactedLogUpTo = 0;
  /** Changes applied in the current batch, handed to watchers once the batch is written. */
  private appliedChanges: { rev: number; events: MvccEvent[] }[] = [];
  readonly watchable: WatchableStore;

  private constructor(
    readonly options: ServerOptions,
    readonly backend: Backend,
    /** the log (etcd's WAL) */
    readonly wal: Backend,
    readonly mvcc: MvccStore,
    readonly alarms: AlarmStore,
    readonly lessor: Lessor,
    ids: { memberId: bigint; clusterId: bigint; term: number; appliedIndex: number; lastIndex: number },
  ) {
    this.memberId = ids.memberId;
    this.clusterId = ids.clusterId;
    this.term = ids.term;
    this.appliedIndex = ids.appliedIndex;
    this.lastIndex = ids.lastIndex;
    this.compactedLogUpTo = Math.max(0, ids.appliedIndex - options.snapshotCatchupEntries);
    this.log = options.logger;
    this.watchable = new WatchableStore(mvcc, backend, options.logger);
    this.leases = { exists: (id) => lessor.exists(BigInt(id)) };
    // Request ids: member id in the top 16 bits, a counter seeded from the clock below, like etcd's idutil.
    this.nextRequestId = ((ids.memberId & 0xffffn) << 48n) | (BigInt(Date.now()) << 8n) % (1n << 48n);
  }

  /**
   * Opens the member's two RocksDB instances: the state (MVCC, leases, membership, applied index) and the
   * log (etcd's WAL). They are apart so that the state's size — what Status.dbSize, the space quota and
   * defragment speak of — is the data's, not the data's plus the log's, as with etcd's bbolt file and WAL.
   */
  static async start(options: ServerOptions): Promise<EtcdServer> {
    const dbDir = path.join(options.dataDir, 'member', 'rocksdb');
    // An etcd member's data dir (bbolt file, WAL) is not ours to open: starting a fresh member beside it
    // would look like data loss. Refuse before creating anything.
    if (fs.existsSync(path.join(options.dataDir, 'member', 'snap', 'db')) && !fs.existsSync(path.join(options.dataDir, 'member', 'rocksdb'))) {
      throw new Error(
        `data dir ${options.dataDir} holds an etcd member (member/snap/db), which etcd-ts cannot open; ` +
          'start etcd-ts with a new --data-dir and copy the data over with a client (e.g. etcdctl get/put or make-mirror)',
      );
    }
    const walDir = options.walDir || path.join(options.dataDir, 'member', 'wal');
    const backend = await Backend.open(dbDir);
    let wal: Backend | undefined;
    try {
      wal = await Backend.open(walDir);
      return await EtcdServer.boot(options, backend, wal);
    } catch (err) {
      await wal?.close();
      await backend.close();
      throw err;
    }
  }

  private static async boot(options: ServerOptions, backend: Backend, wal: Backend): Promise<EtcdServer> {
    const log = options.logger;
    const storedMember = backend.getSync(META.memberId);
    let memberId: bigint;
    let clusterId: bigint;
    let term: number;
    const members: Member[] = [];
    const batch = new WriteBatch();
    if (storedMember) {
      memberId = storedMember.readBigUInt64BE(0);
      clusterId = (backend.getSync(META.clusterId) as Buffer).readBigUInt64BE(0);
      term = Number((backend.getSync(META.term) as Buffer).readBigUInt64BE(0)) + 1;
      await backend.scan(prefixed(Prefix.meta, META.memberPrefix), prefixed(Prefix.meta, 'members0'), (_k, v) => {
        members.push(decodeMember(v));
      });
      log.info({ 'local-member-id': idToHex(memberId), 'cluster-id': idToHex(clusterId), 'data-dir': options.dataDir }, 'restarting local member');
    } else {
      if (options.initialClusterState === 'existing') {
        throw new Error('--initial-cluster-state=existing: joining an existing cluster needs the Raft transport, which this member does not have yet');
      }
      const mine = options.initialCluster.get(options.name);
      if (!mine) {
        throw new Error(`couldn't find local name "${options.name}" in the initial cluster configuration`);
      }
      const advertised = [...options.initialAdvertisePeerUrls].sort().join(',');
      if ([...mine].sort().join(',') !== advertised) {
        throw new Error(
          `--initial-cluster has ${options.name}=${mine.join(',')} but missing from --initial-advertise-peer-urls=${options.initialAdvertisePeerUrls.join(',')}`,
        );
      }
      if (options.initialCluster.size > 1) {
        throw new Error(`--initial-cluster names ${options.initialCluster.size} members; this build runs single-member clusters only (Raft replication is not available yet)`);
      }
      for (const [name, urls] of options.initialCluster) {
        const id = computeMemberId(urls, options.initialClusterToken);
        members.push({ id, name, peerURLs: urls, clientURLs: name === options.name ? options.advertiseClientUrls : [], isLearner: false });
      }
      memberId = computeMemberId(mine, options.initialClusterToken);
      clusterId = computeClusterId(members.map((m) => m.id));
      term = 2;
      batch.put(META.memberId, u64be(memberId));
      batch.put(META.clusterId, u64be(clusterId));
      for (const m of members) batch.put(prefixed(Prefix.meta, META.memberPrefix + idToHex(m.id)), encodeMember(m));
      log.info({ 'local-member-id': idToHex(memberId), 'cluster-id': idToHex(clusterId), 'data-dir': options.dataDir }, 'starting local member for a new cluster');
    }
    // Our client URLs may change between restarts (as etcd's publish does on start).
    const self = members.find((m) => m.id === memberId);
    if (self) {
      self.clientURLs = options.advertiseClientUrls;
      self.name = options.name;
      batch.put(prefixed(Prefix.meta, META.memberPrefix + idToHex(self.id)), encodeMember(self));
    }
    // Each start is a new term, as a restarted single member wins a new election.
    batch.put(META.term, u64be(term));
    backend.write(batch, true);

    const lessor = await Lessor.load(backend, monotonicClock, {
      minTtlSeconds: minLeaseTtlSeconds(options.electionTimeoutMs, options.heartbeatIntervalMs),
      extendMs: leaseExtendOnPromoteMs(options.electionTimeoutMs, options.heartbeatIntervalMs),
      expiredRetryMs: leaseRevokeRetryMs(options.electionTimeoutMs, options.heartbeatIntervalMs),
    });
    const mvcc = await MvccStore.open(backend, log);
    // Which keys each lease holds is not stored apart: it is what the live keys say.
    let orphaned = 0;
    for (const [key, lease] of mvcc.restoredLeaseAttachments ?? []) {
      if (!lessor.attach(BigInt(lease), key)) orphaned++;
    }
    mvcc.restoredLeaseAttachments = undefined;
    if (orphaned > 0) log.warn({ keys: orphaned }, 'keys name leases that no longer exist');
    log.info({ leases: lessor.size }, 'restored leases');
    const applied = backend.getSync(META.appliedIndex);
    const appliedIndex = applied ? Number(applied.readBigUInt64BE(0)) : 0;
    let lastIndex = appliedIndex;
    const pending: { index: number; data: Buffer }[] = [];
    await wal.scan(logKey(appliedIndex + 1), prefixed(Prefix.log + 1, Buffer.alloc(0)), (k, v) => {
      const index = Number(k.readBigUInt64BE(1));
      pending.push({ index, data: v.subarray(8) });
      lastIndex = index;
    });
    if (lastIndex === 0) {
      // the log's own bookkeeping: find the newest entry even if all of it is applied
      await wal.scan(logKey(0), prefixed(Prefix.log + 1, Buffer.alloc(0)), (k) => {
        lastIndex = Math.max(lastIndex, Number(k.readBigUInt64BE(1)));
      });
    }
    const alarms = await AlarmStore.load(backend);
    const server = new EtcdServer(options, backend, wal, mvcc, alarms, lessor, { memberId, clusterId, term, appliedIndex, lastIndex });
    for (const m of members) server.members.set(m.id, m);
    if (pending.length > 0) {
      log.info({ entries: pending.length, from: pending[0].index, to: lastIndex }, 'replaying committed log entries not yet applied');
      server.applyEntries(pending);
    }
    server.lastIndex = Math.max(lastIndex, server.appliedIndex);
    metrics.hasLeader.set(1);
    metrics.isLeader.set(1);
    metrics.isLearner.set(0);
    metrics.leaderChanges.inc();
    metrics.serverId.set({ server_id: idToHex(memberId) }, 1);
    metrics.serverVersion.set({ server_version: ETCD_API_VERSION }, 1);
    metrics.quotaBackendBytes.set(server.quotaBytes());
    metrics.proposalsCommitted.set(server.lastIndex);
    metrics.proposalsApplied.set(server.appliedIndex);
    log.info({ 'local-member-id': idToHex(memberId), term, 'applied-index': server.appliedIndex }, 'elected leader of a single-member cluster');
    server.startLeaseExpiry();
    return server;
  }

  quotaBytes(): number {
    return this.options.quotaBackendBytes > 0 ? this.options.quotaBackendBytes : DEFAULT_QUOTA_BYTES;
  }

  header(revision?: number): ResponseHeader {
    return {
      cluster_id: this.clusterId.toString(),
      member_id: this.memberId.toString(),
      revision: revision ?? this.mvcc.currentRev,
      raft_term: this.term,
    };
  }

  memberList(): Member[] {
    return [...this.members.values()];
  }

  leaderId(): bigint {
    return this.memberId;
  }

  // -------------------------------------------------------------------------------------------------
  // Client operations

  range(r: RangeRequest): { header: ResponseHeader; kvs: unknown[]; more: boolean; count: number | string } {
    checkRange(r);
    // Serializable and linearizable reads are the same here: a single member applies every committed
    // entry before it answers anything else, so its state is always the latest committed one.
    const resp = doRange(this.mvcc, r);
    return { header: this.header(), ...resp };
  }

  async put(r: PutRequest): Promise<unknown> {
    checkPut(r);
    this.checkQuota(r.key.length + r.value.length);
    return this.propose({ request: 'put', put: r });
  }

  private sizeCache = { at: 0, generation: -1, total: 0, inUse: 0 };
  /**
   * The state database's size on disk and RocksDB's estimate of its live bytes, re-read at most once a
   * second (a directory listing) and at once after a defragment swapped the database.
   */
  dbSizes(): { total: number; inUse: number } {
    const now = Date.now();
    const c = this.sizeCache;
    if (now - c.at > 1000 || c.generation !== this.backend.generation) {
      const total = this.backend.sizeOnDisk();
      this.sizeCache = { at: now, generation: this.backend.generation, total, inUse: Math.min(total, this.backend.liveDataSize()) };
    }
    return this.sizeCache;
  }

  dbSize(): number {
    return this.dbSizes().total;
  }

  /**
   * etcd's space quota: a write that would take the database past --quota-backend-bytes is refused with
   * "database space exceeded" and raises the NOSPACE alarm, which keeps refusing writes that add data
   * until an operator compacts, defragments and disarms it.
   */
  private checkQuota(cost: number): void {
    if (this.alarms.has(AlarmType.NOSPACE)) throw Errors.noSpace();
    if (this.dbSize() + cost <= this.quotaBytes()) return;
    this.log.warn({ 'quota-size-bytes': this.quotaBytes(), 'current-db-size-bytes': this.dbSize(), 'request-cost-bytes': cost }, 'database space exceeded; raising NOSPACE alarm');
    this.alarm({ action: AlarmAction.ACTIVATE, memberID: this.memberId.toString(), alarm: AlarmType.NOSPACE }).catch((err: unknown) =>
      this.log.warn({ err }, 'failed to raise the NOSPACE alarm'),
    );
    throw Errors.noSpace();
  }

  async deleteRange(r: DeleteRangeRequest): Promise<unknown> {
    checkDeleteRange(r);
    return this.propose({ request: 'delete_range', delete_range: r });
  }

  async txn(r: TxnRequest): Promise<unknown> {
    checkTxn(r, { maxTxnOps: this.options.maxTxnOps });
    if (isTxnReadOnly(r)) {
      // Reads only: served from the applied state like a Range, without a log entry (as etcd does).
      const txn = this.mvcc.beginWrite();
      const resp = applyTxn(txn, r, this.leases);
      return { header: this.header(txn.rev), ...resp };
    }
    if (txnHasPut(r)) this.checkQuota(txnPutBytes(r));
    return this.propose({ request: 'txn', txn: r });
  }

  // -------------------------------------------------------------------------------------------------
  // Leases

  async leaseGrant(r: LeaseGrantRequest): Promise<unknown> {
    const ttl = Number(r.TTL);
    this.lessor.checkTtl(ttl);
    // The id is chosen before proposing, so every member applies the same one.
    const id = BigInt(r.ID) !== 0n ? BigInt(r.ID) : this.nextRequestId++ & ((1n << 63n) - 1n);
    if (this.alarms.has(AlarmType.NOSPACE)) throw Errors.noSpace();
    return this.propose({ request: 'lease_grant', lease_grant: { ID: id.toString(), TTL: ttl } });
  }

  async leaseRevoke(r: LeaseRevokeRequest): Promise<unknown> {
    if (!this.lessor.exists(BigInt(r.ID))) throw LeaseErrors.leaseNotFound();
    return this.propose({ request: 'lease_revoke', lease_revoke: { ID: String(r.ID) } });
  }

  /** Proposes revokes for expired leases every half second (etcd's pace: at most 500 per round). */
  private startLeaseExpiry(): void {
    this.expiryTimer = setInterval(() => {
      if (this.stopped) return;
      for (const id of this.lessor.expired(REVOKE_BATCH_LIMIT)) {
        this.propose({ request: 'lease_revoke', lease_revoke: { ID: id.toString() } }).then(
          () => this.log.debug({ 'lease-id': id.toString(16) }, 'revoked expired lease'),
          (err: unknown) => {
            if (!(err instanceof Error && err.message === LeaseErrors.leaseNotFound().message)) {
              this.log.warn({ err, 'lease-id': id.toString(16) }, 'failed to revoke an expired lease');
            }
          },
        );
      }
    }, EXPIRY_CHECK_INTERVAL_MS);
    this.expiryTimer.unref();
  }

  /** Alarm requests go through the log, as in etcd (so even a GET advances the raft index). */
  async alarm(r: AlarmRequest): Promise<unknown> {
    return this.propose({ request: 'alarm', alarm: r });
  }

  async compact(r: CompactionRequest): Promise<unknown> {
    const result = (await this.propose({ request: 'compaction', compaction: r })) as { header: ResponseHeader; done?: Promise<void> };
    if (r.physical && result.done) await result.done;
    return { header: result.header };
  }

  // -------------------------------------------------------------------------------------------------
  // Proposals and the apply loop

  private propose(req: Omit<InternalRequest, 'id'>): Promise<unknown> {
    if (this.stopped) return Promise.reject(Errors.stopped());
    const id = this.nextRequestId++;
    const msg = this.requestType.fromObject({ ...req, id: id.toString() });
    const data = Buffer.from(this.requestType.encode(msg).finish());
    if (data.length > this.options.maxRequestBytes) return Promise.reject(Errors.requestTooLarge());
    return new Promise((resolve, reject) => {
      this.waiters.set(id, { resolve, reject });
      this.queue.push({ id, data });
      metrics.proposalsPending.inc();
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Appends every queued proposal to the log with one fsync (group commit), then applies them. */
  private flush(): void {
    this.flushScheduled = false;
    const proposals = this.queue;
    this.queue = [];
    if (proposals.length === 0) return;
    metrics.proposalsPending.dec(proposals.length);
    const batch = new WriteBatch();
    const entries: { index: number; data: Buffer }[] = [];
    const header = u64be(this.term);
    for (const p of proposals) {
      const index = ++this.lastIndex;
      batch.put(logKey(index), Buffer.concat([header, p.data]));
      entries.push({ index, data: p.data });
    }
    const started = process.hrtime.bigint();
    try {
      this.wal.write(batch, true);
    } catch (err) {
      this.fatal(err, 'failed to persist log entries');
      return;
    }
    metrics.walFsyncDuration.observe(secondsSince(started));
    metrics.proposalsCommitted.set(this.lastIndex);
    this.applyEntries(entries);
  }

  /** Applies committed entries in order; one state write for the whole batch, then answers waiters. */
  private applyEntries(entries: { index: number; data: Buffer }[]): void {
    const batch = new WriteBatch();
    const results: { id: bigint; ok: boolean; value: unknown }[] = [];
    for (const entry of entries) {
      if (entry.index <= this.appliedIndex) continue;
      const req = this.requestType.toObject(this.requestType.decode(entry.data), TO_OBJECT) as InternalRequest;
      const id = BigInt(req.id);
      try {
        results.push({ id, ok: true, value: this.applyOne(req, batch) });
      } catch (err) {
        if (!isEtcdError(err)) {
          // A bug or corrupt entry: stop before writing anything, so a restart replays from a clean state.
          this.fatal(err, 'failed to apply a committed entry');
          return;
        }
        results.push({ id, ok: false, value: err });
      }
      this.appliedIndex = entry.index;
    }
    batch.put(META.appliedIndex, u64be(this.appliedIndex));
    const started = process.hrtime.bigint();
    this.backend.write(batch, false);
    this.mvcc.flushed();
    metrics.backendCommitDuration.observe(secondsSince(started));
    const changes = this.appliedChanges;
    this.appliedChanges = [];
    for (const c of changes) this.watchable.notify(c.rev, c.events);
    metrics.proposalsApplied.set(this.appliedIndex);
    for (const r of results) {
      const w = this.waiters.get(r.id);
      if (!w) continue;
      this.waiters.delete(r.id);
      if (r.ok) w.resolve(r.value);
      else {
        metrics.proposalsFailed.inc();
        w.reject(r.value as EtcdError);
      }
    }
    this.maybeCompactLog();
  }

  /** Commits a write txn into the batch and remembers its events for the watchers. */
  private commitTxn(txn: WriteTxn, batch: WriteBatch): void {
    txn.commit(batch);
    if (!txn.changed) return;
    this.appliedChanges.push({ rev: txn.main, events: txn.events });
    // Keep each lease's key set in step with the keys: a put moves a key to its new lease, a delete frees it.
    for (const ev of txn.events) {
      const key = ev.kv.key.toString('latin1');
      const before = ev.prevKv?.lease ?? '0';
      const after = ev.type === 0 ? ev.kv.lease : '0';
      if (before === after) continue;
      if (before !== '0') this.lessor.detach(BigInt(before), key);
      if (after !== '0') this.lessor.attach(BigInt(after), key);
    }
  }

  private applyOne(req: InternalRequest, batch: WriteBatch): unknown {
    switch (req.request) {
      case 'put': {
        if (this.alarms.has(AlarmType.NOSPACE)) throw Errors.noSpace();
        const txn = this.mvcc.beginWrite();
        const resp = applyPut(txn, req.put as PutRequest, this.leases);
        this.commitTxn(txn, batch);
        return { header: this.header(txn.rev), ...resp };
      }
      case 'delete_range': {
        const txn = this.mvcc.beginWrite();
        const resp = applyDeleteRange(txn, req.delete_range as DeleteRangeRequest);
        this.commitTxn(txn, batch);
        return { header: this.header(txn.rev), ...resp };
      }
      case 'txn': {
        const txn = this.mvcc.beginWrite();
        if (this.alarms.has(AlarmType.NOSPACE) && txnHasPut(req.txn as TxnRequest)) throw Errors.noSpace();
        metrics.mvccTxn.inc();
        const resp = applyTxn(txn, req.txn as TxnRequest, this.leases);
        this.commitTxn(txn, batch);
        return { header: this.header(txn.rev), ...resp };
      }
      case 'compaction': {
        const c = req.compaction as CompactionRequest;
        const { done } = this.mvcc.compact(Number(c.revision), batch);
        done.then(
          () => this.log.info({ 'compact-revision': Number(c.revision) }, 'finished scheduled compaction'),
          (err: unknown) => this.fatal(err, 'compaction failed'),
        );
        return { header: this.header(), done };
      }
      case 'lease_grant': {
        const g = req.lease_grant as LeaseGrantRequest;
        const granted = this.lessor.grant(BigInt(g.ID), Number(g.TTL), batch);
        return { header: this.header(), ID: granted.id.toString(), TTL: granted.ttl };
      }
      case 'lease_revoke': {
        const id = BigInt((req.lease_revoke as LeaseRevokeRequest).ID);
        const keys = this.lessor.revoke(id, batch);
        // Every attached key goes in one write txn: one revision for the whole revoke.
        const txn = this.mvcc.beginWrite();
        for (const key of keys) txn.deleteRange(Buffer.from(key, 'latin1'), undefined);
        this.commitTxn(txn, batch);
        return { header: this.header(txn.rev) };
      }
      case 'alarm': {
        const alarms = this.alarms.apply(req.alarm as AlarmRequest, batch);
        return { header: this.header(), alarms };
      }
      default:
        throw new Error(`unknown request in log entry: ${JSON.stringify(req.request)}`);
    }
  }

  /** Drops log entries that are applied and older than the catch-up window. */
  private maybeCompactLog(): void {
    const keep = this.options.snapshotCatchupEntries;
    const upTo = this.appliedIndex - keep;
    if (upTo - this.compactedLogUpTo < Math.max(1000, keep / 5)) return;
    const from = this.compactedLogUpTo + 1;
    this.compactedLogUpTo = upTo;
    // The state these entries produced was written without fsync; make it durable before the entries
    // that could rebuild it go (a sync write flushes every earlier write of that RocksDB).
    const mark = new WriteBatch();
    mark.put(META.logCompactedTo, u64be(upTo));
    this.backend.write(mark, true);
    this.wal.deleteRange(logKey(from), logKey(upTo + 1)).catch((err) => this.fatal(err, 'failed to compact the log'));
  }

  private fatal(err: unknown, msg: string): never {
    this.log.fatal({ err }, msg);
    // Fail-stop: in-memory state may be ahead of disk; a restart rebuilds it from the durable log.
    process.exit(1);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.watchable.stop();
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    this.lessor.close();
    if (this.flushScheduled || this.queue.length > 0) this.flush();
    for (const w of this.waiters.values()) w.reject(Errors.stopped());
    this.waiters.clear();
    await this.mvcc.compactionsDone().catch(() => undefined);
    await this.wal.close();
    await this.backend.close();
  }
}
