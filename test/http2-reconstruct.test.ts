// HTTP/2 and gRPC reconstruction from real traffic: node's http2 (nghttp2) and @grpc/grpc-js talk
// through a loopback relay that keeps the bytes as capture events (test/helpers/tap.ts); the events
// are then fed to the Reconstructor as captured, re-split at every byte boundary, and with a chunk
// lost in the middle. HPACK cases (dynamic table, eviction, size updates) use RFC 7541's examples.

import * as http2 from 'node:http2';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CaptureEvent, DataEvent } from '../src/model/events.js';
import type { Exchange, GrpcExchange, HttpExchange } from '../src/model/exchange.js';
import { firstHeader } from '../src/model/headers.js';
import { HpackDecoder } from '../src/protocols/http2/hpack.js';
import { describeMessage } from '../src/protocols/http2/protowire.js';
import { grpcMockDoc, grpcYaml } from '../src/protocols/http2/files.js';
import { Reconstructor, type ReconstructStats } from '../src/record/reconstruct.js';
import { startTap } from './helpers/tap.js';
import { shopClient, startShopServer } from './helpers/grpc-shop.js';

function run(events: Iterable<CaptureEvent>): { ex: Exchange[]; stats: ReconstructStats } {
  const ex: Exchange[] = [];
  const r = new Reconstructor({ onExchange: (e) => ex.push(e) });
  for (const e of events) r.push(e);
  return { ex, stats: r.finish() };
}

const http = (ex: Exchange[]): HttpExchange[] => ex.filter((e): e is HttpExchange => e.protocol === 'http2');
const grpcs = (ex: Exchange[]): GrpcExchange[] => ex.filter((e): e is GrpcExchange => e.protocol === 'grpc');

/** What an exchange says, times left out (re-splitting changes them). */
function view(ex: Exchange[]): unknown[] {
  return ex.map((e) =>
    e.protocol === 'grpc'
      ? [
          e.role,
          e.service,
          e.method,
          e.request.headers,
          e.request.messages.map((m) => m.data.toString('hex')),
          e.response.headers,
          e.response.messages.map((m) => m.data.toString('hex')),
          e.response.trailers,
        ]
      : e.protocol === 'postgres'
        ? [e.role, e.protocol, e.request.sql]
        : e.protocol === 'redis'
          ? [e.role, e.protocol]
          : [
              e.role,
              e.protocol,
              e.request.method,
              e.request.target,
              e.request.headers,
              e.request.body.toString('base64'),
              e.response.statusCode,
              e.response.headers,
              e.response.body.toString('base64'),
              e.response.trailers ?? null,
            ],
  );
}

/** Each data event cut in two at `at` bytes into the direction's stream (when it falls inside it). */
function cutAt(events: CaptureEvent[], dir: 'in' | 'out', at: bigint): CaptureEvent[] {
  return events.flatMap((e) => {
    if (e.type !== 'data' || e.dir !== dir || at <= e.pos || at >= e.pos + BigInt(e.data.length)) return [e];
    const k = Number(at - e.pos);
    return [
      { ...e, data: e.data.subarray(0, k) },
      { ...e, pos: at, chunkOff: e.chunkOff + k, data: e.data.subarray(k) },
    ];
  });
}

function bytesOf(events: CaptureEvent[], dir: 'in' | 'out'): number {
  return events.reduce((n, e) => n + (e.type === 'data' && e.dir === dir ? e.data.length : 0), 0);
}

/** 30 000 characters that Huffman coding cannot shrink below one 16 KiB frame: CONTINUATION follows. */
const BIG_HEADER = Buffer.from(Array.from({ length: 22_500 }, (_, i) => (i * 7919) % 256)).toString('base64');
const BIG = Buffer.from('0123456789abcdef'.repeat(3000)); // 48 000 bytes: several DATA frames, flow control

