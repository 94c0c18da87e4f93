// One HTTP/2 connection's two byte streams -> one exchange per stream. Each direction is cut into
// frames (frames.ts) and its header blocks decoded with that direction's HPACK table (hpack.ts);
// frames are gathered per stream id; a stream whose request and response both ended becomes an
// HttpExchange ('http2') or, for content-type application/grpc, a GrpcExchange ('grpc').
// Lost bytes lose the HPACK state and the frame boundaries: nothing after a gap is emitted, and the
// streams it cut are reported as bytes-lost.

import { STATUS_CODES } from 'node:http';
import type { Direction } from '../../model/events.js';
import type { ExchangeRole, GrpcExchange, GrpcMessage, HeaderList, HttpExchange } from '../../model/exchange.js';
import { firstHeader, joinedHeader } from '../../model/headers.js';
import { decodeContentEncoding } from '../http1/content-encoding.js';
import type { ConnectionContext, ConnectionEnd, ConnectionReconstructor, Detection } from '../protocol.js';
import {
  errorCodeName,
  Flag,
  type Frame,
  FrameError,
  FrameReader,
  framePayloadContent,
  FrameType,
  PREFACE,
} from './frames.js';
import { HpackDecoder } from './hpack.js';

/** The client preface starts a connection (TLS with ALPN h2, or h2c with prior knowledge). */
export function detectHttp2(first: Buffer): Detection {
  const n = Math.min(first.length, PREFACE.length);
  if (!first.subarray(0, n).equals(PREFACE.subarray(0, n))) return { verdict: 'no', why: 'no HTTP/2 client preface' };
  return n < PREFACE.length ? { verdict: 'more' } : { verdict: 'yes' };
}

/** content-type of a gRPC call: application/grpc, application/grpc+proto, … (not grpc-web). */
export function isGrpcContentType(ct: string | undefined): boolean {
  return ct !== undefined && /^application\/grpc(\+[\w.-]+)?\s*(;|$)/i.test(ct);
}

interface StreamSide {
  /** The first (final, for responses) header block, pseudo-headers included. */
  headers: HeaderList | undefined;
  /** 1xx header blocks before the final response headers. */
  informational: HeaderList[];
  trailers: HeaderList | undefined;
  data: Buffer[];
  dataBytes: number;
  ended: boolean;
  firstByteNs: bigint;
}

interface H2Stream {
  id: number;
  req: StreamSide;
  res: StreamSide;
}

interface HeaderBlock {
  streamId: number;
  parts: Buffer[];
  endStream: boolean;
  push: boolean;
  tsNs: bigint;
}

interface Side {
  dir: Direction;
  /** 'client' carries the preface and the requests. Undecided until the first bytes tell. */
  kind: 'client' | 'server' | undefined;
  reader: FrameReader | undefined;
  /** Bytes seen before the kind was decided. */
  early: Array<{ data: Buffer; tsNs: bigint }>;
  earlyBytes: Buffer;
  hpack: HpackDecoder;
  block: HeaderBlock | undefined;
  stopped: boolean;
}

const newSide = (dir: Direction): Side => ({
  dir,
  kind: undefined,
  reader: undefined,
  early: [],
  earlyBytes: Buffer.alloc(0),
  hpack: new HpackDecoder(),
  block: undefined,
  stopped: false,
});
const newStreamSide = (tsNs: bigint): StreamSide => ({
  headers: undefined,
  informational: [],
  trailers: undefined,
  data: [],
  dataBytes: 0,
  ended: false,
  firstByteNs: tsNs,
});

const isPseudo = ([n]: [string, string]): boolean => n.startsWith(':');

export class Http2Connection implements ConnectionReconstructor {
  private readonly ctx: ConnectionContext;
  private readonly sides: Record<Direction, Side> = { in: newSide('in'), out: newSide('out') };
  private role: ExchangeRole | undefined;
  private readonly streams = new Map<number, H2Stream>();
  /** Streams emitted, reset or promised (pushed): later frames on them are ignored. */
  private readonly closed = new Set<number>();
  /** A direction lost bytes or could not be read on: exchanges are no longer emitted. */
  private lost = false;
  /** Why: bytes never arrived, or the stream could not be parsed (then the parse error is reported). */
  private cut: 'bytes-lost' | 'parse-error' | undefined;
  private pushes = 0;
  private lostStreams = 0;
  private unpairedBytes = 0;

