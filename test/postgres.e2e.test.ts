// End to end (real eBPF, as root): fixtures/db-app/pg.mjs (a `pg` pool with SCRAM password auth, a
// schema at start, a transaction, parameterised queries, a counter) is recorded against a real
// Postgres server; its queries become `kind: Postgres` mocks with no trace of the password. Then,
// with the server stopped, `tlsrec test` passes from the mocks alone; the app answering one field
// differently (PG_FIXTURE_VARIANT=upper-name) fails by that field's name; a query the recording
// never saw (PG_FIXTURE_VARIANT=by-email) is a reported mock miss, not a hang; with the database in
// `passthrough` it is reached unchanged. A second test records Postgres inside TLS.

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunReport } from '../src/replay/report/model.js';
import { needsEbpf } from './helpers/env.js';
import { startPgServer, type PgServer } from './helpers/pg-server.js';
import { freePort, repoRoot, run, start, stopAll, tlsrecBin, waitForHttp } from './helpers/procs.js';

const ebpf = needsEbpf();
const app = join(repoRoot, 'fixtures', 'db-app', 'pg.mjs');

describe.runIf(ebpf.run)('Postgres recorded from the app and answered offline (real eBPF)', () => {
  const work = mkdtempSync(join(tmpdir(), 'tlsrec-pg-e2e-'));
  let db: PgServer | undefined;
  afterAll(async () => {
    await stopAll();
    await db?.remove();
    rmSync(work, { recursive: true, force: true });
  });

  async function replay(
    variant: string,
    reportName: string,
    env: NodeJS.ProcessEnv = {},
    cwd = work,
  ): Promise<{ report: RunReport; output: string; code: number; ms: number }> {
    const reportDir = join(cwd, reportName);
    const started = Date.now();
    const t = await run(
      'node',
      [tlsrecBin, 'test', '--reporter', 'terminal', '--reporter', 'json', '--report-dir', reportDir],
      {
        cwd,
        env: { PG_FIXTURE_VARIANT: variant, PGPASSWORD: 'not-the-password', ...env },
      },
    );
    if (!existsSync(reportDir)) throw new Error(`tlsrec test wrote no report (exit ${t.code}):\n${t.output}`);
    const file = readdirSync(reportDir).find((f) => f.endsWith('.json'))!;
    return {
      report: JSON.parse(readFileSync(join(reportDir, file), 'utf8')) as RunReport,
      output: t.output,
      code: t.code,
      ms: Date.now() - started,
    };
  }

  it('records the queries as mocks, then replays them with the database stopped', async () => {
    if (ebpf.reason) throw new Error(`eBPF required (TLSREC_REQUIRE_EBPF=1) but: ${ebpf.reason}`);
    db = await startPgServer({ user: 'shop', password: 'scram-secret-pw', database: 'shop' });
    const appPort = await freePort();
    const pgEnv = {
      PORT: String(appPort),
      PGHOST: '127.0.0.1',
      PGPORT: String(db.port),
      PGUSER: db.user,
      PGDATABASE: db.database,
    };

    // ---- record ----
    const rec = start(
      'node',
      [
        tlsrecBin,
        'record',
        '-q',
        '--env',
        'PORT',
        '--env',
        'PGHOST',
        '--env',
        'PGPORT',
        '--env',
        'PGUSER',
        '--env',
        'PGDATABASE',
        '--',
        'node',
        app,
      ],
      {
        cwd: work,
        env: { ...pgEnv, PGPASSWORD: db.password },
      },
    );
    const base = `http://127.0.0.1:${appPort}`;
    await waitForHttp(`${base}/health`, 30_000);
    const post = (path: string, body?: unknown) =>
      fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body ?? {}),
      });
    expect((await post('/users', { name: 'Ann', email: 'ann@shop.test', plan: 'pro' })).status).toBe(201);
    expect((await post('/users', { name: 'Bob', email: 'bob@shop.test' })).status).toBe(201);
    expect((await post('/users', { name: 'Ann again', email: 'ann@shop.test' })).status).toBe(409);
    expect(await (await fetch(`${base}/users/1`)).json()).toMatchObject({
      id: 1,
      name: 'Ann',
      plan: 'pro',
      active: true,
    });
    for (const n of [1, 2, 3]) expect(await (await post('/hits')).json()).toEqual({ hits: n });
    expect(await (await fetch(`${base}/stats`)).json()).toEqual({
      plans: [
        { plan: 'free', users: 1 },
        { plan: 'pro', users: 1 },
      ],
    });
    rec.child.kill('SIGINT');
    expect(await rec.exited, rec.output()).toBe(0);

    const mocks = readFileSync(join(work, 'tlsrec', 'test-set-0', 'mocks.yaml'), 'utf8');
    if (process.env.PG_E2E_KEEP) writeFileSync(process.env.PG_E2E_KEEP, mocks);
    expect(mocks).toMatch(/kind: Postgres/);
    expect(mocks).toContain('sql: SELECT id, name, email, plan, active FROM users WHERE id = $1');
    expect(mocks).toMatch(/code: "?23505"?/);
    expect(mocks).not.toContain(db.password);
    expect(mocks).not.toMatch(/SCRAM|p=[A-Za-z0-9+/]{20}/);

    // ---- the database goes away; the mocks answer ----
    await db.stop();
    const ok = await replay('normal', 'r-normal');
    const tests = ok.report.sets[0]!.tests;
    expect(tests.length, ok.output).toBe(9);
    expect(
      tests.filter((t) => !t.passed).map((t) => t.name),
      ok.output,
    ).toEqual([]);
    expect(ok.code, ok.output).toBe(0);

    // ---- one returned field differs: the test fails naming it ----
    const upper = await replay('upper-name', 'r-upper');
    const failed = upper.report.sets[0]!.tests.filter((t) => !t.passed);
    expect(failed.length, upper.output).toBe(1);
    expect(upper.output).toMatch(/\$\.name/);
    expect(upper.code).toBe(1);

    // ---- a query never recorded: a reported miss, answered at once ----
    const miss = await replay('by-email', 'r-miss');
    const missed = miss.report.sets[0]!.tests.filter((t) => !t.passed);
    expect(missed.length, miss.output).toBe(1);
    expect(missed[0]!.mockMisses, miss.output).toEqual([
      expect.objectContaining({ method: 'QUERY', closest: expect.objectContaining({ field: 'sql' }) }),
    ]);
    expect(miss.output).toMatch(/no recorded Postgres mock/);
    expect(miss.ms).toBeLessThan(60_000);

    // ---- passthrough: the database is reached, unchanged (its rows moved on since recording) ----
    await db.start();
    const configFile = join(work, 'tlsrec.yaml');
    const config = readFileSync(configFile, 'utf8');
    const entry = `passthrough:\n  - 127.0.0.1:${db.port}\n`;
    writeFileSync(
      configFile,
      /^passthrough:.*$/m.test(config)
        ? config.replace(/^passthrough:.*$/m, entry.trimEnd())
        : `${config.trimEnd()}\n${entry}`,
    );
    // the real server checks the password again: passthrough is the real database
    const through = await replay('normal', 'r-through', { PGPASSWORD: db.password });
    const byName = Object.fromEntries(through.report.sets[0]!.tests.map((t) => [t.name, t]));
    expect(
      Object.values(byName).flatMap((t) => t.mockMisses),
      through.output,
    ).toEqual([]);
    expect(through.output).not.toMatch(/no recorded Postgres mock/);
    // the real counter is at 3 after recording: the replayed POST /hits now answers 4
    expect(through.output).toMatch(/\$\.hits: expected 1, got 4/);
    expect(byName['test-5']!.passed, through.output).toBe(true); // GET /users/1: the same row
  }, 180_000);

  it('records Postgres inside TLS (SSLRequest, then the uprobes) and replays it over the run CA', async () => {
    if (ebpf.reason) throw new Error(`eBPF required (TLSREC_REQUIRE_EBPF=1) but: ${ebpf.reason}`);
    const tlsWork = mkdtempSync(join(tmpdir(), 'tlsrec-pg-tls-e2e-'));
    const tlsDb = await startPgServer({ user: 'shop', password: 'tls-secret-pw', database: 'shop', tls: true });
    try {
      const appPort = await freePort();
      const env = {
        PORT: String(appPort),
        PGHOST: '127.0.0.1',
        PGPORT: String(tlsDb.port),
        PGUSER: tlsDb.user,
        PGDATABASE: tlsDb.database,
        PGSSLMODE: 'verify-full',
      };
      const rec = start(
        'node',
        [
          tlsrecBin,
          'record',
          '-q',
          '--env',
          'PORT',
          '--env',
          'PGHOST',
          '--env',
          'PGPORT',
          '--env',
          'PGUSER',
          '--env',
          'PGDATABASE',
          '--env',
          'PGSSLMODE',
          '--',
          'node',
          app,
        ],
        {
          cwd: tlsWork,
          env: {
            ...env,
            PGPASSWORD: tlsDb.password,
            NODE_EXTRA_CA_CERTS: join(repoRoot, 'fixtures', 'certs', 'ca.pem'),
          },
        },
      );
      const base = `http://127.0.0.1:${appPort}`;
      await waitForHttp(`${base}/health`, 30_000);
      expect(
        (
          await fetch(`${base}/users`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ name: 'Tia', email: 'tia@shop.test' }),
          })
        ).status,
      ).toBe(201);
      expect(await (await fetch(`${base}/users/1`)).json()).toMatchObject({ id: 1, name: 'Tia' });
      rec.child.kill('SIGINT');
      expect(await rec.exited, rec.output()).toBe(0);
      const mocks = readFileSync(join(tlsWork, 'tlsrec', 'test-set-0', 'mocks.yaml'), 'utf8');
      // the queries were read from inside TLS: the socket only carried ciphertext after 'S'
      expect(mocks).toContain('sql: SELECT id, name, email, plan, active FROM users WHERE id = $1');
      expect(mocks).not.toContain(tlsDb.password);

      await tlsDb.stop();
      const ok = await replay('normal', 'r-tls', {}, tlsWork);
      expect(
        ok.report.sets[0]!.tests.filter((t) => !t.passed).map((t) => t.name),
        ok.output,
      ).toEqual([]);
      expect(ok.report.sets[0]!.tests.length, ok.output).toBe(3);
    } finally {
      await tlsDb.remove();
      rmSync(tlsWork, { recursive: true, force: true });
    }
  }, 180_000);
});
