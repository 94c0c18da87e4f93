// Redis mocks on disk: `kind: Redis` documents in mocks.yaml, readable and hand-editable.
//
//   kind: Redis
//   name: mock-3
//   spec:
//     metadata: { type: REDIS_CLIENT, operation: HSET }
//     command: [HSET, "user:1", name, Ada]
//     reply: 1
//
// Replies are plain YAML where that is unambiguous — a string is a bulk string, a number an
// integer, null a null ($-1 / RESP3 _), a sequence an array, true/false a RESP3 boolean — and a
// one-key mapping names the type otherwise: {simple: OK}, {error: "ERR …"}, {map: {…}} (or
// {map: [[k, v], …]} when a key is not a string), {set: […]}, {push: […]}, {double: "1.5"},
// {bignum: "…"}, {verbatim: "…", format: txt}, {integer: "…"} beyond 2^53, {null: array} for *-1,
// {base64: "…"} for a bulk string that is not text. Arguments are strings (or {base64: "…"}).
// Keploy's own Redis mocks (redisv2: RequestBin/ResponseBin lists of {type, size, data} trees)
// are far from hand-editable; this shape keeps Keploy's `kind: Redis`, `metadata` and
// `reqTimestampMock`/`resTimestampMock` and says the rest plainly.

import { Document } from 'yaml';
import type { RedisExchange } from '../../model/exchange.js';
import type { RespValue } from '../../model/redis.js';
import { defaultMonoToWallNs, rfc3339, type DocOptions } from '../../format/render.js';
import { API_VERSION } from '../../format/types.js';
import type { DocProblem, DocRead, DocWhere } from '../protocol.js';

export type ArgDoc = string | { base64: string };
export type ReplyDoc = string | number | boolean | null | ReplyDoc[] | { [type: string]: unknown };

export interface RedisMockDoc {
  version: string;
  kind: 'Redis';
  name: string;
  spec: {
    metadata: { type: 'REDIS_CLIENT'; operation: string; inline?: 'true' };
    command: ArgDoc[];
    reply?: ReplyDoc;
    replies?: ReplyDoc[];
    pushes?: ReplyDoc[];
    reqTimestampMock: string;
    resTimestampMock: string;
  };
  connectionId?: string;
}

/** A Redis mock as read from disk. */
export interface RedisMock {
  command: Buffer[];
  replies: RespValue[];
  pushes: RespValue[];
  /** Indices into `command` not compared (mock `noise.req`: "command.2"). */
  noiseArgs: number[];
  /** A recorded argument one of these matches is not compared (mock `noise.value`). */
  noiseValues: RegExp[];
}

/** Text that reads back as the same string in YAML and carries no control characters but tab/LF. */
function isText(b: Buffer): boolean {
  const s = b.toString('utf8');
  return Buffer.from(s, 'utf8').equals(b) && !/[\x00-\x08\x0b-\x1f\x7f\ufffd]/.test(s);
}

export function argDoc(b: Buffer): ArgDoc {
  return isText(b) ? b.toString('utf8') : { base64: b.toString('base64') };
}

export function replyDoc(v: RespValue): ReplyDoc {
  switch (v.type) {
    case 'bulk':
      return isText(v.value) ? v.value.toString('utf8') : { base64: v.value.toString('base64') };
    case 'simple':
      return { simple: v.value };
    case 'error':
      return v.blob ? { error: v.value, blob: true } : { error: v.value };
    case 'integer':
      return v.value >= BigInt(Number.MIN_SAFE_INTEGER) && v.value <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(v.value)
        : { integer: String(v.value) };
    case 'null':
      return v.wire === '*' ? { null: 'array' } : null;
    case 'array':
      return v.value.map(replyDoc);
    case 'set':
      return { set: v.value.map(replyDoc) };
    case 'push':
      return { push: v.value.map(replyDoc) };
    case 'map': {
      const keys = v.value.map(([k]) =>
        k.type === 'bulk' && isText(k.value) ? k.value.toString('utf8') : k.type === 'simple' ? k.value : undefined,
      );
      // A mapping when every key is a string, unique, and the string form loses nothing on re-read.
      if (
        keys.every((k): k is string => k !== undefined) &&
        new Set(keys).size === keys.length &&
        v.value.every(([k]) => k.type === 'bulk')
      ) {
        const m: Record<string, ReplyDoc> = {};
        v.value.forEach(([, val], i) => {
          m[keys[i]!] = replyDoc(val);
        });
        return { map: m };
      }
      return { map: v.value.map(([k, val]) => [replyDoc(k), replyDoc(val)]) };
    }
    case 'double':
      return { double: v.value };
    case 'boolean':
      return v.value;
    case 'verbatim':
      return { verbatim: v.value, format: v.format };
    case 'bignum':
      return { bignum: v.value };
  }
}

