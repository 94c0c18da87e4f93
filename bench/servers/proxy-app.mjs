// Benchmark app: plain-HTTP server that, for each request, calls an HTTPS upstream (keep-alive) and
// answers with the upstream's body. Optional busy work per request.
//   node proxy-app.mjs --port P --upstream https://127.0.0.1:Q/ [--work-us 200] [--count-file F]
// On SIGTERM/SIGINT it writes to --count-file (if given) the requests it answered and its CPU time
// (µs) from the first request on, as https-server.mjs does.
import http from 'node:http';
import https from 'node:https';
import { busyWork, options, requestCounter } from './common.mjs';

const opt = options();
const port = Number(opt.port);
const upstream = new URL(opt.upstream);
const workNs = BigInt(Math.round(Number(opt['work-us'] ?? 0) * 1000));
const agent = new https.Agent({ keepAlive: true, maxSockets: 64, rejectUnauthorized: false });
const counter = requestCounter(opt['count-file']);

http
  .createServer((req, res) => {
    busyWork(workNs);
    counter.arrived();
    req.resume();
    const up = https.get(upstream, { agent }, (ur) => {
      const chunks = [];
      ur.on('data', (c) => chunks.push(c));
      ur.on('end', () => {
        counter.answered();
        const b = Buffer.concat(chunks);
        res.writeHead(ur.statusCode, { 'content-type': 'application/json', 'content-length': b.length });
        res.end(b);
      });
    });
    up.on('error', (e) => {
      res.writeHead(502);
      res.end(String(e));
    });
  })
  .listen(port, '127.0.0.1').keepAliveTimeout = 60000;