  constructor(ctx: ConnectionContext) {
    this.ctx = ctx;
  }

  data(dir: Direction, data: Buffer, tsNs: bigint): void {
    const side = this.sides[dir];
    if (side.stopped) return;
    if (!side.kind) {
      side.early.push({ data, tsNs });
      side.earlyBytes = Buffer.concat([side.earlyBytes, data]);
      const d = detectHttp2(side.earlyBytes);
      if (d.verdict === 'more') return;
      this.decide(side, d.verdict === 'yes' ? 'client' : 'server');
      return;
    }
    if (side.reader) this.feed(side, data, tsNs);
    else side.early.push({ data, tsNs });
  }

  /**
   * The connection began as HTTP/1.1 and switched with `Upgrade: h2c` (RFC 7540 §3.2): the upgrade
   * request is stream 1, half-closed by the client; its answer comes over HTTP/2. `clientDir` is
   * the direction of the HTTP/1 request; the bytes fed after this are the client's preface and
   * frames, and the server's SETTINGS and frames.
   */
  continueAfterUpgrade(
    clientDir: Direction,
    request: { method: string; target: string; headers: HeaderList; body: Buffer; firstByteNs: bigint },
  ): void {
    const client = this.sides[clientDir];
    const server = this.sides[clientDir === 'in' ? 'out' : 'in'];
    client.kind = 'client';
    server.kind = 'server';
    this.role = clientDir === 'in' ? 'incoming' : 'outgoing';
    client.reader = new FrameReader(true);
    server.reader = new FrameReader(false);
    const authority = firstHeader(request.headers, 'host');
    const connectionTokens = new Set(
      (joinedHeader(request.headers, 'connection') ?? '')
        .toLowerCase()
        .split(',')
        .map((t) => t.trim()),
    );
    const ordinary = request.headers.filter(([n]) => {
      const k = n.toLowerCase();
      return (
        k !== 'host' && k !== 'connection' && k !== 'upgrade' && k !== 'http2-settings' && !connectionTokens.has(k)
      );
    });
    const s: H2Stream = { id: 1, req: newStreamSide(request.firstByteNs), res: newStreamSide(request.firstByteNs) };
    s.req.headers = [
      [':method', request.method],
      [':path', request.target],
      [':scheme', 'http'],
      ...(authority ? [[':authority', authority] as [string, string]] : []),
      ...ordinary,
    ];
    if (request.body.length > 0) {
      s.req.data.push(request.body);
      s.req.dataBytes = request.body.length;
    }
    s.req.ended = true;
    this.streams.set(1, s);
  }

  stop(dir: Direction): void {
    const side = this.sides[dir];
    if (side.stopped) return;
    side.stopped = true;
    this.cut ??= 'bytes-lost';
    if (!this.lost) {
      this.lost = true;
      // Every stream not yet complete is cut; streams that start later cannot be read either.
      this.lostStreams += this.streams.size;
      this.streams.clear();
    }
  }

  end(): ConnectionEnd {
    const problems = this.ctx.problems;
    for (const side of Object.values(this.sides)) {
      if (side.stopped) continue;
      if (!side.kind && side.earlyBytes.length > 0)
        problems.push({
          reason: 'incomplete',
          detail: `${side.dir}: ${side.earlyBytes.length} byte(s) too few to tell an HTTP/2 client from a server`,
        });
      if (side.block)
        problems.push({
          reason: 'incomplete',
          detail: `${side.dir}: header block of stream ${side.block.streamId} without its END_HEADERS`,
        });
      if (side.reader && side.reader.pending > 0)
        problems.push({
          reason: 'incomplete',
          detail: `${side.dir}: ${side.reader.pending} byte(s) of a frame cut off at the end`,
        });
    }
    for (const s of this.streams.values()) {
      const bytes = s.req.dataBytes + s.res.dataBytes;
      this.unpairedBytes += bytes;
      if (s.req.headers && !s.res.headers)
        problems.push({ reason: 'unpaired', detail: `stream ${s.id}: request without a response` });
      else if (!s.req.headers)
        problems.push({ reason: 'unpaired', detail: `stream ${s.id}: response without a request` });
      else problems.push({ reason: 'incomplete', detail: `stream ${s.id}: response did not end (no END_STREAM)` });
    }
    this.streams.clear();
    if (this.lost) {
      const what = this.cut === 'parse-error' ? 'the unreadable frames' : 'the gap';
      problems.push({
        reason: this.cut ?? 'bytes-lost',
        detail: `HTTP/2: ${this.lostStreams} stream(s) cut by ${what}, and every later one on the connection, not written (the HPACK state is lost)`,
      });
    }
    if (this.pushes > 0)
      problems.push({ reason: 'unpaired', detail: `${this.pushes} server push(es) (PUSH_PROMISE) skipped` });
    return {
      consumed: { in: this.sides.in.reader?.consumed ?? 0, out: this.sides.out.reader?.consumed ?? 0 },
      unpairedBytes: this.unpairedBytes,
    };
  }

