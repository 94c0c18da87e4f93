// Strict, explainable mock matching. A call is checked against each mock stage by stage — method,
// host (scheme + authority), path, query, body — and answered by the first unused mock (in
// mocks.yaml order) that passes every stage. Headers are not matched (they carry dates, tokens and
// client versions that change between runs), as in Keploy.
//
// Repeated identical calls: each mock answers once, in recorded order, so "pending, pending, done"
// polls replay as recorded. When every mock that matches has been used, the LAST of them answers
// again (retries and extra polls keep getting the final recorded state instead of a 502); such
// answers are marked `reused` in the report so a reviewer can see them.
//
// Pure apart from the usage bookkeeping in MockMatcher; no I/O.

import { isDeepStrictEqual } from 'node:util';
import type { HeaderList } from '../../model/exchange.js';
import type { Mock, MockNoise } from '../../format/types.js';
import { noisePathMatches, normalizeNoisePath, type Seg } from '../noise-paths.js';
import { hasRef, templateMatches } from '../../format/templates.js';

export type Stage = 'method' | 'host' | 'path' | 'query' | 'body';
export const STAGES: readonly Stage[] = ['method', 'host', 'path', 'query', 'body'];

/** An outgoing call of the app, as the mock server received it. */
export interface IncomingCall {
  method: string;
  scheme: 'http' | 'https';
  /** Host header (or SNI when there is none), with port when present. */
  host: string;
  path: string;
  query: Array<[string, string]>;
  headers: HeaderList;
  /** Decoded body (Content-Encoding undone). */
  body: Buffer;
}

export interface StageFailure {
  stage: Stage;
  /** Field that differed (the stage name); a JSON path, when there is one, starts the detail. */
  field: string;
  /** e.g. "at $.qty (expected 2, got 3)". */
  detail: string;
}

export interface StageResult {
  /** Stages passed before the first failure, in order. */
  passed: Stage[];
  failure?: StageFailure;
}

export interface MockMiss {
  method: string;
  url: string;
  closest?: { mock: string; field: string; detail: string };
  /** The whole explanation, as sent in the 502 body (tlsrec addition; formatMiss(miss) rebuilds a shorter one). */
  message?: string;
}

/** One call the mock server received, with what it was matched to (for noise detection). */
export interface ReceivedCall {
  method: string;
  url: string;
  /** Decoded request body. */
  body: Buffer;
  /** The mock that answered. */
  mock?: Mock;
  /** On a miss: the closest mock and the stage where it differed. */
  closest?: { mock: Mock; stage: Stage };
}

export interface MockReport {
  served: Array<{ mock: string; method: string; url: string; reused?: boolean }>;
  misses: MockMiss[];
  /** Names of mocks that answered no call. */
  unused: string[];
}

export type MatchOutcome =
  | { kind: 'hit'; mock: Mock; reused: boolean }
  | { kind: 'miss'; miss: MockMiss; message: string };

/** Lower-case host with the scheme's default port removed. */
export function normalizeHost(scheme: string, host: string): string {
  const h = host.trim().toLowerCase();
  const def = scheme === 'https' ? ':443' : ':80';
  return h.endsWith(def) ? h.slice(0, -def.length) : h;
}

export function callUrl(call: Pick<IncomingCall, 'scheme' | 'host' | 'path' | 'query'>): string {
  const q = call.query.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  return `${call.scheme}://${normalizeHost(call.scheme, call.host)}${call.path}${q ? `?${q}` : ''}`;
}

/** Split a request target ("/a/b?x=1&y") into path and query pairs. */
export function splitTarget(target: string): { path: string; query: Array<[string, string]> } {
  let t = target;
  // absolute-form (proxies) keeps only path and query
  const abs = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(t);
  if (abs) t = t.slice(abs[0].length) || '/';
  const hash = t.indexOf('#');
  if (hash >= 0) t = t.slice(0, hash);
  const qi = t.indexOf('?');
  const path = qi >= 0 ? t.slice(0, qi) : t;
  const query: Array<[string, string]> = [];
  if (qi >= 0) for (const [k, v] of new URLSearchParams(t.slice(qi + 1))) query.push([k, v]);
  return { path: path === '' ? '/' : path, query };
}

