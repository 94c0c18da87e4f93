// `tlsrec test --detect-noise`: replay each selected set twice, each time with a fresh app and a
// fresh mock session, and call noise what differs between the two runs:
//   - a test's response headers (those the recording has; per-request ones such as Date are noise
//     by default already) and JSON body fields, written as Keploy paths without array indices
//     (body.items.seenAt) into the test's spec.assertions.noise;
//   - the request body fields of an outgoing call that differ between the runs (a nonce, a time),
//     written into the mock's own noise (Keploy's `noise: {req: [...]}`) so the matcher finds it.
//     A call that missed in both runs is compared through the mock the miss report names closest.
// A field the recording holds as a reference ({{ .token }}) is never made noise: replay already
// takes the app's value there and still requires the field to be present.
// What is equal in both runs but differs from the recording is a real change, never noise: the
// run that follows reports it. A test during which a mock missed answers from a 502, so its
// fields are only judged once its mocks are found: when mock noise was added, the sets with such
// tests are replayed twice more. Then one normal run against the new noise decides the exit code.

import { isDeepStrictEqual } from 'node:util';
import { relative } from 'node:path';
import { YamlFileEditor } from '../format/edit.js';
import type { BodyValue, Mock, NoiseRule, TestCase, TestSet } from '../format/types.js';
import { DEFAULT_NOISE_HEADERS, FRAMING_HEADERS, type ActualResponse } from './compare.js';
import { noisePathMatches, normalizeNoisePath, type Seg } from './noise-paths.js';
import type { ReceivedCall } from './mock-session.js';
import { ignoredBy, matchStages, splitTarget, type IncomingCall } from './mocks/matcher.js';
import { parseMockNoise, parseNoiseKey } from '../format/noise.js';
import { hasRef } from '../format/templates.js';
import { runTests, selectTestSets, type TestOptions, type TestRunResult } from './run-tests.js';
import { UsageError } from '../errors.js';

/** One noise entry written to a file. */
export interface AddedNoise {
  file: string;
  /** Test name or mock name. */
  owner: string;
  kind: 'test' | 'mock';
  key: string;
}

export interface DetectNoiseResult extends TestRunResult {
  added: AddedNoise[];
  /** Things worth saying that are not noise entries (text bodies that vary, ...). */
  notes: string[];
}

/** What one replay of the sets saw. */
interface Capture {
  responses: Map<string, ActualResponse | undefined>;
  /** Test files during which a mock missed. */
  missed: Set<string>;
  calls: Map<string, ReceivedCall[]>;
}

async function capture(opts: TestOptions, sets: TestSet[], names: string[] | undefined): Promise<Capture> {
  const c: Capture = { responses: new Map(), missed: new Set(), calls: new Map() };
  const result = await runTests({
    ...opts,
    testSetsLoaded: sets,
    testSets: names,
    reporters: [],
    onResponse: (test, _set, response) => c.responses.set(test.file, response),
    onMockCalls: (set, calls) => c.calls.set(set.dir, calls),
  });
  for (const s of result.report.sets) for (const t of s.tests) if (t.mockMisses.length > 0) c.missed.add(t.file);
  return c;
}

// ---------------- what differs between two runs (pure) ----------------

/** Paths (with array indices) where two JSON values differ; a path is not descended below a difference. */
export function differingPaths(a: unknown, b: unknown, segs: Seg[] = [], out: Seg[][] = []): Seg[][] {
  if (isDeepStrictEqual(a, b)) return out;
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) out.push(segs);
    else for (let i = 0; i < a.length; i++) differingPaths(a[i], b[i], [...segs, i], out);
    return out;
  }
  if (isObj(a) && isObj(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (!Object.hasOwn(a, k) || !Object.hasOwn(b, k)) out.push([...segs, k]);
      else differingPaths(a[k], b[k], [...segs, k], out);
    }
    return out;
  }
  out.push(segs);
  return out;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Keploy's spelling of a JSON path: "body.items.seenAt" (indices dropped); undefined when a key cannot be written. */
