// etcd's JWT tokens (--auth-token jwt,pub-key=...,priv-key=...,sign-method=...,ttl=...): a signed claim
// set {username, revision, exp}. Any member holding the public key accepts a token, without state; a
// token dies when it expires, or when users or roles change (its revision is then older than the store's).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import type { JwtSignMethod } from '../config/authtoken';

export interface JwtSpec {
  signMethod: JwtSignMethod;
  pubKey: string;
  privKey: string;
  ttlMs: number;
}

export interface JwtClaims {
  user: string;
  revision: number;
}

const b64url = (b: Buffer): string => b.toString('base64url');

function hashOf(method: JwtSignMethod): string {
  if (method === 'EdDSA') return '';
  return `sha${method.slice(2)}`;
}

export class JwtTokens {
  private readonly priv: crypto.KeyObject | Buffer | undefined;
  private readonly pub: crypto.KeyObject | Buffer | undefined;

  /** Reads the key files now: a missing or unreadable one stops the member at start with the file named. */
  constructor(private readonly spec: JwtSpec) {
    const read = (file: string, what: string): Buffer => {
      try {
        return fs.readFileSync(file);
      } catch (err) {
        throw new Error(`cannot read the JWT ${what} ${file}: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    if (spec.signMethod.startsWith('HS')) {
      // HMAC: the key file's bytes are the shared secret
      this.priv = read(spec.privKey, 'key');
      this.pub = this.priv;
    } else {
      this.priv = spec.privKey ? crypto.createPrivateKey(read(spec.privKey, 'private key')) : undefined;
      this.pub = spec.pubKey ? crypto.createPublicKey(read(spec.pubKey, 'public key')) : this.priv ? crypto.createPublicKey(this.priv as crypto.KeyObject) : undefined;
    }
  }

  private signBytes(data: Buffer): Buffer {
    const m = this.spec.signMethod;
    if (!this.priv) throw new Error('this member has no JWT private key: it can verify tokens but not issue them');
    if (m.startsWith('HS')) return crypto.createHmac(hashOf(m), this.priv as Buffer).update(data).digest();
    if (m === 'EdDSA') return crypto.sign(null, data, this.priv as crypto.KeyObject);
    if (m.startsWith('PS')) {
      return crypto.sign(hashOf(m), data, { key: this.priv as crypto.KeyObject, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST });
    }
    if (m.startsWith('ES')) return crypto.sign(hashOf(m), data, { key: this.priv as crypto.KeyObject, dsaEncoding: 'ieee-p1363' });
    return crypto.sign(hashOf(m), data, this.priv as crypto.KeyObject);
  }

  private verifyBytes(data: Buffer, sig: Buffer): boolean {
    const m = this.spec.signMethod;
    if (!this.pub) return false;
    if (m.startsWith('HS')) {
      const want = crypto.createHmac(hashOf(m), this.pub as Buffer).update(data).digest();
      return want.length === sig.length && crypto.timingSafeEqual(want, sig);
    }
    if (m === 'EdDSA') return crypto.verify(null, data, this.pub as crypto.KeyObject, sig);
    if (m.startsWith('PS')) {
      return crypto.verify(hashOf(m), data, { key: this.pub as crypto.KeyObject, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_AUTO }, sig);
    }
    if (m.startsWith('ES')) return crypto.verify(hashOf(m), data, { key: this.pub as crypto.KeyObject, dsaEncoding: 'ieee-p1363' }, sig);
    return crypto.verify(hashOf(m), data, this.pub as crypto.KeyObject, sig);
  }

  /** A signed token for `user` at auth revision `revision`, valid for the configured ttl. */
  sign(user: string, revision: number, nowMs = Date.now()): string {
    const header = b64url(Buffer.from(JSON.stringify({ alg: this.spec.signMethod, typ: 'JWT' })));
    const payload = b64url(Buffer.from(JSON.stringify({ exp: Math.floor((nowMs + this.spec.ttlMs) / 1000), revision, username: user })));
    const signed = Buffer.from(`${header}.${payload}`);
    return `${header}.${payload}.${b64url(this.signBytes(signed))}`;
  }

  /** The token's claims, or undefined when it is malformed, signed otherwise, of another algorithm, or expired. */
  verify(token: string, nowMs = Date.now()): JwtClaims | undefined {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    try {
      const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')) as { alg?: string };
      if (header.alg !== this.spec.signMethod) return undefined;
      if (!this.verifyBytes(Buffer.from(`${parts[0]}.${parts[1]}`), Buffer.from(parts[2], 'base64url'))) return undefined;
      const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as { username?: unknown; revision?: unknown; exp?: unknown };
      if (typeof claims.username !== 'string' || typeof claims.revision !== 'number' || typeof claims.exp !== 'number') return undefined;
      if (claims.exp * 1000 <= nowMs) return undefined;
      return { user: claims.username, revision: claims.revision };
    } catch {
      return undefined;
    }
  }
}
