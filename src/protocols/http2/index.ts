// HTTP/2 as a Protocol: connections that start with the client preface (TLS with ALPN h2, h2c with
// prior knowledge). Each stream becomes an exchange: plain HTTP/2 ones are HttpExchanges written as
// Keploy `kind: Http` documents with proto_major 2 (the HTTP/1 render, compare and matcher code);
// gRPC calls are GrpcExchanges written as Keploy `kind: gRPC` documents (files.ts).

import type { MockDoc, NoiseRule, TestCaseDoc } from '../../format/types.js';
import { exchangeToMockDoc, exchangeToTestDoc, renderYaml, type DocOptions } from '../../format/render.js';
import type { GrpcExchange, HttpExchange } from '../../model/exchange.js';
import {
  compareResponse,
  type ActualResponse,
  type CompareResult,
  type ExpectedResponse,
} from '../../replay/compare.js';
import type { Protocol } from '../protocol.js';
import { grpcMockDoc, grpcTestDoc, grpcYaml, type GrpcDoc } from './files.js';
import { PREFACE } from './frames.js';
import { readGrpcDoc, type GrpcCall } from './read.js';
import { detectHttp2, Http2Connection } from './reconstruct.js';
import { replayGrpc, sameCall, serveHttp2, type GrpcCallIn } from './replay.js';

export interface Http2Types {
  exchange: HttpExchange | GrpcExchange;
  testDoc: TestCaseDoc | GrpcDoc;
  mockDoc: MockDoc | GrpcDoc;
  docOptions: DocOptions;
  expected: ExpectedResponse;
  actual: ActualResponse;
  noise: readonly NoiseRule[];
  compareResult: CompareResult;
  mock: GrpcCall;
  call: GrpcCallIn;
  matchOutcome: GrpcCall | undefined;
  test: GrpcCall;
}

const isGrpcDoc = (d: TestCaseDoc | MockDoc | GrpcDoc): d is GrpcDoc => d.kind === 'gRPC';

export const http2: Protocol<Http2Types> = {
  name: 'http2',
  detect: (first) => detectHttp2(first),
  reconstruct: (ctx) => new Http2Connection(ctx),
  files: {
    // The kind that is this protocol's alone; its plain HTTP/2 exchanges are `kind: Http` documents,
    // read back as HTTP's.
    kind: 'gRPC',
    exchangeProtocols: ['grpc'],
    mockKinds: ['gRPC'],
    testKinds: ['gRPC'],
    readMock: (doc) => readGrpcDoc(doc),
    readTest: (doc) => readGrpcDoc(doc),
    testDoc: (ex, n, opts) => (ex.protocol === 'grpc' ? grpcTestDoc(ex, n, opts) : exchangeToTestDoc(ex, n, opts)),
    mockDoc: (ex, n, opts) => (ex.protocol === 'grpc' ? grpcMockDoc(ex, n, opts) : exchangeToMockDoc(ex, n, opts)),
    yaml: (doc, schemaRef) => (isGrpcDoc(doc) ? grpcYaml(doc) : renderYaml(doc, schemaRef)),
  },
  compare: compareResponse,
  replay: (test, ctx) => replayGrpc(test, ctx),
  mocks: {
    accepts: (first) => first.length >= PREFACE.length && first.subarray(0, PREFACE.length).equals(PREFACE),
    matcher: (mocks) => ({ match: (c) => mocks.find((m) => sameCall(m, c)) }),
    alpn: ['h2'],
    serve: (socket, ctx) => serveHttp2(socket, ctx),
  },
};
