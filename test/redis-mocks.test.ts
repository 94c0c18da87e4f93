// Redis mocks: the documents written from a real recording read back to the same replies, bad
// documents give every problem with its path, and the mock endpoint answers a real ioredis client
// (RESP3) and a raw RESP2 client from them — counters in recorded order across connections, a
// miss as `-ERR tlsrec: no mock for …` with the closest mock, housekeeping without the password.

import { readFileSync } from 'node:fs';
import net from 'node:net';
import { parse } from 'yaml';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { parseEventLine } from '../src/record/event-file.js';
import type { CaptureEvent } from '../src/model/events.js';
import type { Exchange } from '../src/model/exchange.js';
import type { RedisExchange } from '../src/model/exchange.js';
import type { RespValue } from '../src/model/redis.js';
import { Reconstructor } from '../src/record/reconstruct.js';
import { readRedisMock, redisMockDoc, redisYaml, type RedisMock } from '../src/protocols/redis/files.js';
import { serveRedis } from '../src/protocols/redis/serve.js';
import { encodeCommand, encodeResp, RespReader } from '../src/protocols/redis/resp.js';
import type { DocProblem, LoadedDoc, MockCallHit, MockCallMiss, MockServeContext } from '../src/protocols/protocol.js';

function recordedExchanges(): RedisExchange[] {
  const events: CaptureEvent[] = readFileSync(
    new URL('../fixtures/events/real-redis-ioredis.jsonl', import.meta.url),
    'utf8',
  )
    .split('\n')
    .filter((l) => l.trim())
    .map((l, i) => parseEventLine(l, i + 1, 'real-redis-ioredis.jsonl'));
  const ex: Exchange[] = [];
  const r = new Reconstructor({ onExchange: (e) => ex.push(e) });
  for (const e of events) r.push(e);
  r.finish();
  return ex.filter((e): e is RedisExchange => e.protocol === 'redis');
}

/** Exchanges → mocks.yaml text → documents → mocks, the way record and test do it. */
function throughDisk(exchanges: RedisExchange[]): LoadedDoc<RedisMock>[] {
  const text = exchanges.map((e, i) => redisYaml(redisMockDoc(e, i, { monoToWallNs: 0n }))).join('---\n');
  return text.split(/^---\n/m).map((doc, index) => {
    const value = parse(doc) as Record<string, unknown>;
    const read = readRedisMock(value, { file: 'mocks.yaml', line: 1, index });
    if (!('value' in read)) throw new Error(JSON.stringify(read.problems));
    return {
      protocol: 'redis',
      kind: 'Redis',
      file: 'mocks.yaml',
      line: 1,
      name: String(value.name),
      index,
      value: read.value,
    };
  });
}

const bytes3 = (v: RespValue): string => encodeResp(v, 3).toString('latin1');

describe('Redis mock documents', () => {
  const recorded = recordedExchanges();

  it('read back to the recorded commands and the same reply bytes', () => {
    const mocks = throughDisk(recorded);
    expect(mocks).toHaveLength(recorded.length);
    mocks.forEach((m, i) => {
      expect(m.value.command).toEqual(recorded[i]!.command);
      expect(m.value.replies.map(bytes3)).toEqual(recorded[i]!.replies.map(bytes3));
    });
  });

  it('keeps every RESP type and binary values through YAML', () => {
    const replies: RespValue[] = [
      { type: 'bulk', value: Buffer.from([0, 255, 1]) },
      { type: 'simple', value: 'OK' },
      { type: 'error', value: 'ERR x' },
      { type: 'error', value: 'SYNTAX y', blob: true },
      { type: 'integer', value: 12345678901234567890n },
      { type: 'integer', value: -3n },
      { type: 'null', wire: '$' },
      { type: 'null', wire: '*' },
      { type: 'boolean', value: false },
      { type: 'double', value: '-inf' },
      { type: 'bignum', value: '1234567890123456789012345' },
      { type: 'verbatim', format: 'mkd', value: '# hi' },
      { type: 'set', value: [{ type: 'bulk', value: Buffer.from('42') }] },
      { type: 'push', value: [{ type: 'bulk', value: Buffer.from('invalidate') }] },
      {
        type: 'map',
        value: [
          [
            { type: 'integer', value: 1n },
            { type: 'array', value: [] },
          ],
        ],
      },
      {
        type: 'map',
        value: [
          [
            { type: 'bulk', value: Buffer.from('k') },
            { type: 'bulk', value: Buffer.from('true') },
          ],
        ],
      },
    ];
    const ex: RedisExchange = {
      protocol: 'redis',
      role: 'outgoing',
      conn: 'c',
      tgid: 1,
      tls: false,
      indexOnConn: 0,
      command: [Buffer.from('X'), Buffer.from([0xff, 0x00])],
      replies,
      pushes: [],
      requestNs: 0n,
      responseNs: 0n,
    };
    const [m] = throughDisk([ex]);
    expect(m!.value.command).toEqual(ex.command);
    expect(m!.value.replies.map(bytes3)).toEqual(replies.map(bytes3));
  });

  it('reports every problem of a hand-edited document with its path', () => {
    const read = readRedisMock(
      {
        kind: 'Redis',
        spec: { command: ['GET', 7, [1]], replies: [{ simple: 'OK', extra: 1 }, 1.5], reply: 'x' },
        noise: { req: ['args.1'] },
      },
      { file: 'mocks.yaml', line: 1, index: 0 },
    );
    expect('problems' in read).toBe(true);
    const problems = (read as { problems: DocProblem[] }).problems;
    expect(problems.map((p) => p.path.join('.'))).toEqual([
      'spec.command.2',
      'spec.replies',
      'spec.replies.0.extra',
      'spec.replies.1',
      'noise.req.0',
    ]);
    expect(problems[3]!.message).toContain('{double: "1.5"}');
  });
});

