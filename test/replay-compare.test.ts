import { describe, expect, it } from 'vitest';
import type { BodyValue, NoiseRule } from '../src/format/types.js';
import type { HeaderList } from '../src/model/exchange.js';
import { compareResponse, jsonPath, type ExpectedResponse } from '../src/replay/compare.js';
import { normalizeNoisePath } from '../src/replay/noise-paths.js';

const json = (v: unknown): BodyValue => ({ bytes: Buffer.from(JSON.stringify(v, null, 2)), kind: 'json' });
const text = (s: string): BodyValue => ({ bytes: Buffer.from(s), kind: 'text' });
const exp = (body: BodyValue, headers: HeaderList = [], status = 200): ExpectedResponse => ({ status, headers, body });
const act = (body: string | Buffer, headers: HeaderList = [], status = 200) => ({
  status,
  headers,
  body: typeof body === 'string' ? Buffer.from(body) : body,
});
const bodyNoise = (key: string, patterns: RegExp[] = []): NoiseRule => ({
  target: { type: 'body', path: key === 'body' ? [] : key.replace(/^body\./, '').split('.') },
  patterns,
  key,
});
const headerNoise = (name: string, patterns: RegExp[] = []): NoiseRule => ({
  target: { type: 'header', name: name.toLowerCase() },
  patterns,
  key: `header.${name}`,
});

describe('jsonPath / noise paths', () => {
  it('formats paths', () => {
    expect(jsonPath([])).toBe('$');
    expect(jsonPath(['user', 'id'])).toBe('$.user.id');
    expect(jsonPath(['items', 3, 'name'])).toBe('$.items[3].name');
    expect(jsonPath(['odd key', "it's"])).toBe("$['odd key']['it\\'s']");
  });
  it('normalizes index spellings', () => {
    expect(normalizeNoisePath(['items[]', 'id'])).toEqual(['items', '[]', 'id']);
    expect(normalizeNoisePath(['m[0][]'])).toEqual(['m', '0', '[]']);
    expect(normalizeNoisePath(['a', '[]'])).toEqual(['a', '[]']);
  });
});

describe('compareResponse: status', () => {
  it('fails on a different status and passes with status noise', () => {
    const r = compareResponse('t1', exp(text('x'), [], 200), act('x', [], 404), []);
    expect(r.passed).toBe(false);
    expect(r.failures).toEqual([
      { kind: 'status', expected: '200', actual: '404', message: 't1: status: expected 200, got 404' },
    ]);
    const noise: NoiseRule = { target: { type: 'status' }, patterns: [/^2\d\d$/], key: 'status' };
    expect(compareResponse('t1', exp(text('x'), [], 200), act('x', [], 201), [noise]).passed).toBe(true);
    expect(compareResponse('t1', exp(text('x'), [], 200), act('x', [], 500), [noise]).passed).toBe(false);
  });
});

