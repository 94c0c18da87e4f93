// Postgres connections (the app is the client; detect.ts recognises them): reconstruction of each
// query and its answer. The client's messages queue what the server owes (ParseComplete for a
// Parse, rows and a tag for an Execute, ReadyForQuery for a Sync…); the server's messages are read
// against that queue in order, the way a driver reads them. An error in the extended protocol
// skips the rest of the batch up to Sync, as the server does. The startup and authentication
// messages are read and dropped: they hold the password or its proof.

import type { Direction } from '../../model/events.js';
import type { PgColumn, PgError, PgRequest, PgResponse, PgResult, PgValue } from '../../model/postgres.js';
import type { ConnectionContext, ConnectionEnd, ConnectionReconstructor } from '../protocol.js';
import { readDataRow, readError, readRowDescription, withFormats } from './server-messages.js';
import { bindParams, readBind, readParse } from './client-messages.js';
import { FieldReader, readFirstMessage, readTypedMessage, type TypedMessage } from './wire.js';

interface Statement {
  sql: string;
  paramTypes: number[];
  describedParamTypes?: number[];
  columns?: PgColumn[];
}

interface Portal {
  statementName: string;
  statement: Statement;
  params: PgValue[];
  resultFormats: number[];
  columns?: PgColumn[];
}

/** What the server owes for one client message, in the order it answers. */
type Owed =
  | { k: 'startup' }
  | { k: 'ssl' }
  | { k: 'query'; ex: Building }
  | { k: 'parse'; statement: Statement; name: string }
  | { k: 'bind'; portal: Portal; name: string }
  | { k: 'describe'; statement?: Statement; portal?: Portal; name: string }
  | { k: 'execute'; ex: Building; portal: Portal }
  | { k: 'close' }
  | { k: 'sync' }
  | { k: 'function' };

interface Building {
  request: PgRequest;
  response: PgResponse;
  /** The result rows are being added to (simple query: the current statement's). */
  current?: PgResult;
  size: number;
}

export class PostgresConnection implements ConnectionReconstructor {
  private readonly buf: Record<Direction, Buffer> = { in: Buffer.alloc(0), out: Buffer.alloc(0) };
  /** Stream offset of buf[dir][0]; bytes before it were read as whole messages. */
  private readonly base: Record<Direction, number> = { in: 0, out: 0 };
  private readonly stopped: Record<Direction, boolean> = { in: false, out: false };
  private clientStartup = true;
  /** The server answers an SSLRequest/GSSENCRequest with one byte. */
  private serverByteOwed = 0;
  private handedOff: string | undefined;
  private readonly owed: Owed[] = [];
  private readonly statements = new Map<string, Statement>();
  private readonly portals = new Map<string, Portal>();
  /** Exchanges of an extended batch, emitted at its ReadyForQuery (which says the transaction state). */
  private batch: Building[] = [];
  private session: { database?: string; user?: string } = {};
  private tsNs: Record<Direction, bigint> = { in: 0n, out: 0n };

  constructor(private readonly ctx: ConnectionContext) {}

  data(dir: Direction, data: Buffer, tsNs: bigint): void {
    if (this.stopped[dir] || this.handedOff) return;
    this.tsNs[dir] = tsNs;
    this.buf[dir] = this.buf[dir].length === 0 ? data : Buffer.concat([this.buf[dir], data]);
    try {
      if (dir === 'out') this.readClient();
      else this.readServer();
    } catch (err) {
      this.ctx.problems.push({
        reason: 'parse-error',
        detail: `Postgres ${dir === 'out' ? 'client' : 'server'} stream: ${err instanceof Error ? err.message : String(err)}`,
      });
      this.stop(dir);
    }
  }

  stop(dir: Direction): void {
    this.stopped[dir] = true;
    this.buf[dir] = Buffer.alloc(0);
  }

  end(): ConnectionEnd {
    this.flushBatch();
    let unpaired = 0;
    for (const o of this.owed) if (o.k === 'query' || o.k === 'execute') unpaired += o.ex.size;
    if (unpaired > 0)
      this.ctx.problems.push({
        reason: 'unpaired',
        detail: 'Postgres queries without a complete answer when the connection ended',
      });
    return {
      ...(this.handedOff ? { handedOff: this.handedOff } : {}),
      consumed: { in: this.base.in, out: this.base.out },
      unpairedBytes: unpaired,
    };
  }

