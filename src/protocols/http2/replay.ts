// The replay half of HTTP/2: the mock server's side (serve: one redirected connection that speaks
// HTTP/2, by ALPN h2 or the h2c preface) and the test runner's side (replay: one gRPC test sent to
// the app over HTTP/2 and its answer compared).
//
// Mocks: a gRPC call is matched by service, then method, then its request messages (the exact
// bytes, else the closest by field is reported); a miss answers grpc-status 14 UNAVAILABLE.
// Any other HTTP/2 request goes to the mock server's HTTP handler (the `kind: Http` mocks; 502 on a
// miss), through node's HTTP/2 compatibility request and response.

import * as http2 from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Duplex } from 'node:stream';
import type { LoadedDoc } from '../../format/protocol-docs.js';
import type { HeaderList } from '../../model/exchange.js';
import type { MockServeContext, ReplayContext, ReplayFailure, ReplayOutcome } from '../protocol.js';
import type { GrpcCall } from './read.js';
import { jsonDiff, messageJson, protoSchema } from './proto.js';
import { decodeWire, type WireField } from './protowire.js';
import { grpcMessages, isGrpcContentType } from './reconstruct.js';

/** grpc-status 14: the call could not reach a service (no mock answers it). */
const UNAVAILABLE = '14';

/** Mocks that answered a call already: a later identical call prefers an unused one. */
const used = new WeakSet<object>();

/** Headers HTTP/2 forbids or recomputes. */
const DROP = new Set([
  'content-length',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'host',
]);

function headerObject(list: HeaderList): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const [n, v] of list) {
    const k = n.toLowerCase();
    if (DROP.has(k) || k.startsWith(':')) continue;
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [String(prev), v];
  }
  return out;
}

export function framed(messages: ReadonlyArray<{ compressed: boolean; data: Buffer }>): Buffer {
  return Buffer.concat(
    messages.flatMap((m) => {
      const prefix = Buffer.alloc(5);
      prefix[0] = m.compressed ? 1 : 0;
      prefix.writeUInt32BE(m.data.length, 1);
      return [prefix, m.data];
    }),
  );
}

// ---- field-level differences, by path ($.1, $.5.2) -----------------------------------------

function flatten(fields: readonly WireField[] | undefined, prefix: string, out: Map<string, string[]>): void {
  for (const f of fields ?? []) {
    const path = `${prefix}.${f.field}`;
    if (f.type === 'len' && f.message && f.text === undefined) {
      flatten(f.message, path, out);
      continue;
    }
    const v =
      f.type === 'varint'
        ? String(f.value)
        : f.type === 'len'
          ? f.text !== undefined
            ? JSON.stringify(f.text)
            : `0x${f.value.toString('hex')}`
          : `0x${f.value.toString('hex')}`;
    out.set(path, [...(out.get(path) ?? []), v]);
  }
}

/** Where two messages differ, field by field; bytes that are not protobuf are compared whole. */
export function messageDiff(
  expected: Buffer,
  actual: Buffer,
  root = '$',
): Array<{ path: string; expected: string; actual: string }> {
  if (expected.equals(actual)) return [];
  const e = decodeWire(expected);
  const a = decodeWire(actual);
  if (!e || !a)
    return [{ path: root, expected: `0x${expected.toString('hex')}`, actual: `0x${actual.toString('hex')}` }];
  const em = new Map<string, string[]>();
  const am = new Map<string, string[]>();
  flatten(e, root, em);
  flatten(a, root, am);
  const out: Array<{ path: string; expected: string; actual: string }> = [];
  for (const path of new Set([...em.keys(), ...am.keys()])) {
    const ev = (em.get(path) ?? []).join(', ');
    const av = (am.get(path) ?? []).join(', ');
    if (ev !== av) out.push({ path, expected: ev || '(absent)', actual: av || '(absent)' });
  }
  return out.length > 0
    ? out
    : [{ path: root, expected: `0x${expected.toString('hex')}`, actual: `0x${actual.toString('hex')}` }];
}

// ---- mocks ------------------------------------------------------------------------------------

/** A gRPC call as the mock server received it. */
export interface GrpcCallIn {
  service: string;
  method: string;
  messages: ReadonlyArray<{ data: Buffer }>;
}

