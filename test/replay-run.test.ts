import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { BodyValue, Config, TestCase, TestSet } from '../src/format/types.js';
import { findCgroup2Mount } from '../src/native/cgroup.js';
import type { MockMiss, StartMockSession } from '../src/replay/mock-session.js';
import { InterruptedError } from '../src/errors.js';
import { runTests, type TestOptions } from '../src/replay/run-tests.js';
import { cgroupSkipReason, freePort } from './replay-helpers.js';

const skip = cgroupSkipReason();

// The app under test: JSON with a per-request field, text, gzip, binary, POST echo, an upstream
// call (UPSTREAM_URL from the env the mock session hands over), a slow route and a crash.
const APP = `
const http = require('node:http');
const zlib = require('node:zlib');
const port = Number(process.argv[2]);
http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', async () => {
    if (req.url === '/users/1') {
      res.setHeader('content-type', 'application/json');
      res.setHeader('x-request-id', String(Math.random()));
      return res.end(JSON.stringify({ id: 1, name: 'Ada', tags: ['x', 'y'], createdAt: new Date().toISOString() }));
    }
    if (req.url === '/hello') { res.setHeader('content-type', 'text/plain'); return res.end('hello\\nworld\\n'); }
    if (req.url === '/gz') {
      res.setHeader('content-type', 'application/json'); res.setHeader('content-encoding', 'gzip');
      return res.end(zlib.gzipSync(JSON.stringify({ compressed: true })));
    }
    if (req.url === '/img') { res.setHeader('content-type', 'image/png'); return res.end(Buffer.from([137, 80, 78, 71, 0, 1, 2])); }
    if (req.url === '/echo' && req.method === 'POST') {
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ got: JSON.parse(body), host: req.headers.host }));
    }
    if (req.url === '/weather') {
      const r = await fetch(process.env.UPSTREAM_URL + '/forecast').catch((e) => ({ status: 599 }));
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ upstream: r.status }));
    }
    if (req.url === '/slow') { return setTimeout(() => res.end('late'), 10000); }
    if (req.url === '/crash') { console.error('crashing on purpose'); process.exit(7); }
    res.statusCode = 404; res.end('not found');
  });
}).listen(port, '127.0.0.1', () => console.log('app listening on ' + port));
`;

let work: string;
let appFile: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'tlsrec-replay-run-'));
  appFile = join(work, 'app.cjs');
  writeFileSync(appFile, APP);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const jsonBody = (v: unknown): BodyValue => ({ bytes: Buffer.from(JSON.stringify(v, null, 2)), kind: 'json' });
const textBody = (s: string): BodyValue => ({ bytes: Buffer.from(s), kind: 'text' });
const empty: BodyValue = { bytes: Buffer.alloc(0), kind: 'empty' };

function tc(
  name: string,
  method: string,
  path: string,
  status: number,
  headers: Array<[string, string]>,
  body: BodyValue,
  reqBody: BodyValue = empty,
  reqHeaders: Array<[string, string]> = [],
): TestCase {
  return {
    file: `test-set-0/tests/${name}.yaml`,
    name,
    request: {
      method,
      url: `http://localhost:3000${path}`,
      headers: [['Host', 'localhost:3000'], ...reqHeaders],
      body: reqBody,
    },
    expected: { status, headers, body },
    noise: [],
  };
}

function goodTests(): TestCase[] {
  const user = tc(
    'test-1',
    'GET',
    '/users/1',
    200,
    [
      ['Content-Type', 'application/json'],
      ['X-Request-Id', 'abc'],
      ['Date', 'Mon, 01 Jan 2024 00:00:00 GMT'],
    ],
    jsonBody({ id: 1, name: 'Ada', tags: ['x', 'y'], createdAt: '2024-01-01T00:00:00.000Z' }),
  );
  user.noise = [{ target: { type: 'body', path: ['createdAt'] }, patterns: [/^\d{4}-/], key: 'body.createdAt' }];
  return [
    user,
    tc('test-2', 'GET', '/hello', 200, [['Content-Type', 'text/plain']], textBody('hello\nworld\n')),
    tc('test-3', 'GET', '/gz', 200, [['Content-Encoding', 'gzip']], jsonBody({ compressed: true }), empty, [
      ['Accept-Encoding', 'gzip'],
    ]),
    tc('test-4', 'GET', '/img', 200, [], { bytes: Buffer.from([137, 80, 78, 71, 0, 1, 2]), kind: 'binary' }),
    tc(
      'test-5',
      'POST',
      '/echo',
      200,
      [],
      jsonBody({ got: { a: [1, 2] }, host: 'localhost:3000' }),
      jsonBody({ a: [1, 2] }),
      [
        ['Content-Type', 'application/json'],
        ['Content-Length', '999'],
      ],
    ),
  ];
}

