import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { classifyVolatile, findVolatileFields, windowAround } from '../src/format/volatile.js';
import { exchangeToTestDoc } from '../src/format/render.js';
import { compareResponse } from '../src/replay/compare.js';
import { parseNoise } from '../src/format/noise.js';
import { makeExchange, MONO_TO_WALL } from './fixtures-format/make-exchange.js';

// The recording took place at this moment; the window is a day either side.
const NOW = Date.UTC(2026, 11, 6, 12, 30, 0);
const W = windowAround(NOW);

/** A v7 UUID made at `ms`, a v1 UUID made at `ms`. */
function uuidV7(ms: number): string {
  const h = ms.toString(16).padStart(12, '0');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-7abc-9def-0123456789ab`;
}
function uuidV1(ms: number): string {
  const ticks = BigInt(ms) * 10_000n + 122192928000000000n;
  const hex = ticks.toString(16).padStart(15, '0');
  return `${hex.slice(7, 15)}-${hex.slice(3, 7)}-1${hex.slice(0, 3)}-8abc-0123456789ab`;
}

describe('classifyVolatile: true positives', () => {
  const cases: Array<[string, unknown, string]> = [
    ['UUID v4', '3f2b8c1e-9d4a-4c7b-8e21-5a6b7c8d9e0f', 'uuid'],
    ['UUID v4 upper case', '3F2B8C1E-9D4A-4C7B-BE21-5A6B7C8D9E0F', 'uuid'],
    ['UUID v7 made now', uuidV7(NOW), 'uuid'],
    ['UUID v1 made now', uuidV1(NOW), 'uuid'],
    ['ISO time, ms, Z', new Date(NOW).toISOString(), 'timestamp'],
    ['RFC 3339 with offset', '2026-12-06T13:30:00+01:00', 'timestamp'],
    ['RFC 3339 nanoseconds', '2026-12-06T12:30:00.123456789Z', 'timestamp'],
    ['ISO with a space', '2026-12-06 12:30:00Z', 'timestamp'],
    ['ISO without seconds, compact offset', '2026-12-06T12:30+0000', 'timestamp'],
    ['HTTP date', 'Sun, 06 Dec 2026 12:30:00 GMT', 'http-date'],
    ['RFC 850 date', 'Sunday, 06-Dec-26 12:30:00 GMT', 'http-date'],
    ['asctime', 'Sun Dec  6 12:30:00 2026', 'http-date'],
    ['epoch seconds', Math.floor(NOW / 1000), 'epoch-seconds'],
    ['epoch seconds, float', NOW / 1000 + 0.25, 'epoch-seconds'],
    ['epoch ms', NOW + 1234, 'epoch-millis'],
    ['epoch ms as a string', String(NOW), 'epoch-millis'],
    ['epoch seconds an hour later (an expiry)', Math.floor(NOW / 1000) + 3600, 'epoch-seconds'],
  ];
  for (const [what, value, kind] of cases) {
    it(`${what}: ${JSON.stringify(value)} -> ${kind}`, () => {
      expect(classifyVolatile(value, W)).toBe(kind);
    });
  }
});

describe('classifyVolatile: stable values are never flagged', () => {
  const stable: Array<[string, unknown]> = [
    ['a name', 'Ada Lovelace'],
    ['a plan', 'pro'],
    ['a price', 12.5],
    ['a whole price', 1999],
    ['a currency', 'EUR'],
    ['an id like A-1', 'A-1'],
    ['a sku', 'SKU-000123'],
    ['a small count', 3],
    ['a zip code', 75001],
    ['a phone number', '+33 1 23 45 67 89'],
    ['a hex hash (sha256)', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
    ['a short hex hash', '5d41402abc4b2a76'],
    ['a git sha', '7f1fc27b9a4baa36be747d2cf956f23bb2e793c3'],
    ['an etag', 'W/"a1b2c3d4e5f60718"'],
    ['a hex token', '9f86d081884c7d659a2feaa0c55ad015'],
    ['a UUID v5 (name-based)', '886313e1-3b8a-5372-9b90-0c9aee199e5d'],
    ['a UUID v3 (name-based)', '6fa459ea-ee8a-3ca4-894e-db77e160355e'],
    ['the nil UUID', '00000000-0000-0000-0000-000000000000'],
    ['the max UUID', 'ffffffff-ffff-ffff-ffff-ffffffffffff'],
    ['a v7 UUID from 2021 (a stored id)', uuidV7(Date.UTC(2021, 0, 1))],
    ['a v1 UUID from 2019', uuidV1(Date.UTC(2019, 5, 1))],
    ['a date without a time', '2026-12-06'],
    ['a release time long ago', '2020-01-01T00:00:00Z'],
    ['an HTTP date long ago (Last-Modified)', 'Wed, 21 Oct 2015 07:28:00 GMT'],
    ['an epoch long ago', 1_500_000_000],
    ['epoch ms long ago', 1_500_000_000_000],
    ['a version', '1.4.2'],
    ['a semver date-ish', '2026.12.06'],
    ['a content type', 'application/json'],
    ['a bool', true],
    ['null', null],
    ['a ten-digit order number', '4000000001'],
    ['a URL', 'https://example.com/a'],
    ['a sentence with a date in it', 'released on 2026-12-06T12:30:00Z at last'],
  ];
  for (const [what, value] of stable) {
    it(`${what}: ${JSON.stringify(value)}`, () => {
      expect(classifyVolatile(value, W)).toBeUndefined();
    });
  }
});

describe('findVolatileFields', () => {
  const body = {
    id: '3f2b8c1e-9d4a-4c7b-8e21-5a6b7c8d9e0f',
    user: { name: 'Ada Lovelace', plan: 'pro' },
    price: { amount: 12.5, currency: 'EUR' },
    createdAt: new Date(NOW).toISOString(),
    ts: NOW,
    token: 'a3f1c9e07b2d4e6f8a0b1c2d3e4f5a6b',
    items: [
      { sku: 'A-1', seenAt: new Date(NOW).toISOString() },
      { sku: 'B-2', seenAt: new Date(NOW + 1).toISOString() },
    ],
  };
  const headers: Array<[string, string]> = [
    ['Content-Type', 'application/json'],
    ['X-Request-Id', 'c56a4180-65aa-42ec-a945-5fd21dec0538'],
    ['ETag', 'W/"0f3c2a9b8e7d6c5b"'],
    ['Date', 'Sun, 06 Dec 2026 12:30:00 GMT'],
    ['Last-Modified', 'Wed, 21 Oct 2015 07:28:00 GMT'],
  ];
  const input = {
    request: { url: 'http://localhost:3000/session', body: Buffer.alloc(0) },
    response: { headers, body: Buffer.from(JSON.stringify(body)), contentType: 'application/json' },
    window: W,
    skipHeaders: ['Date'],
  };

  it('flags UUIDs, times and epoch values in headers and JSON bodies, in Keploy key shape', () => {
    const keys = findVolatileFields(input).map((f) => f.key);
    expect(keys.sort()).toEqual(
      ['body.createdAt', 'body.id', 'body.items.seenAt', 'body.ts', 'header.X-Request-Id'].sort(),
    );
  });

  it('never flags the stable name, plan, price, sku, a hex token or an old Last-Modified', () => {
    const keys = findVolatileFields(input).map((f) => f.key.toLowerCase());
    for (const stable of [
      'body.user.name',
      'body.user.plan',
      'body.price.amount',
      'body.price.currency',
      'body.items.sku',
      'body.token',
      'header.etag',
      'header.last-modified',
      'header.date',
    ]) {
      expect(keys).not.toContain(stable);
    }
  });

  it('does not flag a value the request carried (an echo of the input)', () => {
    const id = '3f2b8c1e-9d4a-4c7b-8e21-5a6b7c8d9e0f';
    const keys = findVolatileFields({
      ...input,
      request: { url: `http://localhost:3000/users/${id}`, body: Buffer.alloc(0) },
    }).map((f) => f.key);
    expect(keys).not.toContain('body.id');
    expect(keys).toContain('body.createdAt');
  });

  it('arrays at the root share the path of their elements; non-JSON bodies are left alone', () => {
    const rootArray = findVolatileFields({
      ...input,
      response: { headers: [], body: Buffer.from(JSON.stringify([{ at: new Date(NOW).toISOString(), n: 'x' }])) },
    });
    expect(rootArray.map((f) => f.key)).toEqual(['body.at']);
    const text = findVolatileFields({
      ...input,
      response: { headers: [], body: Buffer.from(new Date(NOW).toISOString()), contentType: 'text/plain' },
    });
    expect(text).toEqual([]);
  });
});

