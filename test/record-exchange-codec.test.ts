// Exchanges as spool records (src/record/exchange-codec.ts): what the recorder encodes, the writer
// process must decode to the same exchange, bodies byte for byte; secret header values must not
// reach the spool unless redaction is off. Real exchanges come from the recorded event streams in
// fixtures/events, reconstructed as `record` does.

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseFrames, SpoolReader, SpoolWriter } from '../src/format/spool.js';
import { readEventFile } from '../src/record/event-file.js';
import { decodeExchange, encodeExchange, type EncodeOptions } from '../src/record/exchange-codec.js';
import type { Exchange, HeaderList } from '../src/record/exchange.js';
import { Reconstructor } from '../src/record/reconstruct.js';

const EVENTS_DIR = fileURLToPath(new URL('../fixtures/events/', import.meta.url));
const RED = '[REDACTED]';

async function reconstructFile(file: string): Promise<Exchange[]> {
  const ex: Exchange[] = [];
  const r = new Reconstructor({ onExchange: (e) => ex.push(e) });
  for await (const ev of readEventFile(path.join(EVENTS_DIR, file))) r.push(ev);
  r.finish();
  return ex;
}

// Bodies are compared with Buffer.equals: element-by-element deep equality of a 1 MiB body takes
// seconds. A Buffer equals only a Buffer with the same bytes.
expect.addEqualityTesters([
  (a: unknown, b: unknown): boolean | undefined => {
    const ba = Buffer.isBuffer(a);
    const bb = Buffer.isBuffer(b);
    if (!ba && !bb) return undefined;
    return ba && bb && a.equals(b);
  },
]);

const roundTrip = (ex: Exchange, opts?: EncodeOptions): Exchange => decodeExchange(Buffer.concat(encodeExchange(ex, opts)));

/** The oracle for redaction, written out independently of src/format/redact.ts. */
function isSecret(name: string, extra: readonly string[] = []): boolean {
  const n = name.toLowerCase();
  return ['authorization', 'proxy-authorization', 'cookie', 'set-cookie'].includes(n) || /key|token|secret/.test(n) || extra.some((e) => e.toLowerCase() === n);
}
const redacted = (h: HeaderList, extra: readonly string[] = []): HeaderList => h.map(([k, v]) => [k, isSecret(k, extra) ? RED : v]);

/** What a round trip with redaction on must give: the exchange with secret header values replaced. */
function expectRedacted(ex: Exchange, extra: readonly string[] = []): Exchange {
  const out: Exchange = {
    ...ex,
    request: { ...ex.request, headers: redacted(ex.request.headers, extra) },
    response: {
      ...ex.response,
      headers: redacted(ex.response.headers, extra),
      informational: ex.response.informational.map((i) => ({ ...i, headers: redacted(i.headers, extra) })),
    },
  };
  if (ex.request.trailers) out.request.trailers = redacted(ex.request.trailers, extra);
  if (ex.response.trailers) out.response.trailers = redacted(ex.response.trailers, extra);
  return out;
}