  private take(dir: Direction, n: number): void {
    this.buf[dir] = this.buf[dir].subarray(n);
    this.base[dir] += n;
  }

  // ---- client ----------------------------------------------------------------------------

  private readClient(): void {
    for (;;) {
      if (this.clientStartup) {
        const m = readFirstMessage(this.buf.out, 0);
        if (!m) return;
        this.take('out', m.size);
        if (m.kind === 'ssl' || m.kind === 'gssenc') {
          this.serverByteOwed++;
          this.owed.push({ k: 'ssl' });
        } else if (m.kind === 'startup') {
          this.clientStartup = false;
          this.session = {
            ...(m.params.database ? { database: m.params.database } : {}),
            ...(m.params.user ? { user: m.params.user } : {}),
          };
          if (!this.session.database && m.params.user) this.session.database = m.params.user;
          this.owed.push({ k: 'startup' });
        } else if (m.kind === 'cancel') {
          return; // a CancelRequest is the whole connection
        } else {
          throw new Error(`unknown startup code ${'code' in m ? m.code : '?'}`);
        }
        continue;
      }
      const m = readTypedMessage(this.buf.out, 0);
      if (!m) return;
      this.clientMessage(m);
      this.take('out', m.size);
    }
  }

  private newExchange(mode: PgRequest['mode'], sql: string, size: number): Building {
    return {
      request: {
        mode,
        sql,
        params: [],
        paramTypes: [],
        resultFormats: [],
        ...this.session,
        firstByteNs: this.tsNs.out,
      },
      response: { results: [], notices: [], notifications: [], firstByteNs: 0n },
      size,
    };
  }

  private clientMessage(m: TypedMessage): void {
    const r = new FieldReader(m.body);
    switch (m.type) {
      case 'Q':
        this.owed.push({ k: 'query', ex: this.newExchange('simple', r.cstring(), m.size) });
        return;
      case 'P': {
        const { name, sql, paramTypes } = readParse(m.body);
        const statement: Statement = { sql, paramTypes };
        this.statements.set(name, statement);
        this.owed.push({ k: 'parse', statement, name });
        return;
      }
      case 'B': {
        const bind = readBind(m.body);
        const { portal: portalName, statementName, resultFormats } = bind;
        const statement = this.statements.get(statementName) ?? {
          sql: `<unknown statement "${statementName}">`,
          paramTypes: [],
        };
        const params = bindParams(bind, statement.paramTypes);
        const portal: Portal = { statementName, statement, params, resultFormats };
        this.portals.set(portalName, portal);
        this.owed.push({ k: 'bind', portal, name: portalName });
        return;
      }
      case 'D': {
        const what = String.fromCharCode(r.byte());
        const name = r.cstring();
        if (what === 'S')
          this.owed.push({ k: 'describe', statement: this.statements.get(name) ?? { sql: '', paramTypes: [] }, name });
        else this.owed.push({ k: 'describe', portal: this.portals.get(name) ?? this.unknownPortal(name), name });
        return;
      }
      case 'E': {
        const name = r.cstring();
        const maxRows = r.int32();
        const portal = this.portals.get(name) ?? this.unknownPortal(name);
        const ex = this.newExchange('extended', portal.statement.sql, m.size);
        ex.request.statement = portal.statementName;
        ex.request.portal = name;
        ex.request.params = portal.params;
        ex.request.paramTypes = portal.statement.paramTypes;
        if (portal.statement.describedParamTypes) ex.request.describedParamTypes = portal.statement.describedParamTypes;
        ex.request.resultFormats = portal.resultFormats;
        if (maxRows > 0) ex.request.maxRows = maxRows;
        this.owed.push({ k: 'execute', ex, portal });
        return;
      }
      case 'C': {
        const what = String.fromCharCode(r.byte());
        const name = r.cstring();
        if (what === 'S') this.statements.delete(name);
        else this.portals.delete(name);
        this.owed.push({ k: 'close' });
        return;
      }
      case 'S':
        this.owed.push({ k: 'sync' });
        return;
      case 'F':
        this.owed.push({ k: 'function' });
        this.ctx.problems.push({ reason: 'incomplete', detail: 'Postgres FunctionCall (fast-path) is not recorded' });
        return;
      // Flush, Terminate, COPY data from the client, and password/SASL messages (never kept).
      case 'H':
      case 'X':
      case 'd':
      case 'c':
      case 'f':
      case 'p':
        return;
      default:
        throw new Error(`unknown client message '${m.type}'`);
    }
  }

