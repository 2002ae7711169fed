// --config-file: etcd's YAML format. etcd decodes the YAML (YAML 1.1, so yes/no/on/off are booleans) into
// its Config struct through JSON, which fixes the value types:
//  - keys are the flag names; unknown keys are silently ignored by etcd (we ignore them too, with a warning);
//  - integers must be YAML integers (heartbeat-interval: 250, in ms as on the command line);
//  - durations (time.Duration fields) are integers in NANOSECONDS, e.g. watch-progress-notify-interval:
//    600000000000 for 10m; a string such as "10m" is an error in etcd, and here;
//  - strings must be strings: `auto-compaction-retention: 1` is an error, write '1' or '1h';
//  - URL lists, cors and host-whitelist are comma-separated strings; log-outputs and cipher-suites are lists;
//  - TLS settings live in client-transport-security / peer-transport-security with the keys cert-file,
//    key-file, client-cert-file, client-key-file, client-cert-auth, trusted-ca-file, auto-tls, allowed-cn,
//    allowed-hostname, skip-client-san-verification (there is no YAML key for the CRL files);
//  - v3 discovery lives in discovery-config {token, client: {endpoints, dial-timeout, ...}}, socket options
//    in socket-options {reuse-port, reuse-address}.
import { parseDocument } from 'yaml';
import { ConfigError } from './errors';
import { applyFeatureGates } from './features';
import { FLAG_BY_NAME, type FlagSpec } from './flags';
import { parseUniqueUrlList, parseUrlList } from './urls';
import type { FlagValue } from './values';

export interface FileSettings {
  values: Map<string, FlagValue>;
  /** etcd's FlagsExplicitlySet for a file: its top-level keys, plus peer-<key> for peer-transport-security keys. */
  explicit: Set<string>;
  clientCertAllowedCn: string[];
  clientSkipClientSanVerification: boolean;
  warnings: string[];
}

/** Flags that have no top-level key in etcd's YAML (they live in a section, or exist only as flags). */
const NOT_TOP_LEVEL = new Set([
  'config-file', 'version', 'discovery-fallback', 'raft-read-timeout', 'raft-write-timeout',
  'discovery-endpoints', 'discovery-token', 'discovery-dial-timeout', 'discovery-request-timeout',
  'discovery-keepalive-time', 'discovery-keepalive-timeout', 'discovery-insecure-transport',
  'discovery-insecure-skip-tls-verify', 'discovery-cert', 'discovery-key', 'discovery-cacert', 'discovery-user',
  'discovery-password', 'socket-reuse-port', 'socket-reuse-address',
  'cert-file', 'key-file', 'client-cert-auth', 'client-cert-file', 'client-key-file', 'client-crl-file',
  'client-cert-allowed-hostname', 'trusted-ca-file', 'auto-tls',
  'peer-cert-file', 'peer-key-file', 'peer-client-cert-auth', 'peer-client-cert-file', 'peer-client-key-file',
  'peer-trusted-ca-file', 'peer-cert-allowed-cn', 'peer-cert-allowed-hostname', 'peer-auto-tls', 'peer-crl-file',
  'peer-skip-client-san-verification',
]);

/** Section key → flag name, for the client and peer TLS sections. */
const SECTION_KEYS: Record<string, { client: string | null; peer: string; kind: 'string' | 'bool' | 'list' }> = {
  'cert-file': { client: 'cert-file', peer: 'peer-cert-file', kind: 'string' },
  'key-file': { client: 'key-file', peer: 'peer-key-file', kind: 'string' },
  'client-cert-file': { client: 'client-cert-file', peer: 'peer-client-cert-file', kind: 'string' },
  'client-key-file': { client: 'client-key-file', peer: 'peer-client-key-file', kind: 'string' },
  'client-cert-auth': { client: 'client-cert-auth', peer: 'peer-client-cert-auth', kind: 'bool' },
  'trusted-ca-file': { client: 'trusted-ca-file', peer: 'peer-trusted-ca-file', kind: 'string' },
  'auto-tls': { client: 'auto-tls', peer: 'peer-auto-tls', kind: 'bool' },
  'allowed-cn': { client: null, peer: 'peer-cert-allowed-cn', kind: 'list' },
  'allowed-hostname': { client: 'client-cert-allowed-hostname', peer: 'peer-cert-allowed-hostname', kind: 'list' },
  'skip-client-san-verification': { client: null, peer: 'peer-skip-client-san-verification', kind: 'bool' },
};