function h2Server(): http2.Http2Server {
  const server = http2.createServer({ paddingStrategy: http2.constants.PADDING_STRATEGY_MAX });
  server.on('stream', (stream, headers) => {
    const path = String(headers[':path']);
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      if (path.startsWith('/json')) {
        if (path.includes('push') && stream.pushAllowed) {
          stream.pushStream({ ':path': '/pushed.css' }, (err, push) => {
            if (err) return;
            push.respond({ ':status': 200, 'content-type': 'text/css' });
            push.end('body{}');
          });
        }
        stream.respond({
          ':status': 200,
          'content-type': 'application/json',
          'content-encoding': 'gzip',
          'x-request-path': path,
        });
        stream.end(gzipSync(JSON.stringify({ path, ok: true })));
      } else if (path === '/echo') {
        stream.respond({ ':status': 201, 'content-type': 'application/octet-stream' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-length': String(body.length) }));
        stream.end(body);
      } else if (path === '/shop.v1.Prices/Watch') {
        // server streaming: three length-prefixed messages, then the status in trailers
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        for (const n of [1, 2, 3]) stream.write(Buffer.from([0, 0, 0, 0, 2, 0x08, n]));
        stream.end();
      } else if (path === '/reset') {
        stream.close(http2.constants.NGHTTP2_CANCEL);
      } else {
        stream.respond({ ':status': 404 });
        stream.end();
      }
    });
  });
  return server;
}

function request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer,
): Promise<{ status: number; body: Buffer; trailers: http2.IncomingHttpHeaders | undefined; error?: string }> {
  return new Promise((resolve) => {
    const req = session.request(headers, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let status = 0;
    let trailers: http2.IncomingHttpHeaders | undefined;
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => resolve({ status, body: Buffer.concat(chunks), trailers }));
    req.on('error', (err) => resolve({ status, body: Buffer.concat(chunks), trailers, error: err.message }));
    if (body) req.end(body);
  });
}

let h2Events: CaptureEvent[] = [];
let grpcEvents: CaptureEvent[] = [];
let pushedAccepted = 0;

beforeAll(async () => {
  // HTTP/2: concurrent streams on one connection, a small HPACK table (size updates, eviction),
  // CONTINUATION (a 30 KB header), padding, trailers, a reset, a server push.
  const server = h2Server();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const tap = await startTap((server.address() as { port: number }).port);
  const session = http2.connect(`http://127.0.0.1:${tap.port}`, {
    settings: { headerTableSize: 256 },
    paddingStrategy: http2.constants.PADDING_STRATEGY_MAX,
  });
  session.on('stream', (pushed) => {
    pushedAccepted++;
    pushed.resume();
  });
  const results = await Promise.all([
    ...Array.from({ length: 6 }, (_, i) =>
      request(session, {
        ':path': `/json?n=${i}${i === 0 ? '&push=1' : ''}`,
        'x-trace': `trace-${i}-${'t'.repeat(40)}`,
      }),
    ),
    request(session, { ':method': 'POST', ':path': '/echo', 'content-type': 'application/octet-stream' }, BIG),
    request(session, { ':path': '/json?big-header', 'x-big': BIG_HEADER }),
  ]);
  expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200, 201, 200]);
  const watch = await request(
    session,
    { ':method': 'POST', ':path': '/shop.v1.Prices/Watch', 'content-type': 'application/grpc', te: 'trailers' },
    Buffer.from([0, 0, 0, 0, 3, 0x0a, 1, 0x78]),
  );
  expect(watch.trailers?.['grpc-status']).toBe('0');
  const reset = await request(session, { ':path': '/reset' });
  expect(reset.status).toBe(0); // no response: the server reset the stream
  await new Promise<void>((r) => session.close(() => r()));
  await new Promise((r) => setTimeout(r, 50));
  h2Events = tap.events();
  await tap.close();
  await new Promise<void>((r) => server.close(() => r()));

  // gRPC: @grpc/grpc-js client and server, a unary call, one NOT_FOUND, metadata.
  const shop = await startShopServer();
  const gtap = await startTap(shop.port);
  const client = shopClient(gtap.port);
  const ok = await client.getPrice({ sku: 'book-1', quantity: 2 }, { 'x-tenant': 'acme' });
  expect(ok.code).toBe(0);
  const nf = await client.getPrice({ sku: 'missing', quantity: 1 });
  expect(nf.code).toBe(5);
  client.close();
  await new Promise((r) => setTimeout(r, 100));
  grpcEvents = gtap.events();
  await gtap.close();
  await shop.close();
}, 30_000);

