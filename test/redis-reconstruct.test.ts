// Redis recording: RESP values of every type, commands paired with replies (pipelines,
// MULTI/EXEC, pub/sub), passwords redacted, on the event stream recorded with real eBPF from
// fixtures/db-app/redis.mjs (ioredis against redis-server) re-split at every byte, and with a lost
// chunk in the middle.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseEventLine } from '../src/record/event-file.js';
import type { CaptureEvent, DataEvent } from '../src/model/events.js';
import type { Exchange, SkippedStream } from '../src/model/exchange.js';
import type { RedisExchange } from '../src/model/exchange.js';
import type { RespValue } from '../src/model/redis.js';
import { Reconstructor } from '../src/record/reconstruct.js';
import { encodeCommand, encodeResp, RespError, RespReader } from '../src/protocols/redis/resp.js';
import { detectRedis, redactCommand } from '../src/protocols/redis/reconstruct.js';

function load(name: string): CaptureEvent[] {
  return readFileSync(new URL(`../fixtures/events/${name}`, import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l, i) => parseEventLine(l, i + 1, name));
}

function reconstruct(events: CaptureEvent[]): { ex: Exchange[]; skipped: SkippedStream[] } {
  const ex: Exchange[] = [];
  const skipped: SkippedStream[] = [];
  const r = new Reconstructor({ onExchange: (e) => ex.push(e), onSkipped: (s) => skipped.push(s) });
  for (const e of events) r.push(e);
  r.finish();
  return { ex, skipped };
}

/** Every data event cut into pieces of `size` bytes (positions kept consistent). */
function resplit(events: CaptureEvent[], size: number): CaptureEvent[] {
  return events.flatMap((e): CaptureEvent[] => {
    if (e.type !== 'data' || e.data.length <= size) return [e];
    const parts: DataEvent[] = [];
    for (let off = 0; off < e.data.length; off += size) {
      parts.push({
        ...e,
        pos: e.pos + BigInt(off),
        chunkOff: e.chunkOff + off,
        data: e.data.subarray(off, off + size),
      });
    }
    return parts;
  });
}

const redisOnly = (ex: Exchange[]): RedisExchange[] => ex.filter((e): e is RedisExchange => e.protocol === 'redis');

/** A reply as compact text: the types as well as the values. */
function show(v: RespValue): string {
  switch (v.type) {
    case 'bulk':
      return JSON.stringify(v.value.toString('utf8'));
    case 'simple':
      return `+${v.value}`;
    case 'error':
      return `-${v.value}`;
    case 'integer':
      return `:${v.value}`;
    case 'null':
      return `null(${v.wire})`;
    case 'array':
      return `[${v.value.map(show).join(',')}]`;
    case 'set':
      return `~[${v.value.map(show).join(',')}]`;
    case 'push':
      return `>[${v.value.map(show).join(',')}]`;
    case 'map':
      return `{${v.value.map(([k, x]) => `${show(k)}:${show(x)}`).join(',')}}`;
    case 'double':
      return `,${v.value}`;
    case 'boolean':
      return `#${v.value}`;
    case 'verbatim':
      return `=${v.format}:${v.value.length}`;
    case 'bignum':
      return `(${v.value}`;
  }
}

const line = (e: RedisExchange): string =>
  `${e.command.map((a) => a.toString()).join(' ')} -> ${e.replies.map(show).join(' ')}${e.pushes.length ? ` pushes ${e.pushes.map(show).join(' ')}` : ''}`;

/** The port redis-server listened on when the fixture was recorded. */
const REDIS_PORT = 46379;

