// The seam where a protocol plugs in. A protocol is one folder under src/protocols/ that exports one
// Protocol object, listed in src/protocols/index.ts. Recording asks each protocol whether it
// recognises a connection's first bytes (detect) and lets the one that does turn the connection's
// byte streams into exchanges (reconstruct). `files`, `compare` and `mocks` say how its exchanges
// are written, compared and matched; for HTTP/1 they are the existing render, compare and matcher
// code, which the writer, the test runner and the mock server call directly. Every other protocol
// is reached through the optional members: `files.readMock`/`readTest` (the reader hands it the
// documents of its `mockKinds`/`testKinds`), `mocks.serve` (the mock server hands it a redirected
// connection it `accepts`, or one whose TLS negotiated one of its `mocks.alpn` ids) and `replay`
// (the test runner hands it a test of its kind).
// Everything generic (ordering chunks, gaps, connection identity, counting what is skipped) stays
// outside: src/record/streams.ts and src/record/reconstruct.ts.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { CaptureSource, Direction } from '../model/events.js';
import type { Exchange, ExchangePayload, SkippedStream } from '../model/exchange.js';
import type { DocRead, DocWhere, LoadedDoc } from '../format/protocol-docs.js';

export type { DocPath, DocProblem, DocRead, DocWhere, LoadedDoc } from '../format/protocol-docs.js';

/** What is known about a connection when its first bytes are looked at. */
export interface DetectContext {
  /** The direction the bytes travelled: 'in' = the app read them, 'out' = it wrote them. */
  dir: Direction;
  source: CaptureSource;
  /** From the socket's open event, when the kernel reported it (not for TLS streams). */
  localPort?: number;
  remotePort?: number;
  /** 'accept': the app is the server of this connection; 'connect': it is the client. */
  opened?: 'accept' | 'connect';
}

/**
 * A protocol's answer for the first bytes of one direction of a connection.
 * 'yes': the connection is this protocol's. 'more': it could be; look again with more bytes.
 * 'no': it is not; `why` is what the recording reports when no protocol takes the connection.
 */
export type Detection = { verdict: 'yes' } | { verdict: 'more' } | { verdict: 'no'; why: string };

/** Something that kept bytes of a connection from becoming exchanges. */
export interface StreamProblem {
  reason: SkippedStream['reason'];
  detail: string;
}

/** What reconstruction gives a protocol's connection reconstructor. */
export interface ConnectionContext {
  /** A complete exchange; the connection's identity and the exchange's index are filled in. */
  emit(exchange: ExchangePayload): void;
  /**
   * The connection's problems so far, in order, shared with the caller (which adds lost bytes).
   * Append to report one; the first by severity becomes the SkippedStream's reason.
   */
  readonly problems: StreamProblem[];
}

/** What a connection reconstructor says when its connection ends. */
export interface ConnectionEnd {
  /** Set when the stream turned into something this protocol does not read (an upgrade, a tunnel). */
  handedOff?: string;
  /** Per direction, the stream offset up to which bytes went into exchanges. */
  consumed: Record<Direction, number>;
  /** Wire size of whole messages that never became an exchange (requests without a response…). */
  unpairedBytes: number;
}

/** One connection of one protocol: fed the two byte streams in the order they were captured. */
export interface ConnectionReconstructor {
  /** Contiguous bytes of one direction (gaps and reordering are already dealt with). */
  data(dir: Direction, data: Buffer, tsNs: bigint): void;
  /** Nothing more of this direction can be understood (bytes were lost, or an internal error). */
  stop(dir: Direction): void;
  /** The connection closed (or the recording ended): complete what ends with it, release parsers. */
  end(): ConnectionEnd;
}

/** Limits a protocol's reconstruction honours. */
export interface ReconstructLimits {
  /** Larger header sections are a parse error. */
  maxHeaderSize?: number;
}

