// An Exchange as bytes, for the spool between the recorder and its writer process: one JSON line
// with everything but the bodies (bigints as decimal strings), then the request body, then the
// response body, raw. Secret header values are redacted before encoding, so the spool on disk
// never holds what the finished files would not.

import type { Exchange, HeaderList, HttpRequestMessage, HttpResponseMessage } from './exchange.js';
import { isSecretHeader, redactHeaders } from '../format/redact.js';

export interface EncodeOptions {
  /** false: keep secret header values (record --no-redact). Default true. */
  redact?: boolean;
  /** Header names redacted in addition to the defaults. */
  redactHeaders?: readonly string[];
}

interface MessageMeta {
  v: string;
  h: HeaderList;
  d: boolean;
  t: string;
  tr?: HeaderList;
  n: number; // body length
}

interface ExchangeMeta {
  role: Exchange['role'];
  tls: boolean;
  conn: string;
  i: number;
  pid: number;
  ra?: string;
  rp?: number;
  la?: string;
  lp?: number;
  q: MessageMeta & { m: string; u: string };
  s: MessageMeta & { c: number; sm: string; inf: HttpResponseMessage['informational'] };
}

/** The headers with secret values redacted; the same array when there is nothing to redact (the common case). */
function redacted(headers: HeaderList, opts: EncodeOptions): HeaderList {
  if (opts.redact === false) return headers;
  for (const [name] of headers) if (isSecretHeader(name, opts.redactHeaders)) return redactHeaders(headers, opts.redactHeaders);
  return headers;
}

function messageMeta(msg: HttpRequestMessage | HttpResponseMessage, opts: EncodeOptions): MessageMeta {
  const meta: MessageMeta = { v: msg.httpVersion, h: redacted(msg.headers, opts), d: msg.bodyDecoded, t: msg.firstByteNs.toString(), n: msg.body.length };
  if (msg.trailers) meta.tr = redacted(msg.trailers, opts);
  return meta;
}

export function encodeExchange(ex: Exchange, opts: EncodeOptions = {}): Buffer[] {
  const req = ex.request;
  const res = ex.response;
  const q = messageMeta(req, opts) as ExchangeMeta['q'];
  q.m = req.method;
  q.u = req.target;
  const sm = messageMeta(res, opts) as ExchangeMeta['s'];
  sm.c = res.statusCode;
  sm.sm = res.statusMessage;
  sm.inf = res.informational.length === 0 ? res.informational : res.informational.map((r) => ({ ...r, headers: redacted(r.headers, opts) }));
  const meta: ExchangeMeta = { role: ex.role, tls: ex.tls, conn: ex.conn, i: ex.indexOnConn, pid: ex.tgid, q, s: sm };
  if (ex.remoteAddr !== undefined) meta.ra = ex.remoteAddr;
  if (ex.remotePort !== undefined) meta.rp = ex.remotePort;
  if (ex.localAddr !== undefined) meta.la = ex.localAddr;
  if (ex.localPort !== undefined) meta.lp = ex.localPort;
  return [Buffer.from(JSON.stringify(meta) + '\n', 'utf8'), req.body, res.body];
}

export function decodeExchange(data: Buffer): Exchange {
  const nl = data.indexOf(0x0a);
  if (nl < 0) throw new Error('spooled exchange without its header line');
  const meta = JSON.parse(data.toString('utf8', 0, nl)) as ExchangeMeta;
  const reqStart = nl + 1;
  const resStart = reqStart + meta.q.n;
  if (resStart + meta.s.n !== data.length) throw new Error(`spooled exchange is ${data.length} bytes, its header says ${resStart + meta.s.n}`);
  // Copies: the spool reader's chunk is reused, the exchange may outlive it.
  const reqBody = Buffer.from(data.subarray(reqStart, resStart));
  const resBody = Buffer.from(data.subarray(resStart));
  const ex: Exchange = {
    role: meta.role,
    tls: meta.tls,
    conn: meta.conn,
    indexOnConn: meta.i,
    tgid: meta.pid,
    request: {
      method: meta.q.m,
      target: meta.q.u,
      httpVersion: meta.q.v,
      headers: meta.q.h,
      body: reqBody,
      bodyDecoded: meta.q.d,
      firstByteNs: BigInt(meta.q.t),
      ...(meta.q.tr ? { trailers: meta.q.tr } : {}),
    },
    response: {
      statusCode: meta.s.c,
      statusMessage: meta.s.sm,
      informational: meta.s.inf,
      httpVersion: meta.s.v,
      headers: meta.s.h,
      body: resBody,
      bodyDecoded: meta.s.d,
      firstByteNs: BigInt(meta.s.t),
      ...(meta.s.tr ? { trailers: meta.s.tr } : {}),
    },
  };
  if (meta.ra !== undefined) ex.remoteAddr = meta.ra;
  if (meta.rp !== undefined) ex.remotePort = meta.rp;
  if (meta.la !== undefined) ex.localAddr = meta.la;
  if (meta.lp !== undefined) ex.localPort = meta.lp;
  return ex;
}
