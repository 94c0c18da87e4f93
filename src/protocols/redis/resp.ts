// RESP2/RESP3 on the wire: an incremental reader (bytes arrive in pieces of any size) and the
// encoder the mock endpoint answers with. Spec: https://redis.io/docs/latest/develop/reference/protocol-spec/

import type { RespValue } from '../../model/redis.js';

/** A RESP value that is not well formed; `offset` is where, from the start of the bytes read. */
export class RespError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

/** Longest header line accepted (`*<n>`, `$<len>`, a simple string, an inline command). */
const MAX_LINE = 64 * 1024;
/** Largest bulk string accepted (Redis' own proto-max-bulk-len default is 512 MiB). */
const MAX_BULK = 512 * 1024 * 1024;
/** Deepest nesting of aggregates accepted. */
const MAX_DEPTH = 64;

/** Thrown inside parse when the bytes end before the value does. */
const INCOMPLETE = Symbol('incomplete');

const CR = 0x0d;
const LF = 0x0a;

/** A parsed value and where it ended. */
interface Parsed {
  value: RespValue;
  end: number;
}

/** One parse over a buffer, from an offset; throws INCOMPLETE or RespError. */
class Cursor {
  constructor(
    private readonly buf: Buffer,
    public pos: number,
    private readonly base: number,
  ) {}

  line(): string {
    const i = this.buf.indexOf(LF, this.pos);
    if (i < 0) {
      if (this.buf.length - this.pos > MAX_LINE) throw new RespError('line longer than 64 KiB', this.base + this.pos);
      throw INCOMPLETE;
    }
    if (i === this.pos || this.buf[i - 1] !== CR) throw new RespError('line does not end in CRLF', this.base + i);
    const text = this.buf.toString('latin1', this.pos, i - 1);
    this.pos = i + 1;
    return text;
  }

  int(text: string, what: string): number {
    if (!/^-?\d{1,18}$/.test(text))
      throw new RespError(`${what}: not an integer: ${JSON.stringify(text.slice(0, 40))}`, this.base + this.pos);
    return Number(text);
  }

  bytes(n: number): Buffer {
    if (this.buf.length < this.pos + n + 2) throw INCOMPLETE;
    if (this.buf[this.pos + n] !== CR || this.buf[this.pos + n + 1] !== LF)
      throw new RespError('bulk data does not end in CRLF', this.base + this.pos + n);
    const b = Buffer.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n + 2;
    return b;
  }

