// Variables at replay, one scope per test set, tests in order. A test's request has its
// references filled in ({{ .token }} from what the app answered earlier, {{ .secret.NAME }}
// from the SecretStore); its expected response, where it holds references, captures what the
// app actually answered there (a login's fresh token) and is compared as that value, so the
// captured field only has to be present.

import type { HeaderList } from '../model/exchange.js';
import type { BodyValue, Mock, TestCase } from '../format/types.js';
import { isJsonContentType } from '../format/json.js';
import { firstHeader } from '../model/headers.js';
import { hasRef, matchTemplate, refsIn, substitute, type Ref } from '../format/templates.js';
import type { ActualResponse, ExpectedResponse } from './compare.js';
import type { SecretStore } from './secrets.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

/**
 * Keploy's templatize keeps each variable's starting value in the test set's config.yaml
 * (`template: {token: ...}`); a Keploy set whose first request uses one needs it. {} when absent.
 */
export function keployTemplateValues(setDir: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(join(setDir, 'config.yaml'), 'utf8');
  } catch {
    return {};
  }
  try {
    const template = (parse(text) as { template?: unknown } | null)?.template;
    const out: Record<string, string> = {};
    if (template !== null && typeof template === 'object' && !Array.isArray(template)) {
      for (const [k, v] of Object.entries(template as Record<string, unknown>))
        if (v !== null && typeof v !== 'object') out[k] = String(v);
    }
    return out;
  } catch {
    return {}; // not Keploy's file: tlsrec does not use it otherwise
  }
}

export interface PreparedRequest {
  test: TestCase;
  /** Secrets the request refers to that nobody supplied (it is sent with the reference text). */
  missingSecrets: string[];
}

const jsonEscape = (v: string): string => JSON.stringify(v).slice(1, -1);

export class VariableScope {
  private readonly vars = new Map<string, string>();
  private readonly secrets: SecretStore;

  /** `initial`: values before any capture (Keploy's test-set config.yaml `template:`). */
  constructor(secrets: SecretStore, initial: Record<string, string> = {}) {
    this.secrets = secrets;
    for (const [k, v] of Object.entries(initial)) this.vars.set(k, v);
  }

  get(name: string): string | undefined {
    return this.vars.get(name);
  }

  private resolve = (ref: Ref): string | undefined =>
    ref.kind === 'secret' ? this.secrets.get(ref.name) : this.vars.get(ref.name);

  /** The test with its request's references filled in. */
  prepare(test: TestCase): PreparedRequest {
    const req = test.request;
    const missing = new Set<string>();
    const note = (text: string): void => {
      for (const r of refsIn(text))
        if (r.kind === 'secret' && this.secrets.get(r.name) === undefined) missing.add(r.name);
    };
    note(req.url);
    for (const [, v] of req.headers) note(v);
    const bodyText =
      req.body.kind === 'binary' || req.body.kind === 'empty' ? undefined : req.body.bytes.toString('utf8');
    if (bodyText !== undefined) note(bodyText);
    const anyRef =
      hasRef(req.url) || req.headers.some(([, v]) => hasRef(v)) || (bodyText !== undefined && hasRef(bodyText));
    if (!anyRef) return { test, missingSecrets: [] };
    // Query values are written unencoded in the files (readable): encode them when filling in.
    const url = substitute(req.url, this.resolve, encodeURIComponent);
    const headers: HeaderList = req.headers.map(([n, v]) => [n, substitute(v, this.resolve)]);
    let body: BodyValue = req.body;
    if (bodyText !== undefined && hasRef(bodyText)) {
      const ct = firstHeader(req.headers, 'content-type');
      const encode =
        req.body.kind === 'json' || isJsonContentType(ct)
          ? jsonEscape
          : /x-www-form-urlencoded/i.test(ct ?? '')
            ? encodeURIComponent
            : (v: string) => v;
      body = { ...req.body, bytes: Buffer.from(substitute(bodyText, this.resolve, encode), 'utf8') };
    }
    return { test: { ...test, request: { ...req, url, headers, body } }, missingSecrets: [...missing] };
  }

