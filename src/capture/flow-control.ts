// Flow control between the ring buffer and the record consumer: the queue of records drained but
// not yet consumed (record-queue.ts), backpressure on the recorded command (the cgroup freezer) when
// that queue grows too long, and the kernel's loss counters. The queue absorbs bursts, so that a
// consumer slower than the ring fills (spooling, which may stall on a slow disk) costs memory first;
// pausing the command bounds that memory; whatever the kernel still could not write is counted.

import { performance } from 'node:perf_hooks';
import { causeText } from '../errors.js';
import type { LossCounters } from '../model/events.js';
import { dataLength, recordLength } from './decode.js';
import { RecordQueue } from './record-queue.js';
import { CAP_COUNTERS } from './record-layout.js';

/** How often and how long the command was paused so that tlsrec could keep up. */
export interface BackpressureStats {
  pauses: number;
  pausedMs: number;
  peakBacklogBytes: number;
}

import { DEFAULT_MAX_BACKLOG_BYTES } from './defaults.js';
export { DEFAULT_MAX_BACKLOG_BYTES };

/**
 * Longest single pause. Waiting for the backlog to halve takes ~300 ms under small-request load
 * (16 MiB of 1 KB exchanges is seconds of work): p99 latency 270 ms. Pauses of at most 20 ms (a
 * few more of them) give p99 10-25 ms at the same throughput (bench/README.md).
 */
export const MAX_PAUSE_MS = 20;

/** What pauses the recorded command: the cgroup's freezer (Cgroup.setFrozen). True if the state changed. */
export interface Freezer {
  setFrozen(frozen: boolean): boolean;
}

export interface FlowControlOptions {
  freezer: Freezer;
  /**
   * When more than this many bytes of records wait for the consumer, the command is frozen until
   * the backlog is under half of it, MAX_PAUSE_MS at a time. 0 disables: the backlog is then
   * unbounded and a long overload can overflow the ring. Default DEFAULT_MAX_BACKLOG_BYTES.
   */
  maxBacklogBytes?: number;
  /** The consumer fell behind (backlog over a quarter of the maximum) or caught up (under a sixteenth). */
  onBehind?(behind: boolean): void;
  warn(msg: string): void;
  /** Milliseconds, monotonic (default performance.now). */
  now?(): number;
}

export class FlowControl {
  /** Records waiting for the consumer: the backlog. */
  private readonly queue = new RecordQueue();
  private readonly maxBacklog: number;
  private readonly now: () => number;
  /** Payload bytes of the data records admitted so far. */
  private dataBytes = 0;
  private frozenSince: number | undefined;
  private behind = false;
  private pauses = 0;
  private pausedMs = 0;
  private stopped = false;

  constructor(private readonly opts: FlowControlOptions) {
    this.maxBacklog = opts.maxBacklogBytes ?? DEFAULT_MAX_BACKLOG_BYTES;
    this.now = opts.now ?? (() => performance.now());
  }

  /**
   * Queue ring record `rec` (a view into the ring: copied) as the spool keeps it. False for what
   * is not a whole record of a known type (recordLength 0), which is skipped.
   */
  admit(rec: Buffer): boolean {
    const length = recordLength(rec);
    if (length === 0) return false;
    this.queue.push(rec, length);
    this.dataBytes += dataLength(rec);
    return true;
  }

  /** The oldest records waiting, as one buffer of whole records (the consumer's to keep), or undefined. */
  take(): Buffer | undefined {
    return this.queue.take();
  }

  /** Bytes of records waiting for the consumer. */
  get backlogBytes(): number {
    return this.queue.byteLength;
  }

  /**
   * Pause the command while the consumer is far behind; resume it once it has caught up half way,
   * or after MAX_PAUSE_MS (then pause again if still needed). While paused the requests in flight
   * wait, so a pause's length is the latency tail. Called after every drain and consumer slice.
   */
  regulate(): void {
    const max = this.maxBacklog;
    if (max <= 0) return;
    const backlog = this.queue.byteLength;
    if (!this.behind && backlog > max / 4 && !this.stopped) this.setBehind(true);
    else if (this.behind && (backlog < max / 16 || this.stopped)) this.setBehind(false);
    if (this.frozenSince === undefined && backlog > max && !this.stopped) {
      if (this.opts.freezer.setFrozen(true)) {
        this.frozenSince = this.now();
        this.pauses++;
      }
    } else if (
      this.frozenSince !== undefined &&
      (backlog < max / 2 || this.stopped || this.now() - this.frozenSince > MAX_PAUSE_MS)
    ) {
      this.thaw();
    }
  }

  /** From now on nothing is paused: the command is thawed, and the next regulate() reports caught up. */
  stop(): void {
    this.stopped = true;
    this.thaw();
  }

  private setBehind(behind: boolean): void {
    this.behind = behind;
    try {
      this.opts.onBehind?.(behind);
    } catch (err) {
      this.opts.warn(`priority change failed: ${causeText(err)}`);
    }
  }

  private thaw(): void {
    if (this.frozenSince === undefined) return;
    this.opts.freezer.setFrozen(false);
    this.pausedMs += this.now() - this.frozenSince;
    this.frozenSince = undefined;
  }

  backpressure(): BackpressureStats {
    const current = this.frozenSince === undefined ? 0 : this.now() - this.frozenSince;
    return {
      pauses: this.pauses,
      pausedMs: Math.round(this.pausedMs + current),
      peakBacklogBytes: this.queue.peakBytes,
    };
  }

  /** Payload bytes of the data records captured so far (TLS plaintext and socket data). */
  capturedBytes(): number {
    return this.dataBytes;
  }
}

/** The kernel's loss counters: the `counters` map's per-CPU values (struct cap_counters each, `cpus` of them) summed. */
export function sumLossCounters(perCpu: Buffer | undefined, cpus: number): LossCounters {
  const out: LossCounters = { ringbufFull: 0, readFault: 0, bytesLost: 0 };
  if (!perCpu) return out;
  const f = CAP_COUNTERS.fields;
  for (let c = 0; c < cpus; c++) {
    const at = c * CAP_COUNTERS.size;
    out.ringbufFull += Number(perCpu.readBigUInt64LE(at + f.ringbufFull.offset));
    out.readFault += Number(perCpu.readBigUInt64LE(at + f.readFault.offset));
    out.bytesLost += Number(perCpu.readBigUInt64LE(at + f.bytesLost.offset));
  }
  return out;
}
