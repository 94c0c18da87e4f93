#!/usr/bin/env node
// Completeness under load: COUNT exchanges over CONNS keep-alive connections (half TLS, half plain
// HTTP), response bodies 100 B .. 2 MB (and POST bodies on every 4th request), sent by a client
// OUTSIDE the recording to a server that runs as `tlsrec record -- node blob-server.mjs`.
// Every written test file is read back and its request and response bodies compared by SHA-256
// with what was sent. Prints recorded/sent, body mismatches, the loss counters of the summary,
// then a rate sweep (paced, open loop) and a run with a tiny ring buffer to show the loss path.
//
//   node bench/completeness.mjs [--count 20000] [--rate 0 (main run, /s; 0 = as fast as possible)] [--conns 64] [--sweep 1000,2000,4000,0]
//                               [--sweep-count 4000] [--small-ringbuf-mb 1] [--skip-main] [--bodies mixed|small] [--max-backlog 64M] [--baseline]
// --bodies small: every body 100 B-2 KB (the "at least 4,000 exchanges/s of small bodies" case).
// --max-backlog: passed to `tlsrec record` (default: tlsrec's own).
// --baseline: first the main run's load without tlsrec (the rate the app and client sustain alone).
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { readFileSync, mkdirSync, rmSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
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
  tlsrecBroken,
  machine,
  saveJson,
  args,
  lossFrom,
  sampleRecordMemory,
  sleep,
} from './lib.mjs';
import { body, sha } from './servers/blob.mjs';

const o = args({
  rate: 0,
  count: 20000,
  conns: 64,
  sweep: '250,500,1000,2000,0',
  sweepCount: 4000,
  smallRingbufMb: 1,
  ringbufMb: 64,
  skipMain: false,
  baseline: false,
  bodies: 'mixed',
  maxBacklog: '',
});
if (!['mixed', 'small'].includes(o.bodies)) throw new Error('--bodies is mixed or small');
const base = tmp();
const { cert, key } = makeCert(base);

// Deterministic size mix: 70% 100 B-2 KB, 25% 2-64 KB, 5% 64 KB-2 MB (log-uniform in each band),
// and every 500th exchange exactly 2 MB.
function rng(i) {
  let x = (i * 2654435761 + 12345) >>> 0;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}
const logU = (r, lo, hi) => Math.round(Math.exp(Math.log(lo) + r * (Math.log(hi) - Math.log(lo))));
function sizeOf(r) {
  if (o.bodies === 'small') return logU(r(), 100, 2048);
  const band = r();
  return band < 0.7 ? logU(r(), 100, 2048) : band < 0.95 ? logU(r(), 2048, 65536) : logU(r(), 65536, 2 * 1024 * 1024);
}
function plan(i) {
  const r = rng(i);
  const size = i % 500 === 499 && o.bodies === 'mixed' ? 2 * 1024 * 1024 : sizeOf(r);
  const reqSize = i % 4 === 0 ? Math.min(sizeOf(r), 256 * 1024) : 0;
  return { tls: i % 2 === 0, size, reqSize };
}

