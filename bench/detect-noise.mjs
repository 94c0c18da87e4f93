#!/usr/bin/env node
// Cost of `tlsrec test --detect-noise` against a plain `tlsrec test`, per test, side by side in one
// run. The app is fixtures/volatile-app (UUIDs, times, tokens, etag; POST /checkout calls the HTTPS
// fixture upstream with a nonce and a time), recorded once with `tlsrec record` (real eBPF, root):
// PAIRS x GET /session and PAIRS x POST /checkout, so 2*PAIRS tests and PAIRS mocks. Then every
// round, in random order, on fresh copies of that recording, offline (upstream stopped):
//   plain-raw     tlsrec test                 on the recording as made (fails: noise, mock misses)
//   detect        tlsrec test --detect-noise  on the recording as made (detection runs + final run)
//   plain-noised  tlsrec test                 on the copy detect left behind (passes)
// and reports wall time per test (tlsrec spawn to exit) and the ratios detect / plain, as medians.
//
//   sudo node bench/detect-noise.mjs [--pairs 25] [--rounds 5]
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  NODE,
  TLSREC,
  ROOT,
  run,
  stop,
  waitOutput,
  waitPort,
  port,
  tmp,
  median,
  shuffle,
  table,
  fmt,
  machine,
  saveJson,
  args,
  tlsrecBroken,
} from './lib.mjs';

const o = args({ pairs: 25, rounds: 5 });
const ca = join(ROOT, 'fixtures', 'certs', 'ca.pem');
const app = join(ROOT, 'fixtures', 'volatile-app', 'server.mjs');

async function record() {
  const base = tmp('tlsrec-bench-noise-');
  const up = run(NODE, [join(ROOT, 'fixtures', 'upstream', 'server.mjs'), '--host', '127.0.0.2', '--port', '0']);
  await waitOutput(up, /listening https:\/\//);
  const upstreamUrl = /listening (https:\/\/\S+)/.exec(up.out)[1];
  const p = port();
  const env = { ...process.env, PORT: String(p), UPSTREAM_URL: upstreamUrl, NODE_EXTRA_CA_CERTS: ca };
  const rec = run(NODE, [TLSREC, 'record', '-q', '--', NODE, app], { cwd: base, env });
  await waitPort(p, { child: rec });
  const url = `http://127.0.0.1:${p}`;
  for (let i = 0; i < o.pairs; i++) {
    await (await fetch(`${url}/session`)).arrayBuffer();
    await (
      await fetch(`${url}/checkout`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ item: `item-${i}`, qty: i + 1 }),
      })
    ).arrayBuffer();
  }
  await stop(rec, 'SIGINT');
  await stop(up);
  return { base, env };
}

async function timed(dir, env, extra) {
  const t0 = performance.now();
  const t = run(NODE, [TLSREC, 'test', ...extra], { cwd: dir, env: { ...env, NO_COLOR: '1' } });
  const r = await t.exited;
  const ms = performance.now() - t0;
  const text = t.out + t.err;
  const summary = /^(\d+) passed, (\d+) failed/m.exec(text);
  const added = /added (\d+) noise entr/.exec(text);
  return {
    ms,
    exit: r.code,
    passed: Number(summary?.[1]),
    failed: Number(summary?.[2]),
    added: added ? Number(added[1]) : 0,
    tail: text.slice(-600),
  };
}

const broken = await tlsrecBroken();
if (broken) {
  console.log(`cannot measure: ${broken}`);
  process.exit(1);
}
if (process.getuid?.() !== 0) {
  console.log('cannot measure: recording needs root');
  process.exit(1);
}
console.log(`# detect-noise — ${machine()}`);
const { base, env } = await record();
const tests = o.pairs * 2;
const rounds = [];
try {
  for (let i = 0; i < o.rounds; i++) {
    const copy = tmp('tlsrec-bench-noise-copy-');
    cpSync(join(base, 'tlsrec'), join(copy, 'tlsrec'), { recursive: true });
    cpSync(join(base, 'tlsrec.yaml'), join(copy, 'tlsrec.yaml'));
    const raw = tmp('tlsrec-bench-noise-raw-');
    cpSync(join(base, 'tlsrec'), join(raw, 'tlsrec'), { recursive: true });
    cpSync(join(base, 'tlsrec.yaml'), join(raw, 'tlsrec.yaml'));
    const r = {};
    // plain-noised needs detect's files, so it follows detect; plain-raw goes before or after at random.
    const order = shuffle(['plain-raw', 'detect']);
    for (const what of order) {
      r[what] = what === 'detect' ? await timed(copy, env, ['--detect-noise']) : await timed(raw, env, []);
      if (what === 'detect') r['plain-noised'] = await timed(copy, env, []);
    }
    rounds.push(r);
    process.stderr.write(
      `  round ${i + 1} (${order.join(', ')}): ` +
        Object.entries(r)
          .map(([k, v]) => `${k} ${fmt(v.ms / tests, 1)} ms/test exit ${v.exit} ${v.passed}/${v.passed + v.failed}`)
          .join('; ') +
        '\n',
    );
    for (const [k, v] of Object.entries(r))
      if (k !== 'plain-raw' && v.exit !== 0)
        process.stderr.write(`    ${k} output tail: ${v.tail.replace(/\n/g, '\n    ')}\n`);
    rmSync(copy, { recursive: true, force: true });
    rmSync(raw, { recursive: true, force: true });
  }
} finally {
  rmSync(base, { recursive: true, force: true });
}
const m = (k) => median(rounds.map((r) => r[k].ms / tests));
const ratio = (a, b) => median(rounds.map((r) => r[a].ms / r[b].ms));
table([
  ['run', 'ms per test (median)', 'per round', 'passed'],
  ...['plain-raw', 'detect', 'plain-noised'].map((k) => [
    k,
    fmt(m(k), 1),
    rounds.map((r) => fmt(r[k].ms / tests, 1)).join(' '),
    rounds.map((r) => `${r[k].passed}/${tests}`).join(' '),
  ]),
]);
console.log(
  `${tests} tests (${o.pairs} GET /session + ${o.pairs} POST /checkout with a nonce), ${o.pairs} mocks; noise entries added per detect run: ${rounds.map((r) => r.detect.added).join(' ')}`,
);
console.log(`ratio detect / plain-noised (median of per-round ratios): ${fmt(ratio('detect', 'plain-noised'), 2)}`);
console.log(`ratio detect / plain-raw    (median of per-round ratios): ${fmt(ratio('detect', 'plain-raw'), 2)}`);
console.log(`raw results: ${saveJson('detect-noise', { machine: machine(), options: o, rounds })}`);
