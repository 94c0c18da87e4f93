// rerecord's pure parts and its usage errors (no app is started: those come before recording).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import type { TestCase } from '../src/format/types.js';
import { comparisonNoise, matchByRequest, rerecordCommand } from '../src/commands/rerecord.js';
import { compareResponse } from '../src/replay/compare.js';
import { parseNoise } from '../src/format/noise.js';
import { UsageError, InputFileError } from '../src/errors.js';

function tc(name: string, method: string, url: string, body = ''): TestCase {
  return {
    file: `${name}.yaml`,
    name,
    request: { method, url, headers: [], body: { bytes: Buffer.from(body), kind: body ? 'json' : 'empty' } },
    expected: { status: 200, headers: [], body: { bytes: Buffer.alloc(0), kind: 'empty' } },
    noise: [],
  };
}

describe('matchByRequest', () => {
  it('pairs in order by method + path and query + body; extra recorded exchanges are left over', () => {
    const old = [
      tc('a', 'GET', 'http://localhost:3000/health'),
      tc('b', 'POST', 'http://localhost:3000/orders', '{"n":1}'),
      tc('hand', 'GET', 'http://x/health'),
      tc('c', 'POST', 'http://localhost:3000/orders', '{"n":2}'),
    ];
    const fresh = [
      tc('n1', 'GET', 'http://localhost:3000/health'), // a readiness poll: sent by the health check, not by rerecord
      tc('n2', 'GET', 'http://localhost:3000/health'),
      tc('n3', 'post', 'http://localhost:3000/orders', '{"n":1}'),
      tc('n4', 'GET', 'http://127.0.0.1:3000/health'),
      tc('n5', 'POST', 'http://localhost:3000/orders', '{"n":2}'),
      tc('n6', 'GET', 'http://localhost:3000/health?x=1'),
    ];
    const { pairs, unmatched } = matchByRequest(old, fresh);
    expect(pairs.map(([o, n]) => `${o.name}=${n.name}`)).toEqual(['a=n1', 'b=n3', 'hand=n2', 'c=n5']);
    expect(unmatched.map((t) => t.name)).toEqual(['n4', 'n6']);
  });
});

describe('comparisonNoise: old answer vs new answer', () => {
  const json = (v: unknown) => ({ bytes: Buffer.from(JSON.stringify(v)), kind: 'json' as const });
  it('takes the new record-time flags only where the old value was volatile-shaped too', () => {
    const old = tc('t', 'GET', 'http://localhost:3000/session');
    old.expected = {
      status: 200,
      headers: [['Content-Type', 'application/json']],
      body: json({ id: '3f2b8c1e-9d4a-4c7b-8e21-5a6b7c8d9e0f', at: '2025-01-02T03:04:05Z', plan: 'pro' }),
    };
    old.noise = parseNoise({ 'header.Date': [] }).rules;
    const fresh = tc('t', 'GET', 'http://localhost:3000/session');
    // the app answers a UUID where the recording says "pro": flagged when recording, but a real change
    fresh.expected = {
      status: 200,
      headers: [['Content-Type', 'application/json']],
      body: json({
        id: 'c56a4180-65aa-42ec-a945-5fd21dec0538',
        at: new Date().toISOString(),
        plan: '886313e1-3b8a-4372-9b90-0c9aee199e5d',
      }),
    };
    fresh.noise = parseNoise({ 'header.Date': [], 'body.id': [], 'body.at': [], 'body.plan': [] }).rules;
    const noise = comparisonNoise(old, fresh);
    expect(noise.map((r) => r.key).sort()).toEqual(['body.at', 'body.id', 'header.Date']);
    const cmp = compareResponse(
      't',
      old.expected,
      { status: 200, headers: fresh.expected.headers, body: fresh.expected.body.bytes },
      noise,
    );
    expect(cmp.passed).toBe(false);
    expect(cmp.failures.map((f) => f.path)).toEqual(['$.plan']);
  });
});

describe('rerecord usage errors (exit 2)', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const work = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'tlsrec-rerecord-'));
    dirs.push(d);
    return d;
  };
  const test = `version: api.keploy.io/v1beta1
kind: Http
name: test-1
spec:
  req: { method: GET, url: "http://localhost:3000/", header: {}, body: "" }
  resp: { status_code: 200, header: {}, body: "" }
`;

  it('no test sets, no command, an unknown set, a broken file', async () => {
    const d = work();
    const out = new PassThrough();
    const base = { dir: join(d, 'tlsrec'), configPath: join(d, 'tlsrec.yaml'), verbose: false, out };
    mkdirSync(join(d, 'tlsrec'));
    await expect(rerecordCommand(base)).rejects.toThrow(UsageError);
    mkdirSync(join(d, 'tlsrec', 'test-set-0', 'tests'), { recursive: true });
    writeFileSync(join(d, 'tlsrec', 'test-set-0', 'tests', 'test-1.yaml'), test);
    await expect(rerecordCommand(base)).rejects.toThrow(/no command to start the app/);
    await expect(rerecordCommand({ ...base, command: ['true'], testSets: ['nope'] })).rejects.toThrow(
      /unknown test set/,
    );
    writeFileSync(join(d, 'tlsrec', 'test-set-0', 'tests', 'test-2.yaml'), 'kind: [\n');
    await expect(rerecordCommand({ ...base, command: ['true'] })).rejects.toThrow(InputFileError);
  });
});
