#!/usr/bin/env node
// `npm run demo`: record the fixture app (a plain-HTTP API calling an HTTPS upstream) with
// `tlsrec record`, show what was written, then switch the upstream off and replay with
// `tlsrec test`: every upstream answer comes from the recorded mocks.
//
// Output goes to ./demo-out (removed and re-created on each run).

import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, 'demo-out');
const tlsrec = join(root, 'bin', 'tlsrec.js');
const step = (s) => console.log(`\n\x1b[1m== ${s}\x1b[0m`);

if (process.getuid && process.getuid() !== 0) {
  console.error('The demo records with eBPF, which needs root. Run it as root:\n\n  sudo npm run demo\n');
  process.exit(3);
}
if (!existsSync(join(root, 'dist', 'cli.js'))) {
  console.error('dist/ is missing: run `npm install` (or `npm run build`) first.');
  process.exit(3);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

/** Start a process and resolve with it once a line of its stdout matches. */
function startUntil(cmd, args, env, pattern) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buf = '';
    child.stdout.on('data', (d) => {
      process.stdout.write(`   | ${d}`);
      buf += d;
      const m = pattern.exec(buf);
      if (m) resolve({ child, match: m });
    });
    child.on('exit', (code) => reject(new Error(`${cmd} ${args.join(' ')} exited with ${code} before it was ready`)));
  });
}

function run(cmd, args, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: out, env: { ...process.env, ...env }, stdio: 'inherit' });
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

async function waitForPort(url, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await fetch(url);
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${url} did not answer`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

step('1. start the HTTPS upstream (a stand-in for a third-party API) on 127.0.0.2');
const upstream = await startUntil(
  'node',
  ['fixtures/upstream/server.mjs', '--host', '127.0.0.2', '--port', '0'],
  {},
  /listening (https:\S+)/,
);
const upstreamUrl = upstream.match[1];

const appPort = 3000 + Math.floor(Math.random() * 2000);
const appEnv = {
  PORT: String(appPort),
  UPSTREAM_URL: upstreamUrl,
  NODE_EXTRA_CA_CERTS: join(root, 'fixtures/certs/ca.pem'),
};
const appCommand = ['node', join(root, 'fixtures/app/server.mjs')];

step(`2. tlsrec record -- node fixtures/app/server.mjs   (app on :${appPort})`);
const recorder = spawn('node', [tlsrec, 'record', '--', ...appCommand], {
  cwd: out,
  env: { ...process.env, ...appEnv },
  stdio: 'inherit',
});
const recorderExit = new Promise((r) => recorder.on('exit', (code) => r(code)));
await waitForPort(`http://127.0.0.1:${appPort}/health`);

step('3. use the app: four requests, which make three HTTPS calls to the upstream');
const base = `http://127.0.0.1:${appPort}`;
for (const [method, path, body] of [
  ['GET', '/quote?sym=TLSR'],
  ['POST', '/orders', JSON.stringify({ item: 'notebook', qty: 3 })],
  ['GET', '/gzip'],
  ['GET', '/text'],
]) {
  const res = await fetch(base + path, { method, body, headers: body ? { 'content-type': 'application/json' } : {} });
  console.log(`   ${method} ${path} -> ${res.status} ${(await res.text()).slice(0, 80).replace(/\n/g, ' ')}`);
}

step('4. Ctrl-C the recording (SIGINT): tlsrec stops the app and writes every exchange');
recorder.kill('SIGINT');
const recCode = await recorderExit;
if (recCode !== 0) {
  console.error(`tlsrec record exited with ${recCode}`);
  upstream.child.kill();
  process.exit(1);
}

step('5. what was written');
const walk = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
for (const f of walk(out)) console.log(`   ${relative(out, f)}`);
// test-1 is the /health probe the demo used to wait for the app; test-2 is the first real call.
for (const [file, lines] of [
  ['tlsrec/test-set-0/tests/test-2.yaml', 60],
  ['tlsrec/test-set-0/mocks.yaml', 45],
]) {
  const path = join(out, file);
  if (!existsSync(path)) continue;
  const text = readFileSync(path, 'utf8').split('\n');
  console.log(`\n   --- ${file} ${text.length > lines ? `(first ${lines} lines)` : ''}---`);
  console.log(text.slice(0, lines).join('\n').replace(/^/gm, '   '));
}

step('6. switch the upstream off, then replay: tlsrec test');
upstream.child.kill('SIGTERM');
await new Promise((r) => upstream.child.on('exit', r));
const testCode = await run('node', [tlsrec, 'test'], appEnv);

step(
  testCode === 0
    ? 'demo passed: every test replayed green with the upstream offline'
    : `tlsrec test exited with ${testCode}`,
);
process.exit(testCode);
