// Values etcd substitutes while starting the server: Config keeps what the user asked for (so it can be
// echoed back and compared with etcd's flags), these helpers give what the server should run with.
import type { Config } from './schema';
import { DEFAULT_QUOTA_BYTES } from './build';

export { DEFAULT_QUOTA_BYTES, MAX_QUOTA_BYTES } from './build';

/** Backend quota in bytes: 0 → 2 GiB default, negative → no quota (Infinity), else the value. */
export function effectiveQuotaBackendBytes(config: Pick<Config, 'quotaBackendBytes'>): number {
  if (config.quotaBackendBytes < 0) return Infinity;
  if (config.quotaBackendBytes === 0) return DEFAULT_QUOTA_BYTES;
  return config.quotaBackendBytes;
}

export interface EffectiveSettings {
  quotaBackendBytes: number;
  snapshotCount: number;
  snapshotCatchupEntries: number;
  /** ElectionTicks = election timeout / heartbeat (integer division, as etcd). */
  electionTicks: number;
  backendBatchIntervalMs: number;
  backendBatchLimit: number;
  backendBboltFreelistType: 'array' | 'map';
  compactionBatchLimit: number;
  compactionSleepIntervalMs: number;
  watchProgressNotifyIntervalMs: number;
  bcryptCost: number;
  raftReadTimeoutMs: number;
  raftWriteTimeoutMs: number;
  /** Largest request accepted on the gRPC wire: max-request-bytes plus etcd's 512 KiB gRPC overhead allowance. */
  maxRequestBytesWithOverhead: number;
}

export function effectiveSettings(config: Config): EffectiveSettings {
  const orDefault = (v: number, d: number): number => (v === 0 ? d : v);
  const wpn = config.watchProgressNotifyIntervalMs;
  return {
    quotaBackendBytes: effectiveQuotaBackendBytes(config),
    snapshotCount: orDefault(config.snapshotCount, 10000),
    snapshotCatchupEntries: orDefault(config.snapshotCatchupEntries, 5000),
    electionTicks: Math.floor(config.electionTimeoutMs / config.heartbeatIntervalMs),
    backendBatchIntervalMs: orDefault(config.backendBatchIntervalMs, 100),
    backendBatchLimit: orDefault(config.backendBatchLimit, 10000),
    backendBboltFreelistType: config.backendBboltFreelistType === 'array' ? 'array' : 'map',
    compactionBatchLimit: orDefault(config.compactionBatchLimit, 1000),
    compactionSleepIntervalMs: orDefault(config.compactionSleepIntervalMs, 10),
    watchProgressNotifyIntervalMs: wpn <= 0 ? 10 * 60 * 1000 : Math.max(wpn, 100),
    bcryptCost: config.bcryptCost < 4 || config.bcryptCost > 31 ? 10 : config.bcryptCost,
    raftReadTimeoutMs: Math.max(config.raftReadTimeoutMs, 5000),
    raftWriteTimeoutMs: Math.max(config.raftWriteTimeoutMs, 5000),
    maxRequestBytesWithOverhead: config.maxRequestBytes + 512 * 1024,
  };
}
