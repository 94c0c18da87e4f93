// What reconstruction produces: exchanges (one request and its answer on one connection, in
// whatever protocol the connection spoke) and the streams it had to skip. src/format/ turns
// exchanges into test cases (incoming) and mocks (outgoing).
//
// The protocol-neutral part is ConnectionIdentity + ExchangeBase; each protocol adds its own payload
// (HttpExchange: request and response messages) and names itself in `protocol`.

import type { RespValue } from './redis.js';
import type { PgRequest, PgResponse } from './postgres.js';

/** Header lines in wire order with the original name case; repeated names stay separate entries. */
export type HeaderList = Array<[name: string, value: string]>;

/** What requests and responses have in common. */
interface HttpMessage {
  /** "1.1" or "1.0"; "2" for HTTP/2. */
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

/**
 * An HTTP request and its final response: HTTP/1.x ('http1') or one HTTP/2 stream ('http2', its
 * pseudo-headers folded into method, target and status; `:authority` becomes a Host header).
 */
export interface HttpExchange extends ExchangeBase {
  protocol: 'http1' | 'http2';
  request: HttpRequestMessage;
  response: HttpResponseMessage;
}

/** One Postgres query and its answer (src/model/postgres.ts). */
export interface PostgresExchange extends ExchangeBase {
  protocol: 'postgres';
  request: PgRequest;
  response: PgResponse;
}

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

/** One gRPC length-prefixed message, its bytes exactly as sent. */
export interface GrpcMessage {
  /** The compressed flag (the message is in the `grpc-encoding` of its side). */
  compressed: boolean;
  data: Buffer;
}

/** One side of a gRPC call on an HTTP/2 stream. */
export interface GrpcSide {
  /** Pseudo-headers (':path', ':status', …) and ordinary headers (metadata), in wire order. */
  pseudoHeaders: HeaderList;
  headers: HeaderList;
  messages: GrpcMessage[];
  /** Trailers (grpc-status, grpc-message, trailing metadata): the response's, or a trailers-only answer. */
  trailers: HeaderList;
  /** Bytes after the last whole message that do not make one (a cut-off message). */
  trailingBytes: number;
  /** Kernel time of the side's first byte (ns). */
  firstByteNs: bigint;
}

/** A gRPC call (an HTTP/2 stream with content-type application/grpc), reconstructed by 'http2'. */
export interface GrpcExchange extends ExchangeBase {
  protocol: 'grpc';
  /** "package.Service" and "Method", from :path "/package.Service/Method". */
  service: string;
  method: string;
  request: GrpcSide;
  response: GrpcSide;
}

/** Any protocol's exchange: what reconstruction emits and the writer stores. */
export type Exchange = HttpExchange | GrpcExchange | PostgresExchange | RedisExchange;

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