export function keployBodyKey(segs: readonly Seg[]): string | undefined {
  let key = 'body';
  for (const s of segs) {
    if (typeof s === 'number') continue;
    if (s === '' || /[.[\]\s]/.test(s)) return undefined;
    key += `.${s}`;
  }
  return key;
}

function parseJson(b: Buffer): { ok: true; value: unknown } | { ok: false } {
  if (b.length === 0) return { ok: false };
  try {
    return { ok: true, value: JSON.parse(b.toString('utf8')) as unknown };
  } catch {
    return { ok: false };
  }
}

/** True when the recorded JSON body holds a reference ({{ .token }}) at `segs` or above it. */
function recordedAsRef(body: BodyValue, segs: readonly Seg[]): boolean {
  if (body.kind !== 'json') return false;
  const parsed = parseJson(body.bytes);
  if (!parsed.ok) return false;
  let at: unknown = parsed.value;
  for (const s of segs) {
    if (typeof at === 'string') break;
    if (typeof s === 'number' ? !Array.isArray(at) : !isObj(at)) return false;
    at = (at as Record<string | number, unknown>)[s];
  }
  return typeof at === 'string' && hasRef(at);
}

function headerValues(headers: ActualResponse['headers'], lower: string): string {
  return headers
    .filter(([n]) => n.toLowerCase() === lower)
    .map(([, v]) => v.trim())
    .join('\n');
}

/** Noise keys for a test from two responses; `notes` gets what cannot be noise. */
export function testNoiseBetween(
  test: TestCase,
  rules: readonly NoiseRule[],
  a: ActualResponse,
  b: ActualResponse,
  notes: string[],
): string[] {
  const keys: string[] = [];
  if (a.status !== b.status) {
    // Not a volatile field but a flaky answer: everything would differ, nothing would be learnt.
    notes.push(
      `${test.name}: the status differs between the two runs (${a.status}, ${b.status}); its fields were not judged`,
    );
    return keys;
  }
  const seen = new Set<string>();
  for (const [name, value] of test.expected.headers) {
    const lower = name.toLowerCase();
    if (seen.has(lower) || FRAMING_HEADERS.includes(lower) || DEFAULT_NOISE_HEADERS.includes(lower) || hasRef(value))
      continue;
    seen.add(lower);
    if (rules.some((r) => r.target.type === 'header' && r.target.name.toLowerCase() === lower)) continue;
    if (headerValues(a.headers, lower) !== headerValues(b.headers, lower)) keys.push(`header.${name}`);
  }
  if (a.body.equals(b.body)) return keys;
  if (rules.some((r) => r.target.type === 'body' && r.target.path.length === 0)) return keys;
  const ja = parseJson(a.body);
  const jb = parseJson(b.body);
  if (!ja.ok || !jb.ok) {
    notes.push(
      `${test.name}: the body differs between the two runs but is not JSON: no field can be made noise (add "body: []" by hand to ignore it all)`,
    );
    return keys;
  }
  const bodyRules = rules
    .filter((r) => r.target.type === 'body')
    .map((r) => normalizeNoisePath((r.target as { path: string[] }).path));
  for (const segs of differingPaths(ja.value, jb.value)) {
    if (bodyRules.some((p) => noisePathMatches(p, segs)) || recordedAsRef(test.expected.body, segs)) continue;
    const key = keployBodyKey(segs);
    if (key === undefined) {
      notes.push(
        `${test.name}: a field that differs between runs has a name a noise path cannot spell (${JSON.stringify(segs)})`,
      );
      continue;
    }
    if (!keys.includes(key)) keys.push(key);
  }
  return keys;
}

