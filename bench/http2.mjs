#!/usr/bin/env node
// HTTP/2 recording under load: COUNT requests over CONNS HTTP/2-over-TLS connections with up to
// STREAMS concurrent streams each, sent by a node http2 client OUTSIDE the recording to a server
// that runs as `tlsrec record -- node servers/h2-server.mjs` (the app's side: tests). Response bodies
// 200 B .. 16 KB. ROUNDS alternating pairs of runs in one process: the server alone, then under
// `tlsrec record`. Prints the median requests/s of each and their ratio, and completeness: tests
// written / requests answered, each test's body checked by SHA-256.
//
//   node bench/http2.mjs [--count 6000] [--conns 4] [--streams 64] [--rounds 3]
import http2 from 'node:http2';
import { join } from 'node:path';
import { readFileSync, mkdirSync } from 'node:fs';
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
  median,
} from './lib.mjs';
import { body, sha } from './servers/blob.mjs';

const o = args({ count: 6000, conns: 4, streams: 64, rounds: 3 });
const base = tmp();
const { cert, key } = makeCert(base);
const sizeOf = (i) => 200 + (((i * 2654435761) >>> 0) % (16 * 1024 - 200));

async function load(p) {
  const sessions = Array.from({ length: o.conns }, () =>
    http2.connect(`https://127.0.0.1:${p}`, { rejectUnauthorized: false }),
  );
  let next = 0;
  let ok = 0;
  const one = (s) =>
    new Promise((resolve) => {
      const i = next++;
      const req = s.request({ ':path': `/blob?i=${i}&size=${sizeOf(i)}` });
      let n = 0;
      req.on('data', (d) => (n += d.length));
      req.on('end', () => {
        if (n === sizeOf(i)) ok++;
        resolve();
      });
      req.on('error', () => resolve());
      req.end();
    });
  const worker = async (s) => {
    while (next < o.count) await one(s);
  };
  const t0 = performance.now();
  await Promise.all(sessions.flatMap((s) => Array.from({ length: o.streams }, () => worker(s))));
  const secs = (performance.now() - t0) / 1000;
  for (const s of sessions) s.close();
  return { ok, secs, rate: ok / secs };
}

async function once(record) {
  const dir = join(base, `run-${record ? 'rec' : 'plain'}-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  const p = port();
  const server = [join(BENCH, 'servers', 'h2-server.mjs'), '--port', String(p), '--cert', cert, '--key', key];
  const child = record
    ? run(
        NODE,
        [TLSREC, 'record', '--dir', join(dir, 'tlsrec'), '--config', join(dir, 'tlsrec.yaml'), '--', NODE, ...server],
        { cwd: dir },
      )
    : run(NODE, server, { cwd: dir });
  await waitPort(p, { child, timeoutMs: 60000 });
  const r = await load(p);
  await stop(child, 'SIGINT', 120000);
  if (!record) return { ...r };
  const { tests } = listRecorded(join(dir, 'tlsrec'));
  let good = 0;
  const seen = new Set();
  for (const f of tests) {
    const doc = parseYaml(readFileSync(f, 'utf8'));
    const i = Number(new URL(doc.spec.req.url).searchParams.get('i'));
    const b = Buffer.from(doc.spec.resp.body ?? '', doc.spec.resp.body_encoding === 'base64' ? 'base64' : 'utf8');
    if (doc.spec.req.proto_major === 2 && !seen.has(i) && sha(b) === sha(body(i, sizeOf(i)))) good++;
    seen.add(i);
  }
  return { ...r, tests: tests.length, good, loss: lossFrom(child.out + child.err) };
}

const broken = await tlsrecBroken();
if (broken) throw new Error(broken);
console.log(
  `# HTTP/2 recording: ${o.count} requests, ${o.conns} TLS connections x ${o.streams} concurrent streams, ${o.rounds} rounds (${machine()})`,
);
// Alternating rounds (no capture, then under tlsrec record): the machine's drift hits both alike.
const plain = [];
const recs = [];
for (let r = 0; r < o.rounds; r++) {
  plain.push(await once(false));
  recs.push(await once(true));
}
const rate = (xs) => median(xs.map((x) => x.rate));
const baseline = rate(plain);
table([
  ['run', 'answered (all rounds)', 'median req/s', 'ratio to no capture'],
  ['no capture', `${plain.reduce((n, x) => n + x.ok, 0)}/${o.count * o.rounds}`, fmt(baseline, 0), '1.00'],
  [
    'tlsrec record',
    `${recs.reduce((n, x) => n + x.ok, 0)}/${o.count * o.rounds}`,
    fmt(rate(recs), 0),
    fmt(rate(recs) / baseline),
  ],
]);
const answered = recs.reduce((n, x) => n + x.ok, 0);
const written = recs.reduce((n, x) => n + x.tests, 0);
const good = recs.reduce((n, x) => n + x.good, 0);
console.log(
  `completeness: ${written} tests written for ${answered} answered requests (${fmt((100 * written) / answered, 1)}%), ${good} with the exact body; loss per round: ${recs.map((x) => JSON.stringify(x.loss)).join(' ')}`,
);
console.log(
  `per round req/s: no capture ${plain.map((x) => fmt(x.rate, 0)).join(', ')}; record ${recs.map((x) => fmt(x.rate, 0)).join(', ')}`,
);
saveJson('http2', { machine: machine(), opts: o, plain, record: recs, ratio: rate(recs) / baseline });
