// What a Postgres exchange holds: one query the app sent (simple Query, or an extended-protocol
// Execute with the statement's SQL and the portal's bound parameters) and what the server answered.
// Values are already decoded by their type OIDs (src/protocols/postgres/values.ts); the startup and
// authentication exchange is not kept (it carries the password or its proof).

/** A column or parameter value as the app sees it: null is SQL NULL; Buffer is binary of an unknown type. */
export type PgValue = string | number | boolean | null | Buffer;

export interface PgColumn {
  name: string;
  /** Type OID from the RowDescription. */
  typeOid: number;
  /** 0 = text, 1 = binary. */
  format: number;
  /** Table OID and attribute number, 0 when the column is not a table column. */
  tableOid: number;
  columnAttr: number;
  typeSize: number;
  typeModifier: number;
}

/** ErrorResponse / NoticeResponse fields by their one-letter codes' names. */
export interface PgError {
  severity: string;
  /** SQLSTATE, e.g. 23505. */
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  /** Every other field the server sent, by name (schema, table, constraint, position…; see wire.ts). */
  fields?: Record<string, string>;
}

/** One statement's result: a row set and its command tag, or an error. */
export interface PgResult {
  /** Absent for commands that return no rows (NoData, or a simple query's INSERT). */
  columns?: PgColumn[];
  rows: PgValue[][];
  /** CommandComplete's tag ("SELECT 2", "INSERT 0 1"); absent after an error or an empty query. */
  commandTag?: string;
  /** The query string was empty (EmptyQueryResponse). */
  empty?: true;
  /** Execute stopped at its row limit (PortalSuspended): more rows may follow on the portal. */
  suspended?: true;
  error?: PgError;
  /** COPY: the server asked for (in) or sent (out) data; the data itself is not reproduced. */
  copy?: 'in' | 'out' | 'both';
}

export interface PgRequest {
  /** 'simple': a Query message; 'extended': Parse/Bind/Execute. */
  mode: 'simple' | 'extended';
  sql: string;
  /** Extended: the statement ('' = unnamed) and portal names. */
  statement?: string;
  portal?: string;
  /** Extended: bound parameter values, and the type OIDs Parse gave them (0 = server infers). */
  params: PgValue[];
  paramTypes: number[];
  /** Extended: the parameter types the server described (ParameterDescription), when the app asked. */
  describedParamTypes?: number[];
  /** Extended: the result format codes Bind asked for. */
  resultFormats: number[];
  /** Execute's row limit (0 = all). */
  maxRows?: number;
  /** From the StartupMessage: which database, as which user (never a password). */
  database?: string;
  user?: string;
  firstByteNs: bigint;
}

export interface PgResponse {
  /** A simple Query answers one result per statement; an Execute answers one. */
  results: PgResult[];
  notices: PgError[];
  /** NotificationResponse messages that arrived while this query ran (LISTEN/NOTIFY). */
  notifications: Array<{ pid: number; channel: string; payload: string }>;
  /** ReadyForQuery's transaction status after the query: I idle, T in a transaction, E failed transaction. */
  txStatus?: 'I' | 'T' | 'E';
  firstByteNs: bigint;
}
