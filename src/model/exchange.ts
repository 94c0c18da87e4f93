// What reconstruction produces: one request and its response, as the app saw them on one connection.
// src/format/ turns these into test cases (incoming) and mocks (outgoing).

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

export interface Exchange {
  role: ExchangeRole;
  /** Seen inside TLS (SSL_read/SSL_write) rather than on a plaintext socket. */
  tls: boolean;
  /** Connection key (see connKey in events.ts) and the exchange's index on that connection (0-based). */
  conn: string;
  indexOnConn: number;
  tgid: number;
  /** Peer address of the connection when the kernel reported it. */
  remoteAddr?: string;
  remotePort?: number;
  localAddr?: string;
  localPort?: number;
  request: HttpRequestMessage;
  response: HttpResponseMessage;
}

/** A stream or message reconstruction could not use; counted and reported, never fatal. */
export interface SkippedStream {
  conn: string;
  reason: 'not-http' | 'parse-error' | 'incomplete' | 'bytes-lost' | 'unpaired';
  detail: string;
  /** Bytes that were not turned into exchanges. */
  bytes: number;
}
