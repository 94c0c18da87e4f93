// End to end, as root: a process in a cgroup calls https://upstream.test:8443 (nothing listens
// there and the name does not exist); the cgroup redirect + mock DNS + run CA answer from mocks.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi, type TestContext } from 'vitest';
import type { BodyValue, Mock } from '../src/format/types.js';
import { Cgroup, argvInCgroup } from '../src/native/cgroup.js';
import { CGROUP_SOCK_ADDR_ATTACH_TYPES, cgroupAttachedProgramIds } from '../src/native/bpf-query.js';
import { startMockSession, type MockSession } from '../src/replay/mocks/index.js';

vi.setConfig({ testTimeout: 30_000 });

const requireEbpf = process.env.TLSREC_REQUIRE_EBPF === '1';
// A loopback port where nothing listens (some sandboxes answer any non-local address, so the
// "plain" upstream is on loopback: refused without the redirect, answered with it).
const freePort = await new Promise<number>((resolve) => {
  const srv = net.createServer().listen(0, '127.0.0.1', () => {
    const { port } = srv.address() as net.AddressInfo;
    srv.close(() => resolve(port));
  });
});
const plainUrl = `http://127.0.0.1:${freePort}/plain`;
const text = (s: string, kind: BodyValue['kind'] = 'text'): BodyValue => ({ bytes: Buffer.from(s), kind });
const mocks: Mock[] = [
  {
    file: 'mocks.yaml',
    name: 'mock-0',
    index: 0,
    request: {
      method: 'GET',
      scheme: 'https',
      host: 'upstream.test:8443',
      path: '/x',
      query: [],
      headers: [],
      body: text('', 'empty'),
    },
    response: {
      status: 200,
      statusMessage: 'OK',
      headers: [
        ['Content-Type', 'application/json'],
        ['Content-Encoding', 'gzip'],
      ],
      body: text('{"hello":"mock"}', 'json'),
    },
  },
  {
    file: 'mocks.yaml',
    name: 'mock-1',
    index: 1,
    request: {
      method: 'GET',
      scheme: 'http',
      host: `127.0.0.1:${freePort}`,
      path: '/plain',
      query: [],
      headers: [],
      body: text('', 'empty'),
    },
    response: {
      status: 200,
      statusMessage: 'OK',
      headers: [['Content-Type', 'text/plain']],
      body: text('plain answer'),
    },
  },
  {
    file: 'mocks.yaml',
    name: 'mock-2',
    index: 2,
    request: {
      method: 'GET',
      scheme: 'https',
      host: 'api.curl.test',
      path: '/c',
      query: [['a', '1']],
      headers: [],
      body: text('', 'empty'),
    },
    response: {
      status: 200,
      statusMessage: 'OK',
      headers: [['Content-Type', 'text/plain']],
      body: text('curl answer'),
    },
  },
];

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) {
    await c();
  }
}, 20_000);