// ---- the mock endpoint --------------------------------------------------------------------------

const servers: net.Server[] = [];
const clients: Array<{ disconnect(): void }> = [];
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
});

function mockEndpoint(
  mocks: LoadedDoc<RedisMock>[],
): Promise<{ port: number; hits: MockCallHit[]; misses: MockCallMiss[] }> {
  const hits: MockCallHit[] = [];
  const misses: MockCallMiss[] = [];
  const ctx: MockServeContext<RedisMock> = {
    mocks,
    destination: { host: '10.9.9.9', port: 6379 },
    startTls: () => Promise.reject(new Error('no TLS here')),
    hit: (c) => hits.push(c),
    miss: (c) => misses.push(c),
  };
  const server = net.createServer((s) => serveRedis(s, ctx));
  servers.push(server);
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as net.AddressInfo).port, hits, misses })),
  );
}

/** A raw RESP2 client: send commands, read `n` replies. */
async function rawClient(port: number, commands: Array<string[] | Buffer>, n: number): Promise<RespValue[]> {
  const sock = net.connect(port, '127.0.0.1');
  const reader = new RespReader();
  const out: RespValue[] = [];
  sock.write(Buffer.concat(commands.map((c) => (Buffer.isBuffer(c) ? c : encodeCommand(c)))));
  await new Promise<void>((resolve, reject) => {
    sock.on('error', reject);
    sock.on('data', (d: Buffer) => {
      reader.push(d);
      for (let r = reader.next(); r; r = reader.next()) out.push(r.value);
      if (out.length >= n) resolve();
    });
  });
  sock.destroy();
  return out;
}

