// The seam where a protocol plugs in. A protocol is one folder under src/protocols/ that exports one
// Protocol object, listed in src/protocols/index.ts. Recording asks each protocol whether it
// recognises a connection's first bytes (detect) and lets the one that does turn the connection's
// byte streams into exchanges (reconstruct). `files`, `compare` and `mocks` say how its exchanges
// are written, compared and matched; for HTTP/1 they are the existing render, compare and matcher
// code, which the writer, the test runner and the mock server call directly.
// Everything generic (ordering chunks, gaps, connection identity, counting what is skipped) stays
// outside: src/record/streams.ts and src/record/reconstruct.ts.

import type { CaptureSource, Direction } from '../model/events.js';
import type { Exchange, ExchangePayload, SkippedStream } from '../model/exchange.js';

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
    testDoc(ex: T['exchange'], n: number, opts: T['docOptions']): T['testDoc'];
    mockDoc(ex: T['exchange'], n: number, opts: T['docOptions']): T['mockDoc'];
    /** YAML text of a document; `schemaRef` becomes the `# yaml-language-server: $schema=` line. */
    yaml(doc: T['testDoc'] | T['mockDoc'], schemaRef?: string): string;
  };
  /** Replay: the recorded answer against the one the app gave now, noise ignored. */
  compare(testName: string, expected: T['expected'], actual: T['actual'], noise: T['noise']): T['compareResult'];
  /** Mocks: which calls the mock server gives this protocol, and the mock that answers a call. */
  readonly mocks: {
    /** The first plaintext bytes a client sent on a redirected connection. */
    accepts(first: Buffer): boolean;
    matcher(mocks: readonly T['mock'][]): { match(call: T['call']): T['matchOutcome'] };
  };
}
