// HTTP/1.x reconstruction of one connection: each direction's byte stream is parsed by llhttp; the
// direction that carries a request first decides the role (incoming: the app is the server);
// requests and responses pair in order (keep-alive, pipelining). Exchanges are emitted as soon as
// their response completes. What cannot become a whole exchange is reported as a problem of the
// connection; bad traffic never throws.

import { METHODS as METHOD_LIST } from 'node:http';
import type { Direction } from '../../model/events.js';
import type { ExchangeRole, HttpRequestMessage, HttpResponseMessage } from '../../model/exchange.js';
import { joinedHeader } from '../../model/headers.js';
import type {
  ConnectionContext,
  ConnectionEnd,
  ConnectionReconstructor,
  Detection,
  ReconstructLimits,
} from '../protocol.js';
import { decodeContentEncoding } from './content-encoding.js';
import { HttpStreamParser, type ParseOutput, type ParsedMessage } from './llhttp.js';
import { Http2Connection } from '../http2/reconstruct.js';

/** Bytes held per direction while the role of a connection is unknown, or after an upgrade request. */
const MAX_UNDECIDED_BUFFER = 1024 * 1024;

/** Errors at the very start of a stream mean "this is some other protocol". */
const NOT_HTTP_CODES = new Set([
  'HPE_INVALID_METHOD',
  'HPE_INVALID_CONSTANT',
  'HPE_PAUSED_H2_UPGRADE',
  'HPE_INVALID_VERSION',
]);

function notHttpDetail(code: string, reason: string, data: Buffer | undefined): string {
  if (code === 'HPE_PAUSED_H2_UPGRADE') return 'HTTP/2 prior-knowledge preface (PRI * HTTP/2.0)';
  if (data && data.length >= 3 && data[0] === 0x16 && data[1] === 0x03) return 'TLS handshake record (ciphertext)';
  if (data && data.length >= 3 && data[0] === 0x17 && data[1] === 0x03)
    return 'TLS application data record (ciphertext)';
  return `${code}: ${reason}`;
}

/** The methods llhttp knows (Node's list is llhttp's). */
const METHODS = new Set(METHOD_LIST);
const LONGEST_METHOD = Math.max(...METHOD_LIST.map((m) => m.length));

/**
 * Whether the stream starts like a request: a method llhttp knows, then a space ('yes'), or a
 * prefix of one ('more'). Undefined when it does not.
 */
function requestStart(first: Buffer): Detection | undefined {
  const n = Math.min(first.length, LONGEST_METHOD + 1);
  for (let i = 0; i < n; i++) {
    if (first[i] !== 0x20) continue;
    return METHODS.has(first.toString('latin1', 0, i)) ? { verdict: 'yes' } : undefined;
  }
  if (first.length > LONGEST_METHOD) return undefined;
  const start = first.toString('latin1');
  return METHOD_LIST.some((m) => m.startsWith(start)) ? { verdict: 'more' } : undefined;
}

/**
 * A stream is HTTP/1 when it starts with a request method; the connection reconstructor then
 * decides the rest exactly (broken HTTP is still HTTP: it reports the parse error). Otherwise llhttp
 * reads the first bytes as requests: a failure at the very start is 'no', with why. A response
 * stream alone says no: it waits for the request direction, as reconstruction does.
 */
export function detectHttp1(first: Buffer): Detection {
  const quick = requestStart(first);
  if (quick) return quick;
  const parser = new HttpStreamParser('request');
  try {
    for (const o of parser.execute(first, 0n)) {
      if (o.type === 'error' && NOT_HTTP_CODES.has(o.code))
        return { verdict: 'no', why: notHttpDetail(o.code, o.reason, first) };
      return { verdict: 'yes' };
    }
    return { verdict: 'more' };
  } finally {
    parser.dispose();
  }
}

/** A 101 answer that switches to HTTP/2 over cleartext. */
function isH2cUpgrade(res: ParsedMessage): boolean {
  return (joinedHeader(res.headers, 'upgrade') ?? '').split(',').some((t) => t.trim().toLowerCase() === 'h2c');
}

