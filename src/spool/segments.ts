// An append-only spool of frames on disk, appended to by one process and read, while it grows, by
// another. `record` uses it to hand the captured records, sealed by cipher.ts, from the recorder
// (spooler.ts) to its file-writer process: one write(2) for many frames on the recording side,
// nothing held in memory on either side, and whatever is in the spool survives the death of
// either process.
//
// Segments: <dir>/<prefix>-<k>, each a sequence of frames "#tlsrec-spool <byte length>\n" + bytes.
// When the appender moves on to segment k+1 (after SEGMENT_BYTES) it ends segment k with the line
// "#tlsrec-spool next\n"; the next segment exists before that line is written. The reader deletes
// a segment once it has handled all of it, so the spool's disk use is the reader's backlog.

import * as fs from 'node:fs';
import * as path from 'node:path';

const NEXT_LINE = '#tlsrec-spool next\n';
const FRAME_HEADER = /^#tlsrec-spool (\d+)$/;
/** Header lines are short; a longer run without a newline is not a spool. */
const MAX_HEADER = 40;
export const SEGMENT_BYTES = 64 * 1024 * 1024;
const READ_CHUNK = 1024 * 1024;

export function segmentPath(dir: string, prefix: string, k: number): string {
  return path.join(dir, `${prefix}-${k}`);
}

export type SpoolItem = { kind: 'frame'; data: Buffer } | { kind: 'next' };

/**
 * The frame header at `at`: where the frame's body starts and where the frame ends (a rotation
 * marker has no body). Undefined while the header is still being written; throws on bytes that
 * are not a header.
 */
function headerAt(buf: Buffer, at: number): { next: boolean; bodyStart: number; end: number } | undefined {
  const nl = buf.indexOf(0x0a, at);
  if (nl < 0 || nl - at > MAX_HEADER) {
    if (nl >= 0 || buf.length - at > MAX_HEADER) throw new Error(`spool: no frame header at byte ${at}`);
    return undefined;
  }
  const header = buf.toString('latin1', at, nl + 1);
  if (header === NEXT_LINE) return { next: true, bodyStart: nl + 1, end: nl + 1 };
  const m = FRAME_HEADER.exec(header.slice(0, -1));
  if (!m) throw new Error(`spool: bad frame header ${JSON.stringify(header)} at byte ${at}`);
  return { next: false, bodyStart: nl + 1, end: nl + 1 + Number(m[1]) };
}

/**
 * Splits the complete frames off the start of `buf`: the items and the bytes they took. An
 * incomplete frame at the end is left for later. Throws on bytes that are not a frame.
 */
export function parseFrames(buf: Buffer): { items: SpoolItem[]; used: number } {
  const items: SpoolItem[] = [];
  let at = 0;
  while (at < buf.length) {
    const frame = headerAt(buf, at);
    if (!frame || frame.end > buf.length) break; // still being written
    items.push(frame.next ? { kind: 'next' } : { kind: 'frame', data: buf.subarray(frame.bodyStart, frame.end) });
    at = frame.end;
  }
  return { items, used: at };
}

/** Bytes of the frame at the start of `buf` when its header is complete, else 0. */
function frameLength(buf: Buffer): number {
  return headerAt(buf, 0)?.end ?? 0;
}

/** A batch that could not be written: its frames are not in the spool (the file was cut back). */
export class SpoolAppendError extends Error {
  constructor(
    override readonly cause: unknown,
    readonly frames: number,
  ) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

/** Inside SpoolAppender: a write failed after `frames` whole frames of its batch were on disk. */
class PartialWrite extends Error {
  constructor(
    override readonly cause: unknown,
    readonly frames: number,
  ) {
    super('partial write');
  }
}

/**
 * The writing side. append() only queues a frame (its buffers are not copied); flush() writes the
 * queue with one writev(2) per segment, at explicit positions. A batch that fails is cut off again
 * whole, so the spool always ends on a frame boundary.
 */
export class SpoolAppender {
  private seg = 0;
  private fd: number;
  private size = 0;
  private closed = false;
  private queue: Array<{ buffers: Buffer[]; bytes: number }> = [];
  private queuedBytes = 0;

