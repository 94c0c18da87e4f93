// Expected vs actual response comparison: pure, no I/O. Status, headers (case-insensitive names,
// per-request headers are noise by default), body by kind: JSON structurally with JSON paths,
// text exactly (line diff), binary by sha256 + length. Noise rules (types.ts) can silence any part,
// always or only when the actual value matches one of their regexes.
//
// Header policy (Keploy-like, documented in the report): every header that the recording has must
// be present in the response with the same value(s), unless it is noise. A header that only the
// actual response has is NOT a failure: apps and frameworks add headers over time (security
// headers, tracing), and a test that breaks on each of those teaches people to ignore failures.

import { createHash } from 'node:crypto';
import { createTwoFilesPatch } from 'diff';
import type { HeaderList } from '../model/exchange.js';
import type { BodyValue, NoiseRule } from '../format/types.js';
import { bodyRules, noisePathMatches, type BodyRule, type Seg } from './noise-paths.js';

export type FailureKind = 'status' | 'header' | 'body' | 'request';

export interface CompareFailure {
  kind: FailureKind;
  /** JSON path ("$.user.id") for body failures, header name (lower-case) for header failures. */
  path?: string;
  expected: string;
  actual: string;
  /** One line naming the test, the place, expected and actual. */
  message: string;
}

export interface CompareResult {
  passed: boolean;
  failures: CompareFailure[];
  /** Unified diff of the bodies (pretty-printed JSON or text) when the body differs. */
  diff?: string;
}

export interface ExpectedResponse {
  status: number;
  headers: HeaderList;
  body: BodyValue;
}

export interface ActualResponse {
  status: number;
  headers: HeaderList;
  /** Body with Content-Encoding already undone. */
  body: Buffer;
}

/** Headers that differ on every request by nature; never compared. */
export const DEFAULT_NOISE_HEADERS: readonly string[] = [
  'date',
  'server-timing',
  'age',
  'expires',
  'x-request-id',
  'x-correlation-id',
  'request-id',
  'x-amzn-requestid',
  'x-amz-request-id',
  'x-amz-cf-id',
  'x-amzn-trace-id',
  'traceparent',
  'tracestate',
  'x-trace-id',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-response-time',
  'x-runtime',
];

/** Framing headers: they describe the wire encoding, and the body comparison covers what they carry. */
export const FRAMING_HEADERS: readonly string[] = ['content-length', 'transfer-encoding', 'connection', 'keep-alive'];

/** At most this many failures are listed per test; the rest are summarised in one line. */
const MAX_FAILURES = 50;
const MAX_VALUE_CHARS = 200;

export function compareResponse(
  testName: string,
  expected: ExpectedResponse,
  actual: ActualResponse,
  noise: readonly NoiseRule[],
): CompareResult {
  const failures: CompareFailure[] = [];
  compareStatus(testName, expected.status, actual.status, noise, failures);
  compareHeaders(testName, expected.headers, actual.headers, noise, failures);
  const diff = compareBody(testName, expected.body, actual, noise, failures);
  const limited = limitFailures(testName, failures);
  const result: CompareResult = { passed: limited.length === 0, failures: limited };
  if (diff !== undefined) result.diff = diff;
  return result;
}

function limitFailures(testName: string, failures: CompareFailure[]): CompareFailure[] {
  if (failures.length <= MAX_FAILURES) return failures;
  const rest = failures.length - MAX_FAILURES;
  return [
    ...failures.slice(0, MAX_FAILURES),
    { kind: 'body', expected: '', actual: '', message: `${testName}: … and ${rest} more differences` },
  ];
}

// ---------------- noise ----------------

/** The rule silences this actual value: no patterns, or one pattern matches. */
function silences(rule: NoiseRule, actualValue: string | undefined): boolean {
  if (rule.patterns.length === 0) return true;
  if (actualValue === undefined) return false;
  return rule.patterns.some((re) => {
    re.lastIndex = 0; // a /g regex keeps state between test() calls
    return re.test(actualValue);
  });
}

// ---------------- status ----------------

function compareStatus(
  testName: string,
  exp: number,
  act: number,
  noise: readonly NoiseRule[],
  out: CompareFailure[],
): void {
  if (exp === act) return;
  if (noise.some((r) => r.target.type === 'status' && silences(r, String(act)))) return;
  out.push({
    kind: 'status',
    expected: String(exp),
    actual: String(act),
    message: `${testName}: status: expected ${exp}, got ${act}`,
  });
}

// ---------------- headers ----------------

function groupHeaders(headers: HeaderList): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const [name, value] of headers) {
    const k = name.toLowerCase();
    const list = m.get(k);
    if (list) list.push(value);
    else m.set(k, [value]);
  }
  return m;
}

function headerText(values: string[], name: string): string {
  return values.join(name === 'set-cookie' ? '\n' : ', ');
}

