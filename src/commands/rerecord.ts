// The engine of `tlsrec rerecord`: refresh a test set from the app as it answers today, against the
// real upstreams. Per selected set:
//
//   record engine (recordCommand: cgroup, eBPF capture, writer) runs the app, no mocks
//     └─ drive: wait until the app is ready ─▶ send the set's requests in order (sender.ts), their
//        references filled in as `test` does (secrets supplied, variables captured from the answers) ─▶ done
//   ─▶ the app is stopped, the recording is written as a NEW set (the next free test-set-N)
//   ─▶ the new set is matched to the old one, test by test, by request (method + path and query +
//      body): each new test takes the old test's file name and `name`, and the old test's noise
//      entries (its hand edits) are added to the noise the recording flagged; recorded exchanges
//      that rerecord did not send (health-check polls) are removed
//   ─▶ per test: does the new answer differ from the old one (compare.ts, with the noise of both)?
//
// The old set is never changed. Outcome: exitCode 0 when every answer is the same, 1 when one
// differs or got no answer (the new set is written either way, like `git diff --exit-code`).

import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { isMap, parseDocument } from 'yaml';
import { AppError, InterruptedError, UsageError, causeText } from '../errors.js';
import { mergeNoise } from '../format/noise.js';
import { loadConfig } from '../format/config-reader.js';
import { listTestSets, loadTestSets } from '../format/reader.js';
import { docReaders } from '../protocols/files.js';
import type { Config, NoiseRule, TestCase, TestSet } from '../format/types.js';
import { anyRecentTime, findVolatileFields } from '../format/volatile.js';
import { firstHeader } from '../model/headers.js';
import { DEFAULT_MAX_BACKLOG_BYTES, DEFAULT_RINGBUF_BYTES } from '../capture/defaults.js';
import { recordCommand, type RecordObserver } from '../record/record-command.js';
import { acceptingHost, healthAnswers } from '../replay/app.js';
import { configEnvForApp } from '../replay/app-env.js';
import { compareResponse } from '../replay/compare.js';
import { portFromTests, selectTestSets } from '../replay/run-tests.js';
import { createSender, requestPath } from '../replay/sender.js';
import { SecretStore } from '../replay/secrets.js';
import { keployTemplateValues, VariableScope } from '../replay/variables.js';

export interface RerecordOptions {
  dir: string;
  /** Sets to re-record (default: every set in `dir`). */
  testSets?: string[];
  configPath: string;
  /** The app's command (default: tlsrec.yaml's). */
  command?: string[];
  appPort?: number;
  healthUrl?: string;
  readyTimeoutMs?: number;
  /** Per-request limit. Default 30 s. */
  requestTimeoutMs?: number;
  verbose: boolean;
  /** The per-test report. */
  out: NodeJS.WritableStream;
  /** Hears the recording as it goes (the CLI shows its summary with --verbose). */
  recordObserver?: RecordObserver;
}

export type RerecordOutcome = 'same' | 'differs' | 'no-answer';

export interface RerecordTest {
  /** The old test's name (the new test has the same). */
  name: string;
  request: string;
  outcome: RerecordOutcome;
  /** What differs ("body $.status: expected "accepted", got "queued""), or why there is no answer. */
  details: string[];
  /** Noise entries of the old test carried into the new one. */
  noiseCarried: string[];
}

export interface RerecordSet {
  oldSet: string;
  newSet: string;
  newDir: string;
  tests: RerecordTest[];
  mocks: number;
  /** Recorded exchanges rerecord did not send (health checks), removed from the new set. */
  dropped: number;
}

