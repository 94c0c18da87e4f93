// Shared helpers for the tlsrec benchmarks: processes, ports, certificates, wrk, statistics.
// Plain Node ESM, no dependencies beyond what the repo already has (yaml, for reading results).

import { spawn, execFileSync } from 'node:child_process';
import {
  mkdtempSync,
  readFileSync,
  readdirSync,
  existsSync,
  statSync,
  writeFileSync,
  openSync,
  readSync,
  closeSync,
} from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir, cpus, hostname } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childProcessOf } from '../dist/native/proc.js';

export const BENCH = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(BENCH, '..');
export const TLSREC = join(ROOT, 'bin', 'tlsrec.js');
export const NODE = process.execPath;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function tmp(prefix = 'tlsrec-bench-') {
  return mkdtempSync(join(tmpdir(), prefix));
}

// below the kernel's ephemeral range (32768-60999), so a client's local port never takes ours
let nextPort = 10000 + Math.floor(Math.random() * 20000);
export function port() {
  return nextPort++;
}

/** A self-signed EC certificate for 127.0.0.1/localhost, made with the openssl CLI. */
export function makeCert(dir) {
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  if (!existsSync(cert)) {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
  }
  return { key, cert };
}

/** Spawn a process; keeps the last output in .tail for error messages. */
export function run(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  child.out = '';
  child.err = '';
  child.stdout?.on('data', (d) => {
    child.out += d;
    if (child.out.length > 200000) child.out = child.out.slice(-100000);
  });
  child.stderr?.on('data', (d) => {
    child.err += d;
    if (child.err.length > 200000) child.err = child.err.slice(-100000);
  });
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.startedAt = Date.now();
  return child;
}

/** Stop a process we started: signal, wait, then SIGKILL after graceMs. */
export async function stop(child, signal = 'SIGTERM', graceMs = 30000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exited;
  try {
    child.kill(signal);
  } catch {}
  const t = setTimeout(() => {
    try {
      child.kill('SIGKILL');
    } catch {}
  }, graceMs);
  const r = await child.exited;
  clearTimeout(t);
  return r;
}

/** Wait until host:port accepts a TCP connection (connect only, no bytes sent). */
export async function waitPort(p, { host = '127.0.0.1', timeoutMs = 30000, child } = {}) {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(
        `process exited before port ${p} opened (code ${child.exitCode}):\n${child.err.slice(-2000)}${child.out.slice(-1000)}`,
      );
    }
    const ok = await new Promise((resolve) => {
      const s = createConnection({ host, port: p });
      s.on('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return Date.now() - t0;
    await sleep(50);
  }
  throw new Error(`port ${p} did not open in ${timeoutMs} ms${child ? ':\n' + child.err.slice(-2000) : ''}`);
}

/** Wait until a child's stdout/stderr contains a pattern. */
export async function waitOutput(child, re, timeoutMs = 30000) {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (re.test(child.out) || re.test(child.err)) return;
    if (child.exitCode !== null)
      throw new Error(`exited (code ${child.exitCode}) before ${re}: ${child.err.slice(-2000)}`);
    await sleep(50);
  }
  throw new Error(`timeout waiting for ${re}: ${child.err.slice(-2000)}`);
}

function toMs(v, unit) {
  const n = Number(v);
  return unit === 'us' ? n / 1000 : unit === 'ms' ? n : unit === 's' ? n * 1000 : unit === 'm' ? n * 60000 : NaN;
}

