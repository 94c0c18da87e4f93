// HTTP/2 over TLS (ALPN h2) server for bench/http2.mjs: GET /blob?i=N&size=S answers S deterministic
// bytes (the same as servers/blob.mjs's body(i, S)) with the request's index in x-i.
//   node h2-server.mjs --port P --cert C --key K
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { body } from './blob.mjs';

const a = process.argv.slice(2);
const opt = (k) => a[a.indexOf(k) + 1];
const server = http2.createSecureServer({
  cert: readFileSync(opt('--cert')),
  key: readFileSync(opt('--key')),
  settings: { maxConcurrentStreams: 1000 },
});
server.on('stream', (stream, headers) => {
  const url = new URL(String(headers[':path']), 'https://x');
  const i = Number(url.searchParams.get('i'));
  const size = Number(url.searchParams.get('size'));
  stream.on('error', () => {});
  stream.respond({ ':status': 200, 'content-type': 'application/octet-stream', 'x-i': String(i) });
  stream.end(body(i, size));
});
server.listen(Number(opt('--port')), '127.0.0.1');