export interface RerecordResult {
  exitCode: 0 | 1;
  sets: RerecordSet[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Sent = { ok: true } | { ok: false; error: string };

export async function rerecordCommand(opts: RerecordOptions): Promise<RerecordResult> {
  const config = loadConfig(opts.configPath);
  const all = loadTestSets(opts.dir, { config, readers: docReaders() });
  if (all.length === 0) {
    throw new UsageError(`no test sets found in ${opts.dir}`, {
      stage: 'read tests',
      hint: 'record some first (tlsrec record -- <command>) or point --dir at a folder that holds test-set-*/tests/*.yaml',
    });
  }
  const sets = selectTestSets(all, opts.testSets);
  const command = opts.command ?? config.command;
  if (!command) {
    throw new UsageError('no command to start the app', {
      stage: 'start app',
      hint: 'give it after --  (tlsrec rerecord -- node server.js) or set `command` in tlsrec.yaml',
    });
  }
  const results: RerecordSet[] = [];
  for (const set of sets) {
    if (set.tests.length === 0) {
      opts.out.write(`tlsrec rerecord: ${set.name} has no tests: nothing to send, skipped\n`);
      continue;
    }
    results.push(await rerecordSet(set, command, config, opts));
  }
  const bad = results.some((s) => s.tests.some((t) => t.outcome !== 'same'));
  return { exitCode: bad ? 1 : 0, sets: results };
}

async function rerecordSet(
  set: TestSet,
  command: string[],
  config: Config,
  opts: RerecordOptions,
): Promise<RerecordSet> {
  const port = opts.appPort ?? config.appPort ?? portFromTests(set);
  const healthUrl = opts.healthUrl ?? config.healthUrl;
  if (port === undefined && healthUrl === undefined) {
    throw new UsageError('cannot tell when the app is ready: no app port and no health URL', {
      stage: 'start app',
      hint: 'set appPort (or healthUrl) in tlsrec.yaml, or pass --app-port',
    });
  }
  const readyTimeoutMs = opts.readyTimeoutMs ?? config.readyTimeoutMs;
  const secrets = SecretStore.load(config);
  const sent = new Map<TestCase, Sent>();
  let driveError: unknown;
  // While the app runs, the record engine stops it on SIGINT/SIGTERM and writes what it has; the
  // signal is noted here so that the run ends as interrupted, not with the unsent tests reported
  // as unanswered.
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupted ??= sig;
  };

  const drive = async (appExited: AbortSignal): Promise<void> => {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      const baseUrl = await waitReady(port, healthUrl, readyTimeoutMs, appExited);
      const sender = createSender({
        baseUrl,
        ...(opts.requestTimeoutMs !== undefined ? { timeoutMs: opts.requestTimeoutMs } : {}),
      });
      // As at replay: {{ .secret.NAME }} from the secrets file or TLSREC_SECRET_*, {{ .token }} from
      // what the app answered earlier in this run.
      const scope = new VariableScope(secrets, keployTemplateValues(set.dir));
      try {
        for (const test of set.tests) {
          if (appExited.aborted || interrupted !== undefined) {
            sent.set(test, { ok: false, error: 'not sent: the app had exited' });
            continue;
          }
          try {
            const answer = await sender.send(scope.prepare(test).test);
            scope.expect(test.expected, answer.response);
            sent.set(test, { ok: true });
          } catch (err) {
            sent.set(test, { ok: false, error: `no response from the app: ${causeText(err)}` });
          }
        }
      } finally {
        await sender.close();
      }
    } catch (err) {
      driveError = err;
    }
  };

