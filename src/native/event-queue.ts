// The events drained from the ring that wait for the consumer (capture.ts). A FIFO that counts
// the payload bytes it holds (the backlog that backpressure watches) and lets go of each event
// as it is handed over: the array is compacted only now and then, and a consumed 16 KiB chunk
// left reachable until then held ~60 MiB of payload at peak (bench/README.md, session 3).

import type { CaptureEvent } from '../record/events.js';

/** Compact the array once this many handed-over slots sit at its front. */
const COMPACT_AFTER = 4096;

export class EventQueue {
  private items: (CaptureEvent | undefined)[] = [];
  private head = 0;
  private bytes = 0;
  private peak = 0;

  push(ev: CaptureEvent): void {
    this.items.push(ev);
    if (ev.type === 'data') {
      this.bytes += ev.data.length;
      if (this.bytes > this.peak) this.peak = this.bytes;
    }
  }

  /** Up to `max` events, oldest first; the queue keeps no reference to them. */
  take(max: number): CaptureEvent[] {
    const end = Math.min(this.items.length, this.head + max);
    const batch: CaptureEvent[] = [];
    for (let i = this.head; i < end; i++) {
      const ev = this.items[i]!;
      this.items[i] = undefined;
      if (ev.type === 'data') this.bytes -= ev.data.length;
      batch.push(ev);
    }
    this.head = end;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > COMPACT_AFTER) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return batch;
  }

  get length(): number {
    return this.items.length - this.head;
  }

  /** Payload bytes of the data events waiting. */
  get payloadBytes(): number {
    return this.bytes;
  }

  /** The most payload that ever waited at once. */
  get peakPayloadBytes(): number {
    return this.peak;
  }
}
