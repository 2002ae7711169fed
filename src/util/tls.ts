// TLS settings from etcd's flags (client-transport-security / peer-transport-security), and certificate
// files that are re-read when they change on disk (as Kubernetes updates a mounted Secret): servers swap
// their secure context, so new connections use the new certificate while open ones carry on.
import * as fs from 'node:fs';
import * as tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { Logger } from './logger';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** CA bundle that client (or peer) certificates must chain to */
  trustedCaFile: string;
  /** require and verify a certificate from the other side */
  clientCertAuth: boolean;
  /** if non-empty, the other side's certificate CN must be one of these */
  allowedCn: string[];
  /** if non-empty, the other side's certificate must name one of these hosts (SAN DNS/IP or CN) */
  allowedHostname: string[];
  minVersion: '' | 'TLS1.2' | 'TLS1.3';
  maxVersion: '' | 'TLS1.2' | 'TLS1.3';
  /** Go cipher-suite names (--cipher-suites) */
  cipherSuites: string[];
}

/** Go crypto/tls suite names -> OpenSSL names (TLS 1.2; TLS 1.3 suites are not configurable, as in Go). */
const GO_TO_OPENSSL: Record<string, string> = {
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: 'ECDHE-ECDSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: 'ECDHE-RSA-AES128-SHA256',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
  TLS_RSA_WITH_AES_128_CBC_SHA256: 'AES128-SHA256',
  TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA: 'ECDHE-RSA-DES-CBC3-SHA',
  TLS_RSA_WITH_3DES_EDE_CBC_SHA: 'DES-CBC3-SHA',
};

function tlsVersion(v: '' | 'TLS1.2' | 'TLS1.3', fallback: tls.SecureVersion): tls.SecureVersion {
  return v === 'TLS1.3' ? 'TLSv1.3' : v === 'TLS1.2' ? 'TLSv1.2' : fallback;
}

/** The options of a secure context: read from disk now (throws with the file name when one is unreadable). */
export function secureContextOptions(f: TlsFiles): tls.SecureContextOptions {
  const read = (file: string, what: string): Buffer => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new Error(`cannot read ${what} ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const opts: tls.SecureContextOptions = {
    cert: read(f.certFile, 'certificate'),
    key: read(f.keyFile, 'key'),
    // etcd's default minimum is TLS 1.2
    minVersion: tlsVersion(f.minVersion, 'TLSv1.2'),
    maxVersion: tlsVersion(f.maxVersion, 'TLSv1.3'),
  };
  if (f.trustedCaFile) opts.ca = read(f.trustedCaFile, 'trusted CA file');
  if (f.cipherSuites.length > 0) {
    const names = f.cipherSuites.map((c) => GO_TO_OPENSSL[c]).filter((c): c is string => c !== undefined);
    if (names.length === 0) throw new Error(`none of the cipher suites ${f.cipherSuites.join(',')} is available`);
    opts.ciphers = names.join(':');
  }
  // a bad key/certificate pair fails here, at start, instead of at the first handshake
  tls.createSecureContext(opts);
  return opts;
}

/**
 * Server options for a TLS listener (client or peer port). With client-certificate auth the certificate
 * is requested and then judged by checkPeerIdentity right after the handshake (not by OpenSSL during it):
 * that way the log can say why a client was refused (expired, unknown CA, no certificate), which a failed
 * handshake does not tell the server.
 */
export function serverTlsOptions(f: TlsFiles): tls.TlsOptions {
  return {
    ...secureContextOptions(f),
    requestCert: f.clientCertAuth,
    rejectUnauthorized: false,
  };
}

/**
 * Whether the other side's verified certificate passes --*-cert-allowed-cn / --*-cert-allowed-hostname;
 * the reason when it does not.
 */
export function checkPeerIdentity(socket: tls.TLSSocket, f: TlsFiles): string | undefined {
  if (f.clientCertAuth && !socket.authorized) {
    const why = socket.authorizationError ? String(socket.authorizationError) : 'no certificate';
    return `client certificate rejected: ${why}`;
  }
  if (f.allowedCn.length === 0 && f.allowedHostname.length === 0) return undefined;
  const raw = socket.getPeerCertificate();
  if (!raw || !raw.raw) return 'no client certificate';
  const cn = raw.subject?.CN;
  if (f.allowedCn.length > 0 && (typeof cn !== 'string' || !f.allowedCn.includes(cn))) {
    return `certificate CN ${JSON.stringify(cn)} is not allowed (allowed: ${f.allowedCn.join(', ')})`;
  }
  if (f.allowedHostname.length > 0) {
    const x509 = new X509Certificate(raw.raw);
    if (!f.allowedHostname.some((h) => x509.checkHost(h) !== undefined || x509.checkIP(h) !== undefined)) {
      return `certificate names none of the allowed hostnames ${f.allowedHostname.join(', ')}`;
    }
  }
  return undefined;
}

/**
 * Calls `onChange` with fresh options whenever one of the files changes (polled once a second: a
 * Kubernetes Secret update swaps a symlink, which only polling the path sees). A change that does not
 * load (say a key written before its certificate) is logged and retried at the next change; the old
 * context stays in use meanwhile.
 */
export class TlsReloader {
  private readonly files: string[];
  private readonly listener = () => this.reload();
  private closed = false;

  constructor(
    private readonly f: TlsFiles,
    private readonly what: string,
    private readonly log: Logger,
    private readonly onChange: (opts: tls.SecureContextOptions) => void,
    intervalMs = 1000,
  ) {
    this.files = [f.certFile, f.keyFile, f.trustedCaFile].filter((x) => x !== '');
    for (const file of this.files) fs.watchFile(file, { interval: intervalMs, persistent: false }, this.listener);
  }

  private reload(): void {
    if (this.closed) return;
    try {
      const opts = secureContextOptions(this.f);
      this.onChange(opts);
      this.log.info({ what: this.what, files: this.files }, 'reloaded TLS certificates');
    } catch (err) {
      this.log.warn({ what: this.what, error: err instanceof Error ? err.message : String(err) }, 'failed to reload TLS certificates; keeping the previous ones');
    }
  }

  close(): void {
    this.closed = true;
    for (const file of this.files) fs.unwatchFile(file, this.listener);
  }
}
