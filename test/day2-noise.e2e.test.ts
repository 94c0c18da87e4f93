// End-to-end, real eBPF as root: record fixtures/volatile-app (GET /session, POST /checkout whose
// upstream call carries a nonce and a time), switch the upstream off, then the day-two loop with
// the built CLI. Record already flags the unmistakably volatile fields (UUID, times) as noise and
// writes the session `token` as a captured variable, so /session passes at once; the first replay
// still fails because /checkout misses its mock on the nonce. --detect-noise writes what else
// varies as noise (the etag; the mock's nonce and time) and passes offline; a change of one stable
// field is still caught and named; --update accepts it, keeping a hand comment and the noise
// entries, and leaves the passing test's file byte for byte as it was.

import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needsEbpf } from './helpers/env.js';
import {
  fixtureCa,
  freePort,
  repoRoot,
  run,
  start,
  startUpstream,
  stopAll,
  tlsrecBin,
  waitForOutput,
} from './helpers/procs.js';

const ebpf = needsEbpf();
const volatileApp = join(repoRoot, 'fixtures', 'volatile-app', 'server.mjs');

/** Fixture app processes of this checkout still running (other checkouts may run their own). */
function appsLeft(): string[] {
  const left: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(volatileApp)) left.push(`${pid}: ${cmd}`);
    } catch {
      // exited meanwhile
    }
  }
  return left;
}

