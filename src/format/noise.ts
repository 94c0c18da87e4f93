// Keploy noise keys -> NoiseRule. Pure: the reader attaches file positions to the problems.
//
//   header.Date            a response header, name case-insensitive
//   body                   the whole body
//   body.user.id           a JSON path; numeric segments are array indices
//   body.items.[].id       any element of an array (also written body.items[].id)
//   status  (status_code)  the status code
// Value: [] (or nothing) = always ignore; [regex, ...] = ignore when one regex matches the actual value.

import type { MockNoise, NoiseRule } from './types.js';

export type NoiseTarget = NoiseRule['target'];

export type NoiseKeyResult = { ok: true; target: NoiseTarget } | { ok: false; message: string };

const KEY_HELP = 'expected "header.<name>", "body", "body.<path>" (use [] for any array index) or "status"';

export function parseNoiseKey(key: string): NoiseKeyResult {
  const k = key.trim();
  if (k === 'status' || k === 'status_code' || k === 'resp.status_code') {
    return { ok: true, target: { type: 'status' } };
  }
  const lower = k.toLowerCase();
  for (const prefix of ['header.', 'resp.header.']) {
    if (lower.startsWith(prefix)) {
      const name = k.slice(prefix.length).trim();
      if (name === '' || /[\s:]/.test(name)) {
        return { ok: false, message: `noise key "${key}": expected a header name after "header."` };
      }
      return { ok: true, target: { type: 'header', name: name.toLowerCase() } };
    }
  }
  for (const prefix of ['body', 'resp.body']) {
    if (lower === prefix) return { ok: true, target: { type: 'body', path: [] } };
    if (lower.startsWith(prefix + '.') || lower.startsWith(prefix + '[')) {
      const path = splitBodyPath(k.slice(prefix.length));
      if (path === undefined) {
        return { ok: false, message: `noise key "${key}": empty path segment; ${KEY_HELP}` };
      }
      return { ok: true, target: { type: 'body', path } };
    }
  }
  return { ok: false, message: `unknown noise key "${key}": ${KEY_HELP}` };
}

/** ".items.[].id" / ".items[].id" / "[].id" -> ["items", "[]", "id"]; undefined on an empty segment. */
function splitBodyPath(rest: string): string[] | undefined {
  const normalized = rest.replace(/\.?\[\]/g, '.[]').replace(/\.?\[(\d+)\]/g, '.$1');
  if (!normalized.startsWith('.')) return undefined;
  const segs = normalized.slice(1).split('.');
  return segs.some((s) => s === '') ? undefined : segs;
}

export type NoisePatternResult = { ok: true; regex: RegExp } | { ok: false; message: string };

export function compileNoisePattern(key: string, pattern: string): NoisePatternResult {
  try {
    return { ok: true, regex: new RegExp(pattern) };
  } catch (err) {
    const why = err instanceof Error ? err.message.replace(/^Invalid regular expression: /, '') : String(err);
    return { ok: false, message: `noise "${key}": invalid regular expression ${JSON.stringify(pattern)}: ${why}` };
  }
}

export interface NoiseProblem {
  /** Which part is wrong: the key itself, or the pattern at this index. */
  at: { key: string } | { key: string; index: number };
  message: string;
}

/** Builds rules from a noise map; all problems are returned, not just the first. */
export function parseNoise(noise: Record<string, readonly string[] | null | undefined>): {
  rules: NoiseRule[];
  problems: NoiseProblem[];
} {
  const rules: NoiseRule[] = [];
  const problems: NoiseProblem[] = [];
  for (const [key, value] of Object.entries(noise)) {
    const target = parseNoiseKey(key);
    if (!target.ok) {
      problems.push({ at: { key }, message: target.message });
      continue;
    }
    const patterns: RegExp[] = [];
    let bad = false;
    (value ?? []).forEach((p, index) => {
      const r = compileNoisePattern(key, p);
      if (r.ok) patterns.push(r.regex);
      else {
        bad = true;
        problems.push({ at: { key, index }, message: r.message });
      }
    });
    if (!bad) rules.push({ target: target.target, patterns, key });
  }
  return { rules, problems };
}

/** Later lists win on the same key (test over set over config), order otherwise kept. */
export function mergeNoise(...lists: NoiseRule[][]): NoiseRule[] {
  const byKey = new Map<string, NoiseRule>();
  for (const list of lists)
    for (const r of list) {
      byKey.delete(ruleId(r));
      byKey.set(ruleId(r), r);
    }
  return [...byKey.values()];
}

function ruleId(r: NoiseRule): string {
  const t = r.target;
  if (t.type === 'header') return 'header.' + t.name;
  if (t.type === 'body') return 'body.' + t.path.join('.');
  return 'status';
}

export interface MockNoiseProblem {
  /** Where in the document: ["noise", "req", 2]. */
  at: Array<string | number>;
  message: string;
}

/**
 * A mock document's `noise:` (Keploy's shape: `{req: [paths], value: [regexes]}`, or a bare list of
 * value regexes) -> MockNoise. Header paths are accepted and have no effect (the matcher does not
 * compare headers); anything else but body paths is a problem.
 */
export function parseMockNoise(value: unknown): { noise: MockNoise | undefined; problems: MockNoiseProblem[] } {
  const problems: MockNoiseProblem[] = [];
  if (value === null || value === undefined) return { noise: undefined, problems };
  const obj = Array.isArray(value) ? { value } : (value as { req?: unknown; value?: unknown });
  const req = Array.isArray(obj.req) ? obj.req.map(String) : [];
  const values = Array.isArray(obj.value) ? obj.value.map(String) : [];
  const noise: MockNoise = { bodyPaths: [], values: [], keys: [] };
  req.forEach((key, i) => {
    const t = parseNoiseKey(key);
    if (!t.ok)
      problems.push({ at: ['noise', 'req', i], message: t.message.replace(/^(unknown )?noise key/, 'mock noise key') });
    else if (t.target.type === 'body') {
      noise.bodyPaths.push(t.target.path);
      noise.keys.push(key);
    } else if (t.target.type === 'status') {
      problems.push({
        at: ['noise', 'req', i],
        message: `mock noise key "${key}": a mock's noise names request fields ("body.<path>"), not the status`,
      });
    }
  });
  values.forEach((p, i) => {
    const r = compileNoisePattern(`noise.value[${i}]`, p);
    if (r.ok) noise.values.push(r.regex);
    else problems.push({ at: Array.isArray(value) ? ['noise', i] : ['noise', 'value', i], message: r.message });
  });
  const empty = noise.bodyPaths.length === 0 && noise.values.length === 0;
  return { noise: empty ? undefined : noise, problems };
}
