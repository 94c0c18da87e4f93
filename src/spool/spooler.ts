// `record` writes its files in a second process at the lowest CPU priority, so that
// reconstructing HTTP, rendering YAML and creating files do not take CPU from the app being
// recorded.
//
// Why: per exchange, creating a test file cost 0.06-0.4 ms of kernel time on these machines,
// rendering it ~0.05 ms and reconstructing it ~0.02-0.03 ms; under load every one of those
// milliseconds is taken from the recorded app (bench/overhead.mjs). So the recorder only copies
// the captured records, as the kernel wrote them (native/decode.ts), to a spool, encrypted by
// spool-cipher.ts, many runs a write(2); the writer process (writer-process.ts, idle CPU class,
// and pacing itself while it is not far behind) reconstructs the exchanges and writes test files
// and mocks.yaml, in order, whenever the CPU has time, and is raised to normal priority, unpaced,
// and waited for when recording ends. Measured: the recorder's CPU under a bare HTTPS load went
// from 34 % to 10 % of a core when it stopped reconstructing (bench/README.md, session 5), and to
// 6-7 % when it stopped decoding and re-encoding the records (session 6).
//
// Nothing is lost when tlsrec dies: the spool is on disk before the writer reads it, and the
// writer, seeing its stdin close, writes everything complete and exits. If the writer dies,
// tlsrec reports how much captured traffic it had not written yet.

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { fileURLToPath } from 'node:url';
import { causeText, OutputError } from '../errors.js';
import { formatBytes } from '../format-bytes.js';
import type { ReconstructStats } from '../record/reconstruct.js';
import { SPOOL_KEY_ENV, SpoolCipher } from './cipher.js';
import { SpoolWriteError, SpoolWriter } from './segments.js';
import { setIdleScheduling } from '../native/ffi.js';
import { defaultMonoToWallNs, outputError, TestSetWriter, type WriterOptions, type WriterSummary } from '../format/test-set-writer.js';

/** Started with this (JSON in argv[2]). */
export interface WriterProcessConfig {
  setDir: string;
  prefix: string;
  writer: Omit<WriterOptions, 'monoToWallNs'> & { testSet: string };
  /**
   * Kernel time → epoch offset (ns, decimal), measured once by tlsrec so that the timestamps in the
   * files are what tlsrec saw, whatever the writer process would measure itself.
   */
  monoToWallNs: string;
  /**
   * The recorded command's cgroup: if tlsrec dies without saying it stopped the capture (SIGKILL),
   * the writer process lets the command's processes go on (Cgroup.release).
   */
  commandCgroup?: string;
}

export interface BackgroundWriterOptions extends WriterOptions {
  /** The writer process's script. Default: writer-process-main.js next to this module. */
  writerScript?: string;
  /** See WriterProcessConfig.commandCgroup. */
  commandCgroup?: string;
}

/** A file the writer process could not write: its OutputError's message and hint, the errno code. */
export interface WriterFailure {
  message: string;
  code?: string;
  hint?: string;
}

/** Files written so far, and how many bytes of records (unencrypted) were read from the spool. */
export interface WriterProgress {
  tests: number;
  mocks: number;
  bytes: number;
}

/** What the writer process says on stdout, one JSON object a line. */
export type WriterReport =
  | { progress: WriterProgress }
  | { failure: WriterFailure }
  | { end: WriterSummary; leftover: number; stats: ReconstructStats; appPort?: number };

export interface BackgroundWriterSummary extends WriterSummary {
  /** Exchanges reconstructed that did not reach the files (each is behind one of lateErrors). */
  notWritten: number;
  /** Captured bytes (records) that never reached the writer: the spool failed, or the writer died. */
  notWrittenBytes: number;
  /** Why: the failures met after writeRecords had returned. */
  lateErrors: OutputError[];
  /** What reconstruction made of the traffic; undefined when the writer process died. */
  stats?: ReconstructStats;
  /** The port the app served on, from the first request it received. */
  appPort?: number;
}

/**
 * The line tlsrec writes on the writer's stdin just before closing it, once its capture has
 * stopped. (Any earlier line means the recorded command has ended: stop pacing.)
 */
export const RECORDER_DONE = 'capture-stopped';

/**
 * Queued batches are written to the spool after this long, or once this much is queued: one
 * write(2) for many batches (a write cost ~90 µs of the recorder's time on these machines,
 * whatever its size), and the spool is never more than a moment behind the capture.
 */
const FLUSH_MS = 20;
const FLUSH_BYTES = 1024 * 1024;

const WRITER_SCRIPT = fileURLToPath(new URL('../record/file-writer-main.js', import.meta.url));