describe('HTTP/2 from node:http2 through the relay', () => {
  it('every stream of the connection is its own exchange, with its own headers and body', () => {
    const { ex, stats } = run(h2Events);
    const h = http(ex);
    expect(h).toHaveLength(8);
    expect(new Set(h.map((e) => e.conn)).size).toBe(1);
    expect(h.every((e) => e.role === 'outgoing' && e.request.httpVersion === '2')).toBe(true);
    const json = h.filter((e) => e.request.target.startsWith('/json?n='));
    expect(json.map((e) => e.request.target).sort()).toEqual([
      '/json?n=0&push=1',
      '/json?n=1',
      '/json?n=2',
      '/json?n=3',
      '/json?n=4',
      '/json?n=5',
    ]);
    for (const e of json) {
      // gzip undone, each body belongs to its own stream
      expect(JSON.parse(e.response.body.toString())).toEqual({ path: e.request.target, ok: true });
      expect(firstHeader(e.response.headers, 'x-request-path')).toBe(e.request.target);
      expect(firstHeader(e.request.headers, 'x-trace')).toBe(`trace-${e.request.target.slice(8, 9)}-${'t'.repeat(40)}`);
      expect(firstHeader(e.request.headers, 'host')).toBe(firstHeader(json[0]!.request.headers, 'host'));
    }
    const echo = h.find((e) => e.request.target === '/echo')!;
    expect(echo.request.method).toBe('POST');
    expect(echo.request.body.equals(BIG)).toBe(true);
    expect(echo.response.statusCode).toBe(201);
    expect(echo.response.body.equals(BIG)).toBe(true);
    expect(echo.response.trailers).toEqual([['x-length', String(BIG.length)]]);
    const big = h.find((e) => e.request.target === '/json?big-header')!;
    expect(firstHeader(big.request.headers, 'x-big')).toBe(BIG_HEADER);
    // the reset stream and the push are reported, not written
    expect(stats.skipped).toHaveLength(1);
    expect(stats.skipped[0]!.detail).toMatch(/stream \d+ \(\/reset\) reset by the server \(RST_STREAM CANCEL\)/);
    expect(stats.skipped[0]!.detail).toMatch(pushedAccepted > 0 ? /1 server push\(es\) \(PUSH_PROMISE\) skipped/ : /./);
  });

  it('a streaming gRPC answer keeps every message, in order, and its trailers', () => {
    const g = grpcs(run(h2Events).ex);
    expect(g.map((e) => [e.service, e.method])).toEqual([['shop.v1.Prices', 'Watch']]);
    expect(g[0]!.request.messages.map((m) => describeMessage(m.data))).toEqual(['1: "x"']);
    expect(g[0]!.response.messages.map((m) => describeMessage(m.data))).toEqual(['1: 1', '1: 2', '1: 3']);
    expect(g[0]!.response.trailers).toEqual([['grpc-status', '0']]);
    const doc = grpcMockDoc(g[0]!, 0, { monoToWallNs: 0n });
    expect(doc.spec.grpcResp.messages?.map((m) => m.decoded_data)).toEqual(['1: 1', '1: 2', '1: 3']);
  });

  it('the frames carry CONTINUATION and padding (what the test above relies on)', () => {
    const out = Buffer.concat(
      h2Events.filter((e): e is DataEvent => e.type === 'data' && e.dir === 'out').map((e) => e.data),
    );
    const types = new Set<number>();
    const flags: number[] = [];
    for (let off = 24; off + 9 <= out.length; ) {
      const len = out.readUIntBE(off, 3);
      types.add(out[off + 3]!);
      flags.push(out[off + 4]!);
      off += 9 + len;
    }
    expect(types.has(0x9)).toBe(true); // CONTINUATION
    expect(flags.some((f) => (f & 0x8) !== 0)).toBe(true); // PADDED
  });

  it('gives the same exchanges when every chunk is cut at any byte boundary', () => {
    const whole = view(run(h2Events).ex);
    for (const dir of ['in', 'out'] as const) {
      const total = bytesOf(h2Events, dir);
      // every boundary of the first 600 bytes (preface, SETTINGS, the first header blocks), then a stride
      for (let at = 1; at < total; at += at < 600 ? 1 : 401) {
        expect(view(run(cutAt(h2Events, dir, BigInt(at))).ex), `${dir} cut at ${at}`).toEqual(whole);
      }
    }
  });

  it('gives the same exchanges fed one byte at a time', () => {
    const oneByte = h2Events.flatMap((e): CaptureEvent[] =>
      e.type !== 'data'
        ? [e]
        : [...e.data].map((_, i) => ({
            ...e,
            pos: e.pos + BigInt(i),
            chunkOff: e.chunkOff + i,
            data: e.data.subarray(i, i + 1),
          })),
    );
    expect(view(run(oneByte).ex)).toEqual(view(run(h2Events).ex));
  });

  it('a chunk lost in the middle: exchanges complete before it are kept, nothing after it is written as if whole', () => {
    const data = h2Events.filter((e): e is DataEvent => e.type === 'data' && e.dir === 'in');
    const lostEv = data[Math.floor(data.length / 2)]!;
    const events = h2Events.map(
      (e): CaptureEvent =>
        e === lostEv
          ? {
              type: 'loss',
              tgid: e.tgid,
              tid: e.tid,
              source: e.source,
              connId: e.connId,
              tsNs: e.tsNs,
              dir: e.dir,
              pos: e.pos,
              len: e.data.length,
              reason: 'ringbuf_full',
            }
          : e,
    );
    const before = run(h2Events.slice(0, h2Events.indexOf(lostEv))).ex.length;
    const { ex, stats } = run(events);
    expect(ex.length).toBe(before);
    expect(ex.length).toBeLessThan(run(h2Events).ex.length);
    expect(stats.skipped).toHaveLength(1);
    expect(stats.skipped[0]!.reason).toBe('bytes-lost');
    expect(stats.skipped[0]!.detail).toMatch(/HPACK state is lost/);
  });

  it('the server as the app: the same connection read as tests (incoming)', () => {
    const flipped = h2Events.map(
      (e): CaptureEvent =>
        e.type === 'data'
          ? { ...e, dir: e.dir === 'in' ? 'out' : 'in' }
          : e.type === 'open'
            ? { ...e, role: 'accept' }
            : e,
    );
    const ex = http(run(flipped).ex);
    expect(ex).toHaveLength(8);
    expect(ex.every((e) => e.role === 'incoming')).toBe(true);
  });
});