/** The types one protocol works with, bundled so that Protocol takes one parameter. */
export interface ProtocolTypes {
  exchange: Exchange;
  /** On-disk documents and the options that shape them. */
  testDoc: unknown;
  mockDoc: unknown;
  docOptions: unknown;
  /** What compare takes and gives. */
  expected: unknown;
  actual: unknown;
  noise: unknown;
  compareResult: { passed: boolean };
  /** A mock as read from disk, a call the mock server received, and the matcher's answer. */
  mock: unknown;
  call: unknown;
  matchOutcome: unknown;
  /** A test as read from disk (protocols with `replay`). */
  test: unknown;
}

// ---- the replay half: reading documents, serving mocks, replaying tests ----

/** A call the mock server answered with a recorded mock (MockReport.served). */
export interface MockCallHit {
  /** The mock's name. */
  mock: string;
  /** A short verb for the call ("GET", "QUERY", "POST" for a gRPC call). */
  method: string;
  /** What it was called on ("/users/1", "postgres://db:5432/app", "/pkg.Svc/Method"). */
  url: string;
  /** The mock had answered before (the matcher's "last match answers again"). */
  reused?: boolean;
}

/** A call no mock answered (MockReport.misses): shown in the run report as HTTP misses are. */
export interface MockCallMiss {
  method: string;
  url: string;
  /** The mock that came closest, the field where it differed and how. */
  closest?: { mock: string; field: string; detail: string };
  /** The whole explanation (what the protocol told the app, and the run log). */
  message: string;
}

/** Where a redirected connection was going, as far as the mock server knows. */
export interface MockDestination {
  /** TLS server name the client asked for (SNI), when the front terminated TLS. */
  servername?: string;
  /** The ALPN id negotiated by the front's TLS, when one was. */
  alpn?: string;
  /** Original destination address and port, when the redirect reports them. */
  host?: string;
  port?: number;
}

/** What the mock server gives a protocol's `serve` with one redirected connection. */
export interface MockServeContext<M = unknown> {
  /** This protocol's mocks of the test set, in recorded order. */
  readonly mocks: readonly LoadedDoc<M>[];
  readonly destination: MockDestination;
  /**
   * Server-side TLS with the run CA on `socket` (for protocols that upgrade in-band, like Postgres'
   * SSLRequest): resolves once the handshake is done. The certificate is signed for the client's SNI.
   */
  startTls(socket: Duplex, opts?: { alpn?: string[] }): Promise<TLSSocket>;
  /**
   * The mock server's HTTP handler: answers a request from the HTTP (`kind: Http`) mocks, or 502 on
   * a miss. For protocols that carry HTTP requests (HTTP/2's compatibility request and response).
   */
  readonly http?: (req: IncomingMessage, res: ServerResponse) => void;
  /** Report a call answered by a mock. */
  hit(call: MockCallHit): void;
  /** Report a call no mock answered (the protocol answers the app with its own error). */
  miss(call: MockCallMiss): void;
}

/** What the test runner gives a protocol's `replay` for one test. */
export interface ReplayContext {
  /** Where the app listens (the recorded address is replaced by it). */
  app: { host: string; port: number };
  /** Limit for the whole exchange with the app. */
  timeoutMs: number;
  /** Aborted when the run is interrupted. */
  signal: AbortSignal;
  /** Directories of .proto files (tlsrec.yaml `proto:`), for protocols that decode messages with them. */
  protoDirs?: readonly string[];
}

/** One failed check of a replayed test (shown like an HTTP response failure). */
export interface ReplayFailure {
  /** How the report files it. Default 'body'. */
  kind?: 'status' | 'header' | 'body';
  /** Where it differed: "status", a header name, a JSON path ("$.user.id"), "grpc-status"... */
  path: string;
  expected: string;
  actual: string;
  /** One line naming the test, the place, expected and actual. */
  message: string;
}