/** Approximate size of a message on the wire (start line, headers, body without chunk framing). */
function wireSize(m: ParsedMessage): number {
  let n =
    m.kind === 'request' ? (m.method ?? '').length + (m.target ?? '').length + 12 : 15 + (m.statusMessage ?? '').length;
  for (const [k, v] of [...m.headers, ...m.trailers]) n += k.length + v.length + 4;
  return n + 2 + m.body.length;
}

interface Side {
  dir: Direction;
  /** Bytes handed to the parser so far (stream offset). */
  fed: number;
  /** Stream offset up to which bytes went into emitted exchanges (approximate to chunk ends). */
  used: number;
  parser: HttpStreamParser | undefined;
  /** While the role is unknown: this side's data, to re-feed into a response parser. */
  buffered: Array<{ data: Buffer; tsNs: bigint }> | undefined;
  bufferedBytes: number;
  /** While the role is unknown: the tentative request parser failed on this side. */
  notRequest: string | undefined;
  /** After a request asked for an upgrade: bytes held until the response says whether it happened. */
  held: Array<{ data: Buffer; tsNs: bigint }> | undefined;
  /** Stream offset where a request that asked for an upgrade ended. */
  upgradeEnd?: number;
  stopped: boolean;
}

function newSide(dir: Direction): Side {
  return {
    dir,
    fed: 0,
    used: 0,
    parser: undefined,
    buffered: [],
    bufferedBytes: 0,
    notRequest: undefined,
    held: undefined,
    stopped: false,
  };
}

export class Http1Connection implements ConnectionReconstructor {
  private readonly ctx: ConnectionContext;
  private readonly limits: ReconstructLimits;
  private readonly in = newSide('in');
  private readonly out = newSide('out');
  private role: ExchangeRole | undefined;
  /** Methods of request heads, by request index minus methodsBase (entries before it were answered). */
  private methods: string[] = [];
  private methodsBase = 0;
  private requests: Array<{ msg: ParsedMessage; end: number }> = [];
  private responses: Array<{ msg: ParsedMessage; end: number; informational: ParsedMessage[] }> = [];
  private informational: ParsedMessage[] = [];
  /** Exchanges emitted so far. */
  private index = 0;
  /** Set when the connection switched protocols: nothing more is HTTP/1. */
  private tunnel: string | undefined;
  /** Set when the connection switched to HTTP/2 (`Upgrade: h2c`, 101): every later byte is its. */
  private h2: { conn: Http2Connection; tsNs: bigint; offset: Record<Direction, number> } | undefined;

  constructor(ctx: ConnectionContext, limits: ReconstructLimits) {
    this.ctx = ctx;
    this.limits = limits;
  }

  data(dir: Direction, data: Buffer, tsNs: bigint): void {
    if (this.h2) this.h2.conn.data(dir, data, tsNs);
    else this.feed(this.side(dir), data, tsNs);
  }

  stop(dir: Direction): void {
    if (this.h2) this.h2.conn.stop(dir);
    this.stopSide(this.side(dir));
  }

  /** End of the connection: complete close-delimited bodies, report what is left. */
  end(): ConnectionEnd {
    if (this.h2) {
      for (const s of [this.in, this.out]) s.parser?.dispose();
      const h2 = this.h2.conn.end();
      return {
        consumed: { in: this.h2.offset.in + h2.consumed.in, out: this.h2.offset.out + h2.consumed.out },
        unpairedBytes: h2.unpairedBytes,
      };
    }
    const problems = this.ctx.problems;
    if (!this.tunnel) {
      const resp = this.role ? (this.role === 'incoming' ? this.out : this.in) : undefined;
      const req = this.reqSide();
      // Requests first: a response ending at close may only complete once its request did.
      for (const side of [req, resp]) {
        if (!side || side.stopped || !side.parser) continue;
        const partial = side.parser.hasPartialMessage;
        const outs = side.parser.finish();
        for (const o of outs) {
          if (o.type === 'error') {
            if (partial)
              problems.push({
                reason: 'incomplete',
                detail: `${side.dir}: connection ended inside a ${side === req ? 'request' : 'response'} (${o.reason})`,
              });
          } else this.onOutput(side, o, undefined);
        }
      }
      if (!this.role) {
        const any = [this.in, this.out].filter((s) => s.parser?.hasPartialMessage);
        if (any.length && problems.length === 0)
          problems.push({ reason: 'incomplete', detail: 'connection ended inside the first request' });
        if (problems.length === 0 && [this.in, this.out].some((s) => s.notRequest !== undefined))
          problems.push(this.notRequestProblem());
      }
      if (this.requests.length > 0) {
        const lost = problems.find((p) => p.reason === 'bytes-lost');
        const first = this.requests[0]!.msg;
        problems.push({
          reason: lost ? 'bytes-lost' : 'incomplete',
          detail: `${this.requests.length} request(s) without a response (first: ${first.method} ${first.target})`,
        });
      }
      if (this.responses.length > 0)
        problems.push({ reason: 'unpaired', detail: `${this.responses.length} response(s) without a request` });
    }
    for (const s of [this.in, this.out]) s.parser?.dispose();
    // `used` is only exact to the end of a parse call: count leftover whole messages at least by their size.
    const unpairedBytes = [...this.requests.map((r) => r.msg), ...this.responses.map((r) => r.msg)].reduce(
      (n, m) => n + wireSize(m),
      0,
    );
    return {
      ...(this.tunnel ? { handedOff: this.tunnel } : {}),
      consumed: { in: this.in.used, out: this.out.used },
      unpairedBytes,
    };
  }

