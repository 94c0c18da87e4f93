// FileWriterProcess (src/spool/file-writer-process.ts) in process: a manual clock, a spool of
// frames held in memory, the real Reconstructor on real eBPF recordings (fixtures/events/), and
// files that keep what they are given. What the real process does with its stdin, its spool and
// its parent is checked here without spawning it (spool-file-writer.test.ts spawns it).

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { OutputError } from '../src/errors.js';
import type { TestSetSummary } from '../src/format/test-set-writer.js';
import type { CaptureEvent } from '../src/model/events.js';
import type { Exchange } from '../src/model/exchange.js';
import { appPortOf } from '../src/record/app-port.js';
import { readEventFile } from '../src/record/event-file.js';
import { Reconstructor, type ReconstructStats } from '../src/record/reconstruct.js';
import { FileWriterProcess, type Clock, type FileWriterIo } from '../src/spool/file-writer-process.js';
import { RECORDER_DONE, type FileWriterReport } from '../src/spool/file-writer-protocol.js';
import { repoRoot } from './helpers/procs.js';

/** Timers run only when the test says so, in order of their time; the clock jumps to each. */
class ManualClock implements Clock {
  private t = 0;
  private ids = 0;
  private timers: Array<{ at: number; id: number; fn: () => void }> = [];

  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.ids;
    this.timers.push({ at: this.t + ms, id, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }
  /** Delays of the timers planned, from now. */
  planned(): number[] {
    return this.timers.map((t) => t.at - this.t);
  }
  /** Runs the earliest timer; false when none is planned. */
  runNext(): boolean {
    this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
    const next = this.timers.shift();
    if (!next) return false;
    this.t = Math.max(this.t, next.at);
    next.fn();
    return true;
  }
}

/** A spool in memory: frames are appended by the test and read by step(), one per call. */
class MemorySpool {
  readonly frames: Array<{ events: CaptureEvent[]; bytes: number; bad?: boolean }> = [];
  private read = 0;
  private handled = 0;
  constructor(private readonly onFrame: (frame: Buffer) => void) {}
  step(): boolean {
    if (this.read === this.frames.length) return false;
    const index = this.read++;
    this.handled += this.frames[index]!.bytes;
    this.onFrame(Buffer.from(String(index)));
    return true;
  }
  handledBytes(): number {
    return this.handled;
  }
  backlogBytes(): number {
    return this.frames.slice(this.read).reduce((n, f) => n + f.bytes, 0);
  }
  finish(): number {
    while (this.step());
    return 0;
  }
}

interface Harness {
  clock: ManualClock;
  spool: () => MemorySpool;
  written: Exchange[];
  reports: FileWriterReport<ReconstructStats>[];
  warnings: string[];
  released: number[];
  process: FileWriterProcess<ReconstructStats>;
  /** Runs timers until the process is done (or `max` timers ran). */
  runToEnd(max?: number): Promise<void>;
}

function harness(
  overrides: Partial<FileWriterIo<ReconstructStats>> = {},
  opts: { parentPid?: () => number; failWriteAt?: number } = {},
): Harness {
  const clock = new ManualClock();
  let spool: MemorySpool | undefined;
  const written: Exchange[] = [];
  const reports: FileWriterReport<ReconstructStats>[] = [];
  const warnings: string[] = [];
  const released: number[] = [];
  const counts: TestSetSummary = { tests: 0, mocks: 0, failedTests: 0, failedMocks: 0 };
  const process = new FileWriterProcess<ReconstructStats>({
    clock,
    openSpool: (onFrame) => (spool = new MemorySpool(onFrame)),
    openFrame: (frame) => {
      const f = spool!.frames[Number(frame.toString())]!;
      if (f.bad) throw new Error('unsupported state or unable to authenticate data');
      return { events: f.events, bytes: f.bytes };
    },
    files: {
      writeExchange(ex) {
        if (opts.failWriteAt !== undefined && written.length === opts.failWriteAt) {
          const cause = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          if (ex.role === 'incoming') counts.failedTests++;
          else counts.failedMocks++;
          throw new OutputError('cannot write test-9.yaml: ENOSPC: no space left on device, write', {
            stage: 'write recording',
            hint: 'free some disk space',
            cause,
          });
        }
        written.push(ex);
        if (ex.role === 'incoming') counts.tests++;
        else counts.mocks++;
      },
      close: async () => ({ ...counts }),
    },
    reconstruct: (onExchange) => new Reconstructor({ onExchange }),
    report: (r) => reports.push(r),
    parentPid: opts.parentPid ?? (() => 4242),
    releaseCommand: () => {
      released.push(clock.now());
      return 2;
    },
    warn: (message) => warnings.push(message),
    appPortOf,
    ...overrides,
  });
  const h: Harness = {
    clock,
    spool: () => spool!,
    written,
    reports,
    warnings,
    released,
    process,
    async runToEnd(max = 10_000) {
      let finished = false;
      void process.done.then(
        () => (finished = true),
        () => (finished = true),
      );
      for (let i = 0; i < max && !finished; i++) {
        if (!clock.runNext()) await new Promise((r) => setImmediate(r));
        await Promise.resolve();
      }
      await process.done;
    },
  };
  return h;
}

const endOf = (reports: FileWriterReport<ReconstructStats>[]) =>
  reports.find((r) => 'end' in r) as Extract<FileWriterReport<ReconstructStats>, { end: unknown }> | undefined;

interface Recording {
  name: string;
  events: CaptureEvent[];
  exchanges: Exchange[];
  stats: ReconstructStats;
}

describe('FileWriterProcess', () => {
  const recordings: Recording[] = [];

  beforeAll(async () => {
    const dir = join(repoRoot, 'fixtures', 'events');
    for (const name of readdirSync(dir)
      .filter((n) => n.endsWith('.jsonl'))
      .sort()) {
      const events: CaptureEvent[] = [];
      for await (const ev of readEventFile(join(dir, name))) events.push(ev);
      const exchanges: Exchange[] = [];
      const r = new Reconstructor({ onExchange: (ex) => exchanges.push(ex) });
      for (const ev of events) r.push(ev);
      recordings.push({ name, events, exchanges, stats: r.finish() });
    }
  });

  /** The recording's events as frames of `per` events, each said to hold `bytes` bytes. */
  const framesOf = (rec: Recording, per: number, bytes = 1000) => {
    const frames = [];
    for (let i = 0; i < rec.events.length; i += per) frames.push({ events: rec.events.slice(i, i + per), bytes });
    return frames;
  };

  it("hands every exchange of each real recording to the files, in order, and ends with reconstruction's summary", async () => {
    expect(recordings.length).toBeGreaterThan(5);
    for (const rec of recordings) {
      const h = harness();
      h.spool().frames.push(...framesOf(rec, 5));
      h.process.start();
      h.process.input(`${RECORDER_DONE}\n`);
      h.process.inputEnded();
      await h.runToEnd();
      expect(h.written, rec.name).toEqual(rec.exchanges);
      const end = endOf(h.reports);
      expect(end?.stats, rec.name).toEqual(rec.stats);
      const tests = rec.exchanges.filter((e) => e.role === 'incoming').length;
      expect(end?.end, rec.name).toEqual({
        tests,
        mocks: rec.exchanges.length - tests,
        failedTests: 0,
        failedMocks: 0,
      });
      if (tests > 0) expect(end?.appPort, rec.name).toBeGreaterThan(0);
      expect(h.released, rec.name).toEqual([]); // the recorder said it had stopped its capture
    }
  });

  it('while the command runs under load it waits; a line on its input (the command ended) sets it to work at once', async () => {
    const rec = recordings.find((r) => r.exchanges.length > 3)!;
    const h = harness();
    h.process.start();
    h.clock.runNext(); // nothing in the spool yet: the first look marks the arrival rate
    expect(h.clock.planned()).toEqual([20]);
    h.spool().frames.push(...framesOf(rec, 5, 200 * 1024)); // megabytes at once: a load test
    h.clock.runNext();
    expect(h.written).toEqual([]);
    expect(h.clock.planned()).toEqual([100]); // only looks at the rate again
    h.clock.runNext();
    expect(h.written).toEqual([]);

    h.process.input('\n');
    expect(h.clock.planned()).toEqual([0]);
    h.clock.runNext();
    expect(h.written).toEqual(rec.exchanges.slice(0, h.written.length));
    expect(h.written.length).toBeGreaterThan(0);
    h.process.inputEnded();
    await h.runToEnd();
    expect(h.written).toEqual(rec.exchanges);
  });

  it('with an empty spool it looks again after 20 ms, doubling up to 200 ms; its input ending wakes it at once', () => {
    const h = harness();
    h.process.start();
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      h.clock.runNext();
      delays.push(...h.clock.planned());
    }
    expect(delays).toEqual([20, 40, 80, 160, 200, 200, 200]);
    h.process.input(`${RECORDER_DONE}\n`);
    h.process.inputEnded();
    expect(h.clock.planned()).toEqual([0]);
  });

  it('input that ends without RECORDER_DONE: once the recorder is gone (re-parented), the command is released and it says so', async () => {
    let parent = 4242;
    const h = harness({}, { parentPid: () => parent });
    h.process.start();
    h.process.inputEnded(); // the recorder died: no RECORDER_DONE
    for (let i = 0; i < 5; i++) h.clock.runNext();
    expect(h.released).toEqual([]); // still the same parent: the recorder's files may not be closed yet
    parent = 1;
    await h.runToEnd();
    for (let i = 0; i < 10 && h.released.length === 0; i++) h.clock.runNext();
    expect(h.released).toHaveLength(1);
    expect(h.warnings).toEqual([
      'tlsrec ended without stopping its capture; continued 2 stopped process(es) of the recorded command',
    ]);
    expect(endOf(h.reports)).toBeDefined(); // and the files were finished
  });

  it('the first failed write is reported once with its code and hint; nothing more is written, the rest is counted as not written', async () => {
    const rec = recordings.reduce((a, b) => (b.exchanges.length > a.exchanges.length ? b : a));
    expect(rec.exchanges.length).toBeGreaterThan(4);
    const h = harness({}, { failWriteAt: 2 });
    h.spool().frames.push(...framesOf(rec, 5));
    h.process.start();
    h.process.input(`${RECORDER_DONE}\n`);
    h.process.inputEnded();
    await h.runToEnd();
    expect(h.written).toEqual(rec.exchanges.slice(0, 2));
    const failures = h.reports.filter((r) => 'failure' in r);
    expect(failures).toEqual([
      {
        failure: {
          message: 'cannot write test-9.yaml: ENOSPC: no space left on device, write',
          code: 'ENOSPC',
          hint: 'free some disk space',
        },
      },
    ]);
    const end = endOf(h.reports)!;
    expect(end.end.tests + end.end.mocks).toBe(2);
    expect(end.end.failedTests + end.end.failedMocks).toBe(rec.exchanges.length - 2);
  });

  it('a frame that cannot be opened is reported and skipped; the frames after it are still handled', async () => {
    const rec = recordings.find((r) => r.name === 'keepalive.jsonl') ?? recordings[0]!;
    const h = harness();
    h.spool().frames.push({ events: [], bytes: 10, bad: true }, ...framesOf(rec, 3));
    h.process.start();
    h.process.input(`${RECORDER_DONE}\n`);
    h.process.inputEnded();
    await h.runToEnd();
    expect(h.reports.filter((r) => 'failure' in r)).toEqual([
      {
        failure: {
          message: 'a spooled batch of events could not be read: unsupported state or unable to authenticate data',
        },
      },
    ]);
    expect(h.written).toEqual(rec.exchanges);
  });

  it('an error while working ends it without an end report (the recorder then says it stopped early)', async () => {
    const h = harness({
      reconstruct: () => ({
        push: () => undefined,
        finish: () => {
          throw new Error('boom');
        },
      }),
    });
    h.process.start();
    h.process.inputEnded();
    await expect(h.runToEnd()).rejects.toThrow('boom');
    expect(endOf(h.reports)).toBeUndefined();
  });
});
