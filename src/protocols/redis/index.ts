// Redis as a Protocol: RESP2/RESP3 commands the app sends, recorded as `kind: Redis` mocks and
// answered offline by a mock endpoint that speaks RESP (serve.ts). The app is the client; a
// connection where it is the server is not recorded.

import type { RedisExchange } from '../../model/exchange.js';
import type { DocOptions } from '../../format/render.js';
import type { Protocol } from '../protocol.js';
import { readRedisMock, redisMockDoc, redisYaml, type RedisMock, type RedisMockDoc } from './files.js';
import { RedisMockMatcher, type RedisCall, type RedisMatchOutcome } from './matcher.js';
import { detectRedis, RedisConnection } from './reconstruct.js';
import { serveRedis } from './serve.js';

export interface RedisTypes {
  exchange: RedisExchange;
  testDoc: never;
  mockDoc: RedisMockDoc;
  docOptions: DocOptions;
  expected: never;
  actual: never;
  noise: never;
  compareResult: { passed: boolean };
  mock: RedisMock;
  call: RedisCall;
  matchOutcome: RedisMatchOutcome;
  test: never;
}

export const redis: Protocol<RedisTypes> = {
  name: 'redis',
  detect: (first, ctx) => detectRedis(first, ctx),
  reconstruct: (ctx) => new RedisConnection(ctx),
  files: {
    kind: 'Redis',
    mockKinds: ['Redis'],
    readMock: readRedisMock,
    testDoc: () => {
      throw new Error('redis: the app as a Redis server is not recorded, so there are no Redis tests');
    },
    mockDoc: redisMockDoc,
    yaml: (doc, schemaRef) => redisYaml(doc, schemaRef),
  },
  compare: () => ({ passed: false }),
  mocks: {
    accepts: (first) => detectRedis(first, { dir: 'out' }).verdict === 'yes',
    matcher: (mocks) =>
      new RedisMockMatcher(
        mocks.map((value, index) => ({
          protocol: 'redis',
          kind: 'Redis',
          file: 'mocks.yaml',
          line: 0,
          name: `mock-${index}`,
          index,
          value,
        })),
      ),
    serve: serveRedis,
  },
};
