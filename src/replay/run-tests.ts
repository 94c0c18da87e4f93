// The engine of `tlsrec test`. Per test set: cgroup -> mock session (the redirect programs attach to
// the cgroup, so it comes first) -> start the app with the mock env -> replay each test in order,
// one at a time -> stop the app -> close mocks -> destroy the cgroup. Then reporters.
//
// Mock miss policy: a miss (a call no recorded mock answered; the app got a 502) is shown under
// the test during which it happened, with the closest mock and the field that differed, and is
// counted in the summary. By itself it does not fail the test (Keploy-like: the test is the
// response; a miss that matters changes the response and fails it anyway); `strictMocks` makes
// any miss fail the run.
//
// SIGINT/SIGTERM during a run: the current step is abandoned, the app's cgroup is stopped, mocks
// closed, and runTests rejects with InterruptedError (exitCode 130/143) for the CLI to exit with.
// A second signal kills the app's cgroup at once and exits.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError, causeText } from '../errors.js';
import type { LoadedDoc } from '../format/protocol-docs.js';
import type { Config, NoiseRule, TestCase, TestSet } from '../format/types.js';
import type { Protocol } from '../protocols/protocol.js';
import { Cgroup } from '../native/cgroup.js';
import { startApp, type RunningApp } from './app.js';
import { configEnvForApp } from './app-env.js';
import { compareResponse, type ActualResponse } from './compare.js';
import {
  loadMockSessionStarter,
  type MockMiss,
  type MockSession,
  type ReceivedCall,
  type StartMockSession,
} from './mock-session.js';
import {
  TerminalReporter,
  countRun,
  newRunId,
  writeFileReports,
  type MockMissInfo,
  type ReporterName,
  type RunReport,
  type SetReport,
  type TestReport,
} from './report/index.js';
import { createSender, requestPath, type Sender } from './sender.js';
import { selectTests, type TestSelection } from './select.js';
import { writeGithubReport } from './report/github.js';
import { SecretStore, scrubbingStream } from './secrets.js';
import { keployTemplateValues, VariableScope } from './variables.js';
import { hasRef } from '../format/templates.js';
import { inFileOrder, replayProtocolTest } from './protocol-tests.js';
import { Interruptor } from './interruptor.js';
import { withSecretHint } from './secret-hints.js';

export interface TestOptions {
  dir: string;
  testSets?: string[];
  command?: string[];
  /** An app that is already running: no start, no mocks. */
  appUrl?: string;
  appPort?: number;
  healthUrl?: string;
  readyTimeoutMs?: number;
  mocks: boolean;
  reporters: Array<'terminal' | 'junit' | 'json' | 'github'>;
  reportDir?: string;
  verbose?: boolean;
  out: NodeJS.WritableStream;
  config: Config;
  testSetsLoaded: TestSet[];
  /** Per-request limit (headers, and body). Default 30 s. */
  requestTimeoutMs?: number;
  /** SIGTERM -> SIGKILL grace period when stopping the app. Default 5 s. */
  stopGraceMs?: number;
  /** A mock miss fails the run even when every response matched. Default false. */
  strictMocks?: boolean;
  /** Working directory of the app. Default: the current one. */
  cwd?: string;
  /** Replaces the mock server module (tests). */
  startMockSession?: StartMockSession;
  /** Protocols that replay tests and serve mocks of kinds other than Http. Default: the registry. */
  protocols?: readonly Protocol[];
  /** Install SIGINT/SIGTERM handlers for the run. Default true. */
  handleSignals?: boolean;
  /** --test / --grep / --shard: which tests of the sets run (a set's mocks stay whole). */
  selection?: TestSelection;
  /** For --reporter github: the repository root annotations are relative to, and $GITHUB_STEP_SUMMARY. */
  github?: { workspace?: string; stepSummaryFile?: string };
  /** Sees each test's response as the app answered (undefined: none) — for --detect-noise and --update. */
  onResponse?: (test: TestCase, set: TestSet, response: ActualResponse | undefined) => void;
  /** Sees every outgoing call the mock server received during a set, once the set has run. */
  onMockCalls?: (set: TestSet, calls: ReceivedCall[]) => void;
  /** Values of {{ .secret.NAME }}. Default: the secrets file of `config` and TLSREC_SECRET_* of the environment. */
  secrets?: SecretStore;
}

