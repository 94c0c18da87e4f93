// Writing the file reports (JUnit XML, JSON) into the report directory.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OutputError, causeText } from '../../errors.js';
import { junitXml } from './junit.js';
import type { RunReport } from './model.js';

export type ReporterName = 'terminal' | 'junit' | 'json' | 'github';

export { TerminalReporter, useColor } from './terminal.js';
export { junitXml, xmlEscape } from './junit.js';
export * from './model.js';

/** A run id that sorts by time and does not collide between parallel runs. */
export function newRunId(now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `run-${stamp}-${process.pid}`;
}

export function jsonReport(run: RunReport): string {
  return `${JSON.stringify({ schema: 'tlsrec-report/v1', ...run }, null, 2)}\n`;
}

/** Write the file reporters' output; returns the paths written. */
export function writeFileReports(run: RunReport, reporters: readonly ReporterName[], dir: string): string[] {
  const files: Array<[string, string]> = [];
  if (reporters.includes('junit')) files.push([join(dir, 'junit.xml'), junitXml(run)]);
  if (reporters.includes('json')) files.push([join(dir, 'report.json'), jsonReport(run)]);
  if (files.length === 0) return [];
  try {
    mkdirSync(dir, { recursive: true });
    for (const [path, text] of files) writeFileSync(path, text);
  } catch (err) {
    throw new OutputError(`cannot write the test reports to ${dir}: ${causeText(err)}`, {
      stage: 'write reports',
      hint: 'check that the directory is writable, or pass --report-dir',
      cause: err,
    });
  }
  return files.map(([p]) => p);
}
