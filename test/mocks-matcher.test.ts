import { describe, expect, it } from 'vitest';
import type { BodyValue, Mock } from '../src/format/types.js';
import { MockMatcher, jsonDiff, matchStages, splitTarget, type IncomingCall } from '../src/replay/mocks/matcher.js';

function body(text: string, kind: BodyValue['kind'] = text === '' ? 'empty' : 'text'): BodyValue {
  return { bytes: Buffer.from(text), kind };
}

function mock(index: number, req: Partial<Mock['request']>, respBody = `answer ${index}`): Mock {
  return {
    file: 'mocks.yaml',
    name: `mock-${index}`,
    index,
    request: {
      method: 'GET',
      scheme: 'https',
      host: 'api.test',
      path: '/',
      query: [],
      headers: [],
      body: body(''),
      ...req,
    },
    response: { status: 200, statusMessage: 'OK', headers: [['content-type', 'text/plain']], body: body(respBody) },
  };
}

function call(c: Partial<IncomingCall>): IncomingCall {
  return {
    method: 'GET',
    scheme: 'https',
    host: 'api.test',
    path: '/',
    query: [],
    headers: [],
    body: Buffer.alloc(0),
    ...c,
  };
}

describe('matchStages', () => {
  it('passes every stage for the same call, normalizing host case and default port', () => {
    const m = mock(0, {
      path: '/a',
      query: [
        ['x', '1'],
        ['y', '2'],
      ],
    });
    expect(
      matchStages(
        m,
        call({
          host: 'API.test:443',
          path: '/a',
          query: [
            ['y', '2'],
            ['x', '1'],
          ],
        }),
      ),
    ).toEqual({
      passed: ['method', 'host', 'path', 'query', 'body'],
    });
  });

  it('names the first failing stage and what differed', () => {
    const m = mock(0, {
      method: 'POST',
      path: '/orders',
      query: [['a', '1']],
      body: body('{"qty":2,"items":[{"id":"x"}]}', 'json'),
    });
    const base = {
      method: 'POST',
      path: '/orders',
      query: [['a', '1']] as Array<[string, string]>,
      body: Buffer.from('{"items":[{"id":"x"}],"qty":2}'),
    };
    expect(matchStages(m, call(base)).failure).toBeUndefined(); // key order does not matter
    expect(matchStages(m, call({ ...base, method: 'PUT' })).failure).toEqual({
      stage: 'method',
      field: 'method',
      detail: 'expected POST, got PUT',
    });
    expect(matchStages(m, call({ ...base, host: 'api.test:8443' })).failure?.detail).toBe(
      'expected https://api.test, got https://api.test:8443',
    );
    expect(matchStages(m, call({ ...base, scheme: 'http' })).failure?.stage).toBe('host');
    expect(matchStages(m, call({ ...base, path: '/order' })).failure?.detail).toBe('expected /orders, got /order');
    expect(
      matchStages(
        m,
        call({
          ...base,
          query: [
            ['a', '1'],
            ['a', '1'],
          ],
        }),
      ).failure?.detail,
    ).toBe('unexpected a=1');
    expect(matchStages(m, call({ ...base, query: [['a', '2']] })).failure?.detail).toBe('missing a=1, unexpected a=2');
    const r = matchStages(m, call({ ...base, body: Buffer.from('{"qty":3,"items":[{"id":"x"}]}') }));
    expect(r.passed).toEqual(['method', 'host', 'path', 'query']);
    expect(r.failure).toEqual({ stage: 'body', field: 'body', detail: 'at $.qty (expected 2, got 3)' });
    expect(matchStages(m, call({ ...base, body: Buffer.from('{"qty":2,"items":[{"id":"y"}]}') })).failure?.detail).toBe(
      'at $.items[0].id (expected "x", got "y")',
    );
    expect(matchStages(m, call({ ...base, body: Buffer.from('qty=2') })).failure?.detail).toBe(
      'expected JSON, got "qty=2"',
    );
  });

  it('a Keploy mock with a path-only URL and no Host header matches any host and scheme', () => {
    const m = mock(0, { scheme: 'http', host: '', path: '/quote', query: [['sym', 'A']] });
    expect(
      matchStages(m, call({ scheme: 'https', host: '127.0.0.2:8443', path: '/quote', query: [['sym', 'A']] })).failure,
    ).toBeUndefined();
    expect(matchStages(m, call({ host: 'api.test', path: '/other', query: [['sym', 'A']] })).failure?.stage).toBe(
      'path',
    );
    const withHost = mock(1, { scheme: 'http', anyScheme: true, host: '127.0.0.2:8443', path: '/quote' });
    expect(
      matchStages(withHost, call({ scheme: 'https', host: '127.0.0.2:8443', path: '/quote' })).failure,
    ).toBeUndefined();
    expect(
      matchStages(withHost, call({ scheme: 'https', host: '127.0.0.3:8443', path: '/quote' })).failure?.stage,
    ).toBe('host');
  });

  it('compares text and binary bodies exactly', () => {
    const t = mock(0, { method: 'POST', body: body('hello world') });
    expect(matchStages(t, call({ method: 'POST', body: Buffer.from('hello world') })).failure).toBeUndefined();
    expect(matchStages(t, call({ method: 'POST', body: Buffer.from('hello World') })).failure?.detail).toBe(
      'text differs at character 6 (expected "world", got "World")',
    );
    const b = mock(1, { method: 'POST', body: { bytes: Buffer.from([1, 2, 3]), kind: 'binary' } });
    expect(matchStages(b, call({ method: 'POST', body: Buffer.from([1, 2, 4]) })).failure?.detail).toBe(
      'binary body differs (expected 3 bytes, got 3, first difference at byte 2)',
    );
    expect(matchStages(mock(2, {}), call({ body: Buffer.from('x') })).failure?.detail).toBe(
      'expected no body, got 1 bytes',
    );
  });
});

