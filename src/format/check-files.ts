// The engine of `tlsrec validate`: read tlsrec.yaml, every test file and every mocks.yaml with the
// reader's own checks — the ones `tlsrec test` makes before it starts anything — and report every
// problem of every file at once (file:line:column), a broken config included. Nothing is started.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputFileError, UsageError } from '../errors.js';
import { loadConfig } from './config-reader.js';
import { loadTestSets } from './reader.js';
import type { DocReaders } from './protocol-docs.js';
import type { Config, TestSet } from './types.js';

export interface CheckFilesOptions {
  dir: string;
  /** Only these sets (default: every set under `dir`). */
  testSets?: string[];
  configPath: string;
  /** Readers of other protocols' kinds (from the protocol registry). */
  readers?: DocReaders;
}

export interface CheckFilesResult {
  /** The config file read, or undefined when there is none (the defaults apply). */
  configFile: string | undefined;
  sets: number;
  tests: number;
  /** Mocks the mock server would serve, of every protocol that reads them. */
  mocks: number;
  /** YAML files read: test files, mocks.yaml files and the config. */
  files: number;
  /** Things that are not errors: skipped Keploy mocks of other kinds, a config without a command. */
  notes: string[];
}

export function checkFiles(opts: CheckFilesOptions): CheckFilesResult {
  const problems: string[] = [];
  const collect = (err: unknown): void => {
    if (err instanceof InputFileError) problems.push(...err.problems);
    else throw err;
  };
  let config: Config | undefined;
  try {
    config = loadConfig(opts.configPath);
  } catch (err) {
    collect(err);
  }
  let sets: TestSet[] = [];
  try {
    sets = loadTestSets(opts.dir, {
      ...(opts.testSets ? { only: opts.testSets } : {}),
      ...(config ? { config } : {}),
      ...(opts.readers ? { readers: opts.readers } : {}),
    });
  } catch (err) {
    collect(err);
  }
  if (problems.length > 0) {
    const n = problems.length;
    const files = new Set(problems.map((p) => /^(.*?):\d+:\d+: /.exec(p)?.[1] ?? p)).size;
    throw new InputFileError(
      `${n} problem${n === 1 ? '' : 's'} in ${files} file${files === 1 ? '' : 's'}\n${problems.join('\n')}`,
      problems,
      {
        stage: 'validate',
        hint: 'fix the files listed above (each line is file:line:column), then run tlsrec validate again',
      },
    );
  }
  if (sets.length === 0) {
    throw new UsageError(`no test sets found in ${opts.dir}`, {
      stage: 'validate',
      hint: 'record some first (tlsrec record -- <command>) or point --dir at a folder that holds test-set-*/tests/*.yaml',
    });
  }
  const notes = sets.flatMap((s) => s.warnings ?? []);
  const configFile = config?.file;
  if (!config?.command) {
    notes.push(
      `${configFile ?? `${opts.configPath} (absent)`}: no command to start the app; give one to tlsrec test after -- or use --app-url`,
    );
  }
  const mocksFiles = sets.filter((s) => fs.existsSync(path.join(s.dir, 'mocks.yaml'))).length;
  const tests = sets.reduce((n, s) => n + s.tests.length + (s.protocolTests?.length ?? 0), 0);
  return {
    configFile,
    sets: sets.length,
    tests,
    mocks: sets.reduce((n, s) => n + s.mocks.length + (s.protocolMocks?.length ?? 0), 0),
    files: tests + mocksFiles + (configFile ? 1 : 0),
    notes,
  };
}

/** "OK: 2 test sets, 7 tests, 3 mocks (9 files)". */
export function checkSummary(r: CheckFilesResult): string {
  const n = (count: number, word: string): string => `${count} ${word}${count === 1 ? '' : 's'}`;
  return `OK: ${n(r.sets, 'test set')}, ${n(r.tests, 'test')}, ${n(r.mocks, 'mock')} (${n(r.files, 'file')} checked${r.configFile ? `, config ${r.configFile}` : ''})`;
}
