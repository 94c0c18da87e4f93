// Flow control (src/capture/flow-control.ts) on its own: records in, the backlog it keeps, when it
// freezes and thaws the command (a recording freezer and a hand-driven clock stand in for the
// cgroup and time), and the loss counters summed over CPUs. The real freezer and ring are covered
// by test/native-capture.test.ts and the record e2e tests.
import { describe, expect, it } from 'vitest';
import { decodeRecords } from '../src/capture/decode.js';
import { FlowControl, MAX_PAUSE_MS, sumLossCounters } from '../src/capture/flow-control.js';
import { CAP_COUNTERS, CAP_EVENT, CAP_HDR_SIZE } from '../src/capture/record-layout.js';
import type { CaptureEvent } from '../src/model/events.js';
import { encodeRecords } from './helpers/ring-records.js';

const base = { tsNs: 1n, tgid: 10, tid: 10, connId: 7n, source: 'socket' } as const;
function dataRecord(bytes: number, pos = 0n): Buffer {
  return encodeRecords([
    { ...base, type: 'data', dir: 'in', pos, callLen: bytes, chunkOff: 0, data: Buffer.alloc(bytes, 0x61) },
  ]);
}

function setup(maxBacklogBytes: number) {
  const log: string[] = [];
  let clock = 0;
  const flow = new FlowControl({
    maxBacklogBytes,
    freezer: {
      setFrozen(frozen) {
        log.push(frozen ? 'freeze' : 'thaw');
        return true;
      },
    },
    onBehind: (behind) => log.push(behind ? 'behind' : 'caught up'),
    warn: (msg) => log.push(`warn: ${msg}`),
    now: () => clock,
  });
  return { flow, log, advance: (ms: number) => (clock += ms) };
}

