// The replay half of the protocol seam, proved with a toy line protocol registered only here
// (test/helpers/line-protocol.ts): its documents read from YAML through the reader with positions
// for problems, written by the writer, its mocks served by the real mock server to real TCP and TLS
// clients (plaintext, ALPN, in-band STARTTLS) with hits and misses in the same report as HTTP's,
// and its tests replayed by the runner against a real TCP app, beside the set's HTTP exchanges.

import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputFileError } from '../src/errors.js';
import { loadTestSets } from '../src/format/reader.js';
import type { Config, TestSet } from '../src/format/types.js';
import { TestSetWriter } from '../src/format/test-set-writer.js';
import { http1 } from '../src/protocols/http1/index.js';
import { docReaders, exchangeDocs } from '../src/protocols/files.js';
import { PROTOCOLS } from '../src/protocols/index.js';
import { createRunCa, type RunCa } from '../src/replay/mocks/ca.js';
import { MockMatcher } from '../src/replay/mocks/matcher.js';
import { startMockServer, type MockServer } from '../src/replay/mocks/server.js';
import { runTests } from '../src/replay/run-tests.js';
import { lineExchange, lineProtocol } from './helpers/line-protocol.js';

const PROTOCOLS_WITH_LINE = [http1, lineProtocol];

const HTTP_TEST = `version: api.keploy.io/v1beta1
kind: Http
name: test-1
spec:
  req:
    method: GET
    proto_major: 1
    proto_minor: 1
    url: http://localhost:3000/hello
    header: {}
    body: ""
  resp:
    status_code: 200
    header:
      Content-Type: text/plain
    body: hi
`;

const MOCKS = `version: api.keploy.io/v1beta1
kind: Http
name: mock-0
spec:
  metadata: {}
  req:
    method: GET
    proto_major: 1
    proto_minor: 1
    url: http://plain.test/h
    header:
      Host: plain.test
    body: ""
  resp:
    status_code: 200
    header:
      Content-Type: text/plain
    body: from http
---
version: api.keploy.io/v1beta1
kind: Line
name: mock-1
spec:
  key: a
  value: apple
---
version: api.keploy.io/v1beta1
kind: Line
name: mock-2
spec:
  key: b
  value: banana
`;

const tmpRoots: string[] = [];
function makeRoot(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(tmpdir(), 'tlsrec-seam-'));
  tmpRoots.push(root);
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
  return root;
}
afterAll(() => {
  for (const r of tmpRoots) fs.rmSync(r, { recursive: true, force: true });
});

const lineTest = (name: string, key: string, value: string): string =>
  `version: api.keploy.io/v1beta1\nkind: LineTest\nname: ${name}\nspec:\n  key: ${key}\n  value: ${value}\n`;

function loadOne(root: string): TestSet {
  return loadTestSets(root, { readers: docReaders(PROTOCOLS_WITH_LINE) })[0]!;
}

