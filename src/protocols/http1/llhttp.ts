// The one place that touches Node's internal llhttp binding (HTTPParser from `_http_common`).
// It is undocumented, so everything about it — how it is loaded, its callback slots and their
// argument order, its return conventions — stays in this file behind a typed interface, and
// test/http-llhttp.test.ts pins the behaviour we rely on. Checked on Node 20 (llhttp 9).

import { createRequire } from 'node:module';
import type { HeaderList } from '../../model/exchange.js';

// ---- the untyped binding, typed as narrowly as we use it ------------------------------------

interface NativeParseError extends Error {
  code?: string;
  reason?: string;
  bytesParsed?: number;
}

/** Slots are numeric indices (kOnHeadersComplete etc.) on the parser object. */
interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenientFlags: number): void;
  /** Bytes consumed, or an Error carrying code/reason/bytesParsed. */
  execute(data: Buffer): number | NativeParseError | undefined;
  /** End of stream: completes a close-delimited body, or an Error if a message was cut off. */
  finish(): NativeParseError | undefined | number;
  close(): void;
  [slot: number]: unknown;
}

interface NativeParserCtor {
  new (): NativeParser;
  REQUEST: number;
  RESPONSE: number;
  kOnMessageBegin: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnExecute: number;
  kLenientNone: number;
}

interface Binding {
  HTTPParser: NativeParserCtor;
  methods: string[];
}

function loadBinding(): Binding {
  const require = createRequire(import.meta.url);
  try {
    // `_http_common` re-exports the binding without the DEP0111 warning that process.binding gives.
    const common = require('node:_http_common') as Partial<Binding>;
    if (typeof common.HTTPParser === 'function' && Array.isArray(common.methods)) return common as Binding;
  } catch {
    // fall through
  }
  const pb = (process as unknown as { binding(name: string): Partial<Binding> }).binding('http_parser');
  if (typeof pb.HTTPParser === 'function' && Array.isArray(pb.methods)) return pb as Binding;
  throw new Error("Node's internal HTTP parser (llhttp) is not available in this Node version");
}

let binding: Binding | undefined;
function getBinding(): Binding {
  binding ??= loadBinding();
  return binding;
}

// ---- public, typed API -------------------------------------------------------------------------

export type ParserKind = 'request' | 'response';

export interface ParsedMessage {
  kind: ParserKind;
  /** Requests: method name ("GET"); responses: undefined. */
  method?: string;
  /** Requests: target as sent. */
  target?: string;
  /** Responses. */
  statusCode?: number;
  statusMessage?: string;
  httpVersion: string;
  /** Raw names with their case, in wire order. */
  headers: HeaderList;
  /** Chunked trailers, if any. */
  trailers: HeaderList;
  /** Body with transfer framing (chunked / length) removed; content-encoding untouched. */
  body: Buffer;
  /** Connection upgrade (Upgrade header, 101, CONNECT): nothing after this message is HTTP. */
  upgrade: boolean;
  keepAlive: boolean;
  /** The `tag` passed to execute() with the data in which this message started (e.g. a timestamp). */
  startTag: bigint;
}

export interface MessageHead {
  kind: ParserKind;
  method?: string;
  statusCode?: number;
}

export type ParseOutput =
  /** Headers of a message are complete (body may follow). */
  | { type: 'head'; head: MessageHead }
  /** A whole message. */
  | { type: 'message'; message: ParsedMessage }
  /** The stream is not (or no longer) valid HTTP; the parser is stopped. offset: within the data given to that execute(). */
  | { type: 'error'; code: string; reason: string; offset: number }
  /** The previous message upgraded the connection; `rest` are the bytes after it. The parser is stopped. */
  | { type: 'upgrade'; rest: Buffer };

/** How the response to a given request must be framed; llhttp cannot know this from the response alone. */
export type ResponseBodyMode = 'normal' | 'no-body' | 'tunnel';

export interface HttpStreamParserOptions {
  /** Largest allowed header section in bytes (HPE_HEADER_OVERFLOW beyond). Default 80 KiB. */
  maxHeaderSize?: number;
  /**
   * Response parsers only: method of the request that the response now being parsed answers
   * (HEAD → no body, CONNECT + 2xx → tunnel). `finalIndex` counts the final (non-1xx) responses
   * before this one on the stream, i.e. the index of the request it answers. Called synchronously
   * while parsing, possibly before earlier outputs of the same execute() were seen. Undefined = GET.
   */
  requestMethod?: (finalIndex: number) => string | undefined;
}

