// The protocol seam: HTTP/1's detection, the registry, and reconstruction handing each connection to
// the protocol that recognises it. A second protocol (a small line protocol whose server speaks
// first, as SMTP, Redis' replicas or Postgres' errors do) is registered beside HTTP/1 to show that
// a protocol plugs in without reconstruction knowing it.

import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadTestSets } from '../src/format/reader.js';
import type { CaptureEvent, Direction } from '../src/model/events.js';
import type { HttpExchange as Exchange, SkippedStream } from '../src/model/exchange.js';
import { PROTOCOLS } from '../src/protocols/index.js';
import { http1 } from '../src/protocols/http1/index.js';
import { detectHttp1 } from '../src/protocols/http1/reconstruct.js';
import type { ConnectionContext, DetectContext, RecordingProtocol } from '../src/protocols/protocol.js';
import { parseEventLine } from '../src/record/event-file.js';
import { Reconstructor } from '../src/record/reconstruct.js';

let ts = 1n;
function conn(connId: bigint) {
  const pos = { in: 0n, out: 0n };
  const evs: CaptureEvent[] = [];
  const base = () => ({ tsNs: ts++, tgid: 9, tid: 9, source: 'socket' as const, connId });
  return {
    evs,
    open(role: 'accept' | 'connect', localPort: number) {
      evs.push({
        ...base(),
        type: 'open',
        role,
        localAddr: '127.0.0.1',
        localPort,
        remoteAddr: '127.0.0.1',
        remotePort: 50000,
      });
      return this;
    },
    data(dir: Direction, s: string) {
      const data = Buffer.from(s, 'latin1');
      evs.push({ ...base(), type: 'data', dir, pos: pos[dir], callLen: data.length, chunkOff: 0, data });
      pos[dir] += BigInt(data.length);
      return this;
    },
    close() {
      evs.push({ ...base(), type: 'close' });
      return this;
    },
  };
}

/** "+OK greeting" from the server first, then "CMD arg" lines answered by "+..." lines. */
function lineProtocol(seen: Array<{ dir: Direction; text: string }>, contexts: DetectContext[]): RecordingProtocol {
  return {
    name: 'lines',
    detect(first, ctx) {
      contexts.push(ctx);
      if (first.length < 3) return { verdict: 'more' };
      return first.subarray(0, 3).toString('latin1') === '+OK'
        ? { verdict: 'yes' }
        : { verdict: 'no', why: 'no +OK greeting' };
    },
    reconstruct(ctx: ConnectionContext) {
      return {
        data: (dir, data) => void seen.push({ dir, text: data.toString('latin1') }),
        stop: () => undefined,
        end: () => {
          if (!seen.some((s) => s.text.startsWith('QUIT')))
            ctx.problems.push({ reason: 'incomplete', detail: 'no QUIT' });
          return { consumed: { in: 0, out: 0 }, unpairedBytes: 0 };
        },
      };
    },
  };
}

function run(
  events: CaptureEvent[],
  protocols?: readonly RecordingProtocol[],
): { ex: Exchange[]; skipped: SkippedStream[] } {
  const ex: Exchange[] = [];
  const r = new Reconstructor({ onExchange: (e) => ex.push(e as Exchange), ...(protocols ? { protocols } : {}) });
  for (const e of events) r.push(e);
  return { ex, skipped: r.finish().skipped };
}

describe('HTTP/1 detection', () => {
  it('says yes to a request method, more to a prefix of one, no to other protocols (with why)', () => {
    expect(detectHttp1(Buffer.from('GET /a HTTP/1.1\r\nHost: h\r\n\r\n'))).toEqual({ verdict: 'yes' });
    expect(detectHttp1(Buffer.from('M-SEARCH * HTTP/1.1\r\n'))).toEqual({ verdict: 'yes' });
    expect(detectHttp1(Buffer.from('GE'))).toEqual({ verdict: 'more' });
    expect(detectHttp1(Buffer.from('PROPPATC'))).toEqual({ verdict: 'more' });
    expect(detectHttp1(Buffer.from('GETX /a HTTP/1.1\r\n'))).toMatchObject({
      verdict: 'no',
      why: expect.stringContaining('HPE_INVALID_METHOD'),
    });
    // Started as HTTP and broke: HTTP/1's (reconstruction reports the parse error).
    expect(detectHttp1(Buffer.from('GET /a HTTP/1.1\r\nBad Header\r\n\r\n'))).toEqual({ verdict: 'yes' });
    expect(detectHttp1(Buffer.from('EHLO mail.test\r\n'))).toMatchObject({
      verdict: 'no',
      why: expect.stringContaining('HPE_INVALID_METHOD'),
    });
    expect(detectHttp1(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'))).toEqual({
      verdict: 'no',
      why: 'HTTP/2 prior-knowledge preface (PRI * HTTP/2.0)',
    });
    expect(detectHttp1(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]))).toEqual({
      verdict: 'no',
      why: 'TLS handshake record (ciphertext)',
    });
  });

  it('the mock server side accepts plaintext HTTP/1 requests only', () => {
    expect(http1.mocks.accepts(Buffer.from('POST /x HTTP/1.1\r\n'))).toBe(true);
    expect(http1.mocks.accepts(Buffer.from([0x16, 0x03, 0x01]))).toBe(false);
    expect(http1.mocks.accepts(Buffer.from('*1\r\n$4\r\nPING\r\n'))).toBe(false);
  });
});

