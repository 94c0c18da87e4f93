// The capture events that src/native/ decodes from the kernel ring buffer and src/record/ consumes.
// The same shape is stored, one JSON object a line, in event-stream fixture files (see
// src/record/event-file.ts), so every stage after the kernel can be tested from recorded data.

/** Where the bytes were seen: in SSL_read/SSL_write (plaintext of a TLS connection) or in socket syscalls. */
export type CaptureSource = 'tls' | 'socket';

/** From the app's point of view: 'in' = bytes the app read (received), 'out' = bytes it wrote (sent). */
export type Direction = 'in' | 'out';

/** One connection as the kernel names it: (tgid, source, connId) is unique within a recording. */
export interface CaptureConnection {
  /** Process (thread group) id. */
  tgid: number;
  source: CaptureSource;
  /**
   * Connection identity within (tgid, source): for TLS the SSL* pointer, for sockets
   * (fd << 32 | creation stamp).
   */
  connId: bigint;
}

interface EventBase extends CaptureConnection {
  /** Kernel monotonic time in nanoseconds (bpf_ktime_get_ns). */
  tsNs: bigint;
  /** Thread id. */
  tid: number;
}

/** A piece of plaintext that the app really transferred. Large calls arrive as several chunks. */
export interface DataEvent extends EventBase {
  type: 'data';
  dir: Direction;
  /** Byte position of data[0] within this direction of the connection (assigned in the kernel). */
  pos: bigint;
  /** Length of the whole read/write call this chunk belongs to. */
  callLen: number;
  /** Offset of this chunk within the call. */
  chunkOff: number;
  data: Buffer;
}

/** A socket was connected (app is client) or accepted (app is server). Socket source only. */
export interface OpenEvent extends EventBase {
  type: 'open';
  role: 'connect' | 'accept';
  /** Peer address and port when known. */
  remoteAddr?: string;
  remotePort?: number;
  localAddr?: string;
  localPort?: number;
}

/** The connection ended: SSL_free for TLS, close() for sockets. */
export interface CloseEvent extends EventBase {
  type: 'close';
}

/** The kernel could not deliver everything: a DataEvent was dropped (ring buffer full, read fault). */
export interface LossEvent extends EventBase {
  type: 'loss';
  dir: Direction;
  /** Position and length of the bytes that never arrived. */
  pos: bigint;
  len: number;
  reason: 'ringbuf_full' | 'read_fault';
}

/** A process in scope mapped a new executable or library, or exec'd: user space may need to attach uprobes. */
export interface ExecEvent extends EventBase {
  type: 'exec';
}

export type CaptureEvent = DataEvent | OpenEvent | CloseEvent | LossEvent | ExecEvent;

/** Per-CPU counters summed at the end of a recording. All zero in a healthy run. */
export interface LossCounters {
  ringbufFull: number;
  readFault: number;
  /** Bytes that were in events the kernel could not deliver. */
  bytesLost: number;
}

/** Stable string key of a connection, for maps. */
export function connKey(e: CaptureConnection): string {
  return `${e.tgid}/${e.source}/${e.connId.toString(16)}`;
}
