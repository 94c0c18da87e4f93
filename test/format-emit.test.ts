// renderYaml writes YAML with its own small emitter (src/format/emit.ts). Whatever it writes must
// read back as exactly the value it was given, by the `yaml` library, by js-yaml's core schema (the
// reader's fast path) and inside a multi-document mocks.yaml; and ordinary values must stay plain.

import { CORE_SCHEMA, load as jsYamlLoad, loadAll as jsYamlLoadAll } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { emitYaml } from '../src/format/emit.js';
import { exchangeToMockDoc, exchangeToTestDoc, renderYaml, renderYamlWithLibrary } from '../src/format/render.js';
import type { MockDoc, TestCaseDoc } from '../src/format/types.js';
import { makeExchange, MONO_TO_WALL } from './fixtures-format/make-exchange.js';
import { seededRandom } from './helpers/random.js';

type Rand = () => number;
const int = (r: Rand, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, xs.length)]!;

/** Strings that are special somewhere in YAML (types, indicators, markers, whitespace, escapes). */
const SPECIAL: readonly string[] = [
  '',
  ' ',
  '  ',
  '\t',
  '\n',
  '\r\n',
  'true',
  'True',
  'TRUE',
  'false',
  'FALSE',
  'null',
  'Null',
  'NULL',
  '~',
  'yes',
  'No',
  'on',
  'OFF',
  'y',
  'n',
  '1',
  '-1',
  '+1',
  '0',
  '-0',
  '007',
  '1.5',
  '-1.5',
  '.5',
  '5.',
  '1e3',
  '1E3',
  '-1e-3',
  '1_000',
  '0x1F',
  '0X1f',
  '-0x1F',
  '0o7',
  '0b101',
  '0777',
  '.inf',
  '-.inf',
  '+.Inf',
  '.nan',
  '.NaN',
  'NaN',
  'Infinity',
  '12:30:45',
  '1:20',
  '190:20:30.15',
  '2024-01-01',
  '2024-08-02T06:52:03.451148235Z',
  '<<',
  '=',
  '-',
  '?',
  ':',
  '- a',
  '? a',
  ': a',
  'a: b',
  'a:b',
  'a :b',
  'a:',
  'a #b',
  'a#b',
  '#a',
  '&a',
  '*a',
  '!a',
  '!!str',
  '|',
  '>',
  "'",
  '"',
  '%YAML',
  '@a',
  '`a',
  ',a',
  '[a]',
  '{a: 1}',
  'a]',
  'a}',
  'a,b',
  '---',
  '--- a',
  '...',
  '... a',
  'a\n---\nb',
  'a\n...\nb',
  ' a',
  'a ',
  '\ta',
  'a\t',
  'a\tb',
  'a\\b',
  'a"b',
  "a'b",
  '\u0085',
  'a\u0085b',
  '\u2028',
  '\u2029',
  '\ufeff',
  '\ufeffa',
  '\ufffe',
  '\uffff',
  '\x00',
  '\x07',
  '\x1b[0m',
  '\x7f',
  '\x9f',
  '\u00a0',
  'a\u00a0',
  '😀',
  'ünïcödé ✓',
  '日本語',
  '\ud83d',
  '\ude00',
  'a\ud800b',
  '\r',
  'a\rb',
  'a\n',
  '\na',
  'a\n\nb',
  'a  \nb',
  '  a\nb',
  'http://localhost:3000/a?b=1',
  'application/json',
  'Mon, 22 Apr 2024 15:12:58 GMT',
  '*/*',
  '[REDACTED]',
  'Bearer x',
  '__proto__x',
  'constructor',
];

const POOLS: readonly string[] = [
  'abcxyzABC',
  '0123456789',
  ' ',
  '\t',
  '\n',
  '\r',
  '-?:,[]{}#&*!|>\'"%@`',
  '.',
  '/\\',
  '~=<+_',
  '\x00\x01\x08\x0b\x0c\x1f\x7f',
  '\x80\x85\x9f\u00a0',
  '\u2028\u2029\ufeff\ufffe\uffff',
  'éü✓日',
  '😀👍🏽',
];

function randomString(r: Rand): string {
  const roll = r();
  if (roll < 0.3) return pick(r, SPECIAL);
  if (roll < 0.4) return pick(r, SPECIAL) + pick(r, SPECIAL) + (r() < 0.5 ? pick(r, SPECIAL) : '');
  if (roll < 0.42) return 'x'.repeat(int(r, 3000)) + pick(r, SPECIAL) + 'y'.repeat(int(r, 3000)); // very long lines
  let s = '';
  const n = int(r, 24);
  for (let i = 0; i < n; i++) {
    const pool = pick(r, POOLS);
    // pick whole code points so emoji stay paired (lone surrogates come from SPECIAL)
    s += pick(r, Array.from(pool));
  }
  return s;
}