describe.runIf(ebpf.run)('tlsrec test --detect-noise / --update (real eBPF)', () => {
  let work: string;
  let appEnv: NodeJS.ProcessEnv;
  const copies: string[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'tlsrec-day2-'));
    const upstream = await startUpstream();
    const port = await freePort();
    appEnv = { PORT: String(port), UPSTREAM_URL: upstream.url, NODE_EXTRA_CA_CERTS: fixtureCa };
    const rec = start('node', [tlsrecBin, 'record', '-q', '--', 'node', volatileApp], { cwd: work, env: appEnv });
    await waitForOutput(rec, /app listening/);
    const base = `http://127.0.0.1:${port}`;
    const session = await fetch(`${base}/session`);
    expect(session.status).toBe(200);
    await session.arrayBuffer();
    const checkout = await fetch(`${base}/checkout`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"item":"pen","qty":2}',
    });
    expect(((await checkout.json()) as { status: string }).status).toBe('accepted');
    rec.child.kill('SIGINT');
    expect(await rec.exited).toBe(0);
    // Offline from here: every upstream answer must come from the mocks.
    upstream.proc.child.kill('SIGTERM');
    await upstream.proc.exited;
  });

  afterAll(async () => {
    await stopAll();
    for (const d of [work, ...copies]) if (d) rmSync(d, { recursive: true, force: true });
  });

  function copyOfRecording(): string {
    const dir = mkdtempSync(join(tmpdir(), 'tlsrec-day2-copy-'));
    copies.push(dir);
    cpSync(join(work, 'tlsrec'), join(dir, 'tlsrec'), { recursive: true });
    cpSync(join(work, 'tlsrec.yaml'), join(dir, 'tlsrec.yaml'));
    return dir;
  }

  const tlsrecTest = (dir: string, args: string[] = [], env: NodeJS.ProcessEnv = {}) =>
    run('node', [tlsrecBin, 'test', ...args], { cwd: dir, env: { ...appEnv, NO_COLOR: '1', ...env } });

  /** The recorded test files by the path they replay. */
  function testFiles(dir: string): { session: string; checkout: string } {
    const testsDir = join(dir, 'tlsrec', 'test-set-0', 'tests');
    const files = readdirSync(testsDir).map((f) => join(testsDir, f));
    const byUrl = (p: string) =>
      files.find((f) =>
        (parse(readFileSync(f, 'utf8')) as { spec: { req: { url: string } } }).spec.req.url.endsWith(p),
      )!;
    return { session: byUrl('/session'), checkout: byUrl('/checkout') };
  }

  it('the first replay fails: the /checkout call misses its mock on the nonce (/session passes on record-time noise)', async () => {
    const dir = copyOfRecording();
    const { session } = testFiles(dir);
    // what record wrote: the UUID and the times as noise, the token as a captured variable
    const sessionDoc = parse(readFileSync(session, 'utf8')) as {
      spec: { assertions: { noise: Record<string, unknown> }; resp: { body: string } };
    };
    expect(Object.keys(sessionDoc.spec.assertions.noise)).toEqual(
      expect.arrayContaining(['body.id', 'body.createdAt', 'body.ts', 'body.items.seenAt']),
    );
    expect(Object.keys(sessionDoc.spec.assertions.noise)).not.toContain('body.token');
    expect(JSON.parse(sessionDoc.spec.resp.body)).toMatchObject({
      token: '{{ .token }}',
      user: { name: 'Ada Lovelace', plan: 'pro' },
    });
    const res = await tlsrecTest(dir);
    expect(res.code).toBe(1);
    expect(res.output).toMatch(/^1 passed, 1 failed/m);
    expect(res.output).toMatch(/✓ test-\d+ {2}GET \/session/);
    expect(res.output).toMatch(/✗ test-\d+ {2}POST \/checkout .*1 mock miss/);
    expect(res.output).toMatch(
      /mock miss: POST https:\/\/127\.0\.0\.2:\d+\/orders\n\s+closest mock mock-0: body differs: at \$\.nonce/,
    );
    // the miss belongs to /checkout, not to app startup
    expect(res.output).not.toContain('outside of any test');
  });

  it('--detect-noise: noise written to the tests and the mock, 100% pass offline; a stable change is still caught; --update accepts it', async () => {
    const dir = copyOfRecording();
    const { session, checkout } = testFiles(dir);
    const mocksFile = join(dir, 'tlsrec', 'test-set-0', 'mocks.yaml');

    const res = await tlsrecTest(dir, [
      '--detect-noise',
      '--reporter',
      'terminal',
      '--reporter',
      'json',
      '--report-dir',
      join(dir, 'reports'),
    ]);
    expect(res.output).toMatch(/^2 passed, 0 failed/m);
    expect(res.code).toBe(0);
    const rel = (f: string) => f.slice(dir.length + 1);
    // each entry is printed with its file: what record could not flag (the etag; the mock's nonce and time)
    expect(res.output).toContain(`noise + header.etag  ${rel(session)}`);
    expect(res.output).toContain(`noise + body.nonce  ${rel(mocksFile)}`);
    expect(res.output).toContain(`noise + body.at  ${rel(mocksFile)}`);
    expect(res.output).toContain('detect-noise: added 3 noise entries to 2 files');
    // what record flagged is not written again, and the captured token is not noise
    expect(res.output).not.toMatch(/noise \+ body\.(id|createdAt|ts|items\.seenAt|token) {2}tlsrec\/test-set-0\/tests/);
    // stable fields are never noise
    expect(res.output).not.toMatch(/noise \+ body\.(user|price|items\.sku|item|qty|status)\b/);
    // the default per-request headers are not written again
    expect(res.output).not.toMatch(/noise \+ header\.(x-request-id|Date)/i);

    // the files: test noise in spec.assertions.noise, the mock's in Keploy's noise.req
    const sessionDoc = parse(readFileSync(session, 'utf8')) as {
      spec: { assertions: { noise: Record<string, unknown> } };
    };
    expect(Object.keys(sessionDoc.spec.assertions.noise)).toEqual(
      expect.arrayContaining([
        'header.Date',
        'header.etag',
        'body.id',
        'body.createdAt',
        'body.ts',
        'body.items.seenAt',
      ]),
    );
    expect(Object.keys(sessionDoc.spec.assertions.noise)).not.toContain('body.token');
    const checkoutDoc = parse(readFileSync(checkout, 'utf8')) as {
      spec: { assertions: { noise: Record<string, unknown> } };
    };
    expect(Object.keys(checkoutDoc.spec.assertions.noise)).toContain('body.at');
    for (const doc of [sessionDoc, checkoutDoc]) {
      expect(
        Object.keys(doc.spec.assertions.noise).filter((k) =>
          /^body\.(user|price|items\.sku|item|qty|status)\b/.test(k),
        ),
      ).toEqual([]);
    }
    const mockDocs = parseAllDocuments(readFileSync(mocksFile, 'utf8')).map(
      (d) => d.toJS() as { noise?: { req: string[] } },
    );
    expect(mockDocs).toHaveLength(1);
    expect(mockDocs[0]!.noise?.req).toEqual(['body.nonce', 'body.at']);
    // the final run found the /checkout mock despite the nonce
    const report = readFileSync(
      join(dir, 'reports', readdirSync(join(dir, 'reports')).find((f) => f.endsWith('.json'))!),
      'utf8',
    );
    expect(report).toMatch(/"misses":\s*\[\]/);
    expect(report).not.toMatch(/"mockMisses":\s*\[\s*\{/);

    // Detection is stable: running it again finds nothing new and changes no file.
    const before = [session, checkout, mocksFile].map((f) => readFileSync(f, 'utf8'));
    const again = await tlsrecTest(dir, ['--detect-noise']);
    expect(again.code).toBe(0);
    expect(again.output).toContain('no noise added');
    expect([session, checkout, mocksFile].map((f) => readFileSync(f, 'utf8'))).toEqual(before);

    // A change of one stable field (user.plan) is caught and named, noise or not.
    const changed = await tlsrecTest(dir, [], { FIXTURE_VARIANT: 'changed' });
    expect(changed.code).toBe(1);
    expect(changed.output).toMatch(/^1 passed, 1 failed/m);
    expect(changed.output).toContain('$.user.plan: expected "pro", got "enterprise"');

    // --update: a hand comment and the noise entries survive; the passing test's file is untouched.
    writeFileSync(
      session,
      readFileSync(session, 'utf8').replace(/^kind: Http$/m, 'kind: Http\n# hand comment: the session endpoint'),
    );
    const sessionBefore = readFileSync(session, 'utf8');
    const checkoutBefore = readFileSync(checkout, 'utf8');
    const upd = await tlsrecTest(dir, ['--update'], { FIXTURE_VARIANT: 'changed' });
    expect(upd.code).toBe(0);
    expect(upd.output).toMatch(/updated test-\d+ \(tlsrec\/test-set-0\/tests\/test-\d+\.yaml\): body \$\.user\.plan/);
    expect(upd.output).toContain('update: 1 test updated');
    const sessionAfter = readFileSync(session, 'utf8');
    expect(sessionAfter).toContain('# hand comment: the session endpoint');
    expect(sessionAfter).toContain('body.items.seenAt: []');
    expect(sessionAfter).toContain('"plan": "enterprise"');
    expect(sessionAfter).toContain('"token": "{{ .token }}"'); // the captured variable stays a reference
    expect(sessionAfter).toMatch(/ {4}body: \|-?\n {6}\{\n/); // still a readable block scalar
    // only the body's lines changed
    const changedLines = sessionAfter.split('\n').filter((l, i) => l !== sessionBefore.split('\n')[i]);
    expect(changedLines.every((l) => /^ {6,}"/.test(l))).toBe(true);
    expect(readFileSync(checkout, 'utf8')).toBe(checkoutBefore);

    const after = await tlsrecTest(dir, [], { FIXTURE_VARIANT: 'changed' });
    expect(after.output).toMatch(/^2 passed, 0 failed/m);
    expect(after.code).toBe(0);
    expect(appsLeft()).toEqual([]);
  });

  it('--update does not update a test whose answer came from a mock miss, says why and exits 1', async () => {
    const dir = copyOfRecording();
    const { session, checkout } = testFiles(dir);
    const before = readFileSync(checkout, 'utf8');
    const sessionBefore = readFileSync(session, 'utf8');
    const res = await tlsrecTest(dir, ['--update']);
    expect(res.code).toBe(1);
    expect(res.output).toMatch(
      /not updated test-\d+ \(tlsrec\/test-set-0\/tests\/test-\d+\.yaml\): a mock missed during it/,
    );
    expect(res.output).toContain('$.nonce');
    expect(readFileSync(checkout, 'utf8')).toBe(before);
    // the other test passes (record-time noise, the captured token): its file is not rewritten
    expect(res.output).toContain('update: 0 tests updated, 1 not updated');
    expect(readFileSync(session, 'utf8')).toBe(sessionBefore);
  });

  it("Keploy's own files (4 spaces, one-line bodies): --detect-noise changes no byte, --update only the changed bodies", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tlsrec-day2-keploy-'));
    copies.push(dir);
    cpSync(join(repoRoot, 'keploy-tests'), join(dir, 'kt'), { recursive: true });
    const port = await freePort();
    const keploy = (args: string[], env: NodeJS.ProcessEnv = {}) =>
      run(
        'node',
        [
          tlsrecBin,
          'test',
          ...args,
          '--dir',
          'kt',
          '--app-port',
          String(port),
          '--',
          'node',
          join(repoRoot, 'fixtures', 'app', 'server.mjs'),
        ],
        {
          cwd: dir,
          env: { NO_COLOR: '1', PORT: String(port), UPSTREAM_URL: 'https://127.0.0.2:8443', ...env },
        },
      );
    const files = (root: string) =>
      [
        'test-set-0/mocks.yaml',
        'test-set-0/tests/test-1.yaml',
        'test-set-0/tests/test-2.yaml',
        'test-set-1/mocks.yaml',
        'test-set-1/tests/test-1.yaml',
        'test-set-1/tests/test-2.yaml',
        'test-set-1/tests/test-3.yaml',
      ].map((f) => readFileSync(join(root, f), 'utf8'));
    const original = files(join(repoRoot, 'keploy-tests'));

    const detect = await keploy(['--detect-noise']);
    expect(detect.output).toContain('no noise added');
    expect(detect.output).toMatch(/^5 passed, 0 failed/m);
    expect(detect.code).toBe(0);
    expect(files(join(dir, 'kt'))).toEqual(original);

    const upd = await keploy(['--update'], { FIXTURE_VARIANT: 'changed' });
    expect(upd.code).toBe(0);
    expect(upd.output).toContain('update: 2 tests updated');
    const after = files(join(dir, 'kt'));
    after.forEach((text, i) => {
      if (text === original[i]) return;
      // the one-line body became the writer's block scalar, at the file's own 4-space indentation
      expect(text).toMatch(
        /\n {8}body: \|-?\n {12}\{\n {14}"symbol": "\w+",\n {14}"price": [\d.]+,\n {14}"note": "changed"\n {12}\}\n/,
      );
      expect(text.replace(/ {8}body: \|-?\n(?: {12}.*\n)+/, '')).toBe(
        original[i]!.replace(/ {8}body: '\{"symbol".*\n/, ''),
      );
    });
    expect(after.filter((t, i) => t !== original[i])).toHaveLength(2);
    const again = await keploy([], { FIXTURE_VARIANT: 'changed' });
    expect(again.output).toMatch(/^5 passed, 0 failed/m);
  });

  it('--detect-noise with --update, or with --app-url, is a usage error (exit 2)', async () => {
    const dir = copyOfRecording();
    let res = await tlsrecTest(dir, ['--detect-noise', '--update']);
    expect(res.code).toBe(2);
    expect(res.output).toContain('cannot be combined');
    res = await tlsrecTest(dir, ['--detect-noise', '--app-url', 'http://127.0.0.1:9']);
    expect(res.code).toBe(2);
    expect(res.output).toContain('--detect-noise needs to start the app');
  });
});