describe('reading other kinds through the registry', () => {
  it('reads Line mocks and LineTest tests into envelopes beside the HTTP ones, in file order', () => {
    const root = makeRoot({
      's/tests/test-1.yaml': HTTP_TEST,
      's/tests/test-2.yaml': lineTest('test-2', 'a', 'apple'),
      's/mocks.yaml': MOCKS,
    });
    const set = loadOne(root);
    expect(set.tests.map((t) => t.name)).toEqual(['test-1']);
    expect(set.protocolTests).toEqual([
      {
        protocol: 'line',
        kind: 'LineTest',
        file: path.join(root, 's/tests/test-2.yaml'),
        line: 1,
        name: 'test-2',
        index: 1,
        value: { key: 'a', value: 'apple' },
      },
    ]);
    expect(set.mocks.map((m) => [m.name, m.request.host, m.request.path])).toEqual([['mock-0', 'plain.test', '/h']]);
    expect(set.protocolMocks!.map((m) => [m.protocol, m.kind, m.name, m.index, m.line, m.value])).toEqual([
      ['line', 'Line', 'mock-1', 1, 20, { key: 'a', value: 'apple' }],
      ['line', 'Line', 'mock-2', 2, 27, { key: 'b', value: 'banana' }],
    ]);
    expect(set.warnings).toBeUndefined();
  });

  it("reports the protocol reader's problems at file:line:column, every file at once", () => {
    const root = makeRoot({
      's/tests/test-1.yaml': `version: api.keploy.io/v1beta1\nkind: LineTest\nname: t\nspec:\n  key: a\n  valu: apple\n`,
      's/mocks.yaml': `${MOCKS}---\nversion: api.keploy.io/v1beta1\nkind: Line\nname: mock-3\nspec:\n  key: 3\n  value: c\n`,
    });
    let err: unknown;
    try {
      loadOne(root);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputFileError);
    expect((err as InputFileError).problems).toEqual([
      `${root}/s/tests/test-1.yaml:5:3: spec.value: expected a string, found nothing`,
      `${root}/s/tests/test-1.yaml:6:3: spec.valu: unknown field, expected key or value`,
      `${root}/s/mocks.yaml:38:8: spec.key: expected a string, found 3`,
    ]);
  });

  it('without the protocol a Line mock is an unknown kind', () => {
    const root = makeRoot({ 's/mocks.yaml': MOCKS });
    expect(() => loadTestSets(root)).toThrow(/mocks\.yaml:21:7: unknown mock kind "Line", expected "Http"/);
  });

  it('HTTP/1 is unchanged: the golden sets load the same with the registry as without readers', () => {
    const golden = fileURLToPath(new URL('./golden/', import.meta.url));
    const plain = loadTestSets(golden);
    const withRegistry = loadTestSets(golden, { readers: docReaders(PROTOCOLS) });
    // Other protocols' documents (the Postgres and Redis golden sets' mocks) are read by their
    // protocols besides HTTP/1's (and skipped with a warning without readers).
    const httpOnly = (sets: typeof plain) =>
      sets.map(({ protocolMocks: _m, protocolTests: _t, warnings: _w, ...s }) => s);
    expect(httpOnly(withRegistry)).toEqual(httpOnly(plain));
    expect(plain.some((s) => s.mocks.length > 0)).toBe(true);
    expect(withRegistry.flatMap((s) => s.warnings ?? [])).toEqual([]);
    expect(
      withRegistry
        .filter((s) => s.protocolMocks !== undefined || s.protocolTests !== undefined)
        .map((s) => [s.name, new Set(s.protocolMocks!.map((m) => m.protocol))]),
    ).toEqual([
      ['postgres-pool', new Set(['postgres'])],
      ['real-redis-ioredis', new Set(['redis'])],
    ]);
  });
});

describe('writing other protocols through their files', () => {
  it('writes Line exchanges as their documents, which read back as the same mocks and tests', async () => {
    const root = makeRoot({});
    const writer = await TestSetWriter.create({ rootDir: root, testSet: 'w' }, exchangeDocs(PROTOCOLS_WITH_LINE));
    writer.writeExchange(lineExchange('outgoing', 'a', 'apple'));
    writer.writeExchange(lineExchange('incoming', 'k', 'v'));
    writer.writeExchange(lineExchange('outgoing', 'b', 'banana'));
    expect(await writer.close()).toEqual({ tests: 1, mocks: 2, failedTests: 0, failedMocks: 0 });
    expect(fs.readFileSync(path.join(root, 'w/tests/test-1.yaml'), 'utf8')).toBe(
      'version: api.keploy.io/v1beta1\nkind: LineTest\nname: test-1\nspec:\n  key: "k"\n  value: "v"\n',
    );
    const set = loadOne(root);
    expect(set.protocolMocks!.map((m) => [m.name, m.value])).toEqual([
      ['mock-0', { key: 'a', value: 'apple' }],
      ['mock-1', { key: 'b', value: 'banana' }],
    ]);
    expect(set.protocolTests!.map((t) => [t.name, t.value])).toEqual([['test-1', { key: 'k', value: 'v' }]]);
  });

  it('an exchange of a protocol without files is counted as failed, not written as HTTP', async () => {
    const root = makeRoot({});
    const writer = await TestSetWriter.create({ rootDir: root, testSet: 'w' });
    expect(() => writer.writeExchange(lineExchange('outgoing', 'a', 'apple'))).toThrow(
      /no document writer for line exchanges/,
    );
    expect(await writer.close()).toEqual({ tests: 0, mocks: 0, failedTests: 0, failedMocks: 1 });
  });
});

