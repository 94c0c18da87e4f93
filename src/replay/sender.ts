// Sends a recorded request to the app under test with undici (keep-alive, one connection pool per
// app base URL) and returns the response with its Content-Encoding undone, ready for compare.ts.
//
// Header policy: the recorded headers are sent as recorded, including Host (apps build absolute
// URLs and redirects from it, and the recording saw the original one), except the framing headers
// that undici computes itself for the body it sends (content-length, transfer-encoding) and
// hop-by-hop headers that describe the recorded connection, not this one.

import { H2CClient, Pool, type Dispatcher } from 'undici';
import type { HeaderList } from '../model/exchange.js';
import type { TestCase } from '../format/types.js';
import { decodeContentEncoding, encodeContentEncoding } from '../protocols/http1/content-encoding.js';
import { joinedHeader } from '../model/headers.js';
import type { ActualResponse } from './compare.js';

const DROPPED_REQUEST_HEADERS = new Set([
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'upgrade',
  'te',
  'trailer',
  // undici refuses Expect: 100-continue; the body is sent in full anyway.
  'expect',
]);

export interface SendResult {
  response: ActualResponse;
  /** The response body exactly as received (still encoded), and whether decoding worked. */
  rawBody: Buffer;
  decoded: boolean;
  durationMs: number;
}

export interface Sender {
  send(test: TestCase): Promise<SendResult>;
  close(): Promise<void>;
}

export interface SenderOptions {
  /** Origin of the running app: "http://127.0.0.1:3000". */
  baseUrl: string;
  /** Per-test limit for headers and for the body (each). Default 30 s. */
  timeoutMs?: number;
}

/** Path and query of a recorded URL (absolute or already a path), for sending to another origin. */
export function requestPath(recordedUrl: string): string {
  if (recordedUrl.startsWith('/')) return recordedUrl;
  try {
    const u = new URL(recordedUrl);
    return `${u.pathname}${u.search}`;
  } catch {
    return `/${recordedUrl}`;
  }
}

/** The recorded headers minus the ones undici sets (or must not send) itself. Pure. */
export function outgoingHeaders(headers: HeaderList): string[] {
  const flat: string[] = [];
  for (const [name, value] of headers) {
    if (DROPPED_REQUEST_HEADERS.has(name.toLowerCase())) continue;
    flat.push(name, value);
  }
  return flat;
}

/** undici's header record -> HeaderList (arrays, e.g. Set-Cookie, become repeated entries). */
function toHeaderList(headers: Record<string, string | string[] | undefined>): HeaderList {
  const out: HeaderList = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push([name, v]);
    else out.push([name, value]);
  }
  return out;
}

export function createSender(opts: SenderOptions): Sender {
  const timeout = opts.timeoutMs ?? 30_000;
  const origin = new URL(opts.baseUrl).origin;
  // One connection at a time is enough (tests run in order) and mirrors a client on keep-alive.
  const pool = new Pool(origin, {
    connections: 1,
    headersTimeout: timeout,
    bodyTimeout: timeout,
    keepAliveTimeout: 4_000,
  });
  // Tests recorded over HTTP/2 (proto_major 2) go over HTTP/2: h2c with prior knowledge to an http
  // origin, ALPN h2 to an https one (the app's own certificate is not checked). Made on first use.
  let h2: Dispatcher | undefined;
  const h2Dispatcher = (): Dispatcher =>
    (h2 ??=
      new URL(origin).protocol === 'https:'
        ? new Pool(origin, {
            connections: 1,
            allowH2: true,
            headersTimeout: timeout,
            bodyTimeout: timeout,
            keepAliveTimeout: 4_000,
            connect: { rejectUnauthorized: false },
          })
        : new H2CClient(origin, { headersTimeout: timeout, bodyTimeout: timeout, keepAliveTimeout: 4_000 }));
  return {
    async send(test: TestCase): Promise<SendResult> {
      const started = performance.now();
      const req = test.request;
      const method = req.method.toUpperCase();
      // The recorded body is stored decoded: re-apply the request's Content-Encoding before sending.
      const body =
        req.body.bytes.length > 0
          ? encodeContentEncoding(req.body.bytes, joinedHeader(req.headers, 'content-encoding'))
          : undefined;
      const dispatcher = req.httpVersion === '2' ? h2Dispatcher() : pool;
      const res = await dispatcher.request({
        path: requestPath(req.url),
        method,
        headers: outgoingHeaders(req.headers),
        body: body ?? null,
      });
      const rawBody = Buffer.from(await res.body.arrayBuffer());
      const headers = toHeaderList(res.headers);
      const dec = decodeContentEncoding(rawBody, joinedHeader(headers, 'content-encoding'));
      return {
        response: { status: res.statusCode, headers, body: dec.body },
        rawBody,
        decoded: dec.decoded,
        durationMs: performance.now() - started,
      };
    },
    async close(): Promise<void> {
      // destroy, not close: close() would wait for a request still in flight (after an interrupt).
      await pool.destroy().catch(() => undefined);
      await h2?.destroy().catch(() => undefined);
    },
  };
}