describe('flow control', () => {
  it('queues whole records as they are and hands them over in order; counts data payload bytes', () => {
    const { flow } = setup(1 << 20);
    const events: CaptureEvent[] = [
      { ...base, type: 'open', role: 'accept' },
      { ...base, type: 'data', dir: 'in', pos: 0n, callLen: 5, chunkOff: 0, data: Buffer.from('hello') },
      { ...base, type: 'close' },
    ];
    const records = encodeRecords(events);
    for (let at = 0; at < records.length; ) {
      const length = CAP_HDR_SIZE + records.readUInt32LE(at + CAP_EVENT.fields.len.offset);
      expect(flow.admit(records.subarray(at, at + length))).toBe(true);
      at += length;
    }
    expect(flow.backlogBytes).toBe(records.length);
    expect(flow.capturedBytes()).toBe(5);
    const out = flow.take()!;
    expect(decodeRecords(out)).toStrictEqual(events);
    expect(flow.take()).toBeUndefined();
    expect(flow.backlogBytes).toBe(0);
  });

  it('skips what is not a whole record of a known type', () => {
    const { flow } = setup(1 << 20);
    const rec = dataRecord(10);
    expect(flow.admit(rec.subarray(0, rec.length - 1))).toBe(false);
    const unknown = Buffer.from(rec);
    unknown[CAP_EVENT.fields.type.offset] = 99;
    expect(flow.admit(unknown)).toBe(false);
    expect(flow.backlogBytes).toBe(0);
    expect(flow.capturedBytes()).toBe(0);
  });

  it('falls behind over a quarter of the maximum, freezes over it, thaws under half, catches up under a sixteenth', () => {
    // The queue hands over a chunk (256 KiB) at a time: records of 128 KiB let the backlog shrink in steps.
    const max = 4 << 20;
    const { flow, log, advance } = setup(max);
    const rec = dataRecord((128 << 10) - CAP_HDR_SIZE);
    const fill = (bytes: number) => {
      while (flow.backlogBytes < bytes) flow.admit(rec);
      flow.regulate();
    };
    fill(max / 4 + 1);
    expect(log).toEqual(['behind']);
    fill(max + 1);
    expect(log).toEqual(['behind', 'freeze']);
    advance(5);
    flow.regulate();
    expect(log).toEqual(['behind', 'freeze']); // still over half, and not yet MAX_PAUSE_MS
    while (flow.backlogBytes >= max / 2) flow.take();
    flow.regulate();
    expect(log).toEqual(['behind', 'freeze', 'thaw']);
    expect(flow.backpressure()).toMatchObject({ pauses: 1, pausedMs: 5 });
    while (flow.backlogBytes >= max / 16) flow.take();
    flow.regulate();
    expect(log).toEqual(['behind', 'freeze', 'thaw', 'caught up']);
    expect(flow.backpressure().peakBacklogBytes).toBeGreaterThan(max);
  });

  it('a pause lasts MAX_PAUSE_MS at most, then the command is frozen again if still needed', () => {
    const max = 8_000;
    const { flow, log, advance } = setup(max);
    const rec = dataRecord(952);
    while (flow.backlogBytes <= max) flow.admit(rec);
    flow.regulate();
    advance(MAX_PAUSE_MS + 1);
    flow.regulate();
    flow.regulate();
    expect(log).toEqual(['behind', 'freeze', 'thaw', 'freeze']);
    expect(flow.backpressure()).toMatchObject({ pauses: 2, pausedMs: MAX_PAUSE_MS + 1 });
  });

  it('after stop() the command is thawed and never frozen again; the next regulate reports caught up', () => {
    const max = 8_000;
    const { flow, log, advance } = setup(max);
    const rec = dataRecord(952);
    while (flow.backlogBytes <= max) flow.admit(rec);
    flow.regulate();
    advance(3);
    flow.stop();
    expect(log).toEqual(['behind', 'freeze', 'thaw']);
    flow.admit(rec);
    flow.regulate();
    expect(log).toEqual(['behind', 'freeze', 'thaw', 'caught up']);
    expect(flow.backpressure()).toMatchObject({ pauses: 1, pausedMs: 3 });
  });

  it('a maximum of 0 never pauses; a freezer that cannot freeze counts no pause; a failing onBehind is a warning', () => {
    const off = setup(0);
    for (let i = 0; i < 100; i++) off.flow.admit(dataRecord(1000));
    off.flow.regulate();
    expect(off.log).toEqual([]);

    const log: string[] = [];
    const flow = new FlowControl({
      maxBacklogBytes: 2000,
      freezer: { setFrozen: () => false },
      onBehind: () => {
        throw new Error('EPERM');
      },
      warn: (msg) => log.push(msg),
    });
    for (let i = 0; i < 5; i++) flow.admit(dataRecord(1000));
    flow.regulate();
    expect(log).toEqual(['priority change failed: EPERM']);
    expect(flow.backpressure().pauses).toBe(0);
  });
});

describe('loss counters', () => {
  it('sums struct cap_counters over CPUs', () => {
    const cpus = 3;
    const perCpu = Buffer.alloc(cpus * CAP_COUNTERS.size);
    const f = CAP_COUNTERS.fields;
    for (let c = 0; c < cpus; c++) {
      perCpu.writeBigUInt64LE(BigInt(c + 1), c * CAP_COUNTERS.size + f.ringbufFull.offset);
      perCpu.writeBigUInt64LE(BigInt(10 * (c + 1)), c * CAP_COUNTERS.size + f.readFault.offset);
      perCpu.writeBigUInt64LE(BigInt(1000 * (c + 1)), c * CAP_COUNTERS.size + f.bytesLost.offset);
    }
    expect(sumLossCounters(perCpu, cpus)).toEqual({ ringbufFull: 6, readFault: 60, bytesLost: 6000 });
    expect(sumLossCounters(undefined, cpus)).toEqual({ ringbufFull: 0, readFault: 0, bytesLost: 0 });
  });
});