  value(depth: number): RespValue {
    if (this.pos >= this.buf.length) throw INCOMPLETE;
    if (depth > MAX_DEPTH) throw new RespError('aggregates nested deeper than 64', this.base + this.pos);
    const at = this.pos;
    const prefix = String.fromCharCode(this.buf[this.pos]!);
    this.pos++;
    switch (prefix) {
      case '+':
        return { type: 'simple', value: Buffer.from(this.line(), 'latin1').toString('utf8') };
      case '-':
        return { type: 'error', value: Buffer.from(this.line(), 'latin1').toString('utf8') };
      case ':': {
        const t = this.line();
        if (!/^[-+]?\d+$/.test(t))
          throw new RespError(`integer: not an integer: ${JSON.stringify(t.slice(0, 40))}`, this.base + at);
        return { type: 'integer', value: BigInt(t) };
      }
      case '$':
      case '!':
      case '=': {
        const n = this.int(this.line(), 'bulk length');
        if (n === -1 && prefix === '$') return { type: 'null', wire: '$' };
        if (n < 0 || n > MAX_BULK) throw new RespError(`bulk length ${n} out of range`, this.base + at);
        const data = this.bytes(n);
        if (prefix === '$') return { type: 'bulk', value: data };
        if (prefix === '!') return { type: 'error', value: data.toString('utf8'), blob: true };
        if (data.length < 4 || data[3] !== 0x3a)
          throw new RespError('verbatim string without a 3-letter format and a colon', this.base + at);
        return { type: 'verbatim', format: data.toString('latin1', 0, 3), value: data.toString('utf8', 4) };
      }
      case '*':
      case '~':
      case '>': {
        const n = this.int(this.line(), 'aggregate length');
        if (n === -1 && prefix === '*') return { type: 'null', wire: '*' };
        if (n < 0) throw new RespError(`aggregate length ${n} out of range`, this.base + at);
        const items: RespValue[] = [];
        for (let i = 0; i < n; i++) items.push(this.value(depth + 1));
        return { type: prefix === '*' ? 'array' : prefix === '~' ? 'set' : 'push', value: items };
      }
      case '%':
      case '|': {
        const n = this.int(this.line(), 'map length');
        if (n < 0) throw new RespError(`map length ${n} out of range`, this.base + at);
        const entries: Array<[RespValue, RespValue]> = [];
        for (let i = 0; i < n; i++) entries.push([this.value(depth + 1), this.value(depth + 1)]);
        // An attribute (|) annotates the value after it; the value is what the client gets.
        if (prefix === '|') return this.value(depth);
        return { type: 'map', value: entries };
      }
      case '_': {
        const t = this.line();
        if (t !== '') throw new RespError('null with data', this.base + at);
        return { type: 'null', wire: '_' };
      }
      case '#': {
        const t = this.line();
        if (t !== 't' && t !== 'f') throw new RespError(`boolean: ${JSON.stringify(t.slice(0, 40))}`, this.base + at);
        return { type: 'boolean', value: t === 't' };
      }
      case ',': {
        const t = this.line();
        if (!/^([-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?|[-+]?inf|nan)$/i.test(t))
          throw new RespError(`double: ${JSON.stringify(t.slice(0, 40))}`, this.base + at);
        return { type: 'double', value: t };
      }
      case '(': {
        const t = this.line();
        if (!/^[-+]?\d+$/.test(t)) throw new RespError(`big number: ${JSON.stringify(t.slice(0, 40))}`, this.base + at);
        return { type: 'bignum', value: t };
      }
      default:
        throw new RespError(`unknown RESP type byte 0x${this.buf[at]!.toString(16).padStart(2, '0')}`, this.base + at);
    }
  }
}

/**
 * Reads RESP values from bytes that arrive in pieces. `push` data, then `next()` until it gives
 * undefined (the value is not complete yet). Throws RespError on bytes that are not RESP.
 */
export class RespReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Stream offset of the first buffered byte. */
  private base = 0;
  /** With `inline`, a line that does not start with a RESP type byte is an inline command. */
  constructor(private readonly opts: { inline?: boolean } = {}) {}

  push(data: Buffer): void {
    if (data.length === 0) return;
    this.chunks.push(data);
    this.buffered += data.length;
  }

  /** Bytes consumed by whole values so far. */
  get consumed(): number {
    return this.base;
  }

  /** Bytes held that are not a whole value yet. */
  get pending(): number {
    return this.buffered;
  }

  /** The next whole value, with the stream offset where it started; undefined when more bytes are needed. */
  next(): { value: RespValue; inline: boolean; start: number } | undefined {
    if (this.buffered === 0) return undefined;
    const buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    this.chunks = [buf];
    let parsed: Parsed;
    let inline = false;
    try {
      if (this.opts.inline && !RESP_TYPE_BYTES.has(buf[0]!)) {
        parsed = parseInline(buf, this.base);
        inline = true;
      } else {
        const c = new Cursor(buf, 0, this.base);
        const value = c.value(0);
        parsed = { value, end: c.pos };
      }
    } catch (err) {
      if (err === INCOMPLETE) return undefined;
      throw err;
    }
    const start = this.base;
    this.base += parsed.end;
    this.buffered -= parsed.end;
    this.chunks = this.buffered > 0 ? [buf.subarray(parsed.end)] : [];
    return { value: parsed.value, inline, start };
  }

  /** Drop what is buffered (bytes after it were lost): the reader starts again at `offset`. */
  reset(offset: number): void {
    this.chunks = [];
    this.buffered = 0;
    this.base = offset;
  }
}

const RESP_TYPE_BYTES = new Set([...'+-:$*%~>_#,(!=|'].map((c) => c.charCodeAt(0)));

