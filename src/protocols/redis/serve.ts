// The Redis mock endpoint: a redirected Redis connection is answered here, speaking RESP2 or RESP3
// (whatever the client's HELLO asked for). The connection's own housekeeping — HELLO, AUTH, SELECT,
// CLIENT SETNAME/SETINFO, PING, ECHO, QUIT, RESET — is answered by a recorded mock of the same
// command when there is one (recorded passwords are [REDACTED] and match any) and locally
// otherwise, so it never needs the recorded password; every other command is answered from the
// mocks (matcher.ts). A command no mock answers
// gets `-ERR tlsrec: no mock for …` (with the closest mock and where it differed) and is reported
// as a miss; the connection stays usable.

import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { RespValue } from '../../model/redis.js';
import type { LoadedDoc, MockServeContext } from '../protocol.js';
import type { RedisMock } from './files.js';
import { RedisMockMatcher, showArg, showCommand } from './matcher.js';
import { redactCommand } from './reconstruct.js';
import { commandArgs, encodeResp, RespError, RespReader } from './resp.js';

/** One matcher per run, shared by all its connections: keyed by the run's first Redis mock. */
const matchers = new WeakMap<LoadedDoc<RedisMock>, RedisMockMatcher>();

function matcherFor(mocks: readonly LoadedDoc<RedisMock>[]): RedisMockMatcher {
  const first = [...mocks].sort((a, b) => a.index - b.index)[0];
  if (!first) return new RedisMockMatcher([]);
  let m = matchers.get(first);
  if (!m) {
    m = new RedisMockMatcher(mocks);
    matchers.set(first, m);
  }
  return m;
}

const OK: RespValue = { type: 'simple', value: 'OK' };
const bulk = (s: string | Buffer): RespValue => ({ type: 'bulk', value: Buffer.isBuffer(s) ? s : Buffer.from(s) });
const err = (s: string): RespValue => ({ type: 'error', value: s });

/** What `INFO` answers when the recording has no INFO reply (clients' ready checks read `loading:0`). */
const LOCAL_INFO =
  '# Server\r\nredis_version:7.2.0\r\nredis_mode:standalone\r\n# Persistence\r\nloading:0\r\n# Replication\r\nrole:master\r\n';

