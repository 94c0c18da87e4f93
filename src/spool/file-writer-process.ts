// The file-writer process: reads the captured records from the spool, has them reconstructed into
// exchanges and writes those as test files and mocks.yaml, in order, while the recording goes on.
// Its I/O is injected (FileWriterIo): the clock and timers, the spool, the decoding of a sealed
// frame, reconstruction, the test-set files, the reports and the recorded command's cgroup; the
// entry that wires the real ones is src/record/file-writer-main.ts.
//
// It runs in the idle CPU class and, while the command runs, holds back (pacing.ts): paced slices
// under light traffic, nothing under load. Input (a line on stdin) means the command has ended:
// full speed from then on. The end of input means the recorder has finished (or died): the process
// handles what is left in the spool, sends its end report and is done. Input that ends without
// RECORDER_DONE means the recorder died with its capture running: the process then continues
// whatever of the command the recorder had stopped (releaseCommandOnceRecorderIsGone).

import { causeText, TlsrecError } from '../errors.js';
import type { TestSetSummary } from '../format/test-set-writer.js';
import type { CaptureEvent } from '../model/events.js';
import type { Exchange } from '../model/exchange.js';
import { RECORDER_DONE, type FileWriterProgress, type FileWriterReport } from './file-writer-protocol.js';
import { FileWriterPacing } from './pacing.js';

/** A millisecond clock and its timers. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** The spool as this process reads it (SpoolReader). */
export interface SpoolSource {
  /** Reads what is new and hands its frames on; false when there was nothing new. */
  step(): boolean;
  handledBytes(): number;
  backlogBytes(): number;
  /** Handles the rest; returns the size of an incomplete last frame. */
  finish(): number;
}

/** Where exchanges go (TestSetWriter). */
export interface ExchangeFiles {
  writeExchange(ex: Exchange): void;
  close(): Promise<TestSetSummary>;
}

/** Reconstruction (the record stage's Reconstructor): events in, exchanges out through its callback. */
export interface EventSink<Stats> {
  push(ev: CaptureEvent): void;
  finish(): Stats;
}

export interface FileWriterIo<Stats> {
  clock: Clock;
  /** Opens the spool; each frame read is handed to `onFrame` (a view, valid during the call). */
  openSpool(onFrame: (frame: Buffer) => void): SpoolSource;
  /** The events of a sealed frame and its plaintext size; throws when the frame cannot be read. */
  openFrame(frame: Buffer): { events: CaptureEvent[]; bytes: number };
  files: ExchangeFiles;
  reconstruct(onExchange: (ex: Exchange) => void): EventSink<Stats>;
  report(report: FileWriterReport<Stats>): void;
  /** The recorder's pid while it lives; another pid once the kernel has re-parented this process. */
  parentPid(): number;
  /**
   * Continues the processes of the recorded command that the recorder had stopped, when it died
   * without doing so; returns how many. Absent: there is no command cgroup to look at.
   */
  releaseCommand?(): number;
  /** One line for the user (stderr): what goes wrong where no report can carry it. */
  warn(message: string): void;
  /** The port the app served on, from an exchange it received (the end report carries the first). */
  appPortOf(ex: Exchange): number | undefined;
  /** Called after each exchange has been handed to the files (body-gc.ts collects its garbage). */
  exchangeDone?(ex: Exchange): void;
}

/** With nothing in the spool the process looks again after IDLE_MIN_MS, doubling up to IDLE_MAX_MS. */
const IDLE_MIN_MS = 10;
const IDLE_MAX_MS = 200;
/** Under load (mode 'wait') the process only re-reads the arrival rate, this often. */
const WAIT_CHECK_MS = 100;
/**
 * Paced (light traffic while the command runs): slices of PACED_SLICE_MS with PACED_GAP_MS between
 * them, at most a fifth of a CPU. The idle CPU class alone does not keep the process out of the
 * app's way: one that is always runnable, even at idle class, leaves the app sharing a CPU with the
 * load generator more often (bench/README.md).
 */
