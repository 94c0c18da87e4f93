// The `tlsrec test` command line for selection, sharding and the github reporter (the built CLI):
// bad values are usage errors (exit 2) before anything starts, and --help documents the rules.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { repoRoot, tlsrecBin } from './helpers/procs.js';

let work: string;
beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrec-cli-select-'));
  fs.cpSync(path.join(repoRoot, 'keploy-tests'), path.join(work, 'tlsrec'), { recursive: true });
  fs.writeFileSync(path.join(work, 'tlsrec.yaml'), 'command: touch started-by-tlsrec\nappPort: 3000\n');
});
afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [tlsrecBin, ...args], {
    cwd: work,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('tlsrec test: selection on the command line', () => {
  it.each([['3/2'], ['0/2'], ['2'], ['a/b'], ['1/0']])('--shard %s is a usage error', (value) => {
    const r = cli(['test', '--shard', value]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `option '--shard <k/n>' argument '${value}' is invalid. expected k/n with 1 <= k <= n, e.g. 2/4`,
    );
    expect(fs.existsSync(path.join(work, 'started-by-tlsrec'))).toBe(false);
  });

  it('a --test that matches nothing: exit 2, says what was selected, nothing started', () => {
    const r = cli(['test', '--test', 'test-1', '--test', 'nope*']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'tlsrec: no test matches --test "nope*" in 2 test sets (test-set-0, test-set-1), 5 tests\n',
    );
    expect(r.stderr).toContain('stage: select tests (TLSREC_E_USAGE)');
    expect(r.stderr).toMatch(/try: test names: test-1, test-2, test-3/);
    expect(fs.existsSync(path.join(work, 'started-by-tlsrec'))).toBe(false);
  });

  it('a --grep that leaves nothing, or is not a regex: exit 2', () => {
    let r = cli(['test', '--grep', '^DELETE ']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('tlsrec: no test matches --grep "^DELETE " in 2 test sets');
    r = cli(['test', '--grep', '[']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('tlsrec: --grep "[": not a valid regular expression');
    expect(fs.existsSync(path.join(work, 'started-by-tlsrec'))).toBe(false);
  });

  it('--reporter github is accepted; an unknown reporter is not', () => {
    const r = cli(['test', '--reporter', 'gitlab']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('terminal, junit, json or github');
  });

  it('--help shows examples and the sharding rule', () => {
    const r = cli(['test', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("tlsrec test --test test-3 --test 'test-1*'");
    expect(r.stdout).toContain('tlsrec test --shard 2/4');
    expect(r.stdout).toContain('tlsrec test --reporter terminal --reporter github');
    expect(r.stdout).toContain('sha256("set/test-name")');
    expect(r.stdout).toContain('adding or removing a test moves no\nother test');
  });
});
