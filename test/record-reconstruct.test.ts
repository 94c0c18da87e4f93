import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { parseEventLine, readEventFile, writeEventLine } from '../src/record/event-file.js';
import type { CaptureEvent, DataEvent } from '../src/model/events.js';
import type { HttpExchange as Exchange, SkippedStream } from '../src/model/exchange.js';
import { Reconstructor, type ReconstructStats } from '../src/record/reconstruct.js';

const dir = new URL('../fixtures/events/', import.meta.url);
function load(name: string): CaptureEvent[] {
  return readFileSync(new URL(name, dir), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l, i) => parseEventLine(l, i + 1, name));
}
function run(events: Iterable<CaptureEvent>): { ex: Exchange[]; stats: ReconstructStats; skipped: SkippedStream[] } {
  const ex: Exchange[] = [];
  const skipped: SkippedStream[] = [];
  const r = new Reconstructor({ onExchange: (e) => ex.push(e as Exchange), onSkipped: (s) => skipped.push(s) });
  for (const e of events) r.push(e);
  return { ex, stats: r.finish(), skipped };
}
/** Comparable view of exchanges (bodies as strings, times dropped since re-splitting changes them). */
function view(ex: Exchange[]) {
  return ex.map((e) => ({
    role: e.role,
    conn: e.conn,
    i: e.indexOnConn,
    tls: e.tls,
    req: [
      e.request.method,
      e.request.target,
      e.request.httpVersion,
      e.request.headers,
      e.request.body.toString('base64'),
      e.request.bodyDecoded,
    ],
    res: [
      e.response.statusCode,
      e.response.statusMessage,
      e.response.headers,
      e.response.body.toString('base64'),
      e.response.bodyDecoded,
      e.response.informational,
    ],
  }));
}

/** Re-split every data event at the given cut function (new chunk lengths), keeping pos/callLen/chunkOff consistent. */
function resplit(events: CaptureEvent[], cut: (len: number) => number[]): CaptureEvent[] {
  const out: CaptureEvent[] = [];
  for (const e of events) {
    if (e.type !== 'data') {
      out.push(e);
      continue;
    }
    let off = 0;
    for (const n of cut(e.data.length)) {
      out.push({ ...e, pos: e.pos + BigInt(off), chunkOff: e.chunkOff + off, data: e.data.subarray(off, off + n) });
      off += n;
    }
  }
  return out;
}
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

const SMALL = [
  'keepalive.jsonl',
  'pipelined.jsonl',
  'encodings.jsonl',
  'interim-and-empty.jsonl',
  'outgoing-close-delimited.jsonl',
  'not-http-smtp.jsonl',
];

