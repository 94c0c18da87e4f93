// A/B of `tlsrec record` from two built trees — BASE (another checkout, e.g. an older commit with
// `npm ci` run in it) against this one — interleaved in random order each round with no capture (a),
// recording a Node HTTPS server with a bare handler under wrk -t1 -c32. Prints req/s and the
// recorder's own CPU a request as ratios within each round, so the machine's drift cancels out.
//
//   node bench/ab-record.mjs BASE_DIR [ROUNDS=5] [SECONDS=4]
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const { BENCH, NODE, run, stop, waitPort, wrk, median, shuffle, tmp, port, makeCert, listRecorded, sleep } =
  await import('./lib.mjs');
if (!process.argv[2] || !existsSync(join(process.argv[2], 'bin', 'tlsrec.js'))) {
  console.error('usage: node bench/ab-record.mjs BASE_DIR [ROUNDS] [SECONDS]  (BASE_DIR: a built tlsrec checkout)');
  process.exit(2);
}
const TREES = { base: resolve(process.argv[2]), new: resolve(dirname(fileURLToPath(import.meta.url)), '..') };
const rounds = Number(process.argv[3] ?? 5);
const duration = Number(process.argv[4] ?? 4);
const base = tmp();
const { cert, key } = makeCert(base);
const SERVER = join(BENCH, 'servers', 'https-server.mjs');
function cpuTicks(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return NaN;
  }
}
async function once(cfg) {
  const p = port();
  const countFile = join(base, `count-${p}`);
  const recDir = join(base, `rec-${p}`);
  const appArgs = [
    SERVER,
    '--port',
    String(p),
    '--work-us',
    '0',
    '--cert',
    cert,
    '--key',
    key,
    '--count-file',
    countFile,
  ];
  let child;
  if (cfg === 'a') child = run(NODE, appArgs);
  else {
    mkdirSync(recDir, { recursive: true });
    child = run(
      NODE,
      [
        join(TREES[cfg], 'bin', 'tlsrec.js'),
        'record',
        '-q',
        '--dir',
        join(recDir, 'tlsrec'),
        '--config',
        join(recDir, 'tlsrec.yaml'),
        '--',
        NODE,
        ...appArgs,
      ],
      { cwd: recDir },
    );
  }
  await waitPort(p, { child, timeoutMs: 60000 });
  await wrk(`https://127.0.0.1:${p}/`, { c: 32, d: 1 });
  const t0 = cpuTicks(child.pid);
  const w = await wrk(`https://127.0.0.1:${p}/`, { c: 32, d: duration });
  const recTicks = cpuTicks(child.pid) - t0; // the recorder's own CPU (tlsrec process; not the writer child)
  await stop(child, cfg === 'a' ? 'SIGTERM' : 'SIGINT', 120000);
  const tests = cfg === 'a' ? 0 : listRecorded(join(recDir, 'tlsrec')).tests.length;
  const served = existsSync(countFile) ? Number(readFileSync(countFile, 'utf8').split(' ')[0]) : NaN;
  rmSync(recDir, { recursive: true, force: true });
  return {
    rps: w.rps,
    p99: w.p99,
    recUsPerReq: cfg === 'a' ? NaN : (recTicks * 10000) / (w.rps * duration),
    tests,
    served,
  };
}
const rows = { a: [], base: [], new: [] };
for (let r = 0; r < rounds; r++)
  for (const cfg of shuffle(['a', 'base', 'new'])) {
    const x = await once(cfg);
    rows[cfg].push(x);
    console.error(
      `round ${r + 1} ${cfg}: ${x.rps.toFixed(0)} req/s p99 ${x.p99} ms recorder ${x.recUsPerReq.toFixed(1)} µs/req tests ${x.tests}/${x.served}`,
    );
    await sleep(200);
  }
for (const c of ['a', 'base', 'new'])
  console.log(
    `${c}: median req/s ${median(rows[c].map((x) => x.rps)).toFixed(0)}, p99 ${median(rows[c].map((x) => x.p99))} ms, recorder CPU ${median(rows[c].map((x) => x.recUsPerReq)).toFixed(1)} µs/req`,
  );
const within = (k, c) => median(rows[c].map((x, i) => x[k] / rows.a[i][k]));
console.log(
  `b/a req/s within rounds: base ${within('rps', 'base').toFixed(3)}, new ${within('rps', 'new').toFixed(3)}`,
);
console.log(
  `new/base within rounds: req/s ${median(rows.new.map((x, i) => x.rps / rows.base[i].rps)).toFixed(3)}, recorder µs/req ${median(rows.new.map((x, i) => x.recUsPerReq / rows.base[i].recUsPerReq)).toFixed(3)}`,
);
rmSync(base, { recursive: true, force: true });