  /**
   * A mock's response with its variables filled in with this run's values (an upstream that echoes
   * a token the app got from its client). Secrets stay as their reference text: a stable placeholder.
   */
  fillMockResponse = (response: Mock['response']): Mock['response'] => {
    const onlyVars = (ref: Ref): string | undefined => (ref.kind === 'var' ? this.vars.get(ref.name) : undefined);
    const text =
      response.body.kind === 'binary' || response.body.kind === 'empty' ? '' : response.body.bytes.toString('utf8');
    if (!hasRef(text) && !response.headers.some(([, v]) => hasRef(v))) return response;
    const encode = response.body.kind === 'json' ? jsonEscape : (v: string) => v;
    return {
      ...response,
      headers: response.headers.map(([n, v]) => [n, substitute(v, onlyVars)]),
      body: hasRef(text)
        ? { ...response.body, bytes: Buffer.from(substitute(text, onlyVars, encode), 'utf8') }
        : response.body,
    };
  };

  /** Takes the captures of `template` matched against `actual`; false when it does not fit. */
  private capture(template: string, actual: string): boolean {
    const found = matchTemplate(template, actual);
    if (!found) return false;
    for (const [key, value] of found) {
      if (key.startsWith('secret.')) {
        const supplied = this.secrets.get(key.slice(7));
        if (supplied !== undefined && supplied !== value) return false;
      }
    }
    for (const [key, value] of found) if (!key.startsWith('secret.')) this.vars.set(key, value);
    return true;
  }

  /**
   * The expected response to compare `actual` with: where the recording holds references, the
   * actual value when it fits (captured into the scope), else the reference as written (a
   * difference the report shows). Unchanged when the expectation has no references.
   */
  expect(expected: ExpectedResponse, actual: ActualResponse): ExpectedResponse {
    let headers = expected.headers;
    if (headers.some(([, v]) => hasRef(v))) {
      headers = expected.headers.map(([name, value]): [string, string] => {
        if (!hasRef(value)) return [name, value];
        const lower = name.toLowerCase();
        const hit = actual.headers.find(([n, v]) => n.toLowerCase() === lower && this.capture(value, v));
        return [name, hit ? hit[1] : value];
      });
    }
    return { ...expected, headers, body: this.expectBody(expected.body, actual.body) };
  }

  private expectBody(body: BodyValue, actual: Buffer): BodyValue {
    if (body.kind === 'binary' || body.kind === 'empty') return body;
    const text = body.bytes.toString('utf8');
    if (!hasRef(text)) return body;
    if (body.kind === 'json') {
      let want: unknown;
      let got: unknown;
      try {
        want = JSON.parse(text);
        got = JSON.parse(actual.toString('utf8'));
      } catch {
        return body;
      }
      const filled = this.fill(want, got);
      return { ...body, bytes: Buffer.from(JSON.stringify(filled) + (text.endsWith('\n') ? '\n' : ''), 'utf8') };
    }
    const a = actual.toString('utf8');
    return this.capture(text, a) ? { ...body, bytes: Buffer.from(a, 'utf8') } : body;
  }

  /** `want` with each string holding references replaced by the actual value at the same place. */
  private fill(want: unknown, got: unknown): unknown {
    if (typeof want === 'string') {
      if (!hasRef(want)) return want;
      return typeof got === 'string' && this.capture(want, got) ? got : want;
    }
    if (Array.isArray(want)) return want.map((w, i) => this.fill(w, Array.isArray(got) ? got[i] : undefined));
    if (want !== null && typeof want === 'object') {
      const g = got !== null && typeof got === 'object' && !Array.isArray(got) ? (got as Record<string, unknown>) : {};
      const out: Record<string, unknown> = {};
      for (const [k, w] of Object.entries(want as Record<string, unknown>)) out[k] = this.fill(w, g[k]);
      return out;
    }
    return want;
  }
}