/** Same service, method and request messages: byte for byte, or differing only in the mock's noise fields. */
export function sameCall(mock: GrpcCall, c: GrpcCallIn): boolean {
  if (mock.service !== c.service || mock.method !== c.method || mock.request.messages.length !== c.messages.length)
    return false;
  const noise = new Set(mock.noisePaths ?? []);
  return mock.request.messages.every(
    (x, i) =>
      x.data.equals(c.messages[i]!.data) ||
      (noise.size > 0 && messageDiff(x.data, c.messages[i]!.data).every((d) => noise.has(d.path))),
  );
}

export function serveHttp2(socket: Duplex, ctx: MockServeContext<GrpcCall>): void {
  const server = http2.createServer({}, (req, res) => {
    if (isGrpcContentType(req.headers['content-type'])) {
      answerGrpc(req, res, ctx).catch(() => res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    } else if (ctx.http) {
      ctx.http(req as unknown as IncomingMessage, res as unknown as ServerResponse);
    } else {
      res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('tlsrec: no HTTP mocks for this HTTP/2 request\n');
    }
  });
  server.on('sessionError', () => socket.destroy());
  // nghttp2 reads a socket's handle directly, past what the mock server put back (the first bytes):
  // a socket with buffered bytes is read through the stream API instead.
  const conn = socket.readableLength > 0 ? Duplex.from({ readable: socket, writable: socket }) : socket;
  conn.on('error', () => socket.destroy());
  server.emit('connection', conn);
}

async function answerGrpc(
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
  ctx: MockServeContext<GrpcCall>,
): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const messages = grpcMessages(Buffer.concat(chunks)).messages;
  const path = req.url;
  const m = /^\/([^/]+)\/([^/?]+)/.exec(path);
  const service = m?.[1] ?? '';
  const method = m?.[2] ?? '';
  const sameService = ctx.mocks.filter((d) => d.value.service === service && d.value.method === method);
  const exact = sameService.filter((d) => sameCall(d.value, { service, method, messages }));
  const mock = exact.find((d) => !used.has(d)) ?? exact[exact.length - 1];
  if (mock) {
    const reused = used.has(mock);
    used.add(mock);
    ctx.hit({ mock: mock.name, method: 'POST', url: path, ...(reused ? { reused: true } : {}) });
    const r = mock.value.response;
    const status = Number(r.pseudoHeaders.find(([n]) => n === ':status')?.[1] ?? 200);
    res.writeHead(status, headerObject(r.headers));
    const trailers = headerObject(r.trailers);
    if (Object.keys(trailers).length > 0) res.addTrailers(trailers);
    res.end(framed(r.messages));
    return;
  }
  const closest = closestMock(sameService, ctx.mocks, service, method, messages);
  const message = `no gRPC mock for ${path}${closest ? `; closest ${closest.mock}: ${closest.field} ${closest.detail}` : ''}`;
  ctx.miss({ method: 'POST', url: path, ...(closest ? { closest } : {}), message });
  res.writeHead(200, { 'content-type': 'application/grpc' });
  res.addTrailers({ 'grpc-status': UNAVAILABLE, 'grpc-message': grpcPercentEncode(`tlsrec: ${message}`) });
  res.end();
}

