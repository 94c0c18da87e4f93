#!/usr/bin/env node
// Replay speed: N generated tests (Keploy format) replayed by `tlsrec test -- node replay-app.mjs`
// against a fast app. Reports tests/s end to end (tlsrec start to exit), tests/s of the replay
// phase (first to last request the app saw), the share of wall time spent inside the app's handler
// and CPU time of tlsrec vs the app, and tlsrec's start-up to the first request with the app's own
// start excluded: (first request - tlsrec spawn) - (app listening - app process start).
//
//   node bench/replay.mjs [--tests 1000] [--rounds 3] [--mocks false]   (false: pass --no-mocks)
import { join } from 'node:path';
import { readFileSync, rmSync } from 'node:fs';
import {
  NODE,
  TLSREC,
  BENCH,
  run,
  median,
  table,
  fmt,
  tmp,
  port,
  tlsrecBroken,
  machine,
  saveJson,
  args,
  procMem,
} from './lib.mjs';
import { genTests } from './gen-tests.mjs';

const o = args({ tests: 1000, rounds: 3, mocks: true });

export async function replayOnce(n, { sampleMs = 50, mocks = true } = {}) {
  const base = tmp();
  const p = port();
  const dir = genTests(base, n, p);
  const logFile = join(base, 'app.json');
  const t0 = Date.now();
  const t = run(
    NODE,
    [
      TLSREC,
      'test',
      '--dir',
      dir,
      '--config',
      join(base, 'tlsrec.yaml'),
      '--app-port',
      String(p),
      '--reporter',
      'terminal',
      '--reporter',
      'json',
      '--report-dir',
      join(base, 'reports'),
      ...(mocks ? [] : ['--no-mocks']),
      '--',
      process.execPath,
      join(BENCH, 'servers', 'replay-app.mjs'),
      String(p),
      logFile,
    ],
    { cwd: base },
  );
  let hwm = 0,
    cpuMs = 0;
  const tick = () => {
    const m = procMem(t.pid);
    if (m) hwm = Math.max(hwm, m.hwm);
    try {
      const f = readFileSync(`/proc/${t.pid}/stat`, 'utf8').split(') ')[1].split(' ');
      cpuMs = ((Number(f[11]) + Number(f[12])) * 1000) / 100;
    } catch {}
  };
  const sampler = setInterval(tick, sampleMs);
  const r = await t.exited;
  const t1 = Date.now();
  clearInterval(sampler);
  let app = {};
  try {
    app = JSON.parse(readFileSync(logFile, 'utf8'));
  } catch {}
  const passed = /(\d+)\s+passed/i.exec(t.out + t.err)?.[1];
  const failed = /(\d+)\s+failed/i.exec(t.out + t.err)?.[1];
  const res = {
    n,
    exit: r.code,
    wallS: (t1 - t0) / 1000,
    appSeen: app.count,
    passed: passed && Number(passed),
    failed: failed && Number(failed),
    replayS: app.first && app.last ? (app.last - app.first) / 1000 : NaN,
    startupMs: app.first ? Math.round(app.first - t0 - (app.listening - app.start)) : NaN,
    appStartMs: Math.round(app.listening - app.start),
    afterLastMs: t1 - app.last,
    spawnToAppMs: Math.round(app.start - t0),
    firstReqAfterListenMs: app.first - app.listening,
    handlerMs: app.handlerMs,
    appCpuMs: app.cpuMs,
    tlsrecCpuMs: cpuMs,
    tlsrecHwmMb: hwm,
    tail: (t.out + t.err).slice(-800),
  };
  rmSync(base, { recursive: true, force: true });
  return res;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const broken = await tlsrecBroken();
  if (broken) {
    console.log(`cannot measure: ${broken}`);
    process.exit(1);
  }
  console.log(`# replay — ${machine()}`);
  const rs = [];
  for (let i = 0; i < o.rounds; i++) {
    const r = await replayOnce(o.tests, { mocks: o.mocks });
    rs.push(r);
    process.stderr.write(
      `  round ${i + 1}: exit ${r.exit}, app saw ${r.appSeen}, passed ${r.passed} failed ${r.failed}, wall ${fmt(r.wallS)} s, startup ${r.startupMs} ms, replay ${fmt(r.replayS)} s\n`,
    );
    if (r.exit !== 0 || r.appSeen !== o.tests)
      process.stderr.write(`    output tail: ${r.tail.replace(/\n/g, '\n    ')}\n`);
  }
  const m = (k) => median(rs.map((r) => r[k]));
  table([
    ['metric', 'median', 'per round'],
    [
      'tests/s end to end (N / wall, incl. start and stop)',
      fmt(o.tests / m('wallS'), 0),
      rs.map((r) => fmt(o.tests / r.wallS, 0)).join(' '),
    ],
    [
      'tests/s replay phase (first..last request at the app)',
      fmt(o.tests / m('replayS'), 0),
      rs.map((r) => fmt(o.tests / r.replayS, 0)).join(' '),
    ],
    [
      'tlsrec start-up to first request, app start excluded (ms)',
      fmt(m('startupMs'), 0),
      rs.map((r) => r.startupMs).join(' '),
    ],
    [
      '  tlsrec spawned -> app process started (load tests, mocks, cgroup) (ms)',
      fmt(m('spawnToAppMs'), 0),
      rs.map((r) => r.spawnToAppMs).join(' '),
    ],
    ['  app start (process start -> listening) (ms)', fmt(m('appStartMs'), 0), rs.map((r) => r.appStartMs).join(' ')],
    [
      '  app listening -> first request (ms)',
      fmt(m('firstReqAfterListenMs'), 0),
      rs.map((r) => r.firstReqAfterListenMs).join(' '),
    ],
    [
      'last request -> tlsrec exit (stop app, report) (ms)',
      fmt(m('afterLastMs'), 0),
      rs.map((r) => r.afterLastMs).join(' '),
    ],
    [
      'wall time in the app handler / replay phase',
      fmt(m('handlerMs') / 1000 / m('replayS'), 3),
      rs.map((r) => fmt(r.handlerMs / 1000 / r.replayS, 3)).join(' '),
    ],
    [
      'CPU: tlsrec ms / app ms',
      `${fmt(m('tlsrecCpuMs'), 0)} / ${fmt(m('appCpuMs'), 0)}`,
      rs.map((r) => `${r.tlsrecCpuMs}/${fmt(r.appCpuMs, 0)}`).join(' '),
    ],
    [
      'CPU share of tlsrec (tlsrec / (tlsrec + app))',
      fmt(m('tlsrecCpuMs') / (m('tlsrecCpuMs') + m('appCpuMs')), 3),
      '',
    ],
    [
      'tests passed / app requests seen',
      `${m('passed')} / ${m('appSeen')}`,
      rs.map((r) => `${r.passed}/${r.appSeen}`).join(' '),
    ],
    ['tlsrec VmHWM MB', fmt(m('tlsrecHwmMb'), 0), rs.map((r) => fmt(r.tlsrecHwmMb, 0)).join(' ')],
  ]);
  console.log(`targets: >= 300 tests/s, start-up < 1000 ms`);
  console.log(`raw results: ${saveJson('replay', { machine: machine(), options: o, rounds: rs })}`);
}
