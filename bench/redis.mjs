#!/usr/bin/env node
// Redis: (1) recording overhead of a Redis-heavy endpoint — fixtures/db-app/redis.mjs GET
// /dashboard (nine Redis commands per request, sequential and pipelined, against a real
// redis-server) under wrk, with no capture and under `tlsrec record`, rounds alternated; (2) the
// mock endpoint's speed — ioredis against redis-server and against tlsrec's Redis mock endpoint
// (src/protocols/redis/serve.ts, in this process) answering the same commands from mocks,
// sequential round trips and a pipeline; (3) `tlsrec test` of a recorded set with redis-server
// stopped (every Redis answer from mocks) against the same requests sent to the live app.
//
//   node bench/redis.mjs [--rounds 3] [--duration 5] [--conns 8] [--commands 5000] [--tests 200]
import { join } from 'node:path';
import net from 'node:net';
import { readFileSync, rmSync } from 'node:fs';
import { parse } from 'yaml';
import {
  NODE,
  TLSREC,
  ROOT,
  run,
  stop,
  waitPort,
  waitOutput,
  wrk,
  median,
  table,
  fmt,
  tmp,
  port,
  tlsrecBroken,
  machine,
  saveJson,
  args,
} from './lib.mjs';

const o = args({ rounds: 3, duration: 5, conns: 8, commands: 5000, tests: 200 });
const APP = join(ROOT, 'fixtures', 'db-app', 'redis.mjs');
const { Redis } = await import('ioredis');
const { serveRedis } = await import(join(ROOT, 'dist', 'protocols', 'redis', 'serve.js'));
const { readRedisMock } = await import(join(ROOT, 'dist', 'protocols', 'redis', 'files.js'));

