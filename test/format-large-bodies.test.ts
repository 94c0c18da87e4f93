// Large bodies are spliced into the YAML as block literals by hand (the library is too slow for
// megabytes while recording). Whatever path a body takes, it must read back exactly.

import { randomBytes } from 'node:crypto';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { exchangeToMockDoc, renderYaml } from '../src/format/render.js';
import { prettyJson, minifyJson } from '../src/format/json.js';
import type { HttpExchange as Exchange } from '../src/model/exchange.js';

function exchange(body: Buffer, contentType: string): Exchange {
  return {
    protocol: 'http1',
    role: 'outgoing',
    tls: true,
    conn: 'c',
    indexOnConn: 0,
    tgid: 1,
    request: {
      method: 'POST',
      target: '/x',
      httpVersion: '1.1',
      headers: [
        ['Host', 'a.test'],
        ['content-type', contentType],
      ],
      body,
      bodyDecoded: true,
      firstByteNs: 1n,
    },
    response: {
      statusCode: 200,
      statusMessage: 'OK',
      httpVersion: '1.1',
      headers: [['content-type', contentType]],
      body,
      bodyDecoded: true,
      firstByteNs: 2n,
      informational: [],
    },
  };
}

const cases: Array<[string, Buffer, string]> = [
  ['2 MiB binary (base64 lines)', randomBytes(2 << 20), 'application/octet-stream'],
  [
    'large JSON with a final newline',
    Buffer.from(JSON.stringify({ a: 'x'.repeat(10000), list: Array.from({ length: 500 }, (_, i) => ({ i })) }) + '\n'),
    'application/json',
  ],
  [
    'large JSON with numbers JSON.stringify would change',
    Buffer.from(`{"id":12345678901234567890,"f":1.50,"e":1E3,"s":"${'y'.repeat(5000)}"}`),
    'application/json',
  ],
  ['large text, final newline', Buffer.from('line one\nline two\n'.repeat(1000)), 'text/plain'],
  ['large text, no final newline', Buffer.from('line\n'.repeat(2000) + 'end'), 'text/plain'],
  [
    'large text with blank lines and trailing blanks (library path)',
    Buffer.from('a  \n\n b\n'.repeat(1000)),
    'text/plain',
  ],
];

describe('large bodies in YAML', () => {
  for (const [name, body, ct] of cases) {
    it(`${name} reads back exactly`, () => {
      const doc = exchangeToMockDoc(exchange(body, ct), 0, {});
      const back = parse(renderYaml(doc, 'schema.json')) as typeof doc;
      expect(back.spec.resp.body).toBe(doc.spec.resp.body);
      expect(back.spec.req.body).toBe(doc.spec.req.body);
      expect(back.spec.resp.body.length).toBeGreaterThan(4096);
    });
  }

  it('prettyJson keeps every token: minified again it is the original text', () => {
    for (const text of [
      '{"id":12345678901234567890,"f":1.50}',
      '[1,{"a":[]},{},"\\u00e9"]',
      JSON.stringify({ a: [1, 2, { b: 'c' }] }),
    ]) {
      expect(minifyJson(prettyJson(text))).toBe(text);
    }
    expect(prettyJson('{"a":[1,2]}')).toBe(JSON.stringify({ a: [1, 2] }, null, 2));
  });
});
