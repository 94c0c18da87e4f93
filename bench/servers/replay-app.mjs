// Fast app for the replay benchmark: GET /item?id=N answers {"id":N,"name":"item-N"}.
// Logs to LOGFILE (JSON): process start, listening, first/last request times (epoch ms), request
// count, time spent inside the handler, and its own CPU time (written on SIGTERM/SIGINT).
//   node replay-app.mjs PORT LOGFILE
import http from 'node:http';
import { writeFileSync } from 'node:fs';

const [port, logFile] = process.argv.slice(2);
const log = { start: Date.now() - process.uptime() * 1000, listening: 0, first: 0, last: 0, count: 0, handlerMs: 0 };
http
  .createServer((req, res) => {
    const t = performance.now();
    const now = Date.now();
    if (!log.first) log.first = now;
    const id = Number(new URL(req.url, 'http://x').searchParams.get('id'));
    req.resume();
    const b = JSON.stringify({ id, name: `item-${id}` });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) });
    res.end(b);
    log.count++;
    log.last = Date.now();
    log.handlerMs += performance.now() - t;
  })
  .listen(Number(port), '127.0.0.1', () => {
    log.listening = Date.now();
    writeFileSync(logFile, JSON.stringify(log));
  });
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    const cpu = process.cpuUsage();
    writeFileSync(logFile, JSON.stringify({ ...log, cpuMs: (cpu.user + cpu.system) / 1000 }));
    process.exit(0);
  });
}
