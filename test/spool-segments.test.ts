// The on-disk spool between the recorder and its file-writer process (src/spool/segments.ts): frame
// parsing at every split point, and an appender and a reader working on the same directory with small
// segments, so that rotation, deletion of finished segments and cut-off frames are exercised.
// Random data comes from a seeded PRNG: a failure names its seed and is reproducible.

import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  parseFrames,
  segmentPath,
  SpoolReader,
  SpoolAppendError,
  SpoolAppender,
  type SpoolItem,
} from '../src/spool/segments.js';
import { seededRandom } from './helpers/random.js';

const NEXT = '#tlsrec-spool next\n';

function randomBytes(rand: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) b.writeUInt32LE(Math.floor(rand() * 4294967296), i);
  for (; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/** Mostly small records, some medium, some far larger than a 64 KiB segment. */
function randomSize(rand: () => number): number {
  const r = rand();
  if (r < 0.1) return 0;
  if (r < 0.55) return Math.floor(rand() * 2048);
  if (r < 0.85) return Math.floor(rand() * 64 * 1024);
  return Math.floor(rand() * 300 * 1024);
}

function frame(data: Buffer | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
  return Buffer.concat([Buffer.from(`#tlsrec-spool ${body.length}\n`, 'latin1'), body]);
}

const records = (items: SpoolItem[]): string[] =>
  items.map((i) => (i.kind === 'next' ? '<next>' : i.data.toString('latin1')));

describe('parseFrames', () => {
  it('splits whole frames: records (empty, binary, with newlines and header-like text) and the next marker', () => {
    const bodies = ['hello', '', 'a\nb\n\n', '#tlsrec-spool 3\nxyz', '\x00\xff\x0a\x0d\x80', 'x'.repeat(5000)];
    const buf = Buffer.concat([...bodies.map((b) => frame(b)), Buffer.from(NEXT, 'latin1')]);
    const { items, used } = parseFrames(buf);
    expect(used).toBe(buf.length);
    expect(records(items)).toEqual([...bodies, '<next>']);
    // A record's data is exactly its bytes (binary kept).
    const bin = items[4]!;
    expect(bin.kind === 'frame' && [...bin.data]).toEqual([0x00, 0xff, 0x0a, 0x0d, 0x80]);
  });

  it('an empty buffer is nothing, with nothing used', () => {
    expect(parseFrames(Buffer.alloc(0))).toEqual({ items: [], used: 0 });
  });

  it('split at every byte: returns only the complete frames and the bytes they took', () => {
    const parts = [
      frame('first'),
      frame(''),
      frame('line1\nline2\n'),
      Buffer.from(NEXT, 'latin1'),
      frame(Buffer.from([0, 10, 255, 10])),
      frame('z'.repeat(300)),
    ];
    const names = ['first', '', 'line1\nline2\n', '<next>', '\x00\n\xff\n', 'z'.repeat(300)];
    const buf = Buffer.concat(parts);
    const ends: number[] = [];
    let off = 0;
    for (const p of parts) ends.push((off += p.length));
    for (let cut = 0; cut <= buf.length; cut++) {
      const complete = ends.filter((e) => e <= cut).length;
      const { items, used } = parseFrames(buf.subarray(0, cut));
      expect(records(items), `cut at ${cut}`).toEqual(names.slice(0, complete));
      expect(used, `cut at ${cut}`).toBe(complete === 0 ? 0 : ends[complete - 1]);
    }
  });

  it('works on a buffer that is a view into a larger one (as the reader passes its chunk)', () => {
    const outer = Buffer.concat([Buffer.from('JUNK'), frame('abc'), Buffer.from(NEXT), Buffer.from('JUNK')]);
    const view = outer.subarray(4, outer.length - 4);
    const { items, used } = parseFrames(view);
    expect(records(items)).toEqual(['abc', '<next>']);
    expect(used).toBe(view.length);
  });

  it('throws a clear error on bytes that are not a frame, naming where', () => {
    expect(() => parseFrames(Buffer.from('hello world\n'))).toThrow(
      /spool: bad frame header "hello world\\n" at byte 0/,
    );
    const good = frame('ok');
    expect(() => parseFrames(Buffer.concat([good, Buffer.from('GET / HTTP/1.1\r\n')]))).toThrow(
      `at byte ${good.length}`,
    );
    for (const bad of [
      '#tlsrec-spool -1\n',
      '#tlsrec-spool 1x\n',
      '#tlsrec-spool\n',
      '#tlsrec-spool  1\n',
      '#tlsrec-spool 1\r\n',
      '#tlsrec-spool next \n',
      '#TLSREC-SPOOL 1\n',
    ]) {
      expect(() => parseFrames(Buffer.from(bad, 'latin1')), JSON.stringify(bad)).toThrow(/spool: bad frame header/);
    }
    // NUL bytes in front of a header (a hole in the file) are not a frame either.
    expect(() => parseFrames(Buffer.concat([Buffer.alloc(8), frame('x')]))).toThrow(/spool: bad frame header/);
  });

  it('an overlong header line throws, with or without its newline', () => {
    expect(() => parseFrames(Buffer.from('x'.repeat(200)))).toThrow(/spool: no frame header at byte 0/);
    expect(() => parseFrames(Buffer.from(`#tlsrec-spool ${'1'.repeat(60)}\nabc`))).toThrow(
      /spool: no frame header at byte 0/,
    );
    const good = frame('ok');
    expect(() => parseFrames(Buffer.concat([good, Buffer.alloc(100, 0x41)]))).toThrow(
      `spool: no frame header at byte ${good.length}`,
    );
    // A short run without a newline may still be a header being written: it is left for later.
    expect(parseFrames(Buffer.from('#tlsrec-spool 12'))).toEqual({ items: [], used: 0 });
  });
});

describe('SpoolAppender and SpoolReader', () => {
  let dir = '';
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tlsrec-spool-test-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const PREFIX = '.tlsrec-spool-test';

  /** Writes `count` seeded random records to a spool of 64 KiB segments and closes it; returns them. */
  function closedSpoolOfRandomRecords(seed: number, count: number): Buffer[] {
    const rand = seededRandom(seed);
    const writer = new SpoolAppender(dir, PREFIX, 64 * 1024);
    const records: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const data = randomBytes(rand, randomSize(rand));
      writer.append([data]);
      records.push(data);
    }
    writer.close();
    return records;
  }
  const segIndexes = (): number[] =>
    readdirSync(dir)
      .map((n) => {
        expect(n.startsWith(`${PREFIX}-`), `unexpected file ${n}`).toBe(true);
        return Number(n.slice(PREFIX.length + 1));
      })
      .sort((a, b) => a - b);

  /** A reader that checks every record against `expected` as it arrives. */
  function checkingReader(expected: Buffer[], seed: number): { reader: SpoolReader; got: () => number } {
    let got = 0;
    const reader = new SpoolReader(dir, PREFIX, (data) => {
      const want = expected[got];
      expect(want, `seed ${seed}: record #${got} arrived but only ${expected.length} were appended`).toBeDefined();
      if (!want!.equals(data)) {
        expect.fail(`seed ${seed}: record #${got} differs: ${data.length} bytes, expected ${want!.length}`);
      }
      got++;
    });
    return { reader, got: () => got };
  }

  for (const seed of [1, 42, 20240611]) {
    it(`round trip with rotations, the reader interleaved with the writer (seed ${seed})`, () => {
      const rand = seededRandom(seed);
      const SEG = 64 * 1024;
      const expected: Buffer[] = [];
      const { reader, got } = checkingReader(expected, seed);
      // Started before the writer: no segment yet.
      expect(reader.step()).toBe(false);
      expect(reader.step()).toBe(false);

      const writer = new SpoolAppender(dir, PREFIX, SEG);
      expect(writer.prefix).toBe(PREFIX);
      let maxSeg = 0;
      let drains = 0;
      while (expected.length < 120) {
        const burst = 1 + Math.floor(rand() * 8);
        for (let i = 0; i < burst; i++) {
          // Records are appended in several parts, as encodeExchange returns them.
          const data = randomBytes(rand, randomSize(rand));
          const cut1 = Math.floor(rand() * (data.length + 1));
          const cut2 = cut1 + Math.floor(rand() * (data.length - cut1 + 1));
          writer.append([data.subarray(0, cut1), data.subarray(cut1, cut2), data.subarray(cut2)]);
          expected.push(data);
        }
        // Appends are queued until flushed: one writev for the burst.
        expect(writer.pendingBytes()).toBeGreaterThan(0);
        expect(writer.flush()).toBe(burst);
        expect(writer.pendingBytes()).toBe(0);
        // What is on disk: a contiguous run of segments from the reader's to the writer's.
        const before = segIndexes();
        expect(before.length).toBeGreaterThan(0);
        expect(before).toEqual(Array.from({ length: before.length }, (_, k) => before[0]! + k));
        maxSeg = Math.max(maxSeg, before[before.length - 1]!);
        for (const k of before) expect(statSync(segmentPath(dir, PREFIX, k)).mode & 0o777, `segment ${k}`).toBe(0o600);

        if (rand() < 0.3) {
          // One step only: it handles something, and never delivers more than was appended.
          expect(reader.step()).toBe(true);
          expect(got()).toBeLessThanOrEqual(expected.length);
        } else {
          while (reader.step());
          drains++;
          // Caught up: every appended record has arrived, in order, and only the current segment is left.
          expect(got(), `seed ${seed}`).toBe(expected.length);
          expect(segIndexes()).toEqual([maxSeg]);
        }
      }
      writer.close();
      writer.close(); // closing twice is harmless
      expect(() => writer.append([Buffer.from('late')])).toThrow(/after close/);

      expect(reader.finish()).toBe(0);
      expect(got()).toBe(expected.length);
      expect(readdirSync(dir)).toEqual([]);
      expect(drains).toBeGreaterThan(3);
      expect(maxSeg, 'several rotations happened').toBeGreaterThanOrEqual(10);
    });
  }

  it('a reader that only starts after the writer has finished gets everything; finish() returns 0 and removes all', () => {
    const expected = closedSpoolOfRandomRecords(7, 60);
    const segments = segIndexes();
    expect(segments.length).toBeGreaterThan(5);
    for (const k of segments) expect(statSync(segmentPath(dir, PREFIX, k)).mode & 0o777).toBe(0o600);
    const { reader, got } = checkingReader(expected, 7);
    expect(reader.finish()).toBe(0);
    expect(got()).toBe(60);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('backlogBytes and handledBytes: what is not handled yet, across segments, and what is; together all that was spooled', () => {
    const onDisk = (): number => segIndexes().reduce((n, k) => n + statSync(segmentPath(dir, PREFIX, k)).size, 0);
    expect(new SpoolReader(dir, PREFIX, () => undefined).backlogBytes()).toBe(0); // no segment yet
    const expected = closedSpoolOfRandomRecords(3, 40);
    expect(segIndexes().length).toBeGreaterThan(3);
    const { reader, got } = checkingReader(expected, 3);
    let last = reader.backlogBytes();
    const total = onDisk();
    expect(last).toBe(total);
    expect(reader.handledBytes()).toBe(0);
    while (reader.step()) {
      const now = reader.backlogBytes();
      expect(now).toBeLessThan(last);
      expect(reader.handledBytes() + now).toBe(total); // together: everything the writer spooled
      // Everything from the reader's segment on is still on disk; the part of it already read is not backlog.
      expect(now).toBeLessThanOrEqual(onDisk());
      last = now;
    }
    expect(last).toBe(0);
    expect(got()).toBe(40);
  });

  it('segment layout: frames back to back, a frame that exactly fills a segment stays, the next one rotates', () => {
    const SEG = 1000;
    const writer = new SpoolAppender(dir, PREFIX, SEG);
    expect(readdirSync(dir)).toEqual([`${PREFIX}-0`]); // created by the constructor
    expect(statSync(segmentPath(dir, PREFIX, 0)).size).toBe(0);
    const body = Buffer.alloc(SEG - '#tlsrec-spool 982\n'.length, 0x61);
    expect(frame(body).length).toBe(SEG);
    writer.append([body]);
    writer.flush();
    expect(readdirSync(dir)).toEqual([`${PREFIX}-0`]);
    writer.append([]); // an empty record: rotates, since the segment is full
    writer.flush();
    expect(readFileSync(segmentPath(dir, PREFIX, 0))).toEqual(Buffer.concat([frame(body), Buffer.from(NEXT)]));
    expect(readFileSync(segmentPath(dir, PREFIX, 1), 'latin1')).toBe('#tlsrec-spool 0\n');
    // A record larger than a segment goes, whole, into a segment of its own.
    const big = Buffer.alloc(3 * SEG, 0x62);
    writer.append([big.subarray(0, 10), big.subarray(10)]);
    writer.append([Buffer.from('tail')]);
    writer.close();
    expect(readFileSync(segmentPath(dir, PREFIX, 1), 'latin1')).toBe('#tlsrec-spool 0\n' + NEXT);
    expect(readFileSync(segmentPath(dir, PREFIX, 2))).toEqual(Buffer.concat([frame(big), Buffer.from(NEXT)]));
    expect(readFileSync(segmentPath(dir, PREFIX, 3), 'latin1')).toBe(frame('tail').toString('latin1'));
    for (let k = 0; k <= 3; k++) expect(statSync(segmentPath(dir, PREFIX, k)).mode & 0o777).toBe(0o600);

    const got: string[] = [];
    const reader = new SpoolReader(dir, PREFIX, (d) =>
      got.push(d.length > 20 ? `<${d.length}>` : d.toString('latin1')),
    );
    expect(reader.finish()).toBe(0);
    expect(got).toEqual([`<${body.length}>`, '', `<${big.length}>`, 'tail']);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('does not take over an existing spool with the same prefix', () => {
    const writer = new SpoolAppender(dir, PREFIX, 1024);
    writer.append([Buffer.from('mine')]);
    expect(() => new SpoolAppender(dir, PREFIX, 1024)).toThrow(/EEXIST/);
    writer.close();
    expect(readFileSync(segmentPath(dir, PREFIX, 0), 'latin1')).toBe(frame('mine').toString('latin1'));
  });

  it('the reader handles frames that arrive a byte at a time, across a segment change', () => {
    // Written by hand, as a writer in another process would be seen mid-write(2).
    const seg0 = Buffer.concat([frame('one'), frame(''), frame('two\nlines'), Buffer.from(NEXT)]);
    const seg1 = Buffer.concat([frame(Buffer.from([0, 255, 10])), frame('last')]);
    const got: string[] = [];
    const reader = new SpoolReader(dir, PREFIX, (d) => got.push(d.toString('latin1')));
    expect(reader.step()).toBe(false);
    const p0 = segmentPath(dir, PREFIX, 0);
    const p1 = segmentPath(dir, PREFIX, 1);
    writeFileSync(p0, '', { mode: 0o600 });
    expect(reader.step()).toBe(false); // exists, but empty
    const stepAll = (): void => {
      while (reader.step());
    };
    const bounds0 = [frame('one').length, frame('one').length + frame('').length, seg0.length - NEXT.length];
    for (let i = 0; i < seg0.length; i++) {
      if (i === seg0.length - 1) writeFileSync(p1, '', { mode: 0o600 }); // the next segment exists before "next" is complete
      appendFileSync(p0, seg0.subarray(i, i + 1));
      stepAll();
      expect(got.length, `after byte ${i + 1} of segment 0`).toBe(bounds0.filter((b) => b <= i + 1).length);
    }
    expect(got).toEqual(['one', '', 'two\nlines']);
    expect(readdirSync(dir)).toEqual([path.basename(p1)]); // segment 0 is done and gone
    for (let i = 0; i < seg1.length; i++) {
      appendFileSync(p1, seg1.subarray(i, i + 1));
      stepAll();
    }
    expect(got).toEqual(['one', '', 'two\nlines', '\x00\xff\n', 'last']);
    expect(reader.finish()).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('finish() reports the size of a cut-off last frame, after delivering the complete ones', () => {
    const expected = closedSpoolOfRandomRecords(99, 20);
    const last = segIndexes().pop()!;
    expect(last).toBeGreaterThan(0);
    // A frame whose header says 5000 bytes, of which only 1234 made it to disk.
    const cut = frame(randomBytes(seededRandom(100), 5000)).subarray(0, '#tlsrec-spool 5000\n'.length + 1234);
    appendFileSync(segmentPath(dir, PREFIX, last), cut);
    const { reader, got } = checkingReader(expected, 99);
    expect(reader.finish()).toBe(cut.length);
    expect(got()).toBe(expected.length);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('finish() reports a cut-off frame header too, and a cut-off "next" line', () => {
    const writer = new SpoolAppender(dir, PREFIX, 1024);
    writer.append([Buffer.from('a')]);
    writer.close();
    appendFileSync(segmentPath(dir, PREFIX, 0), '#tlsrec-sp');
    const got: string[] = [];
    const reader = new SpoolReader(dir, PREFIX, (d) => got.push(d.toString()));
    expect(reader.step()).toBe(true);
    expect(got).toEqual(['a']);
    expect(reader.finish()).toBe('#tlsrec-sp'.length);
    expect(readdirSync(dir)).toEqual([]);

    const w2 = new SpoolAppender(dir, PREFIX, 1024);
    w2.append([Buffer.from('b')]);
    w2.close();
    appendFileSync(segmentPath(dir, PREFIX, 0), NEXT.slice(0, 12));
    const got2: string[] = [];
    const r2 = new SpoolReader(dir, PREFIX, (d) => got2.push(d.toString()));
    expect(r2.finish()).toBe(12);
    expect(got2).toEqual(['b']);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a failed batch (short write, then ENOSPC) is cut off whole; later frames follow it without a hole', () => {
    const w = new SpoolAppender(dir, 'p', 1 << 16);
    w.append([Buffer.from('first')]);
    expect(w.flush()).toBe(1);
    const realWritev = fs.writevSync;
    const spies = [
      // the batch's writev writes 10 bytes only, then the rest fails with ENOSPC
      vi
        .spyOn(fs, 'writevSync')
        .mockImplementation(((fd: number, bufs: Buffer[], pos: number) =>
          realWritev(fd, [Buffer.concat(bufs).subarray(0, 10)], pos)) as typeof fs.writevSync),
      vi.spyOn(fs, 'writeSync').mockImplementation((() => {
        throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      }) as typeof fs.writeSync),
    ];
    syncBuiltinESMExports();
    try {
      w.append([Buffer.alloc(100, 0x61)]);
      w.append([Buffer.from('second of the batch')]);
      let caught: unknown;
      try {
        w.flush();
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(SpoolAppendError);
      expect((caught as SpoolAppendError).frames).toBe(2); // the whole batch, named
      expect((caught as SpoolAppendError).message).toMatch(/ENOSPC/);
      expect(w.pendingBytes()).toBe(0);
    } finally {
      for (const spy of spies) spy.mockRestore();
      syncBuiltinESMExports();
    }
    expect(readFileSync(segmentPath(dir, 'p', 0), 'latin1')).toBe('#tlsrec-spool 5\nfirst'); // cut back, no hole
    w.append([Buffer.from('third')]);
    w.close(); // flushes
    const got: string[] = [];
    expect(new SpoolReader(dir, 'p', (d) => got.push(d.toString())).finish()).toBe(0);
    expect(got).toEqual(['first', 'third']);
  });

  it('a batch that fails part way keeps the frames written whole (the reader may have them) and counts only the rest', () => {
    const w = new SpoolAppender(dir, 'p', 1 << 16);
    const realWritev = fs.writevSync;
    const spies = [
      // the first frame and 3 bytes of the second get written, then the disk is full
      vi
        .spyOn(fs, 'writevSync')
        .mockImplementation(((fd: number, bufs: Buffer[], pos: number) =>
          realWritev(
            fd,
            [Buffer.concat(bufs).subarray(0, '#tlsrec-spool 3\none'.length + 3)],
            pos,
          )) as typeof fs.writevSync),
      vi.spyOn(fs, 'writeSync').mockImplementation((() => {
        throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      }) as typeof fs.writeSync),
    ];
    syncBuiltinESMExports();
    let caught: unknown;
    try {
      w.append([Buffer.from('one')]);
      w.append([Buffer.from('two')]);
      w.append([Buffer.from('three')]);
      w.flush();
    } catch (err) {
      caught = err;
    } finally {
      for (const spy of spies) spy.mockRestore();
      syncBuiltinESMExports();
    }
    expect(caught).toBeInstanceOf(SpoolAppendError);
    expect((caught as SpoolAppendError).frames).toBe(2); // "two" and "three"
    expect(readFileSync(segmentPath(dir, 'p', 0), 'latin1')).toBe('#tlsrec-spool 3\none');
    w.append([Buffer.from('four')]);
    w.close();
    const got: string[] = [];
    expect(new SpoolReader(dir, 'p', (d) => got.push(d.toString())).finish()).toBe(0);
    expect(got).toEqual(['one', 'four']);
  });

  it('a reader on a file that is not a spool throws instead of delivering garbage', () => {
    writeFileSync(segmentPath(dir, PREFIX, 0), 'this is not a spool\n');
    const reader = new SpoolReader(dir, PREFIX, () => expect.fail('no record expected'));
    expect(() => reader.step()).toThrow(/spool: bad frame header/);
  });
});
