// EtcdServer: the one place where state changes. Writes are proposed, made durable in the member's log,
// then applied in log order by the apply loop, which stores the applied index atomically with the state
// it produced (a restart replays exactly the entries after it: no double apply, no gap).
//
// Raft (src/raft) decides what is committed: proposals go to the Raft node (followers' are forwarded to
// the leader), each Ready is persisted to the member's log before its messages leave, and committed
// entries are applied here in order. Linearizable reads wait for a read index (etcd's ReadIndex).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { status as grpcStatus } from '@grpc/grpc-js';
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
import { EtcdError, Errors, errorFromWire, isEtcdError } from '../util/errors';
import { Logger } from '../util/logger';
import { messageType, TO_OBJECT } from '../util/proto';
import { metrics, secondsSince } from '../metrics';
import { LeaseLookup, applyDeleteRange, applyPut, applyTxn, checkDeleteRange, checkPut, checkRange, checkTxn, doRange, isTxnReadOnly, txnHasPut, txnPutBytes } from './apply';
import { AlarmStore } from './alarms';
import {
  EXPIRY_CHECK_INTERVAL_MS,
  LeaseErrors,
  LeaseExpiredError,
  Lessor,
  REVOKE_BATCH_LIMIT,
  leaseExtendOnPromoteMs,
  leaseRevokeRetryMs,
  minLeaseTtlSeconds,
  monotonicClock,
} from '../lease';
import type { TimeToLive } from '../lease';
import { Member, computeClusterId, computeMemberId, decodeMember, encodeMember, idToHex } from './members';
import {
  ConfChange,
  ConfChangeType,
  ConfState,
  Entry,
  EntryType,
  MemoryStorage,
  Message,
  MessageType,
  NONE,
  Peer,
  ProposalDroppedError,
  RaftLogger,
  RawNode,
  ReadState,
  StateType,
  decodeConfChange,
  encodeConfChange,
  isEmptySnapshot,
} from '../raft';
import { LoadedLog, RaftLog } from './raftlog';
import * as bcrypt from 'bcryptjs';
import { AuthErrors, AuthStore, SimpleTokens } from '../auth';
import { requestAuth } from '../auth/context';
import { JwtTokens } from '../auth/jwt';
import type { AuthTokenSpec } from '../config/authtoken';
import { writeSnapshotFile } from '../snapshot/create';
import { readSnapshotFile } from '../snapshot/file';

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
  /** local snapshot (and log compaction) every this many applied entries (etcd's --snapshot-count) */
  snapshotCount?: number;
  strictReconfigCheck?: boolean;
  preVote?: boolean;
  initialElectionTickAdvance?: boolean;
  forceNewCluster?: boolean;
  /** --auth-token-ttl (seconds) for simple tokens */
  authTokenTtlSeconds?: number;
  /** --bcrypt-cost */
  bcryptCost?: number;
  /** --auth-token (simple by default; jwt signs stateless tokens) */
  authToken?: AuthTokenSpec;
  logger: Logger;
}

const META = {
  clusterId: prefixed(Prefix.meta, 'cluster/id'),
  memberId: prefixed(Prefix.meta, 'member/id'),
  appliedIndex: prefixed(Prefix.meta, 'raft/appliedIndex'),
  memberPrefix: 'members/',
  /** ids of removed members: they may never come back */
  removedPrefix: 'removed/',
  /** indexes of membership changes the application refused */
  rejectedPrefix: 'ccrejected/',
};

/** What the server needs of the peer transport (src/transport implements it). */
export interface RaftTransport {
  send(msgs: Message[]): void;
  sendSnapshot(msg: Message, open: () => NodeJS.ReadableStream): void;
  addPeer(id: bigint, urls: string[]): void;
  updatePeer(id: bigint, urls: string[]): void;
  removePeer(id: bigint): void;
  /** ms timestamp since the peer has been continuously reachable; undefined when it is not */
  activeSince(id: bigint): number | undefined;
  callPeer(id: bigint, op: string, body: unknown, timeoutMs: number): Promise<unknown>;
}

/** The cluster as a peer reports it (GET /members), for a member joining with --initial-cluster-state=existing. */
export interface FetchedCluster {
  clusterId: bigint;
  members: Member[];
}

interface Waiter {
  resolve(value: unknown): void;
  reject(err: Error): void;
  startedAt: number;
  deadline: number;
}

interface Proposal {
  id: bigint;
  data?: Buffer;
  cc?: ConfChange;
}

interface ReadWaiter {
  resolve(): void;
  reject(err: Error): void;
  deadline: number;
}

/** etcd's ReqTimeout: 5 s plus two election timeouts. */
function requestTimeoutMs(electionMs: number): number {
  return 5000 + 2 * electionMs;
}

const READ_RETRY_MS = 500;
/** etcd's HealthInterval: how long peers must have been connected for a reconfiguration to be safe. */
const HEALTH_INTERVAL_MS = 5000;
/** A learner may be promoted once its log has 90% of the leader's (etcd's readyPercentThreshold). */
const LEARNER_READY_PERCENT = 0.9;
const MAX_LEARNERS = 1;

export class EtcdServer {
  readonly memberId: bigint;
  clusterId: bigint;
  appliedIndex: number;
  private members = new Map<bigint, Member>();
  private removed = new Set<bigint>();
  private readonly waiters = new Map<bigint, Waiter>();
  private queue: Proposal[] = [];
  private flushScheduled = false;
  private readyScheduled = false;
  private inReady = false;
  private nextRequestId: bigint;
  private stopped = false;
  private readonly requestType = messageType('etcdts.InternalRequest');
  private readonly log: Logger;
  private readonly leases: LeaseLookup;
  private expiryTimer: NodeJS.Timeout | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private publishTimer: NodeJS.Timeout | undefined;
  /** Changes applied in the current batch, handed to watchers once the batch is written. */
  private appliedChanges: { rev: number; events: MvccEvent[] }[] = [];
  readonly watchable: WatchableStore;
  private transport: RaftTransport | undefined;
  private confState: ConfState = { voters: [], learners: [] };
  /** the leader as this member knows it (NONE while there is none) */
  lead: bigint = NONE;
  private raftState: StateType = StateType.Follower;
  /** when the current leader became known (ms), and when the previous one was lost */
  private leaderElectedAt = 0;
  private snapshotIndex: number;
  private readonly electionTicks: number;
  private readonly reqTimeoutMs: number;
  private pendingReads: ReadWaiter[] = [];
  private readInFlight: { ctx: string; waiters: ReadWaiter[]; sentAt: number } | undefined;
  private readsAwaitingApply: { index: number; waiters: ReadWaiter[] }[] = [];
  /** conf-change entries the application refused, by index (replayed to Raft the same way on restart) */
  private rejectedConfChanges = new Set<number>();
  /** simple tokens handed out by Authenticate (learnt from the log by every member) */
  readonly tokens: SimpleTokens;
  /** set with --auth-token jwt: tokens are signed claims instead of simple tokens */
  readonly jwt: JwtTokens | undefined;
  /** invoked once this member has applied its own removal */
  onRemoved: (() => void) | undefined;

  private constructor(
    readonly options: ServerOptions,
    readonly backend: Backend,
    /** the log (etcd's WAL) */
    readonly wal: Backend,
    readonly mvcc: MvccStore,
    /** replaced when a Raft snapshot brings a new state (as are the lessor's leases) */
    public alarms: AlarmStore,
    public lessor: Lessor,
    /** users, roles, permissions (replaced with the state by a Raft snapshot) */
    public auth: AuthStore,
    readonly node: RawNode,
    readonly storage: MemoryStorage,
    private readonly raftLog: RaftLog,
    ids: { memberId: bigint; clusterId: bigint; appliedIndex: number; snapshotIndex: number },
  ) {
    this.tokens = new SimpleTokens(1000 * (options.authTokenTtlSeconds || 300));
    const spec = options.authToken;
    this.jwt = spec?.type === 'jwt' ? new JwtTokens(spec) : undefined;
    this.memberId = ids.memberId;
    this.clusterId = ids.clusterId;
    this.appliedIndex = ids.appliedIndex;
    this.snapshotIndex = ids.snapshotIndex;
    this.log = options.logger;
    this.electionTicks = electionTicksOf(options);
    this.reqTimeoutMs = requestTimeoutMs(options.electionTimeoutMs);
    this.watchable = new WatchableStore(mvcc, backend, options.logger);
    this.leases = { exists: (id) => this.lessor.exists(BigInt(id)) };
    // Request ids: member id in the top 16 bits, a counter seeded from the clock below, like etcd's idutil.
    this.nextRequestId = ((ids.memberId & 0xffffn) << 48n) | (BigInt(Date.now()) << 8n) % (1n << 48n);
  }