export interface TestRunResult {
  passed: number;
  failed: number;
  mockMisses: number;
  exitCode: 0 | 1;
  /** Everything the reporters saw. */
  report: RunReport;
  /** Files written (JUnit, JSON). */
  reportFiles: string[];
}

// ---------------- planning (pure) ----------------

/** Sets to run, in the order given; unknown names are a usage error. */
export function selectTestSets(sets: TestSet[], names: string[] | undefined): TestSet[] {
  if (!names || names.length === 0) return sets;
  const unknown = names.filter((n) => !sets.some((s) => s.name === n));
  if (unknown.length > 0) {
    throw new UsageError(`unknown test set${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`, {
      stage: 'read tests',
      hint: `available: ${sets.map((s) => s.name).join(', ') || '(none)'}`,
    });
  }
  return names.map((n) => sets.find((s) => s.name === n)!);
}

/** The port in the recorded URLs, for when no app port is configured. */
export function portFromTests(set: TestSet): number | undefined {
  for (const t of set.tests) {
    try {
      const u = new URL(t.request.url);
      if (u.port !== '') return Number(u.port);
      return u.protocol === 'https:' ? 443 : 80;
    } catch {
      // relative URL: no port in it
    }
  }
  return undefined;
}

/** One argument with spaces ("npm start") is a shell command line; otherwise an argv. */
export function commandForSpawn(command: string[]): string[] | string {
  return command.length === 1 && /\s/.test(command[0]!) ? command[0]! : command;
}

function noiseFor(test: TestCase, set: TestSet, config: Config): NoiseRule[] {
  return [...test.noise, ...set.noise, ...config.noise];
}

// ---------------- running ----------------

interface Ctx {
  opts: TestOptions;
  intr: Interruptor;
  terminal: TerminalReporter | undefined;
  mockStarter: (() => Promise<StartMockSession>) | undefined;
  secrets: SecretStore;
}

