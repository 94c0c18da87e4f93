// SpoolQueue (src/spool/spool-queue.ts): records wait in memory until a flush, the size limit or
// the timer, then go to a real spool on disk as one sealed frame; after the first failed write
// nothing more is appended and every byte not spooled is counted.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SpoolCipher } from '../src/spool/cipher.js';
import { SpoolAppendError, SpoolAppender, SpoolReader } from '../src/spool/segments.js';
import { FLUSH_BYTES, FLUSH_MS, SpoolQueue, type FrameAppender } from '../src/spool/spool-queue.js';

let dirs: string[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function spoolDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'tlsrec-queue-'));
  dirs.push(d);
  return d;
}

/** A reader of the spool: each call gives the plaintext of the frames appended since the last. */
function newFrames(dir: string, cipher: SpoolCipher): () => Buffer[] {
  let frames: Buffer[] = [];
  const reader = new SpoolReader(dir, 'spool', (frame) => frames.push(cipher.open(frame)));
  return () => {
    while (reader.step());
    const got = frames;
    frames = [];
    return got;
  };
}

describe('SpoolQueue', () => {
  it('keeps records until flush(), then writes them as one sealed frame', () => {
    const dir = spoolDir();
    const cipher = SpoolCipher.generate();
    const queue = new SpoolQueue(new SpoolAppender(dir, 'spool'), cipher, dir);
    const framesIn = newFrames(dir, cipher);
    queue.push(Buffer.from('first records|'));
    queue.push(Buffer.alloc(0)); // nothing: no frame of its own
    queue.push(Buffer.from('second records'));
    expect(framesIn()).toEqual([]);
    expect(queue.spooledBytes()).toBe(0);
    queue.flush();
    expect(framesIn().map(String)).toEqual(['first records|second records']);
    expect(queue.spooledBytes()).toBe(28);
    queue.flush(); // nothing queued: no empty frame
    expect(framesIn()).toEqual([]);
  });

  it('writes at once when FLUSH_BYTES are queued, and otherwise after FLUSH_MS', () => {
    vi.useFakeTimers();
    const dir = spoolDir();
    const cipher = SpoolCipher.generate();
    const queue = new SpoolQueue(new SpoolAppender(dir, 'spool'), cipher, dir);
    const framesIn = newFrames(dir, cipher);
    queue.push(Buffer.alloc(FLUSH_BYTES - 1, 1));
    expect(framesIn()).toEqual([]);
    queue.push(Buffer.alloc(1, 2));
    expect(framesIn().map((f) => f.length)).toEqual([FLUSH_BYTES]);

    queue.push(Buffer.from('a few bytes'));
    vi.advanceTimersByTime(FLUSH_MS - 1);
    expect(framesIn()).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(framesIn().map(String)).toEqual(['a few bytes']);
  });

  it('after a failed write appends nothing more; every byte not spooled is counted, the first error kept', () => {
    const appended: Buffer[][] = [];
    let failing = false;
    const appender: FrameAppender = {
      append: (parts) => void appended.push([...parts]),
      flush: () => {
        if (!failing) return appended.length;
        throw new SpoolAppendError(
          Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }),
          1,
        );
      },
      discard: () => appended.splice(-1).length,
    };
    const queue = new SpoolQueue(appender, SpoolCipher.generate(), '/work/tlsrec/test-set-0');
    queue.push(Buffer.alloc(100));
    queue.flush();
    failing = true;
    queue.push(Buffer.alloc(30));
    queue.flush();
    failing = false; // the disk has room again: still nothing, so the spool has no hole
    queue.push(Buffer.alloc(7));
    queue.flush();
    expect(appended).toHaveLength(1);
    expect(queue.spooledBytes()).toBe(100);
    expect(queue.notSpooledBytes()).toBe(37);
    const err = queue.error();
    expect(err?.message).toBe(
      'could not write captured traffic to the spool in /work/tlsrec/test-set-0: ENOSPC: no space left on device, write',
    );
    expect(err?.hint).toBe('free some disk space and record again');
  });
});