describe('compareResponse: JSON bodies', () => {
  const expected = {
    user: { id: 42, name: 'Ada', tags: ['a', 'b'] },
    items: [
      { id: 1, at: 't1' },
      { id: 2, at: 't2' },
    ],
    ok: true,
  };

  it('passes on the same structure regardless of formatting and key order', () => {
    const actual =
      '{"ok":true,"items":[{"at":"t1","id":1},{"id":2,"at":"t2"}],"user":{"tags":["a","b"],"name":"Ada","id":42}}';
    const r = compareResponse('t', exp(json(expected)), act(actual), []);
    expect(r).toEqual({ passed: true, failures: [] });
  });

  it('names the JSON path, expected and actual, and gives a diff', () => {
    const changed = structuredClone(expected);
    changed.user.id = 43;
    const r = compareResponse('get-user', exp(json(expected)), act(JSON.stringify(changed)), []);
    expect(r.passed).toBe(false);
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]).toMatchObject({ kind: 'body', path: '$.user.id', expected: '42', actual: '43' });
    expect(r.failures[0]!.message).toBe('get-user: body $.user.id: expected 42, got 43');
    expect(r.diff).toContain('-    "id": 42');
    expect(r.diff).toContain('+    "id": 43');
  });

  it('reports missing, extra, type changes and array length', () => {
    const actual = {
      user: { id: '42', name: 'Ada', tags: ['a'], extra: 1 },
      items: [
        { id: 1, at: 't1' },
        { id: 2, at: 't2' },
      ],
    };
    const r = compareResponse('t', exp(json(expected)), act(JSON.stringify(actual)), []);
    const byPath = Object.fromEntries(r.failures.map((f) => [f.path, f]));
    expect(byPath['$.user.id']!.message).toBe('t: body $.user.id: expected number 42, got string "42"');
    expect(byPath['$.user.tags']!.message).toContain('expected an array of 2 items, got 1');
    expect(byPath['$.user.tags[1]']!.message).toContain('expected "b", but it is missing');
    expect(byPath['$.user.extra']!.message).toBe('t: body $.user.extra: not expected, got 1');
    expect(byPath['$.ok']!.actual).toBe('(absent)');
  });

  it('applies noise: exact path, [] any index, case-insensitive keys, whole subtree', () => {
    const actual = structuredClone(expected);
    actual.items[0]!.at = 'later';
    actual.items[1]!.at = 'later';
    actual.user.id = 7;
    actual.user.tags = ['z', 'y', 'x'];
    const r = compareResponse('t', exp(json(expected)), act(JSON.stringify(actual)), [
      bodyNoise('body.items.[].at'),
      bodyNoise('body.User.ID'),
      bodyNoise('body.user.tags'),
    ]);
    expect(r.failures).toEqual([]);
    expect(r.passed).toBe(true);
    // "items[].at" spelled the Keploy way works too
    const r2 = compareResponse('t', exp(json(expected)), act(JSON.stringify({ ...expected, items: actual.items })), [
      { target: { type: 'body', path: ['items[]', 'at'] }, patterns: [], key: 'body.items[].at' },
    ]);
    expect(r2.passed).toBe(true);
    // a specific index only silences that index
    const r3 = compareResponse('t', exp(json(expected)), act(JSON.stringify({ ...expected, items: actual.items })), [
      bodyNoise('body.items.0.at'),
    ]);
    expect(r3.failures.map((f) => f.path)).toEqual(['$.items[1].at']);
  });

  it('regex noise ignores only when the actual value matches', () => {
    const e = { createdAt: '2024-01-01T00:00:00Z', n: 1 };
    const rule = bodyNoise('body.createdAt', [/^\d{4}-\d\d-\d\dT/]);
    expect(
      compareResponse('t', exp(json(e)), act(JSON.stringify({ createdAt: '2025-06-01T10:00:00Z', n: 1 })), [rule])
        .passed,
    ).toBe(true);
    const r = compareResponse('t', exp(json(e)), act(JSON.stringify({ createdAt: 'yesterday', n: 1 })), [rule]);
    expect(r.failures.map((f) => f.message)).toEqual([
      't: body $.createdAt: expected "2024-01-01T00:00:00Z", got "yesterday"',
    ]);
    // numbers are matched by their JSON text
    expect(compareResponse('t', exp(json({ n: 1 })), act('{"n": 99}'), [bodyNoise('body.n', [/^\d+$/])]).passed).toBe(
      true,
    );
  });

  it('"body" noise ignores the whole body', () => {
    expect(compareResponse('t', exp(json({ a: 1 })), act('<html>'), [bodyNoise('body')]).passed).toBe(true);
  });

  it('fails when the actual body is not JSON', () => {
    const r = compareResponse('t', exp(json({ a: 1 })), act('Internal error'), []);
    expect(r.failures[0]!.message).toBe('t: body: expected JSON, got a body that is not JSON: Internal error');
    expect(r.diff).toContain('+Internal error');
  });

  it('top-level arrays and scalars', () => {
    expect(compareResponse('t', exp(json([1, 2])), act('[1,2]'), []).passed).toBe(true);
    const r = compareResponse('t', exp(json([1, 2])), act('[1,3]'), []);
    expect(r.failures[0]!.path).toBe('$[1]');
    expect(compareResponse('t', exp(json(null)), act('null'), []).passed).toBe(true);
  });
});

