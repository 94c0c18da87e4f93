// The on-disk format (Keploy's api.keploy.io/v1beta1, see DESIGN.md) and the normalized model that
// the replay side works with. The reader (src/format/reader.ts) turns files into the model, the
// writer turns exchanges into files. Replay code never looks at raw YAML documents.

import type { HeaderList } from '../model/exchange.js';
import type { LoadedDoc } from './protocol-docs.js';

export const API_VERSION = 'api.keploy.io/v1beta1';

/** Keploy stores headers as a flat map; tlsrec also accepts a list for repeated headers (Set-Cookie). */
export type HeaderMapDoc = Record<string, string | string[]>;

/** Keploy noise: key like "header.Date" or "body.user.id"; [] = always ignore, [regex...] = ignore when a regex matches. */
export type NoiseDoc = Record<string, string[]>;

export interface HttpRequestDoc {
  method: string;
  proto_major: number;
  proto_minor: number;
  /** Tests: absolute URL ("http://localhost:3000/a?b=1"). Mocks: path and query (host in the Host header), or absolute. */
  url: string;
  url_params?: Record<string, string>;
  header: HeaderMapDoc;
  /** Text body (JSON pretty-printed in a block scalar), or base64 when body_encoding is base64. */
  body: string;
  /** tlsrec extension: how `body` is stored. Absent = UTF-8 text. */
  body_encoding?: 'base64';
  /** tlsrec extension: the body is still Content-Encoding-encoded (it could not be decoded when recording). */
  body_content_encoded?: boolean;
  timestamp?: string;
}

export interface HttpResponseDoc {
  status_code: number;
  header: HeaderMapDoc;
  body: string;
  body_encoding?: 'base64';
  body_content_encoded?: boolean;
  status_message?: string;
  proto_major?: number;
  proto_minor?: number;
  timestamp?: string;
}

export interface TestCaseDoc {
  version: string;
  kind: 'Http';
  name: string;
  spec: {
    metadata?: Record<string, string>;
    req: HttpRequestDoc;
    resp: HttpResponseDoc;
    objects?: unknown[];
    assertions?: { noise?: NoiseDoc };
    created?: number;
  };
  curl?: string;
}

export interface MockDoc {
  version: string;
  kind: 'Http';
  name: string;
  spec: {
    metadata: { name?: string; operation?: string; type?: string; [k: string]: string | undefined };
    req: HttpRequestDoc;
    resp: HttpResponseDoc;
    objects?: unknown[];
    created?: number;
    reqTimestampMock?: string;
    resTimestampMock?: string;
  };
  /** Keploy's mock noise: `req` request-body paths ignored when matching ("body.nonce"); `value` regexes (a legacy bare list is `value`). */
  noise?: MockNoiseDoc | string[];
  connectionId?: string;
}

export interface MockNoiseDoc {
  req?: string[];
  value?: string[];
}

/** tlsrec.yaml */
export interface ConfigDoc {
  /** Command that starts the app, as an argv array or a shell string. */
  command?: string[] | string;
  /** Port the app listens on (tests are sent to http://localhost:<port>). */
  appPort?: number;
  /** Optional health URL polled until it answers before tests run. */
  healthUrl?: string;
  /** Seconds to wait for the app to be ready. */
  readyTimeout?: number;
  /** Noise applied to every test: same keys as a test's assertions.noise. */
  noise?: NoiseDoc;
  /** Outgoing destinations that are NOT redirected to mocks: "127.0.0.1:5432", "db.internal:5432", "10.0.0.0/8". */
  passthrough?: string[];
  /** Environment variables the app needs at replay (values in clear: not for secrets). */
  env?: Record<string, string | number | boolean>;
  /**
   * Redacted when recording, in addition to the defaults: a list of JSON keys/header names and
   * JSON paths ("$.user.ssn"), or { headers, keys, paths }.
   */
  redact?: string[] | { headers?: string[]; keys?: string[]; paths?: string[] };
  /** The secrets file (NAME: value), relative to tlsrec.yaml. Default .tlsrec-secrets.yaml. */
  secrets?: string;
}

// ---- normalized model (what replay uses) ----

