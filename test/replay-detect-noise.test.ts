// The pure parts of --detect-noise and --update: what differs between two runs, how it is spelled
// as Keploy noise, which mock a call belongs to, and what an update writes (secrets stay redacted).

import { describe, expect, it } from 'vitest';
import { parseMockNoise } from '../src/format/noise.js';
import type { BodyValue, Mock, NoiseRule, TestCase } from '../src/format/types.js';
import type { ActualResponse } from '../src/replay/compare.js';
import { differingPaths, keployBodyKey, mockNoiseBetween, testNoiseBetween } from '../src/replay/detect-noise.js';
import type { ReceivedCall } from '../src/replay/mock-session.js';
import { plannedUpdate } from '../src/replay/update.js';
import type { TestReport } from '../src/replay/report/index.js';

const json = (v: unknown): BodyValue => ({ bytes: Buffer.from(JSON.stringify(v)), kind: 'json' });
const resp = (body: unknown, headers: Array<[string, string]> = []): ActualResponse => ({
  status: 200,
  headers,
  body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
});

function testCase(body: unknown, headers: Array<[string, string]>): TestCase {
  return {
    file: 't.yaml',
    name: 'test-1',
    request: { method: 'GET', url: 'http://localhost/x', headers: [], body: { bytes: Buffer.alloc(0), kind: 'empty' } },
    expected: { status: 200, headers, body: json(body) },
    noise: [],
  };
}

describe('differingPaths / keployBodyKey', () => {
  it('finds the leaves that differ, arrays by index, and a changed array length as the array', () => {
    const a = {
      id: 'a',
      user: { plan: 'pro' },
      items: [
        { sku: 'A', at: 1 },
        { sku: 'B', at: 1 },
      ],
      tags: [1],
    };
    const b = {
      id: 'b',
      user: { plan: 'pro' },
      items: [
        { sku: 'A', at: 2 },
        { sku: 'B', at: 3 },
      ],
      tags: [1, 2],
    };
    expect(differingPaths(a, b)).toEqual([['id'], ['items', 0, 'at'], ['items', 1, 'at'], ['tags']]);
    expect(differingPaths({ a: 1 }, { b: 1 })).toEqual([['a'], ['b']]);
    expect(differingPaths(1, 2)).toEqual([[]]);
  });

  it('spells paths as Keploy does, without indices; names it cannot spell are refused', () => {
    expect(keployBodyKey(['items', 3, 'seenAt'])).toBe('body.items.seenAt');
    expect(keployBodyKey([])).toBe('body');
    expect(keployBodyKey(['a.b'])).toBeUndefined();
  });
});

describe('testNoiseBetween', () => {
  const recorded = { id: 'r', plan: 'pro', items: [{ seenAt: 't0' }] };
  const headers: Array<[string, string]> = [
    ['content-type', 'application/json'],
    ['ETag', 'W/"r"'],
    ['x-request-id', 'r'],
    ['Date', 'd'],
  ];

  it('fields that differ between runs are noise; equal ones are not, even when they differ from the recording', () => {
    const a = resp({ id: 'a', plan: 'enterprise', items: [{ seenAt: 't1' }] }, [
      ['content-type', 'application/json'],
      ['etag', 'W/"a"'],
      ['x-request-id', 'a'],
      ['date', 'x'],
    ]);
    const b = resp({ id: 'b', plan: 'enterprise', items: [{ seenAt: 't2' }] }, [
      ['content-type', 'application/json'],
      ['etag', 'W/"b"'],
      ['x-request-id', 'b'],
      ['date', 'y'],
    ]);
    const notes: string[] = [];
    // ETag in the recorded spelling; x-request-id and Date are default noise and not repeated
    expect(testNoiseBetween(testCase(recorded, headers), [], a, b, notes)).toEqual([
      'header.ETag',
      'body.id',
      'body.items.seenAt',
    ]);
    expect(notes).toEqual([]);
  });

  it('what existing noise covers is not added again', () => {
    const rules: NoiseRule[] = [
      { target: { type: 'body', path: ['items', '[]', 'seenAt'] }, patterns: [], key: 'body.items.[].seenAt' },
      { target: { type: 'header', name: 'etag' }, patterns: [], key: 'header.etag' },
    ];
    const a = resp({ id: 'a', items: [{ seenAt: 't1' }] }, [['etag', '1']]);
    const b = resp({ id: 'b', items: [{ seenAt: 't2' }] }, [['etag', '2']]);
    expect(testNoiseBetween(testCase(recorded, headers), rules, a, b, [])).toEqual(['body.id']);
  });

  it('a status that differs between runs is a flaky answer: nothing is learnt from it', () => {
    const notes: string[] = [];
    const a = resp({ id: 'a' });
    const b = { ...resp({ error: 'boom' }), status: 500 };
    expect(testNoiseBetween(testCase(recorded, headers), [], a, b, notes)).toEqual([]);
    expect(notes[0]).toMatch(/status differs between the two runs \(200, 500\)/);
  });

  it('a field recorded as a reference ({{ .token }}) is not made noise: replay captures it and requires it', () => {
    const withRef = testCase({ id: 'r', token: '{{ .token }}', auth: { bearer: 'Bearer {{ .token }}' } }, [
      ['content-type', 'application/json'],
      ['x-session', '{{ .session }}'],
    ]);
    const a = resp({ id: 'a', token: 't1', auth: { bearer: 'Bearer t1' } }, [['x-session', 's1']]);
    const b = resp({ id: 'b', token: 't2', auth: { bearer: 'Bearer t2' } }, [['x-session', 's2']]);
    expect(testNoiseBetween(withRef, [], a, b, [])).toEqual(['body.id']);
  });

  it('a text body that differs is not made noise; a note says so', () => {
    const notes: string[] = [];
    expect(testNoiseBetween(testCase(recorded, []), [], resp('one'), resp('two'), notes)).toEqual([]);
    expect(notes[0]).toMatch(/not JSON/);
  });
});