function run(argv: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d));
    p.stderr.on('data', (d: Buffer) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function skipOrFail(ctx: TestContext, reason: string): void {
  if (requireEbpf) throw new Error(`eBPF required (TLSREC_REQUIRE_EBPF=1) but: ${reason}`);
  console.warn(`skipping mock redirect end-to-end test: ${reason}`);
  ctx.skip(reason);
}

/** A cgroup and a private temp dir for one test, both removed afterwards; undefined when skipped. */
function cgroupAndTmp(ctx: TestContext): { cgroup: Cgroup; tmp: string } | undefined {
  let cgroup: Cgroup;
  try {
    cgroup = Cgroup.create('mocks-e2e');
  } catch (err) {
    skipOrFail(ctx, `no cgroup: ${(err as Error).message}`);
    return undefined;
  }
  cleanups.push(async () => void (await cgroup.destroy()));
  const tmp = mkdtempSync(join(tmpdir(), 'mocks-e2e-'));
  cleanups.push(() => rmSync(tmp, { recursive: true, force: true }));
  return { cgroup, tmp };
}

describe('mock session end to end (root, eBPF)', () => {
  it('answers a cgroup process calling unreachable upstreams from mocks, and detaches at close', async (ctx) => {
    if (process.getuid?.() !== 0) return skipOrFail(ctx, 'not root');
    const setup = cgroupAndTmp(ctx);
    if (!setup) return;
    const { cgroup, tmp } = setup;

    const t0 = performance.now();
    let session: MockSession;
    try {
      session = await startMockSession({ mocks, cgroup, passthrough: [], tmpDir: tmp });
    } catch (err) {
      return skipOrFail(ctx, `redirect could not be attached: ${(err as Error).message}`);
    }
    console.log(`mock session started in ${(performance.now() - t0).toFixed(0)} ms`);
    cleanups.push(() => session.close());
    const env = { ...process.env, ...session.env };

    const script = `
      const r = await fetch('https://upstream.test:8443/x');
      const j = await r.json();
      const p = await (await fetch('${plainUrl}')).text();
      const miss = await fetch('https://upstream.test:8443/nope');
      console.log(JSON.stringify({ status: r.status, j, p, miss: miss.status, missText: await miss.text() }));
    `;
    const node = await run(argvInCgroup(cgroup, [process.execPath, '--input-type=module', '-e', script]), env);
    expect(node.stderr).toBe('');
    const out = JSON.parse(node.stdout) as { status: number; j: unknown; p: string; miss: number; missText: string };
    expect(out).toMatchObject({ status: 200, j: { hello: 'mock' }, p: 'plain answer', miss: 502 });
    expect(out.missText).toContain('no mock for GET https://upstream.test:8443/nope');

    // curl: glibc's resolver (connected UDP socket) and OpenSSL with CURL_CA_BUNDLE
    const curl = await run(
      argvInCgroup(cgroup, ['curl', '-sS', '--max-time', '10', 'https://api.curl.test/c?a=1']),
      env,
    );
    expect(curl.stderr).toBe('');
    expect(curl.stdout).toBe('curl answer');

    // UDP DNS from raw sockets: unconnected (sendmsg4) and connected (connect4); recvmsg4 must
    // show the reply as coming from the resolver that was asked.
    const udp = `
      import dgram from 'node:dgram';
      const q = Buffer.from('123401000001000000000000016104746573740000010001', 'hex');
      const ask = (connected) => new Promise((resolve) => {
        const s = dgram.createSocket('udp4');
        const t = setTimeout(() => { s.close(); resolve('timeout'); }, 3000);
        s.on('message', (m, rinfo) => { clearTimeout(t); s.close(); resolve(rinfo.address + ':' + rinfo.port + ' ' + m.subarray(m.length - 4).join('.')); });
        if (connected) s.connect(53, '192.0.2.53', () => s.send(q));
        else s.send(q, 53, '192.0.2.53');
      });
      console.log(JSON.stringify([await ask(false), await ask(true)]));
    `;
    const dnsOut = await run(argvInCgroup(cgroup, [process.execPath, '--input-type=module', '-e', udp]), env);
    expect(dnsOut.stderr).toBe('');
    expect(JSON.parse(dnsOut.stdout)).toEqual(['192.0.2.53:53 127.0.0.1', '192.0.2.53:53 127.0.0.1']);

    const report = session.report();
    expect(report.served.map((s) => s.mock)).toEqual(['mock-0', 'mock-1', 'mock-2']);
    expect(report.misses).toHaveLength(1);
    expect(report.unused).toEqual([]);

    // Python's ssl (OpenSSL, SSL_CERT_FILE) through glibc DNS; the mock answers again (reused)
    const py = await run(
      argvInCgroup(cgroup, [
        'python3',
        '-c',
        "import urllib.request; print(urllib.request.urlopen('https://api.curl.test/c?a=1', timeout=10).read().decode())",
      ]),
      env,
    );
    expect(py.stderr).toBe('');
    expect(py.stdout.trim()).toBe('curl answer');
    expect(session.report().served.at(-1)).toEqual({
      mock: 'mock-2',
      method: 'GET',
      url: 'https://api.curl.test/c?a=1',
      reused: true,
    });

    // tlsrec itself (not in the cgroup) is not redirected: nothing listens on 127.0.0.1:1
    const outside = await new Promise<string>((resolve) => {
      const s = net.connect(1, '127.0.0.1', () => {
        s.destroy();
        resolve('connected');
      });
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(outside).toBe('ECONNREFUSED');

    // Programs attached to the cgroup at any sock_addr hook: the redirect's while the session runs, none after.
    const attached = (): number[] =>
      Object.values(CGROUP_SOCK_ADDR_ATTACH_TYPES).flatMap((type) => cgroupAttachedProgramIds(cgroup.path, type));
    expect(attached().length).toBeGreaterThanOrEqual(3);
    await session.close();
    expect(attached()).toEqual([]);
    const after = await run(
      argvInCgroup(cgroup, [
        process.execPath,
        '-e',
        `fetch('${plainUrl}',{signal:AbortSignal.timeout(2000)}).then(()=>console.log('answered'),(e)=>console.log(e.cause?.code ?? 'failed'))`,
      ]),
      env,
    );
    expect(after.stdout.trim()).toBe('ECONNREFUSED');
  });
});

describe('mock session exceptions (root, eBPF)', () => {
  it('leaves the app port, passthrough destinations and tlsrec alone; redirects ::1', async (ctx) => {
    if (process.getuid?.() !== 0) return skipOrFail(ctx, 'not root');
    const real = (name: string): Promise<net.Server & { port: number }> =>
      new Promise((resolve) => {
        const srv = net.createServer((s) =>
          s.resume().end(`HTTP/1.1 200 OK\r\ncontent-length: ${name.length}\r\nconnection: close\r\n\r\n${name}`),
        );
        srv.listen(0, '127.0.0.1', () =>
          resolve(Object.assign(srv, { port: (srv.address() as net.AddressInfo).port })),
        );
      });
    const app = await real('real app');
    const db = await real('real db');
    const other = await real('real other');
    cleanups.push(() => new Promise<void>((r) => app.close(() => r())));
    cleanups.push(() => new Promise<void>((r) => db.close(() => r())));
    cleanups.push(() => new Promise<void>((r) => other.close(() => r())));

    const setup = cgroupAndTmp(ctx);
    if (!setup) return;
    const { cgroup, tmp } = setup;
    let session: MockSession;
    try {
      session = await startMockSession({
        mocks: [],
        cgroup,
        appPort: app.port,
        passthrough: [`127.0.0.1:${db.port}`, 'localhost:1'],
        tmpDir: tmp,
      });
    } catch (err) {
      return skipOrFail(ctx, `redirect could not be attached: ${(err as Error).message}`);
    }
    cleanups.push(() => session.close());
    const get = (url: string): string =>
      `await fetch('${url}').then(async (r) => r.status + ' ' + await r.text(), (e) => 'error ' + (e.cause?.code ?? e.message))`;
    const script = `console.log(JSON.stringify([
      ${get(`http://127.0.0.1:${app.port}/`)},
      ${get(`http://127.0.0.1:${db.port}/`)},
      ${get(`http://127.0.0.1:${other.port}/`)},
      ${get(`http://[::1]:${other.port}/v6`)},
    ]))`;
    const r = await run(argvInCgroup(cgroup, [process.execPath, '--input-type=module', '-e', script]), {
      ...process.env,
      ...session.env,
    });
    expect(r.stderr).toBe('');
    const [toApp, toDb, toOther, toV6] = JSON.parse(r.stdout) as string[];
    expect(toApp).toBe('200 real app');
    expect(toDb).toBe('200 real db');
    expect(toOther).toMatch(/^502 tlsrec: no mock for GET http:\/\/127\.0\.0\.1:\d+\/: there are no mocks/);
    expect(toV6).toMatch(/^502 tlsrec: no mock for GET http:\/\/\[::1\]:\d+\/v6/);
    await session.close();
  });
});