export interface BodyValue {
  /** Exact bytes (decoded content: no chunked framing, no gzip). */
  bytes: Buffer;
  /** How it should be compared: parsed JSON, exact text, or bytes. */
  kind: 'json' | 'text' | 'binary' | 'empty';
  /**
   * True when `bytes` are still encoded as the Content-Encoding header says (recording could not
   * decode them): send them as they are, do not encode again.
   */
  contentEncoded?: boolean;
}

export interface NoiseRule {
  /** "header.date" (lower-cased header name) or "body" path segments e.g. ["user", "id"], "[]" for any index. */
  target: { type: 'header'; name: string } | { type: 'body'; path: string[] } | { type: 'status' };
  /** Empty = always ignore; otherwise ignore only when one regex matches the actual value. */
  patterns: RegExp[];
  /** The key as written, for messages. */
  key: string;
}

export interface TestCase {
  /** File it came from and the position of its spec.req, for messages. */
  file: string;
  /** 1-based line of the document in `file`. */
  line?: number;
  name: string;
  request: {
    method: string;
    /** Absolute URL as recorded (the replay swaps in the app's actual address). */
    url: string;
    /** '2' for a request recorded over HTTP/2 (proto_major 2): replayed over HTTP/2. */
    httpVersion?: '2';
    headers: HeaderList;
    body: BodyValue;
  };
  expected: {
    status: number;
    headers: HeaderList;
    body: BodyValue;
  };
  noise: NoiseRule[];
}

/** What a mock's noise makes the matcher ignore in the app's request. */
export interface MockNoise {
  /** Request body paths ("body.nonce" -> ["nonce"], "body" -> []); array indices as in NoiseRule. */
  bodyPaths: string[][];
  /** Keploy's `noise.value`: a recorded body value one of these matches is not compared. */
  values: RegExp[];
  /** The `noise.req` entries as written, for messages. */
  keys: string[];
}

export interface Mock {
  file: string;
  /** 1-based line where the mock's document starts in `file`. */
  line?: number;
  name: string;
  /** 0-based order in mocks.yaml: repeated identical calls are answered in this order. */
  index: number;
  request: {
    method: string;
    /** Scheme the app used ("https" when recorded inside TLS). */
    scheme: 'http' | 'https';
    /** The file did not say (Keploy's path-only URLs): the mock matches either scheme. */
    anyScheme?: true;
    /** Host (and :port when not default) from the URL or Host header, lower-case. */
    host: string;
    /** Path without the query. */
    path: string;
    /** Query as ordered pairs. */
    query: Array<[string, string]>;
    headers: HeaderList;
    body: BodyValue;
  };
  response: {
    status: number;
    statusMessage: string;
    headers: HeaderList;
    /** Decoded body; the mock server re-applies Content-Encoding from `headers` when it answers. */
    body: BodyValue;
  };
  /** Parts of the request the matcher ignores (the document's `noise:`). */
  noise?: MockNoise;
}

export interface TestSet {
  name: string;
  dir: string;
  tests: TestCase[];
  mocks: Mock[];
  /** Tests of other protocols (kinds a registered protocol reads), in file order. */
  protocolTests?: LoadedDoc[];
  /** Mocks of other protocols, in mocks.yaml order (their `index` counts every document). */
  protocolMocks?: LoadedDoc[];
  /** Noise for every test of this set (tlsrec.yaml noise merged in by the loader). */
  noise: NoiseRule[];
  /** Things the loader skipped without failing, e.g. Keploy mocks of other kinds (Postgres, Mongo). */
  warnings?: string[];
}

export interface Config {
  file: string | undefined;
  command: string[] | undefined;
  appPort: number | undefined;
  healthUrl: string | undefined;
  readyTimeoutMs: number;
  noise: NoiseRule[];
  passthrough: string[];
  redactHeaders: string[];
  /** tlsrec.yaml `env:` (absent when the file has none): set for the app by test and rerecord, unless tlsrec's own environment has the name. */
  env?: Record<string, string>;
  /** tlsrec.yaml `proto:`, absolute: directories of .proto files for gRPC messages. */
  protoDirs?: string[];
  /** JSON keys (and query/form names) redacted in addition to the defaults. */
  redactKeys?: string[];
  /** JSON paths in bodies redacted in addition to the defaults. */
  redactPaths?: string[];
  /** Path of the secrets file (resolved against tlsrec.yaml's directory). */
  secretsFile?: string;
}
