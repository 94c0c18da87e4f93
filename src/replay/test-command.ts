// The `tlsrec test` command: read and validate every input file first (a broken hand edit stops
// the run before anything starts), merge the command line over tlsrec.yaml, then hand over to the
// replay engine.

import { loadConfig, loadTestSets } from '../format/reader.js';
import { UsageError } from '../errors.js';
import type { TestSet } from '../format/types.js';
import { runTests, type TestRunResult } from './run-tests.js';

export interface TestCommandOptions {
  command?: string[];
  dir: string;
  testSets?: string[];
  configPath: string;
  appUrl?: string;
  appPort?: number;
  healthUrl?: string;
  readyTimeoutMs?: number;
  mocks: boolean;
  reporters: Array<'terminal' | 'junit' | 'json'>;
  reportDir?: string;
  verbose: boolean;
  out?: NodeJS.WritableStream;
}

export async function testCommand(opts: TestCommandOptions): Promise<TestRunResult> {
  const config = loadConfig(opts.configPath);
  const sets = loadTestSets(opts.dir, { only: opts.testSets, config });
  if (sets.length === 0) {
    throw new UsageError(`no test sets found in ${opts.dir}`, {
      stage: 'read tests',
      hint: 'record some first (tlsrec record -- <command>) or point --dir at a folder that holds test-set-*/tests/*.yaml',
    });
  }
  const command = opts.command ?? config.command;
  if (!opts.appUrl && !command) {
    throw new UsageError('no command to start the app', {
      stage: 'start app',
      hint: 'give it after --  (tlsrec test -- node server.js), set `command` in tlsrec.yaml, or use --app-url for a running app',
    });
  }
  const appPort = opts.appPort ?? config.appPort ?? portFromTests(sets);
  return runTests({
    dir: opts.dir,
    testSets: opts.testSets,
    command,
    appUrl: opts.appUrl,
    appPort,
    healthUrl: opts.healthUrl ?? config.healthUrl,
    readyTimeoutMs: opts.readyTimeoutMs ?? config.readyTimeoutMs,
    mocks: opts.mocks,
    reporters: opts.reporters,
    reportDir: opts.reportDir,
    verbose: opts.verbose,
    out: opts.out ?? process.stdout,
    config,
    testSetsLoaded: sets,
  });
}

/** Keploy test sets carry no config: the app's port is the one their absolute URLs name. */
function portFromTests(sets: TestSet[]): number | undefined {
  for (const set of sets) {
    for (const t of set.tests) {
      try {
        const u = new URL(t.request.url);
        return u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
      } catch {
        // not absolute: try the next
      }
    }
  }
  return undefined;
}
