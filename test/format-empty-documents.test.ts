// Empty YAML documents — a trailing `---`, a `---` with only a comment after it, two separators in a
// row — are what hand editors leave behind. They are ignored in test files, mocks.yaml and
// tlsrec.yaml alike; they are never an error and never a mock or a test of their own.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InputFileError } from '../src/errors.js';
import { loadConfig } from '../src/format/config-reader.js';
import { loadTestSets } from '../src/format/reader.js';

const KEPLOY = path.join('test', 'fixtures-format', 'keploy', 'test-set-0');

let root: string;
let setDir: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrec-empty-docs-'));
  setDir = path.join(root, 'test-set-0');
  fs.mkdirSync(path.join(setDir, 'tests'), { recursive: true });
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const keployTest = (n: number): string => fs.readFileSync(path.join(KEPLOY, 'tests', `test-${n}.yaml`), 'utf8');
const keployMocks = (): string => fs.readFileSync(path.join(KEPLOY, 'mocks.yaml'), 'utf8');

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InputFileError);
    return (err as InputFileError).problems;
  }
  throw new Error('expected an InputFileError');
}

describe('test files', () => {
  it('a trailing `---` is ignored', () => {
    fs.writeFileSync(path.join(setDir, 'tests', 'test-1.yaml'), `${keployTest(1)}---\n`);
    const [set] = loadTestSets(root);
    expect(set!.tests.map((t) => t.name)).toEqual(['test-1']);
    expect(set!.tests[0]!.expected.status).toBe(201);
  });

  it('a leading `---`, a trailing `---` with a comment, and `...` are ignored; the test keeps its line', () => {
    fs.writeFileSync(
      path.join(setDir, 'tests', 'test-1.yaml'),
      `# my test\n---\n${keployTest(1)}---\n# nothing here yet\n---\n`,
    );
    fs.writeFileSync(path.join(setDir, 'tests', 'test-2.yaml'), `${keployTest(2)}...\n---\n`);
    const [set] = loadTestSets(root);
    expect(set!.tests.map((t) => [t.name, t.line])).toEqual([
      ['test-1', 3],
      ['test-2', 1],
    ]);
  });

  it('a second real document is still an error, at its line', () => {
    const file = path.join(setDir, 'tests', 'test-1.yaml');
    const first = keployTest(1);
    fs.writeFileSync(file, `${first}---\n---\n${keployTest(2)}`);
    const line = first.split('\n').length + 2; // after the two separators
    expect(problemsOf(() => loadTestSets(root))).toEqual([
      `${file}:${line}:1: expected one test case per file, found another YAML document`,
    ]);
  });

  it('a file with nothing but separators and comments is still named as empty (it holds no test)', () => {
    const file = path.join(setDir, 'tests', 'test-1.yaml');
    fs.writeFileSync(file, '---\n# to do\n---\n');
    expect(problemsOf(() => loadTestSets(root))).toEqual([
      `${file}:1:1: empty file, expected a test case (version, kind: Http, spec.req, spec.resp)`,
    ]);
  });
});

describe('mocks.yaml', () => {
  it('empty documents between and after mocks are not mocks and not errors', () => {
    const docs = keployMocks().split(/^---\n/m);
    expect(docs.length).toBeGreaterThan(1);
    fs.writeFileSync(path.join(setDir, 'tests', 'test-1.yaml'), keployTest(1));
    fs.writeFileSync(path.join(setDir, 'mocks.yaml'), `---\n${docs.join('---\n---\n# spare\n---\n')}---\n`);
    const [set] = loadTestSets(root);
    const [expected] = loadTestSets(path.dirname(KEPLOY));
    expect(set!.mocks.map((m) => [m.name, m.index, m.request.path])).toEqual(
      expected!.mocks.map((m) => [m.name, m.index, m.request.path]),
    );
    expect(set!.mocks).toHaveLength(1);
  });

  it('an explicit null document is content, and is reported as not a mock', () => {
    fs.writeFileSync(path.join(setDir, 'tests', 'test-1.yaml'), keployTest(1));
    const file = path.join(setDir, 'mocks.yaml');
    fs.writeFileSync(file, `${keployMocks()}---\n~\n---\n`);
    const problems = problemsOf(() => loadTestSets(root));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(
      new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:1: expected a map, found nothing$`),
    );
  });

  it('a mocks.yaml that is only separators holds no mocks', () => {
    fs.writeFileSync(path.join(setDir, 'tests', 'test-1.yaml'), keployTest(1));
    fs.writeFileSync(path.join(setDir, 'mocks.yaml'), '---\n---\n');
    expect(loadTestSets(root)[0]!.mocks).toEqual([]);
  });
});

describe('tlsrec.yaml', () => {
  it('a trailing or leading `---` is ignored', () => {
    const file = path.join(root, 'tlsrec.yaml');
    fs.writeFileSync(file, 'appPort: 3000\ncommand: npm start\n---\n');
    expect(loadConfig(file)).toMatchObject({ appPort: 3000, command: ['/bin/sh', '-c', 'npm start'] });
    fs.writeFileSync(file, '---\nappPort: 3001\n---\n# later\n');
    expect(loadConfig(file).appPort).toBe(3001);
  });

  it('a config of separators only gives the defaults', () => {
    const file = path.join(root, 'tlsrec.yaml');
    fs.writeFileSync(file, '---\n---\n');
    expect(loadConfig(file)).toMatchObject({ file, appPort: undefined, command: undefined });
  });

  it('two real documents are still an error', () => {
    const file = path.join(root, 'tlsrec.yaml');
    fs.writeFileSync(file, 'appPort: 3000\n---\n---\nappPort: 3001\n');
    expect(problemsOf(() => loadConfig(file))).toEqual([`${file}:4:1: expected one YAML document, found several`]);
  });
});