  opts.out.write(
    `tlsrec rerecord: ${set.name}: starting ${command.join(' ')} under recording, real network (no mocks)\n`,
  );
  let recorded: Awaited<ReturnType<typeof recordCommand>>;
  try {
    recorded = await recordCommand({
      command,
      dir: opts.dir,
      configPath: opts.configPath,
      redact: true,
      extraRedactHeaders: config.redactHeaders,
      ringbufBytes: DEFAULT_RINGBUF_BYTES,
      maxBacklogBytes: DEFAULT_MAX_BACKLOG_BYTES,
      ...(opts.recordObserver ? { observer: opts.recordObserver } : {}),
      commandEnv: configEnvForApp(config.env ?? {}),
      drive,
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const newSet = basename(recorded.testSetDir);
  if (interrupted !== undefined) {
    if (recorded.tests === 0 && recorded.mocks === 0) {
      rmSync(recorded.testSetDir, { recursive: true, force: true });
      throw new InterruptedError(interrupted, 'rerecord', 'the app was stopped before anything was recorded');
    }
    throw new InterruptedError(
      interrupted,
      'rerecord',
      `the app was stopped; ${recorded.testSetDir} holds what was recorded before (not matched to ${set.name}: delete it or re-run)`,
    );
  }
  if (driveError !== undefined) {
    // Nothing useful was recorded: the app never became ready. Do not leave an empty set behind.
    rmSync(recorded.testSetDir, { recursive: true, force: true });
    throw driveError;
  }

  const fresh = listTestSets(opts.dir).includes(newSet)
    ? loadTestSets(opts.dir, { only: [newSet], config, readers: docReaders() })[0]!
    : undefined;
  const { pairs, unmatched } = matchByRequest(
    set.tests.filter((t) => sent.get(t)?.ok === true),
    fresh?.tests ?? [],
  );
  for (const t of unmatched) rmSync(t.file, { force: true });

  // The new files take the old names in two steps (a new test-1 may have to become test-3 while
  // test-3 becomes test-1): first to hidden names the reader ignores, then into place.
  const staged: Array<[string, string]> = [];
  const carried = new Map<TestCase, string[]>();
  pairs.forEach(([oldTest, newTest], i) => {
    const hidden = join(recorded.testSetDir, 'tests', `.rerecord-${i}.yaml`);
    carried.set(oldTest, adoptOldTest(oldTest, newTest, hidden));
    rmSync(newTest.file, { force: true });
    staged.push([hidden, join(recorded.testSetDir, 'tests', basename(oldTest.file))]);
  });
  for (const [from, to] of staged) renameSync(from, to);

  const newByOld = new Map(pairs);
  const tests: RerecordTest[] = set.tests.map((oldTest) => {
    const request = `${oldTest.request.method.toUpperCase()} ${requestPath(oldTest.request.url)}`;
    const s = sent.get(oldTest);
    const newTest = newByOld.get(oldTest);
    if (!s?.ok || !newTest) {
      const why =
        s && !s.ok
          ? s.error
          : s
            ? 'the app answered, but the exchange was not recorded (see tlsrec record --verbose)'
            : 'not sent';
      return { name: oldTest.name, request, outcome: 'no-answer', details: [why], noiseCarried: [] };
    }
    const cmp = compareResponse(
      oldTest.name,
      oldTest.expected,
      { status: newTest.expected.status, headers: newTest.expected.headers, body: newTest.expected.body.bytes },
      comparisonNoise(oldTest, newTest),
    );
    return {
      name: oldTest.name,
      request,
      outcome: cmp.passed ? 'same' : 'differs',
      details: cmp.failures.map((f) => f.message.replace(`${oldTest.name}: `, '')),
      noiseCarried: carried.get(oldTest) ?? [],
    };
  });
  const result: RerecordSet = {
    oldSet: set.name,
    newSet,
    newDir: recorded.testSetDir,
    tests,
    mocks: recorded.mocks,
    dropped: unmatched.length,
  };
  writeSetReport(opts.out, result, set.dir);
  return result;
}

/**
 * The old test's noise, plus the record-time flags of the new answer for fields whose OLD value is
 * volatile-shaped too (a UUID then and now, a time then and now). A flag on a field that held a
 * stable value before ("pro" that became a UUID) is a real change and must be reported.
 */
export function comparisonNoise(oldTest: TestCase, newTest: TestCase): NoiseRule[] {
  const oldVolatile = new Set(
    findVolatileFields({
      request: { url: oldTest.request.url, body: oldTest.request.body.bytes },
      response: {
        headers: oldTest.expected.headers,
        body: oldTest.expected.body.bytes,
        contentType: firstHeader(oldTest.expected.headers, 'content-type'),
      },
      window: anyRecentTime(),
    }).map((f) => f.key.toLowerCase()),
  );
  const ownKeys = new Set(oldTest.noise.map((r) => r.key.toLowerCase()));
  return mergeNoise(
    oldTest.noise,
    newTest.noise.filter((r) => ownKeys.has(r.key.toLowerCase()) || oldVolatile.has(r.key.toLowerCase())),
  );
}

/** Polls the app's port (or health URL) until it answers; fails when the app exits or time runs out. */
async function waitReady(
  port: number | undefined,
  healthUrl: string | undefined,
  timeoutMs: number,
  appExited: AbortSignal,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (appExited.aborted) {
      throw new AppError('the app exited before it was ready', {
        stage: 'start app',
        hint: 'its output is above; run the command by hand to see it start',
      });
    }
    if (healthUrl !== undefined) {
      if (await healthAnswers(healthUrl)) {
        const host = port !== undefined ? await acceptingHost(port) : undefined;
        return port !== undefined ? `http://${host ?? '127.0.0.1'}:${port}` : new URL(healthUrl).origin;
      }
    } else {
      const host = await acceptingHost(port!);
      if (host !== undefined) return `http://${host}:${port}`;
    }
    if (Date.now() > deadline) {
      const what = healthUrl !== undefined ? `${healthUrl} did not answer` : `port ${port} did not accept connections`;
      throw new AppError(`the app was not ready after ${Math.round(timeoutMs / 1000)} s: ${what}`, {
        stage: 'start app',
        hint: 'check the app port (appPort) and that the app listens on it; raise readyTimeout in tlsrec.yaml if it starts slowly',
      });
    }
    await sleep(50);
  }
}

/** method + path and query + body: what makes two requests "the same". */
function requestKey(t: TestCase): string {
  return `${t.request.method.toUpperCase()} ${requestPath(t.request.url)}\n${t.request.body.bytes.toString('base64')}`;
}

/**
 * Pairs each sent old test with the first not yet taken new test of the same request, in order.
 * New tests left over were not sent by rerecord (the app's own health checks).
 */
export function matchByRequest(
  sentTests: readonly TestCase[],
  newTests: readonly TestCase[],
): { pairs: Array<[TestCase, TestCase]>; unmatched: TestCase[] } {
  const free = [...newTests];
  const pairs: Array<[TestCase, TestCase]> = [];
  for (const old of sentTests) {
    const key = requestKey(old);
    const i = free.findIndex((n) => requestKey(n) === key);
    if (i < 0) continue;
    pairs.push([old, free[i]!]);
    free.splice(i, 1);
  }
  return { pairs, unmatched: free };
}

/**
 * Writes the new test to `to` under the old test's name, with the old test's noise entries added
 * to its own (those it already has, in any case, are kept as recorded). Returns the keys carried.
 */
function adoptOldTest(oldTest: TestCase, newTest: TestCase, to: string): string[] {
  const oldNoise = readNoiseMap(oldTest.file);
  const doc = parseDocument(readFileSync(newTest.file, 'utf8'));
  doc.set('name', oldTest.name);
  const have = new Set(
    Object.keys(readNoiseFromDoc(doc.getIn(['spec', 'assertions', 'noise']))).map((k) => k.toLowerCase()),
  );
  const carried: string[] = [];
  for (const [key, patterns] of Object.entries(oldNoise)) {
    if (have.has(key.toLowerCase())) continue;
    if (!isMap(doc.getIn(['spec', 'assertions', 'noise'])))
      doc.setIn(['spec', 'assertions', 'noise'], doc.createNode({}));
    doc.setIn(['spec', 'assertions', 'noise', key], doc.createNode(patterns));
    carried.push(key);
  }
  writeFileSync(to, doc.toString({ lineWidth: 0, flowCollectionPadding: false }));
  return carried;
}

function readNoiseFromDoc(node: unknown): Record<string, string[]> {
  if (!isMap(node)) return {};
  const js = node.toJSON() as Record<string, unknown>;
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(js)) out[k] = Array.isArray(v) ? v.map(String) : [];
  return out;
}

/** The old test's own `spec.assertions.noise` as written (regex lists kept). */
function readNoiseMap(file: string): Record<string, string[]> {
  if (!existsSync(file)) return {};
  const doc = parseDocument(readFileSync(file, 'utf8'));
  return readNoiseFromDoc(doc.getIn(['spec', 'assertions', 'noise']));
}

function writeSetReport(out: NodeJS.WritableStream, r: RerecordSet, oldDir: string): void {
  const label: Record<RerecordOutcome, string> = { same: 'same     ', differs: 'DIFFERS  ', 'no-answer': 'NO ANSWER' };
  const lines: string[] = [
    `tlsrec rerecord: ${r.oldSet} -> ${r.newSet}: ${r.tests.length} test(s), ${r.mocks} mock(s) recorded from the real upstreams`,
  ];
  for (const t of r.tests) {
    lines.push(`  ${label[t.outcome]} ${t.name}  ${t.request}`);
    const shown = t.details.slice(0, 5);
    for (const d of shown) lines.push(`              ${d}`);
    if (t.details.length > shown.length) lines.push(`              … and ${t.details.length - shown.length} more`);
    if (t.noiseCarried.length > 0)
      lines.push(`              noise kept from ${r.oldSet}: ${t.noiseCarried.join(', ')}`);
  }
  if (r.dropped > 0)
    lines.push(
      `  ${r.dropped} recorded exchange(s) that rerecord did not send (health checks) left out of ${r.newSet}`,
    );
  const n = (o: RerecordOutcome): number => r.tests.filter((t) => t.outcome === o).length;
  lines.push(
    `  ${n('same')} same, ${n('differs')} differ, ${n('no-answer')} without an answer. New set: ${r.newDir} ` +
      `(${oldDir} is unchanged: review the new set, replay it with tlsrec test --test-set ${r.newSet}, then delete the old one)`,
  );
  out.write(lines.join('\n') + '\n');
}
