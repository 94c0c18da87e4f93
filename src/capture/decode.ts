// Decodes ring buffer records (struct cap_event of bpf/capture.h + payload) into CaptureEvents.
// The spool between the recorder and its writer process carries the records as the kernel wrote
// them (src/record/background-writer.ts): the recorder only looks at a few header fields
// (recordLength and the helpers after it) and the writer process decodes (decodeRecords).
// Keep the offsets in sync with bpf/capture.h.

import type { CaptureEvent, CaptureSource, Direction } from '../model/events.js';

export const CAP_HDR_SIZE = 48;
/** enum cap_type of bpf/capture.h */
export const CAP_DATA = 1;
export const CAP_OPEN = 2;
export const CAP_CLOSE = 3;
export const CAP_LOSS = 4;
export const CAP_EXEC = 5;
/** Only on the `mapped` ring (the attach policy reads it), never spooled. */
export const CAP_MAP = 6;

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

// ---- records as they are, for the spool ----------------------------------------------------------

/**
 * How many bytes of ring record `rec` the spool keeps: the header and the payload it announces (an
 * exec record is reserved with room for a long file name). 0 for what is not a whole record of a
 * type this version knows (a newer BPF object adding one): skipped, as decodeRecord skips it.
 */
export function recordLength(rec: Buffer): number {
  if (rec.length < CAP_HDR_SIZE) return 0;
  const type = rec[44]!;
  const length = CAP_HDR_SIZE + rec.readUInt32LE(40);
  return type < CAP_DATA || type > CAP_EXEC || length > rec.length ? 0 : length;
}

/** The payload bytes of a data record (what the status line counts as captured); 0 for other records. */
export function dataLength(rec: Buffer): number {
  return rec[44] === CAP_DATA ? rec.readUInt32LE(40) : 0;
}

/** The process of an exec record (a new program to look for OpenSSL in), else undefined. */
export function execTgid(rec: Buffer): number | undefined {
  return rec[44] === CAP_EXEC ? rec.readUInt32LE(24) : undefined;
}

/**
 * The events of a run of records (header + announced payload each, as the recorder spools them),
 * each decoded by decodeRecord (data copied: the input may be a reused read buffer). Throws on
 * bytes that are not whole records, naming the offset.
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