/** Keys like header names, noise keys (header.Date, body.a.b), url_params, or anything at all. */
function randomKey(r: Rand): string {
  const roll = r();
  if (roll < 0.3)
    return pick(r, [
      'Content-Type',
      'X-Request-Id',
      'header.Date',
      'body.a.b',
      'body.items.[].id',
      'a.b:c',
      'a b',
      'x',
      'y',
      '1',
      'true',
      'status',
    ]);
  if (roll < 0.33) return 'k'.repeat(1000 + int(r, 100)); // past the 1024-character limit of implicit keys
  const s = randomString(r);
  return s === '__proto__' ? '__proto__x' : s;
}

function randomScalar(r: Rand): unknown {
  const roll = r();
  if (roll < 0.6) return randomString(r);
  if (roll < 0.7)
    return pick(r, [
      0,
      -0,
      1,
      -1,
      200,
      1.5,
      -2.25,
      1e21,
      1e-7,
      5e-324,
      Number.MAX_SAFE_INTEGER,
      2 ** 63,
      1724569923,
      Math.PI,
    ]);
  if (roll < 0.8) return r() * 1e6 - 5e5;
  if (roll < 0.9) return r() < 0.5;
  return null;
}

function randomValue(r: Rand, depth: number): unknown {
  const roll = r();
  if (depth <= 0 || roll < 0.5) return randomScalar(r);
  if (roll < 0.75) return randomMap(r, depth - 1, 5);
  return Array.from({ length: int(r, 5) }, () => randomValue(r, depth - 1));
}

function randomMap(r: Rand, depth: number, width: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const n = int(r, width + 1);
  for (let i = 0; i < n; i++) out[randomKey(r)] = randomValue(r, depth);
  return out;
}

function headerMap(r: Rand): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = int(r, 6); i > 0; i--)
    out[randomKey(r)] = r() < 0.2 ? Array.from({ length: int(r, 4) }, () => randomString(r)) : randomString(r);
  return out;
}

/** Bodies: pretty JSON, text with final newlines, blank lines, trailing blanks, CR, controls, big ones. */
function randomBody(r: Rand): string {
  const roll = r();
  if (roll < 0.15) return JSON.stringify(randomMap(r, 2, 4), null, 2) + (r() < 0.5 ? '\n' : '');
  if (roll < 0.2) return 'line\n'.repeat(int(r, 2000)) + (r() < 0.5 ? 'end' : '');
  if (roll < 0.25) return 'QUJD'.repeat(19) + '\n' + 'REVG'.repeat(19) + '\n';
  const lines = Array.from({ length: int(r, 6) }, () => randomString(r));
  return lines.join(pick(r, ['\n', '\r\n', '\n\n', ' \n', '\n '])) + pick(r, ['', '\n', '\n\n', ' ', '\n  ']);
}

function randomDoc(r: Rand): TestCaseDoc | MockDoc {
  const req = {
    method: r() < 0.7 ? pick(r, ['GET', 'POST', 'PUT']) : randomString(r),
    proto_major: 1,
    proto_minor: int(r, 2),
    url: r() < 0.5 ? `http://localhost:3000/${randomString(r).replace(/[^\x21-\x7e]/g, '')}` : randomString(r),
    ...(r() < 0.5
      ? { url_params: Object.fromEntries(Array.from({ length: int(r, 4) }, () => [randomKey(r), randomString(r)])) }
      : {}),
    header: headerMap(r),
    body: randomBody(r),
    ...(r() < 0.2 ? { body_encoding: 'base64' as const, body_content_encoded: r() < 0.5 } : {}),
    timestamp: randomString(r),
  };
  const resp = {
    status_code: int(r, 600),
    header: headerMap(r),
    body: randomBody(r),
    status_message: randomString(r),
    proto_major: 1,
    proto_minor: 1,
    timestamp: '2024-01-01T00:00:01.000000000Z',
  };
  if (r() < 0.5) {
    return {
      version: 'api.keploy.io/v1beta1',
      kind: 'Http',
      name: randomString(r),
      spec: {
        metadata: randomMap(r, 0, 3) as Record<string, string>,
        req,
        resp,
        objects: Array.from({ length: int(r, 3) }, () => randomValue(r, 3)),
        assertions: {
          noise: Object.fromEntries(
            Array.from({ length: int(r, 4) }, () => [
              randomKey(r),
              Array.from({ length: int(r, 3) }, () => randomString(r)),
            ]),
          ),
        },
        created: int(r, 2e9),
      },
      curl: randomBody(r),
    };
  }
  return {
    version: 'api.keploy.io/v1beta1',
    kind: 'Http',
    name: randomString(r),
    spec: {
      metadata: { name: 'Http', operation: randomString(r), type: 'HTTP_CLIENT' },
      req,
      resp,
      objects: [],
      created: r() * 2e9,
      reqTimestampMock: randomString(r),
      resTimestampMock: randomString(r),
    },
    connectionId: randomString(r),
  };
}

