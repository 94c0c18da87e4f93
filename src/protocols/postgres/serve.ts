// The Postgres mock endpoint: a redirected connection from the app is answered as a server would,
// from the recorded mocks. Startup completes without a password (AuthenticationOk straight after
// the StartupMessage: the server "trusts" the client, so password, MD5 and SCRAM clients all
// connect; a SCRAM exchange cannot be replayed byte for byte), then ParameterStatus,
// BackendKeyData and ReadyForQuery. An SSLRequest is answered 'S' and TLS is terminated with the
// run CA (the app trusts it in replay); GSSENCRequest is answered 'N'. Queries are matched by
// normalised SQL then parameters (matcher.ts); a miss is an ErrorResponse naming the closest mock,
// and is reported to the run.

import { randomInt } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { PgColumn, PgError, PgResult, PgValue } from '../../model/postgres.js';
import type { MockServeContext } from '../protocol.js';
import { PgMockMatcher, type PgMatchOutcome, type PgMock } from './matcher.js';
import { bindParams, readBind, readParse } from './client-messages.js';
import { encodeValue, valueText } from './values.js';
import {
  errorFieldCode,
  FieldReader,
  MessageWriter,
  readFirstMessage,
  readTypedMessage,
  type TypedMessage,
} from './wire.js';

/** SQLSTATE of the mock's own errors: XX000 internal_error (there is no class for "not recorded"). */
const MISS_SQLSTATE = 'XX000';

/** Mocks used in a run, by the loaded documents (the same objects for every connection of the run). */
const usedByRun = new WeakMap<object, Set<PgMock>>();

interface Statement {
  sql: string;
  paramTypes: number[];
}
interface Portal {
  statement: Statement;
  params: Array<string | null>;
  resultFormats: number[];
  /** Resolved at Describe or Execute, once. */
  outcome?: PgMatchOutcome;
}

function rowDescription(cols: PgColumn[], formats: number[]): Buffer {
  const w = new MessageWriter('T').int16(cols.length);
  cols.forEach((c, i) => {
    const format = formats.length === 0 ? c.format : formats.length === 1 ? formats[0]! : (formats[i] ?? 0);
    w.cstring(c.name)
      .uint32(c.tableOid)
      .int16(c.columnAttr)
      .uint32(c.typeOid)
      .int16(c.typeSize)
      .int32(c.typeModifier)
      .int16(format);
  });
  return w.done();
}

function dataRow(row: PgValue[], cols: PgColumn[] | undefined, formats: number[]): Buffer {
  const w = new MessageWriter('D').int16(row.length);
  row.forEach((v, i) => {
    const col = cols?.[i];
    const format = formats.length === 0 ? (col?.format ?? 0) : formats.length === 1 ? formats[0]! : (formats[i] ?? 0);
    const b = encodeValue(v, col?.typeOid ?? 25, format);
    if (b === null) w.int32(-1);
    else w.int32(b.length).bytes(b);
  });
  return w.done();
}

function errorResponse(e: PgError, type: 'E' | 'N' = 'E'): Buffer {
  const w = new MessageWriter(type);
  const field = (code: string, v: string | undefined): void => {
    if (v !== undefined) w.byte(code.charCodeAt(0)).cstring(v);
  };
  field('S', e.severity);
  field('V', e.severity);
  field('C', e.code);
  field('M', e.message);
  field('D', e.detail);
  field('H', e.hint);
  for (const [k, v] of Object.entries(e.fields ?? {})) {
    const code = errorFieldCode(k);
    if (code) field(code, v);
  }
  return w.byte(0).done();
}

const simple = (type: string): Buffer => new MessageWriter(type).done();

export function servePostgres(socket: Duplex, ctx: MockServeContext<PgMock>): void {
  const first = ctx.mocks[0];
  let used = first ? usedByRun.get(first) : undefined;
  if (first && !used) usedByRun.set(first, (used = new Set()));
  const matcher = new PgMockMatcher(
    ctx.mocks.map((d) => d.value),
    used,
  );
  new PgMockConnection(socket, ctx, matcher).start();
}

