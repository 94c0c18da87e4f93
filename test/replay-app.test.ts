import { afterEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { request } from 'undici';
import { AppError } from '../src/errors.js';
import { Cgroup } from '../src/native/cgroup.js';
import { LineRing, startApp, type RunningApp } from '../src/replay/app.js';
import { cgroupSkipReason, freePort, isAlive } from './replay-helpers.js';

const skip = cgroupSkipReason();

const server = (port: number, extra = ''): string[] => [
  process.execPath,
  '-e',
  `${extra}; require('node:http').createServer((q, s) => s.end('hello ' + q.url)).listen(${port}, '127.0.0.1', () => console.log('listening'))`,
];

describe('LineRing', () => {
  it('keeps the last N lines across chunk boundaries', () => {
    const r = new LineRing(3);
    r.push('out', 'a\nb');
    r.push('out', 'c\nd\ne\n');
    r.push('err', 'partial');
    expect(r.text()).toBe('bc\nd\ne\npartial');
  });
});

describe.skipIf(skip !== undefined)('startApp (cgroup)', () => {
  let app: RunningApp | undefined;
  afterEach(async () => {
    await app?.stop();
    app = undefined;
  });

  it('starts an argv command, is ready when its port accepts, and stops everything', async () => {
    const port = await freePort();
    app = await startApp({ command: server(port), port });
    expect(app.baseUrl).toBe(`http://127.0.0.1:${port}`);
    const res = await request(`${app.baseUrl}/x`);
    expect(await res.body.text()).toBe('hello /x');
    const cg = app.cgroup!;
    expect(cg.pids()).toContain(app.pid);
    await app.stop();
    expect(existsSync(cg.path)).toBe(false);
    expect(isAlive(app.pid)).toBe(false);
    expect(app.output()).toContain('listening');
  });

  it('runs a shell string and waits for a health URL that answers < 500', async () => {
    const port = await freePort();
    // 503 for the first 400 ms, then 200: ready only after the switch.
    const js = `const t=Date.now();require('node:http').createServer((q,s)=>{s.statusCode=q.url==='/health'&&Date.now()-t<400?503:200;s.end('ok')}).listen(${port})`;
    const started = Date.now();
    app = await startApp({
      command: `exec ${process.execPath} -e "${js}"`,
      port,
      healthUrl: `http://127.0.0.1:${port}/health`,
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect(app.baseUrl).toBe(`http://127.0.0.1:${port}`);
  });

  it('an app that exits at once is an AppError (exit 3) showing its output', async () => {
    const port = await freePort();
    const err = await startApp({
      command: [
        process.execPath,
        '-e',
        "console.log('loading config'); console.error('fatal: DATABASE_URL is not set'); process.exit(4)",
      ],
      port,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    const e = err as AppError;
    expect(e.exitCode).toBe(3);
    expect(e.message).toContain('exited with code 4');
    expect(e.detail).toContain('fatal: DATABASE_URL is not set');
    expect(e.detail).toContain('loading config');
  });

  it('times out when the port never accepts, and leaves nothing running', async () => {
    const port = await freePort();
    const cg = Cgroup.create('apptest');
    try {
      const err = await startApp({
        command: [process.execPath, '-e', "console.log('sleeping'); setInterval(() => {}, 1000)"],
        port,
        readyTimeoutMs: 600,
        cgroup: cg,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).message).toMatch(/not ready after .*port \d+ did not accept/);
      expect((err as AppError).detail).toContain('sleeping');
      expect(cg.pids()).toEqual([]);
      expect(existsSync(cg.path)).toBe(true); // the caller owns a cgroup it passed in
    } finally {
      await cg.destroy();
    }
  });

  it('stops child processes too, and SIGKILLs an app that ignores SIGTERM after the grace period', async () => {
    const port = await freePort();
    const extra =
      "process.on('SIGTERM', () => console.log('ignoring SIGTERM')); require('node:child_process').spawn('sleep', ['1000'], { stdio: 'ignore' })";
    app = await startApp({ command: server(port, extra), port, stopGraceMs: 400 });
    const cg = app.cgroup!;
    await new Promise((r) => setTimeout(r, 100));
    const pids = cg.pids();
    expect(pids.length).toBeGreaterThanOrEqual(2); // node and its sleep child
    const t = Date.now();
    await app.stop();
    expect(Date.now() - t).toBeGreaterThanOrEqual(350);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    expect(existsSync(cg.path)).toBe(false);
    expect(app.output()).toContain('ignoring SIGTERM');
  });

  it('notices when the app dies after it was ready', async () => {
    const port = await freePort();
    app = await startApp({ command: server(port), port });
    expect(app.exited()).toBeUndefined();
    process.kill(app.pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    expect(app.exited()).toEqual({ code: null, signal: 'SIGKILL' });
  });
});

describe('startApp without a cgroup (process group)', () => {
  it('passes output through with verbose and merges env', async () => {
    const port = await freePort();
    const { PassThrough } = await import('node:stream');
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    const app = await startApp({
      command: server(port, 'console.log("FOO=" + process.env.FOO)'),
      port,
      cgroup: null,
      verbose: true,
      out,
      env: { FOO: 'bar' },
    });
    // The port accepts (kernel backlog) a moment before the app's listen callback prints; on a
    // loaded machine a stop right away can beat the print, so wait for the line (bounded) first.
    for (let i = 0; i < 100 && !text.includes('app| listening'); i++) await new Promise((r) => setTimeout(r, 20));
    await app.stop();
    expect(text).toContain('app| FOO=bar');
    expect(text).toContain('app| listening');
  });

  it('starts and stops', async () => {
    const port = await freePort();
    const app = await startApp({ command: server(port), port, cgroup: null });
    expect(app.cgroup).toBeUndefined();
    await app.stop();
    expect(isAlive(app.pid)).toBe(false);
  });
});
