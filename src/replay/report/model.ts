// What a test run produced, as plain data: built by run-tests.ts, rendered by the reporters.

import type { CompareFailure } from '../compare.js';

/** A call the app made that no mock answered (the mock server answered 502). */
export interface MockMissInfo {
  method: string;
  url: string;
  closest?: { mock: string; field: string; detail: string };
}

export interface TestReport {
  name: string;
  file: string;
  method: string;
  /** Path and query sent to the app. */
  url: string;
  passed: boolean;
  durationMs: number;
  failures: CompareFailure[];
  /** Unified diff of the bodies, when they differ. */
  diff?: string;
  /** Mock misses that happened while this test ran. */
  mockMisses: MockMissInfo[];
}

export interface SetReport {
  name: string;
  dir: string;
  tests: TestReport[];
  durationMs: number;
  /** undefined when mocks were not served for this set. */
  mocks?: {
    total: number;
    served: Array<{ mock: string; method: string; url: string }>;
    misses: MockMissInfo[];
    unused: string[];
  };
  /** Lines worth showing once for the set (mocks disabled, app died, ...). */
  notes: string[];
  /** Tail of the app's output, kept when something failed. */
  appOutput?: string;
}

export interface RunReport {
  runId: string;
  startedAt: string;
  durationMs: number;
  passed: number;
  failed: number;
  mockMisses: number;
  sets: SetReport[];
  /** Present when --test/--grep/--shard chose the tests: the counts above are this selection's own. */
  selection?: { description: string; selected: number; total: number };
}

export function countRun(sets: SetReport[]): { passed: number; failed: number; mockMisses: number } {
  let passed = 0;
  let failed = 0;
  let mockMisses = 0;
  for (const s of sets) {
    for (const t of s.tests) {
      if (t.passed) passed++;
      else failed++;
    }
    mockMisses += s.mocks?.misses.length ?? 0;
  }
  return { passed, failed, mockMisses };
}

/** The line CI reads; always the last line of the terminal report. */
export function summaryLine(passed: number, failed: number): string {
  return `${passed} passed, ${failed} failed`;
}