describe('jsonDiff', () => {
  it('reports types, lengths, missing and extra fields', () => {
    expect(jsonDiff({ a: 1 }, { a: '1' })).toEqual({ path: '$.a', detail: 'expected number 1, got string "1"' });
    expect(jsonDiff([1, 2], [1])).toEqual({ path: '$', detail: 'expected 2 items, got 1' });
    expect(jsonDiff({ a: 1 }, {})).toEqual({ path: '$.a', detail: 'expected 1, got nothing' });
    expect(jsonDiff({}, { 'b-c': null })).toEqual({ path: '$["b-c"]', detail: 'unexpected field with null' });
  });
});

describe('MockMatcher', () => {
  it('answers repeated identical calls in recorded order, then repeats the last', () => {
    const mocks = [
      mock(0, { path: '/status' }, 'pending'),
      mock(1, { path: '/other' }),
      mock(2, { path: '/status' }, 'done'),
    ];
    const m = new MockMatcher(mocks);
    const answers = [0, 1, 2].map(() => {
      const o = m.match(call({ path: '/status' }));
      return o.kind === 'hit' ? `${o.mock.name}${o.reused ? ' (reused)' : ''}` : 'miss';
    });
    expect(answers).toEqual(['mock-0', 'mock-2', 'mock-2 (reused)']);
    expect(m.report()).toEqual({
      served: [
        { mock: 'mock-0', method: 'GET', url: 'https://api.test/status' },
        { mock: 'mock-2', method: 'GET', url: 'https://api.test/status' },
        { mock: 'mock-2', method: 'GET', url: 'https://api.test/status', reused: true },
      ],
      misses: [],
      unused: ['mock-1'],
    });
  });

  it('explains a miss with the closest mock and the stage that failed', () => {
    const mocks = [
      mock(0, { method: 'GET', path: '/orders' }),
      mock(3, { method: 'POST', path: '/orders', body: body('{"qty":2}', 'json') }),
      mock(4, { method: 'POST', host: 'other.test', path: '/orders', body: body('{"qty":3}', 'json') }),
    ];
    mocks[1]!.name = 'mock-3';
    const m = new MockMatcher(mocks);
    const o = m.match(call({ method: 'POST', path: '/orders', body: Buffer.from('{"qty":3}') }));
    expect(o.kind).toBe('miss');
    if (o.kind !== 'miss') return;
    expect(o.message).toBe(
      'no mock for POST https://api.test/orders: method, host, path and query matched mock-3, body differed at $.qty (expected 2, got 3)',
    );
    expect(o.miss).toEqual({
      method: 'POST',
      url: 'https://api.test/orders',
      closest: { mock: 'mock-3', field: 'body', detail: 'at $.qty (expected 2, got 3)' },
    });
    const p = m.match(call({ method: 'DELETE', path: '/x' }));
    expect(p.kind === 'miss' && p.message).toBe(
      'no mock for DELETE https://api.test/x: closest is mock-0, method differed (expected GET, got DELETE)',
    );
    expect(new MockMatcher([]).match(call({})).kind).toBe('miss');
    expect(m.report().misses).toHaveLength(2);
  });
});

describe('splitTarget', () => {
  it('splits path and query, including absolute form', () => {
    expect(splitTarget('/a/b?x=1&y=%20&x=2')).toEqual({
      path: '/a/b',
      query: [
        ['x', '1'],
        ['y', ' '],
        ['x', '2'],
      ],
    });
    expect(splitTarget('http://h.test:8080?q')).toEqual({ path: '/', query: [['q', '']] });
  });
});
