// Runs the tlsrec CLI in-process with the V8 CPU profiler started AFTER a delay (default 3 s), so
// the BPF programs are loaded first: `node --cpu-prof` sends SIGPROF from the start, and a pending
// signal makes the kernel verifier give up with EAGAIN (errno 11). Writes OUT.cpuprofile on exit
// and prints the top self-time functions.
//   PROFILE_OUT=/tmp/rec.cpuprofile node bench/tools/profile.mjs record -q -- node server.mjs
import inspector from 'node:inspector';
import { writeFileSync } from 'node:fs';

const out = process.env.PROFILE_OUT ?? '/tmp/tlsrec.cpuprofile';
const s = new inspector.Session();
s.connect();
setTimeout(
  () => s.post('Profiler.enable', () => s.post('Profiler.start')),
  Number(process.env.PROFILE_DELAY_MS ?? 3000),
).unref();
process.on('exit', () => {
  s.post('Profiler.stop', (err, { profile } = {}) => {
    if (err || !profile) return;
    writeFileSync(out, JSON.stringify(profile));
    const self = new Map();
    const dt = profile.timeDeltas;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const total = dt.reduce((a, b) => a + b, 0);
    profile.samples.forEach((id, i) => {
      const n = byId.get(id);
      const k = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${n.callFrame.lineNumber + 1}`;
      self.set(k, (self.get(k) ?? 0) + (dt[i] ?? 0));
    });
    const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, 25);
    process.stderr.write(`profile: ${out}, ${(total / 1e6).toFixed(1)} s sampled; top self time:\n`);
    for (const [k, v] of top) process.stderr.write(`  ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}\n`);
  });
});
const { main } = await import('../../dist/cli.js');
await main(['node', 'tlsrec', ...process.argv.slice(2)]);
