// What reconstruction produces: exchanges (one request and its answer on one connection, in
// whatever protocol the connection spoke) and the streams it had to skip. src/format/ turns
// exchanges into test cases (incoming) and mocks (outgoing).
//
// The protocol-neutral part is ConnectionIdentity + ExchangeBase; each protocol adds its own payload
// (HttpExchange: request and response messages) and names itself in `protocol`.

import type { PgRequest, PgResponse } from './postgres.js';

/** Header lines in wire order with the original name case; repeated names stay separate entries. */
export type HeaderList = Array<[name: string, value: string]>;

/** What requests and responses have in common. */
interface HttpMessage {
  /** "1.1" or "1.0". */
  httpVersion: string;
  headers: HeaderList;
  /**
   * The body as the application sees it: chunked framing removed and Content-Encoding
   * (gzip, br, deflate) decoded. The original encoding stays in `headers`.
   */
  body: Buffer;
  /** False when the body could not be decoded and `body` holds the raw (still encoded) bytes. */
  bodyDecoded: boolean;
  /** Kernel time of the first byte of the message (ns, bpf_ktime_get_ns). */
  firstByteNs: bigint;
  /** Trailer fields after a chunked body, when there were any. */
  trailers?: HeaderList;
}

export interface HttpRequestMessage extends HttpMessage {
  method: string;
  /** Request target exactly as sent: usually path and query ("/a/b?x=1"), absolute form for proxies. */
  target: string;
}

export interface HttpResponseMessage extends HttpMessage {
  statusCode: number;
  statusMessage: string;
  /** Interim 1xx responses that came before this final one (100 Continue, 103 Early Hints). */
  informational: Array<{ statusCode: number; statusMessage: string; headers: HeaderList }>;
}

/**
 * 'incoming': the app received the request (it is the server) -> a test case.
 * 'outgoing': the app sent the request (it is the client) -> a mock.
 */
export type ExchangeRole = 'incoming' | 'outgoing';

/** Which connection an exchange was seen on, as reconstruction names it. */
export interface ConnectionIdentity {
  /** Connection key (see connKey in events.ts), with #n when a key comes back after a close. */
  conn: string;
  tgid: number;
  /** Seen inside TLS (SSL_read/SSL_write) rather than on a plaintext socket. */
  tls: boolean;
  /** Peer and local address of the connection when the kernel reported them. */
  remoteAddr?: string;
  remotePort?: number;
  localAddr?: string;
  localPort?: number;
}

/** What every protocol's exchange has. */
export interface ExchangeBase extends ConnectionIdentity {
  /** The protocol that reconstructed it: the `name` of its folder's Protocol (src/protocols/). */
  protocol: string;
  role: ExchangeRole;
  /** The exchange's index on its connection (0-based). */
  indexOnConn: number;
}

/** An HTTP/1.x request and its final response. */
export interface HttpExchange extends ExchangeBase {
  protocol: 'http1';
  request: HttpRequestMessage;
  response: HttpResponseMessage;
}

/** One Postgres query and its answer (src/model/postgres.ts). */
export interface PostgresExchange extends ExchangeBase {
  protocol: 'postgres';
  request: PgRequest;
  response: PgResponse;
}

/** Any protocol's exchange: what reconstruction emits and the writer stores. */
export type Exchange = HttpExchange | PostgresExchange;

/** What a protocol's reconstruction supplies; the connection's identity and the index are added for it. */
export type ExchangePayload = DistributiveOmit<Exchange, keyof ConnectionIdentity | 'indexOnConn'>;

/** Omit applied to each member of a union on its own (plain Omit would merge them). */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A stream or message reconstruction could not use; counted and reported, never fatal. */
export interface SkippedStream {
  conn: string;
  reason: 'not-http' | 'parse-error' | 'incomplete' | 'bytes-lost' | 'unpaired';
  detail: string;
  /** Bytes that were not turned into exchanges. */
  bytes: number;
}
