// End-to-end: `tlsrec record` as a user runs it (the built CLI, as root), real eBPF, real TLS on
// loopback, real clients (node https.request and fetch, curl, python urllib). The written files are
// read back with the same reader `tlsrec test` uses.

import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadTestSets } from '../src/format/reader.js';
import type { Mock, TestSet } from '../src/format/types.js';
import { needsEbpf } from './helpers/env.js';
import {
  fixtureApp,
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
import { patternBytes, sha256 } from './helpers/bodies.js';
import { readEventFile } from '../src/record/event-file.js';
import type { CaptureEvent } from '../src/model/events.js';
import type { HttpExchange as Exchange } from '../src/model/exchange.js';
import { Reconstructor } from '../src/record/reconstruct.js';

const ebpf = needsEbpf();

function loadOnly(dir: string): TestSet {
  const sets = loadTestSets(join(dir, 'tlsrec'));
  expect(sets).toHaveLength(1);
  return sets[0]!;
}

function mockPathAndQuery(m: Mock): string {
  const q = m.request.query.map(([k, v]) => `${k}=${v}`).join('&');
  return q ? `${m.request.path}?${q}` : m.request.path;
}

describe.runIf(ebpf.run)('tlsrec record (real eBPF)', () => {
  let upstream: { url: string; proc: Started };
  let work: string;

  beforeAll(async () => {
    upstream = await startUpstream();
  });
  afterAll(async () => {
    await stopAll();
  });
  /** Every directory newWorkDir made in the test (some tests record twice). */
  let workDirs: string[] = [];
  afterEach(() => {
    for (const d of workDirs) rmSync(d, { recursive: true, force: true });
    workDirs = [];
  });

  function newWorkDir(): string {
    work = mkdtempSync(join(tmpdir(), 'tlsrec-e2e-'));
    workDirs.push(work);
    return work;
  }

  function record(args: string[], env: NodeJS.ProcessEnv = {}): Started {
    return start('node', [tlsrecBin, 'record', '-q', ...args], { cwd: work, env });
  }

  it('records the fixture app: incoming requests become tests, HTTPS upstream calls (https.request and fetch) become mocks', async () => {
    newWorkDir();
    const port = await freePort();
    const rec = record(['--', 'node', fixtureApp], {
      PORT: String(port),
      UPSTREAM_URL: upstream.url,
      NODE_EXTRA_CA_CERTS: fixtureCa,
    });
    const base = `http://127.0.0.1:${port}`;
    await waitForHttp(`${base}/health`);

    const quote = await (await fetch(`${base}/quote?sym=ACME`)).json();
    const orderRes = await fetch(`${base}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer secret-token-123' },
      body: JSON.stringify({ item: 'pen', qty: 2 }),
    });
    const order = (await orderRes.json()) as { order: unknown };
    const gz = (await (await fetch(`${base}/gzip`)).json()) as { upstream: unknown };
    expect(quote).toEqual({ symbol: 'ACME', price: 27.8, note: 'fresh' });

    rec.child.kill('SIGINT');
    expect(await rec.exited).toBe(0);

    const set = loadOnly(work);
    const tests = set.tests.map(
      (t) => `${t.request.method} ${new URL(t.request.url).pathname}${new URL(t.request.url).search}`,
    );
    expect(tests).toEqual(['GET /health', 'GET /quote?sym=ACME', 'POST /orders', 'GET /gzip']);

    const quoteTest = set.tests[1]!;
    expect(quoteTest.expected.status).toBe(200);
    expect(JSON.parse(quoteTest.expected.body.bytes.toString())).toEqual(quote);
    const orderTest = set.tests[2]!;
    expect(orderTest.expected.status).toBe(201);
    expect(JSON.parse(orderTest.expected.body.bytes.toString())).toEqual(order);
    expect(JSON.parse(orderTest.request.body.bytes.toString())).toEqual({ item: 'pen', qty: 2 });
    // Secrets are redacted by default.
    const auth = orderTest.request.headers.find(([n]) => n.toLowerCase() === 'authorization');
    expect(auth?.[1]).not.toContain('secret-token-123');
    const raw = readFileSync(join(set.dir, 'tests', 'test-3.yaml'), 'utf8');
    expect(raw).not.toContain('secret-token-123');
    expect(raw.split('\n')[0]).toMatch(/^# yaml-language-server: \$schema=/);

    const mocks = set.mocks.map(
      (m) => `${m.request.method} ${m.request.scheme}://${m.request.host}${mockPathAndQuery(m)}`,
    );
    const host = new URL(upstream.url).host;
    expect(mocks).toEqual([
      `GET https://${host}/quote?sym=ACME`,
      `POST https://${host}/orders`,
      `GET https://${host}/gzip`,
    ]);
    expect(JSON.parse(set.mocks[0]!.response.body.bytes.toString())).toEqual({
      symbol: 'ACME',
      price: 27.8,
      currency: 'EUR',
      source: 'upstream',
    });
    expect(JSON.parse(set.mocks[1]!.response.body.bytes.toString())).toEqual(order.order);
    // gzip from the upstream is stored decoded; the encoding is remembered in the headers.
    expect(JSON.parse(set.mocks[2]!.response.body.bytes.toString())).toEqual(gz.upstream);
    expect(
      set.mocks[2]!.response.headers.some(([n, v]) => n.toLowerCase() === 'content-encoding' && v === 'gzip'),
    ).toBe(true);

    const config = readFileSync(join(work, 'tlsrec.yaml'), 'utf8');
    expect(config).toContain(`appPort: ${port}`);
  });

  it('records curl (libssl.so.3) and exits with its exit code', async () => {
    newWorkDir();
    const rec = record(['--', 'curl', '-sS', '--cacert', fixtureCa, `${upstream.url}/quote?sym=CURL`]);
    expect(await rec.exited).toBe(0);
    const set = loadOnly(work);
    expect(set.tests).toHaveLength(0);
    expect(set.mocks).toHaveLength(1);
    expect(mockPathAndQuery(set.mocks[0]!)).toBe('/quote?sym=CURL');
    expect(JSON.parse(set.mocks[0]!.response.body.bytes.toString()).symbol).toBe('CURL');

    newWorkDir();
    const failing = record([
      '--',
      'curl',
      '-sS',
      '--cacert',
      fixtureCa,
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--fail',
      `${upstream.url}/nope`,
    ]);
    expect(await failing.exited).toBe(22); // curl --fail on a 404
  });

  it('records python3 urllib (SSL_read_ex/SSL_write_ex)', async () => {
    newWorkDir();
    const script = `import urllib.request,sys; r=urllib.request.urlopen(sys.argv[1]); print(r.read().decode())`;
    const rec = record(['--', 'python3', '-c', script, `${upstream.url}/quote?sym=PY`], { SSL_CERT_FILE: fixtureCa });
    expect(await rec.exited).toBe(0);
    const set = loadOnly(work);
    expect(set.mocks.map(mockPathAndQuery)).toEqual(['/quote?sym=PY']);
    expect(JSON.parse(set.mocks[0]!.response.body.bytes.toString())).toMatchObject({
      symbol: 'PY',
      source: 'upstream',
    });
  });

  it('captures a 5 MB response body byte-exact', async () => {
    newWorkDir();
    const size = 5 * 1024 * 1024;
    const rec = record([
      '--',
      'curl',
      '-sS',
      '--cacert',
      fixtureCa,
      '-o',
      '/dev/null',
      `${upstream.url}/big?size=${size}`,
    ]);
    expect(await rec.exited).toBe(0);
    const set = loadOnly(work);
    expect(set.mocks).toHaveLength(1);
    const body = set.mocks[0]!.response.body.bytes;
    expect(body.length).toBe(size);
    expect(sha256(body)).toBe(sha256(patternBytes(size)));
  });

  it('--dump-events writes the raw capture events, and they reconstruct to what was recorded', async () => {
    newWorkDir();
    const size = 1024 * 1024;
    const dumpFile = join(work, 'events.jsonl');
    const rec = record([
      '--dump-events',
      dumpFile,
      '--',
      'curl',
      '-sS',
      '--cacert',
      fixtureCa,
      '-o',
      '/dev/null',
      `${upstream.url}/big?size=${size}`,
    ]);
    expect(await rec.exited).toBe(0);
    const events: CaptureEvent[] = [];
    for await (const ev of readEventFile(dumpFile)) events.push(ev);
    expect(events.some((ev) => ev.type === 'exec')).toBe(true);
    expect(events.some((ev) => ev.type === 'open' && ev.role === 'connect')).toBe(true);
    const tlsIn = events.reduce(
      (n, ev) => n + (ev.type === 'data' && ev.source === 'tls' && ev.dir === 'in' ? ev.data.length : 0),
      0,
    );
    expect(tlsIn).toBeGreaterThan(size); // the body and the response head
    const exchanges: Exchange[] = [];
    const reconstructor = new Reconstructor({ onExchange: (ex) => exchanges.push(ex as Exchange) });
    for (const ev of events) reconstructor.push(ev);
    reconstructor.finish();
    expect(exchanges).toHaveLength(1);
    const mock = loadOnly(work).mocks[0]!;
    expect(sha256(exchanges[0]!.response.body)).toBe(sha256(mock.response.body.bytes));
    expect(sha256(mock.response.body.bytes)).toBe(sha256(patternBytes(size)));
  });

  it('a small ring buffer wraps without corrupting records (10 MiB through a 4 MiB ring)', async () => {
    newWorkDir();
    const size = 10 * 1024 * 1024;
    // Rate-limited so that the drain keeps up (curl's limit is bursty; 1 MiB rings lost data at
    // 25M/s): this checks records that wrap around the end of the ring, not losses.
    const rec = record([
      '--ringbuf',
      '4M',
      '--',
      'curl',
      '-sS',
      '--limit-rate',
      '20M',
      '--cacert',
      fixtureCa,
      '-o',
      '/dev/null',
      `${upstream.url}/big?size=${size}`,
    ]);
    expect(await rec.exited).toBe(0);
    const set = loadOnly(work);
    expect(set.mocks).toHaveLength(1);
    expect(sha256(set.mocks[0]!.response.body.bytes)).toBe(sha256(patternBytes(size)));
  });

  it('records 200 sequential keep-alive requests and 50 concurrent connections exactly once each, in order', async () => {
    newWorkDir();
    const client = join(repoRoot, 'fixtures', 'clients', 'https-load.mjs');
    const rec = record(
      [
        '--',
        'sh',
        '-c',
        `node ${client} ${upstream.url}/quote?sym=SEQ 200 1 1 && node ${client} ${upstream.url}/quote?sym=PAR 50 50 50`,
      ],
      {
        NODE_EXTRA_CA_CERTS: fixtureCa,
      },
    );
    expect(await rec.exited).toBe(0);
    const set = loadOnly(work);
    const seq = set.mocks.filter((m) => m.request.query.some(([k, v]) => k === 'sym' && v === 'SEQ'));
    const par = set.mocks.filter((m) => m.request.query.some(([k, v]) => k === 'sym' && v === 'PAR'));
    const index = (m: Mock) => Number(m.request.query.find(([k]) => k === 'i')![1]);
    expect(seq.map(index)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(new Set(par.map(index)).size).toBe(50);
    expect(par).toHaveLength(50);
    expect(set.mocks).toHaveLength(250);
  });

  it('does not record a TLS client running outside the recorded command', async () => {
    newWorkDir();
    const client = join(repoRoot, 'fixtures', 'clients', 'https-load.mjs');
    const outside = start('node', [client, `${upstream.url}/quote?sym=OUTSIDE`, '40', '2'], {
      env: { NODE_EXTRA_CA_CERTS: fixtureCa },
    });
    const rec = record(['--', 'node', client, `${upstream.url}/quote?sym=INSIDE`, '40', '2'], {
      NODE_EXTRA_CA_CERTS: fixtureCa,
    });
    expect(await rec.exited).toBe(0);
    expect(await outside.exited).toBe(0);
    const set = loadOnly(work);
    const syms = new Set(set.mocks.map((m) => m.request.query.find(([k]) => k === 'sym')?.[1]));
    expect([...syms]).toEqual(['INSIDE']);
    expect(set.mocks).toHaveLength(40);
  });

  it('SIGINT while requests are in flight: every completed exchange is on disk and the files parse', async () => {
    newWorkDir();
    const port = await freePort();
    const rec = record(['--', 'node', fixtureApp], {
      PORT: String(port),
      UPSTREAM_URL: upstream.url,
      NODE_EXTRA_CA_CERTS: fixtureCa,
    });
    const base = `http://127.0.0.1:${port}`;
    await waitForHttp(`${base}/health`);
    let completed = 0;
    let stop = false;
    const loops = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        try {
          const res = await fetch(`${base}/quote?sym=W${w}N${i}`);
          await res.arrayBuffer();
          if (!stop) completed++;
        } catch {
          return; // the app went away
        }
      }
    });
    await new Promise((r) => setTimeout(r, 1500));
    const completedBeforeSignal = completed;
    stop = true;
    rec.child.kill('SIGINT');
    await Promise.all(loops);
    expect(await rec.exited).toBe(0);
    expect(completedBeforeSignal).toBeGreaterThan(10);
    const set = loadOnly(work); // throws if any file does not parse
    const quoteTests = set.tests.filter((t) => t.request.url.includes('/quote'));
    expect(quoteTests.length).toBeGreaterThanOrEqual(completedBeforeSignal);
    for (const t of quoteTests) expect(JSON.parse(t.expected.body.bytes.toString())).toHaveProperty('price');
    expect(existsSync(join(set.dir, 'mocks.yaml'))).toBe(true);
  });

  it('tells what to do when the command does not exist (exit 3, no stack trace)', async () => {
    newWorkDir();
    const res = await run('node', [tlsrecBin, 'record', '--', 'definitely-not-a-command-xyz'], { cwd: work });
    expect(res.code).toBe(3);
    expect(res.output).toContain('command not found: definitely-not-a-command-xyz');
    expect(res.output).not.toMatch(/\n\s+at /);
  });

  it('as a non-root user: exit 3 with what to run instead, no stack trace', async () => {
    newWorkDir();
    const res = await run(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        'node',
        tlsrecBin,
        'record',
        '--',
        'curl',
        'https://x.test/',
      ],
      {
        cwd: '/',
      },
    );
    expect(res.code).toBe(3);
    expect(res.output).toContain('recording needs root');
    expect(res.output).toMatch(/try: run it as root: sudo tlsrec record -- curl/);
    expect(res.output).toContain('TLSREC_E_PRIVILEGES');
    expect(res.output).not.toMatch(/\n\s+at /);
  });

  it('bad usage exits 2', async () => {
    newWorkDir();
    const res = await run('node', [tlsrecBin, 'record'], { cwd: work });
    expect(res.code).toBe(2);
    expect(res.output).toMatch(/missing required argument/);
  });
});
