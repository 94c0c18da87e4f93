// The github reporter: workflow-command escaping, and line numbers that point at the expected value
// of the first differing field — in test files written by tlsrec's own renderer (pretty JSON in a
// block scalar) and in a Keploy-style file from keploy-tests/ (single-line JSON) — checked on a
// real replay against a local HTTP server.

import * as fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/format/config-reader.js';
import { loadTestSets } from '../src/format/reader.js';
import { TestFilePositions, jsonValueLine } from '../src/format/positions.js';
import { exchangeToTestDoc, renderYaml } from '../src/format/test-set-writer.js';
import { jsonPath } from '../src/replay/compare.js';
import {
  escapeData,
  escapeProperty,
  fieldOf,
  githubSummary,
  markdownCell,
  parseJsonPath,
  writeGithubReport,
} from '../src/replay/report/github.js';
import type { TestReport } from '../src/replay/report/model.js';
import { runTests } from '../src/replay/run-tests.js';
import { makeExchange, MONO_TO_WALL } from './fixtures-format/make-exchange.js';

const KEPLOY_FILE = path.join('keploy-tests', 'test-set-0', 'tests', 'test-1.yaml');

const SESSION = {
  id: '7b1e0c8e-2d7f-4a53-9d3e-0f0a7c1d2e3f',
  user: { name: 'Ada Lovelace', plan: 'pro' },
  price: { amount: 12.5, currency: 'EUR' },
  items: [
    { sku: 'A-1', seenAt: '2026-12-06T10:00:00.000Z' },
    { sku: 'B-2', seenAt: '2026-12-06T10:00:01.000Z' },
  ],
  'odd key': { "it's": true },
};

/** A test file as `tlsrec record` writes it. */
function tlsrecFile(n: number, o: Parameters<typeof makeExchange>[0]): string {
  const doc = exchangeToTestDoc(makeExchange(o), n, { monoToWallNs: MONO_TO_WALL });
  return renderYaml(doc, '../../.schema/test.schema.json');
}

/** 1-based line of the first line containing `needle` at or after line `from`. */
function lineOf(text: string, needle: string, from = 1): number {
  const i = text.split('\n').findIndex((l, idx) => idx + 1 >= from && l.includes(needle));
  if (i < 0) throw new Error(`${needle} not in text`);
  return i + 1;
}

describe('workflow command escaping', () => {
  it('data: %, CR and LF are percent-encoded; properties also : and ,', () => {
    expect(escapeData('100% done\r\nnext: a,b')).toBe('100%25 done%0D%0Anext: a,b');
    expect(escapeProperty('100% done\r\nnext: a,b')).toBe('100%25 done%0D%0Anext%3A a%2Cb');
    // % first, so an escape is never escaped twice.
    expect(escapeProperty('%0A')).toBe('%250A');
  });

  it('Markdown cells carry no table, HTML or emphasis syntax', () => {
    expect(markdownCell('a|b <i>x</i> *y* `z`\nnext & more')).toBe(
      'a\\|b &lt;i&gt;x&lt;/i&gt; \\*y\\* \\`z\\` next &amp; more',
    );
  });
});

describe('JSON paths from compare.ts back to segments', () => {
  it('round-trips every kind of segment', () => {
    for (const segs of [
      [],
      ['user', 'plan'],
      ['items', 1, 'seenAt'],
      ['odd key', "it's"],
      ['back\\slash', 0, 0],
      ['$x', '_y1'],
    ]) {
      expect(parseJsonPath(jsonPath(segs))).toEqual(segs);
    }
    expect(parseJsonPath('line 3')).toBeUndefined();
  });

  it('maps failures to fields', () => {
    expect(fieldOf({ kind: 'status', expected: '200', actual: '404', message: '' })).toEqual({ kind: 'status' });
    expect(fieldOf({ kind: 'header', path: 'etag', expected: '', actual: '', message: '' })).toEqual({
      kind: 'header',
      name: 'etag',
    });
    expect(fieldOf({ kind: 'body', path: '$.items[1].sku', expected: '', actual: '', message: '' })).toEqual({
      kind: 'body',
      jsonPath: ['items', 1, 'sku'],
    });
    expect(fieldOf({ kind: 'body', path: 'line 2', expected: '', actual: '', message: '' })).toEqual({
      kind: 'body',
      textLine: 2,
    });
    expect(fieldOf({ kind: 'body', path: 'byte 7', expected: '', actual: '', message: '' })).toEqual({ kind: 'body' });
    expect(fieldOf({ kind: 'request', expected: '', actual: '', message: '' })).toEqual({ kind: 'request' });
  });
});

