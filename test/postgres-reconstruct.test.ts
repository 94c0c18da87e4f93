// Postgres recording from a real event stream (fixtures/events/postgres-pool.jsonl: the `pg` client
// against a real server, see make-postgres-fixture.mjs): detection, the simple and extended
// protocol, values by type, errors, notices, notifications, transactions; the same exchanges when
// the stream is re-split at every byte; a lost chunk keeps what came before; no password or SCRAM
// proof reaches an exchange or a mock.

import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { CaptureEvent, DataEvent } from '../src/model/events.js';
import type { PostgresExchange, SkippedStream } from '../src/model/exchange.js';
import { postgres } from '../src/protocols/postgres/index.js';
import { detectPostgres } from '../src/protocols/postgres/detect.js';
import { MessageWriter } from '../src/protocols/postgres/wire.js';
import { parseEventLine } from '../src/record/event-file.js';
import { Reconstructor, type ReconstructStats } from '../src/record/reconstruct.js';

const FIXTURE = 'postgres-pool.jsonl';

function load(): CaptureEvent[] {
  return fs
    .readFileSync(new URL(`../fixtures/events/${FIXTURE}`, import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => parseEventLine(l, i + 1, FIXTURE));
}

function run(events: Iterable<CaptureEvent>): {
  ex: PostgresExchange[];
  stats: ReconstructStats;
  skipped: SkippedStream[];
} {
  const ex: PostgresExchange[] = [];
  const skipped: SkippedStream[] = [];
  const r = new Reconstructor({ onExchange: (e) => ex.push(e as PostgresExchange), onSkipped: (s) => skipped.push(s) });
  for (const e of events) r.push(e);
  return { ex, stats: r.finish(), skipped };
}

/** Exchanges without times (re-splitting moves them). */
function view(ex: PostgresExchange[]): unknown {
  return JSON.parse(
    JSON.stringify(ex, (k, v: unknown) => (k === 'firstByteNs' ? undefined : typeof v === 'bigint' ? String(v) : v)),
  );
}

function resplit(events: CaptureEvent[], cut: (e: DataEvent) => number[]): CaptureEvent[] {
  const out: CaptureEvent[] = [];
  for (const e of events) {
    if (e.type !== 'data') {
      out.push(e);
      continue;
    }
    let off = 0;
    for (const n of cut(e)) {
      out.push({ ...e, pos: e.pos + BigInt(off), chunkOff: e.chunkOff + off, data: e.data.subarray(off, off + n) });
      off += n;
    }
  }
  return out;
}

const bySql = (ex: PostgresExchange[], sql: string) => ex.filter((e) => e.request.sql === sql);

describe('postgres: detection', () => {
  const startup = Buffer.concat([
    Buffer.from([0, 0, 0, 23, 0, 3, 0, 0]),
    Buffer.from('user\0app\0\0'),
    Buffer.alloc(5),
  ]);
  startup.writeInt32BE(startup.length, 0);
  const ssl = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
  const gss = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]);

  it('recognises StartupMessage, SSLRequest and GSSENCRequest from the client, on any port', () => {
    expect(detectPostgres(startup, { dir: 'out' })).toEqual({ verdict: 'yes' });
    expect(detectPostgres(ssl, { dir: 'out' })).toEqual({ verdict: 'yes' });
    expect(detectPostgres(gss, { dir: 'out' })).toEqual({ verdict: 'yes' });
    expect(detectPostgres(ssl.subarray(0, 5), { dir: 'out' })).toEqual({ verdict: 'more' });
  });

  it('says no to HTTP, TLS and to a client connecting to the app', () => {
    expect(detectPostgres(Buffer.from('GET / HTTP/1.1\r\n'), { dir: 'out' }).verdict).toBe('no');
    expect(detectPostgres(Buffer.from([0x16, 3, 1, 0, 0x80, 1, 0, 0]), { dir: 'out' }).verdict).toBe('no');
    expect(detectPostgres(startup, { dir: 'in' })).toMatchObject({
      verdict: 'no',
      why: expect.stringMatching(/server side/),
    });
  });
});

