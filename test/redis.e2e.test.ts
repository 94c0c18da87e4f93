// End to end, as root with real eBPF: fixtures/db-app/redis.mjs (ioredis: GET/SET, an INCR
// counter, a hash, a pipeline, MULTI/EXEC) recorded against a real redis-server that wants a
// password, in plaintext and over TLS (rediss://, the fixture CA); then, with the server stopped,
// `tlsrec test` answers every Redis command from mocks.yaml; a change to one returned field fails by
// name; a command the recording never saw is a reported miss, not a hang.

import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
const redisApp = join(repoRoot, 'fixtures', 'db-app', 'redis.mjs');
const PASSWORD = 'rec0rded-pa55word';

function hasRedisServer(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const certs = join(repoRoot, 'fixtures', 'certs');

describe.runIf(ebpf.run).each(['plain', 'tls'] as const)(
  'Redis (%s) recorded and answered from mocks (real eBPF, real redis-server)',
  (mode) => {
    let work: string;
    let appEnv: NodeJS.ProcessEnv;
    let redis: Started | undefined;
    /** How the recorded redis-server was started, to start a fresh one at the same address for passthrough. */
    let redisArgs: string[] = [];
    let redisPort = 0;
    /** What the app answered while recording, by request. */
    const recorded: Record<string, unknown> = {};

    beforeAll(async () => {
      if (!hasRedisServer())
        throw new Error("redis-server is not installed (.ci/run installs it from Debian's redis-server package)");
      work = mkdtempSync(join(tmpdir(), 'tlsrec-redis-'));
      redisPort = await freePort();
      const listen =
        mode === 'tls'
          ? [
              '--port',
              '0',
              '--tls-port',
              String(redisPort),
              '--tls-cert-file',
              join(certs, 'server.pem'),
              '--tls-key-file',
              join(certs, 'server.key'),
              '--tls-ca-cert-file',
              fixtureCa,
              '--tls-auth-clients',
              'no',
            ]
          : ['--port', String(redisPort)];
      redisArgs = [...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--requirepass', PASSWORD];
      redis = start('redis-server', redisArgs, { cwd: work });
      await waitForOutput(redis, /Ready to accept connections/);
      const port = await freePort();
      appEnv = {
        PORT: String(port),
        REDIS_URL: `${mode === 'tls' ? 'rediss' : 'redis'}://:${PASSWORD}@127.0.0.1:${redisPort}`,
        ...(mode === 'tls' ? { NODE_EXTRA_CA_CERTS: fixtureCa } : {}),
      };
      const rec = start('node', [tlsrecBin, 'record', '-q', '--', 'node', redisApp], { cwd: work, env: appEnv });
      const base = `http://127.0.0.1:${port}`;
      await waitForHttp(`${base}/health`);
      const call = async (method: string, path: string, body?: unknown): Promise<void> => {
        const res = await fetch(base + path, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
        recorded[
          `${method} ${path} #${Object.keys(recorded).filter((k) => k.startsWith(`${method} ${path} `)).length}`
        ] = await res.json();
      };
      await call('POST', '/visits');
      await call('POST', '/visits');
      await call('PUT', '/note', { text: 'hello', n: 1 });
      await call('GET', '/note');
      await call('PUT', '/user', { name: 'Ada', lang: 'en' });
      await call('GET', '/user');
      await call('POST', '/batch');
      await call('POST', '/tx');
      rec.child.kill('SIGINT');
      expect(await rec.exited).toBe(0);
      // From here on there is no Redis: every answer must come from the mocks.
      redis.child.kill('SIGTERM');
      await redis.exited;
    }, 60_000);

    afterAll(async () => {
      await stopAll();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    function copyOfRecording(): string {
      const dir = mkdtempSync(join(tmpdir(), 'tlsrec-redis-copy-'));
      cpSync(join(work, 'tlsrec'), join(dir, 'tlsrec'), { recursive: true });
      cpSync(join(work, 'tlsrec.yaml'), join(dir, 'tlsrec.yaml'));
      return dir;
    }

    const tlsrecTest = (dir: string, env: NodeJS.ProcessEnv = {}) =>
      run('node', [tlsrecBin, 'test'], { cwd: dir, env: { ...appEnv, NO_COLOR: '1', ...env } });

    it('recorded the app as it ran: the counter, the hash, the pipeline and the transaction', () => {
      expect(recorded).toEqual({
        'POST /visits #0': { visits: 1 },
        'POST /visits #1': { visits: 2 },
        'PUT /note #0': { saved: true },
        'GET /note #0': { note: { text: 'hello', n: 1 } },
        'PUT /user #0': { fields: 2 },
        'GET /user #0': { user: { name: 'Ada', lang: 'en' }, greeting: 'Hello Ada' },
        'POST /batch #0': { results: ['OK', 42, '42', 0, 2, ['y', 'x']] },
        'POST /tx #0': { results: [1, 1, ['red']] },
      });
    });

    it('wrote readable Redis mocks with the commands and replies, and never the password', () => {
      const setDir = join(work, 'tlsrec', 'test-set-0');
      const mocks = readFileSync(join(setDir, 'mocks.yaml'), 'utf8');
      expect(mocks).toContain('kind: Redis');
      expect(mocks).toMatch(/command:\n\s+- incr\n\s+- visits\n\s+reply: 2\n/);
      expect(mocks).toMatch(/command:\n\s+- hgetall\n\s+- user:1\n\s+reply:\n\s+map:\n\s+name: Ada\n\s+lang: en\n/);
      expect(mocks).toContain('[REDACTED]');
      const everything = readdirSync(work, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => readFileSync(join(e.parentPath, e.name), 'latin1'))
        .join('\n');
      expect(everything).not.toContain(PASSWORD);
    });

    it('replays with redis-server stopped: every test passes from the Redis mocks', async () => {
      const dir = copyOfRecording();
      const res = await tlsrecTest(dir);
      expect(res.output).toMatch(/^9 passed, 0 failed/m);
      expect(res.code).toBe(0);
      // Every recorded command answered something, the connection's HELLO/AUTH and CLIENT calls too.
      expect(res.output).not.toContain('mocks were not used');
      expect(res.output).not.toContain('mock miss');
      rmSync(dir, { recursive: true, force: true });
    }, 60_000);

    it('passthrough: with the Redis address in passthrough the app talks to a real (fresh) redis-server, no Redis mock used', async () => {
      const dir = copyOfRecording();
      const config = join(dir, 'tlsrec.yaml');
      const text = readFileSync(config, 'utf8');
      expect(text).toMatch(/^passthrough: \[\]$/m);
      writeFileSync(config, text.replace(/^passthrough: \[\]$/m, `passthrough: ["127.0.0.1:${redisPort}"]`));
      const fresh = start('redis-server', redisArgs, { cwd: dir });
      try {
        await waitForOutput(fresh, /Ready to accept connections/);
        const res = await tlsrecTest(dir);
        // A fresh server answers as the recorded one did (the counter starts again at 1).
        expect(res.output).toMatch(/^9 passed, 0 failed/m);
        expect(res.code).toBe(0);
        expect(res.output).toMatch(/24 of 24 mocks were not used/);
      } finally {
        fresh.child.kill('SIGTERM');
        await fresh.exited;
      }
      rmSync(dir, { recursive: true, force: true });
    }, 60_000);

    it('a change to one returned field fails that test by name', async () => {
      const dir = copyOfRecording();
      const res = await tlsrecTest(dir, { REDIS_APP_VARIANT: 'changed' });
      expect(res.code).toBe(1);
      expect(res.output).toMatch(/^8 passed, 1 failed/m);
      expect(res.output).toContain('$.greeting');
      expect(res.output).toContain('Hello Ada');
      expect(res.output).toContain('Hi Ada');
      rmSync(dir, { recursive: true, force: true });
    }, 60_000);

    it('a command the recording never saw is a reported miss with the closest mock, not a hang', async () => {
      const dir = copyOfRecording();
      const t0 = Date.now();
      const res = await tlsrecTest(dir, { REDIS_APP_VARIANT: 'unseen' });
      expect(res.code).toBe(1);
      expect(res.output).toMatch(/^8 passed, 1 failed/m);
      expect(res.output).toContain('no mock for GET note:other');
      expect(res.output).toMatch(/closest mock-\d+ differed at command\[1\]/);
      expect(Date.now() - t0).toBeLessThan(50_000);
      rmSync(dir, { recursive: true, force: true });
    }, 60_000);
  },
);