describe('positions of expected values', () => {
  it('in a file tlsrec writes: status, a header, JSON paths inside the block scalar, text lines', () => {
    const text = tlsrecFile(1, {
      target: '/session',
      resHeaders: [
        ['Content-Type', 'application/json'],
        ['ETag', 'W/"abc"'],
        ['Vary', 'Accept'],
        ['Vary', 'Origin'],
      ],
      resBody: JSON.stringify(SESSION),
    });
    expect(text).toMatch(/body: \|/);
    const pos = TestFilePositions.fromText('test-1.yaml', text)!;
    const resp = lineOf(text, 'resp:');
    expect(pos.of({ kind: 'status' }).line).toBe(lineOf(text, 'status_code: 200'));
    expect(pos.of({ kind: 'header', name: 'etag' }).line).toBe(lineOf(text, 'ETag:', resp));
    // A repeated header is a list: its first value's line.
    expect(text).toMatch(/Vary:\n\s+- Accept\n/);
    expect(pos.of({ kind: 'header', name: 'vary' }).line).toBe(lineOf(text, '- Accept', resp));
    // A header the file does not have: the header map's own line.
    expect(pos.of({ kind: 'header', name: 'x-nope' }).line).toBe(lineOf(text, 'header:', resp));
    const body = (jsonPathSegs: Array<string | number>): number =>
      pos.of({ kind: 'body', jsonPath: jsonPathSegs }).line;
    expect(body(['user', 'plan'])).toBe(lineOf(text, '"plan": "pro"'));
    expect(body(['items', 1, 'seenAt'])).toBe(lineOf(text, '"seenAt": "2026-12-06T10:00:01.000Z"'));
    expect(body(['items', 1])).toBe(lineOf(text, '{', lineOf(text, '"sku": "A-1"') + 1));
    expect(body(['odd key', "it's"])).toBe(lineOf(text, '"it\'s": true'));
    // Not in the expected body (an extra key in the answer): the nearest enclosing value.
    expect(body(['user', 'extra'])).toBe(lineOf(text, '"user": {'));
    expect(pos.of({ kind: 'body', jsonPath: ['user', 'plan'] }).col).toBe(
      text.split('\n')[lineOf(text, '"plan": "pro"') - 1]!.indexOf('"plan"') + 1,
    );
    expect(pos.of({ kind: 'request' }).line).toBe(lineOf(text, 'url: http://'));

    const plain = tlsrecFile(2, {
      target: '/text',
      resHeaders: [['Content-Type', 'text/plain']],
      resBody: 'first\nsecond\nthird\n',
    });
    const p2 = TestFilePositions.fromText('test-2.yaml', plain)!;
    expect(p2.of({ kind: 'body', textLine: 2 }).line).toBe(lineOf(plain, 'second'));
    expect(p2.of({ kind: 'body', textLine: 99 }).line).toBe(lineOf(plain, 'third'));
  });

  it('in a Keploy file from keploy-tests/: single-line JSON points at the body line', () => {
    const text = fs.readFileSync(KEPLOY_FILE, 'utf8');
    const pos = TestFilePositions.read(KEPLOY_FILE)!;
    const resp = lineOf(text, 'resp:');
    expect(pos.of({ kind: 'status' })).toEqual({
      line: lineOf(text, 'status_code: 200'),
      col: text.split('\n')[lineOf(text, 'status_code: 200') - 1]!.indexOf('200') + 1,
    });
    expect(pos.of({ kind: 'header', name: 'content-type' }).line).toBe(lineOf(text, 'Content-Type:', resp));
    expect(pos.of({ kind: 'body', jsonPath: ['note'] }).line).toBe(lineOf(text, "body: '{", resp));
  });

  it('jsonValueLine: undefined for text that is not JSON', () => {
    expect(jsonValueLine('not: json', ['not'])).toBeUndefined();
    expect(jsonValueLine('{\n  "a": {\n    "b": 1\n  }\n}', ['a', 'b'])).toBe(3);
  });
});