/** Every way the project (and Keploy-style tools) read these files. */
function expectReadsBack(text: string, value: unknown): void {
  expect(parse(text)).toEqual(value);
  expect(jsYamlLoad(text, { schema: CORE_SCHEMA, json: false })).toEqual(value);
}

describe('emitter: every document reads back exactly', () => {
  it('3,000 seeded adversarial test and mock documents', () => {
    const r = seededRandom(20240801);
    for (let i = 0; i < 3000; i++) {
      const doc = randomDoc(r);
      const text = renderYaml(doc, '../../.schema/test.schema.json');
      try {
        expect(text.startsWith('# yaml-language-server: $schema=../../.schema/test.schema.json\n')).toBe(true);
        expectReadsBack(text, doc);
      } catch (err) {
        throw new Error(`case ${i}: ${(err as Error).message}\n--- text ---\n${text}`);
      }
    }
  });

  it('documents appended to one mocks.yaml, separated by ---, stay apart and exact', () => {
    const r = seededRandom(7);
    const docs = Array.from({ length: 200 }, () => randomDoc(r));
    const text = docs.map((d) => renderYaml(d)).join('---\n');
    const parsed = parseAllDocuments(text);
    if (!Array.isArray(parsed)) throw new Error('expected documents');
    expect(parsed.map((d) => d.errors)).toEqual(docs.map(() => []));
    expect(parsed.map((d) => d.toJS())).toEqual(docs);
    expect(jsYamlLoadAll(text, null, { schema: CORE_SCHEMA })).toEqual(docs);
  });

  it('arbitrary nested values (lists of lists, maps in lists, empties, long keys) read back', () => {
    const r = seededRandom(99);
    for (let i = 0; i < 3000; i++) {
      const value = r() < 0.8 ? randomMap(r, 4, 6) : randomValue(r, 4);
      const text = emitYaml(value);
      try {
        expectReadsBack(text, value);
      } catch (err) {
        throw new Error(`case ${i}: ${(err as Error).message}\n--- text ---\n${text}`);
      }
    }
  });

  it('a plain scalar is plain only where the yaml library also wrote it plain, and YAML 1.1 reads it as a string', () => {
    const r = seededRandom(3);
    const strings = [...SPECIAL, ...Array.from({ length: 20000 }, () => randomString(r))];
    let plain = 0;
    for (const s of strings) {
      for (const [asKey, value] of [
        [false, { k: s }],
        [true, { [s]: 1 }],
      ] as const) {
        const text = emitYaml(value);
        const isPlain = asKey ? text === `${s}: 1\n` : text === `k: ${s}\n`;
        if (!isPlain) continue;
        plain++;
        expect(stringify(value, { lineWidth: 0 }), JSON.stringify(s)).toBe(text);
        // YAML 1.1 has timestamps, and y/n booleans (left plain, as the library did: url_params
        // named y); those are the only differences allowed
        if (/^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}/.test(s) || /^[yn]$/i.test(s)) continue;
        const back = parse(text, { version: '1.1' }) as Record<string, unknown>;
        expect(asKey ? Object.keys(back)[0] : back.k, JSON.stringify(s)).toBe(s);
      }
    }
    expect(plain).toBeGreaterThan(1000);
  });

  it('values the emitter does not handle go through the library', () => {
    const doc = exchangeToTestDoc(makeExchange(), 1, { monoToWallNs: MONO_TO_WALL });
    const odd = {
      ...doc,
      spec: { ...doc.spec, created: Number.NaN, objects: [Buffer.from('hi')] },
    } as unknown as TestCaseDoc;
    expect(renderYaml(odd)).toBe(renderYamlWithLibrary(odd));
    expect(parse(renderYaml(odd)).spec.created).toBeNaN();
  });
});