describe('postgres: reconstruction of a real pg pool session', () => {
  const events = load();
  const base = run(events);

  it('turns every query into one outgoing postgres exchange, nothing skipped', () => {
    expect(base.skipped).toEqual([]);
    expect(base.ex.every((e) => e.protocol === 'postgres' && e.role === 'outgoing')).toBe(true);
    expect(base.ex.length).toBe(22);
    expect(new Set(base.ex.map((e) => e.conn)).size).toBe(3);
    expect(base.ex[0]!.request).toMatchObject({ mode: 'simple', database: 'tlsrec_app', user: 'tlsrec_app' });
  });

  it('a transaction: BEGIN, parameterised INSERTs with values by type, COMMIT; the status after each', () => {
    const inserts = bySql(
      base.ex,
      'INSERT INTO users (name, email, score, active, born) VALUES ($1, $2, $3, $4, $5) RETURNING id',
    );
    expect(inserts.map((e) => e.request.params)).toEqual([
      ['ann', 'ann@example.test', '12.50', 'true', '1990-04-01'],
      ['bob', null, '3', 'false', null],
    ]);
    expect(inserts.map((e) => e.response.results[0]!.rows)).toEqual([[[1]], [[2]]]);
    expect(inserts.map((e) => [e.response.results[0]!.commandTag, e.response.txStatus])).toEqual([
      ['INSERT 0 1', 'T'],
      ['INSERT 0 1', 'T'],
    ]);
    expect(bySql(base.ex, 'BEGIN')[0]!.response.txStatus).toBe('T');
    expect(bySql(base.ex, 'COMMIT')[0]!.response.txStatus).toBe('I');
  });

  it('row values decoded by column type: int, text, NULL, numeric as text, bool, date', () => {
    const sel = bySql(base.ex, 'SELECT id, name, email, score, active, born FROM users WHERE id = $1')[0]!;
    const r = sel.response.results[0]!;
    expect(r.columns!.map((c) => c.name)).toEqual(['id', 'name', 'email', 'score', 'active', 'born']);
    expect(r.rows).toEqual([[1, 'ann', 'ann@example.test', '12.50', true, '1990-04-01']]);
    expect(r.commandTag).toBe('SELECT 1');
  });

  it('repeated identical queries keep their order (a counter)', () => {
    const upd = bySql(base.ex, 'UPDATE counters SET n = n + 1 WHERE name = $1 RETURNING n');
    expect(upd.map((e) => e.response.results[0]!.rows[0]![0])).toEqual([1, 2, 3]);
  });

  it('a named prepared statement: parsed once, executed twice with its SQL', () => {
    const named = base.ex.filter((e) => e.request.statement === 'user-by-name');
    expect(named.map((e) => [e.request.sql, e.request.params, e.response.results[0]!.rows])).toEqual([
      ['SELECT id, email FROM users WHERE name = $1', ['ann'], [[1, 'ann@example.test']]],
      ['SELECT id, email FROM users WHERE name = $1', ['bob'], [[2, null]]],
    ]);
  });

  it('binary result columns are decoded by type', () => {
    const bin = bySql(base.ex, 'SELECT $1::int4 AS n, 2.5::float8 AS f, true AS b')[0]!;
    expect(bin.request.resultFormats).toEqual([1]);
    expect(bin.response.results[0]!.rows).toEqual([[7, 2.5, true]]);
  });

  it('a simple query with two statements answers two results', () => {
    const two = bySql(base.ex, 'SELECT 1 AS one; SELECT 2 AS two')[0]!;
    expect(two.response.results.map((r) => [r.columns!.map((c) => c.name), r.rows, r.commandTag])).toEqual([
      [['one'], [[1]], 'SELECT 1'],
      [['two'], [[2]], 'SELECT 1'],
    ]);
  });

  it('errors at Execute and at Parse keep their SQLSTATE, message and the parameters', () => {
    const dup = bySql(base.ex, 'INSERT INTO users (name, email) VALUES ($1, $2)')[0]!;
    expect(dup.request.params).toEqual(['dup', 'ann@example.test']);
    expect(dup.response.results[0]!.error).toMatchObject({
      code: '23505',
      severity: 'ERROR',
      message: expect.stringContaining('users_email_key'),
    });
    const syntax = bySql(base.ex, 'SELEC broken FROM $1')[0]!;
    expect(syntax.request.params).toEqual(['x']);
    expect(syntax.response.results[0]!.error).toMatchObject({
      code: '42601',
      message: 'syntax error at or near "SELEC"',
    });
  });

  it('notices, LISTEN/NOTIFY and the empty query', () => {
    const notice = base.ex.find((e) => e.request.sql.startsWith('DO $$'))!;
    expect(notice.response.notices).toEqual([
      expect.objectContaining({ severity: 'NOTICE', message: 'hello from plpgsql' }),
    ]);
    const notify = bySql(base.ex, "NOTIFY jobs, 'job-1'")[0]!;
    expect(notify.response.notifications).toEqual([{ pid: expect.any(Number), channel: 'jobs', payload: 'job-1' }]);
    expect(bySql(base.ex, '')[0]!.response.results).toEqual([{ rows: [], empty: true }]);
  });

  it('never keeps the password exchange: no SCRAM message, nonce or proof in exchanges or mocks', () => {
    const scram = events
      .filter((e): e is DataEvent => e.type === 'data')
      .map((e) => e.data.toString('latin1'))
      .join('')
      .match(/(?:r|p|v)=[A-Za-z0-9+/=]{20,}/g)!;
    expect(scram.length).toBeGreaterThan(3);
    const written =
      JSON.stringify(view(base.ex)) +
      base.ex.map((e, i) => postgres.files.yaml(postgres.files.mockDoc(e, i, {}))).join('');
    for (const s of scram) expect(written).not.toContain(s.slice(2, 22));
    expect(written).not.toMatch(/SCRAM/);
  });

  it('gives the same exchanges when any data event is cut in two at every byte boundary', () => {
    // The pool connection that ran the extended-protocol queries (prepared, binary, errors), alone.
    const connId = events.find((e): e is DataEvent => e.type === 'data' && e.data.includes('user-by-name'))!.connId;
    const mine = events.filter((e) => 'connId' in e && e.connId === connId);
    const want = view(run(mine).ex);
    expect((want as unknown[]).length).toBe(9);
    const datas = mine.filter((e): e is DataEvent => e.type === 'data');
    for (const d of datas) {
      for (let k = 1; k < d.data.length; k++) {
        const got = run(resplit(mine, (e) => (e === d ? [k, e.data.length - k] : [e.data.length])));
        expect(got.skipped, `cut at ${k}`).toEqual([]);
        expect(view(got.ex)).toEqual(want);
      }
    }
  });

  it('gives the same exchanges when every data event is split into single bytes', () => {
    const got = run(resplit(events, (e) => Array(e.data.length).fill(1)));
    expect(view(got.ex)).toEqual(view(base.ex));
  });

  it('a lost chunk in the middle: the queries before it are kept, the rest is reported as bytes-lost', () => {
    // Lose the server's answer to the second UPDATE of the counter.
    const datas = events.filter((e): e is DataEvent => e.type === 'data');
    const lostAt = datas.filter((e) => e.dir === 'in' && e.data.toString('latin1').includes('UPDATE 1'))[1]!;
    const withLoss = events.map(
      (e): CaptureEvent =>
        e === lostAt
          ? {
              type: 'loss',
              tsNs: e.tsNs,
              tgid: e.tgid,
              tid: e.tid,
              source: e.source,
              connId: e.connId,
              dir: 'in',
              pos: e.pos,
              len: e.data.length,
              reason: 'ringbuf_full',
            }
          : e,
    );
    const got = run(withLoss);
    const conn = base.ex.find((e) => e.request.sql.startsWith('UPDATE counters'))!.conn;
    const before = base.ex.filter((e) => e.conn === conn);
    const idx = before.findIndex((e) => e.request.sql.startsWith('UPDATE counters'));
    expect(view(got.ex.filter((e) => e.conn === conn))).toEqual(view(before.slice(0, idx + 1)));
    // other connections are untouched
    expect(view(got.ex.filter((e) => e.conn !== conn))).toEqual(view(base.ex.filter((e) => e.conn !== conn)));
    expect(got.skipped).toEqual([expect.objectContaining({ conn, reason: 'bytes-lost' })]);
  });
});