describe('gRPC from @grpc/grpc-js through the relay', () => {
  it('a unary call and a NOT_FOUND: service, method, metadata, messages and trailers', () => {
    const { ex, stats } = run(grpcEvents);
    expect(stats.skipped).toEqual([]);
    const g = grpcs(ex);
    expect(g).toHaveLength(2);
    const [ok, nf] = g;
    expect([ok!.service, ok!.method, ok!.role]).toEqual(['shop.v1.Prices', 'GetPrice', 'outgoing']);
    expect(firstHeader(ok!.request.headers, 'x-tenant')).toBe('acme');
    expect(firstHeader(ok!.request.pseudoHeaders, ':path')).toBe('/shop.v1.Prices/GetPrice');
    expect(ok!.request.messages).toHaveLength(1);
    expect(describeMessage(ok!.request.messages[0]!.data)).toBe('1: "book-1"\n2: 2');
    expect(describeMessage(ok!.response.messages[0]!.data)).toBe(
      [
        '1: "book-1"',
        '2: 3998',
        '3: "EUR"',
        '4: "book"',
        '4: "paper"',
        '5 {',
        '  1: 1',
        '  2: 4598175219545276416i64  # double 0.25',
        '}',
      ].join('\n'),
    );
    expect(firstHeader(ok!.response.trailers, 'grpc-status')).toBe('0');
    expect(nf!.response.messages).toEqual([]);
    expect(firstHeader(nf!.response.trailers, 'grpc-status')).toBe('5');
    expect(firstHeader(nf!.response.trailers, 'grpc-message')).toBe('no%20such%20sku:%20missing'); // percent-encoded on the wire;
  });

  it('is written as Keploy kind: gRPC with the wire text and the exact bytes', () => {
    const g = grpcs(run(grpcEvents).ex)[0]!;
    const doc = grpcMockDoc(g, 1, { monoToWallNs: 0n });
    expect(doc.kind).toBe('gRPC');
    expect(doc.spec.grpcReq.headers.pseudo_headers[':path']).toBe('/shop.v1.Prices/GetPrice');
    expect(doc.spec.grpcReq.headers.ordinary_headers['content-type']).toBe('application/grpc');
    expect(doc.spec.grpcReq.body.decoded_data).toBe('1: "book-1"\n2: 2');
    expect(Buffer.from(doc.spec.grpcResp.body.data_base64, 'base64').equals(g.response.messages[0]!.data)).toBe(true);
    expect(doc.spec.grpcResp.trailers.ordinary_headers['grpc-status']).toBe('0');
    expect(grpcYaml(doc)).toMatch(/^kind: gRPC$/m);
  });

  it('gives the same calls at every byte boundary', () => {
    const whole = view(run(grpcEvents).ex);
    for (const dir of ['in', 'out'] as const) {
      const total = bytesOf(grpcEvents, dir);
      for (let at = 1; at < total; at++)
        expect(view(run(cutAt(grpcEvents, dir, BigInt(at))).ex), `${dir} cut at ${at}`).toEqual(whole);
    }
  });
});

