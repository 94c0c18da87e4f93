// JSON Schemas (draft-07, what yaml-language-server handles best) for test files, mocks.yaml
// documents and tlsrec.yaml. This module is the single source: the reader validates with these
// objects, and schema/*.json are these objects serialized (test/format-schema.test.ts keeps them
// in sync; regenerate with `npx vitest run test/format-schema.test.ts -u`... see that test).

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonSchema = { [k: string]: Json };

const DRAFT = 'http://json-schema.org/draft-07/schema#';

const scalar: Json = ['string', 'number', 'boolean'];

const headerMap: JsonSchema = {
  type: 'object',
  description: 'Headers as a flat map (Keploy style). A repeated header (Set-Cookie) may be a list.',
  additionalProperties: { type: ['string', 'number', 'boolean', 'array'], items: { type: scalar } },
};

const noise: JsonSchema = {
  type: 'object',
  description:
    'Fields ignored when comparing: "header.Date", "body.user.id", "body.items.[].id", "status". ' +
    'Value [] = always ignore; a list of regular expressions = ignore when one matches.',
  additionalProperties: { type: ['array', 'null'], items: { type: 'string' } },
};

const body: JsonSchema = {
  type: ['string', 'null'],
  description: 'Body text; JSON is pretty-printed and sent minified. With body_encoding: base64, the bytes in base64.',
};
const bodyEncoding: JsonSchema = { enum: ['base64'], description: 'tlsrec extension: body holds base64 bytes.' };
const bodyContentEncoded: JsonSchema = {
  type: 'boolean',
  description: 'tlsrec extension: body is still Content-Encoding-encoded; it is sent as is.',
};
const timestamp: JsonSchema = { type: ['string', 'null'], description: 'RFC 3339 time.' };
const proto: JsonSchema = { type: 'integer', minimum: 0 };

const request: JsonSchema = {
  type: 'object',
  required: ['method', 'url'],
  properties: {
    method: { type: 'string', minLength: 1, description: 'GET, POST, ...' },
    proto_major: proto,
    proto_minor: proto,
    url: {
      type: 'string',
      minLength: 1,
      description: 'Absolute URL (http://localhost:3000/a?b=1); mocks may use a path.',
    },
    url_params: { type: 'object', additionalProperties: { type: scalar } },
    header: headerMap,
    body,
    body_encoding: bodyEncoding,
    body_content_encoded: bodyContentEncoded,
    timestamp,
  },
};

const response: JsonSchema = {
  type: 'object',
  required: ['status_code'],
  properties: {
    status_code: { type: 'integer', minimum: 100, maximum: 599 },
    header: headerMap,
    body,
    body_encoding: bodyEncoding,
    body_content_encoded: bodyContentEncoded,
    status_message: { type: ['string', 'null'] },
    proto_major: proto,
    proto_minor: proto,
    timestamp,
  },
};

const version: JsonSchema = {
  type: 'string',
  pattern: '^api\\.keploy\\.io/',
  description: 'api.keploy.io/v1beta1',
};

export const testSchema: JsonSchema = {
  $schema: DRAFT,
  title: 'tlsrec / Keploy test case',
  type: 'object',
  required: ['version', 'kind', 'spec'],
  properties: {
    version,
    kind: { enum: ['Http'] },
    name: { type: 'string' },
    spec: {
      type: 'object',
      required: ['req', 'resp'],
      properties: {
        metadata: { type: ['object', 'null'] },
        req: request,
        resp: response,
        objects: { type: ['array', 'null'] },
        assertions: { type: ['object', 'null'], properties: { noise } },
        created: { type: 'number' },
      },
    },
    curl: { type: 'string', description: 'The request as a curl command (informational).' },
  },
};

const mockSpec: JsonSchema = {
  type: 'object',
  required: ['req', 'resp'],
  properties: {
    metadata: {
      type: ['object', 'null'],
      description: 'name: Http, operation: <method>, type: HTTP_CLIENT',
      additionalProperties: { type: scalar },
    },
    req: request,
    resp: response,
    objects: { type: ['array', 'null'] },
    created: { type: 'number' },
    reqTimestampMock: timestamp,
    resTimestampMock: timestamp,
  },
};

