// The Postgres mock endpoint with a real `pg` client: the mocks written from the real pg session
// (test/golden/postgres-pool/mocks.yaml) are loaded by the reader and served by the mock server;
// the client connects with a password (never checked), runs the same queries and gets the
// recorded rows, tags, errors and notices; repeated queries answer in recorded order across a
// pool; a query never recorded is an ErrorResponse naming the closest mock, reported as a miss.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTestSets } from '../src/format/reader.js';
import { docReaders } from '../src/protocols/files.js';
import { PROTOCOLS } from '../src/protocols/index.js';
import { postgres } from '../src/protocols/postgres/index.js';
import { normaliseSql, PgMockMatcher } from '../src/protocols/postgres/matcher.js';
import { createRunCa, type RunCa } from '../src/replay/mocks/ca.js';
import { MockMatcher } from '../src/replay/mocks/matcher.js';
import { startMockServer, type MockServer } from '../src/replay/mocks/server.js';

const GOLDEN = fileURLToPathCompat(new URL('./golden/postgres-pool/mocks.yaml', import.meta.url));
function fileURLToPathCompat(u: URL): string {
  return decodeURIComponent(u.pathname);
}

describe('postgres mock matching', () => {
  it('normalises whitespace and comments outside quotes, and a trailing semicolon', () => {
    expect(normaliseSql('  SELECT  *\n FROM t -- note\n WHERE a = $1 ;')).toBe('SELECT * FROM t WHERE a = $1');
    expect(normaliseSql("SELECT 'a  b'")).toBe("SELECT 'a  b'");
  });

  it('repeated identical queries in recorded order, then the last again; a param miss names the field', () => {
    const mk = (index: number, n: number, params: Array<string | number>) => ({
      file: 'm',
      name: `mock-${index}`,
      index,
      sql: 'UPDATE c SET n = n + 1 WHERE k = $1 RETURNING n',
      params,
      mode: 'extended' as const,
      results: [{ rows: [[n]] }],
      noiseParams: new Set<number>(),
    });
    const m = new PgMockMatcher([mk(0, 1, ['a']), mk(1, 2, ['a']), mk(2, 9, ['b'])]);
    const call = { sql: 'UPDATE c  SET n = n + 1 WHERE k = $1 RETURNING n', params: ['a'] };
    const got = [m.match(call), m.match(call), m.match(call)].map((o) =>
      o.kind === 'hit' ? [o.mock.name, o.reused] : o.kind,
    );
    expect(got).toEqual([
      ['mock-0', false],
      ['mock-1', false],
      ['mock-1', true],
    ]);
    const miss = m.match({ ...call, params: ['zz'] });
    expect(miss).toMatchObject({ kind: 'miss', closest: { field: 'params[0]', expected: '"a"', actual: '"zz"' } });
  });
});

