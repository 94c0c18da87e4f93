import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadTestSets } from '../src/format/reader.js';
import { TestSetWriter } from '../src/format/test-set-writer.js';
import type { Exchange } from '../src/model/exchange.js';
import { makeExchange, MONO_TO_WALL } from './fixtures-format/make-exchange.js';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrec-format-'));
});
afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

async function record(exchanges: Exchange[], redactHeaders?: string[]): Promise<TestSetWriter> {
  const w = await TestSetWriter.create({
    rootDir: root,
    monoToWallNs: MONO_TO_WALL,
    ...(redactHeaders ? { redactHeaders } : {}),
  });
  for (const ex of exchanges) w.writeExchange(ex);
  await w.close();
  return w;
}

const JSON_CT: [string, string] = ['Content-Type', 'application/json'];

describe('round trip: Exchange -> files -> loadTestSets', () => {
  it('JSON bodies: stored pretty as a block scalar, read back with the exact bytes', async () => {
    const reqBody = '{"name":"Ada","id":12345678901234567890,"tags":["a","b"],"nested":{"x":1.50,"e":"\\u00e9\\"q"}}';
    const resBody = '{"ok":true,"items":[],"obj":{}}\n'; // final newline, as Go's json.Encoder writes
    const w = await record([
      makeExchange({
        method: 'POST',
        target: '/users?x=1&y=2',
        reqHeaders: [['Host', 'localhost:3000'], JSON_CT],
        reqBody,
        resHeaders: [JSON_CT],
        resBody,
      }),
    ]);
    const text = fs.readFileSync(path.join(w.dir, 'tests', 'test-1.yaml'), 'utf8');
    expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=../../.schema/test.schema.json');
    expect(text).toContain('    body: |-\n      {\n        "name": "Ada",\n        "id": 12345678901234567890,');
    expect(text).toContain('url: http://localhost:3000/users?x=1&y=2');
    expect(text).toMatch(/url_params:\n\s+x: "1"\n\s+y: "2"/);
    expect(fs.existsSync(path.join(root, '.schema', 'test.schema.json'))).toBe(true);

    const [set] = loadTestSets(root);
    const t = set!.tests[0]!;
    expect(t.request.body.kind).toBe('json');
    expect(t.request.body.bytes.toString()).toBe(reqBody);
    expect(t.expected.body.kind).toBe('json');
    expect(t.expected.body.bytes.toString()).toBe(resBody);
    expect(t.request.method).toBe('POST');
    expect(t.request.url).toBe('http://localhost:3000/users?x=1&y=2');
    expect(t.expected.status).toBe(200);
    expect(t.name).toBe('test-1');
  });

  it('text, CRLF text, binary, empty bodies keep their bytes', async () => {
    const binary = Buffer.from([
      0x89,
      0x50,
      0x4e,
      0x47,
      0x00,
      0xff,
      0xfe,
      0x10,
      ...Array.from({ length: 200 }, (_, i) => i),
    ]);
    const cases: Array<{ body: Buffer | string; ct?: string; kind: string }> = [
      { body: 'hello\nworld\n', ct: 'text/plain', kind: 'text' },
      { body: 'a=1\r\nb=2\r\n', ct: 'text/plain', kind: 'text' },
      { body: '  leading spaces\n\n\ntrailing newlines\n\n', ct: 'text/plain', kind: 'text' },
      { body: ' ', ct: 'text/plain', kind: 'text' },
      { body: '\ufeffBOM and ünïcödé ✓', ct: 'text/plain; charset=utf-8', kind: 'text' },
      { body: binary, ct: 'image/png', kind: 'binary' },
      { body: Buffer.from([0xc3, 0x28, 0x41]), ct: 'text/plain', kind: 'binary' }, // invalid UTF-8
      { body: 'GIF89a-but-declared-binary', ct: 'application/octet-stream', kind: 'binary' },
      { body: '', kind: 'empty' },
      { body: '{"not":"json content type"}', ct: 'text/plain', kind: 'text' },
      { body: '[1, 2,   3]', kind: 'json' }, // no content type: detected by parse
    ];
    const exchanges = cases.map((c) =>
      makeExchange({
        method: 'PUT',
        reqHeaders: [['Host', 'localhost:3000'], ...(c.ct ? [['Content-Type', c.ct] as [string, string]] : [])],
        reqBody: c.body,
        resHeaders: c.ct ? [['Content-Type', c.ct]] : [],
        resBody: c.body,
      }),
    );
    await record(exchanges);
    const [set] = loadTestSets(root);
    expect(set!.tests).toHaveLength(cases.length);
    cases.forEach((c, i) => {
      const t = set!.tests[i]!;
      const want = Buffer.isBuffer(c.body) ? c.body : Buffer.from(c.body);
      const expectBytes = c.kind === 'json' ? Buffer.from('[1,2,3]') : want; // JSON whitespace is not kept
      expect(t.request.body.kind, `case ${i}`).toBe(c.kind);
      expect(t.request.body.bytes.equals(expectBytes), `case ${i} request`).toBe(true);
      expect(t.expected.body.bytes.equals(expectBytes), `case ${i} response`).toBe(true);
    });
    const bin = fs.readFileSync(path.join(set!.dir, 'tests', 'test-6.yaml'), 'utf8');
    expect(bin).toContain('body_encoding: base64');
  });

  it('gzip-recorded response: decoded body stored, Content-Encoding kept for the mock server', async () => {
    const json = '{"count":3}';
    const w = await record([
      makeExchange({
        role: 'outgoing',
        tls: true,
        target: '/api/v2/items?limit=20&q=a%20b',
        reqHeaders: [
          ['Host', 'api.example.com'],
          ['Accept-Encoding', 'gzip'],
        ],
        resHeaders: [JSON_CT, ['Content-Encoding', 'gzip'], ['Content-Length', String(gzipSync(json).length)]],
        resBody: json,
      }),
      // could not be decoded while recording: the raw bytes are kept and flagged
      makeExchange({
        role: 'outgoing',
        target: '/raw',
        resHeaders: [['Content-Encoding', 'br']],
        resBody: Buffer.from([1, 2, 3, 4]),
        resDecoded: false,
      }),
    ]);
    const mocksText = fs.readFileSync(path.join(w.dir, 'mocks.yaml'), 'utf8');
    expect(mocksText.split('\n')[0]).toBe('# yaml-language-server: $schema=../.schema/mocks.schema.json');
    const docs = mocksText.split(/^---$/m);
    expect(docs).toHaveLength(2);
    const d0 = parse(docs[0]!) as { spec: { metadata: unknown; req: { url: string } } };
    expect(d0.spec.metadata).toEqual({ name: 'Http', operation: 'GET', type: 'HTTP_CLIENT' });
    expect(d0.spec.req.url).toBe('https://api.example.com/api/v2/items?limit=20&q=a%20b');

    const [set] = loadTestSets(root);
    const [m0, m1] = set!.mocks;
    expect(m0!.request).toMatchObject({
      method: 'GET',
      scheme: 'https',
      host: 'api.example.com',
      path: '/api/v2/items',
      query: [
        ['limit', '20'],
        ['q', 'a b'],
      ],
    });
    expect(m0!.response.headers).toContainEqual(['Content-Encoding', 'gzip']);
    expect(m0!.response.body).toMatchObject({ kind: 'json' });
    expect(m0!.response.body.bytes.toString()).toBe(json);
    expect(m0!.response.body.contentEncoded).toBeUndefined();
    expect(m0!.response.statusMessage).toBe('OK');
    expect(m0!.index).toBe(0);
    expect(m0!.name).toBe('mock-0');
    expect(m1!.response.body.contentEncoded).toBe(true);
    expect(m1!.response.body.bytes.equals(Buffer.from([1, 2, 3, 4]))).toBe(true);
    expect(m1!.request.scheme).toBe('http');
  });

  it('repeated headers become a list and come back in order; secrets become references, noisy in responses', async () => {
    const w = await record(
      [
        makeExchange({
          reqHeaders: [
            ['Host', 'localhost:3000'],
            ['Authorization', 'Bearer abc'],
            ['X-Api-Key', 'k'],
            ['X-Custom', 'c'],
            ['X-Tenant', 't1'],
          ],
          resHeaders: [
            ['Date', 'x'],
            ['Set-Cookie', 'a=1'],
            ['Vary', 'Accept'],
            ['set-cookie', 'b=2'],
            ['Vary', 'Origin'],
            ['X-Session-Token', 's'],
          ],
        }),
      ],
      ['X-Tenant'],
    );
    const text = fs.readFileSync(path.join(w.dir, 'tests', 'test-1.yaml'), 'utf8');
    expect(text).not.toContain('Bearer abc');
    expect(text).not.toContain('a=1');
    const [set] = loadTestSets(root);
    const t = set!.tests[0]!;
    expect(t.request.headers).toEqual([
      ['Host', 'localhost:3000'],
      ['Authorization', 'Bearer {{ .secret.AUTHORIZATION }}'],
      ['X-Api-Key', '{{ .secret.X_API_KEY }}'],
      ['X-Custom', 'c'],
      ['X-Tenant', '{{ .secret.X_TENANT }}'],
    ]);
    // Credentials the app hands out are captured at replay ({{ .name }}), never written.
    expect(t.expected.headers).toEqual([
      ['Date', 'x'],
      ['Set-Cookie', 'a={{ .a }}'],
      ['Set-Cookie', 'b={{ .b }}'],
      ['Vary', 'Accept'],
      ['Vary', 'Origin'],
      ['X-Session-Token', '{{ .x_session_token }}'],
    ]);
    expect(t.noise.map((n) => n.key)).toEqual(['header.Date', 'header.Set-Cookie', 'header.X-Session-Token']);
    expect(t.noise[1]!.target).toEqual({ type: 'header', name: 'set-cookie' });
    expect(t.noise[1]!.patterns).toEqual([]);
    expect((parse(text) as { curl: string }).curl).toBe(
      "curl --request GET \\\n  --url 'http://localhost:3000/' \\\n  --header 'Host: localhost:3000' \\\n" +
        "  --header 'Authorization: Bearer {{ .secret.AUTHORIZATION }}' \\\n  --header 'X-Api-Key: {{ .secret.X_API_KEY }}' \\\n" +
        "  --header 'X-Custom: c' \\\n  --header 'X-Tenant: {{ .secret.X_TENANT }}'\n",
    );
  });

  it('redact: false writes header values as recorded', async () => {
    const w = await TestSetWriter.create({ rootDir: root, redact: false });
    w.writeExchange(
      makeExchange({
        reqHeaders: [
          ['Host', 'localhost:3000'],
          ['Authorization', 'Bearer abc'],
        ],
        resHeaders: [['Set-Cookie', 'a=1']],
      }),
    );
    await w.close();
    const t = loadTestSets(root)[0]!.tests[0]!;
    expect(t.request.headers).toContainEqual(['Authorization', 'Bearer abc']);
    expect(t.expected.headers).toEqual([['Set-Cookie', 'a=1']]);
    expect(t.noise.map((n) => n.key)).toEqual(['header.Date']);
  });

  it('tests are numbered from 1 and loaded in natural order; sets get the next free name', async () => {
    const exchanges = Array.from({ length: 12 }, (_, i) => makeExchange({ target: `/n/${i + 1}` }));
    const w1 = await record(exchanges);
    const w2 = await record([makeExchange({ target: '/second' })]);
    expect(w1.name).toBe('test-set-0');
    expect(w2.name).toBe('test-set-1');
    fs.mkdirSync(path.join(root, 'test-set-10', 'tests'), { recursive: true });
    const sets = loadTestSets(root);
    expect(sets.map((s) => s.name)).toEqual(['test-set-0', 'test-set-1', 'test-set-10']);
    expect(sets[0]!.tests.map((t) => t.name)).toEqual(Array.from({ length: 12 }, (_, i) => `test-${i + 1}`));
    expect(sets[0]!.tests.map((t) => t.request.url)).toEqual(
      Array.from({ length: 12 }, (_, i) => `http://localhost:3000/n/${i + 1}`),
    );
    expect(loadTestSets(root, { only: ['test-set-1'] }).map((s) => s.name)).toEqual(['test-set-1']);
  });

  it('continuing a named test set numbers after what is there', async () => {
    const a = await TestSetWriter.create({ rootDir: root, testSet: 'checkout' });
    a.writeExchange(makeExchange());
    a.writeExchange(makeExchange({ role: 'outgoing' }));
    await a.close();
    const b = await TestSetWriter.create({ rootDir: root, testSet: 'checkout' });
    b.writeExchange(makeExchange());
    b.writeExchange(makeExchange({ role: 'outgoing' }));
    expect(await b.close()).toEqual({ tests: 1, mocks: 1, failedTests: 0, failedMocks: 0 });
    const [set] = loadTestSets(root);
    expect(set!.tests.map((t) => t.name)).toEqual(['test-1', 'test-2']);
    expect(set!.mocks.map((m) => m.name)).toEqual(['mock-0', 'mock-1']);
  });

  it('TLS incoming requests get https test URLs; appUrlBase overrides the host', async () => {
    const w = await TestSetWriter.create({ rootDir: root, appUrlBase: 'http://127.0.0.1:8080/' });
    w.writeExchange(makeExchange({ target: '/a?b=1' }));
    await w.close();
    await record([makeExchange({ tls: true, target: '/s', reqHeaders: [['Host', 'app.local:8443']] })]);
    const sets = loadTestSets(root);
    expect(sets[0]!.tests[0]!.request.url).toBe('http://127.0.0.1:8080/a?b=1');
    expect(sets[1]!.tests[0]!.request.url).toBe('https://app.local:8443/s');
  });

  it('timestamps are RFC 3339 from the kernel clock', async () => {
    const w = await record([makeExchange(), makeExchange({ role: 'outgoing' })]);
    const t = parse(fs.readFileSync(path.join(w.dir, 'tests', 'test-1.yaml'), 'utf8')) as {
      spec: { req: { timestamp: string }; resp: { timestamp: string }; created: number };
    };
    expect(t.spec.req.timestamp).toBe('2024-01-01T00:00:01.000000000Z');
    expect(t.spec.resp.timestamp).toBe('2024-01-01T00:00:01.002000000Z');
    expect(t.spec.created).toBe(Date.UTC(2024, 0, 1) / 1000 + 1);
    const m = parse(fs.readFileSync(path.join(w.dir, 'mocks.yaml'), 'utf8')) as {
      spec: { reqTimestampMock: string };
      connectionId: string;
    };
    expect(m.spec.reqTimestampMock).toBe('2024-01-01T00:00:01.000000000Z');
    expect(m.connectionId).toBe('1234:7:1');
  });
});