/** The same call in two runs: the k-th call with this method and URL in each. */
function pairCalls(a: readonly ReceivedCall[], b: readonly ReceivedCall[]): Array<[ReceivedCall, ReceivedCall]> {
  const groups = new Map<string, ReceivedCall[]>();
  for (const c of b) {
    const k = `${c.method} ${c.url}`;
    const list = groups.get(k);
    if (list) list.push(c);
    else groups.set(k, [c]);
  }
  const pairs: Array<[ReceivedCall, ReceivedCall]> = [];
  for (const c of a) {
    const other = groups.get(`${c.method} ${c.url}`)?.shift();
    if (other) pairs.push([c, other]);
  }
  return pairs;
}

/** `mock` with `keys` added to its request noise. */
function withNoise(mock: Mock, keys: readonly string[]): Mock {
  const extra = parseMockNoise({ req: [...keys] }).noise;
  if (!extra) return mock;
  const old = mock.noise;
  return {
    ...mock,
    noise: {
      bodyPaths: [...(old?.bodyPaths ?? []), ...extra.bodyPaths],
      values: old?.values ?? [],
      keys: [...(old?.keys ?? []), ...extra.keys],
    },
  };
}

/**
 * Request-body noise for mocks. Each call of run a is paired with the same call of run b; the
 * body fields that differ between them are volatile. The mock they belong to is the one the call
 * matches once those fields are ignored (the first such mock not yet claimed, in recorded order,
 * as the matcher would answer); failing that, the mock that answered, or the closest one when
 * only the body differed (the miss then names the field that really changed).
 */
export function mockNoiseBetween(
  a: readonly ReceivedCall[],
  b: readonly ReceivedCall[],
  mocks: readonly Mock[],
): Map<Mock, string[]> {
  const out = new Map<Mock, string[]>();
  const claimed = new Set<Mock>();
  for (const [ca, cb] of pairCalls(a, b)) {
    const ja = parseJson(ca.body);
    const jb = parseJson(cb.body);
    if (!ja.ok || !jb.ok) continue;
    const keys: string[] = [];
    const varying = differingPaths(ja.value, jb.value);
    for (const segs of varying) {
      const key = keployBodyKey(segs);
      if (key !== undefined && !keys.includes(key)) keys.push(key);
    }
    if (keys.length === 0) continue;
    const split = splitTarget(new URL(ca.url).pathname + new URL(ca.url).search);
    const u = new URL(ca.url);
    const call: IncomingCall = {
      method: ca.method,
      scheme: u.protocol === 'https:' ? 'https' : 'http',
      host: u.host,
      path: split.path,
      query: split.query,
      headers: [],
      body: ca.body,
    };
    const fits = mocks.filter((m) => !matchStages(withNoise(m, [...(out.get(m) ?? []), ...keys]), call).failure);
    const mock =
      fits.find((m) => !claimed.has(m)) ??
      fits.at(-1) ??
      ca.mock ??
      (ca.closest?.stage === 'body' ? ca.closest.mock : undefined);
    if (!mock) continue;
    claimed.add(mock);
    const ignore = ignoredBy(mock.noise);
    // A field the mock holds as a reference already matches whatever value flows into it.
    const notByRef = new Set(varying.filter((segs) => !recordedAsRef(mock.request.body, segs)).map(keployBodyKey));
    const fresh = keys.filter((k) => {
      const t = parseNoiseKey(k);
      return notByRef.has(k) && !(t.ok && t.target.type === 'body' && ignore?.(t.target.path, undefined));
    });
    if (fresh.length === 0) continue;
    const list = out.get(mock) ?? [];
    for (const k of fresh) if (!list.includes(k)) list.push(k);
    out.set(mock, list);
  }
  return out;
}

// ---------------- the command ----------------

