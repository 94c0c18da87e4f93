// End-to-end: `tlsrec record` (the built CLI, as root, real eBPF) of apps that speak HTTP/2 and gRPC:
// curl (default and --http2) and node's http2 module against an HTTPS upstream offering ALPN h2,
// node's http2 over h2c, a @grpc/grpc-js client (mocks), and a gRPC server (tests).

import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as http2 from 'node:http2';
import { parseAllDocuments } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { needsEbpf } from './helpers/env.js';
import {
  fixtureCa,
  freePort,
  repoRoot,
  start,
  stopAll,
  tlsrecBin,
  waitForOutput,
  type Started,
} from './helpers/procs.js';
import { shopClient } from './helpers/grpc-shop.js';
import { h2cUpgradeServerScript, startH2cUpgradeServer } from './helpers/h2c-upgrade-server.js';

const ebpf = needsEbpf();

interface Doc {
  kind: string;
  name: string;
  connectionId?: string;
  // biome-ignore lint/suspicious/noExplicitAny: YAML read back for assertions; any keeps the paths short
  spec: Record<string, any>;
}

function setDir(work: string): string {
  const root = join(work, 'tlsrec');
  const sets = readdirSync(root).filter((d) => d.startsWith('test-set-'));
  expect(sets).toHaveLength(1);
  return join(root, sets[0]!);
}

function mocksOf(work: string): Doc[] {
  const file = join(setDir(work), 'mocks.yaml');
  if (!existsSync(file)) return [];
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Doc);
}

function testsOf(work: string): Doc[] {
  const dir = join(setDir(work), 'tests');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
    .map((f) => parseAllDocuments(readFileSync(join(dir, f), 'utf8'))[0]!.toJS() as Doc);
}