  // ---- frames --------------------------------------------------------------------------------

  private decide(side: Side, kind: 'client' | 'server'): void {
    side.kind = kind;
    const other = this.sides[side.dir === 'in' ? 'out' : 'in'];
    if (!other.kind) {
      other.kind = kind === 'client' ? 'server' : 'client';
    } else if (other.kind === kind) {
      this.ctx.problems.push({
        reason: 'parse-error',
        detail:
          kind === 'client'
            ? 'both directions start with the HTTP/2 preface'
            : 'neither direction starts with the HTTP/2 preface',
      });
      this.cut ??= 'parse-error';
      this.stop('in');
      this.stop('out');
      return;
    }
    const client = side.kind === 'client' ? side : other;
    this.role = client.dir === 'in' ? 'incoming' : 'outgoing';
    for (const s of [side, other]) {
      s.reader = new FrameReader(s.kind === 'client');
      const early = s.early;
      s.early = [];
      s.earlyBytes = Buffer.alloc(0);
      for (const e of early) this.feed(s, e.data, e.tsNs);
    }
  }

  private feed(side: Side, data: Buffer, tsNs: bigint): void {
    if (side.stopped || this.lost) return;
    try {
      for (const f of side.reader!.push(data, tsNs)) this.frame(side, f);
    } catch (err) {
      const why =
        err instanceof FrameError ? err.message : `HPACK: ${err instanceof Error ? err.message : String(err)}`;
      this.ctx.problems.push({ reason: 'parse-error', detail: `${side.dir}: ${why}` });
      this.cut ??= 'parse-error';
      this.stop(side.dir);
    }
  }

  private frame(side: Side, f: Frame): void {
    const block = side.block;
    if (block && f.type !== FrameType.CONTINUATION)
      throw new FrameError(`frame type ${f.type} inside the header block of stream ${block.streamId}`);
    switch (f.type) {
      case FrameType.HEADERS:
      case FrameType.PUSH_PROMISE: {
        const b: HeaderBlock = {
          streamId: f.streamId,
          parts: [framePayloadContent(f)],
          endStream: f.type === FrameType.HEADERS && (f.flags & Flag.END_STREAM) !== 0,
          push: f.type === FrameType.PUSH_PROMISE,
          tsNs: f.tsNs,
        };
        if (f.flags & Flag.END_HEADERS) this.headerBlock(side, b);
        else side.block = b;
        return;
      }
      case FrameType.CONTINUATION: {
        if (!block || block.streamId !== f.streamId)
          throw new FrameError(`CONTINUATION on stream ${f.streamId} without its HEADERS`);
        block.parts.push(f.payload);
        if (f.flags & Flag.END_HEADERS) {
          side.block = undefined;
          this.headerBlock(side, block);
        }
        return;
      }
      case FrameType.DATA: {
        const s = this.stream(f.streamId, f.tsNs);
        if (!s) return;
        const part = side.kind === 'client' ? s.req : s.res;
        const content = framePayloadContent(f);
        if (content.length > 0) {
          part.data.push(content);
          part.dataBytes += content.length;
        }
        if (f.flags & Flag.END_STREAM) this.ended(s, part);
        return;
      }
      case FrameType.RST_STREAM: {
        const s = this.streams.get(f.streamId);
        if (!s) return;
        const code = f.payload.length >= 4 ? f.payload.readUInt32BE(0) : -1;
        this.streams.delete(s.id);
        this.closed.add(s.id);
        this.unpairedBytes += s.req.dataBytes + s.res.dataBytes;
        const path = s.req.headers ? firstHeader(s.req.headers, ':path') : undefined;
        this.ctx.problems.push({
          reason: 'incomplete',
          detail: `stream ${s.id}${path ? ` (${path})` : ''} reset by the ${side.kind} (RST_STREAM ${errorCodeName(code)}): recorded as a reset, not written`,
        });
        return;
      }
      case FrameType.GOAWAY: {
        if (f.payload.length >= 8) {
          const code = f.payload.readUInt32BE(4);
          if (code !== 0)
            this.ctx.problems.push({
              reason: 'incomplete',
              detail: `${side.dir}: GOAWAY ${errorCodeName(code)} after stream ${f.payload.readUInt32BE(0) & 0x7fffffff}`,
            });
        }
        return;
      }
      default:
        // SETTINGS, PING, WINDOW_UPDATE, PRIORITY and unknown types (§5.5) carry no exchange content.
        return;
    }
  }

