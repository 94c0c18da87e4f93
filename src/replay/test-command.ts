// The `tlsrec test` command: read and validate every input file first (a broken hand edit stops
// the run before anything starts), merge the command line over tlsrec.yaml, then hand over to the
// replay engine.

import { loadConfig } from '../format/config-reader.js';
import { loadTestSets } from '../format/reader.js';
import { docReaders } from '../protocols/files.js';
import { UsageError } from '../errors.js';
import { runTests, type TestOptions, type TestRunResult } from './run-tests.js';
import type { TestSelection } from './select.js';

/** The engine's options as the command line gives them; the rest is read from files here. */
export type TestCommandOptions = Pick<
  TestOptions,
  | 'command'
  | 'dir'
  | 'testSets'
  | 'appUrl'
  | 'appPort'
  | 'healthUrl'
  | 'readyTimeoutMs'
  | 'mocks'
  | 'reporters'
  | 'reportDir'
> & {
  configPath: string;
  verbose: boolean;
  /** --test / --grep / --shard. */
  selection?: TestSelection;
  /** For --reporter github ($GITHUB_WORKSPACE, $GITHUB_STEP_SUMMARY). */
  github?: TestOptions['github'];
  out?: NodeJS.WritableStream;
  /** Replay twice, write what differs as noise, then run (detect-noise.ts). */
  detectNoise?: boolean;
  /** Accept the app's answers into the failing tests (update.ts). */
  update?: boolean;
};

export async function testCommand(opts: TestCommandOptions): Promise<TestRunResult> {
  const config = loadConfig(opts.configPath);
  const sets = loadTestSets(opts.dir, { only: opts.testSets, config, readers: docReaders() });
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
  if (opts.detectNoise && opts.update) {
    throw new UsageError('--detect-noise and --update cannot be combined', {
      stage: 'read options',
      hint: 'run tlsrec test --detect-noise first, then tlsrec test --update for what still fails',
    });
  }
  const runOpts: TestOptions = {
    dir: opts.dir,
    testSets: opts.testSets,
    command,
    appUrl: opts.appUrl,
    // Without it the engine takes tlsrec.yaml's, else the port each set's URLs name (Keploy sets).
    appPort: opts.appPort,
    healthUrl: opts.healthUrl ?? config.healthUrl,
    readyTimeoutMs: opts.readyTimeoutMs ?? config.readyTimeoutMs,
    mocks: opts.mocks,
    reporters: opts.reporters,
    reportDir: opts.reportDir,
    verbose: opts.verbose,
    ...(opts.selection !== undefined ? { selection: opts.selection } : {}),
    ...(opts.github !== undefined ? { github: opts.github } : {}),
    out: opts.out ?? process.stdout,
    config,
    testSetsLoaded: sets,
  };
  if (opts.detectNoise) {
    const { detectNoiseAndTest } = await import('./detect-noise.js');
    return detectNoiseAndTest(runOpts, () =>
      loadTestSets(opts.dir, { only: opts.testSets, config, readers: docReaders() }),
    );
  }
  if (opts.update) {
    const { updateAndTest } = await import('./update.js');
    return updateAndTest(runOpts);
  }
  return runTests(runOpts);
}