  /**
   * Opens the member's two RocksDB instances: the state (MVCC, leases, membership, applied index) and the
   * log (etcd's WAL). They are apart so that the state's size — what Status.dbSize, the space quota and
   * defragment speak of — is the data's, not the data's plus the log's, as with etcd's bbolt file and WAL.
   */
  static async start(options: ServerOptions, fetchCluster?: () => Promise<FetchedCluster>): Promise<EtcdServer> {
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
      return await EtcdServer.boot(options, backend, wal, fetchCluster);
    } catch (err) {
      await wal?.close();
      await backend.close();
      throw err;
    }
  }

  private static async boot(options: ServerOptions, backend: Backend, wal: Backend, fetchCluster?: () => Promise<FetchedCluster>): Promise<EtcdServer> {
    const log = options.logger;
    const raftLog = new RaftLog(wal);
    const loaded = await raftLog.load();
    const applied = backend.getSync(META.appliedIndex);
    const appliedIndex = applied ? Number(applied.readBigUInt64BE(0)) : 0;
    const stored: Member[] = [];
    await backend.scan(prefixed(Prefix.meta, META.memberPrefix), prefixed(Prefix.meta, 'members0'), (_k, v) => {
      stored.push(decodeMember(v));
    });
    let memberId: bigint;
    let clusterId: bigint;
    let bootstrapPeers: Peer[] | undefined;
    let joinPeers: Member[] = [];
    const storedMember = backend.getSync(META.memberId);
    if (!loaded.empty) {
      if (!storedMember) throw new Error('the data dir has a log but no member identity; it is damaged');
      memberId = storedMember.readBigUInt64BE(0);
      clusterId = (backend.getSync(META.clusterId) as Buffer).readBigUInt64BE(0);
      log.info({ 'local-member-id': idToHex(memberId), 'cluster-id': idToHex(clusterId), 'data-dir': options.dataDir }, 'restarting local member');
    } else if (storedMember && appliedIndex > 0) {
      // A restored data dir (`snapshot restore`): state and membership without a log. The log starts with
      // a snapshot at the restored applied index holding the restored members, as etcd's restore does.
      memberId = storedMember.readBigUInt64BE(0);
      clusterId = (backend.getSync(META.clusterId) as Buffer).readBigUInt64BE(0);
      const voters = stored.filter((m) => !m.isLearner).map((m) => m.id).sort(cmpId);
      const learners = stored.filter((m) => m.isLearner).map((m) => m.id).sort(cmpId);
      const snapshot = { index: appliedIndex, term: 1, confState: { voters, learners } };
      await raftLog.compact(snapshot, appliedIndex);
      raftLog.save({ entries: [], hardState: { term: 1, vote: NONE, commit: appliedIndex }, sync: true, firstIndex: 1, lastIndex: 0 });
      loaded.storage.applySnapshot({ metadata: snapshot, data: new Uint8Array(0) });
      loaded.storage.setHardState({ term: 1, vote: NONE, commit: appliedIndex });
      loaded.snapshot = snapshot;
      log.info({ 'local-member-id': idToHex(memberId), 'cluster-id': idToHex(clusterId), 'applied-index': appliedIndex }, 'starting a member from a restored snapshot');
    } else if (options.initialClusterState === 'existing') {
      if (!fetchCluster) throw new Error('--initial-cluster-state=existing needs the peer transport');
      const mine = [...options.initialAdvertisePeerUrls].sort().join(',');
      const cluster = await fetchCluster();
      const me = cluster.members.find((m) => [...m.peerURLs].sort().join(',') === mine);
      if (!me) {
        throw new Error(
          `the cluster has no member with peer URLs ${mine}; add this member first (etcdctl member add ${options.name} --peer-urls=${mine})`,
        );
      }
      memberId = me.id;
      clusterId = cluster.clusterId;
      joinPeers = cluster.members;
      log.info({ 'local-member-id': idToHex(memberId), 'cluster-id': idToHex(clusterId), members: cluster.members.length }, 'joining an existing cluster');
    } else {
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
      const members: Member[] = [];
      for (const [name, urls] of options.initialCluster) {
        members.push({ id: computeMemberId(urls, options.initialClusterToken), name, peerURLs: urls, clientURLs: [], isLearner: false });
      }
      const ids = new Set(members.map((m) => m.id));
      if (ids.size !== members.length) throw new Error('--initial-cluster has duplicate peer URLs');
      memberId = computeMemberId(mine, options.initialClusterToken);
      clusterId = computeClusterId(members.map((m) => m.id));
      // Every initial member writes the same first entries: one membership change per member.
      bootstrapPeers = members.sort((a, b) => cmpId(a.id, b.id)).map((m) => ({ id: m.id, context: encodeMember(m) }));
      log.info({ 'local-member-id': idToHex(memberId), 'cluster-id': idToHex(clusterId), 'data-dir': options.dataDir }, 'starting local member for a new cluster');
    }
    // The identity is durable before the log's first write, so a crash in between restarts the same way.
    const idBatch = new WriteBatch();
    idBatch.put(META.memberId, u64be(memberId));
    idBatch.put(META.clusterId, u64be(clusterId));
    backend.write(idBatch, true);

    if (options.forceNewCluster && !loaded.empty) forceNewCluster(raftLog, loaded, memberId, log);

    const lessor = await Lessor.load(backend, monotonicClock, {
      minTtlSeconds: minLeaseTtlSeconds(options.electionTimeoutMs, options.heartbeatIntervalMs),
      extendMs: leaseExtendOnPromoteMs(options.electionTimeoutMs, options.heartbeatIntervalMs),
      expiredRetryMs: leaseRevokeRetryMs(options.electionTimeoutMs, options.heartbeatIntervalMs),
      primary: false,
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
    const alarms = await AlarmStore.load(backend);
    const node = new RawNode({
      id: memberId,
      storage: loaded.storage,
      electionTick: electionTicksOf(options),
      heartbeatTick: 1,
      random: { nextInt: (bound: number) => crypto.randomInt(Math.max(1, bound)) },
      applied: loaded.snapshot.index,
      checkQuorum: true,
      preVote: options.preVote ?? true,
      maxSizePerMsg: 1024 * 1024,
      maxInflightMsgs: 512,
      maxUncommittedEntriesSize: 1 << 30,
      logger: raftLogger(log),
    });
    if (bootstrapPeers) node.bootstrap(bootstrapPeers);
    const auth = await AuthStore.load(backend);
    const server = new EtcdServer(options, backend, wal, mvcc, alarms, lessor, auth, node, loaded.storage, raftLog, {
      memberId,
      clusterId,
      appliedIndex,
      snapshotIndex: loaded.snapshot.index,
    });
    server.confState = node.raft.tracker.confState();
    await server.loadMembership();
    server.joinPeers = joinPeers;
    const pending = Math.max(0, loaded.hardState.commit - appliedIndex);
    if (pending > 0) log.info({ entries: pending, from: appliedIndex + 1, to: loaded.hardState.commit }, 'replaying committed log entries not yet applied');
    // The first Ready persists a bootstrap and redelivers committed entries (applying those not yet applied).
    server.processReady();
    metrics.hasLeader.set(0);
    metrics.isLeader.set(0);
    metrics.isLearner.set(server.members.get(memberId)?.isLearner ? 1 : 0);
    metrics.serverId.set({ server_id: idToHex(memberId) }, 1);
    metrics.serverVersion.set({ server_version: ETCD_API_VERSION }, 1);
    metrics.quotaBackendBytes.set(server.quotaBytes());
    metrics.proposalsCommitted.set(server.commitIndex);
    metrics.proposalsApplied.set(server.appliedIndex);
    return server;
  }

  /** Members learnt from a peer when joining (the transport must reach them before the log says who they are). */
  private joinPeers: Member[] = [];

  /**
   * Starts ticking and talking: the transport reaches every known member. A lone voter campaigns at once;
   * others fast-forward their election clock (etcd's initial-election-tick-advance) so a new cluster
   * elects a leader within about one election timeout.
   */
  run(transport: RaftTransport | undefined): void {
    this.transport = transport;
    for (const m of [...this.joinPeers, ...this.members.values()]) {
      if (m.id !== this.memberId) transport?.addPeer(m.id, m.peerURLs);
    }
    const voters = this.confState.voters;
    if (voters.length === 1 && voters[0] === this.memberId) {
      this.node.campaign();
    } else if (this.options.initialElectionTickAdvance ?? true) {
      for (let i = 0; i < this.electionTicks - 1; i++) this.node.tick();
    }
    this.processReady();
    this.tickTimer = setInterval(() => this.onTick(), this.options.heartbeatIntervalMs);
    this.startLeaseExpiry();
    this.publishTimer = setInterval(() => this.publish(), 200);
    this.publishTimer.unref();
  }

  get term(): number {
    return this.node.raft.term;
  }

  get commitIndex(): number {
    return this.node.raft.log.committed;
  }

  get lastIndex(): number {
    return this.node.raft.log.lastIndex();
  }

  get isLearner(): boolean {
    return this.members.get(this.memberId)?.isLearner ?? false;
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
    return [...this.members.values()].sort((a, b) => cmpId(a.id, b.id));
  }

  leaderId(): bigint {
    return this.lead;
  }

  isLeader(): boolean {
    return this.lead === this.memberId && this.raftState === StateType.Leader;
  }

  // -------------------------------------------------------------------------------------------------
  // Client operations

  /** A read of the applied state as it is now (serializable). */
  rangeLocal(r: RangeRequest): { header: ResponseHeader; kvs: unknown[]; more: boolean; count: number | string } {
    checkRange(r);
    const resp = doRange(this.mvcc, r);
    return { header: this.header(), ...resp };
  }

  /** Range: serializable reads answer from the local state; linearizable ones wait for a read index. */
  async range(r: RangeRequest): Promise<{ header: ResponseHeader; kvs: unknown[]; more: boolean; count: number | string }> {
    checkRange(r);
    const user = this.currentUser();
    if (user !== undefined) {
      if (!user) throw AuthErrors.userEmpty();
      this.auth.checkPermission(user, r.key, r.range_end, 'read');
    }
    if (!r.serializable) await this.linearizableBarrier();
    return this.rangeLocal(r);
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
    // raised by the server itself, not as the client whose write hit the quota (that user may not be an admin)
    requestAuth.exit(() =>
      this.alarm({ action: AlarmAction.ACTIVATE, memberID: this.memberId.toString(), alarm: AlarmType.NOSPACE }).catch((err: unknown) =>
        this.log.warn({ err }, 'failed to raise the NOSPACE alarm'),
      ),
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
      // Reads only: served from the applied state like a Range, without a log entry (as etcd does); a
      // linearizable one waits for a read index first.
      const user = this.currentUser();
      if (user !== undefined) {
        if (!user) throw AuthErrors.userEmpty();
        this.checkTxnAuth(user, r);
      }
      if (!isTxnSerializable(r)) await this.linearizableBarrier();
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

  /**
   * A keepalive: only the leader's lessor keeps time, so a follower hands it to the leader (as etcd
   * forwards LeaseKeepAlive over the peer port). Resolves to the granted TTL, 0 once the lease is gone.
   */
  async leaseRenew(id: bigint): Promise<number> {
    if (this.lessor.primary) {
      try {
        return this.lessor.renew(id);
      } catch (err) {
        if (err instanceof LeaseExpiredError) {
          // Answer only once the revoke is applied, so a client told "gone" finds the keys gone too.
          await this.lessor.whenRevoked(id);
          return 0;
        }
        if (isEtcdError(err) && err.code === grpcStatus.NOT_FOUND) return 0;
        throw err;
      }
    }
    const res = (await this.callLeader('lease_renew', { id: id.toString() })) as { ttl: number };
    return res.ttl;
  }

  /** The remaining TTL as the leader's lessor counts it (followers ask the leader). */
  async leaseTimeToLive(id: bigint): Promise<TimeToLive | undefined> {
    if (this.lessor.primary) return this.lessor.timeToLive(id);
    const res = (await this.callLeader('lease_ttl', { id: id.toString() })) as { found: boolean; remaining: number; grantedTtl: number };
    const local = this.lessor.timeToLive(id);
    return res.found ? { remaining: res.remaining, grantedTtl: res.grantedTtl, keys: local?.keys ?? [] } : undefined;
  }

  /** Calls the leader over the peer port, waiting up to the request timeout for one to exist. */
  private async callLeader(op: string, body: unknown): Promise<unknown> {
    const deadline = Date.now() + this.reqTimeoutMs;
    for (;;) {
      if (this.stopped) throw Errors.stopped();
      const lead = this.lead;
      if (lead === this.memberId && this.lessor.primary) return this.handleLeaderCall(op, body);
      if (lead !== NONE && lead !== this.memberId && this.transport) {
        try {
          return await this.transport.callPeer(lead, op, body, Math.max(100, deadline - Date.now()));
        } catch (err) {
          const e = err instanceof Error ? errorFromWire(err.message) : new Error(String(err));
          if (isEtcdError(e) || Date.now() >= deadline) throw e;
        }
      }
      if (Date.now() >= deadline) throw Errors.noLeader();
      await new Promise((r) => setTimeout(r, this.options.heartbeatIntervalMs));
    }
  }

  /** What a follower asks of the leader over the peer port. */
  async handleLeaderCall(op: string, body: unknown): Promise<unknown> {
    const b = body as Record<string, string>;
    switch (op) {
      case 'lease_renew': {
        if (!this.lessor.primary) throw Errors.notLeader();
        return { ttl: await this.leaseRenew(BigInt(b.id)) };
      }
      case 'lease_ttl': {
        if (!this.lessor.primary) throw Errors.notLeader();
        const t = this.lessor.timeToLive(BigInt(b.id));
        return t ? { found: true, remaining: t.remaining, grantedTtl: t.grantedTtl } : { found: false, remaining: -1, grantedTtl: 0 };
      }
      case 'member_remove': {
        if (!this.isLeader()) throw Errors.notLeader();
        await this.memberRemove(BigInt(b.id));
        return {};
      }
      case 'promote': {
        if (!this.isLeader()) throw Errors.notLeader();
        await this.promoteAsLeader(BigInt(b.id));
        return {};
      }
      default:
        throw new Error(`unknown leader call ${JSON.stringify(op)}`);
    }
  }

  /** Proposes revokes for expired leases every half second (etcd's pace: at most 500 per round). */
  private startLeaseExpiry(): void {
    this.expiryTimer = setInterval(() => {
      if (this.stopped || !this.isLeader()) return;
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
  // Authentication (etcd's auth store; changes go through the log, reads answer from the applied state)

  authStatus(): { header: ResponseHeader; enabled: boolean; authRevision: number } {
    return { header: this.header(), enabled: this.auth.enabled, authRevision: this.auth.revision };
  }

  async authEnable(): Promise<unknown> {
    return this.propose({ request: 'auth_enable', auth_enable: {} });
  }

  async authDisable(): Promise<unknown> {
    return this.propose({ request: 'auth_disable', auth_disable: {} });
  }

  /** Checks the password here (bcrypt, off the log), then makes the new token known to every member. */
  async authenticate(name: string, password: string): Promise<unknown> {
    await this.linearizableBarrier();
    let hash = '';
    this.auth.checkPassword(name, (h) => {
      hash = h;
      return true;
    });
    if (!hash || !(await bcrypt.compare(password, hash))) {
      this.log.info({ 'user-name': name }, 'invalid password');
      throw AuthErrors.authFailed();
    }
    return this.propose({ request: 'authenticate', authenticate: { name, token_prefix: SimpleTokens.prefix() } });
  }

  private async hash(password: string): Promise<string> {
    const cost = this.options.bcryptCost && this.options.bcryptCost >= 4 && this.options.bcryptCost <= 31 ? this.options.bcryptCost : 10;
    return bcrypt.hash(password, cost);
  }

  async userAdd(r: { name: string; password?: string; options?: { no_password?: boolean } }): Promise<unknown> {
    const noPassword = r.options?.no_password === true;
    const hashedPassword = !noPassword && r.password ? await this.hash(r.password) : '';
    return this.propose({ request: 'user_add', user_add: { name: r.name, password: '', options: { no_password: noPassword }, hashedPassword } });
  }

  async userChangePassword(r: { name: string; password?: string }): Promise<unknown> {
    const hashedPassword = r.password ? await this.hash(r.password) : '';
    return this.propose({ request: 'user_change_password', user_change_password: { name: r.name, password: '', hashedPassword } });
  }

  async authRequest(req: Omit<InternalRequest, 'id'>): Promise<unknown> {
    return this.propose(req);
  }

  /** The user a token names: etcd's "invalid auth token" if none, "revision of auth store is old" for a stale JWT. */
  tokenUser(token: string): string {
    if (this.jwt) {
      const claims = this.jwt.verify(token);
      if (!claims) throw AuthErrors.invalidAuthToken();
      if (claims.revision < this.auth.revision) throw AuthErrors.authOldRevision();
      return claims.user;
    }
    const user = this.tokens.lookup(token);
    if (user === undefined) throw AuthErrors.invalidAuthToken();
    return user;
  }

  /**
   * A simple token names the log index that created it: a member that has not applied that entry yet (a
   * client authenticated on another member a moment ago) waits for it briefly instead of calling the
   * token invalid.
   */
  async awaitToken(token: string): Promise<void> {
    if (this.jwt) return;
    const index = Number(token.slice(token.lastIndexOf('.') + 1));
    if (!Number.isSafeInteger(index) || index <= this.appliedIndex || index > this.commitIndex + 10_000) return;
    // the same queue linearizable reads wait in for their index to be applied (released by the apply loop;
    // stop() releases it too); the token is judged after at most 2 s either way
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.readsAwaitingApply.push({ index, waiters: [{ resolve, reject: () => resolve(), deadline: Infinity }] })),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, 2000))),
    ]);
    clearTimeout(timer);
  }

  /** The user a client request runs as (undefined outside a client request, or with auth off). */
  currentUser(): string | undefined {
    return this.auth.enabled ? requestAuth.getStore()?.user : undefined;
  }

  // -------------------------------------------------------------------------------------------------
  // Membership

  async memberAdd(peerURLs: string[], isLearner: boolean): Promise<{ header: ResponseHeader; member: Member; members: Member[] }> {
    const urls = validatePeerUrls(peerURLs);
    // etcd's id for an added member: its peer URLs, the cluster token and the second it was asked for
    const id = computeMemberId(urls, `${this.options.initialClusterToken}${Math.floor(Date.now() / 1000)}`);
    if (this.removed.has(id)) throw Errors.memberNotFound();
    if (this.members.has(id)) throw Errors.memberExist();
    for (const m of this.members.values()) {
      if (m.peerURLs.some((u) => urls.includes(u))) throw Errors.peerURLExist();
    }
    if (isLearner && [...this.members.values()].filter((m) => m.isLearner).length >= MAX_LEARNERS) throw Errors.tooManyLearners();
    if (this.options.strictReconfigCheck ?? true) this.checkReadyToAdd(isLearner);
    const member: Member = { id, name: '', peerURLs: urls, clientURLs: [], isLearner };
    const res = (await this.proposeConfChange({
      type: isLearner ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode,
      nodeId: id,
      context: encodeMember(member),
    })) as { header: ResponseHeader; members: Member[] };
    this.log.info({ 'added-member-id': idToHex(id), 'added-member-peer-urls': urls, 'is-learner': isLearner }, 'added member');
    return { header: res.header, member, members: res.members };
  }

  async memberRemove(id: bigint): Promise<{ header: ResponseHeader; members: Member[] }> {
    const target = this.members.get(id);
    if (!target) throw Errors.memberNotFound();
    if (this.options.strictReconfigCheck ?? true) this.checkReadyToRemove(id);
    // A leader removing itself hands leadership to a caught-up voter first, so the cluster does not wait
    // an election timeout for a new one.
    if (id === this.memberId && this.confState.voters.length > 1) {
      if (this.isLeader()) {
        const to = this.bestTransferee();
        if (to !== undefined) await this.moveLeader(to).catch((err: unknown) => this.log.warn({ err }, 'leadership transfer before self-removal failed'));
      }
      if (!this.isLeader()) {
        // The leader applies it and answers: once removed, this member may never hear that it committed.
        await this.callLeader('member_remove', { id: id.toString() });
        return { header: this.header(), members: this.memberList().filter((m) => m.id !== id) };
      }
    }
    const res = (await this.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: id, context: new Uint8Array(0) })) as {
      header: ResponseHeader;
      members: Member[];
    };
    this.log.info({ 'removed-member-id': idToHex(id) }, 'removed member');
    return res;
  }

  async memberUpdate(id: bigint, peerURLs: string[]): Promise<{ header: ResponseHeader; members: Member[] }> {
    const urls = validatePeerUrls(peerURLs);
    const m = this.members.get(id);
    if (!m) throw Errors.memberNotFound();
    for (const other of this.members.values()) {
      if (other.id !== id && other.peerURLs.some((u) => urls.includes(u))) throw Errors.peerURLExist();
    }
    return (await this.proposeConfChange({
      type: ConfChangeType.UpdateNode,
      nodeId: id,
      context: encodeMember({ ...m, peerURLs: urls }),
    })) as { header: ResponseHeader; members: Member[] };
  }

  /** Promotes a learner; only the leader knows whether it has caught up, so followers ask the leader. */
  async memberPromote(id: bigint): Promise<{ header: ResponseHeader; members: Member[] }> {
    const m = this.members.get(id);
    if (!m) throw Errors.memberNotFound();
    if (!m.isLearner) throw Errors.memberNotLearner();
    if (this.isLeader()) return this.promoteAsLeader(id);
    await this.callLeader('promote', { id: id.toString() });
    return { header: this.header(), members: this.memberList() };
  }

  private async promoteAsLeader(id: bigint): Promise<{ header: ResponseHeader; members: Member[] }> {
    const m = this.members.get(id);
    if (!m) throw Errors.memberNotFound();
    if (!m.isLearner) throw Errors.memberNotLearner();
    const progress = this.node.status().progress;
    if (!progress) throw Errors.notLeader();
    const learner = progress.get(id);
    if (!learner) throw Errors.memberNotFound();
    const leaderMatch = progress.get(this.memberId)?.match ?? 0;
    if (learner.match < leaderMatch * LEARNER_READY_PERCENT) throw Errors.learnerNotReady();
    if (this.options.strictReconfigCheck ?? true) {
      // the learner counts as started for the future quorum
      const voters = this.voters();
      const nmembers = voters.length + 1;
      const nstarted = voters.filter((v) => v.name !== '').length + 1;
      if (nstarted < Math.floor(nmembers / 2) + 1) throw Errors.memberNotEnoughStarted();
    }
    return (await this.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: id, context: encodeMember({ ...m, isLearner: false }) })) as {
      header: ResponseHeader;
      members: Member[];
    };
  }

  private voters(): Member[] {
    return [...this.members.values()].filter((m) => !m.isLearner);
  }

  private numConnectedSince(since: number, ids: bigint[]): number {
    return ids.filter((id) => this.connectedSince(id, since)).length;
  }

  /**
   * etcd's strict-reconfig-check for an add: enough started voters for a new voter (a started member is
   * one that published its name), and — for any add — a majority of the grown cluster connected here for
   * the last health interval, counting the new member as down.
   */
  private checkReadyToAdd(isLearner: boolean): void {
    const voters = this.voters();
    if (!isLearner) {
      const nmembers = voters.length + 1;
      const nstarted = voters.filter((m) => m.name !== '').length;
      if (!(nstarted === 1 && nmembers === 2) && nstarted < Math.floor(nmembers / 2) + 1) throw Errors.memberNotEnoughStarted();
    }
    if (voters.length > 1) {
      const connected = this.numConnectedSince(Date.now() - HEALTH_INTERVAL_MS, voters.map((m) => m.id));
      if (connected < Math.floor((voters.length + 1) / 2) + 1) throw Errors.unhealthy();
    }
  }

  /** ...and for a remove: the voters that stay are enough started members, and a connected quorum. */
  private checkReadyToRemove(id: bigint): void {
    const target = this.members.get(id);
    if (!target || target.isLearner) return;
    const voters = this.voters();
    const staying = voters.filter((m) => m.id !== id);
    const nstarted = staying.filter((m) => m.name !== '').length;
    if (nstarted < Math.floor(staying.length / 2) + 1) throw Errors.memberNotEnoughStarted();
    // a member that is down is safe to remove: it is not part of the active quorum
    if (id !== this.memberId && this.transport?.activeSince(id) === undefined) return;
    const active = this.numConnectedSince(Date.now() - HEALTH_INTERVAL_MS, voters.map((m) => m.id));
    if (active - 1 < 1 + Math.floor((voters.length - 1) / 2)) throw Errors.unhealthy();
  }

  private connectedSince(id: bigint, since: number): boolean {
    if (id === this.memberId) return true;
    const t = this.transport?.activeSince(id);
    return t !== undefined && t <= since;
  }

  private bestTransferee(): bigint | undefined {
    const progress = this.node.status().progress;
    let best: bigint | undefined;
    let bestMatch = -1;
    for (const v of this.confState.voters) {
      if (v === this.memberId) continue;
      const match = progress?.get(v)?.match ?? -1;
      if (match > bestMatch && this.transport?.activeSince(v) !== undefined) {
        best = v;
        bestMatch = match;
      }
    }
    return best;
  }

  /** Maintenance.MoveLeader: the leader hands leadership to `to` and waits until `to` leads. */
  async moveLeader(to: bigint): Promise<void> {
    if (!this.isLeader()) throw Errors.notLeader();
    const member = this.members.get(to);
    if (!member || member.isLearner) throw Errors.badLeaderTransferee();
    if (to === this.memberId) return;
    const started = Date.now();
    this.log.info({ 'local-member-id': idToHex(this.memberId), 'transferee-member-id': idToHex(to) }, 'leadership transfer starting');
    this.node.transferLeader(to);
    this.scheduleReady();
    const deadline = started + this.reqTimeoutMs;
    while (this.lead !== to) {
      if (this.stopped) throw Errors.stopped();
      if (Date.now() >= deadline) throw Errors.timeoutLeaderTransfer();
      await new Promise((r) => setTimeout(r, this.options.heartbeatIntervalMs));
    }
    this.log.info({ 'new-leader-member-id': idToHex(to), took: `${Date.now() - started}ms` }, 'leadership transfer finished');
  }

  /**
   * Publishes this member's name and client URLs through the log once per start (etcd's attribute
   * publish), retrying until it is applied. Like etcd, the member serves clients only after that: its
   * client URLs are then in every member's list, and it has seen a working quorum.
   */
  private publish(): void {
    if (this.stopped || this.lead === NONE || this.publishing || this.published) return;
    if (!this.members.has(this.memberId)) return; // a joining member waits for the log to name it
    const want = this.options.advertiseClientUrls;
    this.publishing = true;
    this.propose({ request: 'member_attr', member_attr: { member_id: this.memberId.toString(), name: this.options.name, client_urls: want } })
      .then(
        () => {
          this.published = true;
          if (this.publishTimer) clearInterval(this.publishTimer);
          this.log.info({ 'local-member-id': idToHex(this.memberId), 'client-urls': want }, 'published local member to cluster through raft');
          for (const resolve of this.publishWaiters) resolve();
          this.publishWaiters = [];
          this.publishFailed = [];
        },
        (err: unknown) => this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'failed to publish local member to cluster through raft'),
      )
      .finally(() => (this.publishing = false));
  }
  private publishing = false;
  private published = false;
  private publishWaiters: (() => void)[] = [];
  private publishFailed: ((err: Error) => void)[] = [];

  /** Resolves once this member's attributes are published (see publish); rejects if it was removed. */
  whenPublished(): Promise<void> {
    if (this.published) return Promise.resolve();
    if (this.removedSelf) return Promise.reject(Errors.memberRemoved());
    return new Promise((resolve, reject) => {
      this.publishWaiters.push(resolve);
      this.publishFailed.push(reject);
    });
  }

  private removedSelf = false;

  /** This member is no longer in the cluster (it applied its removal, or a peer answered 410 Gone). */
  markRemoved(): void {
    if (this.removedSelf) return;
    this.removedSelf = true;
    this.log.warn({ 'local-member-id': idToHex(this.memberId) }, 'the member has been permanently removed from the cluster');
    for (const reject of this.publishFailed) reject(Errors.memberRemoved());
    this.publishFailed = [];
    setImmediate(() => this.onRemoved?.());
  }

  // -------------------------------------------------------------------------------------------------
  // Proposals, Raft and the apply loop

  private propose(req: Omit<InternalRequest, 'id'>): Promise<unknown> {
    if (this.stopped) return Promise.reject(Errors.stopped());
    const id = this.nextRequestId++;
    // a client request carries its user; the apply step checks permissions in log order
    const ctx = requestAuth.getStore();
    const withAuth = ctx ? { ...req, auth_user: ctx.user, from_client: true } : req;
    const msg = this.requestType.fromObject({ ...withAuth, id: id.toString() });
    const data = Buffer.from(this.requestType.encode(msg).finish());
    if (data.length > this.options.maxRequestBytes) return Promise.reject(Errors.requestTooLarge());
    return this.enqueue({ id, data });
  }

  private proposeConfChange(cc: Omit<ConfChange, 'id'>): Promise<unknown> {
    if (this.stopped) return Promise.reject(Errors.stopped());
    const id = this.nextRequestId++;
    return this.enqueue({ id, cc: { ...cc, id } });
  }

  private enqueue(p: Proposal): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const now = Date.now();
      // As etcd counts it: pending from the proposal until its caller has the outcome (applied, failed, timed out).
      metrics.proposalsPending.inc();
      let settled = false;
      const settle = () => {
        if (!settled) metrics.proposalsPending.dec();
        settled = true;
      };
      this.waiters.set(p.id, {
        resolve: (v: unknown) => {
          settle();
          resolve(v);
        },
        reject: (e: unknown) => {
          settle();
          reject(e);
        },
        startedAt: now,
        deadline: now + this.reqTimeoutMs,
      });
      this.queue.push(p);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /**
   * Hands queued proposals to Raft (all of them, then one Ready: group commit). While there is no leader,
   * or Raft cannot take one (a conf change pending, a transfer going on), they wait in the queue until
   * they can go or time out, as etcd's proposals block.
   */
  private flush(): void {
    this.flushScheduled = false;
    if (this.stopped || this.queue.length === 0) return;
    const waiting: Proposal[] = [];
    if (this.lead === NONE) return;
    for (const p of this.queue) {
      if (!this.waiters.has(p.id)) continue; // timed out meanwhile
      try {
        if (p.cc) this.node.proposeConfChange(p.cc);
        else this.node.propose(p.data as Buffer);
      } catch (err) {
        if (!(err instanceof ProposalDroppedError)) throw err;
        waiting.push(p);
      }
    }
    this.queue = waiting;
    this.processReady();
  }

  private scheduleReady(): void {
    if (this.readyScheduled) return;
    this.readyScheduled = true;
    setImmediate(() => {
      this.readyScheduled = false;
      this.processReady();
    });
  }

  /** Network input from the peer transport. */
  stepMessages(msgs: Message[]): void {
    if (this.stopped) return;
    for (const m of msgs) {
      try {
        this.node.step(m);
      } catch (err) {
        this.log.debug({ err: err instanceof Error ? err.message : String(err), type: MessageType[m.type], from: idToHex(m.from) }, 'ignored raft message');
      }
    }
    this.scheduleReady();
  }

  isRemoved(id: bigint): boolean {
    return this.removed.has(id);
  }

  /**
   * Installs a leader's state sent instead of log entries (see sendSnapshot): the stream is saved, its
   * hash checked, its records written into a fresh generation of the state database (keeping this
   * member's identity), and everything in memory rebuilt from it; then Raft gets the snapshot's metadata
   * and persists it in the log. The state is a committed prefix of the cluster's history, at an applied
   * index at or past the metadata's, so entries Raft redelivers below it are skipped as applied.
   */
  async receiveSnapshot(msg: Message, body: NodeJS.ReadableStream): Promise<void> {
    if (this.stopped) throw Errors.stopped();
    const meta = msg.snapshot?.metadata;
    if (!meta) throw new Error('snapshot message without metadata');
    const dir = path.dirname(path.resolve(this.backend.dir));
    const tmp = path.join(dir, `.raft-snapshot-${process.pid}-${Date.now()}.tmp`);
    const started = Date.now();
    try {
      await pipeline(body, fs.createWriteStream(tmp, { mode: 0o600 }));
      if (meta.index <= this.appliedIndex) {
        this.log.info({ from: idToHex(msg.from), index: meta.index, applied: this.appliedIndex }, 'received snapshot is not newer than the local state');
      } else {
        await this.installSnapshot(tmp, msg.from);
      }
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    this.log.info({ from: idToHex(msg.from), index: meta.index, 'applied-index': this.appliedIndex, 'took-ms': Date.now() - started }, 'applied incoming snapshot');
    this.stepMessages([msg]);
  }

  private installing = false;

  private async installSnapshot(file: string, from: bigint): Promise<void> {
    if (this.installing) throw new Error('a snapshot is already being installed');
    this.installing = true;
    try {
      const identity = [META.memberId, META.clusterId];
      let records = 0;
      await this.backend.replaceContent((put) => {
        readSnapshotFile(file, (key, value) => {
          if (identity.some((k) => k.equals(key))) return;
          put(key, value);
          records++;
        });
        put(META.memberId, u64be(this.memberId));
        put(META.clusterId, u64be(this.clusterId));
      });
      this.log.info({ from: idToHex(from), records }, 'installed database snapshot from the leader');
      await this.reloadState();
    } finally {
      this.installing = false;
    }
  }

  /** Rebuilds every in-memory view of the state database after its content was replaced. */
  private async reloadState(): Promise<void> {
    const applied = this.backend.getSync(META.appliedIndex);
    this.appliedIndex = applied ? Number(applied.readBigUInt64BE(0)) : 0;
    await this.mvcc.reload(this.log);
    this.lessor.close();
    this.lessor = await Lessor.load(this.backend, monotonicClock, {
      minTtlSeconds: minLeaseTtlSeconds(this.options.electionTimeoutMs, this.options.heartbeatIntervalMs),
      extendMs: leaseExtendOnPromoteMs(this.options.electionTimeoutMs, this.options.heartbeatIntervalMs),
      expiredRetryMs: leaseRevokeRetryMs(this.options.electionTimeoutMs, this.options.heartbeatIntervalMs),
      primary: false,
    });
    for (const [key, lease] of this.mvcc.restoredLeaseAttachments ?? []) this.lessor.attach(BigInt(lease), key);
    this.mvcc.restoredLeaseAttachments = undefined;
    if (this.isLeader()) this.lessor.promote(leaseExtendOnPromoteMs(this.options.electionTimeoutMs, this.options.heartbeatIntervalMs));
    this.alarms = await AlarmStore.load(this.backend);
    this.auth = await AuthStore.load(this.backend);
    this.tokens.clear();
    const before = new Set(this.members.keys());
    this.members.clear();
    this.removed.clear();
    this.rejectedConfChanges.clear();
    await this.loadMembership();
    for (const m of this.members.values()) {
      if (m.id === this.memberId) continue;
      if (before.has(m.id)) this.transport?.updatePeer(m.id, m.peerURLs);
      else this.transport?.addPeer(m.id, m.peerURLs);
    }
    for (const id of before) if (!this.members.has(id) && id !== this.memberId) this.transport?.removePeer(id);
    metrics.isLearner.set(this.isLearner ? 1 : 0);
    metrics.proposalsApplied.set(this.appliedIndex);
    this.watchable.resync();
    this.releaseReads();
  }

  private async loadMembership(): Promise<void> {
    await this.backend.scan(prefixed(Prefix.meta, META.memberPrefix), prefixed(Prefix.meta, 'members0'), (_k, v) => {
      const m = decodeMember(v);
      this.members.set(m.id, m);
    });
    await this.backend.scan(prefixed(Prefix.meta, META.removedPrefix), prefixed(Prefix.meta, 'removed0'), (k) => {
      this.removed.add(BigInt('0x' + k.subarray(1 + META.removedPrefix.length).toString()));
    });
    await this.backend.scan(prefixed(Prefix.meta, META.rejectedPrefix), prefixed(Prefix.meta, 'ccrejected0'), (k) => {
      this.rejectedConfChanges.add(Number(k.subarray(1 + META.rejectedPrefix.length).readBigUInt64BE(0)));
    });
  }

  reportUnreachable(id: bigint): void {
    if (this.stopped) return;
    this.node.reportUnreachable(id);
  }

  reportSnapshot(id: bigint, ok: boolean): void {
    if (this.stopped) return;
    this.node.reportSnapshot(id, ok);
    this.scheduleReady();
  }

  private onTick(): void {
    if (this.stopped) return;
    this.node.tick();
    const now = Date.now();
    this.expireWaiters(now);
    if (this.queue.length > 0 && this.lead !== NONE) this.flush();
    if (this.readInFlight && now - this.readInFlight.sentAt > READ_RETRY_MS) {
      // No answer (the request or the leader was lost): ask again with a new id.
      this.log.debug({ waiters: this.readInFlight.waiters.length }, 'waiting for ReadIndex response took too long, retrying');
      metrics.slowReadIndex.inc();
      this.pendingReads = [...this.readInFlight.waiters, ...this.pendingReads];
      this.readInFlight = undefined;
    }
    this.issueRead();
    this.processReady();
  }

  /** Rejects proposals and reads past their deadline with etcd's explanation of why. */
  private expireWaiters(now: number): void {
    let expired = false;
    for (const [id, w] of this.waiters) {
      if (w.deadline > now) continue;
      this.waiters.delete(id);
      expired = true;
      metrics.proposalsFailed.inc();
      w.reject(this.timeoutError(w.startedAt));
    }
    // A proposal still queued (no leader to hand it to) goes with its waiter: it must not be proposed after
    // its caller was told it failed, nor be held in memory for as long as the outage lasts.
    if (expired) this.queue = this.queue.filter((p) => this.waiters.has(p.id));
    const expire = (list: ReadWaiter[]) =>
      list.filter((r) => {
        if (r.deadline > now) return true;
        metrics.readIndexFailed.inc();
        r.reject(Errors.timeout());
        return false;
      });
    this.pendingReads = expire(this.pendingReads);
    if (this.readInFlight) this.readInFlight.waiters = expire(this.readInFlight.waiters);
    for (const a of this.readsAwaitingApply) a.waiters = expire(a.waiters);
  }

  private timeoutError(startedAt: number): Error {
    const prevLeadLost = this.leaderElectedAt - 2 * this.options.electionTimeoutMs;
    if (startedAt > prevLeadLost && startedAt < this.leaderElectedAt) return Errors.timeoutDueToLeaderFail();
    if (this.lead === NONE) return Errors.timeout();
    if (this.lead === this.memberId) {
      const voters = this.confState.voters;
      const connected = voters.filter((v) => this.connectedSince(v, startedAt)).length;
      if (connected < Math.floor(voters.length / 2) + 1) return Errors.timeoutDueToConnectionLost();
    } else if (!this.connectedSince(this.lead, startedAt)) {
      return Errors.timeoutDueToConnectionLost();
    }
    return Errors.timeout();
  }

  // ---- linearizable reads (ReadIndex)

  /** Resolves once this member has applied everything committed when the read arrived (etcd's ReadIndex). */
  linearizableBarrier(): Promise<void> {
    if (this.stopped) return Promise.reject(Errors.stopped());
    return new Promise((resolve, reject) => {
      this.pendingReads.push({ resolve, reject, deadline: Date.now() + this.reqTimeoutMs });
      this.issueRead();
    });
  }

  private readSeq = 0n;
  /** One ReadIndex request at a time carries every read that arrived meanwhile (etcd batches the same way). */
  private issueRead(): void {
    if (this.readInFlight || this.pendingReads.length === 0 || this.lead === NONE || this.stopped) return;
    const ctx = u64be((this.memberId ^ ++this.readSeq) & 0xffffffffffffffffn);
    this.readInFlight = { ctx: ctx.toString('hex'), waiters: this.pendingReads, sentAt: Date.now() };
    this.pendingReads = [];
    this.node.readIndex(ctx);
    this.scheduleReady();
  }

  private onReadStates(states: ReadState[]): void {
    for (const rs of states) {
      const inflight = this.readInFlight;
      if (!inflight || Buffer.from(rs.requestCtx).toString('hex') !== inflight.ctx) continue;
      this.readInFlight = undefined;
      this.readsAwaitingApply.push({ index: rs.index, waiters: inflight.waiters });
    }
    this.releaseReads();
    if (this.pendingReads.length > 0) setImmediate(() => this.issueRead());
  }

  private releaseReads(): void {
    if (this.readsAwaitingApply.length === 0) return;
    const keep: { index: number; waiters: ReadWaiter[] }[] = [];
    for (const a of this.readsAwaitingApply) {
      if (a.index <= this.appliedIndex) for (const w of a.waiters) w.resolve();
      else keep.push(a);
    }
    this.readsAwaitingApply = keep;
  }

  // ---- the Ready loop

  /**
   * Handles every Ready Raft has: persist (entries, hard state, snapshot: one write, fsynced when Raft
   * says so), then send, then apply, then answer reads. Runs to completion synchronously.
   */
  processReady(): void {
    if (this.inReady || this.installing) return;
    this.inReady = true;
    try {
      while (this.node.hasReady()) {
        const rd = this.node.ready();
        if (rd.softState) this.onSoftState(rd.softState);
        const snap = rd.snapshot && !isEmptySnapshot(rd.snapshot) ? rd.snapshot : undefined;
        if (snap || rd.entries.length > 0 || rd.hardState) {
          const started = process.hrtime.bigint();
          try {
            this.raftLog.save({
              snapshot: snap?.metadata,
              entries: rd.entries,
              hardState: rd.hardState,
              sync: rd.mustSync,
              firstIndex: this.storage.firstIndex(),
              lastIndex: this.storage.lastIndex(),
            });
          } catch (err) {
            this.fatal(err, 'failed to persist raft log entries');
          }
          if (rd.mustSync) metrics.walFsyncDuration.observe(secondsSince(started));
        }
        if (snap) {
          this.storage.applySnapshot(snap);
          this.snapshotIndex = snap.metadata.index;
        }
        this.storage.append(rd.entries);
        if (rd.hardState) this.storage.setHardState(rd.hardState);
        this.sendMessages(rd.messages);
        if (snap) {
          this.confState = snap.metadata.confState;
          if (snap.metadata.index > this.appliedIndex) this.fatal(new Error(`snapshot ${snap.metadata.index} is ahead of the installed state ${this.appliedIndex}`), 'snapshot not installed');
        }
        if (rd.committedEntries.length > 0) this.applyEntries(rd.committedEntries);
        if (rd.readStates.length > 0) this.onReadStates(rd.readStates);
        this.node.advance();
        metrics.proposalsCommitted.set(this.commitIndex);
      }
    } finally {
      this.inReady = false;
    }
    this.maybeSnapshot();
  }

  private onSoftState(ss: { lead: bigint; state: StateType }): void {
    const wasLeader = this.raftState === StateType.Leader;
    const prevLead = this.lead;
    this.raftState = ss.state;
    if (ss.lead !== prevLead) {
      this.lead = ss.lead;
      if (ss.lead !== NONE) {
        this.leaderElectedAt = Date.now();
        metrics.leaderChanges.inc();
        this.log.info({ 'local-member-id': idToHex(this.memberId), 'leader-member-id': idToHex(ss.lead), term: this.term }, 'raft leader elected');
      } else {
        this.log.info({ 'local-member-id': idToHex(this.memberId), 'lost-leader-member-id': idToHex(prevLead), term: this.term }, 'raft leader lost');
      }
      metrics.hasLeader.set(ss.lead !== NONE ? 1 : 0);
      if (ss.lead !== NONE && this.queue.length > 0) setImmediate(() => this.flush());
      if (ss.lead !== NONE) setImmediate(() => this.issueRead());
    }
    const isLeader = ss.state === StateType.Leader;
    metrics.isLeader.set(isLeader ? 1 : 0);
    if (isLeader && !wasLeader) {
      // The leader keeps lease time (etcd: promote, extending every lease by an election timeout).
      this.lessor.promote(leaseExtendOnPromoteMs(this.options.electionTimeoutMs, this.options.heartbeatIntervalMs));
    } else if (!isLeader && wasLeader) {
      this.lessor.demote();
    }
  }

  private sendMessages(msgs: Message[]): void {
    if (msgs.length === 0) return;
    if (!this.transport) return;
    const normal: Message[] = [];
    for (const m of msgs) {
      if (m.type === MessageType.Snap) this.sendSnapshot(m);
      else normal.push(m);
    }
    if (normal.length > 0) this.transport.send(normal);
  }

  /**
   * A follower needs the state instead of log entries: send the current applied state (it covers the
   * snapshot Raft chose, and more), with Raft metadata naming the applied index it holds.
   */
  private sendSnapshot(m: Message): void {
    const transport = this.transport;
    if (!transport) return;
    const index = Math.min(this.appliedIndex, this.storage.lastIndex());
    const meta = { index, term: this.storage.term(index), confState: { voters: [...this.confState.voters], learners: [...this.confState.learners] } };
    const msg: Message = { ...m, snapshot: { metadata: meta, data: new Uint8Array(0) } };
    this.log.info({ to: idToHex(m.to), index }, 'sending database snapshot to a follower');
    transport.sendSnapshot(msg, () => this.openStateStream());
  }

  /** A stream of the state database as of now (see sendSnapshot); installed by installSnapshot. */
  private openStateStream(): NodeJS.ReadableStream {
    const out = new PassThrough();
    const dir = path.dirname(path.resolve(this.backend.dir));
    writeSnapshotFile(this.backend, dir, { storageVersion: STORAGE_VERSION, etcdVersion: ETCD_API_VERSION, createdAt: new Date().toISOString() }, this.log)
      .then(async (file) => {
        try {
          // the content, then its SHA-256: the layout of a saved snapshot file, checked on receipt
          const sha = crypto.createHash('sha256');
          const reader = file.handle.createReadStream({ start: 0, end: file.size - 1, autoClose: false });
          for await (const chunk of reader) {
            sha.update(chunk as Buffer);
            if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
          }
          out.end(sha.digest());
        } finally {
          await file.dispose();
        }
      })
      .catch((err: unknown) => out.destroy(err instanceof Error ? err : new Error(String(err))));
    return out;
  }

  /** Applies committed entries in order; one state write for the whole batch, then answers waiters. */
  private applyEntries(entries: Entry[]): void {
    const batch = new WriteBatch();
    const results: { id: bigint; ok: boolean; value: unknown }[] = [];
    let removedSelf = false;
    for (const entry of entries) {
      if (entry.type === EntryType.ConfChange) {
        const cc = decodeConfChange(entry.data);
        if (entry.index > this.appliedIndex) {
          const res = this.applyConfChange(cc, entry.index, batch);
          if (res.ok && cc.type === ConfChangeType.RemoveNode && cc.nodeId === this.memberId) removedSelf = true;
          if (cc.id !== 0n) results.push({ id: cc.id, ok: res.ok, value: res.ok ? undefined : res.err });
          this.confState = this.node.applyConfChange(res.ok ? cc : { ...cc, nodeId: NONE });
          this.appliedIndex = entry.index;
        } else {
          // applied before a restart: the state has it; Raft's configuration (in memory) needs it again
          this.confState = this.node.applyConfChange(this.rejectedConfChanges.has(entry.index) ? { ...cc, nodeId: NONE } : cc);
        }
        continue;
      }
      if (entry.index <= this.appliedIndex) continue;
      if (entry.data.length === 0) {
        this.appliedIndex = entry.index; // a new leader's empty entry
        continue;
      }
      // a Buffer view (entries from the transport are plain Uint8Arrays): protobufjs then decodes bytes as Buffers
      const data = Buffer.isBuffer(entry.data) ? entry.data : Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength);
      const req = this.requestType.toObject(this.requestType.decode(data), TO_OBJECT) as InternalRequest;
      const id = BigInt(req.id);
      try {
        results.push({ id, ok: true, value: this.applyOne(req, batch, entry.index) });
      } catch (err) {
        if (!isEtcdError(err)) {
          // A bug or corrupt entry: stop before writing anything, so a restart replays from a clean state.
          this.fatal(err, 'failed to apply a committed entry');
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
      if (r.ok) w.resolve(r.value ?? { header: this.header(), members: this.memberList() });
      else {
        metrics.proposalsFailed.inc();
        w.reject(r.value as EtcdError);
      }
    }
    this.releaseReads();
    if (removedSelf) this.markRemoved();
  }

  /** The application's side of a membership change; a refused one is recorded so a replay refuses it too. */
  private applyConfChange(cc: ConfChange, index: number, batch: WriteBatch): { ok: true } | { ok: false; err: Error } {
    const reject = (err: Error) => {
      this.rejectedConfChanges.add(index);
      batch.put(prefixed(Prefix.meta, Buffer.concat([Buffer.from(META.rejectedPrefix), u64be(index)])), Buffer.alloc(0));
      this.log.warn({ 'member-id': idToHex(cc.nodeId), reason: err.message }, 'refused a membership change');
      return { ok: false as const, err };
    };
    const ctx = cc.context.length > 0 ? decodeMember(Buffer.from(cc.context)) : undefined;
    const existing = this.members.get(cc.nodeId);
    switch (cc.type) {
      case ConfChangeType.AddNode:
      case ConfChangeType.AddLearnerNode: {
        if (this.removed.has(cc.nodeId)) return reject(Errors.memberNotFound());
        if (existing) {
          if (cc.type === ConfChangeType.AddNode && existing.isLearner) {
            existing.isLearner = false;
            this.putMember(existing, batch);
            if (existing.id === this.memberId) metrics.isLearner.set(0);
            this.log.info({ 'promoted-member-id': idToHex(existing.id) }, 'promoted a learner member');
            return { ok: true };
          }
          return reject(Errors.memberExist());
        }
        if (!ctx) return reject(Errors.memberBadURLs());
        for (const m of this.members.values()) if (m.peerURLs.some((u) => ctx.peerURLs.includes(u))) return reject(Errors.peerURLExist());
        const learner = cc.type === ConfChangeType.AddLearnerNode;
        if (learner && [...this.members.values()].filter((m) => m.isLearner).length >= MAX_LEARNERS) return reject(Errors.tooManyLearners());
        const member: Member = { id: cc.nodeId, name: ctx.name, peerURLs: ctx.peerURLs, clientURLs: ctx.clientURLs ?? [], isLearner: learner };
        this.members.set(member.id, member);
        this.putMember(member, batch);
        if (member.id !== this.memberId) this.transport?.addPeer(member.id, member.peerURLs);
        else metrics.isLearner.set(learner ? 1 : 0);
        return { ok: true };
      }
      case ConfChangeType.RemoveNode: {
        if (!existing) return reject(Errors.memberNotFound());
        this.members.delete(cc.nodeId);
        this.removed.add(cc.nodeId);
        batch.del(prefixed(Prefix.meta, META.memberPrefix + idToHex(cc.nodeId)));
        batch.put(prefixed(Prefix.meta, META.removedPrefix + idToHex(cc.nodeId)), Buffer.alloc(0));
        if (cc.nodeId !== this.memberId) this.transport?.removePeer(cc.nodeId);
        return { ok: true };
      }
      case ConfChangeType.UpdateNode: {
        if (!existing || !ctx) return reject(Errors.memberNotFound());
        for (const m of this.members.values()) {
          if (m.id !== cc.nodeId && m.peerURLs.some((u) => ctx.peerURLs.includes(u))) return reject(Errors.peerURLExist());
        }
        existing.peerURLs = ctx.peerURLs;
        this.putMember(existing, batch);
        if (existing.id !== this.memberId) this.transport?.updatePeer(existing.id, existing.peerURLs);
        this.log.info({ 'updated-member-id': idToHex(existing.id), 'peer-urls': existing.peerURLs }, 'updated member');
        return { ok: true };
      }
      default:
        return reject(new Error(`unknown membership change type ${String(cc.type)}`));
    }
  }

  private putMember(m: Member, batch: WriteBatch): void {
    batch.put(prefixed(Prefix.meta, META.memberPrefix + idToHex(m.id)), encodeMember(m));
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

  /**
   * etcd's apply-time auth checks for a client's entry (with auth on): admin requests need the root role;
   * writes need WRITE on their keys, and READ where they also read (prev_kv, txn compares and ranges).
   */
  private checkEntryAuth(req: InternalRequest): void {
    if (!this.auth.enabled || !req.from_client) return;
    const user = req.auth_user ?? '';
    const a = this.auth;
    const read = (key: Buffer, end?: Buffer) => a.checkPermission(user, key, end, 'read');
    const write = (key: Buffer, end?: Buffer) => a.checkPermission(user, key, end, 'write');
    const needUser = () => {
      if (!user) throw AuthErrors.userEmpty();
    };
    switch (req.request) {
      case 'put': {
        needUser();
        const p = req.put as PutRequest;
        write(p.key);
        if (p.prev_kv) read(p.key);
        this.checkLeaseKeysWritable(user, p.lease);
        return;
      }
      case 'delete_range': {
        needUser();
        const d = req.delete_range as DeleteRangeRequest;
        write(d.key, d.range_end);
        if (d.prev_kv) read(d.key, d.range_end);
        return;
      }
      case 'txn': {
        needUser();
        this.checkTxnAuth(user, req.txn as TxnRequest);
        return;
      }
      case 'compaction':
      case 'alarm':
      case 'auth_enable':
      case 'auth_disable':
      case 'user_add':
      case 'user_delete':
      case 'user_change_password':
      case 'user_grant_role':
      case 'user_revoke_role':
      case 'role_add':
      case 'role_delete':
      case 'role_grant_permission':
      case 'role_revoke_permission':
        a.checkAdmin(user);
        return;
      case 'lease_revoke': {
        needUser();
        if (!a.isAdmin(user)) for (const key of this.lessor.timeToLive(BigInt((req.lease_revoke as LeaseRevokeRequest).ID))?.keys ?? []) write(Buffer.from(key, 'latin1'));
        return;
      }
      default:
        return;
    }
  }

  /** A put with a lease: the user must be allowed to write every key already on that lease (etcd's rule). */
  private checkLeaseKeysWritable(user: string, lease: string | number | undefined): void {
    if (lease === undefined || String(lease) === '0' || this.auth.isAdmin(user)) return;
    for (const key of this.lessor.timeToLive(BigInt(lease))?.keys ?? []) this.auth.checkPermission(user, Buffer.from(key, 'latin1'), undefined, 'write');
  }

  private checkTxnAuth(user: string, t: TxnRequest): void {
    const a = this.auth;
    for (const c of t.compare ?? []) a.checkPermission(user, c.key, c.range_end, 'read');
    const ops = (list: TxnRequest['success']) => {
      for (const op of list ?? []) {
        if (op.request_range) a.checkPermission(user, op.request_range.key, op.request_range.range_end, 'read');
        else if (op.request_put) {
          a.checkPermission(user, op.request_put.key, undefined, 'write');
          if (op.request_put.prev_kv) a.checkPermission(user, op.request_put.key, undefined, 'read');
          this.checkLeaseKeysWritable(user, op.request_put.lease);
        } else if (op.request_delete_range) {
          const d = op.request_delete_range;
          if (d.prev_kv) a.checkPermission(user, d.key, d.range_end, 'read');
          a.checkPermission(user, d.key, d.range_end, 'write');
        } else if (op.request_txn) this.checkTxnAuth(user, op.request_txn);
      }
    };
    ops(t.success);
    ops(t.failure);
  }

  private applyOne(req: InternalRequest, batch: WriteBatch, index: number): unknown {
    this.checkEntryAuth(req);
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
      case 'auth_enable': {
        this.auth.enable(batch);
        this.log.info({}, 'enabled authentication');
        return { header: this.header() };
      }
      case 'auth_disable': {
        this.auth.disable(batch);
        this.tokens.clear();
        this.log.info({}, 'disabled authentication');
        return { header: this.header() };
      }
      case 'user_add': {
        const u = req.user_add as NonNullable<InternalRequest['user_add']>;
        this.auth.userAdd(u.name, u.hashedPassword || undefined, u.options?.no_password === true, batch);
        return { header: this.header() };
      }
      case 'user_delete': {
        const u = req.user_delete as NonNullable<InternalRequest['user_delete']>;
        this.auth.userDelete(u.name, batch);
        this.tokens.invalidateUser(u.name);
        return { header: this.header() };
      }
      case 'user_change_password': {
        const u = req.user_change_password as NonNullable<InternalRequest['user_change_password']>;
        this.auth.userChangePassword(u.name, u.hashedPassword ?? '', batch);
        this.tokens.invalidateUser(u.name);
        return { header: this.header() };
      }
      case 'user_grant_role': {
        const u = req.user_grant_role as NonNullable<InternalRequest['user_grant_role']>;
        this.auth.userGrantRole(u.user, u.role, batch);
        return { header: this.header() };
      }
      case 'user_revoke_role': {
        const u = req.user_revoke_role as NonNullable<InternalRequest['user_revoke_role']>;
        this.auth.userRevokeRole(u.name, u.role, batch);
        return { header: this.header() };
      }
      case 'role_add': {
        this.auth.roleAdd((req.role_add as { name: string }).name, batch);
        return { header: this.header() };
      }
      case 'role_delete': {
        this.auth.roleDelete((req.role_delete as { role: string }).role, batch);
        return { header: this.header() };
      }
      case 'role_grant_permission': {
        const g = req.role_grant_permission as NonNullable<InternalRequest['role_grant_permission']>;
        const perm = g.perm
          ? { permType: Number(g.perm.permType ?? 0) as 0 | 1 | 2, key: Buffer.from(g.perm.key ?? []), rangeEnd: Buffer.from(g.perm.range_end ?? []) }
          : undefined;
        this.auth.roleGrantPermission(g.name, perm, batch);
        return { header: this.header() };
      }
      case 'role_revoke_permission': {
        const r = req.role_revoke_permission as NonNullable<InternalRequest['role_revoke_permission']>;
        this.auth.roleRevokePermission(r.role, Buffer.from(r.key ?? []), Buffer.from(r.range_end ?? []), batch);
        return { header: this.header() };
      }
      case 'authenticate': {
        const a = req.authenticate as { name: string; token_prefix: string };
        this.auth.checkAuthenticate(a.name);
        if (this.jwt) return { header: this.header(), token: this.jwt.sign(a.name, this.auth.revision) };
        const token = `${a.token_prefix}.${index}`;
        this.tokens.assign(token, a.name);
        return { header: this.header(), token };
      }
      case 'member_attr': {
        const a = req.member_attr as { member_id: string; name: string; client_urls: string[] };
        const m = this.members.get(BigInt(a.member_id));
        if (m) {
          m.name = a.name;
          m.clientURLs = a.client_urls ?? [];
          this.putMember(m, batch);
        }
        return { header: this.header() };
      }
      default:
        throw new Error(`unknown request in log entry: ${JSON.stringify(req.request)}`);
    }
  }

  /**
   * Every --snapshot-count applied entries: make the state durable, record a snapshot at the applied
   * index (with the configuration as of it) and drop the log behind it but for --snapshot-catchup-entries,
   * which slow followers catch up from without a full state transfer.
   */
  private maybeSnapshot(): void {
    const count = this.options.snapshotCount ?? 10000;
    // (an installed snapshot's state may be ahead of the log for a while: snapshot what the log covers)
    const index = Math.min(this.appliedIndex, this.storage.lastIndex());
    if (index - this.snapshotIndex < count || this.compacting || this.stopped) return;
    const keep = this.options.snapshotCatchupEntries;
    const compactTo = Math.max(this.storage.firstIndex() - 1, index - keep);
    // the state these entries produced was written without fsync: a sync write flushes every earlier one
    const mark = new WriteBatch();
    mark.put(META.appliedIndex, u64be(this.appliedIndex));
    this.backend.write(mark, true);
    const snap = this.storage.createSnapshot(index, this.confState, new Uint8Array(0));
    if (compactTo >= this.storage.firstIndex()) this.storage.compact(compactTo);
    this.snapshotIndex = index;
    this.compacting = true;
    this.raftLog
      .compact(snap.metadata, compactTo)
      .then(() => this.log.info({ 'snapshot-index': index, 'compacted-to': compactTo }, 'saved snapshot and compacted the raft log'))
      .catch((err: unknown) => this.fatal(err, 'failed to compact the raft log'))
      .finally(() => (this.compacting = false));
  }
  private compacting = false;

  private fatal(err: unknown, msg: string): never {
    this.log.fatal({ err }, msg);
    // Fail-stop: in-memory state may be ahead of disk; a restart rebuilds it from the durable log.
    process.exit(1);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    // A leader going away gracefully hands leadership over first (etcd does the same on shutdown).
    if (this.isLeader() && this.confState.voters.length > 1) {
      const to = this.bestTransferee();
      if (to !== undefined) {
        await Promise.race([this.moveLeader(to).catch(() => undefined), new Promise((r) => setTimeout(r, 2 * this.options.electionTimeoutMs))]);
      }
    }
    this.stopped = true;
    this.watchable.stop();
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    if (this.tickTimer) clearInterval(this.tickTimer);
    if (this.publishTimer) clearInterval(this.publishTimer);
    this.lessor.close();
    for (const w of this.waiters.values()) w.reject(Errors.stopped());
    this.waiters.clear();
    const reads = [...this.pendingReads, ...(this.readInFlight?.waiters ?? []), ...this.readsAwaitingApply.flatMap((a) => a.waiters)];
    for (const r of reads) r.reject(Errors.stopped());
    this.pendingReads = [];
    this.readInFlight = undefined;
    this.readsAwaitingApply = [];
    await this.mvcc.compactionsDone().catch(() => undefined);
    await this.wal.close();
    await this.backend.close();
  }
}

function cmpId(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function electionTicksOf(o: ServerOptions): number {
  return Math.max(2, Math.floor(o.electionTimeoutMs / o.heartbeatIntervalMs));
}

function validatePeerUrls(urls: string[]): string[] {
  if (urls.length === 0) throw Errors.memberBadURLs();
  const out: string[] = [];
  for (const u of urls) {
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      throw Errors.memberBadURLs();
    }
    if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || parsed.hostname === '' || parsed.pathname.length > 1) throw Errors.memberBadURLs();
    out.push(u);
  }
  return out.sort();
}

