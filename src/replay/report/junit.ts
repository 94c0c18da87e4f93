// JUnit XML: one <testsuite> per test set, a <failure> per failing test with every message, and the
// body diff in <system-out>. Pure string building; the caller writes the file.

import type { RunReport, TestReport } from './model.js';

/** Escape for element text and attribute values; drop characters XML 1.0 cannot carry at all. */
export function xmlEscape(s: string): string {
  return (
    s
      // eslint-disable-next-line no-control-regex
      .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
      .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '')
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
      .replace(/'/g, '&apos;')
  );
}

const secs = (ms: number): string => (ms / 1000).toFixed(3);

function testcase(setName: string, t: TestReport): string {
  const attrs = `name="${xmlEscape(t.name)}" classname="${xmlEscape(setName)}" file="${xmlEscape(t.file)}" time="${secs(t.durationMs)}"`;
  if (t.passed) return `    <testcase ${attrs}/>\n`;
  const first = t.failures[0]?.message ?? 'failed';
  const body = [
    `${t.method} ${t.url}`,
    ...t.failures.map((f) => f.message),
    ...t.mockMisses.map(
      (m) =>
        `mock miss: ${m.method} ${m.url}${m.closest ? ` (closest ${m.closest.mock}: ${m.closest.field} differs: ${m.closest.detail})` : ''}`,
    ),
  ].join('\n');
  const type = t.failures[0]?.kind ?? 'failure';
  let xml = `    <testcase ${attrs}>\n      <failure message="${xmlEscape(first)}" type="${xmlEscape(type)}">${xmlEscape(body)}</failure>\n`;
  if (t.diff) xml += `      <system-out>${xmlEscape(t.diff)}</system-out>\n`;
  return `${xml}    </testcase>\n`;
}

export function junitXml(run: RunReport): string {
  let xml = '<?xml version="1.0" encoding="UTF-8"?>\n';
  xml += `<testsuites name="tlsrec" tests="${run.passed + run.failed}" failures="${run.failed}" errors="0" time="${secs(run.durationMs)}">\n`;
  for (const set of run.sets) {
    const failures = set.tests.filter((t) => !t.passed).length;
    xml += `  <testsuite name="${xmlEscape(set.name)}" tests="${set.tests.length}" failures="${failures}" errors="0" skipped="0" time="${secs(set.durationMs)}" timestamp="${xmlEscape(run.startedAt)}">\n`;
    for (const t of set.tests) xml += testcase(set.name, t);
    const out = [...set.notes, ...(set.mocks?.unused.length ? [`unused mocks: ${set.mocks.unused.join(', ')}`] : [])];
    if (set.appOutput) out.push('last output of the app:', set.appOutput);
    if (out.length > 0) xml += `    <system-out>${xmlEscape(out.join('\n'))}</system-out>\n`;
    xml += '  </testsuite>\n';
  }
  return `${xml}</testsuites>\n`;
}
