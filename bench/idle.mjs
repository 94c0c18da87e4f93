#!/usr/bin/env node
// Idle cost: what a recording left running costs the machine while nothing happens. tlsrec
// records the bench's HTTPS server (node), which nobody calls; after a warm-up, the CPU time
// (/proc/PID/stat utime+stime) and the wake-ups (context switches, /proc/PID/status) of tlsrec's
// two processes — the recorder and its file-writer process — are counted over --seconds, and those of
// the idle app itself beside them. Absolute figures: there is nothing to compare an idle
// recording with but doing nothing.
//
//   node bench/idle.mjs [--seconds 10] [--rounds 3] [--warmup 3]
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  BENCH,
  NODE,
  TLSREC,
  run,
  stop,
  waitPort,
  table,
  fmt,
  median,
  tmp,
  port,
  makeCert,
  machine,
  saveJson,
  args,
  sleep,
  writerOf,
  tlsrecBroken,
} from './lib.mjs';
import { childProcessOf, statFields } from '../dist/native/proc.js';

const o = args({ seconds: 10, rounds: 3, warmup: 3 });
const TICKS_PER_S = 100; // USER_HZ on Linux

/** CPU ticks and context switches of `pid` so far. */
function sample(pid) {
  const f = statFields(pid);
  if (!f) throw new Error(`process ${pid} is gone`);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const switches = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  // After the command name: state is field 3 of stat, utime 14 and stime 15.
  return {
    ticks: Number(f[11]) + Number(f[12]),
    switches: switches('voluntary_ctxt_switches') + switches('nonvoluntary_ctxt_switches'),
  };
}

async function round(base, cert, key) {
  const p = port();
  const dir = join(base, `rec-${p}`);
  const rec = run(NODE, [
    TLSREC,
    'record',
    '-q',
    '--dir',
    dir,
    '--',
    NODE,
    join(BENCH, 'servers', 'https-server.mjs'),
    '--port',
    String(p),
    '--cert',
    cert,
    '--key',
    key,
  ]);
  try {
    await waitPort(p, { child: rec });
    await sleep(o.warmup * 1000);
    const pids = { recorder: rec.pid, writer: writerOf(rec.pid), app: childProcessOf(rec.pid, 'https-server.mjs') };
    for (const [name, pid] of Object.entries(pids))
      if (pid === undefined) throw new Error(`cannot find the ${name} process`);
    const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, sample(pid)]));
    await sleep(o.seconds * 1000);
    const out = {};
    for (const [k, pid] of Object.entries(pids)) {
      const a = sample(pid);
      out[k] = {
        cpuPct: ((a.ticks - before[k].ticks) / TICKS_PER_S / o.seconds) * 100,
        wakeupsPerS: (a.switches - before[k].switches) / o.seconds,
      };
    }
    return out;
  } finally {
    await stop(rec, 'SIGINT');
    rmSync(dir, { recursive: true, force: true });
  }
}

const broken = await tlsrecBroken();
if (broken) {
  console.error(broken);
  process.exit(1);
}
const base = tmp();
const { cert, key } = makeCert(base);
console.log(`# idle — ${machine()}`);
console.log(
  `# tlsrec record -- node https-server.mjs, no requests; ${o.warmup} s warm-up, then ${o.seconds} s counted, ${o.rounds} rounds\n`,
);
const rounds = [];
try {
  for (let i = 0; i < o.rounds; i++) {
    const r = await round(base, cert, key);
    rounds.push(r);
    console.log(
      `  round ${i + 1}: ` +
        Object.entries(r)
          .map(([k, v]) => `${k} ${fmt(v.cpuPct)} % CPU, ${fmt(v.wakeupsPerS, 1)} wake-ups/s`)
          .join('; '),
    );
  }
} finally {
  rmSync(base, { recursive: true, force: true });
}
const rows = [['process', 'CPU % (median)', 'wake-ups/s (median)', 'CPU % (max)']];
for (const k of ['recorder', 'writer', 'app']) {
  const cpu = rounds.map((r) => r[k].cpuPct);
  rows.push([
    k === 'app' ? 'the idle app (for scale)' : `tlsrec ${k}`,
    fmt(median(cpu)),
    fmt(median(rounds.map((r) => r[k].wakeupsPerS)), 1),
    fmt(Math.max(...cpu)),
  ]);
}
console.log('');
table(rows);
console.log(`\nraw results: ${saveJson('idle', { machine: machine(), options: o, rounds })}`);