describe('mockNoiseBetween', () => {
  const mock: Mock = {
    file: 'mocks.yaml',
    name: 'mock-0',
    index: 0,
    request: {
      method: 'POST',
      scheme: 'https',
      host: 'api.test',
      path: '/orders',
      query: [],
      headers: [],
      body: json({ item: 'pen', nonce: 'r' }),
    },
    response: { status: 201, statusMessage: 'Created', headers: [], body: json({}) },
  };
  const call = (body: unknown, m: Partial<ReceivedCall>): ReceivedCall => ({
    method: 'POST',
    url: 'https://api.test/orders',
    body: Buffer.from(JSON.stringify(body)),
    ...m,
  });

  it('gives the volatile fields of a call to the mock it matches once they are ignored', () => {
    const a = [call({ item: 'pen', nonce: 'x', at: 1 }, { closest: { mock, stage: 'body' } })];
    const b = [call({ item: 'pen', nonce: 'y', at: 2 }, { closest: { mock, stage: 'body' } })];
    expect([...mockNoiseBetween(a, b, [mock])]).toEqual([[mock, ['body.nonce', 'body.at']]]);
  });

  it('many similar mocks: each call goes to its own mock, not to the one the miss named closest', () => {
    const mocks = [0, 1, 2].map(
      (i): Mock => ({
        ...mock,
        name: `mock-${i}`,
        index: i,
        request: { ...mock.request, body: json({ item: `item-${i}`, nonce: `r${i}` }) },
      }),
    );
    // every miss names mock-0 closest (ties go to the first unused mock)
    const runA = [0, 1, 2].map((i) =>
      call({ item: `item-${i}`, nonce: `a${i}` }, { closest: { mock: mocks[0]!, stage: 'body' } }),
    );
    const runB = [0, 1, 2].map((i) =>
      call({ item: `item-${i}`, nonce: `b${i}` }, { closest: { mock: mocks[0]!, stage: 'body' } }),
    );
    const found = mockNoiseBetween(runA, runB, mocks);
    expect([...found.keys()].map((m) => m.name)).toEqual(['mock-0', 'mock-1', 'mock-2']);
    expect([...found.values()]).toEqual([['body.nonce'], ['body.nonce'], ['body.nonce']]);
  });

  it('a real change besides the nonce: the nonce still goes to the closest mock, the change stays a miss', () => {
    const a = [call({ item: 'cup', nonce: 'x' }, { closest: { mock, stage: 'body' } })];
    const b = [call({ item: 'cup', nonce: 'y' }, { closest: { mock, stage: 'body' } })];
    expect([...mockNoiseBetween(a, b, [mock])]).toEqual([[mock, ['body.nonce']]]);
  });

  it('a field the mock holds as a reference is not made noise; the other varying fields are', () => {
    const byRef: Mock = {
      ...mock,
      request: { ...mock.request, body: json({ item: 'pen', nonce: 'r', session: '{{ .token }}' }) },
    };
    const a = [call({ item: 'pen', nonce: 'x', session: 't1' }, { closest: { mock: byRef, stage: 'body' } })];
    const b = [call({ item: 'pen', nonce: 'y', session: 't2' }, { closest: { mock: byRef, stage: 'body' } })];
    expect([...mockNoiseBetween(a, b, [byRef])]).toEqual([[byRef, ['body.nonce']]]);
  });

  it('ignores misses at other stages, equal bodies and paths the mock already ignores', () => {
    const pathMiss = [call({ nonce: 'x' }, { closest: { mock, stage: 'path' } })];
    expect(
      mockNoiseBetween(
        pathMiss,
        [call({ nonce: 'y' }, { closest: { mock, stage: 'path' } })],
        [{ ...mock, request: { ...mock.request, path: '/other' } }],
      ).size,
    ).toBe(0);
    const same = [call({ item: 'pen', nonce: 'x' }, { closest: { mock, stage: 'body' } })];
    expect(mockNoiseBetween(same, same, [mock]).size).toBe(0);
    const noisy: Mock = { ...mock, noise: parseMockNoise({ req: ['body.nonce'] }).noise! };
    const a = [call({ item: 'pen', nonce: 'x' }, { mock: noisy })];
    const b = [call({ item: 'pen', nonce: 'y' }, { mock: noisy })];
    expect(mockNoiseBetween(a, b, [noisy]).size).toBe(0);
  });
});