describe('hand-made HTTP/2 frames', () => {
  const frame = (type: number, flags: number, stream: number, payload: Buffer): Buffer => {
    const h = Buffer.alloc(9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(stream, 5);
    return Buffer.concat([h, payload]);
  };
  const events = (out: Buffer, inn: Buffer): CaptureEvent[] => {
    const base = { tgid: 3, tid: 3, source: 'socket' as const, connId: 5n };
    return [
      { ...base, tsNs: 1n, type: 'data', dir: 'out', pos: 0n, callLen: out.length, chunkOff: 0, data: out },
      { ...base, tsNs: 2n, type: 'data', dir: 'in', pos: 0n, callLen: inn.length, chunkOff: 0, data: inn },
      { ...base, tsNs: 3n, type: 'close' },
    ];
  };
  const GET = Buffer.from([0x82, 0x84, 0x86]); // :method GET, :path /, :scheme http (static table)

  it('a stream whose response has no :status is skipped with the reason; the next stream is written', () => {
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
    const out = Buffer.concat([preface, frame(4, 0, 0, Buffer.alloc(0)), frame(1, 5, 1, GET), frame(1, 5, 3, GET)]);
    const noStatus = Buffer.from([0x0f, 0x10, 0x0a, ...Buffer.from('text/plain')]); // content-type only
    const inn = Buffer.concat([
      frame(4, 0, 0, Buffer.alloc(0)),
      frame(1, 5, 1, noStatus),
      frame(1, 5, 3, Buffer.from([0x88])),
    ]);
    const { ex, stats } = run(events(out, inn));
    expect(http(ex).map((e) => [e.request.target, e.response.statusCode])).toEqual([['/', 200]]);
    expect(stats.skipped).toHaveLength(1);
    expect(stats.skipped[0]!.reason).toBe('parse-error');
    expect(stats.skipped[0]!.detail).toMatch(/stream 1: response with no :status: skipped/);
  });

  it('an HPACK index past the table is a parse error for the connection, never a crash', () => {
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
    const out = Buffer.concat([preface, frame(1, 5, 1, Buffer.from([0xff, 0x40]))]); // index 62 + 64: empty dynamic table
    const { ex, stats } = run(events(out, Buffer.alloc(0)));
    expect(ex).toEqual([]);
    expect(stats.skipped[0]!.reason).toBe('parse-error');
    expect(stats.skipped[0]!.detail).toMatch(/out: HPACK/);
  });
});

describe('HPACK (RFC 7541 appendix C)', () => {
  const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

  it('C.3: requests without Huffman share the dynamic table', () => {
    const d = new HpackDecoder();
    expect(d.decode(hex('828684410f7777772e6578616d706c652e636f6d'))).toEqual([
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
    ]);
    expect(d.tableSize).toBe(57);
    expect(d.decode(hex('828684be58086e6f2d6361636865'))).toEqual([
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
      ['cache-control', 'no-cache'],
    ]);
    expect(d.tableSize).toBe(110);
    expect(d.decode(hex('828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565'))).toEqual([
      [':method', 'GET'],
      [':scheme', 'https'],
      [':path', '/index.html'],
      [':authority', 'www.example.com'],
      ['custom-key', 'custom-value'],
    ]);
    expect(d.tableSize).toBe(164);
  });

  it('C.5: responses with a 256-byte table evict the oldest entries', () => {
    const d = new HpackDecoder(256);
    expect(
      d.decode(
        hex(
          '4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d',
        ),
      ),
    ).toEqual([
      [':status', '302'],
      ['cache-control', 'private'],
      ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
      ['location', 'https://www.example.com'],
    ]);
    expect(d.tableSize).toBe(222);
    // ":status: 307" is added and ":status: 302" evicted: the table stays at 222
    expect(d.decode(hex('4803333037c1c0bf'))).toEqual([
      [':status', '307'],
      ['cache-control', 'private'],
      ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
      ['location', 'https://www.example.com'],
    ]);
    expect(d.tableSize).toBe(222);
  });

  it('a dynamic table size update empties the table; an index into it then fails', () => {
    const d = new HpackDecoder();
    d.decode(hex('400a637573746f6d2d6b65790c637573746f6d2d76616c7565'));
    expect(d.tableSize).toBe(54);
    expect(d.decode(hex('20 82'))).toEqual([[':method', 'GET']]);
    expect(d.tableSize).toBe(0);
    expect(() => d.decode(hex('be'))).toThrow();
    expect(d.decode(hex('3fe11f 82'))).toEqual([[':method', 'GET']]); // back to 4096
  });
});

afterAll(() => undefined);
