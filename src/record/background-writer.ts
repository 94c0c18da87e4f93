// `record` writes its files in a second process at the lowest CPU priority, so that rendering
// YAML and creating files do not take CPU from the app being recorded.
//
// Why: per exchange, creating a test file cost 0.06-0.4 ms of kernel time on these machines and
// rendering it ~0.07 ms, against ~0.02 ms to reconstruct it; under load every one of those
// milliseconds is taken from the recorded app (bench/overhead.mjs). So the recorder only
// reconstructs exchanges and appends them to a spool (format/spool.ts, one write(2) per batch); the writer
// process (writer-process.ts, idle CPU class) turns the spool into test files and mocks.yaml, in order,
// whenever the CPU has time, and is raised to normal priority and waited for when recording ends.
//
// Nothing is lost when one side dies: the spool is on disk before the writer reads it. If tlsrec
// dies, the writer sees its stdin close, writes everything complete and exits. If the writer
// dies, tlsrec reports it and leaves the rest of the spool in the test set.

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { fileURLToPath } from 'node:url';
import { causeText, OutputError } from '../errors.js';
import type { Exchange } from './exchange.js';
import { encodeExchange } from './exchange-codec.js';
import { SpoolWriteError, SpoolWriter } from '../format/spool.js';
import { setIdleScheduling } from '../native/ffi.js';
import { defaultMonoToWallNs, outputError, TestSetWriter, type WriterOptions, type WriterSummary } from '../format/writer.js';

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
}

export interface BackgroundWriterOptions extends WriterOptions {
  /** The writer process's script. Default: writer-process-main.js next to this module. */
  writerScript?: string;
}

/** A file the writer process could not write: its OutputError's message and hint, the errno code. */
export interface WriterFailure {
  message: string;
  code?: string;
  hint?: string;
}

/** What the writer process says on stdout, one JSON object a line. */
export type WriterReport =
  | { progress: { tests: number; mocks: number } }
  | { failure: WriterFailure }
  | { end: WriterSummary; leftover: number };

export interface BackgroundWriterSummary extends WriterSummary {
  /** Exchanges queued that did not reach the files (each is behind one of lateErrors). */
  notWritten: number;
  /** Why: the failures the writer process met after writeExchange had returned. */
  lateErrors: OutputError[];
}

/** Queued exchanges are written to the spool at least this often (bytes), between flush() calls. */
const FLUSH_BYTES = 1024 * 1024;

