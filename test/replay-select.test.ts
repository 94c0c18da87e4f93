// Selection and sharding (--test, --grep, --shard) on test sets read from real YAML files: a
// Keploy-style test file from keploy-tests/ copied under many names and URLs.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createServer } from 'node:http';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UsageError } from '../src/errors.js';
import { loadConfig } from '../src/format/config-reader.js';
import { loadTestSets } from '../src/format/reader.js';
import { runTests } from '../src/replay/run-tests.js';
import type { TestSet } from '../src/format/types.js';
import { globToRegExp, selectTests, shardOf, type TestSelection } from '../src/replay/select.js';

const KEPLOY_TEST = fs.readFileSync(path.join('keploy-tests', 'test-set-0', 'tests', 'test-1.yaml'), 'utf8');
const KEPLOY_MOCKS = path.join('keploy-tests', 'test-set-0', 'mocks.yaml');

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrec-select-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

/** A set of real test files: `name` and `method url` per test; mocks.yaml from keploy-tests. */
function writeSet(set: string, tests: Array<[name: string, method: string, url: string]>): void {
  const dir = path.join(root, set, 'tests');
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, method, url] of tests) {
    const text = KEPLOY_TEST.replace(/^name: .*$/m, `name: ${name}`)
      .replace(/^(\s+)method: GET$/m, `$1method: ${method}`)
      .replace(/^(\s+)url: http:\/\/localhost:3000\/quote\?sym=ACME$/m, `$1url: ${url}`);
    expect(text).toContain(`name: ${name}`);
    expect(text).toContain(`url: ${url}`);
    fs.writeFileSync(path.join(dir, `${name}.yaml`), text);
  }
  fs.copyFileSync(KEPLOY_MOCKS, path.join(root, set, 'mocks.yaml'));
}

function manyTests(n: number, prefix = 'test'): Array<[string, string, string]> {
  return Array.from({ length: n }, (_, i) => [
    `${prefix}-${i + 1}`,
    i % 3 === 0 ? 'POST' : 'GET',
    `http://localhost:3000/items/${i + 1}?page=${i % 5}`,
  ]);
}

const ids = (sets: TestSet[]): string[] => sets.flatMap((s) => s.tests.map((t) => `${s.name}/${t.name}`));

function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).exitCode).toBe(2);
    return err as UsageError;
  }
  throw new Error('expected a UsageError');
}

describe('--shard k/n', () => {
  it('the n shards are disjoint and together the whole set, for several n', () => {
    writeSet('test-set-0', manyTests(120));
    writeSet('test-set-1', manyTests(80, 'case'));
    const sets = loadTestSets(root);
    const all = ids(sets);
    expect(all).toHaveLength(200);
    for (const count of [1, 2, 3, 4, 7]) {
      const shards = Array.from({ length: count }, (_, i) =>
        ids(selectTests(sets, { shard: { index: i + 1, count } }).sets),
      );
      const union = shards.flat();
      expect(union).toHaveLength(all.length); // nothing twice
      expect(new Set(union)).toEqual(new Set(all)); // nothing missing
      for (const shard of shards) {
        // Each shard keeps the recorded order.
        expect(shard).toEqual(all.filter((id) => shard.includes(id)));
      }
      if (count === 2) {
        // 200 tests hashed into two shards: neither is nearly empty.
        expect(Math.min(shards[0]!.length, shards[1]!.length)).toBeGreaterThan(60);
      }
    }
  });

  it('adding or removing a test moves no other test to another shard', () => {
    writeSet('test-set-0', manyTests(60));
    const before = loadTestSets(root);
    const shardMap = (sets: TestSet[], count: number): Map<string, number> => {
      const m = new Map<string, number>();
      for (let k = 1; k <= count; k++)
        for (const id of ids(selectTests(sets, { shard: { index: k, count } }).sets)) m.set(id, k);
      return m;
    };
    for (const count of [2, 4]) {
      const was = shardMap(before, count);
      // A new test whose name sorts first (it changes every position), and one at the end.
      writeSet('test-set-0', [
        ['test-0', 'GET', 'http://localhost:3000/new'],
        ['test-61', 'POST', 'http://localhost:3000/newer'],
      ]);
      fs.rmSync(path.join(root, 'test-set-0', 'tests', 'test-30.yaml'));
      const after = loadTestSets(root);
      expect(after[0]!.tests[0]!.name).toBe('test-0');
      const now = shardMap(after, count);
      expect(now.size).toBe(was.size + 1);
      for (const [id, k] of was) {
        if (id === 'test-set-0/test-30') expect(now.has(id)).toBe(false);
        else expect(now.get(id)).toBe(k);
      }
      expect(now.get('test-set-0/test-0')).toBe(shardOf('test-set-0', 'test-0', count));
      fs.rmSync(path.join(root, 'test-set-0', 'tests', 'test-0.yaml'));
      fs.rmSync(path.join(root, 'test-set-0', 'tests', 'test-61.yaml'));
      writeSet('test-set-0', [['test-30', 'GET', 'http://localhost:3000/items/30?page=4']]);
    }
  });

  it('a test is placed by its set and name: the same name in another set may land elsewhere', () => {
    const placed = new Set<number>();
    for (let i = 0; i < 20; i++) placed.add(shardOf(`test-set-${i}`, 'test-1', 4));
    expect(placed.size).toBeGreaterThan(1);
    expect(shardOf('test-set-0', 'test-1', 4)).toBe(shardOf('test-set-0', 'test-1', 4));
  });

  it('mocks stay whole: a shard of a set is served every mock the set recorded', () => {
    writeSet('test-set-0', manyTests(10));
    const [set] = loadTestSets(root);
    expect(set!.mocks.length).toBeGreaterThan(0);
    for (const k of [1, 2, 3]) {
      for (const s of selectTests([set!], { shard: { index: k, count: 3 } }).sets) expect(s.mocks).toBe(set!.mocks);
    }
  });

  it('a shard that receives no test selects no set and is not an error', () => {
    writeSet('test-set-0', [['test-1', 'GET', 'http://localhost:3000/a']]);
    const sets = loadTestSets(root);
    const home = shardOf('test-set-0', 'test-1', 2);
    const other = home === 1 ? 2 : 1;
    expect(selectTests(sets, { shard: { index: other, count: 2 } })).toEqual({
      sets: [],
      selected: 0,
      total: 1,
      description: `--shard ${other}/2`,
    });
    expect(ids(selectTests(sets, { shard: { index: home, count: 2 } }).sets)).toEqual(['test-set-0/test-1']);
  });
});

