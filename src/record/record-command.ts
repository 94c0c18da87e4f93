// The engine of `tlsrec record`: run a command in a cgroup of its own, capture its traffic with
// eBPF, and have it rebuilt into HTTP exchanges and written as tests and mocks.
//
//   preflight ─▶ cgroup ─▶ capture (kernel) ─▶ spool ─▶ writer process (idle CPU): reconstruct, files
//                    └──▶ spawn command ──▶ exits / Ctrl-C ─▶ stop cgroup ─▶ drain ─▶ summary
//
// The recorder itself only copies captured events to the spool; reconstructing, rendering YAML
// and creating files happen in a second process (background-writer.ts) so that they do not take
// CPU from the recorded app. At the end tlsrec waits for it.

import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, createWriteStream, existsSync, linkSync, openSync, readFileSync, readSync, rmSync, statSync, type WriteStream } from 'node:fs';
import { constants as osConstants, getPriority, setPriority } from 'node:os';
import { writeFile } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { AppError, EnvironmentError, InterruptedError, OutputError, RecordingLossError, TlsrecError, causeText } from '../errors.js';
import { argvInCgroup, Cgroup } from '../native/cgroup.js';
import { CaptureSession, type BackpressureStats } from '../native/capture.js';
import { formatBytes } from '../format-bytes.js';
import { BackgroundWriter, type BackgroundWriterSummary } from './background-writer.js';
import type { ReconstructStats } from './reconstruct.js';
import { writeEventLine } from './event-file.js';
import type { LossCounters } from '../model/events.js';
import { decodeRecords } from '../native/decode.js';
import { writeConfigEnv } from '../format/config-env.js';
import { writeConfigProto } from '../format/config-proto.js';

export interface RecordOptions {
  command: string[];
  dir: string;
  testSet?: string;
  /** tlsrec.yaml: written with the command and app port when it does not exist yet. */
  configPath: string;
  redact: boolean;
  extraRedactHeaders: string[];
  dumpEvents?: string;
  ringbufBytes: number;
  /** Pause the command when this much captured payload waits to be written (0: never pause). */
  maxBacklogBytes: number;
  quiet: boolean;
  verbose: boolean;
  /** Where the status line and summary go (stderr by default, so the command's stdout stays clean). */
  out?: NodeJS.WriteStream;
  /** Written into tlsrec.yaml `env:` after the recording (`record --env NAME`). */
  configEnv?: Record<string, string>;
  /** Directories of .proto files (`record --proto DIR`): written into tlsrec.yaml `proto:`, and gRPC messages decoded with them. */
  protoDirs?: string[];
  /** Added to the command's environment (rerecord: tlsrec.yaml `env:`). */
  commandEnv?: Record<string, string>;
  /**
   * Runs once the command has started (rerecord: wait until ready, send requests); when it settles
   * the command is stopped as by SIGTERM. Its signal aborts when the command exits first.
   */
  drive?: (commandExited: AbortSignal) => Promise<void>;
}

export interface RecordResult {
  exitCode: number;
  testSetDir: string;
  tests: number;
  mocks: number;
  /** Undefined when the writer process died before it could say. */
  stats: ReconstructStats | undefined;
  loss: LossCounters;
}

/** Grace period between SIGTERM and SIGKILL when stopping the recorded command. */
const STOP_GRACE_MS = 5000;