/**
 * The writer's CPU priority: idle class while recording (it runs when a CPU has nothing else to
 * do, and yields at once to the app), normal at the end. Nice 19 was not enough: with the
 * scheduler's autogroups (sched_autogroup_enabled, the default on most distributions and on these
 * machines) a nice value only counts within a session, and even in tlsrec's session a nice-19
 * writer took a fifth to a third of a core from a busy app (measured). Best effort: failing both,
 * the writer runs at normal priority, which is slower for the app, not wrong.
 */
function setBackground(pid: number, background: boolean): void {
  if (setIdleScheduling(pid, background)) return;
  try { os.setPriority(pid, background ? 19 : 0); } catch { /* see above */ }
}

/**
 * V8's young generation at 1 MiB semi-spaces instead of 16: the writer's live heap is a few MiB
 * (one exchange at a time), and the default reserve was a third of its memory (measured: peak
 * ~110 -> ~90 MB recording 1 GiB of 2 MiB bodies, in bench/README.md).
 */
const WRITER_NODE_FLAGS = ['--max-semi-space-size=1'];

export class BackgroundWriter {
  readonly dir: string;
  readonly name: string;
  private readonly spool: SpoolWriter;
  private readonly cipher = SpoolCipher.generate();
  private readonly child: ChildProcess;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>;
  private progress: WriterProgress = { tests: 0, mocks: 0, bytes: 0 };
  private end: Extract<WriterReport, { end: unknown }> | undefined;
  private readonly failures: WriterFailure[] = [];
  /** Records not yet in the spool: sealed into one frame and written by flush(). */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private spooledBytes = 0;
  /** Captured bytes that never reached the spool (disk full), and why. */
  private notSpooledBytes = 0;
  private firstSpoolError: OutputError | undefined;
  private closed: Promise<BackgroundWriterSummary> | undefined;
  private hurried = false;

