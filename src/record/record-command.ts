// The engine of `tlsrec record`: run a command in a cgroup of its own, capture its traffic with
// eBPF, and have it rebuilt into HTTP exchanges and written as tests and mocks.
//
//   preflight ─▶ cgroup ─▶ capture (kernel) ─▶ spool ─▶ file-writer process (idle CPU): reconstruct, files
//                    └──▶ spawn command ──▶ exits / interrupt ─▶ stop cgroup ─▶ drain ─▶ summary
//
// The recorder itself only copies the captured records to the spool (src/spool/); reconstructing,
// rendering YAML and creating files happen in the file-writer process so that they do not take CPU
// from the recorded app. At the end the engine waits for it. It prints nothing: it tells its
// caller what happens through a RecordObserver (the CLI draws the status line and summary from
// it) and returns a RecordResult.

import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, type WriteStream } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MAX_BACKLOG_BYTES, DEFAULT_RINGBUF_BYTES } from '../capture/defaults.js';
import {
  AppError,
  EnvironmentError,
  InterruptedError,
  OutputError,
  RecordingLossError,
  TlsrecError,
  causeText,
} from '../errors.js';
import { formatBytes } from '../format-bytes.js';
import { writeConfigIfAbsent } from '../format/config-file.js';
import { writeConfigEnv } from '../format/config-env.js';
import { writeConfigProto } from '../format/config-proto.js';
import { loadConfig } from '../format/config-reader.js';
import { DEFAULT_SECRETS_FILE, ensureGitignored } from '../format/secrets-file.js';
import type { LossCounters } from '../model/events.js';
import { CaptureSession, type BackpressureStats } from '../capture/capture-session.js';
import { argvInCgroup, Cgroup } from '../native/cgroup.js';
import { resolveCommand } from '../native/command-path.js';
import { decodeRecords } from '../capture/decode.js';
import { mayLoadBpf } from '../native/privileges.js';
import { RecorderPriority } from '../native/recorder-priority.js';
import { shellWord } from '../shell-quote.js';
import { notWrittenText, Spooler, type SpoolerSummary } from '../spool/spooler.js';
import { writeEventLine } from './event-file.js';
import type { ReconstructStats } from './reconstruct.js';