/** One document of mocks.yaml. Keploy's other kinds (Postgres, Mongo, ...) are allowed and skipped. */
export const mockSchema: JsonSchema = {
  $schema: DRAFT,
  title: 'tlsrec / Keploy mock (one document of mocks.yaml)',
  type: 'object',
  required: ['version', 'kind', 'spec'],
  properties: {
    version,
    kind: { type: 'string', description: 'Http (other Keploy kinds are skipped by tlsrec)' },
    name: { type: 'string' },
    spec: { type: 'object' },
    noise: {
      description:
        'Keploy mock noise. req: request-body paths the matcher ignores ("body.nonce", "body.items.at"); ' +
        'value: regular expressions, a recorded value one matches is not compared. A bare list is value.',
      oneOf: [
        {
          type: 'object',
          properties: {
            req: { type: ['array', 'null'], items: { type: 'string' } },
            value: { type: ['array', 'null'], items: { type: 'string' } },
          },
        },
        { type: 'array', items: { type: 'string' } },
        { type: 'null' },
      ],
    },
    connectionId: { type: scalar },
  },
  if: { properties: { kind: { const: 'Http' } } },
  // biome-ignore lint/suspicious/noThenProperty: `then` is a JSON Schema keyword (if/then)
  then: { properties: { spec: mockSpec } },
};

export const configSchema: JsonSchema = {
  $schema: DRAFT,
  title: 'tlsrec.yaml',
  type: 'object',
  additionalProperties: false,
  properties: {
    command: {
      type: ['string', 'array'],
      items: { type: 'string' },
      description: 'Command that starts the app: a list of arguments, or a string run by /bin/sh -c.',
    },
    appPort: { type: 'integer', minimum: 1, maximum: 65535, description: 'Port the app listens on.' },
    healthUrl: { type: 'string', description: 'Polled until it answers before tests run.' },
    readyTimeout: { type: 'number', exclusiveMinimum: 0, description: 'Seconds to wait for the app (default 30).' },
    noise,
    passthrough: {
      type: 'array',
      items: { type: 'string' },
      description: 'Outgoing destinations not redirected to mocks: "127.0.0.1:5432", "db.internal:5432", "10.0.0.0/8".',
    },
    redact: {
      description:
        'Also redacted when recording (besides Authorization, Cookie, API keys, passwords, tokens): a list of header names, JSON keys ' +
        'and JSON paths ("$.user.ssn"), or { headers, keys, paths }.',
      oneOf: [
        { type: 'array', items: { type: 'string' } },
        {
          type: 'object',
          additionalProperties: false,
          properties: {
            headers: { type: 'array', items: { type: 'string' } },
            keys: { type: 'array', items: { type: 'string' } },
            paths: { type: 'array', items: { type: 'string' } },
          },
        },
      ],
    },
    secrets: {
      type: 'string',
      description:
        'The secrets file (NAME: value), relative to tlsrec.yaml; written 0600 and git-ignored by record. Default .tlsrec-secrets.yaml.',
    },
    env: {
      type: 'object',
      additionalProperties: { type: ['string', 'number', 'boolean'] },
      propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
      description:
        'Environment variables the app needs at replay (e.g. PORT), set by `tlsrec test` and `tlsrec rerecord`; ' +
        'the environment tlsrec runs in wins. Written in clear by `tlsrec record --env NAME`: not for secrets.',
    },
    proto: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      description:
        'Directories of .proto files (relative to this file, or absolute), added by `tlsrec record --proto DIR`: gRPC messages are written as JSON and compared by field name.',
    },
  },
};

/** File names under schema/ (and under <root>/.schema/ where the test-set writer copies them). */
export const SCHEMA_FILES = {
  test: 'test.schema.json',
  mock: 'mocks.schema.json',
  config: 'config.schema.json',
} as const;

export function schemaFileContents(): Record<string, string> {
  return {
    [SCHEMA_FILES.test]: JSON.stringify(testSchema, null, 2) + '\n',
    [SCHEMA_FILES.mock]: JSON.stringify(mockSchema, null, 2) + '\n',
    [SCHEMA_FILES.config]: JSON.stringify(configSchema, null, 2) + '\n',
  };
}
