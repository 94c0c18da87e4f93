#!/usr/bin/env node
// Databases: the Postgres fixture app (fixtures/db-app/pg.mjs, a pg pool over SCRAM) against a
// throwaway Postgres cluster on this machine.
//   1. recording overhead of a database-heavy endpoint: wrk on GET /users/1 (one parameterised
//      SELECT per request) with (a) no capture and (b) `tlsrec record -q -- node pg.mjs`,
//      interleaved per round; throughput and latency ratios b/a, and how many Postgres mocks (b)
//      wrote per request answered.
//   2. replay speed with database mocks: N recorded tests (GET /users/1 and GET /stats, one query
//      each) replayed by `tlsrec test` (i) from the Postgres mocks with the server stopped and
//      (ii) with --no-mocks against the running server; tests/s and the ratio i/ii.
//
//   node bench/postgres.mjs [--rounds 3] [--duration 5] [--conns 16] [--tests 300] [--parts record,replay]
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ROOT,
  NODE,
  TLSREC,
  run,
  stop,
  waitPort,
  wrk,
  median,
  table,
  fmt,
  port,
  tlsrecBroken,
  machine,
  saveJson,
  args,
  countMocks,
} from './lib.mjs';

const o = args({ rounds: 3, duration: 5, conns: 16, tests: 300, parts: 'record,replay' });
const parts = o.parts.split(',');
const APP = join(ROOT, 'fixtures', 'db-app', 'pg.mjs');
const USER = 'bench';
const PASSWORD = 'bench-scram-pw';