const DEFAULT_MAX_HEADER_SIZE = 80 * 1024;

function pairs(raw: unknown): HeaderList {
  const out: HeaderList = [];
  if (!Array.isArray(raw)) return out;
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([String(raw[i]), String(raw[i + 1])]);
  return out;
}

/**
 * Incremental HTTP/1.x parser for one direction of one connection. Feed bytes split anywhere with
 * execute(); it returns what completed. It never throws on bad input: errors come back as output.
 */
export class HttpStreamParser {
  readonly kind: ParserKind;
  private parser: NativeParser | undefined;
  private readonly opts: HttpStreamParserOptions;
  private out: ParseOutput[] = [];
  private stopped = false;
  private tag = 0n;
  // in-flight message
  private startTag = 0n;
  private rawHeaders: HeaderList = [];
  private target = '';
  private headersDone = false;
  private trailers: HeaderList = [];
  private bodyParts: Buffer[] = [];
  private cur: Omit<ParsedMessage, 'headers' | 'trailers' | 'body' | 'startTag' | 'kind'> | undefined;
  private inMessage = false;
  /** Final (non-1xx) response heads seen so far. */
  private finalCount = 0;

  constructor(kind: ParserKind, opts: HttpStreamParserOptions = {}) {
    this.kind = kind;
    this.opts = opts;
    const b = getBinding();
    const P = b.HTTPParser;
    const p = new P();
    p.initialize(
      kind === 'request' ? P.REQUEST : P.RESPONSE,
      {},
      opts.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE,
      P.kLenientNone,
    );
    // Every callback is guarded: an exception escaping into the native parser would leave it broken.
    p[P.kOnMessageBegin] = () => {
      this.inMessage = true;
      this.startTag = this.tag;
      this.rawHeaders = [];
      this.trailers = [];
      this.target = '';
      this.headersDone = false;
      this.bodyParts = [];
      this.cur = undefined;
    };
    // Called when there are many header lines (flushed in batches before headersComplete) and for trailers.
    p[P.kOnHeaders] = (headers: unknown, url: unknown) => {
      if (this.headersDone) this.trailers.push(...pairs(headers));
      else {
        this.rawHeaders.push(...pairs(headers));
        if (typeof url === 'string') this.target += url;
      }
    };
    p[P.kOnHeadersComplete] = (
      major: number,
      minor: number,
      headers: unknown,
      method: unknown,
      url: unknown,
      statusCode: unknown,
      statusMessage: unknown,
      upgrade: unknown,
      keepAlive: unknown,
    ): number => {
      try {
        if (headers) this.rawHeaders.push(...pairs(headers));
        if (typeof url === 'string') this.target += url;
        this.headersDone = true;
        const methodName = typeof method === 'number' ? b.methods[method] : undefined;
        this.cur = {
          httpVersion: `${major}.${minor}`,
          upgrade: upgrade === true,
          keepAlive: keepAlive === true,
        };
        if (kind === 'request') {
          this.cur.method = methodName ?? 'UNKNOWN';
          this.cur.target = this.target;
        } else {
          this.cur.statusCode = typeof statusCode === 'number' ? statusCode : 0;
          this.cur.statusMessage = typeof statusMessage === 'string' ? statusMessage : '';
        }
        this.out.push({
          type: 'head',
          head: kind === 'request' ? { kind, method: this.cur.method } : { kind, statusCode: this.cur.statusCode },
        });
        if (kind === 'response') {
          const st = this.cur.statusCode ?? 0;
          const isFinal = st >= 200 || st === 101;
          const mode = responseBodyMode(this.opts.requestMethod?.(this.finalCount), st);
          if (isFinal) this.finalCount++;
          if (mode === 'no-body') return 1; // llhttp: assume no body
          if (mode === 'tunnel') {
            this.cur.upgrade = true;
            return 2; // llhttp: no body, then upgrade (pause)
          }
        }
      } catch {
        // keep parsing; the message will still complete
      }
      return 0;
    };
    p[P.kOnBody] = (chunk: unknown) => {
      // Copy: the native side may hand out a view of a buffer it reuses.
      if (Buffer.isBuffer(chunk)) this.bodyParts.push(Buffer.from(chunk));
    };
    p[P.kOnMessageComplete] = () => {
      try {
        const cur = this.cur ?? { httpVersion: '1.1', upgrade: false, keepAlive: false };
        // Fields written out rather than `...cur`: V8's object spread cost microseconds a message.
        const message: ParsedMessage = {
          kind,
          httpVersion: cur.httpVersion,
          upgrade: cur.upgrade,
          keepAlive: cur.keepAlive,
          headers: this.rawHeaders,
          trailers: this.trailers,
          body: this.bodyParts.length === 1 ? this.bodyParts[0]! : Buffer.concat(this.bodyParts),
          startTag: this.startTag,
        };
        if (cur.method !== undefined) message.method = cur.method;
        if (cur.target !== undefined) message.target = cur.target;
        if (cur.statusCode !== undefined) message.statusCode = cur.statusCode;
        if (cur.statusMessage !== undefined) message.statusMessage = cur.statusMessage;
        this.out.push({ type: 'message', message });
      } finally {
        this.inMessage = false;
        this.bodyParts = [];
        this.cur = undefined;
      }
    };
    this.parser = p;
  }

