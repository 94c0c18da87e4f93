// Postgres as a Protocol: the app is the client (a connection it opened to a database), so every
// exchange is a mock. Recording: detect + reconstruct (reconstruct.ts); files: `kind: Postgres`
// documents (files.ts, read back by read.ts); replay: the mock endpoint that speaks the protocol
// (serve.ts) and the matcher (matcher.ts).

import type { PostgresExchange } from '../../model/exchange.js';
import type { Protocol } from '../protocol.js';
import { postgresMockDoc, postgresYaml, type PgDocOptions, type PostgresMockDoc } from './files.js';
import { PgMockMatcher, type PgCall, type PgMatchOutcome, type PgMock } from './matcher.js';
import { readPostgresMock } from './read.js';
import { detectPostgres } from './detect.js';
import { PostgresConnection } from './reconstruct.js';
import { servePostgres } from './serve.js';

export interface PostgresTypes {
  exchange: PostgresExchange;
  testDoc: never;
  mockDoc: PostgresMockDoc;
  docOptions: PgDocOptions;
  expected: never;
  actual: never;
  noise: never;
  compareResult: { passed: boolean };
  mock: PgMock;
  call: PgCall;
  matchOutcome: PgMatchOutcome;
  test: never;
}

export const postgres: Protocol<PostgresTypes> = {
  name: 'postgres',
  detect: (first, ctx) => detectPostgres(first, ctx),
  reconstruct: (ctx) => new PostgresConnection(ctx),
  files: {
    kind: 'Postgres',
    mockKinds: ['Postgres'],
    readMock: readPostgresMock,
    // Keploy's own `kind: Postgres` mocks are wire packets (spec.postgresrequests…): not this shape.
    claimsMock: (doc) => {
      const spec = doc.spec;
      return typeof spec === 'object' && spec !== null && 'request' in spec;
    },
    testDoc: () => {
      throw new Error('Postgres exchanges are mocks: the app is the database client');
    },
    mockDoc: postgresMockDoc,
    yaml: (doc, schemaRef) => postgresYaml(doc as PostgresMockDoc, schemaRef),
  },
  compare: () => ({ passed: false }),
  mocks: {
    accepts: (first) => detectPostgres(first, { dir: 'out' }).verdict === 'yes',
    matcher: (mocks) => new PgMockMatcher(mocks),
    serve: servePostgres,
  },
};