describe('reconstruction from real-traffic fixtures', () => {
  it('keep-alive: three incoming exchanges in order with raw header case', () => {
    const { ex, stats } = run(load('keepalive.jsonl'));
    expect(stats.skipped).toEqual([]);
    expect(ex.map((e) => [e.role, e.indexOnConn, e.request.method, e.request.target, e.response.statusCode])).toEqual([
      ['incoming', 0, 'GET', '/json?q=1', 200],
      ['incoming', 1, 'POST', '/json', 200],
      ['incoming', 2, 'DELETE', '/text', 200],
    ]);
    expect(ex[0]!.request.headers).toContainEqual(['X-Trace-ID', 'T1']);
    expect(JSON.parse(ex[1]!.response.body.toString())).toEqual({
      ok: true,
      method: 'POST',
      q: null,
      got: '{"name":"ada","n":2}',
    });
    expect(ex[0]!.remotePort).toBeTypeOf('number');
    expect(ex[0]!.request.firstByteNs).toBeLessThan(ex[0]!.response.firstByteNs);
    expect(stats).toMatchObject({ exchanges: 3, incoming: 3, outgoing: 0, connections: 1 });
  });

  it('pipelining: GET, HEAD (no body despite Content-Length), GET + Connection: close', () => {
    const { ex, stats } = run(load('pipelined.jsonl'));
    expect(stats.skipped).toEqual([]);
    expect(ex.map((e) => [e.request.method, e.request.target, e.response.statusCode])).toEqual([
      ['GET', '/json?q=pipe', 200],
      ['HEAD', '/json', 200],
      ['GET', '/last', 200],
    ]);
    expect(ex[1]!.response.body.length).toBe(0);
    expect(ex[1]!.response.headers.find(([n]) => n.toLowerCase() === 'content-length')).toBeDefined();
    expect(ex[2]!.response.body.toString()).toBe('hello GET /last');
  });

  it('encodings: chunked gzip and br responses and a gzip request body are decoded', () => {
    const { ex, stats } = run(load('encodings.jsonl'));
    expect(stats.skipped).toEqual([]);
    expect(ex).toHaveLength(3);
    expect(ex[0]!.response.bodyDecoded).toBe(true);
    expect(ex[0]!.response.body.toString()).toBe('line of text\n'.repeat(400));
    expect(ex[0]!.response.headers).toContainEqual(['Transfer-Encoding', 'chunked']);
    expect(ex[0]!.response.headers).toContainEqual(['Content-Encoding', 'gzip']);
    expect(JSON.parse(ex[1]!.response.body.toString()).items).toHaveLength(50);
    expect(ex[2]!.request.body.toString()).toBe('uploaded text '.repeat(200));
    expect(JSON.parse(ex[2]!.response.body.toString())).toEqual({ decodedLength: 2800, first: 'uploaded text upload' });
  });

  it('interim responses attach to the final one; 204 and 304 have no body', () => {
    const { ex, stats } = run(load('interim-and-empty.jsonl'));
    expect(stats.skipped).toEqual([]);
    expect(
      ex.map((e) => [
        e.request.method,
        e.request.target,
        e.response.statusCode,
        e.response.informational.map((i) => i.statusCode),
      ]),
    ).toEqual([
      ['PUT', '/json', 200, [100]],
      ['GET', '/hints', 200, [103]],
      ['GET', '/no-content', 204, []],
      ['GET', '/not-modified', 304, []],
    ]);
    expect(ex[0]!.request.body.toString()).toBe('{"after":100}');
    expect(ex[1]!.response.informational[0]!.headers.map(([n]) => n.toLowerCase())).toContain('link');
    expect(ex[3]!.response.body.length).toBe(0);
  });

  it('outgoing over TLS: the app wrote the request, so it is a mock; close-delimited body completes at close', () => {
    const { ex, stats } = run(load('outgoing-close-delimited.jsonl'));
    expect(stats.skipped).toEqual([]);
    expect(ex).toHaveLength(1);
    expect(ex[0]).toMatchObject({ role: 'outgoing', tls: true });
    expect(ex[0]!.request.headers).toContainEqual(['Authorization', 'Bearer secret-token']);
    expect(JSON.parse(ex[0]!.response.body.toString())).toEqual({ rates: { EUR: 1.1 } });
    expect(stats).toMatchObject({ outgoing: 1, incoming: 0 });
  });

  it('not HTTP (SMTP): counted as skipped with all its bytes, no exchange', () => {
    const events = load('not-http-smtp.jsonl');
    const total = events.reduce((n, e) => n + (e.type === 'data' ? e.data.length : 0), 0);
    const { ex, stats, skipped } = run(events);
    expect(ex).toEqual([]);
    expect(stats.skipped).toEqual([expect.objectContaining({ reason: 'not-http', bytes: total })]);
    expect(skipped).toEqual(stats.skipped);
  });

  it('a 1 MiB body in 16 KiB chunks arrives whole', () => {
    const { ex, stats } = run(load('large-body.jsonl'));
    expect(stats.skipped).toEqual([]);
    expect(ex).toHaveLength(1);
    const b = ex[0]!.response.body;
    expect(b.length).toBe(1024 * 1024);
    expect(b[0]).toBe(97);
    expect(b[1024 * 1024 - 1]).toBe(97 + (((1024 * 1024 - 1) * 7 + ((1024 * 1024 - 1) >> 10)) % 26));
    expect(stats.bytesOut).toBeGreaterThan(1024 * 1024);
  });

  it('gives the same output when every data event is split at every byte', () => {
    for (const f of SMALL) {
      const events = load(f);
      const base = run(events);
      const bytewise = run(resplit(events, (len) => Array(len).fill(1)));
      expect(view(bytewise.ex), f).toEqual(view(base.ex));
      expect(
        bytewise.stats.skipped.map((s) => s.reason),
        f,
      ).toEqual(base.stats.skipped.map((s) => s.reason));
    }
  });

  it('gives the same output when the whole stream is cut in two at every byte boundary', () => {
    for (const f of ['keepalive.jsonl', 'pipelined.jsonl', 'interim-and-empty.jsonl']) {
      const events = load(f);
      const base = view(run(events).ex);
      const datas = events.filter((e): e is DataEvent => e.type === 'data');
      for (const d of datas) {
        for (let k = 1; k < d.data.length; k++) {
          const ev = resplit(events, (len) => (len === d.data.length ? [k, len - k] : [len]));
          expect(view(run(ev).ex)).toEqual(base);
        }
      }
    }
  });

  it('property: random splits, duplicated and locally reordered chunks give the same output (seeded)', () => {
    for (const f of [...SMALL, 'large-body.jsonl']) {
      const events = load(f);
      const base = run(events);
      for (let seed = 1; seed <= (f === 'large-body.jsonl' ? 3 : 25); seed++) {
        const r = rng(seed * 7919);
        let ev = resplit(events, (len) => {
          const parts: number[] = [];
          for (let left = len; left > 0; ) {
            const n = Math.min(left, 1 + Math.floor(r() * (r() < 0.5 ? 8 : 4000)));
            parts.push(n);
            left -= n;
          }
          return parts;
        });
        // duplicate some data events and swap some neighbours of the same direction
        const mixed: CaptureEvent[] = [];
        for (const e of ev) {
          mixed.push(e);
          if (e.type === 'data' && r() < 0.1) mixed.push({ ...e });
        }
        for (let i = 0; i + 1 < mixed.length; i++) {
          const a = mixed[i]!,
            b = mixed[i + 1]!;
          if (a.type === 'data' && b.type === 'data' && a.dir === b.dir && r() < 0.2) {
            mixed[i] = b;
            mixed[i + 1] = a;
            i++;
          }
        }
        ev = mixed;
        const got = run(ev);
        expect(view(got.ex), `${f} seed ${seed}`).toEqual(view(base.ex));
        expect(got.stats.skipped.map((s) => s.reason)).toEqual(base.stats.skipped.map((s) => s.reason));
      }
    }
  });

  it('interleaved connections are kept apart', () => {
    const a = load('keepalive.jsonl');
    const b = load('outgoing-close-delimited.jsonl');
    const c = load('pipelined.jsonl').map((e) => ({ ...e, connId: e.connId + 1000n }));
    const mixed: CaptureEvent[] = [];
    const qs = [a, b, c].map((q) => [...q]);
    const r = rng(42);
    while (qs.some((q) => q.length)) {
      const q = qs.filter((x) => x.length)[Math.floor(r() * qs.filter((x) => x.length).length)]!;
      mixed.push(q.shift()!);
    }
    const { ex, stats } = run(mixed);
    expect(stats.skipped).toEqual([]);
    expect(stats.connections).toBe(3);
    const byConn = new Map<string, Exchange[]>();
    for (const e of ex) byConn.set(e.conn, [...(byConn.get(e.conn) ?? []), e]);
    expect([...byConn.values()].map((l) => l.map((e) => e.indexOnConn))).toEqual(
      expect.arrayContaining([[0, 1, 2], [0], [0, 1, 2]]),
    );
    expect(view(ex.filter((e) => e.role === 'outgoing'))).toEqual(view(run(b).ex));
  });
});

