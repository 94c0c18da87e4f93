// End-to-end: record the fixture app with its HTTPS upstream running, switch the upstream off, and
// replay with `tlsrec test` (the built CLI, as root): mocks served through the eBPF connect
// redirect, a per-run CA, diffs, hand edits, JUnit, and nothing left behind afterwards.

import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { findCgroup2Mount } from '../src/native/cgroup.js';
import { BPF_PROG_TYPE_CGROUP_SOCK_ADDR, loadedBpfPrograms } from '../src/native/bpf-query.js';
import { needsEbpf } from './helpers/env.js';
import {
  fixtureApp,
  fixtureCa,
  freePort,
  repoRoot,
  run,
  start,
  startUpstream,
  stopAll,
  tlsrecBin,
  waitForHttp,
  type Started,
} from './helpers/procs.js';

const ebpf = needsEbpf();

const processIds = (): string[] => readdirSync('/proc').filter((p) => /^\d+$/.test(p));

function commandLine(pid: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return undefined; // exited meanwhile
  }
}

/**
 * What a run of this checkout left behind: processes still running its fixture app, and tlsrec
 * cgroups whose creator (the pid in the name Cgroup.create gives) has exited. Other checkouts'
 * tests may run on the same machine at the same time; their live cgroups and apps are not ours.
 */
function leftovers(): { apps: string[]; cgroups: string[] } {
  const apps: string[] = [];
  for (const pid of processIds()) {
    const cmd = commandLine(pid);
    if (cmd?.includes(fixtureApp) && !cmd.includes('vitest')) apps.push(`${pid}: ${cmd}`);
  }
  const mount = findCgroup2Mount();
  const dir = mount ? join(mount, 'tlsrec') : '';
  const creatorAlive = (name: string): boolean => {
    const pid = /-(\d+)-\d+$/.exec(name)?.[1];
    return pid !== undefined && existsSync(`/proc/${pid}`);
  };
  const cgroups =
    dir && existsSync(dir)
      ? readdirSync(dir).filter(
          (d) => (d.startsWith('test-') || d.startsWith('replay') || d.startsWith('app')) && !creatorAlive(d),
        )
      : [];
  return { apps, cgroups };
}