describe('emitter: ordinary values stay plain', () => {
  const JSON_CT: [string, string] = ['Content-Type', 'application/json'];
  const ex = makeExchange({
    method: 'POST',
    target: '/a?b=1&y=2',
    reqHeaders: [
      ['Host', 'localhost:3000'],
      JSON_CT,
      ['Accept', '*/*'],
      ['Content-Length', '40'],
      ['Authorization', 'Bearer x'],
    ],
    reqBody: '{"title":"Dune","year":1965}',
    resHeaders: [
      ['Date', 'Mon, 22 Apr 2024 15:12:58 GMT'],
      ['Content-Type', 'application/json; charset=utf-8'],
      ['Set-Cookie', 'a=1'],
      ['set-cookie', 'b=2'],
    ],
    resBody: '{"id":7}\n',
  });
  const testDoc = exchangeToTestDoc(ex, 1, { monoToWallNs: MONO_TO_WALL });
  const mockDoc = exchangeToMockDoc({ ...ex, role: 'outgoing' }, 1, { monoToWallNs: MONO_TO_WALL, redact: false });

  it('typical lines', () => {
    const text = renderYaml(testDoc, 's.json');
    for (const line of [
      'version: api.keploy.io/v1beta1',
      'kind: Http',
      'name: test-1',
      '    method: POST',
      '    url: http://localhost:3000/a?b=1&y=2',
      '      b: "1"',
      '      y: "2"',
      '      Content-Type: application/json',
      '      Accept: "*/*"',
      '      Content-Length: "40"',
      '      Authorization: "[REDACTED]"',
      '    body: |-\n      {\n        "title": "Dune",',
      '    timestamp: 2024-01-01T00:00:01.000000000Z',
      '      Date: Mon, 22 Apr 2024 15:12:58 GMT',
      '      Content-Type: application/json; charset=utf-8',
      '      Set-Cookie:\n        - "[REDACTED]"\n        - "[REDACTED]"',
      '    body: |\n      {\n        "id": 7\n      }\n',
      '    status_code: 200',
      '    status_message: OK',
      '  metadata: {}',
      '  objects: []',
      '      header.Date: []',
      'curl: |\n  curl --request POST \\\n',
    ]) {
      expect(text).toContain(`\n${line}`);
    }
  });

  it('the same text as the yaml library renders, except that YAML 1.1 base-60 look-alikes (1234:7:1) are quoted', () => {
    expect(renderYaml(testDoc, 's.json')).toBe(
      `# yaml-language-server: $schema=s.json\n${renderYamlWithLibrary(testDoc)}`,
    );
    expect(renderYaml(mockDoc)).toBe(
      renderYamlWithLibrary(mockDoc).replace('connectionId: 1234:7:1', 'connectionId: "1234:7:1"'),
    );
  });

  it('quoted where a plain scalar would mean something else', () => {
    const cases: Array<[string, string]> = [
      ['true', '"true"'],
      ['false', '"false"'],
      ['null', '"null"'],
      ['~', '"~"'],
      ['1', '"1"'],
      ['1.5', '"1.5"'],
      ['1e3', '"1e3"'],
      ['0x1F', '"0x1F"'],
      ['0o7', '"0o7"'],
      ['.inf', '".inf"'],
      ['.nan', '".nan"'],
      ['', '""'],
      [' a', '" a"'],
      ['a ', '"a "'],
      ['a: b', '"a: b"'],
      ['a #b', '"a #b"'],
      ['- a', '"- a"'],
      ['#a', '"#a"'],
      ['&a', '"&a"'],
      ['*a', '"*a"'],
      ['!a', '"!a"'],
      ['|', '"|"'],
      ['>', '">"'],
      ["'a", `"'a"`],
      ['%a', '"%a"'],
      ['@a', '"@a"'],
      ['`a', '"`a"'],
      ['[a]', '"[a]"'],
      ['{a}', '"{a}"'],
      ['a\tb', '"a\\tb"'],
      ['---', '"---"'],
      ['...', '"..."'],
      ['a\u0085b', '"a\\u0085b"'],
      ['\u2028', '"\\u2028"'],
      ['\u2029', '"\\u2029"'],
      ['\x7f', '"\\u007f"'],
      ['\ufeff', '"\\ufeff"'],
      ['\x1b', '"\\u001b"'],
      ['é', '"é"'],
      ['a\nb', '"a\\nb"'],
    ];
    for (const [s, want] of cases) {
      expect(emitYaml({ k: s }), JSON.stringify(s)).toBe(`k: ${want}\n`);
      expect(emitYaml({ [s]: 1 }), JSON.stringify(s)).toBe(`${want}: 1\n`);
    }
    expect(emitYaml({ n: [0, -0, 1.5, 1e21, 5e-7, true, null, [], {}] })).toBe(
      'n:\n  - 0\n  - -0.0\n  - 1.5\n  - 1e+21\n  - 5e-7\n  - true\n  - null\n  - []\n  - {}\n',
    );
    expect(emitYaml({ a: [[1, 2], { b: 1, c: [] }] })).toBe('a:\n  - - 1\n    - 2\n  - b: 1\n    c: []\n');
  });
});
