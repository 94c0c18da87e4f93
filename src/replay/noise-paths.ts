// Noise rule paths against JSON body paths: `body.items[].id` style rule paths, normalized to
// segments, matched segment by segment against the path of a value in a JSON body.

import type { NoiseRule } from '../format/types.js';

/** "items[]" -> ["items", "[]"], "items[0]" -> ["items", "0"]: accept both spellings from the reader. */
export function normalizeNoisePath(path: readonly string[]): string[] {
  const out: string[] = [];
  for (const seg of path) {
    const m = /^(.*?)((?:\[\d*\])+)$/.exec(seg);
    if (!m) {
      out.push(seg);
      continue;
    }
    if (m[1]) out.push(m[1]);
    for (const idx of m[2]!.match(/\[\d*\]/g) ?? []) out.push(idx === '[]' ? '[]' : idx.slice(1, -1));
  }
  return out;
}

export type Seg = string | number;

/**
 * A rule path matches a JSON path segment by segment; an array index in the JSON path matches
 * "[]", "*" or its number, or is skipped when the rule names no index there (Keploy writes array
 * fields without indices: body.items.seenAt covers $.items[3].seenAt).
 */
export function noisePathMatches(rulePath: readonly string[], path: readonly Seg[], ri = 0, pi = 0): boolean {
  if (pi === path.length) return ri === rulePath.length;
  const p = path[pi]!;
  const r = rulePath[ri];
  if (typeof p === 'number') {
    if (
      r !== undefined &&
      (r === '[]' || r === '*' || r === String(p)) &&
      noisePathMatches(rulePath, path, ri + 1, pi + 1)
    )
      return true;
    return noisePathMatches(rulePath, path, ri, pi + 1);
  }
  // Keploy lower-cases noise keys, so body keys match case-insensitively.
  if (r === undefined || (r !== '*' && r.toLowerCase() !== p.toLowerCase())) return false;
  return noisePathMatches(rulePath, path, ri + 1, pi + 1);
}

export interface BodyRule {
  rule: NoiseRule;
  path: string[];
}

export function bodyRules(noise: readonly NoiseRule[]): BodyRule[] {
  const out: BodyRule[] = [];
  for (const rule of noise) {
    if (rule.target.type === 'body') out.push({ rule, path: normalizeNoisePath(rule.target.path) });
  }
  return out;
}