class PgMockConnection {
  private buf: Buffer = Buffer.alloc(0);
  private out: Buffer[] = [];
  private startup = true;
  private database = '';
  private user = '';
  private readonly statements = new Map<string, Statement>();
  private readonly portals = new Map<string, Portal>();
  /** After an error in the extended protocol, messages are skipped up to Sync (as the server does). */
  private skipping = false;
  private txStatus: 'I' | 'T' | 'E' = 'I';
  /** A COPY FROM STDIN the client is sending data for: its mock's remaining answer. */
  private copyIn: { result: PgResult; rest: PgResult[]; mock: PgMock } | undefined;
  private readonly onData = (chunk: Buffer): void => this.data(chunk);

  constructor(
    private readonly socket: Duplex,
    private readonly ctx: MockServeContext<PgMock>,
    private readonly matcher: PgMockMatcher,
  ) {}

  start(): void {
    this.socket.on('data', this.onData);
  }

  private url(): string {
    const d = this.ctx.destination;
    const host = d.servername ?? d.host ?? 'postgres';
    return `postgres://${host}${d.port ? `:${d.port}` : ''}/${this.database}`;
  }

  /** Answers go out once per chunk read: one segment for a driver's Parse/Bind/Execute/Sync batch, not one per message. */
  private send(b: Buffer | string): void {
    this.out.push(typeof b === 'string' ? Buffer.from(b, 'latin1') : b);
  }