describe('--test and --grep', () => {
  beforeEach(() => {
    writeSet('test-set-0', [
      ['test-1', 'GET', 'http://localhost:3000/users/1'],
      ['test-2', 'POST', 'http://localhost:3000/orders'],
      ['test-3', 'GET', 'http://localhost:3000/orders/7?full=1'],
      ['test-10', 'DELETE', 'http://localhost:3000/orders/7'],
      ['test-11', 'GET', 'http://localhost:3000/health'],
    ]);
    writeSet('test-set-1', [
      ['test-1', 'GET', 'http://localhost:3000/health'],
      ['login', 'POST', 'http://localhost:3000/login'],
    ]);
  });

  const pick = (sel: TestSelection): string[] => ids(selectTests(loadTestSets(root), sel).sets);

  it('by name, by glob, repeatable (a union), in recorded order', () => {
    expect(pick({ tests: ['test-3'] })).toEqual(['test-set-0/test-3']);
    expect(pick({ tests: ['test-1*'] })).toEqual([
      'test-set-0/test-1',
      'test-set-0/test-10',
      'test-set-0/test-11',
      'test-set-1/test-1',
    ]);
    expect(pick({ tests: ['test-3', 'test-1?'] })).toEqual([
      'test-set-0/test-3',
      'test-set-0/test-10',
      'test-set-0/test-11',
    ]);
    expect(pick({ tests: ['test-[23]', 'login'] })).toEqual([
      'test-set-0/test-2',
      'test-set-0/test-3',
      'test-set-1/login',
    ]);
    expect(pick({ tests: ['test-[!1]*'] })).toEqual(['test-set-0/test-2', 'test-set-0/test-3']);
  });

  it('a pattern with a "/" matches set/test', () => {
    // Files load in natural name order: login.yaml before test-1.yaml.
    expect(pick({ tests: ['test-set-1/*'] })).toEqual(['test-set-1/login', 'test-set-1/test-1']);
    expect(pick({ tests: ['*/test-1'] })).toEqual(['test-set-0/test-1', 'test-set-1/test-1']);
    expect(pick({ tests: ['**1'] })).toEqual(['test-set-0/test-1', 'test-set-0/test-11', 'test-set-1/test-1']);
  });

  it('--grep searches METHOD /path?query and METHOD recorded-url', () => {
    expect(pick({ grep: '^POST ' })).toEqual(['test-set-0/test-2', 'test-set-1/login']);
    expect(pick({ grep: '^GET /orders/\\d+\\?full=1$' })).toEqual(['test-set-0/test-3']);
    expect(pick({ grep: 'localhost:3000/health' })).toEqual(['test-set-0/test-11', 'test-set-1/test-1']);
    expect(pick({ grep: '/orders' })).toEqual(['test-set-0/test-2', 'test-set-0/test-3', 'test-set-0/test-10']);
  });

  it('--test and --grep together keep what both choose; the shard splits that choice', () => {
    expect(pick({ tests: ['test-*'], grep: 'orders' })).toEqual([
      'test-set-0/test-2',
      'test-set-0/test-3',
      'test-set-0/test-10',
    ]);
    const chosen = pick({ tests: ['test-*'], grep: 'orders' });
    const halves = [1, 2].map((index) => pick({ tests: ['test-*'], grep: 'orders', shard: { index, count: 2 } }));
    expect([...halves[0]!, ...halves[1]!].sort()).toEqual([...chosen].sort());
  });

  it('the result says what was selected and keeps only sets with a selected test', () => {
    const r = selectTests(loadTestSets(root), { tests: ['login'], shard: { index: 1, count: 1 } });
    expect(r.description).toBe('--test "login" --shard 1/1');
    expect(r.selected).toBe(1);
    expect(r.total).toBe(7);
    expect(r.sets.map((s) => s.name)).toEqual(['test-set-1']);
  });

  it('no selection returns the sets as they are', () => {
    const sets = loadTestSets(root);
    const r = selectTests(sets, {});
    expect(r.sets).toBe(sets);
    expect(r).toMatchObject({ selected: 7, total: 7, description: '' });
  });

  it('a --test that matches nothing is a usage error naming the pattern and the test names', () => {
    const sets = loadTestSets(root);
    const err = usageError(() => selectTests(sets, { tests: ['test-3', 'tset-1*'] }));
    expect(err.message).toBe('no test matches --test "tset-1*" in 2 test sets (test-set-0, test-set-1), 7 tests');
    expect(err.hint).toContain('test-1, test-2, test-3, test-10, test-11, login');
  });

  it('a --grep that leaves no test is a usage error that says what was selected', () => {
    const sets = loadTestSets(root);
    const err = usageError(() => selectTests(sets, { tests: ['login'], grep: '^GET' }));
    expect(err.message).toBe(
      'no test matches --test "login" --grep "^GET" in 2 test sets (test-set-0, test-set-1), 7 tests',
    );
    expect(usageError(() => selectTests(sets, { grep: '^PATCH' })).message).toMatch(
      /^no test matches --grep "\^PATCH" in 2 test sets/,
    );
  });

  it('an invalid --grep is a usage error', () => {
    expect(usageError(() => selectTests(loadTestSets(root), { grep: '(unclosed' })).message).toMatch(
      /^--grep "\(unclosed": not a valid regular expression: .*Unterminated group/,
    );
  });
});

