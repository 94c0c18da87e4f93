// The queue between the ring buffer drain and the consumer (src/capture/record-queue.ts), fed with
// the records of real eBPF recordings: what comes out is what went in, whole records in order;
// bytes handed over are never written over by later pushes; the backlog it reports to
// backpressure; and it lets go of chunks it has handed over (chunks kept reachable would add up to
// tens of MiB under load).

import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeRecords } from '../src/capture/decode.js';
import { RecordQueue } from '../src/capture/record-queue.js';
import { readEventFile } from '../src/record/event-file.js';
import type { CaptureEvent } from '../src/model/events.js';
import { seededRandom } from './helpers/random.js';
import { compareBuffersFast } from './helpers/buffer-equality.js';
import { encodeRecords } from './helpers/ring-records.js';

const EVENTS_DIR = fileURLToPath(new URL('../fixtures/events/', import.meta.url));

compareBuffersFast();

/** Every event of every recorded fixture, and each as its own record. */
const events: CaptureEvent[] = [];
let records: Buffer[] = [];

beforeAll(async () => {
  for (const name of readdirSync(EVENTS_DIR)
    .filter((n) => n.endsWith('.jsonl'))
    .sort()) {
    for await (const ev of readEventFile(path.join(EVENTS_DIR, name))) events.push(ev);
  }
  records = events.map((ev) => encodeRecords([ev]));
});

/** A record as the ring hands it over: a view with `extra` bytes after it that are not its own. */
function ringView(record: Buffer, extra: number): Buffer {
  const room = Buffer.alloc(record.length + extra, 0x5a);
  record.copy(room);
  return room;
}

describe('RecordQueue', () => {
  it('hands over whole records in order, however pushes and takes interleave, and counts the backlog', () => {
    const r = seededRandom(6);
    const total = records.reduce((n, rec) => n + rec.length, 0);
    expect(total).toBeGreaterThan(1_000_000); // a large body: many 16 KiB chunks, several queue chunks
    const queue = new RecordQueue();
    const out: Buffer[] = [];
    let pushed = 0;
    let taken = 0;
    for (let i = 0; i < records.length; ) {
      for (let k = 1 + Math.floor(r() * 30); k > 0 && i < records.length; k--, i++) {
        queue.push(ringView(records[i]!, Math.floor(r() * 300)), records[i]!.length);
        pushed += records[i]!.length;
      }
      expect(queue.byteLength).toBe(pushed - taken);
      for (let k = Math.floor(r() * 3); k > 0; k--) {
        const got = queue.take();
        if (!got) break;
        out.push(got);
        taken += got.length;
        expect(queue.byteLength).toBe(pushed - taken);
      }
    }
    for (let got = queue.take(); got; got = queue.take()) out.push(got);
    expect(queue.byteLength).toBe(0);
    expect(queue.take()).toBeUndefined();
    const all = Buffer.concat(out);
    expect(all.equals(Buffer.concat(records))).toBe(true);
    // Each piece handed over is whole records: it decodes on its own.
    expect(out.flatMap((piece) => decodeRecords(piece))).toStrictEqual(events);
    expect(out.length).toBeGreaterThan(5);
    expect(queue.peakBytes).toBeGreaterThan(0);
    expect(queue.peakBytes).toBeLessThanOrEqual(total);
  });

  it('bytes handed over stay as they were while later records fill the same chunk', () => {
    const queue = new RecordQueue();
    const small = records.filter((rec) => rec.length < 200).slice(0, 50);
    expect(small.length).toBe(50);
    queue.push(small[0]!, small[0]!.length);
    const first = queue.take()!;
    const copy = Buffer.from(first);
    for (const rec of small.slice(1)) queue.push(ringView(rec, 64), rec.length);
    expect(first.equals(copy)).toBe(true);
    expect(queue.take()!.equals(Buffer.concat(small.slice(1)))).toBe(true);
  });

  it('peak: the most that waited at once', () => {
    const queue = new RecordQueue();
    const a = records.find((rec) => rec.length > 1000)!;
    const c = records.find((rec) => rec.length < 100)!;
    queue.push(a, a.length);
    queue.push(a, a.length);
    queue.take();
    queue.push(c, c.length);
    expect(queue.peakBytes).toBe(2 * a.length);
    expect(queue.byteLength).toBe(c.length);
  });

  it('keeps no reference to a chunk once it has handed all of it over', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const queue = new RecordQueue();
    const big = records.find((rec) => rec.length > 16_000)!;
    // In a function of its own: an async function's suspended frame would keep its locals alive.
    const handOver = (): WeakRef<ArrayBuffer>[] => {
      const refs: WeakRef<ArrayBuffer>[] = [];
      for (let i = 0; i < 200; i++) queue.push(big, big.length); // ~3 MiB: a dozen chunks
      for (let got = queue.take(); got; got = queue.take()) refs.push(new WeakRef(got.buffer as ArrayBuffer));
      queue.push(big, big.length); // the queue goes on: only the chunk being filled is its own
      return refs;
    };
    const handedOver = handOver();
    expect(new Set(handedOver.map((ref) => ref.deref())).size).toBeGreaterThan(10);
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    const alive = new Set(handedOver.map((ref) => ref.deref()).filter((b) => b !== undefined));
    expect(alive.size).toBeLessThanOrEqual(1); // at most the chunk the last push went into
  });
});