export async function runTests(opts: TestOptions): Promise<TestRunResult> {
  const startedAt = new Date();
  const runId = newRunId(startedAt);
  const picked = selectTests(selectTestSets(opts.testSetsLoaded, opts.testSets), opts.selection ?? {});
  const sets = picked.sets;
  if (!opts.appUrl && !(opts.command ?? opts.config.command)) {
    throw new UsageError('no command to start the app', {
      stage: 'start app',
      hint: 'give it after --, set `command` in tlsrec.yaml, or use --app-url for a running app',
    });
  }
  const terminal = opts.reporters.includes('terminal') ? new TerminalReporter(opts.out) : undefined;
  const secrets = opts.secrets ?? SecretStore.load(opts.config);
  // Said once per missing secret, before the run; the failures it causes name it again.
  for (const [name, tests] of secrets.missing(sets)) {
    const shown = tests.slice(0, 3).join(', ') + (tests.length > 3 ? `, and ${tests.length - 3} more` : '');
    if (terminal)
      opts.out.write(
        `tlsrec: secret ${name} is not set; ${tests.length === 1 ? 'a test sends' : `${tests.length} tests send`} it (${shown}): ${secrets.hint(name)}\n`,
      );
  }
  const intr = new Interruptor(opts.handleSignals ?? true);
  const ctx: Ctx = {
    opts,
    intr,
    terminal,
    mockStarter: opts.mocks ? async () => opts.startMockSession ?? (await loadMockSessionStarter()) : undefined,
    secrets,
  };
  const setReports: SetReport[] = [];
  if (picked.description !== '') {
    terminal?.note(
      picked.selected === 0
        ? `${picked.description}: none of the ${picked.total} tests falls in this shard; nothing to run`
        : `${picked.description}: ${picked.selected} of ${picked.total} tests selected`,
    );
  }
  try {
    for (const set of sets) {
      intr.check();
      setReports.push(await runSet(set, ctx));
    }
  } finally {
    intr.dispose();
  }
  const counts = countRun(setReports);
  const report: RunReport = {
    runId,
    startedAt: startedAt.toISOString(),
    durationMs: Date.now() - startedAt.getTime(),
    ...counts,
    sets: setReports,
  };
  if (picked.description !== '')
    report.selection = { description: picked.description, selected: picked.selected, total: picked.total };
  const reportDir = opts.reportDir ?? join(opts.dir, 'reports', runId);
  const fileReporters = opts.reporters.filter((r): r is ReporterName => r !== 'terminal');
  const reportFiles = writeFileReports(report, fileReporters, reportDir);
  if (opts.reporters.includes('github')) {
    writeGithubReport(report, opts.out, {
      workspace: opts.github?.workspace ?? process.cwd(),
      ...(opts.github?.stepSummaryFile ? { stepSummaryFile: opts.github.stepSummaryFile } : {}),
      summaryLine: terminal === undefined,
    });
  }
  terminal?.finish(report, reportFiles);
  const failed = counts.failed > 0 || (opts.strictMocks === true && counts.mockMisses > 0);
  return {
    passed: counts.passed,
    failed: counts.failed,
    mockMisses: counts.mockMisses,
    exitCode: failed ? 1 : 0,
    report,
    reportFiles,
  };
}