export interface RecordOptions {
  command: string[];
  dir: string;
  testSet?: string;
  /** tlsrec.yaml: written with the command and app port when it does not exist yet. */
  configPath: string;
  redact: boolean;
  extraRedactHeaders: string[];
  dumpEvents?: string;
  /** Kernel ring buffer size. Default DEFAULT_RINGBUF_BYTES. */
  ringbufBytes?: number;
  /** Pause the command when this much captured payload waits to be written (0: never pause). */
  maxBacklogBytes?: number;
  /** Hears what happens as the recording goes (status, messages, the summary). */
  observer?: RecordObserver;
  /**
   * Interrupts (Ctrl-C, SIGTERM, SIGHUP) from the user. While the command runs, the first stops it
   * and a second kills it; while the engine waits for the files, one stops the waiting and leaves
   * the file-writer process to finish. Without a source, nothing is subscribed.
   */
  interrupts?: InterruptSource;
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

/** Where interrupts come from; the CLI's processSignals() subscribes to the process's signals. */
export interface InterruptSource {
  /** Calls `handler` with each interrupt until the returned function is called. */
  subscribe(handler: (signal: NodeJS.Signals) => void): () => void;
}

/** Files written so far and bytes captured, for a live status line. */
export interface RecordProgress {
  tests: number;
  mocks: number;
  capturedBytes: number;
}

/** Where the OpenSSL probes went. */
export interface AttachReport {
  filesAttached: number;
  /** True when probes went on files as the command mapped them (attach on map), false when up front. */
  onMap: boolean;
  /** How often and how long processes waited while tlsrec looked at files they mapped. */
  stops: number;
  stoppedMs: number;
}

/** The end of a recording: what was written, what the kernel lost, how often the command was paused. */
export interface RecordSummary {
  testSetDir: string;
  files: SpoolerSummary<ReconstructStats>;
  loss: LossCounters;
  pressure: BackpressureStats;
}

/** What the engine tells its caller as the recording goes. Every method is optional. */
export interface RecordObserver {
  /** The capture runs and the command is being started; `progress` may be polled until commandEnded. */
  started?(testSetDir: string, progress: () => RecordProgress): void;
  /** The command has ended (by itself or stopped); the capture drains and stops next. */
  commandEnded?(): void;
  /** A detail of the capture worth showing with --verbose. */
  captureWarning?(message: string): void;
  /** The capture has stopped. */
  captureStopped?(attach: AttachReport): void;
  /** The files take longer than a second: this much captured traffic is left to write. */
  waitingForFiles?(remainingBytes: number): void;
  /** Interrupted while waiting: the file-writer process (pid) goes on writing in the background. */
  leftRunning?(pid: number | undefined, remainingBytes: number, testSetDir: string): void;
  /** The files are done. Called before any error about them is thrown. */
  finished?(summary: RecordSummary): void;
  /** Secrets kept out of the files were written to this file (mode 0600, in .gitignore). */
  secretsKept?(file: string): void;
  /** Something that went wrong without stopping the recording (tlsrec.yaml, a cgroup left behind). */
  warning?(message: string): void;
}

export interface RecordResult {
  exitCode: number;
  testSetDir: string;
  tests: number;
  mocks: number;
  /** Undefined when the file-writer process died before it could say. */
  stats: ReconstructStats | undefined;
  loss: LossCounters;
}

/** Grace period between SIGTERM and SIGKILL when stopping the recorded command. */
const STOP_GRACE_MS = 5000;

/** The file-writer process's entry (compiled next to this module). */
const FILE_WRITER_SCRIPT = fileURLToPath(new URL('./file-writer-main.js', import.meta.url));

export async function recordCommand(opts: RecordOptions): Promise<RecordResult> {
  const observer = opts.observer ?? {};
  checkPrivileges();
  const resolved = resolveCommand(opts.command[0]!);

  // tlsrec.yaml's redaction rules and secrets file (a broken tlsrec.yaml stops here, before recording).
  const config = existsSync(opts.configPath) ? loadConfig(opts.configPath) : undefined;
  const secretsFile = resolve(config?.secretsFile ?? join(dirname(resolve(opts.configPath)), DEFAULT_SECRETS_FILE));
  const cgroup = Cgroup.create('record');
  let capture: CaptureSession | undefined;
  let dump: WriteStream | undefined;
  let spooler: Spooler<ReconstructStats> | undefined;
  try {
    const spool = await Spooler.start<ReconstructStats>({
      rootDir: opts.dir,
      ...(opts.testSet === undefined ? {} : { testSet: opts.testSet }),
      redactHeaders: opts.redact ? [...opts.extraRedactHeaders, ...(config?.redactHeaders ?? [])] : undefined,
      redactKeys: config?.redactKeys ?? [],
      redactPaths: config?.redactPaths ?? [],
      redact: opts.redact,
      ...(opts.protoDirs ? { protoDirs: opts.protoDirs } : {}),
      ...(opts.redact ? { secretsFile } : {}),
      commandCgroup: cgroup.path,
      fileWriterScript: FILE_WRITER_SCRIPT,
    });
    spooler = spool;

    if (opts.dumpEvents) dump = createWriteStream(opts.dumpEvents);
    const onRecords = (records: Buffer): void => {
      // Decoded here only for --dump-events (a debugging aid): the file-writer process decodes them.
      if (dump) for (const ev of decodeRecords(records)) dump.write(writeEventLine(ev) + '\n');
      spool.writeRecords(records);
    };

    const priority = new RecorderPriority();
    capture = await CaptureSession.start({
      cgroup,
      ringbufBytes: opts.ringbufBytes ?? DEFAULT_RINGBUF_BYTES,
      maxBacklogBytes: opts.maxBacklogBytes ?? DEFAULT_MAX_BACKLOG_BYTES,
      extraBinaries: resolved.binaries,
      onRecords,
      onBehind: (behind) => priority.setBehind(behind),
      onWarning: (msg: string) => observer.captureWarning?.(msg),
    });

    const running = capture;
    observer.started?.(spool.dir, () => ({ ...spool.written(), capturedBytes: running.capturedBytes() }));
    const { code, stoppedByUser } = await runInCgroup(
      cgroup,
      opts.command,
      resolved.path,
      priority,
      opts.interrupts,
      opts.commandEnv,
      opts.drive,
    );
    priority.stopYielding();
    spool.hurry();
    observer.commandEnded?.();

    const pressure = capture.backpressure();
    const attach = capture.attachStats();
    const loss = await capture.stop();
    observer.captureStopped?.({
      filesAttached: attach.filesAttached,
      onMap: capture.onMap,
      stops: attach.stops,
      stoppedMs: attach.stoppedMs,
    });
    capture = undefined;
    const files = await waitForFiles(
      spool,
      opts.interrupts,
      (remaining) => observer.waitingForFiles?.(remaining),
      (signal) => {
        spooler = undefined; // left running: nothing to wait for in `finally`
        observer.leftRunning?.(spool.pid, spool.leaveRunning(), spool.dir);
        return new InterruptedError(signal, 'write recording', 'the files are being finished in the background');
      },
    );
    dump?.end();
    let firstWriteError: unknown = files.lateErrors[0];

    observer.finished?.({ testSetDir: spool.dir, files, loss, pressure });
    if (opts.redact && existsSync(secretsFile)) {
      // Into .gitignore before anything else can commit it.
      try {
        const dir = dirname(secretsFile);
        ensureGitignored(dir, relative(dir, secretsFile));
      } catch (err) {
        observer.warning?.(`could not add ${secretsFile} to .gitignore: ${causeText(err)}`);
      }
      observer.secretsKept?.(secretsFile);
    }
    try {
      await writeConfigIfAbsent(opts.configPath, opts.command, files.appPort);
      if (opts.configEnv) writeConfigEnv(opts.configPath, opts.configEnv);
      if (opts.protoDirs) writeConfigProto(opts.configPath, opts.protoDirs);
    } catch (err) {
      // Said on its own: the exchanges' error below may hide it otherwise.
      observer.warning?.(causeText(err));
      firstWriteError ??= err;
    }
    if (firstWriteError !== undefined) {
      throw new OutputError(
        `could not write ${notWrittenText(files) ?? 'the recording'}: ${causeText(firstWriteError)}`,
        {
          stage: 'write recording',
          hint:
            (firstWriteError instanceof TlsrecError ? firstWriteError.hint : undefined) ??
            'check free disk space and permissions of the output directory; exchanges already written are complete',
          cause: firstWriteError,
        },
      );
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
      testSetDir: spool.dir,
      tests: files.tests,
      mocks: files.mocks,
      stats: files.stats,
      loss,
    };
  } finally {
    if (capture) await capture.stop().catch(() => undefined);
    await spooler?.close(); // no-op when done above; otherwise lets the file-writer process finish what it has
    dump?.end();
    if (!(await cgroup.destroy())) {
      observer.warning?.(`could not remove ${cgroup.path} (processes still exiting); remove it with rmdir later`);
    }
  }
}

/** Root, or the capabilities BPF programs and uprobes need. */
function checkPrivileges(): void {
  if (mayLoadBpf()) return;
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
  return [prog, ...args.map(shellWord)].join(' ');
}

/**
 * Waits for the file-writer process to finish; an interrupt meanwhile stops the waiting, not the
 * writing: `onInterrupt` leaves the process running and gives the error to exit with.
 */
async function waitForFiles(
  spool: Spooler<ReconstructStats>,
  interrupts: InterruptSource | undefined,
  onWaiting: (remaining: number) => void,
  onInterrupt: (signal: NodeJS.Signals) => InterruptedError,
): Promise<SpoolerSummary<ReconstructStats>> {
  let rejectWait: (err: InterruptedError) => void = () => undefined;
  const interrupted = new Promise<never>((_, reject) => (rejectWait = reject));
  let heard = false;
  const unsubscribe = interrupts?.subscribe((signal) => {
    if (heard) return;
    heard = true;
    rejectWait(onInterrupt(signal));
  });
  try {
    return await Promise.race([spool.close(onWaiting), interrupted]);
  } finally {
    unsubscribe?.();
  }
}

/**
 * Run the command in the cgroup with the terminal passed through. Resolves when the command has
 * exited (by itself, or because the user interrupted it) and the cgroup is empty.
 */
async function runInCgroup(
  cgroup: Cgroup,
  command: string[],
  resolvedPath: string,
  priority: RecorderPriority,
  interrupts: InterruptSource | undefined,
  env?: Record<string, string>,
  drive?: (commandExited: AbortSignal) => Promise<void>,
): Promise<{ code: number; stoppedByUser: boolean }> {
  const argv = argvInCgroup(cgroup, [resolvedPath, ...command.slice(1)]);
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: 'inherit',
    ...(env ? { env: { ...process.env, ...env } } : {}),
  });
  priority.startYielding(); // the app was started at normal priority just above
  let stoppedByUser = false;
  let killTimer: NodeJS.Timeout | undefined;
  const stop = (signal: NodeJS.Signals): void => {
    if (stoppedByUser) {
      // A second interrupt: no more waiting.
      cgroup.signalAll('SIGKILL');
      return;
    }
    stoppedByUser = true;
    // On a terminal Ctrl-C already reached the command (same process group); SIGTERM covers the rest.
    cgroup.signalAll(signal === 'SIGINT' ? 'SIGINT' : 'SIGTERM');
    killTimer = setTimeout(() => cgroup.signalAll('SIGKILL'), STOP_GRACE_MS);
  };
  const unsubscribe = interrupts?.subscribe(stop);
  const exited = new AbortController();
  // Settles without throwing: the driver reports its own outcome to its caller.
  const stopAfterDrive = (): void => {
    if (!exited.signal.aborted) stop('SIGTERM');
  };
  const driving = drive?.(exited.signal).then(stopAfterDrive, stopAfterDrive);
  try {
    const code = await new Promise<number>((resolveExit, reject) => {
      child.once('error', (err) =>
        reject(
          new AppError(`could not start ${command[0]}: ${causeText(err)}`, { stage: 'start command', cause: err }),
        ),
      );
      child.once('exit', (c, sig) => resolveExit(c ?? (sig ? 128 + (osConstants.signals[sig] ?? 0) : 1)));
    });
    // The command is gone; whatever it left behind in its cgroup is stopped too.
    if (cgroup.pids().length > 0) await cgroup.terminate(STOP_GRACE_MS, STOP_GRACE_MS);
    exited.abort();
    await driving;
    return { code, stoppedByUser };
  } finally {
    exited.abort();
    if (killTimer) clearTimeout(killTimer);
    unsubscribe?.();
  }
}
