// Secrets and values that flow, without eBPF: exchanges written by TestSetWriter, read back by the
// loader, replayed through VariableScope / SecretStore / the mock matcher.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/format/config-reader.js';
import { loadTestSets } from '../src/format/reader.js';
import { readSecretsFile } from '../src/format/secrets-file.js';
import { findSecretFormats, isSecretKey } from '../src/format/secrets.js';
import { matchTemplate, substitute } from '../src/format/templates.js';
import { TestSetWriter } from '../src/format/test-set-writer.js';
import type { Exchange } from '../src/model/exchange.js';
import { MockMatcher } from '../src/replay/mocks/matcher.js';
import { SecretStore } from '../src/replay/secrets.js';
import { VariableScope } from '../src/replay/variables.js';
import { makeExchange, MONO_TO_WALL } from './fixtures-format/make-exchange.js';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrec-secrets-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const JSON_CT: [string, string] = ['Content-Type', 'application/json'];
const HOST: [string, string] = ['Host', 'localhost:3000'];

async function record(
  exchanges: Exchange[],
  opts: { redact?: boolean; redactKeys?: string[]; redactPaths?: string[] } = {},
) {
  const secretsFile = path.join(root, '.tlsrec-secrets.yaml');
  const w = await TestSetWriter.create({
    rootDir: path.join(root, 'tlsrec'),
    monoToWallNs: MONO_TO_WALL,
    secretsFile,
    ...opts,
  });
  for (const ex of exchanges) w.writeExchange(ex);
  await w.close();
  const files = fs
    .readdirSync(path.join(w.dir, 'tests'))
    .sort()
    .map((f) => fs.readFileSync(path.join(w.dir, 'tests', f), 'utf8'));
  const mocks = fs.existsSync(path.join(w.dir, 'mocks.yaml'))
    ? fs.readFileSync(path.join(w.dir, 'mocks.yaml'), 'utf8')
    : '';
  return { dir: w.dir, files, all: files.join('\n') + mocks, mocks, secretsFile };
}

const PASSWORD = 'hunter2-correct-horse';
const TOKEN = 'tok_8f3a9c1d2e7b6a5f';
const API_KEY = 'k3y-0123456789abcdef';

function loginFlow(token = TOKEN): Exchange[] {
  return [
    makeExchange({
      method: 'POST',
      target: '/login',
      reqHeaders: [HOST, JSON_CT, ['x-api-key', API_KEY]],
      reqBody: JSON.stringify({ user: 'ann', password: PASSWORD }),
      resHeaders: [JSON_CT],
      resBody: JSON.stringify({ token, token_type: 'Bearer', expires_in: 3600 }),
    }),
    makeExchange({
      target: '/me',
      reqHeaders: [HOST, ['x-api-key', API_KEY], ['Authorization', `Bearer ${token}`]],
      resHeaders: [JSON_CT],
      resBody: JSON.stringify({ user: 'ann' }),
    }),
    makeExchange({
      target: `/search?q=shoes&access_token=${API_KEY}-q`,
      reqHeaders: [HOST],
      resHeaders: [JSON_CT],
      resBody: JSON.stringify({ results: [] }),
    }),
    // the app passes the token on to an upstream: the mock refers to the same variable
    makeExchange({
      role: 'outgoing',
      method: 'POST',
      target: '/audit',
      reqHeaders: [['Host', 'audit.example.com'], JSON_CT],
      reqBody: JSON.stringify({ event: 'me', session: token }),
      resHeaders: [JSON_CT],
      resBody: JSON.stringify({ ok: true, echoed: token, upstream_secret: 'sk_live_0123456789abcdefABCD' }),
    }),
  ];
}

