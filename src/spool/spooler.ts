// The recorder's side of the spool: it queues the captured records (spool-queue.ts), which seals
// them (cipher.ts) and appends them to the spool (segments.ts), and it starts and supervises the
// file-writer process (file-writer-process.ts) that reads them back, reconstructs the exchanges and
// writes the test files and mocks.yaml.
//
// Why a second process: per exchange, creating a test file costs 0.06-0.4 ms of kernel time on
// these machines, rendering it ~0.05 ms and reconstructing it ~0.02-0.03 ms; under load every one
// of those milliseconds would be taken from the recorded app (bench/overhead.mjs). So the recorder
// only copies the records, as the kernel wrote them, to the spool, many runs a write(2); the
// file-writer process (idle CPU class, pacing itself while it is not far behind) does the rest
// whenever the CPU has time, and is raised to normal priority, unpaced, and waited for when
// recording ends. The recorder's CPU under a bare HTTPS load is 6-7 % of a core this way, against
// 34 % when it reconstructed in process (bench/README.md).
//
// Nothing is lost when tlsrec dies: the spool is on disk before the file-writer process reads it,
// and that process, seeing its stdin close, writes everything complete and exits. If it dies,
// the recorder reports how much captured traffic was not written.

import { spawn, type ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import { causeText, OutputError } from '../errors.js';
import { formatBytes } from '../format-bytes.js';
import {
  defaultMonoToWallNs,
  outputError,
  TestSetWriter,
  type TestSetSummary,
  type TestSetWriterOptions,
} from '../format/test-set-writer.js';
import { setIdleScheduling } from '../native/ffi.js';
import { SpoolCipher } from './cipher.js';
import {
  RECORDER_DONE,
  SPOOL_KEY_ENV,
  type FileWriterConfig,
  type FileWriterEnd,
  type FileWriterFailure,
  type FileWriterProgress,
  type FileWriterReport,
} from './file-writer-protocol.js';
import { SpoolAppender } from './segments.js';
import { SpoolQueue } from './spool-queue.js';

export interface SpoolerOptions extends TestSetWriterOptions {
  /** The file-writer process's entry script (src/record/file-writer-main.ts, compiled). */
  fileWriterScript: string;
  /** See FileWriterConfig.commandCgroup. */
  commandCgroup?: string;
}

export interface SpoolerSummary<Stats> extends TestSetSummary {
  /** Exchanges reconstructed that did not reach the files (each is behind one of lateErrors). */
  notWritten: number;
  /** Captured bytes (records) that never reached the files: the spool failed, or the process died. */
  notWrittenBytes: number;
  /** Why: the failures met after writeRecords had returned. */
  lateErrors: OutputError[];
  /** What reconstruction made of the traffic; undefined when the file-writer process died. */
  stats?: Stats;
  /** The port the app served on, from the first request it received. */
  appPort?: number;
}

/**
 * The file-writer process's CPU priority: idle class while recording (it runs when a CPU has
 * nothing else to do, and yields at once to the app), normal at the end. Nice 19 is not enough:
 * with the scheduler's autogroups (sched_autogroup_enabled, the default on most distributions and
 * on these machines) a nice value only counts within a session, and even in tlsrec's session a
 * nice-19 process took a fifth to a third of a core from a busy app (measured). Best effort:
 * failing both, the process runs at normal priority, which is slower for the app, not wrong.
 */
function setBackground(pid: number, background: boolean): void {
  if (setIdleScheduling(pid, background)) return;
  try {
    os.setPriority(pid, background ? 19 : 0);
  } catch {
    /* see above */
  }
}

/**
 * V8's young generation at 1 MiB semi-spaces instead of 16: the file-writer process's live heap is
 * a few MiB (one exchange at a time), and the default reserve would be a third of its memory
 * (peak ~110 against ~90 MB recording 1 GiB of 2 MiB bodies, in bench/README.md).
 */
const FILE_WRITER_NODE_FLAGS = ['--max-semi-space-size=1'];

export class Spooler<Stats = unknown> {
  readonly dir: string;
  readonly name: string;
  private readonly spool: SpoolAppender;
  private readonly cipher = SpoolCipher.generate();
  private readonly child: ChildProcess;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>;
  private progress: FileWriterProgress = { tests: 0, mocks: 0, bytes: 0 };
  private end: FileWriterEnd<Stats> | undefined;
  private readonly failures: FileWriterFailure[] = [];
  private readonly queue: SpoolQueue;
  private closed: Promise<SpoolerSummary<Stats>> | undefined;
  private hurried = false;

  private constructor(setWriter: TestSetWriter, opts: SpoolerOptions) {
    this.dir = setWriter.dir;
    this.name = setWriter.name;
    const prefix = `.tlsrec-spool-${process.pid}`;
    this.spool = new SpoolAppender(this.dir, prefix);
    this.queue = new SpoolQueue(this.spool, this.cipher, this.dir);
    const { monoToWallNs, fileWriterScript, commandCgroup, ...fileOpts } = opts;
    const config: FileWriterConfig = {
      setDir: this.dir,
      prefix,
      files: { ...fileOpts, testSet: this.name },
      monoToWallNs: (monoToWallNs ?? defaultMonoToWallNs()).toString(),
      ...(commandCgroup === undefined ? {} : { commandCgroup }),
    };
    // Not detached, so it stays in the app's scheduling group (see setBackground): the terminal's
    // Ctrl-C reaches it too, and it ignores that. The key goes in the environment, which only
    // the process's owner can read (/proc/<pid>/environ), never on the world-readable command line.
    this.child = spawn(process.execPath, [...FILE_WRITER_NODE_FLAGS, fileWriterScript, JSON.stringify(config)], {
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

  /** Creates (or continues) the test set, as TestSetWriter.create does, and starts the file-writer process. */
  static async start<Stats = unknown>(opts: SpoolerOptions): Promise<Spooler<Stats>> {
    const setWriter = await TestSetWriter.create(opts);
    await setWriter.close(); // it only claimed the directory and installed the schemas
    try {
      return new Spooler<Stats>(setWriter, opts);
    } catch (err) {
      throw outputError('the spool in', setWriter.dir, err);
    }
  }

  /**
   * Queues captured records for the spool (SpoolQueue.push). Never throws: records that cannot be
   * spooled are counted and reported by close().
   */
  writeRecords(records: Buffer): void {
    this.queue.push(records);
  }

  /** Writes the queued records to the spool now. */
  flush(): void {
    this.queue.flush();
  }

  /** What the file-writer process has written so far. */
  written(): { tests: number; mocks: number } {
    return { tests: this.progress.tests, mocks: this.progress.mocks };
  }

  /** Captured bytes in the spool that the file-writer process has not reported handled yet. */
  private remainingBytes(): number {
    return Math.max(0, this.queue.spooledBytes() - this.progress.bytes);
  }

  /** No more appends: the rest goes to the spool, and the file-writer process, at normal priority, sees the end. */
  private endSpool(): void {
    this.flush();
    try {
      this.spool.close();
    } catch {
      // nothing queued after the flush above: closing the file cannot lose anything
    }
    this.hurry();
    // Only ever after the capture has stopped (it continued every process it had stopped): the
    // file-writer process must not. A stdin that closes without this line means tlsrec died.
    this.child.stdin?.write(`${RECORDER_DONE}\n`);
    this.child.stdin?.end();
  }

  /**
   * The recorded command has ended: the file-writer process runs at normal priority and without
   * pauses from now on, so that it catches up while tlsrec drains the ring and detaches its probes
   * (~2 s) rather than after.
   */
  hurry(): void {
    if (this.hurried) return;
    this.hurried = true;
    if (this.child.pid !== undefined && this.child.exitCode === null) setBackground(this.child.pid, false);
    this.child.stdin?.write('\n'); // and it stops pacing itself (file-writer-process.ts)
  }

  /** The file-writer process's pid (for messages), undefined if it could not be started. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /**
   * Stop waiting for the file-writer process: what is queued goes to the spool, and the process,
   * at normal priority, finishes writing it on its own (it also ignores the terminal's Ctrl-C).
   * For a user who does not want to wait; returns how many captured bytes it still had to handle.
   */
  leaveRunning(): number {
    this.endSpool();
    this.child.stdout?.destroy(); // no reports needed any more
    this.child.unref(); // tlsrec may exit before it
    this.closed ??= Promise.reject(new Error('Spooler: left running'));
    this.closed.catch(() => undefined);
    return this.remainingBytes();
  }

  private onReport(line: string): void {
    let report: FileWriterReport<Stats>;
    try {
      report = JSON.parse(line) as FileWriterReport<Stats>;
    } catch {
      return;
    }
    if ('progress' in report) this.progress = report.progress;
    else if ('failure' in report) this.failures.push(report.failure);
    else this.end = report;
  }

  /**
   * No more records: raises the file-writer process to normal priority and waits for it to write
   * the rest.
   * `onWaiting` hears, once, how many captured bytes are left if that takes more than a second.
   */
  close(onWaiting?: (remainingBytes: number) => void): Promise<SpoolerSummary<Stats>> {
    this.closed ??= (async () => {
      this.endSpool();
      const slow = setTimeout(() => onWaiting?.(this.remainingBytes()), 1000);
      const exit = await this.exited;
      clearTimeout(slow);
      const lateErrors = this.failures.map(
        (f) =>
          new OutputError(f.message, {
            stage: 'write recording',
            ...(f.hint ? { hint: f.hint } : {}),
            cause: Object.assign(new Error(f.message), f.code ? { code: f.code } : {}),
          }),
      );
      const spoolError = this.queue.error();
      if (spoolError) lateErrors.unshift(spoolError);
      if (this.end) {
        if (this.end.leftover > 0) {
          lateErrors.push(
            new OutputError(`the spool ended in an incomplete record (${this.end.leftover} bytes)`, {
              stage: 'write recording',
            }),
          );
        }
        return {
          ...this.end.end,
          lateErrors,
          notWritten: this.end.end.failedTests + this.end.end.failedMocks,
          notWrittenBytes: this.queue.notSpooledBytes(),
          stats: this.end.stats,
          ...(this.end.appPort === undefined ? {} : { appPort: this.end.appPort }),
        };
      }
      // The file-writer process died. What it wrote is on disk; the rest of the spool cannot be read without
      // the key, which ends with this process: it is removed rather than left as litter.
      const how = exit.error
        ? causeText(exit.error)
        : exit.signal
          ? `killed by ${exit.signal}`
          : `exit code ${exit.code}`;
      const missing = this.remainingBytes();
      this.spool.remove();
      lateErrors.push(
        new OutputError(
          `the file-writer process stopped early (${how}); ${formatBytes(missing)} of captured traffic was not written`,
          {
            stage: 'write recording',
            hint: 'the exchanges written before are complete; please report this as a bug',
          },
        ),
      );
      return {
        tests: this.progress.tests,
        mocks: this.progress.mocks,
        failedTests: 0,
        failedMocks: 0,
        lateErrors,
        notWritten: 0,
        notWrittenBytes: this.queue.notSpooledBytes() + missing,
      };
    })();
    return this.closed;
  }
}

/** What could not be written ("3 exchange(s) and 1.2 MiB of captured traffic"), undefined for nothing. */
export function notWrittenText(files: SpoolerSummary<unknown>): string | undefined {
  const parts: string[] = [];
  if (files.notWritten > 0) parts.push(`${files.notWritten} exchange(s)`);
  if (files.notWrittenBytes > 0) parts.push(`${formatBytes(files.notWrittenBytes)} of captured traffic`);
  return parts.length > 0 ? parts.join(' and ') : undefined;
}