  constructor(
    private readonly dir: string,
    readonly prefix: string,
    private readonly segmentBytes = SEGMENT_BYTES,
  ) {
    // 0600: a spool holds request and response bodies.
    this.fd = fs.openSync(segmentPath(dir, prefix, 0), 'wx', 0o600);
  }

  append(parts: readonly Buffer[]): void {
    if (this.closed) throw new Error('SpoolAppender.append after close()');
    let length = 0;
    for (const p of parts) length += p.length;
    const header = Buffer.from(`#tlsrec-spool ${length}\n`, 'latin1');
    this.queue.push({ buffers: [header, ...parts], bytes: header.length + length });
    this.queuedBytes += header.length + length;
  }

  /** Bytes appended but not yet written. */
  pendingBytes(): number {
    return this.queuedBytes;
  }

  /** Drops what was appended and not yet written; returns the number of frames dropped. */
  discard(): number {
    const n = this.queue.length;
    this.queue = [];
    this.queuedBytes = 0;
    return n;
  }

  /** Writes what was appended. Returns the number of frames written; throws SpoolAppendError. */
  flush(): number {
    const frames = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    let done = 0;
    try {
      while (done < frames.length) {
        if (this.size > 0 && this.size + frames[done]!.bytes > this.segmentBytes) this.rotate();
        // As many frames as fit in this segment (at least one), in one writev.
        let end = done;
        let bytes = 0;
        while (end < frames.length && (end === done || this.size + bytes + frames[end]!.bytes <= this.segmentBytes))
          bytes += frames[end++]!.bytes;
        done += this.writeFrames(frames.slice(done, end));
      }
    } catch (err) {
      throw new SpoolAppendError(
        err instanceof PartialWrite ? err.cause : err,
        frames.length - done - (err instanceof PartialWrite ? err.frames : 0),
      );
    }
    return done;
  }

  /** Flushes what is queued (throws like flush) and closes the file. */
  close(): void {
    if (this.closed) return;
    try {
      this.flush();
    } finally {
      this.closed = true;
      fs.closeSync(this.fd);
    }
  }

  /** Closes the file and deletes every segment (for a spool nobody will read). */
  remove(): void {
    if (!this.closed) {
      this.closed = true;
      this.discard();
      try {
        fs.closeSync(this.fd);
      } catch {
        /* already closed */
      }
    }
    for (let k = 0; k <= this.seg; k++) fs.rmSync(segmentPath(this.dir, this.prefix, k), { force: true });
  }

  /**
   * Writes whole frames at the end of the segment; returns how many. On failure the file is cut
   * back to the last frame written whole (the reader may have seen those: they count as written)
   * and PartialWrite says how many that was.
   */
  private writeFrames(frames: ReadonlyArray<{ buffers: Buffer[]; bytes: number }>): number {
    const buffers = frames.flatMap((f) => f.buffers);
    let total = 0;
    for (const f of frames) total += f.bytes;
    let written = 0;
    try {
      // At explicit positions: after a failed write is cut off, the next one starts where it did
      // (the file position would be past the cut, leaving a hole of zero bytes).
      written = fs.writevSync(this.fd, buffers, this.size);
      if (written < total) {
        // Short write (or more buffers than one writev takes): the rest in one piece.
        const rest = Buffer.concat(buffers).subarray(written);
        for (let off = 0; off < rest.length; ) {
          const n = fs.writeSync(this.fd, rest, off, rest.length - off, this.size + written);
          off += n;
          written += n;
        }
      }
    } catch (err) {
      let whole = 0;
      let keep = 0;
      while (whole < frames.length && keep + frames[whole]!.bytes <= written) keep += frames[whole++]!.bytes;
      try {
        fs.ftruncateSync(this.fd, this.size + keep);
      } catch {
        /* the disk is failing already */
      }
      this.size += keep;
      throw new PartialWrite(err, whole);
    }
    this.size += total;
    return frames.length;
  }