  // ---- parsing -----------------------------------------------------------------------------

  private side(dir: Direction): Side {
    return dir === 'in' ? this.in : this.out;
  }

  private reqSide(): Side | undefined {
    if (!this.role) return undefined;
    return this.role === 'incoming' ? this.in : this.out;
  }

  private parserOpts(): { maxHeaderSize?: number } {
    return this.limits.maxHeaderSize === undefined ? {} : { maxHeaderSize: this.limits.maxHeaderSize };
  }

  private feed(side: Side, data: Buffer, tsNs: bigint): void {
    if (side.stopped || this.tunnel) return;
    if (side.held) {
      side.held.push({ data, tsNs });
      side.bufferedBytes += data.length;
      if (side.bufferedBytes > MAX_UNDECIDED_BUFFER) {
        this.ctx.problems.push({ reason: 'incomplete', detail: `${side.dir}: no response to an upgrade request` });
        this.stopSide(side);
      }
      return;
    }
    if (!this.role) {
      side.buffered!.push({ data, tsNs });
      side.bufferedBytes += data.length;
      if (side.notRequest !== undefined) {
        if (side.bufferedBytes > MAX_UNDECIDED_BUFFER) this.giveUpUndecided();
        return;
      }
      side.parser ??= new HttpStreamParser('request', this.parserOpts());
    }
    side.fed += data.length;
    this.onParse(side, side.parser!.execute(data, tsNs), data);
  }

  private onParse(side: Side, outs: ParseOutput[], data: Buffer | undefined): void {
    for (const o of outs) {
      if (!this.role) {
        if (o.type === 'head') {
          this.decide(side, o.head.method ?? 'GET');
          continue; // later outputs of this batch are handled as the request side
        }
        if (o.type === 'error') {
          side.notRequest = notHttpDetail(o.code, o.reason, data);
          side.parser = undefined;
          if (!NOT_HTTP_CODES.has(o.code)) {
            // Started like HTTP, then broke: a parse error, not another protocol.
            side.notRequest = `parse-error:${o.code}: ${o.reason}`;
          }
          // Both directions failed as requests: not HTTP (or broken HTTP). Otherwise wait for the other side.
          const other = side === this.in ? this.out : this.in;
          if (other.notRequest !== undefined) this.giveUpUndecided();
          continue;
        }
        continue; // 'message'/'upgrade' cannot come before a head
      }
      this.onOutput(side, o, data);
      if (this.tunnel) return;
    }
  }

  /** `side` produced the first request head: it carries requests. */
  private decide(side: Side, method: string): void {
    this.role = side.dir === 'in' ? 'incoming' : 'outgoing';
    side.buffered = undefined;
    side.bufferedBytes = 0;
    side.notRequest = undefined;
    const resp = side === this.in ? this.out : this.in;
    const pending = resp.buffered ?? [];
    resp.buffered = undefined;
    resp.bufferedBytes = 0;
    resp.notRequest = undefined;
    resp.parser?.dispose();
    resp.parser = new HttpStreamParser('response', {
      ...this.parserOpts(),
      requestMethod: (i) => this.methods[i - this.methodsBase],
    });
    resp.fed = 0;
    // Replay the response side now that the first request's method is known (HEAD framing depends on it).
    this.methods.push(method);
    for (const p of pending) this.feedResponse(resp, p.data, p.tsNs);
  }

