// Commander wiring only: parse the command line, call one engine function, and map typed errors to
// exit codes at a single exit point. No recording or replay logic lives here.

import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_MAX_BACKLOG_BYTES, DEFAULT_RINGBUF_BYTES } from './capture/defaults.js';
import { InputFileError, isTlsrecError, type ExitCode } from './errors.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive whole number`);
    return n;
  };
}

/** A ring buffer size: a power of two of at least one page. */
function ringbufSize(value: string): number {
  const bytes = byteSize(value);
  if (bytes < 4096 || (bytes & (bytes - 1)) !== 0 || bytes > 2 ** 30) {
    throw new InvalidArgumentError('expected a power of two from 4K to 1G, e.g. 64M');
  }
  return bytes;
}

/** "64M", "512K", "0" -> bytes. */
function byteSize(value: string): number {
  const m = /^(\d+)([KMG]?)i?B?$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError('expected a size such as 64M, 512K or 0');
  return Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
}

/** Bytes as the size options take them: 67108864 -> "64M". */
function sizeText(bytes: number): string {
  for (const [unit, size] of [
    ['G', 1024 ** 3],
    ['M', 1024 ** 2],
    ['K', 1024],
  ] as const) {
    if (bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

// ---- selection (--test, --grep, --shard) and the github reporter: `tlsrec test` options ----

const SELECTION_EXAMPLES =
  "  tlsrec test --test test-3 --test 'test-1*'      # by name or glob (repeatable)\n" +
  '  tlsrec test --grep \'^POST /orders\'             # by "METHOD /path?query"\n' +
  '  tlsrec test --shard 2/4 --reporter junit       # CI fan-out: job 2 of 4\n' +
  '  tlsrec test --reporter terminal --reporter github   # GitHub Actions annotations + job summary\n';

const SELECTION_HELP =
  '\nSelection: --test matches test names (a pattern with a "/" matches "set/test"; * and ? do not\n' +
  'cross "/", ** does); --grep searches "METHOD /path?query" and "METHOD recorded-url". A --test\n' +
  'that matches no test, or a --grep that leaves none, is a usage error (exit 2). A selected test\n' +
  'is still served every mock of its set.\n\n' +
  'Sharding: --shard k/n keeps the tests whose sha256("set/test-name") (its first 4 bytes as a\n' +
  'big-endian number) modulo n is k-1. The n shards are disjoint and together the whole selection;\n' +
  "a test's shard depends only on its own set and name, so adding or removing a test moves no\n" +
  "other test. Each shard's reports count its own tests. A shard that receives no test runs\n" +
  'nothing and exits 0.\n\n' +
  'github reporter: one ::error annotation per failing test at the line of the test file where the\n' +
  'first differing expected value stands (status_code, the header, the JSON body line); paths are\n' +
  'relative to $GITHUB_WORKSPACE. With $GITHUB_STEP_SUMMARY set, a Markdown summary is appended.';

function shardOption(value: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(value.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 1 || index > count)
    throw new InvalidArgumentError('expected k/n with 1 <= k <= n, e.g. 2/4');
  return { index, count };
}

function selectionOptions(opts: Record<string, unknown>) {
  const selection = {
    ...(Array.isArray(opts.test) ? { tests: opts.test as string[] } : {}),
    ...(typeof opts.grep === 'string' ? { grep: opts.grep } : {}),
    ...(opts.shard !== undefined ? { shard: opts.shard as { index: number; count: number } } : {}),
  };
  const github = {
    ...(process.env.GITHUB_WORKSPACE ? { workspace: process.env.GITHUB_WORKSPACE } : {}),
    ...(process.env.GITHUB_STEP_SUMMARY ? { stepSummaryFile: process.env.GITHUB_STEP_SUMMARY } : {}),
  };
  return { selection, github };
}

/** How `test` and `rerecord` find the app they start: its port and how long to wait for it. */
function appPortOption(): Option {
  return new Option('--app-port <port>', 'port the app listens on (default: from tlsrec.yaml)').argParser(
    positiveInt('--app-port'),
  );
}

function readyTimeoutOption(): Option {
  return new Option('--ready-timeout <seconds>', 'how long to wait for the app').argParser(
    positiveInt('--ready-timeout'),
  );
}

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('tlsrec')
    .description(
      "Record a running app's real HTTP(S) traffic with eBPF and replay it as API tests and mocks. " +
        'Incoming requests become test cases, outgoing calls become mocks (Keploy-compatible YAML).',
    )
    .version(pkg.version, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('record')
    .summary('run a command and record its HTTP traffic as tests and mocks')
    .description(
      'Run COMMAND in a cgroup of its own and record every HTTP exchange it takes part in, over TLS ' +
        '(OpenSSL SSL_read/SSL_write uprobes: no proxy, no certificate) or plaintext sockets. ' +
        'Requests the command RECEIVES become tests (<dir>/<test-set>/tests/test-N.yaml); requests it SENDS ' +
        'become mocks (<dir>/<test-set>/mocks.yaml). Stop with Ctrl-C, or let COMMAND exit. ' +
        'The files are written by a file-writer process that only uses otherwise idle CPU, so under load ' +
        'they appear later; record waits for the last ones before it exits. ' +
        'Needs root (or CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN).',
    )
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  tlsrec record -- npm start\n' +
        '  tlsrec record --test-set login-flow -- node server.js\n' +
        '  tlsrec record -- curl https://example.com/\n' +
        '  PORT=3000 tlsrec record --env PORT -- node server.js   # tlsrec.yaml gets env: {PORT: "3000"}\n\n' +
        '--env NAME writes NAME and its current value into tlsrec.yaml `env:`, which `tlsrec test` and\n' +
        '`tlsrec rerecord` set for the app (a variable already set where tlsrec runs wins). The value is\n' +
        'written IN CLEAR and committed with the tests: never pass secrets (API keys, passwords) this way.\n\n' +
        "Exit code: the command's own when it exits by itself; 0 when stopped with Ctrl-C or SIGTERM;\n" +
        '2 bad usage; 3 environment (privileges, kernel features), the command could not start,\n' +
        'the kernel lost data (see --ringbuf) or files could not be written (disk full).\n\n' +
        'OpenSSL probes go on a file when a process of the command first maps it: that process is\n' +
        'stopped (SIGSTOP) for the moment it takes to attach them, once per file, so its first\n' +
        'exchange is recorded, and files the command never maps carry no probes.\n\n' +
        'Environment: TLSREC_UPROBE_MULTI=0 attaches the OpenSSL probes as perf-event uprobes even where\n' +
        'the kernel has uprobe_multi links (Linux 6.6+; those attach and detach much faster).\n' +
        'TLSREC_ATTACH_ON_MAP=0 attaches them up front instead, to the system libssl and the node binary,\n' +
        'and stops nothing (every libssl user on the machine then carries the probes while recording).',
    )
    .argument('<command...>', 'the command to run and record (put it after --)')
    .option('--dir <path>', 'where test sets are written', 'tlsrec')
    .option('--test-set <name>', 'test set name (default: the next free test-set-N)')
    .option('--config <file>', 'config file written when absent (command, app port)', 'tlsrec.yaml')
    .option(
      '--redact <header>',
      'also keep this header out of the files (repeatable; JSON keys and paths: redact in tlsrec.yaml)',
      collect,
    )
    .option(
      '--env <name>',
      'write this environment variable and its current value into tlsrec.yaml env: for replay (repeatable; in clear, not for secrets)',
      collect,
    )
    .option(
      '--proto <dir>',
      'a directory of .proto files: gRPC messages are also written as JSON; remembered in tlsrec.yaml proto: (repeatable)',
      collect,
    )
    .option('--no-redact', 'keep secrets (Authorization, Cookie, API keys, passwords, tokens) in the files')
    .option('--dump-events <file>', 'also write the raw capture events (JSON lines) for debugging or fixtures')
    .addOption(
      new Option('--ringbuf <size>', 'kernel ring buffer size, a power of two: 64M, 256M, 512K')
        .argParser(ringbufSize)
        .default(DEFAULT_RINGBUF_BYTES, sizeText(DEFAULT_RINGBUF_BYTES)),
    )
    .addOption(
      new Option(
        '--max-backlog <size>',
        "pause the command (up to 20 ms at a time) while more than this much captured data waits in tlsrec's memory, rather than lose data (0: never pause)",
      )
        .argParser(byteSize)
        .default(DEFAULT_MAX_BACKLOG_BYTES, sizeText(DEFAULT_MAX_BACKLOG_BYTES)),
    )
    .option('-q, --quiet', 'no status line and no summary')
    .option('--verbose', 'show details (verifier logs, attach points)')
    .action(async (command: string[], opts: Record<string, unknown>) => {
      const [{ recordCommand }, { processSignals, recordTerminal }] = await Promise.all([
        import('./record/record-command.js'),
        import('./cli/record-terminal.js'),
      ]);
      const { envValues } = await import('./format/config-env.js');
      const configEnv = envValues((opts.env as string[] | undefined) ?? []);
      const { protoDirsOf } = await import('./format/config-proto.js');
      const protoDirs = protoDirsOf((opts.proto as string[] | undefined) ?? []);
      const result = await recordCommand({
        ...(Object.keys(configEnv).length > 0 ? { configEnv } : {}),
        ...(protoDirs.length > 0 ? { protoDirs } : {}),
        command,
        dir: String(opts.dir),
        testSet: opts.testSet as string | undefined,
        configPath: String(opts.config),
        redact: opts.redact !== false,
        extraRedactHeaders: Array.isArray(opts.redact) ? (opts.redact as string[]) : [],
        dumpEvents: opts.dumpEvents as string | undefined,
        ringbufBytes: opts.ringbuf as number,
        maxBacklogBytes: opts.maxBacklog as number,
        observer: recordTerminal(process.stderr, { quiet: Boolean(opts.quiet), verbose: Boolean(opts.verbose) }),
        interrupts: processSignals(),
      });
      setExit(result.exitCode);
    });

  program
    .command('test')
    .summary('start the app, serve the mocks, replay the tests, diff and report')
    .description(
      'Replay recorded tests against the app and compare status, headers and bodies. ' +
        'The app is started from COMMAND (or tlsrec.yaml) in a cgroup of its own; its outgoing calls are ' +
        'answered from the recorded mocks (eBPF connect redirect, DNS answers, a per-run CA) so the run ' +
        'needs no network.',
    )
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  tlsrec test\n' +
        '  tlsrec test --test-set test-set-0 --reporter junit --report-dir reports/\n' +
        '  tlsrec test -- node server.js\n' +
        '  tlsrec test --app-url http://localhost:3000 --no-mocks\n' +
        '  tlsrec test --detect-noise     # volatile fields (ids, times, nonces) become noise\n' +
        "  tlsrec test --update           # accept the app's new answers into the failing tests\n" +
        SELECTION_EXAMPLES +
        "\ntlsrec.yaml `env:` (see record --env) is set in the app's environment; a variable already set\n" +
        'where tlsrec runs wins (PORT=4000 tlsrec test overrides env: {PORT: "3000"} for one run).\n' +
        '\nExit code: 0 all passed, 1 a test failed, 2 bad usage or input files, 3 environment or app failure,\n' +
        '130/143 interrupted.\n\n' +
        'Secrets: a {{ .secret.NAME }} in a test takes its value from TLSREC_SECRET_NAME, else from the\n' +
        'secrets file named in tlsrec.yaml (written by record, git-ignored). Reports show [secret NAME].\n' +
        SELECTION_HELP,
    )
    .argument('[command...]', 'the command that starts the app (default: command in tlsrec.yaml)')
    .option('--dir <path>', 'where test sets are read from', 'tlsrec')
    .option('--test-set <name>', 'run only this test set (repeatable)', collect)
    .option('--config <file>', 'config file', 'tlsrec.yaml')
    .option('--app-url <url>', 'the app is already running here: do not start it')
    .addOption(appPortOption())
    .option('--health-url <url>', 'wait until this URL answers before replaying')
    .addOption(readyTimeoutOption())
    .option('--no-mocks', 'do not serve mocks: outgoing calls go to the real network')
    .addOption(
      new Option('--reporter <name>', 'terminal, junit, json or github (repeatable)')
        .choices(['terminal', 'junit', 'json', 'github'])
        .argParser((value: string, previous: string[] | undefined) => {
          if (!['terminal', 'junit', 'json', 'github'].includes(value))
            throw new InvalidArgumentError('expected terminal, junit, json or github');
          return [...(previous ?? []), value];
        }),
    )
    .option(
      '--test <name>',
      "run only tests with this name or glob (repeatable): test-3, 'test-1*', 'test-set-0/*'",
      collect,
    )
    .option('--grep <regex>', 'run only tests whose "METHOD /path?query" matches this regular expression')
    .addOption(
      new Option('--shard <k/n>', 'run the k-th of n disjoint parts of the selected tests (CI fan-out)').argParser(
        shardOption,
      ),
    )
    .option('--report-dir <path>', 'where junit/json reports are written (default: <dir>/reports/<run>)')
    .option('--verbose', "show the app's output and details")
    .option(
      '--detect-noise',
      'replay each set twice with a fresh app, write the fields that differ between the runs as noise (tests and mocks), then run',
    )
    .option(
      '--update',
      "write the app's answers into the failing tests (status, headers, body), keeping comments and noise",
    )
    .action(async (command: string[], opts: Record<string, unknown>) => {
      const { testCommand } = await import('./replay/test-command.js');
      const result = await testCommand({
        command: command.length > 0 ? command : undefined,
        dir: String(opts.dir),
        testSets: opts.testSet as string[] | undefined,
        configPath: String(opts.config),
        appUrl: opts.appUrl as string | undefined,
        appPort: opts.appPort as number | undefined,
        healthUrl: opts.healthUrl as string | undefined,
        readyTimeoutMs: opts.readyTimeout === undefined ? undefined : (opts.readyTimeout as number) * 1000,
        mocks: opts.mocks !== false,
        reporters: (opts.reporter as Array<'terminal' | 'junit' | 'json' | 'github'> | undefined) ?? ['terminal'],
        reportDir: opts.reportDir as string | undefined,
        verbose: Boolean(opts.verbose),
        detectNoise: opts.detectNoise === true,
        update: opts.update === true,
        ...selectionOptions(opts),
      });
      setExit(result.exitCode);
    });

  program
    .command('validate')
    .summary('check tlsrec.yaml, every test and every mock file without starting anything')
    .description(
      'Read tlsrec.yaml, every test file and every mocks.yaml with the checks tlsrec test makes before it ' +
        'starts anything (YAML syntax, schema, URLs, bodies, noise keys and regexes), and list every problem ' +
        'of every file as file:line:column. No app is started and nothing is written.',
    )
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  tlsrec validate\n' +
        '  tlsrec validate --dir keploy --test-set test-set-1\n' +
        '  tlsrec validate --config ci/tlsrec.yaml\n\n' +
        'Output: one line "OK: <sets>, <tests>, <mocks>" when every file is valid (exit 0); otherwise every\n' +
        'problem, one per line as file:line:column: what was found and what was expected (exit 2).',
    )
    .option('--dir <path>', 'where test sets are read from', 'tlsrec')
    .option('--test-set <name>', 'check only this test set (repeatable)', collect)
    .option('--config <file>', 'config file', 'tlsrec.yaml')
    .action(async (opts: Record<string, unknown>) => {
      const { checkFiles, checkSummary } = await import('./format/check-files.js');
      const { docReaders } = await import('./protocols/files.js');
      const result = checkFiles({
        readers: docReaders(),
        dir: String(opts.dir),
        ...(Array.isArray(opts.testSet) ? { testSets: opts.testSet as string[] } : {}),
        configPath: String(opts.config),
      });
      // stdout carries only the OK line; what is worth knowing but not wrong goes to stderr.
      for (const note of result.notes) process.stderr.write(`note: ${note}\n`);
      process.stdout.write(`${checkSummary(result)}\n`);
      setExit(0);
    });

  program
    .command('rerecord')
    .summary("drive the app with a set's own requests against the real upstreams and record a fresh set")
    .description(
      'Re-record a test set from the app as it answers today: start the app (from tlsrec.yaml or COMMAND) under ' +
        "recording with the real network (no mocks), wait until it is ready, send the set's recorded requests in " +
        'order, stop it, and write a NEW test set (the next free test-set-N; the old set is not changed). Each new ' +
        "test keeps the old test's file name and the old test's noise entries (same method, URL and body); " +
        "record-time noise flags the new answer's UUIDs and times. Then, per test, says whether the new answer " +
        'differs from the old one (status, headers, body, with the noise of both). ' +
        'Needs root (or CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN), as record does.',
    )
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  tlsrec rerecord                              # every set, app command from tlsrec.yaml\n' +
        '  tlsrec rerecord --test-set test-set-0 -- node server.js\n' +
        '  tlsrec rerecord; tlsrec test --test-set test-set-1   # then replay the fresh set offline\n\n' +
        'Exit code: 0 every answer is the same as recorded; 1 some answer differs or got none (the new set is\n' +
        'written either way: review it); 2 bad usage or input files; 3 environment (privileges, kernel) or the\n' +
        'app did not start. tlsrec.yaml `env:` is set for the app (a variable set where tlsrec runs wins).',
    )
    .argument('[command...]', 'the command that starts the app (default: command in tlsrec.yaml)')
    .option('--dir <path>', 'where test sets are read and the new one is written', 'tlsrec')
    .option('--test-set <name>', 're-record only this test set (repeatable; default: every set)', collect)
    .option('--config <file>', 'config file', 'tlsrec.yaml')
    .addOption(appPortOption())
    .option('--health-url <url>', 'wait until this URL answers before sending')
    .addOption(readyTimeoutOption())
    .option('--verbose', "show the recording's summary and details")
    .action(async (command: string[], opts: Record<string, unknown>) => {
      const [{ rerecordCommand }, { recordTerminal }] = await Promise.all([
        import('./commands/rerecord.js'),
        import('./cli/record-terminal.js'),
      ]);
      const verbose = Boolean(opts.verbose);
      const result = await rerecordCommand({
        command: command.length > 0 ? command : undefined,
        dir: String(opts.dir),
        testSets: opts.testSet as string[] | undefined,
        configPath: String(opts.config),
        appPort: opts.appPort as number | undefined,
        healthUrl: opts.healthUrl as string | undefined,
        readyTimeoutMs: opts.readyTimeout === undefined ? undefined : (opts.readyTimeout as number) * 1000,
        verbose,
        recordObserver: recordTerminal(process.stderr, { quiet: !verbose, verbose }),
        out: process.stdout,
      });
      setExit(result.exitCode);
    });

  return program;
}

