// Capture events as bytes, for the spool between the recorder and its writer process. The recorder
// only copies what the kernel delivered (a fixed header and the payload per event);
// reconstruction, rendering and file creation all happen in the writer, at idle priority while the
// app runs (see background-writer.ts). Measured: the recorder's CPU under a bare HTTPS load went
// from 34 % to 10 % of a core when it stopped reconstructing (bench/README.md, session 5).
//
// A batch is a sequence of records: a 48-byte little-endian header (below) and `len` payload
// bytes. Data events carry their bytes; open events their addresses as JSON; the rest nothing.

import type { CaptureEvent, CaptureSource, Direction, OpenEvent } from './events.js';

const HEADER_BYTES = 48;
// header layout: tsNs u64 @0, connId u64 @8, pos u64 @16, tgid u32 @24, tid u32 @28,
// callLen u32 @32 (loss: len), chunkOff u32 @36, len u32 @40 (payload bytes), type u8 @44,
// source u8 @45, dir u8 @46, aux u8 @47 (open: role, loss: reason)
const TYPE_CODE = { data: 1, open: 2, close: 3, loss: 4, exec: 5 } as const;
const TYPE_OF: ReadonlyArray<CaptureEvent['type'] | undefined> = [undefined, 'data', 'open', 'close', 'loss', 'exec'];

/** The addresses of an open event, as its payload. */
interface OpenPayload {
  la?: string;
  lp?: number;
  ra?: string;
  rp?: number;
}

function openPayload(ev: OpenEvent): Buffer {
  const p: OpenPayload = {};
  if (ev.localAddr !== undefined) p.la = ev.localAddr;
  if (ev.localPort !== undefined) p.lp = ev.localPort;
  if (ev.remoteAddr !== undefined) p.ra = ev.remoteAddr;
  if (ev.remotePort !== undefined) p.rp = ev.remotePort;
  return Buffer.from(JSON.stringify(p), 'utf8');
}

/** One buffer holding `events` in order. */
export function encodeEvents(events: readonly CaptureEvent[]): Buffer {
  const payloads: Array<Buffer | undefined> = new Array(events.length);
  let total = 0;
  for (let i = 0; i < events.length; i++) {
    const ev = events[i]!;
    const payload = ev.type === 'data' ? ev.data : ev.type === 'open' ? openPayload(ev) : undefined;
    payloads[i] = payload;
    total += HEADER_BYTES + (payload?.length ?? 0);
  }
  const out = Buffer.allocUnsafe(total);
  // DataView's BigInt stores are ~5x faster than Buffer's (no range checks in JS).
  const view = new DataView(out.buffer, out.byteOffset, out.length);
  let at = 0;
  for (let i = 0; i < events.length; i++) {
    const ev = events[i]!;
    const payload = payloads[i];
    let pos = 0n;
    let callLen = 0;
    let chunkOff = 0;
    let dir: Direction = 'in';
    let aux = 0;
    if (ev.type === 'data') {
      pos = ev.pos;
      callLen = ev.callLen;
      chunkOff = ev.chunkOff;
      dir = ev.dir;
    } else if (ev.type === 'loss') {
      pos = ev.pos;
      callLen = ev.len;
      dir = ev.dir;
      aux = ev.reason === 'read_fault' ? 2 : 1;
    } else if (ev.type === 'open') {
      aux = ev.role === 'accept' ? 2 : 1;
    }
    view.setBigUint64(at, ev.tsNs, true);
    view.setBigUint64(at + 8, ev.connId, true);
    view.setBigUint64(at + 16, pos, true);
    view.setUint32(at + 24, ev.tgid, true);
    view.setUint32(at + 28, ev.tid, true);
    view.setUint32(at + 32, callLen, true);
    view.setUint32(at + 36, chunkOff, true);
    view.setUint32(at + 40, payload?.length ?? 0, true);
    out[at + 44] = TYPE_CODE[ev.type];
    out[at + 45] = ev.source === 'tls' ? 1 : 0;
    out[at + 46] = dir === 'out' ? 1 : 0;
    out[at + 47] = aux;
    at += HEADER_BYTES;
    if (payload) at += payload.copy(out, at);
  }
  return out;
}

/**
 * The events of a batch written by encodeEvents. Data events' bytes are copies (the input may be a
 * reused read buffer). Throws on bytes that are not a batch, naming the offset.
 */
export function decodeEvents(batch: Buffer): CaptureEvent[] {
  const events: CaptureEvent[] = [];
  let at = 0;
  while (at < batch.length) {
    if (batch.length - at < HEADER_BYTES) throw new Error(`event batch: ${batch.length - at} bytes at offset ${at} are not a whole event header`);
    const len = batch.readUInt32LE(at + 40);
    const end = at + HEADER_BYTES + len;
    if (end > batch.length) throw new Error(`event batch: the event at offset ${at} says ${len} payload bytes, ${batch.length - at - HEADER_BYTES} are left`);
    const type = TYPE_OF[batch[at + 44]!];
    const tsNs = batch.readBigUInt64LE(at);
    const connId = batch.readBigUInt64LE(at + 8);
    const tgid = batch.readUInt32LE(at + 24);
    const tid = batch.readUInt32LE(at + 28);
    const source: CaptureSource = batch[at + 45] === 1 ? 'tls' : 'socket';
    const dir: Direction = batch[at + 46] === 1 ? 'out' : 'in';
    const aux = batch[at + 47];
    // Object literals written out in full, as in native/decode.ts: V8's object spread is slow.
    switch (type) {
      case 'data':
        events.push({
          tsNs, tgid, tid, source, connId, type, dir,
          pos: batch.readBigUInt64LE(at + 16),
          callLen: batch.readUInt32LE(at + 32),
          chunkOff: batch.readUInt32LE(at + 36),
          data: Buffer.from(batch.subarray(at + HEADER_BYTES, end)),
        });
        break;
      case 'open': {
        const p = JSON.parse(batch.toString('utf8', at + HEADER_BYTES, end)) as OpenPayload;
        const ev: OpenEvent = { tsNs, tgid, tid, source, connId, type, role: aux === 2 ? 'accept' : 'connect' };
        if (p.la !== undefined) ev.localAddr = p.la;
        if (p.lp !== undefined) ev.localPort = p.lp;
        if (p.ra !== undefined) ev.remoteAddr = p.ra;
        if (p.rp !== undefined) ev.remotePort = p.rp;
        events.push(ev);
        break;
      }
      case 'close':
      case 'exec':
        events.push({ tsNs, tgid, tid, source, connId, type });
        break;
      case 'loss':
        events.push({
          tsNs, tgid, tid, source, connId, type, dir,
          pos: batch.readBigUInt64LE(at + 16),
          len: batch.readUInt32LE(at + 32),
          reason: aux === 2 ? 'read_fault' : 'ringbuf_full',
        });
        break;
      default:
        throw new Error(`event batch: unknown event type ${batch[at + 44]} at offset ${at}`);
    }
    at = end;
  }
  return events;
}
