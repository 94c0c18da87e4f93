// Ring records as spool frames: the format the kernel writes (decodeRecords of src/capture/decode.ts;
// encodeRecords of test/helpers/ring-records.ts makes them from recorded events), sealed by
// src/spool/cipher.ts. What the recorder seals, the file-writer process must open and decode to the same
// events, bytes for bytes, through a real spool on disk; and nothing of the plaintext may be on disk.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { SpoolReader, SpoolAppender } from '../src/spool/segments.js';
import { dataLength, decodeRecords, execTgid, recordLength } from '../src/capture/decode.js';
import { CAP_EVENT, CAP_HDR_SIZE } from '../src/capture/record-layout.js';
import { readEventFile } from '../src/record/event-file.js';
import type { CaptureEvent } from '../src/model/events.js';
import { SpoolCipher } from '../src/spool/cipher.js';
import { seededRandom } from './helpers/random.js';
import { compareBuffersFast } from './helpers/buffer-equality.js';
import { encodeRecords } from './helpers/ring-records.js';

const EVENTS_DIR = fileURLToPath(new URL('../fixtures/events/', import.meta.url));

compareBuffersFast();

/** Every event of every recorded fixture, file by file. */
const recorded = new Map<string, CaptureEvent[]>();

beforeAll(async () => {
  for (const name of readdirSync(EVENTS_DIR)
    .filter((n) => n.endsWith('.jsonl'))
    .sort()) {
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
    {
      ...base,
      source: 'socket',
      type: 'open',
      role: 'accept',
      localAddr: '::1',
      localPort: 65535,
      remoteAddr: '10.0.0.1',
      remotePort: 1,
    },
    { ...base, source: 'socket', type: 'open', role: 'connect' }, // addresses unknown
    {
      ...base,
      source: 'tls',
      type: 'data',
      dir: 'out',
      pos: 2n ** 63n,
      callLen: 5,
      chunkOff: 0,
      data: Buffer.from('hello'),
    },
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
    expect(() => decodeRecords(batch.subarray(0, batch.length - 1))).toThrow(
      /offset \d+ says 5 payload bytes, 4 are left/,
    );
    expect(() => decodeRecords(batch.subarray(0, 47))).toThrow(/47 bytes at offset 0 are not a whole event header/);
    const badType = Buffer.from(batch);
    badType[CAP_EVENT.fields.type.offset] = 99;
    expect(() => decodeRecords(badType)).toThrow(/unknown event type 99 at offset 0/);
  });
});

describe('recordLength / dataLength / execTgid (what the recorder reads of a ring record)', () => {
  /** Each hand-built event as its own record, followed by bytes that are not its own (a ring view). */
  const views = (): Array<{ ev: CaptureEvent; view: Buffer; own: number }> =>
    handBuilt().map((ev) => {
      const own = encodeRecords([ev]);
      const view = Buffer.alloc(own.length + 37, 0x77);
      own.copy(view);
      return { ev, view, own: own.length };
    });

  it('the spool keeps the header and the payload it announces, not the rest of a reserved record', () => {
    for (const { ev, view, own } of views()) {
      expect(recordLength(view), ev.type).toBe(own);
      expect(decodeRecords(view.subarray(0, recordLength(view)))).toStrictEqual([ev]);
    }
    // An exec record is reserved with room for a long file name; its header says how much is used.
    const exec = Buffer.alloc(CAP_HDR_SIZE + 256);
    encodeRecords([handBuilt()[0]!]).copy(exec);
    exec.writeUInt32LE(9, CAP_EVENT.fields.len.offset);
    exec.write('/bin/curl', CAP_HDR_SIZE);
    expect(recordLength(exec)).toBe(CAP_HDR_SIZE + 9);
  });

  it('skips what it cannot read: shorter than a header, or a type it does not know (a newer BPF object)', () => {
    const { view } = views()[3]!; // the data record "hello"
    expect(recordLength(view.subarray(0, CAP_HDR_SIZE - 1))).toBe(0);
    const unknown = Buffer.from(view);
    unknown[CAP_EVENT.fields.type.offset] = 99;
    expect(recordLength(unknown)).toBe(0);
    unknown[CAP_EVENT.fields.type.offset] = 0;
    expect(recordLength(unknown)).toBe(0);
  });

  it('a record shorter than the payload its header announces is not a whole record: skipped', () => {
    const { view } = views()[3]!; // announces 5 bytes
    expect(recordLength(view.subarray(0, CAP_HDR_SIZE + 5))).toBe(CAP_HDR_SIZE + 5);
    expect(recordLength(view.subarray(0, CAP_HDR_SIZE + 4))).toBe(0);
  });

  it('data bytes for the status line, the process of an exec', () => {
    const got = views().map(({ view }) => [dataLength(view), execTgid(view)]);
    expect(got).toEqual(
      handBuilt().map((ev) => [ev.type === 'data' ? ev.data.length : 0, ev.type === 'exec' ? ev.tgid : undefined]),
    );
    expect(got[0]![1]).toBe(2 ** 32 - 1);
    expect(got[3]![0]).toBe(5);
  });
});

describe('SpoolCipher', () => {
  it('through a real spool: sealed batches come out of SpoolReader as they went in; no plaintext on disk', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tlsrec-codec-test-'));
    try {
      const all = [...[...recorded.values()].flat(), ...handBuilt()];
      const cipher = SpoolCipher.generate();
      const writer = new SpoolAppender(dir, 'spool', 256 * 1024);
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