describe('the Redis mock endpoint', () => {
  it('answers ioredis (RESP3) from the recording: counter in order, hash, pipeline, MULTI/EXEC, a reported miss', async () => {
    const mocks = throughDisk(recordedExchanges());
    const { port, hits, misses } = await mockEndpoint(mocks);
    // A password the recording never saw: AUTH is answered by the endpoint itself.
    const redis = new Redis({
      port,
      host: '127.0.0.1',
      password: 'not-the-recorded-one',
      connectionName: 'fixture-app',
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    clients.push(redis);
    expect(await redis.incr('visits')).toBe(1);
    expect(await redis.incr('visits')).toBe(2);
    // A second connection goes on from where the first left: every INCR visits mock is used, the last answers again.
    const other = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null });
    clients.push(other);
    expect(await other.incr('visits')).toBe(2);
    expect(hits.filter((h) => h.method === 'INCR').map((h) => h.reused ?? false)).toEqual([false, false, true]);
    expect(await redis.get('note')).toBe('{"text":"hello","n":1}');
    expect(await redis.hgetall('user:1')).toEqual({ name: 'Ada', lang: 'en' });
    const piped = await redis
      .pipeline()
      .set('a', '1')
      .incrby('a', 41)
      .get('a')
      .exists('missing')
      .lpush('list', 'x', 'y')
      .lrange('list', 0, -1)
      .exec();
    expect(piped!.map(([e, v]) => e ?? v)).toEqual(['OK', 42, '42', 0, 2, ['y', 'x']]);
    const tx = await redis.multi().incr('tx').sadd('tags', 'red').smembers('tags').exec();
    expect(tx!.map(([e, v]) => e ?? v)).toEqual([1, 1, ['red']]);

    await expect(redis.get('user:2')).rejects.toThrow(
      /tlsrec: no mock for GET user:2: closest mock-\d+ differed at command\[1\] \(expected note, got user:2\)/,
    );
    await expect(redis.hkeys('user:1')).rejects.toThrow(
      'tlsrec: no mock for HKEYS user:1 (no HKEYS command was recorded)',
    );
    expect(misses.map((m) => [m.method, m.url, m.closest?.field])).toEqual([
      ['GET', 'redis://10.9.9.9:6379 user:2', 'command[1]'],
      ['HKEYS', 'redis://10.9.9.9:6379 user:1', undefined],
    ]);
    // The connection is still usable after a miss.
    expect(await redis.ping()).toBe('PONG');
    // Housekeeping the recording has (CLIENT SETNAME fixture-app) is answered by its mock; the rest locally.
    expect(hits.filter((h) => h.method === 'CLIENT').map((h) => h.url)).toContain(
      'redis://10.9.9.9:6379 setname fixture-app',
    );
    expect(JSON.stringify([hits, misses])).not.toContain('not-the-recorded-one');
  });

  it('a recorded AUTH answers any password, and reports show it redacted', async () => {
    const auth: RedisExchange = {
      protocol: 'redis',
      role: 'outgoing',
      conn: 'c',
      tgid: 1,
      tls: false,
      indexOnConn: 0,
      command: ['AUTH', 'app', '[REDACTED]'].map((a) => Buffer.from(a)),
      replies: [{ type: 'simple', value: 'OK' }],
      pushes: [],
      requestNs: 0n,
      responseNs: 0n,
    };
    const { port, hits } = await mockEndpoint(throughDisk([auth]));
    const replies = await rawClient(
      port,
      [
        ['AUTH', 'app', 'another-secret'],
        ['AUTH', 'x'],
      ],
      2,
    );
    expect(replies).toEqual([
      { type: 'simple', value: 'OK' },
      { type: 'simple', value: 'OK' },
    ]);
    expect(hits).toEqual([{ mock: 'mock-0', method: 'AUTH', url: 'redis://10.9.9.9:6379 app [REDACTED]' }]);
  });

  it('noise: an argument named in noise.req or matching a noise.value regex is not compared', async () => {
    const read = (doc: Record<string, unknown>, index: number): LoadedDoc<RedisMock> => {
      const r = readRedisMock(doc, { file: 'mocks.yaml', line: 1, index });
      if (!('value' in r)) throw new Error(JSON.stringify(r.problems));
      return {
        protocol: 'redis',
        kind: 'Redis',
        file: 'mocks.yaml',
        line: 1,
        name: `mock-${index}`,
        index,
        value: r.value,
      };
    };
    const mocks = [
      read(
        {
          spec: { command: ['SET', 'session', 'token-1', 'PXAT', '1700000000000'], reply: { simple: 'OK' } },
          noise: { req: ['command.4'] },
        },
        0,
      ),
      read(
        { spec: { command: ['ZADD', 'seen', '1700000000', 'user:1'], reply: 1 }, noise: { value: ['^1[0-9]{9}$'] } },
        1,
      ),
    ];
    const { port, hits, misses } = await mockEndpoint(mocks);
    const replies = await rawClient(
      port,
      [
        ['SET', 'session', 'token-1', 'PXAT', '1800000000000'],
        ['ZADD', 'seen', '1800000001', 'user:1'],
        ['SET', 'session', 'token-2', 'PXAT', '1'],
      ],
      3,
    );
    expect(replies.map((r) => encodeResp(r).toString())).toEqual([
      '+OK\r\n',
      ':1\r\n',
      '-ERR tlsrec: no mock for SET session token-2 PXAT 1: closest mock-0 differed at command[2] (expected token-1, got token-2)\r\n',
    ]);
    expect(hits.map((h) => h.mock)).toEqual(['mock-0', 'mock-1']);
    expect(misses).toHaveLength(1);
  });

  it('pub/sub: a SUBSCRIBE mock answers its per-channel replies, then the messages recorded after it', async () => {
    const b = (x: string): RespValue => ({ type: 'bulk', value: Buffer.from(x) });
    const sub: RedisExchange = {
      protocol: 'redis',
      role: 'outgoing',
      conn: 'c',
      tgid: 1,
      tls: false,
      indexOnConn: 0,
      command: ['SUBSCRIBE', 'news', 'sport'].map((a) => Buffer.from(a)),
      replies: [
        { type: 'push', value: [b('subscribe'), b('news'), { type: 'integer', value: 1n }] },
        { type: 'push', value: [b('subscribe'), b('sport'), { type: 'integer', value: 2n }] },
      ],
      pushes: [{ type: 'push', value: [b('message'), b('news'), b('hello')] }],
      requestNs: 0n,
      responseNs: 0n,
    };
    const { port } = await mockEndpoint(throughDisk([sub]));
    const replies = await rawClient(port, [['SUBSCRIBE', 'news', 'sport']], 3);
    // A RESP2 client gets arrays for the RESP3 pushes, as from Redis itself.
    expect(replies.map((r) => encodeResp(r, 2).toString())).toEqual([
      '*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n',
      '*3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n',
      '*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n',
    ]);
    expect(replies.every((r) => r.type === 'array')).toBe(true);
  });

  it('answers a RESP2 client in RESP2 (a map becomes a flat array) and inline commands', async () => {
    const mocks = throughDisk(recordedExchanges());
    const { port } = await mockEndpoint(mocks);
    const replies = await rawClient(
      port,
      [['SELECT', '0'], ['HGETALL', 'user:1'], Buffer.from('PING\r\nGET note\r\n')],
      4,
    );
    expect(replies.map((r) => encodeResp(r, 2).toString())).toEqual([
      '+OK\r\n',
      '*4\r\n$4\r\nname\r\n$3\r\nAda\r\n$4\r\nlang\r\n$2\r\nen\r\n',
      '+PONG\r\n',
      '$22\r\n{"text":"hello","n":1}\r\n',
    ]);
  });
});
