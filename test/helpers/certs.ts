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
