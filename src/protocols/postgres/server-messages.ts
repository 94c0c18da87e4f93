// Bodies of the server's messages that carry data the recording keeps: row descriptions, rows
// (decoded by the columns' types and formats) and errors/notices.

import type { PgColumn, PgError, PgValue } from '../../model/postgres.js';
import { decodeValue } from './values.js';
import { ERROR_FIELD_NAMES, FieldReader, readErrorFields } from './wire.js';

/** A Postgres result row's values, decoded by the columns' types and formats. */
export function readDataRow(body: Buffer, columns: PgColumn[] | undefined): PgValue[] {
  const r = new FieldReader(body);
  const n = r.int16();
  const row: PgValue[] = [];
  for (let i = 0; i < n; i++) {
    const len = r.int32();
    const raw = len < 0 ? null : r.bytes(len);
    const col = columns?.[i];
    row.push(decodeValue(raw, col?.typeOid ?? 25, col?.format ?? 0));
  }
  return row;
}

export function readRowDescription(body: Buffer): PgColumn[] {
  const r = new FieldReader(body);
  const n = r.int16();
  const cols: PgColumn[] = [];
  for (let i = 0; i < n; i++) {
    cols.push({
      name: r.cstring(),
      tableOid: r.uint32(),
      columnAttr: r.int16(),
      typeOid: r.uint32(),
      typeSize: r.int16(),
      typeModifier: r.int32(),
      format: r.int16(),
    });
  }
  return cols;
}

export function readError(body: Buffer): PgError {
  const f = readErrorFields(body);
  const err: PgError = {
    severity: f.get('V') ?? f.get('S') ?? 'ERROR',
    code: f.get('C') ?? '',
    message: f.get('M') ?? '',
  };
  if (f.has('D')) err.detail = f.get('D')!;
  if (f.has('H')) err.hint = f.get('H')!;
  const rest: Record<string, string> = {};
  for (const [k, v] of f) if (!'SVCMDH'.includes(k)) rest[ERROR_FIELD_NAMES[k] ?? k] = v;
  if (Object.keys(rest).length > 0) err.fields = rest;
  return err;
}

/** Result formats of a Bind applied to columns: none = all text, one = all, else per column. */
export function withFormats(columns: PgColumn[] | undefined, formats: number[]): PgColumn[] | undefined {
  return columns?.map((c, i) => ({
    ...c,
    format: formats.length === 0 ? 0 : formats.length === 1 ? formats[0]! : (formats[i] ?? 0),
  }));
}