/** Check one mock against one call, stage by stage; stops at the first failing stage. */
export function matchStages(mock: Mock, call: IncomingCall): StageResult {
  const passed: Stage[] = [];
  const fail = (stage: Stage, detail: string): StageResult => ({ passed, failure: { stage, field: stage, detail } });
  const m = mock.request;

  if (m.method.toUpperCase() !== call.method.toUpperCase())
    return fail('method', `expected ${m.method.toUpperCase()}, got ${call.method.toUpperCase()}`);
  passed.push('method');

  // Keploy writes path-only mock URLs (no scheme: either matches) and, for Go clients, no Host
  // header: such a mock names no host, so it matches any.
  if (m.host !== '') {
    const scheme = m.anyScheme ? call.scheme : m.scheme;
    const wantHost = `${scheme}://${normalizeHost(scheme, m.host)}`;
    const gotHost = `${call.scheme}://${normalizeHost(call.scheme, call.host)}`;
    if (wantHost !== gotHost) return fail('host', `expected ${wantHost}, got ${gotHost}`);
  }
  passed.push('host');

  const wantPath = m.path === '' ? '/' : m.path;
  // A recorded value that flows ({{ .id }}) or a secret ({{ .secret.KEY }}) matches any value there.
  if (wantPath !== call.path && !(hasRef(wantPath) && templateMatches(wantPath, call.path)))
    return fail('path', `expected ${wantPath}, got ${call.path}`);
  passed.push('path');

  const q = compareQuery(m.query, call.query);
  if (q) return fail('query', q);
  passed.push('query');

  const b = compareBody(mock, call.body);
  if (b) return fail('body', b.detail);
  passed.push('body');
  return { passed };
}

/** Query as a multiset of pairs: order does not matter, repetitions do. */
function compareQuery(wantPairs: Array<[string, string]>, gotPairs: Array<[string, string]>): string | undefined {
  // Pairs whose recorded value is a reference match a pair of the same name with any value.
  const got = [...gotPairs];
  const want = wantPairs.filter(([k, v]) => {
    if (!hasRef(v)) return true;
    const i = got.findIndex(([gk, gv]) => gk === k && templateMatches(v, gv));
    if (i < 0) return true;
    got.splice(i, 1);
    return false;
  });
  const count = (pairs: Array<[string, string]>): Map<string, number> => {
    const m = new Map<string, number>();
    for (const [k, v] of pairs) {
      const key = `${encodeURIComponent(k)}=${encodeURIComponent(v)}`;
      m.set(key, (m.get(key) ?? 0) + 1);
    }
    return m;
  };
  const w = count(want);
  const g = count(got);
  const missing: string[] = [];
  const extra: string[] = [];
  for (const [k, n] of w) for (let i = g.get(k) ?? 0; i < n; i++) missing.push(k);
  for (const [k, n] of g) for (let i = w.get(k) ?? 0; i < n; i++) extra.push(k);
  if (missing.length === 0 && extra.length === 0) return undefined;
  const parts: string[] = [];
  if (missing.length) parts.push(`missing ${missing.join('&')}`);
  if (extra.length) parts.push(`unexpected ${extra.join('&')}`);
  return parts.join(', ');
}