const config = (over: Partial<Config> = {}): Config => ({
  file: undefined,
  command: undefined,
  appPort: undefined,
  healthUrl: undefined,
  readyTimeoutMs: 10_000,
  noise: [],
  passthrough: [],
  redactHeaders: [],
  ...over,
});

function collect(): { out: PassThrough; text: () => string } {
  const out = new PassThrough();
  let buf = '';
  out.on('data', (c: Buffer) => (buf += c.toString()));
  return { out, text: () => buf };
}

async function run(tests: TestCase[], over: Partial<TestOptions> = {}, set: Partial<TestSet> = {}) {
  const port = await freePort();
  const { out, text } = collect();
  const testSet: TestSet = { name: 'test-set-0', dir: join(work, 'test-set-0'), tests, mocks: [], noise: [], ...set };
  const opts: TestOptions = {
    dir: work,
    command: [process.execPath, appFile, String(port)],
    appPort: port,
    mocks: false,
    reporters: ['terminal'],
    out,
    config: config(),
    testSetsLoaded: [testSet],
    handleSignals: false,
    ...over,
  };
  const result = await runTests(opts);
  return { result, output: text() };
}

function lastLine(s: string): string {
  const lines = s.trimEnd().split('\n');
  return lines[lines.length - 1]!;
}

function leftoverCgroups(): string[] {
  const mount = findCgroup2Mount();
  if (!mount || !existsSync(join(mount, 'tlsrec'))) return [];
  return readdirSync(join(mount, 'tlsrec')).filter((d) => d.startsWith('test-') && d.includes(`-${process.pid}-`));
}

describe.skipIf(skip !== undefined)('runTests end to end (real app, mocks disabled)', () => {
  it('all pass: exit code 0, summary last, JUnit and JSON reports that agree', async () => {
    const reportDir = join(work, 'reports-pass');
    const { result, output } = await run(goodTests(), { reporters: ['terminal', 'junit', 'json'], reportDir });
    expect(output).not.toContain('✗');
    expect(result).toMatchObject({ passed: 5, failed: 0, exitCode: 0 });
    expect(lastLine(output)).toBe('5 passed, 0 failed');
    expect(output).toContain('✓ test-1  GET /users/1');
    expect(result.reportFiles).toEqual([join(reportDir, 'junit.xml'), join(reportDir, 'report.json')]);
    const json = JSON.parse(readFileSync(join(reportDir, 'report.json'), 'utf8')) as {
      passed: number;
      failed: number;
      sets: Array<{ tests: unknown[] }>;
    };
    expect(json.passed).toBe(5);
    expect(json.sets[0]!.tests).toHaveLength(5);
    const counts = execFileSync('python3', ['-c', PY_JUNIT, join(reportDir, 'junit.xml')], { encoding: 'utf8' }).trim();
    expect(counts).toBe('tests=5 failures=0 suites=1 cases=5');
    expect(leftoverCgroups()).toEqual([]);
  });

  it('a changed value: exit code 1; the output names the test, JSON path, expected and actual', async () => {
    const tests = goodTests();
    tests[0]!.expected.body = jsonBody({
      id: 1,
      name: 'Grace',
      tags: ['x', 'y'],
      createdAt: '2024-01-01T00:00:00.000Z',
    });
    tests[1]!.expected.body = textBody('hello\nthere\n');
    const reportDir = join(work, 'reports-fail');
    const { result, output } = await run(tests, { reporters: ['terminal', 'junit'], reportDir });
    expect(result).toMatchObject({ passed: 3, failed: 2, exitCode: 1 });
    expect(output).toContain('test-1: body $.name: expected "Grace", got "Ada"');
    expect(output).toContain('-  "name": "Grace"');
    expect(output).toContain('+  "name": "Ada"');
    expect(output).toContain('test-2: body line 2: expected "there", got "world"');
    expect(lastLine(output)).toBe('3 passed, 2 failed');
    const counts = execFileSync('python3', ['-c', PY_JUNIT, join(reportDir, 'junit.xml')], { encoding: 'utf8' }).trim();
    expect(counts).toBe('tests=5 failures=2 suites=1 cases=5');
  });

  it('an app that dies mid-run: that test fails, the rest are not run, its output is shown', async () => {
    const tests = goodTests();
    tests.splice(1, 0, tc('test-crash', 'GET', '/crash', 200, [], empty));
    const { result, output } = await run(tests);
    expect(result).toMatchObject({ passed: 1, failed: 5, exitCode: 1 });
    expect(output).toMatch(/the app exited with code 7 during test-crash/);
    expect(output).toContain('crashing on purpose');
    expect(output).toContain('test-2: not run: the app is no longer running');
    expect(leftoverCgroups()).toEqual([]);
  });

  it('an app that does not start is an AppError with its output', async () => {
    await expect(
      run(goodTests(), { command: [process.execPath, '-e', "console.error('no config'); process.exit(2)"] }),
    ).rejects.toMatchObject({
      code: 'TLSREC_E_APP',
      detail: expect.stringContaining('no config'),
    });
    expect(leftoverCgroups()).toEqual([]);
  });

  it('SIGINT during a test stops the app and rejects with InterruptedError (130)', async () => {
    const tests = [tc('test-slow', 'GET', '/slow', 200, [], textBody('late'))];
    const p = run(tests, { handleSignals: true });
    await new Promise((r) => setTimeout(r, 1500));
    expect(leftoverCgroups()).toHaveLength(1);
    process.emit('SIGINT');
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InterruptedError);
    expect((err as InterruptedError).exitCode).toBe(130);
    expect((err as InterruptedError).message).toContain('interrupted by SIGINT');
    expect(leftoverCgroups()).toEqual([]);
    expect(process.listenerCount('SIGINT')).toBe(0);
  });

  it('SIGTERM while waiting for the app to be ready stops it (143) and leaves nothing behind', async () => {
    const p = run(goodTests(), {
      handleSignals: true,
      command: [process.execPath, '-e', 'setInterval(() => {}, 1000)'],
    });
    await new Promise((r) => setTimeout(r, 500));
    expect(leftoverCgroups()).toHaveLength(1);
    const started = Date.now();
    process.emit('SIGTERM');
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InterruptedError);
    expect((err as InterruptedError).exitCode).toBe(143);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(leftoverCgroups()).toEqual([]);
  });

  it('mock sessions: env reaches the app, misses are shown under their test with the closest mock', async () => {
    let upstream: Server | undefined;
    const misses: MockMiss[] = [];
    let closed = false;
    let sawCgroup = '';
    const fake: StartMockSession = async (o) => {
      sawCgroup = o.cgroup.path;
      upstream = createServer((req, res) => {
        misses.push({
          method: req.method!,
          url: `http://upstream.test${req.url}`,
          closest: { mock: 'mock-0', field: 'path', detail: 'expected /forecast/today, got /forecast' },
        });
        res.statusCode = 502;
        res.end();
      });
      await new Promise<void>((r) => upstream!.listen(0, '127.0.0.1', () => r()));
      const addr = upstream.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      return {
        env: { UPSTREAM_URL: `http://127.0.0.1:${port}` },
        report: () => ({ served: [], misses: [...misses], unused: ['mock-0', 'mock-1'] }),
        close: async () => {
          closed = true;
          await new Promise<void>((r) => upstream!.close(() => r()));
        },
      };
    };
    const weather = tc('test-weather', 'GET', '/weather', 200, [], jsonBody({ upstream: 200 }));
    const { result, output } = await run(
      [goodTests()[1]!, weather],
      { mocks: true, startMockSession: fake },
      { mocks: [] },
    );
    expect(sawCgroup).toMatch(/tlsrec\/test-test-set-0-/);
    expect(closed).toBe(true);
    expect(result).toMatchObject({ passed: 1, failed: 1, mockMisses: 1, exitCode: 1 });
    expect(output).toContain('test-weather: body $.upstream: expected 200, got 502');
    expect(output).toContain('mock miss: GET http://upstream.test/forecast');
    expect(output).toContain('closest mock mock-0: path differs: expected /forecast/today, got /forecast');
    expect(output).toContain('mocks were not used: mock-0, mock-1'); // unused listed as info
    expect(result.report.sets[0]!.tests[1]!.mockMisses).toHaveLength(1);
    expect(result.report.sets[0]!.tests[0]!.mockMisses).toHaveLength(0);
    expect(lastLine(output)).toBe('1 passed, 1 failed');
  });
});

