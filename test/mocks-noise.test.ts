// Mock noise (Keploy's `noise: {req: [...], value: [...]}` on a mock document): read from the file,
// honoured by the matcher for request bodies; and Keploy's index-free array paths in test noise.

import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseMockNoise } from '../src/format/noise.js';
import { loadTestSets } from '../src/format/reader.js';
import type { BodyValue, Mock } from '../src/format/types.js';
import { compareResponse } from '../src/replay/compare.js';
import { noisePathMatches } from '../src/replay/noise-paths.js';
import { MockMatcher, matchStages, type IncomingCall } from '../src/replay/mocks/matcher.js';
import { InputFileError } from '../src/errors.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const json = (text: string): BodyValue => ({ bytes: Buffer.from(text), kind: 'json' });

function orderMock(noise?: Mock['noise']): Mock {
  const m: Mock = {
    file: 'mocks.yaml',
    name: 'mock-1',
    index: 0,
    request: {
      method: 'POST',
      scheme: 'https',
      host: 'api.test',
      path: '/orders',
      query: [],
      headers: [],
      body: json('{"item":"pen","qty":1,"nonce":"aaa","at":"2026-01-01T00:00:00Z"}'),
    },
    response: { status: 201, statusMessage: 'Created', headers: [], body: json('{"status":"accepted"}') },
  };
  if (noise) m.noise = noise;
  return m;
}

function post(body: string): IncomingCall {
  return {
    method: 'POST',
    scheme: 'https',
    host: 'api.test',
    path: '/orders',
    query: [],
    headers: [],
    body: Buffer.from(body),
  };
}

describe('mock noise', () => {
  it('parses Keploy shapes: {req, value} and a bare list of value regexes', () => {
    const a = parseMockNoise({ req: ['body.nonce', 'body.items.[].at', 'header.X-Trace'], value: ['^\\*+$'] });
    expect(a.problems).toEqual([]);
    expect(a.noise?.bodyPaths).toEqual([['nonce'], ['items', '[]', 'at']]);
    expect(a.noise?.values.map(String)).toEqual(['/^\\*+$/']);
    expect(parseMockNoise(['x+']).noise?.values).toHaveLength(1);
    expect(parseMockNoise(null).noise).toBeUndefined();
    const bad = parseMockNoise({ req: ['nonce', 'status'], value: ['('] });
    expect(bad.problems.map((p) => p.at)).toEqual([
      ['noise', 'req', 0],
      ['noise', 'req', 1],
      ['noise', 'value', 0],
    ]);
  });

  it('the matcher ignores noise paths in the request body, and only those', () => {
    const live = '{"item":"pen","qty":1,"nonce":"bbb","at":"2026-12-06T10:00:00Z"}';
    expect(matchStages(orderMock(), post(live)).failure?.detail).toBe('at $.nonce (expected "aaa", got "bbb")');
    const noise = parseMockNoise({ req: ['body.nonce', 'body.at'] }).noise;
    expect(matchStages(orderMock(noise), post(live)).failure).toBeUndefined();
    // a stable field that changed still misses, and the miss names it
    const changed = matchStages(orderMock(noise), post('{"item":"pen","qty":2,"nonce":"ccc","at":"x"}'));
    expect(changed.failure).toEqual({ stage: 'body', field: 'body', detail: 'at $.qty (expected 1, got 2)' });
    // a noise field missing on one side is not a difference either
    expect(matchStages(orderMock(noise), post('{"item":"pen","qty":1}')).failure).toBeUndefined();
  });

  it('value regexes skip recorded values they match (redacted secrets)', () => {
    const m = orderMock(parseMockNoise({ value: ['^aaa$'] }).noise);
    expect(
      matchStages(m, post('{"item":"pen","qty":1,"nonce":"zzz","at":"2026-01-01T00:00:00Z"}')).failure,
    ).toBeUndefined();
  });

  it('the matcher lists every call it received with the mock that answered or the closest one', () => {
    const m = orderMock();
    const matcher = new MockMatcher([m]);
    matcher.match(post('{"item":"pen","qty":1,"nonce":"aaa","at":"2026-01-01T00:00:00Z"}'));
    matcher.match(post('{"item":"pen","qty":1,"nonce":"bbb","at":"2026-01-01T00:00:00Z"}'));
    const calls = matcher.receivedCalls();
    expect(calls.map((c) => [c.mock?.name, c.closest?.mock.name, c.closest?.stage])).toEqual([
      ['mock-1', undefined, undefined],
      [undefined, 'mock-1', 'body'],
    ]);
    expect(calls[1]!.body.toString()).toContain('bbb');
  });

  it('mocks.yaml noise is read, and a bad entry is reported at file:line:column', () => {
    const root = mkdtempSync(join(tmpdir(), 'tlsrec-mocknoise-'));
    dirs.push(root);
    mkdirSync(join(root, 's', 'tests'), { recursive: true });
    const doc = (noise: string): string =>
      `version: api.keploy.io/v1beta1\nkind: Http\nname: mock-0\nspec:\n  metadata: {}\n  req:\n    method: POST\n    url: https://api.test/orders\n    header: {}\n    body: '{"a":1}'\n  resp:\n    status_code: 200\n    header: {}\n    body: ""\n${noise}`;
    writeFileSync(join(root, 's', 'mocks.yaml'), doc('noise:\n  req:\n    - body.a\n'));
    const [set] = loadTestSets(root);
    expect(set!.mocks[0]!.noise?.keys).toEqual(['body.a']);
    writeFileSync(join(root, 's', 'mocks.yaml'), doc('noise:\n  req:\n    - a\n'));
    try {
      loadTestSets(root);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(InputFileError);
      expect((err as InputFileError).problems[0]).toMatch(/mocks\.yaml:17:7: mock noise key "a"/);
    }
  });
});

describe("Keploy's index-free array paths", () => {
  it('body.items.seenAt covers every element; [] and indices still work', () => {
    expect(noisePathMatches(['items', 'seenAt'], ['items', 0, 'seenAt'])).toBe(true);
    expect(noisePathMatches(['items', 'seenAt'], ['items', 3, 'seenAt'])).toBe(true);
    expect(noisePathMatches(['items', '[]', 'seenAt'], ['items', 3, 'seenAt'])).toBe(true);
    expect(noisePathMatches(['items', '1', 'seenAt'], ['items', 3, 'seenAt'])).toBe(false);
    expect(noisePathMatches(['items', 'sku'], ['items', 0, 'seenAt'])).toBe(false);
    expect(noisePathMatches(['m', 'x'], ['m', 0, 1, 'x'])).toBe(true);
  });

  it('compareResponse silences $.items[n].seenAt with body.items.seenAt, and nothing else', () => {
    const exp = {
      status: 200,
      headers: [],
      body: json('{"items":[{"sku":"A","seenAt":"t1"},{"sku":"B","seenAt":"t1"}]}'),
    };
    const act = {
      status: 200,
      headers: [],
      body: Buffer.from('{"items":[{"sku":"A","seenAt":"t2"},{"sku":"C","seenAt":"t3"}]}'),
    };
    const rule = {
      target: { type: 'body' as const, path: ['items', 'seenAt'] },
      patterns: [],
      key: 'body.items.seenAt',
    };
    const r = compareResponse('t', exp, act, [rule]);
    expect(r.failures.map((f) => f.path)).toEqual(['$.items[1].sku']);
  });
});