/** A replayed test's outcome. */
export interface ReplayOutcome {
  /** For the report's line: a short verb and what was called (as in MockCallHit). */
  method: string;
  url: string;
  passed: boolean;
  failures: ReplayFailure[];
  /** Unified diff of the bodies, when they differ. */
  diff?: string;
  /** Time the app took to answer. */
  durationMs: number;
}

/** The part of a protocol that recording uses: recognise a connection, reconstruct its exchanges. */
export interface RecordingProtocol {
  /** Names the protocol in Exchange.protocol and in messages. */
  readonly name: string;
  /** Does this direction's first bytes belong to this protocol? Called until decided. */
  detect(first: Buffer, ctx: DetectContext): Detection;
  /** A reconstructor for one connection this protocol recognised. */
  reconstruct(ctx: ConnectionContext, limits: ReconstructLimits): ConnectionReconstructor;
}

/** One protocol: one folder under src/protocols/, one entry in src/protocols/index.ts. */
export interface Protocol<T extends ProtocolTypes = ProtocolTypes> extends RecordingProtocol {
  readonly name: T['exchange']['protocol'];
  /** Files: the documents it writes (`kind:` in the YAML) for tests and mocks. */
  readonly files: {
    readonly kind: string;
    /** Exchange.protocol values of the exchanges it emits besides its own name (HTTP/2 emits 'grpc' calls). */
    readonly exchangeProtocols?: readonly string[];
    /** The `kind:` values of mock documents it reads (HTTP/1's are read by src/format/reader.ts). */
    readonly mockKinds?: readonly string[];
    /** The `kind:` values of test documents it reads. */
    readonly testKinds?: readonly string[];
    /** A mock document (plain YAML value, any `kind` in mockKinds) -> the protocol's mock. */
    readMock?(doc: Readonly<Record<string, unknown>>, where: DocWhere): DocRead<T['mock']>;
    /** False for a mock of one of its kinds written in another tool's shape: skipped with a warning. */
    claimsMock?(doc: Readonly<Record<string, unknown>>): boolean;
    /** A test document (plain YAML value, any `kind` in testKinds) -> the protocol's test. */
    readTest?(doc: Readonly<Record<string, unknown>>, where: DocWhere): DocRead<T['test']>;
    testDoc(ex: T['exchange'], n: number, opts: T['docOptions']): T['testDoc'];
    mockDoc(ex: T['exchange'], n: number, opts: T['docOptions']): T['mockDoc'];
    /** YAML text of a document; `schemaRef` becomes the `# yaml-language-server: $schema=` line. */
    yaml(doc: T['testDoc'] | T['mockDoc'], schemaRef?: string): string;
  };
  /** Replay: the recorded answer against the one the app gave now, noise ignored. */
  compare(testName: string, expected: T['expected'], actual: T['actual'], noise: T['noise']): T['compareResult'];
  /** Replay one test of this protocol: send its request to the app and compare the answer. */
  replay?(test: LoadedDoc<T['test']>, ctx: ReplayContext): Promise<ReplayOutcome>;
  /** Mocks: which calls the mock server gives this protocol, and the mock that answers a call. */
  readonly mocks: {
    /** The first plaintext bytes a client sent on a redirected connection. */
    accepts(first: Buffer): boolean;
    matcher(mocks: readonly T['mock'][]): { match(call: T['call']): T['matchOutcome'] };
    /** ALPN ids the mock server's TLS offers for this protocol ('h2'); a connection that negotiates one is served by it. */
    readonly alpn?: readonly string[];
    /**
     * Serve one redirected connection (plaintext, or the front's TLS socket) whose first bytes
     * `accepts` took or whose ALPN is one of `alpn`: the first bytes are still unread on `socket`,
     * which flows once serve returns (listen for 'data', or read it, before returning).
     * The protocol owns the socket until it closes; it reports every call as a hit or a miss.
     */
    serve?(socket: Duplex, ctx: MockServeContext<T['mock']>): void;
  };
}