export function serveRedis(socket: Duplex, ctx: MockServeContext<RedisMock>): void {
  const matcher = matcherFor(ctx.mocks);
  // Replies go out as soon as they are known (as redis-server sets TCP_NODELAY).
  (socket as Partial<Pick<Socket, 'setNoDelay'>>).setNoDelay?.(true);
  const reader = new RespReader({ inline: true });
  /** Where the app was connecting, when the mock server knows it (messages name it). */
  const where = ctx.destination.host
    ? `redis://${ctx.destination.host}${ctx.destination.port ? `:${ctx.destination.port}` : ''}`
    : undefined;
  let resp: 2 | 3 = 2;
  let inMulti = false;
  let closing = false;

  /** Replies to the commands of one read, written together (a pipeline is answered in one write). */
  let out: Buffer[] = [];
  const send = (...values: RespValue[]): void => {
    if (closing) return;
    for (const v of values) out.push(encodeResp(v, resp));
  };
  const flush = (): void => {
    if (out.length > 0 && !socket.destroyed) socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
    out = [];
  };

  /**
   * The endpoint's own answer to connection housekeeping; undefined for every other command. A
   * recorded mock of the same command answers in its place when there is one (so the report's
   * unused mocks are the app's), but without one the connection still gets going.
   */
  const housekeeping = (args: Buffer[]): RespValue | undefined => {
    const name = args[0]!.toString('latin1').toUpperCase();
    const sub = args[1]?.toString('latin1').toUpperCase();
    switch (name) {
      case 'HELLO': {
        const v = args.length > 1 ? args[1]!.toString('latin1') : String(resp);
        if (v !== '2' && v !== '3') return err('NOPROTO unsupported protocol version');
        const kv: Array<[string, RespValue]> = [
          ['server', bulk('redis')],
          ['version', bulk('7.2.0')],
          ['proto', { type: 'integer', value: BigInt(v) }],
          ['id', { type: 'integer', value: 1n }],
          ['mode', bulk('standalone')],
          ['role', bulk('master')],
          ['modules', { type: 'array', value: [] }],
        ];
        return { type: 'map', value: kv.map(([k, val]) => [bulk(k), val]) };
      }
      case 'AUTH':
      case 'SELECT':
      case 'READONLY':
      case 'READWRITE':
        return OK;
      case 'CLIENT':
        if (sub === 'SETNAME' || sub === 'SETINFO' || sub === 'NO-EVICT' || sub === 'NO-TOUCH') return OK;
        if (sub === 'ID') return { type: 'integer', value: 1n };
        return undefined;
      case 'PING':
        return args.length > 1 ? bulk(args[1]!) : { type: 'simple', value: 'PONG' };
      case 'ECHO':
        return args.length > 1 ? bulk(args[1]!) : err("ERR wrong number of arguments for 'echo' command");
      case 'RESET':
        return { type: 'simple', value: 'RESET' };
      default:
        return undefined;
    }
  };

  /** What a housekeeping reply changes: HELLO's protocol version, RESET's state. */
  const applyHousekeeping = (args: Buffer[], reply: RespValue | undefined): void => {
    const name = args[0]!.toString('latin1').toUpperCase();
    if (name === 'HELLO' && reply && reply.type !== 'error' && args.length > 1)
      resp = args[1]!.toString('latin1') === '3' ? 3 : 2;
    if (name === 'RESET') {
      resp = 2;
      inMulti = false;
    }
  };

  /** The call as reports show it: passwords in it redacted as in the recording. */
  const callUrl = (args: Buffer[]): string => {
    const shown = redactCommand(args).slice(1).map(showArg).join(' ');
    return where ? `${where} ${shown}`.trimEnd() : shown;
  };

  const answer = (args: Buffer[]): void => {
    const name = args[0]!.toString('latin1').toUpperCase();
    if (name === 'QUIT') {
      send(OK);
      flush();
      closing = true;
      socket.end();
      return;
    }
    const own = housekeeping(args);
    if (own) {
      const recorded = name !== 'RESET' && matcher.has(name) ? matcher.match({ command: args, inMulti }) : undefined;
      if (recorded?.kind === 'hit') {
        ctx.hit({
          mock: recorded.mock.name,
          method: name,
          url: callUrl(args),
          ...(recorded.reused ? { reused: true } : {}),
        });
        applyHousekeeping(args, recorded.mock.value.replies[0]);
        send(...recorded.mock.value.replies, ...recorded.mock.value.pushes);
      } else {
        applyHousekeeping(args, own);
        send(own);
      }
      return;
    }
    if (name === 'INFO' && !matcher.has('INFO')) {
      send(bulk(LOCAL_INFO));
      return;
    }
    const outcome = matcher.match({ command: args, inMulti });
    if (name === 'MULTI') inMulti = true;
    if (name === 'EXEC' || name === 'DISCARD') inMulti = false;
    const url = callUrl(args);
    if (outcome.kind === 'hit') {
      ctx.hit({ mock: outcome.mock.name, method: name, url, ...(outcome.reused ? { reused: true } : {}) });
      send(...outcome.mock.value.replies, ...outcome.mock.value.pushes);
      return;
    }
    ctx.miss({ method: name, url, message: outcome.message, ...(outcome.closest ? { closest: outcome.closest } : {}) });
    send(err(`ERR ${outcome.message}`));
  };

  socket.on('data', (chunk: Buffer) => {
    if (closing) return;
    reader.push(chunk);
    try {
      for (let r = reader.next(); r && !closing; r = reader.next()) {
        const args = commandArgs(r.value);
        if (!args) {
          send(err('ERR Protocol error: expected an array of bulk strings'));
          continue;
        }
        answer(args);
      }
      flush();
    } catch (e) {
      if (!(e instanceof RespError)) throw e;
      send(err(`ERR Protocol error: ${e.message}`));
      flush();
      closing = true;
      socket.end();
    }
  });
  socket.on('error', () => socket.destroy());
}

export { showCommand };
