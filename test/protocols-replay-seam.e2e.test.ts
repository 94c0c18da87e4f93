// End to end, as root, with real eBPF: `runTests` starts an app in a cgroup whose outgoing
// connections the redirect sends to the mock server; the app answers each HTTP request by asking a
// line-protocol upstream on a loopback port where nothing listens. The toy line protocol
// (test/helpers/line-protocol.ts, registered only here) serves those connections from Line mocks
// read from mocks.yaml: a hit makes the first test pass; a miss, shown under the second test with
// the closest mock and the field that differed, makes it fail; the mock nobody asked for is unused.

import fs from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { loadTestSets } from '../src/format/reader.js';
import type { Config } from '../src/format/types.js';
import { http1 } from '../src/protocols/http1/index.js';
import { docReaders } from '../src/protocols/files.js';
import { runTests } from '../src/replay/run-tests.js';
import { needsEbpf } from './helpers/env.js';
import { lineProtocol } from './helpers/line-protocol.js';

vi.setConfig({ testTimeout: 60_000 });
const ebpf = needsEbpf();

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });

const APP = `
const http = require('node:http');
const net = require('node:net');
const [appPort, linePort] = process.argv.slice(2).map(Number);
http.createServer((req, res) => {
  const key = new URL(req.url, 'http://app').searchParams.get('key');
  const s = net.connect(linePort, '127.0.0.1');
  let buf = '';
  s.on('data', (c) => {
    buf += c;
    const i = buf.indexOf('\\n');
    if (i < 0) return;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(buf.slice(0, i));
    s.destroy();
  });
  s.on('error', (e) => { res.writeHead(500); res.end(String(e)); });
  s.write('GET ' + key + '\\n');
}).listen(appPort, '127.0.0.1');
`;

const httpTest = (n: number, appPort: number, key: string, body: string): string => `version: api.keploy.io/v1beta1
kind: Http
name: test-${n}
spec:
  req:
    method: GET
    proto_major: 1
    proto_minor: 1
    url: http://127.0.0.1:${appPort}/lookup?key=${key}
    header: {}
    body: ""
  resp:
    status_code: 200
    header:
      Content-Type: text/plain
    body: ${body}
`;

const lineMock = (n: number, key: string, value: string): string =>
  `version: api.keploy.io/v1beta1\nkind: Line\nname: mock-${n}\nspec:\n  key: ${key}\n  value: ${value}\n`;

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

describe.runIf(ebpf.run)('a non-HTTP protocol served through the redirect (real eBPF)', () => {
  it('serves Line mocks to the app in a cgroup: a hit, and a miss under the test it happened in', async () => {
    const root = fs.mkdtempSync(path.join(tmpdir(), 'tlsrec-seam-e2e-'));
    roots.push(root);
    const [appPort, linePort] = [await freePort(), await freePort()];
    const set = path.join(root, 'test-set-0');
    fs.mkdirSync(path.join(set, 'tests'), { recursive: true });
    fs.writeFileSync(path.join(set, 'tests/test-1.yaml'), httpTest(1, appPort, 'a', 'VALUE apple'));
    fs.writeFileSync(path.join(set, 'tests/test-2.yaml'), httpTest(2, appPort, 'zz', 'VALUE zebra'));
    fs.writeFileSync(path.join(set, 'mocks.yaml'), `${lineMock(0, 'a', 'apple')}---\n${lineMock(1, 'q', 'quince')}`);
    const appFile = path.join(root, 'app.cjs');
    fs.writeFileSync(appFile, APP);

    const protocols = [http1, lineProtocol];
    const sets = loadTestSets(root, { readers: docReaders(protocols) });
    expect(sets[0]!.protocolMocks!.map((m) => m.name)).toEqual(['mock-0', 'mock-1']);
    const config: Config = {
      file: undefined,
      command: undefined,
      appPort,
      healthUrl: undefined,
      readyTimeoutMs: 15_000,
      noise: [],
      passthrough: [],
      redactHeaders: [],
    };
    const result = await runTests({
      dir: root,
      command: [process.execPath, appFile, String(appPort), String(linePort)],
      appPort,
      mocks: true,
      reporters: [],
      out: new Writable({ write: (_c, _e, cb) => cb() }),
      config,
      testSetsLoaded: sets,
      handleSignals: false,
      protocols,
      reportDir: path.join(root, 'reports'),
    });

    const report = result.report.sets[0]!;
    expect(report.tests.map((t) => [t.name, t.passed])).toEqual([
      ['test-1', true],
      ['test-2', false],
    ]);
    expect(report.tests[0]!.mockMisses).toEqual([]);
    expect(report.tests[1]!.mockMisses).toEqual([
      {
        method: 'GET',
        url: 'line://plain/zz',
        closest: { mock: 'mock-0', field: 'key', detail: 'expected "a", got "zz"' },
      },
    ]);
    expect(report.tests[1]!.failures[0]!.actual).toContain('MISS no Line mock for GET zz');
    expect(report.mocks).toEqual({
      total: 2,
      served: [{ mock: 'mock-0', method: 'GET', url: 'line://plain/a' }],
      misses: report.tests[1]!.mockMisses,
      unused: ['mock-1'],
    });
    expect(result.mockMisses).toBe(1);
  });
});
