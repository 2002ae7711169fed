// Test certificates made with the openssl command: a CA, and server / peer / client certificates it
// signs (server and peer certificates name 127.0.0.1 and localhost).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface Ca {
  dir: string;
  cert: string;
  key: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A self-signed CA in `dir` (files <name>.crt / <name>.key). */
export function makeCa(dir: string, name = 'ca'): Ca {
  fs.mkdirSync(dir, { recursive: true });
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.crt`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '30', '-subj', `/CN=${name}`], dir);
  return { dir, cert, key };
}

/**
 * A certificate signed by `ca`, for `cn`, usable as server and client certificate (as etcd's peer
 * certificates are), naming 127.0.0.1 and localhost. Returns the paths of <name>.crt and <name>.key.
 */
export function makeCert(ca: Ca, name: string, cn: string, opts: { dir?: string; san?: string; subject?: string } = {}): { cert: string; key: string } {
  const dir = opts.dir ?? ca.dir;
  fs.mkdirSync(dir, { recursive: true });
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.crt`);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, `subjectAltName=${opts.san ?? 'IP:127.0.0.1,DNS:localhost'}\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n`);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', opts.subject ?? `/CN=${cn}`], dir);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', '30', '-extfile', ext], dir);
  return { cert, key };
}

/**
 * A certificate signed by `ca` that expired long ago (valid only on 2020-01-01), for `cn`, naming
 * 127.0.0.1: `openssl ca` is the openssl command that takes explicit validity dates.
 */
export function makeExpiredCert(ca: Ca, name: string, cn: string, dir: string): { cert: string; key: string } {
  const work = path.join(dir, `${name}.ca`);
  fs.mkdirSync(work, { recursive: true });
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(work, `${name}.csr`);
  const cert = path.join(dir, `${name}.crt`);
  fs.writeFileSync(path.join(work, 'index.txt'), '');
  fs.writeFileSync(path.join(work, 'serial'), '01\n');
  fs.writeFileSync(
    path.join(work, 'ca.cnf'),
    [
      '[ ca ]',
      'default_ca = CA_default',
      '[ CA_default ]',
      `database = ${path.join(work, 'index.txt')}`,
      `serial = ${path.join(work, 'serial')}`,
      `new_certs_dir = ${work}`,
      'default_md = sha256',
      'policy = policy_any',
      '[ policy_any ]',
      'commonName = supplied',
      '[ ext ]',
      'extendedKeyUsage = clientAuth,serverAuth',
      'subjectAltName = IP:127.0.0.1,DNS:localhost',
      '',
    ].join('\n'),
  );
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`], dir);
  openssl(
    ['ca', '-batch', '-config', path.join(work, 'ca.cnf'), '-cert', ca.cert, '-keyfile', ca.key, '-in', csr, '-out', cert, '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-extensions', 'ext', '-notext'],
    work,
  );
  return { cert, key };
}