describe('postgres: SSLRequest answered N, COPY recognised', () => {
  function stream(parts: Array<['in' | 'out', Buffer]>): CaptureEvent[] {
    const pos = { in: 0n, out: 0n };
    let ts = 1n;
    const evs: CaptureEvent[] = [];
    for (const [dir, data] of parts) {
      evs.push({
        type: 'data',
        tsNs: ts++,
        tgid: 1,
        tid: 1,
        source: 'socket',
        connId: 7n,
        dir,
        pos: pos[dir],
        callLen: data.length,
        chunkOff: 0,
        data,
      });
      pos[dir] += BigInt(data.length);
    }
    evs.push({ type: 'close', tsNs: ts, tgid: 1, tid: 1, source: 'socket', connId: 7n });
    return evs;
  }
  const startup = Buffer.concat([Buffer.alloc(8), Buffer.from('user\0app\0database\0shop\0\0')]);
  startup.writeInt32BE(startup.length, 0);
  startup.writeInt32BE(196608, 4);
  const ready = new MessageWriter('Z').byte(0x49).done();
  const authOk = new MessageWriter('R').int32(0).done();

  it('reads the queries after an SSLRequest the server declined', () => {
    const q = new MessageWriter('Q').cstring('SELECT 1').done();
    const rows = Buffer.concat([
      new MessageWriter('T')
        .int16(1)
        .cstring('?column?')
        .uint32(0)
        .int16(0)
        .uint32(23)
        .int16(4)
        .int32(-1)
        .int16(0)
        .done(),
      new MessageWriter('D').int16(1).int32(1).bytes(Buffer.from('1')).done(),
      new MessageWriter('C').cstring('SELECT 1').done(),
      ready,
    ]);
    const { ex, skipped } = run(
      stream([
        ['out', Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])],
        ['in', Buffer.from('N')],
        ['out', startup],
        ['in', Buffer.concat([authOk, ready])],
        ['out', q],
        ['in', rows],
      ]),
    );
    expect(skipped).toEqual([]);
    expect(ex.map((e) => [e.request.sql, e.request.database, e.response.results[0]!.rows])).toEqual([
      ['SELECT 1', 'shop', [[1]]],
    ]);
  });

  it('an accepted SSLRequest hands the socket over to TLS (read from the uprobes instead)', () => {
    const { ex, stats } = run(
      stream([
        ['out', Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])],
        ['in', Buffer.from('S')],
        ['out', Buffer.from([0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5])],
      ]),
    );
    expect(ex).toEqual([]);
    // counted like an HTTP upgrade: the ciphertext after 'S' is not this stream's to read
    expect(stats.skipped).toEqual([
      expect.objectContaining({ detail: 'Postgres TLS (SSLRequest accepted)', bytes: 10 }),
    ]);
  });

  it('COPY FROM STDIN is recorded with its tag and reported as incomplete', () => {
    const q = new MessageWriter('Q').cstring('COPY t FROM STDIN').done();
    const copyIn = new MessageWriter('G').byte(0).int16(1).int16(0).done();
    const data = Buffer.concat([
      new MessageWriter('d').bytes(Buffer.from('1\n')).done(),
      new MessageWriter('c').done(),
    ]);
    const done = Buffer.concat([new MessageWriter('C').cstring('COPY 1').done(), ready]);
    const { ex, stats } = run(
      stream([
        ['out', startup],
        ['in', Buffer.concat([authOk, ready])],
        ['out', q],
        ['in', copyIn],
        ['out', data],
        ['in', done],
      ]),
    );
    expect(ex.map((e) => e.response.results)).toEqual([[{ rows: [], copy: 'in', commandTag: 'COPY 1' }]]);
    expect(stats.skipped).toEqual([
      expect.objectContaining({ reason: 'incomplete', detail: expect.stringMatching(/COPY FROM STDIN/) }),
    ]);
  });
});
