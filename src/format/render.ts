// Pure planning for the test-set writer (test-set-writer.ts): Exchange -> on-disk document -> YAML text. No file system here.

import { Document, parse, Scalar } from 'yaml';
import type { HttpExchange as Exchange, HeaderList, HttpRequestMessage } from '../model/exchange.js';
import { emitYaml, UnsupportedValue, type BlockPaths } from './emit.js';
import { encodeBody, storedAsBase64, type StoredBody } from './stored-body.js';
import { firstHeader } from '../model/headers.js';
import { isSecretHeader, redactHeaders } from './redact.js';
import { findVolatileFields, windowAround } from './volatile.js';
import type { RecordingRefs, Role } from './variables.js';
import { shellQuote } from '../shell-quote.js';
import {
  API_VERSION,
  type HeaderMapDoc,
  type HttpRequestDoc,
  type HttpResponseDoc,
  type MockDoc,
  type NoiseDoc,
  type TestCaseDoc,
} from './types.js';

export interface DocOptions {
  /** false: write header values as recorded (default true: secrets become [REDACTED]). */
  redact?: boolean;
  /** Header names redacted in addition to the defaults (see redact.ts). */
  redactHeaders?: readonly string[];
  /** Base of tests' req.url ("http://localhost:3000"); default: scheme + Host header of the request. */
  appUrlBase?: string;
  /**
   * Added to kernel timestamps (bpf_ktime_get_ns, CLOCK_MONOTONIC) to get Unix-epoch nanoseconds.
   * Default: measured once when the module loads (process.hrtime is the same clock).
   */
  monoToWallNs?: bigint;
  /** false: do not add record-time noise for volatile response fields (volatile.ts). Default true. */
  flagVolatile?: boolean;
  /** Directories of the user's .proto files (record --proto): gRPC messages are also written as JSON. */
  protoDirs?: readonly string[];
  /**
   * Secrets become named references and values that flow become variables (variables.ts); one per
   * test set, fed every exchange in order. Without it, secret headers become [REDACTED].
   */
  refs?: RecordingRefs;
}

/** Response headers that change on every request: ignored when comparing by default. */
export const DEFAULT_TEST_NOISE: readonly string[] = ['Date'];

const DEFAULT_MONO_TO_WALL = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();

/** The offset used when DocOptions.monoToWallNs is not given (measured when this module loaded). */
export function defaultMonoToWallNs(): bigint {
  return DEFAULT_MONO_TO_WALL;
}

/** Nanoseconds since the epoch -> RFC 3339 with nanoseconds, UTC ("2024-08-02T06:52:03.451148235Z"). */
export function rfc3339(epochNs: bigint): string {
  const ns = epochNs < 0n ? 0n : epochNs;
  const frac = String(ns % 1_000_000_000n).padStart(9, '0');
  // toISOString ends in ".sssZ"; the milliseconds are replaced by all nine digits
  return new Date(Number(ns / 1_000_000n)).toISOString().slice(0, -5) + '.' + frac + 'Z';
}

function wallNs(kernelNs: bigint, opts: DocOptions): bigint {
  return kernelNs + (opts.monoToWallNs ?? DEFAULT_MONO_TO_WALL);
}

/** Keploy's flat map; names keep their case, a repeated name (any case) becomes a list. */
export function headersToMap(headers: HeaderList): HeaderMapDoc {
  const out: HeaderMapDoc = {};
  const nameOf = new Map<string, string>();
  for (const [name, value] of headers) {
    const first = nameOf.get(name.toLowerCase());
    if (first === undefined) {
      nameOf.set(name.toLowerCase(), name);
      out[name] = value;
    } else {
      const prev = out[first]!;
      out[first] = Array.isArray(prev) ? [...prev, value] : [prev, value];
    }
  }
  return out;
}

function protoOf(httpVersion: string): { major: number; minor: number } {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(httpVersion.trim());
  return m ? { major: Number(m[1]), minor: Number(m[2] ?? 0) } : { major: 1, minor: 1 };
}

