// Reads a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) straight from its mmapped pages. libbpf's
// ring_buffer__poll cannot be used: it calls back into C function pointers synchronously, and ffi-rs
// JS callbacks run asynchronously. The layout (kernel/bpf/ringbuf.c) is stable ABI:
//   offset 0 of the map fd:        one page, consumer_pos (u64), mapped read-write
//   offset pagesize:               one page, producer_pos (u64), then the data area (read-only).
//                                  The kernel lets it be mapped twice so that a record that wraps
//                                  is contiguous (libbpf does); we map it once and stitch the rare
//                                  wrapped record: the pages of every mapping are resident from the
//                                  start, so a second mapping costs `size` of RSS (64 MiB by default).
//   record: u32 len | BUSY (1<<31) | DISCARD (1<<30), u32 page offset, then len bytes, the whole
//   rounded up to 8 bytes.

import { PROT_READ, PROT_WRITE, mmapFd, munmap, pageSize, viewAt } from './ffi.js';

const BUSY = 0x80000000;
const DISCARD = 0x40000000;
const HDR = 8;

export class RingBufferReader {
  private readonly page: number;
  private consumerAddr: number;
  private producerAddr: number;
  private readonly consumerPos: BigUint64Array;
  private readonly producerPos: BigUint64Array;
  private readonly data: Buffer;
  private readonly dataWords: Uint32Array;
  private readonly mask: bigint;
  private closed = false;

  /** @param size the map's max_entries (a power of two, multiple of the page size) */
  constructor(
    mapFd: number,
    readonly size: number,
  ) {
    this.page = pageSize();
    this.consumerAddr = mmapFd(this.page, PROT_READ | PROT_WRITE, mapFd, 0, 'map ring buffer');
    try {
      this.producerAddr = mmapFd(this.page + size, PROT_READ, mapFd, this.page, 'map ring buffer');
    } catch (err) {
      munmap(this.consumerAddr, this.page);
      throw err;
    }
    const cons = viewAt(this.consumerAddr, this.page);
    const prod = viewAt(this.producerAddr, this.page + size);
    // Typed-array element access is one aligned 64-bit load/store, so positions never tear (a
    // Buffer.readBigUInt64LE would read byte by byte while the kernel updates them).
    this.consumerPos = new BigUint64Array(cons.buffer, cons.byteOffset, 1);
    this.producerPos = new BigUint64Array(prod.buffer, prod.byteOffset, 1);
    this.data = prod.subarray(this.page);
    this.dataWords = new Uint32Array(this.data.buffer, this.data.byteOffset, size / 4);
    this.mask = BigInt(size - 1);
  }

  /** Bytes produced and not yet consumed. */
  pending(): number {
    if (this.closed) return 0;
    return Number(Atomics.load(this.producerPos, 0) - Atomics.load(this.consumerPos, 0));
  }

  /**
   * Hand each committed record to `onRecord` as a view into the ring (valid only during the call:
   * copy what you keep), then release the space. Stops at a record still being written (BUSY), after
   * `maxRecords`, or when the ring is empty. Returns the number of records delivered.
   */
  drain(onRecord: (record: Buffer) => void, maxRecords = Number.POSITIVE_INFINITY): number {
    if (this.closed) return 0;
    let cons = Atomics.load(this.consumerPos, 0);
    const prod = Atomics.load(this.producerPos, 0);
    let n = 0;
    try {
      while (cons < prod && n < maxRecords) {
        const off = Number(cons & this.mask);
        const hdr = Atomics.load(this.dataWords, off / 4);
        if (hdr & BUSY) break;
        const len = hdr & 0x3fffffff; // without BUSY and DISCARD
        if (!(hdr & DISCARD)) {
          // Records are 8-aligned, so the header never wraps; the payload may.
          const start = off + HDR;
          const end = start + len;
          onRecord(
            end <= this.size
              ? this.data.subarray(start, end)
              : Buffer.concat([this.data.subarray(start, this.size), this.data.subarray(0, end - this.size)]),
          );
          n++;
        }
        cons += BigInt((len + HDR + 7) & ~7);
      }
    } finally {
      // Release only after the callback has copied the bytes out: the kernel may reuse them at once.
      Atomics.store(this.consumerPos, 0, cons);
    }
    return n;
  }

  /** Unmap. The views handed out before must not be used afterwards. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    munmap(this.producerAddr, this.page + this.size);
    munmap(this.consumerAddr, this.page);
    this.producerAddr = 0;
    this.consumerAddr = 0;
  }
}