describe('record: secrets become references, flowing values become variables', () => {
  it('a login flow: no password, key or token in the files; references a person can read', async () => {
    const r = await record(loginFlow());
    for (const secret of [PASSWORD, TOKEN, API_KEY, 'sk_live_0123456789abcdefABCD'])
      expect(r.all).not.toContain(secret);
    expect(r.files[0]).toContain('"password": "{{ .secret.PASSWORD }}"');
    expect(r.files[0]).toContain('x-api-key: "{{ .secret.X_API_KEY }}"');
    expect(r.files[0]).toContain('"token": "{{ .token }}"'); // captured at replay
    expect(r.files[0]).toContain('"token_type": "Bearer"');
    expect(r.files[1]).toMatch(/Authorization: "?Bearer \{\{ \.token \}\}"?\n/);
    expect(r.files[2]).toContain('access_token={{ .secret.ACCESS_TOKEN }}');
    expect(r.mocks).toContain('"session": "{{ .token }}"');
    expect(r.mocks).toContain('"upstream_secret": "{{ .secret.UPSTREAM_SECRET }}"');
    expect(r.mocks).toContain('"echoed": "{{ .token }}"');
    // the values are in the secrets file only, mode 0600; the token (issued afresh at replay) is not
    expect(readSecretsFile(r.secretsFile)).toEqual({
      X_API_KEY: API_KEY,
      PASSWORD,
      ACCESS_TOKEN: `${API_KEY}-q`,
      UPSTREAM_SECRET: 'sk_live_0123456789abcdefABCD',
    });
    expect(fs.statSync(r.secretsFile).mode & 0o777).toBe(0o600);
    // and the files still load
    const [set] = loadTestSets(path.join(root, 'tlsrec'));
    expect(set!.tests).toHaveLength(3);
    expect(set!.mocks).toHaveLength(1);
  });

  it('a stable value that merely looks random is a variable only when it flows from a response into a request', async () => {
    const HASH = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
    const FIXED_ID = 'prod-7c9e6679';
    const CLIENT_ID = 'order-5f1e2d3c';
    const FLOWING = 'item-a1b2c3d4e5';
    const r = await record([
      // a content hash in two responses, never sent back
      makeExchange({
        target: '/doc',
        reqHeaders: [HOST],
        resHeaders: [JSON_CT],
        resBody: JSON.stringify({ sha256: HASH, id: FIXED_ID }),
      }),
      makeExchange({
        target: '/doc?again=1',
        reqHeaders: [HOST],
        resHeaders: [JSON_CT],
        resBody: JSON.stringify({ sha256: HASH }),
      }),
      // an id the client chose: in a request before any response has it
      makeExchange({
        method: 'POST',
        target: '/orders',
        reqHeaders: [HOST, JSON_CT],
        reqBody: JSON.stringify({ id: CLIENT_ID }),
        resHeaders: [JSON_CT],
        resBody: JSON.stringify({ id: CLIENT_ID, state: 'new' }),
      }),
      makeExchange({
        target: `/orders/${CLIENT_ID}`,
        reqHeaders: [HOST],
        resHeaders: [JSON_CT],
        resBody: JSON.stringify({ id: CLIENT_ID }),
      }),
      // a fixed id sent in a request it never came from: same value, but sent before… (the /doc id is in a response)
      makeExchange({
        method: 'POST',
        target: '/items',
        reqHeaders: [HOST],
        resHeaders: [JSON_CT],
        resBody: JSON.stringify({ item: FLOWING }),
      }),
      makeExchange({
        target: '/items',
        reqHeaders: [HOST],
        resHeaders: [JSON_CT],
        resBody: JSON.stringify([{ item: FLOWING }]),
      }),
      makeExchange({ target: `/items/${FLOWING}`, reqHeaders: [HOST], resHeaders: [JSON_CT], resBody: '{}' }),
    ]);
    expect(r.files[0]).toContain(HASH);
    expect(r.files[1]).toContain(HASH);
    expect(r.files[0]).toContain(FIXED_ID);
    expect(r.files[2]).toContain(CLIENT_ID);
    expect(r.files[3]).toContain(`/orders/${CLIENT_ID}`);
    expect(r.all).not.toMatch(/\{\{ \.(sha256|id)\b/);
    // the one that flows: its producer was rewritten to capture it, the consumer refers to it
    expect(r.files[4]).toContain('"item": "{{ .item }}"');
    expect(r.files[5]).toContain('"item": "{{ .item }}"'); // a later list that shows it captures it too
    expect(r.files[6]).toContain('/items/{{ .item }}');
    expect(r.all).not.toContain(FLOWING);
    expect(fs.existsSync(r.secretsFile)).toBe(false);
    // a rewritten file keeps its $schema line and loads
    expect(r.files[4]!.startsWith('# yaml-language-server: $schema=')).toBe(true);
    expect(loadTestSets(path.join(root, 'tlsrec'))[0]!.tests).toHaveLength(7);
  });

  it('--no-redact keeps secrets; tlsrec.yaml redact keys and paths add to the defaults', async () => {
    const off = await record(loginFlow(), { redact: false });
    expect(off.all).toContain(PASSWORD);
    expect(off.all).toContain(API_KEY);
    fs.rmSync(path.join(root, 'tlsrec'), { recursive: true });
    const extra = await record(
      [
        makeExchange({
          method: 'POST',
          target: '/p',
          reqHeaders: [HOST, JSON_CT],
          reqBody: JSON.stringify({ pin: '4321', user: { ssn: '078-05-1120' }, ok: 'x' }),
          resHeaders: [JSON_CT],
          resBody: '{}',
        }),
      ],
      { redactKeys: ['PIN'], redactPaths: ['$.user.ssn'] },
    );
    expect(extra.all).not.toContain('4321');
    expect(extra.all).not.toContain('078-05-1120');
    expect(extra.files[0]).toContain('"ok": "x"');
    // a credential after its scheme, in a header or field that does not say so
    fs.rmSync(path.join(root, 'tlsrec'), { recursive: true });
    const scheme = await record([
      makeExchange({
        method: 'POST',
        target: '/p',
        reqHeaders: [HOST, JSON_CT, ['X-Forwarded-Auth', 'Bearer abcdef0123456789']],
        reqBody: JSON.stringify({ header: 'Basic YWxhZGRpbjpvcGVuc2VzYW1l' }),
        resHeaders: [JSON_CT],
        resBody: '{}',
      }),
    ]);
    expect(scheme.all).not.toContain('abcdef0123456789');
    expect(scheme.all).not.toContain('YWxhZGRpbjpvcGVuc2VzYW1l');
    expect(scheme.files[0]).toMatch(/X-Forwarded-Auth: "?Bearer \{\{ \.secret\.BEARER_TOKEN \}\}/);
    expect(scheme.files[0]).toContain('"header": "Basic {{ .secret.BASIC_AUTH }}"');
  });

  it('well-known formats are found anywhere; ordinary keys are not secrets', () => {
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';
    const text = `a ${jwt} b AKIAIOSFODNN7EXAMPLE c ghp_${'a'.repeat(36)} d xoxb-1234567890-abcdef`;
    expect(findSecretFormats(text).map((h) => h.name)).toEqual([
      'JWT',
      'AWS_ACCESS_KEY_ID',
      'GITHUB_TOKEN',
      'SLACK_TOKEN',
    ]);
    for (const k of [
      'password',
      'Access-Token',
      'refreshToken',
      'client_secret',
      'API_KEY',
      'apikey',
      'Cookie',
      'db_password',
    ])
      expect(isSecretKey(k), k).toBe(true);
    for (const k of ['token_type', 'next_page_token', 'max_tokens', 'keyboard', 'monkey', 'author', 'id'])
      expect(isSecretKey(k), k).toBe(false);
  });
});

describe('tlsrec.yaml: redact and secrets', () => {
  it('a redact list splits into names and JSON paths; the object form and the secrets file path are read', () => {
    const file = path.join(root, 'tlsrec.yaml');
    fs.writeFileSync(file, 'redact: [x-session, pin, "$.user.ssn", body.card.number]\nsecrets: private/s.yaml\n');
    expect(loadConfig(file)).toMatchObject({
      redactHeaders: ['x-session', 'pin'],
      redactKeys: ['x-session', 'pin'],
      redactPaths: ['$.user.ssn', 'body.card.number'],
      secretsFile: path.join(root, 'private', 's.yaml'),
    });
    fs.writeFileSync(file, 'redact:\n  headers: [x-tenant]\n  keys: [pin]\n  paths: ["$.a"]\n');
    expect(loadConfig(file)).toMatchObject({
      redactHeaders: ['x-tenant'],
      redactKeys: ['pin'],
      redactPaths: ['$.a'],
      secretsFile: path.join(root, '.tlsrec-secrets.yaml'),
    });
    fs.writeFileSync(file, 'redact: 3\n');
    expect(() => loadConfig(file)).toThrow(/tlsrec\.yaml:1:\d+/);
  });
});

describe('replay: secrets supplied, variables captured', () => {
  it('the fresh token flows; a missing secret is named; scrubbing hides every supplied value', async () => {
    await record(loginFlow());
    const [set] = loadTestSets(path.join(root, 'tlsrec'));
    const [login, me, search] = set!.tests;

    const none = new SecretStore(new Map(), path.join(root, '.tlsrec-secrets.yaml'));
    expect([...none.missing([set!]).keys()]).toEqual(['X_API_KEY', 'PASSWORD', 'ACCESS_TOKEN']);
    expect(none.hint('X_API_KEY')).toContain('TLSREC_SECRET_X_API_KEY');
    const unsent = new VariableScope(none).prepare(login!);
    expect(unsent.missingSecrets.sort()).toEqual(['PASSWORD', 'X_API_KEY']);

    const secrets = SecretStore.load(
      { secretsFile: path.join(root, '.tlsrec-secrets.yaml') },
      { TLSREC_SECRET_X_API_KEY: 'from-env-key-1' },
    );
    const scope = new VariableScope(secrets);
    const p1 = scope.prepare(login!);
    expect(p1.missingSecrets).toEqual([]);
    expect(p1.test.request.headers).toContainEqual(['x-api-key', 'from-env-key-1']); // env over file
    expect(JSON.parse(p1.test.request.body.bytes.toString())).toEqual({ user: 'ann', password: PASSWORD });
    const fresh = 'tok_NEW_0000111122223333';
    const actual = {
      status: 200,
      headers: [['content-type', 'application/json']] as Array<[string, string]>,
      body: Buffer.from(JSON.stringify({ token: fresh, token_type: 'Bearer', expires_in: 3600 })),
    };
    const expected = scope.expect(login!.expected, actual);
    expect(JSON.parse(expected.body.bytes.toString())).toEqual({
      token: fresh,
      token_type: 'Bearer',
      expires_in: 3600,
    });
    expect(scope.get('token')).toBe(fresh);
    // the field must be there
    const missingField = new VariableScope(secrets).expect(login!.expected, {
      ...actual,
      body: Buffer.from('{"token_type":"Bearer","expires_in":3600}'),
    });
    expect(JSON.parse(missingField.body.bytes.toString()).token).toBe('{{ .token }}');

    const p2 = scope.prepare(me!);
    expect(p2.test.request.headers).toContainEqual(['Authorization', `Bearer ${fresh}`]);
    // a mock answer that echoes the token gets this run's token; a secret stays a stable placeholder
    const served = JSON.parse(scope.fillMockResponse(set!.mocks[0]!.response).body.bytes.toString());
    expect(served).toEqual({ ok: true, echoed: fresh, upstream_secret: '{{ .secret.UPSTREAM_SECRET }}' });
    const p3 = scope.prepare(search!);
    expect(p3.test.request.url).toContain(`access_token=${encodeURIComponent(`${API_KEY}-q`)}`);

    const report = { message: `sent ${API_KEY} and from-env-key-1 with {{ .secret.PASSWORD }}`, list: [PASSWORD] };
    const scrubbed = secrets.scrubDeep(report);
    expect(JSON.stringify(scrubbed)).not.toMatch(new RegExp(`${API_KEY}|${PASSWORD}|from-env-key-1`));
    expect(scrubbed.message).toBe('sent [secret X_API_KEY] and [secret X_API_KEY] with {{ .secret.PASSWORD }}');
    // data the report shares (a mock miss listed by its set and by its test) stays one object in the copy
    const miss = { method: 'POST', url: `https://api.example.com/orders?key=${API_KEY}` };
    const shared = secrets.scrubDeep({ setMisses: [miss], testMisses: [miss] });
    expect(shared.testMisses[0]).toBe(shared.setMisses[0]);
    expect(shared.setMisses[0]!.url).toBe('https://api.example.com/orders?key=[secret X_API_KEY]');
  });

  it('a mock whose request refers to a variable or secret matches the value the app sends', async () => {
    await record(loginFlow());
    const [set] = loadTestSets(path.join(root, 'tlsrec'));
    const matcher = new MockMatcher(set!.mocks);
    const call = (session: string) => ({
      method: 'POST',
      scheme: 'http' as const,
      host: 'audit.example.com',
      path: '/audit',
      query: [],
      headers: [],
      body: Buffer.from(JSON.stringify({ event: 'me', session })),
    });
    expect(matcher.match(call('tok_fresh_at_replay_42')).kind).toBe('hit');
    expect(matcher.match({ ...call('x'), body: Buffer.from('{"event":"other","session":"x"}') }).kind).toBe('miss');
  });

  it('a broken secrets file is an input error with file:line:column, not a stack trace', () => {
    const file = path.join(root, '.tlsrec-secrets.yaml');
    fs.writeFileSync(file, 'X_API_KEY: a\nPASSWORD: [unclosed\n');
    expect(() => SecretStore.load({ secretsFile: file }, {})).toThrow(/\.tlsrec-secrets\.yaml:\d+:\d+/);
    try {
      SecretStore.load({ secretsFile: file }, {});
    } catch (err) {
      expect((err as { code: string }).code).toBe('TLSREC_E_INPUT');
    }
  });

  it('templates: Keploy forms read the same; literal parts must match', () => {
    expect(
      substitute('a {{string .id}} {{ .secret.K }} {{ .nope }}', (r) =>
        r.kind === 'var' ? (r.name === 'id' ? '7' : undefined) : 's',
      ),
    ).toBe('a 7 s {{ .nope }}');
    expect(matchTemplate('Bearer {{ .token }}', 'Bearer abc')?.get('token')).toBe('abc');
    expect(matchTemplate('Bearer {{ .token }}', 'Basic abc')).toBeUndefined();
  });
});
