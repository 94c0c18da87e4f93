// The extended-protocol messages a client sends that both the recording (reconstruct.ts) and the
// mock endpoint (serve.ts) read: Parse and Bind.

import type { PgValue } from '../../model/postgres.js';
import { decodeValue } from './values.js';
import { FieldReader } from './wire.js';

/** Parse: a statement name, its SQL and the parameter type OIDs the client gave (0: unspecified). */
export interface ParseMessage {
  name: string;
  sql: string;
  paramTypes: number[];
}

export function readParse(body: Buffer): ParseMessage {
  const r = new FieldReader(body);
  const name = r.cstring();
  const sql = r.cstring();
  const n = r.int16();
  const paramTypes: number[] = [];
  for (let i = 0; i < n; i++) paramTypes.push(r.uint32());
  return { name, sql, paramTypes };
}

/** Bind: portal and statement names, the parameters as sent, and the formats asked for the results. */
export interface BindMessage {
  portal: string;
  statementName: string;
  /** Parameter format codes: none (all text), one (for all) or one per parameter. */
  paramFormats: number[];
  /** Each parameter's bytes, null for SQL NULL. */
  rawParams: Array<Buffer | null>;
  resultFormats: number[];
}

export function readBind(body: Buffer): BindMessage {
  const r = new FieldReader(body);
  const portal = r.cstring();
  const statementName = r.cstring();
  const nf = r.int16();
  const paramFormats: number[] = [];
  for (let i = 0; i < nf; i++) paramFormats.push(r.int16());
  const np = r.int16();
  const rawParams: Array<Buffer | null> = [];
  for (let i = 0; i < np; i++) {
    const len = r.int32();
    rawParams.push(len < 0 ? null : r.bytes(len));
  }
  const nr = r.int16();
  const resultFormats: number[] = [];
  for (let i = 0; i < nr; i++) resultFormats.push(r.int16());
  return { portal, statementName, paramFormats, rawParams, resultFormats };
}

/** A Bind's parameters decoded with the statement's parameter types. */
export function bindParams(bind: BindMessage, paramTypes: readonly number[]): PgValue[] {
  const f = bind.paramFormats;
  return bind.rawParams.map((raw, i) =>
    decodeValue(raw, paramTypes[i] ?? 0, f.length === 0 ? 0 : f.length === 1 ? f[0]! : (f[i] ?? 0)),
  );
}
