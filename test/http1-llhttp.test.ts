import { describe, expect, it } from 'vitest';
import {
  HttpStreamParser,
  responseBodyMode,
  type ParseOutput,
  type ParsedMessage,
} from '../src/protocols/http1/llhttp.js';

function feedSplit(p: HttpStreamParser, s: string | Buffer, step: number): ParseOutput[] {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s, 'latin1');
  const out: ParseOutput[] = [];
  for (let i = 0; i < b.length; i += step) out.push(...p.execute(b.subarray(i, i + step), BigInt(i)));
  return out;
}
const msgs = (o: ParseOutput[]): ParsedMessage[] => o.flatMap((x) => (x.type === 'message' ? [x.message] : []));

const pipelined =
  'GET /a?x=1 HTTP/1.1\r\nHost: x\r\nX-Case: MiXeD\r\nx-case: second\r\n\r\n' +
  'POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n' +
  'PUT /c HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc';

describe('HttpStreamParser (llhttp binding)', () => {
  it('parses pipelined requests identically at every split size', () => {
    let first: ParsedMessage[] | undefined;
    for (let step = 1; step <= pipelined.length; step++) {
      const p = new HttpStreamParser('request');
      const m = msgs(feedSplit(p, pipelined, step));
      expect(m.length).toBe(3);
      const norm = m.map((x) => ({ ...x, startTag: 0n }));
      if (!first) first = norm;
      else expect(norm).toEqual(first);
    }
    const [a, b, c] = first!;
    expect(a).toMatchObject({
      method: 'GET',
      target: '/a?x=1',
      httpVersion: '1.1',
      headers: [
        ['Host', 'x'],
        ['X-Case', 'MiXeD'],
        ['x-case', 'second'],
      ],
    });
    expect(b!.body.toString()).toBe('hello world');
    expect(b!.trailers).toEqual([['X-Trailer', 't']]);
    expect(c).toMatchObject({ method: 'PUT', httpVersion: '1.0' });
    expect(c!.body.toString()).toBe('abc');
  });

  it('tags each message with the tag of the data it started in', () => {
    const p = new HttpStreamParser('request');
    const m = msgs(feedSplit(p, pipelined, 10));
    // messages start at bytes 0, 63 and 160: the 10-byte pieces holding them start at 0, 60, 160
    expect(m.map((x) => x.startTag)).toEqual([0n, 60n, 160n]);
  });

  it('keeps more than 32 headers (flushed in batches by the binding) in order', () => {
    let h = '';
    for (let i = 0; i < 70; i++) h += `H-${i}: v${i}\r\n`;
    const p = new HttpStreamParser('request');
    const m = msgs(feedSplit(p, 'GET /many/headers HTTP/1.1\r\n' + h + '\r\n', 7));
    expect(m[0]!.target).toBe('/many/headers');
    expect(m[0]!.headers.length).toBe(70);
    expect(m[0]!.headers[69]).toEqual(['H-69', 'v69']);
  });

  it('skips the body of a HEAD response and of 204/304, and reports 1xx as separate messages', () => {
    const methods = ['HEAD', 'GET', 'GET', 'GET'];
    const wire =
      'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n' +
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi' +
      'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n' +
      'HTTP/1.1 204 No Content\r\n\r\n';
    // the whole stream in one call (all heads parsed before the caller sees any output) and byte by byte
    for (const step of [wire.length, 1]) {
      const asked: number[] = [];
      const p = new HttpStreamParser('response', { requestMethod: (i) => (asked.push(i), methods[i]) });
      const out = feedSplit(p, wire, step);
      expect(out.some((o) => o.type === 'error')).toBe(false);
      expect(msgs(out).map((r) => [r.statusCode, r.body.toString()])).toEqual([
        [200, ''],
        [100, ''],
        [103, ''],
        [200, 'hi'],
        [304, ''],
        [204, ''],
      ]);
      expect(msgs(out)[2]!.headers).toEqual([['Link', '</a>']]);
      // 1xx heads ask about the request they precede without consuming it
      expect(asked).toEqual([0, 1, 1, 1, 2, 3]);
    }
  });

  it('completes a close-delimited body at finish()', () => {
    const p = new HttpStreamParser('response');
    expect(msgs(p.execute(Buffer.from('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc')))).toEqual([]);
    expect(msgs(p.execute(Buffer.from('def')))).toEqual([]);
    const m = msgs(p.finish());
    expect(m[0]!.body.toString()).toBe('abcdef');
    expect(m[0]!.keepAlive).toBe(false);
  });

  it('reports a truncated body at finish() as an error', () => {
    const p = new HttpStreamParser('response');
    p.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    expect(p.hasPartialMessage).toBe(true);
    const f = p.finish();
    expect(f).toEqual([expect.objectContaining({ type: 'error', code: 'HPE_INVALID_EOF_STATE' })]);
  });

  it('stops at an upgrade and hands back the bytes after it', () => {
    const p = new HttpStreamParser('request');
    const o = p.execute(
      Buffer.from('GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello', 'latin1'),
    );
    expect(msgs(o)[0]!.upgrade).toBe(true);
    const up = o.find((x) => x.type === 'upgrade');
    expect(up && up.type === 'upgrade' && up.rest.toString('latin1')).toBe('\x81\x05hello');
    expect(p.isStopped).toBe(true);
    expect(p.execute(Buffer.from('more'))).toEqual([]);
  });

  it('treats a 2xx answer to CONNECT as a tunnel', () => {
    const p = new HttpStreamParser('response', { requestMethod: () => 'CONNECT' });
    const o = p.execute(Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x01', 'latin1'));
    expect(msgs(o)[0]!.statusCode).toBe(200);
    expect(o.at(-1)).toEqual({ type: 'upgrade', rest: Buffer.from('\x16\x03\x01', 'latin1') });
  });

  it('reports non-HTTP input as errors without throwing', () => {
    const cases: Array<[ParserKindInput, string, string]> = [
      ['request', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'HPE_PAUSED_H2_UPGRADE'],
      ['request', '\x16\x03\x01\x02\x00\x01\x00', 'HPE_INVALID_METHOD'],
      ['response', '220 smtp.example.com ESMTP ready\r\n', 'HPE_INVALID_CONSTANT'],
      ['request', 'GET / HTTP/1.1\r\nX-Big: ' + 'a'.repeat(200_000), 'HPE_HEADER_OVERFLOW'],
      ['response', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ];
    for (const [kind, wire, code] of cases) {
      const p = new HttpStreamParser(kind);
      const o = feedSplit(p, wire, 4096);
      const err = o.find((x) => x.type === 'error');
      expect(err, wire.slice(0, 20)).toMatchObject({ type: 'error', code });
      expect(p.isStopped).toBe(true);
      expect(p.finish()).toEqual([]);
    }
  });

  it('decides response framing from the request method', () => {
    expect(responseBodyMode('HEAD', 200)).toBe('no-body');
    expect(responseBodyMode('CONNECT', 200)).toBe('tunnel');
    expect(responseBodyMode('CONNECT', 407)).toBe('normal');
    expect(responseBodyMode('GET', 200)).toBe('normal');
    expect(responseBodyMode(undefined, 100)).toBe('normal');
  });
});
type ParserKindInput = 'request' | 'response';
