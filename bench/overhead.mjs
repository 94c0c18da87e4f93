#!/usr/bin/env node
// Recording overhead: wrk against (1) a Node HTTPS server and (2) a plain-HTTP Node app that calls
// an HTTPS upstream, each with a bare handler and a 200 µs busy-work handler, under the configs
// asked for, measured in the same run, interleaved in random order per round:
//   a  no capture
//   b  tlsrec record -q -- node server.mjs          (the server is the recorded command)
//   c  mitmproxy (mitmdump, reverse-proxy mode) on the TLS hop   (the proxy approach)
//   d  bpftrace uprobe+uretprobe on node's SSL_read/SSL_write doing nothing but count
//   e  the same count-only probes on node and the system libssl: what tlsrec attaches up front
//      with TLSREC_ATTACH_ON_MAP=0. wrk uses the system libssl, so these probes tax the load
//      generator too (its SSL_read begins with `sub rsp`, which the kernel single-steps: two
//      exceptions a hit); tlsrec by default probes only files its command maps
//   f  count-only programs on the functions tlsrec probes in node, attached as tlsrec attaches its
//      own (uprobe_multi links on Linux 6.6+; bench/floor/count-probes.mjs): tlsrec's own floor.
//      bpftrace (d, e) makes perf-event uprobes, a costlier path per hit
//   g  f plus a count-only program on the raw sys_exit tracepoint, which tlsrec's plain-socket
//      capture uses: it runs on every system call of every process
// Prints medians and x/a for throughput and p50/p99, the app's own CPU time per request (uprobe
// and BPF time run in the app, so they show there), wrk's CPU time per request, the same ratios
// taken within each round (median of the per-round ratios), plus completeness of b (tests/mocks
// written vs requests the server answered). Method and current figures: bench/README.md.
//
//   node bench/overhead.mjs [--rounds 3] [--duration 5] [--conns 32] [--configs a,b,c,d,e,f,g]
//                           [--scenarios https,proxy] [--work 0,200]
import { join } from 'node:path';
import { existsSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import {
  BENCH,
  NODE,
  TLSREC,
  run,
  stop,
  waitPort,
  waitOutput,
  wrk,
  median,
  shuffle,
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
  sleep,
  lossFrom,
} from './lib.mjs';
import { systemLibssl } from '../dist/native/proc.js';

const o = args({
  rounds: 3,
  duration: 5,
  warmup: 1,
  conns: 32,
  configs: 'a,b,c,d',
  scenarios: 'https,proxy',
  work: '0,200',
});
const base = tmp();
const { cert, key } = makeCert(base);
const SERVER = join(BENCH, 'servers', 'https-server.mjs');
const FLOOR = join(BENCH, 'floor', 'count-probes.mjs');
const APP = join(BENCH, 'servers', 'proxy-app.mjs');
const nodeBin = process.execPath;

const broken = await tlsrecBroken();
let configs = o.configs.split(',');
if (broken && configs.includes('b')) {
  console.log(`NOTE: config b (tlsrec record) skipped: ${broken}`);
  configs = configs.filter((c) => c !== 'b');
}

/** bpftrace program: count-only uprobe + uretprobe on SSL_read and SSL_write in each file. */
const countOnly = (files) =>
  files
    .flatMap((file) =>
      ['SSL_read', 'SSL_write'].map(
        (f) => `uprobe:${file}:${f} { @calls = count(); } uretprobe:${file}:${f} { @rets = count(); }`,
      ),
    )
    .join(' ');
const BPF = countOnly([nodeBin]);
const BPF_ALL = countOnly([nodeBin, ...systemLibssl()]);

/** Start the system under test in one config. Returns { url, stop(): info }. */
async function startConfig(scenario, cfg, workUs, upstreamPort) {
  const p = port();
  const countFile = join(base, `count-${p}`);
  const procs = [];
  let rec;
  let bt;
  let appArgs;
  let url;
  let appPort = p;
  if (scenario === 'https') {
    url = `https://127.0.0.1:${p}/`;
    const sp = cfg === 'c' ? port() : p;
    appPort = sp;
    appArgs = [
      SERVER,
      '--port',
      String(sp),
      '--work-us',
      String(workUs),
      '--cert',
      cert,
      '--key',
      key,
      '--count-file',
      countFile,
    ];
    if (cfg === 'c') {
      const m = run('mitmdump', [
        '-q',
        '--mode',
        `reverse:https://127.0.0.1:${sp}/`,
        '--listen-host',
        '127.0.0.1',
        '--listen-port',
        String(p),
        '--ssl-insecure',
        '--set',
        'connection_strategy=lazy',
      ]);
      procs.push(m);
    }
  } else {
    url = `http://127.0.0.1:${p}/`;
    let up = `https://127.0.0.1:${upstreamPort}/`;
    if (cfg === 'c') {
      const mp = port();
      const m = run('mitmdump', [
        '-q',
        '--mode',
        `reverse:https://127.0.0.1:${upstreamPort}/`,
        '--listen-host',
        '127.0.0.1',
        '--listen-port',
        String(mp),
        '--ssl-insecure',
      ]);
      procs.push(m);
      await waitPort(mp, { child: m });
      up = `https://127.0.0.1:${mp}/`;
    }
    appArgs = [APP, '--port', String(p), '--upstream', up, '--work-us', String(workUs), '--count-file', countFile];
  }
  if (cfg === 'd' || cfg === 'e') {
    bt = run('bpftrace', ['-e', cfg === 'd' ? BPF : BPF_ALL]);
    await waitOutput(bt, /Attaching \d+ probes/);
    await sleep(300);
  } else if (cfg === 'f' || cfg === 'g') {
    bt = run(NODE, [FLOOR, ...(cfg === 'g' ? ['--syscalls'] : []), nodeBin]);
    await waitOutput(bt, /attached \d+ probes/);
  }
  let app;
  const recDir = join(base, `rec-${p}`);
  if (cfg === 'b') {
    mkdirSync(recDir, { recursive: true });
    rec = run(
      NODE,
      [
        TLSREC,
        'record',
        '-q',
        '--dir',
        join(recDir, 'tlsrec'),
        '--config',
        join(recDir, 'tlsrec.yaml'),
        '--',
        nodeBin,
        ...appArgs,
      ],
      { cwd: recDir },
    );
    app = rec;
  } else {
    app = run(nodeBin, appArgs);
  }
  procs.push(app);
  const t0 = Date.now();
  await waitPort(appPort, { child: app, timeoutMs: 60000 });
  for (const pr of procs) if (pr !== app) await waitPort(p, { child: pr, timeoutMs: 60000 });
  const readyMs = Date.now() - t0;
  return {
    url,
    readyMs,
    async stop() {
      const info = { readyMs };
      if (rec) {
        const s0 = Date.now();
        const r = await stop(rec, 'SIGINT', 120000);
        info.stopMs = Date.now() - s0;
        info.exit = r;
        const { tests, mocks } = listRecorded(join(recDir, 'tlsrec'));
        info.tests = tests.length;
        info.mocks = mocks.reduce((n, f) => n + countMocks(f), 0);
        info.loss = lossFrom(rec.err);
        info.stderr = rec.err.slice(-600);
      } else {
        await stop(app);
      }
      for (const pr of procs) if (pr !== app) await stop(pr);
      if (bt) {
        await stop(bt, 'SIGINT');
        info.uprobeCalls = Number((/@calls: (\d+)/.exec(bt.out) ?? /entries (\d+)/.exec(bt.out))?.[1] ?? NaN);
      }
      // "<requests answered> <app CPU µs from the first request on>" (bench/servers/*.mjs)
      const [served, appCpuUs] = existsSync(countFile)
        ? readFileSync(countFile, 'utf8').split(' ').map(Number)
        : [NaN, NaN];
      info.served = served;
      info.appCpuUsPerReq = appCpuUs / served;
      rmSync(recDir, { recursive: true, force: true });
      return info;
    },
  };
}

const results = [];
console.log(`# overhead — ${machine()}`);
console.log(
  `# wrk -t1 -c${o.conns} -d${o.duration}s --latency (after a ${o.warmup}s warm-up), ${o.rounds} rounds, configs in random order per round\n`,
);

for (const scenario of o.scenarios.split(',')) {
  let upstream;
  let upstreamPort;
  if (scenario === 'proxy') {
    upstreamPort = port();
    upstream = run(nodeBin, [SERVER, '--port', String(upstreamPort), '--cert', cert, '--key', key]);
    await waitPort(upstreamPort, { child: upstream });
  }
  for (const workUs of o.work.split(',').map(Number)) {
    const rows = Object.fromEntries(configs.map((c) => [c, []]));
    for (let r = 0; r < o.rounds; r++) {
      for (const cfg of shuffle(configs)) {
        let sut;
        try {
          sut = await startConfig(scenario, cfg, workUs, upstreamPort);
          const wu = o.warmup > 0 ? await wrk(sut.url, { c: o.conns, d: o.warmup }) : { reqs: 0 };
          const w = await wrk(sut.url, { c: o.conns, d: o.duration });
          const info = await sut.stop();
          info.wrkReqs = (wu.reqs || 0) + w.reqs;
          rows[cfg].push({ ...w, raw: undefined, ...info });
          process.stderr.write(
            `  ${scenario} work=${workUs}us round ${r + 1} ${cfg}: ${fmt(w.rps, 0)} req/s p50 ${fmt(w.p50)} ms p99 ${fmt(w.p99)} ms` +
              (cfg === 'b'
                ? ` tests ${info.tests} (wrk completed ${info.wrkReqs}, server answered ${info.served})${scenario === 'proxy' ? `, mocks ${info.mocks}` : ''}, stop ${info.stopMs} ms${info.loss.warning ? ' ' + info.loss.warning : ''}`
                : '') +
              ` wrk ${fmt(w.cpuUsPerReq, 1)} µs/req` +
              ('defg'.includes(cfg) ? ` uprobe calls ${info.uprobeCalls}` : '') +
              (w.sockErr ? ` sockerr ${w.sockErr}` : '') +
              (w.non2xx ? ` non2xx ${w.non2xx}` : '') +
              '\n',
          );
        } catch (e) {
          process.stderr.write(
            `  ${scenario} work=${workUs}us round ${r + 1} ${cfg}: FAILED ${e.message.slice(0, 800)}\n`,
          );
          if (sut) await sut.stop().catch(() => {});
          rows[cfg].push({ rps: NaN, p50: NaN, p99: NaN, error: e.message.slice(0, 800) });
        }
      }
    }
    const med = Object.fromEntries(
      configs.map((c) => [
        c,
        {
          rps: median(rows[c].map((x) => x.rps)),
          p50: median(rows[c].map((x) => x.p50)),
          p99: median(rows[c].map((x) => x.p99)),
          appCpuUsPerReq: median(rows[c].map((x) => x.appCpuUsPerReq)),
          wrkCpuUsPerReq: median(rows[c].map((x) => x.cpuUsPerReq)),
        },
      ]),
    );
    const a = med.a;
    const name = {
      a: 'a no capture',
      b: 'b tlsrec record',
      c: 'c mitmproxy',
      d: 'd count-only uprobes',
      e: 'e count-only, node+libssl',
      f: 'f count-only, as tlsrec',
      g: 'g f + syscall tracepoints',
    };
    console.log(
      `\n## ${scenario === 'https' ? 'Node HTTPS server' : 'plain-HTTP app -> HTTPS upstream'}, handler ${workUs ? workUs + ' µs busy work' : 'bare'}`,
    );
    table([
      [
        'config',
        'req/s',
        'p50 ms',
        'p99 ms',
        'x/a req/s',
        'x/a p50',
        'x/a p99',
        'app CPU µs/req',
        'wrk CPU µs/req',
        'runs',
      ],
      ...configs.map((c) => [
        name[c],
        fmt(med[c].rps, 0),
        fmt(med[c].p50),
        fmt(med[c].p99),
        fmt(med[c].rps / a?.rps, 3),
        fmt(med[c].p50 / a?.p50),
        fmt(med[c].p99 / a?.p99),
        fmt(med[c].appCpuUsPerReq, 1),
        fmt(med[c].wrkCpuUsPerReq, 1),
        rows[c].filter((x) => Number.isFinite(x.rps)).length,
      ]),
    ]);
    // The same ratios taken within each round (a and x ran minutes apart at most), then the median:
    // slow drift of this shared machine cancels out, which the ratio of medians above does not.
    const paired = {};
    if (rows.a) {
      for (const c of configs.filter((x) => x !== 'a')) {
        const within = (k) => rows[c].map((x, r) => x[k] / rows.a[r]?.[k]).filter(Number.isFinite);
        const rps = within('rps');
        const p99 = within('p99');
        paired[c] = { rps: median(rps), p99: median(p99), rounds: rps.length };
        if (rps.length) {
          console.log(
            `${c}/a within each round: req/s ${fmt(median(rps), 3)} (${fmt(Math.min(...rps), 3)}–${fmt(Math.max(...rps), 3)}), ` +
              `p99 ${fmt(median(p99))}× (${fmt(Math.min(...p99))}–${fmt(Math.max(...p99))}), ${rps.length} rounds`,
          );
        }
      }
    }
    if (rows.b?.length) {
      const done = rows.b.filter((x) => Number.isFinite(x.served));
      console.log(
        `b completeness per run (tests written / responses wrk completed / requests the server answered${scenario === 'proxy' ? '; mocks written' : ''}): ` +
          done
            .map((x) => `${x.tests}/${x.wrkReqs}/${x.served}${scenario === 'proxy' ? ` (mocks ${x.mocks})` : ''}`)
            .join(', ') +
          `; tlsrec stop+drain ms: ${done.map((x) => x.stopMs).join(', ')}`,
      );
      const lw = done.map((x) => x.loss?.warning).filter(Boolean);
      if (lw.length) console.log(`b loss warnings: ${lw.join(' | ')}`);
    }
    results.push({ scenario, workUs, medians: med, paired, runs: rows });
  }
  if (upstream) await stop(upstream);
}
const f = saveJson('overhead', { machine: machine(), options: o, results });
console.log(`\nraw results: ${f}`);
rmSync(base, { recursive: true, force: true });