function compareHeaders(
  testName: string,
  expected: HeaderList,
  actual: HeaderList,
  noise: readonly NoiseRule[],
  out: CompareFailure[],
): void {
  const exp = groupHeaders(expected);
  const act = groupHeaders(actual);
  // An ETag is a hash of the body: when part of the body is noise, the ETag varies with it.
  const bodyHasNoise = noise.some((r) => r.target.type === 'body');
  for (const [name, expValues] of exp) {
    if (FRAMING_HEADERS.includes(name) || DEFAULT_NOISE_HEADERS.includes(name)) continue;
    if (name === 'etag' && bodyHasNoise) continue;
    const actValues = act.get(name);
    const actText = actValues ? headerText(actValues, name) : undefined;
    const rules = noise.filter((r) => r.target.type === 'header' && r.target.name.toLowerCase() === name);
    if (rules.some((r) => silences(r, actText))) continue;
    const expText = headerText(expValues, name);
    if (actValues === undefined) {
      out.push({
        kind: 'header',
        path: name,
        expected: expText,
        actual: '(missing)',
        message: `${testName}: header ${name}: expected ${quote(expText)}, but the response has no ${name} header`,
      });
      continue;
    }
    if (sameList(expValues, actValues)) continue;
    out.push({
      kind: 'header',
      path: name,
      expected: expText,
      actual: actText!,
      message: `${testName}: header ${name}: expected ${quote(expText)}, got ${quote(actText!)}`,
    });
  }
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((v, i) => v.trim() === b[i]!.trim());
}

// ---------------- body ----------------

function compareBody(
  testName: string,
  expected: BodyValue,
  actual: ActualResponse,
  noise: readonly NoiseRule[],
  out: CompareFailure[],
): string | undefined {
  const rules = bodyRules(noise);
  const actBytes = actual.body;
  // "body" with no path: the whole body is noise (for any kind), or when its text matches.
  const whole = rules.filter((r) => r.path.length === 0);
  if (whole.some((r) => silences(r.rule, actBytes.toString('utf8')))) return undefined;

  switch (expected.kind) {
    case 'empty':
      if (actBytes.length === 0) return undefined;
      out.push({
        kind: 'body',
        path: '$',
        expected: '(empty)',
        actual: describeBytes(actBytes),
        message: `${testName}: body: expected an empty body, got ${describeBytes(actBytes)}`,
      });
      return textDiff('', printable(actBytes));
    case 'json':
      return compareJsonBody(testName, expected.bytes, actBytes, rules, out);
    case 'text':
      return compareTextBody(testName, expected.bytes.toString('utf8'), actBytes, out);
    case 'binary':
      return compareBinaryBody(testName, expected.bytes, actBytes, out);
  }
}

function compareJsonBody(
  testName: string,
  expBytes: Buffer,
  actBytes: Buffer,
  rules: BodyRule[],
  out: CompareFailure[],
): string | undefined {
  let expValue: unknown;
  try {
    expValue = JSON.parse(expBytes.toString('utf8'));
  } catch {
    // The recording says JSON but it does not parse (hand edit): compare as text, so nothing is skipped.
    return compareTextBody(testName, expBytes.toString('utf8'), actBytes, out);
  }
  let actValue: unknown;
  const actText = actBytes.toString('utf8');
  try {
    actValue = JSON.parse(actText);
  } catch {
    out.push({
      kind: 'body',
      path: '$',
      expected: 'a JSON body',
      actual: truncate(actText || '(empty)'),
      message: `${testName}: body: expected JSON, got a body that is not JSON: ${truncate(actText || '(empty)')}`,
    });
    return textDiff(prettyJson(expValue), printable(actBytes));
  }
  const before = out.length;
  walkJson(testName, expValue, actValue, [], rules, out);
  if (out.length === before) return undefined;
  return textDiff(prettyJson(expValue), prettyJson(actValue));
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function scalarText(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

function walkJson(
  testName: string,
  exp: unknown,
  act: unknown,
  path: Seg[],
  rules: BodyRule[],
  out: CompareFailure[],
): void {
  const matching = rules.filter((r) => noisePathMatches(r.path, path));
  if (matching.some((r) => silences(r.rule, scalarText(act)))) return;
  const p = jsonPath(path);

  if (exp === undefined || act === undefined) {
    const missing = act === undefined;
    out.push({
      kind: 'body',
      path: p,
      expected: missing ? renderJson(exp) : '(absent)',
      actual: missing ? '(absent)' : renderJson(act),
      message: missing
        ? `${testName}: body ${p}: expected ${renderJson(exp)}, but it is missing`
        : `${testName}: body ${p}: not expected, got ${renderJson(act)}`,
    });
    return;
  }

  if (Array.isArray(exp) && Array.isArray(act)) {
    if (exp.length !== act.length) {
      out.push({
        kind: 'body',
        path: p,
        expected: `${exp.length} items`,
        actual: `${act.length} items`,
        message: `${testName}: body ${p}: expected an array of ${exp.length} items, got ${act.length}`,
      });
    }
    const n = Math.max(exp.length, act.length);
    for (let i = 0; i < n; i++) walkJson(testName, exp[i], act[i], [...path, i], rules, out);
    return;
  }
  if (isObject(exp) && isObject(act)) {
    for (const k of Object.keys(exp))
      walkJson(testName, exp[k], Object.hasOwn(act, k) ? act[k] : undefined, [...path, k], rules, out);
    for (const k of Object.keys(act)) {
      if (!Object.hasOwn(exp, k)) walkJson(testName, undefined, act[k], [...path, k], rules, out);
    }
    return;
  }
  const te = jsonType(exp);
  const ta = jsonType(act);
  if (te !== ta) {
    out.push({
      kind: 'body',
      path: p,
      expected: renderJson(exp),
      actual: renderJson(act),
      message: `${testName}: body ${p}: expected ${te} ${renderJson(exp)}, got ${ta} ${renderJson(act)}`,
    });
    return;
  }
  if (exp !== act) {
    out.push({
      kind: 'body',
      path: p,
      expected: renderJson(exp),
      actual: renderJson(act),
      message: `${testName}: body ${p}: expected ${renderJson(exp)}, got ${renderJson(act)}`,
    });
  }
}

/** `$.user.id`, `$.items[3].name`, `$['odd key']`. */
export function jsonPath(path: readonly Seg[]): string {
  let s = '$';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(seg)) s += `.${seg}`;
    else s += `['${seg.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}']`;
  }
  return s;
}

