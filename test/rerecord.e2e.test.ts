// End-to-end (real eBPF, as root): the day-two loop's record-time flagging, tlsrec.yaml env: and
// `tlsrec rerecord`, on fixtures/volatile-app and the HTTPS upstream fixture.
//
//   record --env PORT --env UPSTREAM_URL --env NODE_EXTRA_CA_CERTS   (the app reads its port and
//     upstream from the environment; test and rerecord run WITHOUT them in their own environment,
//     so only tlsrec.yaml env: can give them)
//   -> record-time noise on the UUID / time / epoch fields, none on name / plan / price
//   -> a hand edit (noise on the random token and etag) and a hand-added test in the old set
//   -> the upstream changes (UPSTREAM_VARIANT=changed), `tlsrec rerecord` -> a fresh set whose
//      /checkout answer is reported as different, hand noise and hand test carried over
//   -> the fresh set replays offline (upstream stopped): `tlsrec test --detect-noise` makes the
//      /checkout call's nonce and time mock-matching noise, then every test passes, and a plain
//      `tlsrec test` afterwards passes 100 % with every call served from the fresh mocks

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/format/config-reader.js';
import { loadTestSets } from '../src/format/reader.js';
import type { TestCase } from '../src/format/types.js';
import type { RunReport } from '../src/replay/report/model.js';
import { needsEbpf } from './helpers/env.js';
import {
  fixtureCa,
  freePort,
  repoRoot,
  run,
  start,
  stopAll,
  tlsrecBin,
  waitForHttp,
  waitForOutput,
  type Started,
} from './helpers/procs.js';

const ebpf = needsEbpf();
const volatileApp = join(repoRoot, 'fixtures', 'volatile-app', 'server.mjs');
const upstreamServer = join(repoRoot, 'fixtures', 'upstream', 'server.mjs');
/** What the app needs, given to `record` only: test and rerecord must take it from tlsrec.yaml. */
const APP_ENV_NAMES = ['PORT', 'UPSTREAM_URL', 'NODE_EXTRA_CA_CERTS'] as const;
const withoutAppEnv = Object.fromEntries(APP_ENV_NAMES.map((n) => [n, undefined])) as NodeJS.ProcessEnv;

function noiseKeys(t: TestCase): string[] {
  return t.noise.map((r) => r.key.toLowerCase());
}

function byPath(tests: TestCase[], path: string): TestCase {
  const t = tests.find((x) => new URL(x.request.url).pathname === path && !x.name.includes('by-hand'));
  expect(t, `a test for ${path}`).toBeDefined();
  return t!;
}

