// GitHub Actions reporter: one `::error file=…,line=…,col=…,title=…::message` workflow command per
// failing test, pointing at the line of the test file where the first differing field's expected
// value stands (status_code, the header, the body — inside a pretty JSON block scalar, the line of
// the JSON path), and a Markdown job summary for $GITHUB_STEP_SUMMARY.
//
// Escaping follows the runner's rules (@actions/core): in the message %, CR and LF are
// percent-encoded; in properties also `:` and `,`. GitHub shows at most 10 error annotations per
// step; the job summary lists every failing test.

import { appendFileSync } from 'node:fs';
import * as path from 'node:path';
import { TestFilePositions, type ExpectedField, type FilePosition } from '../../format/positions.js';
import type { CompareFailure } from '../compare.js';
import type { RunReport, TestReport } from './model.js';
import { summaryLine } from './model.js';

/** Workflow command data (the part after `::`). */
export function escapeData(s: string): string {
  return s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

/** Workflow command property value (file=, title=). */
export function escapeProperty(s: string): string {
  return escapeData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

/** compare.ts's JSON paths back into segments: `$.a.b[3]['odd key']` -> ["a", "b", 3, "odd key"]. */
export function parseJsonPath(p: string): Array<string | number> | undefined {
  if (!p.startsWith('$')) return undefined;
  const out: Array<string | number> = [];
  let i = 1;
  while (i < p.length) {
    if (p[i] === '.') {
      const m = /^[A-Za-z_$][\w$]*/.exec(p.slice(i + 1));
      if (!m) return undefined;
      out.push(m[0]);
      i += 1 + m[0].length;
    } else if (p.startsWith("['", i)) {
      let j = i + 2;
      let key = '';
      while (j < p.length && p[j] !== "'") {
        if (p[j] === '\\' && j + 1 < p.length) j++;
        key += p[j];
        j++;
      }
      if (!p.startsWith("']", j)) return undefined;
      out.push(key);
      i = j + 2;
    } else if (p[i] === '[') {
      const m = /^\[(\d+)\]/.exec(p.slice(i));
      if (!m) return undefined;
      out.push(Number(m[1]));
      i += m[0].length;
    } else return undefined;
  }
  return out;
}

/** Which expected field a failure is about. */
export function fieldOf(f: CompareFailure): ExpectedField {
  switch (f.kind) {
    case 'status':
      return { kind: 'status' };
    case 'header':
      // Without a name, the header map itself.
      return { kind: 'header', name: f.path ?? '' };
    case 'request':
      return { kind: 'request' };
    case 'body': {
      const p = f.path ?? '';
      const textLine = /^line (\d+)$/.exec(p);
      if (textLine) return { kind: 'body', textLine: Number(textLine[1]) };
      const segs = parseJsonPath(p);
      return segs ? { kind: 'body', jsonPath: segs } : { kind: 'body' };
    }
  }
}

export interface GithubOptions {
  /** Paths in annotations are relative to this (GitHub resolves them from the repository root). */
  workspace: string;
}

export interface Annotation {
  /** The test file, relative to the workspace. */
  file: string;
  line: number;
  col: number;
  title: string;
  message: string;
  /** The test, for the summary. */
  set: string;
  test: TestReport;
}

function relativeFile(file: string, workspace: string): string {
  const rel = path.relative(workspace, path.resolve(file));
  return rel.startsWith('..') || path.isAbsolute(rel) ? path.resolve(file) : rel.split(path.sep).join('/');
}

const MAX_LISTED_FAILURES = 10;

/** GitHub's limit of error annotations shown per step. */
const GITHUB_ERRORS_SHOWN = 10;

/** One annotation per failing test, at the first failure's expected value. */
export function annotations(run: RunReport, opts: GithubOptions): Annotation[] {
  const out: Annotation[] = [];
  for (const set of run.sets) {
    for (const t of set.tests) {
      if (t.passed) continue;
      const first = t.failures[0];
      let pos: FilePosition = { line: 1, col: 1 };
      if (first) pos = TestFilePositions.read(t.file)?.of(fieldOf(first)) ?? pos;
      const listed = t.failures.slice(0, MAX_LISTED_FAILURES).map((f) => f.message);
      if (t.failures.length > MAX_LISTED_FAILURES)
        listed.push(`… and ${t.failures.length - MAX_LISTED_FAILURES} more differences`);
      const misses = t.mockMisses.map(
        (m) =>
          `mock miss: ${m.method} ${m.url}${m.closest ? ` (closest ${m.closest.mock}: ${m.closest.field} differs: ${m.closest.detail})` : ''}`,
      );
      out.push({
        file: relativeFile(t.file, opts.workspace),
        line: pos.line,
        col: pos.col,
        title: `tlsrec: ${set.name}/${t.name} failed (${t.method} ${t.url})`,
        message: [...listed, ...misses].join('\n') || `${t.name} failed`,
        set: set.name,
        test: t,
      });
    }
  }
  return out;
}

export function annotationCommand(a: Annotation): string {
  return `::error file=${escapeProperty(a.file)},line=${a.line},col=${a.col},title=${escapeProperty(a.title)}::${escapeData(a.message)}`;
}

/** Text for a Markdown table cell: no line breaks, no table or HTML syntax. */
export function markdownCell(s: string): string {
  return s
    .replace(/\r?\n/g, ' ')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/[\\`*_[\]|~#]/g, '\\$&');
}

const MAX_SUMMARY_ROWS = 100;

/** The job summary: counts per set, then the failing tests with the file line to look at. */
export function githubSummary(run: RunReport, failing: readonly Annotation[]): string {
  const lines: string[] = [];
  lines.push(`### tlsrec test: ${summaryLine(run.passed, run.failed)}`, '');
  if (run.selection) {
    lines.push(
      `Selection: ${markdownCell(run.selection.description)} (${run.selection.selected} of ${run.selection.total} tests)`,
      '',
    );
  }
  if (run.sets.length > 0) {
    lines.push('| test set | passed | failed | mock misses |', '|---|---:|---:|---:|');
    for (const s of run.sets) {
      const failed = s.tests.filter((t) => !t.passed).length;
      lines.push(
        `| ${markdownCell(s.name)} | ${s.tests.length - failed} | ${failed} | ${s.mocks?.misses.length ?? 0} |`,
      );
    }
    lines.push('');
  } else {
    lines.push('No tests ran.', '');
  }
  if (failing.length > 0) {
    lines.push(
      '**Failing tests**',
      '',
      '| test | request | first difference | expected value at |',
      '|---|---|---|---|',
    );
    for (const a of failing.slice(0, MAX_SUMMARY_ROWS)) {
      const first = a.test.failures[0]?.message ?? 'failed';
      lines.push(
        `| ${markdownCell(`${a.set}/${a.test.name}`)} | ${markdownCell(`${a.test.method} ${a.test.url}`)} | ${markdownCell(first)} | ${markdownCell(`${a.file}:${a.line}`)} |`,
      );
    }
    if (failing.length > MAX_SUMMARY_ROWS)
      lines.push('', `… and ${failing.length - MAX_SUMMARY_ROWS} more failing tests (see the log).`);
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}

export interface GithubReportOptions extends GithubOptions {
  /** $GITHUB_STEP_SUMMARY: the Markdown summary is appended to it when set. */
  stepSummaryFile?: string;
  /** Also print "N passed, N failed" (when no terminal reporter prints it). */
  summaryLine: boolean;
}

/**
 * Write the annotations to `out` (the runner reads workflow commands from stdout) and append the
 * job summary. A summary file that cannot be written is reported as a warning annotation: the
 * test results stand.
 */
export function writeGithubReport(run: RunReport, out: NodeJS.WritableStream, opts: GithubReportOptions): void {
  const failing = annotations(run, opts);
  for (const a of failing) out.write(`${annotationCommand(a)}\n`);
  if (failing.length > GITHUB_ERRORS_SHOWN) {
    const where = opts.stepSummaryFile ? 'the job summary and the log list' : 'the log lists';
    out.write(
      `::notice title=tlsrec::${escapeData(`${failing.length} tests failed; GitHub shows ${GITHUB_ERRORS_SHOWN} error annotations per step, ${where} them all`)}\n`,
    );
  }
  if (opts.stepSummaryFile) {
    try {
      appendFileSync(opts.stepSummaryFile, githubSummary(run, failing));
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      out.write(
        `::warning title=tlsrec::${escapeData(`cannot append the job summary to ${opts.stepSummaryFile}: ${why}`)}\n`,
      );
    }
  }
  if (opts.summaryLine) out.write(`${summaryLine(run.passed, run.failed)}\n`);
}
