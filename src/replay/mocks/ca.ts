// A certificate authority made fresh for each `tlsrec test` run. The app trusts it only through its
// environment (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE, ...); it is never installed system-wide.
//
// Keys are EC P-256 from node:crypto (< 1 ms each, where RSA-2048 took 200-500 ms here) and
// certificates are DER written by hand below and signed with node:crypto: node-forge only handles
// RSA keys. Private keys never touch the disk; the run directory (0700) holds only certificates and
// CA bundles (0600) and is removed by close().

import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { EnvironmentError, causeText } from '../../errors.js';
import { ipv6Bytes } from '../../ip-bytes.js';

export interface RunCa {
  /** The run directory (mode 0700). */
  readonly dir: string;
  /** PEM of the CA certificate. */
  readonly caPem: string;
  /** File holding only the CA certificate. */
  readonly caPath: string;
  /** Key and certificate chain (PEM) served when the client sends no SNI: covers every mocked host. */
  readonly defaultCredentials: { key: string; cert: string };
  /** Leaf certificate PEM for a name (DNS name or IP address), signed on first use and cached. */
  leafPem(name: string): string;
  /** TLS context for an SNI name, cached. */
  contextFor(servername: string): SecureContext;
  /** Environment for the app: CA bundles for Node, OpenSSL, Python requests and curl. */
  appEnv(userEnv: NodeJS.ProcessEnv): Record<string, string>;
  /** Remove the run directory and everything in it. Safe to call twice. */
  close(): void;
}

export interface RunCaOptions {
  /** Parent directory for the run directory (a private subdirectory is made in it). */
  tmpDir: string;
  /** Hosts the default certificate must cover: names, IPv4/IPv6 addresses; ":port" is stripped. */
  hosts: string[];
  /** System CA bundle appended to ours for SSL_CERT_FILE etc. (default: Debian's path when present). */
  systemBundle?: string;
}

const SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

export function createRunCa(opts: RunCaOptions): RunCa {
  let dir: string;
  try {
    dir = mkdtempSync(join(opts.tmpDir, 'tlsrec-ca-'));
    chmodSync(dir, 0o700);
  } catch (err) {
    throw new EnvironmentError(`cannot create the mock CA directory in ${opts.tmpDir}: ${causeText(err)}`, {
      stage: 'create mock CA',
      hint: 'check that the temporary directory exists and is writable',
      cause: err,
    });
  }
  const write = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };

  const now = Date.now();
  // Back-dated a day so a client clock slightly behind still accepts it; short-lived.
  const notBefore = new Date(now - 24 * 3600_000);
  const notAfter = new Date(now + 7 * 24 * 3600_000);

  const caKeys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const caSpki = caKeys.publicKey.export({ type: 'spki', format: 'der' });
  const caKeyId = keyIdentifier(caSpki);
  const caName = name(`tlsrec run CA ${randomBytes(4).toString('hex')}`);
  const caDer = buildCertificate({
    issuer: caName,
    subject: caName,
    spki: caSpki,
    notBefore,
    notAfter,
    extensions: [
      extension(OID.basicConstraints, true, seq(bool(true))),
      extension(OID.keyUsage, true, bitString(Buffer.from([0x06]), 1)), // keyCertSign | cRLSign
      extension(OID.subjectKeyIdentifier, false, octets(caKeyId)),
    ],
    signer: caKeys.privateKey,
  });
  const caPem = toPem(caDer);
  const caPath = write('ca.pem', caPem);

  // One leaf key for the run: every leaf certificate is for this same short-lived server.
  const leafKeys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const leafSpki = leafKeys.publicKey.export({ type: 'spki', format: 'der' });
  const leafKeyPem = leafKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

  const issueLeaf = (names: string[]): string => {
    const sans = names.map((n) => (isIP(n) ? ipSan(n) : dnsSan(n)));
    const der = buildCertificate({
      issuer: caName,
      subject: name(names[0] ?? 'tlsrec mock'),
      spki: leafSpki,
      notBefore,
      notAfter,
      extensions: [
        extension(OID.basicConstraints, true, seq()),
        extension(OID.keyUsage, true, bitString(Buffer.from([0x80]), 7)), // digitalSignature
        extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
        extension(OID.subjectAltName, false, seq(...sans)),
        extension(OID.subjectKeyIdentifier, false, octets(keyIdentifier(leafSpki))),
        extension(OID.authorityKeyIdentifier, false, seq(tag(0x80, caKeyId))),
      ],
      signer: caKeys.privateKey,
    });
    return toPem(der);
  };

  const hostNames = uniq(opts.hosts.map(stripPort).filter((h) => h !== ''));
  // The default certificate covers every mocked host (and localhost): Node sends no SNI for an
  // IP-address URL, so this is the one an app calling https://10.1.2.3/ sees.
  const defaultNames = uniq([...hostNames, 'localhost', '127.0.0.1']);
  const defaultPem = issueLeaf(defaultNames);
  const defaultCredentials = { key: leafKeyPem, cert: defaultPem + caPem };

  const leaves = new Map<string, string>();
  const contexts = new Map<string, SecureContext>();
  const leafPem = (n: string): string => {
    const key = stripPort(n).toLowerCase();
    let pem = leaves.get(key);
    if (!pem) {
      pem = issueLeaf([key]);
      leaves.set(key, pem);
    }
    return pem;
  };

  const bundles = new Map<string, string>();
  const bundle = (fileName: string, parts: string[]): string => {
    const cached = bundles.get(fileName);
    if (cached) return cached;
    const p = write(fileName, parts.map((s) => (s.endsWith('\n') ? s : s + '\n')).join(''));
    bundles.set(fileName, p);
    return p;
  };

  let closed = false;
  return {
    dir,
    caPem,
    caPath,
    defaultCredentials,
    leafPem,
    contextFor(servername: string): SecureContext {
      const key = servername.toLowerCase();
      let ctx = contexts.get(key);
      if (!ctx) {
        ctx = createSecureContext({ key: leafKeyPem, cert: leafPem(key) + caPem });
        contexts.set(key, ctx);
      }
      return ctx;
    },
    appEnv(userEnv: NodeJS.ProcessEnv): Record<string, string> {
      const env: Record<string, string> = {};
      // Node reads exactly one extra file: keep the user's CAs by bundling them with ours.
      const userExtra = userEnv.NODE_EXTRA_CA_CERTS;
      const userExtraPem = userExtra && existsSync(userExtra) ? readFileSync(userExtra, 'utf8') : undefined;
      env.NODE_EXTRA_CA_CERTS = userExtraPem ? bundle('node-extra-ca.pem', [userExtraPem, caPem]) : caPath;
      // These replace the system store for OpenSSL, requests and curl: include the system CAs so
      // passthrough TLS still verifies.
      const system = opts.systemBundle ?? SYSTEM_BUNDLE;
      const systemPem = existsSync(system) ? readFileSync(system, 'utf8') : undefined;
      const full = systemPem ? bundle('bundle.pem', [systemPem, caPem]) : caPath;
      env.SSL_CERT_FILE = full;
      env.REQUESTS_CA_BUNDLE = full;
      env.CURL_CA_BUNDLE = full;
      return env;
    },
    close(): void {
      if (closed) return;
      closed = true;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** "host:port" / "[v6]:port" / "host" → host. */
export function stripPort(host: string): string {
  const h = host.trim();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end > 0 ? h.slice(1, end) : h;
  }
  if (isIP(h) === 6) return h;
  const colon = h.lastIndexOf(':');
  return colon >= 0 && /^\d+$/.test(h.slice(colon + 1)) ? h.slice(0, colon) : h;
}

function uniq(xs: string[]): string[] {
  return [...new Set(xs.map((x) => x.toLowerCase()))];
}

// ---- minimal DER (X.690) for the certificate fields used here ----

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
} as const;