describe('compareResponse: text, empty, binary', () => {
  it('compares text exactly with a line diff', () => {
    const e = 'line one\nline two\nline three\n';
    expect(compareResponse('t', exp(text(e)), act(e), []).passed).toBe(true);
    const r = compareResponse('page', exp(text(e)), act('line one\nline 2\nline three\n'), []);
    expect(r.failures[0]).toMatchObject({ path: 'line 2', expected: 'line two', actual: 'line 2' });
    expect(r.failures[0]!.message).toBe('page: body line 2: expected "line two", got "line 2"');
    expect(r.diff).toContain('-line two');
    expect(r.diff).toContain('+line 2');
    // trailing whitespace matters
    expect(compareResponse('t', exp(text('a')), act('a '), []).passed).toBe(false);
  });

  it('huge bodies still fail precisely, without a line diff', () => {
    const big = 'x'.repeat(300 * 1024);
    const r = compareResponse('t', exp(text(big)), act(`${big}y`), []);
    expect(r.passed).toBe(false);
    expect(r.diff).toMatch(/^\(diff omitted/);
  });

  it('empty expected body', () => {
    const empty: BodyValue = { bytes: Buffer.alloc(0), kind: 'empty' };
    expect(compareResponse('t', exp(empty), act(''), []).passed).toBe(true);
    const r = compareResponse('t', exp(empty), act('surprise'), []);
    expect(r.failures[0]!.message).toMatch(/expected an empty body, got 8 bytes/);
  });

  it('binary by bytes: sha256 and length', () => {
    const bytes = Buffer.from([0, 1, 2, 255, 254]);
    const bin: BodyValue = { bytes, kind: 'binary' };
    expect(compareResponse('t', exp(bin), act(Buffer.from(bytes)), []).passed).toBe(true);
    const r = compareResponse('img', exp(bin), act(Buffer.from([0, 1, 3, 255, 254])), []);
    expect(r.failures[0]!.path).toBe('byte 2');
    expect(r.failures[0]!.message).toMatch(
      /^img: binary body differs from byte 2: expected 5 bytes \(sha256 [0-9a-f]{16}\), got 5 bytes/,
    );
  });
});

describe('compareResponse: headers', () => {
  const body = text('x');
  it('compares names case-insensitively; actual-only headers are not failures', () => {
    const r = compareResponse(
      't',
      exp(body, [['Content-Type', 'text/plain']]),
      act('x', [
        ['content-type', 'text/plain'],
        ['x-new', '1'],
      ]),
      [],
    );
    expect(r.passed).toBe(true);
  });

  it('a missing or changed header fails with its name', () => {
    const r = compareResponse(
      't',
      exp(body, [
        ['Content-Type', 'text/plain'],
        ['Cache-Control', 'no-store'],
      ]),
      act('x', [['content-type', 'text/html']]),
      [],
    );
    expect(r.failures.map((f) => f.message)).toEqual([
      't: header content-type: expected "text/plain", got "text/html"',
      't: header cache-control: expected "no-store", but the response has no cache-control header',
    ]);
  });

  it('per-request and framing headers are noise by default', () => {
    const r = compareResponse(
      't',
      exp(body, [
        ['Date', 'Mon, 01 Jan 2024 00:00:00 GMT'],
        ['Content-Length', '1'],
        ['X-Request-Id', 'a'],
        ['Transfer-Encoding', 'chunked'],
      ]),
      act('x', [
        ['date', 'Tue, 02 Jan 2024 00:00:00 GMT'],
        ['x-request-id', 'b'],
      ]),
      [],
    );
    expect(r.passed).toBe(true);
  });

  it('header noise, with and without regex', () => {
    const e = exp(body, [
      ['X-Version', '1.2.3'],
      ['ETag', 'W/"1"'],
    ]);
    const a = act('x', [
      ['x-version', '1.3.0'],
      ['etag', 'W/"2"'],
    ]);
    expect(compareResponse('t', e, a, [headerNoise('X-Version'), headerNoise('ETag')]).passed).toBe(true);
    expect(compareResponse('t', e, a, [headerNoise('X-Version', [/^1\.\d+\.\d+$/]), headerNoise('etag')]).passed).toBe(
      true,
    );
    expect(compareResponse('t', e, a, [headerNoise('X-Version', [/^2\./]), headerNoise('etag')]).passed).toBe(false);
  });

  it('the ETag is not compared when part of the body is noise (it hashes the body)', () => {
    const e = exp(json({ at: 1 }), [['ETag', 'W/"1"']]);
    expect(compareResponse('t', e, act('{"at":2}', [['etag', 'W/"2"']]), [bodyNoise('body.at')]).passed).toBe(true);
    expect(compareResponse('t', e, act('{"at":1}', [['etag', 'W/"2"']]), []).passed).toBe(false);
  });

  it('repeated headers (Set-Cookie) compare as a list', () => {
    const e = exp(body, [
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
    ]);
    expect(
      compareResponse(
        't',
        e,
        act('x', [
          ['set-cookie', 'a=1'],
          ['set-cookie', 'b=2'],
        ]),
        [],
      ).passed,
    ).toBe(true);
    const r = compareResponse('t', e, act('x', [['set-cookie', 'a=1']]), []);
    expect(r.failures[0]!.path).toBe('set-cookie');
  });
});
