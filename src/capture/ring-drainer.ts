// The ring drainer: copies records out of the kernel's ring buffer into flow control's queue and
// hands the queue to the consumer in time-budgeted slices, draining the ring again between slices.
// Draining (a memcpy a record) is kept apart from consuming (spooling, which may stall on a slow
// disk), so that the ring stays empty under load and a burst waits in user memory, not lost.
//
// When to drain: while records keep coming, every `activeMs` from a timer (batches, not a wake-up
// a record: the data ring stays readable under load, so sleeping on it would wake tlsrec every few
// records). With no traffic, asleep in epoll_wait on the rings (fd-waiter.ts, on a libuv worker
// thread) until the kernel wakes it: the kernel signals the first record committed to a ring that
// user space had emptied, and a process stopped at a mapping at once. Should epoll_wait fail, the
// drainer says so once and drains from the timer instead.

import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { causeText } from '../errors.js';
import type { FlowControl } from './flow-control.js';

/**
 * The rings are drained this often while records keep coming. 10 ms against 4 ms: 28-30 instead
 * of 37-40 CPU ticks of the recorder in 5 s of a bare HTTPS load (97 instead of 220 wake-ups/s),
 * and at the completeness benchmark's peak rate the 64 MiB ring holds well over 10 ms of traffic.
 * A process stopped at a new file waits up to this long (once a file): sleeping on the `mapped`
 * ring meanwhile cost the recorder 3-5 more ticks in 5 s.
 */
export const ACTIVE_POLL_MS = 10;
/** While a stopped process has not been resumed (its stop takes effect on its way back to user mode), the loop comes back this often. */
export const MAPPED_POLL_MS = 2;
/** With no traffic the drainer sleeps until a ring wakes it: this long at most, as a safety net. */
export const IDLE_WAIT_MS = 1000;
/** One consumer slice: the ring is drained at least this often while the consumer works through a backlog. */
export const PUMP_BUDGET_MS = 8;

/** Where records come from: a ring buffer (ringbuf.ts RingBufferReader) calls `onRecord` with a view of each. */
export interface RecordSource {
  drain(onRecord: (record: Buffer) => void): unknown;
}

/** Sleeps until a ring has records (fd-waiter.ts FdWaiter). */
export interface RingWaiter {
  wait(timeoutMs: number): Promise<void>;
  wake(): void;
  close(): Promise<void>;
}

/** The attach policy's side of each pass: processes stopped at a mapping, serviced before the data ring. */
export interface StoppedProcesses {
  pollMapped(): void;
  /** Processes still stopped: the loop comes back after MAPPED_POLL_MS. */
  readonly waitingCount: number;
}

export interface RingDrainerOptions {
  data: RecordSource;
  flow: FlowControl;
  /** A run of whole records, in order (the buffer is the consumer's to keep). */
  consume(records: Buffer): void;
  /** Each record admitted to the queue (a view into the ring), e.g. to notice execs. */
  onRecord?(record: Buffer): void;
  stoppedProcesses?: StoppedProcesses;
  /** Without one, the drainer sleeps `activeMs` between passes. */
  waiter?: RingWaiter;
  activeMs?: number;
  warn(msg: string): void;
}

export class RingDrainer {
  private waiter: RingWaiter | undefined;
  private readonly activeMs: number;
  private loop: Promise<void> | undefined;
  private stopped = false;
  /** Records taken from the data ring so far: tells the loop whether traffic is flowing. */
  private recordsDrained = 0;
  private passes = 0;
  private pumping = false;
  private pumpScheduled = false;

  constructor(private readonly opts: RingDrainerOptions) {
    this.waiter = opts.waiter;
    this.activeMs = opts.activeMs ?? ACTIVE_POLL_MS;
  }

  /** Passes of the loop so far: a few a second while nothing happens. */
  get drainPasses(): number {
    return this.passes;
  }

  start(): void {
    this.loop ??= this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const drained = this.recordsDrained;
      this.passes++;
      try {
        this.opts.stoppedProcesses?.pollMapped();
        this.poll();
      } catch (err) {
        this.opts.warn(`draining the ring buffers failed: ${causeText(err)}`);
      }
      if (this.stopped) break;
      if ((this.opts.stoppedProcesses?.waitingCount ?? 0) > 0) await sleep(MAPPED_POLL_MS);
      else if (this.recordsDrained !== drained || this.opts.flow.backlogBytes > 0) await sleep(this.activeMs);
      else await this.sleepUntilRecords();
    }
  }

  private async sleepUntilRecords(): Promise<void> {
    if (!this.waiter) {
      await sleep(this.activeMs);
      return;
    }
    try {
      await this.waiter.wait(IDLE_WAIT_MS);
    } catch (err) {
      this.opts.warn(
        `cannot sleep on the ring buffers (${causeText(err)}); polling them every ${this.activeMs} ms instead`,
      );
      const waiter = this.waiter;
      this.waiter = undefined;
      await waiter.close().catch(() => undefined);
    }
  }

  /** Drain the ring into the queue, then let the consumer work through the queue for a slice. */
  private poll(): void {
    this.drain();
    this.pump(PUMP_BUDGET_MS);
  }

  private drain(): void {
    const { flow, onRecord } = this.opts;
    this.opts.data.drain((rec) => {
      if (!flow.admit(rec)) return;
      this.recordsDrained++;
      onRecord?.(rec);
    });
    flow.regulate();
  }

  /** Hand queued records to the consumer, a run at a time, for up to `budgetMs`, draining the ring in between. */
  private pump(budgetMs: number): void {
    if (this.pumping) return;
    this.pumping = true;
    const { flow } = this.opts;
    try {
      const deadline = performance.now() + budgetMs;
      for (let records = flow.take(); records; records = flow.take()) {
        try {
          this.opts.consume(records);
        } catch (err) {
          this.opts.warn(`record consumer failed: ${causeText(err)}`);
        }
        this.drain();
        if (performance.now() > deadline) break;
      }
      flow.regulate();
    } finally {
      this.pumping = false;
    }
    if (flow.backlogBytes > 0 && !this.pumpScheduled && !this.stopped) {
      this.pumpScheduled = true;
      setImmediate(() => {
        this.pumpScheduled = false;
        if (!this.stopped) this.poll();
      });
    }
  }

  /** Drain the ring and hand every queued record to the consumer now (when stopping). */
  flush(): void {
    this.drain();
    while (this.opts.flow.backlogBytes > 0) this.pump(Number.POSITIVE_INFINITY);
  }

  /** End the loop and wait until it has returned (it may be between two drains). flush() still works after. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.waiter?.wake();
    await this.loop;
  }

  /** Stop, then release the waiter. */
  async close(): Promise<void> {
    await this.stop();
    const waiter = this.waiter;
    this.waiter = undefined;
    await waiter?.close();
  }
}
