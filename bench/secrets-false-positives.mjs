// How often secret redaction and variable detection fire on traffic that holds no credentials:
// every test set in the repo (keploy-tests/, test/fixtures-format/keploy/) and every recorded
// event stream in fixtures/events/ (reconstructed as the writer does). Each reference the
// recording side would write is listed with where it was found, so a person can judge it; the
// totals are printed at the end. Needs the build (npm run build).
//
//   node bench/secrets-false-positives.mjs

import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { RecordingRefs } from '../dist/format/variables.js';
import { exchangeToMockDoc, exchangeToTestDoc } from '../dist/format/render.js';
import { Reconstructor } from '../dist/record/reconstruct.js';
import { readEventFile } from '../dist/record/event-file.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const REF = /\{\{ \.(secret\.)?([A-Za-z0-9_]+) \}\}/g;
const found = [];

function refsOf(text) {
  return [...String(text ?? '').matchAll(REF)].map((m) => (m[1] ? `secret ${m[2]}` : `variable ${m[2]}`));
}

function note(where, before, after) {
  const a = refsOf(after);
  if (a.length === refsOf(before).length) return;
  for (const r of a) found.push({ where, ref: r, before: String(before).replace(/\s+/g, ' ').slice(0, 90) });
}

function headerList(map) {
  return Object.entries(map ?? {}).flatMap(([n, v]) => (Array.isArray(v) ? v : [v]).map((x) => [n, String(x)]));
}

/** A test set in Keploy's layout, fed to one RecordingRefs in file order. */
function keploySet(dir) {
  const refs = new RecordingRefs({
    redact: true,
    rewriteProducer: (p, ref) =>
      found.push({ where: `${relative(root, p.file)} (rewritten)`, ref: `variable ${ref}`, before: p.value }),
  });
  const testsDir = join(dir, 'tests');
  const files = existsSync(testsDir)
    ? readdirSync(testsDir)
        .filter((f) => /\.ya?ml$/.test(f))
        .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
    : [];
  const docs = [];
  for (const f of files)
    for (const d of parseAllDocuments(readFileSync(join(testsDir, f), 'utf8')))
      docs.push({ file: join(testsDir, f), role: 'test', v: d.toJS() });
  if (existsSync(join(dir, 'mocks.yaml')))
    for (const d of parseAllDocuments(readFileSync(join(dir, 'mocks.yaml'), 'utf8')))
      docs.push({ file: join(dir, 'mocks.yaml'), role: 'mock', v: d.toJS() });
  let n = 0;
  for (const { file, role, v } of docs) {
    const req = v?.spec?.req;
    const resp = v?.spec?.resp;
    if (!req || !resp) continue;
    n++;
    const where = `${relative(root, file)} ${v.name ?? ''}`;
    refs.currentFile = file;
    const ct = (h) => headerList(h).find(([k]) => k.toLowerCase() === 'content-type')?.[1];
    headerList(req.header).forEach(([k, x], _i) =>
      note(`${where} req.header.${k}`, x, refs.requestHeaders([[k, x]], role)[0][1]),
    );
    note(`${where} req.url`, req.url, refs.requestUrl(String(req.url ?? ''), role));
    if (typeof req.body === 'string')
      note(`${where} req.body`, req.body, refs.requestBody(req.body, ct(req.header), role));
    headerList(resp.header).forEach(([k, x]) =>
      note(`${where} resp.header.${k}`, x, refs.responseHeaders([[k, x]], role)[0][1]),
    );
    if (typeof resp.body === 'string')
      note(`${where} resp.body`, resp.body, refs.responseBody(resp.body, ct(resp.header), role));
  }
  return n;
}

async function eventRecording(file) {
  const exchanges = [];
  const r = new Reconstructor({ onExchange: (ex) => exchanges.push(ex) });
  for await (const ev of readEventFile(file)) r.push(ev);
  r.finish();
  const refs = new RecordingRefs({
    redact: true,
    rewriteProducer: (p, ref) =>
      found.push({ where: `${relative(root, file)} (rewritten)`, ref: `variable ${ref}`, before: p.value }),
  });
  let t = 0;
  let m = 0;
  for (const ex of exchanges) {
    const plain =
      ex.role === 'incoming'
        ? exchangeToTestDoc(ex, ++t, { redact: false })
        : exchangeToMockDoc(ex, m++, { redact: false });
    refs.currentFile = file;
    const doc = ex.role === 'incoming' ? exchangeToTestDoc(ex, t, { refs }) : exchangeToMockDoc(ex, m - 1, { refs });
    const where = `${relative(root, file)} ${doc.name}`;
    for (const part of ['req', 'resp']) {
      for (const [k, x] of Object.entries(doc.spec[part].header))
        note(`${where} ${part}.header.${k}`, JSON.stringify(plain.spec[part].header[k]), JSON.stringify(x));
      note(`${where} ${part}.body`, plain.spec[part].body, doc.spec[part].body);
    }
    note(`${where} req.url`, plain.spec.req.url, doc.spec.req.url);
  }
  return exchanges.length;
}

const sets = [];
for (const base of ['keploy-tests', 'test/fixtures-format/keploy']) {
  const dir = join(root, base);
  if (!existsSync(dir)) continue;
  for (const e of readdirSync(dir)) if (statSync(join(dir, e)).isDirectory()) sets.push(join(dir, e));
}
let documents = 0;
for (const s of sets) documents += keploySet(s);
let exchanges = 0;
const eventFiles = readdirSync(join(root, 'fixtures', 'events')).filter((f) => f.endsWith('.jsonl'));
for (const f of eventFiles) exchanges += await eventRecording(join(root, 'fixtures', 'events', f));

for (const f of found) console.log(`${f.ref.padEnd(28)} ${f.where}: ${JSON.stringify(f.before)}`);
const secrets = found.filter((f) => f.ref.startsWith('secret')).length;
const variables = found.filter((f) => f.ref.startsWith('variable')).length;
console.log(
  `\n${sets.length} Keploy test sets (${documents} tests and mocks), ${eventFiles.length} event recordings (${exchanges} exchanges)`,
);
console.log(
  `secret references written: ${secrets}; variable references written: ${variables} (each listed above with where it was found)`,
);
