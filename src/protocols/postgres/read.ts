// Reading a `kind: Postgres` mock document back (the replay side of files.ts): every problem is
// reported with its path, so the loader can point at file:line:column.

import type { DocProblem, DocRead, DocWhere } from '../../format/protocol-docs.js';
import type { PgColumn, PgError, PgResult, PgValue } from '../../model/postgres.js';
import type { PgMock } from './matcher.js';
import { typeOid } from './values.js';

type Obj = Readonly<Record<string, unknown>>;
const isObj = (v: unknown): v is Obj =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
const found = (v: unknown): string =>
  v === undefined ? 'nothing' : Array.isArray(v) ? 'a list' : isObj(v) ? 'a mapping' : JSON.stringify(v);

/** A YAML value as a Postgres value: !!binary arrives as Uint8Array. */
function pgValue(v: unknown): PgValue | undefined {
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return undefined;
}

function values(v: unknown, path: Array<string | number>, problems: DocProblem[]): PgValue[] {
  if (!Array.isArray(v)) {
    problems.push({ path, message: `${path.join('.')}: expected a list of values, found ${found(v)}` });
    return [];
  }
  return v.map((x, i) => {
    const pv = pgValue(x);
    if (pv === undefined)
      problems.push({
        path: [...path, i],
        message: `${[...path, i].join('.')}: expected a string, number, boolean or null, found ${found(x)}`,
      });
    return pv ?? null;
  });
}

function readError(v: unknown, path: Array<string | number>, problems: DocProblem[]): PgError | undefined {
  if (!isObj(v) || typeof v.message !== 'string' || typeof v.code !== 'string') {
    problems.push({
      path,
      message: `${path.join('.')}: expected a mapping with code (SQLSTATE) and message, found ${found(v)}`,
    });
    return undefined;
  }
  const fields = isObj(v.fields)
    ? Object.fromEntries(Object.entries(v.fields).map(([k, x]) => [k, String(x)]))
    : undefined;
  return {
    severity: typeof v.severity === 'string' ? v.severity : 'ERROR',
    code: v.code,
    message: v.message,
    ...(typeof v.detail === 'string' ? { detail: v.detail } : {}),
    ...(typeof v.hint === 'string' ? { hint: v.hint } : {}),
    ...(fields ? { fields } : {}),
  };
}

/** Fixed sizes of the listed types for RowDescription (-1: variable). */
const TYPE_SIZES: Record<number, number> = {
  16: 1,
  20: 8,
  21: 2,
  23: 4,
  26: 4,
  700: 4,
  701: 8,
  1082: 4,
  1083: 8,
  1114: 8,
  1184: 8,
  2950: 16,
};

function readResult(v: unknown, path: Array<string | number>, problems: DocProblem[]): PgResult {
  if (!isObj(v)) {
    problems.push({ path, message: `${path.join('.')}: expected a mapping, found ${found(v)}` });
    return { rows: [] };
  }
  const r: PgResult = { rows: [] };
  if (v.columns !== undefined) {
    if (!Array.isArray(v.columns))
      problems.push({
        path: [...path, 'columns'],
        message: `${[...path, 'columns'].join('.')}: expected a list, found ${found(v.columns)}`,
      });
    else {
      r.columns = v.columns.map((c: unknown, i): PgColumn => {
        const cp = [...path, 'columns', i];
        const oid =
          isObj(c) && (typeof c.type === 'string' || typeof c.type === 'number') ? typeOid(c.type) : undefined;
        if (!isObj(c) || typeof c.name !== 'string' || oid === undefined) {
          problems.push({
            path: cp,
            message: `${cp.join('.')}: expected { name, type } with a known type name or an OID, found ${found(c)}`,
          });
          return { name: '?', typeOid: 25, format: 0, tableOid: 0, columnAttr: 0, typeSize: -1, typeModifier: -1 };
        }
        return {
          name: c.name,
          typeOid: oid,
          format: c.format === 1 ? 1 : 0,
          tableOid: 0,
          columnAttr: 0,
          typeSize: TYPE_SIZES[oid] ?? -1,
          typeModifier: -1,
        };
      });
    }
  }
  if (v.rows !== undefined) {
    if (!Array.isArray(v.rows))
      problems.push({
        path: [...path, 'rows'],
        message: `${[...path, 'rows'].join('.')}: expected a list of rows, found ${found(v.rows)}`,
      });
    else r.rows = v.rows.map((row: unknown, i) => values(row, [...path, 'rows', i], problems));
  }
  if (v.commandTag !== undefined) {
    if (typeof v.commandTag !== 'string')
      problems.push({
        path: [...path, 'commandTag'],
        message: `${[...path, 'commandTag'].join('.')}: expected a string such as "SELECT 1", found ${found(v.commandTag)}`,
      });
    else r.commandTag = v.commandTag;
  }
  if (v.empty === true) r.empty = true;
  if (v.suspended === true) r.suspended = true;
  if (v.copy === 'in' || v.copy === 'out' || v.copy === 'both') r.copy = v.copy;
  if (v.error !== undefined) {
    const e = readError(v.error, [...path, 'error'], problems);
    if (e) r.error = e;
  }
  return r;
}