function storedBody(
  bytes: Buffer,
  headers: HeaderList,
  decoded: boolean,
): StoredBody & { body_content_encoded?: true } {
  if (!decoded && bytes.length > 0) {
    // Still Content-Encoding-encoded (could not be decoded while recording): keep the wire bytes.
    return {
      body: encodeBody(bytes, 'application/octet-stream').body,
      body_encoding: 'base64',
      body_content_encoded: true,
    };
  }
  return encodeBody(bytes, firstHeader(headers, 'content-type'));
}

function isAbsolute(target: string): boolean {
  return /^https?:\/\//i.test(target);
}

function hostOf(ex: Exchange, fallbackPort: number | undefined, fallbackAddr: string | undefined): string {
  const host = firstHeader(ex.request.headers, 'host');
  if (host) return host;
  const addr = fallbackAddr && !/^(0\.0\.0\.0|::)$/.test(fallbackAddr) ? fallbackAddr : 'localhost';
  const a = addr.includes(':') ? `[${addr}]` : addr;
  return fallbackPort ? `${a}:${fallbackPort}` : a;
}

/** Absolute URL of a test's request: the app as reached by the recorded client. */
export function testUrl(ex: Exchange, opts: DocOptions): string {
  const target = ex.request.target;
  if (isAbsolute(target)) return target;
  if (opts.appUrlBase) return opts.appUrlBase.replace(/\/+$/, '') + target;
  const scheme = ex.tls ? 'https' : 'http';
  return `${scheme}://${hostOf(ex, ex.localPort, undefined)}${target}`;
}

/** Absolute URL of an outgoing call: scheme from TLS, host from the Host header (or the peer). */
export function mockUrl(ex: Exchange): string {
  const target = ex.request.target;
  if (isAbsolute(target)) return target;
  const scheme = ex.tls ? 'https' : 'http';
  return `${scheme}://${hostOf(ex, ex.remotePort, ex.remoteAddr)}${target}`;
}

function urlParams(url: string): Record<string, string> | undefined {
  const q = url.indexOf('?');
  if (q < 0) return undefined;
  const params = new URLSearchParams(url.slice(q + 1).split('#', 1)[0]);
  const out: Record<string, string> = {};
  for (const [k, v] of params) if (!(k in out)) out[k] = v;
  return Object.keys(out).length > 0 ? out : undefined;
}

function redacted(headers: HeaderList, opts: DocOptions): HeaderList {
  return opts.redact === false ? headers : redactHeaders(headers, opts.redactHeaders);
}

function requestDoc(
  ex: Exchange,
  url: string,
  opts: DocOptions,
  withParams: boolean,
  role: Role = withParams ? 'test' : 'mock',
): HttpRequestDoc {
  const req = ex.request;
  const refs = opts.refs;
  const headers = refs ? refs.requestHeaders(req.headers, role) : redacted(req.headers, opts);
  if (refs) url = refs.requestUrl(url, role);
  const proto = protoOf(req.httpVersion);
  const stored = storedBody(req.body, req.headers, req.bodyDecoded);
  if (refs && stored.body_encoding === undefined)
    stored.body = refs.requestBody(stored.body, firstHeader(req.headers, 'content-type'), role);
  const doc: HttpRequestDoc = {
    method: req.method,
    proto_major: proto.major,
    proto_minor: proto.minor,
    url,
    header: headersToMap(headers),
    ...stored,
    timestamp: rfc3339(wallNs(req.firstByteNs, opts)),
  };
  const params = withParams ? urlParams(url) : undefined;
  if (params) {
    // url_params sits after url, as in Keploy's files
    const { method, proto_major, proto_minor, url: u, ...rest } = doc;
    return { method, proto_major, proto_minor, url: u, url_params: params, ...rest };
  }
  return doc;
}

function responseDoc(ex: Exchange, opts: DocOptions): HttpResponseDoc {
  const res = ex.response;
  const proto = protoOf(res.httpVersion);
  const stored = storedBody(res.body, res.headers, res.bodyDecoded);
  const refs = opts.refs;
  const role: Role = ex.role === 'incoming' ? 'test' : 'mock';
  if (refs && stored.body_encoding === undefined)
    stored.body = refs.responseBody(stored.body, firstHeader(res.headers, 'content-type'), role);
  const { body, ...encoding } = stored;
  return {
    status_code: res.statusCode,
    header: headersToMap(refs ? refs.responseHeaders(res.headers, role) : redacted(res.headers, opts)),
    body,
    ...encoding,
    status_message: res.statusMessage,
    proto_major: proto.major,
    proto_minor: proto.minor,
    timestamp: rfc3339(wallNs(res.firstByteNs, opts)),
  };
}