/** Command lines of the processes holding each BPF program open (fdinfo of a program's or a link's fd names its prog_id). */
function bpfProgramHolders(): Map<number, string[]> {
  const holders = new Map<number, string[]>();
  for (const pid of processIds()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fdinfo`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let info: string;
      try {
        info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      } catch {
        continue;
      }
      const id = /^prog_id:\s+(\d+)$/m.exec(info)?.[1];
      if (id === undefined) continue;
      const list = holders.get(Number(id)) ?? [];
      list.push(commandLine(pid) ?? '');
      holders.set(Number(id), list);
    }
  }
  return holders;
}

/**
 * Redirect programs (bpf/redirect.bpf.c names them tlsrec_*) still loaded, except those held open
 * only by processes of other checkouts: a program of ours is held by a process of this checkout,
 * or by nothing (pinned, or attached without a link).
 */
function ourBpfPrograms(): string[] {
  const holders = bpfProgramHolders();
  return loadedBpfPrograms()
    .filter((p) => p.type === BPF_PROG_TYPE_CGROUP_SOCK_ADDR && p.name.startsWith('tlsrec_'))
    .filter((p) => {
      const by = holders.get(p.id) ?? [];
      return by.length === 0 || by.some((cmd) => cmd.includes(repoRoot));
    })
    .map((p) => `${p.id}: ${p.name}`);
}

describe.runIf(ebpf.run)('tlsrec test (real eBPF)', () => {
  let work: string;
  let port: number;
  let appEnv: NodeJS.ProcessEnv;
  let upstream: { url: string; proc: Started };

  /** Record once: four tests, three mocks. Every test below replays a copy. */
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'tlsrec-replay-'));
    upstream = await startUpstream();
    port = await freePort();
    appEnv = { PORT: String(port), UPSTREAM_URL: upstream.url, NODE_EXTRA_CA_CERTS: fixtureCa };
    const rec = start('node', [tlsrecBin, 'record', '-q', '--', 'node', fixtureApp], { cwd: work, env: appEnv });
    const base = `http://127.0.0.1:${port}`;
    await waitForHttp(`${base}/health`);
    await (await fetch(`${base}/quote?sym=ACME`)).arrayBuffer();
    await (
      await fetch(`${base}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"item":"pen","qty":2}',
      })
    ).arrayBuffer();
    await (await fetch(`${base}/text`)).arrayBuffer();
    rec.child.kill('SIGINT');
    expect(await rec.exited).toBe(0);
    // From here on the upstream is gone: every upstream answer must come from the mocks.
    upstream.proc.child.kill('SIGTERM');
    await upstream.proc.exited;
  });

  afterAll(async () => {
    await stopAll();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  function copyOfRecording(): string {
    const dir = mkdtempSync(join(tmpdir(), 'tlsrec-replay-copy-'));
    cpSync(join(work, 'tlsrec'), join(dir, 'tlsrec'), { recursive: true });
    cpSync(join(work, 'tlsrec.yaml'), join(dir, 'tlsrec.yaml'));
    return dir;
  }

  async function tlsrecTest(dir: string, args: string[] = [], env: NodeJS.ProcessEnv = {}) {
    const res = await run('node', [tlsrecBin, 'test', ...args], {
      cwd: dir,
      env: { ...appEnv, NO_COLOR: '1', ...env },
    });
    return res;
  }

  async function expectNothingLeft() {
    const left = leftovers();
    expect(left.apps).toEqual([]);
    expect(left.cgroups).toEqual([]);
    // The kernel frees a detached program after an RCU grace period, and another tlsrec on the
    // machine may hold its own for a moment: a program of a leak is still there 2 s later.
    await vi.waitFor(() => expect(ourBpfPrograms()).toEqual([]), { timeout: 2000, interval: 50 });
  }

  it('replays with the upstream off: exit 0, every test passed, every upstream answer from mocks', async () => {
    const dir = copyOfRecording();
    const res = await tlsrecTest(dir, [
      '--reporter',
      'terminal',
      '--reporter',
      'json',
      '--report-dir',
      join(dir, 'reports'),
    ]);
    expect(res.output).toMatch(/^4 passed, 0 failed/m);
    expect(res.code).toBe(0);
    const reportFile = readdirSync(join(dir, 'reports')).find((f) => f.endsWith('.json'));
    expect(reportFile).toBeDefined();
    const report = JSON.parse(readFileSync(join(dir, 'reports', reportFile!), 'utf8')) as unknown;
    const text = JSON.stringify(report);
    // Two upstream calls were recorded (quote, orders); both were served from mocks, none missed.
    expect(text).toMatch(/"misses":\[\]/);
    expect((text.match(/"mock":"mock-\d+"/g) ?? []).length).toBeGreaterThanOrEqual(2);
    await expectNothingLeft();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an app change fails the run (exit 1) and the output names the test, the JSON path, expected and actual', async () => {
    const dir = copyOfRecording();
    const res = await tlsrecTest(dir, [], { FIXTURE_VARIANT: 'changed' });
    expect(res.code).toBe(1);
    expect(res.output).toMatch(/^3 passed, 1 failed/m);
    expect(res.output).toContain('test-2');
    expect(res.output).toContain('$.note');
    expect(res.output).toContain('fresh');
    expect(res.output).toContain('changed');
    await expectNothingLeft();
    rmSync(dir, { recursive: true, force: true });
  });

  it('hand edits: a changed expected value fails, a noise path makes it pass, broken YAML exits 2 with file:line:column', async () => {
    const dir = copyOfRecording();
    const file = join(dir, 'tlsrec', 'test-set-0', 'tests', 'test-2.yaml');
    const original = readFileSync(file, 'utf8');
    expect(original).toContain('"note": "fresh"');

    writeFileSync(file, original.replace('"note": "fresh"', '"note": "edited by hand"'));
    let res = await tlsrecTest(dir);
    expect(res.code).toBe(1);
    expect(res.output).toContain('$.note');

    const withNoise = readFileSync(file, 'utf8').replace(
      /noise:\n(\s+)/,
      (_m, indent: string) => `noise:\n${indent}body.note: []\n${indent}`,
    );
    expect(withNoise).toContain('body.note: []');
    writeFileSync(file, withNoise);
    res = await tlsrecTest(dir);
    expect(res.output).toMatch(/^4 passed, 0 failed/m);
    expect(res.code).toBe(0);

    // Break the YAML: two lines run together ("status_code: 200: OK" is a mapping inside a scalar's place).
    const lines = withNoise.split('\n');
    const statusLine = lines.findIndex((l) => l.includes('status_code:'));
    lines[statusLine] = lines[statusLine]!.replace(/status_code: (\d+)/, 'status_code: $1: OK');
    writeFileSync(file, lines.join('\n'));
    res = await tlsrecTest(dir);
    expect(res.code).toBe(2);
    expect(res.output).toMatch(new RegExp(`test-2\\.yaml:${statusLine + 1}:\\d+`));
    expect(res.output).not.toMatch(/\n\s+at /);

    // A wrong type is positioned too.
    lines[statusLine] = lines[statusLine]!.replace(/status_code: \d+: OK/, 'status_code: "abc"');
    writeFileSync(file, lines.join('\n'));
    res = await tlsrecTest(dir);
    expect(res.code).toBe(2);
    expect(res.output).toMatch(new RegExp(`test-2\\.yaml:${statusLine + 1}:\\d+`));
    await expectNothingLeft();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an outgoing call with no mock gets 502 and the report names the call and the closest mock', async () => {
    const dir = copyOfRecording();
    const file = join(dir, 'tlsrec', 'test-set-0', 'tests', 'test-2.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replaceAll('sym=ACME', 'sym=ZZZ'));
    const res = await tlsrecTest(dir);
    expect(res.code).toBe(1);
    expect(res.output).toContain('/quote?sym=ZZZ');
    expect(res.output).toMatch(/mock-\d+/);
    expect(res.output).toMatch(/query/i);
    expect(res.output).toContain('502');
    await expectNothingLeft();
    rmSync(dir, { recursive: true, force: true });
  });

  it('JUnit output is valid XML and its counts match the terminal summary', async () => {
    const dir = copyOfRecording();
    const file = join(dir, 'tlsrec', 'test-set-0', 'tests', 'test-2.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('"note": "fresh"', '"note": "<&>"'));
    const res = await tlsrecTest(dir, [
      '--reporter',
      'terminal',
      '--reporter',
      'junit',
      '--report-dir',
      join(dir, 'out'),
    ]);
    expect(res.code).toBe(1);
    const summary = /^(\d+) passed, (\d+) failed/m.exec(res.output);
    expect(summary).not.toBeNull();
    const xmlFile = readdirSync(join(dir, 'out')).find((f) => f.endsWith('.xml'));
    expect(xmlFile).toBeDefined();
    const xml = readFileSync(join(dir, 'out', xmlFile!), 'utf8');
    expect(XMLValidator.validate(xml)).toBe(true);
    const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(xml) as Record<
      string,
      unknown
    >;
    const suites = (doc.testsuites ?? doc) as { testsuite: unknown };
    const list = (Array.isArray(suites.testsuite) ? suites.testsuite : [suites.testsuite]) as Array<{
      tests: string;
      failures: string;
    }>;
    const tests = list.reduce((a, s) => a + Number(s.tests), 0);
    const failures = list.reduce((a, s) => a + Number(s.failures), 0);
    expect(tests).toBe(Number(summary![1]) + Number(summary![2]));
    expect(failures).toBe(Number(summary![2]));
    expect(failures).toBe(1);
    rmSync(dir, { recursive: true, force: true });
  });

  it('an interrupted run leaves no app process, cgroup or BPF program behind', async () => {
    const dir = copyOfRecording();
    // A health URL where nothing listens keeps tlsrec waiting; SIGINT arrives meanwhile.
    const silent = await freePort();
    const p = start(
      'node',
      [tlsrecBin, 'test', '--health-url', `http://127.0.0.1:${silent}/health`, '--ready-timeout', '60'],
      {
        cwd: dir,
        env: { ...appEnv, NO_COLOR: '1' },
      },
    );
    await waitForHttp(`http://127.0.0.1:${port}/health`);
    p.child.kill('SIGINT');
    const code = await p.exited;
    expect(code).toBe(130);
    expect(p.output()).toContain('interrupted by SIGINT');
    await expectNothingLeft();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs the Keploy-format test sets in keploy-tests/ as they are', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'tlsrec-keploy-'));
    const res = await run(
      'node',
      [tlsrecBin, 'test', '--dir', join(repoRoot, 'keploy-tests'), '--', 'node', fixtureApp],
      {
        cwd,
        env: { NO_COLOR: '1', PORT: '3000', UPSTREAM_URL: 'https://127.0.0.2:8443' },
      },
    );
    rmSync(cwd, { recursive: true, force: true });
    expect(res.output).toMatch(/^5 passed, 0 failed/m);
    expect(res.code).toBe(0);
    await expectNothingLeft();
  });
});