export async function recordCommand(opts: RecordOptions): Promise<RecordResult> {
  const out = opts.out ?? process.stderr;
  checkPrivileges();
  const resolved = resolveCommand(opts.command[0]!);

  const cgroup = Cgroup.create('record');
  let capture: CaptureSession | undefined;
  let dump: WriteStream | undefined;
  let writer: BackgroundWriter | undefined;
  try {
    const setWriter = await BackgroundWriter.start({
      rootDir: opts.dir,
      ...(opts.testSet === undefined ? {} : { testSet: opts.testSet }),
      redactHeaders: opts.redact ? opts.extraRedactHeaders : undefined,
      redact: opts.redact,
      ...(opts.protoDirs ? { protoDirs: opts.protoDirs } : {}),
      commandCgroup: cgroup.path,
    });
    writer = setWriter;

    if (opts.dumpEvents) dump = createWriteStream(opts.dumpEvents);
    const onRecords = (records: Buffer): void => {
      // Decoded here only for --dump-events (a debugging aid): the writer process decodes them.
      if (dump) for (const ev of decodeRecords(records)) dump.write(writeEventLine(ev) + '\n');
      // Spooled as captured (in a moment, many runs a write); the writer process makes exchanges of them.
      setWriter.writeRecords(records);
    };

    const priority = new RecorderPriority();
    capture = await CaptureSession.start({
      cgroup,
      ringbufBytes: opts.ringbufBytes,
      maxBacklogBytes: opts.maxBacklogBytes,
      extraBinaries: resolved.binaries,
      onRecords,
      onBehind: (behind) => priority.setBehind(behind),
      onWarning: (msg: string) => {
        if (opts.verbose) out.write(`tlsrec: ${msg}\n`);
      },
    });

    const status = opts.quiet || !out.isTTY ? undefined : startStatusLine(out, () => ({ ...setWriter.written(), bytes: capture?.capturedBytes() ?? 0 }), setWriter.dir);
    const { code, stoppedByUser } = await runInCgroup(cgroup, opts.command, resolved.path, priority, opts.commandEnv, opts.drive);
    priority.stopYielding();
    setWriter.hurry();
    status?.stop();

    const pressure = capture.backpressure();
    const attach = capture.attachStats();
    const loss = await capture.stop();
    if (opts.verbose) {
      out.write(
        `tlsrec: OpenSSL probes on ${attach.filesAttached} file(s)` +
          (capture.onMap ? `; processes waited ${attach.stops} time(s), ${attach.stoppedMs} ms in all, while tlsrec looked at files they mapped\n` : ' (attached up front)\n'),
      );
    }
    capture = undefined;
    const written = await waitForWriter(setWriter, (remaining) => {
      if (!opts.quiet) out.write(`tlsrec: writing the rest of the recording (${formatBytes(remaining)} of captured traffic) to files... (Ctrl-C: leave it to finish in the background)\n`);
    }, (signal) => {
      writer = undefined; // left running: nothing to wait for in `finally`
      const remaining = setWriter.leaveRunning();
      out.write(`tlsrec: not waiting: the writer process (pid ${setWriter.pid}) goes on writing the rest (${formatBytes(remaining)} of captured traffic) to ${setWriter.dir}\n`);
      return new InterruptedError(signal, 'write recording', 'the files are being finished in the background');
    });
    dump?.end();
    let firstWriteError: unknown = written.lateErrors[0];

    if (!opts.quiet) printSummary(out, setWriter.dir, written, loss, pressure);
    try {
      await writeConfigIfAbsent(opts.configPath, opts.command, written.appPort);
      if (opts.configEnv) writeConfigEnv(opts.configPath, opts.configEnv);
      if (opts.protoDirs) writeConfigProto(opts.configPath, opts.protoDirs);
    } catch (err) {
      // Said on its own line: the exchanges' error below may hide it otherwise.
      out.write(`tlsrec: warning: ${causeText(err)}\n`);
      firstWriteError ??= err;
    }
    if (firstWriteError !== undefined) {
      throw new OutputError(`could not write ${notWrittenText(written) ?? 'the recording'}: ${causeText(firstWriteError)}`, {
        stage: 'write recording',
        hint:
          (firstWriteError instanceof TlsrecError ? firstWriteError.hint : undefined) ??
          'check free disk space and permissions of the output directory; exchanges already written are complete',
        cause: firstWriteError,
      });
    }
    if (loss.ringbufFull + loss.readFault > 0) {
      throw new RecordingLossError(
        `the recording is incomplete: the kernel lost ${formatBytes(loss.bytesLost)} in ${loss.ringbufFull + loss.readFault} event(s)`,
        {
          stage: 'capture',
          hint: 'complete exchanges were written and the ones the loss touched are listed above; record again with a larger --ringbuf (e.g. 256M)',
        },
      );
    }
    return {
      exitCode: stoppedByUser ? 0 : code,
      testSetDir: setWriter.dir,
      tests: written.tests,
      mocks: written.mocks,
      stats: written.stats,
      loss,
    };
  } finally {
    if (capture) await capture.stop().catch(() => undefined);
    await writer?.close(); // no-op when done above; otherwise lets the writer finish what it has
    dump?.end();
    if (!(await cgroup.destroy())) {
      out.write(`tlsrec: warning: could not remove ${cgroup.path} (processes still exiting); remove it with rmdir later\n`);
    }
  }
}

