// A tiny UDP DNS server for the app under test. The redirect program sends the app's DNS queries
// here; every name resolves to 127.0.0.1 (its connections go to the mock server anyway), except
// passthrough names, which get their real IPv4 addresses so the app reaches them.
//
// AAAA and other types get an empty NOERROR answer (NODATA): getaddrinfo then uses the A record,
// and IPv4 connections are what cgroup/connect4 redirects. Answering ::1 would depend on connect6.
// RFC 1035 packets are parsed and built by hand: only the header, one question and A answers.

import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { EnvironmentError, causeText } from '../../errors.js';

export interface DnsServerOptions {
  /** Lower-case name → IPv4 addresses to answer instead of 127.0.0.1 (passthrough hosts). */
  overrides?: Map<string, string[]>;
  /** Address answered for every other name (default 127.0.0.1). */
  answer?: string;
}

export interface DnsServer {
  readonly port: number;
  /** Names asked so far, for diagnostics. */
  readonly queries: string[];
  close(): Promise<void>;
}

const TYPE_A = 1;
const CLASS_IN = 1;
const RCODE_FORMERR = 1;
const RCODE_NOTIMP = 4;
const TTL = 5;

export interface DnsQuestion {
  id: number;
  flags: number;
  name: string;
  type: number;
  cls: number;
  /** Bytes of the question section as received (echoed in the answer). */
  questionBytes: Buffer;
}

/** Parse a query with one question; undefined when it is not one. Names in queries are never compressed. */
export function parseQuery(msg: Buffer): DnsQuestion | undefined {
  if (msg.length < 12) return undefined;
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  const qdcount = msg.readUInt16BE(4);
  if (flags & 0x8000 || qdcount !== 1) return undefined; // a response, or not one question
  const labels: string[] = [];
  let off = 12;
  for (;;) {
    if (off >= msg.length) return undefined;
    const len = msg[off]!;
    off += 1;
    if (len === 0) break;
    if (len & 0xc0 || off + len > msg.length) return undefined;
    labels.push(msg.toString('latin1', off, off + len));
    off += len;
  }
  if (off + 4 > msg.length) return undefined;
  const type = msg.readUInt16BE(off);
  const cls = msg.readUInt16BE(off + 2);
  return { id, flags, name: labels.join('.').toLowerCase(), type, cls, questionBytes: msg.subarray(12, off + 4) };
}

/** Build a response to `q` with A records for `addresses` (empty = NODATA) and the given rcode. */
export function buildResponse(q: DnsQuestion, addresses: string[], rcode = 0): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.id, 0);
  // QR=1, opcode copied, AA=1, RD copied, RA=1
  header.writeUInt16BE(0x8000 | (q.flags & 0x7800) | 0x0400 | (q.flags & 0x0100) | 0x0080 | (rcode & 0xf), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(addresses.length, 6);
  const answers = addresses.map((ip) => {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the name in the question
    rr.writeUInt16BE(TYPE_A, 2);
    rr.writeUInt16BE(CLASS_IN, 4);
    rr.writeUInt32BE(TTL, 6);
    rr.writeUInt16BE(4, 10);
    ip.split('.').forEach((o, i) => rr.writeUInt8(Number(o), 12 + i));
    return rr;
  });
  return Buffer.concat([header, q.questionBytes, ...answers]);
}

export function answerQuery(msg: Buffer, opts: DnsServerOptions = {}): { reply: Buffer; name: string } | undefined {
  const q = parseQuery(msg);
  if (!q) {
    if (msg.length < 12 || msg[2]! & 0x80) return undefined; // not even a query header: drop
    const header = Buffer.from(msg.subarray(0, 12));
    header.writeUInt16BE(0x8000 | (msg.readUInt16BE(2) & 0x7900) | RCODE_FORMERR, 2);
    header.fill(0, 4);
    return { reply: header, name: '' };
  }
  const opcode = (q.flags >> 11) & 0xf;
  if (opcode !== 0) return { reply: buildResponse(q, [], RCODE_NOTIMP), name: q.name };
  if (q.type !== TYPE_A || q.cls !== CLASS_IN) return { reply: buildResponse(q, []), name: q.name };
  const addrs = opts.overrides?.get(q.name.replace(/\.$/, '')) ?? [opts.answer ?? '127.0.0.1'];
  return { reply: buildResponse(q, addrs), name: q.name };
}

export async function startDnsServer(opts: DnsServerOptions = {}): Promise<DnsServer> {
  const sock = dgram.createSocket('udp4');
  const queries: string[] = [];
  sock.on('message', (msg, rinfo) => {
    const a = answerQuery(msg, opts);
    if (!a) return;
    if (a.name) queries.push(a.name);
    sock.send(a.reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', (err) =>
      reject(
        new EnvironmentError(`DNS server cannot listen on 127.0.0.1: ${causeText(err)}`, {
          stage: 'start mock DNS',
          cause: err,
        }),
      ),
    );
    sock.bind(0, '127.0.0.1', () => resolve());
  });
  sock.on('error', () => {
    // a send to a vanished client: nothing to do
  });
  let closed: Promise<void> | undefined;
  return {
    port: (sock.address() as AddressInfo).port,
    queries,
    close(): Promise<void> {
      closed ??= new Promise<void>((resolve) => sock.close(() => resolve()));
      return closed;
    },
  };
}
