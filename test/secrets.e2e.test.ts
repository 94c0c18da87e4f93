// End-to-end (real eBPF, as root): record an API behind an API key and a login that issues a random
// token (fixtures/auth-app) with real clients, then replay it with `tlsrec test` as CI would (a
// fresh checkout: no secrets file). The files hold neither key, password nor token; without the
// key the run fails naming TLSREC_SECRET_X_API_KEY, said once before the run; with it every test
// passes because the token the app issues at replay flows into the later requests and the mock;
// and a leaked key is never in the terminal, JUnit or JSON report, nor in a diff.

import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needsEbpf } from './helpers/env.js';
import {
  fixtureCa,
  freePort,
  repoRoot,
  run,
  start,
  startUpstream,
  stopAll,
  tlsrecBin,
  waitForHttp,
  type Started,
} from './helpers/procs.js';

const ebpf = needsEbpf();
const authApp = join(repoRoot, 'fixtures', 'auth-app', 'server.mjs');
const API_KEY = `ak-${Date.now().toString(36)}-e2e-0123456789`;
const PASSWORD = `pw-${process.pid}-correct-horse`;

/** Every file under dir, as text. */
function allText(dir: string): string {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(readFileSync(p, 'latin1'));
    }
  };
  walk(dir);
  return out.join('\n');
}

