// Recording Redis: which connections speak RESP, and the app's commands paired with the server's
// replies. The client speaks first; replies come back in command order (pipelines are many
// commands then many replies), except that (P|S)SUBSCRIBE and their unsubscribes get one reply per
// channel, and that pub/sub messages and RESP3 pushes arrive unasked: those are kept with the
// exchange they followed. MULTI/EXEC need nothing special: each queued command's reply is +QUEUED
// and EXEC's is the array of results.

import type { Direction } from '../../model/events.js';
import type { RespValue } from '../../model/redis.js';
import type {
  ConnectionContext,
  ConnectionEnd,
  ConnectionReconstructor,
  Detection,
  DetectContext,
} from '../protocol.js';
import { commandArgs, RespError, RespReader } from './resp.js';

/** `*<n>\r\n$<len>\r\n<NAME>` — the start of every command a RESP client sends. */
const COMMAND_START = /^\*([1-9]\d{0,6})\r\n\$([1-9]\d{0,2})\r\n/;
/** A prefix of COMMAND_START: more bytes may make it one. */
const COMMAND_PREFIX = /^\*(\d{0,7}(\r(\n(\$(\d{0,3}(\r\n?)?)?)?)?)?)?$/;
/** Inline commands recognised at the start of a connection (clients like redis-cli -i, health checks). */
const INLINE_START = /^(PING|HELLO|AUTH|SELECT|ECHO|INFO|QUIT)(?:[ \t][^\r\n]*)?\r?\n/i;
const INLINE_PREFIX =
  /^(P(I(N(G)?)?)?|H(E(L(L(O)?)?)?)?|A(U(T(H)?)?)?|S(E(L(E(C(T)?)?)?)?)?|E(C(H(O)?)?)?|I(N(F(O)?)?)?|Q(U(I(T)?)?)?)$/i;
const COMMAND_NAME = /^[A-Za-z][A-Za-z_|.-]*$/;

/** Is this the start of a Redis client's traffic? Only commands the app sends (it is the client). */
export function detectRedis(first: Buffer, ctx: Pick<DetectContext, 'dir'>): Detection {
  const head = first.toString('latin1', 0, Math.min(first.length, 64));
  if (head.startsWith('*')) {
    const m = COMMAND_START.exec(head);
    if (!m) {
      if (COMMAND_PREFIX.test(head)) return { verdict: 'more' };
      return { verdict: 'no', why: 'not a RESP command (*N\\r\\n$len\\r\\nNAME)' };
    }
    const len = Number(m[2]);
    const nameAt = m[0].length;
    if (len > 32) return { verdict: 'no', why: 'RESP array whose first element is no command name' };
    if (first.length < nameAt + len)
      return COMMAND_NAME.test(head.slice(nameAt)) || head.length === nameAt
        ? { verdict: 'more' }
        : { verdict: 'no', why: 'RESP array whose first element is no command name' };
    if (!COMMAND_NAME.test(first.toString('latin1', nameAt, nameAt + len)))
      return { verdict: 'no', why: 'RESP array whose first element is no command name' };
    return ctx.dir === 'out'
      ? { verdict: 'yes' }
      : {
          verdict: 'no',
          why: 'Redis commands the app received (it is the server): only its outgoing Redis calls are recorded',
        };
  }
  if (INLINE_START.test(head)) {
    return ctx.dir === 'out'
      ? { verdict: 'yes' }
      : {
          verdict: 'no',
          why: 'Redis commands the app received (it is the server): only its outgoing Redis calls are recorded',
        };
  }
  const word = /^[A-Za-z]*/.exec(head)![0];
  if (word.length === head.length && INLINE_PREFIX.test(word)) return { verdict: 'more' };
  if (word.length === 0 && head.length > 0 && '+-:$%_#,(!=~>|'.includes(head[0]!))
    return { verdict: 'no', why: 'a RESP reply without the command before it' };
  return { verdict: 'no', why: 'not a RESP command (*N\\r\\n$len\\r\\nNAME) nor an inline PING/HELLO/AUTH' };
}

const REDACTED = Buffer.from('[REDACTED]');

