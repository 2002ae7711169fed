// JWT tokens: every signing method etcd accepts signs and verifies; tampering, another algorithm, a
// foreign key and expiry are refused; the claims are etcd's (username, revision, exp).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { JwtTokens } from '../../src/auth/jwt';
import type { JwtSignMethod } from '../../src/config/authtoken';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-ts-jwt-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function keyFiles(method: JwtSignMethod, tag = ''): { pubKey: string; privKey: string } {
  const privKey = path.join(dir, `${method}${tag}.key`);
  const pubKey = path.join(dir, `${method}${tag}.pub`);
  if (method.startsWith('HS')) {
    fs.writeFileSync(privKey, crypto.randomBytes(32));
    return { pubKey: '', privKey };
  }
  const pair =
    method === 'EdDSA'
      ? crypto.generateKeyPairSync('ed25519')
      : method.startsWith('ES')
        ? crypto.generateKeyPairSync('ec', { namedCurve: { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }[method.slice(0, 5) as 'ES256'] })
        : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  fs.writeFileSync(privKey, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  fs.writeFileSync(pubKey, pair.publicKey.export({ type: 'spki', format: 'pem' }));
  return { pubKey, privKey };
}

const METHODS: JwtSignMethod[] = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

test.each(METHODS)('%s: sign, verify, and refuse tampering, expiry and a foreign key', (method) => {
  const keys = keyFiles(method);
  const t = new JwtTokens({ signMethod: method, ...keys, ttlMs: 60_000 });
  const now = Date.now();
  const token = t.sign('alice', 7, now);
  const [h, p] = token.split('.');
  expect(JSON.parse(Buffer.from(h, 'base64url').toString())).toEqual({ alg: method, typ: 'JWT' });
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
  expect(claims).toEqual({ exp: Math.floor((now + 60_000) / 1000), revision: 7, username: 'alice' });
  expect(t.verify(token, now)).toEqual({ user: 'alice', revision: 7 });
  // another user in the payload with the old signature
  const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, username: 'root' })).toString('base64url')}.${token.split('.')[2]}`;
  expect(t.verify(forged, now)).toBeUndefined();
  // expired
  expect(t.verify(token, now + 61_000)).toBeUndefined();
  // signed with another key of the same kind
  const other = new JwtTokens({ signMethod: method, ...keyFiles(method, '-other'), ttlMs: 60_000 });
  expect(t.verify(other.sign('alice', 7, now), now)).toBeUndefined();
  // malformed
  for (const bad of ['', 'a.b', 'a.b.c', `${h}.${p}`, `${h}.!!!.${token.split('.')[2]}`]) expect(t.verify(bad, now)).toBeUndefined();
});

test('a token of another algorithm is refused (no algorithm switching)', () => {
  const rs = new JwtTokens({ signMethod: 'RS256', ...keyFiles('RS256', '-a'), ttlMs: 60_000 });
  const hs = new JwtTokens({ signMethod: 'HS256', ...keyFiles('HS256', '-a'), ttlMs: 60_000 });
  expect(rs.verify(hs.sign('root', 1))).toBeUndefined();
  const noneAlg = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify({ username: 'root', revision: 1, exp: 9e9 })).toString('base64url')}.`;
  expect(rs.verify(noneAlg)).toBeUndefined();
});

test('a missing key file stops the member with the file named', () => {
  expect(() => new JwtTokens({ signMethod: 'RS256', pubKey: path.join(dir, 'nope.pub'), privKey: path.join(dir, 'nope.key'), ttlMs: 1000 })).toThrow(/cannot read the JWT private key .*nope\.key/);
});
