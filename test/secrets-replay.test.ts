// The replay engine with references, against an app running in this process (--app-url, no
// mocks): a Keploy test set whose first request uses a variable from its config.yaml, a login
// token captured and sent on, a secret from the store, and files recorded as [REDACTED].

import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BodyValue, Config, TestCase, TestSet } from '../src/format/types.js';
import { runTests } from '../src/replay/run-tests.js';
import { SecretStore } from '../src/replay/secrets.js';

const KEY = 'the-real-api-key-42';
let server: Server;
let base: string;
let work: string;
let issued = 0;
const sessions = new Set<string>(['seed-token-from-keploy']);

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'tlsrec-secrets-replay-'));
  server = createServer((req, res) => {
    const json = (status: number, v: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(v));
    };
    if (req.headers['x-api-key'] !== KEY) return json(401, { error: 'bad key' });
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (req.url === '/login') {
      const token = `fresh-${++issued}-${Date.now()}`;
      sessions.add(token);
      return json(200, { token, kind: 'Bearer' });
    }
    if (req.url === '/me')
      return bearer && sessions.has(bearer) ? json(200, { user: 'ann' }) : json(401, { error: 'bad token' });
    json(404, {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(work, { recursive: true, force: true });
});

const json = (v: unknown): BodyValue => ({ bytes: Buffer.from(JSON.stringify(v)), kind: 'json' });
const empty: BodyValue = { bytes: Buffer.alloc(0), kind: 'empty' };
function tc(
  name: string,
  path: string,
  reqHeaders: Array<[string, string]>,
  status: number,
  body: BodyValue,
): TestCase {
  return {
    file: `${name}.yaml`,
    name,
    request: { method: 'GET', url: `http://localhost:3000${path}`, headers: reqHeaders, body: empty },
    expected: { status, headers: [], body },
    noise: [],
  };
}
const config: Config = {
  file: undefined,
  command: undefined,
  appPort: undefined,
  healthUrl: undefined,
  readyTimeoutMs: 5000,
  noise: [],
  passthrough: [],
  redactHeaders: [],
};

async function replay(tests: TestCase[], secrets: SecretStore, setDir = join(work, 'set')) {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c: Buffer) => (text += c.toString()));
  const set: TestSet = { name: 'set', dir: setDir, tests, mocks: [], noise: [] };
  const result = await runTests({
    dir: work,
    appUrl: base,
    mocks: false,
    reporters: ['terminal'],
    out,
    config,
    testSetsLoaded: [set],
    handleSignals: false,
    secrets,
  });
  return { result, text };
}

describe('replay with references', () => {
  it('a Keploy set: config.yaml seeds a variable, a login captures a fresh one, later tests send it', async () => {
    const dir = join(work, 'keploy-set');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.yaml'), 'preScript: ""\ntemplate:\n  token: seed-token-from-keploy\n');
    const key: [string, string] = ['x-api-key', '{{.secret.API_KEY}}'];
    const tests = [
      tc('test-1', '/me', [key, ['Authorization', 'Bearer {{string .token}}']], 200, json({ user: 'ann' })),
      tc('test-2', '/login', [key], 200, json({ token: '{{.token}}', kind: 'Bearer' })),
      tc('test-3', '/me', [key, ['Authorization', 'Bearer {{ .token }}']], 200, json({ user: 'ann' })),
    ];
    const before = issued;
    const { result, text } = await replay(tests, new SecretStore(new Map([['API_KEY', KEY]])), dir);
    expect(text).toMatch(/^3 passed, 0 failed/m);
    expect(result.exitCode).toBe(0);
    expect(issued).toBe(before + 1);
    expect(text).not.toContain(KEY);
  });

  it('a header recorded as [REDACTED] says what to write instead; a missing secret names its variable', async () => {
    const tests = [
      tc('test-1', '/me', [['x-api-key', '[REDACTED]']], 200, json({ user: 'ann' })),
      tc('test-2', '/me', [['x-api-key', '{{ .secret.X_API_KEY }}']], 200, json({ user: 'ann' })),
    ];
    const { result, text } = await replay(tests, new SecretStore(new Map(), '.tlsrec-secrets.yaml'));
    expect(result.exitCode).toBe(1);
    expect(text).toContain(
      'test-1: header x-api-key was recorded as [REDACTED] and is sent so: write {{ .secret.X_API_KEY }} there and set TLSREC_SECRET_X_API_KEY',
    );
    expect(text).toContain(
      'test-2: sends secret X_API_KEY, which is not set: set TLSREC_SECRET_X_API_KEY or add X_API_KEY to .tlsrec-secrets.yaml',
    );
    expect(text.match(/secret X_API_KEY is not set;/g)).toHaveLength(1);
  });
});
