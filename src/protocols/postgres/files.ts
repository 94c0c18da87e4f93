// The on-disk shape of a Postgres mock: `kind: Postgres` in mocks.yaml, readable and hand-editable.
// The request is the SQL text and the bound parameters as YAML values; the response is each
// statement's columns (name and type), rows (lists of YAML values, in column order), and command
// tag or error (SQLSTATE + message). Nothing of the startup/authentication exchange is written.
// The names follow Keploy's PostgresV3 query mocks (sqlNormalized -> sql, bindValues -> params,
// rowDescription -> columns, rows, commandComplete -> commandTag, error); see docs/DESIGN.md.

import { Document, isMap, isSeq, LineCounter, parseAllDocuments, type Node as YamlNode } from 'yaml';
import { API_VERSION } from '../../format/types.js';
import { defaultMonoToWallNs, rfc3339 } from '../../format/render.js';
import { classifyVolatile, windowAround } from '../../format/volatile.js';
import type { PostgresExchange } from '../../model/exchange.js';
import type { PgColumn, PgError, PgResult, PgValue } from '../../model/postgres.js';
import { typeName } from './values.js';

export interface PgColumnDoc {
  name: string;
  /** Type name ("int4", "text") or OID for types without a listed name. */
  type: string;
  /** Present (1) only for binary-format columns. */
  format?: number;
}

/** An error or notice on disk: the same fields as the model's. */
export type PgErrorDoc = PgError;

export interface PgResultDoc {
  columns?: PgColumnDoc[];
  rows?: PgValue[][];
  commandTag?: string;
  empty?: true;
  suspended?: true;
  error?: PgErrorDoc;
  copy?: string;
}

export interface PostgresMockDoc {
  version: string;
  kind: 'Postgres';
  name: string;
  spec: {
    metadata: { type: 'query'; connection: string; database?: string; user?: string };
    request: {
      sql: string;
      params?: PgValue[];
      /** Parameter types the app gave in Parse (absent when it let the server infer them). */
      paramTypes?: string[];
      /** A named prepared statement (unnamed when absent). */
      statement?: string;
      /** Bind's result formats, when the app asked for binary columns. */
      resultFormats?: number[];
      maxRows?: number;
      mode?: 'simple';
    };
    response: {
      results: PgResultDoc[];
      notices?: PgErrorDoc[];
      notifications?: Array<{ pid: number; channel: string; payload: string }>;
      txStatus?: 'I' | 'T' | 'E';
    };
    created?: number;
    reqTimestampMock?: string;
    resTimestampMock?: string;
  };
  /** Request parts the mock matcher ignores: `params.N` (0-based). */
  noise?: string[];
  connectionId: string;
}

export interface PgDocOptions {
  monoToWallNs?: bigint;
}

function errorDoc(e: PgError): PgErrorDoc {
  return {
    severity: e.severity,
    code: e.code,
    message: e.message,
    ...(e.detail ? { detail: e.detail } : {}),
    ...(e.hint ? { hint: e.hint } : {}),
    ...(e.fields ? { fields: e.fields } : {}),
  };
}

function columnDoc(c: PgColumn): PgColumnDoc {
  return { name: c.name, type: typeName(c.typeOid), ...(c.format !== 0 ? { format: c.format } : {}) };
}

function resultDoc(r: PgResult): PgResultDoc {
  return {
    ...(r.columns ? { columns: r.columns.map(columnDoc) } : {}),
    ...(r.columns || r.rows.length > 0 ? { rows: r.rows } : {}),
    ...(r.commandTag !== undefined ? { commandTag: r.commandTag } : {}),
    ...(r.empty ? { empty: true as const } : {}),
    ...(r.suspended ? { suspended: true as const } : {}),
    ...(r.error ? { error: errorDoc(r.error) } : {}),
    ...(r.copy ? { copy: r.copy } : {}),
  };
}

/**
 * Record-time noise: parameter positions whose value is unmistakably volatile (a UUID, a date-time
 * or an epoch time made while recording, as src/format/volatile.ts flags response fields), so the
 * next run's value still matches.
 */
function volatileParams(params: PgValue[], wallMs: number): string[] {
  const w = windowAround(wallMs);
  return params.flatMap((p, i) => (classifyVolatile(p, w) ? [`params.${i}`] : []));
}

export function postgresMockDoc(ex: PostgresExchange, n: number, opts: PgDocOptions = {}): PostgresMockDoc {
  const { request: q, response: a } = ex;
  const wall = (ns: bigint): bigint => ns + (opts.monoToWallNs ?? defaultMonoToWallNs());
  const noise = volatileParams(q.params, Number(wall(q.firstByteNs) / 1_000_000n));
  return {
    version: API_VERSION,
    kind: 'Postgres',
    name: `mock-${n}`,
    spec: {
      metadata: {
        type: 'query',
        connection: ex.conn,
        ...(q.database ? { database: q.database } : {}),
        ...(q.user ? { user: q.user } : {}),
      },
      request: {
        sql: q.sql,
        ...(q.mode === 'extended' ? { params: q.params } : { mode: 'simple' as const }),
        ...(q.paramTypes.some((t) => t !== 0) ? { paramTypes: q.paramTypes.map(typeName) } : {}),
        ...(q.statement ? { statement: q.statement } : {}),
        ...(q.resultFormats.some((f) => f !== 0) ? { resultFormats: q.resultFormats } : {}),
        ...(q.maxRows ? { maxRows: q.maxRows } : {}),
      },
      response: {
        results: a.results.map(resultDoc),
        ...(a.notices.length > 0 ? { notices: a.notices.map(errorDoc) } : {}),
        ...(a.notifications.length > 0 ? { notifications: a.notifications } : {}),
        ...(a.txStatus ? { txStatus: a.txStatus } : {}),
      },
      created: Number(wall(q.firstByteNs) / 1_000_000_000n),
      reqTimestampMock: rfc3339(wall(q.firstByteNs)),
      resTimestampMock: rfc3339(wall(a.firstByteNs || q.firstByteNs)),
    },
    ...(noise.length > 0 ? { noise } : {}),
    connectionId: ex.conn,
  };
}

/** Rows and params are short lists: one flow sequence per row keeps a table readable. */
export function postgresYaml(doc: PostgresMockDoc, schemaRef?: string): string {
  const d = new Document(doc);
  const flow = (node: unknown): void => {
    if (isSeq(node)) node.flow = true;
  };
  flow(d.getIn(['spec', 'request', 'params'], true));
  flow(d.getIn(['spec', 'request', 'paramTypes'], true));
  flow(d.getIn(['noise'], true));
  const results = d.getIn(['spec', 'response', 'results'], true);
  if (isSeq(results)) {
    for (const r of results.items) {
      if (!isMap(r)) continue;
      const rows = r.get('rows', true);
      if (isSeq(rows)) for (const row of rows.items) flow(row);
      const cols = r.get('columns', true);
      if (isSeq(cols)) for (const c of cols.items) if (isMap(c)) c.flow = true;
    }
  }
  const text = d.toString({ lineWidth: 0 });
  return schemaRef ? `# yaml-language-server: $schema=${schemaRef}\n${text}` : text;
}

export { LineCounter, parseAllDocuments, type YamlNode };