const PACED_SLICE_MS = 5;
const PACED_GAP_MS = 20;
/** Unpaced, a slice lasts this long so that input and reports get their turn. */
const FULL_SLICE_MS = 50;
const REPORT_MS = 250;
/** How long, after its input ended without RECORDER_DONE, the process waits to see the recorder gone. */
const RECORDER_EXIT_WAIT_MS = 5000;

export class FileWriterProcess<Stats> {
  private readonly spool: SpoolSource;
  private readonly sink: EventSink<Stats>;
  private readonly pacing = new FileWriterPacing();
  private readonly progress: FileWriterProgress = { tests: 0, mocks: 0, bytes: 0 };
  /**
   * Events decoded from the spool, not yet reconstructed. The spool is read a megabyte at a time
   * and the events are handed on one by one between clock checks, so a slice ends on time.
   */
  private queued: CaptureEvent[] = [];
  private next = 0;
  /**
   * After the first write failure (a full disk, mostly) nothing more is written, so the files hold
   * a prefix of the recording without holes; the rest is counted as not written.
   */
  private failed = false;
  private readonly notTried = { tests: 0, mocks: 0 };
  private appPort: number | undefined;
  private recorderDone = false;
  /** The recorded command has ended: nothing to yield to any more. */
  private commandEnded = false;
  /** What the recorder wrote on stdin (its tail); RECORDER_DONE in it means it stopped its capture. */
  private said = '';
  private lastReport = 0;
  private reported = -1;
  private idleMs = IDLE_MIN_MS;
  private timer: unknown;
  private finishing = false;
  private resolveDone!: () => void;
  private rejectDone!: (err: unknown) => void;
  /** Resolves after the end report; rejects when the process cannot go on (no end report then). */
  readonly done: Promise<void>;