/** Default noise: Date, plus every response header whose value was redacted (it can never match). */
export function defaultNoise(
  responseHeaders: HeaderList,
  extraRedact: readonly string[] = [],
  redact = true,
): NoiseDoc {
  const noise: NoiseDoc = {};
  const seen = new Set<string>();
  for (const name of DEFAULT_TEST_NOISE) {
    noise[`header.${name}`] = [];
    seen.add(name.toLowerCase());
  }
  for (const [name] of responseHeaders) {
    if (!redact || seen.has(name.toLowerCase()) || !isSecretHeader(name, extraRedact)) continue;
    seen.add(name.toLowerCase());
    noise[`header.${name}`] = [];
  }
  return noise;
}

const CURL_BODY_LIMIT = 16 * 1024;

/** The request as a curl command (informational, like Keploy's `curl:` field). */
export function curlCommand(
  req: HttpRequestMessage,
  url: string,
  opts: DocOptions = {},
  written?: HttpRequestDoc,
): string {
  const lines = [`curl --request ${req.method}`, `--url ${shellQuote(url)}`];
  // With references, the request as written (secrets already references) instead of the recorded one.
  const headers: HeaderList = written
    ? Object.entries(written.header).flatMap(([n, v]) =>
        (Array.isArray(v) ? v : [v]).map((x): [string, string] => [n, x]),
      )
    : redacted(req.headers, opts);
  for (const [name, value] of headers) {
    if (/^(content-length|transfer-encoding)$/i.test(name)) continue; // curl computes the framing
    lines.push(`--header ${shellQuote(`${name}: ${value}`)}`);
  }
  if (req.body.length > 0) {
    // Only whether it is stored as base64: formatting it (JSON checked and pretty-printed) again here
    // would repeat the work of spec.req.body.
    if (storedAsBase64(req.body, firstHeader(req.headers, 'content-type')) || !req.bodyDecoded)
      lines.push('--data-binary @body.bin  # binary body: see spec.req.body');
    else if (req.body.length > CURL_BODY_LIMIT) lines.push('--data-binary @body.txt  # large body: see spec.req.body');
    else
      lines.push(`--data-raw ${shellQuote(written?.body.includes('{{') ? written.body : req.body.toString('utf8'))}`);
  }
  return lines.map((l, i) => (i === 0 ? l : '  ' + l)).join(' \\\n') + '\n';
}

/** Default noise, then the response fields that are unmistakably volatile (volatile.ts). */
function testNoise(ex: Exchange, url: string, opts: DocOptions): NoiseDoc {
  const noise = defaultNoise(ex.response.headers, opts.redactHeaders, opts.redact !== false);
  if (opts.flagVolatile === false) return noise;
  const ms = (ns: bigint): number => Number(wallNs(ns, opts) / 1_000_000n);
  const fields = findVolatileFields({
    request: { url, body: ex.request.body },
    response: {
      headers: ex.response.headers,
      body: ex.response.bodyDecoded ? ex.response.body : Buffer.alloc(0),
      contentType: firstHeader(ex.response.headers, 'content-type'),
    },
    window: windowAround(ms(ex.request.firstByteNs), ms(ex.response.firstByteNs)),
    skipHeaders: Object.keys(noise).map((k) => k.slice('header.'.length)),
  });
  for (const f of fields) noise[f.key] ??= [];
  return noise;
}

export function exchangeToTestDoc(ex: Exchange, n: number, opts: DocOptions = {}): TestCaseDoc {
  const url = testUrl(ex, opts);
  // The request before the response: a value can flow from one into the other (refs).
  const req = requestDoc(ex, url, opts, true);
  return {
    version: API_VERSION,
    kind: 'Http',
    name: `test-${n}`,
    spec: {
      metadata: {},
      req,
      resp: responseDoc(ex, opts),
      objects: [],
      assertions: { noise: testNoise(ex, url, opts) },
      created: Number(wallNs(ex.request.firstByteNs, opts) / 1_000_000_000n),
    },
    curl: curlCommand(ex.request, opts.refs ? req.url : url, opts, opts.refs ? req : undefined),
  };
}