async function runOnce({ count, rate, ringbufMb, label, record = true }) {
  const dir = join(base, `rec-${label}`);
  mkdirSync(dir, { recursive: true });
  const hp = port();
  const pp = port();
  const server = [
    join(BENCH, 'servers', 'blob-server.mjs'),
    '--https-port',
    String(hp),
    '--cert',
    cert,
    '--key',
    key,
    '--http-port',
    String(pp),
  ];
  // record = false: the same server and client without tlsrec, for the rate the app sustains alone.
  const rec = record
    ? run(
        NODE,
        [
          TLSREC,
          'record',
          '--ringbuf',
          `${ringbufMb}M`,
          ...(o.maxBacklog ? ['--max-backlog', o.maxBacklog] : []),
          '--dir',
          join(dir, 'tlsrec'),
          '--config',
          join(dir, 'tlsrec.yaml'),
          '--',
          process.execPath,
          ...server,
        ],
        { cwd: dir },
      )
    : run(process.execPath, server, { cwd: dir });
  await waitPort(hp, { child: rec, timeoutMs: 60000 });
  await waitPort(pp, { child: rec, timeoutMs: 60000 });
  const mem = sampleRecordMemory(rec.pid, 200);

  const agents = {
    tls: new https.Agent({ keepAlive: true, maxSockets: o.conns / 2, rejectUnauthorized: false }),
    plain: new http.Agent({ keepAlive: true, maxSockets: o.conns / 2 }),
  };
  const expected = new Map();
  let next = 0,
    bytes = 0,
    errors = 0,
    clientMismatch = 0;
  const t0 = performance.now();
  function one(i) {
    const p = plan(i);
    const mod = p.tls ? https : http;
    const reqBody = p.reqSize ? body(i, p.reqSize, 1) : undefined;
    expected.set(i, { ...p, reqSha: sha(reqBody ?? Buffer.alloc(0)), respSha: sha(body(i, p.size)) });
    return new Promise((resolve) => {
      const req = mod.request(
        {
          host: '127.0.0.1',
          port: p.tls ? hp : pp,
          path: `/blob?id=${i}&size=${p.size}`,
          method: reqBody ? 'POST' : 'GET',
          agent: p.tls ? agents.tls : agents.plain,
          headers: reqBody ? { 'content-type': 'text/plain', 'content-length': reqBody.length } : {},
        },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            const b = Buffer.concat(chunks);
            bytes += b.length + p.reqSize;
            if (sha(b) !== expected.get(i).respSha) clientMismatch++;
            resolve();
          });
        },
      );
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(reqBody);
    });
  }
  async function worker(_tls) {
    for (;;) {
      // each worker takes ids of its protocol so each agent keeps conns/2 requests in flight
      const i = next++;
      if (i >= count) return;
      if (rate > 0) {
        const due = t0 + (i * 1000) / rate;
        const now = performance.now();
        if (due > now) await sleep(due - now);
      }
      await one(i);
    }
  }
  await Promise.all(Array.from({ length: o.conns }, (_, k) => worker(k % 2 === 0)));
  const sendS = (performance.now() - t0) / 1000;
  agents.tls.destroy();
  agents.plain.destroy();
  const s0 = performance.now();
  await stop(rec, 'SIGINT', 600000);
  const drainS = (performance.now() - s0) / 1000;
  clearInterval(mem.timer);
  if (!record) {
    rmSync(dir, { recursive: true, force: true });
    const r = {
      label,
      count,
      rate,
      record,
      sent: expected.size,
      errors,
      clientMismatch,
      mb: bytes / 1048576,
      sendS,
      achievedRate: count / sendS,
    };
    process.stderr.write(
      `  ${label}: ${fmt(r.mb, 0)} MB in ${fmt(sendS, 1)} s (${fmt(r.achievedRate, 0)}/s), ${errors} errors, ${clientMismatch} client-side mismatches\n`,
    );
    return r;
  }

  // read back
  const { tests } = listRecorded(join(dir, 'tlsrec'));
  const seen = new Map();
  let bad = 0,
    reqBad = 0,
    respBad = 0,
    unknown = 0,
    parseErr = 0;
  for (const f of tests) {
    let doc;
    try {
      doc = parseYaml(readFileSync(f, 'utf8'), { maxAliasCount: -1 });
    } catch {
      parseErr++;
      continue;
    }
    const req = doc?.spec?.req,
      resp = doc?.spec?.resp;
    const id = Number(/[?&]id=(\d+)/.exec(req?.url ?? '')?.[1]);
    const e = expected.get(id);
    if (!e) {
      unknown++;
      continue;
    }
    seen.set(id, (seen.get(id) ?? 0) + 1);
    const bytesOf = (m) =>
      m?.body_encoding === 'base64' ? Buffer.from(m.body ?? '', 'base64') : Buffer.from(m?.body ?? '', 'utf8');
    const rq = sha(bytesOf(req)) === e.reqSha,
      rs = sha(bytesOf(resp)) === e.respSha;
    if (!rq) reqBad++;
    if (!rs) respBad++;
    if (!rq || !rs) bad++;
  }
  const missing = [...expected.keys()].filter((i) => !seen.has(i));
  const dups = [...seen.values()].filter((n) => n > 1).length;
  const loss = lossFrom(rec.err);
  const summary = rec.err
    .split('\n')
    .filter((l) => /recorded|traffic|lost|LOST|skipped|incomplete|warn/i.test(l))
    .slice(-8)
    .join('\n    ');
  rmSync(dir, { recursive: true, force: true });
  const r = {
    label,
    count,
    rate,
    ringbufMb,
    sent: expected.size,
    errors,
    clientMismatch,
    recorded: seen.size,
    ok: seen.size - bad,
    reqBad,
    respBad,
    missing: missing.length,
    missingSample: missing.slice(0, 10).map((i) => ({ id: i, ...plan(i) })),
    dups,
    unknown,
    parseErr,
    mb: bytes / 1048576,
    sendS,
    achievedRate: count / sendS,
    drainS,
    tlsrecHwmMb: mem.hwm,
    writerHwmMb: mem.writerHwm,
    togetherPeakMb: mem.totalPeak,
    lostBytes: loss.lostBytes,
    lostWarning: loss.warning,
    exit: await rec.exited,
    summary,
  };
  process.stderr.write(
    `  ${label}: ${r.ok}/${r.sent} exact, ${r.missing} missing, ${bad} body mismatches (req ${reqBad}, resp ${respBad}), ${fmt(r.mb, 0)} MB in ${fmt(sendS, 1)} s (${fmt(r.achievedRate, 0)}/s), drain ${fmt(drainS, 1)} s, lost ${loss.lostBytes ?? '?'} B ${loss.warning ?? ''}\n    ${summary}\n`,
  );
  return r;
}