describe.runIf(ebpf.run)('tlsrec record of HTTP/2 and gRPC (real eBPF)', () => {
  let upstream: Started;
  let h2Url: string;
  let h2cUrl: string;
  let grpcAddr: string;
  let work: string;
  const workDirs: string[] = [];

  beforeAll(async () => {
    upstream = start('node', [join(repoRoot, 'fixtures', 'upstream', 'h2-server.mjs'), '--host', '127.0.0.2']);
    h2Url = (await waitForOutput(upstream, /h2 listening (https:\/\/\S+)/))[1]!;
    h2cUrl = (await waitForOutput(upstream, /h2c listening (http:\/\/\S+)/))[1]!;
    grpcAddr = (await waitForOutput(upstream, /grpc listening (\S+)/))[1]!;
  });
  afterAll(async () => {
    await stopAll();
  });
  afterEach(() => {
    for (const d of workDirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  function newWorkDir(): string {
    work = mkdtempSync(join(tmpdir(), 'tlsrec-h2-e2e-'));
    workDirs.push(work);
    return work;
  }

  async function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; output: string }> {
    const p = start('node', [tlsrecBin, ...args], { cwd: work, env: { NO_COLOR: '1', ...env } });
    const code = await p.exited;
    return { code, output: p.output() };
  }

  async function recordCommand(cmd: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
    newWorkDir();
    const rec = start('node', [tlsrecBin, 'record', '-q', '--', ...cmd], { cwd: work, env });
    const code = await rec.exited;
    expect(code, rec.output()).toBe(0);
    return rec.output();
  }

  for (const [name, flags] of [
    ['curl as it comes', []],
    ['curl --http2', ['--http2']],
  ] as const) {
    it(`${name}: ALPN h2 to an HTTPS upstream is recorded as a kind: Http mock with proto_major 2`, async () => {
      const out = await recordCommand([
        'curl',
        '-sS',
        ...flags,
        '--cacert',
        fixtureCa,
        `${h2Url}/quote?sym=CURL`,
        '-H',
        'x-from: curl',
      ]);
      expect(out).toContain('"via":"h2"');
      const mocks = mocksOf(work);
      expect(
        mocks.map((m) => [m.kind, m.spec.req.method, m.spec.req.proto_major, m.spec.req.url, m.spec.resp.status_code]),
      ).toEqual([['Http', 'GET', 2, `${h2Url}/quote?sym=CURL`, 200]]);
      expect(mocks[0]!.spec.req.header['x-from']).toBe('curl');
      expect(JSON.parse(mocks[0]!.spec.resp.body)).toEqual({ symbol: 'CURL', price: 31.8, currency: 'EUR', via: 'h2' });
    });
  }

  it('node http2 over TLS: concurrent streams on one connection become separate, correct mocks', async () => {
    await recordCommand(['node', join(repoRoot, 'fixtures', 'clients', 'h2-client.mjs'), h2Url, '8'], {
      NODE_EXTRA_CA_CERTS: fixtureCa,
    });
    const mocks = mocksOf(work);
    expect(mocks).toHaveLength(9);
    const quotes = mocks.filter((m) => m.spec.req.url.includes('/quote'));
    expect(quotes.map((m) => new URL(m.spec.req.url).searchParams.get('sym')).sort()).toEqual([
      'S0',
      'S1',
      'S2',
      'S3',
      'S4',
      'S5',
      'S6',
      'S7',
    ]);
    for (const m of quotes) {
      const sym = new URL(m.spec.req.url).searchParams.get('sym')!;
      expect(m.spec.req.proto_major).toBe(2);
      expect(JSON.parse(m.spec.resp.body)).toEqual({
        symbol: sym,
        price: 27.8 + sym.length,
        currency: 'EUR',
        via: 'h2',
      });
    }
    const order = mocks.find((m) => m.spec.req.method === 'POST')!;
    expect(JSON.parse(order.spec.req.body)).toEqual({ item: 'pen', qty: 2 });
    expect(order.spec.resp.status_code).toBe(201);
    expect(new Set(mocks.map((m) => m.connectionId)).size).toBe(1);
  });

  it('node http2 over h2c (prior knowledge, plaintext socket) is recorded too', async () => {
    await recordCommand(['node', join(repoRoot, 'fixtures', 'clients', 'h2-client.mjs'), h2cUrl, '3']);
    const mocks = mocksOf(work);
    expect(
      mocks.map((m) => [m.spec.req.method, new URL(m.spec.req.url).pathname, m.spec.resp.status_code]).sort(),
    ).toEqual([
      ['GET', '/quote', 200],
      ['GET', '/quote', 200],
      ['GET', '/quote', 200],
      ['POST', '/orders', 201],
    ]);
    expect(mocks.every((m) => m.spec.req.url.startsWith('http://') && m.spec.req.proto_major === 2)).toBe(true);
  });

  it('curl --http2 on http:// (Upgrade: h2c, 101, then HTTP/2) is recorded as one proto_major 2 mock', async () => {
    const upgrade = await startH2cUpgradeServer('127.0.0.2');
    try {
      const url = `http://127.0.0.2:${upgrade.port}/hello?name=curl`;
      const out = await recordCommand(['curl', '-sS', '--http2', '-H', 'x-from: curl', url]);
      expect(out).toContain('"over":"h2c-upgrade"');
      const mocks = mocksOf(work);
      expect(
        mocks.map((m) => [m.kind, m.spec.req.method, m.spec.req.proto_major, m.spec.req.url, m.spec.resp.status_code]),
      ).toEqual([['Http', 'GET', 2, url, 200]]);
      expect(mocks[0]!.spec.req.header['x-from']).toBe('curl');
      expect(mocks[0]!.spec.req.header.Upgrade ?? mocks[0]!.spec.req.header.upgrade).toBeUndefined();
      expect(mocks[0]!.spec.resp.header['x-upgraded']).toBe('yes');
      expect(JSON.parse(mocks[0]!.spec.resp.body)).toEqual({
        method: 'GET',
        path: '/hello?name=curl',
        over: 'h2c-upgrade',
      });
    } finally {
      await upgrade.close();
    }
  });

  it('an app that accepts Upgrade: h2c: curl --http2 from outside becomes one proto_major 2 test', async () => {
    newWorkDir();
    const port = await freePort();
    const rec = start('node', [tlsrecBin, 'record', '-q', '--', 'node', h2cUpgradeServerScript], {
      cwd: work,
      env: { PORT: String(port) },
    });
    await waitForOutput(rec, /h2c-upgrade listening/);
    const curl = start('curl', ['-sS', '--http2', '-H', 'x-from: outside', `http://127.0.0.1:${port}/hello?name=app`]);
    expect(await curl.exited, curl.output()).toBe(0);
    expect(curl.output()).toContain('"over":"h2c-upgrade"');
    await new Promise((r) => setTimeout(r, 300));
    rec.child.kill('SIGINT');
    expect(await rec.exited, rec.output()).toBe(0);
    const tests = testsOf(work);
    expect(
      tests.map((t) => [
        t.kind,
        t.spec.req.method,
        t.spec.req.proto_major,
        new URL(t.spec.req.url).pathname,
        t.spec.resp.status_code,
        t.spec.resp.header['x-upgraded'],
      ]),
    ).toEqual([['Http', 'GET', 2, '/hello', 200, 'yes']]);
    expect(tests[0]!.spec.req.header['x-from']).toBe('outside');
  });

  it('a @grpc/grpc-js client: kind: gRPC mocks with service, method, messages and status', async () => {
    const out = await recordCommand(['node', join(repoRoot, 'fixtures', 'clients', 'grpc-client.mjs'), grpcAddr]);
    expect(out).toContain('"code":5');
    const mocks = mocksOf(work);
    expect(mocks.map((m) => [m.kind, m.spec.service, m.spec.method])).toEqual([
      ['gRPC', 'shop.v1.Prices', 'GetPrice'],
      ['gRPC', 'shop.v1.Prices', 'GetPrice'],
    ]);
    const [ok, nf] = mocks;
    expect(ok!.spec.grpcReq.headers.ordinary_headers['x-tenant']).toBe('acme');
    expect(ok!.spec.grpcReq.body.decoded_data).toBe('1: "book-1"\n2: 2');
    expect(ok!.spec.grpcResp.body.decoded_data).toMatch(/^1: "book-1"\n2: 3998\n3: "EUR"\n4: "book"\n4: "paper"\n5 \{/);
    expect(ok!.spec.grpcResp.trailers.ordinary_headers['grpc-status']).toBe('0');
    expect(nf!.spec.grpcResp.trailers.ordinary_headers['grpc-status']).toBe('5');
    expect(nf!.spec.grpcResp.body.message_length).toBe(0);
  });

  it('a gRPC server as the app: its calls become kind: gRPC tests (a unary call and an error status)', async () => {
    newWorkDir();
    const port = await freePort();
    const rec = start(
      'node',
      [tlsrecBin, 'record', '-q', '--', 'node', join(repoRoot, 'fixtures', 'app', 'grpc-server.mjs')],
      { cwd: work, env: { PORT: String(port) } },
    );
    await waitForOutput(rec, /grpc app listening/);
    const client = shopClient(port);
    expect((await client.getPrice({ sku: 'book-9', quantity: 3 }, { 'x-tenant': 'acme' })).reply?.cents).toBe('5997');
    expect((await client.getPrice({ sku: 'missing', quantity: 1 })).code).toBe(5);
    client.close();
    await new Promise((r) => setTimeout(r, 300));
    rec.child.kill('SIGINT');
    expect(await rec.exited, rec.output()).toBe(0);
    const tests = testsOf(work);
    expect(
      tests.map((t) => [
        t.kind,
        t.spec.service,
        t.spec.method,
        t.spec.grpcResp.trailers.ordinary_headers['grpc-status'],
      ]),
    ).toEqual([
      ['gRPC', 'shop.v1.Prices', 'GetPrice', '0'],
      ['gRPC', 'shop.v1.Prices', 'GetPrice', '5'],
    ]);
    expect(tests[0]!.spec.grpcReq.body.decoded_data).toBe('1: "book-9"\n2: 3');
    expect(tests[0]!.spec.grpcResp.body.decoded_data).toMatch(/^1: "book-9"\n2: 5997\n3: "EUR"/);
  });

  it('replay: an app whose upstreams are HTTP/2 (ALPN h2) and gRPC passes offline from its mocks', async () => {
    newWorkDir();
    const port = await freePort();
    const appEnv = { PORT: String(port), UPSTREAM_H2: h2Url, GRPC_ADDR: grpcAddr, NODE_EXTRA_CA_CERTS: fixtureCa };
    const app = join(repoRoot, 'fixtures', 'app', 'h2-app.mjs');
    const rec = start('node', [tlsrecBin, 'record', '-q', '--', 'node', app], { cwd: work, env: appEnv });
    await waitForOutput(rec, /h2 app listening/);
    const base = `http://127.0.0.1:${port}`;
    expect(await (await fetch(`${base}/health`)).text()).toBe('ok');
    expect(await (await fetch(`${base}/quote?sym=AB`)).json()).toEqual({
      quote: { symbol: 'AB', price: 29.8, currency: 'EUR', via: 'h2' },
    });
    expect(
      ((await (await fetch(`${base}/price?sku=book-1&q=2`)).json()) as { reply: { cents: string } }).reply.cents,
    ).toBe('3998');
    expect(await (await fetch(`${base}/price?sku=missing`)).json()).toEqual({
      code: 5,
      details: 'no such sku: missing',
    });
    await new Promise((r) => setTimeout(r, 300));
    rec.child.kill('SIGINT');
    expect(await rec.exited, rec.output()).toBe(0);
    const mocks = mocksOf(work);
    expect(mocks.map((m) => m.kind).sort()).toEqual(['Http', 'gRPC', 'gRPC']);

    // Every outgoing call is redirected to the mock server and answered from the mocks, all of them used.
    const res = await run(['test', '--app-port', String(port), '--', 'node', app], appEnv);
    expect(res.output).toMatch(/4 passed/);
    expect(res.output).not.toMatch(/not used/);
    expect(res.code, res.output).toBe(0);
  });

  it('replay: a plain HTTP/2 (h2c) app recorded as tests is replayed over HTTP/2; a changed field fails by name', async () => {
    newWorkDir();
    const port = await freePort();
    const app = join(repoRoot, 'fixtures', 'app', 'h2c-server.mjs');
    const rec = start('node', [tlsrecBin, 'record', '-q', '--', 'node', app], {
      cwd: work,
      env: { PORT: String(port) },
    });
    await waitForOutput(rec, /h2c app listening/);
    // The client is this test process, outside the recorded cgroup: only the app's side is captured.
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const ask = (headers: http2.OutgoingHttpHeaders, body?: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = session.request(headers);
        let status = 0;
        const chunks: Buffer[] = [];
        req.on('response', (h) => (status = Number(h[':status'])));
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString() }));
        req.on('error', reject);
        req.end(body);
      });
    expect(await ask({ ':path': '/hello?name=ada' })).toEqual({
      status: 200,
      body: '{"greeting":"hello","name":"ada"}',
    });
    expect(await ask({ ':method': 'POST', ':path': '/echo', 'content-type': 'text/plain' }, 'ping')).toEqual({
      status: 201,
      body: 'echo: ping',
    });
    session.close();
    await new Promise((r) => setTimeout(r, 300));
    rec.child.kill('SIGINT');
    expect(await rec.exited, rec.output()).toBe(0);
    const tests = testsOf(work);
    expect(
      tests.map((t) => [
        t.kind,
        t.spec.req.method,
        t.spec.req.proto_major,
        t.spec.resp.status_code,
        t.spec.resp.header['x-served-over'],
      ]),
    ).toEqual([
      ['Http', 'GET', 2, 200, 'HTTP/2.0'],
      ['Http', 'POST', 2, 201, 'HTTP/2.0'],
    ]);

    // The app speaks nothing but HTTP/2: these pass only when replayed over HTTP/2.
    const pass = await run(['test', '--app-port', String(port), '--', 'node', app], { PORT: String(port) });
    expect(pass.output).toMatch(/2 passed/);
    expect(pass.code, pass.output).toBe(0);
    const changed = await run(['test', '--app-port', String(port), '--', 'node', app], {
      PORT: String(port),
      GREETING: 'howdy',
    });
    expect(changed.code, changed.output).toBe(1);
    expect(changed.output).toMatch(/1 passed/);
    expect(changed.output).toContain('greeting');
    expect(changed.output).toContain('hello');
    expect(changed.output).toContain('howdy');
  });

  it('replay: a gRPC server recorded as tests (--proto) passes, and a changed field fails naming it', async () => {
    newWorkDir();
    const port = await freePort();
    const app = join(repoRoot, 'fixtures', 'app', 'grpc-server.mjs');
    const protoDir = join(repoRoot, 'fixtures', 'proto');
    const rec = start('node', [tlsrecBin, 'record', '-q', '--proto', protoDir, '--', 'node', app], {
      cwd: work,
      env: { PORT: String(port) },
    });
    await waitForOutput(rec, /grpc app listening/);
    const client = shopClient(port);
    await client.getPrice({ sku: 'book-9', quantity: 3 });
    await client.getPrice({ sku: 'missing', quantity: 1 });
    client.close();
    await new Promise((r) => setTimeout(r, 300));
    rec.child.kill('SIGINT');
    expect(await rec.exited, rec.output()).toBe(0);

    // the .proto directory is remembered, and the messages are written as JSON too
    expect(readFileSync(join(work, 'tlsrec.yaml'), 'utf8')).toContain(`proto:\n  - ${protoDir}\n`);
    const tests = testsOf(work);
    expect(tests[0]!.spec.grpcResp.body.decoded_json).toEqual({
      sku: 'book-9',
      cents: '5997',
      currency: 'EUR',
      tags: ['book'],
      detail: { in_stock: true, weight: 0.25 },
    });

    const pass = await run(['test', '--app-port', String(port), '--', 'node', app], { PORT: String(port) });
    expect(pass.code, pass.output).toBe(0);
    const changed = await run(['test', '--app-port', String(port), '--', 'node', app], {
      PORT: String(port),
      SHOP_CURRENCY: 'USD',
    });
    expect(changed.code, changed.output).toBe(1);
    expect(changed.output).toContain('$.currency');
    expect(changed.output).toContain('"EUR"');
    expect(changed.output).toContain('"USD"');
  });
});