describe('the ioredis recording (real eBPF events)', () => {
  const events = load('real-redis-ioredis.jsonl');
  const whole = reconstruct(events);
  const lines = redisOnly(whole.ex).map(line);

  it('pairs every command with its reply: GET/SET, INCR counter, hash, pipeline, MULTI/EXEC', () => {
    expect(whole.skipped).toEqual([]);
    expect(redisOnly(whole.ex).every((e) => e.role === 'outgoing')).toBe(true);
    expect(whole.ex.filter((e) => e.protocol === 'http1')).toHaveLength(9);
    expect(lines[0]).toMatch(/^hello 3 -> \{"server":"redis","version":"7[^"]*","proto"::3,/);
    expect(lines).toContain('client setname fixture-app -> +OK');
    const app = lines.slice(lines.findIndex((l) => l.startsWith('incr visits')));
    expect(app).toEqual([
      'incr visits -> :1',
      'incr visits -> :2',
      'set note {"text":"hello","n":1} EX 3600 -> +OK',
      'get note -> "{\\"text\\":\\"hello\\",\\"n\\":1}"',
      'hset user:1 name Ada lang en -> :2',
      'hlen user:1 -> :2',
      'hgetall user:1 -> {"name":"Ada","lang":"en"}',
      'set a 1 -> +OK',
      'incrby a 41 -> :42',
      'get a -> "42"',
      'exists missing -> :0',
      'lpush list x y -> :2',
      'lrange list 0 -1 -> ["y","x"]',
      'multi -> +OK',
      'incr tx -> +QUEUED',
      'sadd tags red -> +QUEUED',
      'smembers tags -> +QUEUED',
      'exec -> [:1,:1,~["red"]]',
    ]);
  });

  it('gives the same exchanges with every data event cut at every byte', () => {
    for (const size of [1, 2, 3, 7]) {
      const again = reconstruct(resplit(events, size));
      expect(again.skipped).toEqual([]);
      expect(redisOnly(again.ex).map(line)).toEqual(lines);
    }
  });

  it('a lost chunk of commands: what came before is kept, nothing after is paired wrongly, the loss is reported', () => {
    const redisConn = events.find((e) => e.type === 'open' && e.remotePort === REDIS_PORT)!;
    const cmdEvents = events.filter(
      (e): e is DataEvent => e.type === 'data' && e.connId === redisConn.connId && e.dir === 'out',
    );
    const lostAt = Math.floor(cmdEvents.length / 2);
    const lost = cmdEvents[lostAt]!;
    const r = reconstruct(events.filter((e) => e !== lost));
    const got = redisOnly(r.ex).map(line);
    // Every exchange kept is one of the recording's, in the recording's order.
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(lines.length);
    expect(lines.slice(0, got.length)).toEqual(got);
    expect(r.skipped).toHaveLength(1);
    expect(r.skipped[0]).toMatchObject({
      reason: 'bytes-lost',
      detail: expect.stringContaining(`out: ${lost.data.length} byte(s) at position ${lost.pos}`),
    });
  });

  it('a lost chunk of replies: the commands answered before it are kept', () => {
    const redisConn = events.find((e) => e.type === 'open' && e.remotePort === REDIS_PORT)!;
    const replyEvents = events.filter(
      (e): e is DataEvent => e.type === 'data' && e.connId === redisConn.connId && e.dir === 'in',
    );
    const lost = replyEvents[Math.floor(replyEvents.length / 2)]!;
    const r = reconstruct(events.filter((e) => e !== lost));
    const got = redisOnly(r.ex).map(line);
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(lines.length);
    expect(lines.slice(0, got.length)).toEqual(got);
    expect(r.skipped).toHaveLength(1);
    expect(r.skipped[0]).toMatchObject({
      reason: 'bytes-lost',
      detail: expect.stringContaining(`in: ${lost.data.length} byte(s) at position ${lost.pos}`),
    });
  });
});

// ---- synthetic streams: every RESP type, pub/sub, redaction ---------------------------------------

let ts = 1_000n;
function conversation(parts: Array<['out' | 'in', Buffer]>, split?: number): CaptureEvent[] {
  const pos = { in: 0n, out: 0n };
  const events: CaptureEvent[] = [
    {
      tsNs: ts++,
      tgid: 7,
      tid: 7,
      source: 'socket',
      connId: 1n,
      type: 'open',
      role: 'connect',
      localPort: 50000,
      remotePort: 6379,
      localAddr: '127.0.0.1',
      remoteAddr: '127.0.0.1',
    },
  ];
  for (const [dir, data] of parts) {
    const pieces =
      split === undefined ? [data] : [data.subarray(0, split), data.subarray(split)].filter((p) => p.length > 0);
    for (const p of pieces) {
      events.push({
        tsNs: ts++,
        tgid: 7,
        tid: 7,
        source: 'socket',
        connId: 1n,
        type: 'data',
        dir,
        pos: pos[dir],
        callLen: p.length,
        chunkOff: 0,
        data: p,
      });
      pos[dir] += BigInt(p.length);
    }
  }
  events.push({ tsNs: ts++, tgid: 7, tid: 7, source: 'socket', connId: 1n, type: 'close' });
  return events;
}

const cmd = (...a: string[]): Buffer => encodeCommand(a);
const raw = (s: string): Buffer => Buffer.from(s, 'latin1');

/** A RESP3 conversation with every reply type, a pipeline, pub/sub and AUTH. */
const EVERY_TYPE: Array<['out' | 'in', Buffer]> = [
  ['out', cmd('HELLO', '3', 'AUTH', 'app', 's3cret')],
  ['in', raw('%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n')],
  // a pipeline: five commands, then five replies
  [
    'out',
    Buffer.concat([
      cmd('GET', 'nothing'),
      cmd('ZSCORE', 'z', 'm'),
      cmd('SISMEMBER', 's', 'x'),
      cmd('LOLWUT'),
      cmd('DEBUG', 'BIGNUM'),
    ]),
  ],
  ['in', raw('_\r\n,3.25\r\n#t\r\n=16\r\ntxt:Redis ver. 7\r\n(3492890328409238509324850943850943825024385\r\n')],
  ['out', cmd('AUTH', 'hunter2')],
  ['in', raw('-WRONGPASS invalid username-password pair\r\n')],
  ['out', cmd('FCALL', 'f', '0')],
  ['in', raw('!21\r\nSYNTAX invalid syntax\r\n')],
  ['out', cmd('HGETALL', 'h')],
  ['in', raw('|1\r\n+key-popularity\r\n*0\r\n%1\r\n:1\r\n*2\r\n$-1\r\n*-1\r\n')],
  ['out', cmd('SUBSCRIBE', 'news', 'sport')],
  ['in', raw('>3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n>3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n')],
  ['in', raw('>3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n')],
  ['out', cmd('UNSUBSCRIBE')],
  ['in', raw('>3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:1\r\n>3\r\n$11\r\nunsubscribe\r\n$5\r\nsport\r\n:0\r\n')],
  ['out', raw('PING\r\n')],
  ['in', raw('+PONG\r\n')],
];

const EVERY_TYPE_LINES = [
  'HELLO 3 AUTH app [REDACTED] -> {"server":"redis","proto"::3}',
  'GET nothing -> null(_)',
  'ZSCORE z m -> ,3.25',
  'SISMEMBER s x -> #true',
  'LOLWUT -> =txt:12',
  'DEBUG BIGNUM -> (3492890328409238509324850943850943825024385',
  'AUTH [REDACTED] -> -WRONGPASS invalid username-password pair',
  'FCALL f 0 -> -SYNTAX invalid syntax',
  'HGETALL h -> {:1:[null($),null(*)]}',
  'SUBSCRIBE news sport -> >["subscribe","news",:1] >["subscribe","sport",:2] pushes >["message","news","hello"]',
  'UNSUBSCRIBE -> >["unsubscribe","news",:1] >["unsubscribe","sport",:0]',
  'PING -> +PONG',
];

describe('Redis reconstruction of every RESP type', () => {
  it('reads RESP3 types, a pipeline, pub/sub and inline commands; AUTH passwords never kept', () => {
    const r = reconstruct(conversation(EVERY_TYPE));
    expect(r.skipped).toEqual([]);
    const ex = redisOnly(r.ex);
    expect(ex.map(line)).toEqual(EVERY_TYPE_LINES);
    expect(ex.at(-1)!.inline).toBe(true);
    expect(JSON.stringify(r.ex, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).not.toMatch(
      /s3cret|hunter2/,
    );
  });

  it('gives the same exchanges with the whole stream split in two at every byte boundary', () => {
    const total = Math.max(...EVERY_TYPE.map(([, b]) => b.length));
    for (let at = 1; at < total; at++) {
      const r = reconstruct(conversation(EVERY_TYPE, at));
      expect(redisOnly(r.ex).map(line), `split at ${at}`).toEqual(EVERY_TYPE_LINES);
    }
  });

  it('RESP2 pub/sub: messages while subscribed are kept with the SUBSCRIBE, not paired with later commands', () => {
    const r = reconstruct(
      conversation([
        ['out', cmd('SUBSCRIBE', 'ch')],
        [
          'in',
          raw(
            '*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\na\r\n*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nb\r\n',
          ),
        ],
        ['out', cmd('UNSUBSCRIBE', 'ch')],
        ['in', raw('*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n')],
        ['out', cmd('GET', 'k')],
        ['in', raw('$1\r\nv\r\n')],
      ]),
    );
    expect(redisOnly(r.ex).map(line)).toEqual([
      'SUBSCRIBE ch -> ["subscribe","ch",:1] pushes ["message","ch","a"] ["message","ch","b"]',
      'UNSUBSCRIBE ch -> ["unsubscribe","ch",:0]',
      'GET k -> "v"',
    ]);
  });

  it('a command without a reply at the end is reported unpaired', () => {
    const r = reconstruct(
      conversation([
        ['out', cmd('SET', 'a', '1')],
        ['in', raw('+OK\r\n')],
        ['out', cmd('BLPOP', 'q', '0')],
      ]),
    );
    expect(redisOnly(r.ex).map(line)).toEqual(['SET a 1 -> +OK']);
    expect(r.skipped).toHaveLength(1);
    expect(r.skipped[0]).toMatchObject({ reason: 'unpaired', bytes: cmd('BLPOP', 'q', '0').length });
    expect(r.skipped[0]!.detail).toContain('BLPOP');
  });

  it('garbage in the reply stream is a parse error, not a crash', () => {
    const r = reconstruct(
      conversation([
        ['out', cmd('GET', 'a')],
        ['in', raw('?what\r\n')],
      ]),
    );
    expect(redisOnly(r.ex)).toEqual([]);
    expect(r.skipped[0]!.reason).toBe('parse-error');
    expect(r.skipped[0]!.detail).toMatch(/unknown RESP type byte 0x3f/);
  });
});

describe('RESP reader and encoder', () => {
  it('encodes every value back to the bytes it was read from (RESP3)', () => {
    const wire = '%1\r\n$1\r\nk\r\n*6\r\n+OK\r\n-ERR x\r\n:-5\r\n$-1\r\n~1\r\n#f\r\n,inf\r\n';
    const reader = new RespReader();
    reader.push(raw(wire));
    const v = reader.next()!.value;
    expect(encodeResp(v, 3).toString('latin1')).toBe(wire);
    // RESP2 clients get Redis' own downgrades: map → flat array, set → array, boolean → integer, double → bulk
    expect(encodeResp(v, 2).toString('latin1')).toBe(
      '*2\r\n$1\r\nk\r\n*6\r\n+OK\r\n-ERR x\r\n:-5\r\n$-1\r\n*1\r\n:0\r\n$3\r\ninf\r\n',
    );
  });

  it('rejects what is not RESP with the offset', () => {
    const reader = new RespReader();
    reader.push(raw('$3\r\nabcd\r\n'));
    expect(() => reader.next()).toThrow(RespError);
  });

  it('detects RESP commands from the client only, and waits for more on a prefix', () => {
    const out = { dir: 'out' as const };
    expect(detectRedis(cmd('GET', 'a'), out)).toEqual({ verdict: 'yes' });
    expect(detectRedis(raw('*2\r\n$3\r\nGE'), out)).toEqual({ verdict: 'more' });
    expect(detectRedis(raw('*2\r'), out)).toEqual({ verdict: 'more' });
    expect(detectRedis(raw('PING\r\n'), out)).toEqual({ verdict: 'yes' });
    expect(detectRedis(raw('PI'), out)).toEqual({ verdict: 'more' });
    expect(detectRedis(raw('GET / HTTP/1.1\r\n'), out).verdict).toBe('no');
    expect(detectRedis(raw('+OK\r\n'), out)).toMatchObject({
      verdict: 'no',
      why: 'a RESP reply without the command before it',
    });
    expect(detectRedis(cmd('GET', 'a'), { dir: 'in' }).verdict).toBe('no');
  });

  it('redacts passwords in AUTH, HELLO, MIGRATE, CONFIG SET and ACL SETUSER', () => {
    const r = (...a: string[]): string[] => redactCommand(a.map((x) => Buffer.from(x))).map(String);
    expect(r('AUTH', 'pw')).toEqual(['AUTH', '[REDACTED]']);
    expect(r('auth', 'user', 'pw')).toEqual(['auth', 'user', '[REDACTED]']);
    expect(r('HELLO', '3', 'AUTH', 'u', 'pw', 'SETNAME', 'n')).toEqual([
      'HELLO',
      '3',
      'AUTH',
      'u',
      '[REDACTED]',
      'SETNAME',
      'n',
    ]);
    expect(r('MIGRATE', 'h', '1', 'k', '0', '5', 'AUTH2', 'u', 'pw')).toEqual([
      'MIGRATE',
      'h',
      '1',
      'k',
      '0',
      '5',
      'AUTH2',
      'u',
      '[REDACTED]',
    ]);
    expect(r('CONFIG', 'SET', 'requirepass', 'pw')).toEqual(['CONFIG', 'SET', 'requirepass', '[REDACTED]']);
    expect(r('ACL', 'SETUSER', 'bob', 'on', '>pw')).toEqual(['ACL', 'SETUSER', 'bob', 'on', '[REDACTED]']);
  });
});
