// Sleeping until a BPF ring buffer has something, instead of polling it from a timer. Node cannot
// watch an arbitrary file descriptor, so epoll_wait(2) runs on a thread of libuv's pool (ffi-rs's
// runInNewThread) and its promise resolves on the main thread. A timer draining the rings every
// few milliseconds would wake tlsrec hundreds of times a second with no traffic at all (bench/README.md).

import { DataType, allocMem, call, callErrno, callInThread, ensureLibc, freeMem } from './ffi.js';
import { EnvironmentError } from '../errors.js';

const EPOLL_CLOEXEC = 0x80000;
const EPOLL_CTL_ADD = 1;
const EPOLLIN = 0x1;
const EFD_CLOEXEC = 0x80000;
const EFD_NONBLOCK = 0x800;
/** struct epoll_event is 12 bytes on x86-64 (packed), 16 elsewhere: room for either. */
const EVENT_BYTES = 16;
const MAX_EVENTS = 4;

/** Waits until one of some file descriptors is readable, a timeout passes, or wake() is called. */
export class FdWaiter {
  private readonly epfd: number;
  private readonly wakeFd: number;
  private readonly events: number;
  private inFlight: Promise<unknown> | undefined;
  private closed = false;

  constructor(fds: readonly number[]) {
    ensureLibc();
    const ep = callErrno('libc', 'epoll_create1', DataType.I32, [DataType.I32], [EPOLL_CLOEXEC]);
    if ((ep.value as number) < 0) throw waiterError('epoll_create1', ep.errnoMessage);
    this.epfd = ep.value as number;
    const ev = callErrno(
      'libc',
      'eventfd',
      DataType.I32,
      [DataType.I32, DataType.I32],
      [0, EFD_CLOEXEC | EFD_NONBLOCK],
    );
    if ((ev.value as number) < 0) {
      closeFd(this.epfd);
      throw waiterError('eventfd', ev.errnoMessage);
    }
    this.wakeFd = ev.value as number;
    this.events = allocMem(EVENT_BYTES * MAX_EVENTS);
    for (const fd of [...fds, this.wakeFd]) {
      const event = Buffer.alloc(EVENT_BYTES);
      event.writeUInt32LE(EPOLLIN, 0);
      const r = callErrno(
        'libc',
        'epoll_ctl',
        DataType.I32,
        [DataType.I32, DataType.I32, DataType.I32, DataType.U8Array],
        [this.epfd, EPOLL_CTL_ADD, fd, event],
      );
      if ((r.value as number) < 0) {
        this.releaseFds();
        throw waiterError(`epoll_ctl(ADD, fd ${fd})`, r.errnoMessage);
      }
    }
  }

  /**
   * Resolves when a descriptor is readable (at once if one already is: level-triggered), after
   * `timeoutMs`, or after wake(). One wait at a time.
   */
  async wait(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    if (this.inFlight) throw new Error('FdWaiter.wait: a wait is already in flight');
    this.inFlight = callInThread(
      'libc',
      'epoll_wait',
      DataType.I32,
      [DataType.I32, DataType.I64, DataType.I32, DataType.I32],
      [this.epfd, this.events, MAX_EVENTS, Math.max(0, Math.round(timeoutMs))],
    );
    try {
      await this.inFlight; // -1 (EINTR) is a wake-up like any other
    } finally {
      this.inFlight = undefined;
    }
  }

  /** Ends the wait in flight, and every later one, at once (the eventfd stays readable). */
  wake(): void {
    if (this.closed) return;
    const one = Buffer.alloc(8);
    one.writeBigUInt64LE(1n);
    call('libc', 'write', DataType.I64, [DataType.I32, DataType.U8Array, DataType.I64], [this.wakeFd, one, 8]);
  }

  /** Wakes the wait in flight, lets it return (its thread still uses the descriptors), then closes them. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.wake();
    this.closed = true;
    await this.inFlight?.catch(() => undefined);
    this.releaseFds();
  }

  private releaseFds(): void {
    closeFd(this.wakeFd);
    closeFd(this.epfd);
    freeMem(this.events);
  }
}

function closeFd(fd: number): void {
  if (fd >= 0) call('libc', 'close', DataType.I32, [DataType.I32], [fd]);
}

function waiterError(what: string, cause: string): EnvironmentError {
  return new EnvironmentError(`${what} failed: ${cause}`, {
    code: 'TLSREC_E_EPOLL',
    stage: 'wait for the ring buffers',
    hint: 'the process may be out of file descriptors (ulimit -n)',
  });
}