describe('record-time flagging in rendered tests', () => {
  it('exchangeToTestDoc writes the volatile fields as noise and they silence the comparison', () => {
    // The kernel clock of makeExchange is 1 s after MONO_TO_WALL: 2024-01-01T00:00:01Z.
    const at = Date.UTC(2024, 0, 1, 0, 0, 1);
    const body = JSON.stringify({
      id: '3f2b8c1e-9d4a-4c7b-8e21-5a6b7c8d9e0f',
      plan: 'pro',
      seen: [{ at: new Date(at).toISOString() }],
      ts: at,
    });
    const ex = makeExchange({
      target: '/session',
      resHeaders: [
        ['Content-Type', 'application/json'],
        ['X-Request-Id', 'c56a4180-65aa-42ec-a945-5fd21dec0538'],
        ['Date', 'Mon, 01 Jan 2024 00:00:01 GMT'],
      ],
      resBody: body,
    });
    const doc = exchangeToTestDoc(ex, 1, { monoToWallNs: MONO_TO_WALL });
    const noise = doc.spec.assertions!.noise!;
    expect(Object.keys(noise).sort()).toEqual(
      ['body.id', 'body.seen.at', 'body.ts', 'header.Date', 'header.X-Request-Id'].sort(),
    );
    expect(
      Object.keys(
        exchangeToTestDoc(ex, 1, { monoToWallNs: MONO_TO_WALL, flagVolatile: false }).spec.assertions!.noise!,
      ),
    ).toEqual(['header.Date']);

    // The written keys, read back by the noise parser, make a later answer with fresh values pass
    // and a changed plan fail.
    const { rules, problems } = parseNoise(parse(JSON.stringify(noise)) as Record<string, string[]>);
    expect(problems).toEqual([]);
    const expected = {
      status: 200,
      headers: [['Content-Type', 'application/json']] as Array<[string, string]>,
      body: { bytes: Buffer.from(body), kind: 'json' as const },
    };
    const fresh = (plan: string) => ({
      status: 200,
      headers: [
        ['Content-Type', 'application/json'],
        ['X-Request-Id', 'another'],
      ] as Array<[string, string]>,
      body: Buffer.from(JSON.stringify({ id: 'other', plan, seen: [{ at: 'later' }], ts: 1 })),
    });
    expect(compareResponse('t', expected, fresh('pro'), rules).passed).toBe(true);
    const changed = compareResponse('t', expected, fresh('enterprise'), rules);
    expect(changed.passed).toBe(false);
    expect(changed.failures.map((f) => f.message).join('\n')).toContain('$.plan');
  });
});