  private feedResponse(resp: Side, data: Buffer, tsNs: bigint): void {
    if (resp.stopped || !resp.parser) return;
    resp.fed += data.length;
    this.onParse(resp, resp.parser.execute(data, tsNs), data);
  }

  private onOutput(side: Side, o: ParseOutput, data: Buffer | undefined): void {
    const isReq = side === this.reqSide();
    switch (o.type) {
      case 'head':
        if (isReq) this.methods.push(o.head.method ?? 'GET');
        return;
      case 'message':
        if (isReq) {
          this.requests.push({ msg: o.message, end: side.fed });
        } else {
          const st = o.message.statusCode ?? 0;
          if (st >= 100 && st < 200 && st !== 101) {
            this.informational.push(o.message);
            return;
          }
          this.methods.shift();
          this.methodsBase++;
          this.responses.push({ msg: o.message, end: side.fed, informational: this.informational });
          this.informational = [];
        }
        this.pair();
        return;
      case 'upgrade':
        if (isReq) {
          // Hold what follows until the response says whether the switch happened.
          side.parser = undefined;
          side.held = o.rest.length ? [{ data: o.rest, tsNs: 0n }] : [];
          side.bufferedBytes = o.rest.length;
          side.upgradeEnd = side.fed - o.rest.length;
          this.pair();
        } else if (this.h2) {
          // The server's bytes after its 101: its preface (SETTINGS), then the answer on stream 1.
          this.h2.offset[side.dir] = side.fed - o.rest.length;
          if (o.rest.length > 0) this.h2.conn.data(side.dir, o.rest, this.h2.tsNs);
        } else {
          this.startTunnel('protocol switched after the exchange (upgrade / CONNECT tunnel)');
        }
        return;
      case 'error':
        // The role is known, so this stream started as HTTP: whatever breaks now is a parse error.
        this.ctx.problems.push({
          reason: 'parse-error',
          detail: `${side.dir} (${isReq ? 'requests' : 'responses'}): ${notHttpDetail(o.code, o.reason, data)}`,
        });
        this.stopSide(side);
        return;
    }
  }

  /** Emit every exchange whose request and final response are both complete, in order. */
  private pair(): void {
    while (this.requests.length > 0 && this.responses.length > 0) {
      const req = this.requests.shift()!;
      const res = this.responses.shift()!;
      const reqSide = this.reqSide()!;
      const resSide = reqSide === this.in ? this.out : this.in;
      reqSide.used = Math.max(reqSide.used, req.end);
      resSide.used = Math.max(resSide.used, res.end);
      if (req.msg.upgrade && res.msg.statusCode === 101 && isH2cUpgrade(res.msg)) {
        this.continueAsHttp2(reqSide, req.msg, res.msg);
        return;
      }
      this.emit(req.msg, res.msg, res.informational);
      if (req.msg.upgrade) this.afterUpgrade(req.msg, res.msg);
      if (this.tunnel) return;
    }
  }

