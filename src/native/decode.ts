// Decodes ring buffer records (struct cap_event of bpf/capture.h + payload) into CaptureEvents,
// and encodes CaptureEvents back into records of the same format: the spool between the recorder
// and its writer process carries batches of them (src/record/background-writer.ts), so that the
// recorder only copies what the kernel delivered and one decoder serves both.
// Keep the offsets in sync with bpf/capture.h.

import { isIP } from 'node:net';
import { ipv6Bytes } from '../ip-bytes.js';
import type { CaptureEvent, CaptureSource, Direction, OpenEvent } from '../record/events.js';

export const CAP_HDR_SIZE = 48;
const CAP_DATA = 1;
const CAP_OPEN = 2;
const CAP_CLOSE = 3;
const CAP_LOSS = 4;
const CAP_EXEC = 5;

function ipText(family: number, b: Buffer): string {
  if (family === 2) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  // IPv4-mapped IPv6 (::ffff:a.b.c.d): show the IPv4 address, as Node does for dual-stack sockets.
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(b.readUInt16BE(i).toString(16));
  return parts.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

/** Decoded extra information some records carry that is not part of CaptureEvent. */
export interface DecodeSideInfo {
  /** exec records: the executed file name. */
  execPath?: string;
}

/**
 * Decode one record. `rec` may be a view into the ring: data is copied. Returns undefined for a
 * record of an unknown type (a newer BPF object), which is skipped rather than fatal.
 */
export function decodeRecord(rec: Buffer, side?: DecodeSideInfo): CaptureEvent | undefined {
  if (rec.length < CAP_HDR_SIZE) return undefined;
  const tsNs = rec.readBigUInt64LE(0);
  const connId = rec.readBigUInt64LE(8);
  const pos = rec.readBigUInt64LE(16);
  const tgid = rec.readUInt32LE(24);
  const tid = rec.readUInt32LE(28);
  const callLen = rec.readUInt32LE(32);
  const chunkOff = rec.readUInt32LE(36);
  const len = Math.min(rec.readUInt32LE(40), rec.length - CAP_HDR_SIZE);
  const type = rec[44];
  const source: CaptureSource = rec[45] === 1 ? 'tls' : 'socket';
  const dir: Direction = rec[46] === 1 ? 'out' : 'in';
  const aux = rec[47];
  const payload = rec.subarray(CAP_HDR_SIZE, CAP_HDR_SIZE + len);
  // Object literals written out in full: `{ ...base, ... }` cost ~4 µs a record (V8's object
  // spread), which was a third of the recorder's CPU under small-request load.
  switch (type) {
    case CAP_DATA:
      return { tsNs, tgid, tid, source, connId, type: 'data', dir, pos, callLen, chunkOff, data: Buffer.from(payload) };
    case CAP_OPEN: {
      const ev: CaptureEvent = { tsNs, tgid, tid, source, connId, type: 'open', role: aux === 2 ? 'accept' : 'connect' };
      if (payload.length >= 40) {
        const family = payload.readUInt16LE(0);
        ev.localPort = payload.readUInt16LE(2);
        ev.remotePort = payload.readUInt16LE(4);
        ev.localAddr = ipText(family, payload.subarray(8, 24));
        ev.remoteAddr = ipText(family, payload.subarray(24, 40));
      }
      return ev;
    }
    case CAP_CLOSE:
      return { tsNs, tgid, tid, source, connId, type: 'close' };
    case CAP_LOSS:
      return { tsNs, tgid, tid, source, connId, type: 'loss', dir, pos, len: callLen, reason: aux === 2 ? 'read_fault' : 'ringbuf_full' };
    case CAP_EXEC:
      if (side) side.execPath = payload.toString('utf8');
      return { tsNs, tgid, tid, source, connId, type: 'exec' };
    default:
      return undefined;
  }
}

// ---- encoding: CaptureEvents -> records, for the spool ------------------------------------------

const TYPE_CODE = { data: CAP_DATA, open: CAP_OPEN, close: CAP_CLOSE, loss: CAP_LOSS, exec: CAP_EXEC } as const;
const AF_INET = 2;
const AF_INET6 = 10;
/** struct cap_addr of bpf/capture.bpf.c: family u16, lport u16, rport u16, pad u16, laddr[16], raddr[16]. */
const CAP_ADDR_SIZE = 40;

function addrBytes(ip: string, asV4: boolean): Buffer {
  const kind = isIP(ip);
  if (kind === 0) throw new Error(`encodeRecords: "${ip}" is not an IP address`);
  if (asV4) return Buffer.from(ip.split('.').map(Number));
  return ipv6Bytes(kind === 4 ? `::ffff:${ip}` : ip); // decodeRecord shows a mapped address as IPv4 again
}

/** The payload of an open record: the kernel's cap_addr, when the event has its addresses (it has all four or none). */
function addrPayload(ev: OpenEvent): Buffer | undefined {
  if (ev.localAddr === undefined || ev.remoteAddr === undefined) return undefined;
  const v4 = isIP(ev.localAddr) === 4 && isIP(ev.remoteAddr) === 4;
  const p = Buffer.alloc(CAP_ADDR_SIZE);
  p.writeUInt16LE(v4 ? AF_INET : AF_INET6, 0);
  p.writeUInt16LE(ev.localPort ?? 0, 2);
  p.writeUInt16LE(ev.remotePort ?? 0, 4);
  addrBytes(ev.localAddr, v4).copy(p, 8);
  addrBytes(ev.remoteAddr, v4).copy(p, 24);
  return p;
}

/** One buffer holding `events` in order, as records that decodeRecords (and decodeRecord) read back. */
export function encodeRecords(events: readonly CaptureEvent[]): Buffer {
  const payloads: Array<Buffer | undefined> = new Array(events.length);
  let total = 0;
  for (let i = 0; i < events.length; i++) {
    const ev = events[i]!;
    const payload = ev.type === 'data' ? ev.data : ev.type === 'open' ? addrPayload(ev) : undefined;
    payloads[i] = payload;
    total += CAP_HDR_SIZE + (payload?.length ?? 0);
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
      callLen = ev.len; // the kernel puts a loss's length there too
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
    at += CAP_HDR_SIZE;
    if (payload) at += payload.copy(out, at);
  }
  return out;
}

/**
 * The events of a batch written by encodeRecords, each decoded by decodeRecord (data copied: the
 * input may be a reused read buffer). Throws on bytes that are not a whole batch, naming the offset.
 */
export function decodeRecords(batch: Buffer): CaptureEvent[] {
  const events: CaptureEvent[] = [];
  let at = 0;
  while (at < batch.length) {
    if (batch.length - at < CAP_HDR_SIZE) throw new Error(`event batch: ${batch.length - at} bytes at offset ${at} are not a whole event header`);
    const len = batch.readUInt32LE(at + 40);
    const end = at + CAP_HDR_SIZE + len;
    if (end > batch.length) throw new Error(`event batch: the event at offset ${at} says ${len} payload bytes, ${batch.length - at - CAP_HDR_SIZE} are left`);
    const ev = decodeRecord(batch.subarray(at, end));
    if (!ev) throw new Error(`event batch: unknown event type ${batch[at + 44]} at offset ${at}`);
    events.push(ev);
    at = end;
  }
  return events;
}
