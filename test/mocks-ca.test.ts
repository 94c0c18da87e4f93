import { X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createRunCa, stripPort, type RunCa } from '../src/replay/mocks/ca.js';

let ca: RunCa | undefined;
const dirs: string[] = [];
afterEach(() => {
  ca?.close();
  ca = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('run CA', () => {
  it('issues leaves for names and IP addresses that chain to the run CA', () => {
    const t0 = performance.now();
    ca = createRunCa({ tmpDir: tmpdir(), hosts: ['api.test', '10.1.2.3:8443', '[::1]:443', 'upstream.test:8443'] });
    const ms = performance.now() - t0;
    console.log(`run CA + default certificate in ${ms.toFixed(1)} ms`);
    const root = new X509Certificate(ca.caPem);
    expect(root.ca).toBe(true);
    const dflt = new X509Certificate(ca.leafPem('foo.test'));
    expect(dflt.checkIssued(root)).toBe(true);
    expect(dflt.verify(root.publicKey)).toBe(true);
    expect(dflt.subjectAltName).toBe('DNS:foo.test');
    expect(new X509Certificate(ca.leafPem('10.1.2.3')).subjectAltName).toBe('IP Address:10.1.2.3');
    // openssl agrees (strict mode wants SKI/AKI and proper key usage, as Python 3.13 does)
    const d = mkdtempSync(join(tmpdir(), 'ca-test-'));
    dirs.push(d);
    writeFileSync(join(d, 'leaf.pem'), ca.leafPem('foo.test'));
    const out = execFileSync('openssl', ['verify', '-x509_strict', '-CAfile', ca.caPath, join(d, 'leaf.pem')], {
      encoding: 'utf8',
    });
    expect(out).toContain('OK');
  });

  it('keeps its files private and removes them at close', () => {
    ca = createRunCa({ tmpDir: tmpdir(), hosts: [] });
    expect(statSync(ca.dir).mode & 0o777).toBe(0o700);
    expect(statSync(ca.caPath).mode & 0o777).toBe(0o600);
    ca.appEnv({});
    // private keys stay in memory: nothing on disk holds one
    for (const f of readdirSync(ca.dir)) expect(readFileSync(join(ca.dir, f), 'utf8')).not.toContain('PRIVATE KEY');
    const dir = ca.dir;
    ca.close();
    expect(existsSync(dir)).toBe(false);
  });

  it('bundles the user NODE_EXTRA_CA_CERTS and the system CAs', () => {
    const d = mkdtempSync(join(tmpdir(), 'ca-test-'));
    dirs.push(d);
    writeFileSync(join(d, 'user.pem'), 'USER-CA\n');
    writeFileSync(join(d, 'system.pem'), 'SYSTEM-CA\n');
    ca = createRunCa({ tmpDir: tmpdir(), hosts: [], systemBundle: join(d, 'system.pem') });
    const env = ca.appEnv({ NODE_EXTRA_CA_CERTS: join(d, 'user.pem') });
    const node = execFileSync('cat', [env.NODE_EXTRA_CA_CERTS!], { encoding: 'utf8' });
    expect(node.startsWith('USER-CA\n-----BEGIN CERTIFICATE-----')).toBe(true);
    const sys = execFileSync('cat', [env.SSL_CERT_FILE!], { encoding: 'utf8' });
    expect(sys.startsWith('SYSTEM-CA\n')).toBe(true);
    expect(sys).toContain(ca.caPem);
    expect(env.CURL_CA_BUNDLE).toBe(env.SSL_CERT_FILE);
    expect(env.REQUESTS_CA_BUNDLE).toBe(env.SSL_CERT_FILE);
    expect(ca.appEnv({}).NODE_EXTRA_CA_CERTS).toBe(ca.caPath);
  });

  it('strips ports', () => {
    expect(stripPort('a.test:443')).toBe('a.test');
    expect(stripPort('[::1]:8443')).toBe('::1');
    expect(stripPort('::1')).toBe('::1');
    expect(stripPort('10.0.0.1')).toBe('10.0.0.1');
  });
});