  private unknownPortal(name: string): Portal {
    return {
      statementName: '',
      statement: { sql: `<unknown portal "${name}">`, paramTypes: [] },
      params: [],
      resultFormats: [],
    };
  }

  // ---- server ----------------------------------------------------------------------------

  private readServer(): void {
    if (this.clientStartup && this.owed.length === 0 && this.buf.in.length > 0) {
      // A Postgres server never speaks before the client's first message is complete: the short
      // client prefix only looked like a startup packet's length.
      this.ctx.problems.push({
        reason: 'not-http',
        detail: 'not Postgres: the server spoke before the client sent a whole startup packet',
      });
      this.stop('in');
      this.stop('out');
      return;
    }
    for (;;) {
      if (this.serverByteOwed > 0 && this.owed[0]?.k === 'ssl') {
        if (this.buf.in.length === 0) return;
        const answer = String.fromCharCode(this.buf.in[0]!);
        this.take('in', 1);
        this.owed.shift();
        this.serverByteOwed--;
        if (answer === 'S' || answer === 'G') {
          // TLS or GSSAPI encryption follows on this socket; a TLS stream is read from the uprobes.
          this.handedOff = answer === 'S' ? 'Postgres TLS (SSLRequest accepted)' : 'Postgres GSSAPI encryption';
          return;
        }
        if (answer !== 'N') throw new Error(`unexpected answer '${answer}' to SSLRequest`);
        continue;
      }
      const m = readTypedMessage(this.buf.in, 0);
      if (!m) return;
      this.serverMessage(m);
      this.take('in', m.size);
    }
  }

  private serverMessage(m: TypedMessage): void {
    const head = this.owed[0];
    const building = head && (head.k === 'query' || head.k === 'execute') ? head.ex : this.batch[this.batch.length - 1];
    switch (m.type) {
      case 'N':
        building?.response.notices.push(readError(m.body));
        return;
      case 'A': {
        const r = new FieldReader(m.body);
        const n = { pid: r.int32(), channel: r.cstring(), payload: r.cstring() };
        building?.response.notifications.push(n);
        return;
      }
      case 'S': // ParameterStatus
      case 'K': // BackendKeyData
      case 'R': // Authentication*: never kept
      case 'v': // NegotiateProtocolVersion
        return;
    }
    if (!head) throw new Error(`server message '${m.type}' with nothing asked`);
    if (head.k === 'startup') {
      if (m.type === 'Z') this.owed.shift();
      else if (m.type === 'E') {
        this.owed.shift(); // the server refused the connection (authentication, unknown database)
      } else throw new Error(`unexpected server message '${m.type}' during startup`);
      return;
    }
    if (m.type === 'E' && head.k !== 'query') return this.extendedError(readError(m.body));
    switch (head.k) {
      case 'query':
        return this.simpleQueryMessage(head.ex, m);
      case 'parse':
        return this.expect(m, '1');
      case 'bind':
        return this.expect(m, '2');
      case 'close':
        return this.expect(m, '3');
      case 'describe':
        if (m.type === 't') {
          const r = new FieldReader(m.body);
          const n = r.int16();
          const types: number[] = [];
          for (let i = 0; i < n; i++) types.push(r.uint32());
          if (head.statement) head.statement.describedParamTypes = types;
          return; // RowDescription or NoData follows
        }
        if (m.type === 'T' || m.type === 'n') {
          const cols = m.type === 'T' ? readRowDescription(m.body) : undefined;
          if (head.statement) {
            if (cols) head.statement.columns = cols;
          } else if (head.portal && cols) head.portal.columns = cols;
          this.owed.shift();
          return;
        }
        throw new Error(`unexpected server message '${m.type}' after Describe`);
      case 'execute': {
        const ex = head.ex;
        if (ex.response.firstByteNs === 0n) ex.response.firstByteNs = this.tsNs.in;
        const cols = head.portal.columns ?? withFormats(head.portal.statement.columns, head.portal.resultFormats);
        ex.current ??= { ...(cols ? { columns: cols } : {}), rows: [] };
        const res = ex.current;
        if (m.type === 'D') res.rows.push(readDataRow(m.body, cols));
        else if (m.type === 'C' || m.type === 'I' || m.type === 's') {
          if (m.type === 'C') res.commandTag = new FieldReader(m.body).cstring();
          if (m.type === 'I') res.empty = true;
          if (m.type === 's') res.suspended = true;
          this.finishResult(ex);
          this.owed.shift();
          this.batch.push(ex);
        } else if (m.type === 'G' || m.type === 'H' || m.type === 'W') {
          this.copyStarted(res, m.type);
        } else if (m.type === 'd' || m.type === 'c') {
          // COPY OUT data: recognised, not kept
        } else throw new Error(`unexpected server message '${m.type}' after Execute`);
        return;
      }
      case 'sync':
        if (m.type !== 'Z') throw new Error(`unexpected server message '${m.type}' before ReadyForQuery`);
        this.owed.shift();
        this.readyForQuery(m.body);
        return;
      case 'function':
        if (m.type === 'V') return;
        if (m.type === 'Z') this.owed.shift();
        return;
      case 'ssl':
        throw new Error('server message where the answer to SSLRequest was due');
    }
  }

