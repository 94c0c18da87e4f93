// The captured records that wait for the consumer (flow-control.ts): copied out of the ring as
// they are (one copy a record, into large chunks) and handed over as runs of whole records, in the
// spool's format. Nothing is decoded here: turning every record into an event object and encoding
// it again for the spool, with the garbage that makes, costs over half of the recorder's CPU under
// load (bench/README.md). The bytes it holds are the backlog that backpressure watches.

/** Records are copied into chunks of this size; a bigger record gets a chunk of its own. */
const CHUNK_BYTES = 256 * 1024;

interface Chunk {
  buf: Buffer;
  /** The first byte not yet handed over. */
  start: number;
  /** The end of what was copied in. */
  end: number;
}

export class RecordQueue {
  /** Oldest first; only the last one is still being filled. */
  private chunks: Chunk[] = [];
  private bytes = 0;
  private peak = 0;

  /** Copies the first `length` bytes of `record` (a view into the ring) to the end of the queue. */
  push(record: Buffer, length: number): void {
    let last = this.chunks[this.chunks.length - 1];
    if (!last || last.buf.length - last.end < length) {
      last = { buf: Buffer.allocUnsafeSlow(Math.max(CHUNK_BYTES, length)), start: 0, end: 0 };
      this.chunks.push(last);
    }
    record.copy(last.buf, last.end, 0, length);
    last.end += length;
    this.bytes += length;
    if (this.bytes > this.peak) this.peak = this.bytes;
  }

  /**
   * The oldest records waiting, as one buffer of whole records (at most a chunk), or undefined
   * when none wait. The buffer is the caller's: the queue never writes over bytes it handed over,
   * and lets go of a chunk once it has handed over all of it.
   */
  take(): Buffer | undefined {
    // A chunk before the last is full: once all handed over, it goes (it may have been left with
    // a few bytes free that the next record did not fit in).
    while (this.chunks.length > 1 && this.chunks[0]!.start === this.chunks[0]!.end) this.chunks.shift();
    const first = this.chunks[0];
    if (!first || first.start === first.end) return undefined;
    const out = first.buf.subarray(first.start, first.end);
    first.start = first.end;
    this.bytes -= out.length;
    if (this.chunks.length > 1) this.chunks.shift();
    return out;
  }

  /** Bytes of records waiting. */
  get byteLength(): number {
    return this.bytes;
  }

  /** The most that ever waited at once. */
  get peakBytes(): number {
    return this.peak;
  }
}
