// Capture events → exchanges. Per connection: two byte streams (streams.ts), each parsed by llhttp
// (src/http/llhttp.ts); the direction that carries a request first decides the role; requests and
// responses pair in order. Exchanges are emitted as soon as their response completes. Anything that
// cannot be turned into a whole exchange is reported as a SkippedStream — bad traffic never throws.

import { causeText } from '../errors.js';
import { decodeContentEncoding } from '../protocols/http1/content-encoding.js';
import { joinedHeader } from '../model/headers.js';
import { HttpStreamParser, type ParseOutput, type ParsedMessage } from '../protocols/http1/llhttp.js';
import { connKey, type CaptureEvent, type DataEvent, type Direction, type OpenEvent } from '../model/events.js';
import type { Exchange, ExchangeRole, HttpRequestMessage, HttpResponseMessage, SkippedStream } from '../model/exchange.js';
import { StreamAssembler, type StreamOutput } from './streams.js';

export interface ReconstructStats {
  exchanges: number;
  incoming: number;
  outgoing: number;
  skipped: SkippedStream[];
  bytesIn: number;
  bytesOut: number;
  connections: number;
}

export interface ReconstructorOptions {
  onExchange(ex: Exchange): void;
  onSkipped?(s: SkippedStream): void;
  /** Passed to llhttp; larger header sections are a parse error. Default 80 KiB. */
  maxHeaderSize?: number;
}

/** Bytes buffered per direction while the role of a connection is still unknown. */
const MAX_UNDECIDED_BUFFER = 1024 * 1024;

type Problem = { reason: SkippedStream['reason']; detail: string };

interface Side {
  dir: Direction;
  asm: StreamAssembler;
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
  stopped: boolean;
}

interface DoneRequest {
  msg: ParsedMessage;
  end: number;
}

interface Conn {
  key: string;
  /** Exchange.conn: the key, with #n when a key (e.g. a reused SSL*) comes back after close. */
  name: string;
  tgid: number;
  tls: boolean;
  open: OpenEvent | undefined;
  in: Side;
  out: Side;
  role: ExchangeRole | undefined;
  /** Methods of request heads, by request index minus methodsBase (entries before it were answered). */
  methods: string[];
  methodsBase: number;
  requests: DoneRequest[];
  responses: Array<{ msg: ParsedMessage; end: number; informational: ParsedMessage[] }>;
  informational: ParsedMessage[];
  index: number;
  problems: Problem[];
  /** Set when the connection switched protocols: nothing more is HTTP. */
  tunnel: string | undefined;
}

function newSide(dir: Direction): Side {
  return { dir, asm: new StreamAssembler(), fed: 0, used: 0, parser: undefined, buffered: [], bufferedBytes: 0, notRequest: undefined, held: undefined, stopped: false };
}

function notHttpDetail(code: string, reason: string, data: Buffer | undefined): string {
  if (code === 'HPE_PAUSED_H2_UPGRADE') return 'HTTP/2 prior-knowledge preface (PRI * HTTP/2.0)';
  if (data && data.length >= 3 && data[0] === 0x16 && data[1] === 0x03) return 'TLS handshake record (ciphertext)';
  if (data && data.length >= 3 && data[0] === 0x17 && data[1] === 0x03) return 'TLS application data record (ciphertext)';
  return `${code}: ${reason}`;
}

/** Approximate size of a message on the wire (start line, headers, body without chunk framing). */
function wireSize(m: ParsedMessage): number {
  let n = m.kind === 'request' ? (m.method ?? '').length + (m.target ?? '').length + 12 : 15 + (m.statusMessage ?? '').length;
  for (const [k, v] of [...m.headers, ...m.trailers]) n += k.length + v.length + 4;
  return n + 2 + m.body.length;
}

/** Errors at the very start of a stream mean "this is some other protocol". */
const NOT_HTTP_CODES = new Set(['HPE_INVALID_METHOD', 'HPE_INVALID_CONSTANT', 'HPE_PAUSED_H2_UPGRADE', 'HPE_INVALID_VERSION']);

