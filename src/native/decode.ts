// Decodes ring buffer records (struct cap_event of bpf/capture.h + payload) into CaptureEvents.
// Keep the offsets in sync with bpf/capture.h.

import type { CaptureEvent, CaptureSource, Direction } from '../record/events.js';

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
