export {
  Lessor,
  monotonicClock,
  minLeaseTtlSeconds,
  leaseExtendOnPromoteMs,
  leaseRevokeRetryMs,
  MAX_LEASE_TTL,
  LEASE_REVOKE_RATE,
  EXPIRY_CHECK_INTERVAL_MS,
  REVOKE_BATCH_LIMIT,
  DEFAULT_CHECKPOINT_INTERVAL_MS,
  CHECKPOINT_BATCH_LIMIT,
  FOREVER_REMAINING_SECONDS,
} from './lessor';
export type { Clock, LeaseInfo, LessorOptions, TimeToLive, Checkpoint } from './lessor';
export { LeaseErrors, NotPrimaryError, LeaseExpiredError } from './errors';
export { leaseKey } from './record';