export function redisMockDoc(ex: RedisExchange, n: number, opts: DocOptions = {}): RedisMockDoc {
  const wall = (ns: bigint): string => rfc3339(ns + (opts.monoToWallNs ?? defaultMonoToWallNs()));
  const spec: RedisMockDoc['spec'] = {
    metadata: {
      type: 'REDIS_CLIENT',
      operation: ex.command[0]?.toString('latin1').toUpperCase() ?? '',
      ...(ex.inline ? { inline: 'true' as const } : {}),
    },
    command: ex.command.map(argDoc),
    ...(ex.replies.length === 1 ? { reply: replyDoc(ex.replies[0]!) } : { replies: ex.replies.map(replyDoc) }),
    ...(ex.pushes.length > 0 ? { pushes: ex.pushes.map(replyDoc) } : {}),
    reqTimestampMock: wall(ex.requestNs),
    resTimestampMock: wall(ex.responseNs),
  };
  return { version: API_VERSION, kind: 'Redis', name: `mock-${n}`, spec, connectionId: ex.conn };
}

export function redisYaml(doc: RedisMockDoc, schemaRef?: string): string {
  const d = new Document(doc);
  const text = d.toString({ lineWidth: 0, indent: 2, doubleQuotedAsJSON: true });
  return schemaRef ? `# yaml-language-server: $schema=${schemaRef}\n${text}` : text;
}

// ---- reading ----------------------------------------------------------------------------------

type Path = Array<string | number>;

function typeName(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'a sequence';
  if (typeof x === 'object') return 'a mapping';
  return `${typeof x} ${JSON.stringify(x)}`;
}

class Problems {
  readonly list: DocProblem[] = [];
  add(path: Path, message: string, atKey = false): void {
    this.list.push({ path, message: `${path.join('.')}: ${message}`, ...(atKey ? { atKey } : {}) });
  }
}

function readArg(x: unknown, path: Path, p: Problems): Buffer {
  if (typeof x === 'string') return Buffer.from(x, 'utf8');
  if (typeof x === 'number' || typeof x === 'boolean') return Buffer.from(String(x));
  if (
    x &&
    typeof x === 'object' &&
    !Array.isArray(x) &&
    Object.keys(x).length === 1 &&
    typeof (x as { base64?: unknown }).base64 === 'string'
  ) {
    return Buffer.from((x as { base64: string }).base64, 'base64');
  }
  p.add(path, `expected a string or {base64: …}, found ${typeName(x)}`);
  return Buffer.alloc(0);
}

const REPLY_TAGS = [
  'simple',
  'error',
  'integer',
  'null',
  'map',
  'set',
  'push',
  'double',
  'bignum',
  'verbatim',
  'base64',
];

export function readReply(x: unknown, path: Path, p: Problems): RespValue {
  if (x === null || x === undefined) return { type: 'null', wire: '$' };
  if (typeof x === 'string') return { type: 'bulk', value: Buffer.from(x, 'utf8') };
  if (typeof x === 'number') {
    if (!Number.isInteger(x)) {
      p.add(path, `an integer reply must be whole, found ${x} (write {double: "${x}"} for a RESP3 double)`);
      return { type: 'null', wire: '$' };
    }
    return { type: 'integer', value: BigInt(x) };
  }
  if (typeof x === 'boolean') return { type: 'boolean', value: x };
  if (Array.isArray(x)) return { type: 'array', value: x.map((e, i) => readReply(e, [...path, i], p)) };
  if (typeof x !== 'object') {
    p.add(path, `unexpected ${typeName(x)}`);
    return { type: 'null', wire: '$' };
  }
  const o = x as Record<string, unknown>;
  const keys = Object.keys(o);
  const tag = keys.find((k) => REPLY_TAGS.includes(k));
  const str = (k: string): string => {
    const v = o[k];
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'bigint') return String(v);
    p.add([...path, k], `expected a string, found ${typeName(v)}`);
    return '';
  };
  const list = (k: string): RespValue[] => {
    const v = o[k];
    if (!Array.isArray(v)) {
      p.add([...path, k], `expected a sequence, found ${typeName(v)}`);
      return [];
    }
    return v.map((e, i) => readReply(e, [...path, k, i], p));
  };
  const allowed = tag === 'verbatim' ? ['verbatim', 'format'] : tag === 'error' ? ['error', 'blob'] : tag ? [tag] : [];
  for (const k of keys)
    if (!allowed.includes(k)) p.add([...path, k], `unknown reply type "${k}" (one of ${REPLY_TAGS.join(', ')})`, true);
  switch (tag) {
    case 'simple':
      return { type: 'simple', value: str('simple') };
    case 'error':
      return o.blob === true
        ? { type: 'error', value: str('error'), blob: true }
        : { type: 'error', value: str('error') };
    case 'integer': {
      const t = str('integer');
      if (!/^[-+]?\d+$/.test(t)) {
        p.add([...path, 'integer'], `not an integer: ${JSON.stringify(t)}`);
        return { type: 'integer', value: 0n };
      }
      return { type: 'integer', value: BigInt(t) };
    }
    case 'null':
      return { type: 'null', wire: o.null === 'array' ? '*' : '$' };
    case 'set':
      return { type: 'set', value: list('set') };
    case 'push':
      return { type: 'push', value: list('push') };
    case 'double':
      return { type: 'double', value: str('double') };
    case 'bignum':
      return { type: 'bignum', value: str('bignum') };
    case 'verbatim':
      return { type: 'verbatim', value: str('verbatim'), format: o.format === undefined ? 'txt' : str('format') };
    case 'base64':
      return { type: 'bulk', value: Buffer.from(str('base64'), 'base64') };
    case 'map': {
      const m = o.map;
      if (Array.isArray(m)) {
        return {
          type: 'map',
          value: m.map((e, i): [RespValue, RespValue] => {
            if (!Array.isArray(e) || e.length !== 2) {
              p.add([...path, 'map', i], `expected a [key, value] pair, found ${typeName(e)}`);
              return [
                { type: 'null', wire: '_' },
                { type: 'null', wire: '_' },
              ];
            }
            return [readReply(e[0], [...path, 'map', i, 0], p), readReply(e[1], [...path, 'map', i, 1], p)];
          }),
        };
      }
      if (m && typeof m === 'object') {
        return {
          type: 'map',
          value: Object.entries(m as Record<string, unknown>).map(([k, v]): [RespValue, RespValue] => [
            { type: 'bulk', value: Buffer.from(k, 'utf8') },
            readReply(v, [...path, 'map', k], p),
          ]),
        };
      }
      p.add([...path, 'map'], `expected a mapping or a sequence of [key, value] pairs, found ${typeName(m)}`);
      return { type: 'map', value: [] };
    }
    default:
      return { type: 'null', wire: '$' };
  }
}