/** Root, or the capabilities BPF programs and uprobes need. */
function checkPrivileges(): void {
  if (process.getuid?.() === 0) return;
  const status = readFileSync('/proc/self/status', 'utf8');
  const capEff = BigInt('0x' + (/^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1] ?? '0'));
  const has = (bit: number) => (capEff & (1n << BigInt(bit))) !== 0n;
  const CAP_SYS_ADMIN = 21;
  const CAP_PERFMON = 38;
  const CAP_BPF = 39;
  if (has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))) return;
  throw new EnvironmentError('recording needs root: loading eBPF programs and uprobes is privileged', {
    code: 'TLSREC_E_PRIVILEGES',
    stage: 'check privileges',
    hint: `run it as root: sudo ${howInvoked()}  (or grant CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)`,
  });
}

/** The command line as the user typed it, more or less: `npx tlsrec ...` when run from node_modules. */
function howInvoked(): string {
  const [script = 'tlsrec', ...args] = process.argv.slice(1);
  const prog = script.includes('node_modules') ? 'npx tlsrec' : script.endsWith('bin/tlsrec.js') ? 'tlsrec' : script;
  return [prog, ...args.map(shellQuote)].join(' ');
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Find the command on PATH, and the binaries worth attaching uprobes to before it starts: the
 * executable itself and, for scripts, the interpreter named on the #! line.
 */
function resolveCommand(name: string): { path: string; binaries: string[] } {
  const candidates = name.includes('/')
    ? [resolve(name)]
    : (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter).filter(Boolean).map((d) => join(d, name));
  for (const file of candidates) {
    try {
      if (!statSync(file).isFile()) continue;
      accessSync(file, constants.X_OK);
    } catch {
      continue;
    }
    const binaries = [file, ...interpreterOf(file)];
    return { path: file, binaries };
  }
  throw new AppError(`command not found: ${name}`, {
    stage: 'start command',
    hint: name.includes('/') ? 'check the path and that the file is executable' : `is ${name} installed and on PATH?`,
  });
}

function interpreterOf(file: string): string[] {
  // Only the first line matters: never read a whole (100 MB) executable for it.
  let head: string;
  try {
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(256);
      head = buf.toString('latin1', 0, readSync(fd, buf, 0, buf.length, 0));
    } finally {
      closeSync(fd);
    }
  } catch {
    return [];
  }
  if (!head.startsWith('#!')) return [];
  const parts = head.slice(2).split('\n')[0]!.trim().split(/\s+/);
  if (parts[0]?.endsWith('/env') && parts[1]) {
    try {
      return [resolveCommand(parts[1] === '-S' ? parts[2] ?? '' : parts[1]).path];
    } catch {
      return [];
    }
  }
  return parts[0] && isAbsolute(parts[0]) ? [parts[0]] : [];
}

/**
 * Waits for the writer process to finish; a Ctrl-C (or SIGTERM) meanwhile stops the waiting, not
 * the writing: `onSignal` leaves the writer running and gives the error to exit with.
 */
async function waitForWriter(
  writer: BackgroundWriter,
  onWaiting: (remaining: number) => void,
  onSignal: (signal: NodeJS.Signals) => InterruptedError,
): Promise<BackgroundWriterSummary> {
  let rejectWait: (err: InterruptedError) => void = () => undefined;
  const interrupted = new Promise<never>((_, reject) => (rejectWait = reject));
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((sig) => {
    const h = (): void => rejectWait(onSignal(sig));
    process.once(sig, h);
    return [sig, h] as const;
  });
  try {
    return await Promise.race([writer.close(onWaiting), interrupted]);
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
  }
}

/** nice value of the recorder's main thread while the command runs and tlsrec keeps up. */
const RECORDER_NICE = 10;

/**
 * The recorder's own thread yields to the app: under contention the app's requests come first and
 * the ring buffer and backlog absorb the delay. Measured with a 200 µs handler under wrk:
 * throughput 0.88 -> 0.96 of no capture, p99 1.75x -> 1.36x (HTTPS server); 0.80 -> 0.97, p99
 * 3.5x -> 1.03x (app calling an HTTPS upstream). When the backlog grows (CaptureSession's
 * onBehind) it competes as an equal again, so the app slows a little instead of being paused for
 * long. TLSREC_RECORDER_NICE (0-19) overrides the nice value, for measuring.
 */