  private headerBlock(side: Side, b: HeaderBlock): void {
    // Decoded even when the stream is ignored: every block changes the direction's HPACK table.
    const headers = side.hpack.decode(b.parts.length === 1 ? b.parts[0]! : Buffer.concat(b.parts));
    if (b.push) {
      this.pushes++;
      return;
    }
    const s = this.stream(b.streamId, b.tsNs);
    if (!s) return;
    const part = side.kind === 'client' ? s.req : s.res;
    if (!part.headers) {
      const status = side.kind === 'server' ? firstHeader(headers, ':status') : undefined;
      if (status !== undefined && /^1\d\d$/.test(status)) part.informational.push(headers);
      else {
        part.headers = headers;
        if (part.data.length === 0) part.firstByteNs = b.tsNs;
      }
    } else {
      part.trailers = headers;
    }
    if (b.endStream) this.ended(s, part);
  }

  /** The stream's state; undefined for streams whose frames are ignored (done, reset, pushed). */
  private stream(id: number, tsNs: bigint): H2Stream | undefined {
    if (id === 0 || this.closed.has(id)) return undefined;
    // Server-initiated (even) streams are server pushes: PUSH_PROMISE was counted.
    if (id % 2 === 0) return undefined;
    let s = this.streams.get(id);
    if (!s) {
      s = { id, req: newStreamSide(tsNs), res: newStreamSide(tsNs) };
      this.streams.set(id, s);
    }
    return s;
  }

  private ended(s: H2Stream, part: StreamSide): void {
    part.ended = true;
    // The answer is complete once the response ended; a request still open then is cut where it stands.
    if (!s.res.ended || !s.req.headers || !s.res.headers) return;
    this.streams.delete(s.id);
    this.closed.add(s.id);
    if (this.lost) return;
    const bad = malformed(s);
    if (bad) {
      this.unpairedBytes += s.req.dataBytes + s.res.dataBytes;
      this.ctx.problems.push({ reason: 'parse-error', detail: `stream ${s.id}: ${bad}: skipped` });
      return;
    }
    this.ctx.emit(this.exchange(s));
  }

  // ---- exchanges -------------------------------------------------------------------------------

