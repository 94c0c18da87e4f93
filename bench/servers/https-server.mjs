// Benchmark server: keep-alive HTTP(S), ~1 KB JSON per response, optional busy work per request.
//   node https-server.mjs --port P [--work-us 200] [--cert C --key K] [--count-file F]
// With --cert/--key it serves HTTPS, else plain HTTP. On SIGTERM/SIGINT it writes the number of
// requests it answered to --count-file (if given) and exits.
import http from 'node:http';
import https from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';

const opt = {};
for (let i = 2; i < process.argv.length; i += 2) opt[process.argv[i].slice(2)] = process.argv[i + 1];
const port = Number(opt.port);
const workNs = BigInt(Math.round(Number(opt['work-us'] ?? 0) * 1000));

const items = [];
for (let i = 0; items.length < 12; i++) items.push({ id: i, name: `item-${i}`, price: 10 + i * 1.25, tags: ['a', 'b'], ok: i % 2 === 0 });
const body = JSON.stringify({ status: 'ok', items });
let count = 0;

function handler(req, res) {
  if (workNs > 0n) {
    const end = process.hrtime.bigint() + workNs;
    while (process.hrtime.bigint() < end);
  }
  count++;
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const server = opt.cert
  ? https.createServer({ cert: readFileSync(opt.cert), key: readFileSync(opt.key) }, handler)
  : http.createServer(handler);
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1');
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    if (opt['count-file']) writeFileSync(opt['count-file'], String(count));
    process.exit(0);
  });
}
