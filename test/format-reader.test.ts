import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InputFileError } from '../src/errors.js';
import { loadConfig } from '../src/format/config-reader.js';
import { loadTestSets } from '../src/format/reader.js';

const FIX = path.join('test', 'fixtures-format');

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InputFileError);
    expect((err as Error).stack).toBeDefined(); // a real error, but the message carries everything
    return (err as InputFileError).problems;
  }
  throw new Error('expected an InputFileError');
}

describe('broken files: every problem, with file:line:column', () => {
  it('reports all problems of all files at once', () => {
    const root = path.join(FIX, 'broken');
    const dir = path.join(root, 'test-set-0');
    const t = (n: number): string => path.join(dir, 'tests', `test-${n}.yaml`);
    const m = path.join(dir, 'mocks.yaml');
    expect(problemsOf(() => loadTestSets(root, { only: ['test-set-0', 'nope'] }))).toEqual([
      `${root}:1:1: unknown test set "nope", expected one of: test-set-0`,
      `${t(1)}:7:3: YAML syntax error: Flow map in block collection must be sufficiently indented and end with a }`,
      `${t(2)}:6:13: spec.req.method: expected a string, found 5`,
      `${t(2)}:11:9: spec.req.header.X-Bad: expected a string, a number, true/false or a list, found a map`,
      `${t(2)}:13:18: spec.resp.status_code: expected an integer, found "abc"`,
      `${t(3)}:2:7: kind: expected "Http", found "Grpc"`,
      `${t(4)}:1:10: version: expected "api.keploy.io/v1beta1", found "v2"`,
      `${t(4)}:3:1: spec: missing required field "resp"`,
      `${t(4)}:4:3: spec.req: missing required field "url"`,
      `${t(5)}:7:10: spec.req.url: expected an absolute http(s) URL or a path starting with "/", found "localhost:3000/no-scheme"`,
      `${t(5)}:11:11: spec.resp.body: expected base64 (body_encoding is base64), found other characters`,
      `${t(5)}:15:17: noise "body.id": invalid regular expression "([a-z": /([a-z/: Unterminated character class`,
      `${t(5)}:16:7: unknown noise key "foo.bar": expected "header.<name>", "body", "body.<path>" (use [] for any array index) or "status"`,
      `${m}:13:3: spec.req: missing required field "url"`,
      `${m}:16:18: spec.resp.status_code: expected an integer, found "204"`,
      `${m}:25:7: unknown mock kind "Carrier-Pigeon", expected "Http"`,
      `${m}:36:1: YAML syntax error: Missing closing "quote`,
    ]);
  });

  it('the error message lists the problems and says how many', () => {
    try {
      loadTestSets(path.join(FIX, 'broken'));
    } catch (err) {
      const e = err as InputFileError;
      expect(e.code).toBe('TLSREC_E_INPUT');
      expect(e.exitCode).toBe(2);
      expect(e.message).toMatch(/^invalid test files in .*broken: 16 problems\n/);
      expect(e.message).toContain('test-2.yaml:13:18: spec.resp.status_code: expected an integer, found "abc"');
      return;
    }
    throw new Error('expected an InputFileError');
  });

  it('a missing root directory is an input error, not a stack trace', () => {
    expect(problemsOf(() => loadTestSets(path.join(FIX, 'does-not-exist')))).toEqual([
      `${path.join(FIX, 'does-not-exist')}:1:1: test directory not found; expected <dir>/<test-set>/tests/test-1.yaml (record some tests first)`,
    ]);
  });
});