async function startRedis() {
  const p = port();
  const child = run('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  await waitOutput(child, /Ready to accept connections/);
  return { port: p, child };
}

async function seed(redisPort) {
  const r = new Redis({ port: redisPort, host: '127.0.0.1' });
  await r.set('note', '{"text":"hello"}', 'EX', 3600);
  await r.hset('user:1', { name: 'Ada', lang: 'en' });
  await r.rpush('list', 'x', 'y');
  await r.sadd('tags', 'red');
  await r.set('a', '42');
  r.disconnect();
}

async function dashboardLoad(record, redisPort) {
  const appPort = port();
  const dir = tmp();
  const env = { ...process.env, PORT: String(appPort), REDIS_URL: `redis://127.0.0.1:${redisPort}` };
  const child = record
    ? run(NODE, [TLSREC, 'record', '-q', '--', NODE, APP], { cwd: dir, env })
    : run(NODE, [APP], { cwd: dir, env });
  await waitPort(appPort, { child });
  await wrk(`http://127.0.0.1:${appPort}/dashboard`, { c: o.conns, d: 1 }); // warm-up
  const w = await wrk(`http://127.0.0.1:${appPort}/dashboard`, { c: o.conns, d: o.duration });
  await stop(child, 'SIGINT', 120000);
  let mocks = NaN;
  if (record) {
    try {
      mocks = (readFileSync(join(dir, 'tlsrec', 'test-set-0', 'mocks.yaml'), 'utf8').match(/^kind: Redis$/gm) ?? [])
        .length;
    } catch {}
  }
  rmSync(dir, { recursive: true, force: true });
  return { rps: w.rps, p50: w.p50, p99: w.p99, reqs: w.reqs, non2xx: w.non2xx, mocks };
}

/** Mocks for the endpoint: what redis-server answered to the same commands, through YAML. */
async function mocksFromServer(redisPort, commands) {
  const r = new Redis({ port: redisPort, host: '127.0.0.1', protocol: 2 });
  const docs = [];
  for (const [i, c] of commands.entries()) {
    const reply = await r.call(...c);
    const text = `kind: Redis\nname: mock-${i}\nspec:\n  command: ${JSON.stringify(c)}\n  reply: ${JSON.stringify(typeof reply === 'number' ? reply : reply === null ? null : Array.isArray(reply) ? reply : String(reply))}\n`;
    const doc = parse(text);
    const read = readRedisMock(doc, { file: 'mocks.yaml', line: 1, index: i });
    docs.push({
      protocol: 'redis',
      kind: 'Redis',
      file: 'mocks.yaml',
      line: 1,
      name: `mock-${i}`,
      index: i,
      value: read.value,
    });
  }
  r.disconnect();
  return docs;
}

async function commandSpeed(targetPort, n) {
  const r = new Redis({ port: targetPort, host: '127.0.0.1', enableReadyCheck: false, maxRetriesPerRequest: 0 });
  await r.get('note');
  let t = performance.now();
  for (let i = 0; i < n; i++) await r.get('note');
  const seqPerS = n / ((performance.now() - t) / 1000);
  t = performance.now();
  const p = r.pipeline();
  for (let i = 0; i < n; i++) p.hgetall('user:1');
  const res = await p.exec();
  const pipePerS = n / ((performance.now() - t) / 1000);
  const bad = res.filter(([e]) => e).length;
  r.disconnect();
  return { seqPerS, pipePerS, bad };
}

async function replayRun(redisPort, n) {
  const appPort = port();
  const dir = tmp();
  const env = { ...process.env, PORT: String(appPort), REDIS_URL: `redis://127.0.0.1:${redisPort}`, NO_COLOR: '1' };
  const rec = run(NODE, [TLSREC, 'record', '-q', '--', NODE, APP], { cwd: dir, env });
  await waitPort(appPort, { child: rec });
  const t = performance.now();
  for (let i = 0; i < n; i++) await (await fetch(`http://127.0.0.1:${appPort}/dashboard`)).arrayBuffer();
  const liveS = (performance.now() - t) / 1000;
  await stop(rec, 'SIGINT', 120000);
  return { dir, env, liveS };
}

const broken = await tlsrecBroken();
if (broken) {
  console.log(`cannot measure: ${broken}`);
  process.exit(1);
}
console.log(`# redis — ${machine()}`);
const server = await startRedis();
await seed(server.port);

// (1) recording overhead
const rounds = [];
for (let i = 0; i < o.rounds; i++) {
  const base = await dashboardLoad(false, server.port);
  const rec = await dashboardLoad(true, server.port);
  rounds.push({ base, rec });
  process.stderr.write(
    `  round ${i + 1}: no capture ${fmt(base.rps, 0)} req/s, recording ${fmt(rec.rps, 0)} req/s (${rec.mocks} Redis mocks written, non-2xx ${base.non2xx}/${rec.non2xx})\n`,
  );
}
const baseRps = median(rounds.map((r) => r.base.rps));
const recRps = median(rounds.map((r) => r.rec.rps));
console.log(
  `\n## 1. recording a Redis-heavy endpoint (GET /dashboard: 9 Redis commands; wrk -c${o.conns} ${o.duration}s, median of ${o.rounds})`,
);
table([
  ['', 'req/s', 'p50 ms', 'p99 ms'],
  [
    'no capture',
    fmt(baseRps, 0),
    fmt(median(rounds.map((r) => r.base.p50))),
    fmt(median(rounds.map((r) => r.base.p99))),
  ],
  [
    'tlsrec record',
    fmt(recRps, 0),
    fmt(median(rounds.map((r) => r.rec.p50))),
    fmt(median(rounds.map((r) => r.rec.p99))),
  ],
]);
console.log(`throughput under recording: ${fmt(recRps / baseRps)}x of no capture`);

// (2) the mock endpoint against redis-server
const cmds = [
  ['GET', 'note'],
  ['HGETALL', 'user:1'],
];
const mocks = await mocksFromServer(server.port, cmds);
const ctx = {
  mocks,
  destination: {},
  startTls: () => Promise.reject(new Error('no tls')),
  hit: () => {},
  miss: () => {},
};
const mockServer = net.createServer((s) => serveRedis(s, ctx));
await new Promise((r) => mockServer.listen(0, '127.0.0.1', r));
const mockPort = mockServer.address().port;
const speeds = [];
for (let i = 0; i < o.rounds; i++) {
  speeds.push({ real: await commandSpeed(server.port, o.commands), mock: await commandSpeed(mockPort, o.commands) });
}
mockServer.close();
const ms = (k, w) => median(speeds.map((s) => s[w][k]));
console.log(`\n## 2. commands/s answered (ioredis, ${o.commands} commands, median of ${o.rounds})`);
table([
  ['', 'sequential GET', 'pipelined HGETALL', 'errors'],
  [
    'redis-server',
    fmt(ms('seqPerS', 'real'), 0),
    fmt(ms('pipePerS', 'real'), 0),
    String(speeds.reduce((a, s) => a + s.real.bad, 0)),
  ],
  [
    'tlsrec mock endpoint',
    fmt(ms('seqPerS', 'mock'), 0),
    fmt(ms('pipePerS', 'mock'), 0),
    String(speeds.reduce((a, s) => a + s.mock.bad, 0)),
  ],
]);
console.log(
  `mock endpoint vs redis-server: sequential ${fmt(ms('seqPerS', 'mock') / ms('seqPerS', 'real'))}x, pipelined ${fmt(ms('pipePerS', 'mock') / ms('pipePerS', 'real'))}x`,
);

// (3) tlsrec test with Redis mocks
const rr = await replayRun(server.port, o.tests);
await stop(server.child, 'SIGTERM');
const t = performance.now();
const test = run(NODE, [TLSREC, 'test'], { cwd: rr.dir, env: { ...rr.env, NO_COLOR: '1' } });
const exit = await test.exited;
const testS = (performance.now() - t) / 1000;
const passed = /(\d+) passed, (\d+) failed/m.exec(test.out + test.err);
// The replay loop alone: the sum of the per-test times the terminal reporter prints.
const loopS =
  [...(test.out + test.err).matchAll(/^\s+✓ \S+\s+GET \/dashboard\s+(\d+) ms$/gm)].reduce(
    (a, m) => a + Number(m[1]),
    0,
  ) / 1000;
console.log(`\n## 3. tlsrec test: ${o.tests} recorded GET /dashboard tests, redis-server stopped`);
table([
  ['', 'wall s', 'tests/s', 'result'],
  ['live app + redis-server (recording)', fmt(rr.liveS), fmt(o.tests / rr.liveS, 0), ''],
  [
    'tlsrec test from mocks (incl. app start)',
    fmt(testS),
    fmt(o.tests / testS, 0),
    passed
      ? `${passed[1]} passed, ${passed[2]} failed (exit ${exit.code})`
      : `exit ${exit.code}: ${(test.out + test.err).slice(-300)}`,
  ],
  ['  of which the tests themselves', fmt(loopS), fmt(o.tests / loopS, 0), ''],
]);
rmSync(rr.dir, { recursive: true, force: true });
saveJson('redis', { rounds, speeds, replay: { liveS: rr.liveS, testS, loopS, exit: exit.code, passed: passed?.[0] } });
