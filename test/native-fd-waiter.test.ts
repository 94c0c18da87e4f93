// FdWaiter on real descriptors (a FIFO opened read-write, so it never blocks and never sees EOF):
// epoll_wait runs on a pool thread and the promise resolves when the FIFO has bytes, on wake(),
// on close(), or after the timeout. The capture's own use (BPF rings) is covered by
// native-capture.test.ts, whose every exchange starts with the recorder asleep on the rings.

import { spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FdWaiter } from '../src/native/fd-waiter.js';

/** Whether `p` has settled by the time the event loop has turned a few times. */
async function settled(p: Promise<unknown>, turns = 20): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  for (let i = 0; i < turns && !done; i++) await new Promise((r) => setTimeout(r, 5));
  return done;
}

describe.runIf(process.platform === 'linux')('FdWaiter (epoll on a pool thread)', () => {
  let dir: string;
  let fifo: number;
  let waiter: FdWaiter | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tlsrec-waiter-'));
    const path = join(dir, 'fifo');
    expect(spawnSync('mkfifo', [path]).status).toBe(0);
    fifo = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  });
  afterEach(async () => {
    await waiter?.close();
    waiter = undefined;
    closeSync(fifo);
    rmSync(dir, { recursive: true, force: true });
  });

  it('sleeps while nothing is readable and returns once the descriptor has bytes', async () => {
    waiter = new FdWaiter([fifo]);
    const wait = waiter.wait(60_000);
    expect(await settled(wait)).toBe(false);
    writeSync(fifo, 'x');
    await wait; // a minute's timeout: only the bytes can have ended it within the test's time
  });

  it('returns at once while the descriptor stays readable (level-triggered), and sleeps again once it is read', async () => {
    waiter = new FdWaiter([fifo]);
    writeSync(fifo, 'x');
    await waiter.wait(60_000);
    await waiter.wait(60_000);
    readSync(fifo, Buffer.alloc(1));
    const wait = waiter.wait(60_000);
    expect(await settled(wait)).toBe(false);
    waiter.wake();
    await wait;
  });

  it('returns after the timeout when nothing happens', async () => {
    waiter = new FdWaiter([fifo]);
    const t = performance.now();
    await waiter.wait(50);
    expect(performance.now() - t).toBeGreaterThanOrEqual(45);
  });

  it('close() ends a wait in flight, and later waits return at once', async () => {
    waiter = new FdWaiter([fifo]);
    const wait = waiter.wait(60_000);
    expect(await settled(wait)).toBe(false);
    await waiter.close();
    await wait;
    await waiter.wait(60_000);
  });

  it('refuses a second wait while one is in flight', async () => {
    waiter = new FdWaiter([fifo]);
    const wait = waiter.wait(60_000);
    await expect(waiter.wait(10)).rejects.toThrow(/already in flight/);
    waiter.wake();
    await wait;
  });

  it('says which call failed and what to check for a descriptor epoll cannot watch', () => {
    expect(() => new FdWaiter([1 << 20])).toThrow(/epoll_ctl\(ADD, fd 1048576\) failed: .*Bad file descriptor/);
  });
});