describe('runTests without starting an app (--app-url)', () => {
  it('replays against a running app and reports', async () => {
    const srv = createServer((_req, res) => {
      res.setHeader('content-type', 'text/plain');
      res.end('hello\nworld\n');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const addr = srv.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    try {
      const { result, output } = await run([goodTests()[1]!], {
        command: undefined,
        appUrl: `http://127.0.0.1:${port}`,
        mocks: true,
      });
      expect(result.exitCode).toBe(0);
      expect(lastLine(output)).toBe('1 passed, 0 failed');
    } finally {
      srv.close();
    }
  });

  it('unknown test set names are a usage error', async () => {
    await expect(run([], { testSets: ['nope'] })).rejects.toMatchObject({ code: 'TLSREC_E_USAGE' });
  });
});

// Parses the JUnit file with a real XML parser and prints the counts it declares and contains.
const PY_JUNIT = `
import sys, xml.dom.minidom as m
d = m.parse(sys.argv[1])
root = d.documentElement
assert root.tagName == 'testsuites'
suites = d.getElementsByTagName('testsuite')
cases = d.getElementsByTagName('testcase')
fails = d.getElementsByTagName('failure')
assert int(root.getAttribute('failures')) == len(fails)
assert sum(int(s.getAttribute('tests')) for s in suites) == len(cases)
print('tests=%s failures=%s suites=%d cases=%d' % (root.getAttribute('tests'), root.getAttribute('failures'), len(suites), len(cases)))
`;
