// CaptureEvents -> ring records (the format of bpf/capture.h that decodeRecord reads), so that tests
// can feed the event files of real recordings (fixtures/events, JSON lines) to the stages that
// take records: the spool and the file-writer process. Exec records get no file name (CaptureEvent has
// none), and open records the kernel's struct cap_addr.

import { isIP } from 'node:net';
import { CAP_CLOSE, CAP_DATA, CAP_EXEC, CAP_HDR_SIZE, CAP_LOSS, CAP_OPEN } from '../../src/native/decode.js';
import { ipv6Bytes } from '../../src/ip-bytes.js';
import type { CaptureEvent, Direction, OpenEvent } from '../../src/model/events.js';

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