  private exchange(
    s: H2Stream,
  ):
    | Omit<HttpExchange, 'conn' | 'tgid' | 'tls' | 'indexOnConn'>
    | Omit<GrpcExchange, 'conn' | 'tgid' | 'tls' | 'indexOnConn'> {
    const reqHeaders = s.req.headers!;
    const resHeaders = s.res.headers!;
    const role = this.role!;
    if (isGrpcContentType(firstHeader(reqHeaders, 'content-type'))) return this.grpcExchange(s, role);
    const headers = reqHeaders.filter((h) => !isPseudo(h));
    const authority = firstHeader(reqHeaders, ':authority');
    if (authority && !firstHeader(headers, 'host')) headers.unshift(['host', authority]);
    const reqBody = decodeContentEncoding(joined(s.req.data), joinedHeader(headers, 'content-encoding'));
    const resOrdinary = resHeaders.filter((h) => !isPseudo(h));
    const resBody = decodeContentEncoding(joined(s.res.data), joinedHeader(resOrdinary, 'content-encoding'));
    const statusCode = Number(firstHeader(resHeaders, ':status') ?? 0);
    const reqTrailers = s.req.trailers?.filter((h) => !isPseudo(h));
    const resTrailers = s.res.trailers?.filter((h) => !isPseudo(h));
    return {
      protocol: 'http2',
      role,
      request: {
        method: firstHeader(reqHeaders, ':method') ?? 'GET',
        target: firstHeader(reqHeaders, ':path') ?? '/',
        httpVersion: '2',
        headers,
        body: reqBody.body,
        bodyDecoded: reqBody.decoded,
        firstByteNs: s.req.firstByteNs,
        ...(reqTrailers ? { trailers: reqTrailers } : {}),
      },
      response: {
        statusCode,
        statusMessage: STATUS_CODES[statusCode] ?? '',
        httpVersion: '2',
        headers: resOrdinary,
        body: resBody.body,
        bodyDecoded: resBody.decoded,
        firstByteNs: s.res.firstByteNs,
        informational: s.res.informational.map((h) => {
          const code = Number(firstHeader(h, ':status'));
          return { statusCode: code, statusMessage: STATUS_CODES[code] ?? '', headers: h.filter((x) => !isPseudo(x)) };
        }),
        ...(resTrailers ? { trailers: resTrailers } : {}),
      },
    };
  }

  private grpcExchange(s: H2Stream, role: ExchangeRole): Omit<GrpcExchange, 'conn' | 'tgid' | 'tls' | 'indexOnConn'> {
    const reqHeaders = s.req.headers!;
    const path = firstHeader(reqHeaders, ':path') ?? '/';
    const m = /^\/([^/]+)\/([^/?]+)/.exec(path);
    const req = grpcMessages(joined(s.req.data));
    const res = grpcMessages(joined(s.res.data));
    // A trailers-only answer (an error, usually) has grpc-status in its only header block.
    const resHeaders = s.res.headers!;
    const trailersOnly =
      !s.res.trailers && s.res.data.length === 0 && firstHeader(resHeaders, 'grpc-status') !== undefined;
    const resOrdinary = resHeaders.filter((h) => !isPseudo(h));
    return {
      protocol: 'grpc',
      role,
      service: m ? m[1]! : '',
      method: m ? m[2]! : path,
      request: {
        pseudoHeaders: reqHeaders.filter(isPseudo),
        headers: reqHeaders.filter((h) => !isPseudo(h)),
        messages: req.messages,
        trailers: s.req.trailers ?? [],
        trailingBytes: req.trailing,
        firstByteNs: s.req.firstByteNs,
      },
      response: {
        pseudoHeaders: resHeaders.filter(isPseudo),
        headers: trailersOnly
          ? resOrdinary.filter(([n]) => !/^grpc-(status|message|status-details-bin)$/i.test(n))
          : resOrdinary,
        messages: res.messages,
        trailers: trailersOnly
          ? resOrdinary.filter(([n]) => /^grpc-(status|message|status-details-bin)$/i.test(n))
          : (s.res.trailers ?? []).filter((h) => !isPseudo(h)),
        trailingBytes: res.trailing,
        firstByteNs: s.res.firstByteNs,
      },
    };
  }
}

/** Why a stream's header blocks do not make a request and a response (RFC 9113 §8.3), if they do not. */
function malformed(s: H2Stream): string | undefined {
  const req = s.req.headers!;
  const method = firstHeader(req, ':method');
  if (!method) return 'request without :method';
  if (method !== 'CONNECT' && !firstHeader(req, ':path')) return 'request without :path';
  const status = firstHeader(s.res.headers!, ':status');
  if (!status || !/^[1-5]\d\d$/.test(status))
    return `response with ${status ? `an invalid :status "${status}"` : 'no :status'}`;
  return undefined;
}

function joined(parts: Buffer[]): Buffer {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** gRPC's length-prefixed messages: flag byte, 4-byte big-endian length, message. */
export function grpcMessages(data: Buffer): { messages: GrpcMessage[]; trailing: number } {
  const messages: GrpcMessage[] = [];
  let off = 0;
  while (data.length - off >= 5) {
    const len = data.readUInt32BE(off + 1);
    if (data.length - off - 5 < len) break;
    messages.push({ compressed: data[off] === 1, data: Buffer.from(data.subarray(off + 5, off + 5 + len)) });
    off += 5 + len;
  }
  return { messages, trailing: data.length - off };
}
