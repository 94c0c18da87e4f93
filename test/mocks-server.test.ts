import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

vi.setConfig({ testTimeout: 10_000 });
import type { BodyValue, Mock } from '../src/format/types.js';
import { createRunCa, type RunCa } from '../src/replay/mocks/ca.js';
import { MockMatcher } from '../src/replay/mocks/matcher.js';
import { startMockServer, type MockServer } from '../src/replay/mocks/server.js';

const text = (s: string, kind: BodyValue['kind'] = s === '' ? 'empty' : 'text'): BodyValue => ({
  bytes: Buffer.from(s),
  kind,
});

function mock(index: number, req: Partial<Mock['request']>, resp: Partial<Mock['response']> = {}): Mock {
  return {
    file: 'mocks.yaml',
    name: `mock-${index}`,
    index,
    request: {
      method: 'GET',
      scheme: 'https',
      host: 'api.test',
      path: '/',
      query: [],
      headers: [],
      body: text(''),
      ...req,
    },
    response: {
      status: 200,
      statusMessage: 'OK',
      headers: [['Content-Type', 'text/plain']],
      body: text(`answer ${index}`),
      ...resp,
    },
  };
}

const mocks: Mock[] = [
  mock(0, { scheme: 'http', host: 'plain.test', path: '/a', query: [['q', '1']] }),
  mock(
    1,
    { path: '/sni' },
    {
      headers: [
        ['Content-Type', 'text/plain'],
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
        ['Transfer-Encoding', 'chunked'],
      ],
    },
  ),
  mock(2, { host: '10.1.2.3:8443', path: '/ip' }),
  mock(
    3,
    { path: '/gz' },
    {
      headers: [
        ['Content-Type', 'application/json'],
        ['Content-Encoding', 'gzip'],
        ['Content-Length', '999'],
      ],
      body: text('{"ok":true}', 'json'),
    },
  ),
  mock(
    4,
    { scheme: 'http', host: 'plain.test', method: 'POST', path: '/big', body: text('x'.repeat(200_000)) },
    { status: 201, statusMessage: 'Created' },
  ),
  mock(5, { scheme: 'http', host: 'plain.test', path: '/k' }),
  mock(6, { scheme: 'http', host: 'plain.test', path: '/k' }, { body: text('second') }),
];

let ca: RunCa;
let matcher: MockMatcher;
let server: MockServer;
const missLog: string[] = [];

beforeAll(async () => {
  ca = createRunCa({ tmpDir: tmpdir(), hosts: mocks.map((m) => m.request.host) });
  matcher = new MockMatcher(mocks);
  server = await startMockServer({ matcher, ca, onMiss: (m) => missLog.push(m) });
});
afterAll(async () => {
  await server?.close();
  ca?.close();
});

interface Got {
  status: number;
  statusMessage: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  socketPort: number | undefined;
}

function collect(req: http.ClientRequest, body?: Buffer | string[]): Promise<Got> {
  return new Promise((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          statusMessage: res.statusMessage!,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: Buffer.concat(chunks),
          socketPort: res.socket?.localPort,
        }),
      );
    });
    if (Array.isArray(body)) {
      // write the body in pieces with pauses, so it reaches the server in several reads
      (async () => {
        for (const piece of body) {
          req.write(piece);
          await new Promise((r) => setTimeout(r, 5));
        }
        req.end();
      })().catch(reject);
    } else req.end(body);
  });
}

