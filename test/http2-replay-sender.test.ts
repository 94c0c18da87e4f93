// The replay sender sends a test recorded over HTTP/2 (proto_major 2) over HTTP/2: h2c with prior
// knowledge to a plaintext app that speaks nothing else, and HTTP/1.1 tests stay HTTP/1.1.

import * as http from 'node:http';
import * as http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { TestCase } from '../src/format/types.js';
import { createSender, type Sender } from '../src/replay/sender.js';
import { repoRoot } from './helpers/procs.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

function testCase(httpVersion: '2' | undefined, body = ''): TestCase {
  return {
    file: 'mem.yaml',
    name: 'test-1',
    request: {
      method: body ? 'POST' : 'GET',
      url: 'http://localhost:8080/hello?name=ada',
      ...(httpVersion ? { httpVersion } : {}),
      headers: [
        ['host', 'localhost:8080'],
        ['accept', 'application/json'],
        ['x-trace', 'abc'],
      ],
      body: { kind: body ? 'text' : 'empty', bytes: Buffer.from(body) },
    },
    expected: { status: 200, headers: [], body: { kind: 'empty', bytes: Buffer.alloc(0) } },
    noise: [],
  };
}

async function listen(
  server: http.Server | http2.Http2Server | http2.Http2SecureServer,
  scheme = 'http',
): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => server.close(() => r())));
  return `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function sender(baseUrl: string): Sender {
  const s = createSender({ baseUrl, timeoutMs: 5000 });
  closers.unshift(() => s.close());
  return s;
}

describe('replay sender: HTTP/2 tests', () => {
  it('sends a proto_major 2 test over h2c to an app that only speaks HTTP/2', async () => {
    const seen: Array<{ version: string; authority: string | undefined; trace: string | undefined; body: string }> = [];
    const server = http2.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({
          version: req.httpVersion,
          authority: req.headers[':authority'],
          trace: req.headers['x-trace'] as string | undefined,
          body: Buffer.concat(chunks).toString(),
        });
        res.writeHead(201, { 'content-type': 'text/plain', 'x-over': req.httpVersion });
        res.end(`got ${req.url}`);
      });
    });
    const s = sender(await listen(server));
    const first = await s.send(testCase('2'));
    const second = await s.send(testCase('2', 'payload'));
    expect(first.response.status).toBe(201);
    expect(first.response.body.toString()).toBe('got /hello?name=ada');
    expect(first.response.headers).toContainEqual(['x-over', '2.0']);
    expect(first.response.headers.some(([n]) => n.startsWith(':'))).toBe(false);
    expect(second.response.status).toBe(201);
    expect(seen).toEqual([
      { version: '2.0', authority: 'localhost:8080', trace: 'abc', body: '' },
      { version: '2.0', authority: 'localhost:8080', trace: 'abc', body: 'payload' },
    ]);
  });

  it('sends a proto_major 2 test over ALPN h2 to an https app with its own certificate', async () => {
    const alpn: Array<string | false> = [];
    const server = http2.createSecureServer(
      {
        key: readFileSync(join(repoRoot, 'fixtures', 'certs', 'server.key')),
        cert: readFileSync(join(repoRoot, 'fixtures', 'certs', 'server.pem')),
      },
      (req, res) => {
        alpn.push(req.stream.session?.alpnProtocol ?? false);
        res.writeHead(200, { 'x-over': req.httpVersion });
        res.end('secure');
      },
    );
    const s = sender(await listen(server, 'https'));
    const got = await s.send(testCase('2'));
    expect([got.response.status, got.response.body.toString()]).toEqual([200, 'secure']);
    expect(got.response.headers).toContainEqual(['x-over', '2.0']);
    expect(alpn).toEqual(['h2']);
  });

  it('keeps HTTP/1.1 tests on HTTP/1.1', async () => {
    const versions: string[] = [];
    const server = http.createServer((req, res) => {
      versions.push(req.httpVersion);
      res.end('ok');
    });
    const s = sender(await listen(server));
    expect((await s.send(testCase(undefined))).response.body.toString()).toBe('ok');
    expect(versions).toEqual(['1.1']);
  });
});
