#!/usr/bin/env node
// False positives of record-time volatile flagging (src/format/volatile.ts): runs the detector over
// every recorded answer in the repository and prints, per file, each field it would flag as noise
// with its kind and value, so a person can count the wrong ones. Sources:
//   - every test set: <dir>/test-set-*/tests/*.yaml (responses of tests) and mocks.yaml (responses
//     of upstreams), anywhere in the repository (keploy-tests/, test/fixtures-format/…)
//   - the real eBPF recordings in fixtures/events/*.jsonl, rebuilt into exchanges; their kernel
//     clock is put on the wall clock through the first response's Date header.
// The window is each exchange's own time (req/resp timestamps) ± a day, as when recording.
//
//   npm run build && node bench/volatile-false-positives.mjs [--root .]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { findVolatileFields, windowAround } from '../dist/format/volatile.js';
import { Reconstructor } from '../dist/record/reconstruct.js';
import { parseEventLine } from '../dist/record/event-file.js';

const rootArg = process.argv.indexOf('--root');
const ROOT = rootArg > 0 ? process.argv[rootArg + 1] : new URL('..', import.meta.url).pathname;

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === '.git' || name === 'dist') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* walk(p);
    else yield p;
  }
}

/** Keploy's flat header map -> [name, value] pairs. */
function headerList(map) {
  const out = [];
  for (const [k, v] of Object.entries(map ?? {})) for (const x of Array.isArray(v) ? v : [v]) out.push([k, String(x)]);
  return out;
}

function countScalars(v) {
  if (Array.isArray(v)) return v.reduce((n, x) => n + countScalars(x), 0);
  if (v && typeof v === 'object') return Object.values(v).reduce((n, x) => n + countScalars(x), 0);
  return 1;
}

function jsonScalars(body) {
  try {
    return countScalars(JSON.parse(body));
  } catch {
    return 0;
  }
}

const results = []; // { file, answers, values, flagged: [{ where, key, kind, value }] }

function valueAt(body, headers, key) {
  if (key.startsWith('header.')) return headers.find(([n]) => n.toLowerCase() === key.slice(7).toLowerCase())?.[1];
  const path = key.split('.').slice(1);
  const seen = [];
  const visit = (v, i) => {
    if (Array.isArray(v)) return v.forEach((x) => visit(x, i));
    if (i === path.length) return seen.push(v);
    if (v && typeof v === 'object' && path[i] in v) visit(v[path[i]], i + 1);
  };
  try {
    visit(JSON.parse(body), 0);
  } catch {}
  return seen.map((x) => JSON.stringify(x)).join(', ');
}

function check(file, where, { url, reqBody, headers, body, contentType, startMs, endMs }) {
  const fields = findVolatileFields({
    request: { url, body: Buffer.from(reqBody ?? '') },
    response: { headers, body: Buffer.from(body ?? ''), contentType },
    window: windowAround(startMs, endMs),
    // Date is noise by default already: the writer never flags it again.
    skipHeaders: ['Date'],
  });
  let r = results.find((x) => x.file === file);
  if (!r) results.push((r = { file, answers: 0, values: 0, flagged: [] }));
  r.answers++;
  r.values += headers.length + jsonScalars(body ?? '');
  for (const f of fields)
    r.flagged.push({ where, key: f.key, kind: f.kind, value: valueAt(body ?? '', headers, f.key) });
}

// ---- YAML test sets ----
for (const file of walk(ROOT)) {
  const rel = relative(ROOT, file);
  const isTest = /(^|\/)tests\/[^/]+\.ya?ml$/.test(rel);
  const isMocks = /(^|\/)mocks\.ya?ml$/.test(rel);
  if (!isTest && !isMocks) continue;
  let docs;
  try {
    docs = parseAllDocuments(readFileSync(file, 'utf8'));
  } catch {
    continue;
  }
  for (const d of Array.isArray(docs) ? docs : [docs]) {
    if (d.errors?.length) continue;
    const doc = d.toJS();
    const spec = doc?.spec;
    if (!spec?.req || !spec?.resp) continue;
    const t = (s) => (s ? Date.parse(String(s)) : NaN);
    const startMs = t(spec.req.timestamp) || (spec.created ?? 0) * 1000;
    const endMs = t(spec.resp.timestamp) || startMs;
    if (!startMs) continue;
    const headers = headerList(spec.resp.header);
    const body = spec.resp.body_encoding === 'base64' ? '' : String(spec.resp.body ?? '');
    check(rel, doc.name ?? '?', {
      url: String(spec.req.url ?? ''),
      reqBody: String(spec.req.body ?? ''),
      headers,
      body,
      contentType: headers.find(([n]) => n.toLowerCase() === 'content-type')?.[1],
      startMs,
      endMs,
    });
  }
}

// ---- real eBPF recordings ----
const eventsDir = join(ROOT, 'fixtures', 'events');
for (const name of readdirSync(eventsDir).filter((n) => n.startsWith('real-') && n.endsWith('.jsonl'))) {
  const exchanges = [];
  const r = new Reconstructor({ onExchange: (e) => exchanges.push(e) });
  readFileSync(join(eventsDir, name), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .forEach((l, i) => r.push(parseEventLine(l, i + 1, name)));
  r.finish();
  const dated = exchanges.find((e) => e.response.headers.some(([n]) => n.toLowerCase() === 'date'));
  if (!dated) continue;
  const dateMs = Date.parse(dated.response.headers.find(([n]) => n.toLowerCase() === 'date')[1]);
  const offsetMs = dateMs - Number(dated.response.firstByteNs / 1_000_000n);
  for (const e of exchanges) {
    check(`fixtures/events/${name}`, `${e.role} ${e.request.method} ${e.request.target}`, {
      url: e.request.target,
      reqBody: e.request.body.toString('utf8'),
      headers: e.response.headers,
      body: e.response.bodyDecoded ? e.response.body.toString('utf8') : '',
      contentType: e.response.headers.find(([n]) => n.toLowerCase() === 'content-type')?.[1],
      startMs: Number(e.request.firstByteNs / 1_000_000n) + offsetMs,
      endMs: Number(e.response.firstByteNs / 1_000_000n) + offsetMs,
    });
  }
}

let answers = 0,
  values = 0,
  flagged = 0;
for (const r of results) {
  answers += r.answers;
  values += r.values;
  flagged += r.flagged.length;
  console.log(`${r.file}: ${r.answers} answer(s), ${r.values} header/JSON values, ${r.flagged.length} flagged`);
  for (const f of r.flagged) console.log(`    ${f.where}: ${f.key} (${f.kind}) = ${f.value}`);
}
console.log(
  `\ntotal: ${results.length} file(s), ${answers} recorded answers, ${values} header/JSON values looked at, ${flagged} flagged`,
);
console.log('Each flagged line above is a candidate false positive: a value that would NOT change on the next run.');
