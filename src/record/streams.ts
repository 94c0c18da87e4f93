// One direction of one connection: DataEvents → contiguous bytes in position order.
// Events normally arrive in order (one ring buffer); out-of-order and duplicate chunks are handled
// anyway. A gap is only declared lost when the kernel says so (LossEvent), when the stream ends with
// the gap still open, or when too much data piles up behind it — never guessed from timing.

import type { DataEvent, LossEvent } from '../model/events.js';

export type StreamOutput =
  | { type: 'data'; data: Buffer; tsNs: bigint; pos: bigint }
  /** Bytes from `pos` never arrived; the stream delivers nothing after this. */
  | { type: 'lost'; pos: bigint; len: number; reason: string };

interface Pending {
  pos: bigint;
  data: Buffer;
  tsNs: bigint;
}

export interface StreamAssemblerOptions {
  /** Bytes allowed to wait behind a gap before the gap is declared lost. Default 8 MiB. */
  maxPendingBytes?: number;
}

export class StreamAssembler {
  /** Next expected position. The kernel numbers each direction from 0. */
  private next = 0n;
  private pending = new Map<bigint, Pending>();
  private pendingBytes = 0;
  /** Lowest position of a reported loss not yet reached. */
  private lossAt: { pos: bigint; len: number; reason: string } | undefined;
  private lostState = false;
  /** Bytes delivered (duplicates not counted). */
  received = 0;
  /** Data bytes that arrived but will never be delivered (after a loss). */
  undelivered = 0;
  private readonly maxPending: number;

  constructor(opts: StreamAssemblerOptions = {}) {
    this.maxPending = opts.maxPendingBytes ?? 8 * 1024 * 1024;
  }

  get isLost(): boolean {
    return this.lostState;
  }

  /** Position up to which bytes were delivered. */
  get delivered(): bigint {
    return this.next;
  }

  push(ev: Pick<DataEvent, 'pos' | 'data' | 'tsNs'>): StreamOutput[] {
    let { pos, data } = ev;
    const end = pos + BigInt(data.length);
    if (this.lostState) {
      // biome-ignore lint/complexity/useMathMinMax: positions are bigints, which Math.max does not take
      if (end > this.next) this.undelivered += Number(end - (pos > this.next ? pos : this.next));
      this.next = end > this.next ? end : this.next;
      return [];
    }
    if (end <= this.next || data.length === 0) return []; // duplicate
    if (pos < this.next) {
      // overlap with what was delivered: keep only the new tail
      data = data.subarray(Number(this.next - pos));
      pos = this.next;
    }
    const out: StreamOutput[] = [];
    if (pos === this.next) {
      this.deliver({ pos, data, tsNs: ev.tsNs }, out);
      this.drain(out);
    } else {
      const prev = this.pending.get(pos);
      if (!prev || prev.data.length < data.length) {
        if (prev) this.pendingBytes -= prev.data.length;
        this.pending.set(pos, { pos, data, tsNs: ev.tsNs });
        this.pendingBytes += data.length;
      }
      if (this.pendingBytes > this.maxPending) this.declareLost(out, 'gap never filled');
    }
    return out;
  }

  /** The kernel reports bytes [pos, pos+len) were dropped. */
  loss(ev: Pick<LossEvent, 'pos' | 'len' | 'reason'>): StreamOutput[] {
    if (this.lostState) return [];
    const end = ev.pos + BigInt(ev.len);
    if (end <= this.next && ev.len > 0) return []; // we have those bytes after all (duplicate report)
    if (!this.lossAt || ev.pos < this.lossAt.pos)
      // biome-ignore lint/complexity/useMathMinMax: positions are bigints, which Math.max does not take
      this.lossAt = { pos: ev.pos < this.next ? this.next : ev.pos, len: ev.len, reason: ev.reason };
    const out: StreamOutput[] = [];
    this.drain(out);
    return out;
  }

  /** End of stream: a gap still open means the bytes behind it are lost. */
  end(): StreamOutput[] {
    const out: StreamOutput[] = [];
    if (!this.lostState && (this.pending.size > 0 || this.lossAt))
      this.declareLost(out, this.lossAt?.reason ?? 'gap at end of stream');
    return out;
  }

  private deliver(p: Pending, out: StreamOutput[]): void {
    let data = p.data;
    // Never deliver across a reported loss.
    if (this.lossAt && p.pos + BigInt(data.length) > this.lossAt.pos) {
      const keep = Number(this.lossAt.pos - p.pos);
      if (keep > 0) {
        out.push({ type: 'data', data: data.subarray(0, keep), tsNs: p.tsNs, pos: p.pos });
        this.received += keep;
        this.next = p.pos + BigInt(keep);
      }
      data = data.subarray(Math.max(keep, 0));
      this.undelivered += data.length;
      this.declareLost(out, this.lossAt.reason);
      return;
    }
    out.push({ type: 'data', data, tsNs: p.tsNs, pos: p.pos });
    this.received += data.length;
    this.next = p.pos + BigInt(data.length);
  }

  /** Deliver pending chunks that became contiguous; hit a reported loss if we reached it. */
  private drain(out: StreamOutput[]): void {
    for (;;) {
      if (this.lostState) return;
      if (this.lossAt && this.next >= this.lossAt.pos) {
        this.declareLost(out, this.lossAt.reason);
        return;
      }
      let found: Pending | undefined = this.pending.get(this.next);
      if (!found) {
        // a pending chunk that starts before `next` but reaches past it (overlapping retransmit)
        for (const p of this.pending.values()) {
          if (p.pos < this.next) {
            this.pending.delete(p.pos);
            this.pendingBytes -= p.data.length;
            const pend = p.pos + BigInt(p.data.length);
            if (pend > this.next) {
              found = { pos: this.next, data: p.data.subarray(Number(this.next - p.pos)), tsNs: p.tsNs };
              break;
            }
          }
        }
        if (!found) return;
      } else {
        this.pending.delete(found.pos);
        this.pendingBytes -= found.data.length;
      }
      this.deliver(found, out);
    }
  }

  private declareLost(out: StreamOutput[], reason: string): void {
    if (this.lostState) return;
    this.lostState = true;
    let pendingEnd = this.next;
    for (const p of this.pending.values()) {
      this.undelivered += p.data.length;
      const e = p.pos + BigInt(p.data.length);
      if (e > pendingEnd) pendingEnd = e;
    }
    let minPending: bigint | undefined;
    for (const p of this.pending.values()) if (minPending === undefined || p.pos < minPending) minPending = p.pos;
    const gapLen = this.lossAt ? this.lossAt.len : minPending !== undefined ? Number(minPending - this.next) : 0;
    out.push({ type: 'lost', pos: this.next, len: gapLen, reason });
    this.pending.clear();
    this.pendingBytes = 0;
    this.next = pendingEnd;
  }
}