/** grpc-message's percent-encoding: bytes outside printable ASCII, and '%', as %XX of their UTF-8. */
function grpcPercentEncode(text: string): string {
  let out = '';
  for (const b of Buffer.from(text, 'utf8'))
    out +=
      b >= 0x20 && b <= 0x7e && b !== 0x25
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

function closestMock(
  sameCall: readonly LoadedDoc<GrpcCall>[],
  all: readonly LoadedDoc<GrpcCall>[],
  service: string,
  method: string,
  messages: ReadonlyArray<{ data: Buffer }>,
): { mock: string; field: string; detail: string } | undefined {
  const c = sameCall[0];
  if (c) {
    const d = messageDiff(
      c.value.request.messages[0]?.data ?? Buffer.alloc(0),
      messages[0]?.data ?? Buffer.alloc(0),
    )[0];
    return {
      mock: c.name,
      field: `message ${d?.path ?? '$'}`,
      detail: `expected ${d?.expected ?? '?'}, got ${d?.actual ?? '?'}`,
    };
  }
  const s = all.find((d) => d.value.service === service) ?? all[0];
  if (!s) return undefined;
  return s.value.service === service
    ? { mock: s.name, field: 'method', detail: `expected ${s.value.method}, got ${method}` }
    : { mock: s.name, field: 'service', detail: `expected ${s.value.service}, got ${service}` };
}

// ---- tests ------------------------------------------------------------------------------------

interface GrpcAnswer {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

function call(test: GrpcCall, ctx: ReplayContext): Promise<GrpcAnswer> {
  const scheme = test.request.pseudoHeaders.find(([n]) => n === ':scheme')?.[1] === 'https' ? 'https' : 'http';
  const host = ctx.app.host.includes(':') ? `[${ctx.app.host}]` : ctx.app.host;
  return new Promise((resolve, reject) => {
    const session = http2.connect(
      `${scheme}://${host}:${ctx.app.port}`,
      scheme === 'https' ? { rejectUnauthorized: false } : {},
    );
    const fail = (err: Error): void => {
      session.destroy();
      reject(err);
    };
    session.on('error', fail);
    const timer = setTimeout(() => fail(new Error(`no answer within ${ctx.timeoutMs} ms`)), ctx.timeoutMs);
    const onAbort = (): void => fail(new Error('interrupted'));
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    const req = session.request({
      ...headerObject(test.request.headers),
      ':method': 'POST',
      ':path': `/${test.service}/${test.method}`,
    });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => (headers = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', fail);
    req.on('end', () => {
      clearTimeout(timer);
      ctx.signal.removeEventListener('abort', onAbort);
      session.close();
      resolve({ headers, trailers, body: Buffer.concat(chunks) });
    });
    req.end(framed(test.request.messages));
  });
}

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v.join(', ') : v);

export async function replayGrpc(test: LoadedDoc<GrpcCall>, ctx: ReplayContext): Promise<ReplayOutcome> {
  const t = test.value;
  const url = `/${t.service}/${t.method}`;
  const started = performance.now();
  const answer = await call(t, ctx);
  const durationMs = performance.now() - started;
  const failures: ReplayFailure[] = [];
  const fail = (kind: ReplayFailure['kind'], path: string, expected: string, actual: string): void => {
    failures.push({
      kind,
      path,
      expected,
      actual,
      message: `${test.name}: ${path}: expected ${expected}, got ${actual}`,
    });
  };
  const expectedTrailer = (name: string): string | undefined =>
    t.response.trailers.find(([n]) => n.toLowerCase() === name)?.[1];
  // A trailers-only answer carries grpc-status in its headers.
  const actualTrailer = (name: string): string | undefined => one(answer.trailers[name]) ?? one(answer.headers[name]);
  const es = expectedTrailer('grpc-status') ?? '0';
  const as = actualTrailer('grpc-status') ?? '(none)';
  if (es !== as) fail('status', 'grpc-status', es, as);
  const em = expectedTrailer('grpc-message');
  const am = actualTrailer('grpc-message');
  if ((em ?? '') !== (am ?? '')) fail('header', 'grpc-message', em ?? '(none)', am ?? '(none)');
  const got = grpcMessages(answer.body).messages;
  const want = t.response.messages;
  // With the user's .proto files, fields are named ($.currency); without, numbered ($.3).
  const type = protoSchema(ctx.protoDirs)?.method(t.service, t.method)?.response;
  if (got.length !== want.length) fail('body', '$', `${want.length} message(s)`, `${got.length} message(s)`);
  else {
    want.forEach((w, i) => {
      const root = want.length > 1 ? `$[${i}]` : '$';
      const e = type && !w.compressed ? messageJson(type, w.data) : undefined;
      const a = type && e && !got[i]!.compressed ? messageJson(type, got[i]!.data) : undefined;
      const diffs = e && a ? jsonDiff(e, a, root) : messageDiff(w.data, got[i]!.data, root);
      for (const d of diffs) fail('body', d.path, d.expected, d.actual);
    });
  }
  return { method: 'POST', url, passed: failures.length === 0, failures, durationMs };
}
