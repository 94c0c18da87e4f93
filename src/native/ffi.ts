// The FFI boundary: opening libbpf.so.1 and libc through ffi-rs, and the few libc calls tlsrec needs
// (mmap/munmap for the ring buffer, malloc/free for buffers libbpf keeps pointers to).
// ffi-rs facts relied on here (checked on Node 20): a NULL pointer is passed as I64 0; a Buffer passed
// as U8Array is the caller's memory (written in place); `memset(p, c, 0)` with retType External turns
// an address number into a JsExternal, and with a U8Array/External argument and retType I64 gives the
// address back, which is how we do pointer arithmetic without a native addon.

import { DataType, createExternalBuffer, load, open, type FieldType, type JsExternal } from 'ffi-rs';
import { EnvironmentError, causeText } from '../errors.js';

export { DataType };
export type { JsExternal };

let libcOpen = false;
let libbpfOpen = false;

export function ensureLibc(): void {
  if (libcOpen) return;
  try {
    open({ library: 'libc', path: 'libc.so.6' });
  } catch (err) {
    throw new EnvironmentError(`cannot open libc.so.6: ${causeText(err)}`, {
      code: 'TLSREC_E_LIBC',
      stage: 'load native libraries',
      hint: 'tlsrec needs glibc (libc.so.6) on Linux',
      cause: err,
    });
  }
  libcOpen = true;
}

export function ensureLibbpf(): void {
  if (libbpfOpen) return;
  ensureLibc();
  try {
    open({ library: 'libbpf', path: 'libbpf.so.1' });
  } catch (err) {
    throw new EnvironmentError(`cannot open libbpf.so.1: ${causeText(err)}`, {
      code: 'TLSREC_E_NO_LIBBPF',
      stage: 'load libbpf',
      hint: 'install libbpf 1.x: `apt-get install libbpf1` (Debian/Ubuntu) or `dnf install libbpf`',
      cause: err,
    });
  }
  libbpfOpen = true;
  // libbpf's default logger writes warnings to our stderr; its callback API cannot be used from
  // ffi-rs (JS callbacks run asynchronously, after the va_list is gone). Silence it: load errors are
  // reported from errno and the kernel log buffer instead (see BpfObject.load).
  if (process.env.TLSREC_LIBBPF_LOG !== '1') {
    call('libbpf', 'libbpf_set_print', DataType.I64, [DataType.I64], [0]);
  }
}

/** Call a C function; the return type decides the JS type. */
export function call(
  library: string,
  funcName: string,
  retType: DataType,
  paramsType: FieldType[],
  paramsValue: unknown[],
): unknown {
  return load({ library, funcName, retType, paramsType, paramsValue });
}

/**
 * Call a C function on a thread of its own (libuv's pool), for calls that block in the kernel: a
 * uprobe link's close waits for RCU grace periods, and several closes wait side by side.
 */
export async function callInThread(
  library: string,
  funcName: string,
  retType: DataType,
  paramsType: FieldType[],
  paramsValue: unknown[],
): Promise<unknown> {
  return load({ library, funcName, retType, paramsType, paramsValue, runInNewThread: true });
}

export interface ErrnoResult<V> {
  value: V;
  errnoCode: number;
  errnoMessage: string;
}

/** Call a C function and also return errno as it was right after the call. */
export function callErrno(
  library: string,
  funcName: string,
  retType: DataType,
  paramsType: FieldType[],
  paramsValue: unknown[],
): ErrnoResult<unknown> {
  return load({ library, funcName, retType, paramsType, paramsValue, errno: true }) as unknown as ErrnoResult<unknown>;
}

/** Address number → JsExternal (identity through memset with length 0). */
export function toExternal(addr: number): JsExternal {
  ensureLibc();
  return call(
    'libc',
    'memset',
    DataType.External,
    [DataType.I64, DataType.I32, DataType.I64],
    [addr, 0, 0],
  ) as JsExternal;
}

/** A zero-copy Buffer over native memory at `addr`. The caller keeps the memory alive. */
export function viewAt(addr: number, length: number): Buffer {
  return createExternalBuffer(toExternal(addr), length);
}

/** malloc'd zeroed memory that libbpf may keep a pointer to; free with freeMem. */
export function allocMem(size: number): number {
  ensureLibc();
  const addr = call('libc', 'calloc', DataType.I64, [DataType.I64, DataType.I64], [1, size]) as number;
  if (!addr)
    throw new EnvironmentError(`calloc(${size}) failed`, {
      stage: 'allocate memory',
      hint: 'the machine is out of memory',
    });
  return addr;
}

export function freeMem(addr: number): void {
  if (addr) call('libc', 'free', DataType.Void, [DataType.I64], [addr]);
}

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;

/** mmap(2) of a file descriptor; returns the address or throws with errno text. */
export function mmapFd(length: number, prot: number, fd: number, offset: number, stage: string): number {
  ensureLibc();
  const r = callErrno(
    'libc',
    'mmap',
    DataType.I64,
    [DataType.I64, DataType.I64, DataType.I32, DataType.I32, DataType.I32, DataType.I64],
    [0, length, prot, MAP_SHARED, fd, offset],
  );
  const addr = r.value as number;
  if (addr === -1 || addr === 0) {
    throw new EnvironmentError(`mmap of ${length} bytes at offset ${offset} (fd ${fd}) failed: ${r.errnoMessage}`, {
      code: 'TLSREC_E_MMAP',
      stage,
      hint: 'the ring buffer may be too large for this machine: try a smaller ring buffer size',
    });
  }
  return addr;
}

export function munmap(addr: number, length: number): void {
  if (addr) call('libc', 'munmap', DataType.I32, [DataType.I64, DataType.I64], [addr, length]);
}

export function pageSize(): number {
  ensureLibc();
  // _SC_PAGESIZE is 30 on Linux (glibc).
  return call('libc', 'sysconf', DataType.I64, [DataType.I32], [30]) as number;
}

const SCHED_OTHER = 0;
const SCHED_IDLE = 5;

/**
 * Run `pid` only when a CPU has nothing else to do (SCHED_IDLE), or back at normal priority.
 * Stronger than nice 19, which still took a fifth to a third of a core from a busy app here
 * (measured): an idle-class task is preempted at once when a normal one wakes. True if it took.
 */
export function setIdleScheduling(pid: number, idle: boolean): boolean {
  ensureLibc();
  const param = Buffer.alloc(4); // struct sched_param { int sched_priority = 0; }
  const r = callErrno(
    'libc',
    'sched_setscheduler',
    DataType.I32,
    [DataType.I32, DataType.I32, DataType.U8Array],
    [pid, idle ? SCHED_IDLE : SCHED_OTHER, param],
  );
  return r.value === 0;
}