function tag(t: number, content: Buffer): Buffer {
  const len = content.length;
  let header: Buffer;
  if (len < 0x80) header = Buffer.from([t, len]);
  else if (len < 0x100) header = Buffer.from([t, 0x81, len]);
  else if (len < 0x10000) header = Buffer.from([t, 0x82, len >> 8, len & 0xff]);
  else header = Buffer.from([t, 0x83, len >> 16, (len >> 8) & 0xff, len & 0xff]);
  return Buffer.concat([header, content]);
}
const seq = (...items: Buffer[]): Buffer => tag(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => tag(0x31, Buffer.concat(items));
const bool = (v: boolean): Buffer => tag(0x01, Buffer.from([v ? 0xff : 0x00]));
const octets = (b: Buffer): Buffer => tag(0x04, b);
const utf8 = (s: string): Buffer => tag(0x0c, Buffer.from(s, 'utf8'));
const bitString = (b: Buffer, unusedBits = 0): Buffer => tag(0x03, Buffer.concat([Buffer.from([unusedBits]), b]));

function integer(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  let v = b.subarray(i);
  if ((v[0] ?? 0) & 0x80) v = Buffer.concat([Buffer.from([0]), v]); // keep it positive
  return tag(0x02, v);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const bytes: number[] = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = p >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tag(0x06, Buffer.from(bytes));
}

function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z'; // YYYYMMDDHHMMSSZ
  // RFC 5280: UTCTime through 2049, GeneralizedTime after.
  return d.getUTCFullYear() < 2050 ? tag(0x17, Buffer.from(iso.slice(2))) : tag(0x18, Buffer.from(iso));
}

function name(cn: string): Buffer {
  return seq(set(seq(oid(OID.commonName), utf8(cn))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

const dnsSan = (n: string): Buffer => tag(0x82, Buffer.from(n, 'ascii'));

function ipSan(ip: string): Buffer {
  if (isIP(ip) === 4) return tag(0x87, Buffer.from(ip.split('.').map(Number)));
  return tag(0x87, ipv6Bytes(ip));
}

/** RFC 5280 method 1: SHA-1 of the subjectPublicKey BIT STRING contents. */
function keyIdentifier(spkiDer: Buffer): Buffer {
  // SPKI = SEQUENCE { AlgorithmIdentifier, BIT STRING }; for P-256 the key is the last 65 bytes.
  return createHash('sha1')
    .update(spkiDer.subarray(spkiDer.length - 65))
    .digest();
}

function buildCertificate(c: {
  issuer: Buffer;
  subject: Buffer;
  spki: Buffer;
  notBefore: Date;
  notAfter: Date;
  extensions: Buffer[];
  signer: KeyObject;
}): Buffer {
  const sigAlg = seq(oid(OID.ecdsaWithSha256));
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  const tbs = seq(
    tag(0xa0, integer(Buffer.from([2]))), // v3
    integer(serial),
    sigAlg,
    c.issuer,
    seq(time(c.notBefore), time(c.notAfter)),
    c.subject,
    c.spki,
    tag(0xa3, seq(...c.extensions)),
  );
  const signature = sign('sha256', tbs, c.signer); // DER-encoded ECDSA-Sig-Value, as X.509 wants
  return seq(tbs, sigAlg, bitString(signature));
}

function toPem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE-----\n`;
}
