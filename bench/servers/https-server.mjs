// Benchmark server: keep-alive HTTP(S), ~1 KB JSON per response, optional busy work per request.
//   node https-server.mjs --port P [--work-us 200] [--cert C --key K] [--count-file F]
// With --cert/--key it serves HTTPS, else plain HTTP. On SIGTERM/SIGINT it writes to --count-file
// (if given) the number of requests it answered and the CPU time (µs, user + system, all threads —
// uprobe and BPF time included) it used from the first request on, and exits.
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { busyWork, options, requestCounter } from './common.mjs';

const opt = options();
const port = Number(opt.port);
const workNs = BigInt(Math.round(Number(opt['work-us'] ?? 0) * 1000));

const items = [];
for (let i = 0; items.length < 12; i++)
  items.push({ id: i, name: `item-${i}`, price: 10 + i * 1.25, tags: ['a', 'b'], ok: i % 2 === 0 });
const body = JSON.stringify({ status: 'ok', items });
const counter = requestCounter(opt['count-file']);

function handler(req, res) {
  busyWork(workNs);
  counter.arrived();
  counter.answered();
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const server = opt.cert
  ? https.createServer({ cert: readFileSync(opt.cert), key: readFileSync(opt.key) }, handler)
  : http.createServer(handler);
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1');