const WRITER_SCRIPT = fileURLToPath(new URL('./writer-process-main.js', import.meta.url));

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
  private readonly child: ChildProcess;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>;
  private readonly encodeOpts: { redact?: boolean; redactHeaders?: readonly string[] };
  private progress = { tests: 0, mocks: 0 };
  private end: Extract<WriterReport, { end: unknown }> | undefined;
  private readonly failures: WriterFailure[] = [];
  private appended = 0;
  /** Exchanges that never reached the spool (disk full), and why. */
  private spoolFailures = 0;
  private firstSpoolError: OutputError | undefined;
  private closed: Promise<BackgroundWriterSummary> | undefined;

  private constructor(setWriter: TestSetWriter, opts: BackgroundWriterOptions) {
    this.dir = setWriter.dir;
    this.name = setWriter.name;
    this.encodeOpts = {
      ...(opts.redact === false ? { redact: false } : {}),
      ...(opts.redactHeaders ? { redactHeaders: opts.redactHeaders } : {}),
    };
    const prefix = `.tlsrec-spool-${process.pid}`;
    this.spool = new SpoolWriter(this.dir, prefix);
    const { monoToWallNs, writerScript, ...writerOpts } = opts;
    const config: WriterProcessConfig = {
      setDir: this.dir,
      prefix,
      writer: { ...writerOpts, testSet: this.name },
      monoToWallNs: (monoToWallNs ?? defaultMonoToWallNs()).toString(),
    };
    // Not detached, so it stays in the app's scheduling group (see setBackground): the terminal's
    // Ctrl-C reaches it too, and it ignores that.
    this.child = spawn(process.execPath, [...WRITER_NODE_FLAGS, writerScript ?? WRITER_SCRIPT, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'inherit'] });
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
   * Queues an exchange; it reaches the spool at the next flush() (or when 1 MiB is queued). Never
   * throws: an exchange that cannot be spooled is counted and reported by close().
   */
  writeExchange(ex: Exchange): void {
    this.spool.append(encodeExchange(ex, this.encodeOpts));
    this.appended++;
    if (this.spool.pendingBytes() >= FLUSH_BYTES) this.flush();
  }

  /** Writes the queued exchanges to the spool (one write). Called after each batch of events. */
  flush(): void {
    if (this.firstSpoolError) {
      // After the first failure (a full disk, mostly) nothing more is spooled: the files then hold
      // a prefix of the recording without holes, rather than whatever happened to fit later.
      this.spoolFailures += this.spool.discard();
      return;
    }
    try {
      this.spool.flush();
    } catch (err) {
      const e = err instanceof SpoolWriteError ? err : new SpoolWriteError(err, 0);
      this.spoolFailures += e.frames;
      this.firstSpoolError ??= outputError('exchanges to the spool in', this.dir, e.cause);
    }
  }

  /** Exchanges spooled that the writer has not reported written yet. */
  private remaining(): number {
    return this.appended - this.spoolFailures - this.progress.tests - this.progress.mocks;
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
    this.child.stdin?.end();
  }

  /**
   * The recorded command has ended: the writer runs at normal priority from now on, so that it
   * catches up while tlsrec drains the ring and detaches its probes (~2 s) rather than after.
   */
  hurry(): void {
    if (this.child.pid !== undefined && this.child.exitCode === null) setBackground(this.child.pid, false);
  }

  /** The writer process's pid (for messages), undefined if it could not be started. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /**
   * Stop waiting for the writer: what is queued goes to the spool, and the writer process, at
   * normal priority, finishes writing it on its own (it also ignores the terminal's Ctrl-C).
   * For a user who does not want to wait; returns how many exchanges it still had to write.
   */
  leaveRunning(): number {
    this.endSpool();
    this.child.stdout?.destroy(); // no reports needed any more
    this.child.unref(); // tlsrec may exit before it
    this.closed ??= Promise.reject(new Error('BackgroundWriter: left running'));
    this.closed.catch(() => undefined);
    return this.remaining();
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
   * No more exchanges: raises the writer to normal priority and waits for it to write the rest.
   * `onWaiting` hears, once, how many are left if that takes more than a second.
   */
  close(onWaiting?: (remaining: number) => void): Promise<BackgroundWriterSummary> {
    this.closed ??= (async () => {
      this.endSpool();
      const slow = setTimeout(() => onWaiting?.(this.remaining()), 1000);
      const exit = await this.exited;
      clearTimeout(slow);
      const lateErrors = this.failures.map((f) => new OutputError(f.message, {
        stage: 'write recording',
        ...(f.hint ? { hint: f.hint } : {}),
        cause: Object.assign(new Error(f.message), f.code ? { code: f.code } : {}),
      }));
      if (this.end) {
        if (this.end.leftover > 0) {
          lateErrors.push(new OutputError(`the spool ended in an incomplete record (${this.end.leftover} bytes)`, { stage: 'write recording' }));
        }
        return {
          ...this.end.end,
          lateErrors: this.firstSpoolError ? [this.firstSpoolError, ...lateErrors] : lateErrors,
          notWritten: this.spoolFailures + this.end.end.failedTests + this.end.end.failedMocks,
        };
      }
      // The writer died: what it reported is on disk, the rest is still in the spool.
      const how = exit.error ? causeText(exit.error) : exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
      const missing = this.remaining();
      lateErrors.push(new OutputError(`the writer process stopped early (${how}); up to ${missing} exchange(s) were not written`, {
        stage: 'write recording',
        hint: `they are kept in ${this.dir}/${this.spool.prefix}-* ; please report this as a bug`,
      }));
      if (this.firstSpoolError) lateErrors.unshift(this.firstSpoolError);
      return { ...this.progress, failedTests: 0, failedMocks: 0, lateErrors, notWritten: this.spoolFailures + missing };
    })();
    return this.closed;
  }
}