/** A `kind: Redis` document → the mock, or every problem in it. */
export function readRedisMock(doc: Readonly<Record<string, unknown>>, _where: DocWhere): DocRead<RedisMock> {
  const p = new Problems();
  const spec = doc.spec as Record<string, unknown> | undefined;
  if (!spec || typeof spec !== 'object' || Array.isArray(spec)) {
    p.add(['spec'], `expected a mapping, found ${typeName(spec)}`);
    return { problems: p.list };
  }
  let command: Buffer[] = [];
  if (!Array.isArray(spec.command) || spec.command.length === 0)
    p.add(
      ['spec', 'command'],
      `expected a non-empty sequence (the command and its arguments), found ${typeName(spec.command)}`,
    );
  else command = spec.command.map((a, i) => readArg(a, ['spec', 'command', i], p));
  let replies: RespValue[] = [];
  if ('reply' in spec && 'replies' in spec) p.add(['spec', 'replies'], 'give either reply or replies, not both', true);
  if ('replies' in spec) {
    if (!Array.isArray(spec.replies) || spec.replies.length === 0)
      p.add(['spec', 'replies'], `expected a non-empty sequence, found ${typeName(spec.replies)}`);
    else replies = spec.replies.map((r, i) => readReply(r, ['spec', 'replies', i], p));
  } else if ('reply' in spec) {
    replies = [readReply(spec.reply, ['spec', 'reply'], p)];
  } else {
    p.add(['spec'], 'missing reply (the answer the server gave)');
  }
  let pushes: RespValue[] = [];
  if (spec.pushes !== undefined) {
    if (!Array.isArray(spec.pushes)) p.add(['spec', 'pushes'], `expected a sequence, found ${typeName(spec.pushes)}`);
    else pushes = spec.pushes.map((r, i) => readReply(r, ['spec', 'pushes', i], p));
  }
  const noiseArgs: number[] = [];
  const noiseValues: RegExp[] = [];
  const noise = doc.noise;
  if (noise !== undefined && noise !== null) {
    const n = Array.isArray(noise) ? { value: noise } : (noise as Record<string, unknown>);
    if (n.req !== undefined) {
      if (!Array.isArray(n.req)) p.add(['noise', 'req'], `expected a sequence, found ${typeName(n.req)}`);
      else
        n.req.forEach((r, i) => {
          const m = typeof r === 'string' ? /^command\.(\d+)$/.exec(r) : null;
          if (!m)
            p.add(
              ['noise', 'req', i],
              `expected "command.N" (N = the argument's index in spec.command), found ${typeName(r)}`,
            );
          else noiseArgs.push(Number(m[1]));
        });
    }
    if (n.value !== undefined) {
      if (!Array.isArray(n.value))
        p.add(['noise', 'value'], `expected a sequence of regular expressions, found ${typeName(n.value)}`);
      else
        n.value.forEach((r, i) => {
          try {
            noiseValues.push(new RegExp(String(r)));
          } catch (err) {
            p.add(['noise', 'value', i], `not a regular expression: ${(err as Error).message}`);
          }
        });
    }
  }
  if (p.list.length > 0) return { problems: p.list };
  return { value: { command, replies, pushes, noiseArgs, noiseValues } };
}