describe('a replay with --reporter github', () => {
  let server: Server;
  let appUrl: string;
  let root: string;

  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/session') {
        res.setHeader('content-type', 'application/json');
        res.setHeader('etag', 'W/"abc"');
        res.end(JSON.stringify({ ...SESSION, user: { ...SESSION.user, plan: 'enterprise' } }));
      } else if (req.url === '/gone') {
        res.statusCode = 404;
        res.end('no');
      } else if (req.url === '/etag') {
        res.setHeader('content-type', 'text/plain');
        res.setHeader('etag', 'W/"other"');
        res.end('same\n');
      } else if (req.url === '/text') {
        res.setHeader('content-type', 'text/plain');
        res.end('first\n100% changed, really\nthird\n');
      } else if (req.url?.startsWith('/quote')) {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ symbol: 'ACME', price: 27.8, note: 'stale' }));
      } else {
        res.setHeader('content-type', 'text/plain');
        res.end('ok\n');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const addr = server.address();
    appUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrec-github-'));
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('one ::error per failing test, at the expected value, paths relative to the workspace; a job summary', async () => {
    const tests = path.join(root, 'tlsrec', 'test-set-0', 'tests');
    fs.mkdirSync(tests, { recursive: true });
    const files: Record<string, string> = {
      'test-1': tlsrecFile(1, {
        target: '/session',
        resHeaders: [
          ['Content-Type', 'application/json'],
          ['ETag', 'W/"abc"'],
        ],
        resBody: JSON.stringify(SESSION),
      }),
      'test-2': tlsrecFile(2, { target: '/gone', resHeaders: [['Content-Type', 'text/plain']], resBody: 'no' }),
      'test-3': tlsrecFile(3, {
        target: '/etag',
        resHeaders: [
          ['Content-Type', 'text/plain'],
          ['ETag', 'W/"mine"'],
        ],
        resBody: 'same\n',
      }),
      'test-4': tlsrecFile(4, {
        target: '/text',
        resHeaders: [['Content-Type', 'text/plain']],
        resBody: 'first\nsecond\nthird\n',
      }),
      'test-5': tlsrecFile(5, { target: '/fine', resHeaders: [['Content-Type', 'text/plain']], resBody: 'ok\n' }),
    };
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(tests, `${name}.yaml`), text);
    // A Keploy-style file as Keploy writes it.
    const keployTests = path.join(root, 'tlsrec', 'keploy-set', 'tests');
    fs.mkdirSync(keployTests, { recursive: true });
    fs.copyFileSync(KEPLOY_FILE, path.join(keployTests, 'test-1.yaml'));
    const keployText = fs.readFileSync(KEPLOY_FILE, 'utf8');

    const summaryFile = path.join(root, 'step-summary.md');
    fs.writeFileSync(summaryFile, '# earlier step\n');
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    const result = await runTests({
      dir: path.join(root, 'tlsrec'),
      appUrl,
      mocks: false,
      reporters: ['github'],
      out,
      config: loadConfig(path.join(root, 'tlsrec.yaml')),
      testSetsLoaded: loadTestSets(path.join(root, 'tlsrec')),
      handleSignals: false,
      github: { workspace: root, stepSummaryFile: summaryFile },
    });
    expect(result.exitCode).toBe(1);
    expect(result.failed).toBe(5);
    const lines = text.trimEnd().split('\n');
    const errors = lines.filter((l) => l.startsWith('::error '));
    expect(errors).toHaveLength(5);
    const at = (file: string): { line: number; col: number; title: string; message: string } => {
      const e = errors.find((l) => l.startsWith(`::error file=${file},`));
      expect(e, file).toBeDefined();
      const m = /^::error file=[^,]+,line=(\d+),col=(\d+),title=([^,]*)::(.*)$/.exec(e!);
      expect(m, e).not.toBeNull();
      return { line: Number(m![1]), col: Number(m![2]), title: m![3]!, message: m![4]! };
    };
    const f = (n: number): string => `tlsrec/test-set-0/tests/test-${n}.yaml`;
    expect(at(f(1)).line).toBe(lineOf(files['test-1']!, '"plan": "pro"'));
    expect(at(f(1)).title).toBe('tlsrec%3A test-set-0/test-1 failed (GET /session)');
    expect(at(f(1)).message).toBe('test-1: body $.user.plan: expected "pro", got "enterprise"');
    expect(at(f(2)).line).toBe(lineOf(files['test-2']!, 'status_code: 200'));
    // Status and a header differ: both listed, one per line (LF escaped); the line is the status's.
    expect(at(f(2)).message).toBe(
      'test-2: status: expected 200, got 404%0Atest-2: header content-type: expected "text/plain", but the response has no content-type header',
    );
    expect(at(f(3)).line).toBe(lineOf(files['test-3']!, 'ETag:', lineOf(files['test-3']!, 'resp:')));
    expect(at(f(4)).line).toBe(lineOf(files['test-4']!, 'second'));
    expect(at(f(4)).message).toBe('test-4: body line 2: expected "second", got "100%25 changed, really"');
    const k = at('tlsrec/keploy-set/tests/test-1.yaml');
    expect(k.line).toBe(lineOf(keployText, "body: '{", lineOf(keployText, 'resp:')));
    expect(k.message).toBe('test-1: body $.note: expected "fresh", got "stale"');
    // No terminal reporter: the summary line is the last line.
    expect(lines[lines.length - 1]).toBe('1 passed, 5 failed');

    const summary = fs.readFileSync(summaryFile, 'utf8');
    expect(summary.startsWith('# earlier step\n### tlsrec test: 1 passed, 5 failed\n')).toBe(true);
    expect(summary).toContain('| test set | passed | failed | mock misses |');
    expect(summary).toContain('| keploy-set | 0 | 1 | 0 |');
    expect(summary).toContain('| test-set-0 | 1 | 4 | 0 |');
    expect(summary).toContain(
      `| test-set-0/test-1 | GET /session | test-1: body $.user.plan: expected "pro", got "enterprise" | tlsrec/test-set-0/tests/test-1.yaml:${at(f(1)).line} |`,
    );
  });

  it('more failing tests than GitHub shows: every ::error is written, then a notice says where the rest are', () => {
    const tests: TestReport[] = Array.from({ length: 12 }, (_, i) => ({
      name: `test-${i + 1}`,
      file: path.join(root, `missing-${i + 1}.yaml`),
      method: 'GET',
      url: '/x',
      passed: false,
      durationMs: 1,
      failures: [
        { kind: 'status', expected: '200', actual: '500', message: `test-${i + 1}: status: expected 200, got 500` },
      ],
      mockMisses: [],
    }));
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    writeGithubReport(
      {
        runId: 'r',
        startedAt: '',
        durationMs: 0,
        passed: 0,
        failed: 12,
        mockMisses: 0,
        sets: [{ name: 'test-set-0', dir: root, tests, durationMs: 0, notes: [] }],
      },
      out,
      { workspace: root, summaryLine: false, stepSummaryFile: path.join(root, 'no-such-dir', 'summary.md') },
    );
    const lines = text.trimEnd().split('\n');
    expect(lines.filter((l) => l.startsWith('::error '))).toHaveLength(12);
    // A file that cannot be read (gone since loading): line 1, not a crash.
    expect(lines[0]).toBe(
      '::error file=missing-1.yaml,line=1,col=1,title=tlsrec%3A test-set-0/test-1 failed (GET /x)::test-1: status: expected 200, got 500',
    );
    expect(lines[12]).toBe(
      '::notice title=tlsrec::12 tests failed; GitHub shows 10 error annotations per step, the job summary and the log list them all',
    );
    // The summary file could not be written: a warning, not a failed run.
    expect(lines[13]).toMatch(/^::warning title=tlsrec::cannot append the job summary to .*summary\.md: ENOENT/);
  });

  it('the job summary of a shard that received no test says what was selected', () => {
    const summary = githubSummary(
      {
        runId: 'r',
        startedAt: '',
        durationMs: 0,
        passed: 0,
        failed: 0,
        mockMisses: 0,
        sets: [],
        selection: { description: '--shard 2/4', selected: 0, total: 9 },
      },
      [],
    );
    expect(summary).toBe(
      '### tlsrec test: 0 passed, 0 failed\n\nSelection: --shard 2/4 (0 of 9 tests)\n\nNo tests ran.\n\n',
    );
  });
});