describe('Keploy files load as they are', () => {
  it('single-line JSON bodies, 4-space indentation, path-only mock URLs, other mock kinds skipped', () => {
    const [set] = loadTestSets(path.join(FIX, 'keploy'));
    expect(set!.name).toBe('test-set-0');
    const [t1, t2] = set!.tests;
    expect(t1!.request).toMatchObject({ method: 'POST', url: 'http://localhost:8080/books?lang=en' });
    expect(t1!.request.body.kind).toBe('json');
    expect(t1!.request.body.bytes.toString()).toBe('{"title":"Dune","year":1965}');
    expect(t1!.expected.status).toBe(201);
    expect(t1!.expected.body.bytes.toString()).toBe('{"id":7,"title":"Dune","year":1965}');
    expect(t1!.expected.headers).toContainEqual(['Content-Length', '40']);
    expect(t1!.noise.map((n) => n.target)).toEqual([
      { type: 'header', name: 'date' },
      { type: 'body', path: ['id'] },
    ]);
    expect(t2!.expected.body).toMatchObject({ kind: 'text' });
    expect(t2!.expected.body.bytes.toString()).toBe('ok');
    expect(t2!.request.body.kind).toBe('empty');

    expect(set!.mocks).toHaveLength(1);
    const m = set!.mocks[0]!;
    expect(m.request).toMatchObject({
      method: 'GET',
      scheme: 'http',
      host: '', // Keploy's Go client mocks record no Host: any host matches
      path: '/api/v2/authors/42',
      query: [
        ['fields', 'name'],
        ['fields', 'born'],
      ],
    });
    expect(m.response.statusMessage).toBe('OK');
    expect(m.response.body.bytes.toString()).toBe('{"name":"Frank Herbert","born":1920}');
    expect(m.line).toBe(1);
    expect(set!.warnings).toEqual([
      `${path.join(FIX, 'keploy', 'test-set-0', 'mocks.yaml')}: skipped 1 Postgres mock (tlsrec serves Http mocks)`,
    ]);
  });
});

describe('tlsrec.yaml', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrec-config-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('absent file gives the defaults', () => {
    expect(loadConfig(path.join(dir, 'tlsrec.yaml'))).toEqual({
      file: undefined,
      command: undefined,
      appPort: undefined,
      healthUrl: undefined,
      readyTimeoutMs: 30_000,
      noise: [],
      passthrough: [],
      redactHeaders: [],
      redactKeys: [],
      redactPaths: [],
      secretsFile: path.join(dir, '.tlsrec-secrets.yaml'),
    });
  });

  it('reads every field; a string command runs through the shell; its noise reaches every test', () => {
    const file = path.join(dir, 'tlsrec.yaml');
    fs.writeFileSync(
      file,
      [
        '# yaml-language-server: $schema=node_modules/tlsrec/schema/config.schema.json',
        'command: npm start',
        'appPort: 3000',
        'healthUrl: http://localhost:3000/health',
        'readyTimeout: 2.5',
        'noise:',
        '  body.updatedAt: []',
        '  header.X-Request-Id: ["^[0-9a-f-]+$"]',
        'passthrough: ["127.0.0.1:5432"]',
        'redact:',
        '  headers: [X-Tenant]',
        '',
      ].join('\n'),
    );
    const c = loadConfig(file);
    expect(c).toMatchObject({
      file,
      command: ['/bin/sh', '-c', 'npm start'],
      appPort: 3000,
      healthUrl: 'http://localhost:3000/health',
      readyTimeoutMs: 2500,
      passthrough: ['127.0.0.1:5432'],
      redactHeaders: ['X-Tenant'],
    });
    expect(c.noise[1]!.patterns[0]!.test('ab-12')).toBe(true);
    const [set] = loadTestSets(path.join(FIX, 'keploy'), { config: c });
    expect(set!.noise.map((n) => n.key)).toEqual(['body.updatedAt', 'header.X-Request-Id']);
    expect(set!.tests[0]!.noise.map((n) => n.key)).toEqual([
      'body.updatedAt',
      'header.X-Request-Id',
      'header.Date',
      'body.id',
    ]);
  });

  it('a broken config reports every problem with its position', () => {
    const file = path.join(dir, 'tlsrec.yaml');
    fs.writeFileSync(
      file,
      ['command: [node, 3]', 'appPort: "3000"', 'apport: 1', 'noise:', '  header.X: ["(unclosed"]', ''].join('\n'),
    );
    expect(problemsOf(() => loadConfig(file))).toEqual([
      `${file}:1:17: command[1]: expected a string, found 3`,
      `${file}:2:10: appPort: expected an integer, found "3000"`,
      `${file}:3:1: unknown field "apport"`,
    ]);
    fs.writeFileSync(file, ['noise:', '  header.X: ["(unclosed"]', ''].join('\n'));
    expect(problemsOf(() => loadConfig(file))).toEqual([
      `${file}:2:14: noise "header.X": invalid regular expression "(unclosed": /(unclosed/: Unterminated group`,
    ]);
  });
});