function compareBody(mock: Mock, got: Buffer): { detail: string } | undefined {
  const want = mock.request.body;
  // `noise.req: [body]`: the whole body is not compared.
  if (mock.noise?.bodyPaths.some((p) => p.length === 0)) return undefined;
  switch (want.kind) {
    case 'empty':
      return got.length === 0 ? undefined : { detail: `expected no body, got ${got.length} bytes` };
    case 'json': {
      let wantValue: unknown;
      let gotValue: unknown;
      try {
        wantValue = JSON.parse(want.bytes.toString('utf8'));
      } catch {
        // the mock file says json but is not: compare as text
        return compareText(want.bytes, got);
      }
      try {
        gotValue = JSON.parse(got.toString('utf8'));
      } catch {
        return {
          detail:
            got.length === 0 ? 'expected a JSON body, got none' : `expected JSON, got ${snippet(got.toString('utf8'))}`,
        };
      }
      const d = jsonDiff(wantValue, gotValue, '$', ignoredBy(mock.noise));
      return d ? { detail: `at ${d.path} (${d.detail})` } : undefined;
    }
    case 'text':
      return compareText(want.bytes, got);
    case 'binary':
      if (want.bytes.equals(got)) return undefined;
      return {
        detail: `binary body differs (expected ${want.bytes.length} bytes, got ${got.length}${firstDiff(want.bytes, got)})`,
      };
  }
}

function compareText(want: Buffer, got: Buffer): { detail: string } | undefined {
  if (want.equals(got)) return undefined;
  const w = want.toString('utf8');
  const g = got.toString('utf8');
  if (hasRef(w) && templateMatches(w, g)) return undefined;
  let i = 0;
  while (i < w.length && i < g.length && w[i] === g[i]) i++;
  return { detail: `text differs at character ${i} (expected ${snippet(w.slice(i))}, got ${snippet(g.slice(i))})` };
}

function firstDiff(a: Buffer, b: Buffer): string {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return `, first difference at byte ${i}`;
}