async function runSet(set: TestSet, ctx: Ctx): Promise<SetReport> {
  const { opts, intr, terminal } = ctx;
  const started = Date.now();
  const report: SetReport = { name: set.name, dir: set.dir, tests: [], durationMs: 0, notes: [] };
  const note = (s: string): void => {
    report.notes.push(s);
    terminal?.note(s);
  };
  let cgroup: Cgroup | undefined;
  let mocks: MockSession | undefined;
  let app: RunningApp | undefined;
  let sender: Sender | undefined;
  let tmpDir: string | undefined;
  const missRanges: Array<[TestReport, number, number]> = [];
  let finalMisses: MockMiss[] = [];
  const scope = new VariableScope(ctx.secrets, keployTemplateValues(set.dir));
  const copyMiss = (m: MockMiss): MockMissInfo => ctx.secrets.scrubDeep(copyMissInfo(m));

  const command = opts.command ?? opts.config.command;
  const what = opts.appUrl ? `app at ${opts.appUrl}` : `app: ${command!.join(' ')}`;
  const mockCount = set.mocks.length + (set.protocolMocks?.length ?? 0);
  const tests = inFileOrder(set.tests, set.protocolTests ?? []);
  terminal?.setStart(set.name, tests.length, what);
  try {
    let baseUrl: string;
    if (opts.appUrl) {
      baseUrl = new URL(opts.appUrl).origin;
      if (opts.mocks && mockCount > 0)
        note(
          'mocks are not served to an app that tlsrec did not start (--app-url); its outgoing calls go to the real upstreams',
        );
    } else {
      const port = opts.appPort ?? opts.config.appPort ?? portFromTests(set);
      const healthUrl = opts.healthUrl ?? opts.config.healthUrl;
      try {
        cgroup = Cgroup.create(`test-${set.name.replace(/[^\w.-]/g, '_')}`);
        intr.cgroups.add(cgroup);
      } catch (err) {
        // Without a cgroup there is no redirect for mocks; without mocks a process group will do.
        if (ctx.mockStarter) throw err;
        note(`running the app without a cgroup (${causeText(err)})`);
      }
      let env: Record<string, string> = configEnvForApp(opts.config.env ?? {});
      if (ctx.mockStarter && cgroup) {
        const start = await intr.race(ctx.mockStarter());
        tmpDir = mkdtempSync(join(tmpdir(), 'tlsrec-mocks-'));
        const sessionOpts = {
          mocks: set.mocks,
          protocolMocks: set.protocolMocks ?? [],
          ...(opts.protocols ? { protocols: opts.protocols } : {}),
          cgroup,
          passthrough: opts.config.passthrough,
          tmpDir,
          fillResponse: scope.fillMockResponse,
          ...(port !== undefined ? { appPort: port } : {}),
        };
        mocks = await intr.raceOwned(start(sessionOpts), (m) => m.close());
        env = { ...env, ...mocks.env };
      } else if (!opts.mocks && mockCount > 0) {
        note(
          `mocks disabled: ${mockCount} recorded mock${mockCount === 1 ? '' : 's'} not served; outgoing calls reach the real upstreams`,
        );
      }
      // Not raced: startApp watches the abort signal itself and stops what it started.
      app = await startApp({
        command: commandForSpawn(command!),
        env,
        ...(port !== undefined ? { port } : {}),
        ...(healthUrl !== undefined ? { healthUrl } : {}),
        readyTimeoutMs: opts.readyTimeoutMs ?? opts.config.readyTimeoutMs,
        ...(opts.stopGraceMs !== undefined ? { stopGraceMs: opts.stopGraceMs } : {}),
        ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
        cgroup: cgroup ?? null,
        verbose: opts.verbose === true,
        out: scrubbingStream(opts.out, ctx.secrets),
        signal: intr.abort.signal,
      });
      baseUrl = app.baseUrl;
    }

    sender = createSender({
      baseUrl,
      ...(opts.requestTimeoutMs !== undefined ? { timeoutMs: opts.requestTimeoutMs } : {}),
    });
    let appDied = false;
    for (const test of tests) {
      intr.check();
      const missesBefore = mocks ? mocks.report().misses.length : 0;
      let tr: TestReport;
      if (appDied) {
        tr = failedTest(test, 'request', `${test.name}: not run: the app is no longer running`);
      } else if ('protocol' in test) {
        const replay = {
          baseUrl,
          timeoutMs: opts.requestTimeoutMs ?? 30_000,
          signal: intr.abort.signal,
          ...(opts.config.protoDirs ? { protoDirs: opts.config.protoDirs } : {}),
        };
        tr = await intr.race(replayProtocolTest(test, opts.protocols, replay));
      } else {
        tr = ctx.secrets.scrubDeep(
          await intr.race(runOne(test, set, sender, opts.config, scope, ctx.secrets, opts.onResponse)),
        );
        // A connection reset usually means the app died; its exit event may trail the error a little.
        const noResponse = tr.failures.some((f) => f.kind === 'request');
        const exit = app && noResponse ? await intr.race(app.waitExit(1_000)) : app?.exited();
        if (exit) {
          appDied = true;
          const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
          if (!tr.passed)
            tr.failures.push({
              kind: 'request',
              expected: 'the app running',
              actual: `it ${how}`,
              message: `${test.name}: the app ${how} during this test`,
            });
          note(`the app ${how} during ${test.name}; the remaining tests are not run`);
          report.appOutput = app!.output();
        }
      }
      if (mocks) missRanges.push([tr, missesBefore, mocks.report().misses.length]);
      report.tests.push(tr);
      if (!mocks) terminal?.testDone(tr);
      else {
        // Attribute now for the live line; the final list (same order) is re-read at the end.
        const misses = mocks.report().misses.slice(missesBefore);
        tr.mockMisses = misses.map(copyMiss);
        if (opts.strictMocks && misses.length > 0 && tr.passed) {
          tr.passed = false;
          tr.failures.push(
            ...misses.map((m) => ({
              kind: 'request' as const,
              expected: 'a recorded mock',
              actual: `${m.method} ${m.url}`,
              message: `${test.name}: mock miss: ${m.method} ${m.url}`,
            })),
          );
        }
        terminal?.testDone(tr);
      }
    }
  } finally {
    // Stop in reverse order of starting, each step even if an earlier one failed.
    await sender?.close().catch(() => undefined);
    await app?.stop().catch(() => undefined);
    if (mocks) {
      try {
        const r = mocks.report();
        finalMisses = r.misses;
        if (opts.onMockCalls && mocks.calls) opts.onMockCalls(set, mocks.calls());
        report.mocks = {
          total: mockCount,
          served: r.served.map((x) => ({ mock: x.mock, method: x.method, url: x.url })),
          misses: [],
          unused: [...r.unused],
        };
      } catch {
        // a broken report must not keep the app's cgroup alive
      }
      await mocks.close().catch(() => undefined);
    }
    if (cgroup) {
      const removed = await cgroup.destroy().catch(() => false);
      if (!removed)
        process.stderr.write(`tlsrec: warning: could not remove ${cgroup.path} (processes still exiting)\n`);
      intr.cgroups.delete(cgroup);
    }
    if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
    report.durationMs = Date.now() - started;
  }
  if (report.mocks) {
    // One object per miss, shared by the set and its test, so reporters can tell attributed ones apart.
    const all = finalMisses.map(copyMiss);
    report.mocks.misses = all;
    for (const [tr, from, to] of missRanges) tr.mockMisses = all.slice(from, to);
  }
  return ctx.secrets.scrubDeep(report);
}