describe.runIf(ebpf.run)('secrets and a login flow (real eBPF)', () => {
  let work: string;
  let appEnv: NodeJS.ProcessEnv;
  let upstream: { url: string; proc: Started };
  const tokens: string[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'tlsrec-secrets-'));
    upstream = await startUpstream();
    const port = await freePort();
    appEnv = {
      PORT: String(port),
      UPSTREAM_URL: upstream.url,
      NODE_EXTRA_CA_CERTS: fixtureCa,
      APP_API_KEY: API_KEY,
      APP_PASSWORD: PASSWORD,
    };
    // A hand-written tlsrec.yaml whose redact list reaches the writer process: /me's "plan" is kept out.
    writeFileSync(
      join(work, 'tlsrec.yaml'),
      `command: [node, ${JSON.stringify(authApp)}]\nappPort: ${port}\nredact: [plan]\n`,
    );
    const rec = start('node', [tlsrecBin, 'record', '--', 'node', authApp], { cwd: work, env: appEnv });
    const base = `http://127.0.0.1:${port}`;
    await waitForHttp(`${base}/health`);
    const key = { 'x-api-key': API_KEY };
    const login = await fetch(`${base}/login`, {
      method: 'POST',
      headers: { ...key, 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'ann', password: PASSWORD }),
    });
    expect(login.status).toBe(200);
    const token = ((await login.json()) as { access_token: string }).access_token;
    tokens.push(token);
    const me = await fetch(`${base}/me`, { headers: { ...key, authorization: `Bearer ${token}` } });
    expect(me.status).toBe(200);
    await me.arrayBuffer();
    // curl, a second real client, sends the token in the query string
    const report = await run('curl', ['-sS', '-H', `x-api-key: ${API_KEY}`, `${base}/report?access_token=${token}`]);
    expect(report.output).toContain('"items"');
    rec.child.kill('SIGINT');
    expect(await rec.exited, rec.output()).toBe(0);
    expect(rec.output()).toContain('.tlsrec-secrets.yaml');
    // From here on the upstream is gone: its answers come from the mocks.
    upstream.proc.child.kill('SIGTERM');
    await upstream.proc.exited;
  }, 60_000);

  afterAll(async () => {
    await stopAll();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** The recording as a CI checkout has it: tests, mocks and tlsrec.yaml, no secrets file. */
  function checkout(): string {
    const dir = mkdtempSync(join(tmpdir(), 'tlsrec-secrets-ci-'));
    cpSync(join(work, 'tlsrec'), join(dir, 'tlsrec'), { recursive: true });
    cpSync(join(work, 'tlsrec.yaml'), join(dir, 'tlsrec.yaml'));
    return dir;
  }

  function tlsrecTest(dir: string, args: string[], env: NodeJS.ProcessEnv = {}) {
    return run(
      'node',
      [
        tlsrecBin,
        'test',
        '--reporter',
        'terminal',
        '--reporter',
        'junit',
        '--reporter',
        'json',
        '--report-dir',
        join(dir, 'reports'),
        ...args,
      ],
      {
        cwd: dir,
        env: { ...appEnv, NO_COLOR: '1', ...env },
      },
    );
  }

  it('the files hold neither key, password nor token; the secrets file is 0600 and git-ignored', () => {
    const files = allText(join(work, 'tlsrec'));
    expect(files).toContain('{{ .secret.X_API_KEY }}');
    expect(files).toContain('{{ .secret.PASSWORD }}');
    expect(files).toMatch(/"access_token": "\{\{ \.access_token \}\}"/); // captured at replay
    expect(files).toMatch(/Bearer \{\{ \.access_token \}\}/); // sent by /me
    expect(files).toContain('access_token={{ .access_token }}'); // in /report's query string
    expect(files).toContain('"session": "{{ .access_token }}"'); // in the upstream mock's body
    for (const secret of [API_KEY, PASSWORD, ...tokens]) expect(files).not.toContain(secret);
    expect(readFileSync(join(work, 'tlsrec.yaml'), 'utf8')).not.toContain(API_KEY);

    const secretsFile = join(work, '.tlsrec-secrets.yaml');
    expect(statSync(secretsFile).mode & 0o777).toBe(0o600);
    const secrets = readFileSync(secretsFile, 'utf8');
    expect(secrets).toContain(API_KEY);
    expect(secrets).toContain(PASSWORD);
    for (const t of tokens) expect(secrets).not.toContain(t);
    expect(readFileSync(join(work, '.gitignore'), 'utf8').split('\n')).toContain('.tlsrec-secrets.yaml');
    expect(files).toContain('"plan": "{{ .plan }}"'); // tlsrec.yaml's redact: [plan]
    expect(files).not.toContain('"pro"');
  });

  it('without the key: the run fails naming TLSREC_SECRET_X_API_KEY, said once before the run', async () => {
    const dir = checkout();
    const res = await tlsrecTest(dir, []);
    expect(res.code).toBe(1);
    const before = res.output.split(/\n(?=.*test-set-0)/)[0]!;
    expect(before).toContain('secret X_API_KEY is not set');
    expect(res.output.match(/secret X_API_KEY is not set;/g)).toHaveLength(1);
    expect(res.output.match(/secret PASSWORD is not set;/g)).toHaveLength(1);
    expect(res.output).toContain('set TLSREC_SECRET_X_API_KEY');
    expect(res.output).toMatch(/test-\d+: sends secret X_API_KEY, which is not set: set TLSREC_SECRET_X_API_KEY/);
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('with the secrets in the environment every test passes: the fresh token flows, the mock matches it', async () => {
    const dir = checkout();
    const res = await tlsrecTest(dir, [], { TLSREC_SECRET_X_API_KEY: API_KEY, TLSREC_SECRET_PASSWORD: PASSWORD });
    expect(res.output).toMatch(/^4 passed, 0 failed/m);
    expect(res.code).toBe(0);
    const json = readdirSync(join(dir, 'reports')).find((f) => f.endsWith('.json'))!;
    const report = readFileSync(join(dir, 'reports', json), 'utf8');
    expect(report).toMatch(/"misses": \[\]/);
    expect(report).toMatch(/"mock": "mock-\d+"/);
    expect(report).toContain('/report?access_token={{ .access_token }}'); // the URL as written
    for (const secret of [API_KEY, PASSWORD]) {
      expect(res.output).not.toContain(secret);
      expect(allText(join(dir, 'reports'))).not.toContain(secret);
    }
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('rerecord sends the secrets and the flowing token as test does: every answer the same, a fresh set that replays', async () => {
    // The developer's machine: the secrets file record wrote is there; the upstream is up again.
    const dir = checkout();
    cpSync(join(work, '.tlsrec-secrets.yaml'), join(dir, '.tlsrec-secrets.yaml'));
    const up = await startUpstream();
    const env = { ...appEnv, UPSTREAM_URL: up.url, NO_COLOR: '1' };
    const rr = await run('node', [tlsrecBin, 'rerecord'], { cwd: dir, env });
    expect(rr.output).toMatch(/test-set-0 -> test-set-1/);
    expect(rr.output).toMatch(/same +test-\d+ +POST \/login/);
    expect(rr.output).toMatch(/same +test-\d+ +GET \/me/);
    expect(rr.output).toMatch(/same +test-\d+ +GET \/report\?access_token=/);
    expect(rr.output).toMatch(/4 same, 0 differ, 0 without an answer/);
    expect(rr.code, rr.output).toBe(0);
    const fresh = allText(join(dir, 'tlsrec', 'test-set-1'));
    expect(fresh).toContain('{{ .secret.X_API_KEY }}');
    expect(fresh).toContain('{{ .secret.PASSWORD }}');
    expect(fresh).toMatch(/Bearer \{\{ \.access_token \}\}/);
    for (const secret of [API_KEY, PASSWORD]) expect(fresh).not.toContain(secret);
    for (const secret of [API_KEY, PASSWORD]) expect(rr.output).not.toContain(secret);
    up.proc.child.kill('SIGTERM');
    await up.proc.exited;
    // offline, from the fresh set's mocks, the secrets from the file
    const res = await tlsrecTest(dir, ['--test-set', 'test-set-1'], { UPSTREAM_URL: up.url });
    expect(res.output).toMatch(/^4 passed, 0 failed/m);
    expect(res.code).toBe(0);
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('a regression that echoes the key: the diff and every report show [secret X_API_KEY], never the key', async () => {
    const dir = checkout();
    const res = await tlsrecTest(dir, ['--verbose'], {
      TLSREC_SECRET_X_API_KEY: API_KEY,
      TLSREC_SECRET_PASSWORD: PASSWORD,
      FIXTURE_VARIANT: 'echo-key',
    });
    expect(res.code).toBe(1);
    expect(res.output).toMatch(/^3 passed, 1 failed/m);
    expect(res.output).toContain('seen_key');
    expect(res.output).toContain('app| auth-app: /me called with key [secret X_API_KEY]'); // --verbose
    expect(res.output).toContain('[secret X_API_KEY]');
    const reports = allText(join(dir, 'reports'));
    expect(reports).toContain('[secret X_API_KEY]');
    for (const secret of [API_KEY, PASSWORD]) {
      expect(res.output).not.toContain(secret);
      expect(reports).not.toContain(secret);
    }
    expect(existsSync(join(dir, '.tlsrec-secrets.yaml'))).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);
});