export async function detectNoiseAndTest(opts: TestOptions, reload: () => TestSet[]): Promise<DetectNoiseResult> {
  if (opts.appUrl) {
    throw new UsageError('--detect-noise needs to start the app itself (a fresh app for each of its runs)', {
      stage: 'detect noise',
      hint: 'drop --app-url and give the command after -- or in tlsrec.yaml',
    });
  }
  const out = opts.out;
  const say = (s: string): void => void out.write(`${s}\n`);
  const added: AddedNoise[] = [];
  const notes: string[] = [];
  const settled = new Set<string>();
  let printed = 0;
  // Re-read after each edit, keeping exactly the sets and tests the caller selected.
  const selectedFiles = new Set(opts.testSetsLoaded.flatMap((s) => s.tests.map((t) => t.file)));
  const selectedDirs = new Set(opts.testSetsLoaded.map((s) => s.dir));
  const reread = (): TestSet[] =>
    reload()
      .filter((s) => selectedDirs.has(s.dir))
      .map((s) => ({ ...s, tests: s.tests.filter((t) => selectedFiles.has(t.file)) }));
  let sets = opts.testSetsLoaded;
  let names = opts.testSets;
  let unjudged: string[] = [];
  for (let round = 1; round <= 2; round++) {
    const selected = selectTestSets(sets, names);
    const what = selected.map((s) => s.name).join(', ');
    say(
      `detect-noise: replaying ${what} twice, each time with a fresh app${round > 1 ? ' (again, now that the mocks are found)' : ''}`,
    );
    const a = await capture(opts, sets, names);
    const b = await capture(opts, sets, names);
    const editors = new Map<string, YamlFileEditor>();
    const editor = (file: string): YamlFileEditor => {
      let e = editors.get(file);
      if (!e) editors.set(file, (e = YamlFileEditor.open(file)));
      return e;
    };
    const waiting: TestSet[] = [];
    let mockNoiseAdded = false;
    for (const set of selected) {
      for (const test of set.tests) {
        if (settled.has(test.file)) continue;
        const ra = a.responses.get(test.file);
        const rb = b.responses.get(test.file);
        if (ra === undefined || rb === undefined) continue;
        if (a.missed.has(test.file) || b.missed.has(test.file)) {
          if (!waiting.includes(set)) waiting.push(set);
          continue;
        }
        settled.add(test.file);
        const keys = testNoiseBetween(test, [...test.noise, ...set.noise], ra, rb, notes);
        if (keys.length === 0) continue;
        for (const key of editor(test.file).addTestNoise(keys))
          added.push({ file: test.file, owner: test.name, kind: 'test', key });
      }
      for (const [mock, keys] of mockNoiseBetween(a.calls.get(set.dir) ?? [], b.calls.get(set.dir) ?? [], set.mocks)) {
        const ed = editor(mock.file);
        for (const key of ed.addMockNoise(ed.findDocument(mock.line, mock.name), keys)) {
          added.push({ file: mock.file, owner: mock.name, kind: 'mock', key });
          mockNoiseAdded = true;
        }
      }
    }
    for (const e of editors.values()) e.save();
    for (const n of added.slice(printed))
      say(`  noise + ${n.key}  ${relative(process.cwd(), n.file) || n.file} (${n.owner})`);
    printed = added.length;
    sets = reread();
    unjudged = waiting.flatMap((s) => s.tests.filter((t) => !settled.has(t.file)).map((t) => t.name));
    if (!mockNoiseAdded || waiting.length === 0) break;
    names = waiting.map((s) => s.name);
  }
  for (const name of unjudged)
    notes.push(
      `${name}: a mock missed during it in the detection runs, so its fields were not judged (see the run below)`,
    );
  for (const n of notes) say(`  note: ${n}`);
  const files = new Set(added.map((n) => n.file)).size;
  say(
    added.length === 0
      ? 'detect-noise: nothing differed between the two runs; no noise added'
      : `detect-noise: added ${added.length} noise entr${added.length === 1 ? 'y' : 'ies'} to ${files} file${files === 1 ? '' : 's'}; now a normal run against it`,
  );
  const result = await runTests({ ...opts, testSetsLoaded: sets });
  return { ...result, added, notes };
}