const broken = await tlsrecBroken();
if (broken) {
  console.log(`cannot measure: ${broken}`);
  process.exit(1);
}
console.log(`# completeness — ${machine()}`);
const results = [];
if (o.baseline)
  results.push(
    await runOnce({
      count: o.count,
      rate: 0,
      ringbufMb: o.ringbufMb,
      label: `baseline ${o.count}x, max/s, no recording`,
      record: false,
    }),
  );
if (!o.skipMain)
  results.push(
    await runOnce({
      count: o.count,
      rate: o.rate,
      ringbufMb: o.ringbufMb,
      label: `main ${o.count}x, ${o.rate || 'max'}/s`,
    }),
  );
for (const rate of String(o.sweep)
  .split(',')
  .filter((x) => x !== '' && x !== 'none')
  .map(Number)) {
  results.push(await runOnce({ count: o.sweepCount, rate, ringbufMb: o.ringbufMb, label: `sweep ${rate || 'max'}/s` }));
}
if (o.smallRingbufMb > 0)
  results.push(
    await runOnce({
      count: o.sweepCount,
      rate: 0,
      ringbufMb: o.smallRingbufMb,
      label: `ringbuf ${o.smallRingbufMb} MiB, max rate`,
    }),
  );

console.log(
  `\nexchanges: half TLS / half plain over ${o.conns} connections; response bodies ${o.bodies === 'small' ? '100 B-2 KB' : '100 B-2 MB'}, POST bodies on every 4th${o.maxBacklog ? `; --max-backlog ${o.maxBacklog}` : ''}\n`,
);
table([
  [
    'run',
    'target/s',
    'achieved/s',
    'MB',
    'sent',
    'recorded',
    'exact',
    'recorded/sent',
    'missing',
    'body mismatch',
    'lost (summary)',
    'drain s',
    'tlsrec VmHWM MB',
    'writer VmHWM MB',
    'together peak MB',
  ],
  ...results.map((r) =>
    r.record === false
      ? [r.label, 'max', fmt(r.achievedRate, 0), fmt(r.mb, 0), r.sent, '-', '-', '-', '-', '-', '-', '-', '-', '-', '-']
      : [
          r.label,
          r.rate || 'max',
          fmt(r.achievedRate, 0),
          fmt(r.mb, 0),
          r.sent,
          r.recorded,
          r.ok,
          fmt(r.ok / r.sent, 4),
          r.missing,
          r.reqBad + r.respBad,
          r.lostBytes === undefined ? (r.lostWarning ? 'LOST' : '?') : fmt(r.lostBytes / 1048576, 1) + ' MiB',
          fmt(r.drainS, 1),
          fmt(r.tlsrecHwmMb, 0),
          fmt(r.writerHwmMb, 0),
          fmt(r.togetherPeakMb, 0),
        ],
  ),
]);
const base0 = results.find((r) => r.record === false);
if (base0) console.log(`\nwithout recording the app and client sustained ${fmt(base0.achievedRate, 0)}/s`);
const full = results.filter(
  (r) => r.record !== false && r.ringbufMb === o.ringbufMb && r.ok === r.sent && !r.lostBytes,
);
const lossy = results.filter(
  (r) => r.record !== false && r.ringbufMb === o.ringbufMb && (r.ok !== r.sent || r.lostBytes),
);
console.log(
  `\nhighest achieved rate with 100% exact (ring buffer ${o.ringbufMb} MiB): ${full.length ? fmt(Math.max(...full.map((r) => r.achievedRate)), 0) + '/s' : 'none'}`,
);
console.log(
  `lowest achieved rate with loss or mismatch: ${lossy.length ? fmt(Math.min(...lossy.map((r) => r.achievedRate)), 0) + '/s' : "none seen (loss did not begin up to the client's max rate)"}`,
);
const f = saveJson('completeness', { machine: machine(), options: o, results });
console.log(`raw results: ${f}`);
rmSync(base, { recursive: true, force: true });