export class Reconstructor {
  private readonly opts: ReconstructorOptions;
  private readonly conns = new Map<string, Conn>();
  /** How many times each key was seen, to name reused keys apart. Small: one number per key. */
  private readonly generations = new Map<string, number>();
  private readonly stats: ReconstructStats = { exchanges: 0, incoming: 0, outgoing: 0, skipped: [], bytesIn: 0, bytesOut: 0, connections: 0 };
  private finished = false;

  constructor(opts: ReconstructorOptions) {
    this.opts = opts;
  }

  push(ev: CaptureEvent): void {
    if (this.finished) return;
    try {
      this.handle(ev);
    } catch (err) {
      // A bug here must not end a recording: report the connection and drop its state.
      const key = 'connId' in ev ? connKey(ev) : '?';
      const c = this.conns.get(key);
      if (c) {
        c.problems.push({ reason: 'parse-error', detail: `internal error: ${causeText(err)}` });
        this.stopSide(c, c.in);
        this.stopSide(c, c.out);
      }
    }
  }

  finish(): ReconstructStats {
    if (!this.finished) {
      for (const c of [...this.conns.values()]) {
        try {
          this.close(c);
        } catch {
          this.conns.delete(c.key);
        }
      }
      this.finished = true;
    }
    return { ...this.stats, skipped: [...this.stats.skipped] };
  }

  // ---- events ------------------------------------------------------------------------------

  private handle(ev: CaptureEvent): void {
    switch (ev.type) {
      case 'exec':
        return;
      case 'open': {
        const key = connKey(ev);
        const old = this.conns.get(key);
        // An open on a known key starts a new connection (socket keys carry a stamp, so this is rare).
        if (old && (old.in.fed > 0 || old.out.fed > 0 || old.in.asm.received > 0 || old.out.asm.received > 0)) this.close(old);
        this.conn(ev).open = ev;
        return;
      }
      case 'close': {
        const c = this.conns.get(connKey(ev));
        if (c) this.close(c);
        return;
      }
      case 'data': {
        const c = this.conn(ev);
        if (ev.dir === 'in') this.stats.bytesIn += ev.data.length;
        else this.stats.bytesOut += ev.data.length;
        const side = ev.dir === 'in' ? c.in : c.out;
        this.onStream(c, side, side.asm.push(ev));
        return;
      }
      case 'loss': {
        const c = this.conn(ev);
        const side = ev.dir === 'in' ? c.in : c.out;
        this.onStream(c, side, side.asm.loss(ev));
        return;
      }
    }
  }

  private conn(ev: Pick<DataEvent, 'tgid' | 'source' | 'connId'>): Conn {
    const key = connKey(ev);
    let c = this.conns.get(key);
    if (!c) {
      const gen = (this.generations.get(key) ?? 0) + 1;
      this.generations.set(key, gen);
      c = {
        key,
        name: gen === 1 ? key : `${key}#${gen}`,
        tgid: ev.tgid,
        tls: ev.source === 'tls',
        open: undefined,
        in: newSide('in'),
        out: newSide('out'),
        role: undefined,
        methods: [],
        methodsBase: 0,
        requests: [],
        responses: [],
        informational: [],
        index: 0,
        problems: [],
        tunnel: undefined,
      };
      this.conns.set(key, c);
      this.stats.connections++;
    }
    return c;
  }

  private onStream(c: Conn, side: Side, outs: StreamOutput[]): void {
    for (const o of outs) {
      if (o.type === 'lost') {
        c.problems.push({ reason: 'bytes-lost', detail: `${side.dir}: ${o.len} byte(s) at position ${o.pos} never arrived (${o.reason})` });
        this.stopSide(c, side);
      } else {
        this.feed(c, side, o.data, o.tsNs);
      }
    }
  }

  // ---- parsing -----------------------------------------------------------------------------

  private reqSide(c: Conn): Side | undefined {
    if (!c.role) return undefined;
    return c.role === 'incoming' ? c.in : c.out;
  }

