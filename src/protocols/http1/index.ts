// HTTP/1.x as a Protocol: llhttp-based detection and reconstruction here; the Keploy `Http`
// documents (src/format/render.ts, src/format/reader.ts), the response comparison
// (src/replay/compare.ts) and the mock matcher (src/replay/mocks/matcher.ts) are the existing
// HTTP/1 code, referenced where it lives.

import type { HttpExchange } from '../../model/exchange.js';
import type { MockDoc, NoiseRule, Mock, TestCase, TestCaseDoc } from '../../format/types.js';
import { exchangeToMockDoc, exchangeToTestDoc, renderYaml, type DocOptions } from '../../format/render.js';
import {
  compareResponse,
  type ActualResponse,
  type CompareResult,
  type ExpectedResponse,
} from '../../replay/compare.js';
import { MockMatcher, type IncomingCall, type MatchOutcome } from '../../replay/mocks/matcher.js';
import type { Protocol } from '../protocol.js';
import { detectHttp1, Http1Connection } from './reconstruct.js';

/** First byte of a TLS handshake record: the mock server terminates TLS before asking protocols. */
const TLS_HANDSHAKE = 0x16;

export interface Http1Types {
  exchange: HttpExchange;
  testDoc: TestCaseDoc;
  mockDoc: MockDoc;
  docOptions: DocOptions;
  expected: ExpectedResponse;
  actual: ActualResponse;
  noise: readonly NoiseRule[];
  compareResult: CompareResult;
  mock: Mock;
  call: IncomingCall;
  matchOutcome: MatchOutcome;
  test: TestCase;
}

export const http1: Protocol<Http1Types> = {
  name: 'http1',
  detect: (first) => detectHttp1(first),
  reconstruct: (ctx, limits) => new Http1Connection(ctx, limits),
  files: {
    kind: 'Http',
    testDoc: exchangeToTestDoc,
    mockDoc: exchangeToMockDoc,
    yaml: renderYaml,
  },
  compare: compareResponse,
  mocks: {
    accepts: (first) => first.length > 0 && first[0] !== TLS_HANDSHAKE && detectHttp1(first).verdict !== 'no',
    matcher: (mocks) => new MockMatcher(mocks),
  },
};