  private flush(): void {
    if (this.out.length === 0) return;
    const all = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out);
    this.out = [];
    this.socket.write(all);
  }

  private data(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    try {
      while (this.step()) {
        /* one message per step */
      }
      this.flush();
    } catch (err) {
      const message = `tlsrec mock: cannot read the client's message: ${err instanceof Error ? err.message : String(err)}`;
      this.send(errorResponse({ severity: 'FATAL', code: '08P01', message }));
      this.flush();
      this.socket.end();
      return;
    }
  }

  /** Handles one whole message if there is one; false when more bytes are needed or the connection is done. */
  private step(): boolean {
    if (this.startup) {
      const m = readFirstMessage(this.buf, 0);
      if (!m) return false;
      this.buf = this.buf.subarray(m.size);
      if (m.kind === 'ssl') {
        // TLS with the run CA, then the startup again inside it.
        this.socket.off('data', this.onData);
        this.socket.pause();
        const rest = this.buf;
        this.flush();
        this.socket.write('S');
        this.ctx.startTls(this.socket).then(
          (secure) => {
            const next = new PgMockConnection(secure, this.ctx, this.matcher);
            next.start();
            if (rest.length > 0) next.data(rest);
          },
          () => this.socket.destroy(),
        );
        return false;
      }
      if (m.kind === 'gssenc') {
        this.send('N');
        return true;
      }
      if (m.kind === 'cancel' || m.kind === 'unknown') {
        this.flush();
        this.socket.end();
        return false;
      }
      this.startup = false;
      this.user = m.params.user ?? '';
      this.database = m.params.database ?? this.user;
      this.send(this.greeting(m.params));
      return true;
    }
    const m = readTypedMessage(this.buf, 0);
    if (!m) return false;
    this.buf = this.buf.subarray(m.size);
    return this.message(m);
  }

  private greeting(params: Record<string, string>): Buffer {
    const status = (k: string, v: string): Buffer => new MessageWriter('S').cstring(k).cstring(v).done();
    return Buffer.concat([
      new MessageWriter('R').int32(0).done(), // AuthenticationOk: no password asked
      status('server_version', '16.0 (tlsrec mock)'),
      status('server_encoding', 'UTF8'),
      status('client_encoding', params.client_encoding ?? 'UTF8'),
      status('DateStyle', 'ISO, MDY'),
      status('IntervalStyle', 'postgres'),
      status('TimeZone', 'UTC'),
      status('integer_datetimes', 'on'),
      status('standard_conforming_strings', 'on'),
      status('is_superuser', 'off'),
      status('session_authorization', this.user),
      status('application_name', params.application_name ?? ''),
      new MessageWriter('K')
        .int32(randomInt(1, 2 ** 31 - 1))
        .int32(randomInt(1, 2 ** 31 - 1))
        .done(),
      this.ready(),
    ]);
  }

  private ready(): Buffer {
    return new MessageWriter('Z').byte(this.txStatus.charCodeAt(0)).done();
  }

  private message(m: TypedMessage): boolean {
    const { type, body } = m;
    const r = new FieldReader(body);
    if (this.copyIn) return this.copyMessage(type);
    if (this.skipping && type !== 'S') return true;
    switch (type) {
      case 'Q':
        this.simpleQuery(r.cstring());
        return true;
      case 'P': {
        const { name, sql, paramTypes } = readParse(body);
        this.statements.set(name, { sql, paramTypes });
        this.send(simple('1'));
        return true;
      }
      case 'B': {
        const bind = readBind(body);
        const { portal, statementName, resultFormats } = bind;
        const statement = this.statements.get(statementName);
        if (!statement) {
          this.fail({
            severity: 'ERROR',
            code: '26000',
            message: `prepared statement "${statementName}" does not exist`,
          });
          return true;
        }
        const params = bindParams(bind, statement.paramTypes).map(valueText);
        this.portals.set(portal, { statement, params, resultFormats });
        this.send(simple('2'));
        return true;
      }
      case 'D': {
        const what = String.fromCharCode(r.byte());
        const name = r.cstring();
        if (what === 'S') {
          const st = this.statements.get(name);
          if (!st)
            return (
              this.fail({ severity: 'ERROR', code: '26000', message: `prepared statement "${name}" does not exist` }),
              true
            );
          const mock = this.matcher.peek(st.sql);
          const types = st.paramTypes.map((t) => t || 25);
          const pd = new MessageWriter('t').int16(types.length);
          for (const t of types) pd.uint32(t);
          const cols = mock?.results[0]?.columns;
          this.send(Buffer.concat([pd.done(), cols ? rowDescription(cols, []) : simple('n')]));
          return true;
        }
        const portal = this.portals.get(name);
        if (!portal)
          return (this.fail({ severity: 'ERROR', code: '34000', message: `portal "${name}" does not exist` }), true);
        const outcome = this.resolve(portal);
        if (outcome.kind === 'miss') return (this.missed(outcome, portal.statement.sql, portal.params), true);
        const cols = outcome.mock.results[0]?.columns;
        this.send(cols ? rowDescription(cols, portal.resultFormats) : simple('n'));
        return true;
      }
      case 'E': {
        const name = r.cstring();
        const portal = this.portals.get(name);
        if (!portal)
          return (this.fail({ severity: 'ERROR', code: '34000', message: `portal "${name}" does not exist` }), true);
        const outcome = this.resolve(portal);
        if (outcome.kind === 'miss') return (this.missed(outcome, portal.statement.sql, portal.params), true);
        delete portal.outcome; // executing the portal again is another query
        const res = outcome.mock.results[0] ?? { rows: [] };
        const out: Buffer[] = this.extras(outcome.mock);
        for (const row of res.rows) out.push(dataRow(row, res.columns, portal.resultFormats));
        if (res.error) {
          out.push(errorResponse(res.error));
          this.skipping = true;
        } else if (res.suspended) out.push(simple('s'));
        else if (res.empty) out.push(simple('I'));
        else out.push(new MessageWriter('C').cstring(res.commandTag ?? '').done());
        if (outcome.mock.txStatus) this.txStatus = outcome.mock.txStatus;
        this.send(Buffer.concat(out));
        return true;
      }
      case 'C': {
        const what = String.fromCharCode(r.byte());
        const name = r.cstring();
        if (what === 'S') this.statements.delete(name);
        else this.portals.delete(name);
        this.send(simple('3'));
        return true;
      }
      case 'S':
        this.skipping = false;
        this.send(this.ready());
        return true;
      case 'H':
      case 'p':
        return true;
      case 'X':
        this.flush();
        this.socket.end();
        return false;
      default:
        this.fail({
          severity: 'ERROR',
          code: '0A000',
          message: `tlsrec mock: the '${type}' message is not supported in replay`,
        });
        return true;
    }
  }

  private resolve(portal: Portal): PgMatchOutcome {
    portal.outcome ??= this.report(this.matcher.match({ sql: portal.statement.sql, params: portal.params }));
    return portal.outcome;
  }

  /** Reports a hit to the run (a miss is reported where it is answered). */
  private report(outcome: PgMatchOutcome): PgMatchOutcome {
    if (outcome.kind === 'hit')
      this.ctx.hit({
        mock: outcome.mock.name,
        method: 'QUERY',
        url: this.url(),
        ...(outcome.reused ? { reused: true } : {}),
      });
    return outcome;
  }

  /** Notices and notifications the mock recorded, sent before its results. */
  private extras(mock: PgMock): Buffer[] {
    return [
      ...(mock.notices ?? []).map((n) => errorResponse(n, 'N')),
      ...(mock.notifications ?? []).map((n) =>
        new MessageWriter('A').int32(n.pid).cstring(n.channel).cstring(n.payload).done(),
      ),
    ];
  }

  private fail(e: PgError): void {
    this.send(errorResponse(e));
    this.skipping = true;
  }

  private missed(
    outcome: Extract<PgMatchOutcome, { kind: 'miss' }>,
    sql: string,
    params: Array<string | null> | undefined,
  ): void {
    const shown = sql.length > 200 ? `${sql.slice(0, 200)}…` : sql;
    const withParams =
      params && params.length > 0
        ? ` with parameters [${params.map((p) => (p === null ? 'NULL' : JSON.stringify(p))).join(', ')}]`
        : '';
    const c = outcome.closest;
    const closest = c ? `; closest ${c.mock.name} differs at ${c.field}: expected ${c.expected}, got ${c.actual}` : '';
    const message = `tlsrec: no recorded Postgres mock for ${JSON.stringify(shown)}${withParams} (${outcome.reason})${closest}`;
    this.ctx.miss({
      method: 'QUERY',
      url: this.url(),
      ...(c
        ? { closest: { mock: c.mock.name, field: c.field, detail: `expected ${c.expected}, got ${c.actual}` } }
        : {}),
      message,
    });
    if (this.txStatus === 'T') this.txStatus = 'E';
    this.fail({
      severity: 'ERROR',
      code: MISS_SQLSTATE,
      message,
      hint: 'record again with this query, or add a kind: Postgres mock for it to mocks.yaml',
    });
  }

  private simpleQuery(sql: string): void {
    const outcome = this.report(this.matcher.match({ sql }));
    if (outcome.kind === 'miss') {
      this.missed(outcome, sql, undefined);
      this.skipping = false;
      this.send(this.ready());
      return;
    }
    this.sendResults(outcome.mock.results, outcome.mock);
  }

  /** A simple query's results; a COPY FROM STDIN waits for the client's data before the rest. */
  private sendResults(results: PgResult[], mock: PgMock): void {
    const out: Buffer[] = this.extras(mock);
    for (let i = 0; i < results.length; i++) {
      const res = results[i]!;
      if (res.columns) out.push(rowDescription(res.columns, []));
      if (res.copy === 'in') {
        out.push(new MessageWriter('G').byte(0).int16(0).done());
        this.send(Buffer.concat(out));
        this.copyIn = { result: res, rest: results.slice(i + 1), mock: { ...mock, notices: [], notifications: [] } };
        return;
      }
      for (const row of res.rows) out.push(dataRow(row, res.columns, []));
      if (res.error) out.push(errorResponse(res.error));
      else if (res.empty) out.push(simple('I'));
      else out.push(new MessageWriter('C').cstring(res.commandTag ?? '').done());
    }
    if (mock.txStatus) this.txStatus = mock.txStatus;
    out.push(this.ready());
    this.send(Buffer.concat(out));
  }

  private copyMessage(type: string): boolean {
    if (type === 'd') return true;
    const copy = this.copyIn!;
    this.copyIn = undefined;
    const out: Buffer[] = [];
    if (type === 'f') out.push(errorResponse({ severity: 'ERROR', code: '57014', message: 'COPY from stdin failed' }));
    else if (copy.result.error) out.push(errorResponse(copy.result.error));
    else out.push(new MessageWriter('C').cstring(copy.result.commandTag ?? '').done());
    this.send(Buffer.concat(out));
    this.sendResults(copy.rest, copy.mock);
    return true;
  }
}