function copyMissInfo(m: MockMiss): MockMissInfo {
  return m.closest ? { method: m.method, url: m.url, closest: { ...m.closest } } : { method: m.method, url: m.url };
}

function failedTest(test: TestCase | LoadedDoc, kind: 'request', message: string): TestReport {
  return {
    name: test.name,
    file: test.file,
    method: 'protocol' in test ? test.kind : test.request.method,
    url: 'protocol' in test ? '' : requestPath(test.request.url),
    passed: false,
    durationMs: 0,
    failures: [{ kind, expected: 'a response', actual: 'none', message }],
    mockMisses: [],
  };
}

/** Path and query as the file has them: references stay readable ({{ .token }}, not %7B%7B…), values never show. */
function shownPath(url: string): string {
  return hasRef(url) ? url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '') || '/' : requestPath(url);
}

/** One test: variables and secrets filled in, sent, compared; the report is scrubbed by the caller. */
async function runOne(
  recorded: TestCase,
  set: TestSet,
  sender: Sender,
  config: Config,
  scope: VariableScope,
  secrets: SecretStore,
  onResponse?: TestOptions['onResponse'],
): Promise<TestReport> {
  const started = performance.now();
  const { test, missingSecrets } = scope.prepare(recorded);
  try {
    const sent = await sender.send(test);
    // --detect-noise and --update see the answer against the test as it stands in its file.
    onResponse?.(recorded, set, sent.response);
    const cmp = compareResponse(
      test.name,
      scope.expect(test.expected, sent.response),
      sent.response,
      noiseFor(test, set, config),
    );
    const tr: TestReport = {
      name: test.name,
      file: test.file,
      method: test.request.method,
      url: shownPath(recorded.request.url),
      passed: cmp.passed,
      durationMs: sent.durationMs,
      failures: cmp.failures,
      mockMisses: [],
    };
    if (cmp.diff !== undefined) tr.diff = cmp.diff;
    return withSecretHint(tr, missingSecrets, secrets, recorded);
  } catch (err) {
    onResponse?.(recorded, set, undefined);
    const tr = failedTest(recorded, 'request', `${test.name}: no response from the app: ${causeText(err)}`);
    tr.durationMs = performance.now() - started;
    return withSecretHint(tr, missingSecrets, secrets, recorded);
  }
}