export function readPostgresMock(doc: Obj, where: DocWhere): DocRead<PgMock> {
  const problems: DocProblem[] = [];
  const spec = doc.spec;
  if (!isObj(spec))
    return { problems: [{ path: ['spec'], message: `spec: expected a mapping, found ${found(spec)}` }] };
  const req = spec.request;
  const res = spec.response;
  if (!isObj(req) || typeof req.sql !== 'string')
    problems.push({
      path: ['spec', 'request', 'sql'],
      message: `spec.request.sql: expected the SQL text, found ${found(isObj(req) ? req.sql : req)}`,
    });
  const params =
    isObj(req) && req.params !== undefined ? values(req.params, ['spec', 'request', 'params'], problems) : undefined;
  let results: PgResult[] = [];
  if (!isObj(res) || !Array.isArray(res.results))
    problems.push({
      path: ['spec', 'response', 'results'],
      message: `spec.response.results: expected a list of results, found ${found(isObj(res) ? res.results : res)}`,
    });
  else results = res.results.map((r, i) => readResult(r, ['spec', 'response', 'results', i], problems));
  const noiseParams = new Set<number>();
  const noise = doc.noise;
  if (noise !== undefined) {
    const list = Array.isArray(noise) ? noise : isObj(noise) && Array.isArray(noise.req) ? noise.req : undefined;
    if (!list)
      problems.push({ path: ['noise'], message: `noise: expected a list such as [params.0], found ${found(noise)}` });
    else
      list.forEach((n: unknown, i) => {
        const m = typeof n === 'string' ? /^params(?:\.|\[)(\d+)\]?$/.exec(n) : null;
        if (m) noiseParams.add(Number(m[1]));
        else
          problems.push({
            path: ['noise', i],
            message: `noise.${i}: expected "params.N" (a parameter position from 0), found ${found(n)}`,
          });
      });
  }
  if (problems.length > 0) return { problems };
  const tx = isObj(res) ? res.txStatus : undefined;
  const notices =
    isObj(res) && Array.isArray(res.notices)
      ? res.notices
          .map((n, i) => readError(n, ['spec', 'response', 'notices', i], problems))
          .filter((n): n is PgError => n !== undefined)
      : [];
  const notifications =
    isObj(res) && Array.isArray(res.notifications)
      ? res.notifications
          .filter(isObj)
          .map((n) => ({ pid: Number(n.pid) || 0, channel: String(n.channel ?? ''), payload: String(n.payload ?? '') }))
      : [];
  if (problems.length > 0) return { problems };
  return {
    value: {
      file: where.file,
      line: where.line,
      name: typeof doc.name === 'string' ? doc.name : `mock-${where.index}`,
      index: where.index,
      sql: (req as Obj).sql as string,
      ...(params ? { params } : {}),
      mode: params ? 'extended' : 'simple',
      results,
      ...(tx === 'I' || tx === 'T' || tx === 'E' ? { txStatus: tx } : {}),
      noiseParams,
      ...(notices.length > 0 ? { notices } : {}),
      ...(notifications.length > 0 ? { notifications } : {}),
      ...(isObj(spec.metadata) && typeof spec.metadata.database === 'string'
        ? { database: spec.metadata.database }
        : {}),
    },
  };
}
