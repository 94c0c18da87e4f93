// Redis exchanges: one command the app sent and the reply (or replies) the server gave it, as RESP
// values. RESP2 and RESP3 types are kept apart so that a reply is answered back in the type it had.

import type { ExchangeBase } from './exchange.js';

/** One RESP value (https://redis.io/docs/latest/develop/reference/protocol-spec/). */
export type RespValue =
  | { type: 'simple'; value: string }                 // +OK
  | { type: 'error'; value: string; blob?: boolean }  // -ERR … ; blob: RESP3 bulk error (!)
  | { type: 'integer'; value: bigint }                // :1
  | { type: 'bulk'; value: Buffer }                   // $3 foo
  | { type: 'null'; wire: '$' | '*' | '_' }           // $-1, *-1, RESP3 _
  | { type: 'array'; value: RespValue[] }             // *2 …
  | { type: 'map'; value: Array<[RespValue, RespValue]> } // RESP3 %
  | { type: 'set'; value: RespValue[] }               // RESP3 ~
  | { type: 'push'; value: RespValue[] }              // RESP3 >
  | { type: 'double'; value: string }                 // RESP3 , (text kept: inf, -inf, nan)
  | { type: 'boolean'; value: boolean }               // RESP3 #t / #f
  | { type: 'verbatim'; format: string; value: string } // RESP3 = txt:…
  | { type: 'bignum'; value: string };                // RESP3 (

/** A Redis command the app sent and what the server answered. */
export interface RedisExchange extends ExchangeBase {
  protocol: 'redis';
  /** The command and its arguments as sent (passwords replaced by `[REDACTED]`). */
  command: Buffer[];
  /** Sent as an inline command (`PING\r\n`) rather than a RESP array. */
  inline?: boolean;
  /**
   * The replies that answer it: one for most commands, one per channel for (P|S)SUBSCRIBE and
   * their unsubscribes.
   */
  replies: RespValue[];
  /** Out-of-band messages that followed (pub/sub `message`s, RESP3 pushes), in order. */
  pushes: RespValue[];
  /** Kernel time (ns) of the command's first byte and of its first reply's. */
  requestNs: bigint;
  responseNs: bigint;
}