function snippet(s: string): string {
  if (s === '') return 'end of body';
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 60)}…` : s;
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

function key(path: string, k: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(k) ? `${path}.${k}` : `${path}[${JSON.stringify(k)}]`;
}

/** Decides whether a place in the request body is noise: its path, and the recorded value there. */
export type IgnoreField = (path: readonly Seg[], want: unknown) => boolean;

/** A mock's noise as an IgnoreField (undefined when it has none). */
export function ignoredBy(noise: MockNoise | undefined): IgnoreField | undefined {
  if (!noise) return undefined;
  const paths = noise.bodyPaths.map(normalizeNoisePath);
  return (path, want) =>
    paths.some((p) => noisePathMatches(p, path)) ||
    (typeof want === 'string' &&
      noise.values.some((re) => {
        re.lastIndex = 0;
        return re.test(want);
      }));
}

/** First structural difference between two JSON values (object key order ignored); `ignore` skips noise. */
export function jsonDiff(
  want: unknown,
  got: unknown,
  path = '$',
  ignore?: IgnoreField,
  segs: Seg[] = [],
): { path: string; detail: string } | undefined {
  if (ignore && segs.length > 0 && ignore(segs, want)) return undefined;
  if (isDeepStrictEqual(want, got)) return undefined;
  if (typeof want === 'string' && typeof got === 'string' && hasRef(want) && templateMatches(want, got))
    return undefined;
  const tw = typeName(want);
  const tg = typeName(got);
  if (tw !== tg) return { path, detail: `expected ${tw} ${show(want)}, got ${tg} ${show(got)}` };
  if (Array.isArray(want) && Array.isArray(got)) {
    for (let i = 0; i < Math.min(want.length, got.length); i++) {
      const d = jsonDiff(want[i], got[i], `${path}[${i}]`, ignore, [...segs, i]);
      if (d) return d;
    }
    if (want.length === got.length) return undefined;
    return { path, detail: `expected ${want.length} items, got ${got.length}` };
  }
  if (tw === 'object') {
    const w = want as Record<string, unknown>;
    const g = got as Record<string, unknown>;
    for (const k of Object.keys(w)) {
      if (!(k in g)) {
        if (ignore?.([...segs, k], w[k])) continue;
        return { path: key(path, k), detail: `expected ${show(w[k])}, got nothing` };
      }
      const d = jsonDiff(w[k], g[k], key(path, k), ignore, [...segs, k]);
      if (d) return d;
    }
    for (const k of Object.keys(g))
      if (!(k in w) && !ignore?.([...segs, k], undefined))
        return { path: key(path, k), detail: `unexpected field with ${show(g[k])}` };
    return undefined;
  }
  return { path, detail: `expected ${show(want)}, got ${show(got)}` };
}

function stageList(stages: Stage[]): string {
  if (stages.length <= 1) return stages.join('');
  return `${stages.slice(0, -1).join(', ')} and ${stages[stages.length - 1]}`;
}

/** "no mock for POST https://api.test/orders: method, host and path matched mock-3, body differed at $.qty (expected 2, got 3)" */
export function formatMiss(miss: MockMiss, passed?: Stage[]): string {
  const head = `no mock for ${miss.method} ${miss.url}`;
  if (!miss.closest) return `${head}: there are no mocks`;
  const c = miss.closest;
  const matched = passed && passed.length > 0 ? `${stageList(passed)} matched ${c.mock}, ` : `closest is ${c.mock}, `;
  return `${head}: ${matched}${c.field} differed ${c.detail.startsWith('at ') ? '' : '('}${c.detail}${c.detail.startsWith('at ') ? '' : ')'}`;
}

/** Find the mock for each call, remembering which mocks were used. */
export class MockMatcher {
  private readonly mocks: Mock[];
  private readonly used = new Set<Mock>();
  private readonly served: MockReport['served'] = [];
  private readonly misses: MockMiss[] = [];
  private readonly calls: ReceivedCall[] = [];

  constructor(mocks: readonly Mock[]) {
    this.mocks = [...mocks].sort((a, b) => a.index - b.index);
  }

  match(call: IncomingCall): MatchOutcome {
    const url = callUrl(call);
    const method = call.method.toUpperCase();
    const results = this.mocks.map((mock) => ({ mock, r: matchStages(mock, call) }));
    const hits = results.filter((x) => !x.r.failure).map((x) => x.mock);
    if (hits.length > 0) {
      const fresh = hits.find((m) => !this.used.has(m));
      const mock = fresh ?? hits[hits.length - 1]!;
      this.used.add(mock);
      this.served.push({ mock: mock.name, method, url, ...(fresh ? {} : { reused: true }) });
      this.calls.push({ method, url, body: call.body, mock });
      return { kind: 'hit', mock, reused: !fresh };
    }
    // Closest: most stages passed; ties go to an unused mock, then to recorded order.
    let best: (typeof results)[number] | undefined;
    for (const x of results) {
      if (!best || x.r.passed.length > best.r.passed.length) best = x;
      else if (x.r.passed.length === best.r.passed.length && this.used.has(best.mock) && !this.used.has(x.mock))
        best = x;
    }
    const miss: MockMiss = { method, url };
    if (best?.r.failure)
      miss.closest = { mock: best.mock.name, field: best.r.failure.field, detail: best.r.failure.detail };
    const message = formatMiss(miss, best?.r.passed);
    this.misses.push({ ...miss, message });
    this.calls.push({
      method,
      url,
      body: call.body,
      ...(best?.r.failure ? { closest: { mock: best.mock, stage: best.r.failure.stage } } : {}),
    });
    return { kind: 'miss', miss, message };
  }

  /** A call another protocol's mock answered: kept with the HTTP ones, in the order they came. */
  noteServed(entry: MockReport['served'][number]): void {
    this.served.push(entry);
  }

  /** A call of another protocol that no mock answered. */
  noteMiss(miss: MockMiss): void {
    this.misses.push(miss);
  }

  /** Every call received so far, in order, with the mock that answered or the closest one. */
  receivedCalls(): ReceivedCall[] {
    return [...this.calls];
  }

  report(): MockReport {
    return {
      served: [...this.served],
      misses: [...this.misses],
      unused: this.mocks.filter((m) => !this.used.has(m)).map((m) => m.name),
    };
  }
}
