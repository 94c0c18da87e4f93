// End-to-end (the built CLI, as root, real eBPF): record fixtures/volatile-app, mark its volatile
// fields as noise by hand where record did not already (through the YAML editor, as --detect-noise
// writes them; the session token is a captured variable and needs none), then replay it
//   - as two shards: each runs its own tests, both pass, together they are the whole set;
//   - with FIXTURE_VARIANT=changed (user.plan: pro -> enterprise) and --reporter github: one
//     ::error per failing test, at the line of "plan" in its test file, and a job summary.

import { mkdtempSync, readdirSync, readFileSync, rmSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { YamlFileEditor } from '../src/format/edit.js';
import { needsEbpf } from './helpers/env.js';
import { freePort, repoRoot, run, start, stopAll, tlsrecBin, waitForHttp } from './helpers/procs.js';

const ebpf = needsEbpf();
const volatileApp = join(repoRoot, 'fixtures', 'volatile-app', 'server.mjs');

/** The requests recorded, in order: three answers of /session, two of /health, one 404. */
const PATHS = ['/session', '/health', '/session?view=full', '/nope', '/session?n=3', '/health?probe=2'];

/**
 * Volatile fields of /session, as Keploy noise keys (x-request-id and Date are noise by default;
 * the token is recorded as a captured variable).
 */
const SESSION_NOISE = ['body.id', 'body.createdAt', 'body.ts', 'body.items[].seenAt'];

describe.runIf(ebpf.run)('selection, sharding and the github reporter (real eBPF)', () => {
  let work: string;
  let appEnv: NodeJS.ProcessEnv;
  let setDir: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'tlsrec-select-e2e-'));
    const port = await freePort();
    appEnv = { PORT: String(port), NO_COLOR: '1', GITHUB_STEP_SUMMARY: '', GITHUB_WORKSPACE: '' };
    const rec = start('node', [tlsrecBin, 'record', '-q', '--', 'node', volatileApp], { cwd: work, env: appEnv });
    const base = `http://127.0.0.1:${port}`;
    await waitForHttp(`${base}/health`);
    for (const p of PATHS) await (await fetch(`${base}${p}`)).arrayBuffer();
    rec.child.kill('SIGINT');
    expect(await rec.exited).toBe(0);

    setDir = join(work, 'tlsrec', 'test-set-0');
    const files = readdirSync(join(setDir, 'tests')).filter((f) => f.endsWith('.yaml'));
    // The waitForHttp probe(s) are recorded too: at least the six requests above.
    expect(files.length).toBeGreaterThanOrEqual(PATHS.length);
    for (const f of files) {
      const file = join(setDir, 'tests', f);
      if (!/url: \S+\/session/.test(readFileSync(file, 'utf8'))) continue;
      // Only the keys the file does not have yet: record may have flagged some already.
      const editor = YamlFileEditor.open(file);
      editor.addTestNoise(SESSION_NOISE);
      editor.save();
      const noise = (parse(readFileSync(file, 'utf8')) as { spec: { assertions: { noise: Record<string, unknown> } } })
        .spec.assertions.noise;
      expect(Object.keys(noise)).toEqual(expect.arrayContaining(SESSION_NOISE));
    }
  });

  afterAll(async () => {
    await stopAll();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  function copyOfRecording(): string {
    const dir = mkdtempSync(join(tmpdir(), 'tlsrec-select-copy-'));
    cpSync(join(work, 'tlsrec'), join(dir, 'tlsrec'), { recursive: true });
    cpSync(join(work, 'tlsrec.yaml'), join(dir, 'tlsrec.yaml'));
    return dir;
  }

  const testNames = (): string[] =>
    readdirSync(join(setDir, 'tests'))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => f.replace(/\.yaml$/, ''));

  it('--shard 1/2 and --shard 2/2 each run and pass their own tests; together the whole set, once', async () => {
    const dir = copyOfRecording();
    const ran: string[][] = [];
    for (const k of [1, 2]) {
      const reportDir = join(dir, `shard-${k}`);
      const res = await run(
        'node',
        [
          tlsrecBin,
          'test',
          '--shard',
          `${k}/2`,
          '--reporter',
          'terminal',
          '--reporter',
          'json',
          '--report-dir',
          reportDir,
        ],
        {
          cwd: dir,
          env: appEnv,
        },
      );
      const report = JSON.parse(readFileSync(join(reportDir, 'report.json'), 'utf8')) as {
        passed: number;
        failed: number;
        selection: { description: string; selected: number; total: number };
        sets: Array<{ name: string; tests: Array<{ name: string; passed: boolean }>; mocks?: { total: number } }>;
      };
      const names = report.sets.flatMap((s) => s.tests.map((t) => t.name));
      expect(names.length, res.output).toBeGreaterThan(0);
      expect(report.failed, res.output).toBe(0);
      expect(report.passed).toBe(names.length);
      expect(report.selection).toEqual({
        description: `--shard ${k}/2`,
        selected: names.length,
        total: testNames().length,
      });
      expect(res.output).toMatch(new RegExp(`^${names.length} passed, 0 failed`, 'm'));
      expect(res.code).toBe(0);
      ran.push(names);
    }
    const all = [...ran[0]!, ...ran[1]!];
    expect(new Set(all).size).toBe(all.length);
    expect([...all].sort()).toEqual([...testNames()].sort());
    rmSync(dir, { recursive: true, force: true });
  });

  it('--reporter github: the changed plan is annotated at its line in every failing test file; a job summary is written', async () => {
    const dir = copyOfRecording();
    const summaryFile = join(dir, 'summary.md');
    const res = await run('node', [tlsrecBin, 'test', '--reporter', 'terminal', '--reporter', 'github'], {
      cwd: dir,
      env: { ...appEnv, FIXTURE_VARIANT: 'changed', GITHUB_STEP_SUMMARY: summaryFile, GITHUB_WORKSPACE: dir },
    });
    expect(res.code, res.output).toBe(1);
    const sessionTests = testNames().filter((n) =>
      /url: \S+\/session/.test(readFileSync(join(setDir, 'tests', `${n}.yaml`), 'utf8')),
    );
    expect(sessionTests).toHaveLength(3);
    const errors = res.output.split('\n').filter((l) => l.startsWith('::error '));
    expect(errors).toHaveLength(sessionTests.length);
    for (const name of sessionTests) {
      const rel = `tlsrec/test-set-0/tests/${name}.yaml`;
      const fileLines = readFileSync(join(dir, rel), 'utf8').split('\n');
      const planLine = fileLines.findIndex((l) => l.includes('"plan": "pro"')) + 1;
      expect(planLine).toBeGreaterThan(0);
      const col = fileLines[planLine - 1]!.indexOf('"plan"') + 1;
      const e = errors.find((l) => l.startsWith(`::error file=${rel},`));
      expect(e, res.output).toBe(
        `::error file=${rel},line=${planLine},col=${col},title=tlsrec%3A test-set-0/${name} failed (GET ${
          /url: http:\/\/[^/\s]+(\S+)/.exec(fileLines.join('\n'))![1]
        })::${name}: body $.user.plan: expected "pro", got "enterprise"`,
      );
    }
    expect(res.output).toMatch(new RegExp(`^${testNames().length - 3} passed, 3 failed`, 'm'));
    const summary = readFileSync(summaryFile, 'utf8');
    expect(summary).toContain(`### tlsrec test: ${testNames().length - 3} passed, 3 failed`);
    expect(summary).toContain(`| test-set-0 | ${testNames().length - 3} | 3 | 0 |`);
    for (const name of sessionTests) expect(summary).toContain(`| test-set-0/${name} |`);
    rmSync(dir, { recursive: true, force: true });
  });
});