describe('globToRegExp', () => {
  it('* and ? stop at /, ** crosses it, regex characters are literal', () => {
    expect(globToRegExp('a*').test('abc')).toBe(true);
    expect(globToRegExp('a*').test('a/b')).toBe(false);
    expect(globToRegExp('a**').test('a/b')).toBe(true);
    expect(globToRegExp('t?st').test('test')).toBe(true);
    expect(globToRegExp('a.b+(c)').test('a.b+(c)')).toBe(true);
    expect(globToRegExp('a.b').test('axb')).toBe(false);
    expect(globToRegExp('[x').test('[x')).toBe(true);
  });
});

describe('a sharded run (runTests against a local server)', () => {
  it("each shard's JSON report counts only its own tests, and the shards together are the whole set", async () => {
    writeSet('test-set-0', manyTests(9));
    // Answers what the Keploy test expects, except for /items/4 (a real failure).
    const server = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({ symbol: 'ACME', price: 27.8, note: req.url?.startsWith('/items/4?') ? 'stale' : 'fresh' }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const addr = server.address();
    const appUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    try {
      const seen: string[] = [];
      let failed = 0;
      for (const index of [1, 2]) {
        const reportDir = path.join(root, `reports-${index}`);
        const result = await runTests({
          dir: root,
          appUrl,
          mocks: false,
          reporters: ['json'],
          reportDir,
          out: new PassThrough(),
          config: loadConfig(path.join(root, 'tlsrec.yaml')),
          testSetsLoaded: loadTestSets(root),
          handleSignals: false,
          selection: { shard: { index, count: 2 } },
        });
        const report = JSON.parse(fs.readFileSync(path.join(reportDir, 'report.json'), 'utf8')) as {
          passed: number;
          failed: number;
          selection: { description: string; selected: number; total: number };
          sets: Array<{ name: string; tests: Array<{ name: string; passed: boolean }> }>;
        };
        const names = report.sets.flatMap((st) => st.tests.map((t) => `${st.name}/${t.name}`));
        expect(report.passed + report.failed).toBe(names.length);
        expect(report.failed).toBe(names.includes('test-set-0/test-4') ? 1 : 0);
        expect(result.exitCode).toBe(report.failed > 0 ? 1 : 0);
        expect(report.selection).toEqual({ description: `--shard ${index}/2`, selected: names.length, total: 9 });
        seen.push(...names);
        failed += report.failed;
      }
      expect(seen.sort()).toEqual(
        manyTests(9)
          .map(([n]) => `test-set-0/${n}`)
          .sort(),
      );
      expect(failed).toBe(1);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