describe('the registry', () => {
  it('lists HTTP/1, each protocol once, each with its own document kind', () => {
    expect(PROTOCOLS.map((p) => p.name)).toContain('http1');
    expect(PROTOCOLS).toContain(http1);
    expect(new Set(PROTOCOLS.map((p) => p.name)).size).toBe(PROTOCOLS.length);
    expect(new Set(PROTOCOLS.map((p) => p.files.kind)).size).toBe(PROTOCOLS.length);
  });

  it('reconstruction uses the registry by default: exchanges are named http1', () => {
    const c = conn(1n)
      .open('accept', 8080)
      .data('in', 'GET /a HTTP/1.1\r\nHost: h\r\n\r\n')
      .data('out', 'HTTP/1.1 204 No Content\r\n\r\n')
      .close();
    const { ex, skipped } = run(c.evs);
    expect(ex.map((e) => [e.protocol, e.role, e.request.target, e.response.statusCode, e.localPort])).toEqual([
      ['http1', 'incoming', '/a', 204, 8080],
    ]);
    expect(skipped).toEqual([]);
  });
});

describe('reconstruction dispatches each connection to the protocol that recognises it', () => {
  it('a second protocol takes its connections from the first byte, HTTP/1 keeps its own', () => {
    const seen: Array<{ dir: Direction; text: string }> = [];
    const contexts: DetectContext[] = [];
    const lines = conn(2n)
      .open('connect', 40000)
      .data('out', 'HELLO\r\n')
      .data('in', '+OK ready\r\n')
      .data('out', 'QUIT\r\n')
      .data('in', '+OK bye\r\n')
      .close();
    const http = conn(3n)
      .open('connect', 40001)
      .data('out', 'GET /b HTTP/1.1\r\nHost: h\r\n\r\n')
      .data('in', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi')
      .close();
    const { ex, skipped } = run([...lines.evs, ...http.evs], [lineProtocol(seen, contexts), http1]);
    // The line protocol saw the whole connection in capture order, including the bytes written
    // before it could tell (HELLO: neither "+OK" nor an HTTP request yet).
    expect(seen).toEqual([
      { dir: 'out', text: 'HELLO\r\n' },
      { dir: 'in', text: '+OK ready\r\n' },
      { dir: 'out', text: 'QUIT\r\n' },
      { dir: 'in', text: '+OK bye\r\n' },
    ]);
    expect(contexts[0]).toMatchObject({
      dir: 'out',
      source: 'socket',
      opened: 'connect',
      localPort: 40000,
      remotePort: 50000,
    });
    expect(ex.map((e) => `${e.protocol} ${e.role} ${e.request.target} ${e.response.statusCode}`)).toEqual([
      'http1 outgoing /b 200',
    ]);
    expect(skipped).toEqual([]);
  });

  it('the first protocol in the list that says yes wins', () => {
    const taken: string[] = [];
    const greedy: RecordingProtocol = {
      name: 'greedy',
      detect: () => ({ verdict: 'yes' }),
      reconstruct: () => ({
        data: (_dir, data) => void taken.push(data.toString('latin1')),
        stop: () => undefined,
        end: () => ({ consumed: { in: 0, out: 0 }, unpairedBytes: 0 }),
      }),
    };
    const events = () =>
      conn(4n).data('in', 'GET / HTTP/1.1\r\nHost: h\r\n\r\n').data('out', 'HTTP/1.1 204 No Content\r\n\r\n').close()
        .evs;
    expect(run(events(), [http1, greedy]).ex).toHaveLength(1);
    expect(taken).toEqual([]);
    expect(run(events(), [greedy, http1]).ex).toHaveLength(0);
    expect(taken).toEqual(['GET / HTTP/1.1\r\nHost: h\r\n\r\n', 'HTTP/1.1 204 No Content\r\n\r\n']);
  });

  it("a protocol reports its problems as the connection's SkippedStream", () => {
    const c = conn(5n).data('in', '+OK\r\n').data('out', 'HELLO\r\n').close();
    const { skipped } = run(c.evs, [lineProtocol([], []), http1]);
    expect(skipped).toEqual([{ conn: '9/socket/5', reason: 'incomplete', detail: 'no QUIT', bytes: 12 }]);
  });

  it("a connection nobody recognises is skipped as not-http with every protocol's reason, never fatal", () => {
    const c = conn(6n).data('out', '220 smtp ready\r\n').data('in', 'EHLO x\r\n').data('out', '250 ok\r\n').close();
    const { ex, skipped } = run(c.evs, [lineProtocol([], []), http1]);
    expect(ex).toEqual([]);
    expect(skipped).toHaveLength(1);
    expect(skipped[0]!.reason).toBe('not-http');
    expect(skipped[0]!.bytes).toBe(16 + 8 + 8);
    expect(skipped[0]!.detail).toMatch(
      /^in: no \+OK greeting, HPE_INVALID_METHOD: .*; out: no \+OK greeting, HPE_INVALID_METHOD: /,
    );
  });

  it('a stream that starts with a method but is not HTTP after all is reported by HTTP/1 as not-http', () => {
    const c = conn(8n).data('in', 'GET /a FOO/1.1\r\n\r\n').data('out', 'nope\r\n').close();
    const { ex, skipped } = run(c.evs);
    expect(ex).toEqual([]);
    expect(skipped).toMatchObject([
      { reason: 'not-http', detail: expect.stringMatching(/^in: HPE_INVALID_CONSTANT: .*; out: HPE_INVALID_METHOD: /) },
    ]);
  });

  it("a connection that ends while a protocol still waits for bytes is that protocol's to report", () => {
    const c = conn(7n).data('in', 'GET /half HTTP/1.1\r\nHo').close();
    const { skipped } = run(c.evs);
    expect(skipped).toMatchObject([
      { reason: 'incomplete', detail: expect.stringContaining('connection ended inside') },
    ]);
  });
});

describe('the http1 protocol object, end to end on a recorded stream', () => {
  const MONO_TO_WALL = BigInt(Date.UTC(2024, 0, 1)) * 1_000_000n; // as test/golden.test.ts
  const golden = fileURLToPath(new URL('./golden/', import.meta.url));
  const events = fs
    .readFileSync(new URL('../fixtures/events/real-fixture-app.jsonl', import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l, i) => parseEventLine(l, i + 1));
  const { ex } = run(events);
  const [set] = loadTestSets(golden, { only: ['real-fixture-app'] });
  const incoming = ex.filter((e) => e.role === 'incoming');
  const outgoing = ex.filter((e) => e.role === 'outgoing');

  it('files: renders the documents the writer wrote (the golden files), kind Http', () => {
    expect(http1.files.kind).toBe('Http');
    const text = http1.files.yaml(
      http1.files.testDoc(incoming[0]!, 1, { monoToWallNs: MONO_TO_WALL }),
      '../../.schema/test.schema.json',
    );
    expect(text).toBe(fs.readFileSync(`${golden}/real-fixture-app/tests/test-1.yaml`, 'utf8'));
    expect(http1.files.mockDoc(outgoing[0]!, 0, { monoToWallNs: MONO_TO_WALL }).kind).toBe('Http');
  });

  it('compare: each recorded test passes against the response that was recorded, fails against another', () => {
    expect(set!.tests).toHaveLength(incoming.length);
    incoming.forEach((e, i) => {
      const actual = { status: e.response.statusCode, headers: e.response.headers, body: e.response.body };
      expect(http1.compare(set!.tests[i]!.name, set!.tests[i]!.expected, actual, set!.tests[i]!.noise).passed).toBe(
        true,
      );
    });
    const other = incoming[1]!.response;
    expect(
      http1.compare(
        't',
        set!.tests[0]!.expected,
        { status: other.statusCode, headers: other.headers, body: other.body },
        [],
      ).passed,
    ).toBe(false);
  });

  it('mocks: the matcher answers each recorded outgoing call with its own mock', () => {
    const matcher = http1.mocks.matcher(set!.mocks);
    for (const [i, e] of outgoing.entries()) {
      const [path, q] = e.request.target.split('?') as [string, string | undefined];
      const outcome = matcher.match({
        method: e.request.method,
        scheme: e.tls ? 'https' : 'http',
        host: e.request.headers.find(([k]) => k.toLowerCase() === 'host')![1],
        path,
        query: [...new URLSearchParams(q ?? '')],
        headers: e.request.headers,
        body: e.request.body,
      });
      expect(outcome.kind === 'hit' ? outcome.mock.name : outcome.message).toBe(`mock-${i}`);
    }
  });
});
