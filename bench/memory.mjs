#!/usr/bin/env node
// Memory: peak RSS (VmHWM from /proc/PID/status) of the tlsrec process and of its file-writer process
// (and the peak of the two together) — not the app —
//  1. recording a server: `tlsrec record -- node blob-server.mjs`, curl (outside) downloads
//     2 MiB responses over one keep-alive connection: 256 MiB and 1 GiB in total -> tests
//  2. recording a client: `tlsrec record -- curl ...` downloading the same from a server outside
//     the recording: 256 MiB and 1 GiB -> mocks (all in one mocks.yaml)
//  3. replaying 1,000 and 10,000 generated tests (`tlsrec test`)
// "Independent of the amount recorded" = the 1 GiB figure is close to the 256 MiB one.
//
// curl is limited to --rate-mb MiB/s (0 = unlimited, the overloaded case: tlsrec pauses the
// command while its backlog is over --max-backlog) so that what is measured is a complete recording.
//
//   node bench/memory.mjs [--rate-mb 8] [--sizes-mb 256,1024] [--replay 1000,10000] [--parts record,client,replay]
//                         [--ringbuf 64M] [--max-backlog 64M]   (record options to try)
import { join } from 'node:path';
import { writeFileSync, mkdirSync, rmSync } from 'node:fs';
import {
  BENCH,
  NODE,
  TLSREC,
  run,
  stop,
  waitPort,
  table,
  fmt,
  tmp,
  port,
  makeCert,
  listRecorded,
  countMocks,
  tlsrecBroken,
  machine,
  saveJson,
  args,
  lossFrom,
  sampleRecordMemory,
} from './lib.mjs';
import { replayOnce } from './replay.mjs';

const o = args({
  rateMb: 8,
  sizesMb: '256,1024',
  replay: '1000,10000',
  parts: 'record,client,replay',
  mocks: true,
  ringbuf: '',
  maxBacklog: '',
});
/** record options under test (--ringbuf, --max-backlog), default: tlsrec's defaults. */
const recordOpts = [
  ...(o.ringbuf ? ['--ringbuf', o.ringbuf] : []),
  ...(o.maxBacklog ? ['--max-backlog', o.maxBacklog] : []),
];
const base = tmp();
const { cert, key } = makeCert(base);
const SIZE = 2 * 1024 * 1024;
const SERVER = join(BENCH, 'servers', 'blob-server.mjs');

function curlConfig(file, p, n) {
  const lines = [];
  if (o.rateMb > 0) lines.push(`limit-rate = ${o.rateMb}M`);
  for (let i = 0; i < n; i++)
    lines.push(`url = "https://127.0.0.1:${p}/blob?id=${i}&size=${SIZE}"`, 'output = "/dev/null"');
  writeFileSync(file, lines.join('\n') + '\n');
}

async function recordServer(mb) {
  const n = Math.round((mb * 1048576) / SIZE);
  const dir = join(base, `srv-${mb}`);
  mkdirSync(dir, { recursive: true });
  const p = port();
  const rec = run(
    NODE,
    [
      TLSREC,
      'record',
      ...recordOpts,
      '--dir',
      join(dir, 'tlsrec'),
      '--config',
      join(dir, 'tlsrec.yaml'),
      '--',
      process.execPath,
      SERVER,
      '--https-port',
      String(p),
      '--cert',
      cert,
      '--key',
      key,
    ],
    { cwd: dir },
  );
  const s = sampleRecordMemory(rec.pid);
  await waitPort(p, { child: rec, timeoutMs: 60000 });
  const cfg = join(dir, 'curl.cfg');
  curlConfig(cfg, p, n);
  const t0 = Date.now();
  const c = run('curl', ['-sk', '-K', cfg]);
  await c.exited;
  const sendS = (Date.now() - t0) / 1000;
  const s0 = Date.now();
  await stop(rec, 'SIGINT', 600000);
  clearInterval(s.timer);
  const { tests } = listRecorded(join(dir, 'tlsrec'));
  const r = {
    part: 'record server (tests)',
    amountMb: mb,
    exchanges: n,
    written: tests.length,
    hwm: s.hwm,
    writerHwm: s.writerHwm,
    totalPeak: s.totalPeak,
    sendS,
    drainS: (Date.now() - s0) / 1000,
    loss: lossFrom(rec.err),
  };
  rmSync(dir, { recursive: true, force: true });
  return r;
}