class RecorderPriority {
  private readonly nice: number;
  /** The nice value tlsrec was started with (`nice -n 5 tlsrec …`): never raised above that. */
  private readonly base = getPriority();
  private yielding = false;
  private behind = false;

  constructor() {
    const wanted = Number(process.env.TLSREC_RECORDER_NICE ?? RECORDER_NICE);
    this.nice = Math.max(this.base, Number.isInteger(wanted) ? Math.min(19, Math.max(0, wanted)) : RECORDER_NICE);
  }

  startYielding(): void {
    this.yielding = true;
    this.apply();
  }

  /** The command has ended: the rest (draining, stopping) is best done quickly. */
  stopYielding(): void {
    this.yielding = false;
    this.apply();
  }

  setBehind(behind: boolean): void {
    this.behind = behind;
    this.apply();
  }

  private apply(): void {
    const nice = this.yielding && !this.behind ? this.nice : this.base;
    try {
      setPriority(nice); // this thread only (Linux); lowering it again needs CAP_SYS_NICE, which root has
    } catch {
      // stays where it was
    }
  }
}

/**
 * Run the command in the cgroup with the terminal passed through. Resolves when the command has
 * exited (by itself, or because the user pressed Ctrl-C / sent SIGTERM) and the cgroup is empty.
 */
async function runInCgroup(
  cgroup: Cgroup,
  command: string[],
  resolvedPath: string,
  priority: RecorderPriority,
  env?: Record<string, string>,
  drive?: (commandExited: AbortSignal) => Promise<void>,
): Promise<{ code: number; stoppedByUser: boolean }> {
  const argv = argvInCgroup(cgroup, [resolvedPath, ...command.slice(1)]);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit', ...(env ? { env: { ...process.env, ...env } } : {}) });
  priority.startYielding(); // the app was started at normal priority just above
  let stoppedByUser = false;
  let killTimer: NodeJS.Timeout | undefined;
  const stop = (signal: NodeJS.Signals) => {
    if (stoppedByUser) {
      // A second Ctrl-C: no more waiting.
      cgroup.signalAll('SIGKILL');
      return;
    }
    stoppedByUser = true;
    // On a terminal Ctrl-C already reached the command (same process group); SIGTERM covers the rest.
    cgroup.signalAll(signal === 'SIGINT' ? 'SIGINT' : 'SIGTERM');
    killTimer = setTimeout(() => cgroup.signalAll('SIGKILL'), STOP_GRACE_MS);
  };
  const onInt = () => stop('SIGINT');
  const onTerm = () => stop('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  process.on('SIGHUP', onTerm);
  const exited = new AbortController();
  // Settles without throwing: the driver reports its own outcome to its caller.
  const stopAfterDrive = (): void => {
    if (!exited.signal.aborted) onTerm();
  };
  const driving = drive?.(exited.signal).then(stopAfterDrive, stopAfterDrive);
  try {
    const code = await new Promise<number>((resolveExit, reject) => {
      child.once('error', (err) =>
        reject(new AppError(`could not start ${command[0]}: ${causeText(err)}`, { stage: 'start command', cause: err })),
      );
      child.once('exit', (c, sig) => resolveExit(c ?? (sig ? 128 + (osConstants.signals[sig] ?? 0) : 1)));
    });
    // The command is gone; whatever it left behind in its cgroup is stopped too.
    if (cgroup.pids().length > 0) {
      cgroup.signalAll('SIGTERM');
      if (!(await cgroup.waitEmpty(STOP_GRACE_MS))) cgroup.signalAll('SIGKILL');
      await cgroup.waitEmpty(STOP_GRACE_MS);
    }
    exited.abort();
    await driving;
    return { code, stoppedByUser };
  } finally {
    exited.abort();
    if (killTimer) clearTimeout(killTimer);
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    process.off('SIGHUP', onTerm);
  }
}


async function writeConfigIfAbsent(path: string, command: string[], appPort: number | undefined): Promise<void> {
  if (existsSync(path)) return;
  const doc: Record<string, unknown> = { command };
  if (appPort !== undefined) doc.appPort = appPort;
  doc.noise = {};
  doc.passthrough = [];
  const text =
    '# tlsrec configuration: written by `tlsrec record`, meant to be edited.\n' +
    '# command: how `tlsrec test` starts the app; appPort: where it listens.\n' +
    '# noise: fields ignored in every test, e.g. {"header.X-Request-Id": [], "body.createdAt": []}\n' +
    '# passthrough: outgoing destinations not served from mocks, e.g. ["127.0.0.1:5432"]\n' +
    stringify(doc);
  // Written whole to a private name, then linked into place: a full disk never leaves a truncated
  // tlsrec.yaml behind (which later recordings would take as the user's), and link() never
  // replaces a file someone created meanwhile.
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, text, { flag: 'wx' });
    linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new OutputError(`cannot write ${path}: ${causeText(err)}`, {
        stage: 'write config',
        hint: `write it by hand: command: ${JSON.stringify(command)}${appPort === undefined ? '' : `, appPort: ${appPort}`}`,
        cause: err,
      });
    }
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** What could not be written ("3 exchange(s) and 1.2 MiB of captured traffic"), undefined for nothing. */
function notWrittenText(written: BackgroundWriterSummary): string | undefined {
  const parts: string[] = [];
  if (written.notWritten > 0) parts.push(`${written.notWritten} exchange(s)`);
  if (written.notWrittenBytes > 0) parts.push(`${formatBytes(written.notWrittenBytes)} of captured traffic`);
  return parts.length > 0 ? parts.join(' and ') : undefined;
}