  private feed(c: Conn, side: Side, data: Buffer, tsNs: bigint): void {
    if (side.stopped || c.tunnel) return;
    if (side.held) {
      side.held.push({ data, tsNs });
      side.bufferedBytes += data.length;
      if (side.bufferedBytes > MAX_UNDECIDED_BUFFER) {
        c.problems.push({ reason: 'incomplete', detail: `${side.dir}: no response to an upgrade request` });
        this.stopSide(c, side);
      }
      return;
    }
    if (!c.role) {
      side.buffered!.push({ data, tsNs });
      side.bufferedBytes += data.length;
      if (side.notRequest !== undefined) {
        if (side.bufferedBytes > MAX_UNDECIDED_BUFFER) this.giveUpUndecided(c);
        return;
      }
      side.parser ??= new HttpStreamParser('request', this.parserOpts());
    }
    const before = side.fed;
    side.fed += data.length;
    const outs = side.parser!.execute(data, tsNs);
    this.onParse(c, side, outs, data, before);
  }

  private parserOpts(): { maxHeaderSize?: number } {
    return this.opts.maxHeaderSize === undefined ? {} : { maxHeaderSize: this.opts.maxHeaderSize };
  }

  private onParse(c: Conn, side: Side, outs: ParseOutput[], data: Buffer | undefined, chunkStart: number): void {
    for (const o of outs) {
      if (!c.role) {
        if (o.type === 'head') {
          this.decide(c, side, o.head.method ?? 'GET');
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
          const other = side === c.in ? c.out : c.in;
          if (other.notRequest !== undefined) this.giveUpUndecided(c);
          continue;
        }
        continue; // 'message'/'upgrade' cannot come before a head
      }
      this.onOutput(c, side, o, data);
      if (c.tunnel) return;
    }
  }

  /** `side` produced the first request head: it carries requests. */
  private decide(c: Conn, side: Side, method: string): void {
    c.role = side.dir === 'in' ? 'incoming' : 'outgoing';
    side.buffered = undefined;
    side.bufferedBytes = 0;
    side.notRequest = undefined;
    const resp = side === c.in ? c.out : c.in;
    const pending = resp.buffered ?? [];
    resp.buffered = undefined;
    resp.bufferedBytes = 0;
    resp.notRequest = undefined;
    resp.parser?.dispose();
    resp.parser = new HttpStreamParser('response', { ...this.parserOpts(), requestMethod: (i) => c.methods[i - c.methodsBase] });
    resp.fed = 0;
    // Replay the response side now that the first request's method is known (HEAD framing depends on it).
    c.methods.push(method);
    for (const p of pending) this.feedResponse(c, resp, p.data, p.tsNs);
  }

  private feedResponse(c: Conn, resp: Side, data: Buffer, tsNs: bigint): void {
    if (resp.stopped || !resp.parser) return;
    const before = resp.fed;
    resp.fed += data.length;
    this.onParse(c, resp, resp.parser.execute(data, tsNs), data, before);
  }

  private onOutput(c: Conn, side: Side, o: ParseOutput, data: Buffer | undefined): void {
    const isReq = side === this.reqSide(c);
    switch (o.type) {
      case 'head':
        if (isReq) {
          c.methods.push(o.head.method ?? 'GET');
        }
        return;
      case 'message':
        if (isReq) {
          c.requests.push({ msg: o.message, end: side.fed });
        } else {
          const st = o.message.statusCode ?? 0;
          if (st >= 100 && st < 200 && st !== 101) {
            c.informational.push(o.message);
            return;
          }
          c.methods.shift();
          c.methodsBase++;
          c.responses.push({ msg: o.message, end: side.fed, informational: c.informational });
          c.informational = [];
        }
        this.pair(c);
        return;
      case 'upgrade':
        if (isReq) {
          // Hold what follows until the response says whether the switch happened.
          side.parser = undefined;
          side.held = o.rest.length ? [{ data: o.rest, tsNs: 0n }] : [];
          side.bufferedBytes = o.rest.length;
          this.pair(c);
        } else {
          this.startTunnel(c, 'protocol switched after the exchange (upgrade / CONNECT tunnel)');
        }
        return;
      case 'error': {
        // The role is known, so this stream started as HTTP: whatever breaks now is a parse error.
        c.problems.push({ reason: 'parse-error', detail: `${side.dir} (${isReq ? 'requests' : 'responses'}): ${notHttpDetail(o.code, o.reason, data)}` });
        this.stopSide(c, side);
        return;
      }
    }
  }

