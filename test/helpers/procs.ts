// Process helpers for end-to-end tests: the fixture upstream, tlsrec itself (the built CLI, as a
// user runs it), free ports, waiting for an HTTP server. Everything started here is tracked and
// killed by stopAll() so a failing test leaves nothing running.

import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const tlsrecBin = join(repoRoot, 'bin', 'tlsrec.js');
export const fixtureCa = join(repoRoot, 'fixtures', 'certs', 'ca.pem');
export const fixtureApp = join(repoRoot, 'fixtures', 'app', 'server.mjs');

const running = new Set<ChildProcess>();

export interface Started {
  child: ChildProcess;
  /** stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (signal → 128+n). */
  exited: Promise<number>;
}

export function start(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Started {
  const child = spawn(cmd, args, {
    cwd: opts.cwd ?? repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number>((resolve) => {
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve(code ?? (signal === 'SIGKILL' ? 137 : signal === 'SIGTERM' ? 143 : signal === 'SIGINT' ? 130 : 1));
    });
  });
  return { child, output: () => out, exited };
}

/** Run to completion. */
export async function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const p = start(cmd, args, opts);
  const code = await p.exited;
  return { code, output: p.output() };
}

export async function waitForOutput(p: Started, pattern: RegExp, timeoutMs = 15000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = pattern.exec(p.output());
    if (m) return m;
    if (Date.now() > deadline || p.child.exitCode !== null) {
      throw new Error(`timed out waiting for ${pattern} in output:\n${p.output()}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function waitForHttp(url: string, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** The fixture HTTPS upstream on 127.0.0.2 (outside any recorded cgroup). */
export async function startUpstream(): Promise<{ url: string; proc: Started }> {
  const proc = start('node', [
    join(repoRoot, 'fixtures', 'upstream', 'server.mjs'),
    '--host',
    '127.0.0.2',
    '--port',
    '0',
  ]);
  const m = await waitForOutput(proc, /listening (https:\/\/\S+)/);
  return { url: m[1]!, proc };
}

export async function stopAll(): Promise<void> {
  const waits: Promise<unknown>[] = [];
  for (const child of running) {
    waits.push(new Promise((r) => child.once('exit', r)));
    child.kill('SIGKILL');
  }
  await Promise.all(waits);
}
