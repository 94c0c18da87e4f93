// Event-stream files: one CaptureEvent per line as JSON. bigint fields are decimal strings and
// data is base64, so a file is plain JSON and diffable. `record --dump-events` writes them;
// fixtures/events/*.jsonl are such files, so reconstruction can be tested without a kernel.

import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { InputFileError } from '../errors.js';
import type { CaptureEvent, CaptureSource, Direction } from '../model/events.js';

/** One line (no trailing newline) for an event. */
export function writeEventLine(ev: CaptureEvent): string {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(ev)) {
    if (v === undefined) continue;
    if (typeof v === 'bigint') o[k] = v.toString();
    else if (Buffer.isBuffer(v)) o[k] = v.toString('base64');
    else o[k] = v;
  }
  return JSON.stringify(o);
}

class LineError extends Error {}

function big(o: Record<string, unknown>, k: string): bigint {
  const v = o[k];
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  throw new LineError(`"${k}" must be an integer as a decimal string`);
}
function int(o: Record<string, unknown>, k: string): number {
  const v = o[k];
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  throw new LineError(`"${k}" must be a non-negative integer`);
}
function oneOf<T extends string>(o: Record<string, unknown>, k: string, allowed: readonly T[]): T {
  const v = o[k];
  if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
  throw new LineError(`"${k}" must be one of ${allowed.join(', ')}`);
}
function optStr(o: Record<string, unknown>, k: string): string | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v;
  throw new LineError(`"${k}" must be a string`);
}
function optInt(o: Record<string, unknown>, k: string): number | undefined {
  return o[k] === undefined ? undefined : int(o, k);
}

const SOURCES = ['tls', 'socket'] as const satisfies readonly CaptureSource[];
const DIRS = ['in', 'out'] as const satisfies readonly Direction[];

/** Parse one line; throws InputFileError naming the line (and file when given). */
export function parseEventLine(line: string, lineNo: number, file = '<events>'): CaptureEvent {
  try {
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch (err) {
      throw new LineError(`not JSON: ${(err as Error).message}`);
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new LineError('expected a JSON object');
    const r = o as Record<string, unknown>;
    const base = {
      tsNs: big(r, 'tsNs'),
      tgid: int(r, 'tgid'),
      tid: int(r, 'tid'),
      source: oneOf(r, 'source', SOURCES),
      connId: big(r, 'connId'),
    };
    const type = oneOf(r, 'type', ['data', 'open', 'close', 'loss', 'exec'] as const);
    switch (type) {
      case 'data': {
        const d = r.data;
        if (typeof d !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(d)) throw new LineError('"data" must be base64');
        return {
          ...base,
          type,
          dir: oneOf(r, 'dir', DIRS),
          pos: big(r, 'pos'),
          callLen: int(r, 'callLen'),
          chunkOff: int(r, 'chunkOff'),
          data: Buffer.from(d, 'base64'),
        };
      }
      case 'open': {
        const ev: CaptureEvent = { ...base, type, role: oneOf(r, 'role', ['connect', 'accept'] as const) };
        const remoteAddr = optStr(r, 'remoteAddr');
        const localAddr = optStr(r, 'localAddr');
        const remotePort = optInt(r, 'remotePort');
        const localPort = optInt(r, 'localPort');
        if (remoteAddr !== undefined) ev.remoteAddr = remoteAddr;
        if (remotePort !== undefined) ev.remotePort = remotePort;
        if (localAddr !== undefined) ev.localAddr = localAddr;
        if (localPort !== undefined) ev.localPort = localPort;
        return ev;
      }
      case 'loss':
        return {
          ...base,
          type,
          dir: oneOf(r, 'dir', DIRS),
          pos: big(r, 'pos'),
          len: int(r, 'len'),
          reason: oneOf(r, 'reason', ['ringbuf_full', 'read_fault'] as const),
        };
      case 'close':
      case 'exec':
        return { ...base, type };
    }
  } catch (err) {
    if (err instanceof LineError) {
      throw new InputFileError(
        `bad event at ${file}:${lineNo}: ${err.message}`,
        [`${file}:${lineNo}:1: ${err.message}`],
        {
          stage: 'read events',
          hint: 'event files hold one JSON object per line, as written by `tlsrec record --dump-events`',
        },
      );
    }
    throw err;
  }
}

/** Read an event-stream file lazily, line by line (blank lines ignored). */
export async function* readEventFile(path: string): AsyncGenerator<CaptureEvent> {
  const rl = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const line of rl) {
      n++;
      if (line.trim() === '') continue;
      yield parseEventLine(line, n, path);
    }
  } finally {
    rl.close();
  }
}