  /** Emit every exchange whose request and final response are both complete, in order. */
  private pair(c: Conn): void {
    while (c.requests.length > 0 && c.responses.length > 0) {
      const req = c.requests.shift()!;
      const res = c.responses.shift()!;
      const reqSide = this.reqSide(c)!;
      const resSide = reqSide === c.in ? c.out : c.in;
      reqSide.used = Math.max(reqSide.used, req.end);
      resSide.used = Math.max(resSide.used, res.end);
      this.emit(c, req.msg, res.msg, res.informational);
      if (req.msg.upgrade) this.afterUpgrade(c, req.msg, res.msg);
      if (c.tunnel) return;
    }
  }

  private afterUpgrade(c: Conn, req: ParsedMessage, res: ParsedMessage): void {
    const switched = res.statusCode === 101 || (req.method === 'CONNECT' && (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300);
    if (switched) {
      const what = req.method === 'CONNECT' ? `CONNECT tunnel to ${req.target ?? ''}` : `upgrade to ${joinedHeader(req.headers, 'upgrade') ?? 'another protocol'}`;
      this.startTunnel(c, `${what} after exchange ${c.index - 1}`);
      return;
    }
    // The server declined (e.g. h2c ignored): the held bytes are more HTTP/1 requests.
    const side = this.reqSide(c)!;
    const held = side.held ?? [];
    side.held = undefined;
    side.bufferedBytes = 0;
    side.parser = new HttpStreamParser('request', this.parserOpts());
    for (const h of held) {
      const before = side.fed;
      side.fed += h.data.length;
      this.onParse(c, side, side.parser.execute(h.data, h.tsNs || res.startTag), h.data, before);
      if (side.stopped || c.tunnel) break;
    }
  }

  private startTunnel(c: Conn, detail: string): void {
    if (c.tunnel) return;
    c.tunnel = detail;
    for (const s of [c.in, c.out]) {
      s.parser?.dispose();
      s.parser = undefined;
      s.held = undefined;
    }
  }

  private stopSide(c: Conn, side: Side): void {
    side.stopped = true;
    side.parser?.dispose();
    side.parser = undefined;
    side.buffered = undefined;
    side.held = undefined;
    void c;
  }

  private giveUpUndecided(c: Conn): void {
    const details = [c.in, c.out].filter((s) => s.notRequest !== undefined).map((s) => `${s.dir}: ${s.notRequest!.replace(/^parse-error:/, '')}`);
    const parseErr = [c.in, c.out].some((s) => s.notRequest?.startsWith('parse-error:'));
    c.problems.push({ reason: parseErr ? 'parse-error' : 'not-http', detail: details.join('; ') || 'no HTTP request in either direction' });
    this.stopSide(c, c.in);
    this.stopSide(c, c.out);
  }

  // ---- output ------------------------------------------------------------------------------

  private emit(c: Conn, req: ParsedMessage, res: ParsedMessage, informational: ParsedMessage[]): void {
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
      informational: informational.map((m) => ({ statusCode: m.statusCode ?? 0, statusMessage: m.statusMessage ?? '', headers: m.headers })),
    };
    if (res.trailers.length) response.trailers = res.trailers;
    const ex: Exchange = { role: c.role!, tls: c.tls, conn: c.name, indexOnConn: c.index++, tgid: c.tgid, request, response };
    const o = c.open;
    if (o) {
      if (o.remoteAddr !== undefined) ex.remoteAddr = o.remoteAddr;
      if (o.remotePort !== undefined) ex.remotePort = o.remotePort;
      if (o.localAddr !== undefined) ex.localAddr = o.localAddr;
      if (o.localPort !== undefined) ex.localPort = o.localPort;
    }
    this.stats.exchanges++;
    if (ex.role === 'incoming') this.stats.incoming++;
    else this.stats.outgoing++;
    this.opts.onExchange(ex);
  }