/** Every file under dir with its bytes, for "unchanged" checks. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(p, readFileSync(p, 'utf8'));
    }
  };
  walk(dir);
  return out;
}

const HAND_TEST = `# A test written by hand: same request as the recorded /health test.
version: api.keploy.io/v1beta1
kind: Http
name: health-by-hand
spec:
  req:
    method: GET
    url: http://localhost:PORT/health
    header: {}
    body: ""
  resp:
    status_code: 200
    header:
      content-type: application/json
    body: '{"ok":true}'
  assertions:
    noise:
      header.x-request-id: []
      header.Date: []
`;

describe.runIf(ebpf.run)('record-time noise, env: and rerecord (real eBPF)', () => {
  const work = mkdtempSync(join(tmpdir(), 'tlsrec-rerecord-'));
  afterAll(async () => {
    await stopAll();
    rmSync(work, { recursive: true, force: true });
  });

  async function upstream(upPort: number, variant: 'normal' | 'changed'): Promise<Started> {
    const p = start('node', [upstreamServer, '--host', '127.0.0.2', '--port', String(upPort)], {
      env: { UPSTREAM_VARIANT: variant },
    });
    await waitForOutput(p, /listening https:\/\//);
    return p;
  }

  it('records with flags and env:, re-records against a changed upstream, and the fresh set replays offline', async () => {
    const appPort = await freePort();
    const upPort = await freePort('127.0.0.2');
    const upstreamUrl = `https://127.0.0.2:${upPort}`;
    let up = await upstream(upPort, 'normal');

    // ---- record ----
    const rec = start(
      'node',
      [
        tlsrecBin,
        'record',
        '-q',
        '--env',
        'PORT',
        '--env',
        'UPSTREAM_URL',
        '--env',
        'NODE_EXTRA_CA_CERTS',
        '--',
        'node',
        volatileApp,
      ],
      {
        cwd: work,
        env: { PORT: String(appPort), UPSTREAM_URL: upstreamUrl, NODE_EXTRA_CA_CERTS: fixtureCa },
      },
    );
    const base = `http://127.0.0.1:${appPort}`;
    await waitForHttp(`${base}/health`);
    expect((await fetch(`${base}/session`)).status).toBe(200);
    const checkout = await fetch(`${base}/checkout`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ item: 'cup', qty: 2 }),
    });
    expect(await checkout.json()).toMatchObject({ status: 'accepted', item: 'cup', qty: 2 });
    rec.child.kill('SIGINT');
    expect(await rec.exited, rec.output()).toBe(0);

    // tlsrec.yaml env: holds the three variables with their values
    const config = loadConfig(join(work, 'tlsrec.yaml'));
    expect(config.env).toEqual({ PORT: String(appPort), UPSTREAM_URL: upstreamUrl, NODE_EXTRA_CA_CERTS: fixtureCa });
    expect(readFileSync(join(work, 'tlsrec.yaml'), 'utf8')).toMatch(/# env: .*no secrets/);

    // ---- record-time flags ----
    const [old] = loadTestSets(join(work, 'tlsrec'), { config });
    const session = byPath(old!.tests, '/session');
    const sessionNoise = noiseKeys(session);
    for (const volatile of ['header.x-request-id', 'body.id', 'body.createdat', 'body.ts', 'body.items.seenat'])
      expect(sessionNoise).toContain(volatile);
    for (const stable of [
      'body.user.name',
      'body.user.plan',
      'body.price.amount',
      'body.price.currency',
      'body.items.sku',
      'body.user',
      'body.price',
      'body',
    ]) {
      expect(sessionNoise).not.toContain(stable);
    }
    // random hex (token, etag) looks like a content hash: never flagged at record time
    expect(sessionNoise).not.toContain('body.token');
    expect(sessionNoise).not.toContain('header.etag');
    const checkoutNoise = noiseKeys(byPath(old!.tests, '/checkout'));
    expect(checkoutNoise).toContain('body.at');
    for (const stable of ['body.status', 'body.item', 'body.qty']) expect(checkoutNoise).not.toContain(stable);

    // ---- hand edits in the old set: noise for the token and etag, and a hand-written test ----
    const sessionText = readFileSync(session.file, 'utf8');
    writeFileSync(
      session.file,
      sessionText.replace(
        /( +)header\.Date: \[\]\n/,
        '$1header.Date: []\n$1body.token: []\n$1header.etag: [] # hand edit\n',
      ),
    );
    writeFileSync(join(old!.dir, 'tests', 'zz-health-by-hand.yaml'), HAND_TEST.replace('PORT', String(appPort)));
    const oldFiles = snapshot(old!.dir);

    // ---- the upstream changes; rerecord ----
    up.child.kill('SIGTERM');
    await up.exited;
    up = await upstream(upPort, 'changed');
    const rr = await run('node', [tlsrecBin, 'rerecord'], { cwd: work, env: withoutAppEnv });
    const out = rr.output;
    expect(rr.code, out).toBe(1); // one answer differs
    expect(out).toMatch(/test-set-0 -> test-set-1/);
    expect(out).toMatch(/same +test-1 +GET \/health/);
    expect(out).toMatch(/same +test-2 +GET \/session/);
    expect(out).toMatch(/noise kept from test-set-0: body\.token, header\.etag/);
    expect(out).toMatch(/DIFFERS +test-3 +POST \/checkout\n +body \$\.status: expected "accepted", got "queued"/);
    expect(out).toMatch(/same +health-by-hand +GET \/health/);
    expect(out).toMatch(/3 same, 1 differ, 0 without an answer/);
    // the old set is untouched
    expect(snapshot(old!.dir)).toEqual(oldFiles);

    // the fresh set: the old file names and test names, the old noise with the new record-time flags
    const fresh = loadTestSets(join(work, 'tlsrec'), { only: ['test-set-1'], config })[0]!;
    expect(readdirSync(join(fresh.dir, 'tests')).sort()).toEqual([
      'test-1.yaml',
      'test-2.yaml',
      'test-3.yaml',
      'zz-health-by-hand.yaml',
    ]);
    expect(fresh.tests.map((t) => t.name)).toEqual(['test-1', 'test-2', 'test-3', 'health-by-hand']);
    const freshSession = noiseKeys(byPath(fresh.tests, '/session'));
    for (const k of [
      'body.token',
      'header.etag',
      'body.id',
      'body.createdat',
      'body.ts',
      'body.items.seenat',
      'header.x-request-id',
    ])
      expect(freshSession).toContain(k);
    expect(freshSession).not.toContain('body.user.plan');
    const freshCheckout = byPath(fresh.tests, '/checkout');
    expect(JSON.parse(freshCheckout.expected.body.bytes.toString())).toMatchObject({
      status: 'queued',
      item: 'cup',
      qty: 2,
    });
    expect(fresh.mocks).toHaveLength(1);
    expect(JSON.parse(fresh.mocks[0]!.response.body.bytes.toString())).toMatchObject({ status: 'queued' });

    // ---- the fresh set replays offline ----
    up.child.kill('SIGTERM');
    await up.exited;
    // The user's loop: /checkout's outgoing body carries a fresh nonce and time on every run, so
    // --detect-noise writes them as the mock's noise; it ends with a normal run that passes.
    const mocksFile = join(fresh.dir, 'mocks.yaml');
    const detect = await run('node', [tlsrecBin, 'test', '--test-set', 'test-set-1', '--detect-noise'], {
      cwd: work,
      env: { ...withoutAppEnv, NO_COLOR: '1' },
    });
    expect(detect.output).toContain('noise + body.nonce  tlsrec/test-set-1/mocks.yaml (mock-0)');
    expect(detect.output).toContain('noise + body.at  tlsrec/test-set-1/mocks.yaml (mock-0)');
    expect(detect.output).toMatch(/^4 passed, 0 failed/m);
    expect(detect.code, detect.output).toBe(0);
    expect(readFileSync(mocksFile, 'utf8')).toMatch(/noise:\n\s+req:\n\s+- body\.nonce\n\s+- body\.at\n/);

    const reportDir = join(work, 'reports');
    const t = await run(
      'node',
      [
        tlsrecBin,
        'test',
        '--test-set',
        'test-set-1',
        '--reporter',
        'terminal',
        '--reporter',
        'json',
        '--report-dir',
        reportDir,
      ],
      { cwd: work, env: withoutAppEnv },
    );
    const report = JSON.parse(
      readFileSync(join(reportDir, readdirSync(reportDir).find((f) => f.endsWith('.json'))!), 'utf8'),
    ) as RunReport;
    // Served from the fresh mocks, with the app's port and upstream from tlsrec.yaml env: alone.
    expect(
      report.sets[0]!.tests.map((x) => [x.name, x.passed]),
      t.output,
    ).toEqual([
      ['test-1', true],
      ['test-2', true],
      ['test-3', true],
      ['health-by-hand', true],
    ]);
    expect(
      report.sets[0]!.tests.flatMap((x) => x.mockMisses),
      t.output,
    ).toEqual([]);
    expect(report.sets[0]!.mocks, t.output).toMatchObject({ total: 1, misses: [], unused: [] });
    expect(t.code, t.output).toBe(0);
    expect(existsSync(join(work, 'tlsrec', 'test-set-2'))).toBe(false);
  }, 120_000);
});
