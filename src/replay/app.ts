// The app under test: start its command inside a cgroup of its own (so the mock redirect applies to
// it and its children, and so the whole tree can be stopped at once), keep the tail of its output,
// wait until it is ready, notice when it dies, and stop it: SIGTERM to the cgroup, a grace period,
// then SIGKILL (cgroup.kill).

import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { request } from 'undici';
import { AppError, causeText } from '../errors.js';
import { Cgroup, argvInCgroup } from '../native/cgroup.js';

export interface AppOptions {
  /** argv array, or one shell string (run by /bin/sh -c). */
  command: string[] | string;
  cwd?: string;
  /** Added to (and overriding) tlsrec's own environment. */
  env?: Record<string, string>;
  /** Port the app listens on: readiness by TCP connect, and the base URL tests are sent to. */
  port?: number;
  /** Polled until it answers with a status < 500; takes precedence over the TCP check. */
  healthUrl?: string;
  /** Default 30 s. */
  readyTimeoutMs?: number;
  /** Time between SIGTERM and SIGKILL. Default 5 s. */
  stopGraceMs?: number;
  /**
   * Cgroup to run in. Given: the caller owns it (creates and destroys it, e.g. around a mock session).
   * Absent: one is created and destroyed by stop(). null: no cgroup (no root); a process group is used.
   */
  cgroup?: Cgroup | null;
  /** Pass the app's output through to `out` as it comes, prefixed "app| ". */
  verbose?: boolean;
  out?: NodeJS.WritableStream;
  /** Lines of output kept for error messages. Default 200. */
  outputLines?: number;
  /** Aborting while waiting for readiness stops the app and rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface AppExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunningApp {
  readonly pid: number;
  readonly cgroup: Cgroup | undefined;
  /** Origin tests are sent to: "http://127.0.0.1:3000". */
  readonly baseUrl: string;
  /** The last lines of stdout and stderr, interleaved as they came. */
  output(): string;
  /** Set once the main process has exited. */
  exited(): AppExit | undefined;
  /** Resolves with the exit once it happens, or undefined after `ms` (exit events can trail a reset connection). */
  waitExit(ms: number): Promise<AppExit | undefined>;
  /** Stop everything in the app's cgroup (or process group). Idempotent. */
  stop(): Promise<void>;
}

/** Readiness polling period: short, since every poll is a cheap local connect. */
const POLL_MS = 20;

/** Keeps the last N lines of a stream of chunks. */
export class LineRing {
  private lines: string[] = [];
  private partial = new Map<string, string>();
  constructor(private readonly max: number) {}

  push(source: string, chunk: string): string[] {
    const text = (this.partial.get(source) ?? '') + chunk;
    const parts = text.split('\n');
    this.partial.set(source, parts.pop() ?? '');
    for (const l of parts) this.add(l);
    return parts;
  }

  /** Flush incomplete last lines (at exit). */
  flush(): void {
    for (const v of this.partial.values()) if (v !== '') this.add(v);
    this.partial.clear();
  }

  private add(line: string): void {
    this.lines.push(line.replace(/\r$/, ''));
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }

  text(): string {
    const pending = [...this.partial.values()].filter((v) => v !== '');
    return [...this.lines, ...pending].join('\n');
  }
}

function commandArgv(command: string[] | string): string[] {
  return typeof command === 'string' ? ['/bin/sh', '-c', command] : command;
}

function commandText(command: string[] | string): string {
  return typeof command === 'string' ? command : command.join(' ');
}

function exitText(e: AppExit): string {
  return e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
}

function tcpAccepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** The loopback address the app accepts on (IPv4 first, then IPv6), or undefined. */
export async function acceptingHost(port: number): Promise<string | undefined> {
  if (await tcpAccepts('127.0.0.1', port)) return '127.0.0.1';
  if (await tcpAccepts('::1', port)) return '[::1]';
  return undefined;
}

