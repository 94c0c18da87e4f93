// Postgres v3 wire protocol framing: the untyped first messages (StartupMessage, SSLRequest,
// GSSENCRequest, CancelRequest: Int32 length + Int32 code) and typed messages (Byte1 type +
// Int32 length including itself). Readers for a message's fields and a writer for the mock server.

export const PROTOCOL_3_0 = 196608;
export const SSL_REQUEST = 80877103;
export const GSSENC_REQUEST = 80877104;
export const CANCEL_REQUEST = 80877102;

/** Startup packets larger than this are not Postgres (the server's own limit is 10000). */
export const MAX_STARTUP_LENGTH = 10000;
/** A typed message larger than this is taken as a framing error (the server's limit is 1 GB). */
export const MAX_MESSAGE_LENGTH = 1 << 30;

export interface TypedMessage {
  type: string;
  body: Buffer;
  /** Wire size: type byte + length + body. */
  size: number;
}

export type FirstMessage =
  | { kind: 'ssl'; size: 8 }
  | { kind: 'gssenc'; size: 8 }
  | { kind: 'cancel'; size: number }
  | { kind: 'startup'; size: number; params: Record<string, string> }
  | { kind: 'unknown'; size: number; code: number };

/** The first message of a client, or undefined when more bytes are needed. Throws on a bad length. */
export function readFirstMessage(buf: Buffer, at: number): FirstMessage | undefined {
  if (buf.length - at < 8) return undefined;
  const len = buf.readInt32BE(at);
  if (len < 8 || len > MAX_STARTUP_LENGTH) throw new Error(`startup packet length ${len}`);
  if (buf.length - at < len) return undefined;
  const code = buf.readInt32BE(at + 4);
  if (code === SSL_REQUEST) return { kind: 'ssl', size: 8 };
  if (code === GSSENC_REQUEST) return { kind: 'gssenc', size: 8 };
  if (code === CANCEL_REQUEST) return { kind: 'cancel', size: len };
  if (code !== PROTOCOL_3_0) return { kind: 'unknown', size: len, code };
  const params: Record<string, string> = {};
  const r = new FieldReader(buf.subarray(at + 8, at + len));
  while (r.left() > 1) {
    const k = r.cstring();
    if (k === '') break;
    params[k] = r.cstring();
  }
  return { kind: 'startup', size: len, params };
}

/** The typed message at `at`, or undefined when more bytes are needed. Throws on a bad length. */
export function readTypedMessage(buf: Buffer, at: number): TypedMessage | undefined {
  if (buf.length - at < 5) return undefined;
  const len = buf.readInt32BE(at + 1);
  if (len < 4 || len > MAX_MESSAGE_LENGTH)
    throw new Error(`message '${String.fromCharCode(buf[at]!)}' with length ${len}`);
  if (buf.length - at < len + 1) return undefined;
  return { type: String.fromCharCode(buf[at]!), body: buf.subarray(at + 5, at + 1 + len), size: len + 1 };
}

/** Reads a message body's fields in order; throws when a field runs past the end. */
export class FieldReader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  left(): number {
    return this.buf.length - this.pos;
  }
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new Error('message shorter than its fields');
  }
  byte(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }
  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new Error('string without its terminating NUL');
    const v = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return v;
  }
}

/** Builds one typed message (the mock server's answers). */
export class MessageWriter {
  private readonly parts: Buffer[] = [];
  constructor(private readonly type: string) {}
  byte(v: number): this {
    this.parts.push(Buffer.from([v]));
    return this;
  }
  int16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    this.parts.push(b);
    return this;
  }
  int32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    this.parts.push(b);
    return this;
  }
  uint32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    this.parts.push(b);
    return this;
  }
  cstring(v: string): this {
    this.parts.push(Buffer.from(v, 'utf8'), Buffer.from([0]));
    return this;
  }
  bytes(v: Buffer): this {
    this.parts.push(v);
    return this;
  }
  done(): Buffer {
    const body = Buffer.concat(this.parts);
    const head = Buffer.alloc(5);
    head.write(this.type, 0, 'latin1');
    head.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([head, body]);
  }
}

/** ErrorResponse / NoticeResponse fields: code letter -> value. */
export function readErrorFields(body: Buffer): Map<string, string> {
  const fields = new Map<string, string>();
  const r = new FieldReader(body);
  while (r.left() > 0) {
    const code = r.byte();
    if (code === 0) break;
    fields.set(String.fromCharCode(code), r.cstring());
  }
  return fields;
}

/** ErrorResponse field codes beyond severity/code/message/detail/hint, by their documented names. */
export const ERROR_FIELD_NAMES: Readonly<Record<string, string>> = {
  P: 'position',
  p: 'internalPosition',
  q: 'internalQuery',
  W: 'where',
  s: 'schema',
  t: 'table',
  c: 'column',
  d: 'dataType',
  n: 'constraint',
  F: 'file',
  L: 'line',
  R: 'routine',
};

/** The field code for a name ERROR_FIELD_NAMES gives (or a one-letter code as it is). */
export function errorFieldCode(name: string): string | undefined {
  for (const [code, n] of Object.entries(ERROR_FIELD_NAMES)) if (n === name) return code;
  return name.length === 1 ? name : undefined;
}