/** An inline command: one line, arguments split on spaces (Redis also takes quotes; kept simple). */
function parseInline(buf: Buffer, base: number): Parsed {
  const i = buf.indexOf(LF);
  if (i < 0) {
    if (buf.length > MAX_LINE) throw new RespError('inline command longer than 64 KiB', base);
    throw INCOMPLETE;
  }
  const line = buf.subarray(0, i > 0 && buf[i - 1] === CR ? i - 1 : i);
  const args = line
    .toString('latin1')
    .split(/[ \t]+/)
    .filter((a) => a.length > 0)
    .map((a): RespValue => ({ type: 'bulk', value: Buffer.from(a, 'latin1') }));
  return { value: { type: 'array', value: args }, end: i + 1 };
}

/** The arguments of a command value (an array of bulk strings), or undefined when it is not one. */
export function commandArgs(v: RespValue): Buffer[] | undefined {
  if (v.type !== 'array' || v.value.length === 0) return undefined;
  const out: Buffer[] = [];
  for (const a of v.value) {
    if (a.type === 'bulk') out.push(a.value);
    else if (a.type === 'simple') out.push(Buffer.from(a.value, 'utf8'));
    else if (a.type === 'integer') out.push(Buffer.from(String(a.value)));
    else return undefined;
  }
  return out;
}

/**
 * RESP bytes of a value. `resp` is the protocol the client negotiated (HELLO 3 → 3): RESP3-only
 * types are downgraded for a RESP2 client the way Redis itself does (map → flat array, set/push
 * → array, double/big number → bulk string, boolean → integer, null → $-1 or *-1).
 */
export function encodeResp(v: RespValue, resp: 2 | 3 = 2): Buffer {
  const parts: Buffer[] = [];
  encodeInto(v, resp, parts);
  return Buffer.concat(parts);
}

function line(prefix: string, text: string): Buffer {
  return Buffer.from(`${prefix}${text}\r\n`, 'utf8');
}

function blob(prefix: string, data: Buffer, out: Buffer[]): void {
  out.push(line(prefix, String(data.length)), data, Buffer.from('\r\n'));
}

function encodeInto(v: RespValue, resp: 2 | 3, out: Buffer[]): void {
  switch (v.type) {
    case 'simple':
      out.push(line('+', v.value.replace(/[\r\n]/g, ' ')));
      return;
    case 'error':
      if (v.blob && resp === 3) blob('!', Buffer.from(v.value, 'utf8'), out);
      else out.push(line('-', v.value.replace(/[\r\n]/g, ' ')));
      return;
    case 'integer':
      out.push(line(':', String(v.value)));
      return;
    case 'bulk':
      blob('$', v.value, out);
      return;
    case 'null':
      if (resp === 3 && v.wire === '_') out.push(Buffer.from('_\r\n'));
      else out.push(Buffer.from(v.wire === '*' ? '*-1\r\n' : '$-1\r\n'));
      return;
    case 'array':
    case 'set':
    case 'push': {
      const prefix = resp === 2 || v.type === 'array' ? '*' : v.type === 'set' ? '~' : '>';
      out.push(line(prefix, String(v.value.length)));
      for (const item of v.value) encodeInto(item, resp, out);
      return;
    }
    case 'map':
      out.push(resp === 3 ? line('%', String(v.value.length)) : line('*', String(v.value.length * 2)));
      for (const [k, val] of v.value) {
        encodeInto(k, resp, out);
        encodeInto(val, resp, out);
      }
      return;
    case 'double':
      if (resp === 3) out.push(line(',', v.value));
      else blob('$', Buffer.from(v.value), out);
      return;
    case 'boolean':
      out.push(resp === 3 ? line('#', v.value ? 't' : 'f') : line(':', v.value ? '1' : '0'));
      return;
    case 'verbatim':
      if (resp === 3) blob('=', Buffer.from(`${v.format}:${v.value}`, 'utf8'), out);
      else blob('$', Buffer.from(v.value, 'utf8'), out);
      return;
    case 'bignum':
      out.push(resp === 3 ? line('(', v.value) : blob$(v.value));
      return;
  }
}

function blob$(text: string): Buffer {
  const data = Buffer.from(text);
  return Buffer.concat([line('$', String(data.length)), data, Buffer.from('\r\n')]);
}

/** A command as RESP bytes (an array of bulk strings): what a client sends. */
export function encodeCommand(args: readonly (string | Buffer)[]): Buffer {
  return encodeResp({
    type: 'array',
    value: args.map((a) => ({ type: 'bulk', value: Buffer.isBuffer(a) ? a : Buffer.from(a) })),
  });
}