/** A hand-built exchange; every optional field present. */
function handBuilt(): Exchange {
  const binary = Buffer.from([0x00, 0x0a, 0xff, 0x0d, 0x0a, 0x7b, 0x22, 0x0a, 0x80, 0x00]);
  return {
    role: 'outgoing',
    tls: true,
    conn: 'tls:1234:0x7f00aa#2',
    indexOnConn: 3,
    tgid: 4242,
    remoteAddr: '2001:db8::1',
    remotePort: 0, // a zero port is still present
    localAddr: '10.0.0.2',
    localPort: 51234,
    request: {
      method: 'POST',
      target: '/v1/upload?name=caf%C3%A9&x=1',
      httpVersion: '1.1',
      headers: [
        ['Host', 'api.example.com'],
        ['Authorization', 'Bearer s3cr3t-bearer'],
        ['Cookie', 'sid=cookie-value-1'],
        ['X-Api-Key', 'apikey-value-2'],
        ['x-auth-token', 'token-value-3'],
        ['X-Client-Secret', 'secret-value-4'],
        ['Proxy-Authorization', 'Basic proxy-value-5'],
        ['X-Tenant', 'tenant-value-6'],
        ['Content-Type', 'application/octet-stream'],
        ['X-Note', 'café ünïcödé \u{1f600} "quoted" \\ back\tslash'],
        ['Transfer-Encoding', 'chunked'],
      ],
      body: Buffer.concat([Buffer.from('line one\nline two\r\n\n{"not":"meta"}\n'), binary]),
      bodyDecoded: false,
      firstByteNs: 2n ** 63n - 1n, // beyond a double's integers
      trailers: [['X-Checksum', 'abc123'], ['X-Trailer-Token', 'trailer-token-7']],
    },
    response: {
      statusCode: 201,
      statusMessage: 'Created',
      informational: [
        { statusCode: 100, statusMessage: 'Continue', headers: [] },
        { statusCode: 103, statusMessage: 'Early Hints', headers: [['Link', '</a.css>; rel=preload'], ['Set-Cookie', 'early=cookie-8'], ['X-Tenant', 'tenant-value-9']] },
      ],
      httpVersion: '1.0',
      headers: [
        ['Content-Type', 'text/plain'],
        ['Set-Cookie', 'a=set-cookie-10; Path=/'],
        ['Set-Cookie', 'b=set-cookie-11; HttpOnly'],
        ['X-Request-Id', 'req-1'],
        ['X-Tenant', 'tenant-value-12'],
      ],
      body: Buffer.from('\n\nok\n\x00\x01', 'latin1'),
      bodyDecoded: true,
      firstByteNs: 1n,
      trailers: [['Server-Timing', 'db;dur=53'], ['X-Session-Key', 'session-key-13']],
    },
  };
}
const HAND_SECRETS = ['s3cr3t-bearer', 'cookie-value-1', 'apikey-value-2', 'token-value-3', 'secret-value-4', 'proxy-value-5', 'trailer-token-7', 'early=cookie-8', 'set-cookie-10', 'set-cookie-11', 'session-key-13'];
const HAND_TENANT = ['tenant-value-6', 'tenant-value-9', 'tenant-value-12'];

