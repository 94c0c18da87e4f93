// Test-set files (tests/*.yaml, mocks.yaml) -> normalized model (types.ts); tlsrec.yaml is read by
// config-reader.ts. Every file is parsed and validated before anything is
// returned; all problems from all files are collected and thrown as one InputFileError whose
// `problems` read `file:line:column: what was found, what was expected`.

import * as fs from 'node:fs';
import { STATUS_CODES } from 'node:http';
import * as path from 'node:path';
import type { Document, LineCounter } from 'yaml';
import type { HeaderList } from '../model/exchange.js';
import { decodeBody, isValidBase64 } from './stored-body.js';
import { firstHeader } from '../model/headers.js';
import { mergeNoise, parseMockNoise } from './noise.js';
import { Collector, noiseRules, readText, throwIfProblems } from './problem-collector.js';
import type { DocRead, DocReader, DocReaders, LoadedDoc } from './protocol-docs.js';
import { mockSchema, testSchema } from './schemas.js';
import type { BodyValue, Config, HeaderMapDoc, Mock, NoiseRule, TestCase, TestSet } from './types.js';
import {
  dottedPath,
  isSchemaValid,
  parseFastOrUndefined,
  parseYaml,
  positionOf,
  schemaProblems,
  type ParsedFile,
  type YamlPath,
} from './validate.js';

/** Keploy kinds that tlsrec cannot serve: skipped with a warning instead of failing the set. */
const OTHER_KEPLOY_KINDS = new Set([
  'Generic',
  'Postgres',
  'PostgresV2',
  'Mongo',
  'Redis',
  'MySQL',
  'DNS',
  'gRPC',
  'GRPC',
  'Kafka',
  'HTTP2',
  'SQL',
]);

// One collator for every comparison: localeCompare with options builds a new one per call (slow).
const naturalCompare = new Intl.Collator('en', { numeric: true }).compare;

// ---- plain-value helpers (values already passed the schema) ----

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function headerList(map: unknown): HeaderList {
  const out: HeaderList = [];
  for (const [name, value] of Object.entries(obj(map) as HeaderMapDoc)) {
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) out.push([name, String(v)]);
  }
  return out;
}

function bodyOf(msg: Obj, headers: HeaderList, where: YamlPath, report: (p: YamlPath, m: string) => void): BodyValue {
  const text = str(msg.body) ?? '';
  const enc = msg.body_encoding === 'base64' ? 'base64' : undefined;
  if (enc && !isValidBase64(text)) {
    report(
      [...where, 'body'],
      `${dottedPath([...where, 'body'])}: expected base64 (body_encoding is base64), found other characters`,
    );
  }
  const body = decodeBody(text, enc, firstHeader(headers, 'content-type'));
  return msg.body_content_encoded === true ? { ...body, contentEncoded: true } : body;
}