describe('the mock server hands connections to the protocol that takes them', () => {
  let ca: RunCa;
  let matcher: MockMatcher;
  let server: MockServer;
  const missLog: string[] = [];

  beforeAll(async () => {
    const set = loadOne(makeRoot({ 's/mocks.yaml': MOCKS }));
    ca = createRunCa({ tmpDir: tmpdir(), hosts: ['plain.test', 'line.test'] });
    matcher = new MockMatcher(set.mocks);
    server = await startMockServer({
      matcher,
      ca,
      protocols: PROTOCOLS_WITH_LINE,
      protocolMocks: set.protocolMocks!,
      onMiss: (m) => missLog.push(m),
    });
  });
  afterAll(async () => {
    await server?.close();
    ca?.close();
  });

  /** Sends lines on a connected socket and collects one answer line per request. */
  function converse(socket: net.Socket | tls.TLSSocket, requests: string[]): Promise<string[]> {
    return new Promise((resolve, reject) => {
      const answers: string[] = [];
      let buf = '';
      socket.on('error', reject);
      socket.on('data', (c: Buffer) => {
        buf += c.toString();
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          answers.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
          const next = requests[answers.length];
          if (next !== undefined) socket.write(`${next}\n`);
          else {
            socket.end();
            resolve(answers);
          }
        }
      });
      socket.write(`${requests[0]}\n`);
    });
  }

  const connect = (): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const s = net.connect(server.port, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });

  it('serves a plaintext Line client: a hit, the repeat reused, a miss naming the closest mock and the field', async () => {
    const before = matcher.report();
    const answers = await converse(await connect(), ['GET a', 'GET a', 'GET zz']);
    expect(answers[0]).toBe('VALUE apple');
    expect(answers[1]).toBe('VALUE apple');
    expect(answers[2]).toMatch(/^MISS no Line mock for GET zz; closest mock-2 differs at key/);
    const r = matcher.report();
    expect(r.served.slice(before.served.length)).toEqual([
      { mock: 'mock-1', method: 'GET', url: 'line://plain/a' },
      { mock: 'mock-1', method: 'GET', url: 'line://plain/a', reused: true },
    ]);
    expect(r.misses.slice(before.misses.length)).toEqual([
      {
        method: 'GET',
        url: 'line://plain/zz',
        closest: { mock: 'mock-2', field: 'key', detail: 'expected "b", got "zz"' },
        message: 'no Line mock for GET zz; closest mock-2 differs at key (expected "b", got "zz")',
      },
    ]);
    expect(missLog.at(-1)).toBe(r.misses.at(-1)!.message);
  });

  it('still answers HTTP/1 on the same port, into the same report, in arrival order', async () => {
    const before = matcher.report();
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.get(
        { host: '127.0.0.1', port: server.port, path: '/h', headers: { host: 'plain.test' } },
        (res) => {
          let b = '';
          res.on('data', (c: Buffer) => (b += c.toString()));
          res.on('end', () => resolve(`${res.statusCode} ${b}`));
        },
      );
      req.on('error', reject);
    });
    expect(body).toBe('200 from http');
    const answers = await converse(await connect(), ['GET b']);
    expect(answers).toEqual(['VALUE banana']);
    expect(
      matcher
        .report()
        .served.slice(before.served.length)
        .map((s) => s.mock),
    ).toEqual(['mock-0', 'mock-2']);
  });

  it('serves the protocol inside TLS when its ALPN id is negotiated (certificate for the SNI)', async () => {
    const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect(
        {
          port: server.port,
          host: '127.0.0.1',
          servername: 'line.test',
          ca: ca.caPem,
          ALPNProtocols: ['line', 'http/1.1'],
        },
        () => resolve(s),
      );
      s.once('error', reject);
    });
    expect(socket.alpnProtocol).toBe('line');
    expect(socket.authorized).toBe(true);
    expect(await converse(socket, ['GET b'])).toEqual(['VALUE banana']);
    expect(matcher.report().served.at(-1)).toEqual({ mock: 'mock-2', method: 'GET', url: 'line://line.test/b' });
  });

  it('a TLS client without ALPN is routed by its first decrypted bytes; HTTPS still goes to HTTP', async () => {
    const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ port: server.port, host: '127.0.0.1', servername: 'line.test', ca: ca.caPem }, () =>
        resolve(s),
      );
      s.once('error', reject);
    });
    expect(await converse(socket, ['GET a'])).toEqual(['VALUE apple']);
    const https = await import('node:https');
    const status = await new Promise<number | undefined>((resolve, reject) => {
      https
        .get(
          {
            host: '127.0.0.1',
            port: server.port,
            path: '/nothing',
            servername: 'plain.test',
            headers: { host: 'plain.test' },
            ca: ca.caPem,
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode));
          },
        )
        .on('error', reject);
    });
    expect(status).toBe(502); // an HTTP miss: the HTTP matcher answered
    expect(matcher.report().misses.at(-1)!.url).toBe('https://plain.test/nothing');
  });

  it('upgrades in-band with the run CA (STARTTLS, like Postgres SSLRequest) and goes on serving', async () => {
    const plain = await connect();
    const ok = await new Promise<string>((resolve) => {
      plain.once('data', (c: Buffer) => resolve(c.toString()));
      plain.write('STARTTLS\n');
    });
    expect(ok).toBe('OK\n');
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ socket: plain, servername: 'db.line.test', ca: ca.caPem }, () => resolve(s));
      s.once('error', reject);
    });
    expect(secure.authorized).toBe(true);
    expect(secure.getPeerCertificate().subjectaltname).toContain('db.line.test');
    expect(await converse(secure, ['GET a'])).toEqual(['VALUE apple']);
  });

  it('lists the mocks of every protocol that answered no call', () => {
    expect(server.unusedProtocolMocks()).toEqual([]);
    expect(matcher.report().unused).toEqual([]);
  });
});

