// `tlsrec validate`: every file checked at once (config, tests, mocks), file:line:column for each
// problem, the same checks `tlsrec test` makes before it starts anything, nothing started, exit
// 0 or 2. The engine directly, and the built CLI (as `npm test` builds it first).

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InputFileError, UsageError } from '../src/errors.js';
import { checkFiles, checkSummary } from '../src/format/check-files.js';
import { repoRoot, tlsrecBin } from './helpers/procs.js';

const KEPLOY = path.join(repoRoot, 'keploy-tests');
const BROKEN = path.join(repoRoot, 'test', 'fixtures-format', 'broken');

let work: string;
beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrec-validate-'));
});
afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

function problemsOf(fn: () => unknown): InputFileError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InputFileError);
    return err as InputFileError;
  }
  throw new Error('expected an InputFileError');
}

/** A copy of keploy-tests/ under work/tlsrec, with a config that would start an app. */
function copyKeploy(config = 'command: touch started-by-tlsrec\nappPort: 3000\n'): string {
  const dir = path.join(work, 'tlsrec');
  fs.cpSync(KEPLOY, dir, { recursive: true });
  fs.writeFileSync(path.join(work, 'tlsrec.yaml'), config);
  return dir;
}

function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [tlsrecBin, ...args], {
    cwd: work,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('checkFiles', () => {
  it('valid files: counts of sets, tests and mocks; notes for what is not an error', () => {
    const r = checkFiles({ dir: KEPLOY, configPath: path.join(work, 'absent.yaml') });
    expect(r).toMatchObject({ configFile: undefined, sets: 2, tests: 5, mocks: 3, files: 7 });
    expect(r.notes).toEqual([
      `${path.join(work, 'absent.yaml')} (absent): no command to start the app; give one to tlsrec test after -- or use --app-url`,
    ]);
    expect(checkSummary(r)).toBe('OK: 2 test sets, 5 tests, 3 mocks (7 files checked)');
  });

  it('lists the problems of the config, of several test files and of mocks.yaml together', () => {
    const dir = path.join(work, 'tlsrec');
    fs.cpSync(BROKEN, dir, { recursive: true });
    const config = path.join(work, 'tlsrec.yaml');
    fs.writeFileSync(config, 'command: [node, 3]\nnoise:\n  header.X: ["(unclosed"]\n');
    const err = problemsOf(() => checkFiles({ dir, configPath: config }));
    expect(err.exitCode).toBe(2);
    const files = [...new Set(err.problems.map((p) => /^(.*?):\d+:\d+: /.exec(p)![1]))];
    expect(files).toEqual([
      config,
      ...[1, 2, 3, 4, 5].map((n) => path.join(dir, 'test-set-0', 'tests', `test-${n}.yaml`)),
      path.join(dir, 'test-set-0', 'mocks.yaml'),
    ]);
    expect(err.problems[0]).toBe(`${config}:1:17: command[1]: expected a string, found 3`);
    expect(err.problems).toContain(
      `${path.join(dir, 'test-set-0', 'tests', 'test-2.yaml')}:13:18: spec.resp.status_code: expected an integer, found "abc"`,
    );
    expect(err.problems).toContain(
      `${path.join(dir, 'test-set-0', 'mocks.yaml')}:36:1: YAML syntax error: Missing closing "quote`,
    );
    expect(err.problems).toHaveLength(17);
    expect(err.message.split('\n')[0]).toBe('17 problems in 7 files');
  });

  it('a config with several problems is reported whole, beside the test files', () => {
    const dir = copyKeploy('command: []\nappPort: "3000"\n');
    const err = problemsOf(() => checkFiles({ dir, configPath: path.join(work, 'tlsrec.yaml') }));
    expect(err.problems).toEqual([
      `${path.join(work, 'tlsrec.yaml')}:2:10: appPort: expected an integer, found "3000"`,
    ]);
  });

  it('an unknown --test-set is a problem; no test sets at all is a usage error', () => {
    const err = problemsOf(() =>
      checkFiles({ dir: KEPLOY, testSets: ['test-set-0', 'nope'], configPath: path.join(work, 'absent.yaml') }),
    );
    expect(err.problems).toEqual([`${KEPLOY}:1:1: unknown test set "nope", expected one of: test-set-0, test-set-1`]);
    fs.mkdirSync(path.join(work, 'empty'));
    expect(() => checkFiles({ dir: path.join(work, 'empty'), configPath: path.join(work, 'absent.yaml') })).toThrow(
      UsageError,
    );
  });

  it('empty documents (a trailing ---) are not problems', () => {
    const dir = copyKeploy('command: node app.js\n---\n');
    const t = path.join(dir, 'test-set-0', 'tests', 'test-1.yaml');
    fs.appendFileSync(t, '---\n');
    fs.appendFileSync(path.join(dir, 'test-set-0', 'mocks.yaml'), '---\n# more later\n---\n');
    const r = checkFiles({ dir, configPath: path.join(work, 'tlsrec.yaml') });
    expect(r).toMatchObject({ sets: 2, tests: 5, mocks: 3, files: 8, notes: [] });
  });
});

describe('tlsrec validate (CLI)', () => {
  it('exit 0 with one OK line, and nothing is started', () => {
    copyKeploy();
    const r = cli(['validate']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('OK: 2 test sets, 5 tests, 3 mocks (8 files checked, config tlsrec.yaml)\n');
    expect(r.code).toBe(0);
    expect(fs.existsSync(path.join(work, 'started-by-tlsrec'))).toBe(false);
  });

  it('exit 2 and every problem of every file as file:line:column, no stack trace', () => {
    fs.cpSync(BROKEN, path.join(work, 'cases'), { recursive: true });
    fs.writeFileSync(path.join(work, 'ci.yaml'), 'appPort: -1\n');
    const r = cli(['validate', '--dir', 'cases', '--config', 'ci.yaml']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const listed = r.stderr.split('\n').filter((l) => /^ {2}\S+:\d+:\d+: /.test(l));
    expect(listed).toHaveLength(17);
    expect(listed[0]).toMatch(/^ {2}ci\.yaml:1:10: appPort: /);
    expect(new Set(listed.map((l) => l.trim().split(':')[0])).size).toBe(7);
    expect(r.stderr).toMatch(/^tlsrec: 17 problems in 7 files\n/);
    expect(r.stderr).toContain('stage: validate (TLSREC_E_INPUT)');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('finds the same problems in the test files as tlsrec test does before it starts anything', () => {
    fs.cpSync(BROKEN, path.join(work, 'tlsrec'), { recursive: true });
    fs.writeFileSync(path.join(work, 'tlsrec.yaml'), 'command: touch started-by-tlsrec\n');
    const lines = (s: string): string[] => s.split('\n').filter((l) => /^ {2}\S+:\d+:\d+: /.test(l));
    const test = cli(['test']);
    const validate = cli(['validate']);
    expect(test.code).toBe(2);
    expect(validate.code).toBe(2);
    expect(lines(validate.stderr)).toEqual(lines(test.stderr));
    expect(lines(validate.stderr)).toHaveLength(16);
    expect(fs.existsSync(path.join(work, 'started-by-tlsrec'))).toBe(false);
  });

  it('without a command in tlsrec.yaml: still OK (one line on stdout), a note on stderr', () => {
    copyKeploy('appPort: 3000\n');
    const r = cli(['validate']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('OK: 2 test sets, 5 tests, 3 mocks (8 files checked, config tlsrec.yaml)\n');
    expect(r.stderr).toBe(
      'note: tlsrec.yaml: no command to start the app; give one to tlsrec test after -- or use --app-url\n',
    );
  });

  it('--help shows examples', () => {
    const r = cli(['validate', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:\n  tlsrec validate\n');
  });
});
