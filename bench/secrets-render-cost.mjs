// What secret references and value-flow detection cost the writer: rendering the same exchanges
// (a 3 KB JSON list, an Authorization header, a query) with and without a RecordingRefs, runs
// interleaved, median of 7. Needs the build (npm run build).
//
//   node bench/secrets-render-cost.mjs

import { exchangeToTestDoc, renderYaml } from '../dist/format/render.js';
import { RecordingRefs } from '../dist/format/variables.js';
import { median } from './lib.mjs';

const N = 3000;
const body = JSON.stringify({
  items: Array.from({ length: 50 }, (_, i) => ({
    id: `item-${i}-a1b2c3d4`,
    name: `Name ${i}`,
    price: i * 1.5,
    tags: ['x', 'y'],
  })),
});
const exchange = (i) => ({
  role: 'incoming',
  tls: false,
  conn: 'c',
  indexOnConn: i,
  tgid: 1,
  localPort: 3000,
  request: {
    method: 'GET',
    target: `/items?page=${i}`,
    httpVersion: '1.1',
    headers: [
      ['Host', 'localhost:3000'],
      ['Authorization', 'Bearer abcdefgh12345678'],
      ['accept', '*/*'],
    ],
    body: Buffer.alloc(0),
    bodyDecoded: true,
    firstByteNs: 1n,
  },
  response: {
    statusCode: 200,
    statusMessage: 'OK',
    httpVersion: '1.1',
    headers: [['content-type', 'application/json']],
    body: Buffer.from(body),
    bodyDecoded: true,
    firstByteNs: 2n,
    informational: [],
  },
});
const exchanges = Array.from({ length: N }, (_, i) => exchange(i));

function run(withRefs) {
  const refs = withRefs ? new RecordingRefs({ redact: true }) : undefined;
  const t = performance.now();
  exchanges.forEach((ex, i) => {
    if (refs) refs.currentFile = `test-${i}.yaml`;
    renderYaml(exchangeToTestDoc(ex, i, refs ? { refs } : {}));
  });
  return performance.now() - t;
}

const plain = [];
const refs = [];
for (let r = 0; r < 7; r++) {
  plain.push(run(false));
  refs.push(run(true));
}
const a = median(plain);
const b = median(refs);
console.log(
  `${N} exchanges: header redaction only ${((a / N) * 1000).toFixed(0)} µs each, with references and flow detection ${((b / N) * 1000).toFixed(0)} µs each: ${(b / a).toFixed(2)}x`,
);