describe('encodeExchange / decodeExchange', () => {
  const real = new Map<string, Exchange[]>();
  beforeAll(async () => {
    for (const f of readdirSync(EVENTS_DIR).filter((n) => n.endsWith('.jsonl')).sort()) real.set(f, await reconstructFile(f));
  });
  const allReal = (): Exchange[] => [...real.values()].flat();

  it('(the Buffer comparison of this file tells different bytes apart)', () => {
    expect(Buffer.from('ab')).toStrictEqual(Buffer.from('ab'));
    expect(Buffer.from('ab')).not.toStrictEqual(Buffer.from('ac'));
    expect(Buffer.from('ab')).not.toStrictEqual(Buffer.from('abc'));
    expect(Buffer.from('ab')).not.toEqual(new Uint8Array([0x61, 0x62]));
    expect(Buffer.from('ab')).not.toEqual('ab');
    const a = handBuilt();
    const b = handBuilt();
    expect(a).toStrictEqual(b);
    b.response.body[3] = 0x21;
    expect(a).not.toStrictEqual(b);
  });

  it('the fixtures give a varied set of real exchanges', () => {
    const all = allReal();
    expect(all.length).toBeGreaterThanOrEqual(25);
    expect(new Set(all.map((e) => e.role))).toEqual(new Set(['incoming', 'outgoing']));
    expect(new Set(all.map((e) => e.tls))).toEqual(new Set([true, false]));
    expect(all.some((e) => e.remoteAddr !== undefined && e.remotePort !== undefined)).toBe(true);
    expect(all.some((e) => e.remoteAddr === undefined && !('remoteAddr' in e))).toBe(true);
    expect(all.some((e) => e.response.informational.length > 0)).toBe(true);
    expect(all.some((e) => e.response.body.length === 0)).toBe(true);
    expect(all.some((e) => e.request.body.length > 0)).toBe(true);
    expect(all.some((e) => e.response.body.length >= 1024 * 1024)).toBe(true);
    expect(all.some((e) => e.request.headers.some(([k]) => isSecret(k)))).toBe(true);
  });

  it('real exchanges round trip exactly with redaction off', () => {
    for (const [file, exchanges] of real) {
      exchanges.forEach((ex, i) => {
        const back = roundTrip(ex, { redact: false });
        expect(back, `${file} #${i}`).toStrictEqual(ex);
        expect(Buffer.isBuffer(back.request.body) && Buffer.isBuffer(back.response.body)).toBe(true);
        expect(typeof back.request.firstByteNs).toBe('bigint');
        expect(back.response.firstByteNs).toBe(ex.response.firstByteNs);
        expect(back.response.body.equals(ex.response.body)).toBe(true);
        // Optional fields come back exactly when they were there.
        for (const k of ['remoteAddr', 'remotePort', 'localAddr', 'localPort', 'request.trailers', 'response.trailers'] as const) {
          const has = (e: Exchange): boolean => {
            if (k === 'request.trailers') return 'trailers' in e.request;
            if (k === 'response.trailers') return 'trailers' in e.response;
            return k in e;
          };
          expect(has(back), `${file} #${i} ${k}`).toBe(has(ex));
        }
      });
    }
  });

  it('real exchanges with trailers added round trip exactly', () => {
    for (const ex of allReal()) {
      const withTrailers: Exchange = {
        ...ex,
        request: { ...ex.request, trailers: [['X-Digest', 'sha-256=abc'], ['X-Digest', 'sha-512=def']] },
        response: { ...ex.response, trailers: [] }, // empty but present
      };
      expect(roundTrip(withTrailers, { redact: false })).toStrictEqual(withTrailers);
    }
  });

  it('real exchanges with redaction on (the default): only secret header values change', () => {
    let secretsSeen = 0;
    for (const [file, exchanges] of real) {
      exchanges.forEach((ex, i) => {
        const back = roundTrip(ex);
        expect(back, `${file} #${i}`).toStrictEqual(expectRedacted(ex));
        expect(back.request.body.equals(ex.request.body)).toBe(true);
        expect(back.response.body.equals(ex.response.body)).toBe(true);
        secretsSeen += back.request.headers.filter(([, v]) => v === RED).length;
      });
    }
    expect(secretsSeen).toBeGreaterThan(0);
  });

  it('the Authorization header of a real outgoing request is redacted in the encoded bytes themselves', () => {
    const [ex] = real.get('outgoing-close-delimited.jsonl')!;
    const auth = ex!.request.headers.find(([k]) => k.toLowerCase() === 'authorization');
    expect(auth).toBeDefined();
    const secret = auth![1];
    expect(secret.length).toBeGreaterThan(3);
    expect(Buffer.concat(encodeExchange(ex!)).includes(secret)).toBe(false);
    expect(roundTrip(ex!).request.headers).toContainEqual([auth![0], RED]);
    expect(Buffer.concat(encodeExchange(ex!, { redact: false })).includes(secret)).toBe(true);
    expect(roundTrip(ex!, { redact: false }).request.headers).toContainEqual(auth);
  });

  it('a hand-built exchange (binary bodies with newlines, all optional fields, unicode) round trips exactly', () => {
    const ex = handBuilt();
    const back = roundTrip(ex, { redact: false });
    expect(back).toStrictEqual(ex);
    expect(back.request.firstByteNs).toBe(2n ** 63n - 1n);
    expect(back.remotePort).toBe(0);
    expect([...back.request.body.subarray(-10)]).toEqual([0x00, 0x0a, 0xff, 0x0d, 0x0a, 0x7b, 0x22, 0x0a, 0x80, 0x00]);
    expect(back.response.informational.map((i) => i.statusCode)).toEqual([100, 103]);
    // The parts: one header line, then the two bodies, raw.
    const parts = encodeExchange(ex, { redact: false });
    expect(parts).toHaveLength(3);
    expect(parts[0]!.indexOf(0x0a)).toBe(parts[0]!.length - 1);
    expect(parts[1]!.equals(ex.request.body)).toBe(true);
    expect(parts[2]!.equals(ex.response.body)).toBe(true);
  });

  it('no optional fields at all: they stay absent', () => {
    const ex = handBuilt();
    delete ex.remoteAddr;
    delete ex.remotePort;
    delete ex.localAddr;
    delete ex.localPort;
    delete ex.request.trailers;
    delete ex.response.trailers;
    ex.response.informational = [];
    const back = roundTrip(ex, { redact: false });
    expect(back).toStrictEqual(ex);
    for (const k of ['remoteAddr', 'remotePort', 'localAddr', 'localPort']) expect(k in back, k).toBe(false);
    expect('trailers' in back.request || 'trailers' in back.response).toBe(false);
  });

  it('empty bodies, on either side and both', () => {
    const some = Buffer.from('x\ny');
    for (const [req, res] of [[Buffer.alloc(0), Buffer.alloc(0)], [Buffer.alloc(0), some], [some, Buffer.alloc(0)]] as const) {
      const ex = handBuilt();
      ex.request.body = req;
      ex.response.body = res;
      const back = roundTrip(ex, { redact: false });
      expect(back).toStrictEqual(ex);
      expect(back.request.body.length).toBe(req.length);
      expect(back.response.body.length).toBe(res.length);
    }
  });

  it('redacts secret headers by default, and names from redactHeaders case-insensitively, everywhere', () => {
    const ex = handBuilt();
    const plain = roundTrip(ex);
    expect(plain).toStrictEqual(expectRedacted(ex));
    expect(plain.request.headers).toEqual([
      ['Host', 'api.example.com'],
      ['Authorization', RED],
      ['Cookie', RED],
      ['X-Api-Key', RED],
      ['x-auth-token', RED],
      ['X-Client-Secret', RED],
      ['Proxy-Authorization', RED],
      ['X-Tenant', 'tenant-value-6'],
      ['Content-Type', 'application/octet-stream'],
      ['X-Note', ex.request.headers[9]![1]],
      ['Transfer-Encoding', 'chunked'],
    ]);
    expect(plain.request.trailers).toEqual([['X-Checksum', 'abc123'], ['X-Trailer-Token', RED]]);
    expect(plain.response.headers.filter(([k]) => k === 'Set-Cookie')).toEqual([['Set-Cookie', RED], ['Set-Cookie', RED]]);
    expect(plain.response.informational[1]!.headers).toEqual([['Link', '</a.css>; rel=preload'], ['Set-Cookie', RED], ['X-Tenant', 'tenant-value-9']]);
    expect(plain.response.trailers).toEqual([['Server-Timing', 'db;dur=53'], ['X-Session-Key', RED]]);
    // Bodies untouched.
    expect(plain.request.body.equals(ex.request.body) && plain.response.body.equals(ex.response.body)).toBe(true);

    const extra = ['x-TENANT'];
    const more = roundTrip(ex, { redactHeaders: extra });
    expect(more).toStrictEqual(expectRedacted(ex, extra));
    expect(more.request.headers).toContainEqual(['X-Tenant', RED]);
    expect(more.response.headers).toContainEqual(['X-Tenant', RED]);
    expect(more.response.informational[1]!.headers).toContainEqual(['X-Tenant', RED]);
    expect(more.request.headers).toContainEqual(['Host', 'api.example.com']);

    // The spool bytes never hold a redacted value.
    const bytes = Buffer.concat(encodeExchange(ex, { redactHeaders: extra }));
    for (const s of [...HAND_SECRETS, ...HAND_TENANT]) expect(bytes.includes(s), s).toBe(false);
    const bytesDefault = Buffer.concat(encodeExchange(ex));
    for (const s of HAND_SECRETS) expect(bytesDefault.includes(s), s).toBe(false);
    for (const s of HAND_TENANT) expect(bytesDefault.includes(s), s).toBe(true);
    // redact: false keeps everything, even names listed in redactHeaders.
    const raw = Buffer.concat(encodeExchange(ex, { redact: false, redactHeaders: extra }));
    for (const s of [...HAND_SECRETS, ...HAND_TENANT]) expect(raw.includes(s), s).toBe(true);
  });

  it('encoding does not modify the exchange it is given', () => {
    const ex = handBuilt();
    encodeExchange(ex, { redactHeaders: ['x-tenant'] });
    expect(ex).toStrictEqual(handBuilt());
  });

  it('decoded bodies are copies: reusing the record buffer does not change them', () => {
    const ex = handBuilt();
    const data = Buffer.concat(encodeExchange(ex, { redact: false }));
    const back = decodeExchange(data);
    data.fill(0x2a);
    expect(back).toStrictEqual(ex);
  });

  it('decodes a record that is a view into a larger buffer (as the spool reader passes it)', () => {
    const ex = handBuilt();
    const data = Buffer.concat(encodeExchange(ex, { redact: false }));
    const outer = Buffer.concat([Buffer.from('prefix\n'), data, Buffer.from('\nsuffix')]);
    expect(decodeExchange(outer.subarray(7, 7 + data.length))).toStrictEqual(ex);
  });

  it('corrupted records throw', () => {
    const data = Buffer.concat(encodeExchange(handBuilt(), { redact: false }));
    const nl = data.indexOf(0x0a);
    expect(() => decodeExchange(data.subarray(0, data.length - 1))).toThrow(/is \d+ bytes, its header says \d+/);
    expect(() => decodeExchange(Buffer.concat([data, Buffer.from('x')]))).toThrow(/is \d+ bytes, its header says \d+/);
    expect(() => decodeExchange(data.subarray(0, nl + 1))).toThrow(/its header says/); // bodies missing
    expect(() => decodeExchange(data.subarray(0, nl))).toThrow(/without its header line/); // no newline at all
    expect(() => decodeExchange(Buffer.alloc(0))).toThrow(/without its header line/);
    expect(() => decodeExchange(Buffer.from('not json\nbody'))).toThrow(SyntaxError);
    expect(() => decodeExchange(Buffer.concat([data.subarray(0, nl - 5), data.subarray(nl)]))).toThrow(); // header line cut short
    expect(() => decodeExchange(data.subarray(nl + 1))).toThrow(); // header line missing: a body is not a header
  });

  it('through a real spool: encoded exchanges come out of SpoolReader decoded as they went in', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tlsrec-codec-test-'));
    try {
      const all = [...allReal(), handBuilt()];
      const writer = new SpoolWriter(dir, 'spool', 64 * 1024);
      for (const ex of all) writer.append(encodeExchange(ex, { redact: false }));
      writer.close();
      expect(readdirSync(dir).length).toBeGreaterThan(1); // the 1 MiB body made it rotate
      const back: Exchange[] = [];
      const reader = new SpoolReader(dir, 'spool', (data) => back.push(decodeExchange(data)));
      expect(reader.finish()).toBe(0);
      expect(back).toStrictEqual(all);
      expect(readdirSync(dir)).toEqual([]);
      // And one frame holds exactly one encoded exchange.
      const frame = Buffer.concat([Buffer.from(`#tlsrec-spool ${Buffer.concat(encodeExchange(all[0]!)).length}\n`), ...encodeExchange(all[0]!)]);
      const { items, used } = parseFrames(frame);
      expect(used).toBe(frame.length);
      expect(items).toHaveLength(1);
      expect(items[0]!.kind === 'record' && decodeExchange(items[0]!.data)).toStrictEqual(expectRedacted(all[0]!));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