export function exchangeToMockDoc(ex: Exchange, n: number, opts: DocOptions = {}): MockDoc {
  return {
    version: API_VERSION,
    kind: 'Http',
    name: `mock-${n}`,
    spec: {
      metadata: { name: 'Http', operation: ex.request.method, type: 'HTTP_CLIENT' },
      req: requestDoc(ex, mockUrl(ex), opts, false),
      resp: responseDoc(ex, opts),
      objects: [],
      created: Number(wallNs(ex.request.firstByteNs, opts) / 1_000_000_000n),
      reqTimestampMock: rfc3339(wallNs(ex.request.firstByteNs, opts)),
      resTimestampMock: rfc3339(wallNs(ex.response.firstByteNs, opts)),
    },
    connectionId: ex.conn,
  };
}

/**
 * Characters YAML text should not carry raw outside double quotes' escapes: C0 controls but tab
 * and LF, DEL and C1 controls (js-yaml refuses the file), NEL and U+2028/2029 (line breaks to
 * YAML 1.1 readers), BOM, non-characters; and lone surrogates (hasLoneSurrogate).
 */
const NOT_IN_BLOCK = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]/;
const SURROGATE = /[\ud800-\udfff]/;

/** UTF-8 decoding never yields them, but a string can; a regex for them is 5x slower on MiB bodies. */
function hasLoneSurrogate(text: string): boolean {
  return SURROGATE.test(text) && !(text as string & { isWellFormed(): boolean }).isWellFormed();
}

function hasRawUnsafe(text: string): boolean {
  return NOT_IN_BLOCK.test(text) || hasLoneSurrogate(text);
}

