// End-to-end hardening of `tlsrec record` (the built CLI, as root, real eBPF): what happens when
// things go wrong during a recording. The promise under test: every complete exchange is on disk,
// the files parse, the summary reports what was incomplete, and the exit code says what happened.
//
//   1. the recorded app is SIGKILLed          -> exit 137 (the command's status), files parse,
//                                                a half-sent request reported as incomplete
//   2. tlsrec itself is SIGTERMed under load  -> exit 0, app tree and record cgroup gone, same
//   3. the disk fills (a 256k tmpfs)          -> exit 3, ENOSPC named, a gap-free prefix on disk
//   4. the ring buffer overflows (--ringbuf)  -> exit 3, LOST counted, nothing corrupt written
//   4b. a small --max-backlog                -> the command is paused, nothing lost, bodies exact
//   5. non-HTTP streams (SMTP-like, h2 preface) -> exit 0, skipped and counted, HTTPS still a mock
//   6. tlsrec is SIGKILLed                    -> its file-writer process still writes every exchange
//                                                it was handed, and removes the spool
//   7. the file-writer process dies           -> exit 3, said so with the amount not written; the
//                                                spool (unreadable without the key) removed
//   6b. tlsrec is SIGKILLed while a process waits for its file to be looked at -> the file-writer
//                                                process continues it (nothing is left stopped)
//   8. Ctrl-C while tlsrec waits for the files -> exit 130 at once; the file-writer process still finishes

import {
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadTestSets } from '../src/format/reader.js';
import type { Mock, TestSet } from '../src/format/types.js';
import { findCgroup2Mount } from '../src/native/cgroup.js';
import { childProcessOf, processState } from '../src/native/proc.js';
import { needsEbpf } from './helpers/env.js';
import {
  fixtureApp,
  fixtureCa,
  freePort,
  repoRoot,
  start,
  startUpstream,
  tlsrecBin,
  waitForHttp,
  type Started,
} from './helpers/procs.js';
import { patternBytes, sha256 } from './helpers/bodies.js';

const ebpf = needsEbpf();

const loadClient = join(repoRoot, 'fixtures', 'clients', 'https-load.mjs');
const rawClient = join(repoRoot, 'fixtures', 'clients', 'raw-tcp.mjs');
const STACK_TRACE = /\n\s+at /;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function queryParam(m: Mock, name: string): string | undefined {
  return m.request.query.find(([k]) => k === name)?.[1];
}

/** The record cgroups a tlsrec process made: `<cgroup2>/tlsrec/record-<pid>-<n>`. */
function recordCgroups(tlsrecPid: number): string[] {
  const mount = findCgroup2Mount();
  if (!mount) return [];
  const parent = join(mount, 'tlsrec');
  try {
    return readdirSync(parent)
      .filter((n) => n.startsWith(`record-${tlsrecPid}-`))
      .map((n) => join(parent, n));
  } catch {
    return [];
  }
}

function cgroupPids(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Processes (by /proc scan) whose environment has PORT=<port> and whose argv names the fixture app. */
function appProcesses(port: number): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      // The app itself, not tlsrec (whose argv also names the app, and whose env has the PORT too).
      if (!argv.includes(fixtureApp) || argv.includes(tlsrecBin)) continue;
      const env = readFileSync(`/proc/${name}/environ`, 'utf8').split('\0');
      if (env.includes(`PORT=${port}`)) found.push(Number(name));
    } catch {
      // exited while we looked
    }
  }
  return found;
}