/** A cluster with SCRAM auth on a free port (as test/helpers/pg-server.ts does for the tests). */
async function startCluster() {
  const root = '/usr/lib/postgresql';
  const v = existsSync(root)
    ? readdirSync(root)
        .filter((d) => existsSync(join(root, d, 'bin', 'postgres')))
        .sort((a, b) => b - a)[0]
    : undefined;
  if (!v) throw new Error('no Postgres server under /usr/lib/postgresql (apt-get install postgresql)');
  const bin = join(root, v, 'bin');
  const dir = mkdtempSync(join(tmpdir(), 'tlsrec-bench-pg-'));
  chmodSync(dir, 0o755);
  const data = join(dir, 'data');
  writeFileSync(join(dir, 'pw'), `${PASSWORD}\n`);
  execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  const as = (cmd, a) => execFileSync('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...a], { stdio: 'pipe' });
  as('initdb', [
    '-D',
    data,
    '-U',
    USER,
    '--pwfile',
    join(dir, 'pw'),
    '--auth=scram-sha-256',
    '-E',
    'UTF8',
    '--locale=C',
  ]);
  const p = port();
  let child;
  const start = async () => {
    child = run('runuser', [
      '-u',
      'postgres',
      '--',
      join(bin, 'postgres'),
      '-D',
      data,
      '-p',
      String(p),
      '-h',
      '127.0.0.1',
      '-k',
      dir,
      '-c',
      'fsync=off',
    ]);
    await waitPort(p, { child });
  };
  const stopIt = async () => {
    try {
      as('pg_ctl', ['-D', data, 'stop', '-m', 'fast', '-w']);
    } catch {
      child?.kill('SIGKILL');
    }
    await child?.exited;
  };
  await start();
  return {
    port: p,
    start,
    stop: stopIt,
    remove: async () => {
      await stopIt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const broken = await tlsrecBroken();
if (broken) {
  console.log(`cannot measure: ${broken}`);
  process.exit(1);
}
console.log(`# postgres — ${machine()}`);
const db = await startCluster();
const env = (appPort, database) => ({
  ...process.env,
  PORT: String(appPort),
  PGHOST: '127.0.0.1',
  PGPORT: String(db.port),
  PGUSER: USER,
  PGPASSWORD: PASSWORD,
  PGDATABASE: database,
});
let dbn = 0;
/** A fresh database with one user in it, so every round starts alike. */
function freshDb() {
  const name = `bench${++dbn}`;
  execFileSync(
    NODE,
    [
      '-e',
      `const pg=require('pg');const c=new pg.Client({host:'127.0.0.1',port:${db.port},user:'${USER}',password:'${PASSWORD}',database:'postgres'});c.connect().then(()=>c.query('CREATE DATABASE ${name}')).then(()=>c.end())`,
    ],
    { cwd: ROOT },
  );
  return name;
}

async function seed(base) {
  const r = await fetch(`${base}/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'Ann', email: 'ann@bench.test', plan: 'pro' }),
  });
  if (r.status !== 201) throw new Error(`seeding failed: ${r.status} ${await r.text()}`);
}

try {
  // ---- 1. recording overhead ----
  const rows = { a: [], b: [] };
  for (let round = 0; round < (parts.includes('record') ? o.rounds : 0); round++) {
    for (const cfg of round % 2 ? ['b', 'a'] : ['a', 'b']) {
      const work = mkdtempSync(join(tmpdir(), 'tlsrec-bench-pgrec-'));
      const p = port();
      const e = env(p, freshDb());
      const child =
        cfg === 'a'
          ? run(NODE, [APP], { cwd: work, env: e })
          : run(NODE, [TLSREC, 'record', '-q', '--', NODE, APP], { cwd: work, env: e });
      await waitPort(p, { child });
      const base = `http://127.0.0.1:${p}`;
      await seed(base);
      await wrk(`${base}/users/1`, { c: o.conns, d: 1 }); // warm-up
      const w = await wrk(`${base}/users/1`, { c: o.conns, d: o.duration });
      await stop(child, 'SIGINT', 120000);
      const mocksFile = join(work, 'tlsrec', 'test-set-0', 'mocks.yaml');
      const mocks =
        cfg === 'b' && existsSync(mocksFile)
          ? (readFileSync(mocksFile, 'utf8').match(/^kind: Postgres$/gm) ?? []).length
          : NaN;
      rows[cfg].push({ ...w, mocks, raw: undefined });
      process.stderr.write(
        `  round ${round + 1} ${cfg}: ${fmt(w.rps, 0)} req/s, p50 ${fmt(w.p50)} ms, p99 ${fmt(w.p99)} ms${cfg === 'b' ? `, ${mocks} Postgres mocks for ${w.reqs} requests (+ warm-up)` : ''}\n`,
      );
      rmSync(work, { recursive: true, force: true });
    }
  }
  const m = (cfg, k) => median(rows[cfg].map((r) => r[k]));
  if (parts.includes('record')) {
    console.log(
      `\n## 1. recording overhead: wrk -c${o.conns} -d${o.duration}s GET /users/1 (one SELECT each), median of ${o.rounds} rounds`,
    );
    table([
      ['config', 'req/s', 'p50 ms', 'p99 ms', 'x/a req/s', 'x/a p50', 'x/a p99'],
      ['a no capture', fmt(m('a', 'rps'), 0), fmt(m('a', 'p50')), fmt(m('a', 'p99')), '1.00', '1.00', '1.00'],
      [
        'b tlsrec record',
        fmt(m('b', 'rps'), 0),
        fmt(m('b', 'p50')),
        fmt(m('b', 'p99')),
        fmt(m('b', 'rps') / m('a', 'rps')),
        fmt(m('b', 'p50') / m('a', 'p50')),
        fmt(m('b', 'p99') / m('a', 'p99')),
      ],
    ]);
    const perReq = median(rows.b.map((r) => r.mocks / r.reqs));
    console.log(`Postgres mocks written per request answered in (b), warm-up included: ${fmt(perReq, 3)}`);
  }
  const replayRounds = [];
  if (parts.includes('replay')) {
    // ---- 2. replay speed with database mocks ----
    const work = mkdtempSync(join(tmpdir(), 'tlsrec-bench-pgreplay-'));
    const p = port();
    const database = freshDb();
    const rec = run(
      NODE,
      [
        TLSREC,
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
        NODE,
        APP,
      ],
      { cwd: work, env: env(p, database) },
    );
    await waitPort(p, { child: rec });
    const base = `http://127.0.0.1:${p}`;
    await seed(base);
    for (let i = 0; i < o.tests - 1; i++) await (await fetch(`${base}/${i % 2 ? 'stats' : 'users/1'}`)).arrayBuffer();
    await stop(rec, 'SIGINT', 120000);
    const once = async (mocks) => {
      const t0 = Date.now();
      const t = run(NODE, [TLSREC, 'test', ...(mocks ? [] : ['--no-mocks'])], {
        cwd: work,
        env: { ...process.env, PGPASSWORD: PASSWORD },
      });
      const r = await t.exited;
      const wallS = (Date.now() - t0) / 1000;
      const passed = Number(/(\d+) passed/.exec(t.out + t.err)?.[1] ?? NaN);
      return { wallS, passed, exit: r.code, tail: (t.out + t.err).slice(-400) };
    };
    for (let round = 0; round < o.rounds; round++) {
      await db.stop();
      const fromMocks = await once(true);
      await db.start();
      const real = await once(false);
      replayRounds.push({ fromMocks, real });
      process.stderr.write(
        `  replay round ${round + 1}: mocks ${fmt(fromMocks.wallS)} s (${fromMocks.passed} passed, exit ${fromMocks.exit}), real database ${fmt(real.wallS)} s (${real.passed} passed)\n`,
      );
      if (fromMocks.exit !== 0) process.stderr.write(`    ${fromMocks.tail.replace(/\n/g, '\n    ')}\n`);
    }
    const mocksWritten = countMocks(join(work, 'tlsrec', 'test-set-0', 'mocks.yaml'));
    const wm = median(replayRounds.map((r) => r.fromMocks.wallS));
    const wr = median(replayRounds.map((r) => r.real.wallS));
    console.log(
      `\n## 2. replay speed: ${o.tests} tests (GET /users/1, GET /stats; one query each), ${JSON.stringify(mocksWritten)} mocks, tlsrec test start to exit, median of ${o.rounds}`,
    );
    table([
      ['replay', 'wall s', 'tests/s', 'ratio'],
      ['i  Postgres mocks, server stopped', fmt(wm), fmt(o.tests / wm, 0), fmt(wm / wr)],
      ['ii --no-mocks, real server', fmt(wr), fmt(o.tests / wr, 0), '1.00'],
    ]);
    rmSync(work, { recursive: true, force: true });
  }
  const f = saveJson('postgres', { machine: machine(), o, record: rows, replay: replayRounds });
  console.log(`\nraw: ${f}`);
} finally {
  await db.remove();
}