const DISCOVERY_CLIENT_KEYS: Record<string, { flag: string | null; kind: 'duration' | 'int' | 'list' }> = {
  endpoints: { flag: 'discovery-endpoints', kind: 'list' },
  'dial-timeout': { flag: 'discovery-dial-timeout', kind: 'duration' },
  'request-timeout': { flag: 'discovery-request-timeout', kind: 'duration' },
  'keepalive-time': { flag: 'discovery-keepalive-time', kind: 'duration' },
  'keepalive-timeout': { flag: 'discovery-keepalive-timeout', kind: 'duration' },
  'max-request-bytes': { flag: null, kind: 'int' },
  'max-recv-bytes': { flag: null, kind: 'int' },
};
const DISCOVERY_SECURE_KEYS: Record<string, { flag: string | null; kind: 'string' | 'bool' }> = {
  cert: { flag: 'discovery-cert', kind: 'string' },
  key: { flag: 'discovery-key', kind: 'string' },
  cacert: { flag: 'discovery-cacert', kind: 'string' },
  'server-name': { flag: null, kind: 'string' },
  'insecure-transport': { flag: 'discovery-insecure-transport', kind: 'bool' },
  'insecure-skip-tls-verify': { flag: 'discovery-insecure-skip-tls-verify', kind: 'bool' },
};
const DISCOVERY_AUTH_KEYS: Record<string, string> = { username: 'discovery-user', password: 'discovery-password' };

