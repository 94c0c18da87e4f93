// The ring drainer (src/capture/ring-drainer.ts) on its own: a list of records stands in for the
// ring buffer and a hand-driven waiter for epoll. What reaches the consumer, when the loop sleeps,
// what happens when epoll fails, and that a slow consumer gets time slices with the ring drained in
// between. The real ring and epoll are covered by test/native-capture.test.ts and
// test/native-fd-waiter.test.ts.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeRecords } from '../src/capture/decode.js';
import { FlowControl } from '../src/capture/flow-control.js';
import { CAP_HDR_SIZE } from '../src/capture/record-layout.js';
import { PUMP_BUDGET_MS, type RecordSource, RingDrainer, type RingWaiter } from '../src/capture/ring-drainer.js';
import type { CaptureEvent, DataEvent } from '../src/model/events.js';
import { encodeRecords } from './helpers/ring-records.js';

/** Records the "kernel" committed and the drainer has not taken yet; counts drains. */
class FakeRing implements RecordSource {
  pending: Buffer[] = [];
  drains = 0;
  /** Woken, as the kernel wakes epoll, by a record committed to a ring the drainer had emptied. */
  waiter: FakeWaiter | undefined;
  private pos = 0n;

  commit(bytes: number, tgid = 1): DataEvent {
    if (this.pending.length === 0) this.waiter?.wake();
    const ev: DataEvent = {
      tsNs: 1n,
      tgid,
      tid: tgid,
      source: 'tls',
      connId: 3n,
      type: 'data',
      dir: 'out',
      pos: this.pos,
      callLen: bytes,
      chunkOff: 0,
      data: Buffer.alloc(bytes, 0x62),
    };
    this.pos += BigInt(bytes);
    this.pending.push(encodeRecords([ev]));
    return ev;
  }

  drain(onRecord: (record: Buffer) => void): number {
    this.drains++;
    const records = this.pending.splice(0);
    for (const r of records) onRecord(r);
    return records.length;
  }
}

/** epoll stand-in: a wait ends on wake(), on its timeout, or fails when told to. */
class FakeWaiter implements RingWaiter {
  waits = 0;
  closed = false;
  failNext = false;
  private release: (() => void) | undefined;