  private afterUpgrade(req: ParsedMessage, res: ParsedMessage): void {
    const switched =
      res.statusCode === 101 ||
      (req.method === 'CONNECT' && (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300);
    if (switched) {
      const what =
        req.method === 'CONNECT'
          ? `CONNECT tunnel to ${req.target ?? ''}`
          : `upgrade to ${joinedHeader(req.headers, 'upgrade') ?? 'another protocol'}`;
      this.startTunnel(`${what} after exchange ${this.index - 1}`);
      return;
    }
    // The server declined (e.g. h2c ignored): the held bytes are more HTTP/1 requests.
    const side = this.reqSide()!;
    const held = side.held ?? [];
    side.held = undefined;
    side.bufferedBytes = 0;
    side.parser = new HttpStreamParser('request', this.parserOpts());
    for (const h of held) {
      side.fed += h.data.length;
      this.onParse(side, side.parser.execute(h.data, h.tsNs || res.startTag), h.data);
      if (side.stopped || this.tunnel) break;
    }
  }

  /** `Upgrade: h2c` answered by 101: the request becomes stream 1 of an HTTP/2 connection (RFC 7540 §3.2). */
  private continueAsHttp2(reqSide: Side, req: ParsedMessage, res: ParsedMessage): void {
    const conn = new Http2Connection(this.ctx);
    conn.continueAfterUpgrade(reqSide.dir, {
      method: req.method ?? 'GET',
      target: req.target ?? '/',
      headers: req.headers,
      body: req.body,
      firstByteNs: req.startTag,
    });
    // Stream offsets where HTTP/2 starts: after the request, and after the 101 (set by its 'upgrade' output).
    const resSide = reqSide === this.in ? this.out : this.in;
    this.h2 = {
      conn,
      tsNs: res.startTag,
      offset: { [reqSide.dir]: reqSide.upgradeEnd ?? reqSide.used, [resSide.dir]: resSide.fed } as Record<
        Direction,
        number
      >,
    };
    // The client's bytes after its request (held until the 101 came): its preface and frames.
    const held = reqSide.held ?? [];
    reqSide.held = undefined;
    reqSide.bufferedBytes = 0;
    reqSide.parser?.dispose();
    reqSide.parser = undefined;
    for (const h of held) conn.data(reqSide.dir, h.data, h.tsNs || res.startTag);
    // The response parser reports the server's bytes after the 101 as its 'upgrade' output, next.
  }

  private startTunnel(detail: string): void {
    if (this.tunnel) return;
    this.tunnel = detail;
    for (const s of [this.in, this.out]) {
      s.parser?.dispose();
      s.parser = undefined;
      s.held = undefined;
    }
  }

  private stopSide(side: Side): void {
    side.stopped = true;
    side.parser?.dispose();
    side.parser = undefined;
    side.buffered = undefined;
    side.held = undefined;
  }

  /** Why neither direction is a request stream: not HTTP, or HTTP that broke before its first head. */
  private notRequestProblem(): { reason: 'parse-error' | 'not-http'; detail: string } {
    const sides = [this.in, this.out].filter((s) => s.notRequest !== undefined);
    const parseErr = sides.some((s) => s.notRequest!.startsWith('parse-error:'));
    return {
      reason: parseErr ? 'parse-error' : 'not-http',
      detail: sides.map((s) => `${s.dir}: ${s.notRequest!.replace(/^parse-error:/, '')}`).join('; '),
    };
  }

  private giveUpUndecided(): void {
    const p = this.notRequestProblem();
    this.ctx.problems.push({ reason: p.reason, detail: p.detail || 'no HTTP request in either direction' });
    this.stopSide(this.in);
    this.stopSide(this.out);
  }

  // ---- output ------------------------------------------------------------------------------

  private emit(req: ParsedMessage, res: ParsedMessage, informational: ParsedMessage[]): void {
    const reqBody = decodeContentEncoding(req.body, joinedHeader(req.headers, 'content-encoding'));
    const resBody = decodeContentEncoding(res.body, joinedHeader(res.headers, 'content-encoding'));
    const request: HttpRequestMessage = {
      method: req.method ?? 'GET',
      target: req.target ?? '',
      httpVersion: req.httpVersion,
      headers: req.headers,
      body: reqBody.body,
      bodyDecoded: reqBody.decoded,
      firstByteNs: req.startTag,
    };
    if (req.trailers.length) request.trailers = req.trailers;
    const response: HttpResponseMessage = {
      statusCode: res.statusCode ?? 0,
      statusMessage: res.statusMessage ?? '',
      httpVersion: res.httpVersion,
      headers: res.headers,
      body: resBody.body,
      bodyDecoded: resBody.decoded,
      firstByteNs: res.startTag,
      informational: informational.map((m) => ({
        statusCode: m.statusCode ?? 0,
        statusMessage: m.statusMessage ?? '',
        headers: m.headers,
      })),
    };
    if (res.trailers.length) response.trailers = res.trailers;
    this.index++;
    this.ctx.emit({ protocol: 'http1', role: this.role!, request, response });
  }
}
