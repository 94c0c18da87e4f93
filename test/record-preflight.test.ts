// What `record` checks before it starts, now in small modules of their own: finding the command
// and its #! interpreter (src/native/command-path.ts), reading the effective capabilities
// (src/native/privileges.ts), and quoting a command line for a hint (src/shell-quote.ts).

import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../src/errors.js';
import { interpreterOf, resolveCommand } from '../src/native/command-path.js';
import { capabilitiesAllowBpf, effectiveCapabilities } from '../src/native/privileges.js';
import { shellQuote, shellWord } from '../src/shell-quote.js';

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function binDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'tlsrec-path-'));
  dirs.push(d);
  return d;
}

function script(dir: string, name: string, text: string, mode = 0o755): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  chmodSync(file, mode);
  return file;
}

describe('resolveCommand', () => {
  it('searches PATH in order, skipping files that are not executable and directories', () => {
    const a = binDir();
    const b = binDir();
    script(a, 'tool', '#!/bin/sh\n', 0o644); // not executable: skipped
    mkdirSync(join(a, 'other'));
    const tool = script(b, 'tool', '\x7fELF not really');
    expect(resolveCommand('tool', `${a}:${b}`)).toEqual({ path: tool, binaries: [tool] });
  });

  it('adds the interpreter of a #! line, directly or through env (with -S), looked up on PATH', () => {
    const d = binDir();
    const python = script(d, 'python9', '\x7fELF');
    const direct = script(d, 'direct', `#!${python} -u\nprint(1)\n`);
    const viaEnv = script(d, 'via-env', '#!/usr/bin/env python9\n');
    const viaEnvS = script(d, 'via-env-s', '#!/usr/bin/env -S python9 -u\n');
    expect(resolveCommand('direct', d).binaries).toEqual([direct, python]);
    expect(resolveCommand('via-env', d).binaries).toEqual([viaEnv, python]);
    expect(resolveCommand(viaEnvS, '/nonexistent').binaries).toEqual([viaEnvS]); // python9 not on that PATH
    expect(interpreterOf(viaEnvS, d)).toEqual([python]);
  });

  it('takes a path with a slash as it is, relative to the working directory', () => {
    const d = binDir();
    const tool = script(d, 'tool', '#!/bin/sh\n');
    expect(resolveCommand(tool, '').path).toBe(tool);
  });

  it('names a missing command with what to check', () => {
    expect(() => resolveCommand('no-such-tool-here', binDir())).toThrow(AppError);
    expect(() => resolveCommand('no-such-tool-here', binDir())).toThrow('command not found: no-such-tool-here');
    const err = ((): unknown => {
      try {
        return resolveCommand('./missing/tool', '');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).hint).toBe('check the path and that the file is executable');
    expect(() => resolveCommand('no-such-tool-here', binDir())).toThrow(
      expect.objectContaining({ hint: 'is no-such-tool-here installed and on PATH?' }),
    );
  });
});

describe('privileges', () => {
  it('reads CapEff and allows CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON, nothing less', () => {
    const status = (hex: string): string =>
      `Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t${hex}\nCapBnd:\t000001ffffffffff\n`;
    expect(effectiveCapabilities(status('000001ffffffffff'))).toBe(0x1ffffffffffn);
    expect(capabilitiesAllowBpf(effectiveCapabilities(status('000001ffffffffff')))).toBe(true);
    expect(capabilitiesAllowBpf(1n << 21n)).toBe(true); // CAP_SYS_ADMIN
    expect(capabilitiesAllowBpf((1n << 39n) | (1n << 38n))).toBe(true); // CAP_BPF + CAP_PERFMON
    expect(capabilitiesAllowBpf(1n << 39n)).toBe(false); // CAP_BPF alone
    expect(capabilitiesAllowBpf(effectiveCapabilities(status('0000000000000000')))).toBe(false);
    expect(effectiveCapabilities('no such line')).toBe(0n);
  });
});

describe('shell quoting', () => {
  const words = [
    'plain',
    'a b',
    "it's",
    '',
    '$HOME',
    'a\nb',
    '*',
    'x=1',
    '--url=http://h:1/p?q=1&r=2',
    '"q"',
    '\\',
    "''",
  ];

  it('every word comes back from /bin/sh exactly as it was, quoted always or only when needed', () => {
    const echo = (quoted: string[]): string[] =>
      JSON.parse(
        execFileSync(
          '/bin/sh',
          ['-c', `node -e 'console.log(JSON.stringify(process.argv.slice(1)))' -- ${quoted.join(' ')}`],
          { encoding: 'utf8' },
        ),
      ) as string[];
    expect(echo(words.map(shellQuote))).toEqual(words);
    expect(echo(words.map(shellWord))).toEqual(words);
  });

  it('leaves plain words bare with shellWord, and always quotes with shellQuote', () => {
    expect(['record', '--', 'curl', 'https://example.com/a,b'].map(shellWord).join(' ')).toBe(
      'record -- curl https://example.com/a,b',
    );
    expect(shellWord('a b')).toBe("'a b'");
    expect(shellQuote('http://localhost:3000/')).toBe("'http://localhost:3000/'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
  });
});
