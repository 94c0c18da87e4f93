// Which recorded Postgres mock answers a query the app sends in replay: same SQL after
// normalising whitespace, then the same parameters (as the text the app sent; positions listed in
// the mock's `noise` are not compared). Repeated identical queries are answered in recorded order
// across all connections (a pool spreads them over several), the last one again once all are used.
// A miss names the closest mock and the field that differed.

import type { PgError, PgResult, PgValue } from '../../model/postgres.js';
import { valueText } from './values.js';

export interface PgMock {
  file: string;
  line?: number;
  name: string;
  /** 0-based order in mocks.yaml. */
  index: number;
  sql: string;
  /** Absent for a simple Query (no parameters). */
  params?: PgValue[];
  mode: 'simple' | 'extended';
  results: PgResult[];
  txStatus?: 'I' | 'T' | 'E';
  /** Parameter positions (0-based) the matcher does not compare. */
  noiseParams: Set<number>;
  database?: string;
  notices?: PgError[];
  notifications?: Array<{ pid: number; channel: string; payload: string }>;
}

export interface PgCall {
  sql: string;
  /** Text of each bound parameter (binary ones as \x hex), null for NULL; absent for a simple Query. */
  params?: Array<string | null>;
}

export type PgMatchOutcome =
  | { kind: 'hit'; mock: PgMock; reused: boolean }
  | { kind: 'miss'; reason: string; closest?: { mock: PgMock; field: string; expected: string; actual: string } };

/** SQL with runs of whitespace outside quotes and comments as one space, no trailing semicolon. */
export function normaliseSql(sql: string): string {
  let out = '';
  let i = 0;
  let space = false;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      const end = sql.indexOf(c, i + 1);
      const stop = end < 0 ? sql.length : end + 1;
      if (space && out.length > 0) out += ' ';
      space = false;
      out += sql.slice(i, stop);
      i = stop;
      continue;
    }
    if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? sql.length : nl;
      space = true;
      continue;
    }
    if (/\s/.test(c)) {
      space = true;
      i++;
      continue;
    }
    if (space && out.length > 0) out += ' ';
    space = false;
    out += c;
    i++;
  }
  return out.replace(/\s*;+$/, '');
}

function show(v: string | null | undefined): string {
  return v === null ? 'NULL' : v === undefined ? '(none)' : JSON.stringify(v);
}

export class PgMockMatcher {
  private readonly mocks: readonly PgMock[];
  private readonly normSql: string[];

  /**
   * `used` marks the mocks that answered, shared by every connection of a run (a pool spreads
   * repeated queries over its connections; the recorded order holds across them).
   */
  constructor(
    mocks: readonly PgMock[],
    private readonly used: { has(m: PgMock): boolean; add(m: PgMock): unknown } = new Set<PgMock>(),
  ) {
    this.mocks = [...mocks].sort((a, b) => a.index - b.index);
    this.normSql = this.mocks.map((m) => normaliseSql(m.sql));
  }

  /** The first parameter that differs, or undefined when they match. */
  private paramDiff(m: PgMock, call: PgCall): { field: string; expected: string; actual: string } | undefined {
    const want = m.params ?? [];
    const got = call.params ?? [];
    if (want.length !== got.length)
      return { field: 'params', expected: `${want.length} parameters`, actual: `${got.length}` };
    for (let i = 0; i < want.length; i++) {
      if (m.noiseParams.has(i)) continue;
      const w = valueText(want[i]!);
      if (w !== got[i]) return { field: `params[${i}]`, expected: show(w), actual: show(got[i]) };
    }
    return undefined;
  }

  /** The first mock with this SQL, without using it up (to describe a statement before it is bound). */
  peek(sql: string): PgMock | undefined {
    const n = normaliseSql(sql);
    const i = this.normSql.indexOf(n);
    return i < 0 ? undefined : this.mocks[i];
  }

  match(call: PgCall): PgMatchOutcome {
    const sql = normaliseSql(call.sql);
    const sameSql: number[] = [];
    for (let i = 0; i < this.mocks.length; i++) if (this.normSql[i] === sql) sameSql.push(i);
    const hits = sameSql.filter((i) => !this.paramDiff(this.mocks[i]!, call));
    if (hits.length > 0) {
      const i = hits.find((h) => !this.used.has(this.mocks[h]!)) ?? hits[hits.length - 1]!;
      const mock = this.mocks[i]!;
      const reused = this.used.has(mock);
      this.used.add(mock);
      return { kind: 'hit', mock, reused };
    }
    if (sameSql.length > 0) {
      const m = this.mocks[sameSql[0]!]!;
      const diff = this.paramDiff(m, call)!;
      return {
        kind: 'miss',
        reason: `no mock for this query with these parameters (${diff.field} differs)`,
        closest: { mock: m, ...diff },
      };
    }
    // The closest by SQL text: the longest common prefix of the normalised SQL.
    let best = -1;
    let bestLen = -1;
    for (let i = 0; i < this.mocks.length; i++) {
      const s = this.normSql[i]!;
      let k = 0;
      while (k < s.length && k < sql.length && s[k] === sql[k]) k++;
      if (k > bestLen) {
        best = i;
        bestLen = k;
      }
    }
    if (best < 0) return { kind: 'miss', reason: 'no Postgres mocks recorded' };
    const m = this.mocks[best]!;
    return {
      kind: 'miss',
      reason: 'no mock for this SQL',
      closest: { mock: m, field: 'sql', expected: this.normSql[best]!, actual: sql },
    };
  }
}