function checkUrl(url: string, where: YamlPath, report: (p: YamlPath, m: string) => void): void {
  if (!/^https?:\/\/[^/?#\s]+/i.test(url) && !url.startsWith('/')) {
    report(
      [...where, 'url'],
      `${dottedPath([...where, 'url'])}: expected an absolute http(s) URL or a path starting with "/", found ${JSON.stringify(url)}`,
    );
  }
}

// ---- test sets ----

export interface LoadOptions {
  /** Names of the test sets to load (default: all). Unknown names are reported as problems. */
  only?: string[];
  /** Its noise applies to every test. Default: no config noise (the caller loads tlsrec.yaml). */
  config?: Config;
  /** Readers of other protocols' kinds (from the protocol registry). Default: HTTP documents only. */
  readers?: DocReaders;
}

const NO_READERS: DocReaders = { mocks: new Map(), tests: new Map() };

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Test set directories under root: those with a tests/ directory or a mocks.yaml. */
export function listTestSets(rootDir: string): string[] {
  return fs
    .readdirSync(rootDir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.') && e.name !== 'reports')
    .filter(
      (e) => isDir(path.join(rootDir, e.name, 'tests')) || fs.existsSync(path.join(rootDir, e.name, 'mocks.yaml')),
    )
    .map((e) => e.name)
    .sort(naturalCompare);
}

export function loadTestSets(rootDir: string, opts: LoadOptions = {}): TestSet[] {
  const c = new Collector();
  if (!isDir(rootDir)) {
    c.whole(rootDir, 'test directory not found; expected <dir>/<test-set>/tests/test-1.yaml (record some tests first)');
    throwIfProblems(c, `cannot load tests from ${rootDir}`, 'read tests');
  }
  const available = listTestSets(rootDir);
  let names = available;
  if (opts.only && opts.only.length > 0) {
    names = [];
    for (const want of opts.only) {
      if (available.includes(want)) {
        if (!names.includes(want)) names.push(want);
      } else {
        c.whole(rootDir, `unknown test set "${want}", expected one of: ${available.join(', ') || '(none)'}`);
      }
    }
  }
  const configNoise = opts.config?.noise ?? [];
  const readers = opts.readers ?? NO_READERS;
  const sets = names.map((name) => loadOneSet(rootDir, name, configNoise, readers, c));
  throwIfProblems(c, `invalid test files in ${rootDir}`, 'read tests');
  return sets;
}

function loadOneSet(
  rootDir: string,
  name: string,
  configNoise: NoiseRule[],
  readers: DocReaders,
  c: Collector,
): TestSet {
  const dir = path.join(rootDir, name);
  const testsDir = path.join(dir, 'tests');
  const warnings: string[] = [];
  const files = isDir(testsDir)
    ? fs
        .readdirSync(testsDir)
        .filter((f) => /\.ya?ml$/i.test(f) && !f.startsWith('.'))
        .sort(naturalCompare)
    : [];
  const tests: TestCase[] = [];
  const protocolTests: LoadedDoc[] = [];
  files.forEach((f, index) => {
    const t = loadTestFile(path.join(testsDir, f), index, configNoise, readers.tests, c);
    if (t && 'protocol' in t) protocolTests.push(t);
    else if (t) tests.push(t);
  });
  const mocksFile = path.join(dir, 'mocks.yaml');
  const protocolMocks: LoadedDoc[] = [];
  const mocks = fs.existsSync(mocksFile) ? loadMocksFile(mocksFile, c, warnings, readers.mocks, protocolMocks) : [];
  const set: TestSet = { name, dir, tests, mocks, noise: configNoise };
  if (protocolTests.length > 0) set.protocolTests = protocolTests;
  if (protocolMocks.length > 0) set.protocolMocks = protocolMocks;
  if (warnings.length > 0) set.warnings = warnings;
  return set;
}

/** A document of a kind another protocol reads, through that protocol's reader, into its envelope. */
function readProtocolDoc(
  reader: DocReader,
  value: Obj,
  where: { file: string; line: number; index: number; fallbackName: string },
  report: (p: YamlPath, m: string, atKey?: boolean) => void,
): LoadedDoc | undefined {
  const { file, line, index } = where;
  let read: DocRead<unknown>;
  try {
    read = reader.read(value, { file, line, index });
  } catch (err) {
    report([], `the ${reader.protocol} reader failed on this document: ${(err as Error).message}`);
    return undefined;
  }
  if ('problems' in read) {
    for (const p of read.problems) report(p.path, p.message, p.atKey);
    if (read.problems.length === 0)
      report([], `the ${reader.protocol} reader rejected this document without saying why`);
    return undefined;
  }
  return {
    protocol: reader.protocol,
    kind: String(value.kind),
    file,
    line,
    name: str(value.name) ?? where.fallbackName,
    index,
    value: read.value,
  };
}

function loadTestFile(
  file: string,
  index: number,
  configNoise: NoiseRule[],
  readers: ReadonlyMap<string, DocReader>,
  c: Collector,
): TestCase | LoadedDoc | undefined {
  const text = readText(file, c);
  if (text === undefined) return undefined;
  // Fast path for the common case, a valid file; positions are worked out only if a check fails.
  const fast = parseFastOrUndefined(text);
  const fastKind = obj(fast).kind;
  if (typeof fastKind === 'string' && readers.has(fastKind))
    return loadProtocolTestFile(file, text, index, readers.get(fastKind)!, c);
  if (fast !== undefined && isSchemaValid(testSchema, fast)) {
    let slow: ParsedFile | undefined;
    const located = (): { doc: Document.Parsed; lc: LineCounter } => {
      slow ??= parseYaml(file, text);
      return { doc: slow.docs[0]!, lc: slow.lineCounter };
    };
    return buildTestCase(file, fast, firstContentLine(text), configNoise, c, (p, m, atKey = false) => {
      const { doc, lc } = located();
      c.at(file, doc, lc, p, m, atKey);
    });
  }
  const parsed = parseYaml(file, text);
  parsed.problems.forEach((p) => c.add(p));
  if (parsed.problems.length > 0) return undefined;
  const doc = parsed.docs[0];
  if (!doc) {
    c.whole(file, 'empty file, expected a test case (version, kind: Http, spec.req, spec.resp)');
    return undefined;
  }
  if (parsed.docs.length > 1) {
    c.at(file, parsed.docs[1]!, parsed.lineCounter, [], 'expected one test case per file, found another YAML document');
  }
  const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
  const kind = obj(value).kind;
  if (typeof kind === 'string' && readers.has(kind))
    return loadProtocolTestFile(file, text, index, readers.get(kind)!, c);
  const issues = schemaProblems(file, doc, parsed.lineCounter, testSchema, value);
  issues.forEach((p) => c.add(p));
  if (issues.length > 0) return undefined;
  return buildTestCase(
    file,
    value,
    positionOf(doc, parsed.lineCounter, []).line,
    configNoise,
    c,
    (p, m, atKey = false) => c.at(file, doc, parsed.lineCounter, p, m, atKey),
  );
}

/** A test file of a kind another protocol reads: one document, read through that protocol. */
function loadProtocolTestFile(
  file: string,
  text: string,
  index: number,
  reader: DocReader,
  c: Collector,
): LoadedDoc | undefined {
  const parsed = parseYaml(file, text);
  parsed.problems.forEach((p) => c.add(p));
  const doc = parsed.docs[0];
  if (parsed.problems.length > 0 || !doc) return undefined;
  if (parsed.docs.length > 1) {
    c.at(file, parsed.docs[1]!, parsed.lineCounter, [], 'expected one test case per file, found another YAML document');
  }
  const before = c.problems.length;
  const report = (p: YamlPath, m: string, atKey = false): void => c.at(file, doc, parsed.lineCounter, p, m, atKey);
  const value = obj(doc.toJS({ maxAliasCount: 100 }));
  const line = positionOf(doc, parsed.lineCounter, []).line;
  const fallbackName = path.basename(file).replace(/\.ya?ml$/i, '');
  const t = readProtocolDoc(reader, value, { file, line, index, fallbackName }, report);
  return c.problems.length > before ? undefined : t;
}

/** Line of the first thing that is not a comment or blank (where a one-document file's content starts). */
function firstContentLine(text: string): number {
  const lines = text.split('\n', 50);
  const i = lines.findIndex((l) => l.trim() !== '' && !l.trimStart().startsWith('#') && l.trim() !== '---');
  return i < 0 ? 1 : i + 1;
}

/** The request/response part that tests and mocks share: URL checked, headers listed, bodies decoded. */
function readSpec(v: Record<string, unknown>, report: (p: YamlPath, m: string, atKey?: boolean) => void) {
  const spec = obj(v.spec);
  const req = obj(spec.req);
  const resp = obj(spec.resp);
  const url = String(req.url);
  checkUrl(url, ['spec', 'req'], report);
  const reqHeaders = headerList(req.header);
  const respHeaders = headerList(resp.header);
  return {
    spec,
    req,
    resp,
    url,
    reqHeaders,
    respHeaders,
    reqBody: bodyOf(req, reqHeaders, ['spec', 'req'], report),
    respBody: bodyOf(resp, respHeaders, ['spec', 'resp'], report),
  };
}

/** A schema-valid test document → TestCase; further checks report through `report`. */
function buildTestCase(
  file: string,
  value: unknown,
  line: number,
  configNoise: NoiseRule[],
  c: Collector,
  report: (p: YamlPath, m: string, atKey?: boolean) => void,
): TestCase | undefined {
  const before = c.problems.length;
  const v = obj(value);
  const { spec, req, resp, url, reqHeaders, respHeaders, reqBody, respBody } = readSpec(v, report);
  const testNoise = noiseRules(obj(spec.assertions).noise, ['spec', 'assertions', 'noise'], report);
  const t: TestCase = {
    file,
    line,
    name: str(v.name) ?? path.basename(file).replace(/\.ya?ml$/i, ''),
    request: {
      method: String(req.method),
      // A hand-written path-only URL: the replay swaps in the app's address anyway.
      url: url.startsWith('/') ? `http://localhost${url}` : url,
      ...(Number(req.proto_major) === 2 ? { httpVersion: '2' as const } : {}),
      headers: reqHeaders,
      body: reqBody,
    },
    expected: {
      status: Number(resp.status_code),
      headers: respHeaders,
      body: respBody,
    },
    noise: mergeNoise(configNoise, testNoise),
  };
  return c.problems.length > before ? undefined : t;
}

const DEFAULT_PORTS: Record<string, string> = { http: '80', https: '443' };

/** Splits a mock's URL: absolute, or a path with the host taken from the Host header. */
export function splitMockUrl(
  url: string,
  headers: HeaderList,
  metadataScheme: string | undefined,
): { scheme: 'http' | 'https'; anyScheme?: true; host: string; path: string; query: Array<[string, string]> } {
  let scheme: 'http' | 'https' = metadataScheme?.toLowerCase() === 'https' ? 'https' : 'http';
  // Keploy's path-only mock URLs do not say whether the call was made over TLS.
  let anyScheme = metadataScheme === undefined;
  let host = (firstHeader(headers, 'host') ?? '').toLowerCase();
  let rest = url;
  const m = /^(https?):\/\/([^/?#]*)(.*)$/i.exec(url);
  if (m) {
    scheme = m[1]!.toLowerCase() as 'http' | 'https';
    anyScheme = false;
    host = m[2]!.toLowerCase();
    rest = m[3]!;
  }
  const port = /:(\d+)$/.exec(host);
  if (port && port[1] === DEFAULT_PORTS[scheme]) host = host.slice(0, -port[0].length);
  rest = rest.split('#', 1)[0]!;
  const q = rest.indexOf('?');
  const p = (q < 0 ? rest : rest.slice(0, q)) || '/';
  const query = q < 0 ? [] : [...new URLSearchParams(rest.slice(q + 1))];
  return anyScheme ? { scheme, anyScheme: true, host, path: p, query } : { scheme, host, path: p, query };
}

function loadMocksFile(
  file: string,
  c: Collector,
  warnings: string[],
  readers: ReadonlyMap<string, DocReader>,
  protocolMocks: LoadedDoc[],
): Mock[] {
  const text = readText(file, c);
  if (text === undefined) return [];
  const parsed = parseYaml(file, text);
  parsed.problems.forEach((p) => c.add(p));
  const mocks: Mock[] = [];
  const skipped = new Map<string, number>();
  for (const [index, doc] of parsed.docs.entries()) {
    const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
    const issues = schemaProblems(file, doc, parsed.lineCounter, mockSchema, value);
    issues.forEach((p) => c.add(p));
    if (issues.length > 0) continue;
    const v = obj(value);
    const kind = String(v.kind);
    const report = (p: YamlPath, m: string, atKey = false): void => c.at(file, doc, parsed.lineCounter, p, m, atKey);
    const reader = readers.get(kind);
    if (reader && (reader.claims?.(v) ?? true)) {
      const line = positionOf(doc, parsed.lineCounter, []).line;
      const m = readProtocolDoc(reader, v, { file, line, index, fallbackName: `mock-${index}` }, report);
      if (m) protocolMocks.push(m);
      continue;
    }
    if (kind !== 'Http') {
      if (OTHER_KEPLOY_KINDS.has(kind)) skipped.set(kind, (skipped.get(kind) ?? 0) + 1);
      else
        report(
          ['kind'],
          `unknown mock kind ${JSON.stringify(kind)}, expected ${['Http', ...readers.keys()].map((k) => JSON.stringify(k)).join(' or ')}`,
        );
      continue;
    }
    const before = c.problems.length;
    const { spec, req, resp, url, reqHeaders, respHeaders, reqBody, respBody } = readSpec(v, report);
    const split = splitMockUrl(url, reqHeaders, str(obj(spec.metadata).scheme));
    const status = Number(resp.status_code);
    const mock: Mock = {
      file,
      line: positionOf(doc, parsed.lineCounter, []).line,
      name: str(v.name) ?? `mock-${mocks.length}`,
      index: mocks.length,
      request: {
        method: String(req.method),
        ...split,
        headers: reqHeaders,
        body: reqBody,
      },
      response: {
        status,
        statusMessage: str(resp.status_message) || STATUS_CODES[status] || '',
        headers: respHeaders,
        body: respBody,
      },
    };
    const noise = parseMockNoise(v.noise);
    for (const p of noise.problems) report(p.at, p.message);
    if (noise.noise) mock.noise = noise.noise;
    if (c.problems.length === before) mocks.push(mock);
  }
  const served = ['Http', ...readers.keys()];
  const servedText = served.length === 1 ? served[0]! : `${served.slice(0, -1).join(', ')} and ${served.at(-1)!}`;
  for (const [kind, n] of skipped) {
    warnings.push(`${file}: skipped ${n} ${kind} mock${n === 1 ? '' : 's'} (tlsrec serves ${servedText} mocks)`);
  }
  return mocks;
}
