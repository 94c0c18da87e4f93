// Capture events as spool frames: ring records (encodeRecords / decodeRecords of
// src/native/decode.ts, the format the kernel writes), sealed by spool-cipher.ts. What the
// recorder encodes and seals, the writer process must open and decode to the same events, bytes
// for bytes, through a real spool on disk; and nothing of the plaintext may be on disk.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { SpoolReader, SpoolWriter } from '../src/format/spool.js';
import { decodeRecords, encodeRecords } from '../src/native/decode.js';
import { readEventFile } from '../src/record/event-file.js';
import type { CaptureEvent } from '../src/record/events.js';
import { SpoolCipher } from '../src/record/spool-cipher.js';
import { seededRandom } from './helpers/random.js';

const EVENTS_DIR = fileURLToPath(new URL('../fixtures/events/', import.meta.url));

// Data is compared with Buffer.equals (deep equality of a 1 MiB buffer element by element is slow).
expect.addEqualityTesters([
  (a: unknown, b: unknown): boolean | undefined => {
    const ba = Buffer.isBuffer(a);
    const bb = Buffer.isBuffer(b);
    if (!ba && !bb) return undefined;
    return ba && bb && a.equals(b);
  },
]);

/** Every event of every recorded fixture, file by file. */
const recorded = new Map<string, CaptureEvent[]>();

beforeAll(async () => {
  for (const name of readdirSync(EVENTS_DIR).filter((n) => n.endsWith('.jsonl')).sort()) {
    const events: CaptureEvent[] = [];
    for await (const ev of readEventFile(path.join(EVENTS_DIR, name))) events.push(ev);
    recorded.set(name, events);
  }
});

/** One of each kind, with the extremes of every field. */
function handBuilt(): CaptureEvent[] {
  const base = { tsNs: 2n ** 64n - 1n, tgid: 2 ** 32 - 1, tid: 7, connId: 0xdeadbeefcafen };
  return [
    { ...base, source: 'socket', type: 'exec' },
    { ...base, source: 'socket', type: 'open', role: 'accept', localAddr: '::1', localPort: 65535, remoteAddr: '10.0.0.1', remotePort: 1 },
    { ...base, source: 'socket', type: 'open', role: 'connect' }, // addresses unknown
    { ...base, source: 'tls', type: 'data', dir: 'out', pos: 2n ** 63n, callLen: 5, chunkOff: 0, data: Buffer.from('hello') },
    { ...base, source: 'tls', type: 'data', dir: 'in', pos: 0n, callLen: 0, chunkOff: 0, data: Buffer.alloc(0) },
    { ...base, source: 'tls', type: 'loss', dir: 'in', pos: 12n, len: 4096, reason: 'read_fault' },
    { ...base, source: 'socket', type: 'loss', dir: 'out', pos: 0n, len: 1, reason: 'ringbuf_full' },
    { ...base, tsNs: 0n, connId: 0n, source: 'socket', type: 'close' },
  ];
}

describe('encodeRecords / decodeRecords', () => {
  it('every event of every real recording comes back equal, in batches of any size', () => {
    const r = seededRandom(26);
    let total = 0;
    for (const [name, events] of recorded) {
      const back: CaptureEvent[] = [];
      for (let i = 0; i < events.length; ) {
        const n = 1 + Math.floor(r() * 40);
        back.push(...decodeRecords(encodeRecords(events.slice(i, i + n))));
        i += n;
      }
      expect(back, name).toStrictEqual(events);
      total += events.length;
    }
    expect(total).toBeGreaterThan(100);
  });

  it('every kind of event and the extremes of each field', () => {
    expect(decodeRecords(encodeRecords(handBuilt()))).toStrictEqual(handBuilt());
    expect(decodeRecords(encodeRecords([]))).toEqual([]);
  });

  it('decoded data are copies: reusing the batch buffer does not change them', () => {
    const batch = encodeRecords(handBuilt());
    const back = decodeRecords(batch);
    batch.fill(0x2a);
    expect(back).toStrictEqual(handBuilt());
  });

  it('bytes that are not a whole batch throw, naming the offset', () => {
    const batch = encodeRecords(handBuilt().slice(0, 4)); // ends with the data event "hello"
    expect(() => decodeRecords(batch.subarray(0, batch.length - 1))).toThrow(/offset \d+ says 5 payload bytes, 4 are left/);
    expect(() => decodeRecords(batch.subarray(0, 47))).toThrow(/47 bytes at offset 0 are not a whole event header/);
    const badType = Buffer.from(batch);
    badType[44] = 99;
    expect(() => decodeRecords(badType)).toThrow(/unknown event type 99 at offset 0/);
  });
});

describe('SpoolCipher', () => {
  it('through a real spool: sealed batches come out of SpoolReader as they went in; no plaintext on disk', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tlsrec-codec-test-'));
    try {
      const all = [...[...recorded.values()].flat(), ...handBuilt()];
      const cipher = SpoolCipher.generate();
      const writer = new SpoolWriter(dir, 'spool', 256 * 1024);
      for (let i = 0; i < all.length; i += 50) {
        writer.append(cipher.seal([encodeRecords(all.slice(i, i + 25)), encodeRecords(all.slice(i + 25, i + 50))]));
        writer.flush();
      }
      writer.close();
      const files = readdirSync(dir);
      expect(files.length).toBeGreaterThan(1); // the 1 MiB body made it rotate
      const onDisk = Buffer.concat(files.map((f) => readFileSync(path.join(dir, f))));
      for (const plain of ['HTTP/1.1', 'Host:', 'hello', '10.0.0.1']) expect(onDisk.includes(plain), plain).toBe(false);

      const reader = new SpoolReader(dir, 'spool', (frame) => back.push(...decodeRecords(opener.open(frame))));
      const back: CaptureEvent[] = [];
      const opener = SpoolCipher.fromHex(cipher.keyHex());
      expect(reader.finish()).toBe(0);
      expect(back).toStrictEqual(all);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('each frame has its own IV; another key does not open it', () => {
    const cipher = SpoolCipher.generate();
    const plain = encodeRecords(handBuilt());
    const a = Buffer.concat(cipher.seal([plain]));
    const b = Buffer.concat(cipher.seal([plain]));
    expect(a.length).toBe(plain.length + SpoolCipher.IV_BYTES);
    expect(a.subarray(0, 16).equals(b.subarray(0, 16))).toBe(false);
    expect(a.subarray(16).equals(b.subarray(16))).toBe(false);
    expect(cipher.open(a).equals(plain)).toBe(true);
    expect(cipher.open(b).equals(plain)).toBe(true);
    expect(SpoolCipher.generate().open(a).equals(plain)).toBe(false);
    expect(() => SpoolCipher.fromHex('')).toThrow(/missing or malformed/);
    expect(() => SpoolCipher.fromHex('zz'.repeat(32))).toThrow(/missing or malformed/);
    expect(() => cipher.open(Buffer.alloc(15))).toThrow(/shorter than its IV/);
  });
});