// ---- adversarial streams built by hand --------------------------------------------------------

let ts = 1n;
function conn(connId: bigint, source: 'socket' | 'tls' = 'socket') {
  const pos = { in: 0n, out: 0n };
  const evs: CaptureEvent[] = [];
  const base = () => ({ tsNs: ts++, tgid: 7, tid: 7, source, connId });
  return {
    evs,
    data(dir: 'in' | 'out', s: string | Buffer) {
      const data = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
      evs.push({ ...base(), type: 'data', dir, pos: pos[dir], callLen: data.length, chunkOff: 0, data });
      pos[dir] += BigInt(data.length);
      return this;
    },
    /** Bytes the kernel dropped: advance the position and optionally report it. */
    drop(dir: 'in' | 'out', s: string, report = true) {
      if (report) evs.push({ ...base(), type: 'loss', dir, pos: pos[dir], len: s.length, reason: 'ringbuf_full' });
      pos[dir] += BigInt(s.length);
      return this;
    },
    close() {
      evs.push({ ...base(), type: 'close' });
      // a later connection with the same key (reused SSL*) numbers its bytes from 0 again
      pos.in = 0n;
      pos.out = 0n;
      return this;
    },
  };
}
const GET = (p: string) => `GET ${p} HTTP/1.1\r\nHost: h\r\n\r\n`;
const OK = (b: string) => `HTTP/1.1 200 OK\r\nContent-Length: ${b.length}\r\n\r\n${b}`;