export async function healthAnswers(url: string): Promise<boolean> {
  try {
    const res = await request(url, { method: 'GET', headersTimeout: 2000, bodyTimeout: 2000 });
    await res.body.dump();
    return res.statusCode < 500;
  } catch {
    return false;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** A timeout for Promise.race that does not keep tlsrec alive once the other side has won. */
const deadlineAfter = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());

export async function startApp(opts: AppOptions): Promise<RunningApp> {
  if (opts.port === undefined && opts.healthUrl === undefined) {
    throw new AppError('cannot tell when the app is ready: no app port and no health URL', {
      stage: 'start app',
      hint: 'set appPort (or healthUrl) in tlsrec.yaml, or pass --app-port',
    });
  }
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  const graceMs = opts.stopGraceMs ?? 5_000;
  const ownsCgroup = opts.cgroup === undefined;
  const cgroup = opts.cgroup === undefined ? Cgroup.create('app') : (opts.cgroup ?? undefined);
  const ring = new LineRing(opts.outputLines ?? 200);
  const argv = commandArgv(opts.command);
  const fullArgv = cgroup ? argvInCgroup(cgroup, argv) : argv;

  let child: ChildProcess;
  try {
    child = spawn(fullArgv[0]!, fullArgv.slice(1), {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Own process group: a Ctrl-C in the terminal reaches tlsrec only, which then stops the app in order.
      detached: true,
    });
  } catch (err) {
    if (ownsCgroup && cgroup) await cgroup.destroy();
    throw new AppError(`cannot start the app (${commandText(opts.command)}): ${causeText(err)}`, {
      stage: 'start app',
      cause: err,
    });
  }

  let exit: AppExit | undefined;
  let spawnError: Error | undefined;
  const closed = new Promise<void>((resolve) => {
    child.once('close', (code, signal) => {
      exit ??= { code, signal };
      ring.flush();
      resolve();
    });
    child.once('error', (err) => {
      spawnError = err;
      exit ??= { code: null, signal: null };
      resolve();
    });
  });
  child.once('exit', (code, signal) => {
    exit = { code, signal };
  });
  const onData = (source: string) => (buf: Buffer) => {
    const lines = ring.push(source, buf.toString('utf8'));
    if (opts.verbose && opts.out) for (const l of lines) opts.out.write(`app| ${l}\n`);
  };
  child.stdout!.on('data', onData('out'));
  child.stderr!.on('data', onData('err'));

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (cgroup) {
        await cgroup.terminate(graceMs);
      } else if (child.pid !== undefined && exit === undefined) {
        signalGroup(child.pid, 'SIGTERM');
        if (!(await Promise.race([closed.then(() => true), deadlineAfter(graceMs).then(() => false)]))) {
          signalGroup(child.pid, 'SIGKILL');
        }
      }
      // The pipes close once every process holding them is gone; do not hang on a stray holder.
      await Promise.race([closed, deadlineAfter(2_000)]);
      if (!cgroup && child.pid !== undefined) signalGroup(child.pid, 'SIGKILL'); // leftovers of the group
      if (ownsCgroup && cgroup) await cgroup.destroy();
    })();
    return stopping;
  };

  // ---- wait until ready ----
  const deadline = Date.now() + readyTimeoutMs;
  let baseUrl: string | undefined;
  const failStart = async (why: string, hint: string): Promise<never> => {
    await stop();
    const out = ring.text();
    throw new AppError(`the app ${why} (${commandText(opts.command)})`, {
      stage: 'start app',
      hint,
      detail: out === '' ? '(the app printed nothing)' : `last output of the app:\n${out}`,
      cause: spawnError,
    });
  };
  for (;;) {
    if (opts.signal?.aborted) {
      await stop();
      throw opts.signal.reason;
    }
    if (exit !== undefined) {
      await Promise.race([closed, sleep(500)]); // collect the last output
      await failStart(
        spawnError ? `could not be started: ${spawnError.message}` : `${exitText(exit)} before it was ready`,
        'check the command and its output below; run it by hand to see it start',
      );
    }
    if (opts.healthUrl !== undefined) {
      if (await healthAnswers(opts.healthUrl)) {
        baseUrl =
          opts.port !== undefined
            ? `http://${(await acceptingHost(opts.port)) ?? '127.0.0.1'}:${opts.port}`
            : new URL(opts.healthUrl).origin;
        break;
      }
    } else if (opts.port !== undefined) {
      const host = await acceptingHost(opts.port);
      if (host !== undefined) {
        baseUrl = `http://${host}:${opts.port}`;
        break;
      }
    }
    if (Date.now() > deadline) {
      const what =
        opts.healthUrl !== undefined
          ? `${opts.healthUrl} did not answer`
          : `port ${opts.port} did not accept connections`;
      await failStart(
        `was not ready after ${Math.round(readyTimeoutMs / 1000)} s: ${what}`,
        'check the app port (appPort) and that the app listens on it; raise readyTimeout in tlsrec.yaml if it starts slowly',
      );
    }
    await sleep(POLL_MS);
  }

  const readyBaseUrl = baseUrl;
  return {
    pid: child.pid ?? -1,
    cgroup,
    baseUrl: readyBaseUrl,
    output: () => ring.text(),
    exited: () => exit,
    waitExit: async (ms) => {
      await Promise.race([closed, sleep(ms)]);
      return exit;
    },
    stop,
  };
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // group already gone
  }
}
