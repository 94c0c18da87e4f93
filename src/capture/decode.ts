// Decodes ring buffer records (struct cap_event + payload, record-layout.ts) into CaptureEvents.
// The spool between the recorder and its writer process carries the records as the kernel wrote
// them: the recorder only looks at a few header fields (recordLength and the helpers after it) and
// the writer process decodes (decodeRecords).

import type { CaptureEvent, CaptureSource, Direction } from '../model/events.js';
import { CAP_ADDR, CAP_EVENT, CAP_HDR_SIZE, Dir, LossReason, RecordType, Role, Source } from './record-layout.js';

const EV = CAP_EVENT.fields;
const ADDR = CAP_ADDR.fields;
const AF_INET = 2;

function ipText(family: number, b: Buffer): string {
  if (family === AF_INET) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  // IPv4-mapped IPv6 (::ffff:a.b.c.d): show the IPv4 address, as Node does for dual-stack sockets.
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff)
    return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
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
  const tsNs = rec.readBigUInt64LE(EV.tsNs.offset);
  const connId = rec.readBigUInt64LE(EV.conn.offset);
  const pos = rec.readBigUInt64LE(EV.pos.offset);
  const tgid = rec.readUInt32LE(EV.tgid.offset);
  const tid = rec.readUInt32LE(EV.tid.offset);
  const callLen = rec.readUInt32LE(EV.callLen.offset);
  const chunkOff = rec.readUInt32LE(EV.chunkOff.offset);
  const len = Math.min(rec.readUInt32LE(EV.len.offset), rec.length - CAP_HDR_SIZE);
  const type = rec[EV.type.offset];
  const source: CaptureSource = rec[EV.source.offset] === Source.CAP_SRC_TLS ? 'tls' : 'socket';
  const dir: Direction = rec[EV.dir.offset] === Dir.CAP_DIR_OUT ? 'out' : 'in';
  const aux = rec[EV.aux.offset];
  const payload = rec.subarray(CAP_HDR_SIZE, CAP_HDR_SIZE + len);
  // Object literals written out in full: `{ ...base, ... }` costs ~4 µs a record (V8's object
  // spread), a third of the recorder's CPU under small-request load.
  switch (type) {
    case RecordType.CAP_DATA:
      return { tsNs, tgid, tid, source, connId, type: 'data', dir, pos, callLen, chunkOff, data: Buffer.from(payload) };
    case RecordType.CAP_OPEN: {
      const ev: CaptureEvent = {
        tsNs,
        tgid,
        tid,
        source,
        connId,
        type: 'open',
        role: aux === Role.CAP_ROLE_ACCEPT ? 'accept' : 'connect',
      };
      if (payload.length >= CAP_ADDR.size) {
        const family = payload.readUInt16LE(ADDR.family.offset);
        ev.localPort = payload.readUInt16LE(ADDR.localPort.offset);
        ev.remotePort = payload.readUInt16LE(ADDR.remotePort.offset);
        ev.localAddr = ipText(
          family,
          payload.subarray(ADDR.localAddr.offset, ADDR.localAddr.offset + ADDR.localAddr.size),
        );
        ev.remoteAddr = ipText(
          family,
          payload.subarray(ADDR.remoteAddr.offset, ADDR.remoteAddr.offset + ADDR.remoteAddr.size),
        );
      }
      return ev;
    }
    case RecordType.CAP_CLOSE:
      return { tsNs, tgid, tid, source, connId, type: 'close' };
    case RecordType.CAP_LOSS:
      return {
        tsNs,
        tgid,
        tid,
        source,
        connId,
        type: 'loss',
        dir,
        pos,
        len: callLen,
        reason: aux === LossReason.CAP_LOSS_READ_FAULT ? 'read_fault' : 'ringbuf_full',
      };
    case RecordType.CAP_EXEC:
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
  const type = rec[EV.type.offset]!;
  const length = CAP_HDR_SIZE + rec.readUInt32LE(EV.len.offset);
  return type < RecordType.CAP_DATA || type > RecordType.CAP_EXEC || length > rec.length ? 0 : length;
}

/** The payload bytes of a data record (what the status line counts as captured); 0 for other records. */
export function dataLength(rec: Buffer): number {
  return rec[EV.type.offset] === RecordType.CAP_DATA ? rec.readUInt32LE(EV.len.offset) : 0;
}

/** The process of an exec record (a new program to look for OpenSSL in), else undefined. */
export function execTgid(rec: Buffer): number | undefined {
  return rec[EV.type.offset] === RecordType.CAP_EXEC ? rec.readUInt32LE(EV.tgid.offset) : undefined;
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
    if (batch.length - at < CAP_HDR_SIZE)
      throw new Error(`event batch: ${batch.length - at} bytes at offset ${at} are not a whole event header`);
    const len = batch.readUInt32LE(at + EV.len.offset);
    const end = at + CAP_HDR_SIZE + len;
    if (end > batch.length)
      throw new Error(
        `event batch: the event at offset ${at} says ${len} payload bytes, ${batch.length - at - CAP_HDR_SIZE} are left`,
      );
    const ev = decodeRecord(batch.subarray(at, end));
    if (!ev) throw new Error(`event batch: unknown event type ${batch[at + EV.type.offset]} at offset ${at}`);
    events.push(ev);
    at = end;
  }
  return events;
}
