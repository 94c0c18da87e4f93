// The queue between the ring buffer drain and the consumer (src/native/event-queue.ts), fed with the
// events of a real eBPF recording: order, the backlog it reports to backpressure, and that it lets
// go of what it handed over (the leak that held ~60 MiB of payload before session 3).

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EventQueue } from '../src/native/event-queue.js';
import { readEventFile } from '../src/record/event-file.js';
import type { CaptureEvent } from '../src/record/events.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/events/large-body.jsonl', import.meta.url));

async function fixtureEvents(): Promise<CaptureEvent[]> {
  const events: CaptureEvent[] = [];
  for await (const ev of readEventFile(FIXTURE)) events.push(ev);
  return events;
}

const payload = (events: CaptureEvent[]): number => events.reduce((n, ev) => n + (ev.type === 'data' ? ev.data.length : 0), 0);

describe('EventQueue', () => {
  it('hands events over in order, in batches, and counts the payload that waits', async () => {
    const events = await fixtureEvents();
    const total = payload(events);
    expect(total).toBeGreaterThan(1_000_000); // the fixture holds a large body: many 16 KiB chunks

    const queue = new EventQueue();
    for (const ev of events) queue.push(ev);
    expect(queue.length).toBe(events.length);
    expect(queue.payloadBytes).toBe(total);

    const out: CaptureEvent[] = [];
    for (;;) {
      const batch = queue.take(7);
      if (batch.length === 0) break;
      expect(batch.length).toBeLessThanOrEqual(7);
      out.push(...batch);
      expect(queue.payloadBytes).toBe(total - payload(out));
      expect(queue.length).toBe(events.length - out.length);
    }
    expect(out).toEqual(events);
    expect(queue.payloadBytes).toBe(0);
    expect(queue.peakPayloadBytes).toBe(total);
  });

  it('stays in order across compactions while pushes and takes interleave', async () => {
    const events = await fixtureEvents();
    const queue = new EventQueue();
    const out: CaptureEvent[] = [];
    // 12,000 events through a queue that never empties: the array is compacted several times.
    const stream = Array.from({ length: 12_000 }, (_, i) => events[i % events.length]!);
    let pushed = 0;
    while (out.length < stream.length) {
      for (let k = 0; k < 5 && pushed < stream.length; k++) queue.push(stream[pushed++]!);
      out.push(...queue.take(3));
      if (pushed === stream.length) out.push(...queue.take(stream.length));
    }
    expect(out.length).toBe(stream.length);
    for (let i = 0; i < stream.length; i++) expect(out[i]).toBe(stream[i]);
    expect(queue.length).toBe(0);
  });

  it('keeps no reference to an event once it was handed over, long before the array is compacted', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const events = await fixtureEvents();
    const queue = new EventQueue();
    // In a function of its own: an async function's suspended frame would keep its locals alive.
    const handOver = (): WeakRef<Buffer>[] => {
      // Copies, so that nothing but the queue holds them; 100 stay queued (no reset to an empty array).
      const data = events.filter((ev) => ev.type === 'data');
      const copies = Array.from({ length: 1000 }, (_, i) => data[i % data.length]!).map((ev) => ({ ...ev, data: Buffer.from(ev.data) }) as CaptureEvent);
      for (const ev of copies) queue.push(ev);
      return queue.take(copies.length - 100).map((ev) => new WeakRef((ev as { data: Buffer }).data));
    };
    const handedOver = handOver();
    expect(queue.length).toBe(100);
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    const alive = handedOver.filter((ref) => ref.deref() !== undefined).length;
    expect(handedOver.length).toBe(900);
    expect(alive).toBe(0);
  });
});