describe('mock server', () => {
  it('answers plain HTTP from the Host header', async () => {
    const r = await collect(
      http.request({ host: '127.0.0.1', port: server.port, path: '/a?q=1', headers: { host: 'plain.test' } }),
    );
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('answer 0');
    expect(r.headers['content-length']).toBe('8');
  });

  it('answers HTTPS with a certificate for the SNI, trusted through the run CA', async () => {
    const r = await collect(
      https.request({
        host: '127.0.0.1',
        port: server.port,
        servername: 'api.test',
        path: '/sni',
        ca: ca.caPem,
        headers: { host: 'api.test' },
      }),
    );
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('answer 1');
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(r.headers['transfer-encoding']).toBeUndefined();
    expect(r.headers['content-length']).toBe('8');
  });

  it('signs for any SNI name on demand', async () => {
    const r = await collect(
      https.request({
        host: '127.0.0.1',
        port: server.port,
        servername: 'not-in-mocks.test',
        path: '/',
        ca: ca.caPem,
        headers: { host: 'not-in-mocks.test' },
      }),
    );
    expect(r.status).toBe(502); // TLS worked; the request itself has no mock
  });

  it('answers an IP-address URL (no SNI) with the default certificate', async () => {
    let sentSni: string | false | null | undefined;
    const r = await collect(
      https
        .request({
          host: '127.0.0.1',
          port: server.port,
          path: '/ip',
          ca: ca.caPem,
          headers: { host: '10.1.2.3:8443' },
          checkServerIdentity: (_h, cert) => tls.checkServerIdentity('10.1.2.3', cert),
          agent: new https.Agent({ keepAlive: false }),
        })
        .on('socket', (s) => s.on('secureConnect', () => (sentSni = (s as tls.TLSSocket).servername))),
    );
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('answer 2');
    expect(sentSni === undefined || sentSni === false || sentSni === null).toBe(true);
  });

  it('re-encodes a gzip body and sends the real Content-Length', async () => {
    const r = await collect(
      https.request({
        host: '127.0.0.1',
        port: server.port,
        servername: 'api.test',
        path: '/gz',
        ca: ca.caPem,
        headers: { host: 'api.test' },
      }),
    );
    expect(r.headers['content-encoding']).toBe('gzip');
    expect(Number(r.headers['content-length'])).toBe(r.body.length);
    expect(gunzipSync(r.body).toString()).toBe('{"ok":true}');
  });

  it('reads a request body that arrives in many pieces', async () => {
    const pieces = Array.from({ length: 20 }, () => 'x'.repeat(10_000));
    const r = await collect(
      http.request({
        host: '127.0.0.1',
        port: server.port,
        method: 'POST',
        path: '/big',
        headers: { host: 'plain.test', 'content-length': '200000' },
      }),
      pieces,
    );
    expect(r.status).toBe(201);
    expect(r.statusMessage).toBe('Created');
  });

  it('keeps the connection alive and answers repeated calls in order', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const a = await collect(
      http.request({ host: '127.0.0.1', port: server.port, path: '/k', headers: { host: 'plain.test' }, agent }),
    );
    const b = await collect(
      http.request({ host: '127.0.0.1', port: server.port, path: '/k', headers: { host: 'plain.test' }, agent }),
    );
    agent.destroy();
    expect([a.body.toString(), b.body.toString()]).toEqual(['answer 5', 'second']);
    expect(a.socketPort).toBe(b.socketPort);
  });

  it('answers 502 with the explanation on a miss', async () => {
    const r = await collect(
      http.request({ host: '127.0.0.1', port: server.port, path: '/a?q=2', headers: { host: 'plain.test' } }),
    );
    expect(r.status).toBe(502);
    expect(r.body.toString()).toBe(
      'tlsrec: no mock for GET http://plain.test/a?q=2: method, host and path matched mock-0, query differed (missing q=1, unexpected q=2)\n',
    );
    expect(missLog.at(-1)).toContain('no mock for GET http://plain.test/a?q=2');
    expect(matcher.report().misses.at(-1)).toEqual({
      method: 'GET',
      url: 'http://plain.test/a?q=2',
      closest: { mock: 'mock-0', field: 'query', detail: 'missing q=1, unexpected q=2' },
      message:
        'no mock for GET http://plain.test/a?q=2: method, host and path matched mock-0, query differed (missing q=1, unexpected q=2)',
    });
  });

  it('survives garbage and abrupt closes', async () => {
    await new Promise<void>((resolve) => {
      // a complete TLS record that is no handshake: the server must drop the connection
      const s = net.connect(server.port, '127.0.0.1', () => s.write(Buffer.from('160301000401000000', 'hex')));
      s.resume(); // read the alert and the EOF
      s.on('close', () => resolve());
      s.on('error', () => resolve());
    });
    const r = await collect(
      http.request({ host: '127.0.0.1', port: server.port, path: '/a?q=1', headers: { host: 'plain.test' } }),
    );
    expect(r.status).toBe(200);
  });
});

describe('mock server behind a proxy setting', () => {
  it('grants CONNECT tunnels and serves TLS through them', async () => {
    const tunnel = await new Promise<net.Socket>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port: server.port,
        method: 'CONNECT',
        path: 'api.test:443',
        headers: { host: 'api.test:443' },
      });
      req.on('connect', (res, socket) =>
        res.statusCode === 200 ? resolve(socket) : reject(new Error(`CONNECT ${res.statusCode}`)),
      );
      req.on('error', reject);
      req.end();
    });
    const r = await collect(
      https.request({
        path: '/sni',
        headers: { host: 'api.test' },
        createConnection: () => tls.connect({ socket: tunnel, servername: 'api.test', ca: ca.caPem }),
      }),
    );
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('answer 1');
  });

  it('answers absolute-form requests of plain HTTP proxies', async () => {
    const r = await collect(
      http.request({
        host: '127.0.0.1',
        port: server.port,
        path: 'http://plain.test/a?q=1',
        headers: { host: 'plain.test' },
      }),
    );
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('answer 0');
  });
});
