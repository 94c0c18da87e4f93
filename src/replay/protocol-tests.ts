// Tests of protocols other than HTTP/1 in the test runner: they run among the HTTP tests in the
// order of their files, each through its protocol's `replay` (send the recorded request to the app,
// compare the answer), and are reported like HTTP tests.

import { basename } from 'node:path';
import { causeText } from '../errors.js';
import type { LoadedDoc } from '../format/protocol-docs.js';
import type { TestCase } from '../format/types.js';
import { PROTOCOLS } from '../protocols/index.js';
import type { Protocol } from '../protocols/protocol.js';
import type { TestReport } from './report/index.js';

const naturalCompare = new Intl.Collator('en', { numeric: true }).compare;

/** HTTP tests and other protocols' tests as one list, in the order of their file names (test-1, test-2, …). */
export function inFileOrder(http: readonly TestCase[], others: readonly LoadedDoc[]): Array<TestCase | LoadedDoc> {
  if (others.length === 0) return [...http];
  const out: Array<TestCase | LoadedDoc> = [];
  let i = 0;
  let j = 0;
  while (i < http.length || j < others.length) {
    const a = http[i];
    const b = others[j];
    if (b === undefined || (a !== undefined && naturalCompare(basename(a.file), basename(b.file)) <= 0)) {
      out.push(a!);
      i++;
    } else {
      out.push(b);
      j++;
    }
  }
  return out;
}

export interface ProtocolReplayOptions {
  /** The app's base URL (http://host:port): its host and port are where the test is sent. */
  baseUrl: string;
  timeoutMs: number;
  signal: AbortSignal;
  /** tlsrec.yaml `proto:` (absolute). */
  protoDirs?: readonly string[];
}

/** Runs one test through its protocol's `replay`; a protocol that cannot replay, or fails, fails the test. */
export async function replayProtocolTest(
  test: LoadedDoc,
  protocols: readonly Protocol[] = PROTOCOLS,
  opts: ProtocolReplayOptions,
): Promise<TestReport> {
  const protocol = protocols.find((p) => p.name === test.protocol);
  const failed = (why: string, durationMs = 0): TestReport => ({
    name: test.name,
    file: test.file,
    method: test.kind,
    url: '',
    passed: false,
    durationMs,
    failures: [{ kind: 'request', expected: 'a response', actual: 'none', message: `${test.name}: ${why}` }],
    mockMisses: [],
  });
  if (!protocol?.replay)
    return failed(`tlsrec cannot replay ${test.kind} tests (protocol ${test.protocol} has no replay)`);
  const url = new URL(opts.baseUrl);
  const started = performance.now();
  try {
    const outcome = await protocol.replay(test, {
      app: {
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
      },
      timeoutMs: opts.timeoutMs,
      signal: opts.signal,
      ...(opts.protoDirs ? { protoDirs: opts.protoDirs } : {}),
    });
    const tr: TestReport = {
      name: test.name,
      file: test.file,
      method: outcome.method,
      url: outcome.url,
      passed: outcome.passed,
      durationMs: outcome.durationMs,
      failures: outcome.failures.map((f) => ({
        kind: f.kind ?? 'body',
        path: f.path,
        expected: f.expected,
        actual: f.actual,
        message: f.message,
      })),
      mockMisses: [],
    };
    if (outcome.diff !== undefined) tr.diff = outcome.diff;
    return tr;
  } catch (err) {
    return failed(`no answer from the app: ${causeText(err)}`, performance.now() - started);
  }
}