/** The characters of the regular expression class \s (and of String.prototype.trim). */
function isSpace(c: number): boolean {
  if (c <= 0x20) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  if (c < 0xa0) return false;
  return (
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

/**
 * Text that a block literal certainly holds exactly: no special characters, no empty lines (but
 * one final newline), no blanks at the start of the text or at the end of any line. Pretty-printed
 * JSON always is. One pass over line ends, no copies (bodies can be megabytes).
 */
function isPlainBlockText(text: string): boolean {
  if (text === '' || hasRawUnsafe(text) || isSpace(text.charCodeAt(0))) return false;
  const end = text.endsWith('\n') ? text.length - 1 : text.length;
  let lineStart = 0;
  for (;;) {
    const nl = text.indexOf('\n', lineStart);
    const lineEnd = nl < 0 || nl > end ? end : nl;
    // an empty line, or one ending in a blank (a line of blanks is both)
    if (lineEnd === lineStart || isSpace(text.charCodeAt(lineEnd - 1))) return false;
    if (lineEnd >= end) return true;
    lineStart = lineEnd + 1;
  }
}

/** A block literal when it reads back identically, otherwise a double-quoted string (always exact). */
export function bodyScalarType(text: string): Scalar.Type {
  // The common case needs no round trip; the probe below writes and re-parses the whole body.
  if (isPlainBlockText(text)) return Scalar.BLOCK_LITERAL;
  const probe = new Document({ b: text });
  (probe.get('b', true) as Scalar).type = Scalar.BLOCK_LITERAL;
  const back = (parse(probe.toString({ lineWidth: 0 })) as { b?: unknown } | null)?.b;
  return back === text ? Scalar.BLOCK_LITERAL : Scalar.QUOTE_DOUBLE;
}

/** Strings written by writeBodyScalar: the bodies and the curl command, multi-line text. */
const BODY_PATHS: BlockPaths = { spec: { req: { body: true }, resp: { body: true } }, curl: true };

/**
 * YAML text of a test or mock document; with `schemaRef`, preceded by the yaml-language-server
 * line that gives editors completion and checks.
 *
 * Written by the small emitter in emit.ts (~10x faster than building a `yaml` Document for every
 * exchange while recording); a value it does not handle (Buffer, bigint, NaN...) goes through the
 * library.
 */
export function renderYaml(doc: TestCaseDoc | MockDoc, schemaRef?: string): string {
  let text: string;
  try {
    text = emitYaml(doc, { blocks: BODY_PATHS, blockScalar: writeBodyScalar });
  } catch (err) {
    if (!(err instanceof UnsupportedValue)) throw err;
    text = renderYamlWithLibrary(doc);
  }
  return schemaRef ? `# yaml-language-server: $schema=${schemaRef}\n${text}` : text;
}

/**
 * A body (or curl) after its `key:`, the key indented by `indent`: a block literal when the text
 * plainly fits one (linear time, no parse; pretty JSON, base64 lines, ordinary text), otherwise
 * the library's block literal or double-quoted form, checked by reading it back at this depth.
 * Undefined (the emitter then double-quotes it, always exact) for "" and when neither reads back.
 */
function writeBodyScalar(value: string, indent: string): string | undefined {
  if (value === '') return undefined;
  if (isPlainBlockText(value)) {
    const inner = indent + '  ';
    // `|` keeps one final newline, `|-` none
    const finalNewline = value.endsWith('\n');
    const body = finalNewline ? value.slice(0, -1) : value;
    return (finalNewline ? ' |\n' : ' |-\n') + inner + body.replaceAll('\n', '\n' + inner) + '\n';
  }
  // Rare (blank-only lines, trailing blanks, CR, controls): the library knows the indentation
  // indicators and escapes; its text for a top-level key is shifted to this depth and re-read.
  for (const type of [Scalar.BLOCK_LITERAL, Scalar.QUOTE_DOUBLE] as const) {
    const probe = new Document({ b: value });
    (probe.get('b', true) as Scalar).type = type;
    const text = probe.toString({ lineWidth: 0, indent: 2 });
    // the library leaves some characters raw that other readers refuse or read differently
    if (!text.startsWith('b:') || hasRawUnsafe(text)) continue;
    const rest = indent === '' ? text.slice(2) : text.slice(2).replace(/\n(?=[^\n])/g, '\n' + indent);
    if (readsBackAs(`${indent}b:${rest}`, value)) return rest;
  }
  return undefined;
}

function readsBackAs(text: string, value: string): boolean {
  try {
    return (parse(text) as { b?: unknown } | null)?.b === value;
  } catch {
    return false; // not valid YAML at this depth: the caller double-quotes it
  }
}

/** A `yaml` Document of the whole file, for values emit.ts does not handle. */
export function renderYamlWithLibrary(doc: TestCaseDoc | MockDoc): string {
  const d = new Document(doc);
  // Large plain bodies are written as block literals by hand: the YAML library takes ~50 ms per
  // MiB to fold them, a stall that costs data while recording. A unique token stands in for them.
  const spliced = new Map<string, string>();
  for (const path of [['spec', 'req', 'body'], ['spec', 'resp', 'body'], ['curl']]) {
    const node = d.getIn(path, true);
    if (!(node instanceof Scalar) || typeof node.value !== 'string' || node.value === '') continue;
    if (node.value.length >= SPLICE_MIN && isPlainBlockText(node.value)) {
      const token = `tlsrec-body-${spliced.size}-${process.pid}`;
      spliced.set(token, node.value);
      node.value = token;
    } else {
      node.type = bodyScalarType(node.value);
    }
  }
  let text = d.toString({ lineWidth: 0, indent: 2 });
  for (const [token, value] of spliced) text = spliceBlockLiteral(text, token, value);
  return text;
}

/** Bodies at least this long are spliced in by hand. */
const SPLICE_MIN = 4096;

/** Replace the `key: TOKEN` line with `key: |` (or `|-`) and the value's lines, indented one level deeper. */
function spliceBlockLiteral(text: string, token: string, value: string): string {
  const at = text.indexOf(`: ${token}\n`);
  if (at < 0) throw new Error(`renderYaml: placeholder ${token} not found`);
  const lineStart = text.lastIndexOf('\n', at) + 1;
  const indent = ' '.repeat(text.slice(lineStart, at).search(/\S/) + 2);
  const body = value.endsWith('\n') ? value.slice(0, -1) : value;
  const block = (value.endsWith('\n') ? '|' : '|-') + '\n' + indent + body.split('\n').join('\n' + indent);
  return text.slice(0, at + 2) + block + text.slice(at + 2 + token.length);
}
