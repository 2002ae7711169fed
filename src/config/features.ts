// etcd 3.6's server feature gates (--feature-gates=Name=true,Other=false) and the deprecated
// --experimental-* boolean flags that feed them.
import { parseGoBool, type Parsed } from './goparse';

export type Stage = 'ALPHA' | 'BETA';

export const FEATURE_GATES = {
  AllAlpha: { default: false, stage: 'ALPHA' },
  AllBeta: { default: false, stage: 'BETA' },
  CompactHashCheck: { default: false, stage: 'ALPHA' },
  InitialCorruptCheck: { default: false, stage: 'ALPHA' },
  LeaseCheckpoint: { default: false, stage: 'ALPHA' },
  LeaseCheckpointPersist: { default: false, stage: 'ALPHA' },
  SetMemberLocalAddr: { default: false, stage: 'ALPHA' },
  StopGRPCServiceOnDefrag: { default: false, stage: 'ALPHA' },
  TxnModeWriteWithSharedBuffer: { default: true, stage: 'BETA' },
} as const satisfies Record<string, { default: boolean; stage: Stage }>;

export type FeatureName = keyof typeof FEATURE_GATES;
export const FEATURE_NAMES = Object.keys(FEATURE_GATES) as FeatureName[];

/** Deprecated experimental boolean flags and the gate each one sets (features.ExperimentalFlagToFeatureMap). */
export const EXPERIMENTAL_FLAG_TO_FEATURE: Record<string, FeatureName> = {
  'experimental-stop-grpc-service-on-defrag': 'StopGRPCServiceOnDefrag',
  'experimental-initial-corrupt-check': 'InitialCorruptCheck',
  'experimental-compact-hash-check-enabled': 'CompactHashCheck',
  'experimental-txn-mode-write-with-shared-buffer': 'TxnModeWriteWithSharedBuffer',
  'experimental-enable-lease-checkpoint': 'LeaseCheckpoint',
  'experimental-enable-lease-checkpoint-persist': 'LeaseCheckpointPersist',
};

/** Explicitly set gates, in the order they were set (AllAlpha/AllBeta expand into the unset gates of their stage). */
export type FeatureGateSettings = Partial<Record<FeatureName, boolean>>;

/** featureGate.Set: applies "k=v,k=v" on top of `prev` (repeated flags accumulate, as in etcd). */
export function applyFeatureGates(value: string, prev: FeatureGateSettings): Parsed<FeatureGateSettings> {
  const m: Array<[string, boolean]> = [];
  for (const piece of value.split(',')) {
    if (piece.length === 0) continue;
    const eq = piece.indexOf('=');
    const k = (eq >= 0 ? piece.slice(0, eq) : piece).trim();
    if (eq < 0) return { ok: false, reason: `missing bool value for ${k}` };
    const v = piece.slice(eq + 1).trim();
    const b = parseGoBool(v);
    if (!b.ok) return { ok: false, reason: `invalid value of ${k}=${v}, expected true or false` };
    m.push([k, b.value]);
  }
  const next: FeatureGateSettings = { ...prev };
  for (const [k, v] of m) {
    if (!(k in FEATURE_GATES)) {
      return { ok: false, reason: `unrecognized feature gate: ${k} (known: ${FEATURE_NAMES.join(', ')})` };
    }
    const name = k as FeatureName;
    next[name] = v;
    if (name === 'AllAlpha' || name === 'AllBeta') {
      const stage: Stage = name === 'AllAlpha' ? 'ALPHA' : 'BETA';
      for (const f of FEATURE_NAMES) {
        if (FEATURE_GATES[f].stage === stage && next[f] === undefined) next[f] = v;
      }
    }
  }
  return { ok: true, value: next };
}

/** Effective value of every gate: explicit setting, else default. */
export function effectiveFeatureGates(set: FeatureGateSettings): Record<FeatureName, boolean> {
  const out = {} as Record<FeatureName, boolean>;
  for (const f of FEATURE_NAMES) out[f] = set[f] ?? FEATURE_GATES[f].default;
  return out;
}

/** "Name=true|false (STAGE - default=x)" lines, sorted, as etcd lists them in --help. */
export function knownFeatureLines(): string[] {
  return FEATURE_NAMES.map((f) => `${f}=true|false (${FEATURE_GATES[f].stage} - default=${FEATURE_GATES[f].default})`).sort();
}