describe('plannedUpdate', () => {
  const report = (failures: TestReport['failures']): TestReport => ({
    name: 't',
    file: 't.yaml',
    method: 'GET',
    url: '/',
    passed: false,
    durationMs: 1,
    failures,
    mockMisses: [],
  });

  it('changes only what failed: status, the differing headers, the body', () => {
    const r = report([
      { kind: 'status', expected: '200', actual: '201', message: '' },
      { kind: 'header', path: 'x-version', expected: '1', actual: '2', message: '' },
      { kind: 'header', path: 'x-gone', expected: '1', actual: '(missing)', message: '' },
      { kind: 'body', path: '$.plan', expected: '"pro"', actual: '"enterprise"', message: '' },
    ]);
    const plan = plannedUpdate(
      r,
      {
        status: 201,
        headers: [
          ['content-type', 'application/json'],
          ['x-version', '2'],
        ],
        body: Buffer.from('{"plan":"enterprise"}'),
      },
      [],
    );
    expect(plan.change.status).toBe(201);
    expect(plan.change.setHeaders).toEqual([['x-version', '2']]);
    expect(plan.change.removeHeaders).toEqual(['x-gone']);
    expect(plan.change.body?.contentType).toBe('application/json');
    expect(plan.detail).toEqual(['status 200 -> 201', 'headers x-version, x-gone', 'body $.plan']);
    expect(plan.noise).toEqual([]);
  });

  it('a secret header is written redacted, with noise, never its real value', () => {
    const r = report([{ kind: 'header', path: 'x-api-token', expected: 'old', actual: 'new', message: '' }]);
    const plan = plannedUpdate(
      r,
      { status: 200, headers: [['x-api-token', 'real-secret']], body: Buffer.alloc(0) },
      [],
    );
    expect(plan.change.setHeaders).toEqual([['x-api-token', '[REDACTED]']]);
    expect(plan.noise).toEqual(['header.x-api-token']);
    expect(JSON.stringify(plan)).not.toContain('real-secret');
    const custom = plannedUpdate(
      report([{ kind: 'header', path: 'x-internal', expected: 'a', actual: 'b', message: '' }]),
      { status: 200, headers: [['x-internal', 'b']], body: Buffer.alloc(0) },
      ['X-Internal'],
    );
    expect(custom.change.setHeaders).toEqual([['x-internal', '[REDACTED]']]);
    // redacted in the file (recorded with --redact) stays redacted even when no setting names it now
    const inFile = plannedUpdate(
      report([{ kind: 'header', path: 'x-session', expected: '[REDACTED]', actual: 'abc', message: '' }]),
      { status: 200, headers: [['x-session', 'abc']], body: Buffer.alloc(0) },
      [],
      [['X-Session', '[REDACTED]']],
    );
    expect(inFile.change.setHeaders).toEqual([['x-session', '[REDACTED]']]);
  });
});