  constructor(private readonly io: FileWriterIo<Stats>) {
    this.done = new Promise((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.sink = io.reconstruct((ex) => this.write(ex));
    this.spool = io.openSpool((frame) => this.onFrame(frame));
  }

  /** Starts working through the spool. */
  start(): void {
    this.schedule(0);
  }

  /** Text the recorder wrote on stdin: the command has ended (full speed from now on). */
  input(text: string): void {
    this.commandEnded = true;
    this.said = (this.said + text).slice(-64);
    this.schedule(0);
  }

  /** The recorder closed stdin (or died): everything it will append is in the spool. */
  inputEnded(): void {
    if (this.recorderDone) return;
    this.recorderDone = true;
    if (!this.said.includes(RECORDER_DONE) && this.io.releaseCommand) this.releaseCommandOnceRecorderIsGone();
    this.schedule(0); // the recorder waits for the end report
  }

  private onFrame(frame: Buffer): void {
    let opened: { events: CaptureEvent[]; bytes: number };
    try {
      opened = this.io.openFrame(frame);
    } catch (err) {
      this.io.report({ failure: { message: `a spooled batch of events could not be read: ${causeText(err)}` } });
      return;
    }
    if (this.next === this.queued.length) {
      this.queued = opened.events;
      this.next = 0;
    } else {
      for (const ev of opened.events) this.queued.push(ev);
    }
    this.progress.bytes += opened.bytes; // as the recorder counts what it spooled
  }

  /** Hands the next queued event on, reading the spool when none are queued. False when nothing was there. */
  private stepOne(): boolean {
    if (this.next === this.queued.length && !this.spool.step()) return false;
    if (this.next < this.queued.length) this.sink.push(this.queued[this.next++]!);
    return true;
  }

  private write(ex: Exchange): void {
    if (ex.role === 'incoming') this.appPort ??= this.io.appPortOf(ex);
    if (this.failed) {
      if (ex.role === 'incoming') this.notTried.tests++;
      else this.notTried.mocks++;
      return;
    }
    try {
      this.io.files.writeExchange(ex);
      if (ex.role === 'incoming') this.progress.tests++;
      else this.progress.mocks++;
    } catch (err) {
      this.failed = true;
      const code = (err as { cause?: NodeJS.ErrnoException }).cause?.code;
      const hint = err instanceof TlsrecError ? err.hint : undefined;
      this.io.report({ failure: { message: causeText(err), ...(code ? { code } : {}), ...(hint ? { hint } : {}) } });
    }
    this.io.exchangeDone?.(ex);
  }

  /**
   * The recorder died (SIGKILL) without stopping its capture: a process of the command it had
   * stopped while it looked at a file, or a cgroup it had frozen for backpressure, would wait
   * forever. Once the recorder has really exited (its BPF links closed with its files, so nothing
   * stops them again), they go on. Its exit shows as this process being handed to another parent,
   * which the kernel does after closing the dying process's files.
   */
  private releaseCommandOnceRecorderIsGone(): void {
    const { clock } = this.io;
    const recorder = this.io.parentPid();
    const deadline = clock.now() + RECORDER_EXIT_WAIT_MS;
    const check = (): void => {
      if (this.io.parentPid() === recorder && clock.now() < deadline) {
        clock.setTimeout(check, 10);
        return;
      }
      try {
        const continued = this.io.releaseCommand?.() ?? 0;
        if (continued > 0)
          this.io.warn(
            `tlsrec ended without stopping its capture; continued ${continued} stopped process(es) of the recorded command`,
          );
      } catch {
        // the cgroup is gone: nothing of the command is left to continue
      }
    };
    check();
  }

  /** The next tick in `ms`, replacing any tick already planned. */
  private schedule(ms: number): void {
    if (this.finishing) return;
    if (this.timer !== undefined) this.io.clock.clearTimeout(this.timer);
    this.timer = this.io.clock.setTimeout(() => this.tick(), ms);
  }

  private tick(): void {
    this.timer = undefined;
    const { clock } = this.io;
    try {
      const backlog = this.spool.backlogBytes();
      const mode = this.pacing.mode(
        clock.now(),
        this.spool.handledBytes() + backlog,
        backlog,
        !this.commandEnded && !this.recorderDone,
      );
      if (mode === 'wait') {
        this.schedule(WAIT_CHECK_MS);
        return;
      }
      const paced = mode === 'paced';
      const until = clock.now() + (paced ? PACED_SLICE_MS : FULL_SLICE_MS);
      let progressed = false;
      while (clock.now() < until && this.stepOne()) progressed = true;
      if (clock.now() - this.lastReport >= REPORT_MS && this.progress.bytes !== this.reported) {
        this.io.report({ progress: { ...this.progress } });
        this.reported = this.progress.bytes;
        this.lastReport = clock.now();
      }
      if (!progressed && this.recorderDone) {
        this.finishing = true;
        this.finish().then(this.resolveDone, this.rejectDone);
        return;
      }
      this.idleMs = progressed ? IDLE_MIN_MS : Math.min(this.idleMs * 2, IDLE_MAX_MS);
      this.schedule(!progressed ? this.idleMs : paced ? PACED_GAP_MS : 0);
    } catch (err) {
      this.finishing = true;
      this.rejectDone(err);
    }
  }

  private async finish(): Promise<void> {
    const leftover = this.spool.finish();
    while (this.next < this.queued.length) this.sink.push(this.queued[this.next++]!);
    const stats = this.sink.finish(); // completes what ends with the stream (close-delimited bodies)
    const summary = await this.io.files.close();
    this.io.report({
      end: {
        tests: summary.tests,
        mocks: summary.mocks,
        failedTests: summary.failedTests + this.notTried.tests,
        failedMocks: summary.failedMocks + this.notTried.mocks,
      },
      leftover,
      stats,
      ...(this.appPort === undefined ? {} : { appPort: this.appPort }),
    });
  }
}
