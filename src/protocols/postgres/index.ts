// Postgres as a Protocol: the app is the client (a connection it opened to a database), so every
// exchange is a mock. Recording: detect + reconstruct (reconstruct.ts); files: `kind: Postgres`
// documents (files.ts); replay: the mock endpoint that speaks the protocol (serve.ts) and the
// matcher (matcher.ts).

import type { PostgresExchange } from '../../model/exchange.js';
import type { Protocol } from '../protocol.js';
import { postgresMockDoc, postgresYaml, type PgDocOptions, type PostgresMockDoc } from './files.js';
import { detectPostgres, PostgresConnection } from './reconstruct.js';
import { PgMockMatcher, type PgCall, type PgMatchOutcome, type PgMock } from './matcher.js';

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
}

export const postgres: Protocol<PostgresTypes> = {
  name: 'postgres',
  detect: (first, ctx) => detectPostgres(first, ctx),
  reconstruct: (ctx) => new PostgresConnection(ctx),
  files: {
    kind: 'Postgres',
    testDoc: () => {
      throw new Error('Postgres exchanges are mocks: the app is the database client');
    },
    mockDoc: postgresMockDoc,
    yaml: (doc, schemaRef) => postgresYaml(doc as PostgresMockDoc, schemaRef),
  },
  compare: () => ({ passed: false }),
  mocks: {
    accepts: (first) => detectPostgres(first, { dir: 'out' }).verdict !== 'no',
    matcher: (mocks) => new PgMockMatcher(mocks),
  },
};
