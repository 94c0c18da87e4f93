// HTTP/2 framing (RFC 9113 §4): a byte stream cut into frames, whatever the reads and chunks were.
// The client's direction starts with the connection preface, which is not a frame.

/** The client connection preface. */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FRAME_HEADER = 9;

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

/** RFC 9113 §7 error codes, for messages. */
const ERROR_NAMES = [
  'NO_ERROR',
  'PROTOCOL_ERROR',
  'INTERNAL_ERROR',
  'FLOW_CONTROL_ERROR',
  'SETTINGS_TIMEOUT',
  'STREAM_CLOSED',
  'FRAME_SIZE_ERROR',
  'REFUSED_STREAM',
  'CANCEL',
  'COMPRESSION_ERROR',
  'CONNECT_ERROR',
  'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY',
  'HTTP_1_1_REQUIRED',
];

export function errorCodeName(code: number): string {
  return ERROR_NAMES[code] ?? `0x${code.toString(16)}`;
}

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
  /** Kernel time of the chunk that completed the frame. */
  tsNs: bigint;
}

/** A frame that does not fit the framing rules: the direction cannot be read further. */
export class FrameError extends Error {}

/**
 * The largest frame accepted. SETTINGS_MAX_FRAME_SIZE can raise the 16 KiB default up to 2^24-1,
 * the most the length field holds; this bounds what one direction buffers.
 */
const MAX_FRAME_PAYLOAD = 0xffffff;

/** Frames out of one direction's bytes, fed in any split. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  /** Bytes of the preface still expected at the start (client direction only). */
  private prefaceLeft: number;
  /** Bytes taken out of the stream as whole frames (and the preface). */
  consumed = 0;

  constructor(expectPreface: boolean) {
    this.prefaceLeft = expectPreface ? PREFACE.length : 0;
  }

  /** Frames completed by `data`, in order. Throws FrameError on a malformed stream. */
  push(data: Buffer, tsNs: bigint): Frame[] {
    this.buf = this.buf.length === 0 ? data : Buffer.concat([this.buf, data]);
    if (this.prefaceLeft > 0) {
      const n = Math.min(this.prefaceLeft, this.buf.length);
      const at = PREFACE.length - this.prefaceLeft;
      if (!this.buf.subarray(0, n).equals(PREFACE.subarray(at, at + n)))
        throw new FrameError('the client stream does not start with the HTTP/2 preface');
      this.prefaceLeft -= n;
      this.consumed += n;
      this.buf = this.buf.subarray(n);
    }
    const frames: Frame[] = [];
    let off = 0;
    while (this.buf.length - off >= FRAME_HEADER) {
      const len = this.buf.readUIntBE(off, 3);
      if (len > MAX_FRAME_PAYLOAD) throw new FrameError(`frame of ${len} bytes`);
      if (this.buf.length - off < FRAME_HEADER + len) break;
      frames.push({
        type: this.buf[off + 3]!,
        flags: this.buf[off + 4]!,
        streamId: this.buf.readUInt32BE(off + 5) & 0x7fffffff,
        // a copy: the frame outlives the chunk buffers it was cut from
        payload: Buffer.from(this.buf.subarray(off + FRAME_HEADER, off + FRAME_HEADER + len)),
        tsNs,
      });
      off += FRAME_HEADER + len;
    }
    this.consumed += off;
    this.buf = off === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(off);
    return frames;
  }

  /** Bytes of a frame begun but not complete. */
  get pending(): number {
    return this.buf.length;
  }
}

/**
 * The part of a HEADERS, PUSH_PROMISE or DATA payload that is content: padding (and HEADERS'
 * priority fields, PUSH_PROMISE's promised stream id) removed.
 */
export function framePayloadContent(f: Frame): Buffer {
  let p = f.payload;
  let pad = 0;
  if (
    f.flags & Flag.PADDED &&
    (f.type === FrameType.DATA || f.type === FrameType.HEADERS || f.type === FrameType.PUSH_PROMISE)
  ) {
    if (p.length < 1) throw new FrameError('padded frame without a pad length');
    pad = p[0]!;
    p = p.subarray(1);
  }
  if (f.type === FrameType.HEADERS && f.flags & Flag.PRIORITY) p = p.subarray(5);
  if (f.type === FrameType.PUSH_PROMISE) p = p.subarray(4);
  if (pad > p.length) throw new FrameError(`padding of ${pad} bytes is longer than the frame`);
  return p.subarray(0, p.length - pad);
}
