// Which certificate authorities https:// endpoints are checked against, built once per mount.
// --cacert replaces the set (as libcurl's CAINFO does). Otherwise Node's bundled CAs, plus any CA
// in the system's bundle that Node's lacks: a private CA installed with update-ca-certificates is
// trusted by upstream s3backer (libcurl reads that bundle), so it must be by us too.

import { existsSync, readFileSync } from 'node:fs';
import type * as Tls from 'node:tls';
import { tlsModule } from './tlsModule';

export interface TlsTrust {
  readonly rejectUnauthorized: boolean;
  /** undefined: Node's default CAs. Built once: a context with hundreds of CAs costs ~50 ms. */
  readonly secureContext?: Tls.SecureContext | undefined;
}

/** Where distributions keep their CA bundle (Debian/Ubuntu, Fedora/RHEL, openSUSE, Alpine). */
const SYSTEM_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/ca-bundle.pem',
  '/etc/ssl/cert.pem',
];

const PEM = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const normalized = (pem: string): string => pem.replace(/\s+/g, '');

/**
 * The certificates of the system's bundle (SSL_CERT_FILE, OpenSSL's variable, names another)
 * that Node's bundle lacks; none when there is no bundle or it cannot be read.
 */
export function systemOnlyCAs(env: Readonly<Record<string, string | undefined>> = process.env): string[] {
  const file = env.SSL_CERT_FILE || SYSTEM_BUNDLES.find((f) => existsSync(f));
  if (file === undefined) return [];
  let text: string;
  try {
    text = readFileSync(file, 'latin1');
  } catch {
    return [];
  }
  const known = new Set(tlsModule().rootCertificates.map(normalized));
  return (text.match(PEM) ?? []).filter((pem) => !known.has(normalized(pem)));
}

export function tlsTrust(options: { insecure: boolean; cacert: string | undefined }): TlsTrust {
  const rejectUnauthorized = !options.insecure;
  if (options.cacert !== undefined)
    return { rejectUnauthorized, secureContext: tlsModule().createSecureContext({ ca: readFileSync(options.cacert) }) };
  const extra = systemOnlyCAs();
  if (extra.length === 0) return { rejectUnauthorized };
  const tls = tlsModule();
  return { rejectUnauthorized, secureContext: tls.createSecureContext({ ca: [...tls.rootCertificates, ...extra] }) };
}