/** The live line on a terminal: files written so far (they lag under load: the writer waits for idle CPU), bytes captured. */
function startStatusLine(out: NodeJS.WriteStream, progress: () => { tests: number; mocks: number; bytes: number }, dir: string) {
  let last = '';
  const draw = () => {
    const now = progress();
    const line = `● tlsrec recording to ${dir}: ${formatBytes(now.bytes)} captured, ${now.tests} tests and ${now.mocks} mocks written`;
    if (line === last) return;
    last = line;
    out.write(`\x1b[2K\r${line}\r`);
  };
  draw();
  const timer = setInterval(draw, 250);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      out.write('\x1b[2K\r');
    },
  };
}

function printSummary(
  out: NodeJS.WritableStream,
  dir: string,
  written: BackgroundWriterSummary,
  loss: LossCounters,
  pressure: BackpressureStats,
): void {
  const lines: string[] = [];
  const stats = written.stats;
  lines.push(`tlsrec: recorded ${written.tests} test(s) and ${written.mocks} mock(s) in ${dir}`);
  if (stats === undefined) {
    lines.push('  traffic: unknown (the writer process stopped before it could say)');
  } else {
    lines.push(`  traffic: ${formatBytes(stats.bytesIn)} in, ${formatBytes(stats.bytesOut)} out on ${stats.connections} connection(s)`);
  }
  if (stats !== undefined && stats.skipped.length > 0) {
    const byReason = new Map<string, number>();
    for (const s of stats.skipped) byReason.set(s.reason, (byReason.get(s.reason) ?? 0) + 1);
    const parts = [...byReason].map(([r, n]) => `${n} ${r}`).join(', ');
    lines.push(`  skipped: ${stats.skipped.length} stream(s) or message(s) (${parts})`);
    for (const s of stats.skipped.slice(0, 5)) lines.push(`    - ${s.reason}: ${s.detail} (${formatBytes(s.bytes)})`);
    if (stats.skipped.length > 5) lines.push(`    … and ${stats.skipped.length - 5} more`);
  } else if (stats !== undefined) {
    lines.push('  skipped: 0 streams');
  }
  const lost = loss.ringbufFull + loss.readFault;
  if (lost > 0 || loss.bytesLost > 0) {
    lines.push(
      `  WARNING: LOST ${formatBytes(loss.bytesLost)} in ${lost} kernel event(s) ` +
        `(ring buffer full: ${loss.ringbufFull}, read faults: ${loss.readFault}).`,
      '  Exchanges touched by the loss were reported above as skipped, not written. Try a larger --ringbuf (e.g. --ringbuf 256M).',
    );
  } else {
    lines.push('  lost: 0 bytes');
  }
  if (pressure.pauses > 0) {
    lines.push(
      `  paused the command ${pressure.pauses} time(s), ${(pressure.pausedMs / 1000).toFixed(1)} s in all, so that nothing was lost ` +
        `(backlog peaked at ${formatBytes(pressure.peakBacklogBytes)}; --max-backlog sets the limit)`,
    );
  }
  const notWritten = notWrittenText(written);
  if (notWritten !== undefined) lines.push(`  WARNING: ${notWritten} could not be written`);
  out.write(lines.join('\n') + '\n');
}
