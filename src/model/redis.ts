// RESP values: what a Redis exchange (RedisExchange in exchange.ts) holds. RESP2 and RESP3 types are
// kept apart so that a reply is answered back in the type it had.

/** One RESP value (https://redis.io/docs/latest/develop/reference/protocol-spec/). */
export type RespValue =
  | { type: 'simple'; value: string } // +OK
  | { type: 'error'; value: string; blob?: boolean } // -ERR … ; blob: RESP3 bulk error (!)
  | { type: 'integer'; value: bigint } // :1
  | { type: 'bulk'; value: Buffer } // $3 foo
  | { type: 'null'; wire: '$' | '*' | '_' } // $-1, *-1, RESP3 _
  | { type: 'array'; value: RespValue[] } // *2 …
  | { type: 'map'; value: Array<[RespValue, RespValue]> } // RESP3 %
  | { type: 'set'; value: RespValue[] } // RESP3 ~
  | { type: 'push'; value: RespValue[] } // RESP3 >
  | { type: 'double'; value: string } // RESP3 , (text kept: inf, -inf, nan)
  | { type: 'boolean'; value: boolean } // RESP3 #t / #f
  | { type: 'verbatim'; format: string; value: string } // RESP3 = txt:…
  | { type: 'bignum'; value: string }; // RESP3 (
