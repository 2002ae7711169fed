// --auth-token: "simple", "jwt,pub-key=<path>,priv-key=<path>,sign-method=<alg>[,ttl=<duration>]", or ""
// (no token provider). etcd checks this when the server starts; we check the syntax up front. Key files are
// only named here, never read: reading and matching them is the auth layer's job.
import { nsToMs, parseGoDurationNs, type Parsed } from './goparse';

export const JWT_SIGN_METHODS = [
  'HS256', 'HS384', 'HS512',
  'RS256', 'RS384', 'RS512',
  'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512',
  'EdDSA',
] as const;
export type JwtSignMethod = (typeof JWT_SIGN_METHODS)[number];

/** etcd's default JWT lifetime when ttl= is not given (auth.DefaultTTL). */
export const DEFAULT_JWT_TTL_MS = 5 * 60 * 1000;

export type AuthTokenSpec =
  | { type: 'simple' }
  | { type: 'none' }
  | { type: 'jwt'; signMethod: JwtSignMethod; pubKey: string; privKey: string; ttlMs: number };

const KNOWN_JWT_OPTIONS = new Set(['sign-method', 'pub-key', 'priv-key', 'ttl']);

export function parseAuthToken(raw: string): Parsed<{ spec: AuthTokenSpec; warnings: string[] }> {
  const fail = (reason: string): Parsed<{ spec: AuthTokenSpec; warnings: string[] }> => ({ ok: false, reason });
  const parts = raw.split(',');
  const type = parts[0];
  const opts = new Map<string, string>();
  for (const p of parts.slice(1)) {
    const kv = p.split('=');
    if (kv.length !== 2) return fail(`auth: invalid auth options (option ${JSON.stringify(p)} is not key=value)`);
    if (opts.has(kv[0])) return fail(`auth: invalid auth options (duplicate option ${JSON.stringify(kv[0])})`);
    opts.set(kv[0], kv[1]);
  }
  switch (type) {
    case 'simple':
      return { ok: true, value: { spec: { type: 'simple' }, warnings: [] } };
    case '':
      return { ok: true, value: { spec: { type: 'none' }, warnings: [] } };
    case 'jwt': {
      let ttlMs = DEFAULT_JWT_TTL_MS;
      const ttl = opts.get('ttl') ?? '';
      if (ttl !== '') {
        const d = parseGoDurationNs(ttl);
        if (!d.ok) return fail(`auth: invalid ttl: ${d.reason}`);
        ttlMs = nsToMs(d.value);
      }
      const method = opts.get('sign-method') ?? '';
      if (!(JWT_SIGN_METHODS as readonly string[]).includes(method)) {
        return fail(`auth: invalid auth signature method ${JSON.stringify(method)} (accepted: ${JWT_SIGN_METHODS.join(', ')})`);
      }
      const pubKey = opts.get('pub-key') ?? '';
      const privKey = opts.get('priv-key') ?? '';
      if (method.startsWith('HS') ? privKey === '' : privKey === '' && pubKey === '') {
        return fail(
          method.startsWith('HS')
            ? 'auth: missing key data (HMAC sign methods need priv-key=<path>)'
            : 'auth: missing key data (give priv-key=<path> and/or pub-key=<path>)',
        );
      }
      const unknown = [...opts.keys()].filter((k) => !KNOWN_JWT_OPTIONS.has(k));
      const warnings = unknown.length ? [`unknown JWT options in --auth-token: ${unknown.join(', ')}`] : [];
      return {
        ok: true,
        value: { spec: { type: 'jwt', signMethod: method as JwtSignMethod, pubKey, privKey, ttlMs }, warnings },
      };
    }
    default:
      return fail(`auth: invalid auth options (unknown token type ${JSON.stringify(type)}; accepted: simple, jwt)`);
  }
}