describe('the runner replays other kinds through Protocol.replay', () => {
  it('runs LineTest tests among HTTP ones in file order against a real TCP app: a pass and a failure', async () => {
    const app = net.createServer((s) => {
      let buf = '';
      s.on('data', (c: Buffer) => {
        buf += c.toString();
        const i = buf.indexOf('\n');
        if (i < 0) return;
        const key = buf.slice(0, i).replace(/^GET /, '');
        s.end(`VALUE ${key === 'x' ? 'ten' : 'other'}\n`);
      });
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (app.address() as net.AddressInfo).port;
      const root = makeRoot({
        's/tests/test-1.yaml': lineTest('test-1', 'x', 'ten'),
        's/tests/test-2.yaml': lineTest('test-2', 'y', 'why'),
      });
      const set = loadOne(root);
      const config: Config = {
        file: undefined,
        command: undefined,
        appPort: undefined,
        healthUrl: undefined,
        readyTimeoutMs: 1000,
        noise: [],
        passthrough: [],
        redactHeaders: [],
      };
      const sink = new Writable({ write: (_c, _e, cb) => cb() });
      const result = await runTests({
        dir: root,
        appUrl: `http://127.0.0.1:${port}`,
        mocks: false,
        reporters: [],
        out: sink,
        config,
        testSetsLoaded: [set],
        handleSignals: false,
        protocols: PROTOCOLS_WITH_LINE,
        reportDir: path.join(root, 'reports'),
      });
      expect(result.passed).toBe(1);
      expect(result.failed).toBe(1);
      expect(result.exitCode).toBe(1);
      const tests = result.report.sets[0]!.tests;
      expect(tests.map((t) => [t.name, t.method, t.url, t.passed])).toEqual([
        ['test-1', 'GET', 'x', true],
        ['test-2', 'GET', 'y', false],
      ]);
      expect(tests[1]!.failures).toEqual([
        {
          kind: 'body',
          path: 'value',
          expected: 'why',
          actual: 'other',
          message: 'test-2: value: expected "why", got "other"',
        },
      ]);
    } finally {
      await new Promise<void>((r) => app.close(() => r()));
    }
  });

  it('a test of a protocol without replay fails with a clear message', async () => {
    const root = makeRoot({ 's/tests/test-1.yaml': lineTest('test-1', 'x', 'ten') });
    const set = loadOne(root);
    const noReplay = { ...lineProtocol, replay: undefined };
    const config: Config = {
      file: undefined,
      command: undefined,
      appPort: undefined,
      healthUrl: undefined,
      readyTimeoutMs: 1000,
      noise: [],
      passthrough: [],
      redactHeaders: [],
    };
    const result = await runTests({
      dir: root,
      appUrl: 'http://127.0.0.1:9',
      mocks: false,
      reporters: [],
      out: new Writable({ write: (_c, _e, cb) => cb() }),
      config,
      testSetsLoaded: [set],
      handleSignals: false,
      protocols: [http1, noReplay],
      reportDir: path.join(root, 'reports'),
    });
    expect(result.report.sets[0]!.tests[0]!.failures[0]!.message).toBe(
      'test-1: tlsrec cannot replay LineTest tests (protocol line has no replay)',
    );
  });
});
