import { describe, expect, it } from 'vitest';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import * as zlib from 'node:zlib';
import type { TestCase } from '../src/format/types.js';
import { commandForSpawn, portFromTests } from '../src/replay/run-tests.js';
import { createSender, outgoingHeaders, requestPath } from '../src/replay/sender.js';

describe('sender planning', () => {
  it('keeps path and query of the recorded URL', () => {
    expect(requestPath('http://localhost:3000/a/b?x=1&y=%20')).toBe('/a/b?x=1&y=%20');
    expect(requestPath('https://example.com')).toBe('/');
    expect(requestPath('/already?q')).toBe('/already?q');
  });
  it('drops framing and hop-by-hop headers, keeps Host and the rest', () => {
    expect(
      outgoingHeaders([
        ['Host', 'localhost:3000'],
        ['Content-Length', '12'],
        ['Transfer-Encoding', 'chunked'],
        ['Connection', 'keep-alive'],
        ['Expect', '100-continue'],
        ['Cookie', 'a=1'],
        ['Cookie', 'b=2'],
      ]),
    ).toEqual(['Host', 'localhost:3000', 'Cookie', 'a=1', 'Cookie', 'b=2']);
  });
  it('port from the recorded URLs; shell strings', () => {
    const t = (url: string) => ({ request: { url } }) as TestCase;
    expect(portFromTests({ name: 's', dir: '', tests: [t('http://localhost:8080/x')], mocks: [], noise: [] })).toBe(
      8080,
    );
    expect(portFromTests({ name: 's', dir: '', tests: [t('http://localhost/x')], mocks: [], noise: [] })).toBe(80);
    expect(commandForSpawn(['npm start'])).toBe('npm start');
    expect(commandForSpawn(['node', 'app.js'])).toEqual(['node', 'app.js']);
  });
});

describe('createSender against a real server', () => {
  it('sends method, headers and a re-encoded body; decodes the response; no automatic decompression', async () => {
    let seen: { method?: string; url?: string; headers?: IncomingHttpHeaders; body?: Buffer } = {};
    const srv = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks) };
        res.setHeader('content-encoding', 'br');
        res.setHeader('set-cookie', ['a=1', 'b=2']);
        res.statusCode = 201;
        res.end(zlib.brotliCompressSync(Buffer.from('{"ok":true}')));
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const addr = srv.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    const sender = createSender({ baseUrl: `http://127.0.0.1:${port}` });
    try {
      const test: TestCase = {
        file: 'f',
        name: 't',
        request: {
          method: 'put',
          url: 'http://localhost:3000/items/1?v=2',
          headers: [
            ['Host', 'localhost:3000'],
            ['Content-Encoding', 'gzip'],
            ['Content-Length', '3'],
            ['X-Custom', 'yes'],
          ],
          body: { bytes: Buffer.from('{"name":"x"}'), kind: 'json' },
        },
        expected: { status: 201, headers: [], body: { bytes: Buffer.alloc(0), kind: 'empty' } },
        noise: [],
      };
      const r = await sender.send(test);
      expect(seen.method).toBe('PUT');
      expect(seen.url).toBe('/items/1?v=2');
      expect(seen.headers!.host).toBe('localhost:3000');
      expect(seen.headers!['x-custom']).toBe('yes');
      expect(zlib.gunzipSync(seen.body!).toString()).toBe('{"name":"x"}');
      expect(Number(seen.headers!['content-length'])).toBe(seen.body!.length);
      expect(r.response.status).toBe(201);
      expect(r.response.body.toString()).toBe('{"ok":true}');
      expect(r.decoded).toBe(true);
      expect(r.rawBody.equals(r.response.body)).toBe(false);
      expect(r.response.headers.filter(([k]) => k === 'set-cookie')).toEqual([
        ['set-cookie', 'a=1'],
        ['set-cookie', 'b=2'],
      ]);
    } finally {
      await sender.close();
      srv.close();
    }
  });
});