  /** True once an error or an upgrade stopped the parser. */
  get isStopped(): boolean {
    return this.stopped;
  }

  /** True while a message has started but not completed. */
  get hasPartialMessage(): boolean {
    return this.inMessage;
  }

  /**
   * Parse more bytes of the stream. `tag` (e.g. the capture time of this data) is remembered as
   * `startTag` of any message that starts in it.
   */
  execute(data: Buffer, tag: bigint = 0n): ParseOutput[] {
    if (this.stopped || !this.parser || data.length === 0) return [];
    this.tag = tag;
    let ret: ReturnType<NativeParser['execute']>;
    try {
      ret = this.parser.execute(data);
    } catch (err) {
      ret = Object.assign(new Error(String(err)), { code: 'HPE_INTERNAL', reason: String(err), bytesParsed: 0 });
    }
    const out = this.takeOutput();
    if (ret instanceof Error) {
      this.stop();
      const code = ret.code ?? 'HPE_UNKNOWN';
      // llhttp pauses on "PRI * HTTP/2.0": that is an HTTP/2 prior-knowledge preface, not HTTP/1.
      out.push({ type: 'error', code, reason: ret.reason ?? ret.message, offset: ret.bytesParsed ?? 0 });
    } else if (typeof ret === 'number' && ret < data.length) {
      // Node's binding resumes after an upgrade pause and reports how far it got.
      this.stop();
      out.push({ type: 'upgrade', rest: Buffer.from(data.subarray(ret)) });
    } else if (ret === undefined) {
      this.stop();
      out.push({ type: 'error', code: 'HPE_INTERNAL', reason: 'parser returned nothing', offset: 0 });
    } else if (out.length > 0) {
      const last = out[out.length - 1]!;
      // An upgrade with nothing after it yet: llhttp has stopped at the message end all the same.
      if (last.type === 'message' && last.message.upgrade) {
        this.stop();
        out.push({ type: 'upgrade', rest: Buffer.alloc(0) });
      }
    }
    return out;
  }

  /**
   * End of stream. Completes a body delimited by the connection close; a message cut off in the
   * middle comes back as an error with code HPE_INVALID_EOF_STATE.
   */
  finish(): ParseOutput[] {
    if (this.stopped || !this.parser) return [];
    let ret: ReturnType<NativeParser['finish']>;
    try {
      ret = this.parser.finish();
    } catch (err) {
      ret = Object.assign(new Error(String(err)), { code: 'HPE_INTERNAL', reason: String(err) });
    }
    const out = this.takeOutput();
    if (ret instanceof Error)
      out.push({ type: 'error', code: ret.code ?? 'HPE_UNKNOWN', reason: ret.reason ?? ret.message, offset: 0 });
    this.stop();
    return out;
  }

  /** Release the native parser. Safe to call more than once. */
  dispose(): void {
    this.stop();
  }

  private takeOutput(): ParseOutput[] {
    const out = this.out;
    this.out = [];
    return out;
  }

  private stop(): void {
    this.stopped = true;
    const p = this.parser;
    this.parser = undefined;
    this.bodyParts = [];
    if (p) {
      try {
        p.close();
      } catch {
        // already gone
      }
    }
  }
}

/** Framing of a response given its request's method (RFC 9112 §6.3). */
export function responseBodyMode(requestMethod: string | undefined, statusCode: number): ResponseBodyMode {
  if (statusCode >= 100 && statusCode < 200) return 'normal'; // llhttp knows 1xx has no body
  if (requestMethod === 'HEAD') return 'no-body';
  if (requestMethod === 'CONNECT' && statusCode >= 200 && statusCode < 300) return 'tunnel';
  return 'normal';
}
