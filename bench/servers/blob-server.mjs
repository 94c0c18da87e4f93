// Completeness/memory server: answers /blob?id=N&size=S with S bytes of deterministic text
// (see blob.mjs); reads and discards request bodies. Serves HTTPS and/or plain HTTP.
//   node blob-server.mjs [--https-port P --cert C --key K] [--http-port Q]
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { body } from './blob.mjs';

const opt = {};
for (let i = 2; i < process.argv.length; i += 2) opt[process.argv[i].slice(2)] = process.argv[i + 1];

function handler(req, res) {
  const u = new URL(req.url, 'http://x');
  const id = Number(u.searchParams.get('id') ?? 0);
  const size = Number(u.searchParams.get('size') ?? 100);
  req.resume();
  req.on('end', () => {
    const b = body(id, size);
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': b.length });
    res.end(b);
  });
}
const servers = [];
if (opt['https-port']) {
  const s = https.createServer({ cert: readFileSync(opt.cert), key: readFileSync(opt.key) }, handler);
  s.keepAliveTimeout = 60000;
  s.listen(Number(opt['https-port']), '127.0.0.1');
  servers.push(s);
}
if (opt['http-port']) {
  const s = http.createServer(handler);
  s.keepAliveTimeout = 60000;
  s.listen(Number(opt['http-port']), '127.0.0.1');
  servers.push(s);
}
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