function compareTextBody(testName: string, exp: string, actBytes: Buffer, out: CompareFailure[]): string | undefined {
  const act = actBytes.toString('utf8');
  if (exp === act && Buffer.from(exp, 'utf8').equals(actBytes)) return undefined;
  const expLines = exp.split('\n');
  const actLines = act.split('\n');
  let line = 0;
  while (line < expLines.length && line < actLines.length && expLines[line] === actLines[line]) line++;
  const e = expLines[line] ?? '(end of body)';
  const a = actLines[line] ?? '(end of body)';
  out.push({
    kind: 'body',
    path: `line ${line + 1}`,
    expected: truncate(e),
    actual: truncate(a),
    message: `${testName}: body line ${line + 1}: expected ${quote(truncate(e))}, got ${quote(truncate(a))}`,
  });
  return textDiff(exp, printable(actBytes));
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function describeBytes(b: Buffer): string {
  return `${b.length} bytes (sha256 ${sha256(b).slice(0, 16)})`;
}

function compareBinaryBody(testName: string, exp: Buffer, act: Buffer, out: CompareFailure[]): undefined {
  if (exp.equals(act)) return undefined;
  let firstDiff = 0;
  while (firstDiff < exp.length && firstDiff < act.length && exp[firstDiff] === act[firstDiff]) firstDiff++;
  out.push({
    kind: 'body',
    path: `byte ${firstDiff}`,
    expected: describeBytes(exp),
    actual: describeBytes(act),
    message: `${testName}: binary body differs from byte ${firstDiff}: expected ${describeBytes(exp)}, got ${describeBytes(act)}`,
  });
  return undefined;
}

// ---------------- rendering helpers ----------------

function truncate(s: string): string {
  return s.length > MAX_VALUE_CHARS ? `${s.slice(0, MAX_VALUE_CHARS)}…` : s;
}

function quote(s: string): string {
  return JSON.stringify(s);
}

function renderJson(v: unknown): string {
  if (v === undefined) return '(absent)';
  return truncate(JSON.stringify(v));
}

/** Keys sorted so that a line diff shows value changes, not key order. */
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (isObject(v)) {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) o[k] = sortKeys(v[k]);
    return o;
  }
  return v;
}

function prettyJson(v: unknown): string {
  return `${JSON.stringify(sortKeys(v), null, 2)}\n`;
}

function printable(b: Buffer): string {
  return b.toString('utf8');
}

/** Above this a line diff costs more than it helps (Myers is O(N·D)); the failures still name the place. */
const MAX_DIFF_CHARS = 256 * 1024;

function textDiff(exp: string, act: string): string {
  if (exp.length > MAX_DIFF_CHARS || act.length > MAX_DIFF_CHARS) {
    return `(diff omitted: body larger than ${MAX_DIFF_CHARS / 1024} KB; expected ${exp.length} characters, actual ${act.length})`;
  }
  const patch = createTwoFilesPatch('expected', 'actual', exp, act, undefined, undefined, { context: 3 });
  // Drop the "===" index line and the file header lines: the reporter names the test itself.
  return patch
    .split('\n')
    .filter((l) => !l.startsWith('====') && !l.startsWith('Index:'))
    .join('\n')
    .trimEnd();
}