/** The command's arguments with passwords replaced (AUTH, HELLO … AUTH, MIGRATE … AUTH/AUTH2, CONFIG SET requirepass). */
export function redactCommand(args: Buffer[]): Buffer[] {
  const name = args[0]?.toString('latin1').toUpperCase();
  const out = args.slice();
  const upper = (i: number): string | undefined => out[i]?.toString('latin1').toUpperCase();
  if (name === 'AUTH') {
    // AUTH password | AUTH username password
    if (out.length >= 2) out[out.length - 1] = REDACTED;
  } else if (name === 'HELLO') {
    for (let i = 2; i < out.length; i++) if (upper(i) === 'AUTH' && i + 2 < out.length) out[i + 2] = REDACTED;
  } else if (name === 'MIGRATE') {
    for (let i = 1; i < out.length; i++) {
      if (upper(i) === 'AUTH' && i + 1 < out.length) out[i + 1] = REDACTED;
      if (upper(i) === 'AUTH2' && i + 2 < out.length) out[i + 2] = REDACTED;
    }
  } else if (name === 'CONFIG' && upper(1) === 'SET') {
    for (let i = 2; i + 1 < out.length; i += 2) if (/^(REQUIREPASS|MASTERAUTH)$/.test(upper(i)!)) out[i + 1] = REDACTED;
  } else if (name === 'ACL' && upper(1) === 'SETUSER') {
    for (let i = 3; i < out.length; i++) if (/^[<>#!]/.test(out[i]!.toString('latin1'))) out[i] = REDACTED;
  }
  return out;
}

/** Subscribe-family commands: the reply kind that answers each channel. */
const SUBSCRIBE_REPLY: Record<string, string> = {
  SUBSCRIBE: 'subscribe',
  PSUBSCRIBE: 'psubscribe',
  SSUBSCRIBE: 'ssubscribe',
  UNSUBSCRIBE: 'unsubscribe',
  PUNSUBSCRIBE: 'punsubscribe',
  SUNSUBSCRIBE: 'sunsubscribe',
};
const MESSAGE_KINDS = new Set(['message', 'pmessage', 'smessage']);

/** How many replies a command waits for. */
type Expect = { kind: 'one' } | { kind: 'channels'; reply: string; left: number | 'until-zero' };

interface PendingCommand {
  args: Buffer[];
  inline: boolean;
  ns: bigint;
  end: number;
  expect: Expect;
  replies: RespValue[];
  pushes: RespValue[];
  responseNs?: bigint;
}

interface HeldExchange {
  args: Buffer[];
  inline: boolean;
  requestNs: bigint;
  responseNs: bigint;
  replies: RespValue[];
  pushes: RespValue[];
}

/** The first element of an array/push reply as text, when it is a string. */
function kindOf(v: RespValue): string | undefined {
  if ((v.type !== 'array' && v.type !== 'push') || v.value.length === 0) return undefined;
  const f = v.value[0]!;
  if (f.type === 'bulk') return f.value.toString('latin1').toLowerCase();
  if (f.type === 'simple') return f.value.toLowerCase();
  return undefined;
}

/** One Redis connection: the app's commands on 'out', the server's replies on 'in'. */
export class RedisConnection implements ConnectionReconstructor {
  private readonly commands = new RespReader({ inline: true });
  private readonly replies = new RespReader();
  private readonly pending: PendingCommand[] = [];
  /** Replies read, not yet paired (they came before their command, or after a lost command). */
  private readonly replyQueue: Array<{ value: RespValue; end: number; ns: bigint }> = [];
  private held: HeldExchange | undefined;
  private stopped: Record<Direction, boolean> = { in: false, out: false };
  private consumed: Record<Direction, number> = { in: 0, out: 0 };
  private unpairedBytes = 0;
  /** Channels and patterns the connection is subscribed to, as the last (un)subscribe reply counted. */
  private subscriptions = 0;
  private lastCommandEnd = 0;
  private lastReplyEnd = 0;

  constructor(private readonly ctx: ConnectionContext) {}

  data(dir: Direction, data: Buffer, tsNs: bigint): void {
    if (this.stopped[dir]) return;
    const reader = dir === 'out' ? this.commands : this.replies;
    reader.push(data);
    try {
      for (let r = reader.next(); r; r = reader.next()) {
        const end = reader.consumed;
        if (dir === 'out') this.command(r.value, r.inline, end, tsNs);
        else this.replyQueue.push({ value: r.value, end, ns: tsNs });
      }
    } catch (err) {
      if (!(err instanceof RespError)) throw err;
      this.ctx.problems.push({
        reason: 'parse-error',
        detail: `${dir === 'out' ? 'command' : 'reply'} stream at byte ${err.offset}: ${err.message}`,
      });
      this.stop(dir);
    }
    this.pair();
  }

  stop(dir: Direction): void {
    if (this.stopped[dir]) return;
    this.stopped[dir] = true;
    const reader = dir === 'out' ? this.commands : this.replies;
    reader.reset(reader.consumed);
  }

  end(): ConnectionEnd {
    this.pair();
    this.flushHeld();
    if (this.pending.length > 0) {
      let first = this.lastCommandEnd;
      for (const p of this.pending) {
        if (p.replies.length > 0) {
          // Answered in part (a SUBSCRIBE whose other channels' replies never came): kept as answered.
          this.emit({
            args: p.args,
            inline: p.inline,
            requestNs: p.ns,
            responseNs: p.responseNs ?? p.ns,
            replies: p.replies,
            pushes: p.pushes,
          });
          first = p.end;
          continue;
        }
        this.unpairedBytes += p.end - first;
        first = p.end;
      }
      const unanswered = this.pending.filter((p) => p.replies.length === 0);
      if (unanswered.length > 0 && !this.stopped.in) {
        const names = unanswered
          .slice(0, 3)
          .map((p) => p.args[0]?.toString('latin1').toUpperCase() ?? '?')
          .join(', ');
        this.ctx.problems.push({
          reason: 'unpaired',
          detail: `${unanswered.length} Redis command(s) without a reply (${names}${unanswered.length > 3 ? ', …' : ''})`,
        });
      }
      this.pending.length = 0;
    }
    if (this.replyQueue.length > 0 && !this.stopped.out) {
      this.ctx.problems.push({
        reason: 'unpaired',
        detail: `${this.replyQueue.length} Redis repl${this.replyQueue.length === 1 ? 'y' : 'ies'} without a command`,
      });
    }
    if (this.commands.pending > 0 || this.replies.pending > 0) {
      this.ctx.problems.push({ reason: 'incomplete', detail: 'the connection ended inside a RESP value' });
    }
    return { consumed: { ...this.consumed }, unpairedBytes: this.unpairedBytes };
  }

  private command(v: RespValue, inline: boolean, end: number, ns: bigint): void {
    const args = commandArgs(v);
    if (!args) {
      this.ctx.problems.push({
        reason: 'parse-error',
        detail: `command stream: a ${v.type} that is not a command (an array of bulk strings)`,
      });
      this.stop('out');
      return;
    }
    const name = args[0]!.toString('latin1').toUpperCase();
    const reply = SUBSCRIBE_REPLY[name];
    const expect: Expect =
      reply === undefined
        ? { kind: 'one' }
        : args.length > 1
          ? { kind: 'channels', reply, left: args.length - 1 }
          : reply.startsWith('un') || reply.startsWith('pun') || reply.startsWith('sun')
            ? { kind: 'channels', reply, left: 'until-zero' }
            : { kind: 'one' };
    this.pending.push({ args: redactCommand(args), inline, ns, end, expect, replies: [], pushes: [] });
  }

  /** Pair queued replies with pending commands, in order. */
  private pair(): void {
    while (this.replyQueue.length > 0) {
      const r = this.replyQueue[0]!;
      const head = this.pending[0];
      const kind = kindOf(r.value);
      const awaitingChannel = head?.expect.kind === 'channels' && kind === head.expect.reply;
      // Unasked: a pub/sub message (RESP2 arrays while subscribed, RESP3 pushes) or any other push.
      if (
        !awaitingChannel &&
        ((kind !== undefined && MESSAGE_KINDS.has(kind) && (this.subscriptions > 0 || r.value.type === 'push')) ||
          r.value.type === 'push')
      ) {
        this.replyQueue.shift();
        this.consumed.in = this.lastReplyEnd = r.end;
        if (head && head.replies.length > 0)
          head.pushes.push(r.value); // between a SUBSCRIBE's channel replies
        else if (this.held) this.held.pushes.push(r.value);
        else this.ctx.problems.push({ reason: 'unpaired', detail: 'a Redis push before any command was answered' });
        continue;
      }
      if (!head) return; // its command is not read yet (or was lost)
      this.replyQueue.shift();
      this.lastReplyEnd = r.end;
      head.replies.push(r.value);
      head.responseNs ??= r.ns;
      if (awaitingChannel && head.expect.kind === 'channels') {
        const count = r.value.type === 'array' || r.value.type === 'push' ? r.value.value[2] : undefined;
        if (count?.type === 'integer') this.subscriptions = Number(count.value);
        if (typeof head.expect.left === 'number') head.expect.left--;
        const done = head.expect.left === 'until-zero' ? this.subscriptions === 0 : head.expect.left === 0;
        if (!done) continue;
      }
      this.pending.shift();
      this.consumed.in = r.end;
      this.consumed.out = this.lastCommandEnd = head.end;
      this.flushHeld();
      this.held = {
        args: head.args,
        inline: head.inline,
        requestNs: head.ns,
        responseNs: head.responseNs ?? r.ns,
        replies: head.replies,
        pushes: head.pushes,
      };
    }
  }

  private flushHeld(): void {
    if (this.held) this.emit(this.held);
    this.held = undefined;
  }

  private emit(h: HeldExchange): void {
    this.ctx.emit({
      protocol: 'redis',
      role: 'outgoing',
      command: h.args,
      ...(h.inline ? { inline: true } : {}),
      replies: h.replies,
      pushes: h.pushes,
      requestNs: h.requestNs,
      responseNs: h.responseNs,
    });
  }
}
