import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import {
  TerminalReporter,
  countRun,
  junitXml,
  newRunId,
  useColor,
  writeFileReports,
  xmlEscape,
  type RunReport,
  type SetReport,
} from '../src/replay/report/index.js';

const miss = {
  method: 'GET',
  url: 'https://api.example.com/v1/x?y=<1>',
  closest: { mock: 'mock-2', field: 'query', detail: 'y: expected "2", got "<1>"' },
};

function sampleRun(): RunReport {
  const sets: SetReport[] = [
    {
      name: 'test-set-0',
      dir: '/x/test-set-0',
      durationMs: 120,
      notes: [],
      tests: [
        {
          name: 'test-1',
          file: 'test-set-0/tests/test-1.yaml',
          method: 'GET',
          url: '/a',
          passed: true,
          durationMs: 3,
          failures: [],
          mockMisses: [],
        },
        {
          name: 'test-2 "quoted" & <odd>',
          file: 'test-set-0/tests/test-2.yaml',
          method: 'POST',
          url: '/b?q=1&r=2',
          passed: false,
          durationMs: 7,
          failures: [
            {
              kind: 'body',
              path: '$.msg',
              expected: '"a<b"',
              actual: '"a>b \u0001"',
              message: 'test-2: body $.msg: expected "a<b", got "a>b \u0001"',
            },
          ],
          diff: '--- expected\n+++ actual\n@@ -1,3 +1,3 @@\n {\n-  "msg": "a<b"\n+  "msg": "a>b"\n }',
          mockMisses: [miss],
        },
      ],
      mocks: {
        total: 3,
        served: [{ mock: 'mock-0', method: 'GET', url: 'https://api.example.com/v1/z' }],
        misses: [miss],
        unused: ['mock-1'],
      },
    },
    {
      name: 'test-set-1',
      dir: '/x/test-set-1',
      durationMs: 10,
      notes: ['mocks disabled'],
      tests: [
        {
          name: 'test-1',
          file: 'test-set-1/tests/test-1.yaml',
          method: 'GET',
          url: '/c',
          passed: true,
          durationMs: 1,
          failures: [],
          mockMisses: [],
        },
      ],
    },
  ];
  sets[0]!.mocks!.misses = sets[0]!.tests[1]!.mockMisses; // same objects, as runTests builds them
  return { runId: 'run-1', startedAt: '2024-01-01T00:00:00.000Z', durationMs: 130, ...countRun(sets), sets };
}

function render(run: RunReport, color?: boolean, env: NodeJS.ProcessEnv = {}, tty = false): string {
  const out = new PassThrough() as PassThrough & { isTTY?: boolean };
  if (tty) out.isTTY = true;
  let text = '';
  out.on('data', (c: Buffer) => (text += c.toString()));
  const r = new TerminalReporter(out, color === undefined ? { env } : { color, env });
  for (const s of run.sets) {
    r.setStart(s.name, s.tests.length, 'app: node app.js');
    for (const t of s.tests) r.testDone(t);
  }
  r.finish(run, ['/x/reports/run-1/junit.xml']);
  return text;
}