  private expect(m: TypedMessage, type: string): void {
    if (m.type !== type) throw new Error(`server sent '${m.type}' where '${type}' was due`);
    this.owed.shift();
  }

  private copyStarted(res: PgResult, type: string): void {
    res.copy = type === 'G' ? 'in' : type === 'H' ? 'out' : 'both';
    this.ctx.problems.push({
      reason: 'incomplete',
      detail: `Postgres COPY ${res.copy === 'in' ? 'FROM STDIN' : 'TO STDOUT'}: recognised; the copied data is not recorded`,
    });
  }

  private finishResult(ex: Building): void {
    if (ex.current) ex.response.results.push(ex.current);
    delete ex.current;
  }

  private simpleQueryMessage(ex: Building, m: TypedMessage): void {
    if (ex.response.firstByteNs === 0n) ex.response.firstByteNs = this.tsNs.in;
    switch (m.type) {
      case 'T':
        this.finishResult(ex);
        ex.current = { columns: readRowDescription(m.body), rows: [] };
        return;
      case 'D':
        ex.current ??= { rows: [] };
        ex.current.rows.push(readDataRow(m.body, ex.current.columns));
        return;
      case 'C':
        ex.current ??= { rows: [] };
        ex.current.commandTag = new FieldReader(m.body).cstring();
        this.finishResult(ex);
        return;
      case 'I':
        ex.current = { rows: [], empty: true };
        this.finishResult(ex);
        return;
      case 'E':
        ex.current ??= { rows: [] };
        ex.current.error = readError(m.body);
        this.finishResult(ex);
        return;
      case 'G':
      case 'H':
      case 'W':
        ex.current ??= { rows: [] };
        this.copyStarted(ex.current, m.type);
        return;
      case 'd':
      case 'c':
        return;
      case 'Z':
        this.finishResult(ex);
        this.owed.shift();
        this.batch.push(ex);
        this.readyForQuery(m.body);
        return;
      default:
        throw new Error(`unexpected server message '${m.type}' after Query`);
    }
  }

  /** An ErrorResponse in the extended protocol: the server skips everything up to Sync. */
  private extendedError(err: PgError): void {
    let target: Building | undefined;
    const skipped: Owed[] = [];
    while (this.owed.length > 0 && this.owed[0]!.k !== 'sync') skipped.push(this.owed.shift()!);
    const failing = skipped[0];
    const exec = skipped.find((o): o is Extract<Owed, { k: 'execute' }> => o.k === 'execute');
    if (exec) target = exec.ex;
    else if (failing && (failing.k === 'parse' || failing.k === 'describe' || failing.k === 'bind')) {
      const statement =
        failing.k === 'parse'
          ? failing.statement
          : failing.k === 'bind'
            ? failing.portal.statement
            : (failing.statement ?? failing.portal?.statement);
      target = this.newExchange('extended', statement?.sql ?? '', 0);
      if (failing.k === 'bind') target.request.params = failing.portal.params;
    }
    if (!target) return;
    if (target.response.firstByteNs === 0n) target.response.firstByteNs = this.tsNs.in;
    target.current ??= { rows: [] };
    target.current.error = err;
    this.finishResult(target);
    this.batch.push(target);
  }

  private readyForQuery(body: Buffer): void {
    const status = String.fromCharCode(body[0] ?? 0x49);
    for (const ex of this.batch) if (status === 'I' || status === 'T' || status === 'E') ex.response.txStatus = status;
    this.flushBatch();
  }

  private flushBatch(): void {
    for (const ex of this.batch)
      this.ctx.emit({ protocol: 'postgres', role: 'outgoing', request: ex.request, response: ex.response });
    this.batch = [];
  }
}