  private skip(s: SkippedStream): void {
    this.stats.skipped.push(s);
    try {
      this.opts.onSkipped?.(s);
    } catch {
      // a reporting callback must not break reconstruction
    }
  }

  /** End of a connection: flush streams, complete close-delimited bodies, report what is left. */
  private close(c: Conn): void {
    this.conns.delete(c.key);
    for (const side of [c.in, c.out]) this.onStream(c, side, side.asm.end());
    if (!c.tunnel) {
      const resp = c.role ? (c.role === 'incoming' ? c.out : c.in) : undefined;
      const req = this.reqSide(c);
      // Requests first: a response ending at close may only complete once its request did.
      for (const side of [req, resp]) {
        if (!side || side.stopped || !side.parser) continue;
        const partial = side.parser.hasPartialMessage;
        const outs = side.parser.finish();
        for (const o of outs) {
          if (o.type === 'error') {
            if (partial) c.problems.push({ reason: 'incomplete', detail: `${side.dir}: connection ended inside a ${side === req ? 'request' : 'response'} (${o.reason})` });
          } else this.onOutput(c, side, o, undefined);
        }
      }
      if (!c.role) {
        const any = [c.in, c.out].filter((s) => s.parser?.hasPartialMessage);
        if (any.length && c.problems.length === 0) c.problems.push({ reason: 'incomplete', detail: 'connection ended inside the first request' });
        if (c.problems.length === 0 && [c.in, c.out].some((s) => s.notRequest !== undefined)) {
          const parseErr = [c.in, c.out].some((s) => s.notRequest?.startsWith('parse-error:'));
          const details = [c.in, c.out].filter((s) => s.notRequest !== undefined).map((s) => `${s.dir}: ${s.notRequest!.replace(/^parse-error:/, '')}`);
          c.problems.push({ reason: parseErr ? 'parse-error' : 'not-http', detail: details.join('; ') });
        }
      }
      if (c.requests.length > 0) {
        const lost = c.problems.find((p) => p.reason === 'bytes-lost');
        c.problems.push({ reason: lost ? 'bytes-lost' : 'incomplete', detail: `${c.requests.length} request(s) without a response (first: ${c.requests[0]!.msg.method} ${c.requests[0]!.msg.target})` });
      }
      if (c.responses.length > 0) c.problems.push({ reason: 'unpaired', detail: `${c.responses.length} response(s) without a request` });
    }
    for (const s of [c.in, c.out]) s.parser?.dispose();
    let unused = [c.in, c.out].reduce((n, s) => n + Math.max(0, s.asm.received - s.used) + s.asm.undelivered, 0);
    // `used` is only exact to the end of a parse call: count leftover whole messages at least by their size.
    const leftover = [...c.requests.map((r) => r.msg), ...c.responses.map((r) => r.msg)].reduce((n, m) => n + wireSize(m), 0);
    unused = Math.max(unused, leftover);
    if (c.tunnel) {
      if (unused > 0) this.skip({ conn: c.name, reason: 'not-http', detail: c.tunnel, bytes: unused });
    } else if (c.problems.length > 0) {
      // One record per connection; the first problem is the cause, later ones are consequences.
      const order: SkippedStream['reason'][] = ['bytes-lost', 'not-http', 'parse-error', 'incomplete', 'unpaired'];
      const main = [...c.problems].sort((a, b) => order.indexOf(a.reason) - order.indexOf(b.reason))[0]!;
      const detail = [...new Set(c.problems.map((p) => p.detail))].join('; ');
      this.skip({ conn: c.name, reason: main.reason, detail, bytes: unused });
    }
  }
}