async function recordClient(mb) {
  const n = Math.round((mb * 1048576) / SIZE);
  const dir = join(base, `cli-${mb}`);
  mkdirSync(dir, { recursive: true });
  const p = port();
  const srv = run(process.execPath, [SERVER, '--https-port', String(p), '--cert', cert, '--key', key]);
  await waitPort(p, { child: srv });
  const cfg = join(dir, 'curl.cfg');
  curlConfig(cfg, p, n);
  const t0 = Date.now();
  const rec = run(
    NODE,
    [
      TLSREC,
      'record',
      ...recordOpts,
      '--dir',
      join(dir, 'tlsrec'),
      '--config',
      join(dir, 'tlsrec.yaml'),
      '--',
      'curl',
      '-sk',
      '-K',
      cfg,
    ],
    { cwd: dir },
  );
  const s = sampleRecordMemory(rec.pid);
  await rec.exited;
  clearInterval(s.timer);
  await stop(srv);
  const { mocks } = listRecorded(join(dir, 'tlsrec'));
  const r = {
    part: 'record client (mocks)',
    amountMb: mb,
    exchanges: n,
    written: mocks.reduce((k, f) => k + countMocks(f), 0),
    hwm: s.hwm,
    writerHwm: s.writerHwm,
    totalPeak: s.totalPeak,
    sendS: (Date.now() - t0) / 1000,
    loss: lossFrom(rec.err),
  };
  rmSync(dir, { recursive: true, force: true });
  return r;
}

const broken = await tlsrecBroken();
if (broken) {
  console.log(`cannot measure: ${broken}`);
  process.exit(1);
}
console.log(`# memory — ${machine()}`);
const results = [];
const parts = o.parts.split(',');
for (const mb of o.sizesMb.split(',').map(Number)) {
  for (const part of parts) {
    try {
      let r;
      if (part === 'record') r = await recordServer(mb);
      else if (part === 'client') r = await recordClient(mb);
      else continue;
      results.push(r);
      process.stderr.write(
        `  ${r.part} ${mb} MiB: VmHWM ${fmt(r.hwm, 0)} MB, writer ${fmt(r.writerHwm, 0)} MB, together ${fmt(r.totalPeak, 0)} MB, written ${r.written}/${r.exchanges}, lost ${r.loss.lostBytes ?? '?'} ${r.loss.warning ?? ''}\n`,
      );
    } catch (e) {
      process.stderr.write(`  ${part} ${mb} MiB FAILED: ${e.message.slice(0, 600)}\n`);
      results.push({ part, amountMb: mb, error: e.message.slice(0, 600) });
    }
  }
}
if (parts.includes('replay')) {
  for (const n of o.replay.split(',').map(Number)) {
    const r = await replayOnce(n, { sampleMs: 100, mocks: o.mocks });
    results.push({
      part: 'replay (tlsrec test)',
      amountMb: NaN,
      exchanges: n,
      written: r.appSeen,
      hwm: r.tlsrecHwmMb,
      exit: r.exit,
      passed: r.passed,
      wallS: r.wallS,
    });
    process.stderr.write(
      `  replay ${n}: VmHWM ${fmt(r.tlsrecHwmMb, 0)} MB, exit ${r.exit}, app saw ${r.appSeen}, passed ${r.passed}\n`,
    );
  }
}
table([
  [
    'part',
    'traffic MiB',
    'exchanges',
    'written / app saw',
    'tlsrec VmHWM MB',
    'writer VmHWM MB',
    'together peak MB',
    'lost',
  ],
  ...results.map((r) => [
    r.part,
    fmt(r.amountMb, 0),
    r.exchanges,
    r.written ?? r.error?.slice(0, 40),
    fmt(r.hwm, 0),
    r.writerHwm ? fmt(r.writerHwm, 0) : '',
    r.totalPeak ? fmt(r.totalPeak, 0) : '',
    r.loss
      ? r.loss.lostBytes === undefined
        ? r.loss.warning
          ? 'LOST'
          : '?'
        : fmt(r.loss.lostBytes / 1048576, 1) + ' MiB'
      : '',
  ]),
]);
console.log(`target: < 300 MB, independent of the amount recorded. curl --limit-rate ${o.rateMb}M per transfer`);
console.log(`raw results: ${saveJson('memory', { machine: machine(), options: o, results })}`);
rmSync(base, { recursive: true, force: true });