/** A read-only txn whose ranges are all serializable needs no read index. */
function isTxnSerializable(r: TxnRequest): boolean {
  const ops = [...(r.success ?? []), ...(r.failure ?? [])];
  return ops.every((op) => !op.request_range || op.request_range.serializable === true) && ops.some((op) => !!op.request_range);
}

function raftLogger(log: Logger): RaftLogger {
  return {
    debug: (obj, msg) => log.debug(obj, msg),
    info: (obj, msg) => log.info(obj, msg),
    warn: (obj, msg) => log.warn(obj, msg),
  };
}

/**
 * --force-new-cluster: keep the committed log, drop the uncommitted tail, and append entries that remove
 * every other member, committed at once: this member alone is the cluster afterwards, with all its data.
 */
function forceNewCluster(raftLog: RaftLog, loaded: LoadedLog, self: bigint, log: Logger): void {
  const storage = loaded.storage;
  const hs = loaded.hardState;
  const commit = hs.commit;
  const lastIndex = storage.lastIndex();
  // the configuration as of the commit index
  const voters = new Set(loaded.snapshot.confState.voters);
  const learners = new Set(loaded.snapshot.confState.learners);
  if (commit > loaded.snapshot.index) {
    for (const e of storage.entries(loaded.snapshot.index + 1, commit + 1)) {
      if (e.type !== EntryType.ConfChange) continue;
      const cc = decodeConfChange(e.data);
      if (cc.type === ConfChangeType.AddNode) {
        voters.add(cc.nodeId);
        learners.delete(cc.nodeId);
      } else if (cc.type === ConfChangeType.AddLearnerNode) learners.add(cc.nodeId);
      else if (cc.type === ConfChangeType.RemoveNode) {
        voters.delete(cc.nodeId);
        learners.delete(cc.nodeId);
      }
    }
  }
  const term = Math.max(hs.term, 1);
  const others = [...voters, ...learners].filter((id) => id !== self);
  const entries: Entry[] = others.map((id, i) => ({
    term,
    index: commit + 1 + i,
    type: EntryType.ConfChange,
    data: encodeConfChange({ id: 0n, type: ConfChangeType.RemoveNode, nodeId: id, context: new Uint8Array(0) }),
  }));
  const newCommit = commit + entries.length;
  const newHs = { term, vote: NONE, commit: newCommit };
  raftLog.forceWrite(entries, newHs, commit, lastIndex);
  // mirror: drop the uncommitted tail, then the new entries
  if (lastIndex > commit) {
    const kept = commit >= storage.firstIndex() ? storage.entries(storage.firstIndex(), commit + 1) : [];
    const fresh = new MemoryStorage();
    if (loaded.snapshot.index > 0) fresh.applySnapshot({ metadata: loaded.snapshot, data: new Uint8Array(0) });
    fresh.append(kept);
    loaded.storage = fresh;
  }
  loaded.storage.append(entries);
  loaded.storage.setHardState(newHs);
  loaded.hardState = newHs;
  if (!voters.has(self)) throw new Error('--force-new-cluster: this member is not a voter in its own log');
  log.warn({ 'removed-members': others.map(idToHex), 'commit-index': newCommit }, 'forcing a new cluster: every other member removed from the configuration');
}