/** The file-writer process `tlsrec record` (pid `tlsrecPid`) spawned (src/spool/spooler.ts). */
const writerProcessOf = (tlsrecPid: number): number | undefined => childProcessOf(tlsrecPid, 'file-writer-main.js');

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function spoolFiles(root: string): string[] {
  const found: string[] = [];
  for (const set of readdirSync(root)) {
    try {
      for (const f of readdirSync(join(root, set))) if (f.startsWith('.tlsrec-spool-')) found.push(join(root, set, f));
    } catch {
      // not a directory
    }
  }
  return found;
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Concurrent GET /quote loops against the app; `completed` counts answered requests. */
function loadApp(base: string, workers: number, tag: string) {
  const state = { completed: 0, stop: false };
  const loops = Array.from({ length: workers }, async (_, w) => {
    // Bounded: at most 5000 requests per worker even if stop never comes.
    for (let i = 0; !state.stop && i < 5000; i++) {
      try {
        const res = await fetch(`${base}/quote?sym=${tag}W${w}N${i}`);
        await res.arrayBuffer();
        if (res.status === 200 && !state.stop) state.completed++;
      } catch {
        return; // the app went away
      }
    }
  });
  return { state, done: Promise.all(loops) };
}

describe.runIf(ebpf.run)('tlsrec record when things go wrong (real eBPF)', () => {
  let upstream: { url: string; proc: Started };
  /** Everything a test made, undone in afterEach even when the test failed. */
  let cleanups: (() => void | Promise<void>)[] = [];

  beforeAll(async () => {
    upstream = await startUpstream();
  });
  afterAll(async () => {
    if (upstream && upstream.proc.child.exitCode === null) {
      upstream.proc.child.kill('SIGKILL');
      await upstream.proc.exited;
    }
  });
  afterEach(async () => {
    const list = cleanups.reverse();
    cleanups = [];
    for (const fn of list) {
      try {
        await fn();
      } catch (err) {
        console.warn(`cleanup failed: ${String(err)}`);
      }
    }
  });

  function newWorkDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'tlsrec-hard-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  /**
   * Start the built CLI (summary not silenced). Cleanup kills it if it is still running, then
   * empties and removes any record cgroup it left, so no recorded process outlives the test.
   */
  function record(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): Started {
    const rec = start('node', [tlsrecBin, 'record', ...args], { cwd, env });
    const pid = rec.child.pid!;
    cleanups.push(async () => {
      if (rec.child.exitCode === null && rec.child.signalCode === null) {
        rec.child.kill('SIGKILL');
        await rec.exited;
      }
      for (const dir of recordCgroups(pid)) {
        try {
          writeFileSync(join(dir, 'cgroup.kill'), '1');
        } catch {
          for (const p of cgroupPids(dir)) {
            try {
              process.kill(p, 'SIGKILL');
            } catch {
              /* gone */
            }
          }
        }
        for (let i = 0; i < 250 && existsSync(dir); i++) {
          try {
            rmdirSync(dir);
          } catch {
            await sleep(20);
          }
        }
      }
    });
    return rec;
  }

  /** Record the fixture app on a fresh port; resolves once it answers /health. */
  async function recordApp(work: string) {
    const port = await freePort();
    // The app's own cleanup: whatever is left of it (found by its unique PORT) is killed.
    cleanups.push(() => {
      for (const p of appProcesses(port)) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    });
    const rec = record(work, ['--', 'node', fixtureApp], {
      PORT: String(port),
      UPSTREAM_URL: upstream.url,
      NODE_EXTRA_CA_CERTS: fixtureCa,
    });
    const base = `http://127.0.0.1:${port}`;
    await waitForHttp(`${base}/health`);
    return { rec, port, base };
  }

  /**
   * A request the app never gets whole: headers promise a 100-byte body, 8 bytes are sent and the
   * connection stays open. It must be reported as incomplete, never written as a test.
   */
  async function openPartialRequest(port: number): Promise<void> {
    const sock = connect(port, '127.0.0.1');
    sock.on('error', () => undefined);
    cleanups.push(() => void sock.destroy());
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    sock.write(
      'POST /orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"item":',
    );
  }

  /** The summary's skipped line: total and per-reason counts. */
  function skippedCounts(out: string): { total: number; byReason: Record<string, number> } {
    const m = /^ {2}skipped: (\d+) stream\(s\) or message\(s\) \(([^)]*)\)$/m.exec(out);
    if (!m) return { total: /^ {2}skipped: 0 streams$/m.test(out) ? 0 : NaN, byReason: {} };
    const byReason: Record<string, number> = {};
    for (const part of m[2]!.split(', ')) {
      const [n, reason] = part.split(' ');
      byReason[reason!] = Number(n);
    }
    return { total: Number(m[1]), byReason };
  }

  /**
   * Record the fixture app with its file-writer process held (SIGSTOP), so that exchanges pile up in
   * the spool; then `load` for 0.8 s. The writer is killed at cleanup if it is still there.
   */
  async function recordWithWriterHeld(work: string, workers: number, tag: string) {
    const { rec, base } = await recordApp(work);
    const writer = await waitFor('the file-writer process', () => writerProcessOf(rec.child.pid!));
    process.kill(writer, 'SIGSTOP');
    cleanups.push(() => {
      try {
        process.kill(writer, 'SIGKILL');
      } catch {
        /* gone */
      }
    });
    const load = loadApp(base, workers, tag);
    await sleep(800);
    load.state.stop = true;
    await load.done;
    return { rec, writer, completed: load.state.completed };
  }

  /**
   * Let a held writer go on, wait until it has finished, and check its work: every completed /quote
   * call is a test (once, with its real body) and a mock, and no spool is left. Returns the set.
   */
  async function releaseWriterAndCheck(work: string, writer: number, completed: number): Promise<TestSet> {
    process.kill(writer, 'SIGCONT');
    await waitFor('the writer to finish', () => (isAlive(writer) ? undefined : true), 20_000);
    expect(completed).toBeGreaterThan(10);
    expect(spoolFiles(join(work, 'tlsrec'))).toEqual([]);
    const set = loadOnly(join(work, 'tlsrec'));
    const quoteTests = set.tests.filter((t) => new URL(t.request.url).pathname === '/quote');
    expect(quoteTests.length).toBeGreaterThanOrEqual(completed);
    for (const t of quoteTests) expect(JSON.parse(t.expected.body.bytes.toString())).toHaveProperty('price');
    const urls = quoteTests.map((t) => t.request.url);
    expect(new Set(urls).size).toBe(urls.length);
    expect(set.mocks.length).toBeGreaterThanOrEqual(completed);
    return set;
  }

  function loadOnly(dir: string): TestSet {
    const sets = loadTestSets(dir); // throws on any file that does not parse
    expect(sets).toHaveLength(1);
    return sets[0]!;
  }

  it('the app is SIGKILLed mid-recording: exit 137, every completed exchange on disk, files parse, summary printed', async () => {
    const work = newWorkDir();
    const { rec, port, base } = await recordApp(work);
    const cgroup = await waitFor('the record cgroup', () => recordCgroups(rec.child.pid!)[0]);
    const load = loadApp(base, 4, 'K');
    await sleep(800);
    await openPartialRequest(port);
    await sleep(200);
    const completedBeforeKill = load.state.completed;
    load.state.stop = true;

    const pids = cgroupPids(cgroup);
    expect(pids.length).toBeGreaterThan(0);
    expect(new Set(pids)).toEqual(new Set(appProcesses(port))); // the cgroup holds the app, nothing else
    for (const p of pids) process.kill(p, 'SIGKILL');
    await load.done;

    expect(await rec.exited).toBe(137);
    expect(completedBeforeKill).toBeGreaterThan(10);
    const out = rec.output();
    expect(out).toMatch(/tlsrec: recorded \d+ test\(s\) and \d+ mock\(s\) in /);
    // The half-sent POST (and any request the kill cut off) is reported, not written.
    expect(skippedCounts(out).byReason.incomplete, out).toBeGreaterThanOrEqual(1);
    expect(out).toMatch(/^ {2}lost: 0 bytes$/m);
    expect(out).not.toMatch(STACK_TRACE);

    const set = loadOnly(join(work, 'tlsrec'));
    expect(set.tests.filter((t) => t.request.method === 'POST')).toEqual([]);
    const quoteTests = set.tests.filter((t) => new URL(t.request.url).pathname === '/quote');
    expect(quoteTests.length).toBeGreaterThanOrEqual(completedBeforeKill);
    for (const t of quoteTests) {
      expect(t.expected.status).toBe(200);
      expect(JSON.parse(t.expected.body.bytes.toString())).toHaveProperty('price');
    }
    // No request recorded twice.
    const urls = quoteTests.map((t) => t.request.url);
    expect(new Set(urls).size).toBe(urls.length);
    const reported = /recorded (\d+) test\(s\) and (\d+) mock\(s\)/.exec(out)!;
    expect(Number(reported[1])).toBe(set.tests.length);
    expect(Number(reported[2])).toBe(set.mocks.length);
    expect(set.mocks.length).toBeGreaterThanOrEqual(completedBeforeKill); // each /quote called the upstream
  });

  it('tlsrec is SIGTERMed under load: exit 0, files parse, the app tree and the record cgroup are gone', async () => {
    const work = newWorkDir();
    const { rec, port, base } = await recordApp(work);
    const cgroup = await waitFor('the record cgroup', () => recordCgroups(rec.child.pid!)[0]);
    const load = loadApp(base, 4, 'T');
    await sleep(800);
    await openPartialRequest(port);
    await sleep(200);
    const completedBeforeSignal = load.state.completed;
    load.state.stop = true;
    rec.child.kill('SIGTERM');
    await load.done;

    expect(await rec.exited).toBe(0);
    expect(completedBeforeSignal).toBeGreaterThan(10);
    const out = rec.output();
    expect(out).toMatch(/tlsrec: recorded \d+ test\(s\) and \d+ mock\(s\) in /);
    expect(out).not.toMatch(STACK_TRACE);
    expect(out).not.toContain('could not remove');
    expect(skippedCounts(out).byReason.incomplete, out).toBeGreaterThanOrEqual(1);
    expect(out).toMatch(/^ {2}lost: 0 bytes$/m);

    const set = loadOnly(join(work, 'tlsrec'));
    const quoteTests = set.tests.filter((t) => new URL(t.request.url).pathname === '/quote');
    expect(quoteTests.length).toBeGreaterThanOrEqual(completedBeforeSignal);
    for (const t of quoteTests) expect(JSON.parse(t.expected.body.bytes.toString())).toHaveProperty('price');
    expect(set.tests.filter((t) => t.request.method === 'POST')).toEqual([]);

    expect(appProcesses(port)).toEqual([]);
    expect(existsSync(cgroup)).toBe(false);
    expect(recordCgroups(rec.child.pid!)).toEqual([]);
  });

  it('tlsrec is SIGKILLed: its file-writer process still writes every exchange it was handed, then removes the spool', async () => {
    const work = newWorkDir();
    const { rec, writer, completed } = await recordWithWriterHeld(work, 4, 'W');
    await sleep(500); // tlsrec polls the ring every few ms: everything completed is spooled by now
    expect(spoolFiles(join(work, 'tlsrec')).length).toBeGreaterThan(0);

    rec.child.kill('SIGKILL');
    await rec.exited;
    await releaseWriterAndCheck(work, writer, completed);
  });

  it('tlsrec is SIGKILLed while a process of the command waits for its file to be looked at: the file-writer process lets it go on', async () => {
    const work = newWorkDir();
    const fifo = join(work, 'go');
    const done = join(work, 'done');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    // The shell waits on the fifo, then exec's touch: a file no process of the recording has
    // mapped, so the kernel stops touch at its exec until tlsrec has looked at the file.
    const rec = record(work, ['--', '/bin/sh', '-c', 'read line < "$0"; exec touch "$1"', fifo, done]);
    // Opening the fifo without blocking succeeds once the shell has it open to read.
    const fd = await waitFor(
      'the command to wait on the fifo',
      () => {
        try {
          return openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
        } catch {
          return undefined;
        }
      },
      15_000,
    );
    const [cgroup] = recordCgroups(rec.child.pid!);
    expect(cgroup).toBeDefined();
    rec.child.kill('SIGSTOP'); // tlsrec can look at no file now, nor continue anyone
    writeSync(fd, 'go\n');
    closeSync(fd);
    const touch = await waitFor('touch stopped at its exec', () =>
      cgroupPids(cgroup!).find((p) => processState(p) === 'T'),
    );
    await sleep(300);
    expect(processState(touch)).toBe('T'); // nobody but tlsrec would continue it
    expect(existsSync(done)).toBe(false);

    rec.child.kill('SIGKILL');
    await rec.exited;
    await waitFor('touch to go on and create its file', () => (existsSync(done) ? true : undefined));
    await waitFor("the file-writer process's message", () =>
      /continued 1 stopped process\(es\) of the recorded command/.test(rec.output()) ? true : undefined,
    );
    expect(rec.output()).not.toMatch(STACK_TRACE);
  });

  it('a second Ctrl-C while tlsrec waits for its writer: exit 130 at once, and the writer still finishes every file', async () => {
    const work = newWorkDir();
    const { rec, writer, completed } = await recordWithWriterHeld(work, 4, 'C'); // a writer far behind

    rec.child.kill('SIGINT'); // stop recording: the app stops, tlsrec waits for the writer
    await waitFor(
      'the "writing the rest" message',
      () => (rec.output().includes('writing the rest of the recording') ? true : undefined),
      15_000,
    );
    const t = Date.now();
    rec.child.kill('SIGINT');
    expect(await rec.exited).toBe(130);
    expect(Date.now() - t).toBeLessThan(3_000);
    const out = rec.output();
    expect(out).toMatch(
      new RegExp(
        `not waiting: the file-writer process \\(pid ${writer}\\) goes on writing the rest \\([\\d.]+ (B|KiB|MiB) of captured traffic\\)`,
      ),
    );
    expect(out).not.toMatch(STACK_TRACE);
    expect(isAlive(writer)).toBe(true);
    await releaseWriterAndCheck(work, writer, completed);
  });

  it('the file-writer process dies: exit 3 saying how much was not written, no stack trace, no spool left', async () => {
    const work = newWorkDir();
    const { rec, writer } = await recordWithWriterHeld(work, 2, 'D');
    await sleep(300);
    process.kill(writer, 'SIGKILL');
    rec.child.kill('SIGTERM');

    expect(await rec.exited).toBe(3);
    const out = rec.output();
    const m =
      /file-writer process stopped early \(killed by SIGKILL\); ([\d.]+) (B|KiB|MiB) of captured traffic was not written/.exec(
        out,
      );
    expect(m, out).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0); // the writer was held while the load ran: all of it
    expect(out).toContain('TLSREC_E_OUTPUT');
    expect(out).not.toMatch(STACK_TRACE);
    // Encrypted with a key that died with the two processes: removed, not left as litter.
    expect(spoolFiles(join(work, 'tlsrec'))).toEqual([]);
  });

  it('the disk fills: exit 3 naming ENOSPC, no stack trace, the files parse and hold a gap-free prefix of the calls', async () => {
    const work = newWorkDir();
    const mnt = join(work, 'small');
    mkdirSync(mnt);
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tlsrec-test', mnt], { encoding: 'utf8' });
    expect(mounted.status, `mount tmpfs: ${mounted.stderr}`).toBe(0);
    cleanups.push(() => {
      const r = spawnSync('umount', [mnt], { encoding: 'utf8' });
      if (r.status !== 0) spawnSync('umount', ['-l', mnt]);
    });

    const count = 400;
    const rec = record(
      work,
      [
        '--dir',
        join(mnt, 'tlsrec'),
        '--config',
        join(mnt, 'tlsrec.yaml'),
        '--',
        'node',
        loadClient,
        `${upstream.url}/quote?sym=FULL`,
        String(count),
        '1',
        '1',
      ],
      { NODE_EXTRA_CA_CERTS: fixtureCa },
    );
    const code = await rec.exited;
    const out = rec.output();
    expect(out).toContain(`done ${count}`); // the recorded command itself was not disturbed
    expect(code, out).toBe(3);
    // Exchanges the writer could not write, and captured traffic that never reached the spool
    // (it shares the full disk): how many exchanges that held cannot be known.
    const m =
      /could not write (?:(\d+) exchange\(s\))?(?: and )?(?:([\d.]+ (?:B|KiB|MiB)) of captured traffic)?: /.exec(out);
    expect(m, out).not.toBeNull();
    const failed = Number(m![1] ?? 0);
    const trafficNotSpooled = m![2] !== undefined;
    expect(failed > 0 || trafficNotSpooled, out).toBe(true);
    expect(out).toMatch(/ENOSPC|no space left/i);
    expect(out).toContain('TLSREC_E_OUTPUT');
    expect(out).not.toMatch(STACK_TRACE);

    const set = loadOnly(join(mnt, 'tlsrec'));
    expect(set.tests).toHaveLength(0);
    expect(set.mocks.length).toBeGreaterThan(0);
    expect(set.mocks.length).toBeLessThan(count);
    const indexes = set.mocks.map((mk) => Number(queryParam(mk, 'i')));
    expect(indexes).toEqual(Array.from({ length: set.mocks.length }, (_, i) => i)); // in order, no gaps, no duplicates
    for (const mk of set.mocks) {
      expect(queryParam(mk, 'sym')).toBe('FULL');
      expect(JSON.parse(mk.response.body.bytes.toString())).toMatchObject({ symbol: 'FULL', source: 'upstream' });
    }
    // What was written plus what could not be adds up to every call, or falls short of it by
    // the calls in the traffic that could not be spooled.
    if (trafficNotSpooled) expect(set.mocks.length + failed).toBeLessThan(count);
    else expect(set.mocks.length + failed).toBe(count);
    const reported = /recorded (\d+) test\(s\) and (\d+) mock\(s\)/.exec(out);
    expect(Number(reported?.[2])).toBe(set.mocks.length);
    // tlsrec.yaml is whole or absent, never a truncated file later runs would take as the user's.
    const config = join(mnt, 'tlsrec.yaml');
    if (existsSync(config)) expect(readFileSync(config, 'utf8')).toContain('command:');
    else expect(out).toMatch(/warning: cannot write .*tlsrec\.yaml/);
  });

  it('the ring buffer overflows: exit 3, LOST counted, touched exchanges skipped as bytes-lost and nothing corrupt written', async () => {
    const work = newWorkDir();
    const sizes = [4_000_000, 3_000_000, 2_000_000];
    // Three large bodies on three parallel connections, twice, then a small call after the storm.
    const rec = record(
      work,
      [
        '--ringbuf',
        '16K',
        '--',
        'sh',
        '-c',
        `node ${loadClient} "${upstream.url}/big?size=${sizes[0]}" 3 3 3 && ` +
          `curl -sS --cacert ${fixtureCa} -o /dev/null -o /dev/null ${sizes
            .slice(1)
            .map((s) => `"${upstream.url}/big?size=${s}"`)
            .join(' ')} && ` +
          // A moment for the recorder (nice 10, on a machine busy with other test files) to drain
          // the 16K ring: events of the call below that met a ring still full of the storm would
          // be lost too, and this call is about what comes after the loss.
          `sleep 1 && curl -sS --cacert ${fixtureCa} "${upstream.url}/quote?sym=AFTER"`,
      ],
      { NODE_EXTRA_CA_CERTS: fixtureCa },
    );
    const code = await rec.exited;
    const out = rec.output();
    expect(code, out).toBe(3);
    expect(out).toMatch(/WARNING: LOST .+ in \d+ kernel event\(s\)/);
    const full = /ring buffer full: (\d+)/.exec(out);
    expect(full, out).not.toBeNull();
    expect(Number(full![1])).toBeGreaterThan(0);
    expect(skippedCounts(out).byReason['bytes-lost'], out).toBeGreaterThanOrEqual(1);
    expect(out).toMatch(/^ {4}- bytes-lost: /m);
    expect(out).toContain('TLSREC_E_LOST');
    expect(out).not.toMatch(STACK_TRACE);

    const set = loadOnly(join(work, 'tlsrec'));
    const bigMocks = set.mocks.filter((mk) => mk.request.path === '/big');
    // Most large bodies cannot have survived a 16K ring; any that did must be whole.
    expect(bigMocks.length).toBeLessThan(5);
    for (const mk of bigMocks) {
      const size = Number(queryParam(mk, 'size'));
      const body = mk.response.body.bytes;
      expect(body.length).toBe(size);
      expect(sha256(body)).toBe(sha256(patternBytes(size)));
    }
    // The small call after the storm, on a connection of its own, is untouched by the loss.
    const after = set.mocks.filter((mk) => mk.request.path === '/quote');
    expect(after.map((mk) => queryParam(mk, 'sym'))).toEqual(['AFTER']);
    expect(JSON.parse(after[0]!.response.body.bytes.toString())).toMatchObject({ symbol: 'AFTER', source: 'upstream' });
    const reported = /recorded (\d+) test\(s\) and (\d+) mock\(s\)/.exec(out);
    expect(Number(reported?.[2])).toBe(set.mocks.length);
  });

  it('backpressure: with a small --max-backlog the command is paused instead of losing data; every body is exact', async () => {
    const work = newWorkDir();
    const sizes = [4_000_000, 3_000_000, 2_000_000];
    const rec = record(
      work,
      [
        '--max-backlog',
        '1M',
        '--',
        'sh',
        '-c',
        `node ${loadClient} "${upstream.url}/big?size=${sizes[0]}" 3 3 3 && ` +
          `curl -sS --cacert ${fixtureCa} -o /dev/null -o /dev/null ${sizes
            .slice(1)
            .map((s) => `"${upstream.url}/big?size=${s}"`)
            .join(' ')}`,
      ],
      { NODE_EXTRA_CA_CERTS: fixtureCa },
    );
    const code = await rec.exited;
    const out = rec.output();
    expect(code, out).toBe(0);
    expect(out).toContain('lost: 0 bytes');
    const paused = /paused the command (\d+) time\(s\)/.exec(out);
    expect(paused, out).not.toBeNull();
    expect(Number(paused![1])).toBeGreaterThan(0);
    const set = loadOnly(join(work, 'tlsrec'));
    const big = set.mocks.filter((mk) => mk.request.path === '/big');
    expect(big.map((mk) => Number(queryParam(mk, 'size'))).sort()).toEqual(
      [sizes[0], sizes[0], sizes[0], sizes[1], sizes[2]].sort(),
    );
    for (const mk of big) {
      const size = Number(queryParam(mk, 'size'));
      expect(mk.response.body.bytes.length).toBe(size);
      expect(sha256(mk.response.body.bytes)).toBe(sha256(patternBytes(size)));
    }
  });

  it('a non-HTTP stream (SMTP-like banner) is skipped and counted, never fatal; an HTTP/2 connection without streams writes nothing; HTTPS is still a mock', async () => {
    const work = newWorkDir();
    const host = '127.0.0.3';
    const sockets = new Set<Socket>();
    const servers: Server[] = [];
    cleanups.push(async () => {
      for (const s of sockets) s.destroy();
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    });
    const listen = (handler: (s: Socket) => void) =>
      new Promise<number>((resolve, reject) => {
        const srv = createServer((s) => {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
          s.on('error', () => undefined);
          handler(s);
        });
        servers.push(srv);
        srv.once('error', reject);
        srv.listen(0, host, () => resolve((srv.address() as { port: number }).port));
      });
    // SMTP-like: banner first, then one answer per command line.
    const smtpPort = await listen((s) => {
      s.write('220 smtp.test ESMTP tlsrec-fixture\r\n');
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString('latin1');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (/^EHLO /i.test(line)) s.write('250 smtp.test greets you\r\n');
          else if (/^QUIT/i.test(line)) s.end('221 bye\r\n');
          else s.write('500 what?\r\n');
        }
      });
    });
    // HTTP/2-ish: after the 24-byte preface, answer an empty SETTINGS frame and a GOAWAY, then close.
    const h2Port = await listen((s) => {
      let got = 0;
      s.on('data', (d) => {
        got += d.length;
        if (got >= 24) {
          s.end(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        }
      });
    });

    const rec = record(work, [
      '--',
      'sh',
      '-c',
      `node ${rawClient} ${host} ${smtpPort} ${h2Port} && curl -sS --cacert ${fixtureCa} "${upstream.url}/quote?sym=RAW"`,
    ]);
    const code = await rec.exited;
    const out = rec.output();
    expect(out).toContain('raw done');
    expect(code, out).toBe(0);
    expect(out).not.toMatch(STACK_TRACE);
    // Only the SMTP-like conversation: the HTTP/2 one (preface, SETTINGS, GOAWAY NO_ERROR) is read
    // by the HTTP/2 protocol and has no stream to write; curl's TLS connection is a mock.
    expect(skippedCounts(out), out).toEqual({ total: 1, byReason: { 'not-http': 1 } });
    expect(out).toMatch(/^ {4}- not-http: .*no HTTP\/2 client preface/m);
    expect(out).toMatch(/^ {2}lost: 0 bytes$/m);

    const set = loadOnly(join(work, 'tlsrec'));
    expect(set.tests).toHaveLength(0);
    expect(set.mocks).toHaveLength(1);
    expect(set.mocks[0]!.request.path).toBe('/quote');
    expect(queryParam(set.mocks[0]!, 'sym')).toBe('RAW');
    expect(JSON.parse(set.mocks[0]!.response.body.bytes.toString())).toMatchObject({
      symbol: 'RAW',
      source: 'upstream',
    });
  });
});
