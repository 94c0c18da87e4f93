// The protobuf wire format read without a schema: each field shown by number and wire type, a
// length-delimited field as a nested message when it parses as one, as text when it is printable
// UTF-8, as hex otherwise. The text is for reading; the exact bytes are stored beside it.

export type WireField =
  | { field: number; type: 'varint'; value: bigint }
  | { field: number; type: 'i64'; value: Buffer }
  | { field: number; type: 'i32'; value: Buffer }
  | { field: number; type: 'len'; value: Buffer; message?: WireField[]; text?: string };

class WireError extends Error {}

function readVarint(buf: Buffer, at: { off: number }): bigint {
  let result = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (at.off >= buf.length) throw new WireError('varint runs past the end');
    const b = buf[at.off++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return result;
    shift += 7n;
  }
  throw new WireError('varint longer than 10 bytes');
}

/** The fields of `buf` as a protobuf message; undefined when it is not one. Nested to `depth`. */
export function decodeWire(buf: Buffer, depth = 8): WireField[] | undefined {
  try {
    return decodeOrThrow(buf, depth);
  } catch (err) {
    if (err instanceof WireError) return undefined;
    throw err;
  }
}

function decodeOrThrow(buf: Buffer, depth: number): WireField[] {
  const at = { off: 0 };
  const out: WireField[] = [];
  while (at.off < buf.length) {
    const key = readVarint(buf, at);
    const field = Number(key >> 3n);
    const wt = Number(key & 7n);
    if (field < 1 || field > 0x1fffffff) throw new WireError(`field number ${field}`);
    switch (wt) {
      case 0:
        out.push({ field, type: 'varint', value: readVarint(buf, at) });
        break;
      case 1:
        if (at.off + 8 > buf.length) throw new WireError('i64 past the end');
        out.push({ field, type: 'i64', value: buf.subarray(at.off, at.off + 8) });
        at.off += 8;
        break;
      case 5:
        if (at.off + 4 > buf.length) throw new WireError('i32 past the end');
        out.push({ field, type: 'i32', value: buf.subarray(at.off, at.off + 4) });
        at.off += 4;
        break;
      case 2: {
        const len = Number(readVarint(buf, at));
        if (at.off + len > buf.length) throw new WireError('length-delimited field past the end');
        const value = buf.subarray(at.off, at.off + len);
        at.off += len;
        const f: WireField = { field, type: 'len', value };
        const text = printableText(value);
        if (text !== undefined) f.text = text;
        else if (depth > 0 && len > 0) {
          const nested = decodeWire(value, depth - 1);
          if (nested) f.message = nested;
        }
        out.push(f);
        break;
      }
      default:
        throw new WireError(`wire type ${wt}`);
    }
  }
  return out;
}

function printableText(b: Buffer): string | undefined {
  if (b.length === 0) return '';
  const s = b.toString('utf8');
  if (!Buffer.from(s, 'utf8').equals(b)) return undefined;
  return /^[^\x00-\x08\x0b-\x1f\x7f]*$/.test(s) ? s : undefined;
}

/** Text like protoscope's: `1: 42`, `2: "text"`, `3 { … }`, `4: 0x…` (i32/i64 as hex and number). */
export function wireText(fields: readonly WireField[], indent = ''): string {
  const lines: string[] = [];
  for (const f of fields) {
    switch (f.type) {
      case 'varint':
        lines.push(`${indent}${f.field}: ${f.value}`);
        break;
      case 'i32':
        lines.push(`${indent}${f.field}: ${f.value.readInt32LE(0)}i32  # float ${f.value.readFloatLE(0)}`);
        break;
      case 'i64':
        lines.push(`${indent}${f.field}: ${f.value.readBigInt64LE(0)}i64  # double ${f.value.readDoubleLE(0)}`);
        break;
      case 'len':
        if (f.text !== undefined) lines.push(`${indent}${f.field}: ${JSON.stringify(f.text)}`);
        else if (f.message) lines.push(`${indent}${f.field} {`, wireText(f.message, indent + '  '), `${indent}}`);
        else lines.push(`${indent}${f.field}: 0x${f.value.toString('hex')}`);
        break;
    }
  }
  return lines.filter((l) => l !== '').join('\n');
}

/** Readable text of one message: its fields, or its bytes in hex when it is not a protobuf message. */
export function describeMessage(bytes: Buffer): string {
  if (bytes.length === 0) return '';
  const fields = decodeWire(bytes);
  return fields ? wireText(fields) : `0x${bytes.toString('hex')}`;
}

// ---- the text back to bytes: hand edits of decoded_data are re-encoded on replay ----------------

function varint(n: bigint): Buffer {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}

const key = (field: number, wt: number): Buffer => varint((BigInt(field) << 3n) | BigInt(wt));

/** The bytes of a message written as wireText writes it (`1: 42`, `2: "x"`, `3 { … }`, `4: 0x…`, `5: 7i32`). */
export function encodeWireText(text: string): Buffer {
  const lines = text
    .split('\n')
    .map((l) => l.replace(/\s+# (float|double) \S+$/, '').trim())
    .filter((l) => l !== '');
  let i = 0;
  const block = (): Buffer => {
    const parts: Buffer[] = [];
    while (i < lines.length) {
      const line = lines[i++]!;
      if (line === '}') return Buffer.concat(parts);
      let m = /^(\d+)\s*\{$/.exec(line);
      if (m) {
        const inner = block();
        parts.push(key(Number(m[1]), 2), varint(BigInt(inner.length)), inner);
        continue;
      }
      m = /^(\d+):\s*(.*)$/.exec(line);
      if (!m) throw new Error(`line "${line}": expected "N: value" or "N {"`);
      const field = Number(m[1]);
      const v = m[2]!;
      let mm: RegExpExecArray | null;
      if (v.startsWith('"')) {
        const s = Buffer.from(JSON.parse(v) as string, 'utf8');
        parts.push(key(field, 2), varint(BigInt(s.length)), s);
      } else if ((mm = /^0x([0-9a-f]*)$/i.exec(v))) {
        const b = Buffer.from(mm[1]!, 'hex');
        parts.push(key(field, 2), varint(BigInt(b.length)), b);
      } else if ((mm = /^(-?\d+)i32$/.exec(v))) {
        const b = Buffer.alloc(4);
        b.writeInt32LE(Number(mm[1]));
        parts.push(key(field, 5), b);
      } else if ((mm = /^(-?\d+)i64$/.exec(v))) {
        const b = Buffer.alloc(8);
        b.writeBigInt64LE(BigInt(mm[1]!));
        parts.push(key(field, 1), b);
      } else if (/^-?\d+$/.test(v)) {
        parts.push(key(field, 0), varint(BigInt(v)));
      } else {
        throw new Error(`field ${field}: cannot read the value ${v}`);
      }
    }
    return Buffer.concat(parts);
  };
  const out = block();
  if (i < lines.length) throw new Error('a "}" without its "N {"');
  return out;
}
