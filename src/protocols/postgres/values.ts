// Parameter and column values by type OID. Text-format values become YAML numbers or booleans
// only when writing them back gives the same text (so the mock server answers byte for byte);
// everything else stays a string. Binary-format values of the common fixed-size types are decoded;
// other binary values stay bytes.

import type { PgValue } from '../../model/postgres.js';

export const OID = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  json: 114,
  float4: 700,
  float8: 701,
  varchar: 1043,
  date: 1082,
  timestamp: 1114,
  timestamptz: 1184,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
} as const;

const TYPE_NAMES: Record<number, string> = {
  16: 'bool',
  17: 'bytea',
  18: 'char',
  19: 'name',
  20: 'int8',
  21: 'int2',
  23: 'int4',
  25: 'text',
  26: 'oid',
  114: 'json',
  700: 'float4',
  701: 'float8',
  1042: 'bpchar',
  1043: 'varchar',
  1082: 'date',
  1083: 'time',
  1114: 'timestamp',
  1184: 'timestamptz',
  1186: 'interval',
  1700: 'numeric',
  2950: 'uuid',
  3802: 'jsonb',
  1005: 'int2[]',
  1007: 'int4[]',
  1016: 'int8[]',
  1009: 'text[]',
  1015: 'varchar[]',
  2951: 'uuid[]',
};

/** A type's name for the YAML ("int4"), or its OID as text when it is not a built-in one listed here. */
export function typeName(oid: number): string {
  return TYPE_NAMES[oid] ?? String(oid);
}

/** The OID for a name typeName gave (or a number as text); undefined for an unknown name. */
export function typeOid(name: string | number): number | undefined {
  if (typeof name === 'number') return name;
  if (/^\d+$/.test(name)) return Number(name);
  for (const [oid, n] of Object.entries(TYPE_NAMES)) if (n === name) return Number(oid);
  return undefined;
}

const INTEGER_TYPES = new Set<number>([OID.int2, OID.int4, OID.int8, OID.oid]);
const FLOAT_TYPES = new Set<number>([OID.float4, OID.float8]);

/** A value from the wire: `raw` null is SQL NULL; format 0 = text, 1 = binary. */
export function decodeValue(raw: Buffer | null, oid: number, format: number): PgValue {
  if (raw === null) return null;
  if (format === 1) return decodeBinary(raw, oid);
  const text = raw.toString('utf8');
  if (INTEGER_TYPES.has(oid) || FLOAT_TYPES.has(oid)) {
    const n = Number(text);
    return Number.isFinite(n) && String(n) === text ? n : text;
  }
  if (oid === OID.bool) return text === 't' ? true : text === 'f' ? false : text;
  return text;
}

function decodeBinary(raw: Buffer, oid: number): PgValue {
  switch (oid) {
    case OID.bool:
      if (raw.length === 1) return raw[0] !== 0;
      break;
    case OID.int2:
      if (raw.length === 2) return raw.readInt16BE(0);
      break;
    case OID.int4:
      if (raw.length === 4) return raw.readInt32BE(0);
      break;
    case OID.oid:
      if (raw.length === 4) return raw.readUInt32BE(0);
      break;
    case OID.int8:
      if (raw.length === 8) {
        const v = raw.readBigInt64BE(0);
        return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
      }
      break;
    case OID.float8:
      if (raw.length === 8) return raw.readDoubleBE(0);
      break;
    case OID.text:
    case OID.varchar:
    case OID.json:
      return raw.toString('utf8');
  }
  return Buffer.from(raw);
}

/** The wire bytes of a value (what the mock server sends); null for SQL NULL. */
export function encodeValue(v: PgValue, oid: number, format: number): Buffer | null {
  if (v === null) return null;
  if (Buffer.isBuffer(v)) return v;
  if (format === 1) {
    switch (oid) {
      case OID.bool:
        return Buffer.from([v === true || v === 't' ? 1 : 0]);
      case OID.int2: {
        const b = Buffer.alloc(2);
        b.writeInt16BE(Number(v));
        return b;
      }
      case OID.int4: {
        const b = Buffer.alloc(4);
        b.writeInt32BE(Number(v));
        return b;
      }
      case OID.oid: {
        const b = Buffer.alloc(4);
        b.writeUInt32BE(Number(v));
        return b;
      }
      case OID.int8: {
        const b = Buffer.alloc(8);
        b.writeBigInt64BE(BigInt(v));
        return b;
      }
      case OID.float8: {
        const b = Buffer.alloc(8);
        b.writeDoubleBE(Number(v));
        return b;
      }
    }
    return Buffer.from(String(v), 'utf8');
  }
  if (typeof v === 'boolean') return Buffer.from(v ? 't' : 'f');
  return Buffer.from(String(v), 'utf8');
}

/** A value as text for matching and messages: what the app would have sent in text format. */
export function valueText(v: PgValue): string | null {
  if (v === null) return null;
  if (Buffer.isBuffer(v)) return `\\x${v.toString('hex')}`;
  if (typeof v === 'boolean') return v ? 't' : 'f';
  return String(v);
}