describe('reading kind: Postgres mocks', () => {
  function load(yaml: string) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrec-pg-read-'));
    try {
      fs.mkdirSync(path.join(root, 's', 'tests'), { recursive: true });
      fs.writeFileSync(path.join(root, 's', 'mocks.yaml'), yaml);
      return loadTestSets(root, { readers: docReaders(PROTOCOLS) })[0]!;
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
  const doc = (request: string, extra = '') => `version: api.keploy.io/v1beta1
kind: Postgres
name: mock-0
spec:
  request:
${request}
  response:
    results:
      - columns:
          - { name: at, type: timestamptz }
        rows:
          - [ "2024-01-01 00:00:00+00" ]
        commandTag: SELECT 1
${extra}`;

  it('reads a hand-written mock with noise on a parameter position', () => {
    const set = load(
      doc(
        '    sql: SELECT now() WHERE $1::int > 0 AND $2::text <> \'\'\n    params: [ 1, "2024-05-01T10:00:00Z" ]',
        'noise: [ params.1 ]\n',
      ),
    );
    const m = set.protocolMocks![0]!.value as import('../src/protocols/postgres/matcher.js').PgMock;
    expect([m.sql, m.params, [...m.noiseParams]]).toEqual([
      "SELECT now() WHERE $1::int > 0 AND $2::text <> ''",
      [1, '2024-05-01T10:00:00Z'],
      [1],
    ]);
    const matcher = new PgMockMatcher([m]);
    expect(matcher.match({ sql: m.sql, params: ['1', '2031-01-01T00:00:00Z'] }).kind).toBe('hit');
    expect(matcher.match({ sql: m.sql, params: ['2', '2031-01-01T00:00:00Z'] })).toMatchObject({
      kind: 'miss',
      closest: { field: 'params[0]' },
    });
  });

  it("skips Keploy's packet-style Postgres mocks with a warning", () => {
    const keploy = fs.readFileSync(new URL('./fixtures-format/keploy/test-set-0/mocks.yaml', import.meta.url), 'utf8');
    expect(keploy).toMatch(/kind: Postgres\n[\s\S]*postgresrequests/);
    const set = load(keploy);
    expect(set.protocolMocks ?? []).toEqual([]);
    expect(set.warnings).toEqual([
      expect.stringMatching(/: skipped 1 Postgres mock \(tlsrec serves Http, gRPC, Postgres and Redis mocks\)$/),
    ]);
  });

  it('record-time noise: a date-time or UUID parameter made while recording is not compared', () => {
    const now = Date.now();
    const ex = {
      protocol: 'postgres' as const,
      role: 'outgoing' as const,
      conn: 'c',
      tgid: 1,
      tls: false,
      indexOnConn: 0,
      request: {
        mode: 'extended' as const,
        sql: 'INSERT INTO ev (at, id, n, born) VALUES ($1, $2, $3, $4)',
        params: [new Date(now).toISOString(), '1b4e28ba-2fa1-4d2b-883f-0016d3cca427', 7, '1990-04-01T00:00:00Z'],
        paramTypes: [],
        resultFormats: [],
        firstByteNs: 0n,
      },
      response: { results: [{ rows: [], commandTag: 'INSERT 0 1' }], notices: [], notifications: [], firstByteNs: 0n },
    };
    const doc = postgres.files.mockDoc(ex, 0, { monoToWallNs: BigInt(now) * 1_000_000n });
    expect(doc.noise).toEqual(['params.0', 'params.1']);
    const yaml = postgres.files.yaml(doc);
    expect(yaml).toMatch(/^noise: \[ params\.0, params\.1 \]$/m);
    const set = load(yaml);
    const m = set.protocolMocks![0]!.value as import('../src/protocols/postgres/matcher.js').PgMock;
    const matcher = new PgMockMatcher([m]);
    expect(
      matcher.match({
        sql: ex.request.sql,
        params: ['2031-01-01T00:00:00Z', 'another-uuid', '7', '1990-04-01T00:00:00Z'],
      }).kind,
    ).toBe('hit');
    expect(
      matcher.match({ sql: ex.request.sql, params: ['2031-01-01T00:00:00Z', 'x', '8', '1990-04-01T00:00:00Z'] }),
    ).toMatchObject({ kind: 'miss', closest: { field: 'params[2]' } });
  });

  it('points at file:line:column for a mock that is not well formed', () => {
    expect(() => load(doc('    sql: 42'))).toThrow(
      /mocks\.yaml:\d+:\d+: spec\.request\.sql: expected the SQL text, found 42/,
    );
    expect(() => load(doc('    sql: SELECT 1', 'noise: [ body.x ]\n'))).toThrow(
      /mocks\.yaml:\d+:\d+: noise\.0: expected "params\.N"/,
    );
  });
});

describe('postgres mock endpoint with a real pg client', () => {
  let root: string;
  let ca: RunCa;
  let server: MockServer;
  let matcher: MockMatcher;
  const misses: string[] = [];

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrec-pg-serve-'));
    fs.mkdirSync(path.join(root, 'test-set-0', 'tests'), { recursive: true });
    fs.copyFileSync(GOLDEN, path.join(root, 'test-set-0', 'mocks.yaml'));
    const set = loadTestSets(root, { readers: docReaders(PROTOCOLS) })[0]!;
    expect(set.protocolMocks!.length).toBe(22);
    ca = createRunCa({ tmpDir: root, hosts: [] });
    matcher = new MockMatcher(set.mocks);
    server = await startMockServer({
      matcher,
      ca,
      protocols: PROTOCOLS,
      protocolMocks: set.protocolMocks!,
      onMiss: (m) => misses.push(m),
    });
  });
  afterAll(async () => {
    await server?.close();
    ca?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  const pool = (): pg.Pool =>
    new pg.Pool({
      host: '127.0.0.1',
      port: server.port,
      user: 'tlsrec_app',
      password: 'not-the-recorded-one',
      database: 'tlsrec_app',
      max: 2,
    });

  it('answers the recorded session: transaction, params, prepared, binary, multi-statement, errors, notices', async () => {
    const p = pool();
    const notices: string[] = [];
    p.on('connect', (c) => c.on('notice', (n) => notices.push(n.message ?? '')));
    try {
      const c = await p.connect();
      await c.query('BEGIN');
      const ins = await c.query(
        'INSERT INTO users (name, email, score, active, born) VALUES ($1, $2, $3, $4, $5) RETURNING id',
        ['ann', 'ann@example.test', '12.50', true, '1990-04-01'],
      );
      expect(ins.rows).toEqual([{ id: 1 }]);
      await c.query('COMMIT');
      c.release();
      const sel = await p.query('SELECT id, name, email, score, active, born FROM users WHERE id = $1', [1]);
      expect(sel.rows[0]).toMatchObject({
        id: 1,
        name: 'ann',
        email: 'ann@example.test',
        score: '12.50',
        active: true,
      });
      expect(sel.fields.map((f) => f.name)).toEqual(['id', 'name', 'email', 'score', 'active', 'born']);
      // a counter, across the pool's connections, in recorded order
      const n = await Promise.all(
        [1, 2, 3].map(() => p.query('UPDATE counters SET n = n + 1 WHERE name = $1 RETURNING n', ['hits'])),
      );
      expect(n.map((r) => r.rows[0].n).sort()).toEqual(['1', '2', '3']);
      const named = await p.query({
        name: 'user-by-name',
        text: 'SELECT id, email FROM users WHERE name = $1',
        values: ['bob'],
      });
      expect(named.rows).toEqual([{ id: 2, email: null }]);
      // `binary` is a pg option its type definitions leave out
      const bin = await p.query({
        text: 'SELECT $1::int4 AS n, 2.5::float8 AS f, true AS b',
        values: [7],
        binary: true,
      } as pg.QueryConfig<number[]>);
      expect(bin.rows).toEqual([{ n: 7, f: 2.5, b: true }]);
      const two = (await p.query('SELECT 1 AS one; SELECT 2 AS two')) as unknown as pg.QueryResult[];
      expect(two.map((r) => r.rows)).toEqual([[{ one: 1 }], [{ two: 2 }]]);
      await expect(
        p.query('INSERT INTO users (name, email) VALUES ($1, $2)', ['dup', 'ann@example.test']),
      ).rejects.toMatchObject({ code: '23505', constraint: 'users_email_key' });
      await expect(p.query('SELEC broken FROM $1', ['x'])).rejects.toMatchObject({ code: '42601' });
      await p.query("DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; END $$");
      expect(notices).toContain('hello from plpgsql');
    } finally {
      await p.end();
    }
  });

  it('a query never recorded is an error naming the closest mock, reported as a miss, and the connection goes on', async () => {
    const p = pool();
    try {
      const before = matcher.report().misses.length;
      const err = await p.query('SELECT id, email FROM users WHERE name = $1', ['carol']).catch((e: unknown) => e);
      expect(err).toMatchObject({
        code: 'XX000',
        message: expect.stringMatching(
          /no recorded Postgres mock .*closest mock-1[34] differs at params\[0\]: expected "(ann|bob)", got "carol"/,
        ),
      });
      const misses2 = matcher.report().misses.slice(before);
      expect(misses2).toEqual([
        expect.objectContaining({ method: 'QUERY', closest: expect.objectContaining({ field: 'params[0]' }) }),
      ]);
      const sqlMiss = await p.query('SELECT nothing_like_it').catch((e: unknown) => e);
      expect(sqlMiss).toMatchObject({ message: expect.stringMatching(/no mock for this SQL/) });
      expect((await p.query('SELECT count(*) AS n FROM users')).rows).toEqual([{ n: '2' }]);
    } finally {
      await p.end();
    }
  });
});
