// Turning one flag's string value (from the command line or an ETCD_* variable) into a typed value,
// with the syntax rules of etcd's flag types.
import { type FeatureGateSettings, applyFeatureGates } from './features';
import type { FlagSpec } from './flags';
import { type Parsed, parseGoBool, parseGoDurationNs, parseGoInt } from './goparse';
import { type ParsedUrl, parseUniqueUrlList } from './urls';

/** bigint = duration in nanoseconds; string[] for list kinds (or a 'urls' exception such as ['*']). */
export type FlagValue = string | boolean | number | bigint | ParsedUrl[] | string[] | FeatureGateSettings;

export const DURATION_HINT = 'expected a Go duration such as 500ms, 2s or 1h30m (units ns, us, ms, s, m, h)';

export function describeExpected(spec: FlagSpec): string {
  const unit = spec.unit ? ` (${spec.unit})` : '';
  switch (spec.kind) {
    case 'bool':
    case 'ignored':
      return 'expected a boolean (true or false)';
    case 'uint':
    case 'uint32':
    case 'uint64':
      return `expected an unsigned integer${unit}`;
    case 'int':
    case 'int64':
      return `expected an integer${unit}`;
    case 'duration':
      return DURATION_HINT;
    case 'select':
    case 'selectMulti':
      return `expected ${spec.kind === 'selectMulti' ? 'a comma-separated list of' : 'one of'}: ${spec.choices!.join(', ')}`;
    case 'urls':
      return 'expected comma-separated URLs such as http://10.0.0.1:2379';
    default:
      return 'expected a string';
  }
}

/** flag.Value.Set for the flag's type. `prev` is the current value (feature gates and v2-deprecation accumulate). */
export function parseFlagValue(spec: FlagSpec, raw: string, prev?: FlagValue): Parsed<FlagValue> {
  const fail = (reason: string): Parsed<FlagValue> => ({ ok: false, reason });
  switch (spec.kind) {
    case 'string':
      return { ok: true, value: raw };
    case 'ignored':
      return { ok: true, value: raw };
    case 'bool': {
      const b = parseGoBool(raw);
      return b.ok ? b : fail(describeExpected(spec));
    }
    case 'uint':
    case 'uint32':
    case 'uint64':
    case 'int':
    case 'int64': {
      const n = parseGoInt(raw, spec.kind);
      if (n.ok) return n;
      return fail(n.reason.startsWith('expected') ? describeExpected(spec) : `${n.reason}; ${describeExpected(spec)}`);
    }
    case 'duration': {
      const d = parseGoDurationNs(raw);
      return d.ok ? d : fail(`${d.reason}; ${DURATION_HINT}`);
    }
    case 'urls': {
      if (spec.urlExceptions?.includes(raw)) return { ok: true, value: [raw] };
      const u = parseUniqueUrlList(raw);
      return u.ok ? u : fail(u.reason);
    }
    case 'strings':
      return { ok: true, value: raw.split(',') };
    case 'uniqueStrings':
      return { ok: true, value: [...new Set(raw.split(','))].sort() };
    case 'select':
      return spec.choices!.includes(raw) ? { ok: true, value: raw } : fail(describeExpected(spec));
    case 'selectMulti': {
      const acc = Array.isArray(prev) ? [...(prev as string[])] : [];
      for (const v of raw.split(',')) {
        if (!spec.choices!.includes(v)) return fail(`invalid value ${JSON.stringify(v)}; ${describeExpected(spec)}`);
        acc.push(v);
      }
      return { ok: true, value: acc.sort() };
    }
    case 'featureGates': {
      const base = prev && typeof prev === 'object' && !Array.isArray(prev) ? (prev as FeatureGateSettings) : {};
      return applyFeatureGates(raw, base);
    }
  }
}

/** The typed default of a flag (its etcd default parsed with the flag's own syntax). */
export function defaultValue(spec: FlagSpec): FlagValue {
  if (spec.kind === 'urls' || spec.kind === 'strings' || spec.kind === 'uniqueStrings') {
    if (spec.def === '') return [];
  }
  if (spec.kind === 'selectMulti') return [];
  if (spec.kind === 'featureGates') return {};
  const v = parseFlagValue(spec, spec.def);
  if (!v.ok) throw new Error(`bad default for --${spec.name}: ${v.reason}`);
  return v.value;
}