  private constructor(setWriter: TestSetWriter, opts: BackgroundWriterOptions) {
    this.dir = setWriter.dir;
    this.name = setWriter.name;
    const prefix = `.tlsrec-spool-${process.pid}`;
    this.spool = new SpoolWriter(this.dir, prefix);
    const { monoToWallNs, writerScript, commandCgroup, ...writerOpts } = opts;
    const config: WriterProcessConfig = {
      setDir: this.dir,
      prefix,
      writer: { ...writerOpts, testSet: this.name },
      monoToWallNs: (monoToWallNs ?? defaultMonoToWallNs()).toString(),
      ...(commandCgroup === undefined ? {} : { commandCgroup }),
    };
    // Not detached, so it stays in the app's scheduling group (see setBackground): the terminal's
    // Ctrl-C reaches it too, and it ignores that. The key goes in the environment, which only
    // the process's owner can read (/proc/<pid>/environ), never on the world-readable command line.
    this.child = spawn(process.execPath, [...WRITER_NODE_FLAGS, writerScript ?? WRITER_SCRIPT, JSON.stringify(config)], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, [SPOOL_KEY_ENV]: this.cipher.keyHex() },
    });
    this.exited = new Promise((resolve) => {
      this.child.once('error', (error) => resolve({ code: null, signal: null, error }));
      this.child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    if (this.child.pid !== undefined) setBackground(this.child.pid, true);
    this.child.stdin?.on('error', () => undefined); // it died: close() says so
    let buffered = '';
    this.child.stdout?.setEncoding('utf8');
    this.child.stdout?.on('data', (text: string) => {
      buffered += text;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        this.onReport(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
    });
  }

  /** Creates (or continues) the test set, as TestSetWriter.create does, and starts the writer process. */
  static async start(opts: BackgroundWriterOptions = {}): Promise<BackgroundWriter> {
    const setWriter = await TestSetWriter.create(opts);
    await setWriter.close(); // it only claimed the directory and installed the schemas
    try {
      return new BackgroundWriter(setWriter, opts);
    } catch (err) {
      throw outputError('the spool in', setWriter.dir, err);
    }
  }

  /**
   * Queues captured records (whole ones, in the ring's format: CaptureOptions.onRecords), kept
   * as they are until they are written; they reach the spool within FLUSH_MS, when 1 MiB is
   * queued, or at flush(). Never throws: records that cannot be spooled are counted and reported
   * by close().
   */
  writeRecords(records: Buffer): void {
    if (records.length === 0) return;
    this.pending.push(records);
    this.pendingBytes += records.length;
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
    else this.flushTimer ??= setTimeout(() => this.flush(), FLUSH_MS).unref();
  }

  /** Writes the queued records to the spool, as one encrypted frame in one write. */
  flush(): void {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    if (this.pending.length === 0) return;
    const batches = this.pending;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    if (this.firstSpoolError) {
      // After the first failure (a full disk, mostly) nothing more is spooled: the files then hold
      // a prefix of the recording without holes, rather than whatever happened to fit later.
      this.notSpooledBytes += bytes;
      return;
    }
    try {
      this.spool.append(this.cipher.seal(batches));
      this.spool.flush();
      this.spooledBytes += bytes;
    } catch (err) {
      this.spool.discard();
      this.notSpooledBytes += bytes;
      this.firstSpoolError ??= outputError('captured traffic to the spool in', this.dir, err instanceof SpoolWriteError ? err.cause : err);
    }
  }

  /** What the writer has written so far. */
  written(): { tests: number; mocks: number } {
    return { tests: this.progress.tests, mocks: this.progress.mocks };
  }

  /** Captured bytes in the spool that the writer has not reported handled yet. */
  private remainingBytes(): number {
    return Math.max(0, this.spooledBytes - this.progress.bytes);
  }

  /** No more appends: the rest goes to the spool, and the writer, at normal priority, sees the end. */
  private endSpool(): void {
    this.flush();
    try {
      this.spool.close();
    } catch {
      // nothing queued after the flush above: closing the file cannot lose anything
    }
    this.hurry();
    // Only ever after the capture has stopped (it continued every process it had stopped): the
    // writer must not. A stdin that closes without this line means tlsrec died.
    this.child.stdin?.write(`${RECORDER_DONE}\n`);
    this.child.stdin?.end();
  }

  /**
   * The recorded command has ended: the writer runs at normal priority and without pauses from
   * now on, so that it catches up while tlsrec drains the ring and detaches its probes (~2 s)
   * rather than after.
   */
  hurry(): void {
    if (this.hurried) return;
    this.hurried = true;
    if (this.child.pid !== undefined && this.child.exitCode === null) setBackground(this.child.pid, false);
    this.child.stdin?.write('\n'); // and it stops pacing itself (writer-process.ts)
  }

  /** The writer process's pid (for messages), undefined if it could not be started. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /**
   * Stop waiting for the writer: what is queued goes to the spool, and the writer process, at
   * normal priority, finishes writing it on its own (it also ignores the terminal's Ctrl-C).
   * For a user who does not want to wait; returns how many captured bytes it still had to handle.
   */
  leaveRunning(): number {
    this.endSpool();
    this.child.stdout?.destroy(); // no reports needed any more
    this.child.unref(); // tlsrec may exit before it
    this.closed ??= Promise.reject(new Error('BackgroundWriter: left running'));
    this.closed.catch(() => undefined);
    return this.remainingBytes();
  }

  private onReport(line: string): void {
    let report: WriterReport;
    try {
      report = JSON.parse(line) as WriterReport;
    } catch {
      return;
    }
    if ('progress' in report) this.progress = report.progress;
    else if ('failure' in report) this.failures.push(report.failure);
    else this.end = report;
  }

  /**
   * No more records: raises the writer to normal priority and waits for it to write the rest.
   * `onWaiting` hears, once, how many captured bytes are left if that takes more than a second.
   */
  close(onWaiting?: (remainingBytes: number) => void): Promise<BackgroundWriterSummary> {
    this.closed ??= (async () => {
      this.endSpool();
      const slow = setTimeout(() => onWaiting?.(this.remainingBytes()), 1000);
      const exit = await this.exited;
      clearTimeout(slow);
      const lateErrors = this.failures.map((f) => new OutputError(f.message, {
        stage: 'write recording',
        ...(f.hint ? { hint: f.hint } : {}),
        cause: Object.assign(new Error(f.message), f.code ? { code: f.code } : {}),
      }));
      if (this.firstSpoolError) lateErrors.unshift(this.firstSpoolError);
      if (this.end) {
        if (this.end.leftover > 0) {
          lateErrors.push(new OutputError(`the spool ended in an incomplete record (${this.end.leftover} bytes)`, { stage: 'write recording' }));
        }
        return {
          ...this.end.end,
          lateErrors,
          notWritten: this.end.end.failedTests + this.end.end.failedMocks,
          notWrittenBytes: this.notSpooledBytes,
          stats: this.end.stats,
          ...(this.end.appPort === undefined ? {} : { appPort: this.end.appPort }),
        };
      }
      // The writer died. What it wrote is on disk; the rest of the spool cannot be read without
      // the key, which ends with this process: it is removed rather than left as litter.
      const how = exit.error ? causeText(exit.error) : exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
      const missing = this.remainingBytes();
      this.spool.remove();
      lateErrors.push(new OutputError(`the writer process stopped early (${how}); ${formatBytes(missing)} of captured traffic was not written`, {
        stage: 'write recording',
        hint: 'the exchanges written before are complete; please report this as a bug',
      }));
      return {
        tests: this.progress.tests,
        mocks: this.progress.mocks,
        failedTests: 0,
        failedMocks: 0,
        lateErrors,
        notWritten: 0,
        notWrittenBytes: this.notSpooledBytes + missing,
      };
    })();
    return this.closed;
  }
}

