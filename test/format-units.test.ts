import { describe, expect, it } from 'vitest';
import { decodeBody, encodeBody, storedAsBase64 } from '../src/format/stored-body.js';
import { looksLikeJson, minifyJson, prettyJson } from '../src/format/json.js';
import { mergeNoise, parseNoise, parseNoiseKey } from '../src/format/noise.js';
import { isSecretHeader, redactHeaders, REDACTED } from '../src/format/redact.js';
import { headersToMap, rfc3339 } from '../src/format/render.js';
import { seededRandom } from './helpers/random.js';

describe('redaction', () => {
  it('redacts credentials and any name containing key, token or secret, case-insensitively', () => {
    for (const n of [
      'Authorization',
      'proxy-authorization',
      'COOKIE',
      'Set-Cookie',
      'X-Api-Key',
      'x-auth-token',
      'X-Client-Secret',
      'apikey',
    ]) {
      expect(isSecretHeader(n), n).toBe(true);
    }
    for (const n of ['Host', 'Content-Type', 'Keep-Alive', 'Accept', 'X-Request-Id'])
      expect(isSecretHeader(n), n).toBe(false);
    expect(isSecretHeader('X-Tenant', ['x-tenant'])).toBe(true);
  });

  it('keeps names and order and does not touch the input', () => {
    const input: Array<[string, string]> = [
      ['Host', 'a'],
      ['Cookie', 'sid=1'],
      ['X-Tenant', 't'],
    ];
    expect(redactHeaders(input, ['X-TENANT'])).toEqual([
      ['Host', 'a'],
      ['Cookie', REDACTED],
      ['X-Tenant', REDACTED],
    ]);
    expect(input[1]![1]).toBe('sid=1');
  });
});

describe('noise keys', () => {
  it('parses header, body paths with any-index, status', () => {
    expect(parseNoiseKey('header.Date')).toEqual({ ok: true, target: { type: 'header', name: 'date' } });
    expect(parseNoiseKey('body')).toEqual({ ok: true, target: { type: 'body', path: [] } });
    expect(parseNoiseKey('body.user.id')).toEqual({ ok: true, target: { type: 'body', path: ['user', 'id'] } });
    expect(parseNoiseKey('body.items.[].id')).toEqual({
      ok: true,
      target: { type: 'body', path: ['items', '[]', 'id'] },
    });
    expect(parseNoiseKey('body.items[].id')).toEqual({
      ok: true,
      target: { type: 'body', path: ['items', '[]', 'id'] },
    });
    expect(parseNoiseKey('body.items[2].id')).toEqual({
      ok: true,
      target: { type: 'body', path: ['items', '2', 'id'] },
    });
    expect(parseNoiseKey('body[].id')).toEqual({ ok: true, target: { type: 'body', path: ['[]', 'id'] } });
    expect(parseNoiseKey('status')).toEqual({ ok: true, target: { type: 'status' } });
    expect(parseNoiseKey('body..x').ok).toBe(false);
    expect(parseNoiseKey('header.').ok).toBe(false);
    expect(parseNoiseKey('cookies.x').ok).toBe(false);
  });

  it('compiles patterns, reports every bad one, later lists win on the same key', () => {
    const { rules, problems } = parseNoise({ 'header.Date': [], 'body.ts': ['^\\d+$', '[bad'], 'body.ok': null });
    expect(rules.map((r) => r.key)).toEqual(['header.Date', 'body.ok']);
    expect(problems).toEqual([
      { at: { key: 'body.ts', index: 1 }, message: expect.stringContaining('invalid regular expression "[bad"') },
    ]);
    const a = parseNoise({ 'header.date': [] }).rules;
    const b = parseNoise({ 'header.Date': ['x'] }).rules;
    expect(mergeNoise(a, b).map((r) => [r.key, r.patterns.length])).toEqual([['header.Date', 1]]);
  });
});