  private rotate(): void {
    const nextPath = segmentPath(this.dir, this.prefix, this.seg + 1);
    const next = fs.openSync(nextPath, 'wx', 0o600);
    try {
      const line = Buffer.from(NEXT_LINE, 'latin1');
      this.writeFrames([{ buffers: [line], bytes: line.length }]);
    } catch (err) {
      fs.closeSync(next);
      fs.rmSync(nextPath, { force: true });
      throw err;
    }
    fs.closeSync(this.fd);
    this.fd = next;
    this.seg++;
    this.size = 0;
  }
}

/** The reading side: hands each frame to `onFrame` in order, deletes finished segments. */
export class SpoolReader {
  private seg = 0;
  private fd: number | undefined;
  private offset = 0;
  private pending: Buffer = Buffer.alloc(0);
  private readonly chunk = Buffer.allocUnsafe(READ_CHUNK);
  /** Bytes of the frames handled so far (headers included). */
  private handled = 0;

  /** `onFrame` gets a view of the reader's buffer: valid during the call only (copy what you keep). */
  constructor(
    private readonly dir: string,
    private readonly prefix: string,
    private readonly onFrame: (data: Buffer) => void,
  ) {}

  /** Reads what is new and handles the complete records in it. False when there was nothing new. */
  step(): boolean {
    if (this.fd === undefined) {
      try {
        this.fd = fs.openSync(segmentPath(this.dir, this.prefix, this.seg), 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw err;
      }
      this.offset = 0;
    }
    // A frame bigger than the chunk is read in one piece once its header is known (no quadratic
    // re-joining of a many-MiB body).
    const missing = frameLength(this.pending) - this.pending.length;
    const chunk = missing > READ_CHUNK ? Buffer.allocUnsafe(missing) : this.chunk;
    const got = fs.readSync(this.fd, chunk, 0, chunk.length, this.offset);
    if (got === 0) {
      // The appender cut a failed write back after we had read part of it: forget that part.
      const size = fs.fstatSync(this.fd).size;
      if (size < this.offset && this.offset - this.pending.length <= size) {
        this.pending = this.pending.subarray(0, size - (this.offset - this.pending.length));
        this.offset = size;
      }
      return false;
    }
    this.offset += got;
    const buf =
      this.pending.length === 0 ? chunk.subarray(0, got) : Buffer.concat([this.pending, chunk.subarray(0, got)]);
    const { items, used } = parseFrames(buf);
    this.handled += used;
    // Copy a partial frame out: the chunk is reused by the next read (or, if it was a big one, freed).
    this.pending = used === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(used));
    for (const item of items) {
      if (item.kind === 'next') {
        this.removeSegment();
        this.seg++;
      } else {
        this.onFrame(item.data);
      }
    }
    return true;
  }

  /** Bytes of frames handled so far; with backlogBytes(), everything appended. */
  handledBytes(): number {
    return this.handled;
  }

  /** Bytes in the spool not handled yet: what is left of this segment and the segments after it. */
  backlogBytes(): number {
    let bytes = this.pending.length;
    if (this.fd !== undefined) bytes += Math.max(0, fs.fstatSync(this.fd).size - this.offset);
    for (let k = this.fd === undefined ? this.seg : this.seg + 1; ; k++) {
      const size = fs.statSync(segmentPath(this.dir, this.prefix, k), { throwIfNoEntry: false })?.size;
      if (size === undefined) return bytes;
      bytes += size;
    }
  }

  /**
   * The appender has closed: handles the rest and removes the last segment. Returns the size of an
   * incomplete last frame (0 normally: appends are whole or cut off by the appender).
   */
  finish(): number {
    while (this.step());
    const leftover = this.pending.length;
    this.pending = Buffer.alloc(0);
    this.removeSegment();
    return leftover;
  }

  private removeSegment(): void {
    if (this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
    fs.rmSync(segmentPath(this.dir, this.prefix, this.seg), { force: true });
  }
}