  wait(timeoutMs: number): Promise<void> {
    this.waits++;
    if (this.failNext) return Promise.reject(new Error('epoll_wait: EBADF'));
    return new Promise((resolve) => {
      const t = setTimeout(() => this.wake(), timeoutMs);
      this.release = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  wake(): void {
    const r = this.release;
    this.release = undefined;
    r?.();
  }

  async close(): Promise<void> {
    this.wake();
    this.closed = true;
  }
}

const drainers: RingDrainer[] = [];
afterEach(async () => {
  for (const d of drainers.splice(0)) await d.close();
});

function setup(opts: { consume?(records: Buffer): void; waiter?: RingWaiter; activeMs?: number } = {}) {
  const ring = new FakeRing();
  const delivered: CaptureEvent[] = [];
  const warnings: string[] = [];
  const flow = new FlowControl({
    freezer: { setFrozen: () => true },
    maxBacklogBytes: 0,
    warn: (m) => warnings.push(m),
  });
  const seen: number[] = [];
  const drainer = new RingDrainer({
    data: ring,
    flow,
    consume: opts.consume ?? ((records) => delivered.push(...decodeRecords(records))),
    onRecord: (rec) => seen.push(rec.length),
    waiter: opts.waiter,
    activeMs: opts.activeMs ?? 5,
    warn: (m) => warnings.push(m),
  });
  drainers.push(drainer);
  if (opts.waiter instanceof FakeWaiter) ring.waiter = opts.waiter;
  return { ring, drainer, delivered, warnings, seen, flow };
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(2);
  }
}

describe('ring drainer', () => {
  it('delivers every record in order, runs of whole records, and stop + flush leaves nothing behind', async () => {
    const waiter = new FakeWaiter();
    const { ring, drainer, delivered, seen } = setup({ waiter });
    const sent = [ring.commit(10), ring.commit(2000)];
    drainer.start();
    await until(() => delivered.length === 2);
    sent.push(ring.commit(5)); // wakes the waiter
    await until(() => delivered.length === 3);
    await drainer.stop();
    sent.push(ring.commit(7)); // committed after the loop ended: flush() takes it
    drainer.flush();
    expect(delivered).toStrictEqual(sent);
    expect(seen).toEqual(sent.map((e) => CAP_HDR_SIZE + e.data.length));
  });

  it('with no traffic it sleeps on the waiter instead of passing every activeMs', async () => {
    const waiter = new FakeWaiter();
    const { drainer } = setup({ waiter, activeMs: 1 });
    drainer.start();
    await sleep(100);
    expect(drainer.drainPasses).toBeLessThanOrEqual(2);
    expect(waiter.waits).toBe(drainer.drainPasses);
    await drainer.close();
    expect(waiter.closed).toBe(true);
  });

  it('while records keep coming it drains from the timer, not from the waiter', async () => {
    const waiter = new FakeWaiter();
    const ring = new FakeRing();
    ring.waiter = waiter;
    // Traffic that keeps coming: by each pass of the loop (activeMs apart) the app has written a
    // record; drains within a pass (microseconds apart) find nothing new. Twenty records, then quiet.
    let produced = 0;
    let last = -Infinity;
    const source: RecordSource = {
      drain(fn) {
        if (produced < 20 && performance.now() - last >= 0.5) {
          ring.commit(100);
          produced++;
          last = performance.now();
        }
        return ring.drain(fn);
      },
    };
    let runs = 0;
    let atLast = { passes: 0, waits: 0 };
    const drainer: RingDrainer = new RingDrainer({
      data: source,
      flow: new FlowControl({ freezer: { setFrozen: () => true }, warn: () => undefined }),
      consume: () => {
        if (++runs === 20) atLast = { passes: drainer.drainPasses, waits: waiter.waits };
      },
      waiter,
      activeMs: 2,
      warn: () => undefined,
    });
    drainers.push(drainer);
    drainer.start();
    await until(() => runs === 20);
    expect(atLast).toEqual({ passes: 20, waits: 0 });
    await until(() => waiter.waits === 1); // quiet: asleep on the waiter
  });

  it('should the waiter fail, it says so once, closes it and drains from the timer', async () => {
    const waiter = new FakeWaiter();
    waiter.failNext = true;
    const { ring, drainer, delivered, warnings } = setup({ waiter, activeMs: 5 });
    drainer.start();
    await until(() => waiter.closed);
    ring.commit(42); // nobody wakes the drainer now: the timer finds it
    await until(() => delivered.length === 1);
    expect(warnings).toEqual(['cannot sleep on the ring buffers (epoll_wait: EBADF); polling them every 5 ms instead']);
    expect(waiter.waits).toBe(1);
  });

  it('a slow consumer works in slices: the event loop gets a turn between them, and the ring is drained between runs', async () => {
    const drainsAtRun: number[] = [];
    const loopTurnBefore: boolean[] = [];
    let loopTurned = false;
    const { ring, drainer, delivered } = setup({
      consume(records) {
        drainsAtRun.push(ring.drains);
        loopTurnBefore.push(loopTurned);
        loopTurned = false;
        queueMicrotask(() => (loopTurned = true)); // runs once control is back in the event loop
        const end = performance.now() + PUMP_BUDGET_MS + 2; // each run takes longer than a slice
        while (performance.now() < end);
        delivered.push(...decodeRecords(records));
      },
    });
    // Three runs' worth (the queue hands over up to 256 KiB at a time).
    for (let i = 0; i < 6; i++) ring.commit((128 << 10) - CAP_HDR_SIZE);
    drainer.start();
    await until(() => delivered.length === 6);
    expect(drainsAtRun.length).toBe(3);
    expect(loopTurnBefore).toEqual([false, true, true]);
    expect(drainsAtRun[1]! > drainsAtRun[0]! && drainsAtRun[2]! > drainsAtRun[1]!).toBe(true);
  });

  it('a throwing consumer is a warning; the next records still arrive', async () => {
    let calls = 0;
    const got: CaptureEvent[] = [];
    const { ring, drainer, warnings } = setup({
      consume(records) {
        if (calls++ === 0) throw new Error('disk full');
        got.push(...decodeRecords(records));
      },
    });
    ring.commit(1);
    drainer.start();
    await until(() => warnings.length === 1);
    ring.commit(2);
    await until(() => got.length === 1);
    expect(warnings).toEqual(['record consumer failed: disk full']);
    expect((got[0] as DataEvent).data.length).toBe(2);
  });

  it('services stopped processes first on every pass, and comes back quickly while one waits', async () => {
    const ring = new FakeRing();
    const order: string[] = [];
    let waitingCount = 1;
    const drainer = new RingDrainer({
      data: { drain: (fn) => (order.push('data'), ring.drain(fn)) },
      flow: new FlowControl({ freezer: { setFrozen: () => true }, warn: () => undefined }),
      consume: () => undefined,
      stoppedProcesses: {
        pollMapped: () => order.push('mapped'),
        get waitingCount() {
          return waitingCount;
        },
      },
      waiter: new FakeWaiter(),
      warn: () => undefined,
    });
    drainers.push(drainer);
    drainer.start();
    await sleep(40);
    const passesWhileWaiting = drainer.drainPasses;
    expect(passesWhileWaiting).toBeGreaterThan(3); // every MAPPED_POLL_MS, not asleep on the waiter
    expect(order.slice(0, 4)).toEqual(['mapped', 'data', 'mapped', 'data']);
    waitingCount = 0;
    await sleep(40);
    expect(drainer.drainPasses - passesWhileWaiting).toBeLessThanOrEqual(2);
  });
});