describe('adversarial and lossy streams', () => {
  it('classifies garbage and never throws', () => {
    const cases: Array<[string, (c: ReturnType<typeof conn>) => void, SkippedStream['reason'], RegExp]> = [
      [
        'http2 preface, frames cut off',
        (c) => c.data('in', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04').data('out', '\x00\x00\x06\x04\x00'),
        'incomplete',
        /of a frame cut off/,
      ],
      [
        'tls on plaintext',
        (c) =>
          c
            .data('in', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]))
            .data('out', Buffer.from([0x16, 0x03, 0x03, 0, 0x5a])),
        'not-http',
        /TLS/,
      ],
      [
        'huge header line',
        (c) => c.data('in', 'GET / HTTP/1.1\r\nX-Huge: ' + 'x'.repeat(200_000) + '\r\n\r\n'),
        'parse-error',
        /HPE_HEADER_OVERFLOW/,
      ],
      [
        'bad chunk size',
        (c) => c.data('in', GET('/a')).data('out', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nxx\r\n'),
        'parse-error',
        /HPE_INVALID_CHUNK_SIZE/,
      ],
      [
        'truncated body',
        (c) => c.data('in', GET('/a')).data('out', 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a bit'),
        'incomplete',
        /ended inside a response/,
      ],
      [
        'truncated request',
        (c) => c.data('in', 'POST /x HTTP/1.1\r\nContent-Length: 50\r\n\r\nshort'),
        'incomplete',
        /request/,
      ],
      [
        'response without request',
        (c) => c.data('in', GET('/a')).data('out', OK('1') + OK('2')),
        'unpaired',
        /without a request/,
      ],
      [
        'random bytes',
        (c) => c.data('in', Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 131 + 7) % 256))),
        'not-http',
        /HPE_/,
      ],
    ];
    for (const [name, build, reason, detail] of cases) {
      const c = conn(99n);
      build(c);
      c.close();
      const total = c.evs.reduce((n, e) => n + (e.type === 'data' ? e.data.length : 0), 0);
      for (const evs of [
        c.evs,
        resplit(c.evs, (len) =>
          Array(Math.ceil(len / 3))
            .fill(3)
            .map((n, i, a) => (i === a.length - 1 ? len - 3 * i : n)),
        ),
      ]) {
        const { stats } = run(evs);
        expect(stats.skipped, name).toHaveLength(1);
        expect(stats.skipped[0]!.reason, name).toBe(reason);
        expect(stats.skipped[0]!.detail, name).toMatch(detail);
        expect(stats.skipped[0]!.bytes, name).toBeGreaterThan(0);
        expect(stats.skipped[0]!.bytes, name).toBeLessThanOrEqual(total);
      }
    }
  });

  it('exchanges before a reported gap are emitted; everything after it is skipped as bytes-lost', () => {
    const c = conn(5n)
      .data('in', GET('/one'))
      .data('out', OK('first'))
      .data('in', 'GET /two HTTP/1.1\r\n')
      .drop('in', 'Host: h\r\n\r\nGET /three')
      .data('in', ' HTTP/1.1\r\n\r\n')
      .data('out', OK('second') + OK('third'))
      .close();
    const { ex, stats } = run(c.evs);
    expect(ex.map((e) => e.request.target)).toEqual(['/one']);
    expect(stats.skipped).toEqual([expect.objectContaining({ reason: 'bytes-lost' })]);
    expect(stats.skipped[0]!.detail).toMatch(/never arrived \(ringbuf_full\)/);
    expect(stats.skipped[0]!.bytes).toBeGreaterThan(0);
  });

  it('a lost response direction keeps the exchanges already complete and reports the rest', () => {
    const c = conn(6n)
      .data('in', GET('/a') + GET('/b') + GET('/c'))
      .data('out', OK('A'))
      .drop('out', OK('B'))
      .data('out', OK('C'))
      .close();
    const { ex, stats } = run(c.evs);
    expect(ex.map((e) => [e.request.target, e.response.body.toString()])).toEqual([['/a', 'A']]);
    expect(stats.skipped).toEqual([expect.objectContaining({ reason: 'bytes-lost' })]);
    expect(stats.skipped[0]!.detail).toMatch(/2 request\(s\) without a response/);
  });

  it('an unreported gap still open at close is treated as loss, never glued together', () => {
    const c = conn(7n)
      .data('in', GET('/a'))
      .data('out', OK('A'))
      .data('in', 'GET /b HT')
      .drop('in', 'TP/1.1\r\n', false)
      .data('in', 'Host: h\r\n\r\n')
      .data('out', OK('B'))
      .close();
    const { ex, stats } = run(c.evs);
    expect(ex.map((e) => e.request.target)).toEqual(['/a']);
    expect(stats.skipped.map((s) => s.reason)).toEqual(['bytes-lost']);
  });

  it('an upgrade ends HTTP on the connection; a declined h2c upgrade does not', () => {
    const ws = conn(8n)
      .data('in', 'GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n')
      .data('out', 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x02hi')
      .data('in', '\x81\x82abcd12')
      .close();
    const r1 = run(ws.evs);
    expect(r1.ex.map((e) => e.response.statusCode)).toEqual([101]);
    expect(r1.stats.skipped).toEqual([
      expect.objectContaining({ reason: 'not-http', detail: expect.stringMatching(/upgrade to websocket/) }),
    ]);

    const h2c = conn(9n)
      .data(
        'in',
        'GET /a HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n' +
          GET('/b'),
      )
      .data('out', OK('A') + OK('B'))
      .close();
    const r2 = run(h2c.evs);
    expect(r2.ex.map((e) => [e.request.target, e.response.body.toString()])).toEqual([
      ['/a', 'A'],
      ['/b', 'B'],
    ]);
    expect(r2.stats.skipped).toEqual([]);

    const tunnel = conn(10n)
      .data('out', 'CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n')
      .data('in', 'HTTP/1.1 200 Connection Established\r\n\r\n')
      .data('out', '\x16\x03\x01\x00\x05hello')
      .close();
    const r3 = run(tunnel.evs);
    expect(r3.ex.map((e) => [e.role, e.request.method, e.response.statusCode])).toEqual([['outgoing', 'CONNECT', 200]]);
    expect(r3.stats.skipped[0]).toMatchObject({ reason: 'not-http', detail: expect.stringMatching(/CONNECT tunnel/) });
  });

  it('an early response (before the request body ends) is paired once the request completes', () => {
    const c = conn(11n)
      .data('in', 'POST /up HTTP/1.1\r\nContent-Length: 6\r\n\r\nab')
      .data('out', 'HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n')
      .data('in', 'cdef')
      .close();
    const { ex, stats } = run(c.evs);
    expect(ex.map((e) => [e.request.body.toString(), e.response.statusCode])).toEqual([['abcdef', 413]]);
    expect(stats.skipped).toEqual([]);
  });

  it('a reused connection key after close gets a distinct name; finish() reports open connections', () => {
    const c = conn(12n, 'tls')
      .data('out', GET('/a'))
      .data('in', OK('A'))
      .close()
      .data('out', GET('/b'))
      .data('in', OK('B'))
      .close();
    const { ex } = run(c.evs);
    expect(ex.map((e) => [e.conn, e.indexOnConn])).toEqual([
      ['7/tls/c', 0],
      ['7/tls/c#2', 0],
    ]);
    const open = conn(13n).data('in', GET('/x')).data('out', 'HTTP/1.1 200 OK\r\n\r\nuntil close');
    const r = run(open.evs); // no close event: finish() completes the close-delimited body
    expect(r.ex.map((e) => e.response.body.toString())).toEqual(['until close']);
  });

  it('event lines round-trip, and bad lines name the line', async () => {
    const evs = load('keepalive.jsonl');
    for (const e of evs) expect(parseEventLine(writeEventLine(e), 1)).toEqual(e);
    expect(() => parseEventLine('{"type":"data"}', 7, 'x.jsonl')).toThrow(/x\.jsonl:7/);
    expect(() => parseEventLine('not json', 3)).toThrow(/line|<events>:3/);
    const read: CaptureEvent[] = [];
    for await (const e of readEventFile(new URL('keepalive.jsonl', dir).pathname)) read.push(e);
    expect(read).toEqual(evs);
  });
});

// the gzip import keeps a check that fixtures really carry gzip bytes on the wire
it('encodings fixture carries gzip on the wire (not pre-decoded)', () => {
  const evs = load('encodings.jsonl').filter((e): e is DataEvent => e.type === 'data' && e.dir === 'out');
  const wire = Buffer.concat(evs.map((e) => e.data));
  expect(wire.includes(Buffer.from([0x1f, 0x8b]))).toBe(true);
  expect(() => gunzipSync(wire)).toThrow();
});