/** Top-level keys whose value is a YAML list rather than a comma-separated string. */
const LIST_KEYS = new Set(['log-outputs', 'cipher-suites']);

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `${JSON.stringify(v)} (a string)`;
  return `${String(v)} (a ${typeof v === 'number' ? 'number' : typeof v})`;
}

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function readConfigFile(path: string, text: string): FileSettings {
  const where = `config file ${path}`;
  const bad = (key: string, expected: string, got: unknown): ConfigError =>
    new ConfigError(`invalid value for ${JSON.stringify(key)} in ${where}: ${expected}, got ${typeName(got)}`, {
      flag: key,
    });

  const doc = parseDocument(text, { version: '1.1', uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    const first = doc.errors[0].message.split('\n')[0];
    throw new ConfigError(`cannot parse ${where}: ${first}`);
  }
  const root: unknown = doc.toJS({ maxAliasCount: 100 });

  const out: FileSettings = {
    values: new Map(),
    explicit: new Set(),
    clientCertAllowedCn: [],
    clientSkipClientSanVerification: false,
    warnings: [],
  };
  if (root === null || root === undefined) return out;
  if (!isMap(root)) throw new ConfigError(`${where} must be a YAML mapping of flag names to values, got ${typeName(root)}`);

  const unknown = (key: string, why = 'etcd ignores it too'): void => {
    out.warnings.push(`unknown key ${JSON.stringify(key)} in ${where} is ignored (${why})`);
  };

  // typed readers; `key` is used for messages
  const str = (key: string, v: unknown): string => {
    if (typeof v !== 'string') throw bad(key, 'expected a string', v);
    return v;
  };
  const bool = (key: string, v: unknown): boolean => {
    if (typeof v !== 'boolean') throw bad(key, 'expected true or false', v);
    return v;
  };
  const integer = (key: string, v: unknown, spec?: FlagSpec, unsigned = false): number => {
    const unit = spec?.unit ? ` (${spec.unit})` : '';
    const expected = `expected ${unsigned ? 'an unsigned integer' : 'an integer'}${unit}`;
    if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(key, expected, v);
    if (unsigned && v < 0) throw bad(key, expected, v);
    if (spec?.kind === 'uint32' && v > 0xffffffff) throw bad(key, `${expected} of at most 4294967295`, v);
    if (!Number.isSafeInteger(v)) throw bad(key, `${expected} of at most ${Number.MAX_SAFE_INTEGER}`, v);
    return v;
  };
  const durationNs = (key: string, v: unknown): bigint => {
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw bad(key, 'expected an integer number of nanoseconds (etcd reads YAML durations as nanoseconds: 600000000000 = 10m)', v);
    }
    return BigInt(v);
  };
  const list = (key: string, v: unknown): string[] => {
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw bad(key, 'expected a list of strings', v);
    return v as string[];
  };

  for (const [key, value] of Object.entries(root)) {
    if (value === null || value === undefined) {
      continue; // JSON null leaves etcd's default in place
    }
    switch (key) {
      case 'client-transport-security':
      case 'peer-transport-security': {
        const side = key === 'peer-transport-security' ? 'peer' : 'client';
        if (!isMap(value)) {
          throw new ConfigError(`invalid ${key} in ${where}: expected a mapping of TLS settings, got ${typeName(value)}`, { flag: key });
        }
        out.explicit.add(key);
        for (const [k, v] of Object.entries(value)) {
          const full = `${key}.${k}`;
          if (side === 'peer') out.explicit.add(`peer-${k}`);
          const m = SECTION_KEYS[k];
          if (!m) {
            unknown(full, k === 'crl-file' ? 'etcd 3.6 has no config-file setting for CRL files' : 'etcd ignores it too');
            continue;
          }
          if (v === null) continue;
          const parsed = m.kind === 'string' ? str(full, v) : m.kind === 'bool' ? bool(full, v) : list(full, v);
          if (side === 'peer') out.values.set(m.peer, parsed);
          else if (m.client !== null) out.values.set(m.client, parsed);
          else if (k === 'allowed-cn') out.clientCertAllowedCn = parsed as string[];
          else out.clientSkipClientSanVerification = parsed as boolean;
        }
        continue;
      }
      case 'socket-options': {
        if (!isMap(value)) throw bad(key, 'expected a mapping with reuse-port and reuse-address', value);
        out.explicit.add(key);
        for (const [k, v] of Object.entries(value)) {
          if (v === null) continue;
          if (k === 'reuse-port') out.values.set('socket-reuse-port', bool(`${key}.${k}`, v));
          else if (k === 'reuse-address') out.values.set('socket-reuse-address', bool(`${key}.${k}`, v));
          else unknown(`${key}.${k}`);
        }
        continue;
      }
      case 'discovery-config': {
        if (!isMap(value)) throw bad(key, 'expected a mapping with token and client', value);
        out.explicit.add(key);
        for (const [k, v] of Object.entries(value)) {
          if (v === null) continue;
          if (k === 'token') {
            out.values.set('discovery-token', str(`${key}.token`, v));
          } else if (k === 'client') {
            if (!isMap(v)) throw bad(`${key}.client`, 'expected a mapping', v);
            for (const [ck, cv] of Object.entries(v)) {
              const full = `${key}.client.${ck}`;
              if (cv === null) continue;
              if (ck === 'secure' || ck === 'auth') {
                if (!isMap(cv)) throw bad(full, 'expected a mapping', cv);
                for (const [sk, sv] of Object.entries(cv)) {
                  const sfull = `${full}.${sk}`;
                  if (sv === null) continue;
                  if (ck === 'auth') {
                    const flag = DISCOVERY_AUTH_KEYS[sk];
                    if (flag) out.values.set(flag, str(sfull, sv));
                    else unknown(sfull);
                  } else {
                    const m = DISCOVERY_SECURE_KEYS[sk];
                    if (!m) unknown(sfull);
                    else {
                      const parsed = m.kind === 'string' ? str(sfull, sv) : bool(sfull, sv);
                      if (m.flag) out.values.set(m.flag, parsed);
                    }
                  }
                }
                continue;
              }
              const m = DISCOVERY_CLIENT_KEYS[ck];
              if (!m) {
                unknown(full);
                continue;
              }
              const parsed = m.kind === 'duration' ? durationNs(full, cv) : m.kind === 'int' ? integer(full, cv) : list(full, cv);
              if (m.flag) out.values.set(m.flag, parsed);
            }
          } else {
            unknown(`${key}.${k}`);
          }
        }
        continue;
      }
      case 'experimental-snapshot-catch-up-entries':
      case 'experimental-snapshot-catchup-entries': {
        // etcd's YAML key is the "catch-up" spelling; we also take the flag's spelling, whose value etcd drops.
        const spec = FLAG_BY_NAME.get('experimental-snapshot-catchup-entries')!;
        out.values.set(spec.name, integer(key, value, spec, true));
        out.explicit.add(spec.name);
        continue;
      }
    }

    const spec = FLAG_BY_NAME.get(key);
    if (!spec || spec.kind === 'ignored' || NOT_TOP_LEVEL.has(key)) {
      unknown(key, spec && spec.kind !== 'ignored' ? `--${key} has no top-level config-file key in etcd; see the TLS, discovery-config and socket-options sections` : 'etcd ignores it too');
      continue;
    }
    out.explicit.add(key);
    let v: FlagValue;
    switch (spec.kind) {
      case 'string':
      case 'select':
      case 'selectMulti':
        v = str(key, value);
        break;
      case 'bool':
        v = bool(key, value);
        break;
      case 'uint':
      case 'uint32':
      case 'uint64':
        v = integer(key, value, spec, true);
        break;
      case 'int':
      case 'int64':
        v = integer(key, value, spec);
        break;
      case 'duration':
        v = durationNs(key, value);
        break;
      case 'urls': {
        const s = str(key, value);
        if (s === '') continue; // etcd skips an empty string
        if (spec.urlExceptions) {
          // cors: flags.NewUniqueURLsWithExceptions(value, "*")
          if (spec.urlExceptions.includes(s)) v = [s];
          else {
            const u = parseUniqueUrlList(s);
            if (!u.ok) throw new ConfigError(`invalid value for ${JSON.stringify(key)} in ${where}: ${u.reason}`, { flag: key });
            v = u.value;
          }
        } else {
          const u = parseUrlList(s);
          if (!u.ok) throw new ConfigError(`invalid value for ${JSON.stringify(key)} in ${where}: ${u.reason}`, { flag: key });
          v = u.value;
        }
        break;
      }
      case 'strings':
      case 'uniqueStrings':
        if (LIST_KEYS.has(key)) v = list(key, value);
        else {
          const s = str(key, value);
          if (s === '') continue;
          v = [...new Set(s.split(','))].sort();
        }
        break;
      case 'featureGates': {
        const s = str(key, value);
        const g = applyFeatureGates(s, {});
        if (!g.ok) throw new ConfigError(`invalid value for ${JSON.stringify(key)} in ${where}: ${g.reason}`, { flag: key });
        v = g.value;
        break;
      }
      default:
        throw new Error(`unhandled kind ${spec.kind}`);
    }
    out.values.set(key, v);
  }
  return out;
}