/** Run wrk --latency and parse requests/s, p50, p99, requests, errors. */
export async function wrk(url, { c = 32, t = 1, d = 5 } = {}) {
  // Through bash for its `times`: wrk's own CPU time, which uprobes on a library wrk uses (the
  // system libssl) raise, and which on a small machine the app pays for.
  const w = run('bash', [
    '-c',
    'wrk "$@"; s=$?; times >&2; exit $s',
    'wrk',
    `-t${t}`,
    `-c${c}`,
    `-d${d}s`,
    '--latency',
    url,
  ]);
  await w.exited;
  const o = w.out;
  const [, um, us, sm, ss] = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/m.exec(w.err.trim().split('\n').at(-1) ?? '') ?? [];
  const cpuS = Number(um) * 60 + Number(us) + Number(sm) * 60 + Number(ss);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(o)?.[1] ?? NaN);
  const lat = (pct) => {
    const m = new RegExp(`^\\s+${pct}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(o);
    return m ? toMs(m[1], m[2]) : NaN;
  };
  const reqs = Number(/(\d+) requests in/.exec(o)?.[1] ?? NaN);
  const sockErr = /Socket errors: (.*)/.exec(o)?.[1];
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(o)?.[1] ?? 0);
  return { rps, p50: lat(50), p99: lat(99), reqs, sockErr, non2xx, cpuUsPerReq: (cpuS * 1e6) / reqs, raw: o };
}

export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function shuffle(a) {
  const b = [...a];
  for (let i = b.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [b[i], b[j]] = [b[j], b[i]];
  }
  return b;
}

/** Print an aligned table. rows: array of arrays (first is the header). */
export function table(rows) {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i] ?? '').length)));
  const line = (r) =>
    r.map((c, i) => (i === 0 ? String(c ?? '').padEnd(w[i]) : String(c ?? '').padStart(w[i]))).join('  ');
  const out = [line(rows[0]), w.map((n) => '-'.repeat(n)).join('  '), ...rows.slice(1).map(line)];
  console.log(out.join('\n'));
}

export const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

/** Is tlsrec usable? Returns null if yes, else the reason. */
export async function tlsrecBroken() {
  if (!existsSync(join(ROOT, 'dist', 'cli.js'))) return 'dist/ missing (npm run build failed or not run)';
  const r = run(NODE, [TLSREC, '--help']);
  const { code } = await r.exited;
  if (code !== 0) return `tlsrec --help exited ${code}: ${(r.err || r.out).slice(-500)}`;
  return null;
}

/** List test files under a tlsrec dir: <dir>/<set>/tests/*.yaml, and mocks.yaml files. */
export function listRecorded(dir) {
  const tests = [];
  const mocks = [];
  if (!existsSync(dir)) return { tests, mocks };
  for (const set of readdirSync(dir)) {
    const sd = join(dir, set);
    if (!statSync(sd).isDirectory()) continue;
    const td = join(sd, 'tests');
    if (existsSync(td)) for (const f of readdirSync(td)) if (f.endsWith('.yaml')) tests.push(join(td, f));
    const mf = join(sd, 'mocks.yaml');
    if (existsSync(mf)) mocks.push(mf);
  }
  return { tests, mocks };
}

/** Count YAML documents in a mocks.yaml (lines starting with `kind:`), streaming: the file can
 *  be larger than the biggest string V8 can make. */
export function countMocks(file) {
  const fd = openSync(file, 'r');
  const buf = Buffer.alloc(1 << 22);
  const needle = Buffer.from('\nkind:');
  let n = 0,
    carry = Buffer.alloc(0),
    first = true;
  try {
    for (;;) {
      const got = readSync(fd, buf, 0, buf.length, null);
      if (got <= 0) break;
      const chunk = Buffer.concat([carry, buf.subarray(0, got)]);
      if (first && chunk.subarray(0, 5).toString() === 'kind:') n++;
      first = false;
      for (let i = chunk.indexOf(needle); i !== -1; i = chunk.indexOf(needle, i + 1)) n++;
      carry = Buffer.from(chunk.subarray(Math.max(0, chunk.length - needle.length + 1)));
    }
  } finally {
    closeSync(fd);
  }
  return n;
}

/** Parse tlsrec's stderr summary for loss. */
export function lossFrom(text) {
  const lost = /lost:?\s*([\d,]+)\s*bytes/i.exec(text);
  const warn = /LOST[^\n]*/.exec(text);
  const big = /LOST ([\d.]+) (B|KiB|MiB|GiB)/.exec(text);
  const mult = { B: 1, KiB: 1024, MiB: 1048576, GiB: 1073741824 };
  const lostBytes = big
    ? Math.round(Number(big[1]) * mult[big[2]])
    : lost
      ? Number(lost[1].replace(/,/g, ''))
      : undefined;
  return { lostBytes, warning: warn?.[0] };
}

/** VmHWM / VmRSS of a pid, in MiB. */
export function procMem(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
    const hwm = kb('VmHWM') / 1024;
    return Number.isFinite(hwm) ? { hwm, rss: kb('VmRSS') / 1024 } : undefined;
  } catch {
    return undefined;
  }
}

/** The file-writer process (src/spool/spooler.ts) of the `tlsrec record` process `pid`, if it runs. */
export const writerOf = (pid) => childProcessOf(pid, 'file-writer-main.js');

/**
 * Samples the memory of a `tlsrec record` process every `ms`: its VmHWM, its file-writer process's
 * VmHWM, and the peak of their RSS together (the figure that counts for the machine).
 */
export function sampleRecordMemory(pid, ms = 100) {
  const s = { hwm: 0, rss: 0, writerHwm: 0, totalPeak: 0 };
  let writer;
  s.timer = setInterval(() => {
    const m = procMem(pid);
    if (!m) return;
    s.hwm = Math.max(s.hwm, m.hwm);
    s.rss = m.rss;
    writer ??= writerOf(pid);
    const w = writer === undefined ? undefined : procMem(writer);
    if (w) s.writerHwm = Math.max(s.writerHwm, w.hwm);
    s.totalPeak = Math.max(s.totalPeak, m.rss + (w?.rss ?? 0));
  }, ms);
  return s;
}

export function machine() {
  const c = cpus();
  return `${hostname()} ${c.length} cores ${c[0]?.model ?? ''}; node ${process.version}; ${new Date().toISOString()}`;
}

export function saveJson(name, data) {
  const dir = join(BENCH, 'results');
  try {
    execFileSync('mkdir', ['-p', dir]);
  } catch {}
  const f = join(dir, `${name}.json`);
  writeFileSync(f, JSON.stringify(data, null, 2));
  return f;
}

/** Parse simple --key value / --flag command-line options into an object. */
export function args(defaults) {
  const o = { ...defaults };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    if (!a[i].startsWith('--')) continue;
    const k = a[i].slice(2).replace(/-([a-z])/g, (_, x) => x.toUpperCase());
    const v = a[i + 1] !== undefined && !a[i + 1].startsWith('--') ? a[++i] : 'true';
    o[k] = typeof defaults[k] === 'number' ? Number(v) : typeof defaults[k] === 'boolean' ? v !== 'false' : v;
  }
  return o;
}