describe('JSON whitespace', () => {
  it('pretty-prints like JSON.stringify(v, null, 2) without touching tokens', () => {
    const src = '{"a":[1,{"b":null}],"big":12345678901234567890,"f":1.50,"s":"x, y: [z] \\"q\\"","e":{},"l":[]}';
    expect(prettyJson(src)).toBe(
      '{\n  "a": [\n    1,\n    {\n      "b": null\n    }\n  ],\n  "big": 12345678901234567890,\n  "f": 1.50,\n  "s": "x, y: [z] \\"q\\"",\n  "e": {},\n  "l": []\n}',
    );
    expect(minifyJson(prettyJson(src))).toBe(src);
    expect(minifyJson(' { "a b" : [ 1 , 2 ] } ')).toBe('{"a b":[1,2]}');
  });

  it('2,000 seeded values in any layout pretty-print exactly as JSON.stringify(v, null, 2)', () => {
    const r = seededRandom(1126);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
    const strings = ['', 'a', '"', '\\', '\\"', 'a\\', '{[,:]}', ' , ', 'line\nbreak', '\u0001', 'é✓😀', '\u2028'];
    const value = (depth: number): unknown => {
      const roll = r();
      if (depth > 4 || roll < 0.4)
        return pick<unknown>([0, -1.5, 1e21, true, false, null, ...strings, pick(strings) + pick(strings)]);
      const n = Math.floor(r() * 4);
      if (roll < 0.7) return Array.from({ length: n }, () => value(depth + 1));
      return Object.fromEntries(
        Array.from({ length: n }, () => [pick(strings) + String(Math.floor(r() * 9)), value(depth + 1)]),
      );
    };
    // whitespace JSON allows between tokens, inserted outside strings
    const respace = (compact: string): string => {
      let out = '';
      let inString = false;
      for (let i = 0; i < compact.length; i++) {
        const ch = compact[i]!;
        if (inString) {
          out += ch;
          if (ch === '\\') out += compact[++i];
          else if (ch === '"') inString = false;
          continue;
        }
        if (ch === '"') inString = true;
        out += (r() < 0.3 ? pick([' ', '\n', '\r\n', '\t', '  ']) : '') + ch;
      }
      return out + (r() < 0.3 ? ' \n' : '');
    };
    for (let i = 0; i < 2000; i++) {
      const v = value(0);
      const expected = JSON.stringify(v, null, 2);
      for (const layout of [
        JSON.stringify(v),
        JSON.stringify(v, null, 4),
        JSON.stringify(v, null, '\t'),
        respace(JSON.stringify(v)),
      ]) {
        expect(prettyJson(layout.trim()), `case ${i}: ${layout}`).toBe(expected);
        expect(minifyJson(prettyJson(layout))).toBe(JSON.stringify(v));
      }
    }
  });

  it('detects JSON by content type, or by parse when there is none', () => {
    expect(looksLikeJson('{"a":1}', 'application/vnd.api+json')).toBe(true);
    expect(looksLikeJson('{"a":1}', 'text/plain')).toBe(false);
    expect(looksLikeJson('{"a":1}', undefined)).toBe(true);
    expect(looksLikeJson('42', undefined)).toBe(false);
    expect(looksLikeJson('{bad', 'application/json')).toBe(false);
  });

  it('body encode/decode: JSON final newline kept, invalid JSON with a JSON type stays text', () => {
    expect(encodeBody(Buffer.from('{"a":1}\n'), 'application/json')).toEqual({ body: '{\n  "a": 1\n}\n' });
    expect(decodeBody('{\n  "a": 1\n}\n', undefined, 'application/json').bytes.toString()).toBe('{"a":1}\n');
    expect(encodeBody(Buffer.from('{oops'), 'application/json')).toEqual({ body: '{oops' });
    expect(decodeBody('{oops', undefined, 'application/json')).toEqual({ bytes: Buffer.from('{oops'), kind: 'text' });
  });

  it('storedAsBase64 says what encodeBody does, without formatting the body', () => {
    const cases: Array<[Buffer, string | undefined]> = [
      [Buffer.alloc(0), 'image/png'],
      [Buffer.from('plain text'), 'text/plain'],
      [Buffer.from('{"a":1}'), 'application/json'],
      [Buffer.from('{"a":1}'), 'application/octet-stream'],
      [Buffer.from('<svg/>'), 'image/svg+xml'],
      [Buffer.from([0xff, 0xfe, 0x41]), undefined],
      [Buffer.from('nul\0inside'), 'text/plain'],
    ];
    const seen = new Set<boolean>();
    for (const [bytes, type] of cases) {
      const base64 = encodeBody(bytes, type).body_encoding === 'base64';
      seen.add(base64);
      expect(storedAsBase64(bytes, type), `${bytes.toString('hex')} ${type}`).toBe(base64);
    }
    expect(seen).toEqual(new Set([true, false])); // both answers were checked
  });
});

describe('render helpers', () => {
  it('headersToMap groups repeated names (any case) under the first spelling', () => {
    expect(
      headersToMap([
        ['Set-Cookie', 'a'],
        ['X', '1'],
        ['set-cookie', 'b'],
        ['SET-COOKIE', 'c'],
      ]),
    ).toEqual({ 'Set-Cookie': ['a', 'b', 'c'], X: '1' });
  });
  it('rfc3339 keeps nanoseconds', () => {
    expect(rfc3339(1_719_216_347_736_932_812n)).toBe('2024-06-24T08:05:47.736932812Z');
  });
});