/** Print a typed error as the user should see it: one line of cause, the stage, what to do. */
function printError(err: unknown, verbose: boolean): ExitCode {
  if (isTlsrecError(err)) {
    if (err instanceof InputFileError) {
      // The problems are listed one per line; the message's own copy of them is not repeated.
      process.stderr.write(`tlsrec: ${err.message.split('\n')[0]}\n`);
      for (const p of err.problems) process.stderr.write(`  ${p}\n`);
    } else {
      process.stderr.write(`tlsrec: ${err.message}\n`);
    }
    process.stderr.write(`  stage: ${err.stage} (${err.code})\n`);
    if (err.hint) process.stderr.write(`  try: ${err.hint}\n`);
    if (err.detail && verbose) process.stderr.write(`${err.detail}\n`);
    else if (err.detail) process.stderr.write('  (more detail with --verbose)\n');
    return err.exitCode;
  }
  // A bug in tlsrec, not a user error: show the stack so it can be reported.
  process.stderr.write(`tlsrec: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 3;
}

/** The single exit point. */
export async function main(argv: string[]): Promise<void> {
  // `tlsrec test | head`: a closed pipe ends output quietly, as for any Unix tool.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw err;
    });
  }
  let exitCode = 0;
  const program = buildProgram((code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit 0; everything else commander rejects is bad usage.
      exitCode = err.exitCode === 0 ? 0 : 2;
    } else {
      exitCode = printError(err, argv.includes('--verbose'));
    }
  }
  process.exitCode = exitCode;
}
