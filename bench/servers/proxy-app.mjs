// Benchmark app: plain-HTTP server that, for each request, calls an HTTPS upstream (keep-alive) and
// answers with the upstream's body. Optional busy work per request.
//   node proxy-app.mjs --port P --upstream https://127.0.0.1:Q/ [--work-us 200] [--count-file F]
// On SIGTERM/SIGINT it writes to --count-file (if given) the requests it answered and its CPU time
// (µs) from the first request on, as https-server.mjs does.
import http from 'node:http';
import https from 'node:https';
import { writeFileSync } from 'node:fs';

const opt = {};
for (let i = 2; i < process.argv.length; i += 2) opt[process.argv[i].slice(2)] = process.argv[i + 1];
const port = Number(opt.port);
const upstream = new URL(opt.upstream);
const workNs = BigInt(Math.round(Number(opt['work-us'] ?? 0) * 1000));
const agent = new https.Agent({ keepAlive: true, maxSockets: 64, rejectUnauthorized: false });
let count = 0;
/** The process's CPU time when the first request arrived: start-up is not counted. */
let cpuAtFirst;

http
  .createServer((req, res) => {
    if (workNs > 0n) {
      const end = process.hrtime.bigint() + workNs;
      while (process.hrtime.bigint() < end);
    }
    cpuAtFirst ??= process.cpuUsage();
    req.resume();
    const up = https.get(upstream, { agent }, (ur) => {
      const chunks = [];
      ur.on('data', (c) => chunks.push(c));
      ur.on('end', () => {
        count++;
        const b = Buffer.concat(chunks);
        res.writeHead(ur.statusCode, { 'content-type': 'application/json', 'content-length': b.length });
        res.end(b);
      });
    });
    up.on('error', (e) => { res.writeHead(502); res.end(String(e)); });
  })
  .listen(port, '127.0.0.1').keepAliveTimeout = 60000;

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    if (opt['count-file']) {
      const cpu = cpuAtFirst ? process.cpuUsage(cpuAtFirst) : { user: 0, system: 0 };
      writeFileSync(opt['count-file'], `${count} ${cpu.user + cpu.system}`);
    }
    process.exit(0);
  });
}