describe('terminal reporter', () => {
  it('ends with the summary line and shows failures, diffs, misses and unused mocks', () => {
    const run = sampleRun();
    expect(run).toMatchObject({ passed: 2, failed: 1, mockMisses: 1 });
    const text = render(run);
    const lines = text.trimEnd().split('\n');
    expect(lines[lines.length - 1]).toBe('2 passed, 1 failed');
    expect(text).toContain('✗ test-set-0 / test-2 "quoted" & <odd>  POST /b?q=1&r=2');
    expect(text).toContain('    test-2: body $.msg: expected "a<b"');
    expect(text).toContain('    -  "msg": "a<b"');
    expect(text).toContain('mock miss: GET https://api.example.com/v1/x?y=<1>');
    expect(text).toContain('closest mock mock-2: query differs: y: expected "2", got "<1>"');
    expect(text).toContain('test-set-0: 1 of 3 mocks were not used: mock-1');
    expect(text).toContain('1 mock miss (calls that no recorded mock answered)');
    expect(text).not.toContain('outside of any test');
    expect(text).not.toMatch(/\x1b\[/);
  });

  it('colors only on a TTY, never with NO_COLOR', () => {
    const run = sampleRun();
    expect(render(run, undefined, {}, true)).toMatch(/\x1b\[3[12]m/);
    expect(render(run, undefined, { NO_COLOR: '1' }, true)).not.toMatch(/\x1b\[/);
    expect(render(run, undefined, {}, false)).not.toMatch(/\x1b\[/);
    // The summary is still the last line with colors (escape codes wrap it on the same line).
    const colored = render(run, true).trimEnd().split('\n');
    expect(colored[colored.length - 1]!.replace(/\x1b\[\d+m/g, '')).toBe('2 passed, 1 failed');
    const tty = { isTTY: true } as unknown as NodeJS.WritableStream;
    expect(useColor(tty, {})).toBe(true);
    expect(useColor(tty, { NO_COLOR: 'yes' })).toBe(false);
    expect(useColor(tty, { NO_COLOR: '' })).toBe(true);
  });

  it('lists misses that happened outside any test', () => {
    const run = sampleRun();
    run.sets[0]!.mocks!.misses = [{ method: 'POST', url: 'http://telemetry/x' }];
    const text = render(run);
    expect(text).toContain('mock misses outside of any test');
    expect(text).toContain('no mock for this host and method');
  });
});

describe('JUnit XML', () => {
  it('escapes everything and strips characters XML cannot carry', () => {
    expect(xmlEscape(`a<b>&"c"'d'\u0001\u0008\t\n`)).toBe('a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;\t\n');
  });

  it('is valid XML with suites, counts, failure messages and the diff (checked with a real parser)', () => {
    const xml = junitXml(sampleRun());
    const py = `
import sys, json, xml.dom.minidom as m
d = m.parseString(sys.stdin.read())
r = d.documentElement
out = {'tests': r.getAttribute('tests'), 'failures': r.getAttribute('failures'), 'suites': []}
for s in d.getElementsByTagName('testsuite'):
    cases = []
    for c in s.getElementsByTagName('testcase'):
        f = c.getElementsByTagName('failure')
        so = c.getElementsByTagName('system-out')
        cases.append({'name': c.getAttribute('name'), 'failure': f[0].getAttribute('message') if f else None,
                      'text': f[0].firstChild.data if f else None, 'out': so[0].firstChild.data if so else None})
    out['suites'].append({'name': s.getAttribute('name'), 'tests': s.getAttribute('tests'), 'failures': s.getAttribute('failures'), 'cases': cases})
print(json.dumps(out))
`;
    const parsed = JSON.parse(execFileSync('python3', ['-c', py], { input: xml, encoding: 'utf8' })) as {
      tests: string;
      failures: string;
      suites: Array<{
        name: string;
        tests: string;
        failures: string;
        cases: Array<{ name: string; failure: string | null; text: string | null; out: string | null }>;
      }>;
    };
    expect(parsed.tests).toBe('3');
    expect(parsed.failures).toBe('1');
    expect(parsed.suites.map((s) => [s.name, s.tests, s.failures])).toEqual([
      ['test-set-0', '2', '1'],
      ['test-set-1', '1', '0'],
    ]);
    const failed = parsed.suites[0]!.cases[1]!;
    expect(failed.name).toBe('test-2 "quoted" & <odd>');
    expect(failed.failure).toBe('test-2: body $.msg: expected "a<b", got "a>b "');
    expect(failed.text).toContain('POST /b?q=1&r=2');
    expect(failed.text).toContain('mock miss: GET https://api.example.com/v1/x?y=<1> (closest mock-2: query differs');
    expect(failed.out).toContain('-  "msg": "a<b"');
    expect(parsed.suites[0]!.cases[0]!.failure).toBeNull();
  });
});

describe('file reports', () => {
  it('writes junit.xml and report.json into the report dir; terminal only writes nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tlsrec-report-'));
    try {
      const run = sampleRun();
      expect(writeFileReports(run, [], join(dir, 'none'))).toEqual([]);
      const files = writeFileReports(run, ['junit', 'json'], join(dir, 'r', 'run-1'));
      expect(files).toEqual([join(dir, 'r', 'run-1', 'junit.xml'), join(dir, 'r', 'run-1', 'report.json')]);
      const json = JSON.parse(readFileSync(files[1]!, 'utf8')) as RunReport & { schema: string };
      expect(json.schema).toBe('tlsrec-report/v1');
      expect([json.passed, json.failed, json.mockMisses]).toEqual([2, 1, 1]);
      expect(json.sets[0]!.tests[1]!.failures[0]!.path).toBe('$.msg');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('run ids sort by time', () => {
    expect(newRunId(new Date('2024-05-06T07:08:09.123Z'))).toBe(`run-20240506T070809Z-${process.pid}`);
  });
});
